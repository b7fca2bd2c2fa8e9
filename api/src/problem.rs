//! [`ApiError`] and its one mapping to RFC 9457 `application/problem+json`.
//!
//! | code | status | when |
//! |---|---|---|
//! | `unauthorized` | 401 | no bearer token, or it is invalid or expired |
//! | `forbidden` | 403 | the caller's role may not do this |
//! | `not_found` | 404 | no such route or resource |
//! | `method_not_allowed` | 405 | the route exists with another method |
//! | `conflict` | 409 | the command contradicts the current state; with `Retry-After` when other changes to the same record kept it waiting past the bound |
//! | `processing_restricted` | 409 | the person restricted processing of their data, or was erased (P22) |
//! | `request_timeout` | 408 | the body stalled longer than `DYNAMOI_HTTP_BODY_TIMEOUT_MS` |
//! | `payload_too_large` | 413 | the body exceeds `DYNAMOI_MAX_BODY_BYTES` |
//! | `uri_too_long` | 414 | the request line exceeds 65,534 bytes (refused before routing) |
//! | `headers_too_large` | 431 | the headers exceed the server's buffer (refused before routing) |
//! | `unsupported_media_type` | 415 | a body that is not `application/json` |
//! | `invalid_request` | 400 | malformed JSON, query string or header |
//! | `validation_failed` | 422 | well-formed input that breaks a rule |
//! | `rate_limited` | 429 | too many calls; `Retry-After` says when to try again |
//! | `upstream_failed` | 502 | a platform's API failed or timed out |
//! | `read_model_behind` | 503 | `min_position` not reached within the wait (with `Retry-After`) |
//! | `unavailable` | 503 | the database cannot be reached |
//! | `internal` | 500 | a bug; details only in the log |

use serde::Serialize;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;

/// Everything a handler can answer instead of success. Details are written for the caller:
/// they never hold internal errors, secrets or personal data.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    AccountRequired(String),
    #[error("{0}")]
    NotFound(String),
    #[error("this route does not accept that method")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Contended(String),
    #[error("{0}")]
    Restricted(String),
    #[error("the request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(u64),
    #[error("the request body stopped arriving; send it again")]
    RequestTimeout,
    #[error("the request's URL is longer than the limit of 65534 bytes")]
    UriTooLong,
    #[error("the request's headers are larger than the server accepts")]
    HeadersTooLarge,
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    Validation(String),
    #[error("the read model `{projection}` has not yet applied position {position}; retry shortly, or read without min_position")]
    ReadModelBehind { projection: String, position: String },
    #[error("too many requests; retry after {0} seconds")]
    RateLimited(u64),
    #[error("{0}")]
    Upstream(String),
    #[error("the service cannot reach its database; retry shortly")]
    Unavailable,
    #[error("an internal error occurred; it has been logged with this request's id")]
    Internal,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    code: &'a str,
    request_id: &'a str,
}

impl ApiError {
    /// The HTTP status, the stable code and the short title of this error.
    pub fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Authentication required"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Not allowed"),
            ApiError::AccountRequired(_) => (StatusCode::FORBIDDEN, "account_required", "An account is required"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", "Not found"),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
            ),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict with the current state"),
            ApiError::Contended(_) => (StatusCode::CONFLICT, "conflict", "Busy with other changes"),
            ApiError::Restricted(_) => (
                StatusCode::CONFLICT,
                "processing_restricted",
                "Processing of this person's data is restricted",
            ),
            ApiError::PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Request body too large",
            ),
            ApiError::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout", "Request timeout"),
            ApiError::UriTooLong => (StatusCode::URI_TOO_LONG, "uri_too_long", "URI too long"),
            ApiError::HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                "Request header fields too large",
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
            ),
            ApiError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request", "Invalid request"),
            ApiError::Validation(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "Validation failed",
            ),
            ApiError::ReadModelBehind { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "read_model_behind",
                "Read model behind the requested position",
            ),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", "Too many requests"),
            ApiError::Upstream(_) => (StatusCode::BAD_GATEWAY, "upstream_failed", "A platform's API failed"),
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable"),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        }
    }

    /// The problem+json document of this error.
    pub fn problem_body(&self, request_id: &str) -> Vec<u8> {
        let (status, code, title) = self.parts();
        let problem = Problem {
            kind: format!("https://dynamoi.dev/problems/{code}"),
            title,
            status: status.as_u16(),
            detail: self.to_string(),
            code,
            request_id,
        };
        serde_json::to_vec(&problem).unwrap_or_default()
    }

    /// The problem+json response for this error.
    pub fn into_response(self, request_id: &str) -> Response {
        let (status, _, _) = self.parts();
        let body = self.problem_body(request_id);
        let mut response = Response::new(body.into());
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match self {
            ApiError::RateLimited(seconds) => {
                if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
                    headers.insert(header::RETRY_AFTER, value);
                }
            }
            ApiError::ReadModelBehind { .. } | ApiError::Unavailable | ApiError::Contended(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

impl From<app::AppError> for ApiError {
    fn from(error: app::AppError) -> Self {
        use app::AppError as E;
        match error {
            E::Forbidden(m) => ApiError::Forbidden(m),
            E::AccountRequired(m) => ApiError::AccountRequired(m),
            E::NotFound(m) => ApiError::NotFound(m),
            E::Conflict(m) => ApiError::Conflict(m),
            E::Contended(m) => ApiError::Contended(m),
            E::Restricted(m) => ApiError::Restricted(m),
            E::InvalidInput(m) => ApiError::InvalidRequest(m),
            E::Validation(m) => ApiError::Validation(m),
            E::ReadModelBehind { projection, position } => ApiError::ReadModelBehind { projection, position },
            E::RateLimited(seconds) => ApiError::RateLimited(seconds),
            E::Upstream(m) => ApiError::Upstream(m),
            E::Unavailable => ApiError::Unavailable,
            E::Internal => ApiError::Internal,
        }
    }
}

impl From<eventlog::LogError> for ApiError {
    fn from(error: eventlog::LogError) -> Self {
        app::AppError::from(error).into()
    }
}

impl From<projections::ProjectionError> for ApiError {
    fn from(error: projections::ProjectionError) -> Self {
        app::AppError::from(error).into()
    }
}
