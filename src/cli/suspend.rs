//! `patchops suspend` and `patchops resume`.

use std::path::PathBuf;

use clap::Args;
use reconciler::state::{StateDir, SuspendScope};

use super::{out, print_error, ColorChoice, EXIT_ERROR, EXIT_OK};

#[derive(Debug, Args)]
#[command(after_long_help = "\
A suspended product or platform (or the whole fleet, with neither flag) is still observed and
planned — `plan` and `status` show its changes as waiting with reason Suspended, and the daemon
reports its drift — but nothing changes it: neither `apply` nor `patchops run` sends its changes
until it is resumed. The suspension is recorded in the state directory, so every apply and the
daemon on that directory honour it.

Examples:
  patchops suspend --product firefox --reason \"INC-4711: crashes on startup\"
  patchops suspend --platform wsus-hq
  patchops resume --product firefox")]
pub struct SuspendArgs {
    /// Only this fleet Product.
    #[arg(long, conflicts_with = "platform")]
    pub product: Option<String>,
    /// Only this Platform.
    #[arg(long)]
    pub platform: Option<String>,
    /// Why (shown in plans and status).
    #[arg(long, default_value = "")]
    pub reason: String,
    /// State directory [default: .patchops at the root of the git repository the current
    /// directory is in, else in the current directory].
    #[arg(long, value_name = "DIR", env = "PATCHOPS_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Only this fleet Product.
    #[arg(long, conflicts_with = "platform")]
    pub product: Option<String>,
    /// Only this Platform.
    #[arg(long)]
    pub platform: Option<String>,
    /// State directory [default: .patchops at the root of the git repository the current
    /// directory is in, else in the current directory].
    #[arg(long, value_name = "DIR", env = "PATCHOPS_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

fn scope(product: &Option<String>, platform: &Option<String>) -> SuspendScope {
    match (product, platform) {
        (Some(p), _) => SuspendScope::Product(p.clone()),
        (None, Some(p)) => SuspendScope::Platform(p.clone()),
        (None, None) => SuspendScope::Fleet,
    }
}

pub fn suspend(args: SuspendArgs, color: ColorChoice) -> u8 {
    let scope = scope(&args.product, &args.platform);
    match StateDir::new(super::state_dir_or_default(args.state_dir.as_deref(), "."))
        .db()
        .and_then(|db| db.suspend(&scope, &args.reason))
    {
        Ok(()) => {
            out(
                color,
                &format!(
                    "suspended {scope}: it is observed and planned, never changed, until `patchops resume{}`\n",
                    resume_flags(&scope)
                ),
            );
            EXIT_OK
        }
        Err(e) => {
            print_error(&e.to_string());
            EXIT_ERROR
        }
    }
}

pub fn resume(args: ResumeArgs, color: ColorChoice) -> u8 {
    let scope = scope(&args.product, &args.platform);
    match StateDir::new(super::state_dir_or_default(args.state_dir.as_deref(), "."))
        .db()
        .and_then(|db| db.resume(&scope))
    {
        Ok(true) => {
            out(color, &format!("resumed {scope}: the next apply or cycle changes it again\n"));
            EXIT_OK
        }
        Ok(false) => {
            print_error(&format!("{scope} is not suspended; `patchops status` lists what is"));
            EXIT_ERROR
        }
        Err(e) => {
            print_error(&e.to_string());
            EXIT_ERROR
        }
    }
}

fn resume_flags(scope: &SuspendScope) -> String {
    match scope {
        SuspendScope::Fleet => String::new(),
        SuspendScope::Product(p) => format!(" --product {p}"),
        SuspendScope::Platform(p) => format!(" --platform {p}"),
    }
}
