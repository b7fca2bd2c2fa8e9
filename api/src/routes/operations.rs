//! Operations over HTTP, for support, auditors and services: the projections (state, position,
//! lag, stalls and their causes) with the feed head, the scheduled jobs (schedule, last run and
//! outcome, next run), and the durable workflows (counts, parked items) with an operator's retry
//! and resolve (support only).
//!
//! `GET /v1/operations/projections`, `GET /v1/operations/jobs`, `GET /v1/operations/workflows`
//! (`?workflow=&state=` lists items), `POST /v1/operations/workflows/{workflow}/items/{item}/retry`
//! and `…/resolve` (`{"note": "what was done by hand"}`).

use super::{command_input, finish, json, param, parse_json, query_params, reply, run_command, CommandReply, Ctx};
use crate::auth::Role;
use crate::ApiError;
use eventlog::Position;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

/// Who may read operations.
const READERS: &[Role] = &[Role::Support, Role::Auditor, Role::Service];

/// `{"projections": [ProjectionStatus…], "feed_head": {"position", "events", "held_back_events",
/// "oldest_writer_seconds"}}`: what `dynamoi projections status` prints, with the head of the
/// global feed and what holds it back.
async fn projections(ctx: &Ctx, query: HashMap<String, String>) -> Result<Response, ApiError> {
    ctx.caller()?.require(READERS)?;
    query_params(&query, &[])?;
    let app = ctx.app();
    let statuses = app.engine.status().await?;
    let head = app.log.head(Position::START).await?;
    let holdback = app.log.feed_holdback().await?;
    json(
        StatusCode::OK,
        &json!({
            "projections": statuses,
            "feed_head": {
                "position": head.head.map(|p| p.to_string()),
                "events": head.events_after,
                "held_back_events": holdback.held_back_events,
                "oldest_writer_seconds": holdback.oldest_writer_seconds,
            },
        }),
    )
}

async fn jobs(ctx: &Ctx) -> Result<Response, ApiError> {
    ctx.caller()?.require(READERS)?;
    let app = ctx.app();
    let jobs = app::jobs::status(app, &app.config.jobs).await?;
    json(StatusCode::OK, &json!({ "now": app.now(), "jobs": jobs }))
}

async fn workflows(ctx: &Ctx, query: HashMap<String, String>) -> Result<Response, ApiError> {
    ctx.caller()?.require(READERS)?;
    let query = query_params(&query, &["workflow", "state"])?;
    let app = ctx.app();
    let (workflows, parked) = app::workflow_admin::status(app).await?;
    let items = match (param(&query, "workflow"), param(&query, "state")) {
        (None, None) => parked,
        (workflow, state) => app::workflow_admin::items(app, workflow, state, 500).await?,
    };
    json(StatusCode::OK, &json!({ "workflows": workflows, "items": items }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveRequest {
    note: String,
}

async fn act(
    ctx: &Ctx,
    workflow: &str,
    item: &str,
    action: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<CommandReply, ApiError> {
    ctx.caller()?.require(&[Role::Support])?;
    let app = ctx.app();
    let item = match action {
        "retry" => app::workflow_admin::retry(app, workflow, item).await?,
        "resolve" => {
            let request: ResolveRequest = parse_json(content_type, body)?;
            app::workflow_admin::resolve(app, workflow, item, &request.note).await?
        }
        _ => return Err(ApiError::NotFound("no such route".into())),
    };
    reply(StatusCode::OK, &item)
}

pub fn routes(
    ctx: impl Filter<Extract = (Ctx,), Error = Rejection> + Clone + Send + Sync + 'static,
    max_body: u64,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    let projections = warp::path!("v1" / "operations" / "projections")
        .and(warp::get())
        .and(ctx.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(|ctx: Ctx, q| async move { finish(&ctx.request_id, projections(&ctx, q).await) });
    let jobs = warp::path!("v1" / "operations" / "jobs")
        .and(warp::get())
        .and(ctx.clone())
        .then(|ctx: Ctx| async move { finish(&ctx.request_id, jobs(&ctx).await) });
    let workflows = warp::path!("v1" / "operations" / "workflows")
        .and(warp::get())
        .and(ctx.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(|ctx: Ctx, q| async move { finish(&ctx.request_id, workflows(&ctx, q).await) });
    let act = warp::path!("v1" / "operations" / "workflows" / String / "items" / String / String)
        .and(warp::post())
        .and(ctx)
        .and(command_input(max_body))
        .then(
            |workflow: String,
             item: String,
             action: String,
             ctx: Ctx,
             key: Option<String>,
             ct: Option<String>,
             body: bytes::Bytes| async move {
                let endpoint = format!("workflow-{action}");
                let result = run_command(&ctx, &endpoint, key.as_deref(), &body, || {
                    act(&ctx, &workflow, &item, &action, ct.as_deref(), &body)
                })
                .await;
                finish(&ctx.request_id, result)
            },
        );
    projections.or(jobs).unify().or(workflows).unify().or(act).unify()
}
