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

Example:
  patchops emulate intune --listen 127.0.0.1:8080 --state tenant.json --throttle-every 5
  patchops emulate intune --app 00000000-0000-0000-0000-0000000000aa=app.pem
  curl 'http://127.0.0.1:8080/beta/deviceAppManagement/mobileApps?$expand=assignments'")]
pub struct EmulateArgs {
    /// The platform to emulate.
    #[arg(value_enum)]
    pub platform: EmulatedPlatform,
    /// Address to listen on (loopback by default: the emulator has no authentication).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
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
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EmulatedPlatform {
    /// Intune through Microsoft Graph.
    Intune,
}

pub async fn run(args: EmulateArgs) -> u8 {
    let ty = match args.platform {
        EmulatedPlatform::Intune => PlatformType::Intune,
    };
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            print_error(&format!("cannot listen on {}: {e}", args.listen));
            return EXIT_ERROR;
        }
    };
    let mut options = EmulatorOptions { throttle_every: args.throttle_every, ..EmulatorOptions::default() };
    for app in &args.apps {
        let Some((client_id, path)) = app.split_once('=') else {
            print_error(&format!("--app {app}: write it as CLIENT_ID=PATH_TO_CERTIFICATE_PEM"));
            return EXIT_ERROR;
        };
        let der = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|pem| reconciler::platform::intune::auth::certificate_der(&pem));
        match der {
            Ok(certificate_der) => options.apps.push(reconciler::emulate::intune::RegisteredApp {
                client_id: client_id.to_string(),
                certificate_der,
                secret: None,
            }),
            Err(e) => {
                print_error(&format!("--app {app}: {path}: {e}"));
                return EXIT_ERROR;
            }
        }
    }
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
