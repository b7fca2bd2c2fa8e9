//! Projection-engine tests on both backends: crash and resume, a poison event, rebuild
//! equality, a new version taking over, and read-your-writes waiting.

use async_trait::async_trait;
use eventlog::{dispatch, Db, Dialect, EventLog, EventMetadata, NewEvent, Position, StoredEvent, StreamAppend};
use projections::{Engine, EngineConfig, Projection, ProjectionError, ReadTx, Target};
use serde_json::json;
use sqlx::Row;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tests::{both_backends, wait_until};

fn fast() -> EngineConfig {
    EngineConfig {
        batch_size: 50,
        poll_interval: Duration::from_millis(20),
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        standby_retry: Duration::from_millis(50),
    }
}

/// Counts events per aggregate, and records each applied event id under a primary key, so a
/// double application fails loudly. Fails on `Poison` events; can crash once on demand.
struct Counting {
    name: &'static str,
    version: i32,
    /// When set, the first batch after it is set "crashes": it writes, then errors.
    crash_next: Arc<AtomicBool>,
    weight: i64,
}

impl Counting {
    fn new(name: &'static str) -> Counting {
        Counting {
            name,
            version: 1,
            crash_next: Arc::new(AtomicBool::new(false)),
            weight: 1,
        }
    }
}

#[async_trait]
impl Projection for Counting {
    fn name(&self) -> &'static str {
        self.name
    }
    fn version(&self) -> i32 {
        self.version
    }
    fn tables(&self) -> &'static [&'static str] {
        match self.name {
            "count_a" => &["count_a", "count_a_seen"],
            _ => &["count_b", "count_b_seen"],
        }
    }
    fn schema(&self, _dialect: Dialect) -> &'static str {
        match self.name {
            "count_a" => {
                "CREATE TABLE count_a{g} (aggregate_id TEXT PRIMARY KEY, n BIGINT NOT NULL); \
                          CREATE TABLE count_a_seen{g} (event_id TEXT PRIMARY KEY)"
            }
            _ => {
                "CREATE TABLE count_b{g} (aggregate_id TEXT PRIMARY KEY, n BIGINT NOT NULL); \
                  CREATE TABLE count_b_seen{g} (event_id TEXT PRIMARY KEY)"
            }
        }
    }
    async fn apply(&self, tx: &mut ReadTx<'_>, target: &Target, events: &[StoredEvent]) -> Result<(), ProjectionError> {
        let counts = target.table(self.name);
        let seen = target.table(&format!("{}_seen", self.name));
        for event in events {
            if event.event_type == "Poison" {
                return Err(ProjectionError::Event {
                    position: event.position,
                    event_type: event.event_type.clone(),
                    reason: "this projection cannot fold poison".into(),
                });
            }
            let upsert = format!(
                "INSERT INTO {counts} (aggregate_id, n) VALUES ($1, $2) \
                 ON CONFLICT (aggregate_id) DO UPDATE SET n = {counts}.n + excluded.n"
            );
            let mark = format!("INSERT INTO {seen} (event_id) VALUES ($1)");
            dispatch!(tx, ReadTx, |conn| {
                sqlx::query(&upsert)
                    .bind(&event.aggregate_id)
                    .bind(self.weight)
                    .execute(&mut **conn)
                    .await?;
                sqlx::query(&mark)
                    .bind(event.event_id.to_string())
                    .execute(&mut **conn)
                    .await?;
            });
        }
        if self.crash_next.swap(false, Ordering::SeqCst) {
            // Everything above was written in the batch's transaction: a crash now must undo it.
            return Err(ProjectionError::Event {
                position: events[0].position,
                event_type: String::new(),
                reason: "simulated crash mid-batch".into(),
            });
        }
        Ok(())
    }
}

async fn append(log: &EventLog, streams: usize, per_stream: usize, event_type: &str) -> Position {
    let batch: Vec<StreamAppend> = (0..streams)
        .map(|s| StreamAppend {
            aggregate_type: "counter".into(),
            aggregate_id: format!("{event_type}-{s}"),
            expected_sequence: 0,
            events: (0..per_stream)
                .map(|i| NewEvent {
                    event_type: event_type.into(),
                    event_version: "1".into(),
                    payload: json!({ "i": i }),
                })
                .collect(),
        })
        .collect();
    let appended = log
        .append_streams(&batch, &EventMetadata::system())
        .await
        .expect("append");
    appended.last().expect("some events").1
}

async fn counts(db: &Db, view: &str) -> Vec<(String, i64)> {
    let sql = format!("SELECT aggregate_id, n FROM {view} ORDER BY aggregate_id");
    dispatch!(db, Db, |pool| {
        sqlx::query(&sql)
            .fetch_all(pool)
            .await
            .expect("read the view")
            .iter()
            .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
            .collect()
    })
}

async fn status_of(engine: &Engine, name: &str) -> projections::ProjectionStatus {
    engine
        .status()
        .await
        .expect("status")
        .into_iter()
        .find(|s| s.name == name)
        .expect("the projection is listed")
}

both_backends! {
    async fn a_batch_that_crashes_half_way_is_undone_and_resumed_exactly_once(db: TestDb) {
        let log = db.log();
        append(&log, 7, 30, "Counted").await;
        let counting = Counting::new("count_a");
        counting.crash_next.store(true, Ordering::SeqCst);
        let engine = Engine::new(log.clone(), vec![Arc::new(counting)], fast());
        engine.prepare().await.unwrap();
        engine.start();
        let head = append(&log, 1, 5, "Late").await;
        assert!(engine.wait_for("count_a", head, Duration::from_secs(20)).await.unwrap());
        engine.shutdown().await;
        // A second process picks up from the checkpoint: nothing more to do, nothing doubled.
        let restarted = Engine::new(log.clone(), vec![Arc::new(Counting::new("count_a"))], fast());
        restarted.catch_up().await.unwrap();
        let rows = counts(&db.db, "count_a").await;
        assert_eq!(rows.len(), 8);
        assert!(rows.iter().all(|(id, n)| *n == if id.starts_with("Late") { 5 } else { 30 }), "{rows:?}");
        let status = status_of(&restarted, "count_a").await;
        assert_eq!(status.events_applied, 7 * 30 + 5);
        assert_eq!(status.state, "running");
        assert_eq!(status.last_error, None);
    }
}

both_backends! {
    async fn a_poison_event_stalls_only_its_projection_at_that_event(db: TestDb) {
        let log = db.log();
        let before = append(&log, 3, 10, "Counted").await;
        // count_a cannot fold the poison event; count_b (below) skips it.
        let poison = log
            .append("counter", "Poison-0", 0, vec![NewEvent { event_type: "Poison".into(), event_version: "1".into(), payload: json!({}) }], &EventMetadata::system())
            .await
            .unwrap()[0]
            .1;
        let after = append(&log, 2, 10, "After").await;
        struct SkipPoison(Counting);
        #[async_trait]
        impl Projection for SkipPoison {
            fn name(&self) -> &'static str { self.0.name() }
            fn version(&self) -> i32 { 1 }
            fn tables(&self) -> &'static [&'static str] { self.0.tables() }
            fn schema(&self, d: Dialect) -> &'static str { self.0.schema(d) }
            async fn apply(&self, tx: &mut ReadTx<'_>, t: &Target, events: &[StoredEvent]) -> Result<(), ProjectionError> {
                let healthy: Vec<StoredEvent> = events.iter().filter(|e| e.event_type != "Poison").cloned().collect();
                self.0.apply(tx, t, &healthy).await
            }
        }
        let engine = Engine::new(
            log.clone(),
            vec![Arc::new(Counting::new("count_a")), Arc::new(SkipPoison(Counting::new("count_b")))],
            fast(),
        );
        engine.prepare().await.unwrap();
        engine.start();
        assert!(engine.wait_for("count_b", after, Duration::from_secs(20)).await.unwrap(), "the healthy projection goes on");
        let stalled = wait_until(Duration::from_secs(20), || async {
            let s = status_of(&engine, "count_a").await;
            s.state == "stalled" && s.position == before
        })
        .await;
        assert!(stalled, "count_a stalls right before the poison event: {:?}", status_of(&engine, "count_a").await);
        let a = status_of(&engine, "count_a").await;
        assert_eq!(a.error_position, Some(poison.to_string()));
        assert!(a.last_error.as_deref().unwrap().contains("cannot fold poison"));
        assert_eq!(a.lag_events, 21);
        let b = status_of(&engine, "count_b").await;
        assert_eq!((b.state.as_str(), b.lag_events), ("running", 0));
        assert_eq!(counts(&db.db, "count_a").await.iter().map(|r| r.1).sum::<i64>(), 30, "the good events before the poison were applied");
        engine.shutdown().await;
    }
}

both_backends! {
    async fn a_rebuilt_read_model_equals_the_incrementally_built_one(db: TestDb) {
        let log = db.log();
        let engine = Engine::new(log.clone(), projections::all(), fast());
        engine.prepare().await.unwrap();
        engine.start();
        let support = EventMetadata { actor: "support:s".into(), ..Default::default() };
        let mut last = Position::START;
        for (i, date) in ["2026-01-01", "2026-02-01", "2026-03-01"].iter().enumerate() {
            let command = domain::policy::PolicyCommand::PublishVersion {
                label: format!("v{i}"),
                effective_date: date.parse().unwrap(),
                locale: "en".into(),
                text_sha256: format!("{i}").repeat(64),
                summary_of_changes: "changes".into(),
            };
            let outcome = log.execute::<domain::policy::PolicyDocument>("privacy-policy", command, &support).await.unwrap();
            last = outcome.position.unwrap();
            last = last.max(append(&log, 20, 3, &format!("Other{i}")).await);
        }
        assert!(engine.wait_for("stream_index", last, Duration::from_secs(20)).await.unwrap());
        assert!(engine.wait_for("policy_versions", last, Duration::from_secs(20)).await.unwrap());
        let snapshot = |view: &'static str| {
            let db = db.db.clone();
            async move {
                let sql = match view {
                    "policy_versions" => "SELECT document_id || '|' || version_number || '|' || label || '|' || effective_date || '|' || text_sha256 || '|' || published_at || '|' || published_by FROM policy_versions ORDER BY document_id, version_number",
                    _ => "SELECT aggregate_type || '|' || aggregate_id || '|' || events || '|' || last_sequence || '|' || last_recorded_at FROM stream_index ORDER BY aggregate_type, aggregate_id",
                };
                dispatch!(&db, Db, |pool| sqlx::query_scalar::<_, String>(sql).fetch_all(pool).await.unwrap())
            }
        };
        let live_versions = snapshot("policy_versions").await;
        let live_streams = snapshot("stream_index").await;
        assert_eq!(live_versions.len(), 3);
        assert_eq!(live_streams.len(), 61);
        let before = status_of(&engine, "stream_index").await.generation;
        let report = engine.rebuild("stream_index", |_| {}).await.unwrap();
        engine.rebuild("policy_versions", |_| {}).await.unwrap();
        assert_eq!(report.events, 3 + 3 * 60);
        assert_ne!(Some(report.generation), before);
        assert_eq!(snapshot("policy_versions").await, live_versions);
        assert_eq!(snapshot("stream_index").await, live_streams);
        // The live worker follows the new generation.
        let next = append(&log, 1, 1, "AfterRebuild").await;
        assert!(engine.wait_for("stream_index", next, Duration::from_secs(20)).await.unwrap());
        assert_eq!(snapshot("stream_index").await.len(), 62);
        engine.shutdown().await;
    }
}

both_backends! {
    async fn a_new_projection_version_rebuilds_beside_the_old_and_takes_over(db: TestDb) {
        let log = db.log();
        let head = append(&log, 4, 5, "Counted").await;
        let v1 = Engine::new(log.clone(), vec![Arc::new(Counting::new("count_a"))], fast());
        v1.catch_up().await.unwrap();
        assert!(counts(&db.db, "count_a").await.iter().all(|r| r.1 == 5));
        let first = status_of(&v1, "count_a").await.generation;
        let v2 = Engine::new(
            log.clone(),
            vec![Arc::new(Counting { version: 2, weight: 10, ..Counting::new("count_a") })],
            fast(),
        );
        v2.start();
        let took_over = wait_until(Duration::from_secs(20), || async {
            let s = status_of(&v2, "count_a").await;
            s.generation != first && s.position == head && s.rebuilding.is_none()
        })
        .await;
        assert!(took_over, "{:?}", status_of(&v2, "count_a").await);
        assert!(counts(&db.db, "count_a").await.iter().all(|r| r.1 == 50), "the view serves version 2");
        v2.shutdown().await;
    }
}

both_backends! {
    async fn waiting_for_a_position_ends_when_applied_or_when_the_bound_passes(db: TestDb) {
        let log = db.log();
        let engine = Engine::new(log.clone(), vec![Arc::new(Counting::new("count_a"))], fast());
        engine.prepare().await.unwrap();
        engine.start();
        let position = append(&log, 1, 1, "Counted").await;
        assert!(engine.wait_for("count_a", position, Duration::from_secs(20)).await.unwrap());
        assert_eq!(counts(&db.db, "count_a").await, vec![("Counted-0".to_string(), 1)]);
        let future = Position { commit: position.commit + 1_000_000, global: position.global + 1_000_000 };
        let started = std::time::Instant::now();
        assert!(!engine.wait_for("count_a", future, Duration::from_millis(150)).await.unwrap());
        assert!(started.elapsed() >= Duration::from_millis(150));
        engine.shutdown().await;
    }
}

both_backends! {
    async fn a_rebuild_of_100000_events_counts_every_one(db: TestDb) {
        let log = db.log();
        for batch in 0..100 {
            let streams: Vec<StreamAppend> = (0..10)
                .map(|s| StreamAppend {
                    aggregate_type: "bulk".into(),
                    aggregate_id: format!("b{batch}-{s}"),
                    expected_sequence: 0,
                    events: (0..100)
                        .map(|i| NewEvent { event_type: "Bulk".into(), event_version: "1".into(), payload: json!({ "i": i }) })
                        .collect(),
                })
                .collect();
            log.append_streams(&streams, &EventMetadata::system()).await.unwrap();
        }
        let engine = Engine::new(log.clone(), projections::all(), EngineConfig::default());
        engine.prepare().await.unwrap();
        let report = engine.rebuild("stream_index", |_| {}).await.unwrap();
        assert_eq!(report.events, 100_000);
        let total: i64 = dispatch!(&db.db, Db, |pool| sqlx::query_scalar("SELECT CAST(SUM(events) AS BIGINT) FROM stream_index").fetch_one(pool).await.unwrap());
        assert_eq!(total, 100_000);
        eprintln!(
            "rebuild {:?}: events=100000 elapsed={:.2}s rate={:.0}/s",
            db.db.dialect(),
            report.elapsed.as_secs_f64(),
            100_000.0 / report.elapsed.as_secs_f64()
        );
    }
}
