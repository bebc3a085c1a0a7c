//! `patchops status`: what each platform holds per Product, joined with the last result the
//! audit log has for it.

use super::pipeline;
use super::OpsError;
use crate::context::Context;
use crate::source::{SourceOptions, SourceWarning};
use crate::state::AuditRecord;

/// One (Product, Platform) target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetStatus {
    /// The fleet Product.
    pub product: String,
    /// The Platform.
    pub platform: String,
    /// The versions the platform holds for it (managed objects).
    pub versions: Vec<String>,
    /// The groups they are assigned to, sorted.
    pub groups: Vec<String>,
    /// The fleet commits (short) the objects were published from.
    pub commits: Vec<String>,
    /// The last audit record for the target, if any.
    pub last: Option<AuditRecord>,
    /// How the platform stands against the fleet, from a plan (the worst of the target's
    /// rings): `synced`, `drifted` (changed outside git since `patchops run` last found it as
    /// desired, at the same fleet content and catalogs), `out of sync` (changes to apply),
    /// `waiting` (a soak, window or budget), `suspended`, `backing off`, `denied` (by policy).
    pub sync: &'static str,
}

/// The status of a fleet.
#[derive(Debug)]
pub struct Status {
    /// One row per (Product, Platform), in fleet order.
    pub targets: Vec<TargetStatus>,
    /// Warnings about the source.
    pub warnings: Vec<SourceWarning>,
    /// What `patchops suspend` holds back.
    pub suspended: Vec<crate::state::Suspension>,
    /// What commit signature verification found for the commit read.
    pub commit: crate::source::signature::CommitVerdict,
}

/// Loads and observes the fleet at `source`, and joins what the platforms hold with the audit
/// log.
pub async fn status(ctx: &Context, source: &SourceOptions) -> Result<Status, OpsError> {
    let (loaded, _clients, observed) = pipeline::load_observing(ctx, source, ctx.commit_policy()).await?;
    let loaded = std::sync::Arc::new(loaded);
    let decision = pipeline::decide(
        ctx,
        &loaded,
        &observed,
        pipeline::Decide {
            saved: None,
            ring_evidence: Some(pipeline::RingEvidence::Read),
            max_retire_share: super::DEFAULT_MAX_RETIRE_SHARE,
        },
    )
    .await?;
    // The daemon's baseline: a difference on a target its last cycle found as desired, at the
    // same fleet content and catalogs, was made outside git.
    let state = ctx.state().clone();
    let baseline = pipeline::blocking(move || Ok(state.db()?.baseline().unwrap_or(None))).await?;
    let fingerprints = &decision.plan.fingerprints;
    let baseline = baseline.filter(|b| {
        b.source_digest == fingerprints.source_digest
            && b.catalogs == fingerprints.catalogs.iter().map(|c| (c.source.clone(), c.serial)).collect::<Vec<_>>()
    });
    let drifted = |a: &crate::plan::PlannedAction| {
        baseline.as_ref().is_some_and(|b| {
            b.in_sync.contains(&(a.product.to_string(), a.platform.to_string(), a.ring.as_deref().map(str::to_string)))
        })
    };
    let sync_of = |product: &str, platform: &str| -> &'static str {
        let mine: Vec<&crate::plan::PlannedAction> = decision
            .plan
            .actions
            .iter()
            .filter(|a| &*a.product == product && &*a.platform == platform && a.action != crate::plan::ActionKind::None)
            .collect();
        if mine.iter().any(|a| a.is_applicable() && drifted(a)) {
            "drifted"
        } else if mine.iter().any(|a| a.is_applicable()) {
            "out of sync"
        } else if mine.iter().any(|a| !a.denied.is_empty()) {
            "denied"
        } else if mine.iter().any(|a| a.waiting.as_ref().is_some_and(|w| w.reason == "Suspended")) {
            "suspended"
        } else if !mine.is_empty() {
            "waiting"
        } else {
            "synced"
        }
    };
    let state = ctx.state().clone();
    let (latest, suspended) = pipeline::blocking(move || {
        let db = state.db()?;
        Ok((db.latest_per_target().unwrap_or_default(), db.suspensions()?))
    })
    .await?;
    let mut targets = Vec::new();
    for p in &loaded.fleet.products {
        for t in &p.targets {
            let objects: Vec<_> = observed
                .get(&t.spec.platform)
                .map(|o| {
                    o.objects.iter().filter(|x| x.managed().is_some_and(|m| m.product == p.spec.product)).collect()
                })
                .unwrap_or_default();
            let versions: Vec<String> = objects.iter().filter_map(|o| o.managed().map(|m| m.version.clone())).collect();
            let mut commits: Vec<String> = objects
                .iter()
                .filter_map(|o| {
                    o.managed().and_then(|m| m.commit.as_deref()).map(|c| c.get(..12).unwrap_or(c).to_string())
                })
                .collect();
            commits.dedup();
            // A group the fleet names is shown by its name.
            let name_of = |id: &str| {
                observed
                    .get(&t.spec.platform)
                    .and_then(|o| o.groups.iter().find(|(_, g)| g.as_str() == id))
                    .map_or_else(|| id.to_string(), |(name, _)| name.clone())
            };
            let mut groups: Vec<String> =
                objects.iter().flat_map(|o| o.assignments.iter().map(|a| name_of(&a.group))).collect();
            groups.sort();
            let last = latest
                .iter()
                .find(|r| r.product == p.name().as_str() && r.platform == t.spec.platform.as_str())
                .cloned();
            targets.push(TargetStatus {
                product: p.name().to_string(),
                platform: t.spec.platform.to_string(),
                versions,
                groups,
                commits,
                last,
                sync: sync_of(p.name().as_str(), t.spec.platform.as_str()),
            });
        }
    }
    let commit = loaded.snapshot.verdict().clone();
    Ok(Status { targets, warnings: super::pipeline::warnings(&loaded), suspended, commit })
}
