//! The three renderings of a [`super::Plan`]: text for a terminal, Markdown for a
//! pull-request comment, JSON for machines. Renderers build strings and print nothing.

mod change;
mod json;
mod markdown;
mod text;

pub use change::{change_inputs_line, change_markdown, change_summary_line, change_text};
pub use json::{json, json_to_writer};
pub use markdown::{markdown, MARKDOWN_LIMIT};
pub use text::{text, text_to_writer};

use super::{Plan, Summary};

/// One line summarising a plan, such as `Plan: 3 to publish, 1 to update, 0 to retire.`.
pub fn summary_line(plan: &Plan) -> String {
    let Summary { publish, update, reconfigure, retire, unchanged, errors, denied, waiting } = plan.summary;
    let mut s = if plan.has_changes() {
        format!("Plan: {publish} to publish, {update} to update, {reconfigure} to reconfigure, {retire} to retire, {unchanged} unchanged.")
    } else {
        format!("No changes: {unchanged} deployments match the fleet.")
    };
    if denied > 0 {
        s += &format!(" {denied} denied by policy.");
    }
    if waiting > 0 {
        s += &format!(" {waiting} waiting (rings, windows or change budget).");
    }
    if errors > 0 {
        s += &format!(" {errors} product{} could not be planned.", if errors == 1 { "" } else { "s" });
    }
    s
}

/// The version an update goes down from, when it is a downgrade (the new version is lower than
/// the one on the platform, as Windows compares versions).
pub fn downgrade_from(a: &super::PlannedAction) -> Option<&str> {
    if a.action != super::ActionKind::Update {
        return None;
    }
    let change = a.changes.iter().find(|c| &*c.field == "version")?;
    let (from, to) = (change.from.as_deref()?, change.to.as_deref()?);
    let lower = from.parse::<crate::vocab::Version>().ok()? > to.parse::<crate::vocab::Version>().ok()?;
    lower.then_some(from)
}

/// The largest character boundary of `s` at or below `limit` (where a capped comment is cut).
pub(super) fn boundary_at(s: &str, limit: usize) -> usize {
    let mut cut = limit.min(s.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    cut
}

/// A short description of the plan's inputs.
pub fn inputs_line(plan: &Plan) -> String {
    let source = &plan.fingerprints.source;
    let fleet = match source.get("type").and_then(|t| t.as_str()) {
        Some("commit") => {
            let commit = source.get("commit").and_then(|c| c.as_str()).unwrap_or_default();
            let reference = source.get("reference").and_then(|c| c.as_str()).unwrap_or_default();
            let signed = match &plan.fingerprints.signature {
                Some(crate::source::signature::CommitVerdict::Verified { head, .. }) => {
                    format!(", signed by {} ({} key {})", head.signer, head.kind, head.key)
                }
                _ => String::new(),
            };
            format!("commit {} ({reference}){signed}", commit.get(..12).unwrap_or(commit))
        }
        _ => format!(
            "directory {} (provenance unknown)",
            source.get("path").and_then(|p| p.as_str()).unwrap_or_default()
        ),
    };
    let catalogs: Vec<String> = plan
        .fingerprints
        .catalogs
        .iter()
        .map(|c| format!("{} serial {} ({})", c.source, c.serial, c.sha256.short()))
        .collect();
    format!("fleet {fleet}; catalog {}", if catalogs.is_empty() { "none".into() } else { catalogs.join(", ") })
}
