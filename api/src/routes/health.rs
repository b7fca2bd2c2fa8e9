//! `/healthz` (the process answers), `/readyz` (the store answers and no projection is
//! stalled), `/metrics` (Prometheus text) and `/openapi.json`.

use super::{finish, json, Ctx};
use crate::{telemetry, ApiError};
use eventlog::Position;
use serde_json::json;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection};

pub fn routes(
    ctx: impl Filter<Extract = (Ctx,), Error = Rejection> + Clone + Send + Sync + 'static,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .and(ctx.clone())
        .map(|ctx: Ctx| finish(&ctx.request_id, json(StatusCode::OK, &json!({"status": "ok"}))));
    let readyz = warp::path!("readyz")
        .and(warp::get())
        .and(ctx.clone())
        .then(|ctx: Ctx| async move { finish(&ctx.request_id, readyz(&ctx).await) });
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(ctx.clone())
        .then(|ctx: Ctx| async move { finish(&ctx.request_id, metrics(&ctx).await) });
    let openapi = warp::path!("openapi.json").and(warp::get()).and(ctx).map(|ctx: Ctx| {
        let mut response = Response::new(OPENAPI.into());
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        finish(&ctx.request_id, Ok(response))
    });
    healthz.or(readyz).unify().or(metrics).unify().or(openapi).unify()
}

/// The OpenAPI 3.1 description of the API.
pub const OPENAPI: &str = include_str!("../../openapi.json");

async fn readyz(ctx: &Ctx) -> Result<Response, ApiError> {
    let state = &ctx.state;
    let store = state.log.ping().await.is_ok();
    let statuses = if store { state.engine.status().await.ok() } else { None };
    let stalled: Vec<_> = statuses
        .iter()
        .flatten()
        .filter(|s| s.state == "stalled")
        .map(|s| json!({"name": s.name, "error": s.last_error, "position": s.error_position}))
        .collect();
    let ready = store && statuses.is_some() && stalled.is_empty();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "store": if store { "ok" } else { "unreachable" },
        "stalled_projections": stalled,
    });
    json(
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &body,
    )
}

async fn metrics(ctx: &Ctx) -> Result<Response, ApiError> {
    let state = &ctx.state;
    // Gauges that come from the database are refreshed at scrape time.
    let statuses = state.engine.status().await?;
    let head = state.log.head(Position::START).await?;
    metrics::gauge!("dynamoi_feed_head_position").set(head.head.map(|p| p.global).unwrap_or(0) as f64);
    metrics::gauge!("dynamoi_feed_events").set(head.events_after as f64);
    for status in statuses {
        let name = status.name.clone();
        metrics::gauge!("dynamoi_projection_lag_events", "projection" => name.clone()).set(status.lag_events as f64);
        metrics::gauge!("dynamoi_projection_lag_seconds", "projection" => name.clone()).set(status.lag_seconds);
        metrics::gauge!("dynamoi_projection_stalled", "projection" => name.clone()).set(if status.state == "stalled" {
            1.0
        } else {
            0.0
        });
        metrics::gauge!("dynamoi_projection_position", "projection" => name).set(status.position.global as f64);
    }
    let mut response = Response::new(telemetry::metrics_handle().render().into());
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("text/plain; version=0.0.4"));
    Ok(response)
}
