//! `/healthz` (the process answers), `/readyz` (this instance can serve: its database answers
//! within a second, over a connection of its own), `/metrics` (Prometheus text) and `/openapi.json`.

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
pub const OPENAPI: &str = crate::route_table::OPENAPI;

/// How long `/readyz` waits for the database before answering 503.
pub const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether this instance can serve: one `SELECT 1` over the probe's own connection, bounded by
/// [`READY_TIMEOUT`]. Read-model health (lag, stalls) is not readiness: it is in `/metrics` and
/// `dynamoi projections status`, and reads that need a read model answer for it.
async fn readyz(ctx: &Ctx) -> Result<Response, ApiError> {
    let store = ctx.state.probe.probe(READY_TIMEOUT).await.is_ok();
    let body = json!({
        "status": if store { "ready" } else { "not_ready" },
        "store": if store { "ok" } else { "unreachable" },
    });
    let mut response = json(
        if store {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &body,
    )?;
    if !store {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
    }
    Ok(response)
}

async fn metrics(ctx: &Ctx) -> Result<Response, ApiError> {
    let app = ctx.app();
    // Gauges that come from the database are refreshed at scrape time.
    let statuses = app.engine.status().await?;
    let head = app.log.head(Position::START).await?;
    metrics::gauge!("dynamoi_feed_head_position").set(head.head.map(|p| p.global).unwrap_or(0) as f64);
    metrics::gauge!("dynamoi_feed_events").set(head.events_after as f64);
    let holdback = app.log.feed_holdback().await?;
    metrics::gauge!("dynamoi_feed_held_back_events").set(holdback.held_back_events as f64);
    metrics::gauge!("dynamoi_feed_oldest_writer_seconds").set(holdback.oldest_writer_seconds.unwrap_or(0.0));
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
    let (workflows, _) = app::workflow_admin::status(app).await?;
    for workflow in workflows {
        for (state, count) in [
            ("pending", workflow.pending),
            ("done", workflow.done),
            ("parked", workflow.parked),
        ] {
            metrics::gauge!("dynamoi_workflow_items", "workflow" => workflow.workflow, "state" => state)
                .set(count as f64);
        }
    }
    for job in app::jobs::status(app, &app.config.jobs).await? {
        let name = job.job.name();
        let failed = job
            .last_run
            .as_ref()
            .and_then(|r| r.outcome.as_deref())
            .is_some_and(|o| o.starts_with("failed"));
        metrics::gauge!("dynamoi_job_last_run_failed", "job" => name).set(if failed { 1.0 } else { 0.0 });
    }
    let mut response = Response::new(telemetry::metrics_handle().render().into());
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("text/plain; version=0.0.4"));
    Ok(response)
}
