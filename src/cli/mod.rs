//! Flags, dispatch and the user-facing error format.

mod apply;
mod catalog;
mod doctor;
mod emulate;
mod inventory;
mod package;
mod plan;
mod policy;
mod progress;
mod run;
mod suspend;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use reconciler::context::Context;
use reconciler::ops::OpsError;
use reconciler::source::SourceOptions;
use reconciler::state::StateDir;

/// Exit code: success, no changes.
pub const EXIT_OK: u8 = 0;
/// Exit code: an error.
pub const EXIT_ERROR: u8 = 1;
/// Exit code: the plan has changes (with --detailed-exitcode).
pub const EXIT_CHANGES: u8 = 2;
/// Exit code: the plan's only changes are waiting (with --detailed-exitcode).
pub const EXIT_ONLY_WAITING: u8 = 3;

const ABOUT: &str = "GitOps reconciler for third-party software publishing to WSUS, Configuration Manager and Intune.";

const LONG_ABOUT: &str = "\
patchops keeps endpoint-management platforms in line with a fleet repository in git:
which products, at which versions, to which rings of devices. It reads the fleet from a
commit, verifies the signed vendor catalog, observes each platform, and plans publish,
update, reconfigure and retire actions, and applies those the fleet's policies permit.

Typical use:
  patchops validate --path fleet            check the fleet and its catalog
  patchops plan --path fleet                show what would change
  patchops plan --format markdown           a pull-request comment
  patchops plan --out plan.json --detailed-exitcode
  patchops apply                            apply what policies permit (asks first)
  patchops apply plan.json --auto-approve   apply exactly a reviewed plan
  patchops run --listen 127.0.0.1:9474      reconcile continuously (webhooks, /metrics)
  patchops status / history                 what is published; the audit log
  patchops doctor                           each platform's trust, link by link
  patchops policy test policies/            Rego unit tests
  patchops catalog keygen / sign / verify   curate and sign your own catalog";

/// `--version`: the release, the commit it was built from and the build date.
const VERSION: &str =
    concat!(env!("CARGO_PKG_VERSION"), " (", env!("PATCHOPS_COMMIT"), " ", env!("PATCHOPS_BUILD_DATE"), ")");

#[derive(Debug, Parser)]
#[command(name = "patchops", version = VERSION, about = ABOUT, long_about = LONG_ABOUT, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// More log output on stderr (-v info, -vv debug). RUST_LOG overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = "Global options")]
    pub verbose: u8,
    /// When to colour output.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = ColorChoice::Auto,
        env = "PATCHOPS_COLOR",
        help_heading = "Global options"
    )]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal, unless NO_COLOR is set.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the fleet (syntax, fields, references, secrets), its catalogs and their products.
    ///
    /// Reports every problem of the fleet at once, each as file:line:column with advice.
    /// Exit code 0 when valid, 1 otherwise.
    Validate(ReportArgs),
    /// Show what would change: desired (git) × verified catalog × observed platforms.
    Plan(plan::PlanArgs),
    /// Apply the plan: publish, update, reconfigure and retire what policies permit.
    Apply(apply::ApplyArgs),
    /// Reconcile continuously: watch the fleet and the platforms, apply what policies permit.
    Run(run::RunArgs),
    /// What is published per product and platform, and the last result.
    Status(ReportArgs),
    /// Hold back changes to the fleet, a product or a platform (still observed and planned).
    Suspend(suspend::SuspendArgs),
    /// Let a suspended fleet, product or platform change again.
    Resume(suspend::ResumeArgs),
    /// Check each platform's own trust link by link (signing certificates, client trust, roles).
    Doctor(doctor::DoctorArgs),
    /// The audit log: every action applied, with the chain that admitted it.
    History(apply::HistoryArgs),
    /// Create, sign and verify catalogs; manage the catalog history.
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
    /// Record what the platforms hold, for planning without credentials.
    #[command(subcommand)]
    Inventory(inventory::InventoryCommand),
    /// Make or open platform packages (.intunewin) on their own.
    #[command(subcommand)]
    Package(package::PackageCommand),
    /// Run a platform emulator on its own (the one `endpoint: embedded` starts in-process).
    Emulate(emulate::EmulateArgs),
    /// List the built-in policies; run Rego unit tests.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Print a shell completion script: `patchops completions bash > /etc/bash_completion.d/patchops`.
    ///
    /// zsh: write it as `_patchops` into a directory of `$fpath`; fish: into
    /// `~/.config/fish/completions/patchops.fish`; PowerShell: dot-source it from `$PROFILE`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages: `patchops.1` and one `patchops-<command>.1` per command.
    Man {
        /// Directory to write into (`man -l DIR/patchops.1` reads one).
        #[arg(long, default_value = "man")]
        out: PathBuf,
    },
    /// Write the JSON Schemas of every kind, the catalog and the plan.
    Schemas {
        /// Directory to write into.
        #[arg(long, default_value = "schemas")]
        out: PathBuf,
        /// Only check that the files there are up to date (exit 1 if not).
        #[arg(long)]
        check: bool,
    },
}

/// How a reporting command prints its result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Text for people.
    #[default]
    Text,
    /// One JSON document (its schema is in `schemas/`; an error is an error report).
    Json,
}

/// The source flags and `--format`, for `validate` and `status`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Output format: text, or JSON for machines (schemas/validate-report.schema.json,
    /// schemas/status-report.schema.json; errors: schemas/error-report.schema.json).
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

/// Prints `value` as one pretty JSON document on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> u8 {
    match serde_json::to_string_pretty(value) {
        Ok(text) => {
            let mut o = std::io::stdout().lock();
            match writeln!(o, "{text}") {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    print_error(&format!("cannot write to stdout: {e}"));
                    EXIT_ERROR
                }
                _ => EXIT_OK,
            }
        }
        Err(e) => {
            print_error(&format!("cannot render JSON: {e}"));
            EXIT_ERROR
        }
    }
}

/// Reports an error as text, or as an error report on stdout with `--format json` (and the
/// text on stderr as well, for people reading a CI log). Returns the exit code.
pub fn report_as(format: ReportFormat, e: &OpsError) -> u8 {
    report(e);
    if format == ReportFormat::Json {
        print_json(&reconciler::ops::report::ErrorReport::of(e));
    }
    EXIT_ERROR
}

/// Where the fleet is read from.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// The fleet repository: a local path or a URL (file://, https://, ssh://). A plain
    /// directory works too, with a warning that provenance is unknown.
    #[arg(long, default_value = ".", env = "PATCHOPS_REPO")]
    pub repo: String,
    /// Branch, tag or commit to read [default: HEAD].
    #[arg(long, env = "PATCHOPS_REV")]
    pub rev: Option<String>,
    /// The fleet's directory inside the repository.
    #[arg(long, default_value = ".", env = "PATCHOPS_PATH")]
    pub path: String,
    /// Read a local repository's files from disk (uncommitted changes included) instead of from
    /// a commit. Provenance is then unknown.
    #[arg(long, conflicts_with = "rev")]
    pub worktree: bool,
    /// State directory: catalog history (rollback protection), ring history, the audit log and
    /// embedded platforms [default: .patchops at the root of the fleet repository, so that
    /// every command finds it from any subdirectory; in the current directory for a URL].
    #[arg(long, value_name = "DIR", env = "PATCHOPS_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Require signed commits: `head` (the commit acted on is signed by an allowed signer) or
    /// `strict` (every first-parent commit since the last applied one is) [default: head when
    /// commit signers are configured, else off].
    #[arg(long, value_enum, value_name = "MODE", env = "PATCHOPS_VERIFY_COMMITS")]
    pub verify_commits: Option<VerifyCommits>,
    /// The trust roots for commit signatures: an `allowed_signers` file (SSH, as `ssh-keygen -Y
    /// verify` reads it), an armored OpenPGP public key (`.asc`), or a directory of them
    /// [default: the state directory's commit-signers/]. Never read from the repository.
    #[arg(long, value_name = "PATH", env = "PATCHOPS_COMMIT_SIGNERS")]
    pub commit_signers: Option<PathBuf>,
    /// Where fetched repositories are cached [default: $XDG_CACHE_HOME/patchops or ~/.cache/patchops].
    #[arg(long, env = "PATCHOPS_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Refuse a fleet document file larger than this many MiB.
    #[arg(long, value_name = "MIB", default_value_t = 8, env = "PATCHOPS_MAX_FILE_MIB")]
    pub max_file_mib: u64,
    /// Refuse a fleet whose document files together exceed this many MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256, env = "PATCHOPS_MAX_FLEET_MIB")]
    pub max_fleet_mib: u64,
}

/// `--verify-commits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyCommits {
    /// Do not verify (refused while commit signers are configured).
    Off,
    /// The commit acted on must be signed by an allowed signer.
    Head,
    /// Every first-parent commit since the last applied one must be.
    Strict,
}

/// Which source flags were given (on the command line or in the environment) rather than left
/// at their defaults: `apply PLAN` takes the others from the plan file.
#[derive(Debug, Clone, Copy, Default)]
pub struct Given {
    pub repo: bool,
    pub rev: bool,
    pub path: bool,
    pub state_dir: bool,
}

impl Given {
    /// From the parsed command line of a subcommand that flattens [`SourceArgs`].
    pub fn of(matches: &clap::ArgMatches) -> Given {
        let given = |id: &str| {
            matches.try_get_raw(id).is_ok()
                && !matches!(matches.value_source(id), None | Some(clap::parser::ValueSource::DefaultValue))
        };
        Given { repo: given("repo"), rev: given("rev"), path: given("path"), state_dir: given("state_dir") }
    }
}

impl SourceArgs {
    /// These flags, with those not given taken from where a saved plan was made.
    pub fn or_made_from(mut self, given: Given, made: &reconciler::plan::MadeFrom) -> SourceArgs {
        if !given.repo {
            self.repo.clone_from(&made.repo);
        }
        if !given.rev && !self.worktree {
            self.rev.clone_from(&made.rev);
        }
        if !given.path {
            self.path.clone_from(&made.path);
        }
        if !given.state_dir {
            self.state_dir = Some(PathBuf::from(&made.state_dir));
        }
        self
    }

    /// The state directory: as given, or `.patchops` at the root of the fleet repository.
    pub fn state_dir(&self) -> PathBuf {
        state_dir_or_default(self.state_dir.as_deref(), &self.repo)
    }

    /// Where the fleet is.
    pub fn source(&self) -> SourceOptions {
        SourceOptions {
            repo: self.repo.clone(),
            rev: self.rev.clone(),
            path: self.path.clone(),
            worktree: self.worktree,
            cache_dir: self.cache_dir.clone().unwrap_or_else(default_cache_dir),
            limits: reconciler::source::Limits {
                file_bytes: self.max_file_mib.saturating_mul(1 << 20),
                fleet_bytes: self.max_fleet_mib.saturating_mul(1 << 20),
            },
        }
    }

    /// The context this process runs in: the state directory, secrets from this process's
    /// environment (`{ env: NAME }`), the system clock, and which commits are admitted (the
    /// commit signers of the state directory or `--commit-signers`, and `--verify-commits`).
    pub fn context(&self) -> Result<Context, reconciler::ops::OpsError> {
        use reconciler::source::signature::{CommitPolicy, ModeChoice};
        let mode = self.verify_commits.map(|m| match m {
            VerifyCommits::Off => ModeChoice::Off,
            VerifyCommits::Head => ModeChoice::Head,
            VerifyCommits::Strict => ModeChoice::Strict,
        });
        let state_dir = self.state_dir();
        let policy = CommitPolicy::load(&state_dir, self.commit_signers.as_deref(), mode)
            .map_err(reconciler::source::SourceError::from)?;
        // `{ file: PATH }` secrets are relative to the fleet repository's root, as the state
        // directory is: the same fleet reads the same files from any directory.
        let mut secrets = reconciler::model::Secrets::with_env(|name| std::env::var(name).ok());
        if let Some(root) = reconciler::source::local_root(&self.repo) {
            secrets = secrets.relative_to(relative_if_here(&root));
        }
        Ok(Context::new(StateDir::new(&state_dir), secrets).with_commit_policy(policy).with_actor(actor()))
    }
}

/// The account and host this process runs as, for the audit log (from the system, not from
/// environment variables a caller could set to anything).
fn actor() -> reconciler::state::Actor {
    reconciler::state::Actor {
        user: whoami::account().unwrap_or_else(|_| "unknown".into()),
        host: whoami::hostname().unwrap_or_else(|_| "unknown".into()),
    }
}

/// `given`, or `.patchops` at the root of the work tree of the git repository `repo` is in
/// (its own directory for a bare repository); for a URL or a directory outside git, `.patchops`
/// in `repo` itself (the current directory for a URL). Running from a subdirectory therefore
/// finds the same state (ring history, catalog serials, emulators) as running from the root.
pub fn state_dir_or_default(given: Option<&std::path::Path>, repo: &str) -> PathBuf {
    if let Some(dir) = given {
        return dir.to_path_buf();
    }
    match reconciler::source::local_root(repo) {
        Some(root) => relative_if_here(&root).join(".patchops"),
        None => PathBuf::from(".patchops"),
    }
}

/// `dir` as `.` when it is the current directory (messages stay short), else as it is.
fn relative_if_here(dir: &std::path::Path) -> PathBuf {
    let here = std::env::current_dir().ok().and_then(|d| std::fs::canonicalize(d).ok());
    match (here, std::fs::canonicalize(dir).ok()) {
        (Some(h), Some(d)) if h == d => PathBuf::new(),
        _ => dir.to_path_buf(),
    }
}

fn default_cache_dir() -> PathBuf {
    // The one place the CLI reads the environment for a default path.
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("XDG_CACHE_HOME")
        .or_else(|| var("HOME").map(|h| h.join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".patchops-cache"))
        .join("patchops")
}

pub fn init_logging(global: &Global) {
    // rustls-platform-verifier logs a refused certificate at error level, and patchops reports
    // the same refusal as its error: shown once, except at -vv.
    let level = match global.verbose {
        0 => "warn,rustls_platform_verifier=off",
        1 => "info,rustls_platform_verifier=off",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    use std::io::IsTerminal;
    let ansi = match global.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}

fn stream_choice(c: ColorChoice) -> anstream::ColorChoice {
    match c {
        ColorChoice::Auto => anstream::ColorChoice::Auto,
        ColorChoice::Always => anstream::ColorChoice::Always,
        ColorChoice::Never => anstream::ColorChoice::Never,
    }
}

/// Whether stdout gets colour: `--color`, `NO_COLOR` and whether stdout is a terminal.
pub fn stdout_color(c: ColorChoice) -> bool {
    use std::io::IsTerminal;
    match c {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

/// Writes to stdout, stripping styles when they are not wanted.
pub fn out(color: ColorChoice, text: &str) {
    let mut s = anstream::AutoStream::new(std::io::stdout(), stream_choice(color));
    let _ = s.write_all(text.as_bytes());
}

const ERR: anstyle::Style = anstyle::AnsiColor::Red.on_default().bold();
const WARN: anstyle::Style = anstyle::AnsiColor::Yellow.on_default().bold();

/// Prints `error: …` on stderr.
pub fn print_error(msg: &str) {
    let mut s = anstream::stderr();
    let _ = writeln!(s, "{ERR}error{ERR:#}: {msg}");
}

/// Prints `warning: …` on stderr.
pub fn print_warning(msg: &str) {
    let mut s = anstream::stderr();
    let _ = writeln!(s, "{WARN}warning{WARN:#}: {msg}");
}

/// Prints an operation's error the way users read it.
pub fn report(e: &OpsError) {
    match e {
        OpsError::Fleet(d) => {
            for diag in &d.0 {
                print_error(&diag.to_string());
            }
            let n = d.0.len();
            print_error(&format!("the fleet has {n} error{}; nothing was planned", if n == 1 { "" } else { "s" }));
        }
        other => {
            // An error of several causes has one per line, each its own error; an indented
            // line details the one before it.
            let mut s = anstream::stderr();
            for line in other.to_string().lines() {
                if line.starts_with(char::is_whitespace) {
                    let _ = writeln!(s, "{line}");
                } else {
                    print_error(line);
                }
            }
            if let Some(help) = other.help() {
                let _ = writeln!(s, "help: {help}");
            }
        }
    }
}

pub async fn run(cli: Cli) -> u8 {
    let color = cli.global.color;
    match cli.command {
        Command::Validate(ReportArgs { source: args, format }) => {
            let ctx = match args.context() {
                Ok(ctx) => ctx,
                Err(e) => return report_as(format, &e),
            };
            match reconciler::ops::validate(&ctx, &args.source()).await {
                Ok(validated) if format == ReportFormat::Json => {
                    print_json(&reconciler::ops::report::ValidateReport::of(&validated))
                }
                Ok(validated) => {
                    let v = &validated.loaded;
                    for w in &reconciler::ops::pipeline::warnings(v) {
                        print_warning(&w.to_string());
                    }
                    let catalogs: Vec<String> = v
                        .catalogs
                        .values()
                        .map(|c| format!("{} serial {} (key {})", c.source_name(), c.serial(), c.key_id()))
                        .collect();
                    out(
                        color,
                        &format!(
                            "fleet is valid: {} products, {} platforms, {} rollouts, {} catalog sources at {}\ncatalogs verified: {}\npolicies applied: {}; every change the fleet asks for is permitted\n",
                            v.fleet.products.len(),
                            v.fleet.platforms.len(),
                            v.fleet.rollouts.len(),
                            v.fleet.catalog_sources.len(),
                            v.snapshot.provenance(),
                            catalogs.join(", "),
                            validated.policies.join(", ")
                        ),
                    );
                    EXIT_OK
                }
                Err(e) => report_as(format, &e),
            }
        }
        Command::Plan(args) => plan::run(args, color).await,
        Command::Apply(args) => apply::run(args, color).await,
        Command::Run(args) => run::run(args).await,
        Command::Status(ReportArgs { source: args, format }) => apply::status(args, format, color).await,
        Command::Suspend(args) => suspend::suspend(args, color),
        Command::Resume(args) => suspend::resume(args, color),
        Command::History(args) => apply::history(args, color),
        Command::Doctor(args) => doctor::run(args, color).await,
        Command::Catalog(cmd) => catalog::run(cmd, color).await,
        Command::Policy(cmd) => policy::run(cmd, color),
        Command::Emulate(args) => emulate::run(args).await,
        Command::Package(cmd) => package::run(cmd, color),
        Command::Inventory(cmd) => inventory::run(cmd, color).await,
        Command::Schemas { out: dir, check } => schemas(&dir, check, color),
        Command::Completions { shell } => {
            // Rendered into memory first: clap_complete panics on a failed write (a closed pipe).
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "patchops", &mut script);
            match std::io::stdout().write_all(&script) {
                Ok(()) => EXIT_OK,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => EXIT_OK,
                Err(e) => {
                    print_error(&format!("cannot write the completion script: {e}"));
                    EXIT_ERROR
                }
            }
        }
        Command::Man { out: dir } => man(&dir, color),
    }
}

/// Writes the man pages of the command and of every subcommand (nested ones as
/// `patchops-catalog-sign.1`).
fn man(dir: &std::path::Path, color: ColorChoice) -> u8 {
    fn pages(cmd: &clap::Command, name: &str, out: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
        let cmd = cmd.clone().name(name.to_string());
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
        out.push((format!("{name}.1"), page));
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            pages(sub, &format!("{name}-{}", sub.get_name()), out)?;
        }
        Ok(())
    }
    let mut cmd = <Cli as clap::CommandFactory>::command();
    cmd.build();
    let mut written = Vec::new();
    if let Err(e) = pages(&cmd, "patchops", &mut written) {
        print_error(&format!("cannot render the man pages: {e}"));
        return EXIT_ERROR;
    }
    if let Err(e) = std::fs::create_dir_all(dir) {
        print_error(&format!("cannot create {}: {e}", dir.display()));
        return EXIT_ERROR;
    }
    for (name, page) in &written {
        let path = dir.join(name);
        if let Err(e) = std::fs::write(&path, page) {
            print_error(&format!("cannot write {}: {e}", path.display()));
            return EXIT_ERROR;
        }
    }
    out(color, &format!("wrote {} man pages to {}\n", written.len(), dir.display()));
    EXIT_OK
}

fn schemas(dir: &std::path::Path, check: bool, color: ColorChoice) -> u8 {
    let mut stale = Vec::new();
    for (name, text) in reconciler::schema::all() {
        let path = dir.join(&name);
        if check {
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                stale.push(path.display().to_string());
            }
            continue;
        }
        if let Err(e) = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, text)) {
            print_error(&format!("cannot write {}: {e}", path.display()));
            return EXIT_ERROR;
        }
        out(color, &format!("wrote {}\n", path.display()));
    }
    if !stale.is_empty() {
        print_error(&format!(
            "schemas are out of date: {}; regenerate them with `cargo run -- schemas --out {}`",
            stale.join(", "),
            dir.display()
        ));
        return EXIT_ERROR;
    }
    EXIT_OK
}
