//! A saved plan (`plan --out`) applied later: refused when its inputs changed (stale) or when
//! its actions are not what those inputs give (edited).

use crate::plan;

/// Where a saved plan's actions differ from those its recorded inputs give (policy denials and
/// waiting are judged again at apply time and are not compared).
pub(super) fn tampering(saved: &[plan::PlannedAction], now: &[plan::PlannedAction]) -> Vec<String> {
    let judged_apart = |a: &plan::PlannedAction| plan::PlannedAction { denied: Vec::new(), waiting: None, ..a.clone() };
    let describe = |a: &plan::PlannedAction| {
        format!(
            "{} {} {}on {}{}{}",
            a.action.as_str(),
            a.product,
            a.version.as_deref().map(|v| format!("{v} ")).unwrap_or_default(),
            a.platform,
            a.ring.as_deref().map(|r| format!(" / {r}")).unwrap_or_default(),
            a.group.as_deref().map(|g| format!(" (group {g})")).unwrap_or_default(),
        )
    };
    // Both lists are in the planner's stable order: compared pairwise, and only when they
    // differ is it worked out which actions (by their JSON form) the other side lacks.
    if saved.len() == now.len() && saved.iter().zip(now).all(|(a, b)| judged_apart(a) == judged_apart(b)) {
        return Vec::new();
    }
    let key = |a: &plan::PlannedAction| serde_json::to_string(&judged_apart(a)).unwrap_or_default();
    let saved_keys: std::collections::HashSet<String> = saved.iter().map(key).collect();
    let now_keys: std::collections::HashSet<String> = now.iter().map(key).collect();
    let mut out: Vec<String> = saved
        .iter()
        .filter(|a| !now_keys.contains(&key(a)))
        .map(|a| format!("the plan file has `{}`, which its inputs do not give", describe(a)))
        .chain(
            now.iter()
                .filter(|a| !saved_keys.contains(&key(a)))
                .map(|a| format!("its inputs give `{}`, which the plan file lacks", describe(a))),
        )
        .take(20)
        .collect();
    if out.is_empty() {
        out.push("the plan file lists its actions in another order or more than once".into());
    }
    out
}

/// What changed between a saved plan's inputs and today's.
pub(super) fn staleness(saved: &plan::Fingerprints, now: &plan::Fingerprints) -> Vec<String> {
    let mut out = Vec::new();
    if saved.source != now.source || saved.source_digest != now.source_digest {
        out.push(format!(
            "the fleet changed: the plan was made from {} (digest {}), the fleet is now {} (digest {})",
            describe_source(&saved.source),
            saved.source_digest.short(),
            describe_source(&now.source),
            now.source_digest.short()
        ));
    }
    if saved.catalogs != now.catalogs {
        let show = |c: &[plan::CatalogFingerprint]| {
            c.iter()
                .map(|c| format!("{} serial {} ({})", c.source, c.serial, c.sha256.short()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(format!("the catalog changed: planned with {}, now {}", show(&saved.catalogs), show(&now.catalogs)));
    }
    for (platform, digest) in &now.observed {
        if saved.observed.get(platform) != Some(digest) {
            out.push(format!("platform {platform} changed since the plan was made (its observed state differs)"));
        }
    }
    out
}

fn describe_source(v: &serde_json::Value) -> String {
    match (v.get("commit").and_then(|c| c.as_str()), v.get("path").and_then(|c| c.as_str())) {
        (Some(c), _) => format!("commit {}", c.get(..12).unwrap_or(c)),
        (None, Some(p)) => format!("directory {p}"),
        _ => "an unknown source".into(),
    }
}
