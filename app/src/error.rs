//! [`AppError`]: why a use case did not do what it was asked, in words a caller can be shown.
//!
//! The HTTP adapter maps each variant to a status and a problem+json `code` in one place
//! (`api/src/problem.rs`); the CLI prints the message. Messages never hold internal errors,
//! secrets or personal data: a failure of a lower layer is logged here once, with its chain,
//! and surfaces as [`AppError::Internal`] or [`AppError::Unavailable`].

/// Everything a use case can answer instead of success.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The caller's role, or their role on an artist, does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// No such resource (or the caller may not know whether it exists).
    #[error("{0}")]
    NotFound(String),
    /// The command contradicts the current state.
    #[error("{0}")]
    Conflict(String),
    /// The caller has no usable account (never signed up, closed, a child's): processing
    /// commands need one.
    #[error("{0}")]
    AccountRequired(String),
    /// Other commands on the same record kept this one waiting past the bound; retry shortly
    /// (answered 409 with `Retry-After`).
    #[error("{0}")]
    Contended(String),
    /// The person restricted processing of their data, or was erased (P22).
    #[error("{0}")]
    Restricted(String),
    /// Malformed input: a value that cannot be read at all (a bad date, a bad position).
    #[error("{0}")]
    InvalidInput(String),
    /// Well-formed input that breaks a rule.
    #[error("{0}")]
    Validation(String),
    /// A read asked for `min_position` and the read model did not reach it in time.
    #[error("the read model `{projection}` has not yet applied position {position}; retry shortly, or read without min_position")]
    ReadModelBehind { projection: String, position: String },
    /// Too many calls; retry after this many seconds.
    #[error("too many requests; retry after {0} seconds")]
    RateLimited(u64),
    /// A platform's or processor's API failed, or is not configured.
    #[error("{0}")]
    Upstream(String),
    /// The database cannot be reached.
    #[error("the service cannot reach its database; retry shortly")]
    Unavailable,
    /// A bug; the details are in the log only.
    #[error("an internal error occurred; it has been logged with this request's id")]
    Internal,
}

impl AppError {
    /// A not-found whose message is `what`.
    pub fn not_found(what: impl Into<String>) -> AppError {
        AppError::NotFound(what.into())
    }
}

impl From<eventlog::LogError> for AppError {
    fn from(error: eventlog::LogError) -> Self {
        match error {
            eventlog::LogError::Conflict { .. } => AppError::Contended(
                "other changes to the same record kept this one waiting; retry after the Retry-After seconds".into(),
            ),
            eventlog::LogError::ClaimLost => AppError::Conflict(
                "a retry with the same Idempotency-Key took this request over; nothing was changed by this one".into(),
            ),
            ref unreachable if unreachable.is_unavailable() => {
                tracing::error!(error = %unreachable, source = ?std::error::Error::source(unreachable).map(|s| s.to_string()), "database unreachable");
                AppError::Unavailable
            }
            other => {
                tracing::error!(error = %other, source = ?std::error::Error::source(&other).map(|s| s.to_string()), "event log failure");
                AppError::Internal
            }
        }
    }
}

impl From<projections::ProjectionError> for AppError {
    fn from(error: projections::ProjectionError) -> Self {
        match error {
            projections::ProjectionError::Log(log) => log.into(),
            ref unreachable if unreachable.is_unavailable() => AppError::Unavailable,
            other => {
                tracing::error!(error = %other, source = ?std::error::Error::source(&other).map(|s| s.to_string()), "read model failure");
                AppError::Internal
            }
        }
    }
}

impl From<vault::VaultError> for AppError {
    fn from(error: vault::VaultError) -> Self {
        match error {
            vault::VaultError::Integrity { .. } => {
                // A sealed value does not belong where it was found: tampering, or a bug.
                tracing::error!(error = %error, "a sealed value failed its integrity check");
                AppError::Internal
            }
            ref unreachable if unreachable.is_unavailable() => AppError::Unavailable,
            other => {
                tracing::error!(error = %other, "vault failure");
                AppError::Internal
            }
        }
    }
}

impl From<connectors::ConnectorError> for AppError {
    fn from(error: connectors::ConnectorError) -> Self {
        use connectors::ConnectorError as E;
        match error {
            E::NotFound => AppError::NotFound("the platform has no such item".into()),
            E::RateLimited { retry_after } => AppError::RateLimited(retry_after.map(|d| d.as_secs()).unwrap_or(60)),
            other => {
                tracing::warn!(error = %other, "platform call failed");
                AppError::Upstream("the platform's API did not answer usefully; retry later".into())
            }
        }
    }
}

/// A stored value that should decode and does not: a bug or a damaged row, never the caller's fault.
pub(crate) fn corrupt(what: &str) -> AppError {
    tracing::error!(what, "a stored value could not be decoded");
    AppError::Internal
}
