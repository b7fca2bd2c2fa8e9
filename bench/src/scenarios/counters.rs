//! `counters`: what noise cannot move, counted on the wire by [`crate::wire::WireTap`]:
//! writing commits and round trips per command, checkpoint writes per projection batch. The
//! tests of `bench/tests/counters.rs` assert the same measurements; the harness reports them.
//!
//! Commands run one after another through an event log over `eventlog::Db::connect`'s pool (the
//! service's; its appends run on the connections the log keeps beside that pool), after a
//! warm-up, so each connection has prepared its statements (sqlx prepares a statement once per
//! connection, one extra round trip the first time; one opened during the run prepares then,
//! and such round trips are counted apart, not per command). A dashboard's read is counted the
//! same way ([`run_dashboard_reads`]).

use super::Config;
use crate::databases::{PgUrl, PrivateDb};
use crate::fixtures;
use crate::report::{Row, Target};
use crate::wire::{Recording, WireTap};
use domain::campaign::Campaign;
use eventlog::{Db, EventLog, Position};
use projections::{Engine, EngineConfig};
use serde_json::json;
use std::time::Duration;

/// A private database, and an event log that reaches it through a counting proxy.
pub struct Tapped {
    pub db: PrivateDb,
    pub tap: WireTap,
    pub log: EventLog,
}

impl Tapped {
    /// A log keeping `aggregate_cache` aggregates (0: every command loads first). `None` only
    /// when PostgreSQL is unreachable and skipping is allowed.
    pub async fn new(max_connections: u32, aggregate_cache: usize) -> anyhow::Result<Option<Tapped>> {
        let Some(db) = PrivateDb::postgres(max_connections).await? else {
            return Ok(None);
        };
        let url = PgUrl::parse(&db.url)?;
        let tap = WireTap::start(format!("{}:{}", url.host, url.port)).await?;
        let proxied = url.with("127.0.0.1", tap.address().port(), &db.name);
        let log = EventLog::new(Db::connect(&proxied, max_connections).await?).with_aggregate_cache(aggregate_cache);
        Ok(Some(Tapped { db, tap, log }))
    }
}

/// What a run of commands cost on the wire.
#[derive(Clone, Debug)]
pub struct CommandCounts {
    pub commands: usize,
    pub recording: Recording,
    /// Distinct `transaction_id`s among the events the commands appended.
    pub event_transactions: i64,
    pub events: i64,
}

/// Runs `count` campaign drafts (new aggregates) and `count` budget changes on one campaign
/// (a growing stream), after a warm-up; returns what the wire saw during them.
pub async fn run_commands(tapped: &Tapped, count: usize) -> anyhow::Result<CommandCounts> {
    let metadata = fixtures::metadata();
    let existing = fixtures::new_id();
    tapped
        .log
        .execute::<Campaign>(&existing, fixtures::draft_command("bench-artist"), &metadata)
        .await?;
    for i in 0..10 {
        tapped
            .log
            .execute::<Campaign>(&fixtures::new_id(), fixtures::draft_command("bench-artist"), &metadata)
            .await?;
        tapped
            .log
            .execute::<Campaign>(&existing, fixtures::budget_command(1_000_000 + i), &metadata)
            .await?;
    }
    let before: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(global_position), 0) FROM events")
        .fetch_one(tapped.db.pg())
        .await?;
    // The warm-up's last release ping belongs to the warm-up, not to the recording.
    anyhow::ensure!(
        tapped.tap.settle(std::time::Duration::from_secs(10)).await,
        "the warm-up's connections never went back to the pool"
    );
    tapped.tap.reset();
    for i in 0..count {
        tapped
            .log
            .execute::<Campaign>(&fixtures::new_id(), fixtures::draft_command("bench-artist"), &metadata)
            .await?;
        tapped
            .log
            .execute::<Campaign>(&existing, fixtures::budget_command(2_000_000 + i as i64), &metadata)
            .await?;
    }
    let recording = tapped.tap.recording();
    let (event_transactions, events): (i64, i64) =
        sqlx::query_as("SELECT count(DISTINCT transaction_id), count(*) FROM events WHERE global_position > $1")
            .bind(before)
            .fetch_one(tapped.db.pg())
            .await?;
    Ok(CommandCounts {
        commands: 2 * count,
        recording,
        event_transactions,
        events,
    })
}

/// Whether a statement writes a read-model table (a generation's table, `name_g<N>`).
pub fn writes_read_model(sql: &str) -> bool {
    let head = sql.trim_start().to_ascii_uppercase();
    let writes = ["INSERT", "UPDATE", "DELETE"].iter().any(|verb| head.starts_with(verb));
    let bytes = sql.as_bytes();
    let generation_table = bytes
        .windows(3)
        .any(|w| w[0] == b'_' && w[1] == b'g' && w[2].is_ascii_digit());
    writes && generation_table && !sql.contains("projection_generations")
}

/// The SQL that moves a checkpoint (`projections::checkpoint::advance`).
pub const CHECKPOINT_WRITE: &str = "SET checkpoint_commit";

/// The SQL that makes a generation the served one (`projections::checkpoint::take_over`).
pub const TAKE_OVER: &str = "SET active = true";

/// What a projection run cost on the wire.
#[derive(Clone, Debug)]
pub struct BatchCounts {
    pub events: u64,
    pub batch_size: usize,
    pub recording: Recording,
}

impl BatchCounts {
    /// Checkpoint writes executed.
    pub fn checkpoint_writes(&self) -> usize {
        self.recording.executions_of(CHECKPOINT_WRITE)
    }

    /// Batches a run over `events` events makes.
    pub fn batches(&self) -> usize {
        (self.events as usize).div_ceil(self.batch_size)
    }
}

/// Fills the feed with `drafts` campaign drafts and rebuilds `projection` with batches of
/// `batch_size`; returns what the wire saw during the rebuild.
pub async fn run_rebuild(
    tapped: &Tapped,
    projection: &str,
    drafts: usize,
    batch_size: usize,
) -> anyhow::Result<BatchCounts> {
    let metadata = fixtures::metadata();
    for _ in 0..drafts {
        tapped
            .log
            .execute::<Campaign>(&fixtures::new_id(), fixtures::draft_command("bench-artist"), &metadata)
            .await?;
    }
    let engine = Engine::new(
        tapped.log.clone(),
        projections::all(),
        EngineConfig {
            batch_size,
            rebuild_batch_size: batch_size,
            ..EngineConfig::default()
        },
    );
    engine.prepare().await?;
    tapped.tap.reset();
    let report = engine
        .rebuild(projection, |_| {})
        .await
        .map_err(|e| anyhow::anyhow!("rebuild failed: {e}"))?;
    Ok(BatchCounts {
        events: report.events,
        batch_size,
        recording: tapped.tap.recording(),
    })
}

/// The SQL that reads the feed (`eventlog::EventLog::read_feed` on PostgreSQL).
pub const FEED_READ: &str = "ORDER BY transaction_id, global_position LIMIT";

/// Every projection's worker over `tapped`'s log, started once caught up, with no poll and no
/// checkpoint delay (an hour each): only in-process commits and waiters move them.
async fn started_engine(tapped: &Tapped) -> anyhow::Result<Engine> {
    let engine = Engine::new(
        tapped.log.clone(),
        projections::all(),
        EngineConfig {
            poll_interval: Duration::from_secs(3600),
            checkpoint_delay: Duration::from_secs(3600),
            ..EngineConfig::default()
        },
    );
    engine.prepare().await?;
    engine.catch_up().await?;
    engine.start();
    Ok(engine)
}

/// Runs one campaign draft and returns its position.
async fn draft(tapped: &Tapped) -> anyhow::Result<Position> {
    let outcome = tapped
        .log
        .execute::<Campaign>(
            &fixtures::new_id(),
            fixtures::draft_command("bench-artist"),
            &fixtures::metadata(),
        )
        .await?;
    Ok(outcome.position.expect("a draft appends"))
}

/// Waits until each of `names` has applied (stored its checkpoint at or past) `position`.
async fn wait_for_all(engine: &Engine, names: &[&str], position: Position) -> anyhow::Result<()> {
    for name in names {
        anyhow::ensure!(
            engine.wait_for(name, position, Duration::from_secs(30)).await?,
            "{name} did not apply the draft"
        );
    }
    Ok(())
}

/// Starts every projection's worker (no poll: an hour), runs one draft and waits until every
/// projection has applied it, then records the wire while a second draft is applied by all;
/// returns that recording. Every worker is woken by the second commit.
pub async fn run_one_wake(tapped: &Tapped) -> anyhow::Result<Recording> {
    let engine = started_engine(tapped).await?;
    let names = engine.names();
    wait_for_all(&engine, &names, draft(tapped).await?).await?;
    tapped.tap.reset();
    wait_for_all(&engine, &names, draft(tapped).await?).await?;
    let recording = tapped.tap.recording();
    engine.shutdown().await;
    Ok(recording)
}

/// What one draft cost on the wire with every worker running, in two parts.
pub struct DraftReadBySome {
    /// The projections that read a campaign draft (`Projection::reads`).
    pub readers: Vec<&'static str>,
    /// Until the readers had applied it.
    pub until_read: Recording,
    /// Then, until the others, asked by a waiter each, had stored their checkpoints past it.
    pub until_stored: Recording,
}

/// Like [`run_one_wake`], but the second draft is waited for by the projections that read it
/// first, and by the others after the wire's first recording is taken.
pub async fn run_draft_read_by_some(tapped: &Tapped) -> anyhow::Result<DraftReadBySome> {
    let engine = started_engine(tapped).await?;
    let names = engine.names();
    let first = draft(tapped).await?;
    wait_for_all(&engine, &names, first).await?;
    let stored = tapped.log.read_feed(Position::START, 1_000_000).await?;
    let stored_draft = stored
        .iter()
        .find(|e| e.position == first)
        .expect("the draft is in the feed");
    let (readers, others): (Vec<&'static str>, Vec<&'static str>) = names.iter().partition(|name| {
        engine
            .projection(name)
            .is_some_and(|projection| projection.reads(stored_draft))
    });
    tapped.tap.reset();
    let second = draft(tapped).await?;
    wait_for_all(&engine, &readers, second).await?;
    let until_read = tapped.tap.recording();
    tapped.tap.reset();
    wait_for_all(&engine, &others, second).await?;
    let until_stored = tapped.tap.recording();
    engine.shutdown().await;
    Ok(DraftReadBySome {
        readers,
        until_read,
        until_stored,
    })
}

/// Starts every projection's worker, runs `commands` drafts while they tail the feed, waits
/// until every projection has applied the last, stops them; returns the wire's recording.
pub async fn run_live(tapped: &Tapped, commands: usize, batch_size: usize) -> anyhow::Result<Recording> {
    let engine = Engine::new(
        tapped.log.clone(),
        projections::all(),
        EngineConfig {
            batch_size,
            poll_interval: Duration::from_millis(50),
            ..EngineConfig::default()
        },
    );
    engine.prepare().await?;
    engine.catch_up().await?;
    tapped.tap.reset();
    engine.start();
    let metadata = fixtures::metadata();
    let mut last = Position::START;
    for _ in 0..commands {
        let outcome = tapped
            .log
            .execute::<Campaign>(&fixtures::new_id(), fixtures::draft_command("bench-artist"), &metadata)
            .await?;
        last = outcome.position.expect("a draft appends");
    }
    for name in engine.names() {
        anyhow::ensure!(
            engine.wait_for(name, last, Duration::from_secs(30)).await?,
            "{name} did not apply the last command"
        );
    }
    engine.shutdown().await;
    Ok(tapped.tap.recording())
}

/// What `count` dashboard reads of an artist's days (the read `GET /v1/artists/{id}/dashboard`
/// waits for) cost on the wire, after a warm-up read; and the days each read returned.
pub async fn run_dashboard_reads(tapped: &Tapped, count: usize) -> anyhow::Result<(Recording, Vec<usize>)> {
    use projections::read_models::dashboards::{member_artist_days, DayFilter};
    const OWNER: &str = "bench-owner";
    let (artist, _) = fixtures::create_artist(&tapped.log, OWNER).await?;
    let campaigns = fixtures::create_campaigns(&tapped.log, &artist, 2, 5).await?;
    app::ingest::ingest(
        &tapped.log,
        &fixtures::readings(&campaigns, 5, 0),
        &fixtures::metadata(),
    )
    .await?;
    let engine = Engine::new(tapped.log.clone(), projections::all(), EngineConfig::default());
    engine.prepare().await?;
    engine.catch_up().await?;
    anyhow::ensure!(
        tapped.tap.settle(Duration::from_secs(10)).await,
        "the set-up's connections never went back to the pool"
    );
    // The warm-up prepares the statement on the connection the reads will use; given back
    // without a ping, so nothing of it is left to arrive after the reset.
    let filter = DayFilter::default();
    member_artist_days(&tapped.log, &artist, OWNER, &filter).await?;
    tapped.tap.reset();
    let mut days = Vec::with_capacity(count);
    for _ in 0..count {
        let read = member_artist_days(&tapped.log, &artist, OWNER, &filter).await?;
        days.push(read.map_or(0, |d| d.len()));
    }
    Ok((tapped.tap.recording(), days))
}

/// Runs the scenario: the counters as rows (no baseline, exact targets).
pub async fn run(config: &Config) -> anyhow::Result<Vec<Row>> {
    let count = if config.quick { 10 } else { 100 };
    let tapped = Tapped::new(10, crate::databases::aggregate_cache())
        .await?
        .ok_or_else(|| anyhow::anyhow!("PostgreSQL is unreachable; the harness needs it"))?;
    let counts = run_commands(&tapped, count).await?;
    let n = counts.commands as f64;
    let recording = &counts.recording;
    let mut round_trips = Row::new(
        "counters",
        "database round trips a command waits for",
        "",
        "",
        "execute",
        Target::CountAtMost { value: 2.0 },
    );
    // Statement preparations (once per connection and statement) are not per command.
    round_trips
        .ours
        .push((recording.waited_round_trips() - recording.preparations()) as f64 / n);
    let pings = recording.round_trips.iter().filter(|r| r.is_ping()).count();
    round_trips.details.push(json!({
        "commands": counts.commands,
        "round_trips_waited_for": recording.waited_round_trips(),
        "statement_preparations": recording.preparations(),
        "pings_on_acquire_or_other": pings - recording.release_pings(),
        "statements": recording.round_trips.iter().map(|r| r.statements.len()).sum::<usize>(),
        "read_only_transactions": recording.read_only_transactions(),
    }));
    let mut wire = Row::new(
        "counters",
        "database round trips per command on the wire (pings included)",
        "",
        "",
        "execute",
        Target::Info,
    );
    wire.ours.push(recording.round_trip_count() as f64 / n);
    wire.details.push(json!({
        "round_trips": recording.round_trip_count(),
        "release_pings": recording.release_pings(),
        "connections_opened": recording.connections,
    }));
    let mut commits = Row::new(
        "counters",
        "writing commits per command",
        "",
        "",
        "execute",
        Target::Equals { value: 1.0 },
    );
    commits.ours.push(recording.writing_commits() as f64 / n);
    commits.details.push(json!({
        "writing_commits": recording.writing_commits(),
        "distinct_transaction_ids_of_the_events": counts.event_transactions,
        "events": counts.events,
    }));
    let batches = run_rebuild(&tapped, "stream_index", if config.quick { 30 } else { 250 }, 100).await?;
    let mut checkpoints = Row::new(
        "counters",
        "checkpoint writes per projection batch (rebuild, batches of 100)",
        "",
        "",
        "Engine::rebuild",
        Target::Equals { value: 1.0 },
    );
    checkpoints
        .ours
        .push(batches.checkpoint_writes() as f64 / batches.batches() as f64);
    checkpoints.details.push(json!({
        "events": batches.events,
        "batches": batches.batches(),
        "checkpoint_writes": batches.checkpoint_writes(),
    }));
    Ok(vec![round_trips, wire, commits, checkpoints])
}
