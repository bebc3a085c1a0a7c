//! `patchops doctor`: every link of each platform's own trust (DESIGN.md, trust-chain link 4),
//! checked and explained one by one.
//!
//! For WSUS (and a ConfigMgr site's software update point) the links are those of the seeds'
//! WSUS trust model: the server has a signing certificate; it is fit to sign code (code-signing
//! usage, RSA ≥ 2048, inside its validity) and its signatures stay valid (timestamping); the
//! clients allow signed updates from an intranet server; they hold the certificate in Trusted
//! Publishers and, when it is self-signed, in Trusted Root; and an emulated Windows client,
//! set up as `trust.clients` says the real ones are, installs a published update only when all
//! of that holds and the CAB's signature verifies. Each link reports what was found and, when
//! it fails, what to do.

use chrono::{DateTime, Utc};

use crate::emulate::wsus::client::WindowsClient;
use crate::model::kinds::ClientTrust;
use crate::model::{Fleet, ObjectName, Platform, PlatformType, Secrets};

/// How a link stands (in `doctor --format json`: `pass`, `warn`, `unknown`, `fail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    /// It holds.
    Pass,
    /// It holds, with a risk worth acting on.
    Warn,
    /// Patchops cannot tell (nothing to check it against yet).
    Unknown,
    /// It is broken: updates will not install (or cannot be published).
    Fail,
}

/// One checked link.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// The link, such as `clients: signer is in Trusted Publishers`.
    pub link: String,
    /// How it stands.
    pub verdict: Verdict,
    /// What was found.
    pub detail: String,
    /// What to do, when it does not pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn pass(link: &str, detail: impl Into<String>) -> Check {
        Check { link: link.into(), verdict: Verdict::Pass, detail: detail.into(), fix: None }
    }
    fn with(link: &str, verdict: Verdict, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { link: link.into(), verdict, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// The checks of one platform.
#[derive(Debug, Clone)]
pub struct PlatformReport {
    /// The Platform.
    pub platform: ObjectName,
    /// Its type.
    pub ty: PlatformType,
    /// Its endpoint, as the fleet writes it.
    pub endpoint: String,
    /// Every link, in chain order.
    pub checks: Vec<Check>,
}

impl PlatformReport {
    /// The worst verdict.
    pub fn verdict(&self) -> Verdict {
        self.checks.iter().map(|c| c.verdict).max().unwrap_or(Verdict::Pass)
    }
}

/// Checks every platform of the fleet (or only `only`), judging certificates as of `now`
/// (the clients themselves run on the context's clock).
pub async fn diagnose(
    fleet: &Fleet,
    ctx: &crate::context::Context,
    only: Option<&str>,
    now: DateTime<Utc>,
) -> Vec<PlatformReport> {
    let secrets = ctx.secrets();
    let mut reports = Vec::new();
    for (name, platform) in &fleet.platforms {
        if only.is_some_and(|o| o != name.as_str()) {
            continue;
        }
        let mut checks = match platform.spec.platform_type {
            PlatformType::Wsus => wsus(fleet, platform, ctx, now).await,
            PlatformType::Intune => {
                let mut checks = intune(platform, secrets, now);
                checks.extend(intune_directory(fleet, platform, ctx).await);
                checks
            }
            PlatformType::Configmgr => configmgr(fleet, platform, ctx, now).await,
        };
        checks.extend(script_timestamps(platform, secrets, now).await);
        reports.push(PlatformReport {
            platform: name.clone(),
            ty: platform.spec.platform_type,
            endpoint: platform.endpoint.to_string(),
            checks,
        });
    }
    reports
}

/// The certificate a reference names, judged as a code-signing certificate.
fn judge_reference(
    link: &str,
    reference: &crate::model::SecretRef,
    secrets: &Secrets,
    now: DateTime<Utc>,
) -> Vec<Check> {
    match crate::authenticode::certificates_at(reference, secrets) {
        Err(e) => {
            vec![Check::with(link, Verdict::Fail, e.to_string(), format!("point {reference} at the certificate (PEM)"))]
        }
        Ok(certs) => match certs.first().map(|der| crate::authenticode::judge_certificate(der, now)) {
            Some(Ok(facts)) if facts.problems.is_empty() => {
                vec![Check::pass(link, format!("{} ({}) is fit to sign code", facts.subject, facts.thumbprint))]
            }
            Some(Ok(facts)) => facts
                .problems
                .iter()
                .map(|p| {
                    Check::with(link, Verdict::Fail, format!("{} ({})", facts.subject, facts.thumbprint), p.to_string())
                })
                .collect(),
            Some(Err(e)) => vec![Check::with(link, Verdict::Fail, e.to_string(), "use an X.509 certificate")],
            None => vec![Check::with(link, Verdict::Fail, "no certificate", "point it at the certificate (PEM)")],
        },
    }
}

fn intune(platform: &Platform, secrets: &Secrets, now: DateTime<Utc>) -> Vec<Check> {
    let mut checks = Vec::new();
    let auth = platform.spec.auth.as_ref();
    match (auth.and_then(|a| a.certificate.as_ref()), auth.and_then(|a| a.client_secret.as_ref())) {
        (Some(reference), _) => match crate::authenticode::certificates_at(reference, secrets) {
            Ok(certs) => {
                let link = "app registration: certificate credential";
                match certs.first().map(|der| crate::authenticode::judge_certificate(der, now)) {
                    Some(Ok(f)) => match f
                        .problems
                        .iter()
                        .find(|p| matches!(p, crate::authenticode::CertificateProblem::OutsideValidity { .. }))
                    {
                        Some(p) => checks.push(Check::with(
                            link,
                            Verdict::Fail,
                            format!("{} ({})", f.subject, f.thumbprint),
                            p.to_string(),
                        )),
                        None => checks
                            .push(Check::pass(link, format!("{} ({}), inside its validity", f.subject, f.thumbprint))),
                    },
                    _ => checks.push(Check::with(
                        link,
                        Verdict::Fail,
                        "not a certificate",
                        "point auth.certificate at the app's certificate and key (PEM)",
                    )),
                }
            }
            Err(e) => checks.push(Check::with(
                "app registration: certificate credential",
                Verdict::Fail,
                e.to_string(),
                "point auth.certificate at the app's certificate and key (PEM)",
            )),
        },
        (None, Some(_)) => checks.push(Check::with(
            "app registration: certificate credential",
            Verdict::Warn,
            "the platform signs in with a client secret",
            "register a certificate on the app and use auth.certificate: a secret is a shared password",
        )),
        (None, None) if platform.endpoint == crate::model::Endpoint::Embedded => {
            checks.push(Check::pass("app registration", "the embedded tenant needs no sign-in"))
        }
        (None, None) => checks.push(Check::with(
            "app registration",
            Verdict::Fail,
            "no credential",
            "set auth.certificate (recommended) or auth.clientSecret",
        )),
    }
    checks.extend(script_signing(platform, secrets, now));
    checks
}

/// The groups the fleet names on an Intune platform, looked up in the directory as `plan` does
/// (read-only): a missing group or a missing Graph permission (Group.Read.All) is found here,
/// before a plan needs it.
async fn intune_directory(fleet: &Fleet, platform: &Platform, ctx: &crate::context::Context) -> Vec<Check> {
    const LINK: &str = "directory: named groups";
    let names = fleet.named_groups(&platform.metadata.name);
    if names.is_empty() {
        return Vec::new();
    }
    let client = match ctx.embedded_endpoint(fleet, platform).await {
        Ok(embedded) => crate::platform::connect(platform, ctx.client_env(), embedded.as_ref()),
        Err(e) => Err(e),
    };
    let client = match client {
        Ok(c) => c,
        Err(e) => return vec![Check::with(LINK, Verdict::Fail, e.to_string(), "fix the Platform's endpoint and auth")],
    };
    match client.resolve_groups(&names).await {
        Ok(ids) => {
            let shown: Vec<String> = ids.iter().map(|(name, id)| format!("{name} = {id}")).collect();
            vec![Check::pass(LINK, shown.join(", "))]
        }
        Err(e) => vec![Check::with(
            LINK,
            Verdict::Fail,
            e.to_string(),
            "the app registration needs the Microsoft Graph application permission Group.Read.All (or GroupMember.Read.All) to look groups up by name; or give the group's object id",
        )],
    }
}

fn script_signing(platform: &Platform, secrets: &Secrets, now: DateTime<Utc>) -> Vec<Check> {
    let trust = &platform.spec.trust;
    match (&trust.script_signing_certificate, trust.execution_policy) {
        (Some(reference), _) => judge_reference("script signing certificate", reference, secrets, now),
        (None, crate::model::ExecutionPolicy::AllSigned) => vec![Check::with(
            "script signing certificate",
            Verdict::Fail,
            "PowerShell runs as AllSigned and no certificate is set",
            "set trust.scriptSigningCertificate",
        )],
        (None, _) => Vec::new(),
    }
}

/// With `trust.timestampUrl`: a test signature made with the script-signing certificate is
/// sent to the time-stamping authority, which must answer with a token for it.
async fn script_timestamps(platform: &Platform, secrets: &Secrets, now: DateTime<Utc>) -> Vec<Check> {
    const LINK: &str = "script signing: time-stamping authority";
    let trust = &platform.spec.trust;
    let (Some(url), Some(reference)) = (&trust.timestamp_url, &trust.script_signing_certificate) else {
        return Vec::new();
    };
    let stamped = async {
        let url = url::Url::parse(url).map_err(|e| e.to_string())?;
        let signer = crate::authenticode::CodeSigner::new(reference, secrets, now)
            .and_then(|s| s.with_timestamps(&url))
            .map_err(|e| e.to_string())?;
        let probe = crate::script::Script::generated("a doctor's test script".into(), "exit 0\r\n".into());
        let signed = signer.sign_script(probe).map_err(|e| e.to_string())?;
        signer.timestamp(signed).await.map_err(|e| e.to_string())
    };
    match stamped.await {
        Ok(_) => vec![Check::pass(LINK, format!("{url} timestamped a test signature"))],
        Err(e) => vec![Check::with(
            LINK,
            Verdict::Fail,
            e,
            "check trust.timestampUrl (your CA's RFC 3161 URL) and that this machine reaches it (a proxy or firewall?); \
             until it answers, scripts cannot be signed",
        )],
    }
}

async fn configmgr(
    fleet: &Fleet,
    platform: &Platform,
    ctx: &crate::context::Context,
    now: DateTime<Utc>,
) -> Vec<Check> {
    let secrets = ctx.secrets();
    let mut checks = Vec::new();
    let client = match ctx.embedded_endpoint(fleet, platform).await {
        Ok(embedded) => crate::platform::connect_configmgr(platform, ctx.client_env(), embedded.as_ref()),
        Err(e) => Err(e),
    };
    match client {
        Err(e) => checks.push(Check::with(
            "AdminService",
            Verdict::Fail,
            e.to_string(),
            "fix the Platform's endpoint and auth",
        )),
        Ok(client) => match client.account_roles().await {
            Err(e) => checks.push(Check::with(
                "AdminService",
                Verdict::Fail,
                e.to_string(),
                "check the SMS Provider's URL, auth.username and auth.password",
            )),
            Ok((account, roles)) => {
                checks.push(Check::pass("AdminService", format!("signed in as {account}")));
                let has = |wanted: &[&str]| roles.iter().any(|r| wanted.contains(&r.as_str()));
                let shown = if roles.is_empty() { "no security roles".to_string() } else { roles.join(", ") };
                checks.push(if has(&["Full Administrator", "Application Administrator", "Application Author"]) {
                    Check::pass("role: create and manage applications", shown.clone())
                } else {
                    Check::with(
                        "role: create and manage applications",
                        Verdict::Fail,
                        format!("{account} has {shown}"),
                        format!("add the security role Application Author (or Application Administrator) to {account} in Administration > Security > Administrative Users"),
                    )
                });
                checks.push(if has(&["Full Administrator", "Application Administrator", "Application Deployment Manager"]) {
                    Check::pass("role: deploy applications", shown)
                } else {
                    Check::with(
                        "role: deploy applications",
                        Verdict::Fail,
                        format!("{account} has {shown}"),
                        format!("add the security role Application Deployment Manager (or Application Administrator) to {account}"),
                    )
                });
            }
        },
    }
    checks.extend(script_signing(platform, secrets, now));
    if let Some(sup) = platform.spec.configmgr.as_ref().and_then(|c| c.software_update_point.as_ref()) {
        checks.push(Check::pass(
            "software updates",
            format!(
                "third-party software updates go through the software update point `{sup}`; its checks follow under it"
            ),
        ));
    }
    checks
}

async fn wsus(fleet: &Fleet, platform: &Platform, ctx: &crate::context::Context, now: DateTime<Utc>) -> Vec<Check> {
    let secrets = ctx.secrets();
    let mut checks = Vec::new();
    let connected = match ctx.embedded_endpoint(fleet, platform).await {
        Ok(embedded) => crate::platform::connect_wsus(platform, ctx.client_env(), embedded.as_ref()),
        Err(e) => Err(e),
    };
    let client = match connected {
        Ok(c) => c,
        Err(e) => {
            checks.push(Check::with("transport", Verdict::Fail, e.to_string(), "fix the Platform's endpoint and auth"));
            return checks;
        }
    };
    let facts = match client.server_facts().await {
        Ok(f) => {
            checks.push(Check::pass("transport", format!("ran a request script on the server (WSUS {})", f.version)));
            f
        }
        Err(e) => {
            checks.push(Check::with(
                "transport",
                Verdict::Fail,
                e.to_string(),
                "check that the server is reachable and the account may run PowerShell there",
            ));
            return checks;
        }
    };
    checks.extend(script_signing(platform, secrets, now));
    let Some(der) = facts.signing_certificate.clone() else {
        checks.push(Check::with(
            "server: signing certificate",
            Verdict::Fail,
            "the WSUS server has no signing certificate: publishing fails",
            "configure one on the server (IUpdateServerConfiguration.SetSigningCertificate, or ConfigMgr's software update point \"third-party updates\" settings), RSA ≥ 2048 with code-signing usage",
        ));
        return checks;
    };
    let judged = match crate::authenticode::judge_certificate(&der, now) {
        Ok(f) => f,
        Err(e) => {
            checks.push(Check::with(
                "server: signing certificate",
                Verdict::Fail,
                e.to_string(),
                "configure a valid X.509 certificate",
            ));
            return checks;
        }
    };
    let who = format!("{} ({})", judged.subject, judged.thumbprint);
    checks.push(Check::pass(
        "server: signing certificate",
        format!("{who}{}", if judged.self_signed { ", self-signed" } else { "" }),
    ));
    if !facts.has_private_key {
        checks.push(Check::with(
            "server: signing key",
            Verdict::Fail,
            format!("the server holds {who} without its private key: it cannot sign the CABs it publishes"),
            "import the certificate with its private key into the server's WSUS certificate store",
        ));
    }
    if judged.problems.is_empty() {
        checks.push(Check::pass(
            "server: certificate fit to sign code",
            "code-signing usage, RSA ≥ 2048, inside its validity",
        ));
    }
    for p in &judged.problems {
        checks.push(Check::with("server: certificate fit to sign code", Verdict::Fail, who.clone(), p.to_string()));
    }
    if platform.endpoint != crate::model::Endpoint::Embedded {
        if let Some(reference) = &platform.spec.trust.signing_certificate {
            if let Ok(expected) = crate::authenticode::certificates_at(reference, secrets) {
                if expected.first() != Some(&der) {
                    checks.push(Check::with(
                        "server: the certificate the fleet expects",
                        Verdict::Fail,
                        format!("the server signs with {who}, not with the certificate in {reference}"),
                        "deploy the right certificate to the server, or update trust.signingCertificate and the clients' stores",
                    ));
                }
            }
        }
    }
    let published = client.published_content().await;
    let clients = platform.spec.trust.clients.clone();
    checks.extend(client_links(clients.as_ref(), &der, judged.self_signed, secrets));
    match published {
        Err(e) => checks.push(Check::with(
            "trial install",
            Verdict::Unknown,
            e.to_string(),
            "make the server reachable and run doctor again",
        )),
        Ok(list) if list.is_empty() => checks.push(Check::with(
            "trial install",
            Verdict::Unknown,
            "no update published by patchops on this server yet",
            "run `patchops apply`, then `patchops doctor` again to try one on the emulated client",
        )),
        Ok(list) => {
            let Some(trust) = clients else {
                checks.push(Check::with(
                    "trial install",
                    Verdict::Unknown,
                    "the clients' trust is not described",
                    "describe it under trust.clients so the emulated client can try an update as yours would",
                ));
                return checks;
            };
            let trial = trial_install(&list[0], &trust, secrets, now).await;
            let untimestamped = trial.iter().any(|c| c.detail.contains("not timestamped"));
            checks.extend(trial);
            if untimestamped {
                let until = match judged.problems.is_empty() {
                    true => crate::authenticode::not_after(&der)
                        .map(|t| t.format("%Y-%m-%d").to_string())
                        .unwrap_or_default(),
                    false => "its expiry".into(),
                };
                checks.push(Check::with(
                    "server: signatures timestamped",
                    Verdict::Warn,
                    "the server's CAB signatures carry no timestamp",
                    format!("every update signed with this certificate stops installing when it expires ({until}): renew the certificate and deploy the new one to the clients before then"),
                ));
            }
        }
    }
    checks
}

/// What `trust.clients` says of the clients, against the server's signing certificate.
fn client_links(clients: Option<&ClientTrust>, der: &[u8], self_signed: bool, secrets: &Secrets) -> Vec<Check> {
    let describe =
        "describe the clients under trust.clients (what your Group Policy or ConfigMgr client settings deploy)";
    let Some(c) = clients else {
        return vec![Check::with("clients: trust settings", Verdict::Unknown, "trust.clients is not set", describe)];
    };
    let mut checks = Vec::new();
    checks.push(if c.accept_trusted_publisher_certs {
        Check::pass("clients: allow signed updates from an intranet server", "AcceptTrustedPublisherCerts = 1")
    } else {
        Check::with(
            "clients: allow signed updates from an intranet server",
            Verdict::Fail,
            "the policy is off: clients install Microsoft-signed updates only",
            "enable \"Allow signed updates from an intranet Microsoft update service location\" (HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows\\WindowsUpdate\\AcceptTrustedPublisherCerts = 1), or ConfigMgr's client setting \"Enable third-party software updates\"",
        )
    });
    let holds = |refs: &[crate::model::SecretRef]| -> Result<bool, crate::authenticode::CertificateError> {
        for r in refs {
            if crate::authenticode::certificates_at(r, secrets)?.iter().any(|c| c == der) {
                return Ok(true);
            }
        }
        Ok(false)
    };
    let store = |link: &str, refs: &[crate::model::SecretRef], fix: &str| match holds(refs) {
        Ok(true) => Check::pass(link, "holds the server's signing certificate"),
        Ok(false) => {
            Check::with(link, Verdict::Fail, "does not hold the server's signing certificate", fix.to_string())
        }
        Err(e) => Check::with(link, Verdict::Fail, e.to_string(), "fix the certificate reference"),
    };
    checks.push(store(
        "clients: Trusted Publishers",
        &c.trusted_publishers,
        "deploy the WSUS signing certificate to Local Computer\\Trusted Publishers (Group Policy: Public Key Policies), and list it in trust.clients.trustedPublishers",
    ));
    if self_signed {
        checks.push(store(
            "clients: Trusted Root (the certificate is self-signed)",
            &c.trusted_roots,
            "a self-signed WSUS certificate must also be in Local Computer\\Trusted Root Certification Authorities; deploy it there and list it in trust.clients.trustedRoots",
        ));
    }
    checks
}

/// Downloads a published update's CAB and lets the emulated Windows client try it.
async fn trial_install(
    update: &crate::platform::wsus::PublishedContent,
    trust: &ClientTrust,
    secrets: &Secrets,
    now: DateTime<Utc>,
) -> Vec<Check> {
    let link = format!("trial install of {}", update.title);
    let load = |refs: &[crate::model::SecretRef]| -> Result<Vec<Vec<u8>>, crate::authenticode::CertificateError> {
        let mut out = Vec::new();
        for r in refs {
            out.extend(crate::authenticode::certificates_at(r, secrets)?);
        }
        Ok(out)
    };
    let client = match (load(&trust.trusted_publishers), load(&trust.trusted_roots)) {
        (Ok(p), Ok(r)) => WindowsClient {
            accept_trusted_publisher_certs: trust.accept_trusted_publisher_certs,
            trusted_publishers: p,
            trusted_roots: r,
        },
        (Err(e), _) | (_, Err(e)) => {
            return vec![Check::with(&link, Verdict::Fail, e.to_string(), "fix trust.clients")]
        }
    };
    let Some(url) = update.files.first() else {
        return vec![Check::with(&link, Verdict::Unknown, "the server lists no content for it", "publish it again")];
    };
    let cab = match download(url).await {
        Ok(f) => f,
        Err(e) => {
            return vec![Check::with(&link, Verdict::Unknown, e, "make the server's content URL reachable from here")]
        }
    };
    let sdp = update.sdp.clone();
    let path = cab.path().to_path_buf();
    let links = match tokio::task::spawn_blocking(move || client.evaluate(&sdp, &path, now)).await {
        Ok(l) => l,
        Err(e) => return vec![Check::with(&link, Verdict::Fail, e.to_string(), "run doctor again")],
    };
    let mut checks: Vec<Check> = links
        .into_iter()
        .map(|l| match l.result {
            Ok(detail) => Check::pass(&format!("client: {}", l.name), detail),
            Err((why, code)) => Check::with(
                &format!("client: {}", l.name),
                Verdict::Fail,
                format!("{why} ({code})"),
                "see the links above",
            ),
        })
        .collect();
    let installed = checks.iter().all(|c| c.verdict == Verdict::Pass);
    checks.push(if installed {
        Check::pass(&link, "the emulated client installs it")
    } else {
        let first = checks.iter().find(|c| c.verdict == Verdict::Fail).map(|c| c.link.clone()).unwrap_or_default();
        Check::with(&link, Verdict::Fail, format!("the emulated client refuses it at `{first}`"), "fix that link first")
    });
    checks
}

async fn download(url: &str) -> Result<tempfile::NamedTempFile, String> {
    use std::io::Write as _;
    let parsed = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let http = crate::http::client().map_err(|e| e.to_string())?;
    let mut resp = http
        .get(parsed.clone())
        .send()
        .await
        .map_err(|e| format!("{}: {}", crate::http::redact(&parsed), e.without_url()))?;
    if !resp.status().is_success() {
        return Err(format!("{}: HTTP {}", crate::http::redact(&parsed), resp.status()));
    }
    let mut file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.without_url().to_string())? {
        file.write_all(&chunk).map_err(|e| e.to_string())?;
    }
    Ok(file)
}
