//! People: sign-up from the auth provider (service role), `GET`/`PATCH /v1/me`, closing one's
//! account (`POST /v1/me/close`), one's own consents, policy acceptances and Facebook click
//! ids; support acting on a person's behalf (consents, marking a child's account); the
//! auditor's consent replay and receipts.
//!
//! The use cases are `app::people` and `app::consent`: personal fields are sealed there before
//! any command sees them, and opened only to answer; a destroyed key shows them as erased.

use super::{command_input, finish, json, param, parse_json, query_params, reply, run_command, CommandReply, Ctx};
use crate::auth::Role;
use crate::ApiError;
use chrono::{DateTime, Utc};
use domain::consent::Evidence;
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

/// What the request showed about where it came from (for consent evidence).
#[derive(Clone, Debug)]
struct Origin {
    user_agent: Option<String>,
    remote: Option<SocketAddr>,
}

impl Origin {
    fn evidence(&self) -> Evidence {
        Evidence::from_request(self.user_agent.as_deref(), self.remote.map(|a| a.ip()))
    }
}

fn origin() -> impl Filter<Extract = (Origin,), Error = Rejection> + Clone + Send + Sync + 'static {
    warp::header::optional::<String>("user-agent")
        .and(warp::ext::optional::<crate::server::ClientAddr>())
        .map(|user_agent, remote: Option<crate::server::ClientAddr>| Origin {
            user_agent,
            remote: remote.map(|a| a.0),
        })
}

pub fn routes(
    ctx: impl Filter<Extract = (Ctx,), Error = Rejection> + Clone + Send + Sync + 'static,
    max_body: u64,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    let sign_up = warp::path!("v1" / "accounts")
        .and(warp::post())
        .and(ctx.clone())
        .and(command_input(max_body))
        .then(
            |ctx: Ctx, key: Option<String>, ct: Option<String>, body: bytes::Bytes| async move {
                let result = run_command(&ctx, "sign-up", key.as_deref(), &body, || {
                    sign_up(&ctx, ct.as_deref(), &body)
                })
                .await;
                finish(&ctx.request_id, result)
            },
        );
    let me = warp::path!("v1" / "me")
        .and(warp::get())
        .and(ctx.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(|ctx: Ctx, q| async move { finish(&ctx.request_id, me(&ctx, q).await) });
    let rectify = warp::path!("v1" / "me")
        .and(warp::patch())
        .and(ctx.clone())
        .and(command_input(max_body))
        .then(
            |ctx: Ctx, key: Option<String>, ct: Option<String>, body: bytes::Bytes| async move {
                let result = run_command(&ctx, "rectify", key.as_deref(), &body, || {
                    rectify(&ctx, ct.as_deref(), &body)
                })
                .await;
                finish(&ctx.request_id, result)
            },
        );
    // No body: closing takes nothing, so a bare `POST` (no Content-Length) is fine.
    let close = warp::path!("v1" / "me" / "close")
        .and(warp::post())
        .and(ctx.clone())
        .and(warp::header::optional::<String>("idempotency-key"))
        .then(|ctx: Ctx, key: Option<String>| async move {
            let result = run_command(&ctx, "close-account", key.as_deref(), b"", || close(&ctx)).await;
            finish(&ctx.request_id, result)
        });
    let my_consents = warp::path!("v1" / "me" / "consents")
        .and(warp::get())
        .and(ctx.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(|ctx: Ctx, q| async move {
            let result = current_consents(&ctx, q).await;
            finish(&ctx.request_id, result)
        });
    let change_consent_route = warp::path!("v1" / "me" / "consents")
        .and(warp::post())
        .and(ctx.clone())
        .and(origin())
        .and(command_input(max_body))
        .then(
            |ctx: Ctx, origin: Origin, key: Option<String>, ct: Option<String>, body: bytes::Bytes| async move {
                let result = run_command(&ctx, "consent", key.as_deref(), &body, || {
                    change_consent(&ctx, None, origin, ct.as_deref(), &body)
                })
                .await;
                finish(&ctx.request_id, result)
            },
        );
    let accept_policy = warp::path!("v1" / "me" / "policy-acceptances")
        .and(warp::post())
        .and(ctx.clone())
        .and(origin())
        .and(command_input(max_body))
        .then(
            |ctx: Ctx, origin: Origin, key: Option<String>, ct: Option<String>, body: bytes::Bytes| async move {
                let result = run_command(&ctx, "accept-policy", key.as_deref(), &body, || {
                    accept_policy(&ctx, origin, ct.as_deref(), &body)
                })
                .await;
                finish(&ctx.request_id, result)
            },
        );
    let attribution = warp::path!("v1" / "me" / "attribution-ids")
        .and(warp::post())
        .and(ctx.clone())
        .and(command_input(max_body))
        .then(
            |ctx: Ctx, key: Option<String>, ct: Option<String>, body: bytes::Bytes| async move {
                let result = run_command(&ctx, "attribution-ids", key.as_deref(), &body, || {
                    record_attribution_ids(&ctx, ct.as_deref(), &body)
                })
                .await;
                finish(&ctx.request_id, result)
            },
        );
    let support_consent =
        warp::path!("v1" / "support" / "people" / String / "consents")
            .and(warp::post())
            .and(ctx.clone())
            .and(origin())
            .and(command_input(max_body))
            .then(
                |person: String,
                 ctx: Ctx,
                 origin: Origin,
                 key: Option<String>,
                 ct: Option<String>,
                 body: bytes::Bytes| async move {
                    let result = run_command(&ctx, "support-consent", key.as_deref(), &body, || {
                        change_consent(&ctx, Some(person.clone()), origin, ct.as_deref(), &body)
                    })
                    .await;
                    finish(&ctx.request_id, result)
                },
            );
    let child = warp::path!("v1" / "support" / "people" / String / "child")
        .and(warp::post())
        .and(ctx.clone())
        .and(command_input(max_body))
        .then(
            |person: String, ctx: Ctx, key: Option<String>, ct: Option<String>, body: bytes::Bytes| async move {
                let result = run_command(&ctx, "mark-child", key.as_deref(), &body, || {
                    mark_as_child(&ctx, &person, ct.as_deref(), &body)
                })
                .await;
                finish(&ctx.request_id, result)
            },
        );
    let replay = warp::path!("v1" / "audit" / "people" / String / "consents")
        .and(warp::get())
        .and(ctx.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(
            |person: String, ctx: Ctx, q| async move { finish(&ctx.request_id, audit_replay(&ctx, &person, q).await) },
        );
    let receipt = warp::path!("v1" / "audit" / "people" / String / "consents" / "receipts" / String)
        .and(warp::get())
        .and(ctx)
        .then(|person: String, event_id: String, ctx: Ctx| async move {
            let result = async {
                let call = ctx.call()?;
                json(
                    StatusCode::OK,
                    &app::consent::audit_receipt(ctx.app(), &call, &person, &event_id).await?,
                )
            }
            .await;
            finish(&ctx.request_id, result)
        });
    sign_up
        .or(me)
        .unify()
        .or(rectify)
        .unify()
        .or(close)
        .unify()
        .or(my_consents)
        .unify()
        .or(change_consent_route)
        .unify()
        .or(accept_policy)
        .unify()
        .or(attribution)
        .unify()
        .or(support_consent)
        .unify()
        .or(child)
        .unify()
        .or(replay)
        .unify()
        .or(receipt)
        .unify()
}

async fn sign_up(ctx: &Ctx, content_type: Option<&str>, body: &[u8]) -> Result<CommandReply, ApiError> {
    let call = ctx.call_as(&[Role::Service])?;
    let done = app::people::sign_up(ctx.app(), &call, parse_json(content_type, body)?).await?;
    reply(StatusCode::CREATED, &done)
}

async fn me(ctx: &Ctx, query: HashMap<String, String>) -> Result<Response, ApiError> {
    let call = ctx.call()?;
    let query = query_params(&query, &["min_position"])?;
    json(
        StatusCode::OK,
        &app::people::me(ctx.app(), &call, param(&query, "min_position")).await?,
    )
}

async fn rectify(ctx: &Ctx, content_type: Option<&str>, body: &[u8]) -> Result<CommandReply, ApiError> {
    let call = ctx.call_as(&[Role::Person])?;
    let done = app::people::rectify(ctx.app(), &call, parse_json(content_type, body)?).await?;
    reply(StatusCode::OK, &done)
}

/// `POST /v1/me/close`: the signed-in person closes their account; it is erased once
/// `DYNAMOI_RETENTION_CLOSED_ACCOUNT_DAYS` have passed (the retention job, P24).
async fn close(ctx: &Ctx) -> Result<CommandReply, ApiError> {
    let call = ctx.call()?;
    reply(StatusCode::OK, &app::people::close(ctx.app(), &call).await?)
}

async fn current_consents(ctx: &Ctx, query: HashMap<String, String>) -> Result<Response, ApiError> {
    let call = ctx.call()?;
    let query = query_params(&query, &["min_position"])?;
    let person = call.caller.subject.clone();
    let consents = app::consent::current(ctx.app(), &person, param(&query, "min_position")).await?;
    json(StatusCode::OK, &json!({ "person_id": person, "consents": consents }))
}

/// Grants or withdraws one purpose: for the caller, or (support) for `on_behalf_of`.
async fn change_consent(
    ctx: &Ctx,
    on_behalf_of: Option<String>,
    origin: Origin,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<CommandReply, ApiError> {
    let call = ctx.call_as(if on_behalf_of.is_some() {
        &[Role::Support]
    } else {
        &[Role::Person]
    })?;
    let request = parse_json(content_type, body)?;
    let changed = app::consent::change(ctx.app(), &call, on_behalf_of.as_deref(), origin.evidence(), request).await?;
    reply(StatusCode::OK, &changed)
}

async fn accept_policy(
    ctx: &Ctx,
    origin: Origin,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<CommandReply, ApiError> {
    let call = ctx.call_as(&[Role::Person])?;
    let request = parse_json(content_type, body)?;
    let recorded = app::consent::accept_policy(ctx.app(), &call, origin.evidence(), request).await?;
    reply(StatusCode::OK, &recorded)
}

async fn record_attribution_ids(ctx: &Ctx, content_type: Option<&str>, body: &[u8]) -> Result<CommandReply, ApiError> {
    let call = ctx.call_as(&[Role::Person])?;
    let request = parse_json(content_type, body)?;
    reply(
        StatusCode::OK,
        &app::consent::record_attribution_ids(ctx.app(), &call, request).await?,
    )
}

async fn mark_as_child(
    ctx: &Ctx,
    person: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<CommandReply, ApiError> {
    let call = ctx.call_as(&[Role::Support])?;
    let request = parse_json(content_type, body)?;
    reply(
        StatusCode::OK,
        &app::people::mark_as_child(ctx.app(), &call, person, request).await?,
    )
}

async fn audit_replay(ctx: &Ctx, person: &str, query: HashMap<String, String>) -> Result<Response, ApiError> {
    let call = ctx.call()?;
    let query = query_params(&query, &["as_of"])?;
    let as_of = match param(&query, "as_of") {
        Some(raw) => Some(
            DateTime::parse_from_rfc3339(raw)
                .map_err(|_| {
                    ApiError::InvalidRequest("as_of must be an RFC 3339 instant such as 2026-11-01T12:00:00Z".into())
                })?
                .with_timezone(&Utc),
        ),
        None => None,
    };
    json(
        StatusCode::OK,
        &app::consent::audit_replay(ctx.app(), &call, person, as_of).await?,
    )
}
