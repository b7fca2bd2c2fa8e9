//! The HTTP machinery every connector shares: [`HttpSettings`] (timeouts, [`RetryPolicy`]) and
//! `HttpClient`, a reqwest client bound to one platform's base URL that sends one logical
//! request with bounded retries and turns every answer into bytes or a [`ConnectorError`].
//!
//! Retried: timeouts, transport failures, 5xx, 429 and what a platform's classifier marks as
//! temporary, with exponential backoff (base delay doubling per attempt, capped, half of it
//! jittered), or after exactly `Retry-After` when the answer carries one. A `Retry-After` longer
//! than [`RetryPolicy::max_retry_after`] is not waited for: the call returns
//! [`ConnectorError::RateLimited`] at once with that delay, so the caller (an outbox worker)
//! reschedules instead of holding a task. Other 4xx are never retried. Every request a connector
//! sends is safe to repeat (reads, token grants, or writes carrying an idempotency key), which
//! is why a timeout or a reset connection is retried too.
//!
//! Redirects are not followed (a token must not travel to a host we did not configure): a 3xx
//! is a [`ConnectorError::Client`] with its status. Response bodies are read up to a bound
//! (8 MiB for an answer, 64 KiB for an error). A `Retry-After` on a 5xx is not read (the backoff
//! applies); only rate limits carry one.

use std::fmt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::error::{safe_code, ConnectorError};

/// Largest successful answer read (a page of 100 posts is far below it).
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Largest error answer read: only its code is kept.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// Timeouts and retries of one platform's client.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Limit on establishing a connection (TCP and TLS). Default 5 s.
    pub connect_timeout: Duration,
    /// Limit on one attempt, from sending the request to the end of the answer's body.
    /// Default 20 s.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// What an HTTP-date `Retry-After` is measured from. Default: the system clock.
    pub clock: clock::SharedClock,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(20),
            retry: RetryPolicy::default(),
            clock: clock::system(),
        }
    }
}

/// How often and how patiently a failed attempt is repeated.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1). Default 4.
    pub max_attempts: u32,
    /// Backoff before the second attempt; it doubles for each further one. Default 250 ms.
    pub base_delay: Duration,
    /// Cap on one backoff. Default 8 s.
    pub max_delay: Duration,
    /// Longest `Retry-After` waited for; a longer one is returned as
    /// [`ConnectorError::RateLimited`] without waiting. Default 10 s.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The backoff after failed attempt `attempt` (1-based): `base · 2^(attempt-1)`, capped at
    /// `max_delay`, of which the upper half is random so that clients do not retry in step.
    fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(16);
        let delay = self.base_delay.saturating_mul(1 << exponent).min(self.max_delay);
        let half = delay / 2;
        let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rand::random_range(0..=jitter_nanos))
    }
}

/// What a platform's classifier decided about a failed answer.
pub(crate) enum Verdict {
    /// Temporary: try again if attempts are left.
    Retry(ConnectorError),
    /// Final: return it.
    Fail(ConnectorError),
}

/// A non-2xx answer, as a platform's classifier sees it.
pub(crate) struct Failure<'a> {
    pub status: StatusCode,
    pub retry_after: Option<Duration>,
    pub body: &'a [u8],
}

impl Failure<'_> {
    /// The classification every platform shares for what it has no rule of its own for:
    /// 429 → rate limited (retried), 5xx → server (retried), 408 → timeout (retried),
    /// 401 → invalid token, 404 → not found, other statuses → client error with `code` (kept
    /// only if [`safe_code`] accepts it).
    pub fn default_verdict(&self, code: Option<&str>) -> Verdict {
        let status = self.status.as_u16();
        match self.status {
            StatusCode::TOO_MANY_REQUESTS => Verdict::Retry(ConnectorError::RateLimited {
                retry_after: self.retry_after,
            }),
            StatusCode::REQUEST_TIMEOUT => Verdict::Retry(ConnectorError::Timeout),
            StatusCode::UNAUTHORIZED => Verdict::Fail(ConnectorError::InvalidToken),
            StatusCode::NOT_FOUND => Verdict::Fail(ConnectorError::NotFound),
            s if s.is_server_error() => Verdict::Retry(ConnectorError::Server { status }),
            _ => Verdict::Fail(ConnectorError::Client {
                status,
                code: code.and_then(safe_code),
            }),
        }
    }

    /// The body as JSON of type `T`, if it is one (error bodies are best effort).
    pub fn json<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_slice(self.body).ok()
    }

    /// A client error carrying `code` if it is safe to keep.
    pub fn client(&self, code: Option<&str>) -> ConnectorError {
        ConnectorError::Client {
            status: self.status.as_u16(),
            code: code.and_then(safe_code),
        }
    }
}

/// Turns a platform's failed answer into a [`Verdict`].
pub(crate) type Classifier = fn(&Failure<'_>) -> Verdict;

/// A reqwest client bound to one platform: its name (for logs), its base URL and its retry
/// policy. Cloning is cheap (the connection pool is shared).
#[derive(Clone)]
pub(crate) struct HttpClient {
    platform: &'static str,
    base: Url,
    client: reqwest::Client,
    retry: RetryPolicy,
    clock: clock::SharedClock,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("platform", &self.platform)
            .field("base", &self.base.as_str())
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client for `platform` at `base` (scheme, host, port and optional path prefix).
    pub fn new(platform: &'static str, base: &Url, settings: &HttpSettings) -> Result<Self, ConnectorError> {
        check_base(base)?;
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("dynamoi-connectors/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| ConnectorError::Config("the HTTP client could not be built"))?;
        let mut retry = settings.retry.clone();
        retry.max_attempts = retry.max_attempts.max(1);
        Ok(HttpClient {
            platform,
            base: base.clone(),
            client,
            retry,
            clock: settings.clock.clone(),
        })
    }

    /// Another base URL on the same connection pool and policy (Spotify's two hosts).
    pub fn with_base(&self, platform: &'static str, base: &Url) -> Result<Self, ConnectorError> {
        check_base(base)?;
        Ok(HttpClient {
            platform,
            base: base.clone(),
            client: self.client.clone(),
            retry: self.retry.clone(),
            clock: self.clock.clone(),
        })
    }

    /// The base URL with `segments` appended, each percent-encoded as one path segment (so an
    /// id holding `/` or `..` cannot change the path; connectors also validate ids).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Sends the request that `build` makes (called once per attempt) and returns the body of
    /// the first 2xx answer, retrying as the module documentation says. `operation` names the
    /// call in logs and errors.
    pub async fn send<F>(
        &self,
        operation: &'static str,
        classify: Classifier,
        build: F,
    ) -> Result<Bytes, ConnectorError>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder,
    {
        let (_, body) = self.send_with_headers(operation, classify, build).await?;
        Ok(body)
    }

    /// [`send`](Self::send), returning the headers of the 2xx answer with its body (Meta's
    /// usage headers). The caller must not log their values.
    pub async fn send_with_headers<F>(
        &self,
        operation: &'static str,
        classify: Classifier,
        build: F,
    ) -> Result<(HeaderMap, Bytes), ConnectorError>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder,
    {
        let mut attempt = 1;
        loop {
            let error = match self.attempt(operation, &build, classify).await {
                Ok(answer) => return Ok(answer),
                Err(Verdict::Fail(error)) => return Err(error),
                Err(Verdict::Retry(error)) => error,
            };
            if attempt >= self.retry.max_attempts {
                tracing::warn!(platform = self.platform, operation, attempt, error = %error, "giving up");
                return Err(error);
            }
            let wait = match &error {
                ConnectorError::RateLimited {
                    retry_after: Some(after),
                } if *after > self.retry.max_retry_after => {
                    tracing::warn!(
                        platform = self.platform,
                        operation,
                        attempt,
                        retry_after_s = after.as_secs(),
                        "rate limited for longer than we wait"
                    );
                    return Err(error);
                }
                ConnectorError::RateLimited {
                    retry_after: Some(after),
                } => *after,
                _ => self.retry.backoff(attempt),
            };
            tracing::warn!(
                platform = self.platform,
                operation,
                attempt,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                error = %error,
                "retrying"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// [`send`](Self::send), then the body decoded as JSON of type `T`.
    pub async fn send_json<T, F>(
        &self,
        operation: &'static str,
        classify: Classifier,
        build: F,
    ) -> Result<T, ConnectorError>
    where
        T: DeserializeOwned,
        F: Fn(&reqwest::Client) -> RequestBuilder,
    {
        let body = self.send(operation, classify, build).await?;
        decode(operation, &body)
    }

    /// [`send_with_headers`](Self::send_with_headers), then the body decoded as JSON of type `T`.
    pub async fn send_json_with_headers<T, F>(
        &self,
        operation: &'static str,
        classify: Classifier,
        build: F,
    ) -> Result<(HeaderMap, T), ConnectorError>
    where
        T: DeserializeOwned,
        F: Fn(&reqwest::Client) -> RequestBuilder,
    {
        let (headers, body) = self.send_with_headers(operation, classify, build).await?;
        Ok((headers, decode(operation, &body)?))
    }

    async fn attempt<F>(
        &self,
        operation: &'static str,
        build: &F,
        classify: Classifier,
    ) -> Result<(HeaderMap, Bytes), Verdict>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder,
    {
        let response = build(&self.client).send().await.map_err(transport)?;
        let status = response.status();
        if status.is_success() {
            let headers = response.headers().clone();
            let body = read_body(response, MAX_BODY_BYTES).await?.ok_or_else(|| {
                Verdict::Fail(ConnectorError::Decode {
                    what: operation,
                    detail: format!("the body is larger than {MAX_BODY_BYTES} bytes"),
                })
            })?;
            return Ok((headers, body));
        }
        let retry_after = retry_after(response.headers(), self.clock.now());
        // An error body longer than the bound is classified on its status alone.
        let body = read_body(response, MAX_ERROR_BODY_BYTES).await?.unwrap_or_default();
        let failure = Failure {
            status,
            retry_after,
            body: &body,
        };
        Err(classify(&failure))
    }
}

/// A base URL takes a path: http or https, no query, no fragment.
fn check_base(base: &Url) -> Result<(), ConnectorError> {
    if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
        return Err(ConnectorError::Config("a base URL must be an http or https URL"));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(ConnectorError::Config("a base URL must have no query or fragment"));
    }
    Ok(())
}

/// Reads the body up to `limit` bytes; `None` when it is longer.
async fn read_body(mut response: Response, limit: usize) -> Result<Option<Bytes>, Verdict> {
    if response.content_length().is_some_and(|length| length > limit as u64) {
        return Ok(None);
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}

/// A reqwest failure, without its URL (query strings hold ids and page cursors).
fn transport(error: reqwest::Error) -> Verdict {
    let error = error.without_url();
    if error.is_timeout() {
        Verdict::Retry(ConnectorError::Timeout)
    } else if error.is_builder() || error.is_redirect() {
        Verdict::Fail(ConnectorError::Transport(error))
    } else {
        Verdict::Retry(ConnectorError::Transport(error))
    }
}

/// `Retry-After` as delay-seconds or as an HTTP date (RFC 9110 §10.2.3); a date in the past is
/// zero, anything unreadable is ignored (the backoff applies).
pub(crate) fn retry_after(headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::<chrono::Utc>::from(httpdate::parse_http_date(value).ok()?);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// `body` as JSON of type `T`. A failure keeps only serde's category and position: its message
/// can quote the body.
pub(crate) fn decode<T: DeserializeOwned>(what: &'static str, body: &[u8]) -> Result<T, ConnectorError> {
    serde_json::from_slice(body).map_err(|error| ConnectorError::Decode {
        what,
        detail: format!(
            "{:?} error at line {} column {}",
            error.classify(),
            error.line(),
            error.column()
        ),
    })
}

/// Checks that `id` is 1 to `max_len` characters that `allowed` accepts, so it can go into a
/// path or a query without changing the request's meaning.
pub(crate) fn check_id(
    id: &str,
    max_len: usize,
    allowed: fn(char) -> bool,
    reason: &'static str,
) -> Result<(), ConnectorError> {
    if id.is_empty() || id.len() > max_len || !id.chars().all(allowed) {
        return Err(ConnectorError::InvalidInput(reason));
    }
    Ok(())
}

/// Deserializes an optional field leniently: missing, `null` or of an unexpected type all give
/// `None` (platforms drop and change optional fields; that must not fail a whole answer).
pub(crate) fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = <serde_json::Value as serde::Deserialize>::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn the_backoff_doubles_within_its_cap_and_jitters_only_its_upper_half() {
        let policy = RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
            max_retry_after: Duration::from_secs(1),
        };
        for _ in 0..50 {
            let first = policy.backoff(1);
            assert!(
                first >= Duration::from_millis(50) && first <= Duration::from_millis(100),
                "{first:?}"
            );
            let second = policy.backoff(2);
            assert!(
                second >= Duration::from_millis(100) && second <= Duration::from_millis(200),
                "{second:?}"
            );
            let capped = policy.backoff(10);
            assert!(
                capped >= Duration::from_millis(150) && capped <= Duration::from_millis(300),
                "{capped:?}"
            );
        }
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_an_http_date() {
        let now: chrono::DateTime<chrono::Utc> = "2026-11-15T12:00:00Z".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&headers, now), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("Sun, 15 Nov 2026 12:02:00 GMT"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(120)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn a_decode_error_does_not_quote_the_body() {
        let error = decode::<u32>("a test", br#""ada@example.com""#).unwrap_err();
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("ada@example.com"), "{shown}");
        assert!(shown.contains("Data error at line 1"), "{shown}");
    }

    #[test]
    fn ids_that_could_change_the_path_are_refused() {
        let alnum = |c: char| c.is_ascii_alphanumeric();
        assert!(check_id("4uLU6hMCjMI75M1A2tKUQC", 64, alnum, "bad").is_ok());
        for bad in ["", "../me", "a/b", "a?b", "a b", &"x".repeat(65)] {
            assert!(
                matches!(
                    check_id(bad, 64, alnum, "bad"),
                    Err(ConnectorError::InvalidInput("bad"))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn segments_are_appended_to_the_base_path() {
        let settings = HttpSettings::default();
        let client = HttpClient::new("test", &"http://127.0.0.1:9/prefix/".parse().unwrap(), &settings).unwrap();
        assert_eq!(
            client.url(&["v1", "tracks", "a/b"]).as_str(),
            "http://127.0.0.1:9/prefix/v1/tracks/a%2Fb"
        );
        let bare = HttpClient::new("test", &"http://127.0.0.1:9".parse().unwrap(), &settings).unwrap();
        assert_eq!(bare.url(&["token"]).as_str(), "http://127.0.0.1:9/token");
        assert!(matches!(
            HttpClient::new("test", &"mailto:a@b.c".parse().unwrap(), &settings),
            Err(ConnectorError::Config(_))
        ));
    }
}
