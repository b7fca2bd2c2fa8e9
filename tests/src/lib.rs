//! Helpers for dynamoi's black-box tests: a fresh database per test on either backend, and
//! bounded waiting on conditions (never bare sleeps).
//!
//! KurrentDB tests ([`three_backends!`], [`Backend::KurrentDb`]) keep their events in an
//! in-process `kurrentdb-standin` started per test, or in the real KurrentDB of
//! `DYNAMOI_TEST_KURRENTDB_URL` when it is set (each test under its own namespace, so a shared
//! server is fine); their read models, checkpoints and the rest live in a fresh SQLite file.
//!
//! PostgreSQL tests need the server of `DYNAMOI_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). When it is unreachable they fail, unless
//! `DYNAMOI_TEST_SKIP_POSTGRES=1` is set outside CI; under `CI=true` they always fail.

pub mod browser;
pub mod contract;

use eventlog::{Db, EventLog, KurrentStore};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which backend a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
    /// Events in KurrentDB (the stand-in, or `DYNAMOI_TEST_KURRENTDB_URL`), the rest in SQLite.
    KurrentDb,
}

/// The KurrentDB a test's events live in.
pub struct KurrentTarget {
    /// The connection string (`kurrentdb://…`).
    pub url: String,
    /// This test's namespace: its streams are `{namespace}.{type}-{id}`.
    pub namespace: String,
    /// The stand-in, when no real server was named; stopped on drop.
    pub standin: Option<kurrentdb_standin::StandinHandle>,
}

impl KurrentTarget {
    /// The real server of `DYNAMOI_TEST_KURRENTDB_URL`, or a fresh stand-in.
    pub async fn start() -> KurrentTarget {
        let namespace = format!("t{}", uuid::Uuid::now_v7().simple());
        match std::env::var("DYNAMOI_TEST_KURRENTDB_URL") {
            Ok(url) if !url.is_empty() => KurrentTarget {
                url,
                namespace,
                standin: None,
            },
            _ => {
                let standin = kurrentdb_standin::Standin::start()
                    .await
                    .expect("start the KurrentDB stand-in");
                KurrentTarget {
                    url: standin.url(),
                    namespace,
                    standin: Some(standin),
                }
            }
        }
    }

    /// A new client (bound to the current runtime).
    pub fn store(&self) -> KurrentStore {
        KurrentStore::connect(&self.url, &self.namespace).expect("a valid KurrentDB connection string")
    }
}

/// A database made for one test and dropped after it.
pub struct TestDb {
    pub url: String,
    pub db: Db,
    admin_url: Option<String>,
    name: String,
    _dir: Option<TempDir>,
    /// The service's data folder (development keys live there), kept across app restarts.
    pub data_dir: TempDir,
    /// Where the events live when they are in KurrentDB.
    pub kurrent: Option<KurrentTarget>,
}

/// A temporary folder removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!("dynamoi-test-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&path).expect("create a temporary folder");
        TempDir(path)
    }
}

impl Default for TempDir {
    fn default() -> Self {
        TempDir::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The PostgreSQL server tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("DYNAMOI_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn replace_database(url: &str, database: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("a PostgreSQL URL has a path");
    format!("{base}/{database}")
}

impl TestDb {
    /// A fresh, migrated database of the given backend. `None` only when PostgreSQL is
    /// unreachable and skipping was asked for outside CI (see the crate docs).
    pub async fn new(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => Some(TestDb::sqlite().await),
            Backend::Postgres => TestDb::postgres().await,
            Backend::KurrentDb => Some(TestDb::kurrentdb().await),
        }
    }

    /// Events in KurrentDB (see the crate docs), everything else in a fresh SQLite file.
    pub async fn kurrentdb() -> TestDb {
        let mut db = TestDb::sqlite().await;
        db.kurrent = Some(KurrentTarget::start().await);
        db
    }

    /// Where this test's events live.
    pub fn backend(&self) -> Backend {
        match (&self.kurrent, &self.db) {
            (Some(_), _) => Backend::KurrentDb,
            (None, Db::Postgres(_)) => Backend::Postgres,
            (None, Db::Sqlite(_)) => Backend::Sqlite,
        }
    }

    /// `sqlite`, `postgres` or `kurrentdb`, for messages.
    pub fn backend_name(&self) -> &'static str {
        match self.backend() {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::KurrentDb => "kurrentdb",
        }
    }

    /// An event log over `db` (this test's database or another pool to it) and, for a
    /// KurrentDB test, a new client of its server (bound to the current runtime).
    pub fn log_over(&self, db: Db, clock: clock::SharedClock) -> EventLog {
        match &self.kurrent {
            Some(target) => EventLog::with_kurrent(db, target.store(), clock),
            None => EventLog::with_clock(db, clock),
        }
    }

    /// An event log over this database stamping events with `clock`.
    pub fn log_with_clock(&self, clock: clock::SharedClock) -> EventLog {
        self.log_over(self.db.clone(), clock)
    }

    /// The settings that point a service at this test's event store, if not the SQL database.
    pub fn event_store_settings(&self) -> Vec<(&'static str, String)> {
        match &self.kurrent {
            Some(target) => vec![
                ("DYNAMOI_EVENT_STORE_URL", target.url.clone()),
                ("DYNAMOI_EVENT_STORE_NAMESPACE", target.namespace.clone()),
            ],
            None => Vec::new(),
        }
    }

    /// A fresh SQLite file in a temporary folder, migrated.
    pub async fn sqlite() -> TestDb {
        let dir = TempDir::new();
        let url = format!("sqlite:{}", dir.0.join("dynamoi.db").display());
        let db = Db::connect(&url, 8).await.expect("open SQLite");
        db.migrate().await.expect("migrate SQLite");
        TestDb {
            url,
            db,
            admin_url: None,
            name: String::new(),
            _dir: Some(dir),
            data_dir: TempDir::new(),
            kurrent: None,
        }
    }

    /// A fresh PostgreSQL database, migrated; see the crate docs for when it may be `None`.
    pub async fn postgres() -> Option<TestDb> {
        let admin_url = postgres_admin_url();
        let admin = match Db::connect(&admin_url, 1).await {
            Ok(Db::Postgres(pool)) => pool,
            Ok(_) => panic!("DYNAMOI_TEST_POSTGRES_URL must be a postgres:// URL"),
            Err(error) => {
                let ci = std::env::var("CI").map(|v| v == "true").unwrap_or(false);
                let skip = std::env::var("DYNAMOI_TEST_SKIP_POSTGRES")
                    .map(|v| v == "1")
                    .unwrap_or(false);
                if skip && !ci {
                    eprintln!("PostgreSQL at {admin_url} is unreachable ({error}); skipped as DYNAMOI_TEST_SKIP_POSTGRES=1 asks");
                    return None;
                }
                panic!("PostgreSQL at {admin_url} is unreachable: {error}. Start it (see README.md); set DYNAMOI_TEST_SKIP_POSTGRES=1 to skip outside CI");
            }
        };
        let name = format!("dynamoi_test_{}", uuid::Uuid::now_v7().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("create the test database");
        admin.close().await;
        let url = replace_database(&admin_url, &name);
        let db = Db::connect(&url, 16).await.expect("connect to the test database");
        db.migrate().await.expect("migrate PostgreSQL");
        Some(TestDb {
            url,
            db,
            admin_url: Some(admin_url),
            name,
            _dir: None,
            data_dir: TempDir::new(),
            kurrent: None,
        })
    }

    /// A stand-in left behind when a [`TestApp`] hands its database back; owns nothing.
    fn placeholder() -> TestDb {
        TestDb {
            url: String::new(),
            db: Db::Sqlite(sqlx::SqlitePool::connect_lazy("sqlite::memory:").expect("a lazy in-memory pool")),
            admin_url: None,
            name: String::new(),
            _dir: None,
            data_dir: TempDir::new(),
            kurrent: None,
        }
    }

    /// An event log over this database (and this test's KurrentDB, if any).
    pub fn log(&self) -> EventLog {
        self.log_with_clock(clock::system())
    }

    /// Runs one SQL statement on the database directly (a test's own set-up or tampering, such
    /// as restoring an old copy of a table).
    pub async fn execute(&self, sql: &str) {
        match &self.db {
            Db::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
            Db::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
        }
        .expect("the test's statement runs")
    }

    /// The single integer a query such as `SELECT count(*) …` answers.
    pub async fn count(&self, sql: &str) -> i64 {
        match &self.db {
            Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .expect("the test's count runs")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(admin_url) = self.admin_url.take() else { return };
        let name = std::mem::take(&mut self.name);
        let db = self.db.clone();
        // Drop runs inside the test's runtime; a fresh thread with its own runtime may block.
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

/// Rebuilds one projection from the whole feed in batches of `batch_size` (a new generation
/// that takes over); returns how many batches it took.
pub async fn rebuild_in_batches(
    log: &EventLog,
    projection: std::sync::Arc<dyn projections::Projection>,
    batch_size: usize,
) -> usize {
    let name = projection.name();
    let config = projections::EngineConfig {
        batch_size,
        rebuild_batch_size: batch_size,
        ..projections::EngineConfig::default()
    };
    let engine = projections::Engine::new(log.clone(), vec![projection], config);
    engine.prepare().await.expect("prepare the projection");
    let mut batches = 0;
    engine
        .rebuild(name, |progress| batches += usize::from(progress.done > 0))
        .await
        .unwrap_or_else(|e| panic!("rebuild {name} in batches of {batch_size}: {e:?}"));
    batches
}

/// Waits until `condition` holds, checking every 10 ms, for at most `timeout`. Returns
/// whether it held; tests assert on that, so a timeout is a failure with a message.
pub async fn wait_until<F, Fut>(timeout: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs a test body against both backends, SQLite then PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($(#[$meta:meta])* async fn $name:ident($db:ident: TestDb) $body:block) => {
        mod $name {
            use super::*;
            async fn run($db: $crate::TestDb) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_sqlite() {
                run($crate::TestDb::sqlite().await).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_postgres() {
                if let Some(db) = $crate::TestDb::postgres().await {
                    run(db).await
                }
            }
        }
    };
}

/// Runs a test body against the three event stores: SQLite, PostgreSQL, and KurrentDB (the
/// stand-in, or `DYNAMOI_TEST_KURRENTDB_URL`; read models in SQLite).
#[macro_export]
macro_rules! three_backends {
    ($(#[$meta:meta])* async fn $name:ident($db:ident: TestDb) $body:block) => {
        mod $name {
            use super::*;
            async fn run($db: $crate::TestDb) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_sqlite() {
                run($crate::TestDb::sqlite().await).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_postgres() {
                if let Some(db) = $crate::TestDb::postgres().await {
                    run(db).await
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_kurrentdb() {
                run($crate::TestDb::kurrentdb().await).await
            }
        }
    };
}

/// A running dynamoi service on a random port, over a fresh database, for end-to-end tests.
pub struct TestApp {
    pub address: std::net::SocketAddr,
    pub base_url: String,
    /// A client whose every answer from this service is checked against `api/openapi.json`
    /// ([`contract`]): a drift between a route and the document fails the test that met it.
    pub client: reqwest_middleware::ClientWithMiddleware,
    pub settings: api::Settings,
    pub db: TestDb,
    /// The service's clock: it runs from the instant the test set ([`TEST_NOW`] unless asked).
    pub clock: Arc<clock::AnchoredClock>,
    /// The application the service runs, for tests that call a use case directly.
    pub app: app::App,
    shutdown: tokio_util_shim::Shutdown,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A one-shot shutdown signal (a oneshot channel), so the crate needs no extra dependency.
mod tokio_util_shim {
    pub struct Shutdown(pub Option<tokio::sync::oneshot::Sender<()>>);
}

/// The instant every test app's clock starts at unless the test sets another: tests never read
/// the wall clock for what they assert.
pub const TEST_NOW: &str = "2026-11-15T12:00:00Z";

/// The variable that moves every test app's starting instant (RFC 3339), to prove that the
/// suite does not depend on the date: `.ci/run` runs the date-sensitive tests again a year
/// later with it.
pub const TEST_NOW_VARIABLE: &str = "DYNAMOI_TEST_NOW";

/// The instant every test app's clock starts at: [`TEST_NOW`], or [`TEST_NOW_VARIABLE`] when set.
pub fn test_now() -> chrono::DateTime<chrono::Utc> {
    match std::env::var(TEST_NOW_VARIABLE) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{TEST_NOW_VARIABLE}={text} is not an RFC 3339 instant")),
        Err(_) => TEST_NOW.parse().expect("a valid instant"),
    }
}

/// The JWT secret every test app is configured with.
pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

impl TestApp {
    /// Starts the real application (`api::Application`) on 127.0.0.1:0 over a fresh database
    /// of `backend`, with `extra` settings as environment-style variables.
    pub async fn spawn(backend: Backend, extra: &[(&str, &str)]) -> Option<TestApp> {
        let db = TestDb::new(backend).await?;
        Some(TestApp::spawn_on(db, extra).await)
    }

    /// Starts the real application with its clock at `at`.
    pub async fn spawn_at(
        backend: Backend,
        extra: &[(&str, &str)],
        at: chrono::DateTime<chrono::Utc>,
    ) -> Option<TestApp> {
        let db = TestDb::new(backend).await?;
        Some(TestApp::spawn_on_at(db, extra, at).await)
    }

    /// Starts the application over an existing test database (e.g. one a stopped app used).
    pub async fn spawn_on(db: TestDb, extra: &[(&str, &str)]) -> TestApp {
        TestApp::spawn_on_at(db, extra, test_now()).await
    }

    /// Starts the application over an existing test database with its clock at `at`.
    pub async fn spawn_on_at(db: TestDb, extra: &[(&str, &str)], at: chrono::DateTime<chrono::Utc>) -> TestApp {
        let mut vars: std::collections::HashMap<String, String> = [
            ("DYNAMOI_LISTEN", "127.0.0.1:0".to_string()),
            ("DYNAMOI_DATABASE_URL", db.url.clone()),
            ("DYNAMOI_DATA_DIR", db.data_dir.0.display().to_string()),
            ("DYNAMOI_JWT_SECRET", TEST_JWT_SECRET.to_string()),
            ("DYNAMOI_PROJECTION_POLL_MS", "50".to_string()),
            ("DYNAMOI_LOG", "warn".to_string()),
            // Tests run jobs on demand; a test of the scheduler turns them on.
            ("DYNAMOI_SYNC_DAILY_AT", "off".to_string()),
            ("DYNAMOI_BILLING_CLOSE_DAILY_AT", "off".to_string()),
            ("DYNAMOI_RETENTION_DAILY_AT", "off".to_string()),
            ("DYNAMOI_PRIVACY_RETRY_DAILY_AT", "off".to_string()),
            ("DYNAMOI_WORKFLOW_POLL_MS", "50".to_string()),
            // A failed workflow item is retried after 50 ms (doubling), not a minute.
            ("DYNAMOI_WORKFLOW_BACKOFF_MS", "50".to_string()),
            ("DYNAMOI_JOBS_POLL_MS", "50".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in db.event_store_settings() {
            vars.insert(k.to_string(), v);
        }
        for (k, v) in extra {
            vars.insert(k.to_string(), v.to_string());
        }
        let settings = api::Settings::from_lookup(|k| vars.get(k).cloned()).expect("valid test settings");
        let clock = clock::AnchoredClock::new(at);
        let application = api::Application::build_with_clock(settings.clone(), clock.clone())
            .await
            .expect("the app builds");
        let address = application.address();
        let app = application.app().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(application.run_until(async move {
            let _ = rx.await;
        }));
        TestApp {
            address,
            base_url: format!("http://{address}"),
            client: contract::checked_client(&format!("http://{address}")),
            settings,
            db,
            clock,
            app,
            shutdown: tokio_util_shim::Shutdown(Some(tx)),
            server: Some(server),
        }
    }

    /// The service's current instant (its clock, not the wall clock).
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        clock::Clock::now(self.clock.as_ref())
    }

    /// A bearer token for `sub` with `role`, signed with the test secret.
    pub fn token(&self, sub: &str, role: api::auth::Role) -> String {
        let secret = secrecy::SecretString::from(TEST_JWT_SECRET);
        api::auth::Authenticator::with_clock(&secret, "authenticated", self.clock.clone())
            // Valid for 400 days of the service's clock: tests move the clock by days and months.
            .mint(sub, role, 400 * 24 * 3600)
            .expect("mint a token")
    }

    /// Sends `body` (JSON, when given) to `route` with `token`; the status and the JSON answer
    /// (`null` when the answer is not JSON).
    pub async fn send(
        &self,
        token: &str,
        method: reqwest::Method,
        route: &str,
        body: Option<serde_json::Value>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut request = self
            .client
            .request(method, format!("{}{route}", self.base_url))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the request is sent");
        let status = response.status();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Signs `person` up (an adult in Pakistan, through the sign-up hook's service token), as
    /// every person must before a processing command (connecting, creating an artist, …).
    pub async fn sign_up(&self, person: &str) {
        let (status, body) = self
            .send(
                &self.token("auth-hook", api::auth::Role::Service),
                reqwest::Method::POST,
                "/v1/accounts",
                Some(serde_json::json!({
                    "person_id": person, "provider": "google", "provider_subject": format!("google|{person}"),
                    "name": "Test Person", "email": format!("{person}@example.test"), "country": "PK",
                    "birth_date": "1990-02-03"
                })),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "sign-up of {person}: {body}");
    }

    /// How many events the log holds.
    pub async fn event_count(&self) -> i64 {
        if self.db.kurrent.is_some() {
            return self
                .app
                .log
                .head(eventlog::Position::START)
                .await
                .expect("count the feed")
                .events_after;
        }
        let sql = "SELECT count(*) FROM events";
        match &self.db.db {
            Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
            Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        }
    }

    /// Stops the app gracefully, waits until it has stopped, and hands back its database.
    pub async fn stop(mut self) -> TestDb {
        if let Some(tx) = self.shutdown.0.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("the server task ends")
                .expect("the server stops cleanly");
        }
        // The app closed its pool on the way out; reopen one for the caller.
        let db = Db::connect(&self.db.url, 4).await.expect("reopen the test database");
        let mut test_db = std::mem::replace(&mut self.db, TestDb::placeholder());
        test_db.db = db;
        test_db
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.0.take() {
            let _ = tx.send(());
        }
    }
}

/// The value of the sample `series` in the Prometheus text `metrics`: a metric's name, with its
/// labels as the exporter renders them (`dynamoi_projection_lock_held{projection="x"}`).
pub fn metric_sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Every text, JSON and binary cell of every table that holds `needle`, as `table.column`.
pub async fn cells_holding(db: &Db, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    match db {
        Db::Postgres(pool) => {
            let columns = sqlx::query(
                "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c \
                 JOIN information_schema.tables t ON t.table_name = c.table_name AND t.table_schema = c.table_schema \
                 WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' \
                 AND c.data_type IN ('text', 'json', 'jsonb', 'bytea', 'character varying')",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            for column in columns {
                let (table, name, kind): (String, String, String) = (
                    sqlx::Row::get(&column, 0),
                    sqlx::Row::get(&column, 1),
                    sqlx::Row::get(&column, 2),
                );
                let sql = if kind == "bytea" {
                    format!("SELECT count(*) FROM \"{table}\" WHERE position(convert_to($1, 'UTF8') in \"{name}\") > 0")
                } else {
                    format!("SELECT count(*) FROM \"{table}\" WHERE \"{name}\"::text LIKE '%' || $1 || '%'")
                };
                let n: i64 = sqlx::query_scalar(&sql).bind(needle).fetch_one(pool).await.unwrap();
                if n > 0 {
                    found.push(format!("{table}.{name}"));
                }
            }
        }
        Db::Sqlite(pool) => {
            let tables: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(pool)
                .await
                .unwrap();
            for table in tables {
                let columns: Vec<String> = sqlx::query(&format!("PRAGMA table_info(\"{table}\")"))
                    .fetch_all(pool)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| sqlx::Row::get::<String, _>(r, "name"))
                    .collect();
                for name in columns {
                    let sql = format!(
                        "SELECT count(*) FROM \"{table}\" WHERE instr(CAST(\"{name}\" AS BLOB), CAST($1 AS BLOB)) > 0"
                    );
                    let n: i64 = sqlx::query_scalar(&sql).bind(needle).fetch_one(pool).await.unwrap();
                    if n > 0 {
                        found.push(format!("{table}.{name}"));
                    }
                }
            }
        }
    }
    found
}

/// A Meta campaign draft for `artist_id` (1 USD a day from 2026-10-01, one Facebook post): the
/// draft the tests that need "some campaign" record straight through the log.
pub fn meta_campaign_draft(artist_id: &str) -> domain::campaign::CampaignDraft {
    use domain::campaign::{AdPlatform, Budget, CampaignDraft, Creative, Objective, Schedule};
    CampaignDraft {
        artist_id: artist_id.into(),
        platform: AdPlatform::Meta,
        objective: Objective::Streams,
        budget: Budget::Daily {
            amount_micros: 1_000_000,
        },
        currency: "USD".into(),
        schedule: Schedule {
            start: "2026-10-01".parse().expect("a date"),
            end: None,
        },
        countries: vec!["PK".into()],
        creatives: vec![Creative::FacebookPost { post_id: "1_2".into() }],
    }
}

/// One day's figures with `spend_micros` in `currency` and fixed counts: the metrics of a
/// reading that tests record straight through the log.
pub fn spend_metrics(spend_micros: i64, currency: &str) -> domain::spend::Metrics {
    domain::spend::Metrics {
        spend_micros,
        currency: currency.into(),
        impressions: 1_000,
        reach: 800,
        clicks: 20,
        views: 0,
        saves: 0,
        reactions: 3,
        comments: 1,
        shares: 0,
        follows: 2,
        conversions: 0,
    }
}
