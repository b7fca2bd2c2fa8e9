//! [`AggregateCache`]: the state of recently commanded aggregates, kept by this process so that
//! a command on one is decided without loading its stream, and checked by the append.
//!
//! The append is what makes a cached state safe to decide on: it inserts the next sequence
//! after the cached one, and the stream's primary key (the expected revision on KurrentDB)
//! refuses it if anything was appended meanwhile, by another process or by a path other than
//! [`crate::EventLog::execute`]. A stale entry therefore costs one conflicting append and a load,
//! never a wrong event. Only an accepted decision is trusted this way: a refusal or a no-op
//! decided on a cached state is decided again on the loaded stream (the append checks nothing
//! then). Events are never deleted from a stream, so a cached sequence is never ahead of the log.
//!
//! Entries are taken out while a command decides (commands on one aggregate take turns,
//! [`crate::locks`]) and put back after its append, so an entry is never shared. At most
//! `capacity` aggregates are kept, least recently commanded first out; capacity 0 turns the
//! cache off (every command loads its stream, as before the cache).

use hashlink::LruCache;
use std::any::Any;
use std::sync::Mutex;

/// An aggregate's state after its event `sequence`, whose chain hash is `chain_hash`.
pub struct Cached<A> {
    pub state: A,
    pub sequence: i64,
    pub chain_hash: Option<String>,
}

impl<A: domain::Aggregate> Cached<A> {
    /// An aggregate with no events: the guess for one this process has not commanded.
    pub fn empty() -> Cached<A> {
        Cached {
            state: A::default(),
            sequence: 0,
            chain_hash: None,
        }
    }

    /// Folds in the stored event `sequence` of this aggregate, whose chain hash is `chain_hash`:
    /// how a state is rebuilt from its stream, one event at a time in sequence order.
    pub fn apply_stored(&mut self, event: A::Event, sequence: i64, chain_hash: Option<String>) {
        self.state.apply(event);
        self.sequence = sequence;
        self.chain_hash = chain_hash;
    }

    /// The state after `events` were appended after this one, the last with chain hash `head`.
    pub fn after(mut self, events: &[A::Event], head: Option<String>) -> Cached<A>
    where
        A::Event: Clone,
    {
        for event in events {
            self.state.apply(event.clone());
        }
        self.sequence += events.len() as i64;
        self.chain_hash = head;
        self
    }
}

/// Recently commanded aggregates, by (aggregate type, aggregate id).
pub struct AggregateCache {
    capacity: usize,
    entries: Mutex<LruCache<(String, String), Box<dyn Any + Send>>>,
}

impl std::fmt::Debug for AggregateCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregateCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

/// How many aggregates a log keeps by default.
pub const DEFAULT_CAPACITY: usize = 4096;

impl Default for AggregateCache {
    fn default() -> AggregateCache {
        AggregateCache::new(DEFAULT_CAPACITY)
    }
}

impl AggregateCache {
    /// A cache of at most `capacity` aggregates (0: off).
    pub fn new(capacity: usize) -> AggregateCache {
        AggregateCache {
            capacity,
            entries: Mutex::new(LruCache::new(capacity.max(1))),
        }
    }

    /// Whether states are kept at all.
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// How many aggregates are kept now.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether no aggregate is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, LruCache<(String, String), Box<dyn Any + Send>>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes the kept state of `aggregate_type`/`aggregate_id` out, if any.
    pub fn take<A: Send + 'static>(&self, aggregate_type: &str, aggregate_id: &str) -> Option<Cached<A>> {
        if !self.enabled() {
            return None;
        }
        let entry = self
            .entries()
            .remove(&(aggregate_type.to_string(), aggregate_id.to_string()))?;
        entry.downcast::<Cached<A>>().ok().map(|boxed| *boxed)
    }

    /// Keeps `cached` as the state of `aggregate_type`/`aggregate_id`.
    pub fn put<A: Send + 'static>(&self, aggregate_type: &str, aggregate_id: &str, cached: Cached<A>) {
        if self.enabled() {
            self.entries()
                .insert((aggregate_type.to_string(), aggregate_id.to_string()), Box::new(cached));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_commanded_aggregate_leaves_first_and_capacity_zero_keeps_nothing() {
        let cache = AggregateCache::new(2);
        let entry = |n: i64| Cached {
            state: n,
            sequence: n,
            chain_hash: None,
        };
        cache.put("T", "a", entry(1));
        cache.put("T", "b", entry(2));
        let a = cache.take::<i64>("T", "a").expect("kept");
        cache.put("T", "a", a);
        cache.put("T", "c", entry(3));
        assert!(
            cache.take::<i64>("T", "b").is_none(),
            "b was the least recently commanded"
        );
        assert_eq!(cache.take::<i64>("T", "a").map(|c| c.state), Some(1));
        assert!(cache.take::<i64>("T", "a").is_none(), "taken out, not copied");
        assert!(
            cache.take::<String>("T", "c").is_none(),
            "another Rust type is not this entry"
        );

        let off = AggregateCache::new(0);
        off.put("T", "a", entry(1));
        assert!(off.take::<i64>("T", "a").is_none());
        assert!(off.is_empty());
    }
}
