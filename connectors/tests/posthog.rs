//! PostHog: a person found by distinct id and deleted with their events and recordings, the
//! personal API key as a bearer token, "no such person" told apart from a wrong project, and the
//! distinct id kept out of errors.

use std::time::{Duration, Instant};

use connectors::posthog::{PostHog, PostHogDeletion};
use connectors::{ConnectorError, HttpSettings};
use serde_json::json;
use wiremock::matchers::{bearer_token, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{base, fast_http, impatient_http, query, requests, secret, SLOW};

const API_KEY: &str = "phx_personal_api_key_SECRET";
const PROJECT: &str = "12345";
const DISTINCT_ID: &str = "0190a7c2-5b1e-7c3d-9f00-person";
const PERSON_UUID: &str = "01863799-062b-0000-8a61-b2842d5f8642";
const PERSONS_PATH: &str = "/api/projects/12345/persons/";

fn posthog(server: &MockServer, http: HttpSettings) -> PostHog {
    PostHog::new(http, base(server), PROJECT, secret(API_KEY)).unwrap()
}

fn person_path() -> String {
    format!("{PERSONS_PATH}{PERSON_UUID}/")
}

fn found() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "next": null,
        "previous": null,
        "results": [{
            "id": 1_234_567,
            "name": "person@example.com",
            "distinct_ids": [DISTINCT_ID, "anonymous-device-id"],
            "properties": {"email": "person@example.com"},
            "created_at": "2026-01-05T10:00:00Z",
            "uuid": PERSON_UUID
        }]
    }))
}

fn none_found() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"next": null, "previous": null, "results": []}))
}

fn drf_error(status: u16, kind: &str, code: &str, detail: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"type": kind, "code": code, "detail": detail, "attr": null}))
}

#[tokio::test]
async fn a_person_is_found_by_distinct_id_then_deleted_with_events_and_recordings() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PERSONS_PATH))
        .and(query_param("distinct_id", DISTINCT_ID))
        .and(bearer_token(API_KEY))
        .respond_with(found())
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(person_path()))
        .and(query_param("delete_events", "true"))
        .and(query_param("delete_recordings", "true"))
        .and(bearer_token(API_KEY))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&server)
        .await;

    let deletion = posthog(&server, fast_http()).delete_person(DISTINCT_ID).await.unwrap();

    assert_eq!(deletion, PostHogDeletion::Deleted { persons: 1 });
    let received = requests(&server).await;
    let shapes: Vec<_> = received
        .iter()
        .map(|request| {
            (
                request.method.to_string(),
                request.url.path().to_owned(),
                query(request),
            )
        })
        .collect();
    assert_eq!(
        shapes,
        [
            (
                "GET".to_owned(),
                PERSONS_PATH.to_owned(),
                [("distinct_id".to_owned(), DISTINCT_ID.to_owned())]
                    .into_iter()
                    .collect()
            ),
            (
                "DELETE".to_owned(),
                person_path(),
                [
                    ("delete_events".to_owned(), "true".to_owned()),
                    ("delete_recordings".to_owned(), "true".to_owned())
                ]
                .into_iter()
                .collect()
            ),
        ]
    );
    assert!(received[1].body.is_empty());
}

#[tokio::test]
async fn no_person_with_the_distinct_id_is_not_found_and_nothing_is_deleted() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PERSONS_PATH))
        .respond_with(none_found())
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(202))
        .expect(0)
        .mount(&server)
        .await;

    let deletion = posthog(&server, fast_http()).delete_person(DISTINCT_ID).await.unwrap();

    assert_eq!(deletion, PostHogDeletion::NotFound);
}

#[tokio::test]
async fn a_person_deleted_between_the_lookup_and_the_delete_counts_as_deleted() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PERSONS_PATH))
        .respond_with(found())
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(person_path()))
        .respond_with(drf_error(404, "invalid_request", "not_found", "Not found."))
        .expect(1)
        .mount(&server)
        .await;

    let deletion = posthog(&server, fast_http()).delete_person(DISTINCT_ID).await.unwrap();

    assert_eq!(deletion, PostHogDeletion::Deleted { persons: 1 });
}

#[tokio::test]
async fn a_special_distinct_id_travels_encoded_in_the_query() {
    let server = MockServer::start().await;
    let distinct_id = "user:42 & co/?x=1#";
    Mock::given(method("GET"))
        .and(path(PERSONS_PATH))
        .and(query_param("distinct_id", distinct_id))
        .respond_with(none_found())
        .expect(1)
        .mount(&server)
        .await;

    let deletion = posthog(&server, fast_http()).delete_person(distinct_id).await.unwrap();

    assert_eq!(deletion, PostHogDeletion::NotFound);
    assert_eq!(query(&requests(&server).await[0]).len(), 1);
}

#[tokio::test]
async fn a_wrong_project_or_key_is_an_error_never_a_person_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PERSONS_PATH))
        .respond_with(drf_error(404, "invalid_request", "not_found", "Project not found."))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(PERSONS_PATH))
        .respond_with(drf_error(
            401,
            "authentication_error",
            "authentication_failed",
            "Personal API key found in request Authorization header is invalid.",
        ))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(PERSONS_PATH))
        .respond_with(drf_error(
            403,
            "authentication_error",
            "permission_denied",
            &format!("API key missing required scope 'person:write' for {DISTINCT_ID}"),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let posthog = posthog(&server, fast_http());

    let missing_project = posthog.delete_person(DISTINCT_ID).await.unwrap_err();
    let wrong_key = posthog.delete_person(DISTINCT_ID).await.unwrap_err();
    let no_scope = posthog.delete_person(DISTINCT_ID).await.unwrap_err();

    assert!(
        matches!(missing_project, ConnectorError::NotFound),
        "{missing_project:?}"
    );
    assert!(matches!(wrong_key, ConnectorError::InvalidToken), "{wrong_key:?}");
    assert!(
        matches!(&no_scope, ConnectorError::Client { status: 403, code: Some(code) } if code == "permission_denied"),
        "{no_scope:?}"
    );
    for error in [missing_project, wrong_key, no_scope] {
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains(DISTINCT_ID) && !shown.contains(API_KEY), "{shown}");
    }
}

#[tokio::test]
async fn a_throttled_lookup_is_retried_after_its_retry_after_then_deletes() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PERSONS_PATH))
        .respond_with(
            drf_error(429, "throttled_error", "throttled", "Request was throttled.").insert_header("Retry-After", "1"),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(PERSONS_PATH))
        .respond_with(found())
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(person_path()))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;

    let started = Instant::now();
    let deletion = posthog(&server, fast_http()).delete_person(DISTINCT_ID).await.unwrap();

    assert_eq!(deletion, PostHogDeletion::Deleted { persons: 1 });
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited only {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_delete_failing_with_5xx_on_every_attempt_fails_with_server() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PERSONS_PATH))
        .respond_with(found())
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(person_path()))
        .respond_with(ResponseTemplate::new(503))
        .expect(3)
        .mount(&server)
        .await;

    let error = posthog(&server, fast_http())
        .delete_person(DISTINCT_ID)
        .await
        .unwrap_err();

    assert!(matches!(error, ConnectorError::Server { status: 503 }), "{error:?}");
}

#[tokio::test]
async fn a_slow_lookup_is_a_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PERSONS_PATH))
        .respond_with(none_found().set_delay(SLOW))
        .expect(2)
        .mount(&server)
        .await;

    let error = posthog(&server, impatient_http())
        .delete_person(DISTINCT_ID)
        .await
        .unwrap_err();

    assert!(matches!(error, ConnectorError::Timeout), "{error:?}");
}

#[tokio::test]
async fn an_unreadable_person_uuid_or_a_bad_input_fails_before_any_delete() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PERSONS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": [{"id": 1, "uuid": "../../x"}]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(202))
        .expect(0)
        .mount(&server)
        .await;
    let posthog = posthog(&server, fast_http());

    let unreadable = posthog.delete_person(DISTINCT_ID).await.unwrap_err();
    let empty = posthog.delete_person("").await.unwrap_err();
    let long = posthog.delete_person(&"d".repeat(201)).await.unwrap_err();

    assert!(matches!(unreadable, ConnectorError::Decode { .. }), "{unreadable:?}");
    assert!(matches!(empty, ConnectorError::InvalidInput(_)), "{empty:?}");
    assert!(matches!(long, ConnectorError::InvalidInput(_)), "{long:?}");
    assert!(matches!(
        PostHog::new(fast_http(), base(&server), "12/../3", secret(API_KEY)),
        Err(ConnectorError::Config(_))
    ));
    let debug = format!("{posthog:?}");
    assert!(!debug.contains(API_KEY), "{debug}");
}
