//! `ingest`: bulk spend ingestion of 10,000 readings (40 campaigns × 250 days, drafted through
//! `EventLog::execute`) with `app::ingest::ingest`, against a raw COPY of the same readings into
//! a plain table (typed columns, no index), the COPY text built inside the timing. Then the
//! same batch again, against the first send: it must write nothing and take at most 0.3× the
//! time. Every pair uses fresh campaigns, so every first send records 10,000 readings.

use super::{postgres, size, Config};
use crate::fixtures;
use crate::report::{Row, Target};
use app::ingest::{IngestReading, Outcome};
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

async fn event_count(db: &crate::databases::PrivateDb) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(db.pg())
        .await?)
}

/// One send of ours: seconds, and how many readings were recorded and unchanged.
async fn send(
    log: &eventlog::EventLog,
    readings: &[Result<IngestReading, String>],
) -> anyhow::Result<(f64, usize, usize)> {
    let started = Instant::now();
    let result = app::ingest::ingest(log, readings, &fixtures::metadata())
        .await
        .map_err(|e| anyhow::anyhow!("ingestion failed: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let recorded = result.outcomes.iter().filter(|o| **o == Outcome::Recorded).count();
    let unchanged = result.outcomes.iter().filter(|o| **o == Outcome::Unchanged).count();
    Ok((seconds, recorded, unchanged))
}

/// Runs the scenario.
pub async fn run(config: &Config) -> anyhow::Result<Vec<Row>> {
    let (campaigns, days) = if config.quick { (4, 25) } else { (40, 250) };
    let count = size(config, 10_000, 100);
    let db = postgres(10).await?;
    let log = db.log();
    sqlx::query(RAW_SPEND).execute(db.pg()).await?;
    let mut raw = sqlx::PgConnection::connect(&db.url).await?;
    let mut first = Row::new(
        "ingest",
        "bulk spend ingestion, 10,000 readings",
        "readings/s",
        "COPY",
        "ingest",
        Target::RatioAtLeast { ratio: 0.6 },
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
        let (copy_rate, (first_seconds, recorded, _)) =
            crate::alternate!(i, raw_copy(&mut raw, &readings).await?, send(&log, &readings).await?);
        anyhow::ensure!(recorded == count, "the first send recorded {recorded} of {count}");
        let before = event_count(&db).await?;
        let (again_seconds, _, unchanged) = send(&log, &readings).await?;
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
        again.pair(first_seconds * 1e3, again_seconds * 1e3);
        again
            .details
            .push(json!({ "events_before": before, "events_after": after }));
    }
    again.conditions.push(("writes nothing".into(), wrote_nothing));
    raw.close().await?;
    Ok(vec![first, again])
}
