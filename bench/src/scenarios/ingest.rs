//! `ingest`: bulk spend ingestion of 10,000 readings (40 campaigns × 250 days, drafted through
//! `EventLog::execute`) with `app::ingest::ingest`, against a raw COPY of the same readings into
//! a plain table (typed columns, no index), the COPY text built inside the timing. For
//! orientation, the same first send against the floor of its own writes: the 10,000 events it
//! stored, COPYed into a table shaped like `events` (its columns, defaults, identity, indexes
//! and feed-writer trigger). Then the same batch again, against the first send: it must write
//! nothing and take at most 0.3× the time. Every pair uses fresh campaigns, so every first send
//! records 10,000 readings.

use super::{postgres, size, Config};
use crate::fixtures;
use crate::report::{Row, Target};
use app::ingest::{IngestReading, Outcome};
use futures::TryStreamExt;
use serde_json::json;
use sqlx::Connection;
use std::fmt::Write as _;
use std::time::Instant;

const RAW_SPEND: &str = "CREATE TABLE bench_raw_spend (campaign_id text NOT NULL, platform text NOT NULL, \
     day date NOT NULL, spend_micros bigint NOT NULL, currency text NOT NULL, impressions bigint NOT NULL, \
     reach bigint NOT NULL, clicks bigint NOT NULL, views bigint NOT NULL, saves bigint NOT NULL, \
     reactions bigint NOT NULL, comments bigint NOT NULL, shares bigint NOT NULL, follows bigint NOT NULL, \
     conversions bigint NOT NULL, fetched_at timestamptz NOT NULL, source text NOT NULL)";

/// Rows per second of a COPY of `readings` (text format, built here).
pub async fn raw_copy(
    connection: &mut sqlx::PgConnection,
    readings: &[Result<IngestReading, String>],
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut text = String::with_capacity(readings.len() * 160);
    for r in readings.iter().flatten() {
        let _ = writeln!(
            text,
            "{}\tmeta\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            r.campaign_id,
            r.date,
            r.spend_micros,
            r.currency,
            r.impressions,
            r.reach,
            r.clicks,
            r.views,
            r.saves,
            r.reactions,
            r.comments,
            r.shares,
            r.follows,
            r.conversions,
            r.fetched_at.to_rfc3339(),
            r.source
        );
    }
    let mut copy = connection.copy_in_raw("COPY bench_raw_spend FROM STDIN").await?;
    copy.send(text.into_bytes()).await?;
    let rows = copy.finish().await?;
    anyhow::ensure!(rows as usize == readings.len(), "COPY wrote {rows} rows");
    Ok(readings.len() as f64 / started.elapsed().as_secs_f64())
}

/// A table shaped like `events` (columns, defaults, identity, indexes, and the trigger every
/// writer of events runs), for the floor of the ingestion's own writes.
const FLOOR_EVENTS: &[&str] = &[
    "CREATE TABLE bench_events_floor (LIKE events INCLUDING ALL)",
    "CREATE TRIGGER bench_events_floor_writer BEFORE INSERT ON bench_events_floor \
     FOR EACH STATEMENT EXECUTE FUNCTION dynamoi_feed_writer()",
];

/// Rows per second of a COPY into `bench_events_floor` of the events the commit `commit` stored
/// (each with a new event id): the text is read out before the timing, as the server gives it.
async fn events_floor_copy(connection: &mut sqlx::PgConnection, commit: i64) -> anyhow::Result<f64> {
    let out = format!(
        "COPY (SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, \
         gen_random_uuid(), recorded_at, chain_hash FROM events WHERE transaction_id = '{commit}'::text::xid8 \
         ORDER BY global_position) TO STDOUT"
    );
    let text: Vec<u8> = connection
        .copy_out_raw(&out)
        .await?
        .try_fold(Vec::new(), |mut text, piece| async move {
            text.extend_from_slice(&piece);
            Ok(text)
        })
        .await?;
    let started = Instant::now();
    let mut copy = connection
        .copy_in_raw(
            "COPY bench_events_floor (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, \
             metadata, event_id, recorded_at, chain_hash) FROM STDIN",
        )
        .await?;
    copy.send(text).await?;
    let rows = copy.finish().await?;
    Ok(rows as f64 / started.elapsed().as_secs_f64())
}

async fn event_count(db: &crate::databases::PrivateDb) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(db.pg())
        .await?)
}

/// One send of ours: seconds, how many readings were recorded and unchanged, and the commit
/// that stored its events (none when it stored nothing).
async fn send(
    log: &eventlog::EventLog,
    readings: &[Result<IngestReading, String>],
) -> anyhow::Result<(f64, usize, usize, Option<i64>)> {
    let started = Instant::now();
    let result = app::ingest::ingest(log, readings, &fixtures::metadata())
        .await
        .map_err(|e| anyhow::anyhow!("ingestion failed: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let recorded = result.outcomes.iter().filter(|o| **o == Outcome::Recorded).count();
    let unchanged = result.outcomes.iter().filter(|o| **o == Outcome::Unchanged).count();
    Ok((seconds, recorded, unchanged, result.position.map(|p| p.commit)))
}

/// Runs the scenario.
pub async fn run(config: &Config) -> anyhow::Result<Vec<Row>> {
    let (campaigns, days) = if config.quick { (4, 25) } else { (40, 250) };
    let count = size(config, 10_000, 100);
    let db = postgres(10).await?;
    let log = db.log();
    sqlx::query(RAW_SPEND).execute(db.pg()).await?;
    for statement in FLOOR_EVENTS {
        sqlx::query(statement).execute(db.pg()).await?;
    }
    let mut raw = sqlx::PgConnection::connect(&db.url).await?;
    let mut first = Row::new(
        "ingest",
        "bulk spend ingestion, 10,000 readings",
        "readings/s",
        "COPY",
        "ingest",
        Target::RatioAtLeast { ratio: 0.6 },
    );
    let mut floor = Row::new(
        "ingest",
        "bulk spend ingestion vs the floor of its own writes (its 10,000 events COPYed into a table shaped like events)",
        "readings/s",
        "COPY of the events",
        "ingest",
        Target::Info,
    );
    let mut again = Row::new(
        "ingest",
        "re-sending the same batch (time)",
        "ms",
        "first send",
        "re-send",
        Target::RatioAtMost { ratio: 0.3 },
    );
    let mut wrote_nothing = true;
    // A warm-up pair, unrecorded, then the pairs.
    for i in 0..=config.pairs {
        let ids = fixtures::create_campaigns(&log, "bench-artist", campaigns, days).await?;
        let readings = fixtures::readings(&ids, days, 0);
        anyhow::ensure!(readings.len() == count, "{} readings", readings.len());
        let (copy_rate, (first_seconds, recorded, _, commit)) =
            crate::alternate!(i, raw_copy(&mut raw, &readings).await?, send(&log, &readings).await?);
        anyhow::ensure!(recorded == count, "the first send recorded {recorded} of {count}");
        let commit = commit.ok_or_else(|| anyhow::anyhow!("the first send stored no event"))?;
        let floor_rate = events_floor_copy(&mut raw, commit).await?;
        let before = event_count(&db).await?;
        let (again_seconds, _, unchanged, _) = send(&log, &readings).await?;
        let after = event_count(&db).await?;
        anyhow::ensure!(unchanged == count, "the re-send left {unchanged} of {count} unchanged");
        if i == 0 {
            continue;
        }
        wrote_nothing &= before == after;
        first.pair(copy_rate, count as f64 / first_seconds);
        first
            .details
            .push(json!({ "readings": count, "ours_seconds": first_seconds }));
        floor.pair(floor_rate, count as f64 / first_seconds);
        again.pair(first_seconds * 1e3, again_seconds * 1e3);
        again
            .details
            .push(json!({ "events_before": before, "events_after": after }));
    }
    again.conditions.push(("writes nothing".into(), wrote_nothing));
    raw.close().await?;
    Ok(vec![first, floor, again])
}
