//! `command`: the latency of one command with one event (a campaign draft, a new aggregate:
//! load, decide, append) against a raw single-row INSERT of the same event row, autocommit,
//! on one dedicated connection. One client, one operation at a time.

use super::{postgres, size, Config};
use crate::fixtures::{self, RawRow};
use crate::report::{quantile_us, Row, Target};
use domain::campaign::Campaign;
use serde_json::json;
use sqlx::Connection;
use std::time::{Duration, Instant};

/// Per-operation latencies of `ops` raw INSERTs.
pub async fn raw_inserts(connection: &mut sqlx::PgConnection, ops: usize) -> anyhow::Result<Vec<Duration>> {
    let rows: Vec<RawRow> = (0..ops).map(|_| fixtures::raw_draft_row("bench-artist")).collect();
    let mut latencies = Vec::with_capacity(ops);
    for row in &rows {
        let started = Instant::now();
        fixtures::raw_insert_pg(&mut *connection, row).await?;
        latencies.push(started.elapsed());
    }
    Ok(latencies)
}

/// Per-command latencies of `ops` campaign drafts.
pub async fn commands(log: &eventlog::EventLog, ops: usize) -> anyhow::Result<Vec<Duration>> {
    let ids: Vec<String> = (0..ops).map(|_| fixtures::new_id()).collect();
    let metadata = fixtures::metadata();
    let mut latencies = Vec::with_capacity(ops);
    for id in &ids {
        let command = fixtures::draft_command("bench-artist");
        let started = Instant::now();
        log.execute::<Campaign>(id, command, &metadata).await?;
        latencies.push(started.elapsed());
    }
    Ok(latencies)
}

/// Runs the scenario.
pub async fn run(config: &Config) -> anyhow::Result<Vec<Row>> {
    let ops = size(config, 400, 10);
    let db = postgres(10).await?;
    let log = db.log();
    sqlx::query(fixtures::RAW_EVENTS_POSTGRES).execute(db.pg()).await?;
    let mut raw = sqlx::PgConnection::connect(&db.url).await?;
    // Warm-up: connections opened, statements prepared, caches filled.
    raw_inserts(&mut raw, ops / 4 + 1).await?;
    commands(&log, ops / 4 + 1).await?;
    let mut p50 = Row::new(
        "command",
        "latency of one command, 1 event (p50)",
        "µs",
        "raw INSERT",
        "execute",
        Target::RatioAtMost { ratio: 1.25 },
    );
    let mut mean = Row::new(
        "command",
        "latency of one command, 1 event (mean)",
        "µs",
        "raw INSERT",
        "execute",
        Target::Info,
    );
    for i in 0..config.pairs {
        let (mut b, mut o) = crate::alternate!(i, raw_inserts(&mut raw, ops).await?, commands(&log, ops).await?);
        let mean_of = |l: &[Duration]| l.iter().map(Duration::as_secs_f64).sum::<f64>() / l.len() as f64 * 1e6;
        mean.pair(mean_of(&b), mean_of(&o));
        let (b50, o50) = (quantile_us(&mut b, 0.5), quantile_us(&mut o, 0.5));
        p50.pair(b50, o50);
        p50.details.push(json!({
            "ops": ops,
            "baseline_p99_us": quantile_us(&mut b, 0.99),
            "ours_p99_us": quantile_us(&mut o, 0.99),
        }));
    }
    raw.close().await?;
    Ok(vec![p50, mean])
}
