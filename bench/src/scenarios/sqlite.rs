//! `sqlite`: commands on the embedded SQLite database (`Db::connect`'s settings: WAL,
//! `synchronous=FULL`, 30 s busy timeout, foreign keys) against raw sqlx-sqlite single-row
//! INSERTs of the same event row into a plain table of the same file, on a dedicated
//! connection opened with the same settings. One client, one operation at a time.

use super::{size, Config};
use crate::databases::PrivateDb;
use crate::fixtures::{self, RawRow};
use crate::report::{Row, Target};
use domain::campaign::Campaign;
use eventlog::Db;
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};
use std::time::{Duration, Instant};

/// The connection options `eventlog::Db::connect` uses for a SQLite file.
pub fn same_settings(path: &str) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true)
}

async fn raw_inserts(connection: &mut sqlx::SqliteConnection, ops: usize) -> anyhow::Result<f64> {
    let rows: Vec<RawRow> = (0..ops).map(|_| fixtures::raw_draft_row("bench-artist")).collect();
    let started = Instant::now();
    for row in &rows {
        fixtures::raw_insert_sqlite(&mut *connection, row).await?;
    }
    Ok(ops as f64 / started.elapsed().as_secs_f64())
}

async fn commands(log: &eventlog::EventLog, ops: usize) -> anyhow::Result<f64> {
    let ids: Vec<String> = (0..ops).map(|_| fixtures::new_id()).collect();
    let metadata = fixtures::metadata();
    let started = Instant::now();
    for id in &ids {
        log.execute::<Campaign>(id, fixtures::draft_command("bench-artist"), &metadata)
            .await?;
    }
    Ok(ops as f64 / started.elapsed().as_secs_f64())
}

/// Runs the scenario.
pub async fn run(config: &Config) -> anyhow::Result<Vec<Row>> {
    let ops = size(config, 300, 10);
    let db = PrivateDb::sqlite(10).await?;
    let Db::Sqlite(pool) = &db.db else {
        unreachable!("a SQLite database")
    };
    sqlx::query(fixtures::RAW_EVENTS_SQLITE).execute(pool).await?;
    let path = db.url.trim_start_matches("sqlite:").to_string();
    let mut raw = same_settings(&path).connect().await?;
    let log = db.log();
    raw_inserts(&mut raw, ops / 4 + 1).await?;
    commands(&log, ops / 4 + 1).await?;
    let mut row = Row::new(
        "sqlite",
        "commands on SQLite, synchronous=FULL (throughput)",
        "ops/s",
        "raw sqlx-sqlite INSERT",
        "execute",
        Target::RatioAtLeast { ratio: 0.6 },
    );
    for i in 0..config.pairs {
        let (b, o) = crate::alternate!(i, raw_inserts(&mut raw, ops).await?, commands(&log, ops).await?);
        row.pair(b, o);
        row.details.push(json!({ "ops": ops }));
    }
    raw.close().await?;
    Ok(vec![row])
}
