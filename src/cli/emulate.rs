//! `patchops emulate`: a platform emulator on its own, for tests and experiments.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use reconciler::emulate::{self, EmulatorOptions};
use reconciler::model::PlatformType;

use super::{print_error, EXIT_ERROR, EXIT_OK};

#[derive(Debug, Args)]
#[command(after_long_help = "\
The emulator serves the same URLs, payloads, status codes and validation errors as the
service's endpoints patchops uses (for Intune: Microsoft Graph beta
deviceAppManagement/mobileApps, assign, assignments). Its state is a JSON file, kept between
runs. `endpoint: embedded` starts the same emulator inside patchops, with its state under the
state directory's emulate/ folder.

For WSUS: the staging and run endpoints a Platform with `endpoint: http://…` uses in place of
SSH (PUT /patchops/v1/staging/{id}/{file}, POST /patchops/v1/run), running patchops's
request scripts with the WSUS API's checks, signing published CABs with --signing-certificate
and serving them under /Content/. For ConfigMgr: the AdminService (/AdminService/wmi/…) with
role-based access control for --admin.

Examples:
  patchops emulate intune --listen 127.0.0.1:8080 --state tenant.json --throttle-every 5
  patchops emulate intune --app 00000000-0000-0000-0000-0000000000aa=app.pem --group sg-patch-pilot
  curl 'http://127.0.0.1:8080/beta/deviceAppManagement/mobileApps?$expand=assignments'
  patchops emulate wsus --state wsus.json --signing-certificate wsus-signing.pem --group Pilot
  patchops emulate configmgr --state site.json --share /tmp/share --collection PO100012 \
      --admin 'CONTOSO\\svc-patchops' --admin-password-file pw.txt --role 'Application Author'")]
pub struct EmulateArgs {
    /// The platform to emulate.
    #[arg(value_enum)]
    pub platform: EmulatedPlatform,
    /// Address to listen on (loopback by default: the emulator has no authentication).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Allow --listen on an address other than loopback. The emulator has no authentication of
    /// its own and serves what it stores: expose it only on a network you trust.
    #[arg(long)]
    pub allow_remote: bool,
    /// The emulator's state file (created when missing).
    #[arg(long, default_value = "emulated-tenant.json")]
    pub state: PathBuf,
    /// Answer every N-th request with 429 Too Many Requests and Retry-After, to test clients.
    #[arg(long)]
    pub throttle_every: Option<u32>,
    /// Register an app: CLIENT_ID=PEM (its certificate credential). With at least one, Graph
    /// requires tokens from the emulator's token endpoint (/{tenant}/oauth2/v2.0/token), so use
    /// the emulator's URL as both the Platform's endpoint and its auth.authority.
    #[arg(long = "app", value_name = "CLIENT_ID=PEM")]
    pub apps: Vec<String>,
    /// Intune: a Microsoft Graph application permission the --app registrations hold
    /// (repeatable); without any, DeviceManagementApps.ReadWrite.All and Group.Read.All. Looking
    /// groups up by name without Group.Read.All (or GroupMember.Read.All) is refused with 403.
    #[arg(long = "permission", value_name = "NAME")]
    pub permissions: Vec<String>,
    /// WSUS: the server's signing certificate and key (one PEM); without it, publishing fails.
    #[arg(long, value_name = "PEM")]
    pub signing_certificate: Option<PathBuf>,
    /// WSUS: a computer target group (repeatable). Intune: a group of the tenant's directory,
    /// NAME or OBJECT_ID=NAME (an id of its own when only the name is given); with any, the
    /// tenant refuses assignments to other groups.
    #[arg(long = "group", value_name = "NAME")]
    pub groups: Vec<String>,
    /// WSUS: run PowerShell as AllSigned, trusting scripts signed with this certificate (PEM).
    #[arg(long, value_name = "PEM")]
    pub all_signed_by: Option<PathBuf>,
    /// WSUS: do not serve; run the request script staged at this path as the server's
    /// PowerShell would (`-File`), print its output and exit with its code. A test server
    /// reached over SSH uses this as its `powershell.exe`.
    #[arg(long, value_name = "SCRIPT")]
    pub run: Option<PathBuf>,
    /// ConfigMgr: a collection id (repeatable).
    #[arg(long = "collection", value_name = "ID")]
    pub collections: Vec<String>,
    /// ConfigMgr: the content share's local directory.
    #[arg(long, value_name = "DIR", default_value = "emulated-share")]
    pub share: PathBuf,
    /// ConfigMgr: the content share's UNC path.
    #[arg(long, default_value = "\\\\cm01\\patchops$")]
    pub share_unc: String,
    /// ConfigMgr: an administrative user's logon name.
    #[arg(long, value_name = "LOGON", requires = "admin_password_file")]
    pub admin: Option<String>,
    /// ConfigMgr: a file holding that user's password.
    #[arg(long, value_name = "FILE")]
    pub admin_password_file: Option<PathBuf>,
    /// ConfigMgr: a security role of that user (repeatable), such as "Application Author".
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EmulatedPlatform {
    /// Intune through Microsoft Graph.
    Intune,
    /// A WSUS server (its request-script runner and content).
    Wsus,
    /// A Configuration Manager site's AdminService.
    Configmgr,
}

pub async fn run(args: EmulateArgs) -> u8 {
    let ty = match args.platform {
        EmulatedPlatform::Intune => PlatformType::Intune,
        EmulatedPlatform::Wsus => PlatformType::Wsus,
        EmulatedPlatform::Configmgr => PlatformType::Configmgr,
    };
    let mut options = EmulatorOptions { throttle_every: args.throttle_every, ..EmulatorOptions::default() };
    for app in &args.apps {
        let Some((client_id, path)) = app.split_once('=') else {
            print_error(&format!("--app {app}: write it as CLIENT_ID=PATH_TO_CERTIFICATE_PEM"));
            return EXIT_ERROR;
        };
        let der = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|pem| reconciler::platform::intune::auth::certificate_der(&pem).map_err(|e| e.to_string()));
        match der {
            Ok(certificate_der) => options.apps.push(reconciler::emulate::intune::RegisteredApp {
                client_id: client_id.to_string(),
                certificate_der,
                secret: None,
                permissions: if args.permissions.is_empty() {
                    reconciler::emulate::intune::default_permissions()
                } else {
                    args.permissions.clone()
                },
            }),
            Err(e) => {
                print_error(&format!("--app {app}: {path}: {e}"));
                return EXIT_ERROR;
            }
        }
    }
    options.wsus.signing_pem = args.signing_certificate.clone();
    options.wsus.groups = args.groups.clone();
    if matches!(args.platform, EmulatedPlatform::Intune) {
        for g in &args.groups {
            let group = match g.split_once('=') {
                Some((id, name)) if reconciler::model::load::is_object_id(id) => {
                    reconciler::emulate::intune::Group { id: id.to_string(), display_name: name.to_string() }
                }
                Some(_) => {
                    print_error(&format!("--group {g}: write it as NAME or OBJECT_ID=NAME, the id a GUID"));
                    return EXIT_ERROR;
                }
                None => reconciler::emulate::intune::Group::named(&args.state.display().to_string(), g),
            };
            options.intune_groups.push(group);
        }
    }
    if let Some(pem) = &args.all_signed_by {
        match std::fs::read(pem)
            .map_err(|e| e.to_string())
            .and_then(|t| reconciler::authenticode::pem_certificates(&t).map_err(|e| e.to_string()))
        {
            Ok(certs) => {
                options.wsus.all_signed = true;
                options.wsus.trusted_script_signers = certs;
            }
            Err(e) => {
                print_error(&format!("--all-signed-by {}: {e}", pem.display()));
                return EXIT_ERROR;
            }
        }
    }
    options.configmgr.site_id = "5F3E0A11-7C2B-4D1E-9A8F-0123456789AB".into();
    options.configmgr.share_unc = args.share_unc.clone();
    options.configmgr.share_local = args.share.clone();
    options.configmgr.collections = args.collections.clone();
    if let (Some(logon), Some(file)) = (&args.admin, &args.admin_password_file) {
        match std::fs::read_to_string(file) {
            Ok(password) => options.configmgr.admins.push(reconciler::emulate::configmgr::Admin {
                logon: logon.clone(),
                password: password.trim_end().to_string(),
                roles: args.roles.clone(),
            }),
            Err(e) => {
                print_error(&format!("--admin-password-file {}: {e}", file.display()));
                return EXIT_ERROR;
            }
        }
    }
    if let Some(script) = &args.run {
        if ty != PlatformType::Wsus {
            print_error("--run is for the WSUS emulator");
            return EXIT_ERROR;
        }
        return match reconciler::emulate::wsus::Emulator::open(&args.state, options.wsus) {
            Ok(server) => {
                let (code, stdout, stderr) = server.run_staged(script);
                print!("{stdout}");
                eprint!("{stderr}");
                u8::try_from(code).unwrap_or(1)
            }
            Err(e) => {
                print_error(&e);
                EXIT_ERROR
            }
        };
    }
    let addrs: Vec<std::net::SocketAddr> = match tokio::net::lookup_host(&args.listen).await {
        Ok(a) => a.collect(),
        Err(e) => {
            print_error(&format!("cannot listen on {}: {e}", args.listen));
            return EXIT_ERROR;
        }
    };
    if !args.allow_remote && addrs.iter().any(|a| !a.ip().is_loopback()) {
        print_error(&format!(
            "--listen {} is not a loopback address; the emulator has no authentication of its own, so pass --allow-remote to serve it beyond this machine",
            args.listen
        ));
        return EXIT_ERROR;
    }
    let listener = match tokio::net::TcpListener::bind(addrs.as_slice()).await {
        Ok(l) => l,
        Err(e) => {
            print_error(&format!("cannot listen on {}: {e}", args.listen));
            return EXIT_ERROR;
        }
    };
    match emulate::serve(listener, ty, &args.state, options) {
        Ok(url) => {
            eprintln!(
                "{} emulator listening on {url} (state in {}); Ctrl-C stops it",
                ty.as_str(),
                args.state.display()
            );
        }
        Err(e) => {
            print_error(&e);
            return EXIT_ERROR;
        }
    }
    match tokio::signal::ctrl_c().await {
        Ok(()) => EXIT_OK,
        Err(e) => {
            print_error(&format!("cannot wait for Ctrl-C: {e}"));
            EXIT_ERROR
        }
    }
}
