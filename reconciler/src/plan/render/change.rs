//! `plan --base`: what a change does, as text and as a pull-request comment.

use std::fmt::Write;

use crate::plan::change::{Change, ChangeSummary, ObjectChange};
use crate::plan::{ActionKind, PlannedAction};

/// One line: what the change causes, such as `This change: 1 to publish, 1 to update; 1
/// waiting; 2 already pending on the base.`
pub fn change_summary_line(c: &Change) -> String {
    let ChangeSummary {
        publish, update, reconfigure, retire, waiting, denied, pending_on_base, cancelled, errors, ..
    } = c.summary;
    let mut parts = Vec::new();
    for (n, what) in
        [(publish, "to publish"), (update, "to update"), (reconfigure, "to reconfigure"), (retire, "to retire")]
    {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    let mut s = if parts.is_empty() && waiting == 0 && denied == 0 {
        "This change causes no actions".to_string()
    } else if parts.is_empty() {
        "This change: nothing to apply now".to_string()
    } else {
        format!("This change: {}", parts.join(", "))
    };
    if waiting > 0 {
        s += &format!("; {waiting} waiting");
    }
    if denied > 0 {
        s += &format!("; {denied} denied by policy");
    }
    if errors > 0 {
        s += &format!("; {errors} product{} cannot be planned", if errors == 1 { "" } else { "s" });
    }
    if cancelled > 0 {
        s += &format!("; {cancelled} no longer done");
    }
    if pending_on_base > 0 {
        s += &format!("; {pending_on_base} already pending on the base");
    }
    s + "."
}

fn commit_of(v: &serde_json::Value) -> String {
    let get = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default();
    match get("type") {
        "commit" => format!("commit {} ({})", get("commit").get(..12).unwrap_or(get("commit")), get("reference")),
        "directory" => format!("directory {} (provenance unknown)", get("path")),
        _ => format!("{} (unavailable)", get("reference")),
    }
}

/// `base commit … → head commit …`.
pub fn change_inputs_line(c: &Change) -> String {
    format!("base {} → head {}", commit_of(&c.base), commit_of(&c.head))
}

fn target(a: &PlannedAction) -> String {
    let ring = a.ring.as_deref().map(|r| format!(" / {r}")).unwrap_or_default();
    let version = match (a.version.as_deref(), super::downgrade_from(a)) {
        (Some(v), Some(from)) => format!(" {v} (downgrade from {from})"),
        (Some(v), None) => format!(" {v}"),
        (None, _) => String::new(),
    };
    format!("{} {}{version} on {}{ring}", a.action.as_str(), a.product, a.platform)
}

/// How an action stands: denied, waiting (and until when), or applied by the next apply.
fn standing(a: &PlannedAction) -> String {
    if let Some(d) = a.denied.first() {
        return format!("denied by policy {}: {}", d.policy, d.message);
    }
    if let Some(w) = &a.waiting {
        return match w.until {
            Some(t) => format!("waiting until {} ({}: {})", t.format("%Y-%m-%d %H:%M UTC"), w.reason, w.message),
            None => format!("waiting ({}: {})", w.reason, w.message),
        };
    }
    a.reason.to_string()
}

fn object_line(o: &ObjectChange) -> String {
    let sign = match o.change.as_str() {
        "added" => "+",
        "removed" => "-",
        _ => "~",
    };
    format!("{sign} {} {} ({})", o.kind, o.name, o.change)
}

/// Each field's old value beside its new one, indented under its object or action.
fn field_lines(s: &mut String, fields: &[crate::plan::FieldChange]) {
    for f in fields {
        let (from, to) = (f.from.as_deref().unwrap_or("(none)"), f.to.as_deref().unwrap_or("(none)"));
        let _ = writeln!(s, "      {}: {from} → {to}", f.field);
    }
}

/// The change for a terminal.
pub fn change_text(c: &Change) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}\n{}\n", change_inputs_line(c), change_summary_line(c));
    if let Some(e) = &c.base_error {
        let _ = writeln!(s, "note: {e}; every action is shown as this change's\n");
    }
    for g in &c.guards {
        let _ = writeln!(s, "apply would refuse this plan: {g}");
    }
    for e in &c.errors {
        let _ = writeln!(s, "error: {} ({}): {}: {}", e.product, e.origin, e.reason, e.message);
    }
    if !c.desired.is_empty() || !c.catalogs.is_empty() || !c.files.is_empty() {
        s += "Desired state:\n";
        for o in &c.desired {
            let _ = writeln!(s, "  {}", object_line(o));
            field_lines(&mut s, &o.fields);
        }
        for f in &c.catalogs {
            let _ = writeln!(
                s,
                "  ~ catalog {}: {} → {}",
                f.field,
                f.from.as_deref().unwrap_or("(none)"),
                f.to.as_deref().unwrap_or("-")
            );
        }
        for f in &c.files {
            let _ = writeln!(s, "  file {} ({})", f.path, f.change);
        }
        s.push('\n');
    }
    let list = |s: &mut String, title: &str, actions: &[PlannedAction]| {
        if actions.is_empty() {
            return;
        }
        let _ = writeln!(s, "{title}:");
        for a in actions {
            let _ = writeln!(s, "  {}: {}", target(a), standing(a));
            field_lines(s, &a.changes);
        }
        s.push('\n');
    };
    list(&mut s, "Caused by this change", &c.caused);
    list(&mut s, "No longer done because of this change", &c.cancelled);
    list(&mut s, "Already pending on the base (not this change's)", &c.pending_on_base);
    let unmanaged: usize = c.unmanaged.values().sum();
    if unmanaged > 0 {
        let _ = writeln!(s, "{unmanaged} unmanaged object(s) on the platforms are left alone.");
    }
    s
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn md_action(a: &PlannedAction) -> String {
    if !a.denied.is_empty() {
        return format!("⛔ {} (denied)", a.action.as_str());
    }
    if let Some(w) = &a.waiting {
        return match w.until {
            Some(t) => format!("⏳ {} waits until {}", a.action.as_str(), t.format("%Y-%m-%d %H:%M UTC")),
            None => format!("⏳ {} waits", a.action.as_str()),
        };
    }
    match a.action {
        ActionKind::Publish => "🟢 publish".into(),
        ActionKind::Update => "🟡 update".into(),
        ActionKind::Reconfigure => "🟡 reconfigure".into(),
        ActionKind::Retire => "🔴 retire".into(),
        ActionKind::None => "unchanged".into(),
    }
}

fn md_row(a: &PlannedAction) -> String {
    let why = if let Some(d) = a.denied.first() {
        format!("**denied by `{}`**: {}", cell(&d.policy), cell(&d.message))
    } else if let Some(w) = &a.waiting {
        format!("{}: {}", cell(&w.reason), cell(&w.message))
    } else {
        cell(&a.reason)
    };
    format!(
        "| {} | `{}` | `{}` | {} | {} | {} |\n",
        md_action(a),
        cell(&a.product),
        cell(&a.platform),
        cell(a.ring.as_deref().unwrap_or("—")),
        super::markdown::version_cell(a),
        why
    )
}

const TABLE_HEAD: &str = "| Action | Product | Platform | Ring | Version | Why |\n|---|---|---|---|---|---|\n";

/// Rows of `actions` that fit in `budget` characters, and a line counting the rest.
fn table(actions: &[PlannedAction], budget: usize) -> String {
    if actions.is_empty() {
        return String::new();
    }
    let mut out = TABLE_HEAD.to_string();
    for (i, a) in actions.iter().enumerate() {
        let row = md_row(a);
        if out.len() + row.len() + 120 > budget {
            let _ = writeln!(
                out,
                "\n_…and {} more not shown; run `patchops plan --base` for all of them._",
                actions.len() - i
            );
            return out;
        }
        out += &row;
    }
    out
}

/// The change as a pull-request comment: a one-line summary, then what stands out (guards,
/// errors, denials), the actions the change causes, and, folded, the desired-state
/// differences, the actions it cancels and those already pending on the base. Never longer
/// than `limit` characters.
pub fn change_markdown(c: &Change, limit: usize) -> String {
    let mut head = String::new();
    let _ = writeln!(
        head,
        "### patchops plan\n\n**{}**\n\n<sub>{}</sub>\n",
        change_summary_line(c),
        cell(&change_inputs_line(c))
    );
    if let Some(e) = &c.base_error {
        let _ = writeln!(head, "⚠️ {}; every action is shown as this change's.\n", cell(e));
    }
    for g in &c.guards {
        let _ = writeln!(head, "⛔ **apply would refuse this plan**: {}\n", cell(g));
    }
    for e in &c.errors {
        let _ = writeln!(
            head,
            "❌ **`{}` cannot be planned** ({}): {}: {}\n",
            cell(&e.product),
            cell(&e.origin),
            e.reason,
            cell(&e.message)
        );
    }
    let denied: Vec<&PlannedAction> = c.caused.iter().filter(|a| !a.denied.is_empty()).collect();
    for a in &denied {
        if let Some(d) = a.denied.first() {
            let _ =
                writeln!(head, "⛔ **denied by policy `{}`**: {} — {}\n", cell(&d.policy), target(a), cell(&d.message));
        }
    }
    let mut desired = String::new();
    for o in &c.desired {
        let _ = writeln!(desired, "- {}", object_line(o));
        for f in &o.fields {
            let _ = writeln!(
                desired,
                "  - `{}`: `{}` → `{}`",
                cell(&f.field),
                cell(f.from.as_deref().unwrap_or("(none)")),
                cell(f.to.as_deref().unwrap_or("(none)"))
            );
        }
    }
    for f in &c.catalogs {
        let _ = writeln!(
            desired,
            "- catalog {}: {} → {}",
            cell(&f.field),
            f.from.as_deref().unwrap_or("(none)"),
            f.to.as_deref().unwrap_or("-")
        );
    }
    for f in &c.files {
        let _ = writeln!(desired, "- file `{}` ({})", cell(&f.path), f.change);
    }
    let unmanaged: usize = c.unmanaged.values().sum();
    let tail = if unmanaged > 0 {
        format!("\n<sub>{unmanaged} unmanaged object(s) on the platforms are left alone.</sub>\n")
    } else {
        String::new()
    };
    // The caused actions come first and get most of the room; the folded sections share the rest.
    let room = limit.saturating_sub(head.len() + tail.len() + 400);
    let caused = if c.caused.is_empty() {
        "_No actions are caused by this change._\n".to_string()
    } else {
        format!("#### Caused by this change\n\n{}", table(&c.caused, room * 6 / 10))
    };
    let mut folded = String::new();
    let mut fold = |title: String, body: String, budget: usize| {
        if body.is_empty() {
            return;
        }
        let body = if body.len() > budget {
            let cut = super::boundary_at(&body, budget.saturating_sub(80));
            format!("{}\n_…cut to fit the comment; run `patchops plan --base` for all of it._\n", &body[..cut])
        } else {
            body
        };
        let _ = write!(folded, "\n<details><summary>{title}</summary>\n\n{body}\n</details>\n");
    };
    let left = room.saturating_sub(caused.len());
    fold(
        format!("Desired-state changes ({} object(s), {} file(s))", c.desired.len(), c.files.len()),
        desired,
        left / 3,
    );
    fold(
        format!("No longer done because of this change ({})", c.cancelled.len()),
        table(&c.cancelled, left / 3),
        left / 3,
    );
    fold(
        format!("Already pending on the base, not this change's ({})", c.pending_on_base.len()),
        table(&c.pending_on_base, left / 3),
        left / 3,
    );
    let mut out = head + &caused + &folded + &tail;
    out.truncate(super::boundary_at(&out, limit));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::change::{Change, ChangeSummary, CHANGE_FORMAT_VERSION};

    fn action(product: &str, ring: &str, extra: serde_json::Value) -> PlannedAction {
        let mut v = serde_json::json!({
            "action": "publish", "reason": "NotPublished", "message": "not published yet",
            "product": product, "catalogProduct": "vendor.app", "platform": "intune-prod",
            "platformType": "intune", "ring": ring, "version": "2.0",
        });
        if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        serde_json::from_value(v).unwrap()
    }

    fn change(caused: Vec<PlannedAction>) -> Change {
        let denied = caused.iter().filter(|a| !a.denied.is_empty()).count();
        let waiting = caused.iter().filter(|a| a.denied.is_empty() && a.waiting.is_some()).count();
        Change {
            format_version: CHANGE_FORMAT_VERSION,
            base: serde_json::json!({"type": "commit", "reference": "main", "commit": "a".repeat(40)}),
            head: serde_json::json!({"type": "commit", "reference": "HEAD", "commit": "b".repeat(40)}),
            base_error: None,
            emulated: None,
            desired: Vec::new(),
            catalogs: Vec::new(),
            files: Vec::new(),
            summary: ChangeSummary {
                publish: caused.len() - denied - waiting,
                denied,
                waiting,
                pending_on_base: 1,
                ..ChangeSummary::default()
            },
            caused,
            pending_on_base: vec![action("old", "broad", serde_json::json!({}))],
            cancelled: Vec::new(),
            errors: Vec::new(),
            guards: Vec::new(),
            unmanaged: [("intune-prod".to_string(), 3)].into(),
        }
    }

    #[test]
    fn a_huge_change_fits_a_github_comment_and_denials_lead() {
        let mut caused: Vec<PlannedAction> =
            (0..5000).map(|i| action(&format!("product-{i:05}"), "pilot", serde_json::json!({}))).collect();
        caused.push(action(
            "blocked",
            "pilot",
            serde_json::json!({"denied": [{"policy": "vendor_allowlist", "message": "vendor not allowed"}]}),
        ));
        caused.push(action(
            "later",
            "broad",
            serde_json::json!({"waiting": {"reason": "RingSoaking", "message": "pilot soaks", "until": "2026-12-04T10:00:00Z"}}),
        ));
        let md = change_markdown(&change(caused), crate::plan::render::MARKDOWN_LIMIT);
        assert!(md.len() <= crate::plan::render::MARKDOWN_LIMIT, "{}", md.len());
        assert!(md.starts_with("### patchops plan\n\n**This change: 5000 to publish; 1 waiting; 1 denied by policy; 1 already pending on the base.**"), "{}", md.lines().take(3).collect::<Vec<_>>().join("\n"));
        let denial =
            md.find("⛔ **denied by policy `vendor_allowlist`**: publish blocked 2.0 on intune-prod / pilot").unwrap();
        assert!(denial < md.find("#### Caused by this change").unwrap(), "denials stand out above the table");
        assert!(md.contains("more not shown; run `patchops plan --base`"), "the rest is counted");
        assert!(md.contains("<details><summary>Already pending on the base, not this change's (1)</summary>"));
        assert!(md.contains("3 unmanaged object(s) on the platforms are left alone."));
    }

    #[test]
    fn waiting_actions_say_until_when_and_are_not_shown_as_publishing() {
        let c = change(vec![action(
            "later",
            "broad",
            serde_json::json!({"waiting": {"reason": "RingSoaking", "message": "pilot soaks", "until": "2026-12-04T10:00:00Z"}}),
        )]);
        let md = change_markdown(&c, crate::plan::render::MARKDOWN_LIMIT);
        assert!(md.contains("| ⏳ publish waits until 2026-12-04 10:00 UTC | `later` |"), "{md}");
        let caused = md.split("#### Caused by this change").nth(1).and_then(|s| s.split("<details>").next()).unwrap();
        assert!(!caused.contains("🟢"), "{md}");
        let text = change_text(&c);
        assert!(text.contains("publish later 2.0 on intune-prod / broad: waiting until 2026-12-04 10:00 UTC (RingSoaking: pilot soaks)"), "{text}");
        assert!(text.starts_with("base commit aaaaaaaaaaaa (main) → head commit bbbbbbbbbbbb (HEAD)\nThis change: nothing to apply now; 1 waiting; 1 already pending on the base."), "{text}");
    }
}
