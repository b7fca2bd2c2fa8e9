//! The [`Projection`] trait every read model implements, and the transaction it writes in.

use async_trait::async_trait;
use eventlog::{DecodeError, Dialect, Position, StoredEvent};
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
    /// The aggregate types whose events this projection folds; `None` (the default): it may
    /// fold any event. The engine stores no transaction for a batch with none of these types:
    /// it moves the checkpoint later, with no table to write (see [`Projection::reads`]).
    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        None
    }
    /// Whether this projection folds `event`: its aggregate type is one of
    /// [`Projection::aggregate_types`]. Projections filter their batches with it, so what the
    /// engine skips and what `apply` folds are one list.
    fn reads(&self, event: &StoredEvent) -> bool {
        self.aggregate_types()
            .is_none_or(|types| types.contains(&event.aggregate_type.as_str()))
    }
    /// Applies a batch of events (in feed order, all of them, relevant or not) inside the
    /// transaction that will also store the checkpoint. It must not commit, and must not cause
    /// any effect outside the transaction.
    async fn apply(&self, tx: &mut ReadTx<'_>, target: &Target, events: &[StoredEvent]) -> Result<(), ProjectionError>;

    /// Runs inside the transaction that makes `target` the served generation, after its views
    /// switched: fills what the projection keeps only while served (see [`Target::served`]).
    /// The default does nothing.
    async fn on_take_over(&self, _tx: &mut ReadTx<'_>, _target: &Target) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

/// The open transaction a projection writes in.
pub enum ReadTx<'c> {
    Postgres(&'c mut PgConnection),
    Sqlite(&'c mut SqliteConnection),
}

impl<'c> From<&'c mut PgConnection> for ReadTx<'c> {
    fn from(conn: &'c mut PgConnection) -> Self {
        ReadTx::Postgres(conn)
    }
}

impl<'c> From<&'c mut SqliteConnection> for ReadTx<'c> {
    fn from(conn: &'c mut SqliteConnection) -> Self {
        ReadTx::Sqlite(conn)
    }
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
    /// Whether this generation is the one served (active), as the batch's own transaction
    /// found it. A table derived from the projection's other tables may be kept only while
    /// served: [`Projection::on_take_over`] fills it when a generation becomes the served one.
    pub served: bool,
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
/// What a read-model database error was, for `projections status` and the operators' page:
/// its kind, SQLSTATE and constraint, never its message (a database message can quote the
/// value it refused, and values can be personal).
pub fn describe_database_error(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string()).unwrap_or_else(|| "unknown".into());
            match db.constraint() {
                Some(constraint) => {
                    format!("the read-model database refused it (SQLSTATE {code}, constraint {constraint})")
                }
                None => format!("the read-model database refused it (SQLSTATE {code})"),
            }
        }
        sqlx::Error::ColumnDecode { index, .. } => format!("read-model column {index} could not be decoded"),
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => "no read-model database connection was available".into(),
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => {
            "the read-model database connection failed".into()
        }
        _ => "the read-model database failed".into(),
    }
}

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
    /// Whether the database could not be reached (as opposed to refusing a statement).
    pub fn is_unavailable(&self) -> bool {
        match self {
            ProjectionError::Database(e) => eventlog::error::is_unreachable(e),
            ProjectionError::Log(log) => log.is_unavailable(),
            _ => false,
        }
    }

    /// An event that does not decode: an unknown type, a version newer than the code, or a
    /// payload that does not have its version's shape.
    pub fn undecodable(event: &StoredEvent, error: DecodeError) -> ProjectionError {
        ProjectionError::Event {
            position: event.position,
            event_type: event.event_type.clone(),
            // A `DecodeError` names types, versions and serde's category and place only: never
            // a value of the payload, which may be personal.
            reason: error.to_string(),
        }
    }
}
