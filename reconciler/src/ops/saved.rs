//! A saved plan (`plan --out`) applied later: refused when its inputs changed (stale) or when
//! its actions are not what those inputs give (edited). Both refusals carry what differs, as
//! data; the command line renders it.

use std::fmt;

use crate::plan;
use crate::vocab::Sha256;

/// One input of a saved plan that is not what it was when the plan was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaleInput {
    /// The fleet (its commit or directory, or its content digest).
    Fleet {
        /// Where the plan was made from (`commit 1a2b3c…`, `directory PATH`).
        was: String,
        /// The fleet's content digest then.
        was_digest: Sha256,
        /// Where the fleet is now.
        now: String,
        /// Its content digest now.
        now_digest: Sha256,
    },
    /// Files the plan was made from (the fleet's documents, catalogs and policy modules in the
    /// repository), by path.
    Files {
        /// Files whose content differs.
        changed: Vec<String>,
        /// Files there are now and were not.
        added: Vec<String>,
        /// Files there were and are not.
        removed: Vec<String>,
    },
    /// The verified catalogs.
    Catalogs {
        /// Those the plan was made with.
        was: Vec<plan::CatalogFingerprint>,
        /// Those there are now.
        now: Vec<plan::CatalogFingerprint>,
    },
    /// A platform's observed state.
    Platform {
        /// The platform.
        platform: String,
        /// Objects whose state differs (id, and the product the plan had for it).
        changed: Vec<String>,
        /// Objects there are now and were not.
        added: Vec<String>,
        /// Objects there were and are not.
        removed: Vec<String>,
    },
}

impl fmt::Display for StaleInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StaleInput::Fleet { was, was_digest, now, now_digest } => write!(
                f,
                "the fleet changed: the plan was made from {was} (digest {}), the fleet is now {now} (digest {})",
                was_digest.short(),
                now_digest.short()
            ),
            StaleInput::Files { changed, added, removed } => {
                let mut parts = Vec::new();
                let list = |v: &[String]| {
                    let shown: Vec<&str> = v.iter().take(10).map(String::as_str).collect();
                    let more = v.len().saturating_sub(shown.len());
                    format!(
                        "{}{}",
                        shown.join(", "),
                        if more > 0 { format!(" and {more} more") } else { String::new() }
                    )
                };
                if !changed.is_empty() {
                    parts.push(format!("changed: {}", list(changed)));
                }
                if !added.is_empty() {
                    parts.push(format!("added: {}", list(added)));
                }
                if !removed.is_empty() {
                    parts.push(format!("removed: {}", list(removed)));
                }
                write!(f, "the fleet's content changed since the plan was made ({})", parts.join("; "))
            }
            StaleInput::Catalogs { was, now } => {
                let show = |c: &[plan::CatalogFingerprint]| {
                    c.iter()
                        .map(|c| format!("{} serial {} ({})", c.source, c.serial, c.sha256.short()))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                write!(f, "the catalog changed: planned with {}, now {}", show(was), show(now))
            }
            StaleInput::Platform { platform, changed, added, removed } => {
                write!(f, "platform {platform} changed since the plan was made (its observed state differs")?;
                for (what, ids) in [("changed", changed), ("new", added), ("gone", removed)] {
                    if !ids.is_empty() {
                        let shown: Vec<&str> = ids.iter().take(10).map(String::as_str).collect();
                        let more = ids.len().saturating_sub(shown.len());
                        write!(f, "; {what}: {}", shown.join(", "))?;
                        if more > 0 {
                            write!(f, " and {more} more")?;
                        }
                    }
                }
                f.write_str(")")
            }
        }
    }
}

/// One way a saved plan's actions differ from those its recorded inputs give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanEdit {
    /// The file has an action the inputs do not give (described as `publish firefox 131.0 on …`).
    Added(String),
    /// The inputs give an action the file lacks.
    Removed(String),
    /// The same actions, in another order or some more than once.
    Reordered,
}

impl fmt::Display for PlanEdit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanEdit::Added(a) => write!(f, "the plan file has `{a}`, which its inputs do not give"),
            PlanEdit::Removed(a) => write!(f, "its inputs give `{a}`, which the plan file lacks"),
            PlanEdit::Reordered => f.write_str("the plan file lists its actions in another order or more than once"),
        }
    }
}

/// Where a saved plan's actions differ from those its recorded inputs give (policy denials and
/// waiting are judged again at apply time and are not compared).
pub(super) fn tampering(saved: &[plan::PlannedAction], now: &[plan::PlannedAction]) -> Vec<PlanEdit> {
    let judged_apart = |a: &plan::PlannedAction| plan::PlannedAction { denied: Vec::new(), waiting: None, ..a.clone() };
    let describe = |a: &plan::PlannedAction| {
        format!(
            "{} {} {}on {}{}{}",
            a.action.as_str(),
            a.product,
            a.version.as_deref().map(|v| format!("{v} ")).unwrap_or_default(),
            a.platform,
            a.ring.as_deref().map(|r| format!(" / {r}")).unwrap_or_default(),
            match (a.group_name.as_deref(), a.group.as_deref()) {
                (Some(name), Some(id)) => format!(" (group {name}, id {id})"),
                (None, Some(id)) => format!(" (group {id})"),
                _ => String::new(),
            },
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
    let mut out: Vec<PlanEdit> = saved
        .iter()
        .filter(|a| !now_keys.contains(&key(a)))
        .map(|a| PlanEdit::Added(describe(a)))
        .chain(now.iter().filter(|a| !saved_keys.contains(&key(a))).map(|a| PlanEdit::Removed(describe(a))))
        .take(20)
        .collect();
    if out.is_empty() {
        out.push(PlanEdit::Reordered);
    }
    out
}

/// What changed between a saved plan's inputs and today's. The fleet is compared by content,
/// file by file: a plan made at one commit applies at another (the merge of its pull request,
/// a commit that changed only a README) when every file it was made from is the same.
pub(super) fn staleness(saved: &plan::Plan, now: &plan::Fingerprints) -> Vec<StaleInput> {
    let (plan, saved) = (saved, &saved.fingerprints);
    let mut out = Vec::new();
    if !saved.files.is_empty() {
        let changed: Vec<String> = saved
            .files
            .iter()
            .filter(|(p, d)| now.files.get(*p).is_some_and(|n| n != *d))
            .map(|(p, _)| p.clone())
            .collect();
        let added: Vec<String> = now.files.keys().filter(|p| !saved.files.contains_key(*p)).cloned().collect();
        let removed: Vec<String> = saved.files.keys().filter(|p| !now.files.contains_key(*p)).cloned().collect();
        if !(changed.is_empty() && added.is_empty() && removed.is_empty()) {
            out.push(StaleInput::Files { changed, added, removed });
        }
    } else if saved.source_digest != now.source_digest {
        // A plan file from before per-file digests: its fleet digest.
        out.push(StaleInput::Fleet {
            was: describe_source(&saved.source),
            was_digest: saved.source_digest,
            now: describe_source(&now.source),
            now_digest: now.source_digest,
        });
    }
    if saved.catalogs != now.catalogs {
        out.push(StaleInput::Catalogs { was: saved.catalogs.clone(), now: now.catalogs.clone() });
    }
    for (platform, digest) in &now.observed {
        if saved.observed.get(platform) == Some(digest) {
            continue;
        }
        // The objects, named by id and by the product the saved plan had for them.
        let empty = std::collections::BTreeMap::new();
        let (was, is) = (saved.objects.get(platform).unwrap_or(&empty), now.objects.get(platform).unwrap_or(&empty));
        let name = |id: &String| match plan.actions.iter().find(|a| a.object_id.as_deref() == Some(id.as_str())) {
            Some(a) => format!("{id} ({})", a.catalog_product),
            None => id.clone(),
        };
        let changed =
            was.iter().filter(|(id, d)| is.get(*id).is_some_and(|n| n != *d)).map(|(id, _)| name(id)).collect();
        let added = is.keys().filter(|id| !was.contains_key(*id)).map(name).collect();
        let removed = was.keys().filter(|id| !is.contains_key(*id)).map(name).collect();
        out.push(StaleInput::Platform { platform: platform.clone(), changed, added, removed });
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
