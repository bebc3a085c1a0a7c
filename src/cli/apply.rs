//! `patchops apply`, `status` and `history`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;
use reconciler::apply::Outcome;
use reconciler::ops::ApplyOptions;
use reconciler::plan::{render, Plan};

use super::{out, print_error, print_warning, stdout_color, ColorChoice, SourceArgs, EXIT_ERROR, EXIT_OK};

#[derive(Debug, Args)]
#[command(after_long_help = "\
apply plans like `patchops plan`, shows the plan, and asks for confirmation on a terminal
(type `yes`); elsewhere it needs --auto-approve. Given PLANFILE (from `plan --out`), it
applies exactly that plan without asking (the plan was reviewed when it was made), reading the
repository, revision, fleet path and state directory the plan was made with unless flags say
otherwise. It refuses the plan as stale when a file it was made from (the fleet's documents, a
catalog or policy module in the repository), a catalog's serial, or an object on a platform
changed since, and says which; another commit with the same content (the merge of the pull
request the plan was made on, a README change) is not a change.

Only changes that every policy permits are applied; changes waiting for a ring's soak time,
a maintenance window or the change budget are left for a later run. One product failing does
not stop the others. Every action is journaled and audited under the state directory
(`patchops history`); a run that crashed is recovered by the next one.

Exit codes: 0 the fleet's desired state is reached, or everything left is waiting (a ring's
soak, a window, the change budget); 1 it is not: an error, a failed action, a change denied by
policy, a product that cannot be planned, or a refusal (a stale or edited plan file, the
mass-retire guard, a held lock).")]
pub struct ApplyArgs {
    /// A saved plan to apply exactly (JSON from `patchops plan --out`). It says where it was
    /// made from: flags given here override that.
    pub planfile: Option<PathBuf>,
    /// Which source flags were given (set after parsing).
    #[arg(skip)]
    pub given: super::Given,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Apply without asking for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    /// Allow one run to retire more than --max-retire-share of a platform's managed objects.
    #[arg(long)]
    pub allow_mass_retire: bool,
    /// The share of a platform's managed objects one run may retire, from 0 to 1.
    #[arg(long, default_value_t = reconciler::ops::DEFAULT_MAX_RETIRE_SHARE, value_parser = share)]
    pub max_retire_share: f64,
    /// Output format: text, or one JSON document of what was applied
    /// (schemas/apply-report.schema.json; needs --auto-approve or PLANFILE: nothing is asked).
    #[arg(long, value_enum, default_value_t = super::ReportFormat::Text)]
    pub format: super::ReportFormat,
}

fn share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a share between 0 and 1 (such as 0.3)")),
    }
}

pub async fn run(mut args: ApplyArgs, color: ColorChoice) -> u8 {
    let saved_plan = match &args.planfile {
        None => None,
        Some(path) => match std::fs::read(path).map_err(|e| e.to_string()).and_then(|b| {
            let plan = serde_json::from_slice::<Plan>(&b).map_err(|e| format!("not a patchops plan ({e})"))?;
            Ok((plan, reconciler::vocab::Sha256::digest(&b)))
        }) {
            Ok(p) => Some(p),
            Err(e) => {
                print_error(&format!("{}: {e}; make one with `patchops plan --out FILE`", path.display()));
                return EXIT_ERROR;
            }
        },
    };
    // Who approves: a reviewed plan file (by its digest), --auto-approve, or the prompt below.
    let approval = match (&args.planfile, &saved_plan) {
        (Some(path), Some((_, sha256))) => {
            reconciler::ops::Approval::PlanFile { path: path.display().to_string(), sha256: *sha256 }
        }
        _ if args.auto_approve => reconciler::ops::Approval::AutoApprove,
        _ => reconciler::ops::Approval::Prompt,
    };
    let saved_plan = saved_plan.map(|(plan, _)| plan);
    // A saved plan says where it was made from; flags given override it.
    if let Some(made) = saved_plan.as_ref().and_then(|p| p.made_from.as_ref()) {
        args.source = args.source.clone().or_made_from(args.given, made);
        // The state directory holds the trust evidence (catalog serials seen, ring history): a
        // plan file is only a file, so the one it names must be one that exists (`plan` made
        // it), never a fresh directory where no history would be found.
        if !args.given.state_dir && !args.source.state_dir().join("state.db").is_file() {
            print_error(&format!(
                "the plan file names the state directory {}, which holds no state database; pass --state-dir with the one the plan was made with",
                args.source.state_dir().display()
            ));
            return EXIT_ERROR;
        }
        tracing::info!(repo = %args.source.repo, path = %args.source.path, state_dir = %args.source.state_dir().display(), "sources from the plan file");
    }
    let ctx = match args.source.context() {
        Ok(ctx) => ctx.with_progress(super::progress::for_stderr()),
        Err(e) => return super::report_as(args.format, &e),
    };
    // Crash tests: abort at a named point (see reconciler::failpoint).
    if let Ok(spec) = std::env::var("PATCHOPS_FAILPOINT") {
        if let Err(e) = reconciler::failpoint::arm(&spec) {
            print_error(&format!("PATCHOPS_FAILPOINT: {e}"));
            return EXIT_ERROR;
        }
    }
    let options = ApplyOptions {
        saved_plan,
        allow_mass_retire: args.allow_mass_retire,
        max_retire_share: Some(args.max_retire_share),
    };
    let json = args.format == super::ReportFormat::Json;
    if json && !args.auto_approve && args.planfile.is_none() {
        let msg = "--format json asks nothing: pass --auto-approve, or apply a reviewed plan file";
        print_error(msg);
        super::print_json(&reconciler::ops::report::ErrorReport::message("ConfirmationNeeded", msg));
        return EXIT_ERROR;
    }
    let prepared = match reconciler::ops::prepare_apply(&ctx, &args.source.source(), options).await {
        Ok(p) => p,
        Err(e) => return super::report_as(args.format, &e),
    };
    for w in &prepared.warnings {
        print_warning(&w.to_string());
    }
    for i in &prepared.interrupted {
        print_warning(&format!(
            "run {} was interrupted during {} (last step: {} {}); this run re-plans from what the platforms hold now",
            i.run, i.subject, i.step, i.detail
        ));
    }
    let plan = &prepared.plan;
    if !json {
        let mut text = Vec::new();
        let _ = render::text_to_writer(plan, false, stdout_color(color), &mut text);
        let _ = std::io::stdout().write_all(&text);
    }
    let applicable = plan.applicable().count();
    let waiting = plan.summary.waiting;
    // The desired state is not reached when a change is denied or a product cannot be planned,
    // even if everything else is applied.
    let unreachable = plan.summary.denied > 0 || !plan.errors.is_empty();
    if applicable == 0 {
        // The platforms already hold what this catalog asks: it is in effect.
        if let Err(e) = prepared.record_catalogs() {
            return super::report_as(args.format, &e);
        }
        if json {
            let doc = reconciler::ops::report::ApplyReport::of(plan, None, &prepared.interrupted, &prepared.warnings);
            let code = super::print_json(&doc);
            return if unreachable { EXIT_ERROR } else { code };
        }
        out(color, "\nNothing to apply.\n");
        return if unreachable { EXIT_ERROR } else { EXIT_OK };
    }
    // A saved plan was reviewed when it was made (as Terraform applies a saved plan): applying
    // it is the approval.
    if !args.auto_approve && args.planfile.is_none() {
        if !std::io::stdin().is_terminal() {
            print_error("refusing to apply without confirmation: stdin is not a terminal; review the plan and pass --auto-approve");
            return EXIT_ERROR;
        }
        print!("\nApply these {applicable} change(s)? Only `yes` is accepted: ");
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if answer.trim() != "yes" {
            out(color, "Apply cancelled; nothing was changed.\n");
            return EXIT_ERROR;
        }
    }
    if !json {
        println!();
    }
    let (plan, interrupted, warnings) =
        (prepared.plan.clone(), prepared.interrupted.clone(), prepared.warnings.clone());
    let applied = match prepared.execute(approval).await {
        Ok(a) => a,
        Err(e) => return super::report_as(args.format, &e),
    };
    if json {
        let doc = reconciler::ops::report::ApplyReport::of(&plan, Some(&applied), &interrupted, &warnings);
        let code = super::print_json(&doc);
        return if doc.ok { code } else { EXIT_ERROR };
    }
    let mut s = String::new();
    let (mut ok, mut failed) = (0, 0);
    for r in &applied.reports {
        let a = &r.action;
        let ring = a.ring.as_deref().map(|r| format!(" / {r}")).unwrap_or_default();
        let version = a.version.as_deref().map(|v| format!(" {v}")).unwrap_or_default();
        let head = format!("{} {}{version} on {}{ring}", a.action.as_str(), a.product, a.platform);
        match &r.outcome {
            Outcome::Succeeded { object_id } => {
                ok += 1;
                let id = object_id.as_deref().map(|i| format!(" (object {i})")).unwrap_or_default();
                s += &format!("  ✓ {head}{id}\n");
            }
            Outcome::Failed(e) => {
                failed += 1;
                s += &format!("  ✗ {head}: {e}\n");
            }
            Outcome::Skipped(why) => {
                failed += 1;
                s += &format!("  - {head}: skipped ({why})\n");
            }
        }
        for w in &r.warnings {
            s += &format!("      warning from policy {}: {}\n", w.policy, w.message);
        }
    }
    for (a, denials) in &applied.denied {
        for d in denials {
            s += &format!(
                "  ⛔ {} {} on {}: denied by policy {}: {}\n",
                a.action.as_str(),
                a.product,
                a.platform,
                d.policy,
                d.message
            );
        }
    }
    s += &format!(
        "\nApply complete: {ok} succeeded, {failed} failed{}{}.\n",
        if applied.denied.is_empty() { String::new() } else { format!(", {} denied", applied.denied.len()) },
        if waiting > 0 { format!(", {waiting} waiting for a later run") } else { String::new() }
    );
    out(color, &s);
    if failed > 0 || unreachable || !applied.denied.is_empty() {
        EXIT_ERROR
    } else {
        EXIT_OK
    }
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// State directory [default: .patchops at the root of the git repository the current
    /// directory is in, else in the current directory].
    #[arg(long, value_name = "DIR", env = "PATCHOPS_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Only this Product (fleet name or catalog id).
    #[arg(long)]
    pub product: Option<String>,
    /// At most this many records, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Print JSON lines (one audit record per line) instead of text.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Output format: text, or one JSON document (schemas/history-report.schema.json).
    #[arg(long, value_enum, default_value_t = super::ReportFormat::Text)]
    pub format: super::ReportFormat,
}

pub fn history(args: HistoryArgs, color: ColorChoice) -> u8 {
    let state = reconciler::state::StateDir::new(super::state_dir_or_default(args.state_dir.as_deref(), "."));
    let records = match state.db().and_then(|db| db.history(args.product.as_deref(), args.limit)) {
        Ok(r) => r,
        Err(e) => {
            print_error(&e.to_string());
            if args.format == super::ReportFormat::Json {
                super::print_json(&reconciler::ops::report::ErrorReport::message(e.reason(), e.to_string()));
            }
            return EXIT_ERROR;
        }
    };
    if args.format == super::ReportFormat::Json {
        return super::print_json(&reconciler::ops::report::HistoryReport { records });
    }
    if args.json {
        let mut s = String::new();
        for r in &records {
            s += &serde_json::to_string(r).unwrap_or_default();
            s.push('\n');
        }
        out(color, &s);
        return EXIT_OK;
    }
    if records.is_empty() {
        out(color, "No actions recorded yet (the audit log fills as `patchops apply` runs).\n");
        return EXIT_OK;
    }
    let mut s = String::new();
    for r in &records {
        let ring = r.ring.as_deref().map(|x| format!(" / {x}")).unwrap_or_default();
        s += &format!(
            "{}  {:<9} {} {}{} on {}{ring}: {}\n",
            r.at.format("%Y-%m-%d %H:%M:%S"),
            r.outcome,
            r.action,
            r.product,
            r.version.as_deref().map(|v| format!(" {v}")).unwrap_or_default(),
            r.platform,
            r.message
        );
        s += &format!(
            "    from {}; catalog {} serial {}; content {}; {}; object {}\n",
            r.source,
            r.catalog.as_deref().unwrap_or("-"),
            r.catalog_serial.map_or("-".into(), |n| n.to_string()),
            r.content_sha256.as_deref().map_or("-", |c| c.get(..16).unwrap_or(c)),
            r.policy,
            r.object_id.as_deref().unwrap_or("-"),
        );
        if let Some(approval) = &r.approval {
            let by = match (&r.user, &r.host) {
                (Some(u), Some(h)) => format!(" by {u}@{h}"),
                (Some(u), None) => format!(" by {u}"),
                _ => String::new(),
            };
            let signed = r.commit_signer.as_deref().map(|s| format!("; commit signed by {s}")).unwrap_or_default();
            s += &format!("    approved: {approval}{by}{signed}\n");
        }
    }
    out(color, &s);
    EXIT_OK
}

pub async fn status(args: SourceArgs, format: super::ReportFormat, color: ColorChoice) -> u8 {
    let ctx = match args.context() {
        Ok(ctx) => ctx,
        Err(e) => return super::report_as(format, &e),
    };
    let status = match reconciler::ops::status(&ctx, &args.source()).await {
        Ok(s) => s,
        Err(e) => return super::report_as(format, &e),
    };
    if format == super::ReportFormat::Json {
        return super::print_json(&reconciler::ops::report::StatusReport::of(&status));
    }
    for w in &status.warnings {
        super::print_warning(&w.to_string());
    }
    let mut s = String::new();
    if let reconciler::source::signature::CommitVerdict::Verified { .. } = &status.commit {
        s += &format!("{}\n\n", status.commit);
    }
    for x in &status.suspended {
        let why = if x.reason.is_empty() { String::new() } else { format!(": {}", x.reason) };
        s += &format!("suspended: {} since {}{why}\n", x.scope, x.since.format("%Y-%m-%d %H:%M UTC"));
    }
    if !status.suspended.is_empty() {
        s.push('\n');
    }
    s += &format!(
        "{:<20} {:<16} {:<16} {:<26} {:<13} {:<50}  {}\n",
        "PRODUCT", "PLATFORM", "VERSION", "RINGS (GROUPS)", "COMMIT", "LAST RESULT", "SYNC"
    );
    let list = |v: &[String]| if v.is_empty() { "-".to_string() } else { v.join(",") };
    for t in &status.targets {
        let last = t
            .last
            .as_ref()
            .map(|r| format!("{} {} {} ({})", r.action, r.outcome, r.at.format("%Y-%m-%d %H:%M"), r.source))
            .unwrap_or_else(|| "never applied".into());
        s += &format!(
            "{:<20} {:<16} {:<16} {:<26} {:<13} {:<50}  {}\n",
            t.product,
            t.platform,
            list(&t.versions),
            list(&t.groups),
            list(&t.commits),
            last,
            t.sync
        );
    }
    out(color, &s);
    EXIT_OK
}
