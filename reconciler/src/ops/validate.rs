//! `patchops validate`: the fleet, its catalogs, that every Product finds an installer, and
//! what the policies say about publishing the fleet as it stands.

use std::collections::BTreeMap;

use super::pipeline::{self, Decide, Loaded};
use super::OpsError;
use crate::context::Context;
use crate::plan;
use crate::policy::PolicyFinding;
use crate::source::SourceOptions;

/// A valid fleet.
#[derive(Debug)]
pub struct Validated {
    /// The fleet and its verified catalogs.
    pub loaded: std::sync::Arc<Loaded>,
    /// The policies applied.
    pub policies: Vec<String>,
}

/// Validates the fleet at `source`.
pub async fn validate(ctx: &Context, source: &SourceOptions) -> Result<Validated, OpsError> {
    let loaded = std::sync::Arc::new(pipeline::load(ctx, source).await?);
    let mut failures = Vec::new();
    for p in &loaded.fleet.products {
        if p.spec.retire {
            continue;
        }
        if let Some(c) = loaded.catalogs.get(&p.catalog) {
            if let Err(e) = plan::select_installer(p, c) {
                failures.push((p.name().clone(), p.origin.clone(), e));
            }
        }
    }
    if !failures.is_empty() {
        return Err(OpsError::Selection(failures));
    }
    // What the policies say about publishing the fleet as it stands to empty platforms: every
    // (product, platform, ring) the fleet asks for, as a publish. No gating: nothing is observed.
    // Groups named by display name are not looked up (nothing is read from the platforms):
    // each name stands in for its id.
    let empty: BTreeMap<_, _> = loaded
        .fleet
        .platforms
        .keys()
        .filter(|p| !loaded.fleet.named_groups(p).is_empty())
        .map(|p| {
            let groups = loaded.fleet.named_groups(p).into_iter().map(|n| (n.clone(), n)).collect();
            (p.clone(), crate::platform::Observed { objects: Vec::new(), groups })
        })
        .collect();
    let decision = pipeline::decide(
        ctx,
        &loaded,
        &std::sync::Arc::new(empty),
        Decide { saved: None, ring_evidence: None, max_retire_share: 1.0 },
    )
    .await?;
    let denials: Vec<(String, PolicyFinding)> = decision
        .plan
        .actions
        .iter()
        .flat_map(|a| a.denied.iter().map(move |d| (crate::policy::subject(a), d.clone())))
        .collect();
    if denials.is_empty() {
        Ok(Validated { loaded, policies: decision.policies.names().to_vec() })
    } else {
        Err(OpsError::Denied(denials))
    }
}
