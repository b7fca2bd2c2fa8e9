//! Data-subject requests over HTTP (P22, P29): a person's own requests and export
//! (`/v1/me/privacy-requests…`), support acting on a person's behalf
//! (`/v1/support/…privacy-requests…`), and the auditor's deletion audit trail
//! (`/v1/audit/privacy-requests…`, `/v1/audit/people/{id}/erasure-certificates`).
//!
//! Requests are carried out as soon as they are verified, inside the request that verified
//! them ([`crate::privacy::run`]); the answer is the request as its own stream tells it.

use super::people::{bounded, person_id, seal, valid_avatar, valid_email};
use super::{command_input, finish, json, parse_json, query_params, run_command, CommandReply, Ctx};
use crate::auth::{Caller, Role};
use crate::privacy::{self, Services};
use crate::ApiError;
use chrono::{DateTime, Utc};
use domain::privacy::{Opener, PrivacyCommand, Rectification, RequestKind, StepOutcome};
use eventlog::{dispatch, Db};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use vault::KeyRef;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

/// What opening a request takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenRequest {
    kind: RequestKind,
    /// Support only: how the person asked (an email to privacy@, a phone call…).
    reason: Option<String>,
    /// Rectify only: the new values.
    name: Option<String>,
    email: Option<String>,
    avatar_url: Option<String>,
}

/// A support action on a request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionRequest {
    /// verify: how the identity was checked.
    method: Option<String>,
    /// extend, deny, pause: why.
    reason: Option<String>,
    /// extend: the new deadline (RFC 3339).
    until: Option<DateTime<Utc>>,
    /// manual-step: which step, and what was done.
    step: Option<String>,
    evidence: Option<String>,
}

fn services(ctx: &Ctx) -> Services<'_> {
    Services::of(&ctx.state)
}

fn request_id(raw: &str) -> Result<String, ApiError> {
    let ok = raw.len() <= 64 && raw.starts_with("pr-") && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(raw.to_string())
    } else {
        Err(ApiError::NotFound("there is no such privacy request".into()))
    }
}

fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, ApiError> {
    let value = value
        .as_deref()
        .ok_or_else(|| ApiError::Validation(format!("{name} is required")))?;
    bounded(name, value, 500)?;
    Ok(value)
}

/// The request as its stream tells it, refused (404) unless it is `person`'s when `person` is given.
async fn view_for(ctx: &Ctx, request: &str, person: Option<&str>) -> Result<Value, ApiError> {
    let view = privacy::request_view(&ctx.state.log, &request_id(request)?).await?;
    if person.is_some_and(|p| view["person_id"] != json!(p)) {
        return Err(ApiError::NotFound("there is no such privacy request".into()));
    }
    Ok(view)
}

async fn rectification(ctx: &Ctx, person: &str, body: &OpenRequest) -> Result<Option<Rectification>, ApiError> {
    if body.kind != RequestKind::Rectify {
        if body.name.is_some() || body.email.is_some() || body.avatar_url.is_some() {
            return Err(ApiError::Validation(
                "name, email and avatar_url are taken by a rectify request only".into(),
            ));
        }
        return Ok(None);
    }
    let key = KeyRef::person(person);
    let vault = &ctx.state.vault;
    let mut values = Rectification::default();
    if let Some(name) = &body.name {
        bounded("name", name, 200)?;
        values.name = Some(seal(vault, &key, "name", name).await?);
    }
    if let Some(email) = &body.email {
        valid_email(email)?;
        values.email = Some(seal(vault, &key, "email", email).await?);
    }
    if let Some(url) = &body.avatar_url {
        valid_avatar(url)?;
        values.avatar_url = Some(seal(vault, &key, "avatar_url", url).await?);
    }
    if values.name.is_none() && values.email.is_none() && values.avatar_url.is_none() {
        return Err(ApiError::Validation(
            "a rectify request needs at least one of name, email or avatar_url".into(),
        ));
    }
    Ok(Some(values))
}

/// Opens a request (the person's own, or support's on their behalf), carries it out when it is
/// verified, and answers with it.
async fn open(
    ctx: &Ctx,
    on_behalf_of: Option<String>,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<CommandReply, ApiError> {
    let caller = ctx.caller()?;
    let request: OpenRequest = parse_json(content_type, body)?;
    let (person, opener) = match on_behalf_of {
        None => {
            caller.require(&[Role::Person])?;
            if request.reason.is_some() {
                return Err(ApiError::Validation("reason is for support's requests only".into()));
            }
            (person_id(&caller.subject)?, Opener::Person)
        }
        Some(person) => {
            caller.require(&[Role::Support])?;
            let reason = required(&request.reason, "reason")?.to_string();
            (
                person_id(&person)?,
                Opener::Support {
                    agent: caller.actor(),
                    reason,
                },
            )
        }
    };
    let values = rectification(ctx, &person, &request).await?;
    let metadata = ctx.metadata(&caller);
    let services = services(ctx);
    let id = privacy::open(&services, &person, request.kind, opener, values, &metadata).await?;
    privacy::run(&services, &id, &metadata).await?;
    Ok(CommandReply {
        status: StatusCode::CREATED,
        body: privacy::request_view(&ctx.state.log, &id).await?,
    })
}

/// Support's actions on a request: verify, extend, deny, pause, resume, retry, manual-step.
async fn act(
    ctx: &Ctx,
    request: &str,
    action: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<CommandReply, ApiError> {
    let caller = ctx.caller()?;
    caller.require(&[Role::Support])?;
    let id = request_id(request)?;
    let input: ActionRequest = if body.is_empty() {
        serde_json::from_str("{}").map_err(|_| ApiError::Internal)?
    } else {
        parse_json(content_type, body)?
    };
    let metadata = ctx.metadata(&caller);
    let log = &ctx.state.log;
    let now = Utc::now();
    let command = match action {
        "verify" => {
            privacy::verify(log, &id, required(&input.method, "method")?, &metadata).await?;
            None
        }
        "extend" => Some(PrivacyCommand::Extend {
            reason: required(&input.reason, "reason")?.into(),
            until: input
                .until
                .ok_or_else(|| ApiError::Validation("until is required (RFC 3339)".into()))?,
        }),
        "deny" => Some(PrivacyCommand::Deny {
            reason: required(&input.reason, "reason")?.into(),
            at: now,
        }),
        "pause" => Some(PrivacyCommand::Pause {
            reason: required(&input.reason, "reason")?.into(),
            at: now,
        }),
        "resume" => Some(PrivacyCommand::Resume { at: now }),
        "retry" => None,
        "manual-step" => Some(PrivacyCommand::CompleteStep {
            step: required(&input.step, "step")?.into(),
            outcome: StepOutcome::Manual {
                evidence: required(&input.evidence, "evidence")?.into(),
                by: caller.actor(),
            },
            at: now,
        }),
        _ => return Err(ApiError::NotFound("no such route".into())),
    };
    if let Some(command) = command {
        privacy::command(log, &id, command, &metadata).await?;
    }
    // Whatever the action, carry on with what can run now (a no-op when pending, paused or finished).
    privacy::run(&services(ctx), &id, &metadata).await?;
    Ok(CommandReply {
        status: StatusCode::OK,
        body: privacy::request_view(log, &id).await?,
    })
}

/// The export of a completed access request.
async fn export(ctx: &Ctx, caller: &Caller, request: &str) -> Result<Response, ApiError> {
    let person = (caller.role == Role::Person).then_some(caller.subject.as_str());
    let view = view_for(ctx, request, person).await?;
    if view["kind"] != json!("access") {
        return Err(ApiError::Conflict("only an access request has an export".into()));
    }
    if view["state"] != json!("completed") {
        return Err(ApiError::Conflict(
            "the access request is not completed yet; its steps show where it stands".into(),
        ));
    }
    let person = view["person_id"].as_str().ok_or(ApiError::Internal)?;
    json(StatusCode::OK, &privacy::export(&services(ctx), person).await?)
}

/// A `privacy_requests` row: id, person, kind, state, opened by, opened at, deadline, completed at.
type RequestRow = (String, String, String, String, String, String, String, Option<String>);
/// A `privacy_request_steps` row: step, status, attempts, started, finished, outcome, evidence.
type StepRow = (
    String,
    String,
    i32,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Requests from the read model (the audit trail), newest first, with their steps.
async fn list(ctx: &Ctx, person: Option<&str>, state: Option<&str>) -> Result<Value, ApiError> {
    let db = ctx.state.log.db();
    let rows: Vec<RequestRow> = dispatch!(db, Db, |pool| {
        sqlx::query_as(
            "SELECT request_id, person_id, kind, state, opened_by, opened_at, deadline, completed_at \
             FROM privacy_requests WHERE (CAST($1 AS TEXT) IS NULL OR person_id = $1) AND (CAST($2 AS TEXT) IS NULL OR state = $2) \
             ORDER BY opened_at DESC LIMIT 500",
        )
        .bind(person)
        .bind(state)
        .fetch_all(pool)
        .await?
    });
    let mut requests = Vec::with_capacity(rows.len());
    for (id, person_id, kind, state, opened_by, opened_at, deadline, completed_at) in rows {
        let steps: Vec<StepRow> = dispatch!(db, Db, |pool| {
            sqlx::query_as(
                "SELECT step, status, attempts, started_at, finished_at, outcome, evidence \
                     FROM privacy_request_steps WHERE request_id = $1 ORDER BY ordinal",
            )
            .bind(&id)
            .fetch_all(pool)
            .await?
        });
        let overdue =
            completed_at.is_none() && deadline < Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        requests.push(json!({
            "request_id": id,
            "person_id": person_id,
            "kind": kind,
            "state": state,
            "opened_by": opened_by,
            "opened_at": opened_at,
            "deadline": deadline,
            "overdue": overdue,
            "completed_at": completed_at,
            "steps": steps.into_iter().map(|(step, status, attempts, started_at, finished_at, outcome, evidence)| json!({
                "step": step, "status": status, "attempts": attempts, "started_at": started_at,
                "finished_at": finished_at, "outcome": outcome, "evidence": evidence,
            })).collect::<Vec<_>>(),
        }));
    }
    Ok(json!({ "requests": requests }))
}

/// A person's erasure certificates, each with its chain verified.
async fn certificates(ctx: &Ctx, person: &str) -> Result<Value, ApiError> {
    let db = ctx.state.log.db();
    let rows: Vec<(String, String, String, String, Option<String>)> = dispatch!(db, Db, |pool| {
        sqlx::query_as(
            "SELECT request_id, issued_at, certificate, event_id, chain_hash FROM erasure_certificates \
             WHERE person_id = $1 ORDER BY issued_at",
        )
        .bind(person)
        .fetch_all(pool)
        .await?
    });
    let mut certificates = Vec::with_capacity(rows.len());
    for (request, issued_at, certificate, event_id, chain_hash) in rows {
        let verification = eventlog::chain::verify_stream(
            db,
            <domain::privacy::PrivacyRequest as domain::Aggregate>::TYPE,
            &request,
        )
        .await?;
        certificates.push(json!({
            "request_id": request,
            "issued_at": issued_at,
            "certificate": serde_json::from_str::<Value>(&certificate).map_err(|_| ApiError::Internal)?,
            "event_id": event_id,
            "chain_hash": chain_hash,
            "chain": {
                "stream": format!("{}/{request}", <domain::privacy::PrivacyRequest as domain::Aggregate>::TYPE),
                "verified": verification.broken.is_none(),
                "events": verification.events,
            },
        }));
    }
    if certificates.is_empty() {
        return Err(ApiError::NotFound("no erasure certificate for this person".into()));
    }
    Ok(json!({ "person_id": person, "certificates": certificates }))
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
            let result = async {
                let caller = ctx.caller()?;
                caller.require(&[Role::Person])?;
                let q = query_params(&q, &["min_position"])?;
                ctx.wait_for_position("privacy_requests", q.get("min_position")).await?;
                json(StatusCode::OK, &list(&ctx, Some(&caller.subject), None).await?)
            }
            .await;
            finish(&ctx.request_id, result)
        });
    let show_mine = warp::path!("v1" / "me" / "privacy-requests" / String)
        .and(warp::get())
        .and(ctx.clone())
        .then(|id: String, ctx: Ctx| async move {
            let result = async {
                let caller = ctx.caller()?;
                caller.require(&[Role::Person])?;
                json(StatusCode::OK, &view_for(&ctx, &id, Some(&caller.subject)).await?)
            }
            .await;
            finish(&ctx.request_id, result)
        });
    let export_route = warp::path!("v1" / String / "privacy-requests" / String / "export")
        .and(warp::get())
        .and(ctx.clone())
        .then(|scope: String, id: String, ctx: Ctx| async move {
            let result = async {
                let caller = ctx.caller()?;
                match scope.as_str() {
                    "me" => caller.require(&[Role::Person])?,
                    "support" => caller.require(&[Role::Support])?,
                    _ => return Err(ApiError::NotFound("no such route".into())),
                }
                export(&ctx, &caller, &id).await
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
                let caller = ctx.caller()?;
                let mut view = match scope.as_str() {
                    "support" => {
                        caller.require(&[Role::Support])?;
                        view_for(&ctx, &id, None).await?
                    }
                    "audit" => {
                        caller.require(&[Role::Auditor])?;
                        view_for(&ctx, &id, None).await?
                    }
                    _ => return Err(ApiError::NotFound("no such route".into())),
                };
                let stream_id = request_id(&id)?;
                let verification = eventlog::chain::verify_stream(
                    ctx.state.log.db(),
                    <domain::privacy::PrivacyRequest as domain::Aggregate>::TYPE,
                    &stream_id,
                )
                .await?;
                view["chain"] = json!({ "verified": verification.broken.is_none(), "events": verification.events });
                json(StatusCode::OK, &view)
            }
            .await;
            finish(&ctx.request_id, result)
        });
    let audit_list = warp::path!("v1" / "audit" / "privacy-requests")
        .and(warp::get())
        .and(ctx.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(|ctx: Ctx, q: HashMap<String, String>| async move {
            let result = async {
                ctx.caller()?.require(&[Role::Auditor, Role::Support])?;
                let q = query_params(&q, &["person", "state", "min_position"])?;
                ctx.wait_for_position("privacy_requests", q.get("min_position")).await?;
                let person = q.get("person").map(|p| person_id(p)).transpose()?;
                json(
                    StatusCode::OK,
                    &list(&ctx, person.as_deref(), q.get("state").map(String::as_str)).await?,
                )
            }
            .await;
            finish(&ctx.request_id, result)
        });
    let audit_certificates = warp::path!("v1" / "audit" / "people" / String / "erasure-certificates")
        .and(warp::get())
        .and(ctx)
        .and(warp::query::<HashMap<String, String>>())
        .then(|person: String, ctx: Ctx, q: HashMap<String, String>| async move {
            let result = async {
                ctx.caller()?.require(&[Role::Auditor])?;
                let q = query_params(&q, &["min_position"])?;
                ctx.wait_for_position("privacy_requests", q.get("min_position")).await?;
                json(StatusCode::OK, &certificates(&ctx, &person_id(&person)?).await?)
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
