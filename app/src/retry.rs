//! How the durable workflows retry an item that failed: backoff doubling to a ceiling, and
//! parking after a number of attempts ([`RetryPolicy`]). Data only: the engine is
//! [`crate::workflows`].

use std::time::Duration;

/// How items are retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Failures after which an item is parked.
    pub max_attempts: i32,
    /// The wait after the first failure; it doubles after each, up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// How long a runner holds an item it works on (a dead runner's item is taken over after it).
    pub lease: Duration,
    /// How often an idle runner looks for work made by other processes or falling due.
    pub poll: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            backoff: Duration::from_secs(60),
            max_backoff: Duration::from_secs(6 * 3600),
            lease: Duration::from_secs(300),
            poll: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// The wait after the `failures`-th failure.
    pub fn backoff_after(&self, failures: i32) -> Duration {
        let doublings = u32::try_from(failures.saturating_sub(1)).unwrap_or(0).min(20);
        self.backoff.saturating_mul(1 << doublings).min(self.max_backoff)
    }
}
