//! `patchops apply`: the pipeline with the ring history recorded and the mass-retire guard
//! enforced, under the apply lock; then permit → apply ([`ApplyRun::execute`]).

use std::sync::{Arc, Mutex};

use super::pipeline::{self, Clients, Decide, Loaded, RingEvidence};
use super::{ApplyRefusal, OpsError, DEFAULT_MAX_RETIRE_SHARE};
use crate::context::Context;
use crate::plan::{self, Plan};
use crate::policy::{Policies, PolicyContext, PolicyFinding};
use crate::source::{SourceOptions, SourceWarning};
use crate::state::{ApplyLock, Interrupted, StateDb};

/// What `apply` is asked to do besides the fleet.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Apply exactly this saved plan (refused when stale).
    pub saved_plan: Option<Plan>,
    /// Allow retiring more than `max_retire_share` of a platform's managed objects.
    pub allow_mass_retire: bool,
    /// The share of a platform's managed objects one run may retire (default 0.3).
    pub max_retire_share: Option<f64>,
}

/// Who or what approved an apply: recorded with every action it audits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// Someone typed `yes` at the confirmation prompt.
    Prompt,
    /// `--auto-approve`.
    AutoApprove,
    /// A saved plan, reviewed when it was made: the file as given and the SHA-256 of its bytes.
    PlanFile {
        /// The path given.
        path: String,
        /// SHA-256 of the file.
        sha256: crate::vocab::Sha256,
    },
    /// `patchops run`: the merged commit is the approval; what started the cycle.
    Daemon {
        /// The trigger (`poll`, `webhook`, `drift`, …).
        trigger: String,
    },
}

impl std::fmt::Display for Approval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Approval::Prompt => f.write_str("confirmed at the prompt"),
            Approval::AutoApprove => f.write_str("--auto-approve"),
            Approval::PlanFile { path, sha256 } => write!(f, "plan file {path} (sha256 {sha256})"),
            Approval::Daemon { trigger } => write!(f, "patchops run (trigger {trigger})"),
        }
    }
}

/// An apply that has planned and holds the lock; [`ApplyRun::execute`] changes the platforms.
pub struct ApplyRun<'c> {
    /// The plan it will apply (denied and waiting actions are not applied).
    pub plan: Plan,
    /// Warnings about the source.
    pub warnings: Vec<SourceWarning>,
    /// Actions an earlier run left unfinished (it crashed or was killed).
    pub interrupted: Vec<Interrupted>,
    /// When to run again: the earliest time a waiting change opens.
    pub requeue_at: Option<chrono::DateTime<chrono::Utc>>,
    ctx: &'c Context,
    loaded: Arc<Loaded>,
    observed: pipeline::ObservedAll,
    clients: Clients,
    policies: Policies,
    db: Arc<Mutex<StateDb>>,
    _lock: ApplyLock,
}

impl std::fmt::Debug for ApplyRun<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplyRun").field("plan", &self.plan.summary).finish_non_exhaustive()
    }
}

/// The result of an apply.
#[derive(Debug)]
pub struct Applied {
    /// Every applied action and how it ended.
    pub reports: Vec<crate::apply::ActionReport>,
    /// Actions policy refused at apply time.
    pub denied: Vec<(plan::PlannedAction, Vec<PolicyFinding>)>,
}

/// `patchops apply`, first half: lock, recover, load, verify, observe, plan, judge and gate.
pub async fn prepare_apply<'c>(
    ctx: &'c Context,
    source: &SourceOptions,
    options: ApplyOptions,
) -> Result<ApplyRun<'c>, OpsError> {
    let state = ctx.state().clone();
    let (lock, db, interrupted) = pipeline::blocking(move || {
        let lock = state.lock("apply").map_err(|e| OpsError::Refused(e.into()))?;
        let db = state.db()?;
        let interrupted = db.recover()?;
        // Holding the lock, nothing of the state directory is being written: what a killed run
        // left half-written (downloads, emulator state) goes.
        let freed = state.sweep_leftovers();
        if freed > 0 {
            tracing::info!(bytes = freed, "removed the partial files of an earlier run");
        }
        Ok((lock, db, interrupted))
    })
    .await?;
    for i in &interrupted {
        tracing::warn!(run = %i.run, action = %i.subject, step = %i.step, detail = %i.detail, "an earlier apply was interrupted; re-planning from the platforms' current state");
    }
    let (loaded, clients, observed) = pipeline::load_observing(ctx, source, ctx.commit_policy()).await?;
    let loaded = Arc::new(loaded);
    let share = options.max_retire_share.unwrap_or(DEFAULT_MAX_RETIRE_SHARE);
    let decision = pipeline::decide(
        ctx,
        &loaded,
        &observed,
        Decide { saved: options.saved_plan, ring_evidence: Some(RingEvidence::Record), max_retire_share: share },
    )
    .await?;
    if !options.allow_mass_retire && !decision.mass_retire.is_empty() {
        return Err(OpsError::Refused(ApplyRefusal::MassRetire(decision.mass_retire)));
    }
    Ok(ApplyRun {
        plan: decision.plan,
        warnings: pipeline::warnings(&loaded),
        interrupted,
        requeue_at: decision.requeue_at,
        ctx,
        loaded,
        observed,
        clients,
        policies: decision.policies,
        db: Arc::new(Mutex::new(db)),
        _lock: lock,
    })
}

impl ApplyRun<'_> {
    /// The plan, when there is nothing to execute (the lock is released).
    pub fn into_plan(self) -> Plan {
        self.plan
    }

    /// The fleet and catalogs this apply planned from.
    pub fn loaded(&self) -> &Arc<Loaded> {
        &self.loaded
    }

    /// Records the serials of the catalogs this apply acted on (trust-chain link 1's history):
    /// from now on a lower serial of the same source is refused as a rollback. `execute` does
    /// it after applying; call it when there was nothing to apply (the platforms already match
    /// this catalog).
    pub fn record_catalogs(&self) -> Result<(), OpsError> {
        record_catalogs(self.ctx, &self.loaded)
    }

    /// Applies the plan's applicable actions, then records the catalogs' serials; every audit
    /// record names `approval`, the context's actor and the commit's signer.
    pub async fn execute(self, approval: Approval) -> Result<Applied, OpsError> {
        let now = self.ctx.now();
        // Policies are evaluated again here: the PermittedAction type is the engine's only
        // input, and only `permit` makes one. Evaluating takes CPU: off the async threads.
        // The compiled policies move into the task (no copy of the engine).
        let mut policies = self.policies;
        let (loaded, applicable) = (self.loaded.clone(), self.plan.applicable().cloned().collect::<Vec<_>>());
        let (permitted, denied) = pipeline::blocking(move || {
            let ctx = PolicyContext::new(&loaded.fleet, &loaded.catalogs, now);
            let mut permitted = Vec::new();
            let mut denied = Vec::new();
            for a in applicable {
                match policies.permit(a.clone(), &ctx)? {
                    Ok(p) => permitted.push(p),
                    Err(d) => denied.push((a, d)),
                }
            }
            Ok((permitted, denied))
        })
        .await?;
        let run_id = format!("{}-{}", now.format("%Y%m%dT%H%M%SZ"), std::process::id());
        let engine = crate::apply::Engine {
            fleet: &self.loaded.fleet,
            snapshot: &self.loaded.snapshot,
            catalogs: &self.loaded.catalogs,
            observed: &self.observed,
            platforms: &self.clients,
            content: self.ctx.content(),
            db: self.db.clone(),
            run: run_id,
            clock: self.ctx.clock().clone(),
            approval: approval.to_string(),
            actor: self.ctx.actor().cloned(),
        };
        let reports = engine.run(permitted).await;
        record_catalogs(self.ctx, &self.loaded)?;
        Ok(Applied { reports, denied })
    }
}

/// Records what an apply acted on: each catalog's serial (rollback protection) and the commit
/// (strict commit verification starts after it).
fn record_catalogs(ctx: &Context, loaded: &Loaded) -> Result<(), OpsError> {
    let mut history = ctx.state().catalogs()?;
    for c in loaded.catalogs.values() {
        history.record(c)?;
    }
    if let crate::source::Provenance::Commit { repo, commit, .. } = loaded.snapshot.provenance() {
        history.db().commit_applied(repo, commit)?;
    }
    Ok(())
}
