use std::fmt::Write;

use super::{inputs_line, summary_line};
use crate::plan::{ActionKind, Plan};

/// Markdown output is capped below GitHub's 65,536-character comment limit, leaving room for
/// whatever the CI job adds around it.
pub const MARKDOWN_LIMIT: usize = 60_000;

fn icon(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::Publish => "🟢 publish",
        ActionKind::Update => "🟡 update",
        ActionKind::Reconfigure => "🟡 reconfigure",
        ActionKind::Retire => "🔴 retire",
        ActionKind::None => "unchanged",
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The plan as a compact pull-request comment: a summary, a table of changes, field diffs folded
/// in `<details>`, and the errors. Never longer than `limit` characters: rows that do not fit
/// are counted in a closing line.
pub fn markdown(plan: &Plan, limit: usize) -> String {
    let mut head = String::new();
    let _ =
        writeln!(head, "### patchops plan\n\n**{}**\n\n<sub>{}</sub>\n", summary_line(plan), cell(&inputs_line(plan)));
    for g in &plan.guards {
        let _ = writeln!(head, "⛔ **apply would refuse this plan**: {}\n", cell(g));
    }
    let mut tail = String::new();
    if !plan.errors.is_empty() {
        let _ = writeln!(tail, "\n#### Errors\n");
        for e in &plan.errors {
            let _ = writeln!(tail, "- ❌ `{}` ({}): **{}**: {}", e.product, e.origin, e.reason, cell(&e.message));
        }
    }
    let changed: Vec<_> = plan.actions.iter().filter(|a| a.action != ActionKind::None).collect();
    let mut body = String::new();
    if !changed.is_empty() {
        body += "| Action | Product | Platform | Ring | Version | Reason |\n|---|---|---|---|---|---|\n";
    }
    let mut details = String::new();
    for a in changed.iter().filter(|a| matches!(a.action, ActionKind::Update | ActionKind::Reconfigure)) {
        let _ =
            writeln!(details, "`{}` → `{}` / `{}`:\n```diff", a.product, a.platform, a.ring.as_deref().unwrap_or("-"));
        for c in &a.changes {
            if let Some(f) = &c.from {
                let _ = writeln!(details, "- {}: {f}", c.field);
            }
            if let Some(t) = &c.to {
                let _ = writeln!(details, "+ {}: {t}", c.field);
            }
        }
        details += "```\n";
    }
    let details = if details.is_empty() {
        String::new()
    } else {
        format!("\n<details><summary>Field changes</summary>\n\n{details}\n</details>\n")
    };
    let budget = limit.saturating_sub(head.len() + tail.len() + 120);
    let details = if body.len() + details.len() + changed.len() * 80 > budget { String::new() } else { details };
    let mut omitted = 0;
    for (i, a) in changed.iter().enumerate() {
        let row = format!(
            "| {} | `{}` | `{}` | {} | {} | {} |\n",
            icon(a.action),
            cell(&a.product),
            cell(&a.platform),
            cell(a.ring.as_deref().unwrap_or("—")),
            version_cell(a),
            reason_cell(a)
        );
        if body.len() + row.len() + details.len() > budget {
            omitted = changed.len() - i;
            break;
        }
        body += &row;
    }
    if omitted > 0 {
        let _ = writeln!(body, "\n_…and {omitted} more action(s) not shown; run `patchops plan` for the full plan._");
    }
    let mut out = head + &body + &details + &tail;
    out.truncate(super::boundary_at(&out, limit));
    out
}

/// The version column: the version the action leaves, marked when it is a downgrade.
pub(super) fn version_cell(a: &crate::plan::PlannedAction) -> String {
    match (a.version.as_deref(), super::downgrade_from(a)) {
        (Some(v), Some(from)) => format!("{} ⚠️ downgrade from {}", cell(v), cell(from)),
        (v, _) => cell(v.unwrap_or("—")),
    }
}

/// The reason column: the planner's reason, and why the action will not be applied (yet).
fn reason_cell(a: &crate::plan::PlannedAction) -> String {
    let mut s = cell(&a.reason);
    for d in &a.denied {
        s += &format!(" ⛔ denied by `{}`: {}", cell(&d.policy), cell(&d.message));
    }
    if let Some(w) = &a.waiting {
        s += &format!(" ⏳ {}", cell(&w.message));
    }
    s
}
