//! Command execution: take the aggregate's state (cached, or loaded), let it decide, append its
//! events; on a conflicting append (another command got there first), reload and decide again,
//! a bounded number of times.
//!
//! Commands on one aggregate take turns inside a process ([`crate::locks::AggregateLocks`], a keyed async
//! mutex held from the load to the append, `crate::locks`), so they never conflict with each other; a conflict
//! with another process is retried after a random (jittered, doubling) pause. A command that
//! waits longer than [`COMMAND_WAIT`] for its turn, or loses every retry, is a
//! [`LogError::Conflict`] (answered 409 with `Retry-After`).

use crate::aggregate_cache::Cached;
use crate::{EventLog, EventMetadata, LogError, NewEvent, Position, StreamAppend};
use domain::Aggregate;
use std::time::Duration;
use uuid::Uuid;

/// How many times a command is decided again after losing a race with another process.
pub const CONFLICT_RETRIES: usize = 8;

/// How long a command waits for its turn on an aggregate inside this process.
pub const COMMAND_WAIT: Duration = Duration::from_secs(10);

/// The pause before retry `attempt` (1, 2, …) after a conflict: random, up to 5 ms × 2^attempt.
fn backoff(attempt: usize) -> Duration {
    let ceiling = 5u64 << attempt.min(8);
    Duration::from_millis(rand::random_range(1..=ceiling))
}

/// What an accepted command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandOutcome<E> {
    /// The events appended, in order.
    pub events: Vec<E>,
    /// The ids of the events appended, in order.
    pub event_ids: Vec<Uuid>,
    /// The position of the last event appended (the consistency token); `None` when the
    /// command changed nothing.
    pub position: Option<Position>,
}

/// Why a command was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error + 'static> {
    /// The aggregate refused the command: a business rule.
    #[error(transparent)]
    Rejected(E),
    /// The log failed, or conflicts went on past the retries.
    #[error(transparent)]
    Log(#[from] LogError),
}

impl EventLog {
    /// Loads `A` with id `aggregate_id` and folds its events; also returns the last sequence
    /// and chain hash, which the next append follows.
    pub async fn load_aggregate<A: Aggregate>(&self, aggregate_id: &str) -> Result<(A, i64, Option<String>), LogError> {
        let loaded = self.load_cached::<A>(aggregate_id).await?;
        Ok((loaded.state, loaded.sequence, loaded.chain_hash))
    }

    /// Loads `A` with id `aggregate_id` as the entry the aggregate cache would hold for it.
    async fn load_cached<A: Aggregate>(&self, aggregate_id: &str) -> Result<Cached<A>, LogError> {
        let mut loaded = Cached::<A>::empty();
        for stored in self.load(A::TYPE, aggregate_id).await? {
            loaded.apply_stored(stored.decode::<A::Event>()?, stored.sequence, stored.chain_hash);
        }
        Ok(loaded)
    }

    /// Executes `command` against aggregate `A` with id `aggregate_id`.
    ///
    /// The decision starts from the aggregate's cached state ([`crate::aggregate_cache`]) or,
    /// for an aggregate this process has not commanded, from an empty one (a command that
    /// creates its aggregate needs no load: if the stream exists after all, the append at
    /// sequence 1 conflicts). Such a guessed start is trusted only when the command appends
    /// (the append checks the sequence); a refusal, a no-op or a conflict is decided again on
    /// the loaded stream. So a command on a new or hot aggregate is one round trip; with the
    /// cache off (capacity 0) every command loads first (two).
    pub async fn execute<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<CommandOutcome<A::Event>, CommandError<A::Error>>
    where
        A: Aggregate + 'static,
        A::Command: Clone,
    {
        let _turn = self.locks().lock(A::TYPE, aggregate_id, COMMAND_WAIT).await?;
        let cache = self.aggregates();
        let mut guess = cache
            .take::<A>(A::TYPE, aggregate_id)
            .or_else(|| cache.enabled().then(Cached::empty));
        let mut attempt = 0;
        loop {
            let guessed = guess.is_some();
            let current = match guess.take() {
                Some(cached) => cached,
                None => self.load_cached::<A>(aggregate_id).await?,
            };
            let events = match current.state.handle(command.clone()) {
                Ok(events) if !events.is_empty() => events,
                // Nothing for the append to check: decide again on the stream as it is.
                _ if guessed => continue,
                decided => {
                    // The loaded state is the stream's: keep it for the next command.
                    cache.put(A::TYPE, aggregate_id, current);
                    // A refusal, or a command that changes nothing (no event, no position).
                    let events = decided.map_err(CommandError::Rejected)?;
                    return Ok(CommandOutcome {
                        events,
                        event_ids: Vec::new(),
                        position: None,
                    });
                }
            };
            let new_events = events
                .iter()
                .map(NewEvent::from_domain)
                .collect::<Result<Vec<_>, _>>()
                .map_err(LogError::from)?;
            let stream = StreamAppend {
                aggregate_type: A::TYPE.to_string(),
                aggregate_id: aggregate_id.to_string(),
                expected_sequence: current.sequence,
                events: new_events,
            };
            match self
                .append_after_with_head(&stream, current.chain_hash.clone(), metadata)
                .await
            {
                Ok((appended, head)) => {
                    if cache.enabled() {
                        cache.put(A::TYPE, aggregate_id, current.after(&events, head));
                    }
                    return Ok(CommandOutcome {
                        events,
                        position: appended.last().map(|(_, p)| *p),
                        event_ids: appended.into_iter().map(|(id, _)| id).collect(),
                    });
                }
                // The guess was stale (the stream exists, or grew elsewhere): load, no pause.
                Err(LogError::Conflict { .. }) if guessed => {
                    tracing::debug!(aggregate_type = A::TYPE, "cached or empty state was stale, loading");
                }
                Err(LogError::Conflict { .. }) if attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    tracing::debug!(aggregate_type = A::TYPE, attempt, "append conflict, deciding again");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
}
