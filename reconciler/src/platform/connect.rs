//! From a fleet Platform to a client: how each endpoint is reached and signed in to. Secrets
//! are read here, by reference, and never shown. `endpoint: embedded` Platforms are reached at
//! the base URL the [`crate::harness`] hands over: nothing here starts or knows an emulator.

use super::{configmgr, intune, inventory, wsus, PlatformClient, PlatformError, ScriptSigning};
use crate::model::{Endpoint, PlatformType};

/// What every client is built with: where secrets come from, the clock, the state directory
/// (recorded inventories).
#[derive(Debug, Clone, Copy)]
pub struct ClientEnv<'a> {
    /// Where referenced secrets are read from.
    pub secrets: &'a crate::model::Secrets,
    /// The time deadlines, creation times and certificate checks use.
    pub clock: &'a crate::clock::SharedClock,
    /// The state directory.
    pub state: &'a crate::state::StateDir,
    /// How transient request failures are retried.
    pub retry: super::retry::RetryPolicy,
    /// Where each request's outcome is counted.
    pub requests: &'a std::sync::Arc<super::retry::RequestStats>,
    /// The process's write budgets, one per platform.
    pub budgets: &'a super::budget::Budgets,
}

/// Where an `endpoint: embedded` Platform's service answers: a base URL on loopback (and, for
/// ConfigMgr, the content share the emulated site reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedEndpoint {
    /// The service's base URL.
    pub base: url::Url,
    /// The emulated site's content share (ConfigMgr).
    pub share: Option<configmgr::Share>,
}

fn no_harness(platform: &crate::model::Platform) -> PlatformError {
    PlatformError::Unavailable {
        platform: platform.metadata.name.clone(),
        cause: "an embedded platform is reached through the harness, which gave no address".into(),
    }
}

/// Builds the client for a fleet Platform; `embedded` is where an `endpoint: embedded` one
/// answers (from [`crate::harness::Harness::endpoint`]).
pub fn connect(
    platform: &crate::model::Platform,
    env: ClientEnv<'_>,
    embedded: Option<&EmbeddedEndpoint>,
) -> Result<Box<dyn PlatformClient>, PlatformError> {
    if platform.endpoint == Endpoint::Inventory {
        let name = platform.metadata.name.clone();
        return Ok(Box::new(inventory::InventoryPlatform::new(name, platform.spec.platform_type, env.state)));
    }
    Ok(match platform.spec.platform_type {
        PlatformType::Intune => connect_intune(platform, env, embedded)?,
        PlatformType::Wsus => Box::new(connect_wsus(platform, env, embedded)?),
        PlatformType::Configmgr => Box::new(connect_configmgr(platform, env, embedded)?),
    })
}

/// The Platform's write budget (`intune.writeBudget`, default 80 per 20 s), shared by every
/// client of the platform in this process.
fn intune_budget(platform: &crate::model::Platform, env: ClientEnv<'_>) -> std::sync::Arc<super::budget::WriteBudget> {
    let (requests, per) = match platform.spec.intune.as_ref().and_then(|i| i.write_budget.as_ref()) {
        Some(b) => (b.requests, b.per.0),
        None => (super::budget::INTUNE_WRITES, super::budget::INTUNE_WINDOW),
    };
    env.budgets.get(platform.metadata.name.as_str(), requests, per)
}

/// The Intune client: Graph at the endpoint URL with certificate (or secret) sign-in at the
/// configured authority, or the embedded tenant, which is its own authority.
fn connect_intune(
    platform: &crate::model::Platform,
    env: ClientEnv<'_>,
    embedded: Option<&EmbeddedEndpoint>,
) -> Result<Box<dyn PlatformClient>, PlatformError> {
    let name = platform.metadata.name.clone();
    let unavailable = |reason: String| PlatformError::Unavailable { platform: name.clone(), cause: reason.into() };
    let scripts = script_signing(platform, env)?;
    let sign_in = intune_sign_in(platform, env.secrets)?;
    let (graph, authority) = match (&platform.endpoint, embedded) {
        (Endpoint::Embedded, Some(e)) => (e.base.clone(), e.base.clone()),
        (Endpoint::Embedded, None) => return Err(no_harness(platform)),
        (Endpoint::Http(url), _) => {
            let text = platform
                .spec
                .auth
                .as_ref()
                .and_then(|a| a.authority.clone())
                .unwrap_or_else(|| "https://login.microsoftonline.com/".to_string());
            let authority = url::Url::parse(&text).map_err(|e| unavailable(format!("authority {text}: {e}")))?;
            (url.clone(), authority)
        }
        (other, _) => return Err(unavailable(format!("endpoint {other} is not a Graph URL"))),
    };
    let client = intune::IntuneClient::new(name.clone(), graph)?
        .with_script_signing(scripts)
        .with_clock(env.clock.clone())
        .with_retry(env.retry)
        .with_request_stats(env.requests.clone())
        .with_write_budget(intune_budget(platform, env));
    Ok(Box::new(match sign_in {
        Some(s) => client.with_auth(intune::auth::TokenSource::new(name, &authority, &s.tenant, s.credential)?),
        // The embedded tenant without app registrations needs no token; a real one does.
        None if platform.endpoint == Endpoint::Embedded => client,
        None => {
            return Err(unavailable(
                "signing in to Graph needs auth.certificate (recommended) or auth.clientSecret".into(),
            ))
        }
    }))
}

/// How a Platform's generated scripts are signed: with `trust.scriptSigningCertificate` when
/// given (checked now: fit for code signing, its key present; timestamped by
/// `trust.timestampUrl` when that is set), refused
/// when the endpoints run AllSigned without one, unsigned otherwise.
fn script_signing(platform: &crate::model::Platform, env: ClientEnv<'_>) -> Result<ScriptSigning, PlatformError> {
    let trust = &platform.spec.trust;
    match &trust.script_signing_certificate {
        Some(reference) => crate::authenticode::CodeSigner::new(reference, env.secrets, env.clock.now())
            .and_then(|signer| match trust.timestamp_url.as_deref().map(url::Url::parse) {
                None => Ok(signer),
                Some(Ok(url)) => signer.with_timestamps(&url),
                Some(Err(e)) => Err(crate::authenticode::SignError::Failed {
                    what: "trust.timestampUrl".into(),
                    cause: crate::vocab::because("it is not a URL", e),
                }),
            })
            .map(ScriptSigning::Signed)
            .map_err(|e| PlatformError::Unavailable {
                platform: platform.metadata.name.clone(),
                cause: crate::vocab::because("trust.scriptSigningCertificate", e),
            }),
        None if trust.execution_policy == crate::model::ExecutionPolicy::AllSigned => Ok(ScriptSigning::Required),
        None => Ok(ScriptSigning::Unsigned),
    }
}

/// How an Intune Platform signs in, read from what its `auth` references.
pub struct IntuneSignIn {
    /// The credential the token source presents.
    pub credential: intune::auth::Credential,
    /// The app registration's client id.
    pub client_id: String,
    /// The tenant.
    pub tenant: String,
    /// The certificate's DER (empty for a secret), for the embedded tenant's registration.
    pub certificate_der: Vec<u8>,
    /// The secret, for the embedded tenant's registration; never shown.
    pub secret: Option<String>,
}

impl std::fmt::Debug for IntuneSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntuneSignIn").field("client_id", &self.client_id).finish_non_exhaustive()
    }
}

/// Reads an Intune Platform's credential: its certificate file (preferred) or its client secret.
/// `None` when `auth` names neither.
pub fn intune_sign_in(
    platform: &crate::model::Platform,
    secrets: &crate::model::Secrets,
) -> Result<Option<IntuneSignIn>, PlatformError> {
    let name = &platform.metadata.name;
    let Some(auth) = &platform.spec.auth else { return Ok(None) };
    let unavailable = |reason: String| PlatformError::Unavailable { platform: name.clone(), cause: reason.into() };
    let client_id = auth.client_id.clone().unwrap_or_default();
    let tenant = auth.tenant_id.clone().unwrap_or_default();
    if let Some(reference) = &auth.certificate {
        let crate::model::SecretRef::File(path) = reference else {
            return Err(unavailable(format!(
                "auth.certificate is {reference}; a certificate and its key are read from a file: use {{ file: PATH }}"
            )));
        };
        let pem = secrets.read_bytes(reference).map_err(|e| {
            unavailable(format!("cannot read the certificate file {path} (auth.certificate): {}", e.cause()))
        })?;
        let der = intune::auth::certificate_der(&pem)
            .map_err(|e| unavailable(format!("the certificate file {path}: {e}")))?;
        let credential = intune::auth::CertificateCredential::from_pem(&client_id, &pem)
            .map_err(|e| unavailable(format!("the certificate file {path}: {e}")))?
            .with_algorithm(auth.assertion_algorithm.unwrap_or_default());
        return Ok(Some(IntuneSignIn {
            credential: credential.into(),
            client_id,
            tenant,
            certificate_der: der,
            secret: None,
        }));
    }
    if let Some(reference) = &auth.client_secret {
        let secret = secrets
            .read(reference)
            .map_err(|e| unavailable(format!("cannot read the client secret ({reference}): {e}")))?;
        return Ok(Some(IntuneSignIn {
            credential: intune::auth::Credential::Secret { client_id: client_id.clone(), secret: secret.clone() },
            client_id,
            tenant,
            certificate_der: Vec::new(),
            secret: Some(secret),
        }));
    }
    Ok(None)
}

/// The WSUS client: a request runner at an http(s) URL (the embedded server among them), or
/// SSH to the server.
pub fn connect_wsus(
    platform: &crate::model::Platform,
    env: ClientEnv<'_>,
    embedded: Option<&EmbeddedEndpoint>,
) -> Result<wsus::WsusClient, PlatformError> {
    let name = platform.metadata.name.clone();
    let spec = &platform.spec;
    let unavailable = |reason: String| PlatformError::Unavailable { platform: name.clone(), cause: reason.into() };
    let settings = spec.wsus.clone().unwrap_or_default();
    let transport: std::sync::Arc<dyn wsus::transport::Transport> = match (&platform.endpoint, embedded) {
        (Endpoint::Embedded, Some(e)) => {
            std::sync::Arc::new(wsus::transport::HttpTransport::new(name.clone(), e.base.clone())?)
        }
        (Endpoint::Embedded, None) => return Err(no_harness(platform)),
        (Endpoint::Http(url), _) => {
            std::sync::Arc::new(wsus::transport::HttpTransport::new(name.clone(), url.clone())?)
        }
        (Endpoint::Ssh(url), _) => {
            let auth = spec.auth.as_ref();
            let user = auth
                .and_then(|a| a.username.clone())
                .ok_or_else(|| unavailable("the SSH transport needs auth.username".into()))?;
            let host = url.host_str().ok_or_else(|| unavailable(format!("endpoint {url} has no host")))?;
            let key = match auth.and_then(|a| a.ssh_key.as_ref()) {
                Some(reference) => {
                    Some(env.secrets.file(reference).map_err(|e| unavailable(format!("auth.sshKey: {e}")))?)
                }
                None => None,
            };
            let transport = settings.transport.clone().unwrap_or_default();
            let shell = if transport.shell.is_empty() {
                let policy = match spec.trust.execution_policy {
                    crate::model::ExecutionPolicy::Bypass => "Bypass",
                    crate::model::ExecutionPolicy::RemoteSigned => "RemoteSigned",
                    crate::model::ExecutionPolicy::AllSigned => "AllSigned",
                };
                ["powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", policy, "-File"]
                    .map(String::from)
                    .to_vec()
            } else {
                transport.shell.clone()
            };
            std::sync::Arc::new(wsus::transport::SshTransport::new(
                name.clone(),
                &user,
                host,
                url.port(),
                key,
                transport,
                shell,
            ))
        }
        (Endpoint::Inventory, _) => return Err(unavailable("a recorded inventory is not a WSUS transport".into())),
    };
    Ok(wsus::WsusClient::new(name, transport)
        .with_script_signing(script_signing(platform, env)?)
        .with_retire(settings.retire)
        .with_clock(env.clock.clone())
        .with_retry(env.retry)
        .with_request_stats(env.requests.clone()))
}

/// The ConfigMgr client: the AdminService at the endpoint URL (or the embedded site) and the
/// content share it reads.
pub fn connect_configmgr(
    platform: &crate::model::Platform,
    env: ClientEnv<'_>,
    embedded: Option<&EmbeddedEndpoint>,
) -> Result<configmgr::ConfigMgrClient, PlatformError> {
    let name = platform.metadata.name.clone();
    let spec = &platform.spec;
    let unavailable = |reason: String| PlatformError::Unavailable { platform: name.clone(), cause: reason.into() };
    let auth = spec.auth.as_ref();
    let user = auth.and_then(|a| a.username.clone());
    let password = match auth.and_then(|a| a.password.as_ref()) {
        Some(reference) => Some(
            env.secrets
                .read(reference)
                .map_err(|e| unavailable(format!("cannot read the password ({reference}): {e}")))?,
        ),
        None => None,
    };
    let scripts = script_signing(platform, env)?;
    let (base, share) = match (&platform.endpoint, embedded) {
        (Endpoint::Embedded, Some(EmbeddedEndpoint { base, share: Some(share) })) => (base.clone(), share.clone()),
        (Endpoint::Embedded, _) => return Err(no_harness(platform)),
        (Endpoint::Http(url), _) => {
            let mut base = url.clone();
            // Accept the provider's URL with or without its /AdminService path.
            let path = base.path().trim_end_matches('/').trim_end_matches("/AdminService").to_string();
            base.set_path(&format!("{path}/"));
            let share = spec
                .configmgr
                .as_ref()
                .and_then(|c| c.content_share.as_ref())
                .ok_or_else(|| unavailable("a real site needs configmgr.contentShare".into()))?;
            (base, configmgr::Share { unc: share.unc.clone(), local: std::path::PathBuf::from(&share.local_path) })
        }
        (other, _) => return Err(unavailable(format!("endpoint {other} is not an AdminService URL"))),
    };
    let client = configmgr::ConfigMgrClient::new(name, base, share)?
        .with_script_signing(scripts)
        .with_clock(env.clock.clone())
        .with_retry(env.retry)
        .with_request_stats(env.requests.clone());
    Ok(match (user, password) {
        (Some(u), Some(p)) => client.with_account(u, p),
        _ => client,
    })
}
