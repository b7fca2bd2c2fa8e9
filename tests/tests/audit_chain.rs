//! Tamper evidence on both backends: every stream is a hash chain that verifies, and an edited
//! payload is reported with its stream and sequence.

use domain::policy::{PolicyCommand, PolicyDocument};
use eventlog::{dispatch, Db, EventMetadata};
use tests::{both_backends, three_backends};

async fn publish_three(log: &eventlog::EventLog) {
    let meta = EventMetadata {
        actor: "support:s".into(),
        ..Default::default()
    };
    for (i, date) in ["2026-01-01", "2026-02-01", "2026-03-01"].iter().enumerate() {
        let command = PolicyCommand::PublishVersion {
            label: format!("v{i}"),
            effective_date: date.parse().unwrap(),
            locale: "en".into(),
            text_sha256: format!("{i}").repeat(64),
            summary_of_changes: "changes".into(),
        };
        log.execute::<PolicyDocument>("privacy-policy", command, &meta)
            .await
            .unwrap();
    }
}

three_backends! {
    async fn every_stream_written_by_commands_verifies(db: TestDb) {
        let log = db.log();
        publish_three(&log).await;
        log.append("other", "x", 0, vec![eventlog::NewEvent::json("A", "1", &serde_json::json!({"k": "v"}))], &EventMetadata::system()).await.unwrap();
        // An append without a loaded head looks the previous link up itself.
        log.append("other", "x", 1, vec![eventlog::NewEvent::json("B", "1", &serde_json::json!([1, 2]))], &EventMetadata::system()).await.unwrap();
        let all = log.streams().await.unwrap();
        assert_eq!(all.len(), 2);
        for (t, i) in all {
            let report = log.verify_stream(&t, &i).await.unwrap();
            assert_eq!(report.broken, None, "{t}/{i}");
        }
        let report = log.verify_stream("policy_document", "privacy-policy").await.unwrap();
        assert_eq!(report.events, 3);
    }
}

both_backends! {
    async fn an_edited_payload_is_reported_with_its_stream_and_sequence(db: TestDb) {
        let log = db.log();
        publish_three(&log).await;
        let edit = "UPDATE events SET payload = REPLACE(CAST(payload AS TEXT), 'v1', 'v9') \
                    WHERE aggregate_type = 'policy_document' AND sequence = 2";
        match &db.db {
            Db::Postgres(pool) => {
                sqlx::query(&edit.replace("REPLACE(CAST(payload AS TEXT), 'v1', 'v9')", "REPLACE(payload::text, 'v1', 'v9')::json"))
                    .execute(pool)
                    .await
                    .unwrap();
            }
            Db::Sqlite(pool) => {
                sqlx::query(edit).execute(pool).await.unwrap();
            }
        }
        let report = log.verify_stream("policy_document", "privacy-policy").await.unwrap();
        let broken = report.broken.expect("the edit is detected");
        assert_eq!(broken.sequence, 2);
        assert!(broken.reason.contains("altered"), "{}", broken.reason);
        // Editing metadata is detected too.
        let edit_meta = "UPDATE events SET metadata = '{\"actor\":\"someone-else\"}' WHERE sequence = 1";
        dispatch!(&db.db, Db, |pool| {
            sqlx::query(edit_meta).execute(pool).await.unwrap();
        });
        let report = log.verify_stream("policy_document", "privacy-policy").await.unwrap();
        assert_eq!(report.broken.unwrap().sequence, 1);
    }
}

mod over_http {
    use super::*;
    use api::auth::Role;
    use tests::{Backend, TestApp};

    async fn verified(backend: Backend) {
        let Some(app) = TestApp::spawn(backend, &[]).await else {
            return;
        };
        publish_three(&app.db.log()).await;
        let auditor = app.token("auditor-1", Role::Auditor);
        let url = format!("{}/v1/audit/verify", app.base_url);
        let answer: serde_json::Value = app
            .client
            .get(&url)
            .bearer_auth(&auditor)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["all_verified"], true, "{answer}");
        assert_eq!(answer["streams"][0]["events"], 3);
        let person = app.token("p", Role::Person);
        let refused = app.client.get(&url).bearer_auth(&person).send().await.unwrap();
        assert_eq!(refused.status(), 403);
        let edit = "UPDATE events SET event_type = 'Forged' WHERE sequence = 3";
        dispatch!(&app.db.db, Db, |pool| {
            sqlx::query(edit).execute(pool).await.unwrap();
        });
        let answer: serde_json::Value = app
            .client
            .get(format!("{url}?stream=policy_document/privacy-policy"))
            .bearer_auth(&auditor)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["all_verified"], false);
        assert_eq!(answer["streams"][0]["broken"]["sequence"], 3);
        let missing = app
            .client
            .get(format!("{url}?stream=nothing/here"))
            .bearer_auth(&auditor)
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
        app.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_auditor_verifies_chains_over_http_on_sqlite() {
        verified(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_auditor_verifies_chains_over_http_on_postgres() {
        verified(Backend::Postgres).await
    }
}
