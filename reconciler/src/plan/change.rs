//! What a change (a pull request) does: the desired-state difference between a base and a head
//! fleet, and the head's actions sorted into those the change causes, those already pending on
//! the base (drift, waiting rings), and those the change cancels. `plan --base REV` renders it.
//!
//! Pure, like the planner: two fleets and two plans in, a [`Change`] out.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionKind, FieldChange, Plan, PlanError, PlannedAction};
use crate::intern::Text;
use crate::model::Fleet;

/// The version of the change document's format.
pub const CHANGE_FORMAT_VERSION: u32 = 1;

/// Nesting deeper than this in a fleet object's spec is compared as one value (fleet documents
/// are bounded in depth well below it).
const MAX_DEPTH: usize = 32;

/// What a change does, relative to its base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Change {
    /// Always [`CHANGE_FORMAT_VERSION`].
    pub format_version: u32,
    /// The base commit (what the change is compared with).
    #[schemars(with = "serde_json::Value")]
    pub base: serde_json::Value,
    /// The head commit (the change).
    #[schemars(with = "serde_json::Value")]
    pub head: serde_json::Value,
    /// Why the base could not be planned, when it could not: every head action is then shown
    /// as the change's and every object as added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_error: Option<String>,
    /// `plan --emulate`: the head's plan applied to emulators seeded from the recorded
    /// inventory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emulated: Option<super::dry_run::DryRun>,
    /// Fleet objects added, removed or changed, with their field differences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub desired: Vec<ObjectChange>,
    /// Catalogs whose serial differs between base and head.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub catalogs: Vec<FieldChange>,
    /// Files the plans were made from (fleet documents, catalogs and policy modules in the
    /// repository) that differ, by path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileChange>,
    /// Head actions that exist only because of the change (absent, or different, on the base).
    pub caused: Vec<PlannedAction>,
    /// Head actions the base has too: pending already (drift, waiting rings), not the change's.
    pub pending_on_base: Vec<PlannedAction>,
    /// Base actions the head no longer has: what the change stops from happening.
    pub cancelled: Vec<PlannedAction>,
    /// Products of the head that could not be planned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<PlanError>,
    /// What apply would refuse the head's plan for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guards: Vec<String>,
    /// Objects without patchops's marker, per platform, left alone.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unmanaged: BTreeMap<String, usize>,
    /// Counts.
    pub summary: ChangeSummary,
}

/// Counts of a [`Change`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChangeSummary {
    /// Caused actions that apply would carry out now, by kind.
    pub publish: usize,
    /// See `publish`.
    pub update: usize,
    /// See `publish`.
    pub reconfigure: usize,
    /// See `publish`.
    pub retire: usize,
    /// Caused actions that wait (ring soak, window, change budget): not counted above.
    pub waiting: usize,
    /// Caused actions denied by policy: not counted above.
    pub denied: usize,
    /// Actions already pending on the base.
    pub pending_on_base: usize,
    /// Actions the change cancels.
    pub cancelled: usize,
    /// Fleet objects added, removed or changed.
    pub objects_changed: usize,
    /// Products of the head that could not be planned.
    pub errors: usize,
}

/// One fleet object that differs between base and head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectChange {
    /// `Product`, `Platform`, `Rollout`, `CatalogSource`, `PolicySet` or `Reconciler`.
    pub kind: String,
    /// Its `metadata.name`.
    pub name: String,
    /// `added`, `removed` or `changed`.
    pub change: String,
    /// Field differences of its spec (for `changed`), by path such as `spec.targets[0].platform`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
}

/// A file of the plans' inputs that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileChange {
    /// Its path in the repository.
    pub path: String,
    /// `added`, `removed` or `changed`.
    pub change: String,
}

/// Compares a head fleet and its plan with a base fleet and its plan.
pub fn compare(base_fleet: &Fleet, base: &Plan, head_fleet: &Fleet, head: &Plan) -> Change {
    let mut desired = Vec::new();
    let specs = |f: &Fleet| -> BTreeMap<(String, String), serde_json::Value> {
        let mut m = BTreeMap::new();
        let mut put = |kind: &str, name: &str, spec: serde_json::Result<serde_json::Value>| {
            m.insert((kind.to_string(), name.to_string()), spec.unwrap_or(serde_json::Value::Null));
        };
        for p in &f.products {
            put("Product", p.name().as_str(), serde_json::to_value(&p.spec));
        }
        for (n, p) in &f.platforms {
            put("Platform", n.as_str(), serde_json::to_value(&p.spec));
        }
        for (n, r) in &f.rollouts {
            put("Rollout", n.as_str(), serde_json::to_value(&r.spec));
        }
        for (n, c) in &f.catalog_sources {
            put("CatalogSource", n.as_str(), serde_json::to_value(&c.spec));
        }
        for (n, p) in &f.policy_sets {
            put("PolicySet", n.as_str(), serde_json::to_value(&p.spec));
        }
        if let Some(r) = &f.reconciler {
            put("Reconciler", "reconciler", serde_json::to_value(r));
        }
        m
    };
    let (before, after) = (specs(base_fleet), specs(head_fleet));
    for (key, old) in &before {
        match after.get(key) {
            None => desired.push(object(key, "removed", Vec::new())),
            Some(new) if new != old => desired.push(object(key, "changed", field_changes(old, new))),
            Some(_) => {}
        }
    }
    for key in after.keys().filter(|k| !before.contains_key(*k)) {
        desired.push(object(key, "added", Vec::new()));
    }
    desired.sort_by(|a, b| (kind_rank(&a.kind), &a.name).cmp(&(kind_rank(&b.kind), &b.name)));

    let serials = |p: &Plan| -> BTreeMap<String, u64> {
        p.fingerprints.catalogs.iter().map(|c| (c.source.clone(), c.serial)).collect()
    };
    let (old_serials, new_serials) = (serials(base), serials(head));
    let mut catalogs = Vec::new();
    for (source, serial) in &new_serials {
        if old_serials.get(source) != Some(serial) {
            catalogs.push(FieldChange {
                field: Text::from(format!("{source} serial")),
                from: old_serials.get(source).map(|s| Text::from(s.to_string())),
                to: Some(Text::from(serial.to_string())),
            });
        }
    }
    let mut files = Vec::new();
    let (old_files, new_files) = (&base.fingerprints.files, &head.fingerprints.files);
    for (path, digest) in new_files {
        match old_files.get(path) {
            None => files.push(FileChange { path: path.clone(), change: "added".into() }),
            Some(d) if d != digest => files.push(FileChange { path: path.clone(), change: "changed".into() }),
            Some(_) => {}
        }
    }
    for path in old_files.keys().filter(|p| !new_files.contains_key(*p)) {
        files.push(FileChange { path: path.clone(), change: "removed".into() });
    }

    // An action is the change's unless the base plans exactly the same one (the same target,
    // kind, version, object, field changes, denials and wait); messages and origins may differ.
    let base_actions: Vec<&PlannedAction> = base.actions.iter().filter(|a| a.action != ActionKind::None).collect();
    let mut matched = vec![false; base_actions.len()];
    let (mut caused, mut pending_on_base) = (Vec::new(), Vec::new());
    for a in head.actions.iter().filter(|a| a.action != ActionKind::None) {
        let twin = base_actions.iter().enumerate().position(|(i, b)| !matched[i] && same(a, b));
        match twin {
            Some(i) => {
                matched[i] = true;
                pending_on_base.push(a.clone());
            }
            None => caused.push(a.clone()),
        }
    }
    let cancelled: Vec<PlannedAction> = base_actions
        .iter()
        .zip(&matched)
        .filter(|(b, m)| !**m && !head.actions.iter().any(|a| a.action != ActionKind::None && same_target(a, b)))
        .map(|(b, _)| (*b).clone())
        .collect();

    let mut summary = ChangeSummary {
        pending_on_base: pending_on_base.len(),
        cancelled: cancelled.len(),
        objects_changed: desired.len(),
        errors: head.errors.len(),
        ..ChangeSummary::default()
    };
    for a in &caused {
        if !a.denied.is_empty() {
            summary.denied += 1;
        } else if a.waiting.is_some() {
            summary.waiting += 1;
        } else {
            match a.action {
                ActionKind::Publish => summary.publish += 1,
                ActionKind::Update => summary.update += 1,
                ActionKind::Reconfigure => summary.reconfigure += 1,
                ActionKind::Retire => summary.retire += 1,
                ActionKind::None => {}
            }
        }
    }
    Change {
        format_version: CHANGE_FORMAT_VERSION,
        base: base.fingerprints.source.clone(),
        head: head.fingerprints.source.clone(),
        base_error: None,
        emulated: None,
        desired,
        catalogs,
        files,
        caused,
        pending_on_base,
        cancelled,
        errors: head.errors.clone(),
        guards: head.guards.clone(),
        unmanaged: head.unmanaged.clone(),
        summary,
    }
}

fn kind_rank(kind: &str) -> usize {
    ["Product", "Platform", "Rollout", "CatalogSource", "PolicySet", "Reconciler"]
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(usize::MAX)
}

fn object(key: &(String, String), change: &str, fields: Vec<FieldChange>) -> ObjectChange {
    ObjectChange { kind: key.0.clone(), name: key.1.clone(), change: change.into(), fields }
}

fn same_target(a: &PlannedAction, b: &PlannedAction) -> bool {
    (&a.product, &a.platform, &a.ring, &a.group) == (&b.product, &b.platform, &b.ring, &b.group)
}

fn same(a: &PlannedAction, b: &PlannedAction) -> bool {
    let wait = |x: &PlannedAction| x.waiting.as_ref().map(|w| (w.reason.clone(), w.until));
    same_target(a, b)
        && a.action == b.action
        && a.version == b.version
        && a.object_id == b.object_id
        && a.changes == b.changes
        && a.denied == b.denied
        && wait(a) == wait(b)
}

/// The leaves of two specs that differ, by path (`spec.targets[0].platform`).
fn field_changes(old: &serde_json::Value, new: &serde_json::Value) -> Vec<FieldChange> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    leaves(old, "spec", 0, &mut a);
    leaves(new, "spec", 0, &mut b);
    let mut out = Vec::new();
    for (path, from) in &a {
        let to = b.get(path);
        if to != Some(from) {
            out.push(FieldChange {
                field: Text::from(path.as_str()),
                from: Some(Text::from(from.as_str())),
                to: to.map(|t| Text::from(t.as_str())),
            });
        }
    }
    for (path, to) in b.iter().filter(|(p, _)| !a.contains_key(*p)) {
        out.push(FieldChange { field: Text::from(path.as_str()), from: None, to: Some(Text::from(to.as_str())) });
    }
    out.sort_by(|x, y| x.field.cmp(&y.field));
    out
}

fn leaves(v: &serde_json::Value, path: &str, depth: usize, out: &mut BTreeMap<String, String>) {
    match v {
        serde_json::Value::Object(m) if depth < MAX_DEPTH && !m.is_empty() => {
            for (k, x) in m {
                leaves(x, &format!("{path}.{k}"), depth + 1, out);
            }
        }
        serde_json::Value::Array(items) if depth < MAX_DEPTH && !items.is_empty() => {
            for (i, x) in items.iter().enumerate() {
                leaves(x, &format!("{path}[{i}]"), depth + 1, out);
            }
        }
        serde_json::Value::Null => {}
        serde_json::Value::String(s) => {
            out.insert(path.to_string(), s.clone());
        }
        other => {
            out.insert(path.to_string(), other.to_string());
        }
    }
}
