//! The KurrentDB backend: dynamoi's streams in a KurrentDB server through the official
//! `kurrentdb` gRPC client (the maintained successor of the `eventstore` crate).
//!
//! - One KurrentDB stream per aggregate, named `{namespace}.{aggregate_type}-{aggregate_id}`; its
//!   revision is the aggregate's sequence minus one.
//! - An event's KurrentDB id is dynamoi's UUIDv7, its type the event type, its data the payload
//!   JSON, and its custom metadata a JSON object with the [`EventMetadata`] fields (actor,
//!   request id, causation id) plus `aggregate_type`, `aggregate_id`, `event_version`,
//!   `recorded_at` (dynamoi's clock, microseconds) and `chain_hash`.
//! - Appends carry the expected revision; `WrongExpectedVersion` is [`LogError::Conflict`]. A
//!   transport failure is retried with the same ids and the same expected revision, which the
//!   server recognises as the same write (idempotent append).
//! - The feed is `$all` filtered on the stream-name prefix `{namespace}.` (so no `$` system
//!   events and no other application's streams); a [`Position`] is KurrentDB's (commit,
//!   prepare), resumed from exclusively.

use crate::event::PreparedEvent;
use crate::{EventMetadata, LogError, Position, StoredEvent, StreamAppend};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::future::try_join_all;
use kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, EventData, ReadAllOptions, ReadStreamOptions, RecordedEvent,
    StreamPosition, StreamState, SubscriptionFilter,
};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use uuid::Uuid;

/// How often an append that failed in transport is sent again (same ids, same expectation).
const APPEND_ATTEMPTS: usize = 4;

/// How many streams a bulk load reads at once.
const LOAD_CONCURRENCY: usize = 16;

/// Events read per request when counting or scanning the feed.
const SCAN_PAGE: usize = 4_096;

/// A connected KurrentDB event store and the namespace dynamoi's streams live under.
#[derive(Clone)]
pub struct KurrentStore {
    client: Client,
    namespace: String,
}

impl std::fmt::Debug for KurrentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection string may hold credentials: never printed.
        f.debug_struct("KurrentStore")
            .field("namespace", &self.namespace)
            .finish()
    }
}

/// What dynamoi stores as an event's custom metadata.
#[derive(Serialize, Deserialize)]
struct Meta {
    #[serde(flatten)]
    metadata: EventMetadata,
    aggregate_type: String,
    aggregate_id: String,
    event_version: String,
    recorded_at: String,
    chain_hash: String,
}

/// Whether `url` names a KurrentDB server (`kurrentdb://`, `kurrent://`, `esdb://`, `kdb://`,
/// each optionally `+discover`).
pub fn is_kurrent_url(url: &str) -> bool {
    let scheme = url.split("://").next().unwrap_or("");
    let scheme = scheme.strip_suffix("+discover").unwrap_or(scheme);
    url.contains("://") && matches!(scheme, "kurrentdb" | "kurrent" | "esdb" | "kdb")
}

impl KurrentStore {
    /// A client for `url` (the `kurrentdb` client's connection string). The client connects
    /// lazily; [`KurrentStore::ping`] checks that the server answers. `namespace` must be
    /// non-empty and hold neither `.` nor `-`.
    pub fn connect(url: &str, namespace: &str) -> Result<KurrentStore, LogError> {
        if namespace.is_empty() || namespace.contains(['.', '-', '$']) {
            return Err(LogError::InvalidNamespace);
        }
        let settings: ClientSettings = url.parse().map_err(|_| LogError::UnsupportedUrl)?;
        let client = Client::new(settings).map_err(|_| LogError::UnsupportedUrl)?;
        Ok(KurrentStore {
            client,
            namespace: namespace.to_string(),
        })
    }

    /// The namespace dynamoi's streams are named under.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The KurrentDB stream of one aggregate.
    pub fn stream_name(&self, aggregate_type: &str, aggregate_id: &str) -> String {
        format!("{}.{aggregate_type}-{aggregate_id}", self.namespace)
    }

    fn filter(&self) -> SubscriptionFilter {
        SubscriptionFilter::on_stream_name().add_prefix(format!("{}.", self.namespace))
    }

    /// Checks that the server answers (a read of one event of the feed).
    pub async fn ping(&self) -> Result<(), LogError> {
        self.head().await.map(|_| ())
    }

    /// Appends each stream's prepared events in input order, one KurrentDB append per stream.
    /// A stale expectation found before anything is written refuses the whole batch; see
    /// [`crate::EventLog::append_streams`] for what a conflict found later means.
    pub(crate) async fn append(
        &self,
        rows: &[PreparedEvent],
        metadata: &EventMetadata,
        recorded_at: DateTime<Utc>,
        streams: &[StreamAppend],
    ) -> Result<Vec<(Uuid, Position)>, LogError> {
        if streams.len() > 1 {
            self.check_batch(streams).await?;
        }
        let recorded_at = recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true);
        let mut out = Vec::with_capacity(rows.len());
        let mut offset = 0;
        for stream in streams {
            let mine = &rows[offset..offset + stream.events.len()];
            offset += stream.events.len();
            if mine.is_empty() {
                continue;
            }
            let events = mine
                .iter()
                .map(|row| {
                    let meta = Meta {
                        metadata: metadata.clone(),
                        aggregate_type: row.aggregate_type.clone(),
                        aggregate_id: row.aggregate_id.clone(),
                        event_version: row.event_version.clone(),
                        recorded_at: recorded_at.clone(),
                        chain_hash: row.chain_hash.clone(),
                    };
                    // The payload's text as it is (a `RawValue` serialises verbatim): the bytes
                    // stored are the bytes the chain hash covers.
                    let payload: &serde_json::value::RawValue = serde_json::from_str(&row.payload)?;
                    EventData::json(&row.event_type, &payload)?
                        .id(row.event_id)
                        .metadata_as_json(&meta)
                })
                .collect::<Result<Vec<EventData>, serde_json::Error>>()?;
            let state = match stream.expected_sequence {
                0 => StreamState::NoStream,
                n => StreamState::StreamRevision((n - 1) as u64),
            };
            let options = AppendToStreamOptions::default().stream_state(state);
            let name = self.stream_name(&stream.aggregate_type, &stream.aggregate_id);
            let mut attempt = 0;
            let written = loop {
                attempt += 1;
                match self
                    .client
                    .append_to_stream(name.as_str(), &options, events.clone())
                    .await
                {
                    Ok(result) => break result,
                    Err(kurrentdb::Error::WrongExpectedVersion { .. }) => {
                        return Err(LogError::Conflict {
                            aggregate_type: stream.aggregate_type.clone(),
                            aggregate_id: stream.aggregate_id.clone(),
                        })
                    }
                    Err(e) if attempt < APPEND_ATTEMPTS && is_transient(&e) => {
                        tracing::warn!(attempt, "an append to KurrentDB failed in transport; sending it again");
                        tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                    }
                    Err(e) => return Err(LogError::EventStore(e)),
                }
            };
            if mine.len() == 1 {
                out.push((mine[0].event_id, from_kurrent(written.position)));
            } else {
                // The append answers the last event's position; the others are read back.
                let read = self
                    .read_stream(
                        &name,
                        ReadStreamOptions::default()
                            .forwards()
                            .position(StreamPosition::Position(stream.expected_sequence as u64))
                            .max_count(mine.len()),
                    )
                    .await?;
                for (row, event) in mine.iter().zip(&read) {
                    if event.id != row.event_id {
                        return Err(LogError::Conflict {
                            aggregate_type: stream.aggregate_type.clone(),
                            aggregate_id: stream.aggregate_id.clone(),
                        });
                    }
                    out.push((row.event_id, from_kurrent(event.position)));
                }
            }
        }
        Ok(out)
    }

    /// Refuses a batch that names a stream twice or expects a stream at a revision it is not at,
    /// before anything is written.
    async fn check_batch(&self, streams: &[StreamAppend]) -> Result<(), LogError> {
        let conflict = |s: &StreamAppend| LogError::Conflict {
            aggregate_type: s.aggregate_type.clone(),
            aggregate_id: s.aggregate_id.clone(),
        };
        let mut seen = std::collections::HashSet::new();
        for s in streams {
            if !seen.insert((s.aggregate_type.as_str(), s.aggregate_id.as_str())) {
                return Err(conflict(s));
            }
        }
        let mut lasts = Vec::with_capacity(streams.len());
        for chunk in streams.chunks(LOAD_CONCURRENCY) {
            lasts.extend(
                try_join_all(
                    chunk
                        .iter()
                        .map(|s| self.last_sequence(&s.aggregate_type, &s.aggregate_id)),
                )
                .await?,
            );
        }
        for (s, last) in streams.iter().zip(lasts) {
            if last != s.expected_sequence {
                return Err(conflict(s));
            }
        }
        Ok(())
    }

    /// The sequence of a stream's last event (0 when it has none).
    async fn last_sequence(&self, aggregate_type: &str, aggregate_id: &str) -> Result<i64, LogError> {
        let name = self.stream_name(aggregate_type, aggregate_id);
        let last = self
            .read_stream(
                &name,
                ReadStreamOptions::default().position(StreamPosition::End).max_count(1),
            )
            .await?;
        Ok(last.first().map_or(0, |e| e.revision as i64 + 1))
    }

    /// The chain hash of each stream's event at `sequence` (`None` for sequence 0); no such
    /// event is a conflict, as on the SQL backends.
    pub(crate) async fn heads(&self, wanted: &[(&str, &str, i64)]) -> Result<Vec<Option<String>>, LogError> {
        let mut out = Vec::with_capacity(wanted.len());
        for chunk in wanted.chunks(LOAD_CONCURRENCY) {
            out.extend(try_join_all(chunk.iter().map(|(t, i, s)| self.hash_at(t, i, *s))).await?);
        }
        Ok(out)
    }

    async fn hash_at(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        sequence: i64,
    ) -> Result<Option<String>, LogError> {
        if sequence == 0 {
            return Ok(None);
        }
        let name = self.stream_name(aggregate_type, aggregate_id);
        let read = self
            .read_stream(
                &name,
                ReadStreamOptions::default()
                    .forwards()
                    .position(StreamPosition::Position((sequence - 1) as u64))
                    .max_count(1),
            )
            .await?;
        match read.first() {
            Some(event) if event.revision as i64 == sequence - 1 => {
                Ok(Some(decode(event)?.0.chain_hash.unwrap_or_default()))
            }
            _ => Err(LogError::Conflict {
                aggregate_type: aggregate_type.to_string(),
                aggregate_id: aggregate_id.to_string(),
            }),
        }
    }

    /// The recorded events of one stream as `options` select them (none when it does not exist).
    async fn read_stream(&self, name: &str, options: ReadStreamOptions) -> Result<Vec<RecordedEvent>, LogError> {
        let mut read = match self.client.read_stream(name, &options).await {
            Ok(read) => read,
            Err(kurrentdb::Error::ResourceNotFound) => return Ok(Vec::new()),
            Err(e) => return Err(LogError::EventStore(e)),
        };
        let mut out = Vec::new();
        loop {
            match read.next().await {
                Ok(Some(event)) => {
                    if let Some(event) = event.link.or(event.event) {
                        out.push(event)
                    }
                }
                Ok(None) => return Ok(out),
                Err(kurrentdb::Error::ResourceNotFound) => return Ok(out),
                Err(e) => return Err(LogError::EventStore(e)),
            }
        }
    }

    /// Every event of one aggregate, in sequence order.
    pub(crate) async fn load(&self, aggregate_type: &str, aggregate_id: &str) -> Result<Vec<StoredEvent>, LogError> {
        let name = self.stream_name(aggregate_type, aggregate_id);
        self.read_stream(&name, ReadStreamOptions::default())
            .await?
            .iter()
            .map(|e| decode(e).map(|(event, _)| event))
            .collect()
    }

    /// Every event of several aggregates of one type, grouped by aggregate (in the order of
    /// `aggregate_ids`), each in sequence order.
    pub(crate) async fn load_many(
        &self,
        aggregate_type: &str,
        aggregate_ids: &[String],
    ) -> Result<Vec<StoredEvent>, LogError> {
        let mut ids: Vec<&String> = aggregate_ids.iter().collect();
        ids.sort();
        ids.dedup();
        let mut out = Vec::new();
        for chunk in ids.chunks(LOAD_CONCURRENCY) {
            for events in try_join_all(chunk.iter().map(|id| self.load(aggregate_type, id))).await? {
                out.extend(events);
            }
        }
        Ok(out)
    }

    /// Up to `limit` of dynamoi's events after `after` in `$all` order.
    pub(crate) async fn read_feed(&self, after: Position, limit: usize) -> Result<Vec<StoredEvent>, LogError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let start = if after == Position::START {
            StreamPosition::Start
        } else {
            StreamPosition::Position(to_kurrent(after))
        };
        let options = ReadAllOptions::default()
            .forwards()
            .position(start)
            .filter(self.filter())
            .max_count(limit.saturating_add(1));
        let mut read = self.client.read_all(&options).await.map_err(LogError::EventStore)?;
        let mut out = Vec::with_capacity(limit.min(SCAN_PAGE));
        while out.len() < limit {
            match read.next().await.map_err(LogError::EventStore)? {
                Some(event) => {
                    let event = event.get_original_event();
                    // A read from a position includes the event at it: resumption is exclusive.
                    if from_kurrent(event.position) <= after {
                        continue;
                    }
                    out.push(decode(event)?.0);
                }
                None => break,
            }
        }
        Ok(out)
    }

    /// The position of dynamoi's newest event (`None` while there is none).
    pub(crate) async fn head(&self) -> Result<Option<Position>, LogError> {
        let options = ReadAllOptions::default()
            .position(StreamPosition::End)
            .backwards()
            .filter(self.filter())
            .max_count(1);
        let mut read = self.client.read_all(&options).await.map_err(LogError::EventStore)?;
        Ok(read
            .next()
            .await
            .map_err(LogError::EventStore)?
            .map(|e| from_kurrent(e.get_original_event().position)))
    }

    /// How many of dynamoi's events lie after `after`, and the oldest `recorded_at` among them:
    /// a scan of that part of the feed.
    pub(crate) async fn count_after(&self, after: Position) -> Result<(i64, Option<DateTime<Utc>>), LogError> {
        let mut cursor = after;
        let mut count = 0i64;
        let mut oldest: Option<DateTime<Utc>> = None;
        loop {
            let page = self.read_feed(cursor, SCAN_PAGE).await?;
            let Some(last) = page.last() else { break };
            cursor = last.position;
            count += page.len() as i64;
            for e in &page {
                oldest = Some(oldest.map_or(e.recorded_at, |o| o.min(e.recorded_at)));
            }
            if page.len() < SCAN_PAGE {
                break;
            }
        }
        Ok((count, oldest))
    }

    /// Every stream of dynamoi's namespace (a scan of the feed).
    pub(crate) async fn streams(&self) -> Result<Vec<(String, String)>, LogError> {
        let mut cursor = Position::START;
        let mut streams = std::collections::BTreeSet::new();
        loop {
            let page = self.read_feed(cursor, SCAN_PAGE).await?;
            let Some(last) = page.last() else { break };
            cursor = last.position;
            for e in &page {
                streams.insert((e.aggregate_type.clone(), e.aggregate_id.clone()));
            }
            if page.len() < SCAN_PAGE {
                break;
            }
        }
        Ok(streams.into_iter().collect())
    }

    /// One stream's events with the stored texts its chain hashes cover.
    pub(crate) async fn chain_rows(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<crate::event::ChainRow>, LogError> {
        let name = self.stream_name(aggregate_type, aggregate_id);
        self.read_stream(&name, ReadStreamOptions::default())
            .await?
            .iter()
            .map(|e| {
                let (event, payload) = decode(e)?;
                Ok(crate::event::ChainRow {
                    sequence: event.sequence,
                    event_type: event.event_type,
                    event_version: event.event_version,
                    event_id: event.event_id.to_string(),
                    recorded_at: event.recorded_at,
                    payload,
                    metadata: serde_json::to_string(&event.metadata)?,
                    chain_hash: event.chain_hash,
                })
            })
            .collect()
    }
}

/// Whether a client error may be a lost connection or a leader change, after which the same
/// append is sent again.
fn is_transient(error: &kurrentdb::Error) -> bool {
    crate::error::is_kurrent_unreachable(error)
}

fn to_kurrent(position: Position) -> kurrentdb::Position {
    kurrentdb::Position {
        commit: position.commit.max(0) as u64,
        prepare: position.global.max(0) as u64,
    }
}

fn from_kurrent(position: kurrentdb::Position) -> Position {
    Position {
        commit: i64::try_from(position.commit).unwrap_or(i64::MAX),
        global: i64::try_from(position.prepare).unwrap_or(i64::MAX),
    }
}

/// A recorded event as dynamoi's [`StoredEvent`], and its payload text exactly as stored.
fn decode(event: &RecordedEvent) -> Result<(StoredEvent, String), LogError> {
    let meta: Meta = serde_json::from_slice(&event.custom_metadata)?;
    let payload_text = std::str::from_utf8(&event.data)
        .map_err(|_| {
            LogError::Decode(<serde_json::Error as serde::de::Error>::custom(
                "the payload is not UTF-8",
            ))
        })?
        .to_string();
    let recorded_at = DateTime::parse_from_rfc3339(&meta.recorded_at)
        .map_err(|_| LogError::Decode(<serde_json::Error as serde::de::Error>::custom("invalid recorded_at")))?
        .with_timezone(&Utc);
    Ok((
        StoredEvent {
            position: from_kurrent(event.position),
            event_id: event.id,
            aggregate_type: meta.aggregate_type,
            aggregate_id: meta.aggregate_id,
            sequence: event.revision as i64 + 1,
            event_type: event.event_type.clone(),
            event_version: meta.event_version,
            payload: serde_json::from_str(&payload_text)?,
            metadata: meta.metadata,
            recorded_at,
            chain_hash: Some(meta.chain_hash),
        },
        payload_text,
    ))
}
