//! Typed settings: defaults, then an optional TOML file (`DYNAMOI_CONFIG_FILE`), then
//! `DYNAMOI_*` environment variables. Every secret is a [`SecretString`]. README.md has the table.

use anyhow::Context;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the HTTP server (`crate::server`) waits for clients, and for itself on shutdown.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// For a request's headers (`DYNAMOI_HTTP_HEADER_TIMEOUT_MS`).
    pub header_read: Duration,
    /// Between two pieces of a request's body (`DYNAMOI_HTTP_BODY_TIMEOUT_MS`).
    pub body_read: Duration,
    /// For connections to finish after the shutdown signal (`DYNAMOI_SHUTDOWN_GRACE_MS`).
    pub shutdown_grace: Duration,
}

/// Everything the service can be told.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where the HTTP API listens (`DYNAMOI_LISTEN`, default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// Folder for the embedded database and development key files (`DYNAMOI_DATA_DIR`, `./data`).
    pub data_dir: PathBuf,
    /// `postgres://…` or `sqlite:path` (`DYNAMOI_DATABASE_URL`; default SQLite in `data_dir`).
    /// A secret: it may hold a password.
    pub database_url: SecretString,
    /// Where the events live when not in `database_url`: a KurrentDB connection string
    /// (`DYNAMOI_EVENT_STORE_URL=kurrentdb://…`, the `kurrentdb` client's format). Unset: the
    /// events live in the SQL database. A secret: it may hold credentials.
    pub event_store_url: Option<SecretString>,
    /// The prefix of dynamoi's KurrentDB streams, `{namespace}.{type}-{id}`
    /// (`DYNAMOI_EVENT_STORE_NAMESPACE`, default `dynamoi`).
    pub event_store_namespace: String,
    /// Pool size (`DYNAMOI_DATABASE_MAX_CONNECTIONS`, default 10).
    pub database_max_connections: u32,
    /// How many commanded aggregates' states the process keeps, so that a command on one needs
    /// no load (`DYNAMOI_AGGREGATE_CACHE`, default 4096; 0: off, every command loads first).
    pub aggregate_cache: usize,
    /// Apply migrations when `serve` starts (`DYNAMOI_AUTO_MIGRATE`, default true).
    pub auto_migrate: bool,
    /// HS256 secret that verifies bearer tokens (`DYNAMOI_JWT_SECRET`); when unset, a development
    /// secret is generated in `data_dir` with a loud warning.
    pub jwt_secret: Option<SecretString>,
    /// The master keyring file (`DYNAMOI_MASTER_KEY_FILE`): lines `<id> <64 hex>`, the first is
    /// current. When neither it nor `DYNAMOI_MASTER_KEY` is set, a development keyring is
    /// created in `data_dir` with a loud warning.
    pub master_key_file: Option<PathBuf>,
    /// The master keyring itself, in the file's format (`;` separates keys) (`DYNAMOI_MASTER_KEY`).
    pub master_key: Option<SecretString>,
    /// The `aud` claim tokens must carry (`DYNAMOI_JWT_AUDIENCE`, default `authenticated`).
    pub jwt_audience: String,
    /// How long a read with `min_position` waits for the read model (`DYNAMOI_CONSISTENCY_WAIT_MS`, 5000).
    pub consistency_wait: Duration,
    /// Largest request body accepted, in bytes (`DYNAMOI_MAX_BODY_BYTES`, 65536).
    pub max_body_bytes: u64,
    /// Largest spend-ingestion body, in bytes (`DYNAMOI_MAX_INGEST_BYTES`, 33554432).
    pub max_ingest_bytes: u64,
    /// Events per projection batch (`DYNAMOI_PROJECTION_BATCH_SIZE`, 1000).
    pub projection_batch_size: usize,
    /// Events per batch of `dynamoi projections rebuild` (`DYNAMOI_PROJECTION_REBUILD_BATCH_SIZE`, 5000).
    pub projection_rebuild_batch_size: usize,
    /// How often idle projections poll for other processes' commits (`DYNAMOI_PROJECTION_POLL_MS`, 250).
    pub projection_poll: Duration,
    /// Outbound integrations (Resend, Google, YouTube, Meta, Spotify, Stripe, PostHog); see
    /// [`Integrations`].
    pub integrations: Integrations,
    /// When each scheduled job runs (UTC `HH:MM`, or `off`) and how long a claim holds:
    /// `DYNAMOI_SYNC_DAILY_AT` (`04:00`), `DYNAMOI_BILLING_CLOSE_DAILY_AT` (`04:30`),
    /// `DYNAMOI_RETENTION_DAILY_AT` (`05:00`), `DYNAMOI_PRIVACY_RETRY_DAILY_AT` (`05:30`),
    /// `DYNAMOI_JOB_LEASE_SECONDS` (900), `DYNAMOI_JOBS_POLL_MS` (30000).
    pub jobs: app::jobs::Schedule,
    /// How workflow items are retried: `DYNAMOI_WORKFLOW_MAX_ATTEMPTS` (8),
    /// `DYNAMOI_WORKFLOW_BACKOFF_MS` (60000, doubling to at most 6 hours),
    /// `DYNAMOI_WORKFLOW_LEASE_SECONDS` (300), `DYNAMOI_WORKFLOW_POLL_MS` (1000).
    pub workflows: app::workflows::RetryPolicy,
    /// Days a closed account is kept before the retention job opens its erasure
    /// (`DYNAMOI_RETENTION_CLOSED_ACCOUNT_DAYS`, 30).
    pub retention_closed_account_days: u32,
    /// The fewest distinct artists a cell of the platform-wide statistics must hold to be shown
    /// (`DYNAMOI_STATS_MIN_ARTISTS`, 5, at least 1).
    pub stats_min_artists: u32,
    /// Log output: `pretty` or `json` (`DYNAMOI_LOG_FORMAT`, pretty).
    pub log_format: LogFormat,
    /// Log filter in `tracing` syntax (`DYNAMOI_LOG`, default `info`).
    pub log_filter: String,
    /// For demonstrations and tests only: the instant (RFC 3339) the process's one clock reads
    /// when it starts; it then runs on at real speed (`DYNAMOI_NOW`; unset: the system clock).
    pub start_at: Option<chrono::DateTime<chrono::Utc>>,
    /// How long the server waits for a request's headers (`DYNAMOI_HTTP_HEADER_TIMEOUT_MS`,
    /// 10000), between pieces of its body (`DYNAMOI_HTTP_BODY_TIMEOUT_MS`, 30000), and for
    /// connections to finish on shutdown (`DYNAMOI_SHUTDOWN_GRACE_MS`, 10000).
    pub http_timeouts: Timeouts,
}

pub use app::platforms::Integrations;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The optional TOML file: the same keys as the environment, lower case, without the prefix.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<String>,
    data_dir: Option<String>,
    database_url: Option<String>,
    event_store_url: Option<String>,
    event_store_namespace: Option<String>,
    database_max_connections: Option<u32>,
    aggregate_cache: Option<usize>,
    auto_migrate: Option<bool>,
    jwt_secret: Option<String>,
    jwt_audience: Option<String>,
    master_key_file: Option<String>,
    master_key: Option<String>,
    consistency_wait_ms: Option<u64>,
    max_body_bytes: Option<u64>,
    max_ingest_bytes: Option<u64>,
    projection_batch_size: Option<usize>,
    projection_rebuild_batch_size: Option<usize>,
    projection_poll_ms: Option<u64>,
    log_format: Option<String>,
    log: Option<String>,
    resend_api_key: Option<String>,
    resend_base_url: Option<String>,
    email_from: Option<String>,
    app_base_url: Option<String>,
    google_client_id: Option<String>,
    google_client_secret: Option<String>,
    google_oauth_base_url: Option<String>,
    youtube_base_url: Option<String>,
    meta_base_url: Option<String>,
    spotify_client_id: Option<String>,
    spotify_client_secret: Option<String>,
    spotify_accounts_base_url: Option<String>,
    spotify_api_base_url: Option<String>,
    extension_rate_per_minute: Option<u32>,
    google_ads_developer_token: Option<String>,
    google_ads_login_customer_id: Option<String>,
    google_ads_base_url: Option<String>,
    sync_daily_at: Option<String>,
    billing_close_daily_at: Option<String>,
    retention_daily_at: Option<String>,
    privacy_retry_daily_at: Option<String>,
    job_lease_seconds: Option<u64>,
    jobs_poll_ms: Option<u64>,
    workflow_max_attempts: Option<i32>,
    workflow_backoff_ms: Option<u64>,
    workflow_lease_seconds: Option<u64>,
    workflow_poll_ms: Option<u64>,
    retention_closed_account_days: Option<u32>,
    stats_min_artists: Option<u32>,
    stripe_api_key: Option<String>,
    stripe_base_url: Option<String>,
    stripe_webhook_secret: Option<String>,
    stripe_meter_event: Option<String>,
    posthog_base_url: Option<String>,
    posthog_project_id: Option<String>,
    posthog_api_key: Option<String>,
    now: Option<String>,
    http_header_timeout_ms: Option<u64>,
    http_body_timeout_ms: Option<u64>,
    shutdown_grace_ms: Option<u64>,
}

impl Settings {
    /// The process's one clock: the system clock, or one that started at `DYNAMOI_NOW`. Call
    /// it once per process and share the result (each call starts a new clock).
    pub fn clock(&self) -> clock::SharedClock {
        match self.start_at {
            Some(at) => clock::AnchoredClock::new(at),
            None => clock::system(),
        }
    }

    /// Reads the process environment (and the file it names).
    pub fn from_env() -> anyhow::Result<Settings> {
        Settings::from_lookup(|key| std::env::var(key).ok())
    }

    /// Builds settings from a variable lookup (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Settings> {
        let file: FileSettings = match lookup("DYNAMOI_CONFIG_FILE") {
            Some(path) => {
                let text =
                    std::fs::read_to_string(&path).with_context(|| format!("cannot read the settings file {path}"))?;
                toml::from_str(&text).with_context(|| format!("the settings file {path} is not valid"))?
            }
            None => FileSettings::default(),
        };
        let get = |env: &str, from_file: Option<String>| lookup(env).filter(|v| !v.is_empty()).or(from_file);
        fn parse<T: std::str::FromStr>(name: &str, value: Option<String>, default: T) -> anyhow::Result<T> {
            match value {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{name} has an invalid value")),
            }
        }
        let data_dir = PathBuf::from(get("DYNAMOI_DATA_DIR", file.data_dir).unwrap_or_else(|| "./data".into()));
        let database_url = get("DYNAMOI_DATABASE_URL", file.database_url)
            .unwrap_or_else(|| format!("sqlite:{}", data_dir.join("dynamoi.db").display()));
        let event_store_url = get("DYNAMOI_EVENT_STORE_URL", file.event_store_url);
        if let Some(url) = &event_store_url {
            if !eventlog::kurrent::is_kurrent_url(url) {
                anyhow::bail!("DYNAMOI_EVENT_STORE_URL must be a KurrentDB connection string (kurrentdb://…)");
            }
        }
        let event_store_namespace =
            get("DYNAMOI_EVENT_STORE_NAMESPACE", file.event_store_namespace).unwrap_or_else(|| "dynamoi".into());
        if event_store_namespace.is_empty() || event_store_namespace.contains(['.', '-', '$']) {
            anyhow::bail!("DYNAMOI_EVENT_STORE_NAMESPACE must be non-empty and hold no `.`, `-` or `$`");
        }
        let start_at = get("DYNAMOI_NOW", file.now)
            .map(|raw| {
                chrono::DateTime::parse_from_rfc3339(raw.trim())
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .map_err(|_| {
                        anyhow::anyhow!("DYNAMOI_NOW must be an RFC 3339 instant such as 2026-12-01T10:00:00Z")
                    })
            })
            .transpose()?;
        let log_format = match get("DYNAMOI_LOG_FORMAT", file.log_format).as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(_) => anyhow::bail!("DYNAMOI_LOG_FORMAT must be `pretty` or `json`"),
        };
        let daily_at = |job: app::jobs::Job, value: Option<String>| -> anyhow::Result<Option<chrono::NaiveTime>> {
            match value.as_deref().map(str::trim) {
                None => Ok(Some(job.default_time())),
                Some("off") => Ok(None),
                Some(raw) => chrono::NaiveTime::parse_from_str(raw, "%H:%M")
                    .map(Some)
                    .map_err(|_| anyhow::anyhow!("{} must be HH:MM (UTC) or `off`", job.setting())),
            }
        };
        use app::jobs::Job;
        let jobs = app::jobs::Schedule {
            spend_sync: daily_at(Job::SpendSync, get("DYNAMOI_SYNC_DAILY_AT", file.sync_daily_at))?,
            billing_close: daily_at(
                Job::BillingClose,
                get("DYNAMOI_BILLING_CLOSE_DAILY_AT", file.billing_close_daily_at),
            )?,
            retention: daily_at(
                Job::Retention,
                get("DYNAMOI_RETENTION_DAILY_AT", file.retention_daily_at),
            )?,
            privacy_retries: daily_at(
                Job::PrivacyRetries,
                get("DYNAMOI_PRIVACY_RETRY_DAILY_AT", file.privacy_retry_daily_at),
            )?,
            lease: Duration::from_secs(parse(
                "DYNAMOI_JOB_LEASE_SECONDS",
                get(
                    "DYNAMOI_JOB_LEASE_SECONDS",
                    file.job_lease_seconds.map(|v| v.to_string()),
                ),
                900u64,
            )?),
            poll: Duration::from_millis(parse(
                "DYNAMOI_JOBS_POLL_MS",
                get("DYNAMOI_JOBS_POLL_MS", file.jobs_poll_ms.map(|v| v.to_string())),
                30_000u64,
            )?),
        };
        anyhow::ensure!(
            jobs.lease >= Duration::from_secs(1),
            "DYNAMOI_JOB_LEASE_SECONDS must be at least 1"
        );
        anyhow::ensure!(
            jobs.poll >= Duration::from_millis(10),
            "DYNAMOI_JOBS_POLL_MS must be at least 10"
        );
        let defaults = app::workflows::RetryPolicy::default();
        let workflows = app::workflows::RetryPolicy {
            max_attempts: parse(
                "DYNAMOI_WORKFLOW_MAX_ATTEMPTS",
                get(
                    "DYNAMOI_WORKFLOW_MAX_ATTEMPTS",
                    file.workflow_max_attempts.map(|v| v.to_string()),
                ),
                defaults.max_attempts,
            )?,
            backoff: Duration::from_millis(parse(
                "DYNAMOI_WORKFLOW_BACKOFF_MS",
                get(
                    "DYNAMOI_WORKFLOW_BACKOFF_MS",
                    file.workflow_backoff_ms.map(|v| v.to_string()),
                ),
                defaults.backoff.as_millis() as u64,
            )?),
            max_backoff: defaults.max_backoff,
            lease: Duration::from_secs(parse(
                "DYNAMOI_WORKFLOW_LEASE_SECONDS",
                get(
                    "DYNAMOI_WORKFLOW_LEASE_SECONDS",
                    file.workflow_lease_seconds.map(|v| v.to_string()),
                ),
                defaults.lease.as_secs(),
            )?),
            poll: Duration::from_millis(parse(
                "DYNAMOI_WORKFLOW_POLL_MS",
                get("DYNAMOI_WORKFLOW_POLL_MS", file.workflow_poll_ms.map(|v| v.to_string())),
                defaults.poll.as_millis() as u64,
            )?),
        };
        anyhow::ensure!(
            (1..=100).contains(&workflows.max_attempts),
            "DYNAMOI_WORKFLOW_MAX_ATTEMPTS must be from 1 to 100"
        );
        anyhow::ensure!(
            workflows.lease >= Duration::from_secs(1) && workflows.poll >= Duration::from_millis(10),
            "DYNAMOI_WORKFLOW_LEASE_SECONDS must be at least 1 and DYNAMOI_WORKFLOW_POLL_MS at least 10"
        );
        let millis = |name: &str, from_file: Option<u64>, default: u64| -> anyhow::Result<Duration> {
            let value: u64 = parse(name, get(name, from_file.map(|v| v.to_string())), default)?;
            anyhow::ensure!(value >= 1, "{name} must be at least 1");
            Ok(Duration::from_millis(value))
        };
        let http_timeouts = Timeouts {
            header_read: millis("DYNAMOI_HTTP_HEADER_TIMEOUT_MS", file.http_header_timeout_ms, 10_000)?,
            body_read: millis("DYNAMOI_HTTP_BODY_TIMEOUT_MS", file.http_body_timeout_ms, 30_000)?,
            shutdown_grace: millis("DYNAMOI_SHUTDOWN_GRACE_MS", file.shutdown_grace_ms, 10_000)?,
        };
        Ok(Settings {
            http_timeouts,
            start_at,
            jobs,
            workflows,
            retention_closed_account_days: parse(
                "DYNAMOI_RETENTION_CLOSED_ACCOUNT_DAYS",
                get(
                    "DYNAMOI_RETENTION_CLOSED_ACCOUNT_DAYS",
                    file.retention_closed_account_days.map(|v| v.to_string()),
                ),
                30,
            )?,
            stats_min_artists: parse(
                "DYNAMOI_STATS_MIN_ARTISTS",
                get(
                    "DYNAMOI_STATS_MIN_ARTISTS",
                    file.stats_min_artists.map(|v| v.to_string()),
                ),
                5,
            )?
            .max(1),
            listen: parse(
                "DYNAMOI_LISTEN",
                get("DYNAMOI_LISTEN", file.listen),
                SocketAddr::from(([127, 0, 0, 1], 8080)),
            )?,
            data_dir,
            database_url: SecretString::from(database_url),
            event_store_url: event_store_url.map(SecretString::from),
            event_store_namespace,
            database_max_connections: parse(
                "DYNAMOI_DATABASE_MAX_CONNECTIONS",
                get(
                    "DYNAMOI_DATABASE_MAX_CONNECTIONS",
                    file.database_max_connections.map(|v| v.to_string()),
                ),
                10,
            )?,
            aggregate_cache: parse(
                "DYNAMOI_AGGREGATE_CACHE",
                get("DYNAMOI_AGGREGATE_CACHE", file.aggregate_cache.map(|v| v.to_string())),
                eventlog::aggregate_cache::DEFAULT_CAPACITY,
            )?,
            auto_migrate: parse(
                "DYNAMOI_AUTO_MIGRATE",
                get("DYNAMOI_AUTO_MIGRATE", file.auto_migrate.map(|v| v.to_string())),
                true,
            )?,
            jwt_secret: get("DYNAMOI_JWT_SECRET", file.jwt_secret).map(SecretString::from),
            jwt_audience: get("DYNAMOI_JWT_AUDIENCE", file.jwt_audience).unwrap_or_else(|| "authenticated".into()),
            master_key_file: get("DYNAMOI_MASTER_KEY_FILE", file.master_key_file).map(PathBuf::from),
            master_key: get("DYNAMOI_MASTER_KEY", file.master_key).map(SecretString::from),
            consistency_wait: Duration::from_millis(parse(
                "DYNAMOI_CONSISTENCY_WAIT_MS",
                get(
                    "DYNAMOI_CONSISTENCY_WAIT_MS",
                    file.consistency_wait_ms.map(|v| v.to_string()),
                ),
                5000,
            )?),
            max_body_bytes: parse(
                "DYNAMOI_MAX_BODY_BYTES",
                get("DYNAMOI_MAX_BODY_BYTES", file.max_body_bytes.map(|v| v.to_string())),
                64 * 1024,
            )?,
            max_ingest_bytes: parse(
                "DYNAMOI_MAX_INGEST_BYTES",
                get("DYNAMOI_MAX_INGEST_BYTES", file.max_ingest_bytes.map(|v| v.to_string())),
                32 * 1024 * 1024,
            )?,
            projection_batch_size: parse(
                "DYNAMOI_PROJECTION_BATCH_SIZE",
                get(
                    "DYNAMOI_PROJECTION_BATCH_SIZE",
                    file.projection_batch_size.map(|v| v.to_string()),
                ),
                1000,
            )?
            .max(1),
            projection_rebuild_batch_size: parse(
                "DYNAMOI_PROJECTION_REBUILD_BATCH_SIZE",
                get(
                    "DYNAMOI_PROJECTION_REBUILD_BATCH_SIZE",
                    file.projection_rebuild_batch_size.map(|v| v.to_string()),
                ),
                5_000,
            )?
            .max(1),
            projection_poll: Duration::from_millis(parse(
                "DYNAMOI_PROJECTION_POLL_MS",
                get(
                    "DYNAMOI_PROJECTION_POLL_MS",
                    file.projection_poll_ms.map(|v| v.to_string()),
                ),
                250,
            )?),
            log_format,
            log_filter: get("DYNAMOI_LOG", file.log).unwrap_or_else(|| "info".into()),
            integrations: Integrations {
                resend_api_key: get("DYNAMOI_RESEND_API_KEY", file.resend_api_key).map(SecretString::from),
                resend_base_url: get("DYNAMOI_RESEND_BASE_URL", file.resend_base_url),
                email_from: get("DYNAMOI_EMAIL_FROM", file.email_from)
                    .unwrap_or_else(|| "dynamoi <invitations@dynamoi.dev>".into()),
                app_base_url: get("DYNAMOI_APP_BASE_URL", file.app_base_url)
                    .unwrap_or_else(|| "http://localhost:3000".into()),
                google_client_id: get("DYNAMOI_GOOGLE_CLIENT_ID", file.google_client_id).map(SecretString::from),
                google_client_secret: get("DYNAMOI_GOOGLE_CLIENT_SECRET", file.google_client_secret)
                    .map(SecretString::from),
                google_oauth_base_url: get("DYNAMOI_GOOGLE_OAUTH_BASE_URL", file.google_oauth_base_url),
                youtube_base_url: get("DYNAMOI_YOUTUBE_BASE_URL", file.youtube_base_url),
                meta_base_url: get("DYNAMOI_META_BASE_URL", file.meta_base_url),
                spotify_client_id: get("DYNAMOI_SPOTIFY_CLIENT_ID", file.spotify_client_id).map(SecretString::from),
                spotify_client_secret: get("DYNAMOI_SPOTIFY_CLIENT_SECRET", file.spotify_client_secret)
                    .map(SecretString::from),
                spotify_accounts_base_url: get("DYNAMOI_SPOTIFY_ACCOUNTS_BASE_URL", file.spotify_accounts_base_url),
                spotify_api_base_url: get("DYNAMOI_SPOTIFY_API_BASE_URL", file.spotify_api_base_url),
                google_ads_developer_token: get("DYNAMOI_GOOGLE_ADS_DEVELOPER_TOKEN", file.google_ads_developer_token)
                    .map(SecretString::from),
                google_ads_login_customer_id: get(
                    "DYNAMOI_GOOGLE_ADS_LOGIN_CUSTOMER_ID",
                    file.google_ads_login_customer_id,
                ),
                google_ads_base_url: get("DYNAMOI_GOOGLE_ADS_BASE_URL", file.google_ads_base_url),
                stripe_api_key: get("DYNAMOI_STRIPE_API_KEY", file.stripe_api_key).map(SecretString::from),
                stripe_base_url: get("DYNAMOI_STRIPE_BASE_URL", file.stripe_base_url),
                stripe_webhook_secrets: get("DYNAMOI_STRIPE_WEBHOOK_SECRET", file.stripe_webhook_secret)
                    .map(|all| {
                        all.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(|s| SecretString::from(s.to_string()))
                            .collect()
                    })
                    .unwrap_or_default(),
                stripe_meter_event: get("DYNAMOI_STRIPE_METER_EVENT", file.stripe_meter_event)
                    .unwrap_or_else(|| "dynamoi_spend_fee".into()),
                posthog_base_url: get("DYNAMOI_POSTHOG_BASE_URL", file.posthog_base_url),
                posthog_project_id: get("DYNAMOI_POSTHOG_PROJECT_ID", file.posthog_project_id)
                    .map(|id| id.trim().to_string()),
                posthog_api_key: get("DYNAMOI_POSTHOG_API_KEY", file.posthog_api_key).map(SecretString::from),
                extension_rate_per_minute: parse(
                    "DYNAMOI_EXTENSION_RATE_PER_MINUTE",
                    get(
                        "DYNAMOI_EXTENSION_RATE_PER_MINUTE",
                        file.extension_rate_per_minute.map(|v| v.to_string()),
                    ),
                    30,
                )?
                .max(1),
            },
        })
    }

    /// The JWT secret: the configured one, or the development secret in `data_dir` (created
    /// on first use, with a loud warning each time it is used).
    pub fn jwt_secret_or_dev(&self) -> anyhow::Result<SecretString> {
        if let Some(secret) = &self.jwt_secret {
            if secret.expose_secret().len() < 32 {
                anyhow::bail!("DYNAMOI_JWT_SECRET must be at least 32 characters");
            }
            return Ok(secret.clone());
        }
        let path = self.data_dir.join("dev-jwt-secret");
        tracing::warn!(
            path = %path.display(),
            "DYNAMOI_JWT_SECRET is not set: using a DEVELOPMENT secret stored in plain text on disk. \
             Never run like this in production."
        );
        read_or_create_secret(&path)
    }
}

impl Settings {
    /// The master keyring: `DYNAMOI_MASTER_KEY`, else `DYNAMOI_MASTER_KEY_FILE`, else the
    /// development keyring in `data_dir` (created on first use; the vault warns at every load).
    pub fn master_keyring(&self) -> anyhow::Result<vault::MasterKeyring> {
        if let Some(text) = &self.master_key {
            return vault::MasterKeyring::parse_named("DYNAMOI_MASTER_KEY", text.expose_secret())
                .context("DYNAMOI_MASTER_KEY is not a valid keyring");
        }
        if let Some(path) = &self.master_key_file {
            return vault::MasterKeyring::from_file(path).context("cannot load DYNAMOI_MASTER_KEY_FILE");
        }
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("cannot create {}", self.data_dir.display()))?;
        vault::MasterKeyring::load_or_create_dev(self.data_dir.join("dev-master-keys"))
            .context("cannot load or create the development master keyring")
    }
}

fn read_or_create_secret(path: &Path) -> anyhow::Result<SecretString> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let existing = existing.trim().to_string();
        if existing.len() >= 32 {
            return Ok(SecretString::from(existing));
        }
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = hex::encode(bytes);
    write_private(path, &secret).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(SecretString::from(secret))
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn with_nothing_configured_it_serves_sqlite_on_localhost_8080() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(s.database_url.expose_secret(), "sqlite:./data/dynamoi.db");
        assert!(s.jwt_secret.is_none());
    }

    #[test]
    fn environment_variables_override_defaults() {
        let s = settings(&[
            ("DYNAMOI_DATABASE_URL", "postgres://localhost/x"),
            ("DYNAMOI_LISTEN", "0.0.0.0:9000"),
            ("DYNAMOI_CONSISTENCY_WAIT_MS", "250"),
        ])
        .unwrap();
        assert_eq!(s.database_url.expose_secret(), "postgres://localhost/x");
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.consistency_wait, Duration::from_millis(250));
    }

    #[test]
    fn dynamoi_now_starts_the_process_clock_at_that_instant() {
        let at: chrono::DateTime<chrono::Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
        let s = settings(&[("DYNAMOI_NOW", "2026-12-01T10:00:00Z")]).unwrap();
        let now = s.clock().now();
        assert!(now >= at && now < at + chrono::Duration::minutes(1), "{now}");
        assert!(settings(&[]).unwrap().start_at.is_none());
        let error = settings(&[("DYNAMOI_NOW", "tomorrow")]).unwrap_err().to_string();
        assert_eq!(
            error,
            "DYNAMOI_NOW must be an RFC 3339 instant such as 2026-12-01T10:00:00Z"
        );
    }

    #[test]
    fn a_rebuild_batches_more_events_than_a_worker_unless_configured() {
        let defaults = settings(&[]).unwrap();
        assert_eq!(
            (defaults.projection_batch_size, defaults.projection_rebuild_batch_size),
            (1000, 5_000)
        );
        let s = settings(&[("DYNAMOI_PROJECTION_REBUILD_BATCH_SIZE", "2500")]).unwrap();
        assert_eq!((s.projection_batch_size, s.projection_rebuild_batch_size), (1000, 2500));
        assert_eq!(
            settings(&[("DYNAMOI_PROJECTION_REBUILD_BATCH_SIZE", "ten")])
                .unwrap_err()
                .to_string(),
            "DYNAMOI_PROJECTION_REBUILD_BATCH_SIZE has an invalid value"
        );
    }

    #[test]
    fn an_invalid_value_names_the_variable_but_not_the_value() {
        let error = settings(&[("DYNAMOI_LISTEN", "not-an-address")])
            .unwrap_err()
            .to_string();
        assert_eq!(error, "DYNAMOI_LISTEN has an invalid value");
    }

    #[test]
    fn each_job_has_its_own_time_of_day_or_off() {
        let t = |h, m| chrono::NaiveTime::from_hms_opt(h, m, 0);
        let defaults = settings(&[]).unwrap().jobs;
        assert_eq!(
            (
                defaults.spend_sync,
                defaults.billing_close,
                defaults.retention,
                defaults.privacy_retries
            ),
            (t(4, 0), t(4, 30), t(5, 0), t(5, 30))
        );
        let jobs = settings(&[
            ("DYNAMOI_SYNC_DAILY_AT", "off"),
            ("DYNAMOI_RETENTION_DAILY_AT", "23:30"),
        ])
        .unwrap()
        .jobs;
        assert_eq!(jobs.spend_sync, None, "the sync is off");
        assert_eq!(jobs.retention, t(23, 30), "retention runs without the sync");
        assert_eq!(jobs.billing_close, t(4, 30));
        for name in [
            "DYNAMOI_SYNC_DAILY_AT",
            "DYNAMOI_BILLING_CLOSE_DAILY_AT",
            "DYNAMOI_RETENTION_DAILY_AT",
            "DYNAMOI_PRIVACY_RETRY_DAILY_AT",
        ] {
            assert_eq!(
                settings(&[(name, "4pm")]).unwrap_err().to_string(),
                format!("{name} must be HH:MM (UTC) or `off`")
            );
        }
    }

    #[test]
    fn workflow_retries_are_configured_and_bounded() {
        let policy = settings(&[
            ("DYNAMOI_WORKFLOW_MAX_ATTEMPTS", "3"),
            ("DYNAMOI_WORKFLOW_BACKOFF_MS", "20"),
        ])
        .unwrap()
        .workflows;
        assert_eq!(policy.max_attempts, 3);
        assert_eq!(policy.backoff, Duration::from_millis(20));
        assert!(settings(&[("DYNAMOI_WORKFLOW_MAX_ATTEMPTS", "0")]).is_err());
    }

    #[test]
    fn closed_accounts_are_kept_30_days_unless_configured() {
        assert_eq!(settings(&[]).unwrap().retention_closed_account_days, 30);
        assert_eq!(settings(&[]).unwrap().stats_min_artists, 5);
        let s = settings(&[("DYNAMOI_RETENTION_CLOSED_ACCOUNT_DAYS", "90")]).unwrap();
        assert_eq!(s.retention_closed_account_days, 90);
        assert_eq!(
            settings(&[("DYNAMOI_RETENTION_CLOSED_ACCOUNT_DAYS", "-1")])
                .unwrap_err()
                .to_string(),
            "DYNAMOI_RETENTION_CLOSED_ACCOUNT_DAYS has an invalid value"
        );
    }

    #[test]
    fn posthog_is_configured_from_the_environment_or_the_file_and_its_key_stays_secret() {
        let none = settings(&[]).unwrap().integrations;
        assert!(none.posthog_base_url.is_none() && none.posthog_project_id.is_none());
        assert!(none.posthog_api_key.is_none());

        let s = settings(&[
            ("DYNAMOI_POSTHOG_BASE_URL", "https://eu.posthog.com"),
            ("DYNAMOI_POSTHOG_PROJECT_ID", " 12345 "),
            ("DYNAMOI_POSTHOG_API_KEY", "phx_secret_posthog_key"),
        ])
        .unwrap();
        assert_eq!(
            s.integrations.posthog_base_url.as_deref(),
            Some("https://eu.posthog.com")
        );
        assert_eq!(s.integrations.posthog_project_id.as_deref(), Some("12345"));
        assert_eq!(
            s.integrations.posthog_api_key.as_ref().map(|k| k.expose_secret()),
            Some("phx_secret_posthog_key")
        );
        assert!(!format!("{s:?}").contains("phx_secret_posthog_key"));

        let dir = std::env::temp_dir().join(format!("dynamoi-settings-posthog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("dynamoi.toml");
        std::fs::write(
            &file,
            "posthog_base_url = \"http://127.0.0.1:8099\"\nposthog_project_id = \"7\"\nposthog_api_key = \"phx_file\"\n",
        )
        .unwrap();
        let from_file = settings(&[
            ("DYNAMOI_CONFIG_FILE", file.to_str().unwrap()),
            ("DYNAMOI_POSTHOG_PROJECT_ID", "8"),
        ])
        .unwrap()
        .integrations;
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(from_file.posthog_base_url.as_deref(), Some("http://127.0.0.1:8099"));
        // The environment wins over the file.
        assert_eq!(from_file.posthog_project_id.as_deref(), Some("8"));
        assert_eq!(
            from_file.posthog_api_key.as_ref().map(|k| k.expose_secret()),
            Some("phx_file")
        );
    }

    #[test]
    fn the_settings_debug_output_hides_secrets() {
        let s = settings(&[("DYNAMOI_JWT_SECRET", "super-secret-value-that-is-long-enough")]).unwrap();
        assert!(!format!("{s:?}").contains("super-secret"));
    }
}
