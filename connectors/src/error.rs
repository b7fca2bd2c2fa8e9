//! [`ConnectorError`], the one error type of every connector, and what each variant tells the
//! caller to do. No variant holds a token, a secret, a response body or a URL: a platform's
//! error code is kept only after [`safe_code`] has checked it cannot carry personal data.

use std::fmt;
use std::time::Duration;

/// Why a call to a platform failed.
///
/// [`is_transient`](Self::is_transient) tells an outbox worker whether to try again later; the
/// connectors have already retried transient failures a bounded number of times.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectorError {
    /// No answer within the client's timeout (connect or total), on every attempt.
    #[error("the platform did not answer in time")]
    Timeout,
    /// The platform asks us to slow down: HTTP 429, or a platform-specific rate or quota limit.
    /// `retry_after` is the platform's `Retry-After` when it sent one.
    #[error("the platform is rate limiting us{}", RetryAfter(.retry_after))]
    RateLimited { retry_after: Option<Duration> },
    /// The platform failed (5xx, or an error code it documents as a temporary outage) on every
    /// attempt.
    #[error("the platform failed with HTTP {status}")]
    Server { status: u16 },
    /// The platform refused the request (4xx). `code` is the platform's error code, e.g.
    /// `invalid_client`, `quotaExceeded`, `100/33`, `validation_error`, when it sent a safe one.
    #[error("the platform refused the request with HTTP {status}{}", Code(.code))]
    Client { status: u16, code: Option<String> },
    /// The platform rejected the token as invalid, expired or revoked. For a person's connection
    /// (Google/YouTube, Meta) the caller refreshes the access token if it has a refresh token,
    /// and invalidates the connection (P25) when the refresh itself answers this; for the app's
    /// own credentials (Spotify, Resend) it is a configuration fault to alert on.
    #[error("the platform rejected the token as invalid, expired or revoked")]
    InvalidToken,
    /// The platform says the object asked for does not exist (or is not visible to the token).
    #[error("the platform has no such object")]
    NotFound,
    /// The platform answered something we could not read. `detail` is built only from the
    /// failure's category and position, never from the body.
    #[error("the answer to {what} could not be read: {detail}")]
    Decode { what: &'static str, detail: String },
    /// The request could not be sent or its answer not received (connection refused, reset, TLS).
    /// The source has its URL removed.
    #[error("the platform could not be reached")]
    Transport(#[source] reqwest::Error),
    /// The caller passed an argument the connector refuses before sending anything (an id that
    /// could change the request path, an idempotency key out of bounds).
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),
    /// A settings value is unusable (a base URL that cannot take a path, a TLS backend that
    /// does not start).
    #[error("invalid connector configuration: {0}")]
    Config(&'static str),
}

impl ConnectorError {
    /// Whether trying the same call again later may succeed: timeouts, rate limits, server
    /// failures and transport failures.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ConnectorError::Timeout
                | ConnectorError::RateLimited { .. }
                | ConnectorError::Server { .. }
                | ConnectorError::Transport(_)
        )
    }
}

struct RetryAfter<'a>(&'a Option<Duration>);

impl fmt::Display for RetryAfter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(after) => write!(f, " (retry after {} s)", after.as_secs()),
            None => Ok(()),
        }
    }
}

struct Code<'a>(&'a Option<String>);

impl fmt::Display for Code<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(code) => write!(f, " ({code})"),
            None => Ok(()),
        }
    }
}

/// A platform's error code, kept only when it is short and made of letters, digits and `_.:/-`:
/// such a string cannot hold an email address, a name or a sentence a person wrote.
pub(crate) fn safe_code(raw: &str) -> Option<String> {
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '-'));
    ok.then(|| raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_code_that_could_hold_personal_data_is_dropped() {
        assert_eq!(safe_code("invalid_grant").as_deref(), Some("invalid_grant"));
        assert_eq!(safe_code("100/33").as_deref(), Some("100/33"));
        assert_eq!(safe_code("ada@example.com"), None);
        assert_eq!(safe_code("Invalid to field"), None);
        assert_eq!(safe_code(""), None);
        assert_eq!(safe_code(&"x".repeat(65)), None);
    }

    #[test]
    fn the_messages_name_the_status_code_and_wait() {
        let client = ConnectorError::Client {
            status: 400,
            code: Some("invalid_client".into()),
        };
        assert_eq!(
            client.to_string(),
            "the platform refused the request with HTTP 400 (invalid_client)"
        );
        let limited = ConnectorError::RateLimited {
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(
            limited.to_string(),
            "the platform is rate limiting us (retry after 3 s)"
        );
        assert!(limited.is_transient());
        assert!(!ConnectorError::InvalidToken.is_transient());
    }
}
