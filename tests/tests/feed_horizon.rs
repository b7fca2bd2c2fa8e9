//! The PostgreSQL feed waits only for transactions that write events (issue 13, item 5): an
//! open transaction elsewhere on the server (an admin's psql, a `pg_dump`) holds nothing back;
//! an open transaction that writes events holds back what committed after it began, and the
//! lag, `/metrics` and `/v1/operations/projections` say so, and for how long.

use eventlog::{EventLog, EventMetadata, NewEvent, Position};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use tests::{postgres_admin_url, TestApp, TestDb};

fn event(n: i64) -> NewEvent {
    NewEvent::json("Counted", "1", &json!({ "n": n }))
}

async fn append(log: &EventLog, aggregate: &str) -> Position {
    let appended = log
        .append("counted", aggregate, 0, vec![event(1)], &EventMetadata::system())
        .await
        .expect("append");
    appended[0].1
}

/// Opens a transaction on `url` that has a transaction id and does nothing else, as an idle
/// psql session after an UPDATE would.
async fn open_foreign_transaction(url: &str) -> PgConnection {
    let mut connection = PgConnection::connect(url).await.expect("connect");
    sqlx::query("BEGIN").execute(&mut connection).await.expect("begin");
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut connection)
        .await
        .expect("take a transaction id");
    connection
}

/// An event row inserted by hand in a transaction left open (a slow writer).
async fn open_event_writer(url: &str) -> PgConnection {
    let mut connection = PgConnection::connect(url).await.expect("connect");
    sqlx::query("BEGIN").execute(&mut connection).await.expect("begin");
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('counted', 'slow', 0, 'Counted', '1', '{\"n\": 0}', '{}')",
    )
    .execute(&mut connection)
    .await
    .expect("insert an event in an open transaction");
    connection
}

fn gauge(metrics: &str, name: &str) -> f64 {
    tests::metric_sample(metrics, name).unwrap_or_else(|| panic!("{name} in /metrics:\n{metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_transaction_that_writes_no_event_holds_nothing_back() {
    let Some(db) = TestDb::postgres().await else { return };
    let log = db.log();
    // Open in another database of the same server, and in this one.
    let mut elsewhere = open_foreign_transaction(&postgres_admin_url()).await;
    let mut here = open_foreign_transaction(&db.url).await;

    let position = append(&log, "a-1").await;
    let feed = log.read_feed(Position::START, 100).await.expect("read the feed");
    assert_eq!(
        feed.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![position],
        "the committed event is in the feed at once, though older transactions are open"
    );
    assert_eq!(log.head_position().await.expect("head"), Some(position));
    let holdback = log.feed_holdback().await.expect("holdback");
    assert_eq!(holdback.held_back_events, 0);
    assert_eq!(
        holdback.oldest_writer_seconds, None,
        "no transaction writing events is open"
    );

    sqlx::query("ROLLBACK").execute(&mut elsewhere).await.expect("rollback");
    sqlx::query("ROLLBACK").execute(&mut here).await.expect("rollback");
}

/// `GET /metrics` of `app`, as text.
async fn metrics_text(app: &TestApp) -> String {
    let response = app
        .client
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .expect("GET /metrics");
    response.text().await.expect("metrics text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_event_writer_holds_back_later_commits_and_the_lag_and_metrics_say_so() {
    let Some(db) = TestDb::postgres().await else { return };
    let url = db.url.clone();
    let log = db.log();
    let app = TestApp::spawn_on(db, &[]).await;

    // Whatever the service wrote while starting is behind us (nothing today).
    let before = log.head_position().await.expect("head");
    let cursor = before.unwrap_or(Position::START);
    let committed_before = log.head(Position::START).await.expect("head").events_after;
    let mut writer = open_event_writer(&url).await;
    let later = append(&log, "a-1").await;

    // Committed after the writer began: not in the feed yet, but counted as lag.
    let feed = log.read_feed(cursor, 100).await.expect("read the feed");
    assert!(feed.is_empty(), "the feed stops below the open writer: {feed:?}");
    assert_eq!(log.head_position().await.expect("head"), before);
    let head = log.head(cursor).await.expect("head");
    assert_eq!(head.events_after, 1, "the held-back commit counts as lag");
    let holdback = log.feed_holdback().await.expect("holdback");
    assert_eq!(holdback.held_back_events, 1);
    assert!(holdback.oldest_writer_seconds.is_some_and(|s| s >= 0.0), "{holdback:?}");

    let metrics = metrics_text(&app).await;
    assert_eq!(gauge(&metrics, "dynamoi_feed_held_back_events"), 1.0);
    assert_eq!(gauge(&metrics, "dynamoi_feed_events"), (committed_before + 1) as f64);
    assert!(
        gauge(&metrics, "dynamoi_feed_oldest_writer_seconds") > 0.0,
        "the open writer's age is reported:\n{metrics}"
    );
    let token = app.token("auditor-1", api::auth::Role::Auditor);
    let (status, operations) = app
        .send(&token, reqwest::Method::GET, "/v1/operations/projections", None)
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{operations}");
    assert_eq!(operations["feed_head"]["held_back_events"], 1, "{operations}");
    assert_eq!(
        operations["feed_head"]["position"],
        json!(before.map(|p| p.to_string())),
        "{operations}"
    );
    assert!(
        operations["feed_head"]["oldest_writer_seconds"].is_number(),
        "{operations}"
    );

    // The writer commits: both events, in transaction order, and nothing held back.
    sqlx::query("COMMIT").execute(&mut writer).await.expect("commit");
    let feed = log.read_feed(cursor, 100).await.expect("read the feed");
    let streams: Vec<&str> = feed.iter().map(|e| e.aggregate_id.as_str()).collect();
    assert_eq!(streams, vec!["slow", "a-1"], "the feed in commit-id order");
    assert_eq!(feed[1].position, later);
    let holdback = log.feed_holdback().await.expect("holdback");
    assert_eq!(holdback.held_back_events, 0);
    assert_eq!(holdback.oldest_writer_seconds, None);
    let metrics = metrics_text(&app).await;
    assert_eq!(gauge(&metrics, "dynamoi_feed_held_back_events"), 0.0);
    assert_eq!(
        gauge(&metrics, "dynamoi_feed_oldest_writer_seconds"),
        0.0,
        "no writer is open"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_written_after_another_write_in_the_same_transaction_are_refused() {
    let Some(db) = TestDb::postgres().await else { return };
    let mut connection = open_foreign_transaction(&db.url).await;
    let error = sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('counted', 'late', 0, 'Counted', '1', '{}', '{}')",
    )
    .execute(&mut connection)
    .await
    .expect_err("refused: the transaction had an id before it wrote events");
    assert!(
        error
            .to_string()
            .contains("events must be the first rows a transaction writes"),
        "{error}"
    );
    sqlx::query("ROLLBACK")
        .execute(&mut connection)
        .await
        .expect("rollback");
    let log = db.log();
    assert!(log.read_feed(Position::START, 10).await.expect("feed").is_empty());
}

/// The newest position is found by reading the feed order's index backwards, not by sorting
/// the log: `head_position` (projection status, `/metrics`, a rebuild's total) costs the same at any size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_head_is_read_from_the_feed_index_without_sorting_the_log() {
    let Some(db) = TestDb::postgres().await else { return };
    let log = db.log();
    let mut connection = PgConnection::connect(&db.url).await.expect("connect");
    for batch in 0..3 {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             SELECT 'counted', 'bulk-' || $1 || '-' || g, 0, 'Counted', '1', '{\"n\": 1}', '{}' \
             FROM generate_series(1, 2000) AS g",
        )
        .bind(batch)
        .execute(&mut connection)
        .await
        .expect("insert a transaction of events");
    }
    let last = append(&log, "last").await;
    sqlx::query("ANALYZE events")
        .execute(&mut connection)
        .await
        .expect("analyze");

    assert_eq!(
        log.head_position().await.expect("head"),
        Some(last),
        "the head is the newest event"
    );
    let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {}", eventlog::POSTGRES_HEAD))
        .bind(i64::MAX.to_string())
        .fetch_all(&mut connection)
        .await
        .expect("explain the head's statement");
    let plan = plan.join("\n");
    assert!(
        plan.contains("Scan Backward using events_feed_order") && !plan.contains("Sort"),
        "the head reads the feed index backwards and sorts nothing:\n{plan}"
    );
}
