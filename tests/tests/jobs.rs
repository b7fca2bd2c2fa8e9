//! The scheduled jobs end to end (issue 12): each job has its own time (or `off`), run key and
//! lease. A day's run claimed by an instance that died is taken over once its lease lapses, the
//! same day; the sync switched off leaves retention running; a day that ran is not run again;
//! `GET /v1/operations/jobs` tells each job's schedule, last run and next run.

use api::auth::Role;
use chrono::{DateTime, Duration, Utc};
use eventlog::scheduled::{self, RunClaim};
use reqwest::Method;
use std::time::Duration as Wait;
use tests::{both_backends, wait_until, TestApp, TestDb};

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// How many `RetentionApplied` events the day's retention run holds.
async fn retention_runs(app: &TestApp, day: &str) -> usize {
    app.app
        .log
        .load("retention_run", day)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event_type == "RetentionApplied")
        .count()
}

async fn dead_claim(db: TestDb) {
    // An instance claimed today's retention run at 05:00 and died: its lease runs to 05:01.
    let claimed_at = at("2026-11-15T05:00:00Z");
    let claim = scheduled::claim_run(
        &db.db,
        "retention",
        "2026-11-15",
        "an-instance-that-died",
        claimed_at,
        claimed_at + Duration::seconds(60),
    )
    .await
    .unwrap();
    assert_eq!(claim, RunClaim::Claimed { attempt: 1 });
    // The next start, at 05:00:30, with retention due at 05:00: the run is held, so it waits.
    let settings = [
        ("DYNAMOI_RETENTION_DAILY_AT", "05:00"),
        ("DYNAMOI_JOB_LEASE_SECONDS", "60"),
    ];
    let app = TestApp::spawn_on_at(db, &settings, at("2026-11-15T05:00:30Z")).await;
    let held = app::jobs::run_now(
        &app.app,
        app::jobs::Job::Retention,
        app.now().date_naive(),
        Wait::from_secs(60),
    )
    .await
    .unwrap();
    assert!(
        matches!(held, app::jobs::JobRun::Held { .. }),
        "held by the dead instance: {held:?}"
    );
    assert_eq!(retention_runs(&app, "2026-11-15").await, 0);
    // Once the lease lapses the scheduler takes the run over, the same day, and records it once.
    // The run's events are appended before the run is marked finished (a separate commit), so
    // wait for both.
    app.clock.set(at("2026-11-15T05:02:00Z"));
    let ran = wait_until(Wait::from_secs(20), || async {
        let finished = scheduled::latest_runs(app.app.log.db())
            .await
            .unwrap()
            .iter()
            .any(|r| r.job == "retention" && r.finished_at.is_some());
        finished && retention_runs(&app, "2026-11-15").await >= 1
    })
    .await;
    assert!(ran, "the day's retention ran after the lease lapsed");
    assert_eq!(retention_runs(&app, "2026-11-15").await, 1);
    let runs = scheduled::latest_runs(app.app.log.db()).await.unwrap();
    let run = runs.iter().find(|r| r.job == "retention").unwrap();
    assert_eq!(run.run_key, "2026-11-15");
    assert_eq!(run.attempts, 2, "taken over: {run:?}");
    assert!(run.finished_at.is_some(), "{run:?}");
    // A day that finished is not run again, by the scheduler or by hand.
    let again = app::jobs::run_now(
        &app.app,
        app::jobs::Job::Retention,
        app.now().date_naive(),
        Wait::from_secs(60),
    )
    .await
    .unwrap();
    assert!(matches!(again, app::jobs::JobRun::AlreadyRan), "{again:?}");
    assert_eq!(retention_runs(&app, "2026-11-15").await, 1);
    app.stop().await;
}

both_backends!(
    async fn a_run_claimed_by_an_instance_that_died_runs_the_same_day_once_its_lease_lapses(db: TestDb) {
        dead_claim(db).await
    }
);

async fn sync_off(db: TestDb) {
    let settings = [
        ("DYNAMOI_SYNC_DAILY_AT", "off"),
        ("DYNAMOI_RETENTION_DAILY_AT", "05:00"),
        ("DYNAMOI_BILLING_CLOSE_DAILY_AT", "05:30"),
    ];
    let app = TestApp::spawn_on_at(db, &settings, at("2026-11-15T06:00:00Z")).await;
    let ran = wait_until(Wait::from_secs(20), || async {
        retention_runs(&app, "2026-11-15").await == 1
    })
    .await;
    assert!(ran, "retention runs with the sync off");
    let auditor = app.token("auditor-j", Role::Auditor);
    let finished = wait_until(Wait::from_secs(20), || async {
        let (_, jobs) = app.send(&auditor, Method::GET, "/v1/operations/jobs", None).await;
        jobs["jobs"]
            .as_array()
            .is_some_and(|jobs| jobs.iter().filter(|j| !j["last_run"]["finished_at"].is_null()).count() == 2)
    })
    .await;
    assert!(finished, "retention and the billing close both finished");
    let (status, jobs) = app.send(&auditor, Method::GET, "/v1/operations/jobs", None).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{jobs}");
    let job = |name: &str| {
        jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["job"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(job("spend_sync")["schedule"], "off");
    assert_eq!(
        job("spend_sync")["last_run"],
        serde_json::Value::Null,
        "the sync never ran"
    );
    assert_eq!(job("spend_sync")["next_run"], serde_json::Value::Null);
    assert_eq!(job("retention")["schedule"], "05:00");
    assert_eq!(job("retention")["last_run"]["run_key"], "2026-11-15");
    assert_eq!(job("retention")["next_run"], "2026-11-16T05:00:00Z");
    assert_eq!(job("billing_close")["last_run"]["outcome"], "0 billing periods closed");
    assert_eq!(job("privacy_retries")["schedule"], "off");
    app.stop().await;
}

both_backends!(
    async fn with_the_spend_sync_off_retention_and_the_billing_close_still_run(db: TestDb) {
        sync_off(db).await
    }
);
