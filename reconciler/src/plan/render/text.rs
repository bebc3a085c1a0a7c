use std::fmt::Write;

use anstyle::{AnsiColor, Style};

use super::{inputs_line, summary_line};
use crate::plan::{ActionKind, FieldChange, Plan};

/// The styles of the text plan; all plain when colour is off, so no escape codes are written
/// (and none need stripping).
struct Palette {
    add: Style,
    del: Style,
    chg: Style,
    dim: Style,
    bold: Style,
}

impl Palette {
    fn new(color: bool) -> Palette {
        if !color {
            let plain = Style::new();
            return Palette { add: plain, del: plain, chg: plain, dim: plain, bold: plain };
        }
        Palette {
            add: AnsiColor::Green.on_default(),
            del: AnsiColor::Red.on_default(),
            chg: AnsiColor::Yellow.on_default(),
            dim: Style::new().dimmed(),
            bold: Style::new().bold(),
        }
    }

    fn of(&self, kind: ActionKind) -> (Style, &'static str) {
        match kind {
            ActionKind::Publish => (self.add, "+"),
            ActionKind::Update | ActionKind::Reconfigure => (self.chg, "~"),
            ActionKind::Retire => (self.del, "-"),
            ActionKind::None => (self.dim, "="),
        }
    }
}

/// The plan for a terminal: one block per product, each action with its reason and field diffs
/// (each old value beside its new one), ANSI-styled when `color` is set. Unchanged deployments are counted,
/// and listed only when `show_unchanged` is set.
pub fn text(plan: &Plan, show_unchanged: bool, color: bool) -> String {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = text_to_writer(plan, show_unchanged, color, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Streams the text plan into `w`, one product block at a time, so that a plan of tens of
/// thousands of actions is never held as one string.
pub fn text_to_writer(
    plan: &Plan,
    show_unchanged: bool,
    color: bool,
    mut w: impl std::io::Write,
) -> std::io::Result<()> {
    let p = Palette::new(color);
    let (dim, bold, del) = (p.dim, p.bold, p.del);
    let mut out = String::new();
    let _ = writeln!(out, "{dim}{}{dim:#}\n", inputs_line(plan));
    let mut current_product = None;
    for a in &plan.actions {
        if a.action == ActionKind::None && !show_unchanged {
            continue;
        }
        if current_product != Some(&a.product) {
            if current_product.is_some() {
                out.push('\n');
            }
            w.write_all(out.as_bytes())?;
            out.clear();
            current_product = Some(&a.product);
            let origin = a.origin.as_deref().map(|o| format!(" {dim}({o}){dim:#}")).unwrap_or_default();
            let _ = writeln!(out, "{bold}{}{bold:#} {dim}{}{dim:#}{origin}", a.product, a.catalog_product);
        }
        let (style, sign) = p.of(a.action);
        let ring = a.ring.as_deref().unwrap_or("(no ring)");
        let group = a.group_name.as_deref().or(a.group.as_deref()).map(|g| format!(" [{g}]")).unwrap_or_default();
        let version = match (a.version.as_deref(), super::downgrade_from(a)) {
            (Some(v), Some(from)) => format!("  {v} {}(downgrade from {from}){:#}", p.del, p.del),
            (Some(v), None) => format!("  {v}"),
            (None, _) => String::new(),
        };
        let _ =
            writeln!(out, "  {style}{sign} {:<11}{style:#} {} / {ring}{group}{version}", a.action.as_str(), a.platform);
        if a.message.is_empty() {
            let _ = writeln!(out, "      {dim}{}{dim:#}", a.reason);
        } else {
            let _ = writeln!(out, "      {dim}{}: {}{dim:#}", a.reason, a.message);
        }
        for d in &a.denied {
            let _ = writeln!(out, "      {del}denied by policy {}{del:#}: {}", d.policy, d.message);
        }
        if let Some(w) = &a.waiting {
            let until = w.until.map(|t| format!(" (until {})", t.format("%Y-%m-%d %H:%M UTC"))).unwrap_or_default();
            let _ = writeln!(out, "      {}waiting{:#}: {}: {}{until}", p.chg, p.chg, w.reason, w.message);
        }
        // The planner lists object fields on the first ring that needs them only; later rings
        // carry their version and assignment.
        let changes: Vec<&FieldChange> = a.changes.iter().collect();
        write_diff(&mut out, &changes, &p);
    }
    for e in &plan.errors {
        let _ = writeln!(
            out,
            "{del}error{del:#}: Product {bold}{}{bold:#} ({}): {}: {}",
            e.product, e.origin, e.reason, e.message
        );
    }
    for (platform, n) in &plan.unmanaged {
        let _ =
            writeln!(out, "{dim}platform {platform}: {n} object(s) without patchops's marker are left alone{dim:#}");
    }
    if !out.is_empty() && !out.ends_with("\n\n") {
        out.push('\n');
    }
    let _ = writeln!(out, "{bold}{}{bold:#}", summary_line(plan));
    w.write_all(out.as_bytes())?;
    w.flush()
}

/// Each changed field on its own line, its old value beside its new one: `~ field: old → new`;
/// a field that appears is `+ field: new`, one that goes away `- field: old`.
fn write_diff(out: &mut String, changes: &[&FieldChange], p: &Palette) {
    let (add, del, chg) = (p.add, p.del, p.chg);
    for c in changes {
        let _ = match (&c.from, &c.to) {
            (Some(from), Some(to)) => writeln!(out, "      {chg}~ {}: {from} → {to}{chg:#}", c.field),
            (None, Some(to)) => writeln!(out, "      {add}+ {}: {to}{add:#}", c.field),
            (Some(from), None) => writeln!(out, "      {del}- {}: {from}{del:#}", c.field),
            (None, None) => Ok(()),
        };
    }
}
