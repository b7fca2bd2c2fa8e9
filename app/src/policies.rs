//! Privacy-policy versions (P28): support publishes a version (the text hashed, never stored);
//! anyone signed in lists them or reads the version in force today.

use crate::{App, AppError, Call, Role};
use chrono::NaiveDate;
use domain::policy::{PolicyCommand, PolicyDocument, PolicyError, PolicyEvent};
use eventlog::CommandError;
use projections::read_models::policy_versions::{self, VersionRow};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The document a request means when it names none.
pub const DEFAULT_DOCUMENT: &str = "privacy-policy";
const PROJECTION: &str = "policy_versions";

/// What publishing a version takes: exactly one of `text` (hashed here, never stored) or
/// `text_sha256`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    #[serde(default)]
    pub document_id: Option<String>,
    pub label: String,
    pub effective_date: NaiveDate,
    pub locale: String,
    #[serde(default)]
    pub text_sha256: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    pub summary_of_changes: String,
}

/// A version as published.
#[derive(Clone, Debug, Serialize)]
pub struct Published {
    pub document_id: String,
    pub version_number: u32,
    pub label: String,
    pub effective_date: String,
    pub locale: String,
    pub text_sha256: String,
    pub summary_of_changes: String,
    pub position: String,
}

/// Checks a document id (default: the privacy policy).
pub fn document_id(raw: Option<&str>) -> Result<String, AppError> {
    let id = raw.unwrap_or(DEFAULT_DOCUMENT);
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(id.to_string())
    } else {
        Err(AppError::Validation(
            "document_id must be 1 to 64 lower-case letters, digits or dashes".into(),
        ))
    }
}

/// Support publishes a version of a policy document.
pub async fn publish(app: &App, call: &Call, request: PublishRequest) -> Result<Published, AppError> {
    call.caller.require(&[Role::Support])?;
    let document_id = document_id(request.document_id.as_deref())?;
    let text_sha256 = match (request.text_sha256, request.text) {
        (Some(hash), None) => hash,
        (None, Some(text)) => hex::encode(Sha256::digest(text.as_bytes())),
        _ => {
            return Err(AppError::Validation(
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
    let outcome = app
        .log
        .execute::<PolicyDocument>(&document_id, command, &call.metadata())
        .await
        .map_err(|e| match e {
            CommandError::Rejected(rule) => match rule {
                PolicyError::LabelAlreadyPublished(_)
                | PolicyError::TextAlreadyPublished(_)
                | PolicyError::OutOfOrder { .. } => AppError::Conflict(rule.to_string()),
                _ => AppError::Validation(rule.to_string()),
            },
            CommandError::Log(log) => log.into(),
        })?;
    let Some(PolicyEvent::PolicyVersionPublished(version)) = outcome.events.first() else {
        return Err(crate::error::corrupt("the published version's event"));
    };
    Ok(Published {
        document_id,
        version_number: version.version_number,
        label: version.label.clone(),
        effective_date: version.effective_date.to_string(),
        locale: version.locale.clone(),
        text_sha256: version.text_sha256.clone(),
        summary_of_changes: version.summary_of_changes.clone(),
        position: outcome.position.map(|p| p.to_string()).unwrap_or_default(),
    })
}

/// The versions of a document (of one locale when given), by number.
pub async fn list(
    app: &App,
    document: Option<&str>,
    locale: Option<&str>,
    min_position: Option<&str>,
) -> Result<(String, Vec<VersionRow>), AppError> {
    app.wait_for(PROJECTION, min_position).await?;
    let document_id = document_id(document)?;
    let versions = policy_versions::versions(app.log.db(), &document_id, locale, None).await?;
    Ok((document_id, versions))
}

/// The version in force today: the latest effective date not after today (for `locale` when
/// given); on a tie, the later publication.
pub async fn current(
    app: &App,
    document: Option<&str>,
    locale: Option<&str>,
    min_position: Option<&str>,
) -> Result<VersionRow, AppError> {
    app.wait_for(PROJECTION, min_position).await?;
    let document_id = document_id(document)?;
    let today = app.now().date_naive();
    let mut versions = policy_versions::versions(app.log.db(), &document_id, locale, Some(today)).await?;
    versions.sort_by(|a, b| (&a.effective_date, a.version_number).cmp(&(&b.effective_date, b.version_number)));
    versions.pop().ok_or_else(|| {
        AppError::NotFound(match locale {
            Some(_) => "no version of this document is in force for that locale".into(),
            None => "no version of this document is in force yet".into(),
        })
    })
}
