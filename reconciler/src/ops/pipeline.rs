//! The one pipeline every operation runs, in stages: **load** (source → fleet → verified
//! catalogs) → **connect** and **observe** the platforms → **decide** (plan, judge, gate and
//! guard). `validate` stops after load and decides against empty platforms; `doctor` loads the
//! fleet only; `status` loads and observes; `plan` and `apply` (and the daemon's cycle) run it
//! whole. The decision says when to run again: the earliest time a waiting change opens
//! ([`Decision::requeue_at`], as kube-runtime's `Action::requeue`).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{rss_mib, OpsError};
use crate::catalog::{self, VerifiedCatalog};
use crate::context::Context;
use crate::model::{self, Fleet, ObjectName};
use crate::plan::{self, Plan, PlanInput};
use crate::platform::{self, Observed, PlatformError};
use crate::policy::{Policies, PolicyContext};
use crate::source::{self, SourceOptions, SourceSnapshot, SourceWarning};

/// A fleet that parsed and resolved, with its verified catalogs.
#[derive(Debug)]
pub struct Loaded {
    /// The source read.
    pub snapshot: SourceSnapshot,
    /// Warnings about the source.
    pub warnings: Vec<SourceWarning>,
    /// The fleet (shared with the memo of a long-running process).
    pub fleet: Arc<Fleet>,
    /// One verified catalog per CatalogSource.
    pub catalogs: BTreeMap<ObjectName, VerifiedCatalog>,
}

/// The source's warnings, and one for the files the operation read beyond the fleet documents
/// (catalogs, policy modules) that have uncommitted changes: call it after deciding, when every
/// such file was read.
pub fn warnings(loaded: &Loaded) -> Vec<SourceWarning> {
    let mut out = loaded.warnings.clone();
    out.extend(loaded.snapshot.uncommitted_warning());
    out
}

/// The fleet alone, without its catalogs (`doctor`: a broken catalog must not hide a broken
/// platform).
pub async fn load_fleet(
    ctx: &Context,
    source: &SourceOptions,
) -> Result<(SourceSnapshot, Vec<SourceWarning>, Fleet), OpsError> {
    let source = source.clone();
    let (policy, state) = (ctx.commit_policy().clone(), ctx.state().clone());
    blocking(move || {
        let (snapshot, warnings) = admit(source::open(&source)?, &policy, &state)?;
        let fleet = model::load(snapshot.files())?;
        Ok((snapshot, warnings, fleet))
    })
    .await
}

/// Reads the source, loads the fleet, and verifies every catalog against the recorded history
/// (recording nothing: only an apply records the serials it acted on).
pub async fn load(ctx: &Context, source: &SourceOptions) -> Result<Loaded, OpsError> {
    let t = std::time::Instant::now();
    let (snapshot, warnings, fleet) = read_fleet(ctx, source, ctx.commit_policy(), t).await?;
    let catalogs = verify_catalogs(ctx, &fleet, &snapshot).await?;
    tracing::debug!(elapsed = ?t.elapsed(), rss_mib = rss_mib(), "catalogs verified");
    Ok(Loaded { snapshot, warnings, fleet, catalogs })
}

/// [`load`] admitting the commit under `policy` (`plan --base` reads the base unverified,
/// since nothing acts on it), with the platforms connected and observed while the catalogs are
/// verified (`plan`, `status`, `apply`, the daemon's cycle): both only read, and each waits on its own
/// I/O and parsing; nothing is acted on before the decision. Should both fail, the catalogs'
/// failure is the one reported, as when they ran one after the other.
pub(super) async fn load_observing(
    ctx: &Context,
    source: &SourceOptions,
    policy: &source::signature::CommitPolicy,
) -> Result<(Loaded, Clients, ObservedAll), OpsError> {
    let t = std::time::Instant::now();
    let (snapshot, warnings, fleet) = read_fleet(ctx, source, policy, t).await?;
    let (catalogs, (clients, observed)) = {
        let observing = async {
            let clients = connect(ctx, &fleet).await?;
            let observed = observe(&clients, &fleet).await?;
            tracing::debug!(elapsed = ?t.elapsed(), rss_mib = rss_mib(), "platforms observed");
            Ok::<_, OpsError>((clients, observed))
        };
        let verifying = async {
            let catalogs = verify_catalogs(ctx, &fleet, &snapshot).await?;
            tracing::debug!(elapsed = ?t.elapsed(), rss_mib = rss_mib(), "catalogs verified");
            Ok::<_, OpsError>(catalogs)
        };
        tokio::pin!(verifying, observing);
        // A catalog that fails ends the load at once (the observation is dropped); a platform that
        // fails first waits for the catalogs, whose failure goes first.
        tokio::select! {
            biased;
            catalogs = &mut verifying => {
                let catalogs = catalogs?;
                (catalogs, observing.await?)
            }
            observed = &mut observing => {
                let catalogs = verifying.await?;
                (catalogs, observed?)
            }
        }
    };
    Ok((Loaded { snapshot, warnings, fleet, catalogs }, clients, Arc::new(observed)))
}

/// Reads the source and loads its fleet (from the memo when the files are the same).
async fn read_fleet(
    ctx: &Context,
    source: &SourceOptions,
    policy: &source::signature::CommitPolicy,
    t: std::time::Instant,
) -> Result<(SourceSnapshot, Vec<SourceWarning>, Arc<Fleet>), OpsError> {
    // git2 and parsing block: off the async threads.
    let source = source.clone();
    let memo = ctx.memo().cloned();
    let (policy, state) = (policy.clone(), ctx.state().clone());
    let (snapshot, warnings, fleet) = blocking(move || {
        let (snapshot, warnings) = admit(source::open(&source)?, &policy, &state)?;
        if let source::signature::CommitVerdict::Verified { .. } = snapshot.verdict() {
            tracing::info!(verdict = %snapshot.verdict(), "commit verified");
        }
        tracing::debug!(elapsed = ?t.elapsed(), rss_mib = rss_mib(), files = snapshot.files().len(), "source read");
        // The fleet is a function of its files alone (paths and content, which the digest
        // covers): the same digest, the same fleet.
        let fleet = match memo.as_ref().and_then(|m| m.fleet(snapshot.digest())) {
            Some(fleet) => fleet,
            None => {
                let fleet = Arc::new(model::load(snapshot.files())?);
                if let Some(m) = &memo {
                    m.keep_fleet(snapshot.digest(), &fleet);
                }
                fleet
            }
        };
        Ok((snapshot, warnings, fleet))
    })
    .await?;
    tracing::debug!(elapsed = ?t.elapsed(), rss_mib = rss_mib(), products = fleet.products.len(), "fleet loaded");
    Ok((snapshot, warnings, fleet))
}

/// Admits the source's commit under the context's commit policy; strict mode starts after the
/// last commit an apply acted on (read only when strict mode asks for it).
fn admit(
    unverified: source::UnverifiedSource,
    policy: &source::signature::CommitPolicy,
    state: &crate::state::StateDir,
) -> Result<(SourceSnapshot, Vec<SourceWarning>), OpsError> {
    let last = match policy.mode() {
        Some(source::signature::VerifyMode::Strict) => state.db()?.last_applied_commit()?,
        _ => None,
    };
    Ok(unverified.verify(policy, last.as_deref())?)
}

async fn verify_catalogs(
    ctx: &Context,
    fleet: &Fleet,
    snapshot: &SourceSnapshot,
) -> Result<BTreeMap<ObjectName, VerifiedCatalog>, OpsError> {
    // Read-only: the history is consulted (rollback, equivocation) but never written here.
    // Only apply records a serial, once it acted on the catalog (`ApplyRun::record_catalogs`),
    // so planning a branch with a newer catalog does not make main's look like a rollback.
    let state = ctx.state().clone();
    let history = blocking(move || Ok(state.catalogs()?)).await?;
    let mut verified = BTreeMap::new();
    let mut failures = Vec::new();
    for (name, source) in &fleet.catalog_sources {
        let at = catalog::CatalogRef {
            name,
            url: &source.spec.url,
            signature_url: source.spec.signature_url.as_deref(),
            declared_in: &source.origin.file,
        };
        let earlier = ctx.memo().and_then(|m| m.catalog(name));
        let result = match catalog::fetch(at, snapshot).await {
            Ok(unverified) => {
                // Checking the signature and parsing a large catalog take CPU: off the async
                // threads. A memo's earlier verification of the same bytes saves both.
                let (keys, max_age, seen, now) =
                    (source.trusted_keys.clone(), source.spec.max_age.map(|d| d.0), history.seen(name), ctx.now());
                blocking(move || Ok(unverified.verify_reusing(&keys, max_age, seen, now, earlier.as_ref()))).await?
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
        if let Some(m) = ctx.memo() {
            m.keep_catalogs(&verified);
        }
        Ok(verified)
    } else {
        Err(OpsError::Catalogs(failures))
    }
}

/// Runs blocking work (git, SQLite, parsing, planning) on tokio's blocking threads, so that
/// the async threads — and an HTTP endpoint sharing them — never stall.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OpsError> + Send + 'static,
) -> Result<T, OpsError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| OpsError::Task(e.to_string()))?
}

/// A client per platform of the fleet.
pub type Clients = BTreeMap<ObjectName, Box<dyn platform::PlatformClient>>;

/// Builds the client of every platform (embedded ones through the context's harness). Every
/// failure is reported, not only the first.
pub async fn connect(ctx: &Context, fleet: &Fleet) -> Result<Clients, OpsError> {
    let mut clients = BTreeMap::new();
    let mut failures = Vec::new();
    for (name, p) in &fleet.platforms {
        match ctx.connect(fleet, p).await {
            Ok(c) => {
                clients.insert(name.clone(), c);
            }
            Err(e) => failures.push(e),
        }
    }
    if failures.is_empty() {
        Ok(clients)
    } else {
        Err(OpsError::Platforms(failures))
    }
}

/// Observes every platform at once (slow platforms are waited for together), and resolves the
/// groups `fleet` names by display name on each (read-only; a recording already holds them).
/// Every failure is reported, not only the first.
pub async fn observe(clients: &Clients, fleet: &Fleet) -> Result<BTreeMap<ObjectName, Observed>, OpsError> {
    Ok(observe_reading(clients, fleet, false).await?.into_iter().map(|(n, (o, _))| (n, o)).collect())
}

/// [`observe`], with each platform's own documents ([`platform::PlatformClient::observe_documents`]):
/// what `inventory record` keeps for `plan --emulate`.
pub async fn observe_with_documents(
    clients: &Clients,
    fleet: &Fleet,
) -> Result<BTreeMap<ObjectName, (Observed, serde_json::Value)>, OpsError> {
    Ok(observe_reading(clients, fleet, true)
        .await?
        .into_iter()
        .map(|(n, (o, d))| (n, (o, d.unwrap_or(serde_json::Value::Null))))
        .collect())
}

async fn observe_reading(
    clients: &Clients,
    fleet: &Fleet,
    documents: bool,
) -> Result<BTreeMap<ObjectName, (Observed, Option<serde_json::Value>)>, OpsError> {
    let results = futures::future::join_all(clients.iter().map(|(n, c)| async move {
        let named = fleet.named_groups(n);
        let read = if documents {
            c.observe_documents().await.map(|(o, d)| (o, Some(d)))
        } else {
            c.observe().await.map(|o| (o, None))
        };
        let observed = match read {
            Ok((mut o, docs)) => {
                o.groups.retain(|name, _| named.contains(name));
                let missing: Vec<String> = named.iter().filter(|g| !o.groups.contains_key(*g)).cloned().collect();
                match c.resolve_groups(&missing).await {
                    Ok(ids) => {
                        o.groups.extend(ids);
                        Ok((o, docs))
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        (n.clone(), observed)
    }))
    .await;
    let mut observed = BTreeMap::new();
    let mut failures: Vec<PlatformError> = Vec::new();
    for (name, r) in results {
        match r {
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

/// What a decision may do with the ring history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingEvidence {
    /// Read it only (`plan`: a read-only command changes no state).
    Read,
    /// Record first what the platforms show each ring running where the history has no record
    /// (`apply`): the soak of that ring counts from when the platform says the ring got it, or
    /// else from now — never from an unknown time in the past.
    Record,
}

/// How to decide.
#[derive(Debug, Clone)]
pub struct Decide {
    /// Check the plan against this saved one (stale or edited is refused).
    pub saved: Option<Plan>,
    /// Gate the rollout with the ring history (`None`: no gating, as `validate`).
    pub ring_evidence: Option<RingEvidence>,
    /// The share of a platform's managed objects one run may retire.
    pub max_retire_share: f64,
}

/// What the pipeline decided.
#[derive(Debug)]
pub struct Decision {
    /// The plan, judged and gated.
    pub plan: Plan,
    /// The fleet's compiled policies (apply permits with them again).
    pub policies: Policies,
    /// Platforms where the plan would retire more than the share allowed.
    pub mass_retire: Vec<super::MassRetire>,
    /// When to run again: the earliest time a waiting change opens.
    pub requeue_at: Option<DateTime<Utc>>,
}

/// What each platform holds, shared between the decision and the apply that follows it.
pub type ObservedAll = Arc<BTreeMap<ObjectName, Observed>>;

/// [`decide_with`] on tokio's blocking threads (planning, policies and SQLite take CPU and block).
pub async fn decide(
    ctx: &Context,
    loaded: &Arc<Loaded>,
    observed: &ObservedAll,
    how: Decide,
) -> Result<Decision, OpsError> {
    let (state, now, loaded, observed) = (ctx.state().clone(), ctx.now(), loaded.clone(), observed.clone());
    let memo = ctx.memo().cloned();
    blocking(move || decide_with(&state, now, &loaded, &observed, how, memo.as_deref())).await
}

/// Plans, checks a saved plan, judges, gates and guards: desired × verified catalogs ×
/// observed platforms, at `now`, with the ring history in `state`.
pub fn decide_with(
    state: &crate::state::StateDir,
    now: DateTime<Utc>,
    loaded: &Loaded,
    observed: &ObservedAll,
    how: Decide,
    memo: Option<&crate::memo::Memo>,
) -> Result<Decision, OpsError> {
    let t = std::time::Instant::now();
    // Groups named by display name are planned with the ids the platforms gave for them; a
    // fleet with a group left unresolved is not planned (its assignments are unknown).
    let resolved;
    let fleet: &Fleet = if loaded.fleet.has_named_groups() {
        let ids: BTreeMap<ObjectName, BTreeMap<String, String>> =
            observed.iter().map(|(n, o)| (n.clone(), o.groups.clone())).collect();
        resolved = loaded.fleet.with_group_ids(&ids);
        let unresolved = resolved.unresolved_groups();
        if !unresolved.is_empty() {
            return Err(OpsError::Task(format!(
                "groups named in the fleet were not resolved ({}); nothing is planned",
                unresolved.join(", ")
            )));
        }
        &resolved
    } else {
        &loaded.fleet
    };
    // The plan is a function of the fleet, the catalogs and what the platforms hold: with a
    // memo and the same three, the last plan is the plan (with this commit's provenance).
    let remembered = memo.and_then(|m| m.plan(&loaded.fleet, &loaded.catalogs, observed));
    let mut rings_recorded = None;
    let mut plan = match remembered {
        Some((mut plan, recorded)) => {
            plan.fingerprints.source = serde_json::to_value(loaded.snapshot.provenance()).unwrap_or_default();
            rings_recorded = recorded;
            plan
        }
        None => {
            let plan = plan::plan(PlanInput {
                fleet,
                source: (loaded.snapshot.provenance(), loaded.snapshot.digest()),
                catalogs: &loaded.catalogs,
                observed,
            });
            if let Some(m) = memo {
                m.keep_plan(&loaded.fleet, &loaded.catalogs, observed, &plan);
            }
            plan
        }
    };
    tracing::debug!(elapsed = ?t.elapsed(), rss_mib = rss_mib(), actions = plan.actions.len(), "planned");
    // The policy modules are read here: after that, every file the plan depends on is known.
    let mut policies = Policies::for_fleet(&loaded.fleet, &loaded.snapshot)?;
    plan.fingerprints.files = loaded.snapshot.content_digests();
    plan.fingerprints.signature = match loaded.snapshot.verdict() {
        source::signature::CommitVerdict::NotRequired => None,
        verified => Some(verified.clone()),
    };
    if let Some(saved) = &how.saved {
        let stale = super::saved::staleness(saved, &plan.fingerprints);
        if !stale.is_empty() {
            return Err(OpsError::Refused(super::ApplyRefusal::Stale(stale)));
        }
        // The saved plan is what was reviewed, but its action list is only a file: what is
        // applied is the plan recomputed from the same inputs, and only when it is the same.
        let tampered = super::saved::tampering(&saved.actions, &plan.actions);
        if !tampered.is_empty() {
            return Err(OpsError::Refused(super::ApplyRefusal::Tampered(tampered)));
        }
    }
    crate::policy::judge(&mut plan, &mut policies, &PolicyContext::new(fleet, &loaded.catalogs, now))?;
    tracing::debug!(
        elapsed = ?t.elapsed(),
        changes = plan.actions.iter().filter(|a| a.action != plan::ActionKind::None).count(),
        policy_evaluations = policies.evaluations(),
        "judged"
    );
    if let Some(evidence) = how.ring_evidence {
        let db = state.db()?;
        // One read of the whole ring history, not a query per ring: a fleet of 10,000 products
        // in two rings on three platforms would otherwise ask 60,000 times. With a memo, the
        // same platforms as the last decision that recorded, and as many records as it left,
        // nothing can be missing: only the count is read.
        let mut records = None;
        let unchanged = match rings_recorded {
            Some(count) => db.ring_count()? == count,
            None => false,
        };
        if evidence == RingEvidence::Record && !unchanged {
            let mut read = db.ring_history()?;
            let observed_rings = plan::observed_ring_versions(fleet, observed);
            let missing: Vec<_> = observed_rings
                .iter()
                .filter(|r| read.reached_at(&r.product, &r.platform, &r.ring, &r.version).is_none())
                .map(|r| {
                    let at = r.since.filter(|t| *t <= now).unwrap_or(now);
                    tracing::warn!(product = %r.product, platform = %r.platform, ring = %r.ring, version = %r.version, since = %at, "no record of when this ring got this version; taking the platform's time, or now");
                    (r.product.as_str(), r.platform.as_str(), r.ring.as_str(), r.version.as_str(), at)
                })
                .collect();
            db.rings_reached(&missing)?;
            for (product, platform, ring, version, at) in &missing {
                read.note(product, platform, ring, version, *at);
            }
            if let Some(m) = memo {
                m.mark_rings_recorded(read.count());
            }
            records = Some(read);
        }
        // The gate asks only for changes: from the read above, or else one query each.
        let history = |product: &str, platform: &str, ring: &str, version: &str| match &records {
            Some(r) => r.reached_at(product, platform, ring, version),
            None => db.reached_at(product, platform, ring, version).ok().flatten(),
        };
        plan::gate(&mut plan, fleet, &history, now);
        // What `patchops suspend` holds back waits, whatever the gate said.
        let suspended = db.suspensions()?;
        if !suspended.is_empty() {
            let held = |product: &str, platform: &str| {
                suspended.iter().find(|s| s.scope.covers(product, platform)).map(|s| {
                    let why = if s.reason.is_empty() { String::new() } else { format!(" ({})", s.reason) };
                    format!(
                        "{} is suspended since {}{why}; `patchops resume` lets it change again",
                        s.scope,
                        s.since.format("%Y-%m-%d %H:%M UTC")
                    )
                })
            };
            plan::hold(&mut plan, "Suspended", &held);
        }
    }
    let mass_retire = super::guard::mass_retire(&plan, observed, how.max_retire_share);
    tracing::debug!(elapsed = ?t.elapsed(), rss_mib = rss_mib(), "policies evaluated, rollout gated");
    let requeue_at = plan.actions.iter().filter_map(|a| a.waiting.as_ref()?.until).min();
    Ok(Decision { plan, policies, mass_retire, requeue_at })
}
