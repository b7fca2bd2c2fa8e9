//! Retention (P24, P25) end to end, on both backends: the job expires invitations past their
//! expiry and erases their emails, destroys the keys of dead connections that survived, opens
//! the erasure of accounts closed longer than the configured period, and records one
//! `RetentionApplied` per day however often it runs.

use api::auth::Role;
use app::jobs::{Job, JobReport, JobRun};
use app::retention::{RetentionReport, CLOSED_ACCOUNT, CONNECTION_TOKEN, INVITATION_EMAIL};
use chrono::{DateTime, Duration, Utc};
use domain::artist::ArtistEvent;
use domain::connection::{Connection, ConnectionCommand, ConnectionDetails, ConnectionEvent};
use domain::Aggregate;
use eventlog::{EventLog, EventMetadata};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use tests::{Backend, TestApp, TEST_JWT_SECRET};
use vault::{KeyRef, SealedValue, Vault};

macro_rules! on_both_backends {
    ($name:ident, |$app:ident| $body:block) => {
        mod $name {
            use super::*;
            async fn run($app: TestApp) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() {
                run(TestApp::spawn(Backend::Sqlite, &[]).await.expect("SQLite is always there")).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgres() {
                if let Some(app) = TestApp::spawn(Backend::Postgres, &[]).await {
                    run(app).await
                }
            }
        }
    };
}

/// The app the job runs in (its clock set to the instant of each run), and a log and a vault of
/// the test's own over the same database and keyring (so nothing it opens comes from the app's
/// key cache).
struct Deps {
    app: app::App,
    clock: Arc<clock::AnchoredClock>,
    log: EventLog,
    vault: Vault,
}

impl Deps {
    async fn of(app: &TestApp) -> Deps {
        let log = EventLog::new(app.db.db.clone());
        let ring = Arc::new(app.settings.master_keyring().expect("the app's keyring"));
        // No key cache: a key the app's job destroys reads as destroyed here at once.
        let vault = Vault::start(app.db.db.clone(), ring)
            .await
            .expect("the vault starts")
            .with_cache(0, std::time::Duration::ZERO);
        Deps {
            app: app.app.clone(),
            clock: app.clock.clone(),
            log,
            vault,
        }
    }

    /// Runs the day's retention job at `now`: its report, or `None` when the day ran already.
    async fn apply(&self, now: DateTime<Utc>) -> Option<RetentionReport> {
        self.clock.set(now);
        let lease = std::time::Duration::from_secs(60);
        match app::jobs::run_now(&self.app, Job::Retention, now.date_naive(), lease)
            .await
            .expect("retention runs")
        {
            JobRun::Ran {
                report: JobReport::Retention(report),
                ..
            } => Some(report),
            JobRun::AlreadyRan => None,
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Runs the day's retention job at `now`, which must not have run yet.
    async fn run(&self, now: DateTime<Utc>) -> RetentionReport {
        self.apply(now).await.expect("the day had not run yet")
    }

    async fn applied_events(&self, now: DateTime<Utc>) -> usize {
        self.log
            .load("retention_run", &now.date_naive().to_string())
            .await
            .unwrap()
            .iter()
            .filter(|e| e.event_type == "RetentionApplied")
            .count()
    }
}

async fn send(app: &TestApp, token: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    app.send(token, method, path, body).await
}

on_both_backends!(
    an_invitation_past_expiry_is_expired_and_its_email_erased_once_a_day,
    |app| {
        app.sign_up("owner-r1").await;
        let owner = app.token("owner-r1", Role::Person);
        let (status, created) = send(
            &app,
            &owner,
            Method::POST,
            "/v1/artists",
            Some(json!({"name": "Retained"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let artist = created["artist_id"].as_str().unwrap().to_string();
        let (status, _) = send(
            &app,
            &owner,
            Method::GET,
            &format!(
                "/v1/artists/{artist}?min_position={}",
                created["position"].as_str().unwrap()
            ),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let mut invitations = Vec::new();
        for email in ["late@example.test", "early@example.test"] {
            let (status, invited) = send(
                &app,
                &owner,
                Method::POST,
                &format!("/v1/artists/{artist}/invitations"),
                Some(json!({"email": email, "role": "viewer"})),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{invited}");
            invitations.push(invited);
            // The second invitation is made an hour later, so it expires an hour later: the job
            // below runs just after the first expiry, on a clock that keeps running meanwhile.
            app.clock.advance(Duration::hours(1));
        }
        let expired_id = invitations[0]["invitation_id"].as_str().unwrap().to_string();
        let expires_at: DateTime<Utc> = invitations[0]["expires_at"].as_str().unwrap().parse().unwrap();
        let deps = Deps::of(&app).await;

        // A day before expiry: both invitations are open and stay so.
        let before = deps.run(expires_at - Duration::days(1)).await;
        let rule = before.rule(INVITATION_EMAIL).unwrap();
        assert_eq!((rule.examined, rule.affected), (2, 0), "{before:?}");

        // Just after the first expiry (the second invitation expires an hour later).
        let now = expires_at + Duration::microseconds(1);
        let report = deps.run(now).await;
        let rule = report.rule(INVITATION_EMAIL).unwrap();
        assert_eq!(rule.ids, vec![expired_id.clone()], "{report:?}");
        assert_eq!((rule.examined, rule.failed), (2, 0));
        let events = deps.log.load("artist", &artist).await.unwrap();
        let last = events.last().unwrap().decode::<ArtistEvent>().unwrap();
        assert_eq!(
            last,
            ArtistEvent::InvitationExpired {
                invitation_id: expired_id.clone()
            }
        );
        assert_eq!(events.last().unwrap().metadata.actor, "system:retention");
        // Its email no longer opens; the other invitation's still does.
        for stored in &events {
            if let ArtistEvent::MemberInvited {
                invitation_id, email, ..
            } = stored.decode::<ArtistEvent>().unwrap()
            {
                let sealed: SealedValue = serde_json::from_value(email.0).unwrap();
                let opened = deps
                    .vault
                    .open(&app::artists::invitee_key(&invitation_id), "email", &sealed)
                    .await
                    .unwrap();
                assert_eq!(opened.is_erased(), invitation_id == expired_id, "{invitation_id}");
            }
        }
        // The token no longer admits anyone.
        let secret = app::artists::invitation_secret(TEST_JWT_SECRET);
        let token = app::artists::invitation_token(
            secrecy::ExposeSecret::expose_secret(&secret).as_bytes(),
            &artist,
            &expired_id,
        );
        app.sign_up("late-1").await;
        let (status, _) = send(
            &app,
            &app.token("late-1", Role::Person),
            Method::POST,
            "/v1/invitations/accept",
            Some(json!({"token": token})),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // The same day again: nothing more is done or recorded.
        let again = deps.apply(now).await;
        assert!(again.is_none(), "{again:?}");
        assert_eq!(deps.applied_events(now).await, 1);
        let recorded = deps
            .log
            .load("retention_run", &now.date_naive().to_string())
            .await
            .unwrap();
        let payload = recorded[0].payload.to_string();
        assert!(
            payload.contains(&expired_id) && !payload.contains("late@example.test"),
            "{payload}"
        );
        assert_eq!(deps.log.load("artist", &artist).await.unwrap().len(), events.len());
    }
);

on_both_backends!(a_dead_connection_whose_key_survived_has_it_destroyed, |app| {
    let person = "person-r2";
    app.sign_up(person).await;
    let token = app.token(person, Role::Person);
    let (status, meta) = send(
        &app,
        &token,
        Method::POST,
        "/v1/connections",
        Some(json!({"platform": "meta", "page_id": "page-1", "access_token": "EAAB-secret-meta-token"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{meta}");
    let (status, ads) = send(
        &app,
        &token,
        Method::POST,
        "/v1/connections",
        Some(json!({"platform": "google_ads", "customer_id": "1234567890", "refresh_token": "1//secret-refresh"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{ads}");
    let meta_id = meta["connection_id"].as_str().unwrap().to_string();
    let deps = Deps::of(&app).await;
    // Meta is disconnected but the destroy never happened (as if the process died in between);
    // Google Ads is disconnected properly, its key destroyed at once.
    let crashed = deps
        .log
        .execute::<Connection>(&meta_id, ConnectionCommand::Disconnect, &EventMetadata::system())
        .await
        .unwrap();
    assert!(crashed.position.is_some());
    let (status, ended) = send(&app, &token, Method::DELETE, "/v1/connections/google_ads", None).await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    // Both ends are in the read model the job reads (the disconnect came after the crash).
    let (status, listed) = send(
        &app,
        &token,
        Method::GET,
        &format!("/v1/connections?min_position={}", ended["position"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["connections"], json!([]), "{listed}");
    let sealed_token = || async {
        let events = deps.log.load(Connection::TYPE, &meta_id).await.unwrap();
        match events[0].decode::<ConnectionEvent>().unwrap() {
            ConnectionEvent::Connected {
                details: ConnectionDetails::Meta { access_token, .. },
                ..
            } => serde_json::from_value::<SealedValue>(access_token.0).unwrap(),
            other => panic!("{other:?}"),
        }
    };
    let key = KeyRef::connection(meta_id.as_str());
    assert!(
        !deps
            .vault
            .open(&key, "access_token", &sealed_token().await)
            .await
            .unwrap()
            .is_erased(),
        "the key survived the disconnect"
    );

    let now = app.now();
    let report = deps.run(now).await;
    let rule = report.rule(CONNECTION_TOKEN).unwrap();
    assert_eq!(rule.ids, vec![meta_id.clone()], "{report:?}");
    assert_eq!((rule.examined, rule.failed), (2, 0), "{report:?}");
    assert!(deps
        .vault
        .open(&key, "access_token", &sealed_token().await)
        .await
        .unwrap()
        .is_erased());
    assert_eq!(deps.applied_events(now).await, 1);
});

on_both_backends!(
    an_account_closed_longer_than_the_period_gets_an_erasure_request,
    |app| {
        let person = "person-r3";
        let service = app.token("auth-service", Role::Service);
        let me = app.token(person, Role::Person);
        let (status, body) = send(
            &app,
            &service,
            Method::POST,
            "/v1/accounts",
            Some(json!({
                "person_id": person,
                "provider": "google",
                "provider_subject": "google-oauth2|r3",
                "name": "Closing Person",
                "email": "closing@example.test",
                "country": "PK",
                "birth_date": "1990-01-01",
            })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, closed) = send(&app, &me, Method::POST, "/v1/me/close", None).await;
        assert_eq!(status, StatusCode::OK, "{closed}");
        let position = closed["position"]
            .as_str()
            .expect("closing answers its position")
            .to_string();
        let (status, again) = send(&app, &me, Method::POST, "/v1/me/close", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again["position"], Value::Null, "closing twice records nothing");
        let (status, refused) = send(&app, &me, Method::PATCH, "/v1/me", Some(json!({"name": "New"}))).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(
            refused["detail"],
            "this account is closed; its data is erased after the retention period"
        );
        let (status, _) = send(&app, &me, Method::GET, &format!("/v1/me?min_position={position}"), None).await;
        assert_eq!(status, StatusCode::OK);
        let deps = Deps::of(&app).await;

        // 29 days later it is kept; 31 days later (default 30) its erasure is opened.
        let start = app.now();
        let kept = deps.run(start + Duration::days(29)).await;
        let rule = kept.rule(CLOSED_ACCOUNT).unwrap();
        assert_eq!((rule.examined, rule.affected), (0, 0), "{kept:?}");
        let report = deps.run(start + Duration::days(31)).await;
        let rule = report.rule(CLOSED_ACCOUNT).unwrap();
        assert_eq!(rule.ids, vec![person.to_string()], "{report:?}");
        let request_id = report.erasure_requests.get(person).expect("an erasure request").clone();
        // The request is an erasure of this person, opened by the system, and it was carried out.
        let request = app::privacy::request_view(&deps.log, &request_id).await.unwrap();
        assert_eq!(request["kind"], "erase", "{request}");
        assert_eq!(request["person_id"], person, "{request}");
        assert!(
            request["opened_by"].to_string().contains("closed_account_retention"),
            "{request}"
        );
        let (subject, _, _) = deps
            .log
            .load_aggregate::<domain::privacy::DataSubject>(person)
            .await
            .unwrap();
        assert!(subject.is_erased(), "{request}");
        // An erased person is not asked for again.
        let later = deps.run(start + Duration::days(32)).await;
        let rule = later.rule(CLOSED_ACCOUNT).unwrap();
        assert_eq!((rule.examined, rule.affected), (1, 0), "{later:?}");
        assert!(later.erasure_requests.is_empty());
    }
);
