//! What the loop does after a failure (kube-runtime's `error_policy`): retry with exponential
//! backoff — capped, with jitter — and, after repeated failures, report the fleet *Stalled*
//! with the last error while still retrying at the cap. News (a commit seen by the watcher, a
//! webhook, `POST /reconcile`) runs a cycle at once whatever the backoff; a success resets it.
//! Actions that fail inside a cycle are counted per (Product, Platform) the same way, so that
//! one target's repeated failure shows as that target Stalled without holding the others up.

use std::collections::BTreeMap;
use std::time::Duration;

/// The backoff settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The wait after the first failure; doubled after each further one.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
    /// Consecutive failures after which the fleet (or a target) is Stalled.
    pub stalled_after: u32,
    /// ± this share of each wait, at random.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { base: Duration::from_secs(10), max: Duration::from_secs(600), stalled_after: 5, jitter: 0.1 }
    }
}

impl Backoff {
    /// The wait after `failures` consecutive failures (1 for the first).
    pub fn wait(&self, failures: u32) -> Duration {
        let exp = self.base.saturating_mul(1u32 << failures.saturating_sub(1).min(20)).min(self.max);
        super::trigger::jittered(exp, self.jitter).min(self.max)
    }
}

/// Failure counts: the fleet's and each (Product, Platform)'s.
#[derive(Debug, Default, Clone)]
pub struct ErrorPolicy {
    /// Settings.
    pub backoff: Backoff,
    failures: u32,
    last_error: Option<String>,
    targets: BTreeMap<(String, String), (u32, String, std::time::Instant)>,
}

impl ErrorPolicy {
    /// A policy with `backoff`.
    pub fn new(backoff: Backoff) -> ErrorPolicy {
        ErrorPolicy { backoff, ..ErrorPolicy::default() }
    }

    /// A cycle failed with `error`: the wait before the retry.
    pub fn failed(&mut self, error: &str) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.last_error = Some(error.to_string());
        self.backoff.wait(self.failures)
    }

    /// A cycle ran (whatever its actions did).
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.last_error = None;
    }

    /// An action on (product, platform) failed; true when that makes the target Stalled.
    pub fn target_failed(&mut self, product: &str, platform: &str, error: &str) -> bool {
        let now = std::time::Instant::now();
        let entry = self.targets.entry((product.to_string(), platform.to_string())).or_insert((0, String::new(), now));
        entry.0 = entry.0.saturating_add(1);
        entry.1 = error.to_string();
        entry.2 = now + self.backoff.wait(entry.0);
        entry.0 >= self.backoff.stalled_after
    }

    /// The targets still backing off, with why and until when: their changes wait while the
    /// other targets go ahead.
    pub fn held(&self) -> BTreeMap<(String, String), (String, std::time::Instant)> {
        let now = std::time::Instant::now();
        self.targets
            .iter()
            .filter(|(_, (_, _, until))| *until > now)
            .map(|(k, (n, e, until))| (k.clone(), (format!("failed {n} time(s) in a row, last: {e}"), *until)))
            .collect()
    }

    /// When the next target's backoff ends.
    pub fn next_target_retry(&self) -> Option<std::time::Instant> {
        let now = std::time::Instant::now();
        self.targets.values().map(|(_, _, until)| *until).filter(|u| *u > now).min()
    }

    /// An action on (product, platform) succeeded.
    pub fn target_succeeded(&mut self, product: &str, platform: &str) {
        self.targets.remove(&(product.to_string(), platform.to_string()));
    }

    /// Consecutive failed cycles.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The fleet is Stalled: it failed `stalled_after` times in a row; the last error.
    pub fn stalled(&self) -> Option<&str> {
        (self.failures >= self.backoff.stalled_after).then_some(self.last_error.as_deref().unwrap_or("failed"))
    }

    /// A target's consecutive failures and last error, when it has any.
    pub fn target(&self, product: &str, platform: &str) -> Option<(u32, &str)> {
        self.targets.get(&(product.to_string(), platform.to_string())).map(|(n, e, _)| (*n, e.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_exponentially_to_the_cap_and_stall_then_recover() {
        let b = Backoff { base: Duration::from_secs(1), max: Duration::from_secs(30), stalled_after: 3, jitter: 0.0 };
        let mut p = ErrorPolicy::new(b);
        assert_eq!(p.failed("git fetch failed"), Duration::from_secs(1));
        assert_eq!(p.failed("git fetch failed"), Duration::from_secs(2));
        assert!(p.stalled().is_none());
        assert_eq!(p.failed("git fetch failed"), Duration::from_secs(4));
        assert_eq!(p.stalled(), Some("git fetch failed"));
        for _ in 0..10 {
            p.failed("still");
        }
        assert_eq!(p.backoff.wait(p.failures()), Duration::from_secs(30), "capped");
        p.succeeded();
        assert_eq!((p.failures(), p.stalled()), (0, None));
    }

    #[test]
    fn a_target_stalls_on_its_own_failures_and_recovers_on_success() {
        let mut p = ErrorPolicy::new(Backoff { stalled_after: 2, ..Backoff::default() });
        assert!(!p.target_failed("app", "intune-prod", "403"));
        assert!(p.target_failed("app", "intune-prod", "403"));
        assert_eq!(p.target("app", "intune-prod"), Some((2, "403")));
        assert_eq!(p.target("tool", "intune-prod"), None);
        assert!(p.held().contains_key(&("app".to_string(), "intune-prod".to_string())), "backing off");
        assert!(p.next_target_retry().is_some());
        p.target_succeeded("app", "intune-prod");
        assert_eq!(p.target("app", "intune-prod"), None);
    }
}
