//! PostHog's private API, as erasure needs it (P4, P22): a person found by distinct id and deleted
//! with their events and session recordings.
//!
//! PostHog's *Data deletion* guide: find the person with the persons endpoint filtered by
//! `distinct_id`, then delete them by id with `delete_events=true` (events are deleted by a
//! batched task PostHog runs weekly, not at once); its *People* page adds `delete_recordings=true`
//! for session recordings. So, with a personal API key (scope `person:write`) as a bearer token:
//!
//! - `GET {base}/api/projects/{project_id}/persons/?distinct_id=…` → `{"results": [{"id",
//!   "uuid", "distinct_ids", …}], "next", "previous"}` (an empty `results` when no person has
//!   that distinct id);
//! - `DELETE {base}/api/projects/{project_id}/persons/{uuid}/?delete_events=true&delete_recordings=true`
//!   → 202 (older versions 204), no body.
//!
//! `base` is the app host of the PostHog instance (`https://us.posthog.com`, `https://eu.posthog.com`
//! or a self-hosted one), not the ingestion host (`*.i.posthog.com`). A DELETE answered 404 (a
//! retry after a lost answer, or a concurrent deletion) counts as deleted. The
//! `bulk_delete` endpoint (`POST …/persons/bulk_delete/` with `distinct_ids`) is not used: it
//! answers 202 whether or not a person matched, so "not found" could not be told apart.
//!
//! **Errors** (Django REST framework: `{"type", "code", "detail", "attr"}`; `detail` can quote
//! what we sent, so only `code` is kept): 401 → [`ConnectorError::InvalidToken`] (our key is
//! wrong: alert); 403 (`permission_denied`, e.g. a key without `person:write`) →
//! [`ConnectorError::Client`]; 429 (`throttled`) → retried after `Retry-After`; 404 on the
//! listing (a wrong project id or base URL) → [`ConnectorError::NotFound`], which is an error and
//! never [`PostHogDeletion::NotFound`]; 5xx → retried.
//!
//! The distinct id identifies a person: it travels in the query string to PostHog only, and no
//! log line, error or `Debug` output holds it or the API key.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::ConnectorError;
use crate::http::{check_id, lenient, Failure, HttpClient, HttpSettings, Verdict};
use crate::Url;

/// PostHog's bound on a distinct id.
pub const MAX_DISTINCT_ID_LEN: usize = 200;
/// Most persons one call deletes (one distinct id belongs to one person; this bounds a surprise).
const MAX_PERSONS: usize = 100;

/// What [`PostHog::delete_person`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostHogDeletion {
    /// The person (`persons` of them, normally 1) holding the distinct id was deleted; PostHog
    /// queued the deletion of their events and recordings.
    Deleted { persons: usize },
    /// No person holds the distinct id (never seen, or deleted already): nothing to delete.
    NotFound,
}

/// The PostHog client of one project.
pub struct PostHog {
    http: HttpClient,
    project_id: String,
    personal_api_key: SecretString,
}

impl fmt::Debug for PostHog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostHog")
            .field("http", &self.http)
            .field("project_id", &self.project_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct PersonsPage {
    #[serde(default)]
    results: Vec<PersonRow>,
}

#[derive(Deserialize)]
struct PersonRow {
    #[serde(default, deserialize_with = "lenient")]
    uuid: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    #[serde(default, deserialize_with = "lenient")]
    code: Option<String>,
}

impl PostHog {
    /// A client of project `project_id` (its numeric id) at `base_url` (the instance's app host),
    /// calling with a personal API key.
    pub fn new(
        http: HttpSettings,
        base_url: Url,
        project_id: impl Into<String>,
        personal_api_key: SecretString,
    ) -> Result<Self, ConnectorError> {
        let project_id = project_id.into();
        if check_id(
            &project_id,
            20,
            |c| c.is_ascii_digit(),
            "a PostHog project id is digits",
        )
        .is_err()
        {
            return Err(ConnectorError::Config("a PostHog project id is 1 to 20 digits"));
        }
        Ok(PostHog {
            http: HttpClient::new("posthog", &base_url, &http)?,
            project_id,
            personal_api_key,
        })
    }

    /// Deletes the person holding `distinct_id`, with their events and recordings (module
    /// documentation). No such person → `Ok(PostHogDeletion::NotFound)`.
    pub async fn delete_person(&self, distinct_id: &str) -> Result<PostHogDeletion, ConnectorError> {
        let ok = !distinct_id.is_empty()
            && distinct_id.len() <= MAX_DISTINCT_ID_LEN
            && !distinct_id.chars().any(char::is_control);
        if !ok {
            return Err(ConnectorError::InvalidInput(
                "a PostHog distinct id is 1 to 200 bytes without control characters",
            ));
        }
        let list = self.http.url(&["api", "projects", &self.project_id, "persons", ""]);
        let page: PersonsPage = self
            .http
            .send_json("posthog find person", classify, |client| {
                client
                    .get(list.clone())
                    .bearer_auth(self.personal_api_key.expose_secret())
                    .query(&[("distinct_id", distinct_id)])
            })
            .await?;
        if page.results.is_empty() {
            return Ok(PostHogDeletion::NotFound);
        }
        if page.results.len() > MAX_PERSONS {
            return Err(ConnectorError::Decode {
                what: "posthog find person",
                detail: format!("more than {MAX_PERSONS} persons hold one distinct id"),
            });
        }
        let mut uuids = Vec::with_capacity(page.results.len());
        for person in page.results {
            let uuid = person.uuid.unwrap_or_default();
            if check_id(
                &uuid,
                64,
                |c| c.is_ascii_hexdigit() || c == '-',
                "a person uuid is hex and -",
            )
            .is_err()
            {
                return Err(ConnectorError::Decode {
                    what: "posthog find person",
                    detail: "a person has no readable uuid".to_owned(),
                });
            }
            uuids.push(uuid);
        }
        for uuid in &uuids {
            let url = self
                .http
                .url(&["api", "projects", &self.project_id, "persons", uuid, ""]);
            let deleted = self
                .http
                .send("posthog delete person", classify, |client| {
                    client
                        .delete(url.clone())
                        .bearer_auth(self.personal_api_key.expose_secret())
                        .query(&[("delete_events", "true"), ("delete_recordings", "true")])
                })
                .await;
            match deleted {
                Ok(_) => {}
                Err(ConnectorError::NotFound) => {
                    tracing::info!(
                        platform = "posthog",
                        operation = "posthog delete person",
                        "the person was deleted already"
                    );
                }
                Err(error) => return Err(error),
            }
        }
        Ok(PostHogDeletion::Deleted { persons: uuids.len() })
    }
}

fn classify(failure: &Failure<'_>) -> Verdict {
    let code = failure.json::<ErrorAnswer>().and_then(|answer| answer.code);
    failure.default_verdict(code.as_deref())
}
