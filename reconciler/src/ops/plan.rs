//! `patchops plan`: desired × verified catalogs × observed platforms, judged and gated, and
//! what `apply` would refuse.

use super::pipeline::{self, Decide, RingEvidence};
use super::{OpsError, DEFAULT_MAX_RETIRE_SHARE};
use crate::context::Context;
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
}

/// Plans the fleet at `source`. Read-only: records nothing.
pub async fn plan(ctx: &Context, source: &SourceOptions) -> Result<Planned, OpsError> {
    let loaded = std::sync::Arc::new(pipeline::load(ctx, source).await?);
    let clients = pipeline::connect(ctx, &loaded.fleet).await?;
    let observed = std::sync::Arc::new(pipeline::observe(&clients).await?);
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
    Ok(Planned { plan, warnings: super::pipeline::warnings(&loaded), requeue_at: decision.requeue_at, loaded })
}
