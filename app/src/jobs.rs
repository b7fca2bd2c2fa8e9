//! The scheduled jobs, each on its own: the spend sync, the billing close, retention, and the
//! retries of unfinished privacy requests. Each has its own time of day (or `off`), its own run
//! key (the UTC day) in `scheduled_runs`, and a lease: the instance that claims a day's run
//! renews the lease while it works, and a run left unfinished past its lease (the instance
//! died) is taken over by the next instance, or by the next start, the same day.
//!
//! [`run_scheduler`] is what `serve` runs; [`run_now`] runs one job for one day at once (the
//! CLI's `dynamoi jobs run` and `dynamoi retention run`), under the same claim, so a day never
//! runs twice; [`status`] is what `dynamoi jobs status`, `/metrics` and the operations API show.

use crate::retention::RetentionReport;
pub use crate::schedule::{next_daily_run, Job, Schedule};
use crate::sync::{SyncReport, SyncScope};
use crate::{App, AppError};
use chrono::NaiveDate;
use eventlog::scheduled::{self, RunClaim};
use serde::Serialize;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What one run of a job did.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum JobReport {
    SpendSync(SyncReport),
    BillingClose { closed: usize },
    Retention(RetentionReport),
    PrivacyRetries { completed: usize },
}

impl JobReport {
    /// One line for logs and `scheduled_runs` (counts only, never data).
    pub fn summary(&self) -> String {
        match self {
            JobReport::SpendSync(report) => report.summary(),
            JobReport::BillingClose { closed } => format!("{closed} billing periods closed"),
            JobReport::Retention(report) => report.summary(),
            JobReport::PrivacyRetries { completed } => format!("{completed} privacy requests completed"),
        }
    }
}

/// What [`run_now`] found or did.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum JobRun {
    /// This call ran the job (its `attempt`-th claim of the day).
    Ran { attempt: i32, report: JobReport },
    /// The day's run finished already.
    AlreadyRan,
    /// Another instance holds the day's run.
    Held { until: String },
}

/// Runs `job` for `day` now, under the day's claim: at most one instance runs a day's job,
/// and a day that finished is not run again.
pub async fn run_now(app: &App, job: Job, day: NaiveDate, lease: Duration) -> Result<JobRun, AppError> {
    let run_key = day.to_string();
    let db = app.log.db();
    let lease_for = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(15));
    let claim = scheduled::claim_run(
        db,
        job.name(),
        &run_key,
        &app.instance,
        app.now(),
        app.now() + lease_for,
    )
    .await?;
    let attempt = match claim {
        RunClaim::Claimed { attempt } => attempt,
        RunClaim::Finished => return Ok(JobRun::AlreadyRan),
        RunClaim::Held { until } => return Ok(JobRun::Held { until }),
    };
    // Renew the lease while the job works, at a third of its length, until it ends.
    let done = CancellationToken::new();
    let heartbeat = {
        let (app, done, run_key) = (app.clone(), done.clone(), run_key.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = done.cancelled() => return,
                    _ = tokio::time::sleep(lease / 3) => {}
                }
                match scheduled::renew_lease(app.log.db(), job.name(), &run_key, &app.instance, app.now() + lease_for)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(job = job.name(), "the job's lease was taken over by another instance");
                        return;
                    }
                    Err(error) => tracing::warn!(job = job.name(), %error, "cannot renew the job's lease"),
                }
            }
        })
    };
    metrics::counter!("dynamoi_job_runs_total", "job" => job.name()).increment(1);
    let result = work(app, job, day).await;
    done.cancel();
    let _ = heartbeat.await;
    let outcome = match &result {
        Ok(report) => report.summary(),
        Err(error) => format!("failed: {error}"),
    };
    scheduled::finish_run(db, job.name(), &run_key, app.now(), &outcome).await?;
    if result.is_err() {
        metrics::counter!("dynamoi_job_failures_total", "job" => job.name()).increment(1);
    }
    Ok(JobRun::Ran {
        attempt,
        report: result?,
    })
}

/// The work of one job for one day.
async fn work(app: &App, job: Job, day: NaiveDate) -> Result<JobReport, AppError> {
    Ok(match job {
        Job::SpendSync => {
            let scope = SyncScope {
                campaigns: None,
                until: day,
                actor: "system:spend-sync".into(),
            };
            let report = crate::sync::sync(app, &scope, &|_| {}).await?;
            for failure in &report.failures {
                tracing::warn!(platform = failure.platform, reason = %failure.reason, "an ad account was not synced");
            }
            JobReport::SpendSync(report)
        }
        Job::BillingClose => JobReport::BillingClose {
            closed: crate::billing::close_ended_periods(app, app.now()).await?,
        },
        Job::Retention => JobReport::Retention(crate::retention::apply(app, app.now()).await?),
        Job::PrivacyRetries => JobReport::PrivacyRetries {
            completed: crate::privacy::run_unfinished(app).await?,
        },
    })
}

/// The scheduler of `serve`: every job that is on runs once per UTC day at its time, and at
/// start when today's run is due but did not finish (missed, or its instance died). A failed
/// run is logged (counts and reasons, never tokens) and recorded; the next day runs again.
pub async fn run_scheduler(app: App, schedule: Schedule, stop: CancellationToken) {
    loop {
        let now = app.now();
        for job in Job::ALL {
            let Some(at) = schedule.at(job) else { continue };
            let day = now.date_naive();
            if day.and_time(at).and_utc() > now {
                continue;
            }
            match run_now(&app, job, day, schedule.lease).await {
                Ok(JobRun::Ran { report, attempt }) => {
                    tracing::info!(job = job.name(), attempt, summary = %report.summary(), "scheduled job finished")
                }
                Ok(JobRun::AlreadyRan | JobRun::Held { .. }) => {}
                Err(error) => tracing::error!(job = job.name(), %error, "scheduled job failed; it runs again tomorrow"),
            }
        }
        let now = app.now();
        let next = Job::ALL
            .into_iter()
            .filter_map(|job| schedule.at(job).map(|at| next_daily_run(now, at)))
            .min();
        let wait = next
            .and_then(|next| (next - now).to_std().ok())
            .unwrap_or(schedule.poll)
            .min(schedule.poll);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One job as `dynamoi jobs status` shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct JobStatus {
    pub job: Job,
    /// `HH:MM` (UTC), or `off`.
    pub schedule: String,
    /// The setting that changes it.
    pub setting: &'static str,
    pub last_run: Option<eventlog::scheduled::RunRecord>,
    /// When it runs next (RFC 3339), `None` when off.
    pub next_run: Option<String>,
}

/// Every job's schedule, last run (with its outcome) and next run.
pub async fn status(app: &App, schedule: &Schedule) -> Result<Vec<JobStatus>, AppError> {
    let runs = scheduled::latest_runs(app.log.db()).await?;
    let now = app.now();
    Ok(Job::ALL
        .into_iter()
        .map(|job| {
            let at = schedule.at(job);
            let last_run = runs.iter().find(|r| r.job == job.name()).cloned();
            // Due today and not finished: the next run is now (the scheduler catches it up).
            let due_now = at.is_some_and(|at| {
                now.date_naive().and_time(at).and_utc() <= now
                    && !last_run
                        .as_ref()
                        .is_some_and(|r| r.run_key == now.date_naive().to_string() && r.finished_at.is_some())
            });
            JobStatus {
                job,
                schedule: at.map_or_else(|| "off".to_string(), |t| t.format("%H:%M").to_string()),
                setting: job.setting(),
                last_run,
                next_run: at.map(|at| {
                    let next = if due_now { now } else { next_daily_run(now, at) };
                    next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                }),
            }
        })
        .collect())
}
