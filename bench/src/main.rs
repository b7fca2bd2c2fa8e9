//! `bench`: runs the scenarios of dynamoi's benchmark harness, prints the table and writes
//! `bench/results/latest.json`. `bench load` and `bench hello` are what the HTTP scenario
//! starts this binary again as (the load generator and the warp hello-world server).
//!
//! Measure in release: `cargo build --release -p api && cargo run --release -p bench`.

use anyhow::Context;
use bench::report::{table, Computed};
use bench::scenarios::{self, Config};
use clap::{Parser, Subcommand};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "bench",
    about = "dynamoi's benchmark harness: ours against raw baselines, interleaved, as ratios",
    after_help = "Scenarios (all when none is named): counters, command, concurrent, peer, ingest, rebuild, lag, \
                  sqlite, http, memory.\nhttp and memory start `dynamoi serve`: run `cargo build --release -p api` first.\n\
                  PostgreSQL: DYNAMOI_BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres)."
)]
struct Cli {
    /// Scenarios to run, in any order (they run in the documented order).
    scenarios: Vec<String>,
    /// Pairs (baseline, ours) per figure.
    #[arg(long, default_value_t = 7)]
    pairs: usize,
    /// Tiny sizes, to check that everything runs (debug builds, tests); not a measurement.
    #[arg(long)]
    quick: bool,
    /// Where to write the JSON.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results/latest.json"))]
    out: PathBuf,
    /// The `dynamoi` binary (default: beside this one).
    #[arg(long)]
    dynamoi: Option<PathBuf>,
    /// Do not pin the server and the load generator to cores 0 and 1.
    #[arg(long)]
    no_pin: bool,
    /// Seconds of HTTP load per run.
    #[arg(long, default_value_t = 3.0)]
    http_seconds: f64,
    /// Connections of the HTTP load generator.
    #[arg(long, default_value_t = 16)]
    http_connections: usize,
    /// `DYNAMOI_LOG` of the started server (the service's default is `info`).
    #[arg(long, default_value = "info")]
    server_log: String,
    /// Seconds of paced load per lag run.
    #[arg(long, default_value_t = 3.0)]
    lag_seconds: f64,
    /// Commands per second of the lag runs (half the measured maximum when not given): fixed,
    /// for before → after runs, since the measured maximum moves from run to run.
    #[arg(long)]
    lag_rate: Option<f64>,
    /// Aggregates kept by the logs the scenarios make (`DYNAMOI_AGGREGATE_CACHE` of the
    /// service; 0: every command loads its stream first, as before the cache).
    #[arg(long, default_value_t = eventlog::aggregate_cache::DEFAULT_CAPACITY)]
    aggregate_cache: usize,
    #[command(subcommand)]
    internal: Option<Internal>,
}

#[derive(Subcommand)]
enum Internal {
    /// HTTP load from this process; prints the result as JSON.
    #[command(hide = true)]
    Load {
        #[arg(long)]
        address: std::net::SocketAddr,
        #[arg(long)]
        path: String,
        #[arg(long)]
        header: Vec<String>,
        #[arg(long, default_value_t = 16)]
        connections: usize,
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
    /// A warp hello-world server on `--listen`, until killed.
    #[command(hide = true)]
    Hello {
        #[arg(long)]
        listen: std::net::SocketAddr,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.internal {
        Some(Internal::Load {
            address,
            path,
            header,
            connections,
            seconds,
        }) => {
            // One thread: the load generator keeps to the core it is pinned to.
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let result = runtime.block_on(bench::http::run_load(&bench::http::LoadConfig {
                address,
                path,
                headers: header,
                connections,
                duration: Duration::from_secs_f64(seconds),
            }));
            let mut out = std::io::stdout().lock();
            serde_json::to_writer(&mut out, &result)?;
            writeln!(out)?;
            Ok(())
        }
        Some(Internal::Hello { listen }) => bench::http::serve_hello(listen),
        None => run(cli),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let names: Vec<String> = if cli.scenarios.is_empty() {
        scenarios::ALL.iter().map(|s| s.to_string()).collect()
    } else {
        cli.scenarios.clone()
    };
    if let Some(unknown) = names.iter().find(|n| !scenarios::ALL.contains(&n.as_str())) {
        anyhow::bail!(
            "there is no scenario `{unknown}`; the scenarios are: {}",
            scenarios::ALL.join(", ")
        );
    }
    anyhow::ensure!(cli.pairs >= 1, "--pairs must be at least 1");
    if cfg!(debug_assertions) && !cli.quick {
        eprintln!("warning: a debug build measures the compiler's debug code; use --release for figures");
    }
    let self_exe = std::env::current_exe().context("where is this binary")?;
    if names.iter().any(|n| n == "http" || n == "memory")
        && scenarios::http::locate_dynamoi(cli.dynamoi.clone(), &self_exe).is_none()
    {
        anyhow::bail!(
            "the http and memory scenarios start `dynamoi serve`, which is not beside {}: \
             run `cargo build --release -p api` first (or pass --dynamoi PATH)",
            self_exe.display()
        );
    }
    bench::databases::set_aggregate_cache(cli.aggregate_cache);
    let config = Config {
        pairs: cli.pairs,
        quick: cli.quick,
        dynamoi: cli.dynamoi.clone(),
        pin: !cli.no_pin,
        http_seconds: if cli.quick {
            cli.http_seconds.min(0.5)
        } else {
            cli.http_seconds
        },
        http_connections: cli.http_connections,
        server_log: cli.server_log.clone(),
        lag_seconds: if cli.quick {
            cli.lag_seconds.min(0.5)
        } else {
            cli.lag_seconds
        },
        lag_rate: cli.lag_rate,
        self_exe,
    };
    let started = std::time::Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let rows = runtime.block_on(scenarios::run(&config, &names))?;
    let elapsed = started.elapsed();
    let computed: Vec<Computed> = rows.iter().map(|r| r.compute()).collect();
    let text = table(&computed);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    writeln!(
        out,
        "{} pairs per figure, {:.0} s in all{}",
        cli.pairs,
        elapsed.as_secs_f64(),
        if cli.quick { " (quick: not a measurement)" } else { "" }
    )?;
    let command: Vec<String> = std::env::args().collect();
    let document = json!({
        "command": command.join(" "),
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "quick": cli.quick,
        "pairs": cli.pairs,
        "elapsed_seconds": elapsed.as_secs_f64(),
        "finished_at": clock::Clock::now(&clock::SystemClock).to_rfc3339(),
        "machine": machine(),
        "rows": computed,
        "table_markdown": text,
    });
    if let Some(parent) = cli.out.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    }
    std::fs::write(&cli.out, serde_json::to_string_pretty(&document)?)
        .with_context(|| format!("write {}", cli.out.display()))?;
    writeln!(out, "written to {}", cli.out.display())?;
    Ok(())
}

/// What the machine is: cores, memory, kernel (what `nproc`, `free` and `uname -a` say).
fn machine() -> serde_json::Value {
    let shell = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    json!({
        "nproc": shell("nproc", &[]),
        "free_g": shell("free", &["-g"]),
        "uname": shell("uname", &["-a"]),
        "postgres": shell("psql", &["--version"]),
    })
}
