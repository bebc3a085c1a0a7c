//! Time, from one place. Everything that needs "now" asks a [`Clock`]: the one the
//! [`crate::context::Context`] holds, or the [`SystemClock`] where no context reaches (the
//! emulators, the state directory's own default). Tests drive time with a [`ManualClock`] —
//! a ring whose soak ends in three days is checked by moving the clock, not by waiting.
//!
//! [`SystemClock::now`] is the only call of `Utc::now()` in the engine.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// A future that completes when a clock reaches a time.
pub type Wait = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A source of the current time.
pub trait Clock: Send + Sync + Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// Completes once this clock reads `at` or later: the daemon's scheduler sleeps on it until
    /// a waiting change opens. For the system clock, a timer; a [`ManualClock`] completes when
    /// it is moved past `at`, and never on its own.
    fn wait_until(&self, at: DateTime<Utc>) -> Wait {
        let wait = (at - self.now()).to_std().unwrap_or(std::time::Duration::ZERO);
        Box::pin(tokio::time::sleep(wait))
    }
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

    /// Completes once the clock reads `at` or later ([`Clock::wait_until`]).
    pub fn wait_until(&self, at: DateTime<Utc>) -> Wait {
        self.0.wait_until(at)
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
    /// Shared with the futures of [`Clock::wait_until`], which read it when woken.
    at: Arc<Mutex<DateTime<Utc>>>,
    /// Wakes those futures when the time moves.
    moved: Arc<tokio::sync::Notify>,
}

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: DateTime<Utc>) -> Arc<ManualClock> {
        Arc::new(ManualClock { at: Arc::new(Mutex::new(at)), moved: Arc::new(tokio::sync::Notify::new()) })
    }

    /// Sets the time.
    pub fn set(&self, at: DateTime<Utc>) {
        if let Ok(mut t) = self.at.lock() {
            *t = at;
        }
        self.moved.notify_waiters();
    }

    /// Moves the time on by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        if let Ok(mut t) = self.at.lock() {
            *t += by;
        }
        self.moved.notify_waiters();
    }
}

fn read(at: &Mutex<DateTime<Utc>>) -> DateTime<Utc> {
    // A poisoned lock still holds the last time set.
    match at.lock() {
        Ok(t) => *t,
        Err(poisoned) => *poisoned.into_inner(),
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        read(&self.at)
    }

    fn wait_until(&self, until: DateTime<Utc>) -> Wait {
        let (at, moved) = (self.at.clone(), self.moved.clone());
        Box::pin(async move {
            loop {
                // Registered before the time is read, so a move in between is not missed.
                let notified = moved.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if read(&at) >= until {
                    return;
                }
                notified.await;
            }
        })
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

    #[tokio::test]
    async fn waiting_on_a_manual_clock_ends_when_it_is_moved_past_the_time_and_not_before() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let clock = ManualClock::new(start);
        let shared = SharedClock::from(clock.clone());
        let mut wait = tokio::spawn(shared.wait_until(start + chrono::Duration::hours(72)));
        // Real time passing does not move it.
        assert!(tokio::time::timeout(std::time::Duration::from_millis(100), &mut wait).await.is_err());
        clock.advance(chrono::Duration::hours(71));
        assert!(tokio::time::timeout(std::time::Duration::from_millis(100), &mut wait).await.is_err());
        clock.advance(chrono::Duration::hours(1));
        let done = tokio::time::timeout(std::time::Duration::from_secs(5), &mut wait).await;
        assert!(matches!(done, Ok(Ok(()))), "{done:?}");
        // A time already reached completes at once.
        tokio::time::timeout(std::time::Duration::from_secs(5), shared.wait_until(start)).await.unwrap();
    }
}
