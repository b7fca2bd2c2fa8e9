//! `privacy_requests`: the deletion audit trail (P22): every data-subject request with its
//! state and deadline, its steps with attempts, times and outcomes, and erasure certificates,
//! for the auditor's API and the people's own lists.

use crate::projection::{Projection, ProjectionError, ReadTx, Target};
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use domain::privacy::{Opener, PrivacyEvent, PrivacyRequest, StepOutcome};
use domain::Aggregate;
use eventlog::{dispatch, Db, Dialect, StoredEvent};

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

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[PrivacyRequest::TYPE])
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
        for event in events.iter().filter(|e| self.reads(e)) {
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

// ----- Queries -----

/// A request as the audit trail holds it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RequestRow {
    pub request_id: String,
    pub person_id: String,
    pub kind: String,
    pub state: String,
    pub opened_by: String,
    pub opened_at: String,
    pub deadline: String,
    pub completed_at: Option<String>,
    pub steps: Vec<StepRow>,
}

/// One step of a request as the audit trail holds it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StepRow {
    pub step: String,
    pub status: String,
    pub attempts: i32,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub outcome: Option<String>,
    pub evidence: Option<String>,
}

/// An erasure certificate as the audit trail holds it (the certificate as JSON text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateRow {
    pub request_id: String,
    pub issued_at: String,
    pub certificate: String,
    pub event_id: String,
    pub chain_hash: Option<String>,
}

/// Requests, newest first (at most `limit`), of one person and/or in one state, with their steps.
pub async fn list(
    db: &Db,
    person: Option<&str>,
    state: Option<&str>,
    limit: i64,
) -> Result<Vec<RequestRow>, ProjectionError> {
    type Row = (String, String, String, String, String, String, String, Option<String>);
    type Step = (
        String,
        String,
        i32,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = dispatch!(db, Db, |pool| {
        sqlx::query_as(
            "SELECT request_id, person_id, kind, state, opened_by, opened_at, deadline, completed_at \
             FROM privacy_requests WHERE (CAST($1 AS TEXT) IS NULL OR person_id = $1) \
             AND (CAST($2 AS TEXT) IS NULL OR state = $2) ORDER BY opened_at DESC LIMIT $3",
        )
        .bind(person)
        .bind(state)
        .bind(limit)
        .fetch_all(pool)
        .await?
    });
    let mut requests = Vec::with_capacity(rows.len());
    for (request_id, person_id, kind, state, opened_by, opened_at, deadline, completed_at) in rows {
        let steps: Vec<Step> = dispatch!(db, Db, |pool| {
            sqlx::query_as(
                "SELECT step, status, attempts, started_at, finished_at, outcome, evidence \
                 FROM privacy_request_steps WHERE request_id = $1 ORDER BY ordinal",
            )
            .bind(&request_id)
            .fetch_all(pool)
            .await?
        });
        requests.push(RequestRow {
            request_id,
            person_id,
            kind,
            state,
            opened_by,
            opened_at,
            deadline,
            completed_at,
            steps: steps
                .into_iter()
                .map(
                    |(step, status, attempts, started_at, finished_at, outcome, evidence)| StepRow {
                        step,
                        status,
                        attempts,
                        started_at,
                        finished_at,
                        outcome,
                        evidence,
                    },
                )
                .collect(),
        });
    }
    Ok(requests)
}

/// The person's unfinished erase request (the oldest), if any.
pub async fn unfinished_erasure(db: &Db, person: &str) -> Result<Option<String>, ProjectionError> {
    let row: Option<(String,)> = dispatch!(db, Db, |pool| {
        sqlx::query_as(
            "SELECT request_id FROM privacy_requests WHERE person_id = $1 AND kind = 'erase' \
             AND state NOT IN ('completed', 'denied') ORDER BY opened_at LIMIT 1",
        )
        .bind(person)
        .fetch_optional(pool)
        .await?
    });
    Ok(row.map(|(id,)| id))
}

/// Requests that can go on (verified, in progress or failed), oldest first.
pub async fn runnable(db: &Db) -> Result<Vec<String>, ProjectionError> {
    let rows: Vec<(String,)> = dispatch!(db, Db, |pool| {
        sqlx::query_as(
            "SELECT request_id FROM privacy_requests WHERE state IN ('verified', 'in_progress', 'failed') \
             ORDER BY opened_at",
        )
        .fetch_all(pool)
        .await?
    });
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// A person's erasure certificates, oldest first.
pub async fn certificates(db: &Db, person: &str) -> Result<Vec<CertificateRow>, ProjectionError> {
    let rows: Vec<(String, String, String, String, Option<String>)> = dispatch!(db, Db, |pool| {
        sqlx::query_as(
            "SELECT request_id, issued_at, certificate, event_id, chain_hash FROM erasure_certificates \
             WHERE person_id = $1 ORDER BY issued_at",
        )
        .bind(person)
        .fetch_all(pool)
        .await?
    });
    Ok(rows
        .into_iter()
        .map(
            |(request_id, issued_at, certificate, event_id, chain_hash)| CertificateRow {
                request_id,
                issued_at,
                certificate,
                event_id,
                chain_hash,
            },
        )
        .collect())
}
