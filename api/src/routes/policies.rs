//! Privacy-policy versions (P28): `POST /v1/policies` (support), `GET /v1/policies`,
//! `GET /v1/policies/current`.

use super::{command_input, finish, json, parse_json, query_params, run_command, CommandReply, Ctx};
use crate::auth::Role;
use crate::ApiError;
use chrono::NaiveDate;
use domain::policy::{PolicyCommand, PolicyDocument, PolicyError, PolicyEvent};
use eventlog::{dispatch, CommandError, Db, EventMetadata};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::collections::HashMap;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

/// The document a request means when it names none.
pub const DEFAULT_DOCUMENT: &str = "privacy-policy";
const PROJECTION: &str = "policy_versions";

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

/// `POST /v1/policies`: exactly one of `text` (hashed here, never stored) or `text_sha256`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    #[serde(default)]
    document_id: Option<String>,
    label: String,
    effective_date: NaiveDate,
    locale: String,
    #[serde(default)]
    text_sha256: Option<String>,
    #[serde(default)]
    text: Option<String>,
    summary_of_changes: String,
}

/// A published version, as the API shows it.
#[derive(Debug, Serialize)]
struct VersionView {
    document_id: String,
    version_number: i64,
    label: String,
    effective_date: String,
    locale: String,
    text_sha256: String,
    summary_of_changes: String,
    published_at: String,
}

fn document_id(raw: Option<&String>) -> Result<String, ApiError> {
    let id = raw.map(String::as_str).unwrap_or(DEFAULT_DOCUMENT);
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(id.to_string())
    } else {
        Err(ApiError::Validation(
            "document_id must be 1 to 64 lower-case letters, digits or dashes".into(),
        ))
    }
}

async fn publish(ctx: &Ctx, content_type: Option<&str>, body: &[u8]) -> Result<CommandReply, ApiError> {
    let caller = ctx.caller()?;
    caller.require(&[Role::Support])?;
    let request: PublishRequest = parse_json(content_type, body)?;
    let document_id = document_id(request.document_id.as_ref())?;
    let text_sha256 = match (request.text_sha256, request.text) {
        (Some(hash), None) => hash,
        (None, Some(text)) => hex::encode(Sha256::digest(text.as_bytes())),
        _ => {
            return Err(ApiError::Validation(
                "give exactly one of `text` (the policy text, hashed and not stored) or `text_sha256`".into(),
            ))
        }
    };
    let command = PolicyCommand::PublishVersion {
        label: request.label,
        effective_date: request.effective_date,
        locale: request.locale,
        text_sha256,
        summary_of_changes: request.summary_of_changes,
    };
    let metadata = EventMetadata {
        actor: caller.actor(),
        request_id: Some(ctx.request_id.clone()),
        causation_id: None,
    };
    let outcome = ctx
        .state
        .log
        .execute::<PolicyDocument>(&document_id, command, &metadata)
        .await
        .map_err(|e| match e {
            CommandError::Rejected(rule) => match rule {
                PolicyError::LabelAlreadyPublished(_)
                | PolicyError::TextAlreadyPublished(_)
                | PolicyError::OutOfOrder { .. } => ApiError::Conflict(rule.to_string()),
                _ => ApiError::Validation(rule.to_string()),
            },
            CommandError::Log(log) => log.into(),
        })?;
    let Some(PolicyEvent::PolicyVersionPublished(version)) = outcome.events.first() else {
        return Err(ApiError::Internal);
    };
    let position = outcome.position.map(|p| p.to_string()).unwrap_or_default();
    Ok(CommandReply {
        status: StatusCode::CREATED,
        body: serde_json::json!({
            "document_id": document_id,
            "version_number": version.version_number,
            "label": version.label,
            "effective_date": version.effective_date.to_string(),
            "locale": version.locale,
            "text_sha256": version.text_sha256,
            "summary_of_changes": version.summary_of_changes,
            "position": position,
        }),
    })
}

async fn list(ctx: &Ctx, query: HashMap<String, String>) -> Result<Response, ApiError> {
    ctx.caller()?;
    let query = query_params(&query, &["document_id", "locale", "min_position"])?;
    ctx.wait_for_position(PROJECTION, query.get("min_position")).await?;
    let document_id = document_id(query.get("document_id"))?;
    let versions = select_versions(
        ctx.state.log.db(),
        &document_id,
        query.get("locale").map(String::as_str),
        None,
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
    ctx.wait_for_position(PROJECTION, query.get("min_position")).await?;
    let document_id = document_id(query.get("document_id"))?;
    let today = chrono::Utc::now().date_naive().to_string();
    let locale = query.get("locale").map(String::as_str);
    let mut versions = select_versions(ctx.state.log.db(), &document_id, locale, Some(&today)).await?;
    // In force: the latest effective date not after today; on a tie, the later publication.
    versions.sort_by(|a, b| (&a.effective_date, a.version_number).cmp(&(&b.effective_date, b.version_number)));
    match versions.pop() {
        Some(version) => json(StatusCode::OK, &version),
        None => Err(ApiError::NotFound(match locale {
            Some(_) => "no version of this document is in force for that locale".into(),
            None => "no version of this document is in force yet".into(),
        })),
    }
}

async fn select_versions(
    db: &Db,
    document_id: &str,
    locale: Option<&str>,
    in_force_on: Option<&str>,
) -> Result<Vec<VersionView>, ApiError> {
    let sql = "SELECT document_id, version_number, label, effective_date, locale, text_sha256, summary_of_changes, published_at \
               FROM policy_versions WHERE document_id = $1 AND ($2 IS NULL OR locale = $2) \
               AND ($3 IS NULL OR effective_date <= $3) ORDER BY version_number";
    let rows = dispatch!(db, Db, |pool| {
        let rows = sqlx::query(sql)
            .bind(document_id)
            .bind(locale)
            .bind(in_force_on)
            .fetch_all(pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(VersionView {
                    document_id: row.try_get("document_id")?,
                    version_number: row.try_get::<i32, _>("version_number").map(i64::from)?,
                    label: row.try_get("label")?,
                    effective_date: row.try_get("effective_date")?,
                    locale: row.try_get("locale")?,
                    text_sha256: row.try_get("text_sha256")?,
                    summary_of_changes: row.try_get("summary_of_changes")?,
                    published_at: row.try_get("published_at")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?
    });
    Ok(rows)
}
