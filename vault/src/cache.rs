//! The in-memory cache of unwrapped data keys, by key id. Entries live at most a time to live
//! (so a key destroyed by another process stops opening here within that time), the cache
//! holds at most a capacity (the oldest entry goes first), and key material is wiped when an
//! entry's last reference is dropped. An epoch, bumped by every eviction, keeps a key loaded
//! before a destroy from being cached after it.

use crate::sealed::DataKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Entries at most, by default.
pub const DEFAULT_CACHE_CAPACITY: usize = 1024;
/// How long an entry is used before the database is asked again, by default.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);

pub(crate) struct KeyCache {
    capacity: usize,
    ttl: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    epoch: u64,
}

struct Entry {
    key: Arc<DataKey>,
    loaded_at: Instant,
}

impl KeyCache {
    pub fn new(capacity: usize, ttl: Duration) -> KeyCache {
        KeyCache {
            capacity,
            ttl,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the map inconsistent for our uses.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The epoch to pass to [`KeyCache::insert`] for a key about to be read from the database.
    pub fn epoch(&self) -> u64 {
        self.state().epoch
    }

    /// The cached key of `key_id`, when there is one younger than the time to live.
    pub fn get(&self, key_id: &str) -> Option<Arc<DataKey>> {
        let mut state = self.state();
        let entry = state.entries.get(key_id)?;
        if entry.loaded_at.elapsed() < self.ttl {
            return Some(entry.key.clone());
        }
        state.entries.remove(key_id);
        None
    }

    /// Caches `key`, unless an eviction happened since `epoch` was read (the key may have
    /// been destroyed meanwhile) or caching is off.
    pub fn insert(&self, key: Arc<DataKey>, epoch: u64) {
        if self.capacity == 0 || self.ttl.is_zero() {
            return;
        }
        let mut state = self.state();
        if state.epoch != epoch {
            return;
        }
        if state.entries.len() >= self.capacity && !state.entries.contains_key(&key.key_id) {
            let oldest = state
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.loaded_at)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                state.entries.remove(&oldest);
            }
        }
        state.entries.insert(
            key.key_id.clone(),
            Entry {
                key,
                loaded_at: Instant::now(),
            },
        );
    }

    /// Drops every entry whose subject `matches`.
    pub fn evict_subjects(&self, matches: impl Fn(&str) -> bool) {
        let mut state = self.state();
        state.epoch += 1;
        state.entries.retain(|_, entry| !matches(&entry.key.subject));
    }

    /// Drops every entry.
    pub fn clear(&self) {
        let mut state = self.state();
        state.epoch += 1;
        state.entries.clear();
    }

    /// How many entries are cached.
    pub fn len(&self) -> usize {
        self.state().entries.len()
    }
}
