//! The one retry layer. Every request a client sends — a Graph call, a blob block, an
//! AdminService call, a WSUS request run — is retried here when it fails transiently (throttling
//! with `429` and `Retry-After`, a `5xx`, a dropped connection), with exponential backoff that
//! honours `Retry-After` and is capped. Nothing above the clients retries again: the apply
//! engine and observe call a client once, and a multi-step operation (an upload) never restarts
//! because one of its requests was throttled. The policy is the context's
//! ([`crate::context::Context::with_retry`]), handed to each client in its `ClientEnv`.

use std::time::Duration;

use super::PlatformError;

/// How transient failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (the first one included).
    pub attempts: u32,
    /// Wait before the first retry; doubled for each further one.
    pub base: Duration,
    /// Longest wait (also caps Retry-After).
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 6, base: Duration::from_millis(250), max: Duration::from_secs(30) }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (1 for the first retry), or the platform's
    /// `Retry-After` when it gave one — both capped at `max`.
    pub fn wait(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self.base.saturating_mul(1 << attempt.saturating_sub(1).min(16)).min(self.max);
        retry_after.map_or(backoff, |r| r.min(self.max))
    }
}

/// What one request came to, as counted per platform (`patchops_platform_requests_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// Answered.
    Ok,
    /// Throttled (`429`): retried after the platform's `Retry-After`.
    Throttled,
    /// A `5xx` or a dropped connection: retried.
    Transient,
    /// Refused, or failed in a way retrying cannot help.
    Failed,
}

impl Outcome {
    /// As written in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Throttled => "throttled",
            Outcome::Transient => "transient",
            Outcome::Failed => "failed",
        }
    }

    fn of<T>(result: &Result<T, &PlatformError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Ok,
            Err(PlatformError::Transient { throttled: true, .. }) => Outcome::Throttled,
            Err(PlatformError::Transient { .. }) => Outcome::Transient,
            Err(_) => Outcome::Failed,
        }
    }
}

/// Every request's outcome, counted per platform, for the life of a context (the daemon turns
/// them into metrics). Shared by the context's clients.
#[derive(Debug, Default)]
pub struct RequestStats {
    counts: std::sync::Mutex<std::collections::BTreeMap<(String, Outcome), u64>>,
}

impl RequestStats {
    fn record(&self, platform: &str, outcome: Outcome) {
        if let Ok(mut c) = self.counts.lock() {
            *c.entry((platform.to_string(), outcome)).or_default() += 1;
        }
    }

    /// The counts so far, by (platform, outcome).
    pub fn snapshot(&self) -> std::collections::BTreeMap<(String, Outcome), u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// A client's view of the retry layer: the policy, and where its requests are counted.
#[derive(Debug, Clone, Default)]
pub struct Requests {
    policy: RetryPolicy,
    stats: Option<std::sync::Arc<RequestStats>>,
    platform: String,
}

impl Requests {
    /// Requests of `platform`, retried by `policy`, counted in `stats`.
    pub fn new(policy: RetryPolicy, stats: std::sync::Arc<RequestStats>, platform: &str) -> Requests {
        Requests { policy, stats: Some(stats), platform: platform.to_string() }
    }

    /// The same, retried by `policy`.
    #[must_use]
    pub fn with_policy(mut self, policy: RetryPolicy) -> Requests {
        self.policy = policy;
        self
    }

    /// The same, counted in `stats` as `platform`'s.
    #[must_use]
    pub fn counted(mut self, stats: std::sync::Arc<RequestStats>, platform: &str) -> Requests {
        self.stats = Some(stats);
        self.platform = platform.to_string();
        self
    }

    /// Runs `op` — one request — retrying transient platform errors, counting each attempt.
    pub async fn send<T, F, Fut>(&self, op: F) -> Result<T, PlatformError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, PlatformError>>,
    {
        self.send_with(op, |e| Some(e)).await
    }

    /// [`Requests::send`] for an operation whose error may hold a platform error (`as_platform`
    /// finds it; other errors are neither retried nor counted as the platform's).
    pub async fn send_with<T, E, F, Fut>(
        &self,
        mut op: F,
        as_platform: fn(&E) -> Option<&PlatformError>,
    ) -> Result<T, E>
    where
        E: std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let mut attempt = 1;
        loop {
            let result = op().await;
            let platform_error = match &result {
                Ok(_) => Some(Ok(())),
                Err(e) => as_platform(e).map(Err),
            };
            if let (Some(stats), Some(r)) = (&self.stats, &platform_error) {
                stats.record(&self.platform, Outcome::of(r));
            }
            let retry_after = match platform_error {
                Some(Err(PlatformError::Transient { retry_after, .. })) => Some(*retry_after),
                _ => None,
            };
            match (result, retry_after) {
                (Err(e), Some(retry_after)) if attempt < self.policy.attempts => {
                    let wait = self.policy.wait(attempt, retry_after);
                    tracing::warn!(error = %e, attempt, wait = ?wait, "transient platform error; retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                (result, _) => return result,
            }
        }
    }
}

/// Runs `op`, retrying transient platform errors (not counted anywhere).
pub async fn retry<T, F, Fut>(policy: RetryPolicy, op: F) -> Result<T, PlatformError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, PlatformError>>,
{
    Requests { policy, ..Requests::default() }.send(op).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped_and_retry_after_wins_within_the_cap() {
        let p = RetryPolicy { attempts: 10, base: Duration::from_millis(100), max: Duration::from_secs(1) };
        assert_eq!(p.wait(1, None), Duration::from_millis(100));
        assert_eq!(p.wait(3, None), Duration::from_millis(400));
        assert_eq!(p.wait(9, None), Duration::from_secs(1));
        assert_eq!(p.wait(1, Some(Duration::from_millis(700))), Duration::from_millis(700));
        assert_eq!(p.wait(1, Some(Duration::from_secs(60))), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn transient_errors_are_retried_up_to_the_attempts_and_others_are_not() {
        let p = RetryPolicy { attempts: 3, base: Duration::from_millis(1), max: Duration::from_millis(2) };
        let calls = std::sync::atomic::AtomicU32::new(0);
        let transient = || PlatformError::Transient {
            platform: crate::model::ObjectName::new("p").unwrap(),
            operation: "op".into(),
            reason: "503".into(),
            retry_after: None,
            throttled: false,
        };
        let r: Result<(), _> = retry(p, || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(transient())
        })
        .await;
        assert!(matches!(r, Err(PlatformError::Transient { .. })));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
        calls.store(0, std::sync::atomic::Ordering::SeqCst);
        let r: Result<(), _> = retry(p, || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(PlatformError::Unavailable {
                platform: crate::model::ObjectName::new("p").unwrap(),
                cause: "no".into(),
            })
        })
        .await;
        assert!(matches!(r, Err(PlatformError::Unavailable { .. })));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
