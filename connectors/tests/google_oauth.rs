//! Google's token endpoint: a refresh token becomes an access token; `invalid_grant` is an
//! invalid token; 429, 500 and slowness are retried within bounds.

use std::time::{Duration, Instant};

use connectors::google_oauth::{GoogleOAuth, GoogleOAuthSettings};
use connectors::{ConnectorError, HttpSettings};
use secrecy::ExposeSecret;
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{base, fast_http, form, impatient_http, requests, secret, SLOW};

fn client(server: &MockServer, http: HttpSettings) -> GoogleOAuth {
    let mut settings = GoogleOAuthSettings::new(
        secret("client-id.apps.googleusercontent.com"),
        secret("client-secret-g"),
    );
    settings.base_url = base(server);
    settings.http = http;
    GoogleOAuth::new(settings).unwrap()
}

fn granted() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": "ya29.fresh-access-token",
        "expires_in": 3599,
        "scope": "https://www.googleapis.com/auth/youtube.readonly",
        "token_type": "Bearer"
    }))
}

#[tokio::test]
async fn a_refresh_token_is_exchanged_for_an_access_token_with_a_form_post() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .respond_with(granted())
        .expect(1)
        .mount(&server)
        .await;

    let token = client(&server, fast_http())
        .refresh_access_token(&secret("1//refresh-token"))
        .await
        .unwrap();

    assert_eq!(token.token.expose_secret(), "ya29.fresh-access-token");
    assert_eq!(token.expires_in, Duration::from_secs(3599));
    let fields = form(&requests(&server).await[0]);
    assert_eq!(fields["grant_type"], "refresh_token");
    assert_eq!(fields["client_id"], "client-id.apps.googleusercontent.com");
    assert_eq!(fields["client_secret"], "client-secret-g");
    assert_eq!(fields["refresh_token"], "1//refresh-token");
    assert_eq!(fields.len(), 4);
}

#[tokio::test]
async fn an_invalid_grant_is_an_invalid_token_and_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant",
            "error_description": "Token has been expired or revoked."
        })))
        .expect(1)
        .mount(&server)
        .await;

    let error = client(&server, fast_http())
        .refresh_access_token(&secret("1//revoked"))
        .await
        .unwrap_err();

    assert!(matches!(error, ConnectorError::InvalidToken), "{error:?}");
}

#[tokio::test]
async fn a_rejected_client_is_a_client_error_naming_the_code() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": "invalid_client",
            "error_description": "The OAuth client was not found."
        })))
        .expect(1)
        .mount(&server)
        .await;

    let error = client(&server, fast_http())
        .refresh_access_token(&secret("1//refresh"))
        .await
        .unwrap_err();

    assert!(
        matches!(&error, ConnectorError::Client { status: 401, code: Some(code) } if code == "invalid_client"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(granted())
        .expect(1)
        .mount(&server)
        .await;

    let started = Instant::now();
    let token = client(&server, fast_http())
        .refresh_access_token(&secret("1//refresh"))
        .await
        .unwrap();

    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited only {:?}",
        started.elapsed()
    );
    assert_eq!(token.token.expose_secret(), "ya29.fresh-access-token");
}

#[tokio::test]
async fn a_500_is_retried_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(granted())
        .expect(1)
        .mount(&server)
        .await;

    let token = client(&server, fast_http())
        .refresh_access_token(&secret("1//refresh"))
        .await
        .unwrap();

    assert_eq!(token.token.expose_secret(), "ya29.fresh-access-token");
}

#[tokio::test]
async fn a_500_on_every_attempt_fails_with_server_after_three_attempts() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(503))
        .expect(3)
        .mount(&server)
        .await;

    let error = client(&server, fast_http())
        .refresh_access_token(&secret("1//refresh"))
        .await
        .unwrap_err();

    assert!(matches!(error, ConnectorError::Server { status: 503 }), "{error:?}");
}

#[tokio::test]
async fn a_token_endpoint_slower_than_the_timeout_is_a_timeout_after_every_attempt() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(granted().set_delay(SLOW))
        .expect(2)
        .mount(&server)
        .await;

    let started = Instant::now();
    let error = client(&server, impatient_http())
        .refresh_access_token(&secret("1//refresh"))
        .await
        .unwrap_err();

    assert!(matches!(error, ConnectorError::Timeout), "{error:?}");
    assert!(started.elapsed() < SLOW, "the client waited for the slow answer");
}
