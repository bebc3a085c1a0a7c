//! The harness: the embedded emulators behind `endpoint: embedded` Platforms, owned by the
//! [`crate::context::Context`].
//!
//! For each embedded Platform the harness sets an emulator up as the fleet says the real
//! service is (the Intune tenant registers the fleet's app credential; the WSUS server gets the
//! signing certificate, the ring groups and PowerShell's policy; the ConfigMgr site gets the
//! account and roles, the collections and a content share under the state directory), starts
//! it on loopback on first use and hands the client a base URL ([`EmbeddedEndpoint`]). When a
//! later cycle finds the fleet's setup changed (a new ring group, another certificate), the
//! harness stops that emulator — requests in flight finish — and starts it again with the new
//! setup on the same port, on the same state file. Dropping the harness stops them all.
//!
//! This is the only module that joins [`crate::platform`] (real clients) and
//! [`crate::emulate`] (the emulated services): `platform/` imports nothing from `emulate/`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::clock::SharedClock;
use crate::emulate::{self, EmulatorOptions};
use crate::model::{Endpoint, ExecutionPolicy, Fleet, ObjectName, Platform, PlatformType, SecretRef, Secrets};
use crate::platform::{self, configmgr::Share, EmbeddedEndpoint, PlatformError};
use crate::state::StateDir;

/// How long a stopping emulator may take to finish its requests before it is aborted.
const STOP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// The embedded emulators of one context.
#[derive(Debug, Default)]
pub struct Harness {
    running: tokio::sync::Mutex<BTreeMap<PathBuf, Running>>,
    /// What emulators seeded from a recording take from it instead of the fleet's defaults.
    recordings: BTreeMap<ObjectName, Recording>,
}

/// What an emulator seeded from a recorded inventory (`plan --emulate`) keeps of the real
/// platform, beside the objects in its state file: the directory's groups the fleet names
/// (Intune) and the site's identity (ConfigMgr), so that the ids in the recorded objects are
/// the emulator's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recording {
    /// Display name → object id of the groups the recording resolved (Intune).
    pub groups: BTreeMap<String, String>,
    /// The site's `ThisSiteID` (ConfigMgr).
    pub site_id: Option<String>,
}

#[derive(Debug)]
struct Running {
    endpoint: EmbeddedEndpoint,
    options: EmulatorOptions,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Asks the emulator to stop and waits (bounded) for it.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(STOP_DEADLINE, &mut self.task).await.is_err() {
            self.task.abort();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Harness {
    /// A harness with nothing running.
    pub fn new() -> Harness {
        Harness::default()
    }

    /// A harness whose emulators of the platforms in `recordings` are set up as the recorded
    /// platforms are (their state files are seeded by the caller).
    pub fn for_recordings(recordings: BTreeMap<ObjectName, Recording>) -> Harness {
        Harness { recordings, ..Harness::default() }
    }

    /// Where the embedded emulator of `platform` answers: started on first use, restarted with
    /// the new setup when the fleet changed it, reused otherwise.
    pub async fn endpoint(
        &self,
        fleet: &Fleet,
        platform: &Platform,
        state: &StateDir,
        secrets: &Secrets,
        clock: &SharedClock,
    ) -> Result<EmbeddedEndpoint, PlatformError> {
        let name = &platform.metadata.name;
        let unavailable = |reason: String| PlatformError::Unavailable { platform: name.clone(), cause: reason.into() };
        let file = emulate::state_file(state, name);
        let (options, share) = setup(fleet, platform, state, secrets, clock, self.recordings.get(name))?;
        let mut running = self.running.lock().await;
        let mut port = 0;
        if let Some(r) = running.get(&file) {
            if r.options == options && !r.task.is_finished() {
                return Ok(r.endpoint.clone());
            }
            port = r.endpoint.base.port().unwrap_or(0);
            tracing::info!(platform = %name, "the fleet changed the embedded platform's setup; restarting its emulator");
        }
        if let Some(old) = running.remove(&file) {
            old.stop().await;
        }
        // The same port where it can be had (clients of this cycle may hold the URL), else any.
        let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => l,
            Err(_) if port != 0 => tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .map_err(|e| unavailable(format!("cannot start the emulator: {e}")))?,
            Err(e) => return Err(unavailable(format!("cannot start the emulator: {e}"))),
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (base, task) = emulate::serve_until(listener, platform.spec.platform_type, &file, options.clone(), async {
            let _ = stop_rx.await;
        })
        .map_err(|e| unavailable(format!("cannot start the emulator: {e}")))?;
        tracing::info!(platform = %name, url = %base, "embedded emulator listening");
        let endpoint = EmbeddedEndpoint { base, share };
        running.insert(file, Running { endpoint: endpoint.clone(), options, stop: Some(stop_tx), task });
        Ok(endpoint)
    }

    /// Stops every emulator (requests in flight finish within a deadline).
    pub async fn stop_all(&self) {
        let all = std::mem::take(&mut *self.running.lock().await);
        for (_, r) in all {
            r.stop().await;
        }
    }

    /// How many emulators run.
    pub async fn running(&self) -> usize {
        self.running.lock().await.len()
    }
}

/// The emulator setup the fleet asks for, and (ConfigMgr) the site's content share.
fn setup(
    fleet: &Fleet,
    platform: &Platform,
    state: &StateDir,
    secrets: &Secrets,
    clock: &SharedClock,
    recording: Option<&Recording>,
) -> Result<(EmulatorOptions, Option<Share>), PlatformError> {
    let name = &platform.metadata.name;
    let spec = &platform.spec;
    let unavailable = |reason: String| PlatformError::Unavailable { platform: name.clone(), cause: reason.into() };
    let mut options = EmulatorOptions { clock: clock.clone(), ..EmulatorOptions::default() };
    let mut share = None;
    match spec.platform_type {
        PlatformType::Intune => {
            // The emulated tenant throttles writes as Graph documents it does.
            options.intune_write_limits = Some(emulate::intune::WriteLimits::DOCUMENTED);
            // Its directory holds the groups the fleet's rings use.
            options.intune_groups = tenant_groups(fleet, name, recording.map(|r| &r.groups));
            // The emulated tenant registers the fleet's app credential, so that the embedded
            // platform exercises the same sign-in as the real one.
            if let Some(s) = platform::intune_sign_in(platform, secrets)? {
                options.apps.push(emulate::intune::RegisteredApp {
                    client_id: s.client_id.clone(),
                    certificate_der: s.certificate_der.clone(),
                    secret: s.secret.clone(),
                    permissions: emulate::intune::default_permissions(),
                });
            }
        }
        PlatformType::Wsus => {
            // The emulated server is set up as the fleet says the real one is: its WSUS signing
            // certificate, the ring groups as computer target groups, and PowerShell's policy
            // with the script-signing certificate trusted.
            if let Some(reference) = &spec.trust.signing_certificate {
                let path = match reference {
                    SecretRef::File(path) => secrets.path_of(path),
                    // The emulated server outlives this call: it keeps an env-held certificate
                    // and key in a private file (0600) under the state directory.
                    SecretRef::Env(_) => {
                        let text = secrets
                            .read(reference)
                            .map_err(|e| unavailable(format!("trust.signingCertificate: {e}")))?;
                        let kept = emulate::state_file(state, name).with_extension("signing.pem");
                        if let Some(dir) = kept.parent() {
                            std::fs::create_dir_all(dir).map_err(|e| unavailable(format!("{}: {e}", dir.display())))?;
                        }
                        crate::model::write_private(&kept, text.as_bytes()).map_err(|e| {
                            unavailable(format!("cannot keep trust.signingCertificate for the emulator: {e}"))
                        })?;
                        kept
                    }
                };
                options.wsus.signing_pem = Some(path);
            }
            options.wsus.groups = ring_groups(fleet, name);
            options.wsus.all_signed = spec.trust.execution_policy == ExecutionPolicy::AllSigned;
            if let Some(reference) = &spec.trust.script_signing_certificate {
                options.wsus.trusted_script_signers = crate::authenticode::certificates_at(reference, secrets)
                    .map_err(|e| unavailable(format!("trust.scriptSigningCertificate: {e}")))?
                    .into_iter()
                    .take(1)
                    .collect();
            }
        }
        PlatformType::Configmgr => {
            // The emulated site: the fleet's account with the roles a publisher needs, the ring
            // collections, a content share under the state directory, and the clients'
            // execution policy with the script-signing certificate trusted.
            let auth = spec.auth.as_ref();
            let password = match auth.and_then(|a| a.password.as_ref()) {
                Some(reference) => secrets
                    .read(reference)
                    .map_err(|e| unavailable(format!("cannot read the password ({reference}): {e}")))?,
                None => String::new(),
            };
            let file = emulate::state_file(state, name);
            let site_share = Share { unc: share_unc(platform), local: file.with_extension("share") };
            let site = &mut options.configmgr;
            site.site_id = match recording.and_then(|r| r.site_id.clone()) {
                Some(id) => id.trim_matches(['{', '}']).to_string(),
                None => uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("patchops:configmgr:{name}").as_bytes())
                    .to_string(),
            };
            site.share_unc = site_share.unc.clone();
            site.share_local = site_share.local.clone();
            site.collections = ring_groups(fleet, name);
            site.admins.push(emulate::configmgr::Admin {
                logon: auth.and_then(|a| a.username.clone()).unwrap_or_default(),
                password,
                roles: vec!["Application Author".into(), "Application Deployment Manager".into()],
            });
            if spec.trust.execution_policy == ExecutionPolicy::AllSigned {
                if let Some(reference) = &spec.trust.script_signing_certificate {
                    let certs = crate::authenticode::certificates_at(reference, secrets)
                        .map_err(|e| unavailable(format!("trust.scriptSigningCertificate: {e}")))?;
                    site.all_signed_by = Some(certs.into_iter().take(1).collect());
                }
            }
            share = Some(site_share);
        }
    }
    Ok((options, share))
}

/// The computer target groups (WSUS) or collections (ConfigMgr) the fleet's rings use on a
/// platform.
fn ring_groups(fleet: &Fleet, platform: &ObjectName) -> Vec<String> {
    let mut groups: Vec<String> = fleet
        .ring_groups()
        .filter(|g| g.platform.as_str() == platform.as_str())
        .filter_map(|g| g.group.id().map(str::to_string))
        .collect();
    groups.sort();
    groups.dedup();
    groups
}

/// The Entra ID groups of the emulated tenant: each group the fleet's rings use on `platform`
/// — a named one under the id a recording resolved for it (`recorded`), else under an id of the
/// tenant's own (found only through Graph), one given by id under that id.
fn tenant_groups(
    fleet: &Fleet,
    platform: &ObjectName,
    recorded: Option<&BTreeMap<String, String>>,
) -> Vec<emulate::intune::Group> {
    let mut groups: Vec<emulate::intune::Group> = fleet
        .ring_groups()
        .filter(|g| g.platform.as_str() == platform.as_str())
        .map(|g| match (g.group.name(), g.group.id()) {
            (Some(name), _) => match recorded.and_then(|r| r.get(name)) {
                Some(id) => emulate::intune::Group { id: id.clone(), display_name: name.to_string() },
                None => emulate::intune::Group::named(platform.as_str(), name),
            },
            (None, id) => {
                let id = id.unwrap_or_default().to_string();
                emulate::intune::Group { display_name: format!("Group {id}"), id }
            }
        })
        .collect();
    groups.sort_by(|a, b| a.id.cmp(&b.id));
    groups.dedup_by(|a, b| a.id == b.id);
    groups
}

/// Seeds the state file of `platform`'s emulator under `state` with a recording's documents
/// (what `patchops inventory record` kept of the real platform); `groups` are the ids the
/// recording resolved for the fleet's named groups. Returns how many objects the emulator
/// holds, and what [`Harness::for_recordings`] needs to set it up as the recorded platform.
pub fn seed(
    state: &StateDir,
    platform: &Platform,
    documents: &serde_json::Value,
    groups: &BTreeMap<String, String>,
) -> Result<(usize, Recording), String> {
    let file = emulate::state_file(state, &platform.metadata.name);
    let mut recording = Recording { groups: groups.clone(), site_id: None };
    let count = match platform.spec.platform_type {
        PlatformType::Intune => emulate::intune::seed(&file, documents)?,
        PlatformType::Wsus => emulate::wsus::seed(&file, documents)?,
        PlatformType::Configmgr => {
            let seeded =
                emulate::configmgr::seed(&file, documents, &share_unc(platform), &file.with_extension("share"))?;
            recording.site_id = seeded.site_id;
            seeded.applications
        }
    };
    Ok((count, recording))
}

/// The content share of an embedded site, as the site reads it: the fleet's
/// `configmgr.contentShare.unc` (a recorded site's applications refer to it), else one of the
/// emulated site's own.
fn share_unc(platform: &Platform) -> String {
    let name = &platform.metadata.name;
    platform
        .spec
        .configmgr
        .as_ref()
        .and_then(|c| c.content_share.as_ref())
        .map(|c| c.unc.clone())
        .unwrap_or_else(|| format!("\\\\{name}\\patchops$"))
}

/// Whether a Platform is reached through the harness.
pub fn is_embedded(platform: &Platform) -> bool {
    platform.endpoint == Endpoint::Embedded
}
