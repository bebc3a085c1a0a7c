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
    /// A remote catalog changed (its bytes differ from those the last cycle verified).
    Catalog,
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
            Trigger::Catalog => "catalog",
        }
    }

    /// Whether the trigger says something changed outside (it runs even while the error policy
    /// holds retries back).
    pub fn is_news(self) -> bool {
        matches!(self, Trigger::Watch | Trigger::Webhook | Trigger::Manual | Trigger::Startup | Trigger::Catalog)
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

/// A remote catalog the daemon fetches between cycles: the CatalogSource's `interval`, and the
/// digest of the bytes the last cycle verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogWatch {
    /// The CatalogSource.
    pub source: String,
    /// The catalog's URL.
    pub url: url::Url,
    /// How often it is fetched.
    pub interval: Duration,
    /// SHA-256 of the catalog the last cycle verified.
    pub seen: crate::vocab::Sha256,
}

/// Fetches each watched catalog at its interval (± `jitter`) and sends [`Trigger::Catalog`] when
/// its bytes are not those the last cycle verified — once per new content, so a catalog that
/// the cycle then refuses (a bad signature, a rollback) does not wake the loop again and again.
/// Only a wake-up: the cycle fetches and verifies the catalog itself. The list is replaced after
/// each cycle that read the fleet.
pub async fn watch_catalogs(
    tx: mpsc::Sender<Trigger>,
    mut list: tokio::sync::watch::Receiver<Vec<CatalogWatch>>,
    jitter: f64,
) {
    use std::collections::HashMap;
    let mut due: HashMap<url::Url, tokio::time::Instant> = HashMap::new();
    let mut woke_for: HashMap<url::Url, crate::vocab::Sha256> = HashMap::new();
    loop {
        let watched = list.borrow_and_update().clone();
        let now = tokio::time::Instant::now();
        due.retain(|u, _| watched.iter().any(|w| &w.url == u));
        for w in &watched {
            due.entry(w.url.clone()).or_insert_with(|| now + jittered(w.interval, jitter));
        }
        let next = due.values().min().copied();
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = list.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
            () = sleep => {}
        }
        let now = tokio::time::Instant::now();
        for w in &watched {
            if due.get(&w.url).is_some_and(|at| *at <= now) {
                due.insert(w.url.clone(), now + jittered(w.interval, jitter));
                match crate::http::get_capped(&w.url, crate::catalog::MAX_CATALOG_BYTES).await {
                    Ok(Some(bytes)) => {
                        let digest = crate::vocab::Sha256::digest(&bytes);
                        if digest != w.seen && woke_for.get(&w.url) != Some(&digest) {
                            tracing::info!(source = %w.source, sha256 = %digest, "the catalog changed; reconciling");
                            woke_for.insert(w.url.clone(), digest);
                            if tx.send(Trigger::Catalog).await.is_err() {
                                return;
                            }
                        }
                    }
                    Ok(None) => {
                        tracing::warn!(source = %w.source, url = %crate::http::redact(&w.url), "the catalog is gone (404)")
                    }
                    Err(e) => tracing::warn!(source = %w.source, error = %e, "cannot fetch the catalog"),
                }
            }
        }
    }
}
