//! Platform connections (P5, P9, P12, P19, P23, P25) over HTTP: connect (tokens sealed at once
//! with AES-256-GCM), list (no token ever leaves), disconnect (the key is destroyed at once),
//! and the assets for campaign creation (the use cases are `app::connections`).

use super::{command_input, finish, json, param, parse_json, query_params, reply, run_command, CommandReply, Ctx};
use crate::auth::Role;
use crate::ApiError;
use serde_json::json;
use std::collections::HashMap;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

pub fn routes(
    ctx: impl Filter<Extract = (Ctx,), Error = Rejection> + Clone + Send + Sync + 'static,
    max_body: u64,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    let list = warp::path!("v1" / "connections")
        .and(warp::get())
        .and(ctx.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(|ctx: Ctx, q| async move { finish(&ctx.request_id, list(&ctx, q).await) });
    let connect = warp::path!("v1" / "connections")
        .and(warp::post())
        .and(ctx.clone())
        .and(command_input(max_body))
        .then(
            |ctx: Ctx, key: Option<String>, ct: Option<String>, body: bytes::Bytes| async move {
                let result = run_command(&ctx, "connect", key.as_deref(), &body, || {
                    connect(&ctx, ct.as_deref(), &body)
                })
                .await;
                finish(&ctx.request_id, result)
            },
        );
    let disconnect = warp::path!("v1" / "connections" / String)
        .and(warp::delete())
        .and(ctx.clone())
        .then(|platform: String, ctx: Ctx| async move { finish(&ctx.request_id, disconnect(&ctx, &platform).await) });
    let assets = warp::path!("v1" / "connections" / String / "assets")
        .and(warp::get())
        .and(ctx)
        .and(warp::query::<HashMap<String, String>>())
        .then(|platform: String, ctx: Ctx, q| async move { finish(&ctx.request_id, assets(&ctx, &platform, q).await) });
    list.or(connect).unify().or(disconnect).unify().or(assets).unify()
}

async fn connect(ctx: &Ctx, content_type: Option<&str>, body: &[u8]) -> Result<CommandReply, ApiError> {
    let call = ctx.call_as(&[Role::Person])?;
    let connected = app::connections::connect(ctx.app(), &call, parse_json(content_type, body)?).await?;
    reply(StatusCode::CREATED, &connected)
}

async fn list(ctx: &Ctx, query: HashMap<String, String>) -> Result<Response, ApiError> {
    let call = ctx.call()?;
    let query = query_params(&query, &["min_position"])?;
    let connections = app::connections::list(ctx.app(), &call, param(&query, "min_position")).await?;
    json(StatusCode::OK, &json!({ "connections": connections }))
}

async fn disconnect(ctx: &Ctx, platform: &str) -> Result<Response, ApiError> {
    let call = ctx.call()?;
    json(
        StatusCode::OK,
        &app::connections::disconnect(ctx.app(), &call, platform).await?,
    )
}

/// `GET /v1/connections/{platform}/assets?max=`: the platform's assets for campaign creation.
async fn assets(ctx: &Ctx, platform: &str, query: HashMap<String, String>) -> Result<Response, ApiError> {
    let call = ctx.call()?;
    let query = query_params(&query, &["max"])?;
    let max = match param(&query, "max") {
        Some(raw) => raw
            .parse()
            .map_err(|_| ApiError::InvalidRequest("max must be a whole number from 1 to 500".into()))?,
        None => 50,
    };
    json(
        StatusCode::OK,
        &app::connections::assets(ctx.app(), &call, platform, max).await?,
    )
}
