//! `patchops plan`: desired × verified catalogs × observed platforms, judged and gated, and
//! what `apply` would refuse.

use super::pipeline::{self, Decide, RingEvidence};
use super::{OpsError, DEFAULT_MAX_RETIRE_SHARE};
use crate::context::Context;
use crate::model::Fleet;
use crate::plan::change::Change;
use crate::plan::Plan;
use crate::source::{SourceOptions, SourceWarning};

/// The result of `patchops plan`.
#[derive(Debug)]
pub struct Planned {
    /// The plan.
    pub plan: Plan,
    /// Warnings about the source.
    pub warnings: Vec<SourceWarning>,
    /// When to plan again: the earliest time a waiting change opens.
    pub requeue_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The fleet and catalogs it planned from.
    pub loaded: std::sync::Arc<super::Loaded>,
    /// What the platforms held when it was planned (kept with the plan, so a one-shot process
    /// can leave it to the exit rather than free it before showing the plan).
    pub observed: pipeline::ObservedAll,
}

/// Plans the fleet at `source`. Read-only: records nothing.
pub async fn plan(ctx: &Context, source: &SourceOptions) -> Result<Planned, OpsError> {
    let (loaded, _clients, observed) = pipeline::load_observing(ctx, source, ctx.commit_policy()).await?;
    plan_loaded(ctx, std::sync::Arc::new(loaded), observed).await
}

/// The result of `patchops plan --base REV`: the head's plan, and what the change does
/// relative to the base.
#[derive(Debug)]
pub struct PlannedChange {
    /// The head's plan (what `plan --out` saves and `apply` would do).
    pub head: Planned,
    /// The change: desired-state differences and the head's actions, sorted.
    pub change: Change,
}

/// Plans the head at `source` and the base at revision `base` of the same repository and path,
/// and compares them. The head's commit is admitted as every plan's is; the base is read
/// without commit verification, since nothing acts on it. Read-only: records nothing.
pub async fn plan_change(ctx: &Context, source: &SourceOptions, base: &str) -> Result<PlannedChange, OpsError> {
    let head = plan(ctx, source).await?;
    let base_source = SourceOptions { rev: Some(base.to_string()), worktree: false, ..source.clone() };
    let base_planned = async {
        let (loaded, _clients, observed) =
            pipeline::load_observing(ctx, &base_source, &crate::source::signature::CommitPolicy::NotRequired).await?;
        plan_loaded(ctx, std::sync::Arc::new(loaded), observed).await
    }
    .await;
    let change = match base_planned {
        // A base that names no commit is a mistake (a typo, an unfetched branch), not an empty
        // base.
        Err(e @ OpsError::Source(crate::source::SourceError::BadRevision { .. })) => return Err(e),
        Ok(b) => crate::plan::change::compare(&b.loaded.fleet, &b.plan, &head.loaded.fleet, &head.plan),
        Err(e) => {
            // Compared with nothing: every object is added, every action the change's.
            let empty = Fleet {
                products: Vec::new(),
                platforms: Default::default(),
                rollouts: Default::default(),
                catalog_sources: Default::default(),
                policy_sets: Default::default(),
                reconciler: None,
            };
            let mut nothing = head.plan.clone();
            nothing.actions.clear();
            nothing.fingerprints.catalogs.clear();
            nothing.fingerprints.files.clear();
            nothing.fingerprints.source = serde_json::json!({ "type": "unavailable", "reference": base });
            let mut change = crate::plan::change::compare(&empty, &nothing, &head.loaded.fleet, &head.plan);
            change.base_error = Some(format!("the base {base} could not be planned: {e}"));
            change
        }
    };
    Ok(PlannedChange { head, change })
}

async fn plan_loaded(
    ctx: &Context,
    loaded: std::sync::Arc<super::Loaded>,
    observed: pipeline::ObservedAll,
) -> Result<Planned, OpsError> {
    let decision = pipeline::decide(
        ctx,
        &loaded,
        &observed,
        Decide { saved: None, ring_evidence: Some(RingEvidence::Read), max_retire_share: DEFAULT_MAX_RETIRE_SHARE },
    )
    .await?;
    let mut plan = decision.plan;
    // What apply would refuse, found now (with apply's default share).
    plan.guards = decision
        .mass_retire
        .into_iter()
        .map(|p| format!("it would retire too much at once: {p}; apply refuses this unless given --allow-mass-retire"))
        .collect();
    Ok(Planned {
        plan,
        warnings: super::pipeline::warnings(&loaded),
        requeue_at: decision.requeue_at,
        loaded,
        observed,
    })
}
