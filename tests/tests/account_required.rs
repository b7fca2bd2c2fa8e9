//! Processing needs an account (issue 13, item 12), on both backends: a person who never signed
//! up (never passed the age gate) cannot connect a platform, create an artist, open a billing
//! account or record click ids: 403 `account_required` with the reason, and nothing is stored;
//! once signed up the same requests succeed; after closing the account they are refused again.

use api::auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tests::{both_backends, TestApp};

fn processing_requests() -> Vec<(&'static str, Value)> {
    vec![
        (
            "/v1/connections",
            json!({"platform": "meta", "page_id": "77", "access_token": "EAA-never-signed-up"}),
        ),
        ("/v1/artists", json!({"name": "Band"})),
        (
            "/v1/billing/accounts",
            json!({"stripe_customer_id": "cus_NOACCOUNT", "plan": {"monthly_fee_micros": 0, "included_spend_micros": 0,
                   "fee_basis_points": 250, "currency": "USD", "time_zone": "Etc/UTC"}}),
        ),
    ]
}

both_backends! {
    async fn a_person_who_never_signed_up_cannot_start_processing(db: TestDb) {
        let app = TestApp::spawn_on(db, &[]).await;
        let person = "never-signed-up";
        let token = app.token(person, Role::Person);
        let before = app.event_count().await;
        for (route, body) in processing_requests() {
            let (status, refused) = app.send(&token, Method::POST, route, Some(body)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{route}: {refused}");
            assert_eq!(refused["code"], "account_required", "{route}: {refused}");
            assert_eq!(
                refused["detail"], "sign up first: this needs an account that passed the age gate",
                "{route}: {refused}"
            );
        }
        assert_eq!(app.event_count().await, before, "nothing stored");

        // Signed up, the same requests succeed.
        app.sign_up(person).await;
        for (route, body) in processing_requests() {
            let (status, done) = app.send(&token, Method::POST, route, Some(body)).await;
            assert_eq!(status, StatusCode::CREATED, "{route}: {done}");
        }

        // A closed account processes nothing more.
        let (status, closed) = app.send(&token, Method::POST, "/v1/me/close", Some(json!({}))).await;
        assert!(status.is_success(), "{closed}");
        let (status, refused) = app
            .send(&token, Method::POST, "/v1/artists", Some(json!({"name": "Second band"})))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
        assert_eq!(refused["code"], "account_required", "{refused}");
        assert_eq!(
            refused["detail"], "this account is closed; its data is erased after the retention period",
            "{refused}"
        );
        app.stop().await;
    }
}
