//! Emulated platforms: the parts of each service patchops talks to, with the same URLs, payloads,
//! status codes and validation, served over HTTP on loopback.
//!
//! `endpoint: embedded` starts one emulator per Platform inside the patchops process, on
//! `127.0.0.1` and a free port, with its state persisted under `<state>/emulate/<platform>.json`
//! so that it survives between runs. The platform clients talking to it are the real clients:
//! nothing in them knows they talk to an emulator. `patchops emulate <type>` serves one on its
//! own, for tests and experiments.

pub mod configmgr;
pub mod intune;
pub mod wsus;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::model::{ObjectName, PlatformType};
use crate::state::StateDir;

/// Behaviour an emulator can be asked to show, for testing clients.
#[derive(Debug, Clone, Default)]
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
    /// How an emulated WSUS server is set up (signing certificate, groups, AllSigned).
    pub wsus: wsus::WsusServerOptions,
    /// How an emulated ConfigMgr site is set up (site id, share, users and roles).
    pub configmgr: configmgr::SiteOptions,
}

/// Where an emulator keeps its state.
pub fn state_file(state: &StateDir, platform: &ObjectName) -> PathBuf {
    state.path().join("emulate").join(format!("{platform}.json"))
}

type Running = HashMap<PathBuf, url::Url>;

fn running() -> &'static Mutex<Running> {
    static RUNNING: OnceLock<Mutex<Running>> = OnceLock::new();
    RUNNING.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The base URL of the embedded emulator for a Platform, starting it (with `options`) on first
/// use in this process. It runs on the current tokio runtime until the process ends.
pub async fn embedded(
    platform: &ObjectName,
    ty: PlatformType,
    state: &StateDir,
    options: EmulatorOptions,
) -> Result<url::Url, String> {
    let file = state_file(state, platform);
    if let Some(url) = running().lock().map_err(|_| "emulator registry poisoned".to_string())?.get(&file) {
        return Ok(url.clone());
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.map_err(|e| e.to_string())?;
    let url = serve(listener, ty, &file, options)?;
    running().lock().map_err(|_| "emulator registry poisoned".to_string())?.insert(file, url.clone());
    Ok(url)
}

/// Serves an emulator of `ty` on `listener` in a background task; returns its base URL.
pub fn serve(
    listener: tokio::net::TcpListener,
    ty: PlatformType,
    state_file: &Path,
    options: EmulatorOptions,
) -> Result<url::Url, String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let url = url::Url::parse(&format!("http://{addr}/")).map_err(|e| e.to_string())?;
    let router = match ty {
        PlatformType::Intune => intune::router(Arc::new(intune::Emulator::open(state_file, options)?)),
        PlatformType::Wsus => {
            let server = Arc::new(wsus::Emulator::open(state_file, options.wsus)?);
            wsus::set_base(&server, &url);
            wsus::router(server)
        }
        PlatformType::Configmgr => {
            configmgr::router(Arc::new(configmgr::Emulator::open(state_file, options.configmgr)?))
        }
    };
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "emulator stopped");
        }
    });
    Ok(url)
}
