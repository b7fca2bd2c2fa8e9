//! [`App`]: everything a use case reaches (the log, the read models, the vault, the outbound
//! clients, the clock, the configuration), built once at start-up and shared; and [`Call`]: who
//! is calling a use case and under which request id.

use crate::caller::Caller;
use crate::lookup_guard::LookupGuard;
use crate::platforms::Platforms;
use crate::AppError;
use chrono::{DateTime, Utc};
use clock::SharedClock;
use eventlog::{EventLog, EventMetadata, Position};
use projections::Engine;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;
use vault::Vault;

/// What the application is configured with (the part of the settings use cases read).
#[derive(Clone, Debug)]
pub struct Config {
    /// How long a read with `min_position` waits for its read model.
    pub consistency_wait: Duration,
    /// Derives invitation tokens (HMAC); itself derived from the JWT secret.
    pub invitation_secret: SecretString,
    /// The sender of invitation emails.
    pub email_from: String,
    /// Where the web app is, for links in emails.
    pub app_base_url: String,
    /// Stripe's webhook endpoint secrets (several while rotating).
    pub stripe_webhook_secrets: Vec<SecretString>,
    /// The Stripe meter's event name.
    pub stripe_meter_event: String,
    /// Days a closed account is kept before its erasure is opened.
    pub retention_closed_account_days: u32,
    /// The fewest distinct artists a cell of `platform_daily` needs to be served (P26).
    pub stats_min_artists: u32,
    /// Extension lookups allowed per person per minute.
    pub extension_rate_per_minute: u32,
    /// How often background workers look for work made by other processes.
    pub poll_interval: Duration,
    /// How workflow items are retried, backed off and parked.
    pub workflows: crate::retry::RetryPolicy,
    /// When each scheduled job runs, and its lease.
    pub jobs: crate::schedule::Schedule,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            consistency_wait: Duration::from_secs(5),
            invitation_secret: SecretString::from(String::new()),
            email_from: "dynamoi <invitations@dynamoi.dev>".into(),
            app_base_url: "http://localhost:3000".into(),
            stripe_webhook_secrets: Vec::new(),
            stripe_meter_event: "dynamoi_spend_fee".into(),
            retention_closed_account_days: 30,
            stats_min_artists: 5,
            extension_rate_per_minute: 30,
            poll_interval: Duration::from_millis(250),
            workflows: crate::retry::RetryPolicy::default(),
            jobs: crate::schedule::Schedule::default(),
        }
    }
}

/// The application: cheap to clone (every field is shared).
#[derive(Clone)]
pub struct App {
    pub log: EventLog,
    pub engine: Engine,
    pub vault: Vault,
    pub platforms: Platforms,
    pub clock: SharedClock,
    pub config: Arc<Config>,
    /// This process's name in leases (scheduled runs, workflow items): unique per start.
    pub instance: String,
    pub(crate) extension: LookupGuard,
}

impl App {
    /// Puts the parts together. Nothing runs until the caller starts the engine and workers.
    pub fn new(
        log: EventLog,
        engine: Engine,
        vault: Vault,
        platforms: Platforms,
        clock: SharedClock,
        config: Config,
    ) -> App {
        App {
            extension: LookupGuard::new(config.extension_rate_per_minute),
            instance: uuid::Uuid::now_v7().to_string(),
            log,
            engine,
            vault,
            platforms,
            clock,
            config: Arc::new(config),
        }
    }

    /// The current instant, from the one clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Waits (bounded by the configured consistency wait) until `projection` has applied
    /// `min_position`, when one is given: read-your-writes for a client that passes the
    /// position its command answered.
    pub async fn wait_for(&self, projection: &str, min_position: Option<&str>) -> Result<(), AppError> {
        let Some(raw) = min_position else { return Ok(()) };
        let position: Position = raw
            .parse()
            .map_err(|e| AppError::InvalidInput(format!("min_position: {e}")))?;
        self.wait_until_applied(projection, position).await
    }

    /// Waits (bounded by the configured consistency wait) until `projection` has applied the
    /// event at `position`; past the wait, the read model is behind (an error).
    pub async fn wait_until_applied(&self, projection: &str, position: Position) -> Result<(), AppError> {
        if self
            .engine
            .wait_for(projection, position, self.config.consistency_wait)
            .await?
        {
            Ok(())
        } else {
            Err(AppError::ReadModelBehind {
                projection: projection.into(),
                position: position.to_string(),
            })
        }
    }
}

/// One call of a use case: who calls, and the request it belongs to (for event metadata).
#[derive(Clone, Debug)]
pub struct Call {
    pub caller: Caller,
    pub request_id: Option<String>,
}

impl Call {
    /// A call by `caller` within request `request_id`.
    pub fn new(caller: Caller, request_id: impl Into<Option<String>>) -> Call {
        Call {
            caller,
            request_id: request_id.into(),
        }
    }

    /// The metadata of the events this call records.
    pub fn metadata(&self) -> EventMetadata {
        EventMetadata {
            actor: self.caller.actor(),
            request_id: self.request_id.clone(),
            causation_id: None,
        }
    }
}

/// The metadata of events the service records on its own (`system:<reason>`).
pub fn system_metadata(reason: &str) -> EventMetadata {
    EventMetadata {
        actor: format!("system:{reason}"),
        request_id: None,
        causation_id: None,
    }
}
