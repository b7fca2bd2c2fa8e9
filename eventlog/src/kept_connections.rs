//! PostgreSQL connections the log keeps for its one-statement appends and for readers' one-statement
//! reads, given back without the ping sqlx's pool sends on every connection it is given back.
//!
//! sqlx 0.8 pings each pooled connection when it is released (`return_to_pool` in sqlx-core's
//! `pool/connection.rs`, unconditionally, in a task of its own after the caller has its
//! answer): a command that waits for one round trip costs the server two, and at 8 commands in
//! flight the pings compete with the next commands' statements for the same two cores. An
//! append (or a [`PgReader`]'s read, such as a dashboard's) holds one of these connections for
//! its one statement instead, and gives it back by pushing it onto a stack: nothing is sent.
//!
//! What the ping guarded against is handled here by what is kept:
//! - a connection is given back only after its statement ran to the end (an answer, or an
//!   error the server sent); one whose statement was cancelled mid-way (its future dropped)
//!   or failed on the wire is closed, never reused, and a failure on the wire closes the idle
//!   ones too (what ended one session has most likely ended them all);
//! - one idle for longer than `PING_IF_IDLE_FOR` is pinged before use (as the pool's
//!   connections are, `crate::db`), and replaced by a new one if the ping fails.
//!
//! At most as many connections as the pool's `max_connections` are held; a statement that finds
//! them all in use takes a connection from the pool, as before. Appends inside a transaction
//! (under an Idempotency-Key, or a batch of more than one statement) use the pool.

use crate::db::PING_IF_IDLE_FOR;
use sqlx::postgres::{PgArguments, PgConnection, PgDatabaseError, PgRow, PgSeverity, Postgres};
use sqlx::query::Query;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteRow};
use sqlx::{ConnectOptions, Connection, PgPool, SqlitePool};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::{Semaphore, SemaphorePermit};

/// The connections the log keeps for its one-statement appends and reads, and the bound on how
/// many are in use.
pub(crate) struct KeptConnections {
    /// The pool the log's other statements use: these are opened with its options (the same
    /// server, user and session settings), and when it is closed, so are these.
    pool: PgPool,
    /// Connections not in use, each with the instant it was given back.
    idle: Mutex<Vec<(PgConnection, Instant)>>,
    /// One permit per connection that may be in use at once.
    permits: Semaphore,
}

impl std::fmt::Debug for KeptConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeptConnections")
            .field("idle", &self.idle().len())
            .field("available", &self.permits.available_permits())
            .finish()
    }
}

/// One connection held for one statement. Dropped without [`HeldConnection::give_back`], its
/// connection is closed.
pub(crate) struct HeldConnection<'a> {
    set: &'a KeptConnections,
    connection: PgConnection,
    _permit: SemaphorePermit<'a>,
}

impl KeptConnections {
    /// A set for the log whose other statements go through `pool`, holding up to the pool's
    /// `max_connections` connections of its own (opened when first needed).
    pub(crate) fn beside(pool: &PgPool) -> KeptConnections {
        KeptConnections {
            pool: pool.clone(),
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(pool.options().get_max_connections() as usize),
        }
    }

    /// A connection for one statement, or `None` when every one this set may hold is in use or
    /// the pool is closed (the caller then goes through the pool).
    pub(crate) async fn take(&self) -> Result<Option<HeldConnection<'_>>, sqlx::Error> {
        if self.pool.is_closed() {
            self.idle().clear();
            return Ok(None);
        }
        let Ok(permit) = self.permits.try_acquire() else {
            return Ok(None);
        };
        let idle = self.idle().pop();
        let connection = match idle {
            Some((connection, since)) if since.elapsed() <= PING_IF_IDLE_FOR => connection,
            Some((mut connection, _)) => match connection.ping().await {
                Ok(()) => connection,
                // A restarted server or a dropped socket: this one is gone, open another.
                Err(_) => self.pool.connect_options().connect().await?,
            },
            None => self.pool.connect_options().connect().await?,
        };
        Ok(Some(HeldConnection {
            set: self,
            connection,
            _permit: permit,
        }))
    }

    /// The connections not in use (a panic while the lock was held cannot leave the stack
    /// half-changed: a push or a pop either happened or did not).
    fn idle(&self) -> MutexGuard<'_, Vec<(PgConnection, Instant)>> {
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl HeldConnection<'_> {
    /// The connection, to run the statement on.
    pub(crate) fn connection(&mut self) -> &mut PgConnection {
        &mut self.connection
    }

    /// Keeps the connection for the next statement after its statement's `outcome`: kept when the
    /// statement ran to the end (it succeeded, or the server refused it with an `ERROR`, as on
    /// a conflict). After a failure on the wire, or a `FATAL` from the server (which then ends
    /// the session: `pg_terminate_backend`, a shutdown), it is closed, and so are the idle
    /// ones: what ended one session has most likely ended them all, and each would fail one
    /// more statement.
    pub(crate) fn give_back<T>(self, outcome: &Result<T, sqlx::Error>) {
        let HeldConnection { set, connection, .. } = self;
        let mut idle = set.idle();
        if session_goes_on(outcome) {
            idle.push((connection, Instant::now()));
        } else {
            idle.clear();
        }
    }
}

/// Runs `statement` (one statement) on a connection of `kept` when one is free, given back after
/// it by its outcome; else on a connection from `pool`. What appends and [`PgReader`]s share.
pub(crate) async fn one_statement<T>(
    kept: Option<&KeptConnections>,
    pool: &PgPool,
    statement: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
) -> Result<T, sqlx::Error> {
    let held = match kept {
        Some(kept) => kept.take().await?,
        None => None,
    };
    match held {
        Some(mut held) => {
            let outcome = statement(held.connection()).await;
            held.give_back(&outcome);
            outcome
        }
        None => statement(&mut *pool.acquire().await?).await,
    }
}

/// Whether the session a statement ran on is still usable after its `outcome`.
fn session_goes_on<T>(outcome: &Result<T, sqlx::Error>) -> bool {
    match outcome {
        Ok(_) => true,
        Err(sqlx::Error::Database(error)) => error
            .try_downcast_ref::<PgDatabaseError>()
            .is_some_and(|error| !matches!(error.severity(), PgSeverity::Fatal | PgSeverity::Panic)),
        Err(_) => false,
    }
}

/// Where a reader's one statement runs ([`crate::EventLog::reader`]): the same query text and
/// binds on either SQL backend, through `eventlog::dispatch!(log.reader(), Reader, |reader| ...)`.
pub enum Reader<'a> {
    Postgres(PgReader<'a>),
    Sqlite(SqliteReader<'a>),
}

/// Reads one PostgreSQL statement's rows on a connection the log keeps (given back without
/// sqlx's release ping) when one is free, else through the pool.
pub struct PgReader<'a> {
    pub(crate) pool: &'a PgPool,
    pub(crate) kept: Option<&'a KeptConnections>,
}

impl PgReader<'_> {
    /// Every row `query` returns.
    pub async fn fetch_all(&self, query: Query<'_, Postgres, PgArguments>) -> Result<Vec<PgRow>, sqlx::Error> {
        one_statement(self.kept, self.pool, async |connection| {
            query.fetch_all(connection).await
        })
        .await
    }
}

/// Reads one SQLite statement's rows through the pool.
pub struct SqliteReader<'a>(pub(crate) &'a SqlitePool);

impl SqliteReader<'_> {
    /// Every row `query` returns.
    pub async fn fetch_all<'q>(
        &self,
        query: Query<'q, Sqlite, SqliteArguments<'q>>,
    ) -> Result<Vec<SqliteRow>, sqlx::Error> {
        query.fetch_all(self.0).await
    }
}
