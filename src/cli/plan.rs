//! `patchops plan`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use reconciler::plan::dry_run::{DryRun, DryRunOutcome};
use reconciler::plan::render;

use super::{
    print_error, print_warning, report, stdout_color, ColorChoice, SourceArgs, EXIT_CHANGES, EXIT_ERROR, EXIT_OK,
    EXIT_ONLY_WAITING,
};

#[derive(Debug, Args)]
#[command(after_long_help = "\
Exit codes: 0 success; 1 error, or a plan apply would refuse or could not carry out (a product
that cannot be planned, a guard such as the mass-retire guard — each is shown, and the rest is
still planned); with --detailed-exitcode, 2 when the plan has changes (as `terraform plan
-detailed-exitcode`), and 3 when its only changes are waiting (for a ring's soak, a
maintenance window or the change budget). Changes denied by policy are shown and counted; they
make `apply` exit 1.

With --base REV, the plan is the pull-request view: what this change does relative to REV (for
a pull request, the target branch). It shows the desired-state differences between REV and the
head (objects added, removed or changed, field by field; catalog serials; files), the actions
that exist only because of the change, those it stops from happening, and, apart, the actions
already pending on the base (drift, rings waiting for their soak). Waiting actions say until
when; denials and errors stand out. The base is read from the same repository and path, and is
not verified (nothing acts on it); the head is. --out still saves the head's whole plan, and
the exit codes are the head plan's.

  patchops plan --base origin/main --format markdown > comment.md

With --emulate (and --inventory DIR), the head's plan is also applied to emulators of its
platforms seeded from the recording — the same requests apply would send, judged by the
emulators' checks: Graph's metadata and content commit, the SDP and SDMPackageXML checks,
AllSigned script signatures, supersedence and deletion rules. Credentials are throwaway ones
made for the run (no secret is needed; `patchops doctor` checks the real ones). Any action
refused makes the exit code 1; the report also names objects an emulator shows differently
from the recording.

  patchops inventory record --out inventory/     # where the credentials are
  patchops plan --inventory inventory/ --emulate # in the pull request's CI

A saved plan (--out) is the JSON plan: it records the fleet commit, the catalog serial and
digest, and a fingerprint of each platform's observed state, so that applying it later can
be refused as stale when any of them changed.")]
pub struct PlanArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Output format: text for a terminal, markdown for a pull-request comment, json for machines.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also save the plan (JSON, with the fingerprints of its inputs) to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Exit 2 when there are changes, 0 when there are none, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// List deployments that are already as desired (text format).
    #[arg(long)]
    pub show_unchanged: bool,
    /// Observe every Platform from the recording in DIR (`patchops inventory record`) instead
    /// of its endpoint: no credentials, no network.
    #[arg(long, value_name = "DIR")]
    pub inventory: Option<PathBuf>,
    /// Show what this change does relative to REV (a branch, tag or commit of the same
    /// repository): the pull-request view (JSON: schemas/plan-change.schema.json).
    #[arg(long, value_name = "REV", conflicts_with = "show_unchanged")]
    pub base: Option<String>,
    /// Also apply the plan to emulators seeded from the --inventory recording and report every
    /// action an emulator refuses (a dry run: nothing is applied or recorded; JSON: `emulated`).
    #[arg(long, requires = "inventory")]
    pub emulate: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// Field diffs for a terminal, coloured when it is one.
    Text,
    /// Compact Markdown, capped in size for a pull-request comment.
    Markdown,
    /// Stable JSON (schemas/plan.schema.json).
    Json,
}

pub async fn run(args: PlanArgs, color: ColorChoice) -> u8 {
    let mut kept = None;
    let code = plan_and_show(args, color, &mut kept).await;
    // A one-shot process: the system takes the plan's memory back at exit at once, where
    // freeing its hundreds of thousands of allocations one by one costs tens of milliseconds at
    // 10,000 products (BENCHMARKS.md). Nothing in it needs dropping: no file, lock or
    // connection. (clang's driver does the same: `-disable-free`.)
    std::mem::forget(kept);
    code
}

/// The plan and the `--base` view, kept to the end of the process.
type Kept = Option<(reconciler::ops::Planned, Option<reconciler::plan::change::Change>)>;

async fn plan_and_show(args: PlanArgs, color: ColorChoice, kept: &mut Kept) -> u8 {
    let ctx = match args.source.context() {
        Ok(ctx) => match &args.inventory {
            Some(dir) => ctx.with_recorded_inventory(dir.clone()),
            None => ctx,
        },
        Err(e) => {
            report(&e);
            return EXIT_ERROR;
        }
    };
    let (planned, change) = match &args.base {
        None => match reconciler::ops::plan(&ctx, &args.source.source()).await {
            Ok(p) => (p, None),
            Err(e) => {
                report(&e);
                return EXIT_ERROR;
            }
        },
        Some(base) => match reconciler::ops::plan_change(&ctx, &args.source.source(), base).await {
            Ok(c) => (c.head, Some(c.change)),
            Err(e) => {
                report(&e);
                return EXIT_ERROR;
            }
        },
    };
    let (planned, change) = kept.insert((planned, change));
    let (planned, change) = (&*planned, &*change);
    for w in &planned.warnings {
        print_warning(&w.to_string());
    }
    if let Some(e) = change.as_ref().and_then(|c| c.base_error.as_ref()) {
        print_warning(&format!("{e}; every action is shown as this change's"));
    }
    // The dry run first: the JSON output carries it.
    let dry_run = if args.emulate {
        match reconciler::ops::emulate(&ctx, planned).await {
            Ok(e) => Some(e.report(&args.inventory.as_deref().map(|d| d.display().to_string()).unwrap_or_default())),
            Err(e) => {
                report(&e);
                return EXIT_ERROR;
            }
        }
    } else {
        None
    };
    let plan = &planned.plan;
    // The Markdown comment stays under the limit with the dry run's section in it.
    let section = match (&dry_run, args.format) {
        (Some(d), Format::Markdown) => render_emulated_markdown(d),
        (Some(d), Format::Text) => render_emulated_text(d),
        _ => String::new(),
    };
    let limit = render::MARKDOWN_LIMIT.saturating_sub(section.len()).max(render::MARKDOWN_LIMIT / 2);
    let written = match (args.format, &change) {
        (Format::Text, Some(c)) => {
            std::io::Write::write_all(&mut std::io::stdout().lock(), render::change_text(c).as_bytes())
        }
        (Format::Markdown, Some(c)) => {
            std::io::Write::write_all(&mut std::io::stdout().lock(), render::change_markdown(c, limit).as_bytes())
        }
        (Format::Json, Some(c)) => {
            let shown = reconciler::plan::change::Change { emulated: dry_run.clone(), ..c.clone() };
            serde_json::to_writer_pretty(std::io::BufWriter::new(std::io::stdout().lock()), &shown)
                .map_err(std::io::Error::other)
                .and_then(|()| std::io::Write::write_all(&mut std::io::stdout().lock(), b"\n"))
        }
        (format, None) => match format {
            // The renderer writes styles only when colour is on, so its text goes straight out.
            Format::Text => render::text_to_writer(
                plan,
                args.show_unchanged,
                stdout_color(color),
                std::io::BufWriter::new(std::io::stdout().lock()),
            ),
            // Machine formats carry no styles: written straight out, never through the stripper.
            Format::Markdown => {
                std::io::Write::write_all(&mut std::io::stdout().lock(), render::markdown(plan, limit).as_bytes())
            }
            Format::Json => match &dry_run {
                None => render::json_to_writer(plan, std::io::BufWriter::new(std::io::stdout().lock())),
                Some(d) => render::json_to_writer(
                    &reconciler::plan::Plan { emulated: Some(d.clone()), ..plan.clone() },
                    std::io::BufWriter::new(std::io::stdout().lock()),
                ),
            },
        },
    };
    let written = written.and_then(|()| std::io::Write::write_all(&mut std::io::stdout().lock(), section.as_bytes()));
    if let Err(e) = written {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            print_error(&format!("cannot write the plan: {e}"));
            return EXIT_ERROR;
        }
    }
    if let Some(path) = &args.out {
        // The file says where it was made from, so that `apply FILE` needs no other flag.
        let mut to_save = plan.clone();
        to_save.made_from = Some(reconciler::plan::MadeFrom {
            repo: args.source.repo.clone(),
            rev: args.source.rev.clone(),
            path: args.source.path.clone(),
            state_dir: args.source.state_dir().display().to_string(),
        });
        let mut bytes = Vec::new();
        let saved = render::json_to_writer(&to_save, &mut bytes).map_err(|e| e.to_string());
        if let Err(e) = saved.and_then(|()| reconciler::state::write_atomic(path, &bytes).map_err(|e| e.to_string())) {
            print_error(&format!("cannot save the plan to {}: {e}", path.display()));
            return EXIT_ERROR;
        }
    }
    let refused = dry_run.as_ref().is_some_and(|d| !d.clean());
    for g in &plan.guards {
        print_error(g);
    }
    // Denials are shown (and make `apply` exit 1) but are not errors of the plan.
    let only_waiting = plan.has_changes() && plan.summary.denied == 0 && plan.applicable().next().is_none();
    if !plan.errors.is_empty() || !plan.guards.is_empty() || refused {
        EXIT_ERROR
    } else if args.detailed_exitcode && only_waiting {
        EXIT_ONLY_WAITING
    } else if args.detailed_exitcode && plan.has_changes() {
        EXIT_CHANGES
    } else {
        EXIT_OK
    }
}

fn render_emulated_text(d: &DryRun) -> String {
    let mut s = format!("\nDry run on emulators seeded from {} (plan --emulate; nothing applied):\n", d.recording);
    for p in &d.platforms {
        s += &format!("  {} ({}): {} object(s) seeded", p.name, p.platform_type.as_str(), p.seeded);
        if p.differs.is_empty() {
            s += ", observed as recorded\n";
        } else {
            s += &format!("; {} observed differently from the recording: {}\n", p.differs.len(), p.differs.join(", "));
        }
    }
    for a in &d.actions {
        let what = action_line(a);
        match (&a.outcome, &a.message) {
            (DryRunOutcome::Succeeded, _) => s += &format!("  ✓ {what}\n"),
            (DryRunOutcome::Refused, Some(why)) => s += &format!("  ✗ {what}\n      refused: {why}\n"),
            (_, Some(why)) => s += &format!("  ✗ {what}\n      {why}\n"),
            (_, None) => s += &format!("  ✗ {what}\n"),
        }
    }
    s += &format!("{}.\n", d.headline());
    s
}

fn action_line(a: &reconciler::plan::dry_run::DryRunAction) -> String {
    let ring = a.ring.as_ref().map(|r| format!(" / {r}")).unwrap_or_default();
    let version = a.version.as_ref().map(|v| format!("  {v}")).unwrap_or_default();
    format!("{:<11} {} → {}{ring}{version}", a.action, a.product, a.platform)
}

fn render_emulated_markdown(d: &DryRun) -> String {
    let escape = |t: &str| t.replace('|', "\\|").replace('\n', " ");
    let mut s = format!(
        "\n### Dry run on emulators (`plan --emulate`)\n\n**{}** — seeded from `{}`; nothing applied.\n\n",
        d.headline(),
        escape(&d.recording)
    );
    // At most this many rows (a comment has a size limit); the rest are counted.
    const ROWS: usize = 50;
    let refused: Vec<_> = d.actions.iter().filter(|a| a.outcome != DryRunOutcome::Succeeded).collect();
    if !refused.is_empty() {
        s += "| | Action | Refused because |\n|---|---|---|\n";
        let more = refused.len().saturating_sub(ROWS);
        for a in refused.into_iter().take(ROWS) {
            s += &format!(
                "| 🔴 | `{}` | {} |\n",
                escape(&action_line(a)),
                escape(a.message.as_deref().unwrap_or_default())
            );
        }
        if more > 0 {
            s += &format!("| | … and {more} more | the text output lists every one |\n");
        }
        s += "\n";
    }
    for p in d.platforms.iter().filter(|p| !p.differs.is_empty()) {
        s += &format!(
            "⚠️ `{}`: {} object(s) observed differently from the recording ({}); record the inventory again.\n\n",
            p.name,
            p.differs.len(),
            escape(&p.differs.join(", "))
        );
    }
    s
}
