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

// Revocation (erasure): `POST /revoke` with the token in the form body.

const REVOKED_TOKEN: &str = "1//refresh-token-to-revoke";

#[tokio::test]
async fn a_token_is_revoked_with_a_form_post_holding_only_the_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(1)
        .mount(&server)
        .await;

    client(&server, fast_http())
        .revoke_token(&secret(REVOKED_TOKEN))
        .await
        .unwrap();

    let received = requests(&server).await;
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.query(), None, "the token must not travel in the URL");
    assert!(request.headers.get("authorization").is_none());
    let fields = form(request);
    assert_eq!(fields.get("token").map(String::as_str), Some(REVOKED_TOKEN));
    assert_eq!(fields.len(), 1);
}

#[tokio::test]
async fn a_token_google_no_longer_holds_counts_as_revoked_without_a_retry() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_token",
            "error_description": "Token expired or revoked"
        })))
        .expect(1)
        .mount(&server)
        .await;

    client(&server, fast_http())
        .revoke_token(&secret(REVOKED_TOKEN))
        .await
        .unwrap();
}

#[tokio::test]
async fn another_refusal_of_a_revocation_is_a_client_error_without_the_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_request",
            "error_description": format!("Bad token {REVOKED_TOKEN}")
        })))
        .expect(1)
        .mount(&server)
        .await;

    let error = client(&server, fast_http())
        .revoke_token(&secret(REVOKED_TOKEN))
        .await
        .unwrap_err();

    assert!(
        matches!(&error, ConnectorError::Client { status: 400, code: Some(code) } if code == "invalid_request"),
        "{error:?}"
    );
    assert!(!format!("{error} {error:?}").contains(REVOKED_TOKEN));
}

#[tokio::test]
async fn a_401_without_a_code_is_not_taken_for_an_already_revoked_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&server)
        .await;

    let error = client(&server, fast_http())
        .revoke_token(&secret(REVOKED_TOKEN))
        .await
        .unwrap_err();

    assert!(
        matches!(
            error,
            ConnectorError::Client {
                status: 401,
                code: None
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_revocation_failing_with_5xx_is_retried_then_fails_with_server() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .respond_with(ResponseTemplate::new(503))
        .expect(3)
        .mount(&server)
        .await;

    let error = client(&server, fast_http())
        .revoke_token(&secret(REVOKED_TOKEN))
        .await
        .unwrap_err();

    assert!(matches!(error, ConnectorError::Server { status: 503 }), "{error:?}");
    assert!(error.is_transient());
}
