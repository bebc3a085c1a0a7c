//! `patchops inventory record`: what each platform holds, observed read-only, for planning
//! where no credentials are (`plan --inventory DIR`, `endpoint: inventory`).

use super::{pipeline, OpsError};
use crate::context::Context;
use crate::model::ObjectName;
use crate::platform::Observed;
use crate::source::SourceOptions;

/// Observes the fleet's Platforms (or only those named), changing nothing: what patchops
/// observes of each, and the platform's own documents it was read from.
pub async fn record_inventory(
    ctx: &Context,
    source: &SourceOptions,
    only: &[String],
) -> Result<Vec<(ObjectName, Observed, serde_json::Value)>, OpsError> {
    let (_, _, fleet) = pipeline::load_fleet(ctx, source).await?;
    for name in only {
        if !fleet.platforms.keys().any(|n| n.as_str() == name) {
            let known: Vec<String> = fleet.platforms.keys().map(ToString::to_string).collect();
            return Err(OpsError::UnknownPlatform { name: name.clone(), known: known.join(", ") });
        }
    }
    let mut clients = std::collections::BTreeMap::new();
    let mut failures = Vec::new();
    for (name, platform) in &fleet.platforms {
        if !only.is_empty() && !only.iter().any(|o| o == name.as_str()) {
            continue;
        }
        match ctx.connect(&fleet, platform).await {
            Ok(c) => {
                clients.insert(name.clone(), c);
            }
            Err(e) => failures.push(e),
        }
    }
    if !failures.is_empty() {
        return Err(OpsError::Platforms(failures));
    }
    Ok(pipeline::observe_with_documents(&clients, &fleet).await?.into_iter().map(|(n, (o, d))| (n, o, d)).collect())
}
