//! When the scheduled jobs run: the [`Job`]s, their times of day (or off), the lease a run is
//! claimed under ([`Schedule`]), and when a daily job is due next. Data only: what the jobs do is
//! [`crate::jobs`].

use chrono::{DateTime, NaiveTime, Utc};
use serde::Serialize;
use std::time::Duration;

/// The scheduled jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Job {
    /// Reads every linked campaign's spend from its ad platform.
    SpendSync,
    /// Closes each billing account's last month that has ended in its time zone.
    BillingClose,
    /// Applies the retention rules.
    Retention,
    /// Carries on data-subject requests left failed or unfinished, each from its failed step.
    PrivacyRetries,
}

impl Job {
    /// Every job, in the order of their default times.
    pub const ALL: [Job; 4] = [Job::SpendSync, Job::BillingClose, Job::Retention, Job::PrivacyRetries];

    /// The job's name in `scheduled_runs`, the CLI and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Job::SpendSync => "spend_sync",
            Job::BillingClose => "billing_close",
            Job::Retention => "retention",
            Job::PrivacyRetries => "privacy_retries",
        }
    }

    /// The setting that says when the job runs (`HH:MM` UTC, or `off`).
    pub fn setting(self) -> &'static str {
        match self {
            Job::SpendSync => "DYNAMOI_SYNC_DAILY_AT",
            Job::BillingClose => "DYNAMOI_BILLING_CLOSE_DAILY_AT",
            Job::Retention => "DYNAMOI_RETENTION_DAILY_AT",
            Job::PrivacyRetries => "DYNAMOI_PRIVACY_RETRY_DAILY_AT",
        }
    }

    /// When the job runs unless configured otherwise: the sync first, so the billing close
    /// holds its readings.
    pub fn default_time(self) -> NaiveTime {
        let (h, m) = match self {
            Job::SpendSync => (4, 0),
            Job::BillingClose => (4, 30),
            Job::Retention => (5, 0),
            Job::PrivacyRetries => (5, 30),
        };
        NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default()
    }
}

impl std::str::FromStr for Job {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Job::ALL
            .into_iter()
            .find(|job| job.name() == s)
            .ok_or_else(|| format!("`{s}` is not a job: use spend_sync, billing_close, retention or privacy_retries"))
    }
}

/// When each job runs (`None`: off) and how claims behave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub spend_sync: Option<NaiveTime>,
    pub billing_close: Option<NaiveTime>,
    pub retention: Option<NaiveTime>,
    pub privacy_retries: Option<NaiveTime>,
    /// How long a claim holds before another instance may take the run over.
    pub lease: Duration,
    /// How often the scheduler looks again (it also wakes at the next due time).
    pub poll: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            spend_sync: Some(Job::SpendSync.default_time()),
            billing_close: Some(Job::BillingClose.default_time()),
            retention: Some(Job::Retention.default_time()),
            privacy_retries: Some(Job::PrivacyRetries.default_time()),
            lease: Duration::from_secs(900),
            poll: Duration::from_secs(30),
        }
    }
}

impl Schedule {
    /// When `job` runs, `None` when it is off.
    pub fn at(&self, job: Job) -> Option<NaiveTime> {
        match job {
            Job::SpendSync => self.spend_sync,
            Job::BillingClose => self.billing_close,
            Job::Retention => self.retention,
            Job::PrivacyRetries => self.privacy_retries,
        }
    }
}

/// The next instant a job that runs daily at `at` is due after `now`: today at `at` (UTC) if
/// that is still to come, else tomorrow at `at`.
pub fn next_daily_run(now: DateTime<Utc>, at: NaiveTime) -> DateTime<Utc> {
    let today = now.date_naive().and_time(at).and_utc();
    if today > now {
        today
    } else {
        (now.date_naive() + chrono::Duration::days(1)).and_time(at).and_utc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_daily_run_is_today_until_its_time_has_passed() {
        let at = NaiveTime::from_hms_opt(4, 0, 0).unwrap();
        let early: DateTime<Utc> = "2026-11-29T03:59:59Z".parse().unwrap();
        assert_eq!(next_daily_run(early, at).to_rfc3339(), "2026-11-29T04:00:00+00:00");
        let on_time: DateTime<Utc> = "2026-11-29T04:00:00Z".parse().unwrap();
        assert_eq!(next_daily_run(on_time, at).to_rfc3339(), "2026-11-30T04:00:00+00:00");
        let late: DateTime<Utc> = "2026-12-31T23:00:00Z".parse().unwrap();
        assert_eq!(next_daily_run(late, at).to_rfc3339(), "2027-01-01T04:00:00+00:00");
    }

    #[test]
    fn jobs_are_named_and_parsed_alike() {
        for job in Job::ALL {
            assert_eq!(job.name().parse::<Job>(), Ok(job));
        }
        assert!("daily".parse::<Job>().is_err());
    }
}
