//! [`Application`]: build everything from [`Settings`], bind the listener, serve until a
//! shutdown signal, then stop gracefully (stop accepting, finish requests in flight, let the
//! projection workers finish their batch, close the pool).

use crate::auth::Authenticator;
use crate::outbox::InvitationMailer;
use crate::routes::{self, AppState};
use crate::{telemetry, Settings};
use anyhow::Context;
use eventlog::{Db, EventLog};
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

/// Connects to the configured database (migrating it when asked) and returns the log.
pub async fn open_log(settings: &Settings, migrate: bool) -> anyhow::Result<EventLog> {
    let url = settings.database_url.expose_secret();
    let db = Db::connect(url, settings.database_max_connections)
        .await
        .context("cannot open the database named by DYNAMOI_DATABASE_URL")?;
    if migrate {
        db.migrate().await.context("cannot migrate the database")?;
    }
    Ok(EventLog::new(db))
}

/// The projection engine as the settings configure it.
pub fn engine(settings: &Settings, log: EventLog) -> Engine {
    let config = EngineConfig {
        batch_size: settings.projection_batch_size,
        poll_interval: settings.projection_poll,
        ..EngineConfig::default()
    };
    Engine::new(log, projections::all(), config)
}

impl Application {
    /// Connects, migrates (when `auto_migrate`), prepares the read models and binds the
    /// listener. Nothing is served until [`Application::run_until`].
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let log = open_log(&settings, settings.auto_migrate).await?;
        let engine = engine(&settings, log.clone());
        engine.prepare().await.context("cannot prepare the read models")?;
        let ring = settings.master_keyring()?;
        // Re-applies the erasure ledger before anything can open a sealed value.
        let vault = vault::Vault::start(log.db().clone(), Arc::new(ring))
            .await
            .context("cannot start the vault")?;
        let secret = settings.jwt_secret_or_dev()?;
        let auth = Authenticator::new(&secret, &settings.jwt_audience);
        let invitation_secret = crate::routes::artists::invitation_secret(secret.expose_secret());
        let platforms = crate::platforms::Platforms::build(&settings.integrations)?;
        let extension = crate::routes::extension::LookupGuard::new(settings.integrations.extension_rate_per_minute);
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let address = listener.local_addr()?;
        telemetry::metrics_handle();
        Ok(Application {
            listener,
            address,
            state: Arc::new(AppState {
                log,
                engine,
                vault,
                platforms,
                extension,
                auth,
                invitation_secret,
                settings,
            }),
        })
    }

    /// The address actually bound (port 0 becomes a real port).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Starts the projection workers and serves until `shutdown` completes, then drains.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let state = self.state.clone();
        state.engine.start();
        let workers = CancellationToken::new();
        let mailer = match &state.platforms.resend {
            Some(resend) => Some(tokio::spawn(
                InvitationMailer {
                    log: state.log.clone(),
                    vault: state.vault.clone(),
                    resend: resend.clone(),
                    from: state.settings.integrations.email_from.clone(),
                    app_base_url: state.settings.integrations.app_base_url.clone(),
                    token_secret: state.invitation_secret.clone(),
                    poll_interval: state.settings.projection_poll,
                }
                .run(workers.clone()),
            )),
            None => {
                tracing::warn!(
                    "DYNAMOI_RESEND_API_KEY is not set: invitation emails wait, unsent, until it is (they are sent then)"
                );
                None
            }
        };
        let scheduler = state.settings.sync_daily_at.map(|at| {
            tokio::spawn(crate::sync::run_daily(
                state.log.clone(),
                state.vault.clone(),
                state.platforms.clone(),
                at,
                crate::retention::RetentionSettings::from(&state.settings),
                workers.clone(),
            ))
        });
        let reporter = state.platforms.stripe.clone().map(|stripe| {
            tokio::spawn(crate::billing::run_reporter(
                state.log.clone(),
                stripe,
                state.settings.integrations.stripe_meter_event.clone(),
                state.settings.integrations.billing_report_interval,
                workers.clone(),
            ))
        });
        tracing::info!(address = %self.address, backend = ?state.log.db().dialect(), "dynamoi is serving");
        warp::serve(routes::routes(state.clone()))
            .incoming(self.listener)
            .graceful(shutdown)
            .run()
            .await;
        tracing::info!("stopped accepting; requests in flight are done; stopping projections");
        workers.cancel();
        if let Some(mailer) = mailer {
            let _ = mailer.await;
        }
        for task in [scheduler, reporter].into_iter().flatten() {
            let _ = task.await;
        }
        state.engine.shutdown().await;
        state.log.db().close().await;
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
