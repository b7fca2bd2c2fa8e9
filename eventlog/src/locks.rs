//! [`AggregateLocks`]: the per-aggregate turns of commands inside one process.

use crate::LogError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// An aggregate's turn: held by the command deciding on it.
type Turn = Weak<tokio::sync::Mutex<()>>;

/// One async mutex per aggregate, made on first use and dropped when nobody holds or waits
/// for it (the map keeps weak references, swept when it grows).
#[derive(Debug, Default)]
pub struct AggregateLocks {
    locks: Mutex<HashMap<(String, String), Turn>>,
}

impl AggregateLocks {
    /// Waits (at most `wait`) for the turn on `aggregate_type`/`aggregate_id`.
    pub async fn lock(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        wait: Duration,
    ) -> Result<tokio::sync::OwnedMutexGuard<()>, LogError> {
        let mutex = {
            let mut locks = self.locks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if locks.len() > 1024 {
                locks.retain(|_, lock| lock.strong_count() > 0);
            }
            let key = (aggregate_type.to_string(), aggregate_id.to_string());
            match locks.get(&key).and_then(Weak::upgrade) {
                Some(mutex) => mutex,
                None => {
                    let mutex = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(key, Arc::downgrade(&mutex));
                    mutex
                }
            }
        };
        tokio::time::timeout(wait, mutex.lock_owned())
            .await
            .map_err(|_| LogError::Conflict {
                aggregate_type: aggregate_type.to_string(),
                aggregate_id: aggregate_id.to_string(),
            })
    }
}
