//! The counters that noise cannot move (issue 8, item 3; `PERFORMANCE.md`), counted on the wire
//! between sqlx and PostgreSQL by the harness's counting proxy (`bench::wire`):
//!
//! - one writing commit per command;
//! - at most two database round trips per command (the load and the append) with the aggregate
//!   cache off, one (the append) with it on, for a new aggregate and for one this process
//!   commanded last: round trips the command waits for; the ping sqlx's pool sends when a
//!   connection is given back (in a task of its own, after the answer) is counted and shown apart,
//!   and a command's append, on a connection the log keeps outside the pool, sends none;
//! - one round trip for a dashboard's read (access check and days in one statement), with no
//!   release ping;
//! - one checkpoint write per projection batch, in the batch's own transaction, on a rebuild
//!   and on the live workers;
//! - live workers woken by one commit read the feed once between them, not once each;
//! - a live worker opens no transaction for a batch holding nothing its projection reads: it
//!   stores the checkpoint later, in one statement.
//!
//! Each test makes and drops its own PostgreSQL database. When PostgreSQL is unreachable they
//! fail; outside CI `DYNAMOI_TEST_SKIP_POSTGRES=1` skips them; under `CI=true` they always fail.

use bench::scenarios::counters::{
    run_commands, run_dashboard_reads, run_draft_read_by_some, run_live, run_one_wake, run_rebuild, writes_read_model,
    Tapped, CHECKPOINT_WRITE, FEED_READ, TAKE_OVER,
};
use bench::wire::{Recording, Transaction};

async fn tapped() -> Option<Tapped> {
    tapped_with_cache(eventlog::aggregate_cache::DEFAULT_CAPACITY).await
}

async fn tapped_with_cache(aggregate_cache: usize) -> Option<Tapped> {
    Tapped::new(10, aggregate_cache)
        .await
        .expect("a private PostgreSQL database behind the counting proxy")
}

fn breakdown(recording: &Recording) -> String {
    let mut lines: Vec<String> = recording
        .round_trips
        .iter()
        .take(12)
        .map(|r| {
            format!(
                "conn {} status {} parses {} tags {:?} statements {:?}",
                r.connection,
                r.status as char,
                r.parses,
                r.tags,
                r.statements
                    .iter()
                    .map(|s| s.chars().take(60).collect::<String>())
                    .collect::<Vec<_>>()
            )
        })
        .collect();
    lines.insert(0, format!("the first round trips of {}:", recording.round_trip_count()));
    lines.join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counting_proxy_counts_round_trips_and_commits_exactly() {
    let Some(tapped) = tapped().await else { return };
    let eventlog::Db::Postgres(pool) = tapped.log.db().clone() else {
        unreachable!("a PostgreSQL database")
    };
    let mut connection = pool.acquire().await.unwrap();
    sqlx::query("CREATE TABLE t (x int)")
        .execute(&mut *connection)
        .await
        .unwrap();
    // Prepare the statements once, so the counted part has no preparation round trip.
    sqlx::query("SELECT 1").execute(&mut *connection).await.unwrap();
    sqlx::query("INSERT INTO t VALUES ($1)")
        .bind(0)
        .execute(&mut *connection)
        .await
        .unwrap();
    tapped.tap.reset();
    sqlx::query("SELECT 1").execute(&mut *connection).await.unwrap(); // 1 round trip, read-only
    sqlx::query("INSERT INTO t VALUES ($1)")
        .bind(1)
        .execute(&mut *connection)
        .await
        .unwrap(); // 1 round trip, 1 commit
    let mut tx = sqlx::Connection::begin(&mut *connection).await.unwrap(); // BEGIN: 1
    for x in 2..4 {
        sqlx::query("INSERT INTO t VALUES ($1)")
            .bind(x)
            .execute(&mut *tx)
            .await
            .unwrap(); // 2
    }
    tx.commit().await.unwrap(); // COMMIT: 1 round trip, 1 commit
    let mut tx = sqlx::Connection::begin(&mut *connection).await.unwrap();
    sqlx::query("INSERT INTO t VALUES ($1)")
        .bind(9)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap(); // 3 round trips, no commit
    let recording = tapped.tap.recording();
    assert_eq!(recording.round_trip_count(), 9, "{}", breakdown(&recording));
    assert_eq!(recording.writing_commits(), 2, "{}", breakdown(&recording));
    assert_eq!(recording.read_only_transactions(), 1);
    assert_eq!(recording.executions_of("INSERT INTO t"), 4);
    assert_eq!(recording.release_pings(), 0, "the connection was held throughout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_is_one_writing_commit() {
    let Some(tapped) = tapped().await else { return };
    let counts = run_commands(&tapped, 25).await.unwrap();
    assert_eq!(counts.commands, 50);
    assert_eq!(
        counts.recording.writing_commits(),
        counts.commands,
        "one writing commit per command\n{}",
        breakdown(&counts.recording)
    );
    // And each command's event carries its own transaction id: one commit each, as stored.
    assert_eq!(counts.events, 50);
    assert_eq!(counts.event_transactions, 50);
}

/// The round trips the commands of `counts` waited for (statements prepared on a new
/// connection apart, bounded), checked against `per_command`, and the statements they sent.
fn round_trips_per_command(counts: &bench::scenarios::counters::CommandCounts, per_command: usize) {
    let recording = &counts.recording;
    // A statement is prepared once per connection (one round trip, the first time); the pool
    // may open a connection during the run, so those are counted apart, and bounded.
    let preparations = recording.preparations();
    assert!(
        preparations <= 2 * recording.connections_used(),
        "{preparations} preparations on {} connections",
        recording.connections_used()
    );
    let waited = recording.waited_round_trips() - preparations;
    assert!(
        waited <= per_command * counts.commands,
        "{waited} round trips waited for, for {} commands ({} in all, {} pings, {} of them on \
         release, {preparations} preparations)\n{}",
        counts.commands,
        recording.round_trip_count(),
        recording.round_trips.iter().filter(|r| r.is_ping()).count(),
        recording.release_pings(),
        breakdown(recording)
    );
    let statements: usize = recording.round_trips.iter().map(|r| r.statements.len()).sum();
    assert_eq!(statements, per_command * counts.commands, "{}", breakdown(recording));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_aggregate_cache_a_command_takes_two_round_trips() {
    let Some(tapped) = tapped_with_cache(0).await else {
        return;
    };
    let counts = run_commands(&tapped, 25).await.unwrap();
    // The load and the append: one statement each.
    round_trips_per_command(&counts, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_aggregate_cache_a_new_or_hot_aggregate_takes_one_round_trip() {
    let Some(tapped) = tapped().await else { return };
    let counts = run_commands(&tapped, 25).await.unwrap();
    // Drafts of new campaigns and budget changes on the campaign commanded last: the append
    // alone, no load.
    round_trips_per_command(&counts, 1);
    assert_eq!(counts.events, 50);
    // And nothing more on the wire: the append's connection is given back without the ping
    // sqlx's pool sends on release (`eventlog::kept_connections`).
    let recording = &counts.recording;
    assert_eq!(recording.release_pings(), 0, "{}", breakdown(recording));
    // Given back and taken again: no connection is opened for a command.
    assert_eq!(recording.connections, 0, "{}", breakdown(recording));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_read_is_one_round_trip_with_no_release_ping() {
    let Some(tapped) = tapped().await else { return };
    let (recording, days) = run_dashboard_reads(&tapped, 20).await.unwrap();
    // Two campaigns' five days of readings, summed per day: five days, every read.
    assert_eq!(days, vec![5; 20]);
    // The access check and the read are one statement, on a connection the log keeps beside
    // the pool (`eventlog::kept_connections`): given back without sqlx's release ping.
    assert_eq!(recording.round_trip_count(), 20, "{}", breakdown(&recording));
    assert_eq!(recording.release_pings(), 0, "{}", breakdown(&recording));
    assert_eq!(recording.connections, 0, "{}", breakdown(&recording));
}

/// Every committed transaction that moves a checkpoint moves it once, and every read-model
/// write is inside such a transaction or in a take-over (which moves no checkpoint).
fn assert_one_checkpoint_per_batch_transaction(transactions: &[Transaction]) -> usize {
    let mut batches = 0;
    for tx in transactions {
        let checkpoints = tx.statements.iter().filter(|s| s.contains(CHECKPOINT_WRITE)).count();
        let read_model_writes = tx.statements.iter().filter(|s| writes_read_model(s)).count();
        if is_take_over(tx) {
            assert_eq!(checkpoints, 0, "a take-over moves no checkpoint: {:?}", tx.statements);
        } else if read_model_writes > 0 {
            assert_eq!(
                checkpoints, 1,
                "a batch transaction with {read_model_writes} read-model writes"
            );
        }
        if checkpoints > 0 && tx.committed {
            assert_eq!(
                checkpoints, 1,
                "one checkpoint write per batch transaction: {:?}",
                tx.statements
            );
            batches += 1;
        }
    }
    batches
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_writes_one_checkpoint_per_batch_for_every_projection() {
    let Some(tapped) = tapped().await else { return };
    let mut seeded = false;
    for projection in projections::all() {
        let name = projection.name();
        // The feed is filled once (250 drafts), then every projection is rebuilt over it.
        let counts = run_rebuild(&tapped, name, if seeded { 0 } else { 250 }, 100)
            .await
            .unwrap();
        seeded = true;
        assert!(counts.events >= 250, "{name}: {} events", counts.events);
        assert_eq!(
            counts.checkpoint_writes(),
            counts.batches(),
            "{name}: {} events in batches of {}",
            counts.events,
            counts.batch_size
        );
        let transactions = counts.recording.transactions();
        let batches = assert_one_checkpoint_per_batch_transaction(&transactions);
        assert_eq!(batches, counts.batches(), "{name}: batch transactions");
        // What a rebuilt generation keeps only while served is written once, on taking over:
        // `dashboards` sums `artist_daily` (a DELETE and an INSERT); the others write nothing.
        let take_over_writes: usize = transactions
            .iter()
            .filter(|tx| tx.committed && is_take_over(tx))
            .map(|tx| tx.statements.iter().filter(|s| writes_read_model(s)).count())
            .sum();
        let expected = if name == "dashboards" { 2 } else { 0 };
        assert_eq!(take_over_writes, expected, "{name}: read-model writes in the take-over");
    }
}

/// Whether `tx` makes a generation the served one.
fn is_take_over(tx: &Transaction) -> bool {
    tx.statements.iter().any(|s| s.contains(TAKE_OVER))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_workers_write_one_checkpoint_per_batch() {
    let Some(tapped) = tapped().await else { return };
    let recording = run_live(&tapped, 40, 1000).await.unwrap();
    let transactions = recording.transactions();
    let batches = assert_one_checkpoint_per_batch_transaction(&transactions);
    // Every projection moved its checkpoint at least once: the four that read a draft in batch
    // transactions, the others (when waited for) in one statement each.
    assert!(batches >= projections::all().len(), "{batches} batches");
    assert_eq!(recording.executions_of(CHECKPOINT_WRITE), batches);
    // And no read-model write happened outside a batch transaction.
    let outside: usize = transactions
        .iter()
        .filter(|tx| !tx.statements.iter().any(|s| s.contains(CHECKPOINT_WRITE)))
        .flat_map(|tx| &tx.statements)
        .filter(|s| writes_read_model(s))
        .count();
    assert_eq!(outside, 0);
}

/// Every worker reads the same feed: the ten woken by one commit share a read (the engine's
/// `read_feed_shared`). Before, each made its own (ten reads, then ten more finding the feed
/// empty); one read serves all of them, and a second at most, if a worker's read of the empty
/// feed after the first commit happened to follow the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_workers_woken_by_one_commit_read_the_feed_once_between_them() {
    let Some(tapped) = tapped().await else { return };
    let recording = run_one_wake(&tapped).await.unwrap();
    let batches = recording.executions_of(CHECKPOINT_WRITE);
    assert_eq!(
        batches,
        projections::all().len(),
        "each projection applied the draft in one batch"
    );
    let reads = recording.executions_of(FEED_READ);
    assert!(
        (1..=2).contains(&reads),
        "{reads} feed reads for {batches} batches\n{}",
        breakdown(&recording)
    );
}

/// A campaign draft is read by four projections; the other six open no transaction for it
/// (the engine holds their checkpoints' moves back): the draft's batches are four transactions
/// with one checkpoint write each. A waiter on one of the six then has its move stored, in one
/// statement outside any transaction. Before, all ten ran a batch transaction per wake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_workers_open_no_transaction_for_a_batch_they_read_nothing_of() {
    let Some(tapped) = tapped().await else { return };
    let draft = run_draft_read_by_some(&tapped).await.unwrap();
    let mut readers = draft.readers.clone();
    readers.sort();
    assert_eq!(readers, ["billing", "dashboards", "person_index", "stream_index"]);

    let transactions = draft.until_read.transactions();
    assert_eq!(
        assert_one_checkpoint_per_batch_transaction(&transactions),
        readers.len(),
        "{}",
        breakdown(&draft.until_read)
    );
    assert_eq!(draft.until_read.executions_of(CHECKPOINT_WRITE), readers.len());
    let opened = transactions
        .iter()
        .filter(|tx| tx.statements.first().is_some_and(|s| s.trim() == "BEGIN"))
        .count();
    assert_eq!(
        opened,
        readers.len(),
        "transactions opened until the readers applied the draft"
    );

    let others = projections::all().len() - readers.len();
    assert_eq!(draft.until_stored.executions_of(CHECKPOINT_WRITE), others);
    for tx in draft.until_stored.transactions() {
        assert!(
            tx.statements.iter().all(|s| !writes_read_model(s)),
            "no read-model write: {:?}",
            tx.statements
        );
        if tx.statements.iter().any(|s| s.contains(CHECKPOINT_WRITE)) {
            assert_eq!(
                tx.statements.len(),
                1,
                "the move alone, no transaction: {:?}",
                tx.statements
            );
        }
    }
}
