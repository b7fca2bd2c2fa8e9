//! `privacy_requests`: the deletion audit trail (P22): every data-subject request with its
//! state and deadline, its steps with attempts, times and outcomes, and erasure certificates,
//! for the auditor's API and the people's own lists.

use crate::projection::{Projection, ProjectionError, ReadTx, Target};
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use domain::privacy::{Opener, PrivacyEvent, PrivacyRequest, StepOutcome};
use domain::Aggregate;
use eventlog::{dispatch, Dialect, StoredEvent};

/// The projection that fills `privacy_requests`, `privacy_request_steps` and `erasure_certificates`.
pub struct PrivacyRequests;

fn at(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Runs one statement with text binds (`None` binds NULL) and integer binds after them.
async fn run(tx: &mut ReadTx<'_>, sql: &str, texts: &[Option<&str>], ints: &[i32]) -> Result<(), ProjectionError> {
    dispatch!(tx, ReadTx, |conn| {
        let mut query = sqlx::query(sql);
        for text in texts {
            query = query.bind(*text);
        }
        for int in ints {
            query = query.bind(*int);
        }
        query.execute(&mut **conn).await?;
    });
    Ok(())
}

#[async_trait]
impl Projection for PrivacyRequests {
    fn name(&self) -> &'static str {
        "privacy_requests"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["privacy_requests", "privacy_request_steps", "erasure_certificates"]
    }

    fn schema(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Postgres => include_str!("../../../migrations/read_models/postgres/privacy_requests.sql"),
            Dialect::Sqlite => include_str!("../../../migrations/read_models/sqlite/privacy_requests.sql"),
        }
    }

    async fn apply(&self, tx: &mut ReadTx<'_>, target: &Target, events: &[StoredEvent]) -> Result<(), ProjectionError> {
        let requests = target.table("privacy_requests");
        let steps = target.table("privacy_request_steps");
        let certificates = target.table("erasure_certificates");
        for event in events.iter().filter(|e| e.aggregate_type == PrivacyRequest::TYPE) {
            let id = event.aggregate_id.as_str();
            let now = at(&event.recorded_at);
            let set_state =
                |state: &str| format!("UPDATE {requests} SET state = '{state}', updated_at = $2 WHERE request_id = $1");
            match event
                .decode::<PrivacyEvent>()
                .map_err(|e| ProjectionError::undecodable(event, e))?
            {
                PrivacyEvent::RequestOpened {
                    person_id,
                    kind,
                    opener,
                    opened_at,
                    deadline,
                    steps: names,
                    ..
                } => {
                    let opened_by = match opener {
                        Opener::Person => "person".to_string(),
                        Opener::Support { agent, .. } => agent,
                        Opener::System { reason } => format!("system:{reason}"),
                    };
                    let sql = format!(
                        "INSERT INTO {requests} (request_id, person_id, kind, state, before_pause, opened_by, \
                         opened_at, deadline, verified_at, completed_at, updated_at) \
                         VALUES ($1, $2, $3, 'pending', NULL, $4, $5, $6, NULL, NULL, $7)"
                    );
                    let texts = [
                        Some(id),
                        Some(person_id.as_str()),
                        Some(kind.as_str()),
                        Some(opened_by.as_str()),
                        Some(&at(&opened_at)),
                        Some(&at(&deadline)),
                        Some(now.as_str()),
                    ];
                    run(tx, &sql, &texts, &[]).await?;
                    let sql = format!(
                        "INSERT INTO {steps} (request_id, step, status, started_at, finished_at, outcome, evidence, \
                         ordinal, attempts) VALUES ($1, $2, 'waiting', NULL, NULL, NULL, NULL, $3, 0)"
                    );
                    for (ordinal, name) in names.iter().enumerate() {
                        let ordinal = i32::try_from(ordinal).unwrap_or(i32::MAX);
                        run(tx, &sql, &[Some(id), Some(name)], &[ordinal]).await?;
                    }
                }
                PrivacyEvent::IdentityVerified { at: when, .. } => {
                    let sql = format!(
                        "UPDATE {requests} SET state = 'verified', verified_at = $2, updated_at = $2 WHERE request_id = $1"
                    );
                    run(tx, &sql, &[Some(id), Some(&at(&when))], &[]).await?;
                }
                PrivacyEvent::DeadlineExtended { deadline, .. } => {
                    let sql = format!("UPDATE {requests} SET deadline = $2, updated_at = $3 WHERE request_id = $1");
                    run(tx, &sql, &[Some(id), Some(&at(&deadline)), Some(&now)], &[]).await?;
                }
                PrivacyEvent::RequestDenied { .. } => {
                    run(tx, &set_state("denied"), &[Some(id), Some(&now)], &[]).await?
                }
                PrivacyEvent::RequestPaused { .. } => {
                    let sql = format!(
                        "UPDATE {requests} SET before_pause = state, state = 'paused', updated_at = $2 WHERE request_id = $1"
                    );
                    run(tx, &sql, &[Some(id), Some(&now)], &[]).await?;
                }
                PrivacyEvent::RequestResumed { .. } => {
                    let sql = format!(
                        "UPDATE {requests} SET state = COALESCE(before_pause, 'verified'), before_pause = NULL, \
                         updated_at = $2 WHERE request_id = $1"
                    );
                    run(tx, &sql, &[Some(id), Some(&now)], &[]).await?;
                }
                PrivacyEvent::StepStarted {
                    step,
                    attempt,
                    at: when,
                } => {
                    run(tx, &set_state("in_progress"), &[Some(id), Some(&now)], &[]).await?;
                    let sql = format!(
                        "UPDATE {steps} SET status = 'running', started_at = $3, finished_at = NULL, outcome = NULL, \
                         evidence = NULL, attempts = $4 WHERE request_id = $1 AND step = $2"
                    );
                    let attempt = i32::try_from(attempt).unwrap_or(i32::MAX);
                    run(tx, &sql, &[Some(id), Some(&step), Some(&at(&when))], &[attempt]).await?;
                }
                PrivacyEvent::StepCompleted {
                    step,
                    outcome,
                    at: when,
                } => {
                    run(tx, &set_state("in_progress"), &[Some(id), Some(&now)], &[]).await?;
                    let (kind, evidence) = match &outcome {
                        StepOutcome::Done { evidence } => ("done", evidence.clone()),
                        StepOutcome::Manual { evidence, by } => ("manual", format!("{evidence} (by {by})")),
                        StepOutcome::NotApplicable { reason } => ("not_applicable", reason.clone()),
                    };
                    let sql = format!(
                        "UPDATE {steps} SET status = 'done', finished_at = $3, outcome = $4, evidence = $5 \
                         WHERE request_id = $1 AND step = $2"
                    );
                    let texts = [
                        Some(id),
                        Some(step.as_str()),
                        Some(&at(&when)),
                        Some(kind),
                        Some(&evidence),
                    ];
                    run(tx, &sql, &texts, &[]).await?;
                }
                PrivacyEvent::StepFailed { step, reason, at: when } => {
                    run(tx, &set_state("failed"), &[Some(id), Some(&now)], &[]).await?;
                    let sql = format!(
                        "UPDATE {steps} SET status = 'failed', finished_at = $3, outcome = 'failed', evidence = $4 \
                         WHERE request_id = $1 AND step = $2"
                    );
                    run(tx, &sql, &[Some(id), Some(&step), Some(&at(&when)), Some(&reason)], &[]).await?;
                }
                PrivacyEvent::RequestCompleted { at: when } => {
                    let sql = format!(
                        "UPDATE {requests} SET state = 'completed', completed_at = $2, updated_at = $2 WHERE request_id = $1"
                    );
                    run(tx, &sql, &[Some(id), Some(&at(&when))], &[]).await?;
                }
                PrivacyEvent::ErasureCertificateIssued { certificate } => {
                    let sql = format!(
                        "INSERT INTO {certificates} (request_id, person_id, issued_at, certificate, event_id, chain_hash) \
                         VALUES ($1, $2, $3, $4, $5, $6)"
                    );
                    let document = serde_json::to_string(&certificate)?;
                    let event_id = event.event_id.to_string();
                    let texts = [
                        Some(id),
                        Some(certificate.person_id.as_str()),
                        Some(&at(&certificate.erased_at)),
                        Some(document.as_str()),
                        Some(event_id.as_str()),
                        event.chain_hash.as_deref(),
                    ];
                    run(tx, &sql, &texts, &[]).await?;
                }
            }
        }
        Ok(())
    }
}
