//! The in-memory event log: streams, the `$all` order, expected-revision and idempotency checks.
//!
//! Everything here mirrors what KurrentDB's storage writer does for a single-stream write
//! (`IndexWriter.CheckCommit`, `StorageWriterService.WritePrepares`), minus the disk.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::watch;
use uuid::Uuid;

/// How many recently written event ids the weak idempotency check remembers (expected
/// revision `any` / `stream_exists`). The real server keeps them in an 8 MiB cache
/// (`ESConsts.CommittedEventsMemCacheLimit`), about this many entries for short stream names.
pub const RECENT_EVENT_IDS: usize = 100_000;

/// The largest event the real server accepts by default (`MaxAppendEventSize` =
/// `TFConsts.MaxLogRecordSize`, 16 MiB).
pub const MAX_APPEND_EVENT_SIZE: usize = 16 * 1024 * 1024;

/// The largest append the real server accepts by default (`MaxAppendSize` = the chunk size).
pub const MAX_APPEND_SIZE: usize = 256 * 1024 * 1024;

/// Where the first record lands. A real log starts with an epoch record, so no event is ever
/// at position 0 (the client's `Position::start()`).
const FIRST_LOG_POSITION: u64 = 0;
const EPOCH_RECORD_SIZE: u64 = 128;

/// A `$all` position. The real server's is a pair (commit, prepare); for the events the
/// stand-in writes both are the event's log position, as for the real server's implicit
/// (self-committed) transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TfPos {
    /// Commit position.
    pub commit: u64,
    /// Prepare position.
    pub prepare: u64,
}

impl TfPos {
    fn of(position: u64) -> Self {
        TfPos {
            commit: position,
            prepare: position,
        }
    }
}

/// One stored event.
#[derive(Debug)]
pub struct Event {
    /// The event id the client proposed.
    pub id: Uuid,
    /// The stream it belongs to.
    pub stream: String,
    /// Its revision (event number) in that stream.
    pub revision: u64,
    /// Its log position: commit == prepare == this.
    pub position: u64,
    /// The position right after its record (what a backwards `$all` read compares with).
    pub post_position: u64,
    /// The `type` metadata.
    pub event_type: String,
    /// Whether `content-type` was `application/json`.
    pub is_json: bool,
    /// Creation time in 100 ns ticks since the Unix epoch (the `created` metadata).
    pub created_ticks: i64,
    /// The payload.
    pub data: Bytes,
    /// The user metadata (`custom_metadata`).
    pub custom_metadata: Bytes,
}

impl Event {
    /// The event's `$all` position.
    pub fn tf_pos(&self) -> TfPos {
        TfPos::of(self.position)
    }
}

/// An event proposed by an append.
#[derive(Debug, Clone)]
pub struct Proposed {
    /// Its id.
    pub id: Uuid,
    /// The `type` metadata.
    pub event_type: String,
    /// Whether `content-type` was `application/json`.
    pub is_json: bool,
    /// The payload.
    pub data: Bytes,
    /// The user metadata.
    pub custom_metadata: Bytes,
}

/// The expected revision of an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// No check.
    Any,
    /// The stream must not exist.
    NoStream,
    /// The stream must exist.
    StreamExists,
    /// The stream's last revision must be exactly this.
    Exact(u64),
}

impl Expected {
    /// The real server's `long` encoding (`ExpectedVersion`): Any = -2, NoStream = -1,
    /// StreamExists = -4, otherwise the revision.
    fn as_i64(self) -> i64 {
        match self {
            Expected::Any => -2,
            Expected::NoStream => -1,
            Expected::StreamExists => -4,
            Expected::Exact(revision) => i64::try_from(revision).unwrap_or(i64::MAX),
        }
    }
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Written (or recognised as an idempotent retry, which answers the same).
    Success {
        /// The stream's revision after the write (for a retry: the last event of the retried
        /// write); `None` when the stream still has no event (an empty append).
        current_revision: Option<u64>,
        /// The log position of the last record written (for a retry: of its last event).
        position: TfPos,
    },
    /// The expected revision did not hold; nothing was written.
    WrongExpectedVersion {
        /// What the request expected.
        expected: Expected,
        /// The stream's actual last revision, `None` for no stream.
        current: Option<u64>,
    },
}

/// Why a read could not be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The stream does not exist.
    NotFound,
}

#[derive(Default)]
struct Stream {
    /// Indexes into `Log::events`, by revision.
    events: Vec<usize>,
}

struct Log {
    events: Vec<Arc<Event>>,
    streams: HashMap<String, Stream>,
    next_position: u64,
    /// Weak idempotency cache: event id → (stream, revision) of recently written events.
    recent: HashMap<Uuid, (String, u64)>,
    recent_order: VecDeque<Uuid>,
}

impl Log {
    fn last_revision(&self, stream: &str) -> Option<u64> {
        self.streams
            .get(stream)
            .and_then(|s| s.events.len().checked_sub(1))
            .map(|r| r as u64)
    }

    fn event_at(&self, stream: &str, revision: u64) -> Option<&Arc<Event>> {
        let stream = self.streams.get(stream)?;
        let index = *stream.events.get(usize::try_from(revision).ok()?)?;
        self.events.get(index)
    }

    fn remember(&mut self, id: Uuid, stream: &str, revision: u64) {
        if self.recent.insert(id, (stream.to_owned(), revision)).is_none() {
            self.recent_order.push_back(id);
        }
        while self.recent_order.len() > RECENT_EVENT_IDS {
            if let Some(old) = self.recent_order.pop_front() {
                self.recent.remove(&old);
            }
        }
    }
}

/// What `check` decided (`CommitDecision` in the real server).
enum Decision {
    Write,
    Idempotent { last: u64 },
    Conflict,
}

/// The shared in-memory store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    log: Arc<Mutex<Log>>,
    changed: Arc<watch::Sender<u64>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// An empty log.
    pub fn new() -> Self {
        let (changed, _) = watch::channel(0);
        Store {
            log: Arc::new(Mutex::new(Log {
                events: Vec::new(),
                streams: HashMap::new(),
                next_position: FIRST_LOG_POSITION + EPOCH_RECORD_SIZE,
                recent: HashMap::new(),
                recent_order: VecDeque::new(),
            })),
            changed: Arc::new(changed),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        // A panic while holding the lock cannot leave the log half-written (appends check
        // first, then push), so a poisoned lock is still consistent.
        self.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A receiver that changes after every append that wrote events.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Appends `events` to `stream` if `expected` holds, with the real server's idempotency
    /// rules (see the crate docs).
    pub fn append(&self, stream: &str, expected: Expected, events: Vec<Proposed>) -> AppendOutcome {
        let mut log = self.lock();
        let current = log.last_revision(stream);
        let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
        match check(&log, stream, expected, current, &ids) {
            Decision::Conflict => AppendOutcome::WrongExpectedVersion { expected, current },
            Decision::Idempotent { last } => AppendOutcome::Success {
                current_revision: Some(last),
                position: log.event_at(stream, last).map(|e| e.tf_pos()).unwrap_or(TfPos::of(0)),
            },
            Decision::Write if events.is_empty() => {
                // The real server writes an empty prepare record: it takes log space, is not an
                // event, and its position is the answer.
                let position = log.next_position;
                log.next_position += record_size(stream, "", 0);
                AppendOutcome::Success {
                    current_revision: current,
                    position: TfPos::of(position),
                }
            }
            Decision::Write => {
                let created_ticks = now_ticks();
                let mut revision = current.map_or(0, |r| r + 1);
                let mut last_position = 0;
                for proposed in events {
                    let position = log.next_position;
                    let size = record_size(
                        stream,
                        &proposed.event_type,
                        proposed.data.len() + proposed.custom_metadata.len(),
                    );
                    log.next_position += size;
                    let event = Arc::new(Event {
                        id: proposed.id,
                        stream: stream.to_owned(),
                        revision,
                        position,
                        post_position: position + size,
                        event_type: proposed.event_type,
                        is_json: proposed.is_json,
                        created_ticks,
                        data: proposed.data,
                        custom_metadata: proposed.custom_metadata,
                    });
                    let index = log.events.len();
                    log.events.push(event);
                    log.streams.entry(stream.to_owned()).or_default().events.push(index);
                    log.remember(proposed.id, stream, revision);
                    last_position = position;
                    revision += 1;
                }
                let count = log.events.len() as u64;
                drop(log);
                self.changed.send_replace(count);
                AppendOutcome::Success {
                    current_revision: Some(revision - 1),
                    position: TfPos::of(last_position),
                }
            }
        }
    }

    /// Up to `max` events of `stream` from `from` (inclusive), forwards or backwards;
    /// `from = None` is the start (forwards) or the end (backwards).
    pub fn read_stream(
        &self,
        stream: &str,
        from: Option<u64>,
        backwards: bool,
        max: usize,
    ) -> Result<Vec<Arc<Event>>, ReadError> {
        let log = self.lock();
        let Some(entry) = log.streams.get(stream) else {
            return Err(ReadError::NotFound);
        };
        let len = entry.events.len() as u64;
        let indexes: Vec<usize> = if backwards {
            if len == 0 {
                Vec::new()
            } else {
                let start = from.map_or(len - 1, |r| r.min(len - 1)) as usize;
                entry.events[..=start].iter().rev().take(max).copied().collect()
            }
        } else {
            let start = from.unwrap_or(0);
            if start >= len {
                Vec::new()
            } else {
                entry.events[start as usize..].iter().take(max).copied().collect()
            }
        };
        Ok(indexes.into_iter().filter_map(|i| log.events.get(i).cloned()).collect())
    }

    /// The last revision of `stream`, `None` when it does not exist.
    pub fn last_revision(&self, stream: &str) -> Option<u64> {
        self.lock().last_revision(stream)
    }

    /// The `$all` position of the last event, `None` when the log has none.
    pub fn last_position(&self) -> Option<TfPos> {
        self.lock().events.last().map(|e| e.tf_pos())
    }

    /// Up to `max` events of `$all` that `keep` accepts, forwards from `from` (inclusive, as
    /// the real server's reads; `None` = the start) or backwards from `from` (events whose
    /// record ends at or before it; `None` = the end). Also returns how many events were
    /// looked at and whether the end of the log was reached.
    pub fn read_all(
        &self,
        from: Option<TfPos>,
        backwards: bool,
        max: usize,
        keep: &dyn Fn(&Event) -> bool,
    ) -> Vec<Arc<Event>> {
        let log = self.lock();
        let mut out = Vec::new();
        if backwards {
            let end = match from {
                None => log.events.len(),
                Some(p) => log.events.partition_point(|e| TfPos::of(e.post_position) <= p),
            };
            for event in log.events[..end].iter().rev() {
                if out.len() >= max {
                    break;
                }
                if keep(event) {
                    out.push(Arc::clone(event));
                }
            }
        } else {
            let start = match from {
                None => 0,
                Some(p) => log.events.partition_point(|e| e.tf_pos() < p),
            };
            for event in &log.events[start..] {
                if out.len() >= max {
                    break;
                }
                if keep(event) {
                    out.push(Arc::clone(event));
                }
            }
        }
        out
    }

    /// Up to `max` events of `$all` strictly after `after` (`None` = from the start), unfiltered:
    /// what a subscription looks at next.
    pub fn all_after(&self, after: Option<TfPos>, max: usize) -> Vec<Arc<Event>> {
        let log = self.lock();
        let start = match after {
            None => 0,
            Some(p) => log.events.partition_point(|e| e.tf_pos() <= p),
        };
        log.events[start..].iter().take(max).cloned().collect()
    }

    /// Up to `max` events of `stream` after revision `after` (`None` = from revision 0).
    pub fn stream_after(&self, stream: &str, after: Option<u64>, max: usize) -> Vec<Arc<Event>> {
        let from = after.map_or(0, |r| r.saturating_add(1));
        self.read_stream(stream, Some(from), false, max).unwrap_or_default()
    }
}

/// `IndexWriter.CheckCommit` for a stream that is neither deleted nor tombstoned.
fn check(log: &Log, stream: &str, expected: Expected, current: Option<u64>, ids: &[Uuid]) -> Decision {
    let cur: i64 = current.map_or(-1, |r| i64::try_from(r).unwrap_or(i64::MAX));
    if expected == Expected::StreamExists && current.is_none() {
        return Decision::Conflict;
    }
    // Weak idempotency: the request does not say where the events go, so only recently
    // written events (the server's in-memory cache) are recognised.
    if matches!(expected, Expected::Any | Expected::StreamExists) {
        let mut last = None;
        for (i, id) in ids.iter().enumerate() {
            match log.recent.get(id) {
                Some((s, revision)) if s == stream => last = Some(*revision),
                _ if i == 0 => return Decision::Write,
                // Part of the write is already there and part is not: "corrupted
                // idempotency", answered as a wrong expected version.
                _ => return Decision::Conflict,
            }
        }
        return match last {
            Some(last) => Decision::Idempotent { last },
            None => Decision::Write,
        };
    }
    // Strong idempotency: the request names the revisions (expected + 1, + 2, ...).
    let exp = expected.as_i64();
    if exp < cur {
        let mut revision = exp;
        for id in ids {
            revision += 1;
            let here = u64::try_from(revision).ok().and_then(|r| log.event_at(stream, r));
            if here.is_none_or(|e| e.id != *id) {
                // A mismatch on the first event is a plain conflict, on a later one "corrupted
                // idempotency": both answer wrong expected version.
                return Decision::Conflict;
            }
        }
        return match u64::try_from(revision) {
            Ok(last) if !ids.is_empty() => Decision::Idempotent { last },
            _ => Decision::Conflict,
        };
    }
    if exp > cur {
        return Decision::Conflict;
    }
    Decision::Write
}

/// About the size of the real server's v2 prepare record for an event: the fixed fields, the
/// stream name and event type as length-prefixed strings, data and metadata, and the length
/// prefix and suffix. Only relative sizes matter: positions are byte offsets, not counters.
fn record_size(stream: &str, event_type: &str, payload: usize) -> u64 {
    (88 + stream.len() + 1 + event_type.len() + 1 + 8 + payload) as u64
}

/// Now in .NET ticks (100 ns since the Unix epoch, as KurrentDB stamps events), from the
/// stand-in's clock: the system's, read through dynamoi's one clock crate.
pub(crate) fn now_ticks() -> i64 {
    let now = clock::Clock::now(&clock::SystemClock);
    now.timestamp_nanos_opt().map_or(i64::MAX, |nanos| nanos / 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: u128) -> Proposed {
        Proposed {
            id: Uuid::from_u128(id),
            event_type: "T".into(),
            is_json: true,
            data: Bytes::from_static(b"{}"),
            custom_metadata: Bytes::new(),
        }
    }

    fn current(outcome: &AppendOutcome) -> Option<u64> {
        match outcome {
            AppendOutcome::Success { current_revision, .. } => *current_revision,
            AppendOutcome::WrongExpectedVersion { .. } => panic!("unexpected conflict: {outcome:?}"),
        }
    }

    #[test]
    fn exact_revision_conflicts_carry_the_actual_revision() {
        let store = Store::new();
        assert_eq!(
            current(&store.append("s", Expected::NoStream, vec![ev(1), ev(2)])),
            Some(1)
        );
        let outcome = store.append("s", Expected::Exact(5), vec![ev(3)]);
        assert_eq!(
            outcome,
            AppendOutcome::WrongExpectedVersion {
                expected: Expected::Exact(5),
                current: Some(1)
            }
        );
        let outcome = store.append("t", Expected::StreamExists, vec![ev(4)]);
        assert_eq!(
            outcome,
            AppendOutcome::WrongExpectedVersion {
                expected: Expected::StreamExists,
                current: None
            }
        );
    }

    #[test]
    fn retries_with_the_same_ids_and_expected_revision_write_nothing() {
        let store = Store::new();
        let first = store.append("s", Expected::NoStream, vec![ev(1), ev(2)]);
        let again = store.append("s", Expected::NoStream, vec![ev(1), ev(2)]);
        assert_eq!(first, again);
        let any = store.append("s", Expected::Any, vec![ev(1), ev(2)]);
        assert_eq!(first, any);
        // Only the first event already written: corrupted idempotency, a conflict.
        let partial = store.append("s", Expected::NoStream, vec![ev(1), ev(9)]);
        assert!(matches!(
            partial,
            AppendOutcome::WrongExpectedVersion { current: Some(1), .. }
        ));
        // The same ids at the end of the stream with the current revision: written again.
        assert_eq!(current(&store.append("s", Expected::Exact(1), vec![ev(1)])), Some(2));
        assert_eq!(store.read_stream("s", None, false, 10).map(|e| e.len()), Ok(3));
    }

    #[test]
    fn positions_increase_and_reads_honour_bounds() {
        let store = Store::new();
        store.append("a", Expected::Any, vec![ev(1), ev(2)]);
        store.append("b", Expected::Any, vec![ev(3)]);
        let all = store.read_all(None, false, usize::MAX, &|_| true);
        assert!(all.windows(2).all(|w| w[0].position < w[1].position));
        assert!(all[0].position > 0);
        let from_second = store.read_all(Some(all[1].tf_pos()), false, usize::MAX, &|_| true);
        assert_eq!(from_second.len(), 2, "forward reads from a position include it");
        let before_second = store.read_all(Some(all[1].tf_pos()), true, usize::MAX, &|_| true);
        assert_eq!(before_second.len(), 1, "backward reads from a position exclude it");
        assert_eq!(store.all_after(Some(all[1].tf_pos()), 10).len(), 1);
        assert_eq!(
            store.read_stream("nope", None, false, 1).err(),
            Some(ReadError::NotFound)
        );
    }
}
