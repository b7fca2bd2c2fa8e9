//! The `dynamoi` command line: `serve`, `migrate`, `projections status|rebuild`, `audit`,
//! `keys`, `sync`, `demo`, `billing`, `retention`, `token`.
//! Errors are one line on stderr and a non-zero exit status.

use crate::auth::{Authenticator, Role};
use crate::startup::{self, Application};
use crate::{telemetry, Settings};
use anyhow::Context;
use chrono::Datelike;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::process::ExitCode;

/// dynamoi: the event-sourced backend of a music-marketing platform.
#[derive(Debug, Parser)]
#[command(name = "dynamoi", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API and run the projections (SQLite under ./data unless configured).
    Serve,
    /// Apply the database migrations, then exit.
    Migrate,
    /// Inspect or rebuild the read models.
    Projections {
        #[command(subcommand)]
        action: ProjectionsAction,
    },
    /// Auditor tools: verify hash chains, replay consents.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Master keys: rotation.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Sync spend from the ad platforms now: every linked campaign, or the ones named. Reads
    /// Meta's last 28 days and Google Ads' last 14; exits non-zero when an account failed.
    Sync {
        /// A campaign id (repeatable); every linked live, paused or recently ended campaign
        /// when omitted.
        #[arg(long = "campaign")]
        campaigns: Vec<String>,
        /// The last day to read (YYYY-MM-DD, UTC); today when omitted.
        #[arg(long)]
        until: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Load a demo artist with campaigns on Meta and Google Ads and 90 days of readings
    /// (restatements included), then print how to see its dashboard.
    Demo {
        /// How many days of readings, ending yesterday.
        #[arg(long, default_value_t = 90)]
        days: u32,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Billing: close a period, reconcile it with what was reported to Stripe.
    Billing {
        #[command(subcommand)]
        action: BillingAction,
    },
    /// Retention: apply the retention rules now (README "Retention").
    Retention {
        #[command(subcommand)]
        action: RetentionAction,
    },
    /// Mint a development bearer token signed with the configured secret.
    Token {
        /// The subject (user id or service name).
        #[arg(long)]
        sub: String,
        /// person, support, auditor or service.
        #[arg(long)]
        role: Role,
        /// How long the token is valid.
        #[arg(long, default_value_t = 3600)]
        ttl_seconds: u64,
    },
}

#[derive(Debug, Subcommand)]
enum AuditAction {
    /// Verify the hash chain of one stream (`TYPE/ID`) or of every stream; exits non-zero when
    /// any chain is broken.
    Verify {
        /// One stream, as `aggregate_type/aggregate_id` (e.g. `consent/0193…`).
        #[arg(long)]
        stream: Option<String>,
    },
    /// Replay a person's consents from the log as of an instant (JSON, as the auditor API).
    Consents {
        /// The person's id.
        #[arg(long)]
        person: String,
        /// An RFC 3339 instant; now when omitted.
        #[arg(long)]
        as_of: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum BillingAction {
    /// Close a period (YYYY-MM) of one account or of every account whose period has ended in
    /// its time zone; prints each statement's fee and what will be reported.
    Close {
        #[arg(long)]
        period: String,
        /// One account (its Stripe customer id); every account when omitted.
        #[arg(long)]
        account: Option<String>,
    },
    /// Compare every account's usage of a period with its statement and with what was
    /// reported to Stripe; lists each difference, exits non-zero when there is one.
    Reconcile {
        #[arg(long)]
        period: String,
    },
}

#[derive(Debug, Subcommand)]
enum RetentionAction {
    /// Apply every retention rule once for the day (a day already run does nothing) and print
    /// what was done per rule: invitations expired, connection keys destroyed, erasures opened.
    Run {
        /// The instant to judge by (RFC 3339); now when omitted.
        #[arg(long)]
        now: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum KeysAction {
    /// Re-wrap every data key under the current (first) master key of the configured keyring.
    /// Put the new key first and keep the old one second in the keyring, restart the service,
    /// run this, then remove the old key.
    Rotate,
    /// Print a new master key line (`<id> <64 hex>`) to put first in the keyring file.
    NewMasterKey,
}

#[derive(Debug, Subcommand)]
enum ProjectionsAction {
    /// Position, lag, state and last error of every projection.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild a projection beside the active one, then switch to it.
    Rebuild {
        /// The projection's name (see `status`).
        name: String,
    },
}

impl clap::ValueEnum for Role {
    fn value_variants<'a>() -> &'a [Self] {
        &[Role::Person, Role::Support, Role::Auditor, Role::Service]
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(match self {
            Role::Person => "person",
            Role::Support => "support",
            Role::Auditor => "auditor",
            Role::Service => "service",
        }))
    }
}

/// Runs the command line; the binary's whole `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => return fail(&error),
    };
    telemetry::init_tracing(&settings);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&error.into()),
    };
    match runtime.block_on(run(cli, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn fail(error: &anyhow::Error) -> ExitCode {
    // One line: the error and its causes, joined.
    let _ = writeln!(std::io::stderr(), "error: {error:#}");
    ExitCode::FAILURE
}

async fn run(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => {
            let app = Application::build(settings).await?;
            app.run_until(startup::shutdown_signal()).await
        }
        Command::Migrate => {
            startup::open_log(&settings, true).await?;
            writeln!(std::io::stdout(), "migrations applied")?;
            Ok(())
        }
        Command::Billing { action } => billing(&settings, action).await,
        Command::Retention {
            action: RetentionAction::Run { now, json },
        } => retention(&settings, now, json).await,
        Command::Sync { campaigns, until, json } => sync(&settings, campaigns, until, json).await,
        Command::Demo { days, json } => demo(&settings, days, json).await,
        Command::Token { sub, role, ttl_seconds } => {
            let secret = settings.jwt_secret_or_dev()?;
            let token = Authenticator::new(&secret, &settings.jwt_audience).mint(&sub, role, ttl_seconds)?;
            writeln!(std::io::stdout(), "{token}")?;
            Ok(())
        }
        Command::Audit {
            action: AuditAction::Consents { person, as_of },
        } => {
            let log = startup::open_log(&settings, settings.auto_migrate).await?;
            let as_of = match as_of {
                Some(raw) => chrono::DateTime::parse_from_rfc3339(&raw)
                    .map_err(|_| anyhow::anyhow!("--as-of must be an RFC 3339 instant such as 2026-11-01T12:00:00Z"))?
                    .with_timezone(&chrono::Utc),
                None => chrono::Utc::now(),
            };
            let replay = crate::consent::replay(&log, &person, as_of)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&replay)?)?;
            Ok(())
        }
        Command::Keys {
            action: KeysAction::NewMasterKey,
        } => {
            use rand::RngCore;
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            let mut id = [0u8; 4];
            rand::rng().fill_bytes(&mut id);
            writeln!(std::io::stdout(), "mk-{} {}", hex::encode(id), hex::encode(key))?;
            Ok(())
        }
        Command::Keys {
            action: KeysAction::Rotate,
        } => {
            let log = startup::open_log(&settings, settings.auto_migrate).await?;
            let ring = std::sync::Arc::new(settings.master_keyring()?);
            let vault = vault::Vault::start(log.db().clone(), ring.clone()).await?;
            let rewrapped = vault.rotate(&ring).await?;
            let usage = vault.master_key_usage().await?;
            writeln!(
                std::io::stdout(),
                "re-wrapped {rewrapped} keys under master key {}",
                ring.current_id()
            )?;
            for (id, count) in usage {
                writeln!(std::io::stdout(), "  master key {id}: {count} keys")?;
            }
            Ok(())
        }
        Command::Audit {
            action: AuditAction::Verify { stream },
        } => {
            let log = startup::open_log(&settings, settings.auto_migrate).await?;
            let reports = crate::routes::audit::verify(log.db(), stream.as_deref())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut out = std::io::stdout();
            let mut broken = 0;
            for report in &reports {
                match &report.broken {
                    None => writeln!(
                        out,
                        "ok      {}/{} ({} events)",
                        report.aggregate_type, report.aggregate_id, report.events
                    )?,
                    Some(b) => {
                        broken += 1;
                        writeln!(
                            out,
                            "BROKEN  {}/{} at sequence {}: {}",
                            report.aggregate_type, report.aggregate_id, b.sequence, b.reason
                        )?
                    }
                }
            }
            if broken > 0 {
                anyhow::bail!("{broken} of {} streams failed verification", reports.len());
            }
            Ok(())
        }
        Command::Projections { action } => {
            let log = startup::open_log(&settings, settings.auto_migrate).await?;
            let engine = startup::engine(&settings, log);
            match action {
                ProjectionsAction::Status { json } => {
                    engine.prepare().await?;
                    let statuses = engine.status().await?;
                    let mut out = std::io::stdout();
                    if json {
                        writeln!(out, "{}", serde_json::to_string_pretty(&statuses)?)?;
                    } else {
                        writeln!(
                            out,
                            "{:<18} {:>7} {:>4} {:<10} {:>14} {:>10} {:>10} {:>9}  LAST ERROR",
                            "PROJECTION", "VERSION", "GEN", "STATE", "POSITION", "APPLIED", "LAG", "LAG (s)"
                        )?;
                        for s in statuses {
                            writeln!(
                                out,
                                "{:<18} {:>7} {:>4} {:<10} {:>14} {:>10} {:>10} {:>9.1}  {}",
                                s.name,
                                s.version,
                                s.generation.map(|g| g.to_string()).unwrap_or_default(),
                                s.state,
                                s.position.to_string(),
                                s.events_applied,
                                s.lag_events,
                                s.lag_seconds,
                                s.last_error.unwrap_or_default()
                            )?;
                        }
                    }
                    Ok(())
                }
                ProjectionsAction::Rebuild { name } => {
                    if engine.projection(&name).is_none() {
                        anyhow::bail!(
                            "there is no projection called `{name}`; known: {}",
                            engine.names().join(", ")
                        );
                    }
                    let bar = ProgressBar::new(0);
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{spinner} {msg} [{elapsed_precise}] {wide_bar} {pos}/{len} events, {per_sec}, ETA {eta}",
                        )?
                        .progress_chars("=> "),
                    );
                    bar.set_message(format!("rebuilding {name}"));
                    let report = engine
                        .rebuild(&name, |progress| {
                            bar.set_length(progress.total);
                            bar.set_position(progress.done);
                        })
                        .await?;
                    bar.finish_and_clear();
                    writeln!(
                        std::io::stdout(),
                        "rebuilt {name}: {} events into generation {} in {:.2}s ({:.0} events/s)",
                        report.events,
                        report.generation,
                        report.elapsed.as_secs_f64(),
                        report.events as f64 / report.elapsed.as_secs_f64().max(1e-9)
                    )?;
                    Ok(())
                }
            }
        }
    }
}

/// `dynamoi sync`: catches the read models up (the campaign list comes from them), then syncs
/// with a progress bar over the ad accounts.
async fn sync(settings: &Settings, campaigns: Vec<String>, until: Option<String>, json: bool) -> anyhow::Result<()> {
    let until = match until {
        Some(raw) => chrono::NaiveDate::parse_from_str(&raw, "%Y-%m-%d")
            .map_err(|_| anyhow::anyhow!("--until must be a day such as 2026-11-28"))?,
        None => chrono::Utc::now().date_naive(),
    };
    let log = startup::open_log(settings, settings.auto_migrate).await?;
    startup::engine(settings, log.clone())
        .catch_up()
        .await
        .context("cannot bring the read models up to date")?;
    let ring = std::sync::Arc::new(settings.master_keyring()?);
    let vault = vault::Vault::start(log.db().clone(), ring).await?;
    let platforms = crate::platforms::Platforms::build(&settings.integrations)?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} syncing [{elapsed_precise}] {wide_bar} {pos}/{len} ad accounts, {msg}",
        )?
        .progress_chars("=> "),
    );
    let scope = crate::sync::SyncScope {
        campaigns: (!campaigns.is_empty()).then_some(campaigns),
        until,
        actor: "system:dynamoi-sync".into(),
    };
    let deps = crate::sync::SyncDeps {
        log: &log,
        vault: &vault,
        platforms: &platforms,
    };
    let report = crate::sync::sync(&deps, &scope, &|progress| {
        bar.set_length(progress.accounts_total as u64);
        bar.set_position(progress.accounts_done as u64);
        bar.set_message(format!("{} readings", progress.readings));
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    bar.finish_and_clear();
    let mut out = std::io::stdout();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        writeln!(out, "synced through {until}: {}", report.summary())?;
        for (reason, count) in &report.rejections {
            writeln!(out, "  rejected {count}: {reason}")?;
        }
        for failure in &report.failures {
            writeln!(
                out,
                "  FAILED {} account {} ({} campaigns): {}",
                failure.platform,
                failure.account_id,
                failure.campaigns.len(),
                failure.reason
            )?;
        }
    }
    if !report.failures.is_empty() {
        anyhow::bail!(
            "{} of {} ad accounts were not synced",
            report.failures.len(),
            report.accounts
        );
    }
    Ok(())
}

/// `dynamoi demo`: loads the demo data and brings the read models up to date.
async fn demo(settings: &Settings, days: u32, json: bool) -> anyhow::Result<()> {
    let log = startup::open_log(settings, settings.auto_migrate).await?;
    let ring = std::sync::Arc::new(settings.master_keyring()?);
    let vault = vault::Vault::start(log.db().clone(), ring).await?;
    let yesterday = chrono::Utc::now().date_naive() - chrono::Duration::days(1);
    let report = crate::demo::load(&log, &vault, yesterday, days).await?;
    startup::engine(settings, log.clone())
        .catch_up()
        .await
        .context("cannot bring the read models up to date")?;
    let mut out = std::io::stdout();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "demo loaded: artist {} owned by person {}\n  {} campaigns (2 on Meta, 1 on Google Ads), {} to {}: \
         {} readings recorded, {} restated",
        report.artist_id,
        report.person_id,
        report.campaign_ids.len(),
        report.first_day,
        report.last_day,
        report.recorded,
        report.restated
    )?;
    writeln!(
        out,
        "see it (with `dynamoi serve` running):\n  TOKEN=$(dynamoi token --sub {} --role person)\n  \
         curl -H \"Authorization: Bearer $TOKEN\" \"http://{}/v1/artists/{}/dashboard?from={}&to={}&granularity=week\"",
        report.person_id, settings.listen, report.artist_id, report.first_day, report.last_day
    )?;
    writeln!(
        out,
        "billing account {} (500 USD included a month, 2.5 % beyond): close a month with\n  \
         dynamoi billing close --period {} --account {}\n  \
         curl -H \"Authorization: Bearer $TOKEN\" http://{}/v1/billing/accounts/{}/usage",
        report.billing_account_id,
        // The last month that has ended.
        crate::billing::period_of(report.last_day.with_day(1).unwrap_or(report.last_day) - chrono::Duration::days(1)),
        report.billing_account_id,
        settings.listen,
        report.billing_account_id
    )?;
    Ok(())
}

/// `dynamoi billing close|reconcile`: on read models caught up first.
async fn billing(settings: &Settings, action: BillingAction) -> anyhow::Result<()> {
    let log = startup::open_log(settings, settings.auto_migrate).await?;
    startup::engine(settings, log.clone())
        .catch_up()
        .await
        .context("cannot bring the read models up to date")?;
    let fail = |e: crate::ApiError| anyhow::anyhow!("{e}");
    let mut out = std::io::stdout();
    match action {
        BillingAction::Close { period, account } => {
            crate::billing::parse_period(&period).map_err(fail)?;
            let accounts: Vec<String> = match account {
                Some(account) => vec![account],
                None => billing_account_ids(log.db()).await?,
            };
            let metadata = eventlog::EventMetadata {
                actor: "system:dynamoi-billing".into(),
                request_id: None,
                causation_id: None,
            };
            for account in accounts {
                match crate::billing::close_period(&log, &account, &period, chrono::Utc::now(), &metadata).await {
                    Ok((statement, _)) => writeln!(
                        out,
                        "closed {account} {period}: spend {} micros {}, fee {} micros, {} adjustments, reported {} (minor units)",
                        statement.spend_micros,
                        statement.currency,
                        statement.fee_micros,
                        statement.adjustments.len(),
                        statement.reported_minor
                    )?,
                    Err(crate::ApiError::Conflict(reason)) => writeln!(out, "skipped {account} {period}: {reason}")?,
                    Err(other) => return Err(fail(other)),
                }
            }
            Ok(())
        }
        BillingAction::Reconcile { period } => {
            let differences = crate::billing::reconcile(log.db(), &period).await.map_err(fail)?;
            for d in &differences {
                writeln!(out, "{} {}: {}", d.account_id, d.period, d.what)?;
            }
            if differences.is_empty() {
                writeln!(out, "{period}: usage, statements and Stripe reports agree")?;
                Ok(())
            } else {
                anyhow::bail!("{} differences for {period}", differences.len())
            }
        }
    }
}

/// `dynamoi retention run`: on read models caught up first (candidates come from them).
async fn retention(settings: &Settings, now: Option<String>, json: bool) -> anyhow::Result<()> {
    let now = match now {
        Some(raw) => chrono::DateTime::parse_from_rfc3339(&raw)
            .map_err(|_| anyhow::anyhow!("--now must be an RFC 3339 instant such as 2026-11-01T12:00:00Z"))?
            .with_timezone(&chrono::Utc),
        None => chrono::Utc::now(),
    };
    let log = startup::open_log(settings, settings.auto_migrate).await?;
    startup::engine(settings, log.clone())
        .catch_up()
        .await
        .context("cannot bring the read models up to date")?;
    let ring = std::sync::Arc::new(settings.master_keyring()?);
    let vault = vault::Vault::start(log.db().clone(), ring).await?;
    let platforms = crate::platforms::Platforms::build(&settings.integrations)?;
    let services = crate::privacy::Services {
        log: &log,
        vault: &vault,
        platforms: &platforms,
    };
    let report = crate::retention::apply(&services, now, &crate::retention::RetentionSettings::from(settings))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = std::io::stdout();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    if report.already_ran {
        writeln!(out, "retention for {} already ran; nothing done", report.day)?;
        return Ok(());
    }
    writeln!(out, "retention applied for {}:", report.day)?;
    for rule in &report.rules {
        writeln!(
            out,
            "  {}: {} examined, {} acted on, {} failed{}",
            rule.rule,
            rule.examined,
            rule.affected,
            rule.failed,
            if rule.ids.is_empty() {
                String::new()
            } else {
                format!(" ({})", rule.ids.join(", "))
            }
        )?;
    }
    for (person, request) in &report.erasure_requests {
        writeln!(out, "  erasure request {request} for {person}")?;
    }
    let failed: u64 = report.rules.iter().map(|r| r.failed).sum();
    if failed > 0 {
        anyhow::bail!("{failed} records could not be handled; the next run tries them again");
    }
    Ok(())
}

/// Every billing account id.
async fn billing_account_ids(db: &eventlog::Db) -> anyhow::Result<Vec<String>> {
    use eventlog::Db;
    let ids: Vec<(String,)> = eventlog::dispatch!(db, Db, |pool| {
        sqlx::query_as("SELECT account_id FROM billing_accounts ORDER BY account_id")
            .fetch_all(pool)
            .await?
    });
    Ok(ids.into_iter().map(|(id,)| id).collect())
}
