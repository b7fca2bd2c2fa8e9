//! The [`Projection`] trait every read model implements, and the transaction it writes in.

use async_trait::async_trait;
use eventlog::{Dialect, Position, StoredEvent};
use sqlx::{PgConnection, SqliteConnection};

/// A read model built from the global feed.
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// A stable name, used for checkpoints and on the command line.
    fn name(&self) -> &'static str;
    /// Bump it when the tables or the folding change: a new version rebuilds beside the old.
    fn version(&self) -> i32;
    /// The logical table names; the active generation's tables are served as views of these names.
    fn tables(&self) -> &'static [&'static str];
    /// The DDL of one generation's tables (from `migrations/read_models`); `{g}` is replaced
    /// by the generation suffix, e.g. `_g3`.
    fn schema(&self, dialect: Dialect) -> &'static str;
    /// Applies a batch of events (in feed order, all of them, relevant or not) inside the
    /// transaction that will also store the checkpoint. It must not commit, and must not cause
    /// any effect outside the transaction.
    async fn apply(&self, tx: &mut ReadTx<'_>, target: &Target, events: &[StoredEvent]) -> Result<(), ProjectionError>;
}

/// The open transaction a projection writes in.
pub enum ReadTx<'c> {
    Postgres(&'c mut PgConnection),
    Sqlite(&'c mut SqliteConnection),
}

impl ReadTx<'_> {
    /// The dialect of the transaction's database.
    pub fn dialect(&self) -> Dialect {
        match self {
            ReadTx::Postgres(_) => Dialect::Postgres,
            ReadTx::Sqlite(_) => Dialect::Sqlite,
        }
    }
}

/// Which generation's tables a batch is written to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub generation: i64,
}

impl Target {
    /// The physical name of a logical table in this generation, e.g. `policy_versions_g3`.
    pub fn table(&self, logical: &str) -> String {
        format!("{logical}{}", self.suffix())
    }

    /// The suffix of this generation's tables, e.g. `_g3`.
    pub fn suffix(&self) -> String {
        format!("_g{}", self.generation)
    }
}

/// Why a batch could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// One event cannot be folded (unknown shape, broken invariant): the projection stalls here.
    #[error("event at {position} ({event_type}) could not be applied: {reason}")]
    Event {
        position: Position,
        event_type: String,
        reason: String,
    },
    /// The database failed.
    #[error("the read-model database failed")]
    Database(#[from] sqlx::Error),
    /// The log failed.
    #[error(transparent)]
    Log(#[from] eventlog::LogError),
    /// A value could not be serialised for a read-model column.
    #[error("a read-model value could not be serialised")]
    Serialise(#[from] serde_json::Error),
}

impl ProjectionError {
    /// An event whose payload does not decode.
    pub fn undecodable(event: &StoredEvent, error: serde_json::Error) -> ProjectionError {
        ProjectionError::Event {
            position: event.position,
            event_type: event.event_type.clone(),
            // The category and place only: serde's message may quote a value, which may be personal.
            reason: format!(
                "the payload does not decode ({:?} error at line {}, column {})",
                error.classify(),
                error.line(),
                error.column()
            ),
        }
    }
}
