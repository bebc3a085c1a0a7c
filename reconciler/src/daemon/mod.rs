//! `patchops run`: the reconciler that watches. A small core — one [`cycle`], exactly what
//! `apply --auto-approve` does — with the parts of kube-runtime's controller around it, each a
//! module of its own:
//!
//! - [`trigger`]: what wakes the loop (polling with jitter, the refs of a local repository,
//!   remote catalogs fetched at their interval, webhooks, `POST /reconcile`);
//! - the scheduler ([`Daemon::run`]): one cycle at a time, wake-ups during a cycle merged into
//!   the next; it also wakes when a waiting change opens (the cycle's `requeue_at`), no sooner;
//! - [`error_policy`]: backoff after failures, Stalled after repeated ones;
//! - [`http`]: health, readiness, status, history, metrics, webhooks, manual trigger;
//! - [`status`] and [`metrics`]: what it reports.
//!
//! Cycles never overlap and each takes the state directory's apply lock, so a `patchops apply`
//! typed meanwhile is refused as locked rather than racing the daemon. On shutdown (SIGTERM,
//! SIGINT) the loop takes no new work, lets the cycle in flight finish within a deadline, stops
//! the embedded emulators and returns; a kill is recovered by the journal at the next start.

pub mod cycle;
pub mod drift;
pub mod error_policy;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod status;
pub mod trigger;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Mutex, RwLock};

use crate::context::Context;
use crate::source::SourceOptions;
use cycle::CycleResult;
use error_policy::{Backoff, ErrorPolicy};
use trigger::Trigger;

/// The poll interval when neither the host nor the fleet sets one (Flux's default).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Where the fleet is (as `plan`).
    pub source: SourceOptions,
    /// Report without applying.
    pub plan_only: bool,
    /// How often the branch is fetched (±`jitter`); `None`: the fleet's Reconciler says, else
    /// one minute.
    pub interval: Option<Duration>,
    /// The poll interval's jitter, a share (0.075: ±7.5 %).
    pub jitter: f64,
    /// Watch a local repository's refs and reconcile as soon as they move.
    pub watch: bool,
    /// Where the endpoint listens; `None`: no endpoint.
    pub listen: Option<SocketAddr>,
    /// Webhook senders' secrets.
    pub webhooks: webhook::WebhookSecrets,
    /// The bearer token of `POST /reconcile`.
    pub token: Option<String>,
    /// How failures back off.
    pub backoff: Backoff,
    /// Cycles kept in the history.
    pub history: usize,
    /// Stop after this many cycles (tests and benchmarks).
    pub max_cycles: Option<u64>,
    /// How long a cycle in flight may take to finish after a shutdown request.
    pub shutdown_deadline: Duration,
}

impl DaemonOptions {
    /// The defaults, for the fleet at `source`: poll every minute ± 7.5 %, watch local
    /// repositories, no endpoint.
    pub fn new(source: SourceOptions) -> DaemonOptions {
        DaemonOptions {
            source,
            plan_only: false,
            interval: None,
            jitter: 0.075,
            watch: true,
            listen: None,
            webhooks: webhook::WebhookSecrets::default(),
            token: None,
            backoff: Backoff::default(),
            history: 50,
            max_cycles: None,
            shutdown_deadline: Duration::from_secs(30),
        }
    }
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The endpoint could not listen.
    #[error("cannot listen on {addr}: {source}; pick another address with --listen")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No HTTP client for notifications could be built.
    #[error("{0}")]
    Client(#[source] crate::http::HttpError),
    /// The local repository's refs could not be watched.
    #[error("cannot watch {path}: {source}; run with --no-watch to rely on polling")]
    Watch {
        /// The git directory.
        path: String,
        /// Why.
        #[source]
        source: ::notify::Error,
    },
}

impl DaemonError {
    /// A stable CamelCase reason.
    pub fn reason(&self) -> &'static str {
        match self {
            DaemonError::Listen { .. } => "ListenFailed",
            DaemonError::Watch { .. } => "WatchFailed",
            DaemonError::Client(e) => e.reason(),
        }
    }
}

/// A started daemon: the endpoint listens and the triggers are armed; [`Daemon::run`] loops.
pub struct Daemon {
    ctx: Arc<Context>,
    options: DaemonOptions,
    shared: Arc<http::Shared>,
    wake: mpsc::Receiver<Trigger>,
    addr: Option<SocketAddr>,
    server: Option<tokio::task::JoinHandle<()>>,
    stop_server: Option<tokio::sync::oneshot::Sender<()>>,
    _watcher: Option<::notify::RecommendedWatcher>,
    poller: Option<tokio::task::JoinHandle<()>>,
    catalogs: (tokio::sync::watch::Sender<Vec<trigger::CatalogWatch>>, tokio::task::JoinHandle<()>),
    interval: Arc<std::sync::atomic::AtomicU64>,
    sent: std::sync::Mutex<notify::Sent>,
    /// The one HTTP client notifications go out through (its connections are reused).
    notifier: reqwest::Client,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Daemon {
    /// Binds the endpoint and arms the triggers.
    pub async fn start(ctx: Arc<Context>, options: DaemonOptions) -> Result<Daemon, DaemonError> {
        let (tx, rx) = mpsc::channel(64);
        let notifier = crate::http::client().map_err(DaemonError::Client)?;
        let branch = options.source.rev.clone().or_else(|| {
            trigger::git_dir(&options.source.repo)
                .and_then(|d| git2::Repository::open(d).ok())
                .and_then(|r| r.head().ok().and_then(|h| h.shorthand().ok().map(str::to_string)))
        });
        let shared = Arc::new(http::Shared {
            status: RwLock::new(status::DaemonStatus::new(options.history)),
            metrics: metrics::Metrics::new(),
            wake: tx.clone(),
            webhooks: options.webhooks.clone(),
            token: options.token.clone(),
            branch,
            deliveries: Mutex::new(webhook::Deliveries::default()),
        });
        let (mut addr, mut server, mut stop_server) = (None, None, None);
        if let Some(listen) = options.listen {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|source| DaemonError::Listen { addr: listen, source })?;
            let bound = listener.local_addr().map_err(|source| DaemonError::Listen { addr: listen, source })?;
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let app = http::router(shared.clone());
            server = Some(tokio::spawn(async move {
                let stop = async {
                    let _ = stop_rx.await;
                };
                if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
                    tracing::error!(error = %e, "the HTTP endpoint stopped");
                }
            }));
            addr = Some(bound);
            stop_server = Some(stop_tx);
        }
        let watcher = match (options.watch, trigger::git_dir(&options.source.repo)) {
            (true, Some(dir)) => Some(
                trigger::watch_refs(&dir, tx.clone())
                    .map_err(|source| DaemonError::Watch { path: dir.display().to_string(), source })?,
            ),
            _ => None,
        };
        let interval = Arc::new(std::sync::atomic::AtomicU64::new(
            options.interval.unwrap_or(DEFAULT_INTERVAL).as_millis().try_into().unwrap_or(u64::MAX),
        ));
        let poller = Some(tokio::spawn(trigger::poll(tx.clone(), interval.clone(), options.jitter)));
        let (watch_tx, watch_rx) = tokio::sync::watch::channel(Vec::new());
        let catalogs = (watch_tx, tokio::spawn(trigger::watch_catalogs(tx.clone(), watch_rx, options.jitter)));
        // The first cycle runs at once.
        let _ = tx.try_send(Trigger::Startup);
        Ok(Daemon {
            ctx,
            options,
            shared,
            wake: rx,
            addr,
            server,
            stop_server,
            _watcher: watcher,
            poller,
            catalogs,
            interval,
            sent: std::sync::Mutex::new(notify::Sent::default()),
            notifier,
        })
    }

    /// Where the endpoint listens.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// Reconciles until `shutdown` completes (or `max_cycles` ran).
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut policy = ErrorPolicy::new(self.options.backoff);
        let mut cycles: u64 = 0;
        // The scheduler's own wake-ups: a retry or a requeue after a change (real time), and a
        // waiting change's opening (on the context's clock, so an injected clock drives it).
        let mut timer: Option<(tokio::time::Instant, Trigger)> = None;
        let mut opens: Option<chrono::DateTime<chrono::Utc>> = None;
        let mut held_until: Option<tokio::time::Instant> = None;
        // What the last cycle found as desired — kept in the state directory, so that a
        // restarted daemon still tells drift from a change.
        let mut baseline = self.saved_baseline().await;
        loop {
            let sleep = async {
                match timer {
                    Some((at, _)) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let opening = async {
                match opens {
                    Some(at) => self.ctx.clock().wait_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let trigger = tokio::select! {
                biased;
                () = &mut shutdown => break,
                t = self.wake.recv() => match t { Some(t) => t, None => break },
                () = sleep => match timer.take() { Some((_, t)) => t, None => continue },
                () = opening => { opens = None; Trigger::Requeue }
            };
            // After a failure, only news runs a cycle before the backoff ends.
            if let Some(until) = held_until {
                if tokio::time::Instant::now() < until && !trigger.is_news() && trigger != Trigger::Retry {
                    continue;
                }
            }
            // Wake-ups that arrived meanwhile are this cycle's too.
            while self.wake.try_recv().is_ok() {}
            tracing::info!(trigger = trigger.as_str(), "reconciling");
            let held: cycle::Held = policy.held().into_iter().map(|(k, (why, _))| (k, why)).collect();
            let report = {
                let run =
                    cycle::run(&self.ctx, &self.options.source, self.options.plan_only, trigger, &baseline, &held);
                tokio::pin!(run);
                tokio::select! {
                    r = &mut run => r,
                    () = &mut shutdown => {
                        tracing::info!(deadline = ?self.options.shutdown_deadline, "stopping: letting the cycle in flight finish");
                        match tokio::time::timeout(self.options.shutdown_deadline, &mut run).await {
                            Ok(r) => self.record(&mut policy, r).await,
                            Err(_) => tracing::warn!("the cycle did not finish in time; the journal recovers it at the next start"),
                        }
                        break;
                    }
                }
            };
            let (failed, requeue) = (report.result == CycleResult::Failed, report.requeue_at);
            if let Some(plan) = &report.plan {
                let next = drift::Baseline::of(plan);
                if next != baseline {
                    baseline = next;
                    self.save_baseline(&baseline).await;
                }
            }
            // What this cycle changed is observed again at once: a later ring may wait only for
            // the change this cycle made (kube-runtime requeues after a change the same way).
            let changed = report.actions.iter().any(|a| a.result == "succeeded");
            let action_failed = report.actions.iter().any(|a| a.result != "succeeded");
            self.record(&mut policy, report).await;
            cycles += 1;
            held_until = None;
            let now = tokio::time::Instant::now();
            opens = None;
            if failed {
                let wait = policy.backoff.wait(policy.failures());
                held_until = Some(now + wait);
                timer = Some((now + wait, Trigger::Retry));
            } else if changed {
                timer = Some((now, Trigger::Requeue));
            } else {
                // A waiting change opening (on the clock), and a failing target's backoff ending.
                opens = requeue;
                let retry = policy.next_target_retry().map(|at| (tokio::time::Instant::from_std(at), Trigger::Retry));
                timer = retry.or_else(|| action_failed.then(|| (now + policy.backoff.wait(1), Trigger::Retry)));
            }
            let retry_at = timer.map(|(at, _)| {
                self.ctx.now() + chrono::Duration::from_std(at - tokio::time::Instant::now()).unwrap_or_default()
            });
            let next = [opens, retry_at].into_iter().flatten().min();
            self.shared.status.write().await.next_wake = next;
            if self.options.max_cycles.is_some_and(|m| cycles >= m) {
                break;
            }
        }
        self.stop().await;
    }

    async fn record(&self, policy: &mut ErrorPolicy, report: cycle::CycleReport) {
        match (&report.result, &report.error) {
            (CycleResult::Failed, error) => {
                let error = error.clone().unwrap_or_default();
                tracing::warn!(reason = report.reason.as_deref().unwrap_or(""), %error, "the cycle failed");
                policy.failed(&error);
            }
            _ => policy.succeeded(),
        }
        for a in &report.actions {
            match a.result.as_str() {
                "succeeded" => policy.target_succeeded(&a.product, &a.platform),
                _ => {
                    if policy.target_failed(&a.product, &a.platform, a.message.as_deref().unwrap_or("failed")) {
                        tracing::error!(product = %a.product, platform = %a.platform, "the target is stalled: it failed repeatedly");
                    }
                }
            }
        }
        let stalled = policy.stalled().map(str::to_string);
        if let Some(watch) = &report.catalog_watch {
            self.catalogs.0.send_if_modified(|w| {
                let changed = w != watch;
                if changed {
                    w.clone_from(watch);
                }
                changed
            });
        }
        if let Some(spec) = &report.reconciler {
            // The fleet's interval, unless the host fixed one.
            if let (None, Some(i)) = (self.options.interval, spec.interval) {
                let ms = i.0.max(Duration::from_secs(1)).as_millis().try_into().unwrap_or(u64::MAX);
                self.interval.store(ms, std::sync::atomic::Ordering::Relaxed);
            }
            if !spec.notifications.is_empty() {
                for event in notify::events(&report, stalled.as_deref()) {
                    let first = self.sent.lock().map(|mut s| s.first_time(&event.key)).unwrap_or(false);
                    if first {
                        notify::dispatch(&self.notifier, &spec.notifications, self.ctx.secrets(), &event);
                    }
                }
            }
        }
        let ready = matches!(report.result, CycleResult::Synced | CycleResult::Applied);
        self.shared.metrics.cycle(&report, policy.failures(), stalled.is_some(), ready);
        tracing::info!(
            result = report.result.as_str(),
            actions = report.actions.len(),
            waiting = report.waiting,
            seconds = report.duration_seconds,
            "cycle done"
        );
        self.shared.metrics.requests(&self.ctx.requests().snapshot());
        let mut status = self.shared.status.write().await;
        status.record(report, policy.failures(), stalled.as_deref());
        self.shared.metrics.conditions(&status.targets);
    }

    async fn saved_baseline(&self) -> drift::Baseline {
        let state = self.ctx.state().clone();
        match tokio::task::spawn_blocking(move || state.db().and_then(|db| db.baseline())).await {
            Ok(Ok(Some(saved))) => drift::Baseline::from_saved(saved),
            Ok(Ok(None)) => drift::Baseline::default(),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the drift baseline; differences are changes until a cycle sets one");
                drift::Baseline::default()
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the drift baseline");
                drift::Baseline::default()
            }
        }
    }

    async fn save_baseline(&self, baseline: &drift::Baseline) {
        let (Some(saved), state) = (baseline.to_saved(), self.ctx.state().clone()) else { return };
        match tokio::task::spawn_blocking(move || state.db().and_then(|db| db.save_baseline(&saved))).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot keep the drift baseline"),
            Err(e) => tracing::warn!(error = %e, "cannot keep the drift baseline"),
        }
    }

    async fn stop(&mut self) {
        if let Some(p) = self.poller.take() {
            p.abort();
        }
        self.catalogs.1.abort();
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
        }
        self.ctx.harness().stop_all().await;
    }

    /// The status the endpoint serves (for in-process callers).
    pub async fn status(&self) -> serde_json::Value {
        serde_json::to_value(&*self.shared.status.read().await).unwrap_or_default()
    }
}
