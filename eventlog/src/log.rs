//! [`EventLog`]: append, load, and the global feed, over whichever backend is configured.

use crate::aggregate_cache::Cached;
use crate::event::PreparedEvent;
use crate::kept_connections::{KeptConnections, PgReader, Reader, SqliteReader};
use crate::{chain, postgres, sqlite, Db, EventMetadata, KurrentStore, LogError, Position, StoredEvent, StreamAppend};
use chrono::{DateTime, SubsecRound, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;
use uuid::Uuid;

/// The event log. Cheap to clone; clones share the pool and the wake-up channel.
#[derive(Clone, Debug)]
pub struct EventLog {
    db: Db,
    /// When set, events live in KurrentDB and `db` holds everything else.
    kurrent: Option<KurrentStore>,
    /// The one clock: `recorded_at` of every event comes from it.
    clock: clock::SharedClock,
    /// Bumped after every commit made through this process, so feed readers here wake at once.
    /// Readers also poll, which covers commits made by other processes.
    appended: Arc<watch::Sender<u64>>,
    /// Commands on one aggregate take turns in this process ([`crate::locks`]).
    locks: Arc<crate::locks::AggregateLocks>,
    /// The state of recently commanded aggregates ([`crate::aggregate_cache`]).
    aggregates: Arc<crate::aggregate_cache::AggregateCache>,
    /// On PostgreSQL, the connections one-statement appends and reads hold
    /// ([`crate::kept_connections`]).
    kept_connections: Option<Arc<KeptConnections>>,
}

/// Where the events of an [`EventLog`] are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    KurrentDb,
}

/// The newest visible place in the feed, and how many events lie after a given cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeedHead {
    pub head: Option<Position>,
    pub events_after: i64,
    pub oldest_after: Option<DateTime<Utc>>,
}

/// What holds the feed back (PostgreSQL only; nothing on SQLite, whose one writer commits in
/// order, or on KurrentDB, whose `$all` is commit-ordered).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FeedHoldback {
    /// Committed events the feed does not show yet, because a transaction that writes events
    /// and began before they committed is still open.
    pub held_back_events: i64,
    /// How long the oldest open transaction that writes events has been open, in seconds.
    pub oldest_writer_seconds: Option<f64>,
}

impl EventLog {
    /// Wraps a connected database, stamping events with the system clock. Migrations are
    /// applied separately ([`Db::migrate`]).
    pub fn new(db: Db) -> EventLog {
        EventLog::with_clock(db, clock::system())
    }

    /// Wraps a connected database, stamping events with `clock`.
    pub fn with_clock(db: Db, clock: clock::SharedClock) -> EventLog {
        let kept_connections = match &db {
            Db::Postgres(pool) => Some(Arc::new(KeptConnections::beside(pool))),
            Db::Sqlite(_) => None,
        };
        EventLog {
            db,
            kept_connections,
            kurrent: None,
            clock,
            appended: Arc::new(watch::channel(0).0),
            locks: Arc::default(),
            aggregates: Arc::default(),
        }
    }

    /// Where a read model's one-statement read runs: on PostgreSQL, a connection the log keeps
    /// beside the pool when one is free ([`crate::kept_connections`]: no release ping), else the
    /// pool; on SQLite, the pool.
    pub fn reader(&self) -> Reader<'_> {
        match &self.db {
            Db::Postgres(pool) => Reader::Postgres(PgReader {
                pool,
                kept: self.kept_connections.as_deref(),
            }),
            Db::Sqlite(pool) => Reader::Sqlite(SqliteReader(pool)),
        }
    }

    /// The per-aggregate turns of commands in this process.
    pub fn locks(&self) -> &crate::locks::AggregateLocks {
        &self.locks
    }

    /// The same log keeping at most `capacity` commanded aggregates' states (0: none, every
    /// command loads its stream). The default is [`crate::aggregate_cache::DEFAULT_CAPACITY`].
    pub fn with_aggregate_cache(mut self, capacity: usize) -> EventLog {
        self.aggregates = Arc::new(crate::aggregate_cache::AggregateCache::new(capacity));
        self
    }

    /// The state of recently commanded aggregates.
    pub fn aggregates(&self) -> &crate::aggregate_cache::AggregateCache {
        &self.aggregates
    }

    /// Events in KurrentDB (`store`); read models, checkpoints and the rest in `db`.
    pub fn with_kurrent(db: Db, store: KurrentStore, clock: clock::SharedClock) -> EventLog {
        EventLog {
            db,
            kurrent: Some(store),
            kept_connections: None,
            clock,
            appended: Arc::new(watch::channel(0).0),
            locks: Arc::default(),
            aggregates: Arc::default(),
        }
    }

    /// The KurrentDB store, when the events live there.
    pub fn kurrent(&self) -> Option<&KurrentStore> {
        self.kurrent.as_ref()
    }

    /// Where the events are stored.
    pub fn backend(&self) -> Backend {
        match (&self.kurrent, &self.db) {
            (Some(_), _) => Backend::KurrentDb,
            (None, Db::Postgres(_)) => Backend::Postgres,
            (None, Db::Sqlite(_)) => Backend::Sqlite,
        }
    }

    /// The clock events are stamped with.
    pub fn clock(&self) -> &clock::SharedClock {
        &self.clock
    }

    /// The current instant, from the log's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The SQL database: read models and checkpoints live in it, and the events too unless they
    /// live in KurrentDB.
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
    ///
    /// On KurrentDB (whose client has no multi-stream atomic append) the batch is checked first
    /// (a stream named twice, or any stream not at its expected sequence, refuses it with
    /// nothing written), then written as one append per stream, in input order, each atomic and
    /// checked against its expected revision. A writer racing in between the check and the
    /// appends can make a later stream conflict after earlier ones were written: the earlier
    /// streams then hold their events (each a complete, valid decision) and the call answers
    /// [`LogError::Conflict`]; a command decided again from the log sees them.
    pub async fn append_streams(
        &self,
        streams: &[StreamAppend],
        metadata: &EventMetadata,
    ) -> Result<Vec<(Uuid, Position)>, LogError> {
        let wanted: Vec<(&str, &str, i64)> = streams
            .iter()
            .map(|s| (s.aggregate_type.as_str(), s.aggregate_id.as_str(), s.expected_sequence))
            .collect();
        let previous = if let Some(store) = &self.kurrent {
            store.heads(&wanted).await?
        } else if wanted.iter().any(|w| w.2 > 0) {
            chain::heads(&self.db, &wanted).await?
        } else {
            vec![None; streams.len()]
        };
        Ok(self.append_linked(streams, &previous, metadata).await?.0)
    }

    /// Appends one aggregate's events after the event whose chain hash is `previous_hash`
    /// (`None` for a new aggregate): what a command does after loading the aggregate.
    pub async fn append_after(
        &self,
        stream: &StreamAppend,
        previous_hash: Option<String>,
        metadata: &EventMetadata,
    ) -> Result<Vec<(Uuid, Position)>, LogError> {
        Ok(self.append_after_with_head(stream, previous_hash, metadata).await?.0)
    }

    /// [`EventLog::append_after`], also giving the chain hash of the stream's new last event
    /// (what the next append follows; the aggregate cache keeps it).
    pub(crate) async fn append_after_with_head(
        &self,
        stream: &StreamAppend,
        previous_hash: Option<String>,
        metadata: &EventMetadata,
    ) -> Result<(Vec<(Uuid, Position)>, Option<String>), LogError> {
        let (appended, mut heads) = self
            .append_linked(std::slice::from_ref(stream), &[previous_hash], metadata)
            .await?;
        Ok((appended, heads.pop().flatten()))
    }

    /// Appends several aggregates' events after the heads the caller loaded (`previous[i]` is
    /// the chain hash of stream `i`'s last event, `None` for a new stream): one transaction, one
    /// commit, no lookup. What bulk commands use after [`EventLog::load_states`].
    pub async fn append_streams_after(
        &self,
        streams: &[StreamAppend],
        previous: &[Option<String>],
        metadata: &EventMetadata,
    ) -> Result<Vec<(Uuid, Position)>, LogError> {
        Ok(self.append_linked(streams, previous, metadata).await?.0)
    }

    async fn append_linked(
        &self,
        streams: &[StreamAppend],
        previous: &[Option<String>],
        metadata: &EventMetadata,
    ) -> Result<(Vec<(Uuid, Position)>, Vec<Option<String>>), LogError> {
        let count: usize = streams.iter().map(|s| s.events.len()).sum();
        if count == 0 {
            return Ok((Vec::new(), previous.to_vec()));
        }
        // Microseconds: what both backends store, so a read gives back exactly what was written.
        let recorded_at = self.clock.now().trunc_subsecs(6);
        let metadata_text = serde_json::to_string(metadata)?;
        let mut rows = Vec::with_capacity(count);
        // The chain hash of each stream's last event once appended.
        let mut heads = Vec::with_capacity(streams.len());
        for (stream, previous) in streams.iter().zip(previous) {
            let mut link = previous.clone();
            for (i, event) in stream.events.iter().enumerate() {
                let payload = event.payload.get().to_string();
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
            heads.push(link);
        }
        // A command running under an Idempotency-Key marks the key in the append's transaction
        // (on KurrentDB, in a second commit right after the append: see README).
        let claim = crate::idempotency::current();
        let claim = claim.as_ref();
        let appended = match (&self.kurrent, &self.db) {
            (Some(store), _) => {
                let appended = store.append(&rows, metadata, recorded_at, streams).await?;
                if let Some(claim) = claim {
                    let first = &streams[0];
                    let last = appended.last().map(|(_, position)| position.to_string());
                    crate::idempotency::mark_applied(&self.db, claim, &first.aggregate_type, &first.aggregate_id, last)
                        .await?;
                }
                appended
            }
            (None, Db::Postgres(pool)) => {
                let connections = self.kept_connections.as_deref();
                postgres::append(pool, connections, &rows, &metadata_text, recorded_at, streams, claim).await?
            }
            (None, Db::Sqlite(pool)) => {
                sqlite::append(pool, &rows, &metadata_text, recorded_at, streams, claim).await?
            }
        };
        metrics::counter!("dynamoi_events_appended_total").increment(count as u64);
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
        Ok((appended, heads))
    }

    /// Every event of one aggregate, in sequence order.
    pub async fn load(&self, aggregate_type: &str, aggregate_id: &str) -> Result<Vec<StoredEvent>, LogError> {
        if let Some(store) = &self.kurrent {
            return store.load(aggregate_type, aggregate_id).await;
        }
        match &self.db {
            Db::Postgres(pool) => postgres::load(pool, aggregate_type, aggregate_id).await,
            Db::Sqlite(pool) => sqlite::load(pool, aggregate_type, aggregate_id).await,
        }
    }

    /// Whether the stream of `aggregate_type` / `aggregate_id` has any event.
    pub async fn exists(&self, aggregate_type: &str, aggregate_id: &str) -> Result<bool, LogError> {
        Ok(!self.load(aggregate_type, aggregate_id).await?.is_empty())
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
        if let Some(store) = &self.kurrent {
            return store.load_many(aggregate_type, aggregate_ids).await;
        }
        match &self.db {
            Db::Postgres(pool) => postgres::load_many(pool, aggregate_type, aggregate_ids).await,
            Db::Sqlite(pool) => sqlite::load_many(pool, aggregate_type, aggregate_ids).await,
        }
    }

    /// The state of several aggregates of one type, each folded from its stream, all read in
    /// one query: by id, its state, last sequence and chain head, ready for
    /// [`EventLog::append_streams_after`]. Ids with no event are absent. What bulk commands
    /// decide on: it reads only the columns a fold needs and decodes each current payload
    /// straight from its stored text ([`domain::versions::decode_text`]).
    pub async fn load_states<A: domain::Aggregate>(
        &self,
        aggregate_ids: &[String],
    ) -> Result<HashMap<String, Cached<A>>, LogError> {
        let mut states: HashMap<String, Cached<A>> = HashMap::new();
        if aggregate_ids.is_empty() {
            return Ok(states);
        }
        if let Some(store) = &self.kurrent {
            for stored in store.load_many(A::TYPE, aggregate_ids).await? {
                let event = stored.decode::<A::Event>()?;
                states
                    .entry(stored.aggregate_id)
                    .or_insert_with(Cached::empty)
                    .apply_stored(event, stored.sequence, stored.chain_hash);
            }
            return Ok(states);
        }
        // Each row decoded as it arrives (while the server reads the next), folded once sorted.
        let decode = |row: crate::event::FoldRow| {
            let event = domain::versions::decode_text::<A::Event>(&row.event_type, &row.event_version, &row.payload)?;
            Ok((row.aggregate_id, row.sequence, event, row.chain_hash))
        };
        let mut events = match &self.db {
            Db::Postgres(pool) => postgres::load_fold_rows(pool, A::TYPE, aggregate_ids, decode).await?,
            Db::Sqlite(pool) => sqlite::load_fold_rows(pool, A::TYPE, aggregate_ids, decode).await?,
        };
        events.sort_unstable_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        for (aggregate_id, sequence, event, chain_hash) in events {
            states
                .entry(aggregate_id)
                .or_insert_with(Cached::empty)
                .apply_stored(event, sequence, chain_hash);
        }
        Ok(states)
    }

    /// Up to `limit` committed events after `after`, in commit order. Resuming from the last
    /// position returned never skips or repeats an event, whatever writers do meanwhile.
    pub async fn read_feed(&self, after: Position, limit: usize) -> Result<Vec<StoredEvent>, LogError> {
        if let Some(store) = &self.kurrent {
            return store.read_feed(after, limit).await;
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        match &self.db {
            Db::Postgres(pool) => postgres::read_feed(pool, after, limit).await,
            Db::Sqlite(pool) => sqlite::read_feed(pool, after, limit).await,
        }
    }

    /// The newest visible position (`None` while the log is empty): one indexed lookup.
    pub async fn head_position(&self) -> Result<Option<Position>, LogError> {
        if let Some(store) = &self.kurrent {
            return store.head().await;
        }
        match &self.db {
            Db::Postgres(pool) => postgres::head(pool).await,
            Db::Sqlite(pool) => sqlite::head(pool).await,
        }
    }

    /// The newest visible position, and how many committed events (and since when) lie after
    /// `after`, counting those the feed still holds back behind an open writer (PostgreSQL).
    /// On KurrentDB the count is a scan of the feed after `after`.
    pub async fn head(&self, after: Position) -> Result<FeedHead, LogError> {
        let (head, (events_after, oldest_after)) = match (&self.kurrent, &self.db) {
            (Some(store), _) => (store.head().await?, store.count_after(after).await?),
            (None, Db::Postgres(pool)) => (postgres::head(pool).await?, postgres::count_after(pool, after).await?),
            (None, Db::Sqlite(pool)) => (sqlite::head(pool).await?, sqlite::count_after(pool, after).await?),
        };
        Ok(FeedHead {
            head,
            events_after,
            oldest_after,
        })
    }

    /// What holds the feed back now (see [`FeedHoldback`]).
    pub async fn feed_holdback(&self) -> Result<FeedHoldback, LogError> {
        match (&self.kurrent, &self.db) {
            (None, Db::Postgres(pool)) => {
                let (held_back_events, oldest_writer_seconds) = postgres::holdback(pool).await?;
                Ok(FeedHoldback {
                    held_back_events,
                    oldest_writer_seconds,
                })
            }
            _ => Ok(FeedHoldback::default()),
        }
    }

    /// Recomputes every link of one stream's hash chain from the stored bytes (on KurrentDB:
    /// the event's data and the [`EventMetadata`] part of its custom metadata, serialised as
    /// dynamoi writes it).
    pub async fn verify_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<chain::StreamVerification, LogError> {
        let rows = match &self.kurrent {
            Some(store) => store.chain_rows(aggregate_type, aggregate_id).await?,
            None => chain::sql_rows(&self.db, aggregate_type, aggregate_id).await?,
        };
        Ok(chain::verify_rows(aggregate_type, aggregate_id, &rows))
    }

    /// Every stream in the log (from the log itself, not a read model; on KurrentDB a scan of
    /// the feed).
    pub async fn streams(&self) -> Result<Vec<(String, String)>, LogError> {
        match &self.kurrent {
            Some(store) => store.streams().await,
            None => chain::sql_streams(&self.db).await,
        }
    }

    /// Wakes every reader of [`EventLog::subscribe`] in this process, as a commit would (work
    /// that is not an event, such as a workflow item put back to work, became ready).
    pub fn nudge(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that changes after every commit this process makes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Checks that the database (and KurrentDB, when the events live there) answers.
    pub async fn ping(&self) -> Result<(), LogError> {
        if let Some(store) = &self.kurrent {
            store.ping().await?;
        }
        self.db.ping().await
    }
}
