//! Runs of scheduled jobs, one row per job and run key (a UTC day) in `scheduled_runs`:
//! [`claim_run`] lets one instance run a job for a run key under a lease it renews
//! ([`renew_lease`]) while it works; a run left unfinished past its lease (the instance died)
//! is claimed again by whoever asks next. [`finish_run`] records when it finished and a
//! one-line outcome; [`latest_runs`] reads the newest run of each job.

use crate::{dispatch, Db, LogError};
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::Row;

fn text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// What a claim found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunClaim {
    /// The run is ours until the lease ends: do the work, renew, then finish.
    Claimed {
        /// 1 for the first claim of this run, more when an expired claim was taken over.
        attempt: i32,
    },
    /// The run finished already (here or in another instance).
    Finished,
    /// Another instance holds the run until this instant.
    Held { until: String },
}

/// Claims run `run_key` of `job` for `owner` until `lease_until`, if nobody holds it and it did
/// not finish.
pub async fn claim_run(
    db: &Db,
    job: &str,
    run_key: &str,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<RunClaim, LogError> {
    let (now, until) = (text(now), text(lease_until));
    let inserted = dispatch!(db, Db, |pool| {
        sqlx::query(
            "INSERT INTO scheduled_runs (job, run_key, started_at, lease_until, owner, attempts) \
             VALUES ($1, $2, $3, $4, $5, 1) ON CONFLICT (job, run_key) DO NOTHING",
        )
        .bind(job)
        .bind(run_key)
        .bind(&now)
        .bind(&until)
        .bind(owner)
        .execute(pool)
        .await?
        .rows_affected()
    });
    if inserted == 1 {
        return Ok(RunClaim::Claimed { attempt: 1 });
    }
    // A run whose holder let its lease lapse (it died) is taken over; a run written before
    // leases existed has none and counts as lapsed.
    let taken: Option<i32> = dispatch!(db, Db, |pool| {
        sqlx::query_scalar(
            "UPDATE scheduled_runs SET owner = $3, lease_until = $4, started_at = $5, attempts = attempts + 1 \
             WHERE job = $1 AND run_key = $2 AND finished_at IS NULL AND (lease_until IS NULL OR lease_until < $5) \
             RETURNING attempts",
        )
        .bind(job)
        .bind(run_key)
        .bind(owner)
        .bind(&until)
        .bind(&now)
        .fetch_optional(pool)
        .await?
    });
    if let Some(attempt) = taken {
        return Ok(RunClaim::Claimed { attempt });
    }
    let row: Option<(Option<String>, Option<String>)> = dispatch!(db, Db, |pool| {
        sqlx::query_as("SELECT finished_at, lease_until FROM scheduled_runs WHERE job = $1 AND run_key = $2")
            .bind(job)
            .bind(run_key)
            .fetch_optional(pool)
            .await?
    });
    Ok(match row {
        Some((Some(_), _)) => RunClaim::Finished,
        Some((None, until)) => RunClaim::Held {
            until: until.unwrap_or_default(),
        },
        // Deleted between our statements (an operator's hand): claim again.
        None => Box::pin(claim_run(db, job, run_key, owner, parse(&now), parse(&until))).await?,
    })
}

fn parse(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// Extends `owner`'s lease on a run it holds; `false` when it no longer holds it (it lapsed and
/// another instance took the run over).
pub async fn renew_lease(
    db: &Db,
    job: &str,
    run_key: &str,
    owner: &str,
    lease_until: DateTime<Utc>,
) -> Result<bool, LogError> {
    let until = text(lease_until);
    let renewed = dispatch!(db, Db, |pool| {
        sqlx::query(
            "UPDATE scheduled_runs SET lease_until = $4 WHERE job = $1 AND run_key = $2 AND owner = $3 \
             AND finished_at IS NULL",
        )
        .bind(job)
        .bind(run_key)
        .bind(owner)
        .bind(&until)
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(renewed == 1)
}

/// Records that run `run_key` of `job` finished at `now`, with a one-line outcome (counts,
/// never data).
pub async fn finish_run(db: &Db, job: &str, run_key: &str, now: DateTime<Utc>, outcome: &str) -> Result<(), LogError> {
    let sql = "UPDATE scheduled_runs SET finished_at = $3, outcome = $4 WHERE job = $1 AND run_key = $2";
    let now = text(now);
    dispatch!(db, Db, |pool| {
        sqlx::query(sql)
            .bind(job)
            .bind(run_key)
            .bind(&now)
            .bind(outcome)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// A run of a job as `scheduled_runs` holds it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RunRecord {
    pub job: String,
    pub run_key: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub outcome: Option<String>,
    pub lease_until: Option<String>,
    pub attempts: i32,
}

/// The newest run (by run key) of each job that ever ran.
pub async fn latest_runs(db: &Db) -> Result<Vec<RunRecord>, LogError> {
    let sql = "SELECT r.job, r.run_key, r.started_at, r.finished_at, r.outcome, r.lease_until, r.attempts \
               FROM scheduled_runs r WHERE r.run_key = (SELECT MAX(l.run_key) FROM scheduled_runs l WHERE l.job = r.job) \
               ORDER BY r.job";
    let runs = dispatch!(db, Db, |pool| {
        sqlx::query(sql)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                Ok(RunRecord {
                    job: row.try_get(0)?,
                    run_key: row.try_get(1)?,
                    started_at: row.try_get(2)?,
                    finished_at: row.try_get(3)?,
                    outcome: row.try_get(4)?,
                    lease_until: row.try_get(5)?,
                    attempts: row.try_get(6)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?
    });
    Ok(runs)
}
