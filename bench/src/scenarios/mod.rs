//! The scenarios of issue 8, each in its own module and each over its own private database:
//!
//! | name | ours | baseline |
//! |---|---|---|
//! | `command` | `EventLog::execute` of a one-event command, one at a time | raw single-row INSERT, autocommit |
//! | `concurrent` | 8 commands in flight | raw INSERTs from 8 connections |
//! | `peer` | `EventLog::execute` of the same draft, 1 and 8 in flight | cqrs-es 0.5 `CqrsFramework` on postgres-es 0.5 (target: ours ≥ 2× the peer) |
//! | `ingest` | `app::ingest::ingest` of 10,000 readings; then the same batch again | COPY of the same rows into a plain table; the first send |
//! | `rebuild` | `Engine::rebuild("dashboards")` (and `stream_index`), read-model writes included | raw scan and decode of the events table |
//! | `lag` | commit → visible in the read model at half the measured maximum load | raw INSERT latency at the same rate |
//! | `http` | `GET /v1/artists/{id}/dashboard` of `dynamoi serve` | `GET /healthz` of the same server (it has no hello-world route), and warp's hello-world |
//! | `sqlite` | `EventLog::execute` on embedded SQLite | raw sqlx-sqlite INSERT with the same pragmas |
//! | `memory` | resident memory of `dynamoi serve` under the `http` load; under two concurrent 10,000-reading ingests over HTTP | — (≤ 100 MiB; ≤ 200 MiB) |
//! | `counters` | commits, round trips, checkpoint writes, counted on the wire | — (exact) |

pub mod command;
pub mod concurrent;
pub mod counters;
pub mod http;
pub mod ingest;
pub mod lag;
pub mod peer;
pub mod rebuild;
pub mod sqlite;

use crate::report::Row;
use std::path::PathBuf;

/// Every scenario, in the order they run.
pub const ALL: &[&str] = &[
    "counters",
    "command",
    "concurrent",
    "peer",
    "ingest",
    "rebuild",
    "lag",
    "sqlite",
    "http",
    "memory",
];

/// How the harness runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Pairs (baseline, ours) per figure.
    pub pairs: usize,
    /// Tiny sizes: for tests and debug builds, not for measuring.
    pub quick: bool,
    /// The `dynamoi` binary the HTTP and memory scenarios start.
    pub dynamoi: Option<PathBuf>,
    /// Pin the server and the load generator to different cores with `taskset`.
    pub pin: bool,
    /// Seconds of HTTP load per run.
    pub http_seconds: f64,
    /// Connections of the HTTP load generator.
    pub http_connections: usize,
    /// `DYNAMOI_LOG` of the started server.
    pub server_log: String,
    /// Seconds of paced load per lag run.
    pub lag_seconds: f64,
    /// Commands per second of the lag runs; `None`: half the maximum `concurrent` measured.
    pub lag_rate: Option<f64>,
    /// This binary, which the HTTP scenario starts again as `load` and `hello`.
    pub self_exe: PathBuf,
}

/// What scenarios hand to each other within one run.
#[derive(Debug, Default)]
pub struct Shared {
    /// Commands per second with 8 in flight (the median of `concurrent`): the maximum load of
    /// which `lag` takes half.
    pub max_command_rate: Option<f64>,
}

/// Picks a size: the full one, or the quick one.
pub fn size(config: &Config, full: usize, quick: usize) -> usize {
    if config.quick {
        quick
    } else {
        full
    }
}

/// Runs the named scenarios in [`ALL`]'s order. `http` and `memory` share one server run.
pub async fn run(config: &Config, names: &[String]) -> anyhow::Result<Vec<Row>> {
    let mut shared = Shared::default();
    let mut rows = Vec::new();
    let wants = |n: &str| names.iter().any(|x| x == n);
    for name in ALL {
        if !wants(name) {
            continue;
        }
        let started = std::time::Instant::now();
        eprintln!("== {name}");
        let mut produced = match *name {
            "counters" => counters::run(config).await?,
            "command" => command::run(config).await?,
            "concurrent" => concurrent::run(config, &mut shared).await?,
            "peer" => peer::run(config).await?,
            "ingest" => ingest::run(config).await?,
            "rebuild" => rebuild::run(config).await?,
            "lag" => lag::run(config, &mut shared).await?,
            "sqlite" => sqlite::run(config).await?,
            "http" => http::run(config).await?,
            "memory" if wants("http") => Vec::new(),
            "memory" => http::run(config).await?,
            _ => unreachable!("ALL names only these"),
        };
        if *name == "http" && !wants("memory") {
            produced.retain(|r| r.scenario != "memory");
        }
        if *name == "memory" {
            produced.retain(|r| r.scenario == "memory");
        }
        eprintln!("   done in {:.1} s", started.elapsed().as_secs_f64());
        rows.extend(produced);
    }
    Ok(rows)
}

/// A private PostgreSQL database, or an error saying why there is none (the harness never
/// skips: it is run by hand to measure).
pub async fn postgres(max_connections: u32) -> anyhow::Result<crate::databases::PrivateDb> {
    crate::databases::PrivateDb::postgres(max_connections)
        .await?
        .ok_or_else(|| anyhow::anyhow!("PostgreSQL is unreachable; the harness needs it"))
}
