//! The one place dynamoi reads the current instant.
//!
//! Everything that needs "now" (event `recorded_at`, billing periods, deadlines, expiry,
//! retention, schedules) is handed a [`SharedClock`]: [`SystemClock`] in production; in tests
//! and in `dynamoi demo` a clock set to a chosen instant, either standing still
//! ([`ManualClock`]) or running at real speed from it ([`AnchoredClock`], so that events still
//! get distinct, increasing times).
//!
//! Invariant: no code outside this crate calls `Utc::now()` (checked by `.ci/run`). Durations
//! and timeouts use `std::time::Instant`, which is monotonic and never asserted on.

use chrono::{DateTime, Duration, Utc};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A source of the current instant.
pub trait Clock: Send + Sync + Debug {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// A clock shared by everything in one process.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The system clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that stands still at the instant it was set to, until it is set or advanced.
#[derive(Debug)]
pub struct ManualClock {
    // std Mutex, not tokio's: no `.await` is ever held across it.
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock standing at `at`.
    pub fn new(at: DateTime<Utc>) -> Arc<ManualClock> {
        Arc::new(ManualClock { now: Mutex::new(at) })
    }

    /// Moves the clock to `at` (backwards too: a test may need it).
    pub fn set(&self, at: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = at;
    }

    /// Moves the clock forward by `by`; returns the new instant.
    pub fn advance(&self, by: Duration) -> DateTime<Utc> {
        let mut now = self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
        *now
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A clock that runs at real speed from an instant it was set to: `now` is that instant plus
/// the (monotonic) time elapsed since. Setting or advancing it moves the anchor.
#[derive(Debug)]
pub struct AnchoredClock {
    // std Mutex, not tokio's: no `.await` is ever held across it.
    anchor: Mutex<(DateTime<Utc>, Instant)>,
}

impl AnchoredClock {
    /// A clock reading `at` now and running on from it.
    pub fn new(at: DateTime<Utc>) -> Arc<AnchoredClock> {
        Arc::new(AnchoredClock {
            anchor: Mutex::new((at, Instant::now())),
        })
    }

    /// Makes the clock read `at` now (backwards too).
    pub fn set(&self, at: DateTime<Utc>) {
        *self.anchor.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = (at, Instant::now());
    }

    /// Moves the clock forward by `by`; returns the new instant.
    pub fn advance(&self, by: Duration) -> DateTime<Utc> {
        let mut anchor = self.anchor.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        anchor.0 += by;
        anchor.0 + elapsed(anchor.1)
    }
}

fn elapsed(since: Instant) -> Duration {
    Duration::from_std(since.elapsed()).unwrap_or(Duration::MAX)
}

impl Clock for AnchoredClock {
    fn now(&self) -> DateTime<Utc> {
        let anchor = self.anchor.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        anchor.0 + elapsed(anchor.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_stands_still_until_set_or_advanced() {
        let start: DateTime<Utc> = "2026-11-30T23:59:59Z".parse().unwrap();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        assert_eq!(clock.now(), start);
        let later = clock.advance(Duration::seconds(2));
        assert_eq!(later.to_rfc3339(), "2026-12-01T00:00:01+00:00");
        assert_eq!(clock.now(), later);
        clock.set(start);
        assert_eq!(clock.now(), start);
    }

    #[test]
    fn an_anchored_clock_starts_at_its_instant_and_runs_on() {
        let start: DateTime<Utc> = "2027-06-01T12:00:00Z".parse().unwrap();
        let clock = AnchoredClock::new(start);
        let first = clock.now();
        assert!(first >= start && first - start < Duration::seconds(5), "{first}");
        assert!(clock.now() >= first);
        let later = clock.advance(Duration::days(1));
        assert!(later >= start + Duration::days(1));
        clock.set(start);
        assert!(clock.now() - start < Duration::seconds(5));
    }

    #[test]
    fn the_system_clock_moves_forward() {
        let clock = system();
        let first = clock.now();
        assert!(clock.now() >= first);
    }
}
