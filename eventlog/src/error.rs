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
    /// The database refused or could not be reached.
    #[error("the event store failed")]
    Database(#[from] sqlx::Error),
    /// Applying the schema failed.
    #[error("applying the database migrations failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored event or metadata could not be decoded.
    #[error("a stored event could not be decoded")]
    Decode(#[from] serde_json::Error),
    /// The database URL names neither PostgreSQL nor SQLite.
    #[error("the database URL must start with postgres://, postgresql:// or sqlite:")]
    UnsupportedUrl,
}
