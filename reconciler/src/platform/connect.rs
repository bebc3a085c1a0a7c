//! From a fleet Platform to a client: which emulator to start for `endpoint: embedded`, and
//! how each real endpoint is reached and signed in to. Secrets are read here, by reference,
//! and never shown.

use super::{configmgr, intune, inventory, wsus, Platform, PlatformError, ScriptSigning};
use crate::model::PlatformType;

/// Builds the client for a fleet Platform. `endpoint: embedded` platforms talk to an emulator
/// started on loopback for this process (see [`crate::emulate`]).
pub async fn connect(
    fleet: &crate::model::Fleet,
    platform: &crate::model::Platform,
    state: &crate::state::StateDir,
    secrets: &crate::model::Secrets,
) -> Result<Box<dyn Platform>, PlatformError> {
    if platform.spec.endpoint == "inventory" {
        let name = platform.metadata.name.clone();
        return Ok(Box::new(inventory::InventoryPlatform::new(name, platform.spec.platform_type, state)));
    }
    Ok(match platform.spec.platform_type {
        PlatformType::Intune if platform.spec.endpoint == "embedded" => {
            embedded_intune(platform, state, secrets).await?
        }
        PlatformType::Intune => real_intune(platform, secrets)?,
        PlatformType::Wsus => Box::new(connect_wsus(fleet, platform, state, secrets).await?),
        PlatformType::Configmgr => Box::new(connect_configmgr(fleet, platform, state, secrets).await?),
    })
}

/// The Intune client for the embedded Graph emulator. The emulated tenant registers the
/// fleet's app certificate, so that the embedded platform exercises the same certificate
/// sign-in as the real one.
async fn embedded_intune(
    platform: &crate::model::Platform,
    state: &crate::state::StateDir,
    secrets: &crate::model::Secrets,
) -> Result<Box<dyn Platform>, PlatformError> {
    let name = platform.metadata.name.clone();
    let credential = intune_sign_in(platform, secrets)?;
    let mut options = crate::emulate::EmulatorOptions::default();
    if let Some(s) = &credential {
        options.apps.push(crate::emulate::intune::RegisteredApp {
            client_id: s.client_id.clone(),
            certificate_der: s.certificate_der.clone(),
            secret: s.secret.clone(),
        });
    }
    let base = crate::emulate::embedded(&name, PlatformType::Intune, state, options).await.map_err(|e| {
        PlatformError::Unavailable { platform: name.clone(), reason: format!("cannot start the emulator: {e}") }
    })?;
    let client =
        intune::IntuneClient::new(name.clone(), base.clone())?.with_script_signing(script_signing(platform, secrets)?);
    Ok(Box::new(match credential {
        Some(s) => client.with_auth(intune::auth::TokenSource::new(name, &base, &s.tenant, s.credential)?),
        None => client,
    }))
}

/// The Intune client for a real Graph endpoint: certificate sign-in at the configured authority.
fn real_intune(
    platform: &crate::model::Platform,
    secrets: &crate::model::Secrets,
) -> Result<Box<dyn Platform>, PlatformError> {
    let name = platform.metadata.name.clone();
    let unavailable = |reason: String| PlatformError::Unavailable { platform: name.clone(), reason };
    let graph = url::Url::parse(&platform.spec.endpoint)
        .map_err(|e| unavailable(format!("endpoint {}: {e}", platform.spec.endpoint)))?;
    let authority_text = platform
        .spec
        .auth
        .as_ref()
        .and_then(|a| a.authority.clone())
        .unwrap_or_else(|| "https://login.microsoftonline.com/".to_string());
    let authority =
        url::Url::parse(&authority_text).map_err(|e| unavailable(format!("authority {authority_text}: {e}")))?;
    let Some(sign_in) = intune_sign_in(platform, secrets)? else {
        return Err(unavailable(
            "signing in to Graph needs auth.certificate (recommended) or auth.clientSecret".into(),
        ));
    };
    let tokens = intune::auth::TokenSource::new(name.clone(), &authority, &sign_in.tenant, sign_in.credential)?;
    let scripts = script_signing(platform, secrets)?;
    Ok(Box::new(intune::IntuneClient::new(name, graph)?.with_auth(tokens).with_script_signing(scripts)))
}

/// How a Platform's generated scripts are signed: with `trust.scriptSigningCertificate` when
/// given (checked now: fit for code signing, key present, osslsigncode available), refused
/// when the endpoints run AllSigned without one, unsigned otherwise.
fn script_signing(
    platform: &crate::model::Platform,
    secrets: &crate::model::Secrets,
) -> Result<ScriptSigning, PlatformError> {
    let trust = &platform.spec.trust;
    match &trust.script_signing_certificate {
        Some(reference) => crate::authenticode::CodeSigner::new(reference, secrets, chrono::Utc::now())
            .map(ScriptSigning::Signed)
            .map_err(|e| PlatformError::Unavailable {
                platform: platform.metadata.name.clone(),
                reason: format!("trust.scriptSigningCertificate: {e}"),
            }),
        None if trust.execution_policy == crate::model::ExecutionPolicy::AllSigned => Ok(ScriptSigning::Required),
        None => Ok(ScriptSigning::Unsigned),
    }
}

/// How an Intune Platform signs in, read from what its `auth` references.
struct IntuneSignIn {
    credential: intune::auth::Credential,
    client_id: String,
    tenant: String,
    /// The certificate's DER (empty for a secret), for the embedded tenant's registration.
    certificate_der: Vec<u8>,
    /// The secret, for the embedded tenant's registration; never shown.
    secret: Option<String>,
}

/// Reads an Intune Platform's credential: its certificate file (preferred) or its client secret.
/// `None` when `auth` names neither.
fn intune_sign_in(
    platform: &crate::model::Platform,
    secrets: &crate::model::Secrets,
) -> Result<Option<IntuneSignIn>, PlatformError> {
    let name = &platform.metadata.name;
    let Some(auth) = &platform.spec.auth else { return Ok(None) };
    let unavailable = |reason: String| PlatformError::Unavailable { platform: name.clone(), reason };
    let client_id = auth.client_id.clone().unwrap_or_default();
    let tenant = auth.tenant_id.clone().unwrap_or_default();
    if let Some(reference) = &auth.certificate {
        let crate::model::SecretRef::File(path) = reference else {
            return Err(unavailable(format!(
                "auth.certificate is {reference}; a certificate and its key are read from a file: use {{ file: PATH }}"
            )));
        };
        let pem = crate::bounded::read(std::path::Path::new(path), crate::bounded::MAX_SECRET_BYTES)
            .map_err(|e| unavailable(format!("cannot read the certificate file {path} (auth.certificate): {e}")))?;
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

/// The computer target groups (WSUS) or collections (ConfigMgr) the fleet's rings use on a
/// platform.
fn ring_groups(fleet: &crate::model::Fleet, platform: &crate::model::ObjectName) -> Vec<String> {
    let mut groups: Vec<String> = fleet
        .rollouts
        .values()
        .flat_map(|r| r.spec.rings.iter())
        .flat_map(|ring| ring.groups.iter())
        .filter(|g| g.platform.as_str() == platform.as_str())
        .map(|g| g.group.clone())
        .collect();
    groups.sort();
    groups.dedup();
    groups
}

/// The WSUS client: through the embedded emulator, an emulator by URL, or SSH to the server.
pub async fn connect_wsus(
    fleet: &crate::model::Fleet,
    platform: &crate::model::Platform,
    state: &crate::state::StateDir,
    secrets: &crate::model::Secrets,
) -> Result<wsus::WsusClient, PlatformError> {
    let name = platform.metadata.name.clone();
    let spec = &platform.spec;
    let unavailable = |reason: String| PlatformError::Unavailable { platform: name.clone(), reason };
    let settings = spec.wsus.clone().unwrap_or_default();
    let transport: std::sync::Arc<dyn wsus::transport::Transport> = if spec.endpoint == "embedded" {
        // The emulated server is set up as the fleet says the real one is: its WSUS signing
        // certificate, the ring groups as computer target groups, and PowerShell's policy with
        // the script-signing certificate trusted.
        let mut options = crate::emulate::EmulatorOptions::default();
        if let Some(reference) = &spec.trust.signing_certificate {
            let path = match reference {
                crate::model::SecretRef::File(path) => std::path::PathBuf::from(path),
                // The emulated server outlives this call: it keeps an env-held certificate and
                // key in a private file (0600) under the state directory.
                crate::model::SecretRef::Env(_) => {
                    let text =
                        secrets.read(reference).map_err(|e| unavailable(format!("trust.signingCertificate: {e}")))?;
                    let kept = crate::emulate::state_file(state, &name).with_extension("signing.pem");
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
        options.wsus.groups = ring_groups(fleet, &name);
        options.wsus.all_signed = spec.trust.execution_policy == crate::model::ExecutionPolicy::AllSigned;
        if let Some(reference) = &spec.trust.script_signing_certificate {
            options.wsus.trusted_script_signers = crate::authenticode::certificates_at(reference, secrets)
                .map_err(|e| unavailable(format!("trust.scriptSigningCertificate: {e}")))?
                .into_iter()
                .take(1)
                .collect();
        }
        let base = crate::emulate::embedded(&name, PlatformType::Wsus, state, options)
            .await
            .map_err(|e| unavailable(format!("cannot start the emulator: {e}")))?;
        std::sync::Arc::new(wsus::transport::HttpTransport::new(name.clone(), base)?)
    } else {
        let url =
            url::Url::parse(&spec.endpoint).map_err(|e| unavailable(format!("endpoint {}: {e}", spec.endpoint)))?;
        match url.scheme() {
            "http" | "https" => std::sync::Arc::new(wsus::transport::HttpTransport::new(name.clone(), url)?),
            "ssh" => {
                let auth = spec.auth.as_ref();
                let user = auth
                    .and_then(|a| a.username.clone())
                    .ok_or_else(|| unavailable("the SSH transport needs auth.username".into()))?;
                let host =
                    url.host_str().ok_or_else(|| unavailable(format!("endpoint {} has no host", spec.endpoint)))?;
                let key = match auth.and_then(|a| a.ssh_key.as_ref()) {
                    Some(reference) => {
                        Some(secrets.file(reference).map_err(|e| unavailable(format!("auth.sshKey: {e}")))?)
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
            other => {
                return Err(unavailable(format!(
                    "endpoint scheme {other}:// is not a WSUS transport (use ssh:// or embedded)"
                )))
            }
        }
    };
    Ok(wsus::WsusClient::new(name, transport)
        .with_script_signing(script_signing(platform, secrets)?)
        .with_retire(settings.retire))
}

/// The ConfigMgr client: through the embedded emulator (an emulated site whose content share
/// is under the state directory) or a real AdminService.
pub async fn connect_configmgr(
    fleet: &crate::model::Fleet,
    platform: &crate::model::Platform,
    state: &crate::state::StateDir,
    secrets: &crate::model::Secrets,
) -> Result<configmgr::ConfigMgrClient, PlatformError> {
    let name = platform.metadata.name.clone();
    let spec = &platform.spec;
    let unavailable = |reason: String| PlatformError::Unavailable { platform: name.clone(), reason };
    let auth = spec.auth.as_ref();
    let user = auth.and_then(|a| a.username.clone());
    let password = match auth.and_then(|a| a.password.as_ref()) {
        Some(reference) => Some(
            secrets.read(reference).map_err(|e| unavailable(format!("cannot read the password ({reference}): {e}")))?,
        ),
        None => None,
    };
    let scripts = script_signing(platform, secrets)?;
    let (base, share) = if spec.endpoint == "embedded" {
        // The emulated site: the fleet's account with the roles a publisher needs, the ring
        // collections, a content share under the state directory, and the clients' execution
        // policy with the script-signing certificate trusted.
        let file = crate::emulate::state_file(state, &name);
        let share = configmgr::Share { unc: format!("\\\\{name}\\patchops$"), local: file.with_extension("share") };
        let mut options = crate::emulate::EmulatorOptions::default();
        let site = &mut options.configmgr;
        site.site_id =
            uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("patchops:configmgr:{name}").as_bytes()).to_string();
        site.share_unc = share.unc.clone();
        site.share_local = share.local.clone();
        site.collections = ring_groups(fleet, &name);
        site.admins.push(crate::emulate::configmgr::Admin {
            logon: user.clone().unwrap_or_default(),
            password: password.clone().unwrap_or_default(),
            roles: vec!["Application Author".into(), "Application Deployment Manager".into()],
        });
        if spec.trust.execution_policy == crate::model::ExecutionPolicy::AllSigned {
            if let Some(reference) = &spec.trust.script_signing_certificate {
                let certs = crate::authenticode::certificates_at(reference, secrets)
                    .map_err(|e| unavailable(format!("trust.scriptSigningCertificate: {e}")))?;
                site.all_signed_by = Some(certs.into_iter().take(1).collect());
            }
        }
        let base = crate::emulate::embedded(&name, PlatformType::Configmgr, state, options)
            .await
            .map_err(|e| unavailable(format!("cannot start the emulator: {e}")))?;
        (base, share)
    } else {
        let mut base =
            url::Url::parse(&spec.endpoint).map_err(|e| unavailable(format!("endpoint {}: {e}", spec.endpoint)))?;
        // Accept the provider's URL with or without its /AdminService path.
        let path = base.path().trim_end_matches('/').trim_end_matches("/AdminService").to_string();
        base.set_path(&format!("{path}/"));
        let share = spec
            .configmgr
            .as_ref()
            .and_then(|c| c.content_share.as_ref())
            .ok_or_else(|| unavailable("a real site needs configmgr.contentShare".into()))?;
        (base, configmgr::Share { unc: share.unc.clone(), local: std::path::PathBuf::from(&share.local_path) })
    };
    let client = configmgr::ConfigMgrClient::new(name, base, share)?.with_script_signing(scripts);
    Ok(match (user, password) {
        (Some(u), Some(p)) => client.with_account(u, p),
        _ => client,
    })
}
