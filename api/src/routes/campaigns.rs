//! Campaigns, spend ingestion and dashboards (P1, P10, P14, P26) over HTTP: drafts and
//! lifecycle for an artist's managers, `POST /v1/ingest/spend` and `POST /v1/spend/sync` for
//! services, the artist dashboard, and the anonymous platform aggregate (the use cases are
//! `app::campaigns`, `app::ingest` and `app::dashboards`).

use super::{
    command_input, day_param, finish, json, json_body, param, parse_json, query_params, reply, run_command,
    CommandReply, Ctx,
};
use crate::auth::Role;
use crate::ApiError;
use app::campaigns::Action;
use app::ingest::{IngestReading, Outcome};
use serde_json::{json, Value};
use std::collections::HashMap;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

pub fn routes(
    ctx: impl Filter<Extract = (Ctx,), Error = Rejection> + Clone + Send + Sync + 'static,
    max_body: u64,
    max_ingest: u64,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    let draft = warp::path!("v1" / "artists" / String / "campaigns")
        .and(warp::post())
        .and(ctx.clone())
        .and(command_input(max_body))
        .then(
            |artist: String, ctx: Ctx, key: Option<String>, ct: Option<String>, body: bytes::Bytes| async move {
                let result = run_command(&ctx, "draft-campaign", key.as_deref(), &body, || {
                    draft(&ctx, &artist, ct.as_deref(), &body)
                })
                .await;
                finish(&ctx.request_id, result)
            },
        );
    let list = warp::path!("v1" / "artists" / String / "campaigns")
        .and(warp::get())
        .and(ctx.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(|artist: String, ctx: Ctx, q: HashMap<String, String>| async move {
            finish(&ctx.request_id, list(&ctx, &artist, q).await)
        });
    let action = warp::path!("v1" / "campaigns" / String / String)
        .and(warp::post())
        .and(ctx.clone())
        .and(json_body(max_body))
        .then(
            |campaign: String, action: String, ctx: Ctx, ct: Option<String>, body: bytes::Bytes| async move {
                finish(
                    &ctx.request_id,
                    act(&ctx, &campaign, &action, ct.as_deref(), &body).await,
                )
            },
        );
    let ingest = warp::path!("v1" / "ingest" / "spend")
        .and(warp::post())
        .and(ctx.clone())
        .and(json_body(max_ingest))
        .then(|ctx: Ctx, ct: Option<String>, body: bytes::Bytes| async move {
            finish(&ctx.request_id, ingest_route(&ctx, ct.as_deref(), &body).await)
        });
    let sync_all = warp::path!("v1" / "spend" / "sync")
        .and(warp::post())
        .and(ctx.clone())
        .and(json_body(max_body))
        .then(|ctx: Ctx, ct: Option<String>, body: bytes::Bytes| async move {
            finish(&ctx.request_id, sync_route(&ctx, ct.as_deref(), &body).await)
        });
    let dashboard = warp::path!("v1" / "artists" / String / "dashboard")
        .and(warp::get())
        .and(ctx.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(|artist: String, ctx: Ctx, q: HashMap<String, String>| async move {
            finish(&ctx.request_id, dashboard(&ctx, &artist, q).await)
        });
    let platforms =
        warp::path!("v1" / "stats" / "platforms")
            .and(warp::get())
            .and(ctx)
            .and(warp::query::<HashMap<String, String>>())
            .then(|ctx: Ctx, q: HashMap<String, String>| async move {
                finish(&ctx.request_id, platform_stats(&ctx, q).await)
            });
    draft
        .or(list)
        .unify()
        .or(action)
        .unify()
        .or(ingest)
        .unify()
        .or(sync_all)
        .unify()
        .or(dashboard)
        .unify()
        .or(platforms)
        .unify()
}

async fn draft(ctx: &Ctx, artist: &str, content_type: Option<&str>, body: &[u8]) -> Result<CommandReply, ApiError> {
    let call = ctx.call_as(&[Role::Person])?;
    let done = app::campaigns::draft(ctx.app(), &call, artist, parse_json(content_type, body)?).await?;
    reply(StatusCode::CREATED, &done)
}

/// `POST /v1/campaigns/{id}/{launch|link|pause|resume|end|archive|budget|schedule|ai-creatives|sync}`.
async fn act(
    ctx: &Ctx,
    campaign_id: &str,
    action: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let call = ctx.call_as(&[Role::Person])?;
    let app = ctx.app();
    let action = match action {
        "sync" => {
            return json(
                StatusCode::OK,
                &app::campaigns::sync_one(app, &call, campaign_id).await?,
            )
        }
        "launch" => Action::Launch,
        "link" => Action::Link(parse_json(content_type, body)?),
        "pause" => Action::Pause,
        "resume" => Action::Resume,
        "end" => Action::End,
        "archive" => Action::Archive,
        "budget" => Action::Budget(parse_json(content_type, body)?),
        "schedule" => Action::Schedule(parse_json(content_type, body)?),
        "ai-creatives" => Action::AiCreative(parse_json(content_type, body)?),
        _ => return Err(ApiError::NotFound("no such campaign action".into())),
    };
    json(
        StatusCode::OK,
        &app::campaigns::act(app, &call, campaign_id, action).await?,
    )
}

/// `POST /v1/spend/sync` (service): `{"campaigns": [...], "until": "YYYY-MM-DD", "min_position": "…"}`,
/// every field optional.
async fn sync_route(ctx: &Ctx, content_type: Option<&str>, body: &[u8]) -> Result<Response, ApiError> {
    let call = ctx.call_as(&[Role::Service])?;
    let request = if body.is_empty() {
        app::campaigns::SyncRequest::default()
    } else {
        parse_json(content_type, body)?
    };
    json(
        StatusCode::OK,
        &app::campaigns::sync_many(ctx.app(), &call, request).await?,
    )
}

async fn list(ctx: &Ctx, artist: &str, query: HashMap<String, String>) -> Result<Response, ApiError> {
    let call = ctx.call()?;
    let query = query_params(&query, &["min_position"])?;
    let campaigns = app::campaigns::list(ctx.app(), &call, artist, param(&query, "min_position")).await?;
    json(StatusCode::OK, &json!({ "artist_id": artist, "campaigns": campaigns }))
}

/// `POST /v1/ingest/spend` (service): a JSON array of readings or NDJSON; a malformed reading is
/// refused alone, with its reason, and the rest of the batch goes on.
async fn ingest_route(ctx: &Ctx, content_type: Option<&str>, body: &[u8]) -> Result<Response, ApiError> {
    let call = ctx.call_as(&[Role::Service])?;
    let kind = content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    let parse = |value: Value| {
        crate::edge::check_json(&value).map_err(|e| e.to_string())?;
        serde_json::from_value::<IngestReading>(value).map_err(|e| e.to_string())
    };
    let readings: Vec<Result<IngestReading, String>> = match kind.as_deref() {
        Some("application/x-ndjson") | Some("application/jsonl") => std::str::from_utf8(body)
            .map_err(|_| ApiError::InvalidRequest("the body is not UTF-8".into()))?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                serde_json::from_str::<Value>(line)
                    .map_err(|e| format!("not JSON: {e}"))
                    .and_then(parse)
            })
            .collect(),
        Some("application/json") => {
            let values: Vec<Value> = serde_json::from_slice(body)
                .map_err(|_| ApiError::InvalidRequest("the body must be a JSON array of readings".into()))?;
            values.into_iter().map(parse).collect()
        }
        _ => return Err(ApiError::UnsupportedMediaType),
    };
    let result = app::ingest::ingest_batch(ctx.app(), &call, &readings).await?;
    let count = |f: fn(&Outcome) -> bool| result.outcomes.iter().filter(|o| f(o)).count();
    json(
        StatusCode::OK,
        &json!({
            "recorded": count(|o| matches!(o, Outcome::Recorded)),
            "restated": count(|o| matches!(o, Outcome::Restated)),
            "unchanged": count(|o| matches!(o, Outcome::Unchanged)),
            "stale": count(|o| matches!(o, Outcome::Stale { .. })),
            "rejected": count(|o| matches!(o, Outcome::Rejected { .. })),
            "results": result.outcomes,
            "position": result.position.map(|p| p.to_string()),
        }),
    )
}

async fn dashboard(ctx: &Ctx, artist: &str, query: HashMap<String, String>) -> Result<Response, ApiError> {
    let call = ctx.call()?;
    let query = query_params(
        &query,
        &["from", "to", "granularity", "platform", "campaign", "min_position"],
    )?;
    let request = app::dashboards::DashboardQuery {
        from: day_param(&query, "from")?,
        to: day_param(&query, "to")?,
        granularity: param(&query, "granularity").unwrap_or("day").parse()?,
        platform: param(&query, "platform").map(str::to_string),
        campaign: param(&query, "campaign").map(str::to_string),
        min_position: param(&query, "min_position").map(str::to_string),
    };
    json(
        StatusCode::OK,
        &app::dashboards::dashboard(ctx.app(), &call, artist, &request).await?,
    )
}

/// `GET /v1/stats/platforms`: spend and results by platform and day, anonymous (P26).
async fn platform_stats(ctx: &Ctx, query: HashMap<String, String>) -> Result<Response, ApiError> {
    let call = ctx.call()?;
    let query = query_params(&query, &["from", "to", "min_position"])?;
    let days = app::dashboards::platform_stats(
        ctx.app(),
        &call,
        day_param(&query, "from")?,
        day_param(&query, "to")?,
        param(&query, "min_position"),
    )
    .await?;
    json(StatusCode::OK, &json!({ "days": days }))
}
