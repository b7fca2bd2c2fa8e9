//! End-to-end HTTP tests: the real application on a random port, over a fresh PostgreSQL
//! database and a temporary SQLite file, driven with a real HTTP client.

use api::auth::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tests::{Backend, TestApp};

/// Runs an end-to-end test body against an app on each backend.
macro_rules! on_both_backends {
    ($name:ident, $extra:expr, |$app:ident| $body:block) => {
        mod $name {
            use super::*;
            async fn run($app: TestApp) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() {
                run(TestApp::spawn(Backend::Sqlite, $extra).await.expect("SQLite is always there")).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgres() {
                if let Some(app) = TestApp::spawn(Backend::Postgres, $extra).await {
                    run(app).await
                }
            }
        }
    };
}

fn version(label: &str, date: &str, text: &str) -> Value {
    json!({
        "label": label,
        "effective_date": date,
        "locale": "ur-PK",
        "text": text,
        "summary_of_changes": "Clarifies how ad-spend data is used for billing.",
    })
}

async fn publish(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(format!("{}/v1/policies", app.base_url))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("the request is sent")
}

async fn get(app: &TestApp, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(format!("{}{path}", app.base_url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("the request is sent")
}

/// GETs `path` and decodes the JSON answer.
async fn get_json(app: &TestApp, path: &str, token: &str) -> Value {
    get(app, path, Some(token)).await.json().await.expect("a JSON answer")
}

/// Asserts a problem+json answer with this status and code, and returns its body.
async fn problem(response: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let body: Value = response.json().await.expect("a JSON problem");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status.as_u16());
    assert!(body["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    body
}

on_both_backends!(
    a_published_version_is_read_back_with_its_consistency_token,
    &[],
    |app| {
        let support = app.token("support-1", Role::Support);
        let person = app.token("person-1", Role::Person);
        let response = publish(&app, &support, &version("2026-11", "2026-11-01", "the text")).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let header_position = response.headers()["x-dynamoi-position"].to_str().unwrap().to_string();
        let created: Value = response.json().await.unwrap();
        assert_eq!(created["version_number"], 1);
        assert_eq!(created["position"], header_position.as_str());
        // The server hashed the text and kept only the hash.
        assert_eq!(created["text_sha256"], hex::encode(Sha256::digest(b"the text")));
        let token = created["position"].as_str().unwrap();

        let listed: Value = get_json(&app, &format!("/v1/policies?min_position={token}"), &person).await;
        let versions = listed["versions"].as_array().unwrap();
        assert_eq!(versions.len(), 1);
        assert_eq!(versions[0]["label"], "2026-11");
        assert_eq!(versions[0]["locale"], "ur-PK");
        assert_eq!(versions[0]["effective_date"], "2026-11-01");

        let current = get(
            &app,
            &format!("/v1/policies/current?locale=ur-PK&min_position={token}"),
            Some(&person),
        )
        .await;
        assert_eq!(current.status(), StatusCode::OK);
        let current: Value = current.json().await.unwrap();
        assert_eq!(current["label"], "2026-11");
        assert_eq!(current["version_number"], 1);
    }
);

on_both_backends!(
    the_current_version_is_the_latest_in_force_not_a_future_one,
    &[],
    |app| {
        let support = app.token("support-1", Role::Support);
        let first = publish(&app, &support, &version("v1", "2020-01-01", "one")).await;
        assert_eq!(first.status(), StatusCode::CREATED);
        let future = publish(&app, &support, &version("v2", "2999-01-01", "two")).await;
        assert_eq!(future.status(), StatusCode::CREATED);
        let token = future.json::<Value>().await.unwrap()["position"]
            .as_str()
            .unwrap()
            .to_string();
        let current: Value = get(
            &app,
            &format!("/v1/policies/current?min_position={token}"),
            Some(&support),
        )
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(current["label"], "v1");
        let missing = get(
            &app,
            &format!("/v1/policies/current?locale=en&min_position={token}"),
            Some(&support),
        )
        .await;
        problem(missing, StatusCode::NOT_FOUND, "not_found").await;
    }
);

on_both_backends!(publishing_needs_a_token_and_the_support_role, &[], |app| {
    let person = app.token("person-1", Role::Person);
    let refused = publish(&app, &person, &version("v1", "2026-01-01", "t")).await;
    let body = problem(refused, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(body["detail"], "this action needs the role support");
    let anonymous = app
        .client
        .post(format!("{}/v1/policies", app.base_url))
        .json(&version("v1", "2026-01-01", "t"))
        .send()
        .await
        .unwrap();
    problem(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let forged = publish(&app, "not-a-token", &version("v1", "2026-01-01", "t")).await;
    problem(forged, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let listed: Value = get_json(&app, "/v1/policies", &person).await;
    assert_eq!(listed["versions"], json!([]), "a refused command stores nothing");
});

on_both_backends!(
    a_duplicate_or_out_of_order_version_is_a_conflict_and_changes_nothing,
    &[],
    |app| {
        let support = app.token("support-1", Role::Support);
        let ok = publish(&app, &support, &version("2026-06", "2026-06-01", "a")).await;
        assert_eq!(ok.status(), StatusCode::CREATED);
        let token = ok.json::<Value>().await.unwrap()["position"]
            .as_str()
            .unwrap()
            .to_string();
        let again = publish(&app, &support, &version("2026-06", "2026-07-01", "b")).await;
        let body = problem(again, StatusCode::CONFLICT, "conflict").await;
        assert_eq!(body["detail"], "version `2026-06` has already been published");
        let earlier = publish(&app, &support, &version("2026-05", "2026-05-01", "c")).await;
        problem(earlier, StatusCode::CONFLICT, "conflict").await;
        let listed: Value = get_json(&app, &format!("/v1/policies?min_position={token}"), &support).await;
        assert_eq!(listed["versions"].as_array().unwrap().len(), 1);
    }
);

on_both_backends!(
    malformed_requests_get_specific_problems,
    &[("DYNAMOI_MAX_BODY_BYTES", "2048")],
    |app| {
        let support = app.token("support-1", Role::Support);
        let url = format!("{}/v1/policies", app.base_url);
        let not_json = app
            .client
            .post(&url)
            .bearer_auth(&support)
            .body("label=x")
            .header("content-type", "text/plain")
            .send()
            .await
            .unwrap();
        problem(not_json, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
        let broken = app
            .client
            .post(&url)
            .bearer_auth(&support)
            .header("content-type", "application/json")
            .body("{\"label\":")
            .send()
            .await
            .unwrap();
        problem(broken, StatusCode::BAD_REQUEST, "invalid_request").await;
        let mut unknown_field = version("v1", "2026-01-01", "t");
        unknown_field["colour"] = json!("blue");
        let body = problem(
            publish(&app, &support, &unknown_field).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert!(body["detail"].as_str().unwrap().contains("colour"), "{body}");
        let mut both = version("v1", "2026-01-01", "t");
        both["text_sha256"] = json!("a".repeat(64));
        problem(
            publish(&app, &support, &both).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        let mut bad_date = version("v1", "2026-01-01", "t");
        bad_date["effective_date"] = json!("yesterday");
        problem(
            publish(&app, &support, &bad_date).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        let mut bad_locale = version("v1", "2026-01-01", "t");
        bad_locale["locale"] = json!("not a locale");
        let body = problem(
            publish(&app, &support, &bad_locale).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert!(body["detail"].as_str().unwrap().contains("BCP 47"));
        let huge = version("v1", "2026-01-01", &"x".repeat(4096));
        problem(
            publish(&app, &support, &huge).await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        )
        .await;
        let bad_query = get(&app, "/v1/policies?colour=blue", Some(&support)).await;
        problem(bad_query, StatusCode::BAD_REQUEST, "invalid_request").await;
        let bad_token = get(&app, "/v1/policies?min_position=soon", Some(&support)).await;
        problem(bad_token, StatusCode::BAD_REQUEST, "invalid_request").await;
        let listed: Value = get_json(&app, "/v1/policies", &support).await;
        assert_eq!(listed["versions"], json!([]), "refused requests store nothing");
    }
);

on_both_backends!(
    a_read_waiting_for_an_unreached_position_says_the_read_model_is_behind,
    &[("DYNAMOI_CONSISTENCY_WAIT_MS", "200")],
    |app| {
        let person = app.token("person-1", Role::Person);
        let response = get(&app, "/v1/policies?min_position=999999999.999999999", Some(&person)).await;
        assert_eq!(response.headers()["retry-after"], "1");
        let body = problem(response, StatusCode::SERVICE_UNAVAILABLE, "read_model_behind").await;
        assert!(body["detail"].as_str().unwrap().contains("policy_versions"));
    }
);

on_both_backends!(unknown_routes_and_methods_answer_problems, &[], |app| {
    problem(
        get(&app, "/v1/nothing-here", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let delete = app
        .client
        .delete(format!("{}/v1/policies", app.base_url))
        .send()
        .await
        .unwrap();
    problem(delete, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
});

on_both_backends!(health_readiness_metrics_and_openapi_answer, &[], |app| {
    let support = app.token("support-1", Role::Support);
    let created = publish(&app, &support, &version("v1", "2026-01-01", "t")).await;
    let token = created.json::<Value>().await.unwrap()["position"]
        .as_str()
        .unwrap()
        .to_string();
    get(&app, &format!("/v1/policies?min_position={token}"), Some(&support)).await;

    let health = get(&app, "/healthz", None).await;
    assert_eq!(health.status(), StatusCode::OK);
    assert!(health.headers().contains_key("x-request-id"));
    let ready = get(&app, "/readyz", None).await;
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "ready");

    let metrics = get(&app, "/metrics", None).await.text().await.unwrap();
    for expected in [
        "dynamoi_events_appended_total",
        "dynamoi_feed_head_position",
        "dynamoi_projection_lag_events{projection=\"policy_versions\"} 0",
        "dynamoi_projection_lag_seconds{projection=\"stream_index\"}",
        "dynamoi_http_request_duration_seconds_bucket",
    ] {
        assert!(metrics.contains(expected), "/metrics lacks {expected}:\n{metrics}");
    }
    let openapi: Value = get(&app, "/openapi.json", None).await.json().await.unwrap();
    assert_eq!(openapi["openapi"], "3.1.0");
    assert!(openapi["paths"]["/v1/policies/current"]["get"].is_object());
});

on_both_backends!(a_request_id_given_by_the_caller_comes_back, &[], |app| {
    let response = app
        .client
        .get(format!("{}/v1/policies", app.base_url))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-abc-123");
    let body = problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(body["request_id"], "trace-abc-123");
});

on_both_backends!(what_was_acknowledged_survives_a_restart, &[], |app| {
    let support = app.token("support-1", Role::Support);
    let created = publish(&app, &support, &version("v1", "2026-01-01", "t")).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let token = created.json::<Value>().await.unwrap()["position"]
        .as_str()
        .unwrap()
        .to_string();
    let db = app.stop().await;
    let app = TestApp::spawn_on(db, &[]).await;
    // The token from before the restart still means the same place in the log.
    let listed: Value = get_json(&app, &format!("/v1/policies?min_position={token}"), &support).await;
    assert_eq!(listed["versions"].as_array().unwrap().len(), 1);
    let again = publish(&app, &support, &version("v1", "2026-02-01", "u")).await;
    problem(again, StatusCode::CONFLICT, "conflict").await;
    app.stop().await;
});

on_both_backends!(
    a_retried_command_with_the_same_idempotency_key_is_applied_once,
    &[],
    |app| {
        let support = app.token("support-1", Role::Support);
        let send = |key: &'static str, body: Value| {
            app.client
                .post(format!("{}/v1/policies", app.base_url))
                .bearer_auth(&support)
                .header("idempotency-key", key)
                .json(&body)
                .send()
        };
        let first = send("key-1", version("v1", "2026-01-01", "t")).await.unwrap();
        assert_eq!(first.status(), StatusCode::CREATED);
        assert!(!first.headers().contains_key("idempotent-replayed"));
        let first: Value = first.json().await.unwrap();

        let retry = send("key-1", version("v1", "2026-01-01", "t")).await.unwrap();
        assert_eq!(retry.status(), StatusCode::CREATED, "the stored answer, not a conflict");
        assert_eq!(retry.headers()["idempotent-replayed"], "true");
        let retry: Value = retry.json().await.unwrap();
        assert_eq!(retry, first);

        let reused = send("key-1", version("v2", "2026-02-01", "u")).await.unwrap();
        problem(reused, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

        let token = first["position"].as_str().unwrap();
        let listed: Value = get_json(&app, &format!("/v1/policies?min_position={token}"), &support).await;
        assert_eq!(
            listed["versions"].as_array().unwrap().len(),
            1,
            "one version despite three requests"
        );
        let events: i64 = match &app.db.db {
            eventlog::Db::Postgres(pool) => sqlx::query_scalar("SELECT count(*) FROM events")
                .fetch_one(pool)
                .await
                .unwrap(),
            eventlog::Db::Sqlite(pool) => sqlx::query_scalar("SELECT count(*) FROM events")
                .fetch_one(pool)
                .await
                .unwrap(),
        };
        assert_eq!(events, 1);
    }
);
