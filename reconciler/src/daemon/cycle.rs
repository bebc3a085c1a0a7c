//! One reconcile cycle: the core `patchops run` repeats. It is exactly `apply --auto-approve`
//! (the merged commit is the approval): [`crate::ops::prepare_apply`] — lock, recover, load,
//! observe, plan, judge, gate, guard — then [`crate::ops::ApplyRun::execute`] — permit, apply,
//! record. `--plan-only` stops after the plan ([`crate::ops::plan`]). Nothing here is the
//! daemon's own logic: the triggers, the scheduler, the error policy and the endpoint are
//! around it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::trigger::Trigger;
use crate::apply::Outcome;
use crate::context::Context;
use crate::ops::{self, ApplyOptions};
use crate::plan::Plan;
use crate::source::SourceOptions;

/// How a cycle ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CycleResult {
    /// The fleet's desired state holds (nothing left, or only waiting changes).
    Synced,
    /// Changes were applied and all succeeded.
    Applied,
    /// `--plan-only`: changes are pending.
    Pending,
    /// An action failed, a change was denied, or a product could not be planned.
    Degraded,
    /// Objects changed outside git and the fleet's drift mode left them so (`warn`).
    Drifted,
    /// The cycle could not run (source, catalog, platform or a refusal).
    Failed,
}

impl CycleResult {
    /// As written in metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            CycleResult::Synced => "synced",
            CycleResult::Applied => "applied",
            CycleResult::Pending => "pending",
            CycleResult::Degraded => "degraded",
            CycleResult::Drifted => "drifted",
            CycleResult::Failed => "failed",
        }
    }
}

/// One action a cycle applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedAction {
    /// publish, update, reconfigure or retire.
    pub action: String,
    /// The fleet Product.
    pub product: String,
    /// The Platform.
    pub platform: String,
    /// The ring, if any.
    pub ring: Option<String>,
    /// `succeeded`, `failed` or `skipped`.
    pub result: String,
    /// The error, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What one cycle did: the daemon's history entry.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CycleReport {
    /// What woke the loop.
    pub trigger: Trigger,
    /// When the cycle started.
    pub started: DateTime<Utc>,
    /// How long it took, in seconds.
    pub duration_seconds: f64,
    /// The fleet commit, when read from git.
    pub commit: Option<String>,
    /// Each catalog's source and serial.
    pub catalogs: Vec<(String, u64)>,
    /// How it ended.
    pub result: CycleResult,
    /// The actions applied.
    pub actions: Vec<AppliedAction>,
    /// Changes waiting for a ring's soak, a window or the change budget.
    pub waiting: usize,
    /// Changes policies denied.
    pub denied: usize,
    /// Changes pending (`--plan-only`).
    pub pending: usize,
    /// The machine reason of the error, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The error, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Objects changed outside git since the last cycle found them as desired.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<super::drift::Drift>,
    /// The earliest time a waiting change opens: when the scheduler wakes next for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requeue_at: Option<DateTime<Utc>>,
    /// The cycle failed because a catalog was refused (signature, rollback, expiry) or apply
    /// refused the plan (stale, edited, mass retire) — not because something was unreachable.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub refused: bool,
    /// The plan the cycle made (not serialised in the history: `/status` shows its results).
    #[serde(skip)]
    pub plan: Option<Plan>,
    /// The fleet's Reconciler settings, as read this cycle.
    #[serde(skip)]
    pub reconciler: Option<crate::model::kinds::ReconcilerSpec>,
    /// The remote catalogs to fetch between cycles (when the fleet was read).
    #[serde(skip)]
    pub catalog_watch: Option<Vec<super::trigger::CatalogWatch>>,
}

/// Targets backing off after failures: (product, platform) → why.
pub type Held = std::collections::BTreeMap<(String, String), String>;

/// Runs one cycle; `baseline` is what the last cycle found as desired (for drift), `held` the
/// targets whose changes wait while they back off.
pub async fn run(
    ctx: &Context,
    source: &SourceOptions,
    plan_only: bool,
    trigger: Trigger,
    baseline: &super::drift::Baseline,
    held: &Held,
) -> CycleReport {
    let started = ctx.now();
    let timer = std::time::Instant::now();
    let mut report = CycleReport {
        trigger,
        started,
        duration_seconds: 0.0,
        commit: None,
        catalogs: Vec::new(),
        result: CycleResult::Synced,
        actions: Vec::new(),
        waiting: 0,
        denied: 0,
        pending: 0,
        reason: None,
        error: None,
        requeue_at: None,
        drift: Vec::new(),
        refused: false,
        plan: None,
        reconciler: None,
        catalog_watch: None,
    };
    let outcome = if plan_only {
        plan_only_cycle(ctx, source, &mut report, baseline).await
    } else {
        apply_cycle(ctx, source, &mut report, baseline, held).await
    };
    if let Err(e) = outcome {
        report.refused = matches!(
            e,
            ops::OpsError::Catalogs(_)
                | ops::OpsError::Source(crate::source::SourceError::Unverified(_))
                | ops::OpsError::Refused(
                    ops::ApplyRefusal::Stale(_) | ops::ApplyRefusal::Tampered(_) | ops::ApplyRefusal::MassRetire(_)
                )
        );
        report.result = CycleResult::Failed;
        report.reason = Some(e.reason().to_string());
        report.error = Some(e.to_string());
    }
    report.duration_seconds = timer.elapsed().as_secs_f64();
    report
}

/// The fleet's remote catalogs with an `interval`, and the digest of what this cycle verified.
fn catalog_watch(loaded: &ops::Loaded) -> Vec<super::trigger::CatalogWatch> {
    loaded
        .fleet
        .catalog_sources
        .iter()
        .filter_map(|(name, c)| {
            let interval = c.spec.interval?.0;
            let crate::catalog::CatalogLocation::Url(url) = crate::catalog::CatalogLocation::parse(&c.spec.url).ok()?
            else {
                return None;
            };
            let seen = loaded.catalogs.get(name)?.digest();
            Some(super::trigger::CatalogWatch { source: name.to_string(), url, interval, seen })
        })
        .collect()
}

fn note_plan(report: &mut CycleReport, plan: &Plan, requeue_at: Option<DateTime<Utc>>) {
    report.commit = plan.fingerprints.source.get("commit").and_then(|c| c.as_str()).map(str::to_string);
    report.catalogs = plan.fingerprints.catalogs.iter().map(|c| (c.source.clone(), c.serial)).collect();
    report.waiting = plan.summary.waiting;
    report.denied = plan.summary.denied;
    report.requeue_at = requeue_at;
}

async fn plan_only_cycle(
    ctx: &Context,
    source: &SourceOptions,
    report: &mut CycleReport,
    baseline: &super::drift::Baseline,
) -> Result<(), ops::OpsError> {
    let mut planned = ops::plan(ctx, source).await?;
    report.drift = super::drift::classify(&mut planned.plan, &planned.loaded.fleet, baseline);
    report.reconciler = planned.loaded.fleet.reconciler.clone();
    report.catalog_watch = Some(catalog_watch(&planned.loaded));
    note_plan(report, &planned.plan, planned.requeue_at);
    report.pending = planned.plan.applicable().count();
    report.result = if report.pending > 0 {
        CycleResult::Pending
    } else if report.denied > 0 || !planned.plan.errors.is_empty() {
        CycleResult::Degraded
    } else {
        CycleResult::Synced
    };
    report.plan = Some(planned.plan);
    Ok(())
}

async fn apply_cycle(
    ctx: &Context,
    source: &SourceOptions,
    report: &mut CycleReport,
    baseline: &super::drift::Baseline,
    held: &Held,
) -> Result<(), ops::OpsError> {
    let t = std::time::Instant::now();
    let mut prepared = ops::prepare_apply(ctx, source, ApplyOptions::default()).await?;
    tracing::debug!(elapsed = ?t.elapsed(), "cycle: prepared");
    let loaded = prepared.loaded().clone();
    report.drift = super::drift::classify(&mut prepared.plan, &loaded.fleet, baseline);
    tracing::debug!(elapsed = ?t.elapsed(), "cycle: drift classified");
    report.reconciler = loaded.fleet.reconciler.clone();
    report.catalog_watch = Some(catalog_watch(&loaded));
    if !held.is_empty() {
        let hold = |product: &str, platform: &str| {
            held.get(&(product.to_string(), platform.to_string())).map(|why| {
                format!("{product} on {platform} is backing off after failures ({why}); the others go ahead")
            })
        };
        crate::plan::hold(&mut prepared.plan, "BackingOff", &hold);
    }
    for d in &report.drift {
        tracing::warn!(product = %d.product, platform = %d.platform, ring = d.ring.as_deref().unwrap_or("-"), fields = d.fields.len(), mode = ?d.mode, "drift: changed outside git");
    }
    note_plan(report, &prepared.plan, prepared.requeue_at);
    let unreachable = prepared.plan.summary.denied > 0 || !prepared.plan.errors.is_empty();
    if prepared.plan.applicable().count() == 0 {
        prepared.record_catalogs()?;
        let left_drifted = report.drift.iter().any(|d| d.mode != crate::model::kinds::DriftMode::Correct);
        report.result = if unreachable {
            CycleResult::Degraded
        } else if left_drifted {
            CycleResult::Drifted
        } else {
            CycleResult::Synced
        };
        // Nothing to apply: the plan is the report's, without a copy (at 60,000 units a copy
        // costs more than the rest of a no-op cycle's bookkeeping).
        report.plan = Some(prepared.into_plan());
        tracing::debug!(elapsed = ?t.elapsed(), "cycle: nothing to apply");
        return Ok(());
    }
    let plan = prepared.plan.clone();
    let applied = prepared.execute(ops::Approval::Daemon { trigger: report.trigger.as_str().to_string() }).await?;
    let mut failed = false;
    for r in &applied.reports {
        let (result, message) = match &r.outcome {
            Outcome::Succeeded { .. } => ("succeeded", None),
            Outcome::Failed(e) => {
                failed = true;
                ("failed", Some(e.clone()))
            }
            Outcome::Skipped(why) => {
                failed = true;
                ("skipped", Some(why.clone()))
            }
        };
        report.actions.push(AppliedAction {
            action: r.action.action.as_str().to_string(),
            product: r.action.product.to_string(),
            platform: r.action.platform.to_string(),
            ring: r.action.ring.as_deref().map(str::to_string),
            result: result.into(),
            message,
        });
    }
    report.denied += applied.denied.len();
    report.result =
        if failed || unreachable || !applied.denied.is_empty() { CycleResult::Degraded } else { CycleResult::Applied };
    report.plan = Some(plan);
    Ok(())
}
