//! [`EventLog`]: append, load, and the global feed, over whichever backend is configured.

use crate::event::PreparedEvent;
use crate::{chain, postgres, sqlite, Db, EventMetadata, LogError, Position, StoredEvent, StreamAppend};
use chrono::{DateTime, SubsecRound, Utc};
use std::sync::Arc;
use tokio::sync::watch;
use uuid::Uuid;

/// The event log. Cheap to clone; clones share the pool and the wake-up channel.
#[derive(Clone, Debug)]
pub struct EventLog {
    db: Db,
    /// Bumped after every commit made through this process, so feed readers here wake at once.
    /// Readers also poll, which covers commits made by other processes.
    appended: Arc<watch::Sender<u64>>,
}

/// The newest visible place in the feed, and how many events lie after a given cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeedHead {
    pub head: Option<Position>,
    pub events_after: i64,
    pub oldest_after: Option<DateTime<Utc>>,
}

impl EventLog {
    /// Wraps a connected database. Migrations are applied separately ([`Db::migrate`]).
    pub fn new(db: Db) -> EventLog {
        EventLog {
            db,
            appended: Arc::new(watch::channel(0).0),
        }
    }

    /// The database under the log; read models and checkpoints live in it too.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Appends one aggregate's events after `expected_sequence`, in one statement and one
    /// commit. Returns each event's id and position; the last position is the consistency token.
    pub async fn append(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        expected_sequence: i64,
        events: Vec<crate::NewEvent>,
        metadata: &EventMetadata,
    ) -> Result<Vec<(Uuid, Position)>, LogError> {
        let stream = StreamAppend {
            aggregate_type: aggregate_type.to_string(),
            aggregate_id: aggregate_id.to_string(),
            expected_sequence,
            events,
        };
        self.append_streams(std::slice::from_ref(&stream), metadata).await
    }

    /// Appends the events of several aggregates in one statement and one commit: all of them or
    /// none (a conflict on any stream refuses the whole batch). The previous link of each
    /// stream's hash chain is looked up first; [`EventLog::append_after`] skips that lookup.
    pub async fn append_streams(
        &self,
        streams: &[StreamAppend],
        metadata: &EventMetadata,
    ) -> Result<Vec<(Uuid, Position)>, LogError> {
        let wanted: Vec<(&str, &str, i64)> = streams
            .iter()
            .map(|s| (s.aggregate_type.as_str(), s.aggregate_id.as_str(), s.expected_sequence))
            .collect();
        let previous = if wanted.iter().any(|w| w.2 > 0) {
            chain::heads(&self.db, &wanted).await?
        } else {
            vec![None; streams.len()]
        };
        self.append_linked(streams, &previous, metadata).await
    }

    /// Appends one aggregate's events after the event whose chain hash is `previous_hash`
    /// (`None` for a new aggregate): what a command does after loading the aggregate.
    pub async fn append_after(
        &self,
        stream: &StreamAppend,
        previous_hash: Option<String>,
        metadata: &EventMetadata,
    ) -> Result<Vec<(Uuid, Position)>, LogError> {
        self.append_linked(std::slice::from_ref(stream), &[previous_hash], metadata)
            .await
    }

    /// Appends several aggregates' events after the heads the caller loaded (`previous[i]` is
    /// the chain hash of stream `i`'s last event, `None` for a new stream): one statement, one
    /// commit, no lookup. What bulk commands use after [`EventLog::load_many`].
    pub async fn append_streams_after(
        &self,
        streams: &[StreamAppend],
        previous: &[Option<String>],
        metadata: &EventMetadata,
    ) -> Result<Vec<(Uuid, Position)>, LogError> {
        self.append_linked(streams, previous, metadata).await
    }

    async fn append_linked(
        &self,
        streams: &[StreamAppend],
        previous: &[Option<String>],
        metadata: &EventMetadata,
    ) -> Result<Vec<(Uuid, Position)>, LogError> {
        let count: usize = streams.iter().map(|s| s.events.len()).sum();
        if count == 0 {
            return Ok(Vec::new());
        }
        // Microseconds: what both backends store, so a read gives back exactly what was written.
        let recorded_at = Utc::now().trunc_subsecs(6);
        let metadata_text = serde_json::to_string(metadata)?;
        let mut rows = Vec::with_capacity(count);
        for (stream, previous) in streams.iter().zip(previous) {
            let mut link = previous.clone();
            for (i, event) in stream.events.iter().enumerate() {
                let payload = serde_json::to_string(&event.payload)?;
                let event_id = Uuid::now_v7();
                let sequence = stream.expected_sequence + 1 + i as i64;
                let hash = chain::link(
                    link.as_deref(),
                    &chain::Link {
                        aggregate_type: &stream.aggregate_type,
                        aggregate_id: &stream.aggregate_id,
                        sequence,
                        event_type: &event.event_type,
                        event_version: &event.event_version,
                        event_id: &event_id.to_string(),
                        recorded_at,
                        payload: &payload,
                        metadata: &metadata_text,
                    },
                );
                rows.push(PreparedEvent {
                    aggregate_type: stream.aggregate_type.clone(),
                    aggregate_id: stream.aggregate_id.clone(),
                    sequence,
                    event_type: event.event_type.clone(),
                    event_version: event.event_version.clone(),
                    payload,
                    event_id,
                    chain_hash: hash.clone(),
                });
                link = Some(hash);
            }
        }
        let appended = match &self.db {
            Db::Postgres(pool) => postgres::append(pool, &rows, &metadata_text, recorded_at, streams).await?,
            Db::Sqlite(pool) => sqlite::append(pool, &rows, &metadata_text, recorded_at, streams).await?,
        };
        metrics::counter!("dynamoi_events_appended_total").increment(count as u64);
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
        Ok(appended)
    }

    /// Every event of one aggregate, in sequence order.
    pub async fn load(&self, aggregate_type: &str, aggregate_id: &str) -> Result<Vec<StoredEvent>, LogError> {
        match &self.db {
            Db::Postgres(pool) => postgres::load(pool, aggregate_type, aggregate_id).await,
            Db::Sqlite(pool) => sqlite::load(pool, aggregate_type, aggregate_id).await,
        }
    }

    /// Every event of several aggregates of one type, in one query: grouped by aggregate, each
    /// in sequence order. What bulk commands load before deciding.
    pub async fn load_many(
        &self,
        aggregate_type: &str,
        aggregate_ids: &[String],
    ) -> Result<Vec<StoredEvent>, LogError> {
        if aggregate_ids.is_empty() {
            return Ok(Vec::new());
        }
        match &self.db {
            Db::Postgres(pool) => postgres::load_many(pool, aggregate_type, aggregate_ids).await,
            Db::Sqlite(pool) => sqlite::load_many(pool, aggregate_type, aggregate_ids).await,
        }
    }

    /// Up to `limit` committed events after `after`, in commit order. Resuming from the last
    /// position returned never skips or repeats an event, whatever writers do meanwhile.
    pub async fn read_feed(&self, after: Position, limit: usize) -> Result<Vec<StoredEvent>, LogError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        match &self.db {
            Db::Postgres(pool) => postgres::read_feed(pool, after, limit).await,
            Db::Sqlite(pool) => sqlite::read_feed(pool, after, limit).await,
        }
    }

    /// The newest visible position, and how many events (and since when) lie after `after`.
    pub async fn head(&self, after: Position) -> Result<FeedHead, LogError> {
        let (head, (events_after, oldest_after)) = match &self.db {
            Db::Postgres(pool) => (postgres::head(pool).await?, postgres::count_after(pool, after).await?),
            Db::Sqlite(pool) => (sqlite::head(pool).await?, sqlite::count_after(pool, after).await?),
        };
        Ok(FeedHead {
            head,
            events_after,
            oldest_after,
        })
    }

    /// A receiver that changes after every commit this process makes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), LogError> {
        self.db.ping().await
    }
}
