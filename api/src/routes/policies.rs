//! Privacy-policy versions (P28): `POST /v1/policies` (support), `GET /v1/policies`,
//! `GET /v1/policies/current`.

use super::{command_input, finish, json, param, parse_json, query_params, reply, run_command, CommandReply, Ctx};
use crate::auth::Role;
use crate::ApiError;
use std::collections::HashMap;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

pub fn routes(
    ctx: impl Filter<Extract = (Ctx,), Error = Rejection> + Clone + Send + Sync + 'static,
    max_body: u64,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    let publish = warp::path!("v1" / "policies")
        .and(warp::post())
        .and(ctx.clone())
        .and(command_input(max_body))
        .then(
            |ctx: Ctx, key: Option<String>, content_type: Option<String>, body: bytes::Bytes| async move {
                let result = run_command(&ctx, "publish-policy", key.as_deref(), &body, || {
                    publish(&ctx, content_type.as_deref(), &body)
                })
                .await;
                finish(&ctx.request_id, result)
            },
        );
    let list = warp::path!("v1" / "policies")
        .and(warp::get())
        .and(ctx.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(|ctx: Ctx, query| async move { finish(&ctx.request_id, list(&ctx, query).await) });
    let current = warp::path!("v1" / "policies" / "current")
        .and(warp::get())
        .and(ctx)
        .and(warp::query::<HashMap<String, String>>())
        .then(|ctx: Ctx, query| async move { finish(&ctx.request_id, current(&ctx, query).await) });
    publish.or(list).unify().or(current).unify()
}

async fn publish(ctx: &Ctx, content_type: Option<&str>, body: &[u8]) -> Result<CommandReply, ApiError> {
    let call = ctx.call_as(&[Role::Support])?;
    let published = app::policies::publish(ctx.app(), &call, parse_json(content_type, body)?).await?;
    reply(StatusCode::CREATED, &published)
}

async fn list(ctx: &Ctx, query: HashMap<String, String>) -> Result<Response, ApiError> {
    ctx.caller()?;
    let query = query_params(&query, &["document_id", "locale", "min_position"])?;
    let (document_id, versions) = app::policies::list(
        ctx.app(),
        param(&query, "document_id"),
        param(&query, "locale"),
        param(&query, "min_position"),
    )
    .await?;
    json(
        StatusCode::OK,
        &serde_json::json!({ "document_id": document_id, "versions": versions }),
    )
}

async fn current(ctx: &Ctx, query: HashMap<String, String>) -> Result<Response, ApiError> {
    ctx.caller()?;
    let query = query_params(&query, &["document_id", "locale", "min_position"])?;
    let version = app::policies::current(
        ctx.app(),
        param(&query, "document_id"),
        param(&query, "locale"),
        param(&query, "min_position"),
    )
    .await?;
    json(StatusCode::OK, &version)
}
