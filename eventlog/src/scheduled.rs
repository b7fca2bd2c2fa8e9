//! Runs of scheduled jobs: [`claim_run`] lets exactly one instance run a job for a run key (a
//! UTC day), [`finish_run`] records when it finished and a one-line outcome.

use crate::{dispatch, Db, LogError};

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Claims run `run_key` of `job`; `false` when another instance (or an earlier start) already
/// claimed it.
pub async fn claim_run(db: &Db, job: &str, run_key: &str) -> Result<bool, LogError> {
    let sql = "INSERT INTO scheduled_runs (job, run_key, started_at) VALUES ($1, $2, $3) \
               ON CONFLICT (job, run_key) DO NOTHING";
    let now = now();
    let inserted = dispatch!(db, Db, |pool| {
        sqlx::query(sql)
            .bind(job)
            .bind(run_key)
            .bind(&now)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(inserted == 1)
}

/// Records that run `run_key` of `job` finished, with a one-line outcome (counts, never data).
pub async fn finish_run(db: &Db, job: &str, run_key: &str, outcome: &str) -> Result<(), LogError> {
    let sql = "UPDATE scheduled_runs SET finished_at = $3, outcome = $4 WHERE job = $1 AND run_key = $2";
    let now = now();
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
