//! Time, from one place. Everything that needs "now" asks a [`Clock`]: the one the
//! [`crate::context::Context`] holds, or the [`SystemClock`] where no context reaches (the
//! emulators, the state directory's own default). Tests drive time with a [`ManualClock`] —
//! a ring whose soak ends in three days is checked by moving the clock, not by waiting.
//!
//! [`SystemClock::now`] is the only call of `Utc::now()` in the engine.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// A shared clock (the system clock by default).
#[derive(Debug, Clone)]
pub struct SharedClock(Arc<dyn Clock>);

impl SharedClock {
    /// Shares `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> SharedClock {
        SharedClock(clock)
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        self.0.now()
    }
}

/// Two handles are equal when they share one clock.
impl PartialEq for SharedClock {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The one system clock every default handle shares (so that defaults compare equal).
static SYSTEM: std::sync::LazyLock<Arc<dyn Clock>> = std::sync::LazyLock::new(|| Arc::new(SystemClock));

impl Default for SharedClock {
    fn default() -> Self {
        SharedClock(SYSTEM.clone())
    }
}

impl<C: Clock + 'static> From<Arc<C>> for SharedClock {
    fn from(clock: Arc<C>) -> Self {
        SharedClock(clock)
    }
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The system clock, shared.
pub fn system() -> SharedClock {
    SharedClock::default()
}

/// A clock that stands still until it is set or advanced (tests, `--now`-style replays).
#[derive(Debug)]
pub struct ManualClock {
    at: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: DateTime<Utc>) -> Arc<ManualClock> {
        Arc::new(ManualClock { at: Mutex::new(at) })
    }

    /// Sets the time.
    pub fn set(&self, at: DateTime<Utc>) {
        if let Ok(mut t) = self.at.lock() {
            *t = at;
        }
    }

    /// Moves the time on by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        if let Ok(mut t) = self.at.lock() {
            *t += by;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        // A poisoned lock still holds the last time set.
        match self.at.lock() {
            Ok(t) => *t,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(chrono::Duration::days(3));
        assert_eq!(clock.now(), start + chrono::Duration::days(3));
        clock.set(start);
        assert_eq!(clock.now(), start);
        assert!(SystemClock.now() > start);
    }
}
