//! Commands under disorder, end to end on both backends: a retry with the same Idempotency-Key
//! after the command committed but its answer was never stored changes nothing more; keys
//! expire and are purged; concurrent commands on one aggregate all succeed; commands honour
//! the consistency token of the write they follow.

use api::auth::Role;
use eventlog::Db;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use tests::{Backend, TestApp};

/// Runs an end-to-end test body against an app on each backend.
macro_rules! on_both_backends {
    ($name:ident, $extra:expr, |$app:ident| $body:block) => {
        mod $name {
            use super::*;
            async fn run($app: TestApp) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_sqlite() {
                run(TestApp::spawn(Backend::Sqlite, $extra).await.expect("SQLite is always there")).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_postgres() {
                if let Some(app) = TestApp::spawn(Backend::Postgres, $extra).await {
                    run(app).await
                }
            }
        }
    };
}

fn campaign_body() -> Value {
    json!({
        "platform": "meta", "objective": "streams",
        "budget": {"kind": "daily", "amount_micros": 20_000_000}, "currency": "USD",
        "schedule": {"start": "2026-12-01", "end": "2026-12-31"}, "countries": ["PK"],
        "creatives": [{"kind": "facebook_post", "post_id": "p1"}]
    })
}

/// Publishes a policy and signs `person` up; returns their bearer token.
async fn signed_up(app: &TestApp, person: &str) -> String {
    let support = app.token("support-1", Role::Support);
    let service = app.token("auth-hook", Role::Service);
    let (status, body) = app
        .send(
            &support,
            reqwest::Method::POST,
            "/v1/policies",
            Some(json!({"label": "v1", "effective_date": "2020-01-01", "locale": "en", "text": "t", "summary_of_changes": "c"})),
        )
        .await;
    assert!(
        status == StatusCode::CREATED || status == StatusCode::CONFLICT,
        "{status} {body}"
    );
    let (status, body) = app
        .send(
            &service,
            reqwest::Method::POST,
            "/v1/accounts",
            Some(json!({
                "person_id": person, "provider": "google", "provider_subject": "google-oauth2|1",
                "name": "Ayesha", "email": "ayesha@example.com", "country": "PK", "birth_date": "1995-05-05",
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.token(person, Role::Person)
}

/// Creates an artist; returns its id and the creation's position.
async fn artist(app: &TestApp, token: &str) -> (String, String) {
    let (status, body) = app
        .send(
            token,
            reqwest::Method::POST,
            "/v1/artists",
            Some(json!({"name": "Band"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (
        body["artist_id"].as_str().unwrap().to_string(),
        body["position"].as_str().unwrap().to_string(),
    )
}

/// Waits (with the consistency token) until the artist's read model holds it.
async fn visible(app: &TestApp, token: &str, artist: &str, position: &str) {
    let (status, body) = app
        .send(
            token,
            reqwest::Method::GET,
            &format!("/v1/artists/{artist}?min_position={position}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn count(db: &Db, sql: &str) -> i64 {
    match db {
        Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
    }
}

/// Makes every attempt to store an idempotent command's answer fail (after the command has
/// committed), as a dropped connection or a crash at that moment would.
async fn fail_answer_storage(db: &Db) {
    match db {
        Db::Postgres(pool) => {
            sqlx::query(
                "CREATE FUNCTION fail_completion() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN IF NEW.state = 'done' THEN RAISE EXCEPTION 'injected fault'; END IF; RETURN NEW; END $$",
            )
            .execute(pool)
            .await
            .unwrap();
            sqlx::query(
                "CREATE TRIGGER fail_completion BEFORE UPDATE ON idempotency_keys \
                 FOR EACH ROW EXECUTE FUNCTION fail_completion()",
            )
            .execute(pool)
            .await
            .unwrap();
        }
        Db::Sqlite(pool) => {
            sqlx::query(
                "CREATE TRIGGER fail_completion BEFORE UPDATE ON idempotency_keys WHEN NEW.state = 'done' \
                 BEGIN SELECT RAISE(ABORT, 'injected fault'); END",
            )
            .execute(pool)
            .await
            .unwrap();
        }
    }
}

async fn heal_answer_storage(db: &Db) {
    match db {
        Db::Postgres(pool) => {
            sqlx::query("DROP TRIGGER fail_completion ON idempotency_keys")
                .execute(pool)
                .await
                .unwrap();
        }
        Db::Sqlite(pool) => {
            sqlx::query("DROP TRIGGER fail_completion").execute(pool).await.unwrap();
        }
    }
}

async fn draft_with_key(app: &TestApp, token: &str, artist: &str, key: &str, body: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/v1/artists/{artist}/campaigns", app.base_url))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

on_both_backends!(
    a_retry_after_the_answer_was_lost_finds_the_command_and_runs_it_once,
    &[],
    |app| {
        let me = signed_up(&app, "p-idem").await;
        let (artist, position) = artist(&app, &me).await;
        visible(&app, &me, &artist, &position).await;
        fail_answer_storage(&app.db.db).await;

        let body = campaign_body().to_string();
        let first = draft_with_key(&app, &me, &artist, "draft-1", &body).await;
        assert_eq!(
            first.status(),
            StatusCode::CREATED,
            "the command committed: its answer is a success even though storing it failed"
        );
        let first: Value = first.json().await.unwrap();
        let campaign = first["campaign_id"].as_str().unwrap().to_string();

        // The same JSON with other whitespace and key order is the same request.
        let reordered: Value = serde_json::from_str(&body).unwrap();
        let mut fields: Vec<(String, Value)> = reordered.as_object().unwrap().clone().into_iter().collect();
        fields.reverse();
        let respaced = format!(
            "{{ {} }}",
            fields
                .iter()
                .map(|(k, v)| format!("{:?} :  {}", k, serde_json::to_string_pretty(v).unwrap()))
                .collect::<Vec<_>>()
                .join(" ,\n ")
        );
        let retry = draft_with_key(&app, &me, &artist, "draft-1", &respaced).await;
        assert_eq!(retry.status(), StatusCode::OK, "answered from the committed effect");
        assert_eq!(retry.headers()["idempotent-replayed"], "true");
        let retry: Value = retry.json().await.unwrap();
        assert_eq!(retry["campaign_id"], campaign.as_str());
        assert_eq!(retry["position"], first["position"]);

        // Past the 60 s after which a claim whose command committed nothing may be taken over:
        // this one committed, so it is never run again.
        app.clock.advance(chrono::Duration::seconds(61));
        heal_answer_storage(&app.db.db).await;
        let late = draft_with_key(&app, &me, &artist, "draft-1", &body).await;
        assert_eq!(late.status(), StatusCode::OK);
        let late: Value = late.json().await.unwrap();
        assert_eq!(late["campaign_id"], campaign.as_str());

        let position = first["position"].as_str().unwrap();
        let (status, listed) = app
            .send(
                &me,
                reqwest::Method::GET,
                &format!("/v1/artists/{artist}/campaigns?min_position={position}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{listed}");
        assert_eq!(listed["campaigns"].as_array().unwrap().len(), 1, "{listed}");
        assert_eq!(
            count(
                &app.db.db,
                "SELECT count(*) FROM events WHERE aggregate_type = 'campaign'"
            )
            .await,
            1,
            "one campaign for three requests"
        );

        // A key is remembered for 24 hours, then expires and is purged by the retention job.
        app.clock.advance(chrono::Duration::hours(25));
        let ran = app::jobs::run_now(
            &app.app,
            app::jobs::Job::Retention,
            app.now().date_naive(),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        let app::jobs::JobRun::Ran {
            report: app::jobs::JobReport::Retention(report),
            ..
        } = ran
        else {
            panic!("the retention job ran: {ran:?}");
        };
        assert_eq!(report.idempotency_keys_purged, 1);
        assert_eq!(count(&app.db.db, "SELECT count(*) FROM idempotency_keys").await, 0);
        let fresh = draft_with_key(&app, &me, &artist, "draft-1", &body).await;
        assert_eq!(fresh.status(), StatusCode::CREATED, "an expired key is a new request");
    }
);

on_both_backends!(
    an_idempotent_command_answered_normally_is_replayed_exactly,
    &[],
    |app| {
        let me = signed_up(&app, "p-replay").await;
        let (artist, position) = artist(&app, &me).await;
        visible(&app, &me, &artist, &position).await;
        let body = campaign_body().to_string();
        let first = draft_with_key(&app, &me, &artist, "k", &body).await;
        assert_eq!(first.status(), StatusCode::CREATED);
        let first: Value = first.json().await.unwrap();
        let retry = draft_with_key(&app, &me, &artist, "k", &body).await;
        assert_eq!(retry.status(), StatusCode::CREATED);
        assert_eq!(retry.headers()["idempotent-replayed"], "true");
        assert_eq!(retry.json::<Value>().await.unwrap(), first);
        assert_eq!(
            count(&app.db.db, "SELECT count(*) FROM idempotency_keys WHERE state = 'done'").await,
            1
        );
    }
);

on_both_backends!(
    fifty_concurrent_budget_changes_on_one_campaign_all_succeed,
    &[],
    |app| {
        let me = signed_up(&app, "p-busy").await;
        let (artist, position) = artist(&app, &me).await;
        visible(&app, &me, &artist, &position).await;
        let (status, draft) = app
            .send(
                &me,
                reqwest::Method::POST,
                &format!("/v1/artists/{artist}/campaigns"),
                Some(campaign_body()),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{draft}");
        let campaign = draft["campaign_id"].as_str().unwrap().to_string();
        let amounts: Vec<i64> = (1..=50).map(|i| 10_000_000 + i * 1_000).collect();
        let changes = amounts.iter().map(|amount| {
            let (client, url, me) = (
                app.client.clone(),
                format!("{}/v1/campaigns/{campaign}/budget", app.base_url),
                me.clone(),
            );
            let body = json!({"kind": "daily", "amount_micros": amount});
            tokio::spawn(async move {
                let response = client.post(url).bearer_auth(me).json(&body).send().await.unwrap();
                let status = response.status();
                (status, response.text().await.unwrap())
            })
        });
        let answers = futures::future::join_all(changes).await;
        let refused: Vec<String> = answers
            .into_iter()
            .map(|a| a.unwrap())
            .filter(|(status, _)| *status != StatusCode::OK)
            .map(|(status, body)| format!("{status} {body}"))
            .collect();
        assert!(refused.is_empty(), "{} of 50 refused: {refused:?}", refused.len());
        let events = count(
            &app.db.db,
            &format!("SELECT count(*) FROM events WHERE aggregate_type = 'campaign' AND aggregate_id = '{campaign}'"),
        )
        .await;
        assert_eq!(events, 51, "the draft and 50 budget changes");
        let (campaign, _, _) = app
            .app
            .log
            .load_aggregate::<domain::campaign::Campaign>(&campaign)
            .await
            .unwrap();
        let budget = serde_json::to_value(&campaign.details().unwrap().budget).unwrap();
        let last = budget["amount_micros"].as_i64().unwrap();
        assert!(amounts.contains(&last), "the final budget is one of the 50: {budget}");
    }
);

on_both_backends!(
    commands_right_after_creating_an_artist_honour_its_position,
    &[],
    |app| {
        let me = signed_up(&app, "p-fresh").await;
        for round in 0..20 {
            let (artist, position) = artist(&app, &me).await;
            let (status, body) = app
                .send(
                    &me,
                    reqwest::Method::POST,
                    &format!("/v1/artists/{artist}/campaigns?min_position={position}"),
                    Some(campaign_body()),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "round {round}: {body}");
        }
    }
);
