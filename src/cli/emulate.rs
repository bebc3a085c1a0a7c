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
    let options = EmulatorOptions { throttle_every: args.throttle_every, ..EmulatorOptions::default() };
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
