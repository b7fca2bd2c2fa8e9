//! Google's OAuth 2.0 token endpoint: a YouTube connection's refresh token (stored sealed with
//! AES-256-GCM, P9/P19) becomes a short-lived access token for the YouTube Data API.
//!
//! `POST {base}/token`, form-encoded `grant_type=refresh_token`, `client_id`, `client_secret`,
//! `refresh_token` (Google's "Refreshing an access token (offline access)" in *Using OAuth 2.0
//! for Web Server Applications*); the answer is `{"access_token", "expires_in", "scope",
//! "token_type"}`. An `invalid_grant` error (the refresh token expired, was revoked, or the
//! person changed their password) is [`ConnectorError::InvalidToken`]: the caller invalidates
//! the connection and destroys its key (P25). `invalid_client` and `unauthorized_client` are
//! about our own credentials and stay [`ConnectorError::Client`] with that code. The request is
//! repeated on 5xx, 429 and timeouts: a refresh grant has no side effect but a new access token.
//!
//! **Revocation** (erasure, P22): `POST {base}/revoke`, form-encoded `token=…` (an access or a
//! refresh token; revoking an access token that has a refresh token revokes that too), as
//! Google's "Revoking a token" section of the same guide describes; 200 means revoked, a 400
//! carries an error code. Google's own samples put the token in the query string; RFC 7009
//! §2.1 (which Google's endpoint implements) sends it in the form body, which is what we do, so
//! the token never lands in a URL or an access log. Revoking twice is harmless, so retries are
//! safe.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::ConnectorError;
use crate::http::{Failure, HttpClient, HttpSettings, Verdict};
use crate::Url;

/// Where Google's token endpoint is and the OAuth client dynamoi is registered as.
#[derive(Debug, Clone)]
pub struct GoogleOAuthSettings {
    /// Default `https://oauth2.googleapis.com` (the endpoint is `{base}/token`).
    pub base_url: Url,
    pub client_id: SecretString,
    pub client_secret: SecretString,
    pub http: HttpSettings,
}

impl GoogleOAuthSettings {
    /// Google's production endpoint with default timeouts and retries.
    pub fn new(client_id: SecretString, client_secret: SecretString) -> Self {
        GoogleOAuthSettings {
            base_url: Url::parse("https://oauth2.googleapis.com").expect("a valid constant URL"),
            client_id,
            client_secret,
            http: HttpSettings::default(),
        }
    }
}

/// An access token for Google APIs and how long it lives from the moment it was answered.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: SecretString,
    pub expires_in: Duration,
}

/// The client of Google's token endpoint.
pub struct GoogleOAuth {
    http: HttpClient,
    client_id: SecretString,
    client_secret: SecretString,
}

impl fmt::Debug for GoogleOAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleOAuth")
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: SecretString,
    expires_in: u64,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: Option<String>,
}

impl GoogleOAuth {
    pub fn new(settings: GoogleOAuthSettings) -> Result<Self, ConnectorError> {
        Ok(GoogleOAuth {
            http: HttpClient::new("google_oauth", &settings.base_url, &settings.http)?,
            client_id: settings.client_id,
            client_secret: settings.client_secret,
        })
    }

    /// Exchanges a refresh token for an access token.
    pub async fn refresh_access_token(&self, refresh_token: &SecretString) -> Result<AccessToken, ConnectorError> {
        let url = self.http.url(&["token"]);
        let answer: TokenAnswer = self
            .http
            .send_json("google token refresh", classify, |client| {
                client.post(url.clone()).form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", self.client_id.expose_secret()),
                    ("client_secret", self.client_secret.expose_secret()),
                    ("refresh_token", refresh_token.expose_secret()),
                ])
            })
            .await?;
        Ok(AccessToken {
            token: answer.access_token,
            expires_in: Duration::from_secs(answer.expires_in),
        })
    }

    /// Revokes a person's grant to dynamoi by revoking `token` (a refresh token, or an access
    /// token, which takes its refresh token with it).
    ///
    /// A 400 whose code is `invalid_token` (or `invalid_grant`) means Google no longer holds the
    /// token as valid: it expired or was revoked already (by the person, by Google, or by an
    /// earlier attempt of this call whose answer was lost). There is nothing left to revoke, so
    /// that is `Ok(())` too. Any other failure is an error (`invalid_client`-like codes as
    /// [`ConnectorError::Client`]); the token never appears in it.
    pub async fn revoke_token(&self, token: &SecretString) -> Result<(), ConnectorError> {
        let url = self.http.url(&["revoke"]);
        let answer = self
            .http
            .send("google token revoke", classify_revoke, |client| {
                client.post(url.clone()).form(&[("token", token.expose_secret())])
            })
            .await;
        match answer {
            Ok(_) => Ok(()),
            Err(ConnectorError::InvalidToken) => {
                tracing::info!(
                    platform = "google_oauth",
                    operation = "google token revoke",
                    "the token was already invalid: nothing to revoke"
                );
                Ok(())
            }
            Err(error) => Err(error),
        }
    }
}

/// `{"error": "invalid_grant", "error_description": "…"}`: the code decides, the description
/// is dropped.
fn classify(failure: &Failure<'_>) -> Verdict {
    let code = failure.json::<ErrorAnswer>().and_then(|answer| answer.error);
    match code.as_deref() {
        Some("invalid_grant") => Verdict::Fail(ConnectorError::InvalidToken),
        Some(code) if failure.status.is_client_error() && failure.status.as_u16() != 429 => {
            Verdict::Fail(failure.client(Some(code)))
        }
        // Without a code, 401 and 404 still say our client or URL is wrong, not the person's token.
        _ if matches!(failure.status.as_u16(), 401 | 404) => Verdict::Fail(failure.client(None)),
        _ => failure.default_verdict(None),
    }
}

/// The revocation endpoint's failures: a 400 `invalid_token` / `invalid_grant` (the token is no
/// longer valid) is [`ConnectorError::InvalidToken`], which `revoke_token` turns into success;
/// every other 4xx is a client error (never an invalid token, so that it cannot pass for one).
fn classify_revoke(failure: &Failure<'_>) -> Verdict {
    let code = failure.json::<ErrorAnswer>().and_then(|answer| answer.error);
    match code.as_deref() {
        Some("invalid_token" | "invalid_grant") if failure.status.as_u16() == 400 => {
            Verdict::Fail(ConnectorError::InvalidToken)
        }
        code if failure.status.is_client_error() && !matches!(failure.status.as_u16(), 408 | 429) => {
            Verdict::Fail(failure.client(code))
        }
        code => failure.default_verdict(code),
    }
}
