//! The retry rules every connector shares, seen through one of them (Resend, whose writes carry
//! an idempotency key): what is retried, how often, and what is returned when retries run out.

use std::net::TcpListener;
use std::time::Duration;

use connectors::resend::{EmailMessage, Resend, ResendSettings};
use connectors::{ConnectorError, HttpSettings, Url};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{base, fast_http, secret};

fn resend(base_url: Url, http: HttpSettings) -> Resend {
    let mut settings = ResendSettings::new(secret("re_retries_key"));
    settings.base_url = base_url;
    settings.http = http;
    Resend::new(settings).unwrap()
}

fn message() -> EmailMessage {
    EmailMessage {
        from: "dynamoi <invitations@dynamoi.test>".into(),
        to: vec!["invitee@example.com".into()],
        subject: "You are invited".into(),
        html: "<p>Join</p>".into(),
        text: "Join".into(),
    }
}

#[tokio::test]
async fn a_retry_after_longer_than_the_cap_is_returned_at_once_as_rate_limited() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "3600"))
        .expect(1)
        .mount(&server)
        .await;

    let error = resend(base(&server), fast_http())
        .send_email(&message(), "invite/1")
        .await
        .unwrap_err();

    assert!(
        matches!(error, ConnectorError::RateLimited { retry_after: Some(after) } if after == Duration::from_secs(3600)),
        "{error:?}"
    );
    assert!(error.is_transient());
}

#[tokio::test]
async fn a_429_on_every_attempt_ends_rate_limited_after_three_attempts() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0"))
        .expect(3)
        .mount(&server)
        .await;

    let error = resend(base(&server), fast_http())
        .send_email(&message(), "invite/2")
        .await
        .unwrap_err();

    assert!(
        matches!(
            error,
            ConnectorError::RateLimited {
                retry_after: Some(Duration::ZERO)
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_429_without_retry_after_is_retried_with_backoff() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(ResponseTemplate::new(429))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "email-after-backoff"})))
        .expect(1)
        .mount(&server)
        .await;

    let id = resend(base(&server), fast_http())
        .send_email(&message(), "invite/3")
        .await
        .unwrap();

    assert_eq!(id, "email-after-backoff");
}

#[tokio::test]
async fn a_4xx_other_than_429_is_never_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "statusCode": 400, "name": "validation_error", "message": "Invalid `from` field."
        })))
        .expect(1)
        .mount(&server)
        .await;

    let error = resend(base(&server), fast_http())
        .send_email(&message(), "invite/4")
        .await
        .unwrap_err();

    assert!(
        matches!(&error, ConnectorError::Client { status: 400, code: Some(code) } if code == "validation_error"),
        "{error:?}"
    );
    assert!(!error.is_transient());
}

#[tokio::test]
async fn an_unreachable_platform_is_a_transport_error_after_the_bounded_attempts() {
    // A port that was just free: nothing listens on it, so every connection is refused.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base_url: Url = format!("http://127.0.0.1:{port}").parse().unwrap();

    let error = resend(base_url, fast_http())
        .send_email(&message(), "invite/5")
        .await
        .unwrap_err();

    assert!(matches!(error, ConnectorError::Transport(_)), "{error:?}");
    assert!(error.is_transient());
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(ResponseTemplate::new(307).insert_header("Location", "http://127.0.0.1:9/elsewhere"))
        .expect(1)
        .mount(&server)
        .await;

    let error = resend(base(&server), fast_http())
        .send_email(&message(), "invite/6")
        .await
        .unwrap_err();

    assert!(matches!(error, ConnectorError::Client { status: 307, .. }), "{error:?}");
}

#[test]
fn a_base_url_that_cannot_take_a_path_is_a_configuration_error() {
    let error = ResendSettings {
        base_url: "mailto:ops@dynamoi.test".parse().unwrap(),
        ..ResendSettings::new(secret("k"))
    };
    assert!(matches!(Resend::new(error), Err(ConnectorError::Config(_))));
}
