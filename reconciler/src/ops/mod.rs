//! The operations behind the commands: each gathers its inputs (IO), calls the pure core, and
//! returns values for the command line to render. Commands stay thin; the logic lives here.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::catalog::{self, CatalogError, VerifiedCatalog};
use crate::model::{self, Diagnostics, Fleet, ObjectName};
use crate::plan::{self, Plan, PlanInput, SelectionError};
use crate::platform::{self, Observed, PlatformError};
use crate::policy::{Denial, Policies, PolicyContext, PolicyError};
use crate::source::{self, SourceOptions, SourceSnapshot, SourceWarning};
use crate::state::{StateDir, StateError};

/// Inputs shared by `validate` and `plan`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the fleet is.
    pub source: SourceOptions,
    /// The state directory.
    pub state: StateDir,
    /// The time catalogs are checked against.
    pub now: DateTime<Utc>,
}

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The source could not be read.
    #[error(transparent)]
    Source(#[from] source::SourceError),
    /// The fleet has errors.
    #[error(transparent)]
    Fleet(#[from] Diagnostics),
    /// One or more catalogs were refused.
    #[error("{}", join(.0))]
    Catalogs(Vec<CatalogError>),
    /// Products whose catalog entry cannot be used: (Product name, origin, error).
    #[error("{}", .0.iter().map(|(p, o, e)| format!("Product `{p}` ({o}): {e}")).collect::<Vec<_>>().join("\n"))]
    Selection(Vec<(ObjectName, model::Origin, SelectionError)>),
    /// The state directory failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// Platforms could not be observed.
    #[error("{}", join(.0))]
    Platforms(Vec<PlatformError>),
    /// The policies could not be loaded or evaluated.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// `validate`: policies refuse what the fleet asks for.
    #[error("{}", .0.iter().map(|(s, d)| format!("{s}: denied by policy {}: {}", d.policy, d.message)).collect::<Vec<_>>().join("\n"))]
    Denied(Vec<(String, Denial)>),
}

/// Resident memory in MiB, for the `-vv` phase timings (Linux; 0 elsewhere).
fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096 / (1024 * 1024))
}

fn join<E: std::fmt::Display>(errors: &[E]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

/// A fleet that parsed and resolved, with its verified catalogs.
#[derive(Debug)]
pub struct Validated {
    /// The source read.
    pub snapshot: SourceSnapshot,
    /// Warnings about the source.
    pub warnings: Vec<SourceWarning>,
    /// The fleet.
    pub fleet: Fleet,
    /// One verified catalog per CatalogSource.
    pub catalogs: BTreeMap<ObjectName, VerifiedCatalog>,
    /// The policies applied (filled in by `validate`).
    pub policies: Vec<String>,
}

/// Reads the source, loads the fleet, and verifies every catalog (recording accepted serials).
pub async fn load_and_verify(opts: &Options) -> Result<Validated, OpsError> {
    let t = std::time::Instant::now();
    let (snapshot, warnings) = source::open(&opts.source)?;
    tracing::debug!(elapsed = ?t.elapsed(), rss_mib = rss_mib(), files = snapshot.files().len(), "source read");
    let fleet = model::load(snapshot.files())?;
    tracing::debug!(elapsed = ?t.elapsed(), rss_mib = rss_mib(), products = fleet.products.len(), "fleet loaded");
    let catalogs = verify_catalogs(&fleet, &snapshot, opts).await?;
    tracing::debug!(elapsed = ?t.elapsed(), rss_mib = rss_mib(), "catalogs verified");
    Ok(Validated { snapshot, warnings, fleet, catalogs, policies: Vec::new() })
}

/// `patchops validate`: the fleet, its catalogs, and that every Product finds an installer.
pub async fn validate(opts: &Options) -> Result<Validated, OpsError> {
    let v = load_and_verify(opts).await?;
    let mut failures = Vec::new();
    for p in &v.fleet.products {
        if p.spec.retire {
            continue;
        }
        if let Some(c) = v.catalogs.get(&p.catalog) {
            if let Err(e) = plan::select_installer(p, c) {
                failures.push((p.name().clone(), p.origin.clone(), e));
            }
        }
    }
    if !failures.is_empty() {
        return Err(OpsError::Selection(failures));
    }
    // What the policies say about publishing the fleet as it stands to empty platforms: every
    // (product, platform, ring) the fleet asks for, as a publish.
    let mut policies = Policies::for_fleet(&v.fleet, &v.snapshot)?;
    let mut plan = plan::plan(PlanInput {
        fleet: &v.fleet,
        source: (v.snapshot.provenance(), v.snapshot.digest()),
        catalogs: &v.catalogs,
        observed: &BTreeMap::new(),
    });
    judge(&mut plan, &mut policies, &PolicyContext { fleet: &v.fleet, catalogs: &v.catalogs, now: opts.now })?;
    let denials: Vec<(String, Denial)> = plan
        .actions
        .iter()
        .flat_map(|a| a.denied.iter().map(move |d| (crate::policy::subject(a), d.clone())))
        .collect();
    if denials.is_empty() {
        let mut v = v;
        v.policies = policies.names().to_vec();
        Ok(v)
    } else {
        Err(OpsError::Denied(denials))
    }
}

/// Evaluates the policies on every change of a plan, recording denials on the actions.
pub fn judge(plan: &mut Plan, policies: &mut Policies, ctx: &PolicyContext<'_>) -> Result<(), PolicyError> {
    for a in plan.actions.iter_mut().filter(|a| a.action != plan::ActionKind::None) {
        let input = crate::policy::input_for(a, ctx);
        a.denied = policies.evaluate(&input, &crate::policy::subject(a))?.denials;
    }
    plan.recount();
    Ok(())
}

async fn verify_catalogs(
    fleet: &Fleet,
    snapshot: &SourceSnapshot,
    opts: &Options,
) -> Result<BTreeMap<ObjectName, VerifiedCatalog>, OpsError> {
    let mut history = opts.state.catalogs()?;
    let mut verified = BTreeMap::new();
    let mut failures = Vec::new();
    for (name, source) in &fleet.catalog_sources {
        let result = match catalog::fetch(source, snapshot).await {
            Ok(unverified) => {
                unverified.verify(&source.trusted_keys, source.spec.max_age.map(|d| d.0), history.seen(name), opts.now)
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(c) => {
                // Trust-chain link 1 passed: only now is the serial recorded.
                history.record(&c)?;
                tracing::info!(source = %name, serial = c.serial(), key = c.key_id(), "catalog verified");
                verified.insert(name.clone(), c);
            }
            Err(e) => failures.push(e),
        }
    }
    if failures.is_empty() {
        Ok(verified)
    } else {
        Err(OpsError::Catalogs(failures))
    }
}

/// Observes every platform of the fleet, each in its own task (so that slow platforms are
/// waited for together). Every failure is reported, not only the first.
pub async fn observe(fleet: &Fleet, state: &StateDir) -> Result<BTreeMap<ObjectName, Observed>, OpsError> {
    let tasks: Vec<_> = fleet
        .platforms
        .iter()
        .map(|(name, p)| {
            let task = platform::connect(p, state).map(|client| tokio::spawn(async move { client.observe().await }));
            (name.clone(), task)
        })
        .collect();
    let mut observed = BTreeMap::new();
    let mut failures = Vec::new();
    for (name, task) in tasks {
        let result = match task {
            Err(e) => Err(e),
            Ok(handle) => handle.await.unwrap_or_else(|join| {
                Err(PlatformError::Unavailable { platform: name.clone(), reason: format!("observing failed: {join}") })
            }),
        };
        match result {
            Ok(o) => {
                observed.insert(name, o);
            }
            Err(e) => failures.push(e),
        }
    }
    if failures.is_empty() {
        Ok(observed)
    } else {
        Err(OpsError::Platforms(failures))
    }
}

/// The result of `patchops plan`.
#[derive(Debug)]
pub struct Planned {
    /// The plan.
    pub plan: Plan,
    /// Warnings about the source.
    pub warnings: Vec<SourceWarning>,
}

/// `patchops plan`: desired × verified catalogs × observed platforms.
pub async fn plan(opts: &Options) -> Result<Planned, OpsError> {
    let t = std::time::Instant::now();
    let v = load_and_verify(opts).await?;
    let observed = observe(&v.fleet, &opts.state).await?;
    tracing::debug!(elapsed = ?t.elapsed(), rss_mib = rss_mib(), "platforms observed");
    let plan = plan::plan(PlanInput {
        fleet: &v.fleet,
        source: (v.snapshot.provenance(), v.snapshot.digest()),
        catalogs: &v.catalogs,
        observed: &observed,
    });
    tracing::debug!(elapsed = ?t.elapsed(), rss_mib = rss_mib(), actions = plan.actions.len(), "planned");
    let mut plan = plan;
    let mut policies = Policies::for_fleet(&v.fleet, &v.snapshot)?;
    judge(&mut plan, &mut policies, &PolicyContext { fleet: &v.fleet, catalogs: &v.catalogs, now: opts.now })?;
    tracing::debug!(elapsed = ?t.elapsed(), rss_mib = rss_mib(), "policies evaluated");
    Ok(Planned { plan, warnings: v.warnings })
}
