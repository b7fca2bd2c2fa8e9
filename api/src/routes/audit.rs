//! Auditor routes: `GET /v1/audit/verify[?stream=TYPE/ID]` verifies hash chains (P18).

use super::{finish, json, query_params, Ctx};
use crate::auth::Role;
use crate::ApiError;
use eventlog::chain::{self, StreamVerification};
use eventlog::Db;
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

/// Verifies one stream (`TYPE/ID`) or every stream in the log.
pub async fn verify(db: &Db, stream: Option<&str>) -> Result<Vec<StreamVerification>, ApiError> {
    let streams = match stream {
        Some(stream) => {
            let (aggregate_type, aggregate_id) = stream
                .split_once('/')
                .filter(|(t, i)| !t.is_empty() && !i.is_empty())
                .ok_or_else(|| ApiError::InvalidRequest("stream must be `aggregate_type/aggregate_id`".into()))?;
            vec![(aggregate_type.to_string(), aggregate_id.to_string())]
        }
        None => chain::streams(db).await?,
    };
    let mut reports = Vec::with_capacity(streams.len());
    for (aggregate_type, aggregate_id) in streams {
        let report = chain::verify_stream(db, &aggregate_type, &aggregate_id).await?;
        if stream.is_some() && report.events == 0 {
            return Err(ApiError::NotFound("there is no such stream".into()));
        }
        reports.push(report);
    }
    Ok(reports)
}

async fn verify_route(ctx: &Ctx, query: HashMap<String, String>) -> Result<Response, ApiError> {
    ctx.caller()?.require(&[Role::Auditor])?;
    let query = query_params(&query, &["stream"])?;
    let reports = verify(ctx.state.log.db(), query.get("stream").map(String::as_str)).await?;
    let all_verified = reports.iter().all(|r| r.broken.is_none());
    json(
        StatusCode::OK,
        &serde_json::json!({ "all_verified": all_verified, "streams": reports }),
    )
}
