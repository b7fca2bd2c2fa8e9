//! Database pools for both backends, migrations, and dispatch over the dialect.

use crate::LogError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

/// Which SQL dialect a database speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

/// A connection pool to the one database that holds the log, the read models and the
/// checkpoints (they must share transactions).
#[derive(Clone, Debug)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Runs the same code against whichever pool or connection a [`Db`]-like enum holds. The body
/// is compiled once per backend, so it may use any sqlx API both backends implement.
#[macro_export]
macro_rules! dispatch {
    ($value:expr, $enum:ident, |$inner:ident| $body:expr) => {
        match $value {
            $enum::Postgres($inner) => $body,
            $enum::Sqlite($inner) => $body,
        }
    };
}

/// The statements every PostgreSQL session of ours starts with: a transaction left idle holds
/// back the feed (its xid stays below the snapshot horizon), so such a session is ended.
const PG_IDLE_IN_TRANSACTION_TIMEOUT: &str = "30s";

/// A pooled PostgreSQL connection idle for longer than this is pinged before it is used.
pub(crate) const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

impl Db {
    /// Connects to `url` (`postgres://…`, `postgresql://…` or `sqlite:path`). A SQLite file and
    /// its folder are created when missing. Fails (never panics) when the database is down.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db, LogError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?
                .options([("idle_in_transaction_session_timeout", PG_IDLE_IN_TRANSACTION_TIMEOUT)])
                .application_name("dynamoi");
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(10))
                // sqlx pings every connection taken from the pool by default: one more round
                // trip before every query (a command would wait for four, not two; counted in
                // bench/tests/counters.rs). sqlx also pings each connection when it is given
                // back, so one used within the last second is known to be alive; only one idle
                // for longer (a restarted server, a dropped socket) is pinged before use.
                .test_before_acquire(false)
                .before_acquire(|connection, meta| {
                    Box::pin(async move {
                        if meta.idle_for > PING_IF_IDLE_FOR {
                            sqlx::Connection::ping(connection).await?;
                        }
                        Ok(true)
                    })
                })
                .connect_with(options)
                .await?;
            Ok(Db::Postgres(pool))
        } else if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.trim_start_matches("//");
            if let Some(parent) = std::path::Path::new(path).parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent).map_err(|e| LogError::Database(sqlx::Error::Io(e)))?;
                }
            }
            let options = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // Durable by default: a command acknowledged is on disk.
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(30))
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await?;
            Ok(Db::Sqlite(pool))
        } else {
            Err(LogError::UnsupportedUrl)
        }
    }

    /// A pool of at most one connection to `url`, opened lazily, for readiness probes: it
    /// never competes with the pools commands and projection workers use, and a probe fails
    /// within `timeout` when the database is down ([`Db::probe`]).
    pub fn connect_probe(url: &str, timeout: Duration) -> Result<Db, LogError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?.application_name("dynamoi-probe");
            Ok(Db::Postgres(
                PgPoolOptions::new()
                    .max_connections(1)
                    .min_connections(0)
                    .acquire_timeout(timeout)
                    .connect_lazy_with(options),
            ))
        } else if let Some(path) = url.strip_prefix("sqlite:") {
            let options = SqliteConnectOptions::new()
                .filename(path.trim_start_matches("//"))
                .busy_timeout(timeout);
            Ok(Db::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(0)
                    .acquire_timeout(timeout)
                    .connect_lazy_with(options),
            ))
        } else {
            Err(LogError::UnsupportedUrl)
        }
    }

    /// One round trip (`SELECT 1`), failing after `timeout` (a down or unreachable database).
    pub async fn probe(&self, timeout: Duration) -> Result<(), LogError> {
        match tokio::time::timeout(timeout, self.ping()).await {
            Ok(result) => result,
            Err(_) => Err(LogError::Database(sqlx::Error::PoolTimedOut)),
        }
    }

    /// The dialect of this database.
    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Postgres(_) => Dialect::Postgres,
            Db::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Applies every migration under `migrations/<dialect>` that has not been applied yet.
    pub async fn migrate(&self) -> Result<(), LogError> {
        match self {
            Db::Postgres(pool) => sqlx::migrate!("../migrations/postgres").run(pool).await?,
            Db::Sqlite(pool) => sqlx::migrate!("../migrations/sqlite").run(pool).await?,
        }
        Ok(())
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), LogError> {
        dispatch!(self, Db, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Closes every connection; waits for connections in use to be returned.
    pub async fn close(&self) {
        dispatch!(self, Db, |pool| pool.close().await)
    }
}
