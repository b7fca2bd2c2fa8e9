//! Data-subject requests over HTTP (P22, P29): a person's own requests and export
//! (`/v1/me/privacy-requests…`), support acting on a person's behalf
//! (`/v1/support/…privacy-requests…`), and the auditor's deletion audit trail
//! (`/v1/audit/privacy-requests…`, `/v1/audit/people/{id}/erasure-certificates`). The use cases
//! are `app::privacy`: a request is carried out as soon as it is verified, and the answer is the
//! request as its own stream tells it.

use super::{command_input, finish, json, param, parse_json, query_params, reply, run_command, CommandReply, Ctx};
use crate::auth::Role;
use crate::ApiError;
use serde_json::json;
use std::collections::HashMap;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

/// Opens a request (the person's own, or support's on their behalf) and carries it out.
async fn open(
    ctx: &Ctx,
    on_behalf_of: Option<String>,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<CommandReply, ApiError> {
    let call = ctx.call_as(if on_behalf_of.is_some() {
        &[Role::Support]
    } else {
        &[Role::Person]
    })?;
    let request = parse_json(content_type, body)?;
    let view = app::privacy::open_request(ctx.app(), &call, on_behalf_of.as_deref(), request).await?;
    reply(StatusCode::CREATED, &view)
}

/// Support's actions on a request: verify, extend, deny, pause, resume, retry, manual-step.
async fn act(
    ctx: &Ctx,
    request: &str,
    action: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<CommandReply, ApiError> {
    let call = ctx.call_as(&[Role::Support])?;
    let input = if body.is_empty() {
        app::privacy::ActionRequest::default()
    } else {
        parse_json(content_type, body)?
    };
    let view = app::privacy::act(ctx.app(), &call, request, action, input).await?;
    reply(StatusCode::OK, &view)
}

/// The list of requests, for a person (their own) or staff (anyone's).
async fn list(
    ctx: &Ctx,
    roles: &[Role],
    query: HashMap<String, String>,
    filters: &[&str],
) -> Result<Response, ApiError> {
    let call = ctx.call()?;
    call.caller.require(roles)?;
    let mut allowed = vec!["min_position"];
    allowed.extend_from_slice(filters);
    let query = query_params(&query, &allowed)?;
    let requests = app::privacy::list(
        ctx.app(),
        &call,
        param(&query, "person"),
        param(&query, "state"),
        param(&query, "min_position"),
    )
    .await?;
    json(StatusCode::OK, &json!({ "requests": requests }))
}

/// One request, under a scope whose role the caller must have.
async fn show(ctx: &Ctx, role: Role, request: &str) -> Result<Response, ApiError> {
    let call = ctx.call()?;
    call.caller.require(&[role])?;
    json(StatusCode::OK, &app::privacy::show(ctx.app(), &call, request).await?)
}

/// The scope of a path (`me`, `support`, `audit`) and the role it needs.
fn scope_role(scope: &str, allowed: &[(&str, Role)]) -> Result<Role, ApiError> {
    allowed
        .iter()
        .find(|(name, _)| *name == scope)
        .map(|(_, role)| *role)
        .ok_or_else(|| ApiError::NotFound("no such route".into()))
}

pub fn routes(
    ctx: impl Filter<Extract = (Ctx,), Error = Rejection> + Clone + Send + Sync + 'static,
    max_body: u64,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    let open_mine = warp::path!("v1" / "me" / "privacy-requests")
        .and(warp::post())
        .and(ctx.clone())
        .and(command_input(max_body))
        .then(
            |ctx: Ctx, key: Option<String>, ct: Option<String>, body: bytes::Bytes| async move {
                let result = run_command(&ctx, "privacy-request", key.as_deref(), &body, || {
                    open(&ctx, None, ct.as_deref(), &body)
                })
                .await;
                finish(&ctx.request_id, result)
            },
        );
    let list_mine = warp::path!("v1" / "me" / "privacy-requests")
        .and(warp::get())
        .and(ctx.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(|ctx: Ctx, q: HashMap<String, String>| async move {
            let result = list(&ctx, &[Role::Person], q, &[]).await;
            finish(&ctx.request_id, result)
        });
    let show_mine = warp::path!("v1" / "me" / "privacy-requests" / String)
        .and(warp::get())
        .and(ctx.clone())
        .then(|id: String, ctx: Ctx| async move {
            let result = show(&ctx, Role::Person, &id).await;
            finish(&ctx.request_id, result)
        });
    let export_route = warp::path!("v1" / String / "privacy-requests" / String / "export")
        .and(warp::get())
        .and(ctx.clone())
        .then(|scope: String, id: String, ctx: Ctx| async move {
            let result = async {
                let role = scope_role(&scope, &[("me", Role::Person), ("support", Role::Support)])?;
                let call = ctx.call()?;
                call.caller.require(&[role])?;
                json(StatusCode::OK, &app::privacy::export_of(ctx.app(), &call, &id).await?)
            }
            .await;
            finish(&ctx.request_id, result)
        });
    let open_for = warp::path!("v1" / "support" / "people" / String / "privacy-requests")
        .and(warp::post())
        .and(ctx.clone())
        .and(command_input(max_body))
        .then(
            |person: String, ctx: Ctx, key: Option<String>, ct: Option<String>, body: bytes::Bytes| async move {
                let result = run_command(&ctx, "support-privacy-request", key.as_deref(), &body, || {
                    open(&ctx, Some(person.clone()), ct.as_deref(), &body)
                })
                .await;
                finish(&ctx.request_id, result)
            },
        );
    let action = warp::path!("v1" / "support" / "privacy-requests" / String / String)
        .and(warp::post())
        .and(ctx.clone())
        .and(command_input(max_body))
        .then(
            |id: String, verb: String, ctx: Ctx, key: Option<String>, ct: Option<String>, body: bytes::Bytes| async move {
                let endpoint = format!("privacy-{verb}");
                let result = run_command(&ctx, &endpoint, key.as_deref(), &body, || {
                    act(&ctx, &id, &verb, ct.as_deref(), &body)
                })
                .await;
                finish(&ctx.request_id, result)
            },
        );
    let show_any = warp::path!("v1" / String / "privacy-requests" / String)
        .and(warp::get())
        .and(ctx.clone())
        .then(|scope: String, id: String, ctx: Ctx| async move {
            let result = async {
                let role = scope_role(&scope, &[("support", Role::Support), ("audit", Role::Auditor)])?;
                show(&ctx, role, &id).await
            }
            .await;
            finish(&ctx.request_id, result)
        });
    let audit_list = warp::path!("v1" / "audit" / "privacy-requests")
        .and(warp::get())
        .and(ctx.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(|ctx: Ctx, q: HashMap<String, String>| async move {
            let result = list(&ctx, &[Role::Auditor, Role::Support], q, &["person", "state"]).await;
            finish(&ctx.request_id, result)
        });
    let audit_certificates = warp::path!("v1" / "audit" / "people" / String / "erasure-certificates")
        .and(warp::get())
        .and(ctx)
        .and(warp::query::<HashMap<String, String>>())
        .then(|person: String, ctx: Ctx, q: HashMap<String, String>| async move {
            let result = async {
                let call = ctx.call()?;
                let q = query_params(&q, &["min_position"])?;
                json(
                    StatusCode::OK,
                    &app::privacy::certificates(ctx.app(), &call, &person, param(&q, "min_position")).await?,
                )
            }
            .await;
            finish(&ctx.request_id, result)
        });
    open_mine
        .or(list_mine)
        .unify()
        .or(export_route)
        .unify()
        .or(show_mine)
        .unify()
        .or(open_for)
        .unify()
        .or(action)
        .unify()
        .or(show_any)
        .unify()
        .or(audit_list)
        .unify()
        .or(audit_certificates)
        .unify()
}
