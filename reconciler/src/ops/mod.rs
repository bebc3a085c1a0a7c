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
    /// Where referenced secrets are read from.
    pub secrets: crate::model::Secrets,
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
    /// `apply` refused to start.
    #[error(transparent)]
    Refused(ApplyRefusal),
    /// A command named a Platform the fleet does not have.
    #[error("the fleet has no Platform `{name}`; it has {known}")]
    UnknownPlatform {
        /// The name given.
        name: String,
        /// The fleet's Platforms.
        known: String,
    },
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

/// Reads the source, loads the fleet, and verifies every catalog against the recorded history
/// (recording nothing: only [`ApplyRun`] records the serials it acted on).
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

/// `patchops doctor`: each platform's own trust, link by link ([`crate::doctor`]). Reads the
/// fleet only (no catalog), so a broken catalog does not hide a broken platform.
pub async fn doctor(opts: &Options, only: Option<&str>) -> Result<Vec<crate::doctor::PlatformReport>, OpsError> {
    let (snapshot, _) = source::open(&opts.source)?;
    let fleet = model::load(snapshot.files())?;
    if let Some(name) = only {
        if !fleet.platforms.keys().any(|n| n.as_str() == name) {
            let known: Vec<String> = fleet.platforms.keys().map(ToString::to_string).collect();
            return Err(OpsError::UnknownPlatform { name: name.to_string(), known: known.join(", ") });
        }
    }
    Ok(crate::doctor::diagnose(&fleet, &opts.state, &opts.secrets, only, opts.now).await)
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
    judge(&mut plan, &mut policies, &PolicyContext::new(&v.fleet, &v.catalogs, opts.now))?;
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
///
/// Actions are independent: large plans are judged in chunks on every core, each with its own
/// copy of the compiled policies (the result is the same as judging them one by one).
pub fn judge(plan: &mut Plan, policies: &mut Policies, ctx: &PolicyContext<'_>) -> Result<(), PolicyError> {
    fn judge_all(
        actions: &mut [plan::PlannedAction],
        policies: &mut Policies,
        ctx: &PolicyContext<'_>,
    ) -> Result<(), PolicyError> {
        for a in actions.iter_mut().filter(|a| a.action != plan::ActionKind::None) {
            let input = crate::policy::input_for(a, ctx);
            a.denied = policies.evaluate(&input, &crate::policy::subject(a))?.denials;
        }
        Ok(())
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let chunk = plan.actions.len().div_ceil(threads).max(512);
    if plan.actions.len() <= chunk {
        judge_all(&mut plan.actions, policies, ctx)?;
    } else {
        let results: Vec<Result<(), PolicyError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = plan
                .actions
                .chunks_mut(chunk)
                .map(|part| {
                    let mut mine = policies.clone();
                    scope.spawn(move || judge_all(part, &mut mine, ctx))
                })
                .collect();
            // Judging is pure; a panicking chunk is a bug, re-raised rather than hidden.
            handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
        });
        results.into_iter().collect::<Result<(), PolicyError>>()?;
    }
    plan.recount();
    Ok(())
}

async fn verify_catalogs(
    fleet: &Fleet,
    snapshot: &SourceSnapshot,
    opts: &Options,
) -> Result<BTreeMap<ObjectName, VerifiedCatalog>, OpsError> {
    // Read-only: the history is consulted (rollback, equivocation) but never written here.
    // Only apply records a serial, once it acted on the catalog (`ApplyRun::record_catalogs`),
    // so planning a branch with a newer catalog does not make main's look like a rollback.
    let history = opts.state.catalogs()?;
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
pub async fn observe(
    fleet: &Fleet,
    state: &StateDir,
    secrets: &crate::model::Secrets,
) -> Result<BTreeMap<ObjectName, Observed>, OpsError> {
    let mut tasks = Vec::new();
    for (name, p) in &fleet.platforms {
        let task = platform::connect(fleet, p, state, secrets)
            .await
            .map(|client| tokio::spawn(async move { client.observe().await }));
        tasks.push((name.clone(), task));
    }
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
    let observed = observe(&v.fleet, &opts.state, &opts.secrets).await?;
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
    judge(&mut plan, &mut policies, &PolicyContext::new(&v.fleet, &v.catalogs, opts.now))?;
    let db = opts.state.db()?;
    let history = |product: &str, platform: &str, ring: &str, version: &str| {
        db.reached_at(product, platform, ring, version).ok().flatten()
    };
    plan::gate(&mut plan, &v.fleet, &history, opts.now);
    // What apply would refuse, found now (with apply's default share).
    plan.guards = mass_retire(&plan, &observed, DEFAULT_MAX_RETIRE_SHARE)
        .into_iter()
        .map(|p| format!("it would retire too much at once: {p}; apply refuses this unless given --allow-mass-retire"))
        .collect();
    tracing::debug!(elapsed = ?t.elapsed(), rss_mib = rss_mib(), "policies evaluated, rollout gated");
    Ok(Planned { plan, warnings: v.warnings })
}

/// What `apply` is asked to do besides the fleet.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Apply exactly this saved plan (refused when stale).
    pub saved_plan: Option<Plan>,
    /// Allow retiring more than `max_retire_share` of a platform's managed objects.
    pub allow_mass_retire: bool,
    /// The share of a platform's managed objects one run may retire (default 0.3).
    pub max_retire_share: Option<f64>,
    /// Retry policy for transient platform errors.
    pub retry: Option<crate::apply::RetryPolicy>,
    /// Shows downloads.
    pub progress: Option<std::sync::Arc<dyn crate::content::Progress>>,
}

/// The default share of a platform's managed objects one apply may retire.
pub const DEFAULT_MAX_RETIRE_SHARE: f64 = 0.3;

/// An apply that has planned and holds the lock; [`ApplyRun::execute`] changes the platforms.
pub struct ApplyRun {
    /// The plan it will apply (denied and waiting actions are not applied).
    pub plan: Plan,
    /// Warnings about the source.
    pub warnings: Vec<SourceWarning>,
    /// Actions an earlier run left unfinished (it crashed or was killed).
    pub interrupted: Vec<crate::state::Interrupted>,
    validated: Validated,
    observed: BTreeMap<ObjectName, Observed>,
    platforms: BTreeMap<ObjectName, Box<dyn platform::Platform>>,
    policies: Policies,
    db: std::sync::Arc<std::sync::Mutex<crate::state::StateDb>>,
    state: StateDir,
    now: DateTime<Utc>,
    options: ApplyOptions,
    _lock: crate::state::ApplyLock,
}

impl std::fmt::Debug for ApplyRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplyRun").field("plan", &self.plan.summary).finish_non_exhaustive()
    }
}

/// Why apply refused to start.
#[derive(Debug, thiserror::Error)]
pub enum ApplyRefusal {
    /// Another apply holds the state directory.
    #[error(transparent)]
    Locked(#[from] crate::state::LockError),
    /// The saved plan no longer matches its inputs.
    #[error("the saved plan is stale and was not applied:\n{}\nhelp: make a new plan with `patchops plan --out FILE`, review it, and apply that", .0.iter().map(|s| format!("  - {s}")).collect::<Vec<_>>().join("\n"))]
    Stale(Vec<String>),
    /// The saved plan's actions are not those its recorded inputs give: it was edited.
    #[error("the saved plan does not match what its own inputs give, so it was edited after it was made; nothing was applied:\n{}\nhelp: a plan file is applied only as `patchops plan --out FILE` wrote it; make a new plan and review that", .0.iter().map(|s| format!("  - {s}")).collect::<Vec<_>>().join("\n"))]
    Tampered(Vec<String>),
    /// The plan would retire too much of a platform.
    #[error("refusing to retire so much at once:\n{}\nhelp: an empty or broken fleet looks exactly like this; if the retirement is intended, run again with --allow-mass-retire", .0.iter().map(|s| format!("  - {s}")).collect::<Vec<_>>().join("\n"))]
    MassRetire(Vec<String>),
}

/// `patchops apply`, first half: lock, recover, load, verify, observe, plan, judge and gate.
pub async fn prepare_apply(opts: &Options, options: ApplyOptions) -> Result<ApplyRun, OpsError> {
    let lock = opts.state.lock("apply").map_err(|e| OpsError::Refused(e.into()))?;
    let db = opts.state.db()?;
    let interrupted = db.recover()?;
    // Holding the lock, nothing of the state directory is being written: what a killed run
    // left half-written (downloads, emulator state) goes.
    let freed = opts.state.sweep_leftovers();
    if freed > 0 {
        tracing::info!(bytes = freed, "removed the partial files of an earlier run");
    }
    for i in &interrupted {
        tracing::warn!(run = %i.run, action = %i.subject, step = %i.step, detail = %i.detail, "an earlier apply was interrupted; re-planning from the platforms' current state");
    }
    let v = load_and_verify(opts).await?;
    let mut platforms = BTreeMap::new();
    let mut failures = Vec::new();
    for (name, p) in &v.fleet.platforms {
        match platform::connect(&v.fleet, p, &opts.state, &opts.secrets).await {
            Ok(c) => {
                platforms.insert(name.clone(), c);
            }
            Err(e) => failures.push(e),
        }
    }
    let mut observed = BTreeMap::new();
    let results =
        futures::future::join_all(platforms.iter().map(|(n, c)| async move { (n.clone(), c.observe().await) })).await;
    for (name, r) in results {
        match r {
            Ok(o) => {
                observed.insert(name, o);
            }
            Err(e) => failures.push(e),
        }
    }
    if !failures.is_empty() {
        return Err(OpsError::Platforms(failures));
    }
    let mut plan = plan::plan(PlanInput {
        fleet: &v.fleet,
        source: (v.snapshot.provenance(), v.snapshot.digest()),
        catalogs: &v.catalogs,
        observed: &observed,
    });
    if let Some(saved) = &options.saved_plan {
        let stale = staleness(&saved.fingerprints, &plan.fingerprints);
        if !stale.is_empty() {
            return Err(OpsError::Refused(ApplyRefusal::Stale(stale)));
        }
        // The saved plan is what was reviewed, but its action list is only a file: what is
        // applied is the plan recomputed from the same inputs, and only when it is the same.
        let tampered = tampering(&saved.actions, &plan.actions);
        if !tampered.is_empty() {
            return Err(OpsError::Refused(ApplyRefusal::Tampered(tampered)));
        }
    }
    let mut policies = Policies::for_fleet(&v.fleet, &v.snapshot)?;
    judge(&mut plan, &mut policies, &PolicyContext::new(&v.fleet, &v.catalogs, opts.now))?;
    // What the platforms show each ring running, where the ring history has no record of it (a
    // crash before the record was written, a lost state directory): the soak of that ring counts
    // from when the platform says the ring got it (a WSUS approval, a ConfigMgr deployment), or
    // else from now — never from an unknown time in the past.
    for r in plan::observed_ring_versions(&v.fleet, &observed) {
        if db.reached_at(&r.product, &r.platform, &r.ring, &r.version)?.is_none() {
            let at = r.since.filter(|t| *t <= opts.now).unwrap_or(opts.now);
            tracing::warn!(product = %r.product, platform = %r.platform, ring = %r.ring, version = %r.version, since = %at, "no record of when this ring got this version; taking the platform's time, or now");
            db.ring_reached(&r.product, &r.platform, &r.ring, &r.version, at)?;
        }
    }
    let history = |product: &str, platform: &str, ring: &str, version: &str| {
        db.reached_at(product, platform, ring, version).ok().flatten()
    };
    plan::gate(&mut plan, &v.fleet, &history, opts.now);
    let share = options.max_retire_share.unwrap_or(DEFAULT_MAX_RETIRE_SHARE);
    if !options.allow_mass_retire {
        let too_much = mass_retire(&plan, &observed, share);
        if !too_much.is_empty() {
            return Err(OpsError::Refused(ApplyRefusal::MassRetire(too_much)));
        }
    }
    Ok(ApplyRun {
        plan,
        warnings: v.warnings.clone(),
        interrupted,
        validated: v,
        observed,
        platforms,
        policies,
        db: std::sync::Arc::new(std::sync::Mutex::new(db)),
        state: opts.state.clone(),
        now: opts.now,
        options,
        _lock: lock,
    })
}

/// Where a saved plan's actions differ from those its recorded inputs give (policy denials and
/// waiting are judged again at apply time and are not compared).
fn tampering(saved: &[plan::PlannedAction], now: &[plan::PlannedAction]) -> Vec<String> {
    let judged_apart = |a: &plan::PlannedAction| plan::PlannedAction { denied: Vec::new(), waiting: None, ..a.clone() };
    let describe = |a: &plan::PlannedAction| {
        format!(
            "{} {} {}on {}{}{}",
            a.action.as_str(),
            a.product,
            a.version.as_deref().map(|v| format!("{v} ")).unwrap_or_default(),
            a.platform,
            a.ring.as_deref().map(|r| format!(" / {r}")).unwrap_or_default(),
            a.group.as_deref().map(|g| format!(" (group {g})")).unwrap_or_default(),
        )
    };
    // Both lists are in the planner's stable order: compared pairwise, and only when they
    // differ is it worked out which actions (by their JSON form) the other side lacks.
    if saved.len() == now.len() && saved.iter().zip(now).all(|(a, b)| judged_apart(a) == judged_apart(b)) {
        return Vec::new();
    }
    let key = |a: &plan::PlannedAction| serde_json::to_string(&judged_apart(a)).unwrap_or_default();
    let saved_keys: std::collections::HashSet<String> = saved.iter().map(key).collect();
    let now_keys: std::collections::HashSet<String> = now.iter().map(key).collect();
    let mut out: Vec<String> = saved
        .iter()
        .filter(|a| !now_keys.contains(&key(a)))
        .map(|a| format!("the plan file has `{}`, which its inputs do not give", describe(a)))
        .chain(
            now.iter()
                .filter(|a| !saved_keys.contains(&key(a)))
                .map(|a| format!("its inputs give `{}`, which the plan file lacks", describe(a))),
        )
        .take(20)
        .collect();
    if out.is_empty() {
        out.push("the plan file lists its actions in another order or more than once".into());
    }
    out
}

/// What changed between a saved plan's inputs and today's.
fn staleness(saved: &plan::Fingerprints, now: &plan::Fingerprints) -> Vec<String> {
    let mut out = Vec::new();
    if saved.source != now.source || saved.source_digest != now.source_digest {
        out.push(format!(
            "the fleet changed: the plan was made from {} (digest {}), the fleet is now {} (digest {})",
            describe_source(&saved.source),
            saved.source_digest.short(),
            describe_source(&now.source),
            now.source_digest.short()
        ));
    }
    if saved.catalogs != now.catalogs {
        let show = |c: &[plan::CatalogFingerprint]| {
            c.iter()
                .map(|c| format!("{} serial {} ({})", c.source, c.serial, c.sha256.short()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(format!("the catalog changed: planned with {}, now {}", show(&saved.catalogs), show(&now.catalogs)));
    }
    for (platform, digest) in &now.observed {
        if saved.observed.get(platform) != Some(digest) {
            out.push(format!("platform {platform} changed since the plan was made (its observed state differs)"));
        }
    }
    out
}

fn describe_source(v: &serde_json::Value) -> String {
    match (v.get("commit").and_then(|c| c.as_str()), v.get("path").and_then(|c| c.as_str())) {
        (Some(c), _) => format!("commit {}", c.get(..12).unwrap_or(c)),
        (None, Some(p)) => format!("directory {p}"),
        _ => "an unknown source".into(),
    }
}

/// The fewest objects a run must retire from a platform for the mass-retire guard to refuse it
/// (unless it retires every managed object there): one retire on a small platform is a
/// change, not an emptied fleet.
pub const MIN_MASS_RETIRE_COUNT: usize = 3;

/// Platforms where the plan would retire more than `share` of the managed objects: at least
/// [`MIN_MASS_RETIRE_COUNT`] of them, or all of them.
fn mass_retire(plan: &Plan, observed: &BTreeMap<ObjectName, Observed>, share: f64) -> Vec<String> {
    let mut out = Vec::new();
    for (name, o) in observed {
        // Half-made objects are replaced, not retired from devices: they do not count.
        let managed: Vec<&platform::ObservedObject> =
            o.objects.iter().filter(|x| x.managed_complete().is_some()).collect();
        if managed.is_empty() {
            continue;
        }
        let retires: Vec<&plan::PlannedAction> = plan
            .applicable()
            // A version withdrawn from a group that already runs the selected one (a crash
            // mid-update) is the end of an update, not a fleet emptying itself.
            .filter(|a| {
                a.action == plan::ActionKind::Retire && &*a.platform == name.as_str() && &*a.reason != "AlsoAssigned"
            })
            .collect();
        let gone = managed
            .iter()
            .filter(|obj| {
                let mine = |a: &&&plan::PlannedAction| a.object_id.as_deref() == Some(obj.id.as_str());
                retires.iter().filter(mine).any(|a| a.group.is_none())
                    || (!obj.assignments.is_empty()
                        && obj
                            .assignments
                            .iter()
                            .all(|g| retires.iter().filter(mine).any(|a| a.group.as_deref() == Some(g.group.as_str()))))
            })
            .count();
        let enough = gone >= MIN_MASS_RETIRE_COUNT || gone == managed.len();
        if gone > 0 && enough && (gone as f64) > share * managed.len() as f64 {
            out.push(format!(
                "platform {name}: {gone} of its {} managed objects would be retired ({:.0} %, more than the {:.0} % allowed)",
                managed.len(),
                100.0 * gone as f64 / managed.len() as f64,
                100.0 * share
            ));
        }
    }
    out
}

/// The result of an apply.
#[derive(Debug)]
pub struct Applied {
    /// Every applied action and how it ended.
    pub reports: Vec<crate::apply::ActionReport>,
    /// Actions policy refused at apply time.
    pub denied: Vec<(plan::PlannedAction, Vec<Denial>)>,
}

impl ApplyRun {
    /// Records the serials of the catalogs this apply acted on (trust-chain link 1's history):
    /// from now on a lower serial of the same source is refused as a rollback. `execute` does
    /// it after applying; call it when there was nothing to apply (the platforms already match
    /// this catalog).
    pub fn record_catalogs(&self) -> Result<(), OpsError> {
        let mut history = self.state.catalogs()?;
        for c in self.validated.catalogs.values() {
            history.record(c)?;
        }
        Ok(())
    }

    /// Applies the plan's applicable actions, then records the catalogs' serials.
    pub async fn execute(mut self) -> Result<Applied, OpsError> {
        let ctx = PolicyContext::new(&self.validated.fleet, &self.validated.catalogs, self.now);
        let mut permitted = Vec::new();
        let mut denied = Vec::new();
        for a in self.plan.applicable() {
            // Policies are evaluated again here: the PermittedAction type is the engine's only
            // input, and only `permit` makes one.
            match self.policies.permit(a.clone(), &ctx)? {
                Ok(p) => permitted.push(p),
                Err(d) => denied.push((a.clone(), d)),
            }
        }
        let run_id = format!("{}-{}", self.now.format("%Y%m%dT%H%M%SZ"), std::process::id());
        let engine = crate::apply::Engine {
            fleet: &self.validated.fleet,
            snapshot: &self.validated.snapshot,
            catalogs: &self.validated.catalogs,
            observed: &self.observed,
            platforms: &self.platforms,
            content: match &self.options.progress {
                Some(p) => self.state.content().with_progress(p.clone()),
                None => self.state.content(),
            },
            db: self.db.clone(),
            run: run_id,
            retry: self.options.retry.unwrap_or_default(),
        };
        let reports = engine.run(permitted).await;
        self.record_catalogs()?;
        Ok(Applied { reports, denied })
    }
}
