//! `patchops plan --emulate`: the head's plan applied to emulators seeded from the recorded
//! inventory — a dry run that Microsoft's services do not offer.
//!
//! Each Platform of the fleet gets an embedded emulator whose state is what the recording
//! holds (the platform's own documents: Graph's mobileApps, the WSUS server's SDPs and
//! approvals, the site's SDMPackageXML and deployments), set up as the fleet says the real
//! platform is — except its credentials: sign-in and certificates are throwaway ones made for
//! the run (a certificate the emulators trust, a password they accept), so a dry run never
//! needs a secret; `patchops doctor` checks the real ones. The emulators are observed through
//! the real clients first: where what they hold differs from the recording, the dry run says
//! which objects (it would not be a faithful one). Then the plan's permitted actions run
//! through the apply engine against them, with a copy of the state database (ring history,
//! catalogs) in a temporary directory (installers are fetched into the state directory's
//! content cache, verified as apply verifies them): every check an emulator makes — Graph's metadata and
//! content commit, the SDP and SDMPackageXML checks, AllSigned script signatures — judges the
//! exact requests apply would send. Nothing is recorded in the state directory and nothing
//! reaches a platform.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::pipeline;
use super::{OpsError, Planned};
use crate::apply::{ActionReport, Outcome};
use crate::context::Context;
use crate::harness::Harness;
use crate::model::{Endpoint, ObjectName, PlatformType, SecretRef};
use crate::plan::dry_run::{DryRun, DryRunAction, DryRunOutcome, DryRunPlatform, DryRunSummary};
use crate::platform::inventory::InventoryPlatform;
use crate::platform::PlatformClient as _;
use crate::policy::{Policies, PolicyContext};
use crate::state::StateDir;

/// What the dry run found.
#[derive(Debug)]
pub struct Emulated {
    /// Each platform's emulator, as seeded.
    pub platforms: Vec<EmulatedPlatform>,
    /// Every permitted action of the plan, and how the emulators took it.
    pub reports: Vec<ActionReport>,
    /// Actions the fleet's policies refused (not run).
    pub denied: usize,
}

impl Emulated {
    /// The dry run as the plan shows it; `recording` is the recording's directory as given.
    pub fn report(&self, recording: &str) -> DryRun {
        let actions: Vec<DryRunAction> = self
            .reports
            .iter()
            .map(|r| {
                let a = &r.action;
                let (outcome, message) = match &r.outcome {
                    Outcome::Succeeded { .. } => (DryRunOutcome::Succeeded, None),
                    Outcome::Failed(why) => (DryRunOutcome::Refused, Some(why.clone())),
                    Outcome::Skipped(why) => (DryRunOutcome::Skipped, Some(why.clone())),
                };
                DryRunAction {
                    action: a.action.as_str().to_string(),
                    product: a.product.to_string(),
                    platform: a.platform.to_string(),
                    ring: a.ring.as_ref().map(ToString::to_string),
                    version: a.version.as_ref().map(ToString::to_string),
                    outcome,
                    message,
                }
            })
            .collect();
        let succeeded = actions.iter().filter(|a| a.outcome == DryRunOutcome::Succeeded).count();
        let summary = DryRunSummary {
            actions: actions.len(),
            succeeded,
            refused: actions.len() - succeeded,
            denied: self.denied,
            differ: self.platforms.iter().map(|p| p.differs.len()).sum(),
        };
        DryRun {
            recording: recording.to_string(),
            platforms: self
                .platforms
                .iter()
                .map(|p| DryRunPlatform {
                    name: p.name.to_string(),
                    platform_type: p.platform_type,
                    seeded: p.seeded,
                    differs: p.differs.clone(),
                })
                .collect(),
            actions,
            summary,
        }
    }
}

/// One platform's emulator.
#[derive(Debug, Clone)]
pub struct EmulatedPlatform {
    /// The Platform.
    pub name: ObjectName,
    /// Its type.
    pub platform_type: PlatformType,
    /// How many objects the emulator was seeded with.
    pub seeded: usize,
    /// Objects (platform ids) that the emulator, observed through the real client, shows
    /// differently from the recording: the dry run of actions on them may not be faithful.
    pub differs: Vec<String>,
}

fn failed(message: impl Into<String>) -> OpsError {
    OpsError::Emulate(message.into())
}

/// Applies `planned` (made by `ctx` from a recorded inventory) to emulators seeded from that
/// recording, changing nothing else.
pub async fn emulate(ctx: &Context, planned: &Planned) -> Result<Emulated, OpsError> {
    let recording = ctx
        .recorded_inventory()
        .ok_or_else(|| {
            failed("it seeds its emulators from a recorded inventory: give --inventory DIR (made by `patchops inventory record --out DIR`)")
        })?
        .to_path_buf();
    let fleet = &planned.loaded.fleet;
    let work = tempfile::Builder::new()
        .prefix("patchops-emulate-")
        .tempdir()
        .map_err(|e| failed(format!("cannot make a working directory: {e}")))?;
    let state = StateDir::new(work.path().join("state")).with_clock(ctx.clock().clone());
    std::fs::create_dir_all(state.path()).map_err(|e| failed(format!("{}: {e}", state.path().display())))?;
    // The ring history, catalog serials and suspensions the plan was gated with: a copy.
    ctx.state().db()?.copy_into(state.path())?;

    // Throwaway credentials: one code-signing certificate (and key) for everything signed, a
    // password the emulated site accepts.
    let now = ctx.now();
    let pem = pipeline::blocking(move || {
        crate::authenticode::throwaway::code_signing_pem("patchops plan --emulate", now).map_err(OpsError::Emulate)
    })
    .await?;
    let signing = work.path().join("throwaway-signing.pem");
    let password = work.path().join("throwaway-password");
    let mut secret = [0u8; 18];
    getrandom::fill(&mut secret).map_err(|e| failed(format!("no randomness: {e}")))?;
    for (path, bytes) in [(&signing, pem.into_bytes()), (&password, hex::encode(secret).into_bytes())] {
        crate::model::write_private(path, &bytes).map_err(|e| failed(format!("{}: {e}", path.display())))?;
    }
    let reference = |p: &std::path::Path| SecretRef::File(p.to_string_lossy().into_owned());
    let mut dry = (**fleet).clone();
    for p in dry.platforms.values_mut() {
        p.endpoint = Endpoint::Embedded;
        p.spec.endpoint = "embedded".into();
        if let Some(auth) = &mut p.spec.auth {
            if auth.certificate.is_some() || auth.client_secret.is_some() {
                auth.certificate = Some(reference(&signing));
                auth.client_secret = None;
            }
            if auth.password.is_some() {
                auth.password = Some(reference(&password));
            }
            auth.ssh_key = None;
        }
        let trust = &mut p.spec.trust;
        if trust.signing_certificate.is_some() {
            trust.signing_certificate = Some(reference(&signing));
        }
        if trust.script_signing_certificate.is_some() {
            trust.script_signing_certificate = Some(reference(&signing));
        }
        trust.timestamp_url = None;
    }

    // Seed each emulator with what the recording holds.
    let mut recordings = BTreeMap::new();
    let mut recorded = BTreeMap::new();
    let mut platforms = Vec::new();
    for (name, p) in &dry.platforms {
        let ty = p.spec.platform_type;
        let (observed, documents) = InventoryPlatform::recorded(name.clone(), ty, &recording)
            .observe_documents()
            .await
            .map_err(|e| OpsError::Platforms(vec![e]))?;
        let docs = crate::platform::inventory::documents_path(&recording, name);
        if documents.is_null() {
            return Err(failed(format!(
                "{} is missing: the recording of {name} has no documents to seed an emulator with (it was made by an older patchops); record it again: patchops inventory record --platform {name} --out {}",
                docs.display(),
                recording.display()
            )));
        }
        let (seeded, r) = crate::harness::seed(&state, p, &documents, &observed.groups)
            .map_err(|e| failed(format!("seeding the emulator of {name} from {}: {e}", docs.display())))?;
        recordings.insert(name.clone(), r);
        recorded.insert(name.clone(), observed);
        platforms.push(EmulatedPlatform { name: name.clone(), platform_type: ty, seeded, differs: Vec::new() });
    }
    let mut emulated = Context::new(state.clone(), ctx.secrets().clone())
        .with_clock(ctx.clock().clone())
        .with_harness(Harness::for_recordings(recordings));
    if let Some(actor) = ctx.actor() {
        emulated = emulated.with_actor(actor.clone());
    }
    // Downloads go to the state directory's content cache, verified by SHA-256 as apply's are
    // (an apply after the dry run reuses them).
    let content = ctx.content();
    let result = run(&emulated, &dry, planned, &state, &recorded, &mut platforms, content).await;
    emulated.harness().stop_all().await;
    let (reports, denied) = result?;
    Ok(Emulated { platforms, reports, denied })
}

async fn run(
    ctx: &Context,
    dry: &crate::model::Fleet,
    planned: &Planned,
    state: &StateDir,
    recorded: &BTreeMap<ObjectName, crate::platform::Observed>,
    platforms: &mut [EmulatedPlatform],
    content: crate::content::ContentCache,
) -> Result<(Vec<ActionReport>, usize), OpsError> {
    let clients = pipeline::connect(ctx, dry).await?;
    // Observed through the real clients (which also learn what they revise from): the same as
    // the recording, object by object, or the dry run says where not.
    let observed = pipeline::observe(&clients, dry).await?;
    for p in platforms.iter_mut() {
        let (Some(want), Some(got)) = (recorded.get(&p.name), observed.get(&p.name)) else { continue };
        let (want, got) = (want.fingerprints().1, got.fingerprints().1);
        let mut ids: Vec<&String> = want.keys().chain(got.keys()).collect();
        ids.sort();
        ids.dedup();
        p.differs = ids.into_iter().filter(|id| want.get(*id) != got.get(*id)).cloned().collect();
    }
    // The head's plan, permitted by the fleet's own policies (as apply permits it).
    let (loaded, applicable) = (planned.loaded.clone(), planned.plan.applicable().cloned().collect::<Vec<_>>());
    let now = ctx.now();
    let (permitted, denied) = pipeline::blocking(move || {
        let mut policies = Policies::for_fleet(&loaded.fleet, &loaded.snapshot)?;
        let pctx = PolicyContext::new(&loaded.fleet, &loaded.catalogs, now);
        let mut permitted = Vec::new();
        let mut denied = 0;
        for a in applicable {
            match policies.permit(a, &pctx)? {
                Ok(p) => permitted.push(p),
                Err(_) => denied += 1,
            }
        }
        Ok((permitted, denied))
    })
    .await?;
    let engine = crate::apply::Engine {
        fleet: dry,
        snapshot: &planned.loaded.snapshot,
        catalogs: &planned.loaded.catalogs,
        observed: &observed,
        platforms: &clients,
        content,
        db: Arc::new(Mutex::new(state.db()?)),
        run: format!("emulate-{}", now.format("%Y%m%dT%H%M%SZ")),
        clock: ctx.clock().clone(),
        approval: "plan --emulate (a dry run on emulators)".into(),
        actor: ctx.actor().cloned(),
    };
    Ok((engine.run(permitted).await, denied))
}
