//! `http` and `memory`: `dynamoi serve` (the release binary, a process of its own, pinned to
//! core 0) over a private PostgreSQL database holding an artist with 10 campaigns × 180 days of
//! spend, loaded from a second process (`bench load`, pinned to core 1) on loopback.
//!
//! Ours: the artist's dashboard (`GET /v1/artists/{id}/dashboard`: token check, access check,
//! the read, JSON) by day, week and month, and by week with a platform and with a campaign
//! filter. Baseline (issue 14): the physical limit of the same answer, raw SQL reading it from
//! precomputed per-day rows (`bench_artist_daily`: the artist's sums per platform, day and
//! currency, made once from `campaign_daily` before the runs; `campaign_daily` itself for the
//! campaign filter) by primary key, through sqlx with prepared statements, as many connections
//! as the HTTP load has, the rows summed into the granularity's periods as the service does;
//! in this process, same database, same seconds. The pairs alternate which goes first.
//!
//! Two reference rows, not targets: `GET /healthz` (the service's cheapest route) and a warp
//! hello-world server (`bench hello`, pinned to core 0 like the service), `PERFORMANCE.md`'s
//! earlier reference. The server's resident memory (`VmRSS`) is sampled every 50 ms throughout:
//! the `memory` figure is its peak per pair. A second `memory` row: the peak while two bulk
//! ingests of 10,000 readings each (40 fresh campaigns × 250 days, drafted before the server
//! starts) are posted at once to `POST /v1/ingest/spend` with a service token (≤ 200 MiB).

use super::{postgres, Config};
use crate::databases::TempDir;
use crate::fixtures;
use crate::http::{get_status, resident_mib, LoadResult};
use crate::report::{Row, Target};
use api::auth::{Authenticator, Role};
use secrecy::SecretString;
use serde_json::json;
use std::collections::BTreeMap;
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

/// One dashboard the scenario asks for: its HTTP query and the raw SQL reading the same
/// answer from precomputed per-day rows.
struct DashboardVariant {
    label: &'static str,
    /// The query string after `/v1/artists/{id}/dashboard?`.
    query: String,
    granularity: &'static str,
    /// The statement: `$1` the key (artist or campaign), `$2` an optional platform.
    sql: &'static str,
    key: String,
    platform: Option<String>,
}

const RAW_BY_ARTIST: &str = "SELECT day, currency, spend_micros, impressions, reach, clicks, views, saves, follows, \
     conversions, engagement FROM bench_artist_daily \
     WHERE artist_id = $1 AND ($2::text IS NULL OR platform = $2) ORDER BY day";
const RAW_BY_CAMPAIGN: &str = "SELECT day, currency, spend_micros, impressions, reach, clicks, views, saves, follows, \
     conversions, reactions + comments + shares FROM campaign_daily \
     WHERE campaign_id = $1 AND ($2::text IS NULL OR platform = $2) ORDER BY day";

/// The precomputed per-day rows of the baseline, from the read model as the seed left it.
const MAKE_ARTIST_DAILY: &str = "CREATE TABLE bench_artist_daily AS \
     SELECT artist_id, platform, day, currency, SUM(spend_micros)::bigint AS spend_micros, \
     SUM(impressions)::bigint AS impressions, SUM(reach)::bigint AS reach, SUM(clicks)::bigint AS clicks, \
     SUM(views)::bigint AS views, SUM(saves)::bigint AS saves, SUM(follows)::bigint AS follows, \
     SUM(conversions)::bigint AS conversions, SUM(reactions + comments + shares)::bigint AS engagement \
     FROM campaign_daily GROUP BY artist_id, platform, day, currency";

/// The period a day falls in, as the dashboard names it.
fn period(day: &str, granularity: &str) -> String {
    use chrono::Datelike;
    let Ok(date) = day.parse::<chrono::NaiveDate>() else {
        return day.to_string();
    };
    match granularity {
        "week" => (date - chrono::Duration::days(i64::from(date.weekday().num_days_from_monday()))).to_string(),
        "month" => format!("{:04}-{:02}", date.year(), date.month()),
        _ => day.to_string(),
    }
}

/// The baseline: `connections` tasks reading `variant`'s rows and summing them into periods
/// for `seconds`; answers per second.
async fn raw_load(
    pool: &sqlx::PgPool,
    variant: &DashboardVariant,
    connections: usize,
    seconds: f64,
) -> anyhow::Result<f64> {
    use sqlx::Row;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let pool = pool.clone();
        let (sql, key, platform, granularity) = (
            variant.sql,
            variant.key.clone(),
            variant.platform.clone(),
            variant.granularity,
        );
        tasks.spawn(async move {
            let mut answers = 0u64;
            while Instant::now() < deadline {
                let rows = sqlx::query(sql).bind(&key).bind(&platform).fetch_all(&pool).await?;
                let mut periods: BTreeMap<(String, String), [i64; 9]> = BTreeMap::new();
                for row in &rows {
                    let day: String = row.try_get(0)?;
                    let sums = periods.entry((period(&day, granularity), row.try_get(1)?)).or_default();
                    for (k, sum) in sums.iter_mut().enumerate() {
                        *sum = sum.saturating_add(row.try_get::<i64, _>(2 + k)?);
                    }
                }
                anyhow::ensure!(!periods.is_empty(), "the baseline read no rows");
                std::hint::black_box(periods);
                answers += 1;
            }
            Ok::<u64, anyhow::Error>(answers)
        });
    }
    let mut answers = 0;
    while let Some(done) = tasks.join_next().await {
        answers += done??;
    }
    Ok(answers as f64 / started.elapsed().as_secs_f64())
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
    // The campaigns of the ingests measured for memory: two fresh sets per pair.
    let (ingest_campaigns, ingest_days) = if config.quick { (4, 25) } else { (40, 250) };
    let mut ingest_sets = Vec::new();
    for _ in 0..2 * config.pairs {
        ingest_sets.push(fixtures::create_campaigns(&log, &artist, ingest_campaigns, ingest_days).await?);
    }
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

    // The baseline's precomputed rows, from the read model the server just built.
    let raw_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(config.http_connections as u32)
        .connect(&db.url)
        .await?;
    sqlx::query(MAKE_ARTIST_DAILY).execute(&raw_pool).await?;
    sqlx::query("ALTER TABLE bench_artist_daily ADD PRIMARY KEY (artist_id, platform, day, currency)")
        .execute(&raw_pool)
        .await?;
    sqlx::query("ANALYZE bench_artist_daily").execute(&raw_pool).await?;
    let platform: String = sqlx::query_scalar("SELECT platform FROM campaign_daily WHERE artist_id = $1 LIMIT 1")
        .bind(&artist)
        .fetch_one(&raw_pool)
        .await?;
    let by_artist = |label, granularity: &'static str, platform: Option<&str>| DashboardVariant {
        label,
        query: match platform {
            Some(p) => format!("granularity={granularity}&platform={p}"),
            None => format!("granularity={granularity}"),
        },
        granularity,
        sql: RAW_BY_ARTIST,
        key: artist.clone(),
        platform: platform.map(str::to_string),
    };
    let variants = vec![
        by_artist("by day", "day", None),
        by_artist("by week", "week", None),
        by_artist("by month", "month", None),
        by_artist("by week, one platform", "week", Some(&platform)),
        DashboardVariant {
            label: "by week, one campaign",
            query: format!("granularity=week&campaign={}", ids[0]),
            granularity: "week",
            sql: RAW_BY_CAMPAIGN,
            key: ids[0].clone(),
            platform: None,
        },
    ];
    let mut dashboard_rows: Vec<Row> = variants
        .iter()
        .map(|v| {
            Row::new(
                "http",
                &format!("dashboard over HTTP, {}", v.label),
                "req/s",
                "raw SQL over precomputed per-day rows",
                "GET dashboard",
                Target::RatioAtLeast { ratio: 0.5 },
            )
        })
        .collect();
    let mut healthz_vs_hello = Row::new(
        "http",
        "the service's cheapest route (reference)",
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
    // A short warm-up of each, then the pairs (alternating which of a pair goes first).
    for i in 0..=config.pairs {
        let run_seconds = if i == 0 { seconds / 3.0 } else { seconds };
        *peak.lock().expect("never poisoned") = 0.0;
        let hello = load(config, pin, hello_address, "/hello", &headers, run_seconds).await?;
        let healthz = load(config, pin, server_address, "/healthz", &headers, run_seconds).await?;
        let mut pairs = Vec::with_capacity(variants.len());
        for variant in &variants {
            let path = format!("/v1/artists/{artist}/dashboard?{}", variant.query);
            let (raw, http) = if i % 2 == 0 {
                let raw = raw_load(&raw_pool, variant, config.http_connections, run_seconds).await?;
                (
                    raw,
                    load(config, pin, server_address, &path, &headers, run_seconds).await?,
                )
            } else {
                let http = load(config, pin, server_address, &path, &headers, run_seconds).await?;
                (
                    raw_load(&raw_pool, variant, config.http_connections, run_seconds).await?,
                    http,
                )
            };
            pairs.push((raw, http));
        }
        if i == 0 {
            continue;
        }
        for (row, (raw, http)) in dashboard_rows.iter_mut().zip(&pairs) {
            row.pair(*raw, http.requests_per_second);
            row.details.push(json!({
                "raw_answers_per_second": raw, "http": http,
                "connections": config.http_connections, "seconds": seconds, "pinned": pin,
            }));
        }
        healthz_vs_hello.pair(hello.requests_per_second, healthz.requests_per_second);
        healthz_vs_hello
            .details
            .push(json!({ "healthz": healthz, "hello": hello }));
        let rss = *peak.lock().expect("never poisoned");
        memory.ours.push(rss);
        memory.details.push(json!({
            "peak_rss_mib": rss,
            "idle_rss_mib_after_start": idle_rss,
            "vm_hwm_mib": resident_mib(server_pid).map(|(_, hwm)| hwm),
        }));
    }

    // Two bulk ingests at once, over HTTP as a service posts them, each of fresh campaigns.
    let mut ingest_memory = Row::new(
        "memory",
        &format!(
            "resident memory of `dynamoi serve` under two concurrent {}-reading ingests (peak VmRSS)",
            ingest_campaigns * ingest_days as usize
        ),
        "MiB",
        "",
        "2 × POST /v1/ingest/spend",
        Target::PeakAtMost { value: 200.0 },
    );
    let service = Authenticator::new(&secret, "authenticated").mint("service:bench", Role::Service, 3600)?;
    let client = reqwest::Client::new();
    let url = format!("http://{server_address}/v1/ingest/spend");
    for sets in ingest_sets.chunks(2) {
        *peak.lock().expect("never poisoned") = 0.0;
        let posts = sets.iter().map(|ids| {
            let body = ingest_body(&fixtures::readings(ids, ingest_days, 0));
            let request = client
                .post(&url)
                .bearer_auth(&service)
                .header("Content-Type", "application/json")
                .body(body);
            async move {
                let answer = request.send().await?;
                let status = answer.status();
                let body: serde_json::Value = answer.json().await?;
                anyhow::ensure!(status.is_success(), "the ingest answered {status}: {body}");
                Ok::<_, anyhow::Error>(body["recorded"].as_u64().unwrap_or(0))
            }
        });
        let recorded: u64 = futures::future::try_join_all(posts).await?.into_iter().sum();
        let expected = 2 * ingest_campaigns as u64 * ingest_days as u64;
        anyhow::ensure!(
            recorded == expected,
            "the two ingests recorded {recorded} readings of {expected}"
        );
        let rss = *peak.lock().expect("never poisoned");
        ingest_memory.ours.push(rss);
        ingest_memory
            .details
            .push(json!({ "peak_rss_mib": rss, "readings_recorded": recorded }));
    }
    sampler.abort();
    raw_pool.close().await;
    dashboard_rows.extend([healthz_vs_hello, memory, ingest_memory]);
    Ok(dashboard_rows)
}

/// The JSON array `POST /v1/ingest/spend` takes, of `readings`.
fn ingest_body(readings: &[Result<app::ingest::IngestReading, String>]) -> String {
    let readings: Vec<serde_json::Value> = readings
        .iter()
        .flatten()
        .map(|r| {
            json!({
                "campaign_id": r.campaign_id, "platform": "meta", "date": r.date, "spend_micros": r.spend_micros,
                "currency": r.currency, "impressions": r.impressions, "reach": r.reach, "clicks": r.clicks,
                "views": r.views, "saves": r.saves, "reactions": r.reactions, "comments": r.comments,
                "shares": r.shares, "follows": r.follows, "conversions": r.conversions,
                "fetched_at": r.fetched_at, "source": r.source,
            })
        })
        .collect();
    serde_json::Value::Array(readings).to_string()
}
