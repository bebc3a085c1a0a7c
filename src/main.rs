//! `patchops`: the command line. Each command turns flags into options, calls
//! `reconciler::ops`, and picks a renderer; the decisions live in the library.

mod cli;

use std::process::ExitCode;

use clap::Parser;

// Planning a large fleet makes millions of small allocations; mimalloc makes them markedly
// cheaper than glibc's allocator (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
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
