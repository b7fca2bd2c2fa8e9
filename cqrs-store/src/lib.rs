//! dynamoi's event log as a cqrs-es 0.5 event store. [`DynamoiEventRepository`] implements
//! cqrs-es's `PersistedEventRepository` over [`eventlog::EventLog`], so
//! `PersistedEventStore::new_event_store(repository)` (or [`event_store`]) gives a cqrs-es
//! application's `CqrsFramework` dynamoi's log on SQLite, PostgreSQL or KurrentDB: its events
//! get a place in the global feed (so dynamoi's projection engine and any feed reader see them),
//! a link in their stream's hash chain, and optimistic concurrency per aggregate.
//!
//! The mapping: a cqrs-es aggregate's `TYPE` is the stream's aggregate type, its id the
//! aggregate id, and each event is stored with cqrs-es's own `event_type()`, `event_version()`
//! and serialised payload, unchanged (so cqrs-es's upcasters work as they do on postgres-es).
//! cqrs-es metadata (a map of strings) goes into dynamoi's metadata: `actor` (default
//! `cqrs-es`), `request_id` and `causation_id` are kept; other keys are not stored, and loading
//! gives back the keys dynamoi holds. Snapshots are not supported: the store is always the
//! source of truth (`new_event_store`), and a snapshot update is refused.

use cqrs_es::persist::{
    PersistedEventRepository, PersistedEventStore, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use eventlog::{EventLog, EventMetadata, LogError, NewEvent, Position, StoredEvent};
use serde_json::{Map, Value};

/// Events read per round trip when replaying every event of an aggregate type.
const FEED_BATCH: usize = 1000;

/// cqrs-es's event repository over dynamoi's log.
#[derive(Clone, Debug)]
pub struct DynamoiEventRepository {
    log: EventLog,
}

impl DynamoiEventRepository {
    pub fn new(log: EventLog) -> Self {
        DynamoiEventRepository { log }
    }
}

/// A cqrs-es event store for aggregate `A` on dynamoi's log.
pub fn event_store<A: Aggregate>(log: EventLog) -> PersistedEventStore<DynamoiEventRepository, A> {
    PersistedEventStore::new_event_store(DynamoiEventRepository::new(log))
}

fn unknown(error: impl std::error::Error + Send + Sync + 'static) -> PersistenceError {
    PersistenceError::UnknownError(Box::new(error))
}

fn from_log(error: LogError) -> PersistenceError {
    match error {
        LogError::Conflict { .. } => PersistenceError::OptimisticLockError,
        other => PersistenceError::UnknownError(Box::new(other)),
    }
}

/// A stored event as cqrs-es sees it.
fn serialized(event: StoredEvent) -> Result<SerializedEvent, PersistenceError> {
    let sequence = usize::try_from(event.sequence).map_err(unknown)?;
    let mut metadata = Map::new();
    metadata.insert("actor".into(), Value::String(event.metadata.actor));
    if let Some(request_id) = event.metadata.request_id {
        metadata.insert("request_id".into(), Value::String(request_id));
    }
    if let Some(causation_id) = event.metadata.causation_id {
        metadata.insert("causation_id".into(), Value::String(causation_id));
    }
    Ok(SerializedEvent {
        aggregate_id: event.aggregate_id,
        sequence,
        aggregate_type: event.aggregate_type,
        event_type: event.event_type,
        event_version: event.event_version,
        payload: event.payload,
        metadata: Value::Object(metadata),
    })
}

/// cqrs-es metadata (a JSON object of strings) as dynamoi's.
fn metadata_of(metadata: &Value) -> EventMetadata {
    let text = |key: &str| metadata.get(key).and_then(Value::as_str).map(str::to_string);
    EventMetadata {
        actor: text("actor").unwrap_or_else(|| "cqrs-es".into()),
        request_id: text("request_id"),
        causation_id: text("causation_id"),
    }
}

/// A replay stream already holding `events`.
async fn replay(events: Vec<SerializedEvent>) -> Result<ReplayStream, PersistenceError> {
    let (mut feed, stream) = ReplayStream::new(events.len().max(1));
    for event in events {
        feed.push(Ok(event)).await?;
    }
    Ok(stream)
}

impl PersistedEventRepository for DynamoiEventRepository {
    async fn get_events<A: Aggregate>(&self, aggregate_id: &str) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let events = self.log.load(A::TYPE, aggregate_id).await.map_err(from_log)?;
        events.into_iter().map(serialized).collect()
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let events = self.get_events::<A>(aggregate_id).await?;
        Ok(events.into_iter().filter(|e| e.sequence > last_sequence).collect())
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        _aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        Ok(None)
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        if snapshot_update.is_some() {
            return Err(PersistenceError::UnknownError(
                "dynamoi's log keeps no snapshots: build the store with new_event_store".into(),
            ));
        }
        let Some(first) = events.first() else {
            return Ok(());
        };
        let expected = i64::try_from(first.sequence).map_err(unknown)? - 1;
        let new_events = events
            .iter()
            .map(|e| NewEvent::json(&e.event_type, &e.event_version, &e.payload))
            .collect();
        self.log
            .append(
                A::TYPE,
                &first.aggregate_id,
                expected,
                new_events,
                &metadata_of(&first.metadata),
            )
            .await
            .map_err(from_log)?;
        Ok(())
    }

    async fn stream_events<A: Aggregate>(&self, aggregate_id: &str) -> Result<ReplayStream, PersistenceError> {
        replay(self.get_events::<A>(aggregate_id).await?).await
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        // Every event of the aggregate type, in the feed's (commit) order.
        let mut events = Vec::new();
        let mut after = Position::START;
        loop {
            let batch = self.log.read_feed(after, FEED_BATCH).await.map_err(from_log)?;
            let Some(last) = batch.last() else { break };
            after = last.position;
            for event in batch {
                if event.aggregate_type == A::TYPE {
                    events.push(serialized(event)?);
                }
            }
        }
        replay(events).await
    }
}
