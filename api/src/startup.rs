//! [`Application`]: build everything from [`Settings`], bind the listener, serve until a
//! shutdown signal, then stop gracefully (stop accepting, finish requests in flight, let the
//! projection workers finish their batch, close the pool).

use crate::auth::Authenticator;
use crate::routes::{self, AppState};
use crate::{telemetry, Settings};
use anyhow::Context;
use app::App;
use clock::SharedClock;
use eventlog::{Db, EventLog, KurrentStore};
use projections::{Engine, EngineConfig};
use secrecy::ExposeSecret;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The service, built and bound, not yet serving.
pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    state: Arc<AppState>,
}

/// Connects to the configured database (migrating it when asked) and, when
/// `DYNAMOI_EVENT_STORE_URL` is set, to KurrentDB (which then holds the events); returns the
/// log, whose events are stamped by `clock`.
pub async fn open_log(settings: &Settings, migrate: bool, clock: SharedClock) -> anyhow::Result<EventLog> {
    let url = settings.database_url.expose_secret();
    let db = Db::connect(url, settings.database_max_connections)
        .await
        .context("cannot open the database named by DYNAMOI_DATABASE_URL")?;
    if migrate {
        db.migrate().await.context("cannot migrate the database")?;
    }
    let Some(event_store_url) = &settings.event_store_url else {
        return Ok(EventLog::with_clock(db, clock).with_aggregate_cache(settings.aggregate_cache));
    };
    let store = KurrentStore::connect(event_store_url.expose_secret(), &settings.event_store_namespace)
        .context("cannot use the KurrentDB named by DYNAMOI_EVENT_STORE_URL")?;
    store
        .ping()
        .await
        .context("cannot reach the KurrentDB named by DYNAMOI_EVENT_STORE_URL")?;
    Ok(EventLog::with_kurrent(db, store, clock).with_aggregate_cache(settings.aggregate_cache))
}

/// The projection engine as the settings configure it.
pub fn engine(settings: &Settings, log: EventLog) -> Engine {
    let config = EngineConfig {
        batch_size: settings.projection_batch_size,
        rebuild_batch_size: settings.projection_rebuild_batch_size,
        poll_interval: settings.projection_poll,
        ..EngineConfig::default()
    };
    Engine::new(log, projections::all(), config)
}

/// The application's configuration from the settings.
pub fn config(settings: &Settings) -> anyhow::Result<app::Config> {
    let secret = settings.jwt_secret_or_dev()?;
    Ok(app::Config {
        consistency_wait: settings.consistency_wait,
        invitation_secret: app::artists::invitation_secret(secret.expose_secret()),
        email_from: settings.integrations.email_from.clone(),
        app_base_url: settings.integrations.app_base_url.clone(),
        stripe_webhook_secrets: settings.integrations.stripe_webhook_secrets.clone(),
        stripe_meter_event: settings.integrations.stripe_meter_event.clone(),
        retention_closed_account_days: settings.retention_closed_account_days,
        stats_min_artists: settings.stats_min_artists,
        extension_rate_per_minute: settings.integrations.extension_rate_per_minute,
        poll_interval: settings.projection_poll,
        workflows: settings.workflows.clone(),
        jobs: settings.jobs.clone(),
    })
}

/// Builds the application from the settings, at `clock`: connects (migrating when
/// `auto_migrate`), prepares the read models, starts the vault (which re-applies the erasure
/// ledger before anything can open a sealed value). Nothing runs yet.
pub async fn build_app(settings: &Settings, clock: SharedClock) -> anyhow::Result<App> {
    let log = open_log(settings, settings.auto_migrate, clock.clone()).await?;
    let engine = engine(settings, log.clone());
    engine.prepare().await.context("cannot prepare the read models")?;
    let ring = settings.master_keyring()?;
    let vault = vault::Vault::start(log.db().clone(), Arc::new(ring))
        .await
        .context("cannot start the vault")?
        .with_clock(clock.clone());
    let platforms = app::platforms::Platforms::build(&settings.integrations)?;
    Ok(App::new(log, engine, vault, platforms, clock, config(settings)?))
}

impl Application {
    /// Builds the service on the process's clock (the system clock, or `DYNAMOI_NOW`'s) and
    /// binds the listener. Nothing is served until [`Application::run_until`].
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let clock = settings.clock();
        if let Some(at) = settings.start_at {
            tracing::warn!(%at, "DYNAMOI_NOW is set: the clock started at that instant (demonstrations and tests only)");
        }
        Application::build_with_clock(settings, clock).await
    }

    /// Builds the service on `clock` (tests and demos set the instant) and binds the listener.
    pub async fn build_with_clock(settings: Settings, clock: SharedClock) -> anyhow::Result<Application> {
        let app = build_app(&settings, clock.clone()).await?;
        let secret = settings.jwt_secret_or_dev()?;
        let auth = Authenticator::with_clock(&secret, &settings.jwt_audience, clock);
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let address = listener.local_addr()?;
        telemetry::metrics_handle();
        let probe = Db::connect_probe(settings.database_url.expose_secret(), routes::health::READY_TIMEOUT)
            .context("cannot prepare the readiness probe")?;
        Ok(Application {
            listener,
            address,
            state: Arc::new(AppState {
                app,
                auth,
                settings,
                probe,
            }),
        })
    }

    /// The application the service runs (tests call its use cases directly).
    pub fn app(&self) -> &App {
        &self.state.app
    }

    /// The address actually bound (port 0 becomes a real port).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Starts the projection workers, the durable workflows and the job scheduler, and serves
    /// until `shutdown` completes, then drains.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let state = self.state.clone();
        let app = state.app.clone();
        app.engine.start();
        let workers = CancellationToken::new();
        let mut tasks = app::workflow_admin::start(&app, &app.config.workflows, &workers);
        tasks.push(tokio::spawn(app::jobs::run_scheduler(
            app.clone(),
            app.config.jobs.clone(),
            workers.clone(),
        )));
        tracing::info!(address = %self.address, backend = ?app.log.db().dialect(), "dynamoi is serving");
        crate::server::serve(
            warp::service(routes::routes(state.clone())),
            self.listener,
            shutdown,
            state.settings.http_timeouts,
        )
        .await;
        tracing::info!("requests in flight are done; stopping workers and projections");
        workers.cancel();
        for task in tasks {
            let _ = task.await;
        }
        app.engine.shutdown().await;
        app.log.db().close().await;
        tracing::info!("dynamoi stopped");
        Ok(())
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown signal received");
}
