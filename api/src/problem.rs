//! [`ApiError`] and its one mapping to RFC 9457 `application/problem+json`.
//!
//! | code | status | when |
//! |---|---|---|
//! | `unauthorized` | 401 | no bearer token, or it is invalid or expired |
//! | `forbidden` | 403 | the caller's role may not do this |
//! | `not_found` | 404 | no such route or resource |
//! | `method_not_allowed` | 405 | the route exists with another method |
//! | `conflict` | 409 | the command contradicts the current state |
//! | `processing_restricted` | 409 | the person restricted processing of their data, or was erased (P22) |
//! | `payload_too_large` | 413 | the body exceeds `DYNAMOI_MAX_BODY_BYTES` |
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
    NotFound(String),
    #[error("this route does not accept that method")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Restricted(String),
    #[error("the request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(u64),
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
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", "Not found"),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
            ),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict with the current state"),
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

    /// The problem+json response for this error.
    pub fn into_response(self, request_id: &str) -> Response {
        let (status, code, title) = self.parts();
        let problem = Problem {
            kind: format!("https://dynamoi.dev/problems/{code}"),
            title,
            status: status.as_u16(),
            detail: self.to_string(),
            code,
            request_id,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
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
            ApiError::ReadModelBehind { .. } | ApiError::Unavailable => {
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

impl From<eventlog::LogError> for ApiError {
    fn from(error: eventlog::LogError) -> Self {
        match error {
            eventlog::LogError::Conflict { .. } => {
                ApiError::Conflict("another change to the same record happened at the same time; retry".into())
            }
            eventlog::LogError::Database(ref e) if is_unreachable(e) => {
                tracing::error!(error = %error, source = %e, "database unreachable");
                ApiError::Unavailable
            }
            other => {
                tracing::error!(error = %other, source = ?std::error::Error::source(&other).map(|s| s.to_string()), "event log failure");
                ApiError::Internal
            }
        }
    }
}

impl From<projections::ProjectionError> for ApiError {
    fn from(error: projections::ProjectionError) -> Self {
        match error {
            projections::ProjectionError::Database(ref e) if is_unreachable(e) => ApiError::Unavailable,
            projections::ProjectionError::Log(log) => log.into(),
            other => {
                tracing::error!(error = %other, "read model failure");
                ApiError::Internal
            }
        }
    }
}

impl From<vault::VaultError> for ApiError {
    fn from(error: vault::VaultError) -> Self {
        match error {
            vault::VaultError::Integrity { .. } => {
                // A sealed value does not belong where it was found: tampering, or a bug.
                tracing::error!(error = %error, "a sealed value failed its integrity check");
                ApiError::Internal
            }
            vault::VaultError::Database(ref e) if is_unreachable(e) => ApiError::Unavailable,
            other => {
                tracing::error!(error = %other, "vault failure");
                ApiError::Internal
            }
        }
    }
}

impl From<connectors::ConnectorError> for ApiError {
    fn from(error: connectors::ConnectorError) -> Self {
        use connectors::ConnectorError as E;
        match error {
            E::NotFound => ApiError::NotFound("the platform has no such item".into()),
            E::RateLimited { retry_after } => ApiError::RateLimited(retry_after.map(|d| d.as_secs()).unwrap_or(60)),
            other => {
                tracing::warn!(error = %other, "platform call failed");
                ApiError::Upstream("the platform's API did not answer usefully; retry later".into())
            }
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if is_unreachable(&error) {
            tracing::error!(%error, "database unreachable");
            return ApiError::Unavailable;
        }
        tracing::error!(%error, "database query failed");
        ApiError::Internal
    }
}

fn is_unreachable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_)
    )
}
