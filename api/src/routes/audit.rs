//! Auditor routes: `GET /v1/audit/verify[?stream=TYPE/ID]` verifies hash chains (P18).

use super::{finish, json, param, query_params, Ctx};
use crate::ApiError;
use std::collections::HashMap;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

pub fn routes(
    ctx: impl Filter<Extract = (Ctx,), Error = Rejection> + Clone + Send + Sync + 'static,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    warp::path!("v1" / "audit" / "verify")
        .and(warp::get())
        .and(ctx)
        .and(warp::query::<HashMap<String, String>>())
        .then(|ctx: Ctx, query| async move { finish(&ctx.request_id, verify_route(&ctx, query).await) })
}

async fn verify_route(ctx: &Ctx, query: HashMap<String, String>) -> Result<Response, ApiError> {
    let call = ctx.call()?;
    let query = query_params(&query, &["stream"])?;
    let reports = app::audit::verify_for(ctx.app(), &call, param(&query, "stream")).await?;
    let all_verified = reports.iter().all(|r| r.broken.is_none());
    json(
        StatusCode::OK,
        &serde_json::json!({ "all_verified": all_verified, "streams": reports }),
    )
}
