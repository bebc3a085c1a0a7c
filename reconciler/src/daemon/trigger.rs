//! What wakes the loop. Each source sends a [`Trigger`] into one channel; the loop runs one
//! cycle per wake-up (wake-ups that arrive during a cycle are merged into the next one). A
//! trigger never carries content: whatever woke the loop, the cycle fetches and verifies the
//! fleet itself.
//!
//! - [`poll`]: the remote branch at an interval with jitter (Flux's default: one minute);
//! - [`watch_refs`]: a local repository's refs, through the `notify` crate, debounced — a
//!   commit or a push into it is seen at once;
//! - webhooks and `POST /reconcile` ([`super::http`]);
//! - the scheduler's own wake-ups: the time a waiting change opens, a retry after a failure.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

/// Why a cycle ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Trigger {
    /// The daemon started.
    Startup,
    /// The poll interval passed.
    Poll,
    /// A local repository's refs changed.
    Watch,
    /// A webhook delivery (GitHub, GitLab, Azure DevOps, generic).
    Webhook,
    /// `POST /reconcile`.
    Manual,
    /// A waiting change opened (a ring's soak ended, a window opened).
    Requeue,
    /// A retry after a failed cycle.
    Retry,
}

impl Trigger {
    /// As written in metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Startup => "startup",
            Trigger::Poll => "poll",
            Trigger::Watch => "watch",
            Trigger::Webhook => "webhook",
            Trigger::Manual => "manual",
            Trigger::Requeue => "requeue",
            Trigger::Retry => "retry",
        }
    }

    /// Whether the trigger says something changed outside (it runs even while the error policy
    /// holds retries back).
    pub fn is_news(self) -> bool {
        matches!(self, Trigger::Watch | Trigger::Webhook | Trigger::Manual | Trigger::Startup)
    }
}

/// `interval` with up to ±`jitter` (a share, such as 0.075) of it, from the OS's randomness.
pub fn jittered(interval: Duration, jitter: f64) -> Duration {
    let mut bytes = [0u8; 8];
    let unit = match getrandom::fill(&mut bytes) {
        Ok(()) => (u64::from_le_bytes(bytes) as f64 / u64::MAX as f64) * 2.0 - 1.0,
        Err(_) => 0.0,
    };
    let jitter = jitter.clamp(0.0, 0.5);
    interval.mul_f64((1.0 + unit * jitter).max(0.0))
}

/// Sends [`Trigger::Poll`] every `interval` milliseconds (± `jitter`; read anew each time, so
/// the fleet can change it) until the channel closes.
pub async fn poll(tx: mpsc::Sender<Trigger>, interval: std::sync::Arc<std::sync::atomic::AtomicU64>, jitter: f64) {
    loop {
        let ms = interval.load(std::sync::atomic::Ordering::Relaxed).max(1000);
        tokio::time::sleep(jittered(Duration::from_millis(ms), jitter)).await;
        if tx.send(Trigger::Poll).await.is_err() {
            return;
        }
    }
}

/// The git directory of a local repository path, when it is one.
pub fn git_dir(repo: &str) -> Option<PathBuf> {
    let path = Path::new(repo);
    if repo.contains("://") || !path.exists() {
        return None;
    }
    git2::Repository::discover(path).ok().map(|r| r.path().to_path_buf())
}

/// How long the watcher waits for more events before it wakes the loop (a `git commit` writes
/// several files; a push, many).
pub const WATCH_DEBOUNCE: Duration = Duration::from_millis(150);

/// Watches a local repository's refs (`HEAD`, `refs/`, `packed-refs`) and sends
/// [`Trigger::Watch`] once per burst of changes. Returns the watcher, which stops when dropped.
pub fn watch_refs(git_dir: &Path, tx: mpsc::Sender<Trigger>) -> Result<notify::RecommendedWatcher, notify::Error> {
    use notify::Watcher;
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<()>();
    let watched = git_dir.to_path_buf();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        // Reading refs (every cycle does) is not news: only writes count.
        if matches!(event.kind, notify::EventKind::Access(_) | notify::EventKind::Other) {
            return;
        }
        // Only what moves a ref: HEAD, anything under refs/, packed-refs (not objects/, index,
        // or lock files being written).
        let relevant = event.paths.iter().any(|p| {
            let Ok(rel) = p.strip_prefix(&watched) else { return false };
            let rel = rel.to_string_lossy();
            !rel.ends_with(".lock") && (rel == "HEAD" || rel == "packed-refs" || rel.starts_with("refs"))
        });
        if relevant {
            let _ = events_tx.send(());
        }
    })?;
    watcher.watch(git_dir, notify::RecursiveMode::NonRecursive)?;
    let refs = git_dir.join("refs");
    if refs.is_dir() {
        watcher.watch(&refs, notify::RecursiveMode::Recursive)?;
    }
    tokio::spawn(async move {
        while events_rx.recv().await.is_some() {
            // Debounce: let the burst end, then wake once.
            loop {
                match tokio::time::timeout(WATCH_DEBOUNCE, events_rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            if tx.send(Trigger::Watch).await.is_err() {
                return;
            }
        }
    });
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_share_and_varies() {
        let base = Duration::from_secs(60);
        let samples: Vec<Duration> = (0..200).map(|_| jittered(base, 0.075)).collect();
        assert!(samples.iter().all(|d| *d >= Duration::from_millis(55_500) && *d <= Duration::from_millis(64_500)));
        assert!(samples.iter().any(|d| *d != samples[0]), "no variation");
        assert_eq!(jittered(base, 0.0), base);
    }
}
