//! `patchops`: the command line. Each command turns flags into options, calls
//! `reconciler::ops`, and picks a renderer; the decisions live in the library.

mod cli;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

// Planning a large fleet makes millions of small allocations; mimalloc makes them markedly
// cheaper than glibc's allocator (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let matches = cli::Cli::command().get_matches();
    let mut args = match cli::Cli::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    // `apply PLAN` takes the source flags left at their defaults from the plan file.
    if let (cli::Command::Apply(apply), Some(("apply", m))) = (&mut args.command, matches.subcommand()) {
        apply.given = cli::Given::of(m);
    }
    cli::init_logging(&args.global);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            cli::print_error(&format!("cannot start the async runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(cli::run(args));
    ExitCode::from(code)
}
