//! cqrs-es and postgres-es compatibility (issue 15, part B): a cqrs-es aggregate decided with
//! cqrs-es's own `TestFramework`, then run through `CqrsFramework` on dynamoi's log
//! (`cqrs_store`) on both backends, its events in the global feed with verified hash chains and
//! a stale commit refused as cqrs-es's optimistic-lock error; postgres-es's
//! `PostgresEventRepository` loading what dynamoi wrote (the same types, versions, payloads and
//! sequences); and events written through postgres-es reaching dynamoi's feed and its read
//! models (`stream_index`), and reported by `audit verify` as written outside dynamoi, not as
//! tampering.

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{PersistedEventRepository, PersistenceError, SerializedEvent};
use cqrs_es::test::TestFramework;
use cqrs_es::{Aggregate, AggregateError, CqrsFramework, DomainEvent};
use eventlog::{EventLog, Position};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tests::{both_backends, TestDb};

/// A cqrs-es team's aggregate, as they would write it: a playlist of tracks that can be closed.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Playlist {
    tracks: Vec<String>,
    closed: bool,
}

enum PlaylistCommand {
    AddTrack { track: String },
    Close,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum PlaylistEvent {
    TrackAdded { track: String },
    PlaylistClosed,
}

impl DomainEvent for PlaylistEvent {
    fn event_type(&self) -> String {
        match self {
            PlaylistEvent::TrackAdded { .. } => "TrackAdded",
            PlaylistEvent::PlaylistClosed => "PlaylistClosed",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

#[derive(Debug, thiserror::Error)]
enum PlaylistError {
    #[error("the playlist is closed")]
    Closed,
    #[error("{0} is already on the playlist")]
    AlreadyThere(String),
}

impl Aggregate for Playlist {
    const TYPE: &'static str = "playlist";
    type Command = PlaylistCommand;
    type Event = PlaylistEvent;
    type Error = PlaylistError;
    type Services = ();

    async fn handle(&mut self, command: PlaylistCommand, _: &(), sink: &EventSink<Self>) -> Result<(), PlaylistError> {
        if self.closed {
            return Err(PlaylistError::Closed);
        }
        match command {
            PlaylistCommand::AddTrack { track } if self.tracks.contains(&track) => {
                return Err(PlaylistError::AlreadyThere(track));
            }
            PlaylistCommand::AddTrack { track } => sink.write(PlaylistEvent::TrackAdded { track }, self).await,
            PlaylistCommand::Close => sink.write(PlaylistEvent::PlaylistClosed, self).await,
        }
        Ok(())
    }

    fn apply(&mut self, event: PlaylistEvent) {
        match event {
            PlaylistEvent::TrackAdded { track } => self.tracks.push(track),
            PlaylistEvent::PlaylistClosed => self.closed = true,
        }
    }
}

fn added(track: &str) -> PlaylistEvent {
    PlaylistEvent::TrackAdded { track: track.into() }
}

#[test]
fn the_aggregate_decides_under_cqrs_es_test_framework() {
    TestFramework::<Playlist>::with(())
        .given_no_previous_events()
        .when(PlaylistCommand::AddTrack { track: "Ghazal".into() })
        .then_expect_events(vec![added("Ghazal")]);
    TestFramework::<Playlist>::with(())
        .given(vec![added("Ghazal")])
        .when(PlaylistCommand::AddTrack { track: "Ghazal".into() })
        .then_expect_error_message("Ghazal is already on the playlist");
    TestFramework::<Playlist>::with(())
        .given(vec![added("Ghazal"), PlaylistEvent::PlaylistClosed])
        .when(PlaylistCommand::Close)
        .then_expect_error_message("the playlist is closed");
}

/// Every event of the feed, in order, once it shows at least `at_least` events of `stream`
/// (on PostgreSQL the feed shows a commit once no older transaction is still open).
async fn feed(log: &EventLog, stream: &str, at_least: usize) -> Vec<eventlog::StoredEvent> {
    let read = || async { log.read_feed(Position::START, 10_000).await.expect("read the feed") };
    let count = |events: &[eventlog::StoredEvent]| events.iter().filter(|e| e.aggregate_id == stream).count();
    tests::wait_until(std::time::Duration::from_secs(30), || async {
        count(&read().await) >= at_least
    })
    .await;
    read().await
}

/// A playlist of two tracks, closed, written through `CqrsFramework` on dynamoi's log.
async fn write_playlist(log: &EventLog, id: &str) {
    let cqrs = CqrsFramework::new(cqrs_store::event_store::<Playlist>(log.clone()), vec![], ());
    let metadata = HashMap::from([("actor".to_string(), "service:playlists".to_string())]);
    for track in ["Ghazal", "Qawwali"] {
        cqrs.execute_with_metadata(id, PlaylistCommand::AddTrack { track: track.into() }, metadata.clone())
            .await
            .expect("the track is added");
    }
    cqrs.execute(id, PlaylistCommand::Close)
        .await
        .expect("the playlist closes");
}

both_backends! {
    async fn a_cqrs_es_application_runs_on_dynamoi_log(db: TestDb) {
        let log = db.log();
        write_playlist(&log, "pl-1").await;

        // A refused command is cqrs-es's user error, and writes nothing.
        let cqrs = CqrsFramework::new(cqrs_store::event_store::<Playlist>(log.clone()), vec![], ());
        match cqrs.execute("pl-1", PlaylistCommand::AddTrack { track: "Late".into() }).await {
            Err(AggregateError::UserError(PlaylistError::Closed)) => {}
            other => panic!("a closed playlist must refuse a track: {other:?}"),
        }

        // The events are dynamoi's: in the stream, in the global feed, with verified chains.
        let stored = log.load("playlist", "pl-1").await.expect("load the stream");
        let shapes: Vec<(i64, &str, &str)> = stored
            .iter()
            .map(|e| (e.sequence, e.event_type.as_str(), e.event_version.as_str()))
            .collect();
        assert_eq!(
            shapes,
            vec![(1, "TrackAdded", "1.0"), (2, "TrackAdded", "1.0"), (3, "PlaylistClosed", "1.0")]
        );
        assert_eq!(stored[0].payload, serde_json::json!({"TrackAdded": {"track": "Ghazal"}}));
        assert_eq!(stored[0].metadata.actor, "service:playlists");
        assert_eq!(stored[2].metadata.actor, "cqrs-es");
        let in_feed = feed(&log, "pl-1", 3)
            .await
            .into_iter()
            .filter(|e| e.aggregate_type == "playlist")
            .count();
        assert_eq!(in_feed, 3, "every event reaches the global feed");
        let verified = log.verify_stream("playlist", "pl-1").await.expect("verify");
        assert_eq!((verified.broken, verified.written_outside.len()), (None, 0));

        // A commit decided on an old version of the aggregate is cqrs-es's optimistic-lock error.
        let repository = cqrs_store::DynamoiEventRepository::new(log.clone());
        let stale = SerializedEvent {
            aggregate_id: "pl-1".into(),
            sequence: 3,
            aggregate_type: "playlist".into(),
            event_type: "TrackAdded".into(),
            event_version: "1.0".into(),
            payload: serde_json::json!({"TrackAdded": {"track": "Racing"}}),
            metadata: serde_json::json!({}),
        };
        match repository.persist::<Playlist>(&[stale], None).await {
            Err(PersistenceError::OptimisticLockError) => {}
            other => panic!("a stale commit must conflict: {other:?}"),
        }
        assert_eq!(log.load("playlist", "pl-1").await.expect("load").len(), 3);
    }
}

/// postgres-es's repository over the test's PostgreSQL database (the `events` table).
async fn postgres_es(db: &TestDb) -> postgres_es::PostgresEventRepository {
    let pool = postgres_es::default_postgress_pool(&db.url).await;
    postgres_es::PostgresEventRepository::new(pool)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_es_loads_what_dynamoi_wrote_and_dynamoi_reads_what_postgres_es_wrote() {
    let Some(db) = TestDb::postgres().await else { return };
    let log = db.log();
    write_playlist(&log, "pl-1").await;
    let repository = postgres_es(&db).await;

    // postgres-es reads dynamoi's rows: the same types, versions, payloads and sequences.
    let theirs = repository
        .get_events::<Playlist>("pl-1")
        .await
        .expect("postgres-es loads the aggregate");
    let ours = cqrs_store::DynamoiEventRepository::new(log.clone())
        .get_events::<Playlist>("pl-1")
        .await
        .expect("dynamoi loads it");
    let shape = |events: &[SerializedEvent]| -> Vec<(usize, String, String, serde_json::Value)> {
        events
            .iter()
            .map(|e| {
                (
                    e.sequence,
                    e.event_type.clone(),
                    e.event_version.clone(),
                    e.payload.clone(),
                )
            })
            .collect()
    };
    assert_eq!(theirs.len(), 3);
    assert_eq!(shape(&theirs), shape(&ours));
    // And a cqrs-es application on postgres-es rebuilds the same aggregate from them.
    let store = cqrs_es::persist::PersistedEventStore::<_, Playlist>::new_event_store(postgres_es(&db).await);
    let context = cqrs_es::EventStore::load_aggregate(&store, "pl-1").await.expect("load");
    let mut context = context;
    let playlist = cqrs_es::AggregateContext::aggregate(&mut context);
    assert_eq!(
        (playlist.tracks.clone(), playlist.closed),
        (vec!["Ghazal".to_string(), "Qawwali".to_string()], true)
    );

    // Events postgres-es writes reach dynamoi's feed, and `audit verify` reports them as
    // written outside dynamoi (no chain hash), not as tampering; dynamoi appends after them.
    let foreign = SerializedEvent {
        aggregate_id: "pl-2".into(),
        sequence: 1,
        aggregate_type: "playlist".into(),
        event_type: "TrackAdded".into(),
        event_version: "1.0".into(),
        payload: serde_json::json!({"TrackAdded": {"track": "Sufi"}}),
        metadata: serde_json::json!({}),
    };
    repository
        .persist::<Playlist>(&[foreign], None)
        .await
        .expect("postgres-es writes");
    let cqrs = CqrsFramework::new(cqrs_store::event_store::<Playlist>(log.clone()), vec![], ());
    cqrs.execute(
        "pl-2",
        PlaylistCommand::AddTrack {
            track: "Dhamaal".into(),
        },
    )
    .await
    .expect("dynamoi appends after the foreign event");
    let in_feed: Vec<(String, i64)> = feed(&log, "pl-2", 2)
        .await
        .into_iter()
        .filter(|e| e.aggregate_id == "pl-2")
        .map(|e| (e.event_type, e.sequence))
        .collect();
    assert_eq!(
        in_feed,
        vec![("TrackAdded".to_string(), 1), ("TrackAdded".to_string(), 2)],
        "postgres-es's event is in the feed, in order"
    );
    // And in the read models: the engine's `stream_index` counts both events of the stream.
    let engine = projections::Engine::new(log.clone(), projections::all(), projections::EngineConfig::default());
    engine.catch_up().await.expect("the projections apply the feed");
    let indexed = db
        .count("SELECT events FROM stream_index WHERE aggregate_type = 'playlist' AND aggregate_id = 'pl-2'")
        .await;
    assert_eq!(indexed, 2, "the projections saw postgres-es's event and dynamoi's");
    let verified = log.verify_stream("playlist", "pl-2").await.expect("verify");
    assert_eq!(verified.broken, None, "a row written outside dynamoi is not tampering");
    assert_eq!(verified.written_outside, vec![1]);

    // Tampering is still tampering: an altered dynamoi row breaks its chain.
    db.execute("UPDATE events SET payload = '{\"TrackAdded\":{\"track\":\"Forged\"}}' WHERE aggregate_id = 'pl-2' AND sequence = 2")
        .await;
    let verified = log.verify_stream("playlist", "pl-2").await.expect("verify");
    assert_eq!(verified.broken.map(|b| b.sequence), Some(2));
}
