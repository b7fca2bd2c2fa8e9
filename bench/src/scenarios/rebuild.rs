//! `rebuild`: a projection rebuilt from the whole feed into a new generation, read-model writes
//! and the take-over included (`Engine::rebuild`), against a raw scan of the events table that
//! decodes every row (payload and metadata JSON into `serde_json::Value`, the other columns
//! into their types), in feed order. The feed: 80 campaigns and 30,000 spend events (10,000
//! recorded, the same 10,000 restated, 10,000 more recorded).
//!
//! `dashboards` is the projection with the target (it writes per event); `stream_index` is
//! reported beside it for orientation (it folds a batch in memory and writes one upsert).

use super::{postgres, size, Config};
use crate::fixtures;
use crate::report::{Row, Target};
use futures::TryStreamExt;
use projections::{Engine, EngineConfig};
use serde_json::json;
use sqlx::types::Json;
use sqlx::Row as _;
use std::time::Instant;

/// Rows per second of a scan and decode of the whole events table; also the rows seen.
pub async fn raw_scan(pool: &sqlx::PgPool) -> anyhow::Result<(f64, u64)> {
    let started = Instant::now();
    let mut rows = sqlx::query(
        "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, \
         event_id, recorded_at, chain_hash, transaction_id::text::bigint AS commit_id, global_position \
         FROM events ORDER BY transaction_id, global_position",
    )
    .fetch(pool);
    let mut count = 0u64;
    let mut checksum = 0i64;
    while let Some(row) = rows.try_next().await? {
        let aggregate_type: String = row.try_get(0)?;
        let aggregate_id: String = row.try_get(1)?;
        let sequence: i64 = row.try_get(2)?;
        let event_type: String = row.try_get(3)?;
        let _version: String = row.try_get(4)?;
        let Json(payload): Json<serde_json::Value> = row.try_get(5)?;
        let Json(metadata): Json<serde_json::Value> = row.try_get(6)?;
        let _id: uuid::Uuid = row.try_get(7)?;
        let _at: chrono::DateTime<chrono::Utc> = row.try_get(8)?;
        let _hash: Option<String> = row.try_get(9)?;
        let commit: i64 = row.try_get(10)?;
        let global: i64 = row.try_get(11)?;
        // Use what was decoded, so none of it is optimised away.
        checksum = checksum
            .wrapping_add(sequence + commit + global)
            .wrapping_add((aggregate_type.len() + aggregate_id.len() + event_type.len()) as i64)
            .wrapping_add(payload.as_object().map(|o| o.len()).unwrap_or(0) as i64)
            .wrapping_add(metadata.as_object().map(|o| o.len()).unwrap_or(0) as i64);
        count += 1;
    }
    std::hint::black_box(checksum);
    Ok((count as f64 / started.elapsed().as_secs_f64(), count))
}

/// Events per second of a rebuild of `name`; also the events applied.
pub async fn rebuild(engine: &Engine, name: &str) -> anyhow::Result<(f64, u64)> {
    let report = engine
        .rebuild(name, |_| {})
        .await
        .map_err(|e| anyhow::anyhow!("rebuild of {name} failed: {e}"))?;
    Ok((report.events as f64 / report.elapsed.as_secs_f64(), report.events))
}

/// Fills the feed: `campaigns` × `days` recorded, the same restated, as many more recorded.
pub async fn seed(log: &eventlog::EventLog, campaigns: usize, days: i64) -> anyhow::Result<()> {
    let first = fixtures::create_campaigns(log, "bench-artist", campaigns, days).await?;
    let second = fixtures::create_campaigns(log, "bench-artist", campaigns, days).await?;
    for (ids, bump) in [(&first, 0), (&first, 7), (&second, 0)] {
        app::ingest::ingest(log, &fixtures::readings(ids, days, bump), &fixtures::metadata())
            .await
            .map_err(|e| anyhow::anyhow!("seeding failed: {e}"))?;
    }
    Ok(())
}

/// Runs the scenario.
pub async fn run(config: &Config) -> anyhow::Result<Vec<Row>> {
    let (campaigns, days) = if config.quick { (2, 25) } else { (40, 250) };
    let db = postgres(10).await?;
    let log = db.log();
    seed(&log, campaigns, days).await?;
    let engine = Engine::new(log.clone(), projections::all(), EngineConfig::default());
    engine.prepare().await?;
    // Warm-up: the first rebuild also creates what a later one replaces.
    raw_scan(db.pg()).await?;
    let mut rows = Vec::new();
    for (name, target) in [
        ("dashboards", Target::RatioAtLeast { ratio: 0.5 }),
        ("stream_index", Target::Info),
    ] {
        rebuild(&engine, name).await?;
        let mut row = Row::new(
            "rebuild",
            &format!("rebuild of `{name}` from the feed"),
            "events/s",
            "raw scan+decode",
            "Engine::rebuild",
            target,
        );
        let pairs = if name == "dashboards" {
            config.pairs
        } else {
            size(config, 3, 1).min(config.pairs)
        };
        for i in 0..pairs {
            let ((b, scanned), (o, applied)) =
                crate::alternate!(i, raw_scan(db.pg()).await?, rebuild(&engine, name).await?);
            row.pair(b, o);
            row.details
                .push(json!({ "events_scanned": scanned, "events_applied": applied }));
        }
        rows.push(row);
    }
    Ok(rows)
}
