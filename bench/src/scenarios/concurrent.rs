//! `concurrent`: throughput with 8 commands in flight (8 tasks sharing the event log's pool of
//! 10, as the service has) against raw single-row INSERTs from 8 dedicated connections.

use super::{postgres, size, Config, Shared};
use crate::fixtures::{self, RawRow};
use crate::report::{Row, Spread, Target};
use domain::campaign::Campaign;
use futures::future::try_join_all;
use serde_json::json;
use sqlx::Connection;
use std::time::Instant;

/// Clients in flight.
pub const CLIENTS: usize = 8;

/// Rows per second of `ops` raw INSERTs spread over the connections.
pub async fn raw_inserts(connections: &mut [sqlx::PgConnection], ops: usize) -> anyhow::Result<f64> {
    let per_client = ops / connections.len();
    let batches: Vec<Vec<RawRow>> = (0..connections.len())
        .map(|_| {
            (0..per_client)
                .map(|_| fixtures::raw_draft_row("bench-artist"))
                .collect()
        })
        .collect();
    let started = Instant::now();
    try_join_all(
        connections
            .iter_mut()
            .zip(&batches)
            .map(|(connection, rows)| async move {
                for row in rows {
                    fixtures::raw_insert_pg(&mut *connection, row).await?;
                }
                Ok::<_, sqlx::Error>(())
            }),
    )
    .await?;
    Ok((per_client * connections.len()) as f64 / started.elapsed().as_secs_f64())
}

/// Commands per second of `ops` campaign drafts from `clients` concurrent tasks.
pub async fn commands(log: &eventlog::EventLog, clients: usize, ops: usize) -> anyhow::Result<f64> {
    let per_client = ops / clients;
    let ids: Vec<Vec<String>> = (0..clients)
        .map(|_| (0..per_client).map(|_| fixtures::new_id()).collect())
        .collect();
    let metadata = fixtures::metadata();
    let started = Instant::now();
    try_join_all(ids.iter().map(|ids| {
        let log = log.clone();
        let metadata = metadata.clone();
        let ids = ids.clone();
        tokio::spawn(async move {
            for id in &ids {
                log.execute::<Campaign>(id, fixtures::draft_command("bench-artist"), &metadata)
                    .await?;
            }
            Ok::<_, anyhow::Error>(())
        })
    }))
    .await?
    .into_iter()
    .collect::<anyhow::Result<Vec<()>>>()?;
    Ok((per_client * clients) as f64 / started.elapsed().as_secs_f64())
}

/// Runs the scenario; records the median commands per second as the maximum load.
pub async fn run(config: &Config, shared: &mut Shared) -> anyhow::Result<Vec<Row>> {
    let ops = size(config, 2400, 40);
    let db = postgres(10).await?;
    let log = db.log();
    sqlx::query(fixtures::RAW_EVENTS_POSTGRES).execute(db.pg()).await?;
    let mut connections = Vec::new();
    for _ in 0..CLIENTS {
        connections.push(sqlx::PgConnection::connect(&db.url).await?);
    }
    raw_inserts(&mut connections, ops / 4).await?;
    commands(&log, CLIENTS, ops / 4).await?;
    let mut row = Row::new(
        "concurrent",
        "8 in flight (throughput)",
        "ops/s",
        "raw INSERT ×8",
        "execute ×8",
        Target::RatioAtLeast { ratio: 0.8 },
    );
    for i in 0..config.pairs {
        let (b, o) = crate::alternate!(
            i,
            raw_inserts(&mut connections, ops).await?,
            commands(&log, CLIENTS, ops).await?
        );
        row.pair(b, o);
        row.details.push(json!({ "ops": ops }));
    }
    shared.max_command_rate = Spread::of(&row.ours).map(|s| s.median);
    for connection in connections {
        connection.close().await?;
    }
    Ok(vec![row])
}
