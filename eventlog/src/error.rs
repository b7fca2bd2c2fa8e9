//! The event log's one error type.

/// Why an event-log operation failed. Messages never carry payloads or secrets.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Another command appended to the same aggregate first; reload and decide again.
    #[error("another command changed {aggregate_type} `{aggregate_id}` at the same time")]
    Conflict {
        aggregate_type: String,
        aggregate_id: String,
    },
    /// The request's Idempotency-Key claim was taken over by a retry (this request was too
    /// slow): its events were not appended, so the command runs once, in the retry.
    #[error("the request's Idempotency-Key was taken over by a retry; nothing was changed")]
    ClaimLost,
    /// The database refused or could not be reached.
    #[error("the event store failed")]
    Database(#[from] sqlx::Error),
    /// Applying the schema failed.
    #[error("applying the database migrations failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored event or metadata could not be decoded.
    #[error("a stored event could not be decoded")]
    Decode(#[from] serde_json::Error),
    /// A stored event's type or version is unknown to this code, or its payload does not have
    /// the shape of its version (the message names type and versions, never a value).
    #[error(transparent)]
    Event(#[from] domain::versions::DecodeError),
    /// The KurrentDB server refused or could not be reached (the message names no event).
    #[error("the event store (KurrentDB) failed")]
    EventStore(#[source] kurrentdb::Error),
    /// The KurrentDB namespace is empty or holds `.`, `-` or `$`.
    #[error("the event-store namespace must be non-empty and hold no `.`, `-` or `$`")]
    InvalidNamespace,
    /// The database URL names neither PostgreSQL nor SQLite.
    #[error("the database URL must start with postgres://, postgresql:// or sqlite:")]
    UnsupportedUrl,
}

impl LogError {
    /// Whether the database could not be reached at all (as opposed to refusing a statement):
    /// the caller may answer "unavailable, retry" instead of "internal error".
    pub fn is_unavailable(&self) -> bool {
        match self {
            LogError::Database(e) => is_unreachable(e),
            LogError::EventStore(e) => is_kurrent_unreachable(e),
            _ => false,
        }
    }
}

/// Whether a database error means the database could not be reached (network, pool, TLS).
pub fn is_unreachable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_)
    )
}

/// Whether a KurrentDB client error may be a lost connection or a leader change (after which
/// the same append may be sent again).
pub fn is_kurrent_unreachable(error: &kurrentdb::Error) -> bool {
    matches!(
        error,
        kurrentdb::Error::ServerError(_)
            | kurrentdb::Error::ConnectionClosed
            | kurrentdb::Error::GrpcConnectionError(_)
            | kurrentdb::Error::DeadlineExceeded
            | kurrentdb::Error::NotLeaderException(_)
    )
}
