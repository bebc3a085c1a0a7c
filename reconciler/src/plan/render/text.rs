use std::collections::BTreeSet;
use std::fmt::Write;

use anstyle::{AnsiColor, Style};
use similar::{ChangeTag, TextDiff};

use super::{inputs_line, summary_line};
use crate::plan::{ActionKind, FieldChange, Plan};

const ADD: Style = AnsiColor::Green.on_default();
const DEL: Style = AnsiColor::Red.on_default();
const CHG: Style = AnsiColor::Yellow.on_default();
const DIM: Style = Style::new().dimmed();
const BOLD: Style = Style::new().bold();

fn style_of(kind: ActionKind) -> (Style, &'static str) {
    match kind {
        ActionKind::Publish => (ADD, "+"),
        ActionKind::Update => (CHG, "~"),
        ActionKind::Reconfigure => (CHG, "~"),
        ActionKind::Retire => (DEL, "-"),
        ActionKind::None => (DIM, "="),
    }
}

/// The plan for a terminal: one block per product, each action with its reason and field diffs
/// (made with `similar`). Styles are ANSI sequences; the caller's stream strips them when the
/// output is not a terminal or `NO_COLOR` is set. Unchanged deployments are counted, and listed
/// only when `show_unchanged` is set.
pub fn text(plan: &Plan, show_unchanged: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{DIM}{}{DIM:#}\n", inputs_line(plan));
    let mut current_product = None;
    let mut shown_objects = BTreeSet::new();
    for a in &plan.actions {
        if a.action == ActionKind::None && !show_unchanged {
            continue;
        }
        if current_product != Some(&a.product) {
            if current_product.is_some() {
                out.push('\n');
            }
            current_product = Some(&a.product);
            let origin = a.origin.as_deref().map(|o| format!(" {DIM}({o}){DIM:#}")).unwrap_or_default();
            let _ = writeln!(out, "{BOLD}{}{BOLD:#} {DIM}{}{DIM:#}{origin}", a.product, a.catalog_product);
        }
        let (style, sign) = style_of(a.action);
        let ring = a.ring.as_deref().unwrap_or("(no ring)");
        let group = a.group.as_deref().map(|g| format!(" [{g}]")).unwrap_or_default();
        let version = a.version.as_deref().map(|v| format!("  {v}")).unwrap_or_default();
        let _ =
            writeln!(out, "  {style}{sign} {:<11}{style:#} {} / {ring}{group}{version}", a.action.as_str(), a.platform);
        let _ = writeln!(out, "      {DIM}{}: {}{DIM:#}", a.reason, a.message);
        // On publish, the object's fields are shown once per platform; later rings only add an
        // assignment.
        let first_on_platform = shown_objects.insert((a.product.clone(), a.platform.clone()));
        let changes: Vec<&FieldChange> = a
            .changes
            .iter()
            .filter(|c| a.action != ActionKind::Publish || first_on_platform || c.field.starts_with("assignment."))
            .collect();
        write_diff(&mut out, &changes);
    }
    for e in &plan.errors {
        let _ = writeln!(
            out,
            "{DEL}error{DEL:#}: Product {BOLD}{}{BOLD:#} ({}): {}: {}",
            e.product, e.origin, e.reason, e.message
        );
    }
    for (platform, n) in &plan.unmanaged {
        let _ =
            writeln!(out, "{DIM}platform {platform}: {n} object(s) without patchops's marker are left alone{DIM:#}");
    }
    if !out.ends_with("\n\n") {
        out.push('\n');
    }
    let _ = writeln!(out, "{BOLD}{}{BOLD:#}", summary_line(plan));
    out
}

fn write_diff(out: &mut String, changes: &[&FieldChange]) {
    if changes.is_empty() {
        return;
    }
    let render = |pick: fn(&FieldChange) -> Option<&crate::plan::Text>| -> String {
        changes.iter().filter_map(|c| pick(c).map(|v| format!("{}: {v}\n", c.field))).collect()
    };
    let old = render(|c| c.from.as_ref());
    let new = render(|c| c.to.as_ref());
    let diff = TextDiff::from_lines(&old, &new);
    for change in diff.iter_all_changes() {
        let (style, sign) = match change.tag() {
            ChangeTag::Delete => (DEL, "-"),
            ChangeTag::Insert => (ADD, "+"),
            ChangeTag::Equal => continue,
        };
        let _ = write!(out, "      {style}{sign} {}{style:#}", change.value());
        if change.missing_newline() {
            out.push('\n');
        }
    }
}
