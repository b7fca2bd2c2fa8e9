//! What the connector tests share: fast retry settings, the mock server's URL as a base URL,
//! and readers for the requests the mock server received.

use std::collections::BTreeMap;
use std::time::Duration;

use connectors::{HttpSettings, RetryPolicy, SecretString, Url};
use wiremock::{MockServer, Request};

/// Retries in milliseconds instead of seconds, three attempts, `Retry-After` honoured up to 2 s.
pub fn fast_http() -> HttpSettings {
    HttpSettings {
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_retry_after: Duration::from_secs(2),
        },
        ..HttpSettings::default()
    }
}

/// [`fast_http`] with a 200 ms limit per attempt and two attempts, for the timeout tests.
pub fn impatient_http() -> HttpSettings {
    let mut http = fast_http();
    http.timeout = Duration::from_millis(200);
    http.retry.max_attempts = 2;
    http
}

/// How long a timeout test's mock takes to answer: far beyond [`impatient_http`]'s limit.
pub const SLOW: Duration = Duration::from_secs(5);

pub fn base(server: &MockServer) -> Url {
    server.uri().parse().expect("the mock server's URI is a URL")
}

pub fn secret(value: &str) -> SecretString {
    SecretString::from(value)
}

/// Every request the server received, in order.
pub async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.expect("request recording is on")
}

/// A header of a received request as text.
pub fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|value| value.to_str().ok())
}

/// The query parameters of a received request.
pub fn query(request: &Request) -> BTreeMap<String, String> {
    request
        .url
        .query_pairs()
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}

/// A form-encoded body as its fields (decoded the way a form is: `+` is a space, `%XX` a byte).
pub fn form(request: &Request) -> BTreeMap<String, String> {
    let body = std::str::from_utf8(&request.body).expect("a form body is UTF-8");
    let mut base = Url::parse("http://form.invalid/").expect("a valid constant URL");
    base.set_query(Some(body));
    base.query_pairs()
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}
