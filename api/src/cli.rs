//! The `dynamoi` command line: `serve`, `migrate`, `projections status|rebuild`, `workflows
//! status|retry|resolve`, `jobs status|run`, `audit`, `keys`, `sync`, `demo`, `billing`,
//! `retention`, `token`. Every command that does something calls the `app` crate, never a
//! route. Errors are one line on stderr and a non-zero exit status.

use crate::auth::{Authenticator, Role};
use crate::startup::{self, Application};
use crate::{telemetry, Settings};
use anyhow::Context;
use app::jobs::{Job, JobReport, JobRun};
use app::App;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use clap::{Parser, Subcommand};
use clock::SharedClock;
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
    /// Durable workflows: their items, parked ones, and an operator's retry or resolve.
    Workflows {
        #[command(subcommand)]
        action: WorkflowsAction,
    },
    /// Scheduled jobs: schedule, last run and outcome, next run; or run one now.
    Jobs {
        #[command(subcommand)]
        action: JobsAction,
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
        /// The instant the demo is loaded at (RFC 3339): its readings end the day before, and
        /// its events are recorded at it; now when omitted.
        #[arg(long)]
        now: Option<String>,
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
        #[arg(long, value_parser = parse_role)]
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
enum WorkflowsAction {
    /// Every workflow's checkpoint and item counts, and the parked items with their errors;
    /// exits non-zero when an item is parked.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Put a parked item back to work (due now, attempts from zero).
    Retry {
        #[arg(long)]
        workflow: String,
        #[arg(long)]
        item: String,
    },
    /// Record that a parked item was handled by hand.
    Resolve {
        #[arg(long)]
        workflow: String,
        #[arg(long)]
        item: String,
        /// What was done (recorded as the item's outcome).
        #[arg(long)]
        note: String,
    },
}

#[derive(Debug, Subcommand)]
enum JobsAction {
    /// Each job's schedule, last run, its outcome, and next run.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run one job now for a day (today, UTC, unless given): spend_sync, billing_close,
    /// retention or privacy_retries. A day that ran already does nothing.
    Run {
        job: String,
        /// The day (YYYY-MM-DD); today when omitted.
        #[arg(long)]
        day: Option<String>,
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

fn parse_role(raw: &str) -> Result<Role, String> {
    raw.parse()
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

/// An RFC 3339 instant given as `flag`, or now.
fn instant(flag: &str, raw: Option<&str>) -> anyhow::Result<Option<DateTime<Utc>>> {
    raw.map(|raw| {
        DateTime::parse_from_rfc3339(raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| anyhow::anyhow!("{flag} must be an RFC 3339 instant such as 2026-11-01T12:00:00Z"))
    })
    .transpose()
}

/// A day given as `flag` (`YYYY-MM-DD`).
fn day(flag: &str, raw: Option<&str>) -> anyhow::Result<Option<NaiveDate>> {
    raw.map(|raw| {
        NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .map_err(|_| anyhow::anyhow!("{flag} must be a day such as 2026-11-28"))
    })
    .transpose()
}

/// The clock of one command: standing at `at` when given, else the process's clock.
fn clock_at(settings: &Settings, at: Option<DateTime<Utc>>) -> SharedClock {
    match at {
        Some(at) => clock::ManualClock::new(at),
        None => settings.clock(),
    }
}

/// The application for a command, its read models caught up first when `catch_up` (commands
/// whose candidates come from read models).
async fn app_for(settings: &Settings, clock: SharedClock, catch_up: bool) -> anyhow::Result<App> {
    let app = startup::build_app(settings, clock).await?;
    if catch_up {
        app.engine
            .catch_up()
            .await
            .context("cannot bring the read models up to date")?;
    }
    Ok(app)
}

/// An application error as one line.
fn app_error(error: app::AppError) -> anyhow::Error {
    anyhow::anyhow!("{error}")
}

async fn run(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    match cli.command {
        Command::Serve => {
            let app = Application::build(settings).await?;
            app.run_until(startup::shutdown_signal()).await
        }
        Command::Migrate => {
            startup::open_log(&settings, true, settings.clock()).await?;
            writeln!(out, "migrations applied")?;
            Ok(())
        }
        Command::Billing { action } => billing(&settings, action).await,
        Command::Retention {
            action: RetentionAction::Run { now, json },
        } => retention(&settings, now, json).await,
        Command::Sync { campaigns, until, json } => sync(&settings, campaigns, until, json).await,
        Command::Demo { days, now, json } => demo(&settings, days, now, json).await,
        Command::Workflows { action } => workflows(&settings, action).await,
        Command::Jobs { action } => jobs(&settings, action).await,
        Command::Token { sub, role, ttl_seconds } => {
            let secret = settings.jwt_secret_or_dev()?;
            let token = Authenticator::with_clock(&secret, &settings.jwt_audience, settings.clock()).mint(
                &sub,
                role,
                ttl_seconds,
            )?;
            writeln!(out, "{token}")?;
            Ok(())
        }
        Command::Audit {
            action: AuditAction::Consents { person, as_of },
        } => {
            let as_of = instant("--as-of", as_of.as_deref())?;
            let app = app_for(&settings, settings.clock(), false).await?;
            let replay = app::consent::replay(&app.log, &person, as_of.unwrap_or_else(|| app.now()))
                .await
                .map_err(app_error)?;
            writeln!(out, "{}", serde_json::to_string_pretty(&replay)?)?;
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
            writeln!(out, "mk-{} {}", hex::encode(id), hex::encode(key))?;
            Ok(())
        }
        Command::Keys {
            action: KeysAction::Rotate,
        } => {
            let log = startup::open_log(&settings, settings.auto_migrate, settings.clock()).await?;
            let ring = std::sync::Arc::new(settings.master_keyring()?);
            let vault = vault::Vault::start(log.db().clone(), ring.clone()).await?;
            let rewrapped = vault.rotate(&ring).await?;
            let usage = vault.master_key_usage().await?;
            writeln!(
                out,
                "re-wrapped {rewrapped} keys under master key {}",
                ring.current_id()
            )?;
            for (id, count) in usage {
                writeln!(out, "  master key {id}: {count} keys")?;
            }
            Ok(())
        }
        Command::Audit {
            action: AuditAction::Verify { stream },
        } => {
            let app = app_for(&settings, settings.clock(), false).await?;
            let reports = app::audit::verify(&app, stream.as_deref()).await.map_err(app_error)?;
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
        Command::Projections { action } => projections(&settings, action).await,
    }
}

async fn projections(settings: &Settings, action: ProjectionsAction) -> anyhow::Result<()> {
    let log = startup::open_log(settings, settings.auto_migrate, settings.clock()).await?;
    let engine = startup::engine(settings, log.clone());
    let mut out = std::io::stdout();
    match action {
        ProjectionsAction::Status { json } => {
            engine.prepare().await?;
            let statuses = engine.status().await?;
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
                let holdback = log.feed_holdback().await?;
                if holdback.held_back_events > 0 || holdback.oldest_writer_seconds.is_some() {
                    writeln!(
                        out,
                        "feed: {} committed event(s) held back by a transaction writing events, open {:.1} s",
                        holdback.held_back_events,
                        holdback.oldest_writer_seconds.unwrap_or(0.0)
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
                out,
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

/// `dynamoi workflows status|retry|resolve`: the feed is taken in first, so the counts are true.
async fn workflows(settings: &Settings, action: WorkflowsAction) -> anyhow::Result<()> {
    let app = app_for(settings, settings.clock(), false).await?;
    let mut out = std::io::stdout();
    match action {
        WorkflowsAction::Status { json } => {
            let (statuses, parked) = app::workflow_admin::status(&app).await.map_err(app_error)?;
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "workflows": statuses, "parked": parked }))?
                )?;
            } else {
                writeln!(
                    out,
                    "{:<20} {:>14} {:>8} {:>8} {:>8}  WAITING FOR",
                    "WORKFLOW", "CHECKPOINT", "PENDING", "DONE", "PARKED"
                )?;
                for s in &statuses {
                    writeln!(
                        out,
                        "{:<20} {:>14} {:>8} {:>8} {:>8}  {}",
                        s.workflow,
                        s.checkpoint,
                        s.pending,
                        s.done,
                        s.parked,
                        s.blocked.as_deref().unwrap_or("")
                    )?;
                }
                for item in &parked {
                    writeln!(
                        out,
                        "PARKED  {} {} after {} attempts: {}",
                        item.workflow,
                        item.item,
                        item.attempts,
                        item.last_error.as_deref().unwrap_or("")
                    )?;
                }
            }
            if !parked.is_empty() {
                anyhow::bail!("{} workflow items are parked", parked.len());
            }
            Ok(())
        }
        WorkflowsAction::Retry { workflow, item } => {
            let item = app::workflow_admin::retry(&app, &workflow, &item)
                .await
                .map_err(app_error)?;
            writeln!(out, "{} {} is pending again (due now)", item.workflow, item.item)?;
            Ok(())
        }
        WorkflowsAction::Resolve { workflow, item, note } => {
            let item = app::workflow_admin::resolve(&app, &workflow, &item, &note)
                .await
                .map_err(app_error)?;
            writeln!(out, "{} {} resolved by hand", item.workflow, item.item)?;
            Ok(())
        }
    }
}

/// `dynamoi jobs status|run`.
async fn jobs(settings: &Settings, action: JobsAction) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    match action {
        JobsAction::Status { json } => {
            let app = app_for(settings, settings.clock(), false).await?;
            let statuses = app::jobs::status(&app, &settings.jobs).await.map_err(app_error)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&statuses)?)?;
                return Ok(());
            }
            writeln!(
                out,
                "{:<16} {:>8} {:<22} {:<12} {:<22}  OUTCOME",
                "JOB", "AT", "NEXT RUN", "LAST DAY", "LAST FINISHED"
            )?;
            for s in statuses {
                let last = s.last_run.as_ref();
                writeln!(
                    out,
                    "{:<16} {:>8} {:<22} {:<12} {:<22}  {}",
                    s.job.name(),
                    s.schedule,
                    s.next_run.unwrap_or_else(|| "-".into()),
                    last.map_or("-", |r| r.run_key.as_str()),
                    last.and_then(|r| r.finished_at.as_deref())
                        .unwrap_or(if last.is_some() { "(running or died)" } else { "-" }),
                    last.and_then(|r| r.outcome.as_deref()).unwrap_or("")
                )?;
            }
            Ok(())
        }
        JobsAction::Run { job, day: raw_day } => {
            let job: Job = job.parse().map_err(|e: String| anyhow::anyhow!(e))?;
            let day = day("--day", raw_day.as_deref())?;
            let app = app_for(settings, settings.clock(), true).await?;
            let day = day.unwrap_or_else(|| app.now().date_naive());
            let run = app::jobs::run_now(&app, job, day, settings.jobs.lease)
                .await
                .map_err(app_error)?;
            match run {
                JobRun::Ran { report, .. } => writeln!(out, "{} for {day}: {}", job.name(), report.summary())?,
                JobRun::AlreadyRan => writeln!(out, "{} for {day} already ran; nothing done", job.name())?,
                JobRun::Held { until } => writeln!(
                    out,
                    "{} for {day} is running in another instance (lease until {until})",
                    job.name()
                )?,
            }
            Ok(())
        }
    }
}

/// `dynamoi sync`: catches the read models up (the campaign list comes from them), then syncs
/// with a progress bar over the ad accounts.
async fn sync(settings: &Settings, campaigns: Vec<String>, until: Option<String>, json: bool) -> anyhow::Result<()> {
    let until = day("--until", until.as_deref())?;
    let app = app_for(settings, settings.clock(), true).await?;
    let until = until.unwrap_or_else(|| app.now().date_naive());
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} syncing [{elapsed_precise}] {wide_bar} {pos}/{len} ad accounts, {msg}",
        )?
        .progress_chars("=> "),
    );
    let scope = app::sync::SyncScope {
        campaigns: (!campaigns.is_empty()).then_some(campaigns),
        until,
        actor: "system:dynamoi-sync".into(),
    };
    let report = app::sync::sync(&app, &scope, &|progress| {
        bar.set_length(progress.accounts_total as u64);
        bar.set_position(progress.accounts_done as u64);
        bar.set_message(format!("{} readings", progress.readings));
    })
    .await
    .map_err(app_error)?;
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

/// `dynamoi demo`: loads the demo data at a set instant and brings the read models up to date.
async fn demo(settings: &Settings, days: u32, now: Option<String>, json: bool) -> anyhow::Result<()> {
    let at = instant("--now", now.as_deref())?.unwrap_or_else(|| settings.clock().now());
    let app = app_for(settings, clock::ManualClock::new(at), false).await?;
    let yesterday = at.date_naive() - chrono::Duration::days(1);
    let report = app::demo::load(&app, yesterday, days).await?;
    app.engine
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
        app::billing::period_of(report.last_day.with_day(1).unwrap_or(report.last_day) - chrono::Duration::days(1)),
        report.billing_account_id,
        settings.listen,
        report.billing_account_id
    )?;
    Ok(())
}

/// `dynamoi billing close|reconcile`: on read models caught up first.
async fn billing(settings: &Settings, action: BillingAction) -> anyhow::Result<()> {
    let app = app_for(settings, settings.clock(), true).await?;
    let mut out = std::io::stdout();
    match action {
        BillingAction::Close { period, account } => {
            app::billing::parse_period(&period).map_err(app_error)?;
            let accounts: Vec<String> = match account {
                Some(account) => vec![account],
                None => projections::read_models::billing::accounts(app.log.db())
                    .await?
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect(),
            };
            let metadata = app::system_metadata("dynamoi-billing");
            for account in accounts {
                match app::billing::close_period(&app.log, &account, &period, app.now(), &metadata).await {
                    Ok((statement, _)) => writeln!(
                        out,
                        "closed {account} {period}: spend {} micros {}, fee {} micros, {} adjustments, {} minor units to report to Stripe",
                        statement.spend_micros,
                        statement.currency,
                        statement.fee_micros,
                        statement.adjustments.len(),
                        statement.reported_minor
                    )?,
                    Err(app::AppError::Conflict(reason)) => writeln!(out, "skipped {account} {period}: {reason}")?,
                    Err(other) => return Err(app_error(other)),
                }
            }
            Ok(())
        }
        BillingAction::Reconcile { period } => {
            let differences = app::billing::reconcile(app.log.db(), &period)
                .await
                .map_err(app_error)?;
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

/// `dynamoi retention run`: the `retention` job for the day of `--now` (now when omitted), at
/// that instant, on read models caught up first (candidates come from them).
async fn retention(settings: &Settings, now: Option<String>, json: bool) -> anyhow::Result<()> {
    let at = instant("--now", now.as_deref())?;
    let app = app_for(settings, clock_at(settings, at), true).await?;
    let day = app.now().date_naive();
    let run = app::jobs::run_now(&app, Job::Retention, day, settings.jobs.lease)
        .await
        .map_err(app_error)?;
    let mut out = std::io::stdout();
    let report = match run {
        JobRun::Ran {
            report: JobReport::Retention(report),
            ..
        } => report,
        JobRun::Ran { .. } => anyhow::bail!("the retention job answered another job's report"),
        JobRun::AlreadyRan => {
            // `serve`'s daily job (or an earlier command) ran the day: show what it recorded.
            let recorded = app::retention::recorded_run(&app, day).await.map_err(app_error)?;
            if json {
                let (at, rules) = recorded.map_or((None, Vec::new()), |(at, rules)| (Some(at), rules));
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({ "day": day, "already_ran": true, "ran_at": at, "rules": rules })
                    )?
                )?;
            } else {
                match recorded {
                    Some((at, rules)) => {
                        writeln!(
                            out,
                            "retention for {day} already ran at {at}; nothing done now. It recorded:"
                        )?;
                        write_rules(&mut out, &rules)?;
                    }
                    None => writeln!(out, "retention for {day} already ran; nothing done")?,
                }
            }
            return Ok(());
        }
        JobRun::Held { until } => {
            anyhow::bail!("retention for {day} is running in another instance (lease until {until})")
        }
    };
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    writeln!(out, "retention applied for {}:", report.day)?;
    write_rules(&mut out, &report.rules)?;
    for (person, request) in &report.erasure_requests {
        writeln!(out, "  erasure request {request} for {person}")?;
    }
    let failed: u64 = report.rules.iter().map(|r| r.failed).sum();
    if failed > 0 {
        anyhow::bail!("{failed} records could not be handled; the workflow retries them");
    }
    Ok(())
}

/// One line per retention rule: what it examined and acted on.
fn write_rules(out: &mut impl Write, rules: &[domain::retention::RuleOutcome]) -> std::io::Result<()> {
    for rule in rules {
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
    Ok(())
}
