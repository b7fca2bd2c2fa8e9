//! The `dynamoi` binary from the outside: tokens, projection status and rebuild, and
//! one-line errors with a non-zero exit status.

use api::auth::{Authenticator, Role};
use secrecy::SecretString;
use std::process::{Command, Output};

const SECRET: &str = "cli-test-secret-cli-test-secret-0123456789";

fn dynamoi(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dynamoi"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("DYNAMOI_JWT_SECRET", SECRET)
        .env("DYNAMOI_LOG", "error")
        .output()
        .expect("the binary runs")
}

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dynamoi-cli-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_minted_token_is_accepted_by_the_service_with_its_role() {
    let dir = temp_dir();
    let out = dynamoi(&dir, &["token", "--sub", "alice", "--role", "auditor"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap();
    let auth = Authenticator::new(&SecretString::from(SECRET), "authenticated");
    let caller = auth.authenticate(Some(&format!("Bearer {}", token.trim()))).unwrap();
    assert_eq!(caller.role, Role::Auditor);
    assert_eq!(caller.subject, "alice");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_unknown_role_is_refused_on_one_line() {
    let dir = temp_dir();
    let out = dynamoi(&dir, &["token", "--sub", "alice", "--role", "wizard"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("wizard"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn status_lists_every_projection_and_rebuild_reports_what_it_did() {
    let dir = temp_dir();
    let status = dynamoi(&dir, &["projections", "status", "--json"]);
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let statuses: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let names: Vec<&str> = statuses
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = projections::all().iter().map(|p| p.name()).collect();
    assert_eq!(names, expected);
    assert!(names.contains(&"policy_versions") && names.contains(&"dashboards"));
    assert!(
        dir.join("data/dynamoi.db").exists(),
        "the embedded database is created under ./data"
    );

    let rebuild = dynamoi(&dir, &["projections", "rebuild", "policy_versions"]);
    assert!(rebuild.status.success(), "{}", String::from_utf8_lossy(&rebuild.stderr));
    let said = String::from_utf8_lossy(&rebuild.stdout);
    assert!(
        said.starts_with("rebuilt policy_versions: 0 events into generation 2"),
        "{said}"
    );

    let unknown = dynamoi(&dir, &["projections", "rebuild", "nothing"]);
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(
        stderr.trim(),
        format!(
            "error: there is no projection called `nothing`; known: {}",
            expected.join(", ")
        )
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_database_that_cannot_be_reached_is_one_line_without_the_password() {
    let dir = temp_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_dynamoi"))
        .args(["migrate"])
        .current_dir(&dir)
        .env_clear()
        .env(
            "DYNAMOI_DATABASE_URL",
            "postgres://someone:hunter2-password@127.0.0.1:1/none",
        )
        .env("DYNAMOI_LOG", "error")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: cannot open the database named by DYNAMOI_DATABASE_URL"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

/// The PostgreSQL server the suite uses (as `tests::postgres_admin_url`).
fn postgres_admin_url() -> String {
    std::env::var("DYNAMOI_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projections_status_says_what_an_open_event_writer_holds_back() {
    use sqlx::{Connection, PgConnection};
    let admin_url = postgres_admin_url();
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .expect("PostgreSQL at DYNAMOI_TEST_POSTGRES_URL (README: the tests need it)");
    let name = format!("dynamoi_cli_{}", uuid::Uuid::now_v7().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create");
    let url = format!(
        "{}/{name}",
        admin_url.rsplit_once('/').expect("a database in the URL").0
    );
    let dir = temp_dir();
    let status = |dir: &std::path::Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_dynamoi"))
            .args(["projections", "status"])
            .current_dir(dir)
            .env_clear()
            .env("DYNAMOI_DATABASE_URL", &url)
            .env("DYNAMOI_LOG", "error")
            .output()
            .expect("the binary runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("UTF-8")
    };
    // Migrated, nothing held back: no feed line.
    assert!(!status(&dir).contains("feed:"));

    // A writer left open (its event not committed), then an event committed after it.
    let insert = |id: &str| {
        format!(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             VALUES ('counted', '{id}', 0, 'Counted', '1', '{{}}', '{{}}')"
        )
    };
    let mut writer = PgConnection::connect(&url).await.expect("connect");
    sqlx::query("BEGIN").execute(&mut writer).await.expect("begin");
    sqlx::query(&insert("slow"))
        .execute(&mut writer)
        .await
        .expect("the open write");
    let mut other = PgConnection::connect(&url).await.expect("connect");
    sqlx::query(&insert("later"))
        .execute(&mut other)
        .await
        .expect("a later commit");
    let said = status(&dir);
    assert!(
        said.contains("feed: 1 committed event(s) held back by a transaction writing events, open "),
        "{said}"
    );

    sqlx::query("ROLLBACK").execute(&mut writer).await.expect("rollback");
    assert!(
        !status(&dir).contains("feed:"),
        "nothing held back once the writer ends"
    );
    drop((writer, other));
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("drop");
    let _ = std::fs::remove_dir_all(dir);
}

/// Stops a `dynamoi serve` child gracefully (SIGTERM) when the test ends, however it ends.
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_then_the_dashboard_over_http_shows_its_ninety_days() {
    let dir = temp_dir();
    // As README says: `dynamoi demo`, then `dynamoi serve`, then the dashboard.
    let out = dynamoi(&dir, &["demo", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["recorded"], 3 * 90, "{report}");
    assert!(report["restated"].as_u64().unwrap() > 0, "{report}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = Served(
        Command::new(env!("CARGO_BIN_EXE_dynamoi"))
            .arg("serve")
            .current_dir(&dir)
            .env_clear()
            .env("DYNAMOI_JWT_SECRET", SECRET)
            .env("DYNAMOI_LOG", "error")
            .env("DYNAMOI_LISTEN", format!("127.0.0.1:{port}"))
            .spawn()
            .expect("serve starts"),
    );
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map_or(true, |r| !r.status().is_success())
    {
        assert!(std::time::Instant::now() < deadline, "serve became ready");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let person = report["person_id"].as_str().unwrap();
    let token = Authenticator::new(&SecretString::from(SECRET), "authenticated")
        .mint(person, Role::Person, 600)
        .unwrap();
    let (first, last) = (
        report["first_day"].as_str().unwrap(),
        report["last_day"].as_str().unwrap(),
    );
    let dashboard: serde_json::Value = client
        .get(format!(
            "{base}/v1/artists/{}/dashboard?from={first}&to={last}&granularity=day",
            report["artist_id"].as_str().unwrap()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let series = dashboard["series"].as_array().unwrap();
    assert_eq!(series.len(), 90, "{dashboard}");
    assert_eq!(series[0]["period"], first);
    assert_eq!(series[89]["period"], last);
    let spend: i64 = series.iter().map(|day| day["spend_micros"].as_i64().unwrap()).sum();
    assert!(spend > 0);
    assert_eq!(dashboard["totals"][0]["spend_micros"], spend, "{dashboard}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_sync_with_nothing_linked_reads_no_account_and_succeeds() {
    let dir = temp_dir();
    let out = dynamoi(&dir, &["sync", "--until", "2026-11-28"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("synced through 2026-11-28: 0 accounts, 0 campaigns"),
        "{stdout}"
    );
    let bad = dynamoi(&dir, &["sync", "--until", "yesterday"]);
    assert!(!bad.status.success());
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr).trim(),
        "error: --until must be a day such as 2026-11-28"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn retention_run_prints_each_rule_once_a_day() {
    let dir = temp_dir();
    let out = dynamoi(&dir, &["retention", "run", "--now", "2026-12-01T04:00:00Z"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("retention applied for 2026-12-01:\n"), "{stdout}");
    for rule in app::retention::RULES {
        assert!(
            stdout.contains(&format!("  {}: 0 examined, 0 acted on, 0 failed\n", rule.category)),
            "{stdout}"
        );
    }
    let again = dynamoi(&dir, &["retention", "run", "--now", "2026-12-01T18:00:00Z"]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    // The day ran already: nothing is done, and what the day's run recorded is shown.
    let again = String::from_utf8_lossy(&again.stdout);
    assert!(
        again.starts_with(
            "retention for 2026-12-01 already ran at 2026-12-01 04:00:00 UTC; nothing done now. It recorded:\n"
        ),
        "{again}"
    );
    for rule in app::retention::RULES {
        assert!(
            again.contains(&format!("  {}: 0 examined, 0 acted on, 0 failed\n", rule.category)),
            "{again}"
        );
    }
    let json = dynamoi(&dir, &["retention", "run", "--now", "2026-12-02T04:00:00Z", "--json"]);
    assert!(json.status.success(), "{}", String::from_utf8_lossy(&json.stderr));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["day"], "2026-12-02");
    assert_eq!(report["rules"].as_array().unwrap().len(), app::retention::RULES.len());
    assert!(report["position"].is_string(), "the run is recorded: {report}");
    let bad = dynamoi(&dir, &["retention", "run", "--now", "tomorrow"]);
    assert!(!bad.status.success());
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr).trim(),
        "error: --now must be an RFC 3339 instant such as 2026-11-01T12:00:00Z"
    );
    let _ = std::fs::remove_dir_all(dir);
}
