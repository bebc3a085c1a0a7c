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

/// Runs `op`, retrying transient platform errors.
pub async fn retry<T, F, Fut>(policy: RetryPolicy, op: F) -> Result<T, PlatformError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, PlatformError>>,
{
    retry_when(policy, op, |e| match e {
        PlatformError::Transient { retry_after, .. } => Some(*retry_after),
        _ => None,
    })
    .await
}

/// Runs `op`, retrying the errors `transient` picks (it returns the platform's `Retry-After`,
/// if any, for those).
pub async fn retry_when<T, E, F, Fut>(
    policy: RetryPolicy,
    mut op: F,
    transient: impl Fn(&E) -> Option<Option<Duration>>,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if attempt < policy.attempts => match transient(&e) {
                Some(retry_after) => {
                    let wait = policy.wait(attempt, retry_after);
                    tracing::warn!(error = %e, attempt, wait = ?wait, "transient platform error; retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                None => return Err(e),
            },
            other => return other,
        }
    }
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
