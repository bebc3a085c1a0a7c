//! `patchops doctor`: each platform's own trust, link by link.

use clap::Args;
use reconciler::doctor::{PlatformReport, Verdict};

use super::{out, ColorChoice, SourceArgs, EXIT_ERROR, EXIT_OK};

#[derive(Debug, Args)]
#[command(after_long_help = "\
Checks, for every Platform of the fleet (or the one named), each link of the trust that lets
devices install what patchops publishes, and says which link fails and what to do:

  WSUS        the server's signing certificate (present, code-signing usage, RSA >= 2048,
              validity, timestamping), whether clients allow signed intranet updates, hold the
              certificate in Trusted Publishers and, when it is self-signed, in Trusted Root
              (as `trust.clients` describes them), and a trial install of a published update
              on an emulated Windows client set up the same way: it installs only if the CAB's
              signature verifies and every link above holds.
  ConfigMgr   the AdminService account's security roles (creating and deploying
              applications), and the script-signing certificate on AllSigned sites.
  Intune      certificate (not secret) sign-in and the certificate's validity.

Exit code 0 when nothing fails, 1 when a link fails.

Example:
  patchops doctor --path examples/fleet
  patchops doctor --path fleet --platform wsus-hq")]
pub struct DoctorArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Check only this Platform.
    #[arg(long)]
    pub platform: Option<String>,
    /// Output format: text, or JSON (schemas/doctor-report.schema.json).
    #[arg(long, value_enum, default_value_t = super::ReportFormat::Text)]
    pub format: super::ReportFormat,
}

const OK: anstyle::Style = anstyle::AnsiColor::Green.on_default();
const BAD: anstyle::Style = anstyle::AnsiColor::Red.on_default().bold();
const MEH: anstyle::Style = anstyle::AnsiColor::Yellow.on_default();

pub async fn run(args: DoctorArgs, color: ColorChoice) -> u8 {
    let ctx = match args.source.context() {
        Ok(ctx) => ctx,
        Err(e) => return super::report_as(args.format, &e),
    };
    let reports = match reconciler::ops::doctor(
        &ctx,
        &args.source.source(),
        &reconciler::ops::DoctorOptions { platform: args.platform.clone(), at: None },
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return super::report_as(args.format, &e),
    };
    if args.format == super::ReportFormat::Json {
        let doc = reconciler::ops::report::DoctorReport::of(&reports);
        let code = super::print_json(&doc);
        return if doc.ok { code } else { EXIT_ERROR };
    }
    let mut text = String::new();
    for r in &reports {
        text.push_str(&render(r));
    }
    let failed: Vec<&PlatformReport> = reports.iter().filter(|r| r.verdict() == Verdict::Fail).collect();
    if failed.is_empty() {
        text.push_str(&format!("{OK}doctor: no link fails on {} platform(s){OK:#}\n", reports.len()));
    } else {
        let names: Vec<&str> = failed.iter().map(|r| r.platform.as_str()).collect();
        text.push_str(&format!("{BAD}doctor: a trust link fails on {}{BAD:#}\n", names.join(", ")));
    }
    out(color, &text);
    if failed.is_empty() {
        EXIT_OK
    } else {
        EXIT_ERROR
    }
}

fn render(r: &PlatformReport) -> String {
    let mut s = format!("{} ({}, {})\n", r.platform, r.ty.as_str(), r.endpoint);
    for c in &r.checks {
        let (mark, style) = match c.verdict {
            Verdict::Pass => ("✓", OK),
            Verdict::Warn => ("!", MEH),
            Verdict::Unknown => ("?", MEH),
            Verdict::Fail => ("✗", BAD),
        };
        s.push_str(&format!("  {style}{mark}{style:#} {}: {}\n", c.link, c.detail));
        if let Some(fix) = &c.fix {
            s.push_str(&format!("      fix: {fix}\n"));
        }
    }
    s.push('\n');
    s
}
