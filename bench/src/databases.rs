//! Private databases: a fresh PostgreSQL database (created on the server of
//! `DYNAMOI_BENCH_POSTGRES_URL`, else `DYNAMOI_TEST_POSTGRES_URL`, else
//! `postgres://postgres@127.0.0.1:5432/postgres`) or a fresh SQLite file, migrated, and dropped
//! when the value is dropped.
//!
//! As in `tests/src/lib.rs`: when PostgreSQL is unreachable, [`PrivateDb::postgres`] fails,
//! unless `DYNAMOI_TEST_SKIP_POSTGRES=1` is set outside CI, where it returns `Ok(None)`; under
//! `CI=true` it always fails.

use anyhow::{anyhow, Context};
use eventlog::{Db, EventLog};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The aggregate cache capacity of the logs [`PrivateDb::log`] makes (`bench --aggregate-cache`).
static AGGREGATE_CACHE: OnceLock<usize> = OnceLock::new();

/// The aggregate cache capacity of the logs the scenarios make (the service's default unless
/// [`set_aggregate_cache`] said otherwise).
pub fn aggregate_cache() -> usize {
    AGGREGATE_CACHE
        .get()
        .copied()
        .unwrap_or(eventlog::aggregate_cache::DEFAULT_CAPACITY)
}

/// Sets the aggregate cache capacity of every log made from now on (once per process).
pub fn set_aggregate_cache(capacity: usize) {
    let _ = AGGREGATE_CACHE.set(capacity);
}

/// The PostgreSQL server private databases are created on (its `postgres` database).
pub fn admin_url() -> String {
    std::env::var("DYNAMOI_BENCH_POSTGRES_URL")
        .or_else(|_| std::env::var("DYNAMOI_TEST_POSTGRES_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Whether an unreachable PostgreSQL may be skipped: only with `DYNAMOI_TEST_SKIP_POSTGRES=1`
/// and never under `CI=true`.
pub fn may_skip_postgres() -> bool {
    let ci = std::env::var("CI").map(|v| v == "true").unwrap_or(false);
    let skip = std::env::var("DYNAMOI_TEST_SKIP_POSTGRES")
        .map(|v| v == "1")
        .unwrap_or(false);
    skip && !ci
}

/// The parts of a `postgres://user[:password]@host[:port]/database[?params]` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgUrl {
    /// `postgres://user[:password]@`
    pub prefix: String,
    pub host: String,
    pub port: u16,
    pub database: String,
    /// `?…` or empty.
    pub params: String,
}

impl PgUrl {
    /// Splits a PostgreSQL URL; the port defaults to 5432.
    pub fn parse(url: &str) -> anyhow::Result<PgUrl> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| anyhow!("a PostgreSQL URL starts with postgres://"))?;
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((user, rest)) => (format!("{user}@"), rest),
            None => (String::new(), rest),
        };
        let (hostport, rest) = rest.split_once('/').unwrap_or((rest, ""));
        let (database, params) = match rest.split_once('?') {
            Some((d, p)) => (d.to_string(), format!("?{p}")),
            None => (rest.to_string(), String::new()),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().context("the port of the PostgreSQL URL")?),
            None => (hostport.to_string(), 5432),
        };
        Ok(PgUrl {
            prefix: format!("{scheme}://{userinfo}"),
            host,
            port,
            database,
            params,
        })
    }

    /// The URL with another host, port and database.
    pub fn with(&self, host: &str, port: u16, database: &str) -> String {
        format!("{}{host}:{port}/{database}{}", self.prefix, self.params)
    }

    /// The same server, another database.
    pub fn database(&self, database: &str) -> String {
        self.with(&self.host.clone(), self.port, database)
    }
}

/// A temporary folder, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh folder under the system's temporary folder.
    pub fn new(what: &str) -> anyhow::Result<TempDir> {
        let path = std::env::temp_dir().join(format!("dynamoi-bench-{what}-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&path).with_context(|| format!("create {}", path.display()))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A database made for one scenario or test, dropped with it.
pub struct PrivateDb {
    /// Where the database is (a secret-free URL: the bench's server is local, trust auth).
    pub url: String,
    pub db: Db,
    /// The PostgreSQL database's name (empty for SQLite).
    pub name: String,
    admin_url: Option<String>,
    _dir: Option<TempDir>,
}

impl std::fmt::Debug for PrivateDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateDb").field("name", &self.name).finish()
    }
}

impl PrivateDb {
    /// A fresh, migrated PostgreSQL database with a pool of `max_connections`. `Ok(None)` only
    /// when the server is unreachable and skipping is allowed ([`may_skip_postgres`]).
    pub async fn postgres(max_connections: u32) -> anyhow::Result<Option<PrivateDb>> {
        let admin_url = admin_url();
        let admin = match Db::connect(&admin_url, 1).await {
            Ok(Db::Postgres(pool)) => pool,
            Ok(Db::Sqlite(_)) => anyhow::bail!("DYNAMOI_BENCH_POSTGRES_URL must be a postgres:// URL"),
            Err(error) if may_skip_postgres() => {
                eprintln!("PostgreSQL is unreachable ({error}); skipped as DYNAMOI_TEST_SKIP_POSTGRES=1 asks");
                return Ok(None);
            }
            Err(error) => {
                return Err(anyhow!(
                    "PostgreSQL at {} is unreachable: {error}. Start it (see README.md); outside CI, \
                     DYNAMOI_TEST_SKIP_POSTGRES=1 skips",
                    redact(&admin_url)
                ))
            }
        };
        let name = format!("dynamoi_bench_{}", uuid::Uuid::now_v7().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .context("create the private database")?;
        admin.close().await;
        let url = PgUrl::parse(&admin_url)?.database(&name);
        let private = PrivateDb {
            db: Db::connect(&url, max_connections)
                .await
                .context("connect to the private database")?,
            url,
            name,
            admin_url: Some(admin_url),
            _dir: None,
        };
        private.db.migrate().await.context("migrate the private database")?;
        Ok(Some(private))
    }

    /// A fresh, migrated SQLite file (the service's own settings: WAL, `synchronous=FULL`).
    pub async fn sqlite(max_connections: u32) -> anyhow::Result<PrivateDb> {
        let dir = TempDir::new("sqlite")?;
        let url = format!("sqlite:{}", dir.0.join("dynamoi.db").display());
        let db = Db::connect(&url, max_connections).await.context("open SQLite")?;
        db.migrate().await.context("migrate SQLite")?;
        Ok(PrivateDb {
            url,
            db,
            name: String::new(),
            admin_url: None,
            _dir: Some(dir),
        })
    }

    /// An event log over this database.
    pub fn log(&self) -> EventLog {
        EventLog::new(self.db.clone()).with_aggregate_cache(aggregate_cache())
    }

    /// The PostgreSQL pool (panics on SQLite: scenarios know their backend).
    pub fn pg(&self) -> &sqlx::PgPool {
        match &self.db {
            Db::Postgres(pool) => pool,
            Db::Sqlite(_) => panic!("a PostgreSQL database was expected"),
        }
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match PgUrl::parse(url) {
        Ok(parts) if parts.prefix.contains(':') && parts.prefix.matches(':').count() > 1 => {
            let user = parts
                .prefix
                .trim_end_matches('@')
                .rsplit_once(':')
                .map(|(u, _)| u)
                .unwrap_or("");
            format!("{user}:***@{}:{}/{}", parts.host, parts.port, parts.database)
        }
        _ => url.to_string(),
    }
}

impl Drop for PrivateDb {
    fn drop(&mut self) {
        let Some(admin_url) = self.admin_url.take() else { return };
        let name = std::mem::take(&mut self.name);
        let db = self.db.clone();
        // Drop may run inside a runtime; a fresh thread with its own runtime may block.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async move {
                    db.close().await;
                    if let Ok(Db::Postgres(admin)) = Db::connect(&admin_url, 1).await {
                        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&admin)
                            .await;
                        admin.close().await;
                    }
                });
            }
        })
        .join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_and_rejoin() {
        let u = PgUrl::parse("postgres://postgres@127.0.0.1:5432/postgres").unwrap();
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, 5432);
        assert_eq!(u.with("127.0.0.1", 6000, "x"), "postgres://postgres@127.0.0.1:6000/x");
        let u = PgUrl::parse("postgresql://a:b@db/app?sslmode=disable").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("db", 5432));
        assert_eq!(u.database("y"), "postgresql://a:b@db:5432/y?sslmode=disable");
        assert_eq!(redact("postgres://a:secret@db:1/x"), "postgres://a:***@db:1/x");
    }
}
