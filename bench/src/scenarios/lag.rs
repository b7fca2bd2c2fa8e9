//! `lag`: how long after its commit a command's event is visible in a read model, with every
//! projection running (`Engine::start`, as `dynamoi serve` runs them), under a paced load of
//! half the maximum command rate that `concurrent` measured (measured here briefly when
//! `concurrent` did not run). The baseline is the latency of raw single-row INSERTs paced at
//! the same rate; the target is p99 ≤ 2 × raw p99 + 10 ms.
//!
//! Commit → visible: each command's answer (its position) is taken at the instant `execute`
//! returns; one observer task waits (`Engine::wait_for`, woken by every batch the workers
//! commit) for the oldest outstanding position in `dashboards` (the campaign drafts' read
//! model), then reads the checkpoint once and settles every position at or below it. One
//! observer, not one waiter per command, so measuring adds one query per batch, not thousands.

use super::{concurrent, postgres, Config, Shared};
use crate::fixtures;
use crate::report::{quantile_us, Row, Target};
use domain::campaign::Campaign;
use eventlog::Position;
use projections::{Engine, EngineConfig};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Operations in flight at most (more wait for a permit, and their wait counts).
const IN_FLIGHT: usize = 8;

/// Starts operations at `rate` per second for `duration`; each gets its index.
async fn paced<F, Fut>(rate: f64, duration: Duration, op: F) -> anyhow::Result<usize>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let started = Instant::now();
    let mut launched = 0usize;
    let mut tasks = Vec::new();
    while started.elapsed() < duration {
        let due = (started.elapsed().as_secs_f64() * rate) as usize;
        while launched < due {
            let permit = permits.clone().acquire_owned().await?;
            let future = op(launched);
            tasks.push(tokio::spawn(async move {
                let result = future.await;
                drop(permit);
                result
            }));
            launched += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for task in tasks {
        task.await??;
    }
    Ok(launched)
}

/// Latencies of raw INSERTs paced at `rate`.
async fn raw_run(pool: &sqlx::PgPool, rate: f64, duration: Duration) -> anyhow::Result<Vec<Duration>> {
    let latencies = Arc::new(Mutex::new(Vec::new()));
    paced(rate, duration, |_| {
        let pool = pool.clone();
        let latencies = latencies.clone();
        async move {
            let row = fixtures::raw_draft_row("bench-artist");
            let started = Instant::now();
            fixtures::raw_insert_pg(&pool, &row).await?;
            latencies.lock().expect("never poisoned").push(started.elapsed());
            Ok(())
        }
    })
    .await?;
    let latencies = std::mem::take(&mut *latencies.lock().expect("never poisoned"));
    Ok(latencies)
}

/// Commit → visible lags of commands paced at `rate`, with the engine running.
async fn ours_run(
    log: &eventlog::EventLog,
    engine: &Engine,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<Vec<Duration>> {
    let pending: Arc<Mutex<BTreeMap<Position, Instant>>> = Arc::default();
    let lags: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let observer = {
        let (engine, pending, lags, done) = (engine.clone(), pending.clone(), lags.clone(), done.clone());
        tokio::spawn(async move {
            loop {
                let oldest = pending.lock().expect("never poisoned").keys().next().copied();
                let Some(oldest) = oldest else {
                    if done.load(std::sync::atomic::Ordering::SeqCst) {
                        return Ok::<_, anyhow::Error>(());
                    }
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    continue;
                };
                let Some(checkpoint) = engine
                    .wait_for_checkpoint("dashboards", oldest, Duration::from_secs(30))
                    .await?
                else {
                    anyhow::bail!("the dashboards projection did not reach {oldest} within 30 s");
                };
                let now = Instant::now();
                let mut pending = pending.lock().expect("never poisoned");
                let later = pending.split_off(&Position {
                    commit: checkpoint.commit,
                    global: checkpoint.global + 1,
                });
                let mut lags = lags.lock().expect("never poisoned");
                lags.extend(pending.values().map(|t| now - *t));
                *pending = later;
            }
        })
    };
    let metadata = fixtures::metadata();
    paced(rate, duration, |_| {
        let log = log.clone();
        let pending = pending.clone();
        let metadata = metadata.clone();
        async move {
            let id = fixtures::new_id();
            let outcome = log
                .execute::<Campaign>(&id, fixtures::draft_command("bench-artist"), &metadata)
                .await?;
            let committed = Instant::now();
            let position = outcome.position.expect("a draft appends an event");
            pending.lock().expect("never poisoned").insert(position, committed);
            Ok(())
        }
    })
    .await?;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    observer.await??;
    let lags = std::mem::take(&mut *lags.lock().expect("never poisoned"));
    Ok(lags)
}

/// Runs the scenario.
pub async fn run(config: &Config, shared: &mut Shared) -> anyhow::Result<Vec<Row>> {
    let db = postgres(16).await?;
    let log = db.log();
    sqlx::query(fixtures::RAW_EVENTS_POSTGRES).execute(db.pg()).await?;
    let rate = match (config.lag_rate, shared.max_command_rate) {
        (Some(rate), _) => {
            eprintln!("   pacing at {rate:.0} per second (--lag-rate)");
            rate
        }
        (None, max) => {
            let max = match max {
                Some(max) => max,
                None => {
                    eprintln!("   measuring the maximum command rate (8 in flight) first");
                    concurrent::commands(&log, concurrent::CLIENTS, if config.quick { 40 } else { 2400 }).await?
                }
            };
            eprintln!("   pacing at {:.0} per second (half of {max:.0})", max / 2.0);
            max / 2.0
        }
    };
    let raw_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(IN_FLIGHT as u32)
        .test_before_acquire(false)
        .connect(&db.url)
        .await?;
    let engine = Engine::new(log.clone(), projections::all(), EngineConfig::default());
    engine.prepare().await?;
    engine.catch_up().await?;
    engine.start();
    let duration = Duration::from_secs_f64(config.lag_seconds);
    // Warm-up.
    raw_run(&raw_pool, rate, duration / 4).await?;
    ours_run(&log, &engine, rate, duration / 4).await?;
    let mut p50 = Row::new(
        "lag",
        "commit → visible at half load (p50)",
        "ms",
        "raw INSERT",
        "projection lag",
        Target::Info,
    );
    let mut p99 = Row::new(
        "lag",
        "commit → visible at half load (p99)",
        "ms",
        "raw INSERT",
        "projection lag",
        Target::AtMostAffine {
            factor: 2.0,
            offset: 10.0,
        },
    );
    for i in 0..config.pairs {
        let (mut b, mut o) = crate::alternate!(
            i,
            raw_run(&raw_pool, rate, duration).await?,
            ours_run(&log, &engine, rate, duration).await?
        );
        p50.pair(quantile_us(&mut b, 0.5) / 1e3, quantile_us(&mut o, 0.5) / 1e3);
        p99.pair(quantile_us(&mut b, 0.99) / 1e3, quantile_us(&mut o, 0.99) / 1e3);
        p99.details.push(json!({
            "rate_per_second": rate,
            "baseline_ops": b.len(),
            "ours_commands": o.len(),
            "ours_max_ms": quantile_us(&mut o, 1.0) / 1e3,
        }));
    }
    engine.shutdown().await;
    raw_pool.close().await;
    Ok(vec![p50, p99])
}
