//! `patchops doctor`: each platform's own trust, link by link ([`crate::doctor`]).

use super::pipeline;
use super::OpsError;
use crate::context::Context;
use crate::source::SourceOptions;

/// What `doctor` is asked.
#[derive(Debug, Clone, Default)]
pub struct DoctorOptions {
    /// Only this Platform.
    pub platform: Option<String>,
    /// Judge certificates as of this time instead of now (will they still hold then?).
    pub at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Diagnoses every platform of the fleet at `source` (or only the one asked for). Reads the
/// fleet only (no catalog), so a broken catalog does not hide a broken platform.
pub async fn doctor(
    ctx: &Context,
    source: &SourceOptions,
    options: &DoctorOptions,
) -> Result<Vec<crate::doctor::PlatformReport>, OpsError> {
    let only = options.platform.as_deref();
    let (_, _, fleet) = pipeline::load_fleet(ctx, source).await?;
    if let Some(name) = only {
        if !fleet.platforms.keys().any(|n| n.as_str() == name) {
            let known: Vec<String> = fleet.platforms.keys().map(ToString::to_string).collect();
            return Err(OpsError::UnknownPlatform { name: name.to_string(), known: known.join(", ") });
        }
    }
    Ok(crate::doctor::diagnose(&fleet, ctx, only, options.at.unwrap_or_else(|| ctx.now())).await)
}
