//! Resend: one email per call with the API key as a bearer token, an `Idempotency-Key` that
//! every retry repeats, Resend's error names, and the recipient kept out of errors.

use std::time::{Duration, Instant};

use connectors::resend::{EmailMessage, Resend, ResendSettings};
use connectors::{ConnectorError, HttpSettings};
use serde_json::json;
use wiremock::matchers::{bearer_token, body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{base, fast_http, impatient_http, requests, secret, SLOW};

const API_KEY: &str = "re_123456789_resend_key";
const RECIPIENT: &str = "invitee.person@example.com";

fn resend(server: &MockServer, http: HttpSettings) -> Resend {
    let mut settings = ResendSettings::new(secret(API_KEY));
    settings.base_url = base(server);
    settings.http = http;
    Resend::new(settings).unwrap()
}

fn invitation() -> EmailMessage {
    EmailMessage {
        from: "dynamoi <invitations@dynamoi.test>".into(),
        to: vec![RECIPIENT.into()],
        subject: "You are invited to manage The Artist".into(),
        html: "<p><a href=\"https://app.dynamoi.test/invitations/secret-link\">Accept</a></p>".into(),
        text: "Accept: https://app.dynamoi.test/invitations/secret-link".into(),
    }
}

fn sent(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"id": id}))
}

#[tokio::test]
async fn an_email_is_posted_with_the_api_key_the_idempotency_key_and_its_json_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .and(bearer_token(API_KEY))
        .and(header("idempotency-key", "invitation/0190a7c2"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "from": "dynamoi <invitations@dynamoi.test>",
            "to": [RECIPIENT],
            "subject": "You are invited to manage The Artist",
            "html": "<p><a href=\"https://app.dynamoi.test/invitations/secret-link\">Accept</a></p>",
            "text": "Accept: https://app.dynamoi.test/invitations/secret-link"
        })))
        .respond_with(sent("49a3999c-0ce1-4ea6-ab68-afcd6dc2e794"))
        .expect(1)
        .mount(&server)
        .await;

    let id = resend(&server, fast_http())
        .send_email(&invitation(), "invitation/0190a7c2")
        .await
        .unwrap();

    assert_eq!(id, "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794");
}

#[tokio::test]
async fn a_500_is_retried_with_the_same_idempotency_key_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(sent("email-1"))
        .expect(1)
        .mount(&server)
        .await;

    let id = resend(&server, fast_http())
        .send_email(&invitation(), "invitation/retry")
        .await
        .unwrap();

    assert_eq!(id, "email-1");
    let keys: Vec<_> = requests(&server)
        .await
        .iter()
        .map(|request| crate::support::header(request, "idempotency-key").map(str::to_owned))
        .collect();
    assert_eq!(
        keys,
        [Some("invitation/retry".to_owned()), Some("invitation/retry".to_owned())]
    );
}

#[tokio::test]
async fn a_500_on_every_attempt_fails_with_server() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(ResponseTemplate::new(500))
        .expect(3)
        .mount(&server)
        .await;

    let error = resend(&server, fast_http())
        .send_email(&invitation(), "invitation/down")
        .await
        .unwrap_err();

    assert!(matches!(error, ConnectorError::Server { status: 500 }), "{error:?}");
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(json!({
                    "statusCode": 429, "name": "rate_limit_exceeded", "message": "Too many requests."
                })),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(sent("email-2"))
        .expect(1)
        .mount(&server)
        .await;

    let started = Instant::now();
    let id = resend(&server, fast_http())
        .send_email(&invitation(), "invitation/limited")
        .await
        .unwrap();

    assert_eq!(id, "email-2");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited only {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_exhausted_daily_quota_is_rate_limited_without_retrying() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({
            "statusCode": 429, "name": "daily_quota_exceeded", "message": "You have reached your daily email sending quota."
        })))
        .expect(1)
        .mount(&server)
        .await;

    let error = resend(&server, fast_http())
        .send_email(&invitation(), "invitation/quota")
        .await
        .unwrap_err();

    assert!(
        matches!(error, ConnectorError::RateLimited { retry_after: None }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_rejected_api_key_is_an_invalid_token() {
    for (status, name) in [
        (401, "validation_error"),
        (401, "missing_api_key"),
        (403, "invalid_api_key"),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/emails"))
            .respond_with(ResponseTemplate::new(status).set_body_json(json!({
                "statusCode": status, "name": name, "message": "API key is invalid"
            })))
            .expect(1)
            .mount(&server)
            .await;

        let error = resend(&server, fast_http())
            .send_email(&invitation(), "invitation/key")
            .await
            .unwrap_err();

        assert!(
            matches!(error, ConnectorError::InvalidToken),
            "{status} {name}: {error:?}"
        );
    }
}

#[tokio::test]
async fn a_validation_error_keeps_its_name_but_not_the_message_quoting_the_recipient() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "statusCode": 422,
            "name": "validation_error",
            "message": format!("Invalid `to` field. The email address needs to follow the `email@example.com` format: {RECIPIENT}")
        })))
        .expect(1)
        .mount(&server)
        .await;

    let error = resend(&server, fast_http())
        .send_email(&invitation(), "invitation/invalid")
        .await
        .unwrap_err();

    assert!(
        matches!(&error, ConnectorError::Client { status: 422, code: Some(code) } if code == "validation_error"),
        "{error:?}"
    );
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains(RECIPIENT), "{shown}");
}

#[tokio::test]
async fn a_concurrent_request_with_the_same_key_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "statusCode": 409, "name": "concurrent_idempotent_requests", "message": "Same idempotency key used while original request is still in progress."
        })))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(sent("email-3"))
        .expect(1)
        .mount(&server)
        .await;

    let id = resend(&server, fast_http())
        .send_email(&invitation(), "invitation/concurrent")
        .await
        .unwrap();

    assert_eq!(id, "email-3");
}

#[tokio::test]
async fn a_provider_slower_than_the_timeout_is_a_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(sent("too-late").set_delay(SLOW))
        .expect(2)
        .mount(&server)
        .await;

    let error = resend(&server, impatient_http())
        .send_email(&invitation(), "invitation/slow")
        .await
        .unwrap_err();

    assert!(matches!(error, ConnectorError::Timeout), "{error:?}");
}

#[tokio::test]
async fn an_idempotency_key_or_recipient_list_out_of_bounds_is_refused_before_sending() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(sent("never"))
        .expect(0)
        .mount(&server)
        .await;
    let resend = resend(&server, fast_http());

    for key in [String::new(), "x".repeat(257), "has space".into(), "new\nline".into()] {
        let error = resend.send_email(&invitation(), &key).await.unwrap_err();
        assert!(matches!(error, ConnectorError::InvalidInput(_)), "{key:?}: {error:?}");
    }
    let nobody = EmailMessage {
        to: vec![],
        ..invitation()
    };
    assert!(matches!(
        resend.send_email(&nobody, "k").await,
        Err(ConnectorError::InvalidInput(_))
    ));
}

#[test]
fn debug_of_a_message_shows_neither_the_recipient_nor_the_body() {
    let shown = format!("{:?} {:#?}", invitation(), invitation());
    assert!(!shown.contains(RECIPIENT), "{shown}");
    assert!(!shown.contains("secret-link"), "{shown}");
    assert!(shown.contains("1 recipient(s) REDACTED"), "{shown}");
}

// Deleting a contact (erasure): `DELETE /contacts/{email}`.

const CONTACT: &str = "leaving.person+news@example.com";

#[tokio::test]
async fn a_contact_is_deleted_by_its_address_with_the_api_key() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(format!("/contacts/{CONTACT}")))
        .and(bearer_token(API_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "contact",
            "contact": "520784e2-887d-4c25-b53c-4ad46ad38100",
            "deleted": true
        })))
        .expect(1)
        .mount(&server)
        .await;

    resend(&server, fast_http()).delete_contact(CONTACT).await.unwrap();

    let received = requests(&server).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method.as_str(), "DELETE");
    assert_eq!(received[0].url.query(), None);
    assert!(received[0].body.is_empty());
}

#[tokio::test]
async fn a_contact_resend_does_not_have_is_already_deleted() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(format!("/contacts/{CONTACT}")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "statusCode": 404, "name": "not_found", "message": "Contact not found"
        })))
        .expect(1)
        .mount(&server)
        .await;

    resend(&server, fast_http()).delete_contact(CONTACT).await.unwrap();
}

#[tokio::test]
async fn a_refused_contact_deletion_is_an_error_without_the_address() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(format!("/contacts/{CONTACT}")))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "statusCode": 403, "name": "invalid_api_key", "message": format!("API key invalid for {CONTACT}")
        })))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("/contacts/{CONTACT}")))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "statusCode": 422, "name": "validation_error", "message": format!("{CONTACT} is not valid")
        })))
        .expect(1)
        .mount(&server)
        .await;
    let resend = resend(&server, fast_http());

    let unauthorised = resend.delete_contact(CONTACT).await.unwrap_err();
    let refused = resend.delete_contact(CONTACT).await.unwrap_err();

    assert!(matches!(unauthorised, ConnectorError::InvalidToken), "{unauthorised:?}");
    assert!(
        matches!(&refused, ConnectorError::Client { status: 422, code: Some(code) } if code == "validation_error"),
        "{refused:?}"
    );
    assert!(!format!("{refused} {refused:?}").contains("leaving.person"));
}

#[tokio::test]
async fn a_contact_deletion_failing_with_5xx_is_retried_then_fails_with_server() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(format!("/contacts/{CONTACT}")))
        .respond_with(ResponseTemplate::new(500))
        .expect(3)
        .mount(&server)
        .await;

    let error = resend(&server, fast_http()).delete_contact(CONTACT).await.unwrap_err();

    assert!(matches!(error, ConnectorError::Server { status: 500 }), "{error:?}");
}

#[tokio::test]
async fn an_address_that_is_not_one_is_refused_before_sending() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let resend = resend(&server, fast_http());

    for bad in [
        "",
        "no-at-sign",
        "a b@example.com",
        "a@example.com\n",
        &format!("{}@x.y", "a".repeat(320)),
    ] {
        let error = resend.delete_contact(bad).await.unwrap_err();
        assert!(matches!(error, ConnectorError::InvalidInput(_)), "{bad:?}: {error:?}");
    }
}
