//! `/metrics`: the daemon's figures in Prometheus's text format, with `prometheus-client`.
//!
//! - `patchops_cycle_duration_seconds{trigger,result}` (histogram) and
//!   `patchops_cycles_total{trigger,result}`;
//! - `patchops_actions_total{platform,action,result}`;
//! - `patchops_waiting_changes`, `patchops_denied_changes`, `patchops_drifted_objects`;
//! - `patchops_catalog_serial{source}`;
//! - `patchops_consecutive_failures`, `patchops_stalled` (0 or 1), `patchops_ready` (0 or 1);
//! - `patchops_conditions{type}` (targets per condition type: Ready, Reconciling, Waiting,
//!   Suspended, Stalled, Drifted) and `patchops_suspended_objects`;
//! - `patchops_platform_requests_total{platform,outcome}` (`ok`, `throttled` — a 429 —,
//!   `transient`, `failed`): every request the clients sent, retries included;
//! - `patchops_webhook_deliveries_total{provider,result}`, `patchops_git_fetch_failures_total`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::cycle::CycleReport;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CycleLabels {
    trigger: String,
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    platform: String,
    action: String,
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    platform: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    r#type: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    provider: String,
    result: String,
}

type HistogramFamily = Family<CycleLabels, Histogram, fn() -> Histogram>;

/// The daemon's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    cycle_duration: HistogramFamily,
    cycles: Family<CycleLabels, Counter>,
    actions: Family<ActionLabels, Counter>,
    waiting: Gauge,
    denied: Gauge,
    drifted: Gauge,
    catalog_serial: Family<SourceLabels, Gauge>,
    failures: Gauge,
    stalled: Gauge,
    ready: Gauge,
    deliveries: Family<DeliveryLabels, Counter>,
    fetch_failures: Counter,
    requests: Family<RequestLabels, Counter>,
    /// The request counts already added to `requests` (the context keeps running totals).
    requests_counted: std::sync::Mutex<std::collections::BTreeMap<(String, crate::platform::retry::Outcome), u64>>,
    conditions: Family<ConditionLabels, Gauge>,
    suspended: Gauge,
}

fn cycle_histogram() -> Histogram {
    // 10 ms … about 80 s.
    Histogram::new(exponential_buckets(0.01, 2.0, 14))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("patchops");
        let cycle_duration: HistogramFamily = Family::new_with_constructor(cycle_histogram);
        let cycles = Family::<CycleLabels, Counter>::default();
        let actions = Family::<ActionLabels, Counter>::default();
        let (waiting, denied, failures, stalled, ready) =
            (Gauge::default(), Gauge::default(), Gauge::default(), Gauge::default(), Gauge::default());
        let drifted = Gauge::default();
        let catalog_serial = Family::<SourceLabels, Gauge>::default();
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        let fetch_failures = Counter::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let conditions = Family::<ConditionLabels, Gauge>::default();
        let suspended = Gauge::default();
        registry.register(
            "platform_requests",
            "Requests sent to platforms, by platform and outcome (ok, throttled, transient, failed)",
            requests.clone(),
        );
        registry.register("conditions", "Targets (product, platform, ring) per condition type", conditions.clone());
        registry.register("suspended_objects", "Targets held back by patchops suspend", suspended.clone());
        registry.register("cycle_duration_seconds", "Duration of reconcile cycles", cycle_duration.clone());
        registry.register("cycles", "Reconcile cycles run", cycles.clone());
        registry.register("actions", "Actions applied, by platform, action and result", actions.clone());
        registry.register(
            "waiting_changes",
            "Changes waiting for a ring's soak, a window or the budget",
            waiting.clone(),
        );
        registry.register("denied_changes", "Changes the fleet's policies deny", denied.clone());
        registry.register("drifted_objects", "Objects the last cycle found changed outside git", drifted.clone());
        registry.register("catalog_serial", "Serial of the catalog last verified, per source", catalog_serial.clone());
        registry.register("consecutive_failures", "Reconcile cycles failed in a row", failures.clone());
        registry.register("stalled", "1 when the fleet failed too often in a row", stalled.clone());
        registry.register("ready", "1 when the last cycle reached the desired state", ready.clone());
        registry.register("webhook_deliveries", "Webhook deliveries, by provider and result", deliveries.clone());
        registry.register(
            "git_fetch_failures",
            "Cycles that could not read the fleet repository",
            fetch_failures.clone(),
        );
        Metrics {
            registry,
            cycle_duration,
            cycles,
            actions,
            waiting,
            denied,
            drifted,
            catalog_serial,
            failures,
            stalled,
            ready,
            deliveries,
            fetch_failures,
            requests,
            requests_counted: std::sync::Mutex::default(),
            conditions,
            suspended,
        }
    }

    /// Brings the request counters up to the context's running totals.
    pub fn requests(&self, totals: &std::collections::BTreeMap<(String, crate::platform::retry::Outcome), u64>) {
        let Ok(mut counted) = self.requests_counted.lock() else { return };
        for ((platform, outcome), n) in totals {
            let before = counted.insert((platform.clone(), *outcome), *n).unwrap_or(0);
            let labels = RequestLabels { platform: platform.clone(), outcome: outcome.as_str().into() };
            self.requests.get_or_create(&labels).inc_by(n.saturating_sub(before));
        }
    }

    /// Sets the condition gauges from the targets' conditions.
    pub fn conditions(&self, targets: &[super::status::TargetState]) {
        let mut by_type: std::collections::BTreeMap<&str, i64> =
            ["Ready", "Reconciling", "Waiting", "Suspended", "Stalled", "Drifted"].iter().map(|t| (*t, 0)).collect();
        for t in targets {
            *by_type.entry(t.condition.kind.as_str()).or_default() += 1;
        }
        self.suspended.set(by_type.get("Suspended").copied().unwrap_or(0));
        for (kind, n) in by_type {
            self.conditions.get_or_create(&ConditionLabels { r#type: kind.into() }).set(n);
        }
    }

    /// Records a cycle.
    pub fn cycle(&self, report: &CycleReport, consecutive_failures: u32, stalled: bool, ready: bool) {
        let labels = CycleLabels { trigger: report.trigger.as_str().into(), result: report.result.as_str().into() };
        self.cycle_duration.get_or_create(&labels).observe(report.duration_seconds);
        self.cycles.get_or_create(&labels).inc();
        for a in &report.actions {
            let labels =
                ActionLabels { platform: a.platform.clone(), action: a.action.clone(), result: a.result.clone() };
            self.actions.get_or_create(&labels).inc();
        }
        for (source, serial) in &report.catalogs {
            self.catalog_serial
                .get_or_create(&SourceLabels { source: source.clone() })
                .set(i64::try_from(*serial).unwrap_or(i64::MAX));
        }
        if report.result != super::cycle::CycleResult::Failed {
            self.waiting.set(report.waiting as i64);
            self.denied.set(report.denied as i64);
            self.drifted.set(report.drift.len() as i64);
        }
        if matches!(report.reason.as_deref(), Some("RepositoryUnavailable" | "RevisionNotFound")) {
            self.fetch_failures.inc();
        }
        self.failures.set(i64::from(consecutive_failures));
        self.stalled.set(i64::from(stalled));
        self.ready.set(i64::from(ready));
    }

    /// Records a webhook delivery (`accepted`, `refused`, `duplicate`, `ignored`).
    pub fn delivery(&self, provider: &str, result: &str) {
        self.deliveries.get_or_create(&DeliveryLabels { provider: provider.into(), result: result.into() }).inc();
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
