//! The extension lookup's per-person allowance and answer cache (P8): in memory, keyed by the
//! caller's subject, forgotten after a minute (the allowance) or five minutes (an answer).

use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an answer is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(300);
/// How many answers are kept at most.
pub const CACHE_CAPACITY: usize = 10_000;
const WINDOW: Duration = Duration::from_secs(60);

/// A Spotify id: 22 base62 characters.
pub fn is_spotify_id(id: &str) -> bool {
    id.len() == 22 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The per-person allowance and the answer cache. std `Mutex`, not tokio's: no `.await` is
/// ever held while locked.
#[derive(Clone)]
pub struct LookupGuard {
    per_minute: u32,
    windows: Arc<Mutex<HashMap<String, (Instant, u32)>>>,
    cache: Arc<Mutex<HashMap<String, (Instant, Value)>>>,
}

impl LookupGuard {
    pub fn new(per_minute: u32) -> LookupGuard {
        LookupGuard {
            per_minute,
            windows: Arc::default(),
            cache: Arc::default(),
        }
    }

    /// Counts one call of `person`; `Err(seconds)` when over the allowance.
    pub(crate) fn admit(&self, person: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut windows = self.windows.lock().expect("never poisoned");
        windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        let (start, count) = windows.entry(person.to_string()).or_insert((now, 0));
        if *count >= self.per_minute {
            let left = WINDOW.saturating_sub(now.duration_since(*start));
            return Err(left.as_secs().max(1));
        }
        *count += 1;
        Ok(())
    }

    pub(crate) fn cached(&self, key: &str) -> Option<Value> {
        let cache = self.cache.lock().expect("never poisoned");
        cache
            .get(key)
            .filter(|(at, _)| at.elapsed() < CACHE_TTL)
            .map(|(_, v)| v.clone())
    }

    pub(crate) fn remember(&self, key: String, value: Value) {
        let mut cache = self.cache.lock().expect("never poisoned");
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(key, (Instant::now(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spotify_ids_are_22_base62_characters() {
        assert!(is_spotify_id("4uLU6hMCjMI75M1A2tKUQC"));
        assert!(!is_spotify_id("4uLU6hMCjMI75M1A2tKUQ"));
        assert!(!is_spotify_id("4uLU6hMCjMI75M1A2tKU-C"));
    }

    #[test]
    fn the_allowance_refuses_past_the_limit_with_the_seconds_left() {
        let guard = LookupGuard::new(2);
        assert_eq!(guard.admit("p"), Ok(()));
        assert_eq!(guard.admit("p"), Ok(()));
        let refused = guard.admit("p").unwrap_err();
        assert!((1..=60).contains(&refused));
        assert_eq!(guard.admit("other"), Ok(()), "allowances are per person");
    }
}
