//! Emulated platforms: the parts of each service patchops talks to, with the same URLs, payloads,
//! status codes and validation, served over HTTP on loopback.
//!
//! `endpoint: embedded` starts one emulator per Platform inside the patchops process, on
//! `127.0.0.1` and a free port, with its state persisted under `<state>/emulate/<platform>.json`
//! so that it survives between runs; the [`crate::harness`] decides when (this module only
//! serves). The platform clients talking to it are the real clients:
//! nothing in them knows they talk to an emulator. `patchops emulate <type>` serves one on its
//! own, for tests and experiments.

pub mod configmgr;
pub mod intune;
pub mod wsus;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::model::{ObjectName, PlatformType};
use crate::state::StateDir;

/// Behaviour an emulator can be asked to show, for testing clients.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmulatorOptions {
    /// Answer every n-th request with `429 Too Many Requests` and `Retry-After: 1`.
    pub throttle_every: Option<u32>,
    /// Let an upload SAS expire after this many blocks (as a long upload outlives its SAS).
    pub sas_expires_after_blocks: Option<u32>,
    /// Fail every commit (`commitFileFailed`), to test clean-up.
    pub fail_commits: bool,
    /// App registrations of the emulated tenant (Intune). With none, Graph needs no token.
    pub apps: Vec<intune::RegisteredApp>,
    /// Lifetime of the access tokens issued (default 3599 s).
    pub token_lifetime: Option<std::time::Duration>,
    /// Refuse client secrets even where an app registration has one.
    pub refuse_secrets: bool,
    /// Graph's write limits, enforced with `429 Too Many Requests` and `Retry-After` (Intune).
    /// None: unlimited.
    pub intune_write_limits: Option<intune::WriteLimits>,
    /// The groups of the emulated tenant's directory (Intune), added to its state when it
    /// opens. A tenant with groups refuses assignments to any other group.
    pub intune_groups: Vec<intune::Group>,
    /// How an emulated WSUS server is set up (signing certificate, groups, AllSigned).
    pub wsus: wsus::WsusServerOptions,
    /// How an emulated ConfigMgr site is set up (site id, share, users and roles).
    pub configmgr: configmgr::SiteOptions,
    /// The emulated service's clock (creation times, approvals, SAS expiry); [`serve`] hands
    /// it to the WSUS server and ConfigMgr site too. The system clock by default.
    pub clock: crate::clock::SharedClock,
}

/// Where an emulator keeps its state.
pub fn state_file(state: &StateDir, platform: &ObjectName) -> PathBuf {
    state.path().join("emulate").join(format!("{platform}.json"))
}

/// Serves an emulator of `ty` on `listener` in a background task until the process ends;
/// returns its base URL.
pub fn serve(
    listener: tokio::net::TcpListener,
    ty: PlatformType,
    state_file: &Path,
    options: EmulatorOptions,
) -> Result<url::Url, String> {
    serve_until(listener, ty, state_file, options, std::future::pending()).map(|(url, _)| url)
}

/// Serves an emulator of `ty` on `listener` in a background task until `stop` completes, then
/// finishes the requests in flight and ends the task; returns its base URL and the task.
pub fn serve_until(
    listener: tokio::net::TcpListener,
    ty: PlatformType,
    state_file: &Path,
    options: EmulatorOptions,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(url::Url, tokio::task::JoinHandle<()>), String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let url = url::Url::parse(&format!("http://{addr}/")).map_err(|e| e.to_string())?;
    let router = match ty {
        PlatformType::Intune => intune::router(Arc::new(intune::Emulator::open(state_file, options)?)),
        PlatformType::Wsus => {
            let server = Arc::new(wsus::Emulator::open(
                state_file,
                wsus::WsusServerOptions { clock: options.clock.clone(), ..options.wsus },
            )?);
            wsus::set_base(&server, &url);
            wsus::router(server)
        }
        PlatformType::Configmgr => {
            let site = configmgr::SiteOptions { clock: options.clock.clone(), ..options.configmgr };
            configmgr::router(Arc::new(configmgr::Emulator::open(state_file, site)?))
        }
    };
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(stop).await {
            tracing::error!(error = %e, "emulator stopped");
        }
    });
    Ok((url, task))
}

/// Writes a seeded emulator's store to its state file (creating its directory).
fn write_seeded(file: &Path, store: &impl serde::Serialize) -> Result<(), String> {
    let bytes = serde_json::to_vec_pretty(store).map_err(|e| e.to_string())?;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    crate::state::write_atomic(file, &bytes).map_err(|e| format!("{}: {e}", file.display()))
}
