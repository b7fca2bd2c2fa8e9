//! `http` and `memory`: `dynamoi serve` (the release binary, a process of its own, pinned to
//! core 0) over a private PostgreSQL database holding an artist with 10 campaigns × 180 days of
//! spend, loaded from a second process (`bench load`, pinned to core 1) on loopback.
//!
//! Ours: the artist's dashboard by week (`GET /v1/artists/{id}/dashboard?granularity=week`:
//! token check, access check, one aggregate query). Baselines: `GET /healthz` of the same server
//! (the API has no hello-world route; `/healthz` is its cheapest, through the same filters), and
//! a warp hello-world server (`bench hello`, pinned to core 0 like the service), which is
//! `PERFORMANCE.md`'s reference. Runs rotate through the three. The server's resident memory
//! (`VmRSS`) is sampled every 50 ms throughout: the `memory` figure is its peak per pair.

use super::{postgres, Config};
use crate::databases::TempDir;
use crate::fixtures;
use crate::http::{get_status, resident_mib, LoadResult};
use crate::report::{Row, Target};
use api::auth::{Authenticator, Role};
use secrecy::SecretString;
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

const OWNER: &str = "bench-owner";
const JWT_SECRET: &str = "bench-secret-bench-secret-bench-secret-01";

/// Where `dynamoi` is: the given path, or beside this binary (`target/release/dynamoi` when
/// the harness runs from `target/release/bench`).
pub fn locate_dynamoi(given: Option<PathBuf>, self_exe: &Path) -> Option<PathBuf> {
    given.or_else(|| {
        let beside = self_exe.parent()?.join("dynamoi");
        beside.exists().then_some(beside)
    })
}

fn taskset_available() -> bool {
    std::process::Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// `program args…`, on `core` when pinning is asked for and possible.
fn pinned(pin: bool, core: &str, program: &Path, args: &[&str]) -> Command {
    if pin {
        let mut command = Command::new("taskset");
        command.arg("-c").arg(core).arg(program).args(args);
        command
    } else {
        let mut command = Command::new(program);
        command.args(args);
        command
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Kills the started processes when dropped, whatever happened.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.start_kill();
        }
    }
}

async fn wait_ok(address: SocketAddr, path: &str, headers: &[String], what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        match get_status(address, path, headers).await {
            Ok(200) => return Ok(()),
            Ok(status) => last = format!("status {status}"),
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{what} did not answer 200 within 60 s ({last})")
}

/// One run of `bench load` in its own process.
async fn load(
    config: &Config,
    pin: bool,
    address: SocketAddr,
    path: &str,
    headers: &[String],
    seconds: f64,
) -> anyhow::Result<LoadResult> {
    let mut args = vec![
        "load".to_string(),
        "--address".into(),
        address.to_string(),
        "--path".into(),
        path.into(),
        "--connections".into(),
        config.http_connections.to_string(),
        "--seconds".into(),
        seconds.to_string(),
    ];
    for header in headers {
        args.push("--header".into());
        args.push(header.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = pinned(pin, "1", &config.self_exe, &args)
        .stderr(Stdio::inherit())
        .output()
        .await?;
    anyhow::ensure!(output.status.success(), "the load generator failed");
    let result: LoadResult = serde_json::from_slice(&output.stdout)?;
    anyhow::ensure!(
        result.ok > 0 && result.non_2xx == 0,
        "{path}: {} ok, {} other statuses (first {:?}), {} errors",
        result.ok,
        result.non_2xx,
        result.first_bad_status,
        result.errors
    );
    Ok(result)
}

/// Runs the scenario: the `http` rows and the `memory` row.
pub async fn run(config: &Config) -> anyhow::Result<Vec<Row>> {
    let dynamoi = locate_dynamoi(config.dynamoi.clone(), &config.self_exe).ok_or_else(|| {
        anyhow::anyhow!(
            "the http and memory scenarios start `dynamoi serve`: build it first with \
             `cargo build --release -p api` (or pass --dynamoi PATH)"
        )
    })?;
    let pin = config.pin && taskset_available();
    if config.pin && !pin {
        eprintln!("   taskset is not available: server and load generator are not pinned");
    }
    let (campaigns, days) = if config.quick { (2, 20) } else { (10, 180) };
    let db = postgres(10).await?;
    let log = db.log();
    let (artist, _) = fixtures::create_artist(&log, OWNER).await?;
    let ids = fixtures::create_campaigns(&log, &artist, campaigns, days).await?;
    let seeded = app::ingest::ingest(&log, &fixtures::readings(&ids, days, 0), &fixtures::metadata())
        .await
        .map_err(|e| anyhow::anyhow!("seeding failed: {e}"))?;
    let position = seeded.position.expect("readings were recorded");
    db.db.close().await;

    let data = TempDir::new("serve")?;
    let server_address: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let hello_address: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let server_log = std::fs::File::create(data.0.join("serve.log"))?;
    let server = pinned(pin, "0", &dynamoi, &["serve"])
        .env("DYNAMOI_LISTEN", server_address.to_string())
        .env("DYNAMOI_DATABASE_URL", &db.url)
        .env("DYNAMOI_DATA_DIR", &data.0)
        .env("DYNAMOI_JWT_SECRET", JWT_SECRET)
        .env("DYNAMOI_SYNC_DAILY_AT", "off")
        .env("DYNAMOI_LOG", &config.server_log)
        .stdout(Stdio::null())
        .stderr(server_log)
        .kill_on_drop(true)
        .spawn()?;
    let server_pid = server
        .id()
        .ok_or_else(|| anyhow::anyhow!("the server exited at once"))?;
    let hello = pinned(
        pin,
        "0",
        &config.self_exe,
        &["hello", "--listen", &hello_address.to_string()],
    )
    .kill_on_drop(true)
    .spawn()?;
    let _processes = Processes(vec![server, hello]);

    let secret = SecretString::from(JWT_SECRET);
    let token = Authenticator::new(&secret, "authenticated").mint(OWNER, Role::Person, 3600)?;
    let headers = vec![format!("Authorization: Bearer {token}")];
    let dashboard = format!("/v1/artists/{artist}/dashboard?granularity=week");
    if let Err(error) = wait_ok(server_address, "/healthz", &[], "dynamoi serve").await {
        let log = std::fs::read_to_string(data.0.join("serve.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        anyhow::bail!(
            "{error}; the server's last log lines:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    wait_ok(hello_address, "/hello", &[], "the hello-world server").await?;
    // The read models have caught up with the seed once this answers.
    wait_ok(
        server_address,
        &format!("{dashboard}&min_position={position}"),
        &headers,
        "the dashboard",
    )
    .await?;

    let peak = Arc::new(Mutex::new(0.0f64));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            while let Some((rss, _)) = resident_mib(server_pid) {
                {
                    let mut peak = peak.lock().expect("never poisoned");
                    *peak = peak.max(rss);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let idle_rss = resident_mib(server_pid).map(|(rss, _)| rss).unwrap_or(f64::NAN);

    let mut vs_healthz = Row::new(
        "http",
        "dashboard query over HTTP",
        "req/s",
        "GET /healthz",
        "GET dashboard",
        Target::RatioAtLeast { ratio: 0.6 },
    );
    let mut vs_hello = Row::new(
        "http",
        "dashboard query over HTTP",
        "req/s",
        "warp hello-world",
        "GET dashboard",
        Target::RatioAtLeast { ratio: 0.6 },
    );
    let mut healthz_vs_hello = Row::new(
        "http",
        "the service's cheapest route",
        "req/s",
        "warp hello-world",
        "GET /healthz",
        Target::Info,
    );
    let mut memory = Row::new(
        "memory",
        "resident memory of `dynamoi serve` under the HTTP load (peak VmRSS)",
        "MiB",
        "",
        "dynamoi serve",
        Target::PeakAtMost { value: 100.0 },
    );
    let seconds = config.http_seconds;
    // A short warm-up of each route, then the pairs (rotating which route goes first).
    for i in 0..=config.pairs {
        let run_seconds = if i == 0 { seconds / 3.0 } else { seconds };
        *peak.lock().expect("never poisoned") = 0.0;
        let mut results: [Option<LoadResult>; 3] = [None, None, None];
        for k in 0..3 {
            let which = (i + k) % 3;
            let result = match which {
                0 => load(config, pin, hello_address, "/hello", &headers, run_seconds).await?,
                1 => load(config, pin, server_address, "/healthz", &headers, run_seconds).await?,
                _ => load(config, pin, server_address, &dashboard, &headers, run_seconds).await?,
            };
            results[which] = Some(result);
        }
        if i == 0 {
            continue;
        }
        let [hello, healthz, dash] = results.map(|r| r.expect("all three ran"));
        vs_healthz.pair(healthz.requests_per_second, dash.requests_per_second);
        vs_hello.pair(hello.requests_per_second, dash.requests_per_second);
        healthz_vs_hello.pair(hello.requests_per_second, healthz.requests_per_second);
        vs_healthz.details.push(json!({
            "healthz": healthz, "dashboard": dash, "hello": hello,
            "connections": config.http_connections, "seconds": seconds, "pinned": pin,
        }));
        let rss = *peak.lock().expect("never poisoned");
        memory.ours.push(rss);
        memory.details.push(json!({
            "peak_rss_mib": rss,
            "idle_rss_mib_after_start": idle_rss,
            "vm_hwm_mib": resident_mib(server_pid).map(|(_, hwm)| hwm),
        }));
    }
    sampler.abort();
    Ok(vec![vs_healthz, vs_hello, healthz_vs_hello, memory])
}
