//! The planner: desired state × verified catalogs × observed platforms → actions.
//!
//! Pure: no IO, no clock, no async. Given the same inputs it returns the same [`Plan`], which
//! records the fingerprints of all three inputs so that a saved plan can be refused as stale.
//!
//! For each (product, platform, ring) the planner compares the desired object and assignment
//! with what the platform holds and decides:
//!
//! - **Publish**: nothing managed by patchops is assigned to the ring's group;
//! - **Update**: the ring runs another version than the one selected from the catalog;
//! - **Reconfigure**: the version is right but settings differ (field by field);
//! - **Retire**: a managed object or assignment that the fleet no longer asks for;
//! - **None**: everything matches.
//!
//! Only objects carrying patchops's [`TrackingMarker`](crate::platform::TrackingMarker) are
//! ever compared, updated or retired.

pub mod change;
mod desired;
pub mod dry_run;
mod gate;
pub mod render;

use std::collections::BTreeMap;

use crate::intern::{FastMap as HashMap, FastSet as HashSet};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::catalog::{Sha256, VerifiedCatalog};
use crate::model::{Fleet, ObjectName, PlatformType, ProductId};
use crate::platform::{Observed, ObservedObject};
use crate::source::Provenance;

pub use desired::{desired_fields, select_installer, Selection, SelectionError};
pub use gate::{gate, hold, next_window, observed_ring_versions, ObservedRing, RingHistory};

pub(crate) use crate::intern::Interner;
pub use crate::intern::Text;

/// The version of the plan's JSON format; see `schemas/plan.schema.json`.
pub const PLAN_FORMAT_VERSION: u32 = 1;

/// What the planner needs.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// The desired state.
    pub fleet: &'a Fleet,
    /// Where the fleet came from, and its digest.
    pub source: (&'a Provenance, Sha256),
    /// One verified catalog per CatalogSource.
    pub catalogs: &'a BTreeMap<ObjectName, VerifiedCatalog>,
    /// What each platform holds.
    pub observed: &'a BTreeMap<ObjectName, Observed>,
}

/// The kind of an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ActionKind {
    /// Publish the product to the ring.
    Publish,
    /// Move the ring to another version.
    Update,
    /// Change settings of the object or its assignment.
    Reconfigure,
    /// Remove the assignment, and the object once nothing uses it.
    Retire,
    /// Nothing to do.
    None,
}

impl ActionKind {
    /// The word shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Publish => "publish",
            ActionKind::Update => "update",
            ActionKind::Reconfigure => "reconfigure",
            ActionKind::Retire => "retire",
            ActionKind::None => "none",
        }
    }
}

/// One field that changes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FieldChange {
    /// Field name, such as `version` or `assignment.intent`.
    pub field: Text,
    /// Current value; absent when the field is new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Text>,
    /// Desired value; absent when the field goes away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Text>,
}

/// One action for a (product, platform, ring).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PlannedAction {
    /// What to do.
    pub action: ActionKind,
    /// CamelCase reason, such as `NotPublished`, `NewVersion`, `SettingsDrift`, `RemovedFromFleet`.
    pub reason: Text,
    /// A sentence explaining the reason.
    pub message: Text,
    /// The fleet Product (`metadata.name`); for retiring an object no Product describes any more,
    /// the catalog product id.
    pub product: Text,
    /// The catalog product id.
    pub catalog_product: Text,
    /// The Platform's name.
    pub platform: Text,
    /// The Platform's type.
    pub platform_type: PlatformType,
    /// The ring; absent when a retired assignment's group belongs to no ring of the fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring: Option<Text>,
    /// The ring's group on the platform: its id there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Text>,
    /// The group's display name, when the fleet names the group (`group: { name: … }`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<Text>,
    /// The version published after the action; absent for retire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Text>,
    /// The platform object concerned, when one exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<Text>,
    /// Field-level differences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
    /// Where the Product is defined (`file:line`), when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Text>,
    /// The policies that refuse this action; a denied action is never applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied: Vec<PolicyFinding>,
    /// Set when the action must wait (ring soak, maintenance window, change budget): it is not
    /// applied by this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Box<Waiting>>,
}

/// What one policy said about an action: a refusal (`deny`) or a remark (`warn`), with the
/// policy's own words. Plans carry them; the policy engine makes them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyFinding {
    /// The policy (its package's last component).
    pub policy: String,
    /// Why, as the policy says it.
    pub message: String,
}

/// Why an action waits, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Waiting {
    /// CamelCase reason: `RingSoaking`, `PreviousRingPending`, `MaintenanceWindow`, `ChangeBudget`.
    pub reason: String,
    /// What it waits for.
    pub message: String,
    /// When it can go ahead, when that is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

impl PlannedAction {
    /// A change that is neither denied nor waiting.
    pub fn is_applicable(&self) -> bool {
        self.action != ActionKind::None && self.denied.is_empty() && self.waiting.is_none()
    }
}

/// A product that could not be planned (the others still are).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PlanError {
    /// The fleet Product.
    pub product: String,
    /// CamelCase reason, such as `ProductNotInCatalog` or `NoMatchingVersion`.
    pub reason: String,
    /// What is wrong and what to do.
    pub message: String,
    /// Where the Product is defined.
    pub origin: String,
}

/// Which inputs a plan was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Fingerprints {
    /// The commit (or directory) of the fleet.
    #[schemars(with = "serde_json::Value")]
    pub source: serde_json::Value,
    /// SHA-256 over the fleet files.
    pub source_digest: Sha256,
    /// Each catalog: source, serial and SHA-256.
    pub catalogs: Vec<CatalogFingerprint>,
    /// SHA-256 of each platform's observed state.
    pub observed: BTreeMap<String, Sha256>,
    /// SHA-256 of each file the plan was made from, by path in the repository: the fleet's
    /// documents and the catalogs and policy modules they reference there. A saved plan is
    /// stale when one of them differs, not when only the commit does.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, Sha256>,
    /// SHA-256 of each object each platform holds, by platform and object id: a stale saved
    /// plan names the objects that changed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub objects: BTreeMap<String, BTreeMap<String, Sha256>>,
    /// Who signed the commit, when commit signatures are required (absent when they are not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<crate::source::signature::CommitVerdict>,
}

/// The identity of one verified catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CatalogFingerprint {
    /// CatalogSource name.
    pub source: String,
    /// Serial.
    pub serial: u64,
    /// SHA-256 of the signed bytes.
    pub sha256: Sha256,
    /// The signing key's id.
    pub key_id: String,
}

/// Counts per action kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Summary {
    /// Publish actions.
    pub publish: usize,
    /// Update actions.
    pub update: usize,
    /// Reconfigure actions.
    pub reconfigure: usize,
    /// Retire actions.
    pub retire: usize,
    /// Units already as desired.
    pub unchanged: usize,
    /// Products that could not be planned.
    pub errors: usize,
    /// Changes refused by policy.
    #[serde(default)]
    pub denied: usize,
    /// Changes waiting for a ring, a window or the change budget.
    #[serde(default)]
    pub waiting: usize,
}

/// The result of planning.
#[must_use = "a plan does nothing until it is rendered, saved or applied"]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Plan {
    /// Always [`PLAN_FORMAT_VERSION`].
    pub format_version: u32,
    /// The inputs' identities.
    pub fingerprints: Fingerprints,
    /// Every (product, platform, ring), including unchanged ones, in a stable order.
    pub actions: Vec<PlannedAction>,
    /// Products that could not be planned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<PlanError>,
    /// Objects without patchops's marker, per platform: never touched.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unmanaged: BTreeMap<String, usize>,
    /// What `apply` would refuse this plan for, such as the mass-retire guard: found when
    /// planning, so that a pull request shows it before anyone applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guards: Vec<String>,
    /// Counts.
    pub summary: Summary,
    /// Where the plan was made from, as given (`plan --out` records it): what `apply PLAN`
    /// reads when no flag says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub made_from: Option<MadeFrom>,
    /// `plan --emulate`: the plan applied to emulators seeded from the recorded inventory (in
    /// the command's output only; a saved plan never holds it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emulated: Option<dry_run::DryRun>,
}

/// The source flags a saved plan was made with, as given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MadeFrom {
    /// `--repo`.
    pub repo: String,
    /// `--rev`, if one was given (otherwise the repository's HEAD when applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rev: Option<String>,
    /// `--path`.
    pub path: String,
    /// `--state-dir`.
    pub state_dir: String,
}

impl Plan {
    /// Whether any action changes something.
    pub fn has_changes(&self) -> bool {
        self.actions.iter().any(|a| a.action != ActionKind::None)
    }

    /// The actions this run would apply: changes neither denied nor waiting.
    pub fn applicable(&self) -> impl Iterator<Item = &PlannedAction> {
        self.actions.iter().filter(|a| a.is_applicable())
    }

    /// Recounts [`Summary::denied`] and [`Summary::waiting`] after policies and gates ran.
    pub fn recount(&mut self) {
        let changes = || self.actions.iter().filter(|a| a.action != ActionKind::None);
        self.summary.denied = changes().filter(|a| !a.denied.is_empty()).count();
        self.summary.waiting = changes().filter(|a| a.denied.is_empty() && a.waiting.is_some()).count();
    }
}

/// Plans every (product, platform, ring) of the fleet.
pub fn plan(input: PlanInput<'_>) -> Plan {
    // Managed objects by (platform, catalog product): one pass over everything observed, so
    // planning stays linear in fleet and platform size.
    let mut managed_index: ManagedIndex<'_> = HashMap::default();
    for (platform, observed) in input.observed {
        for o in &observed.objects {
            // A half-made object is no ring's current object and never reused: it is retired
            // (`retire_unwanted`) and the ring is published afresh.
            if let Some(m) = o.managed_complete() {
                managed_index.entry((platform, &m.product)).or_default().push(o);
            }
        }
    }

    // Products are independent of each other: plan them in chunks on every core, then join the
    // chunks in product order (the result is the same as planning them one by one).
    let products = input.fleet.products.as_slice();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let chunk = products.len().div_ceil(threads).max(256);
    // Each platform's fingerprints (every observed object hashed) are made beside the products.
    let fingerprints = || -> Vec<(String, PlatformFingerprints)> {
        input.observed.iter().map(|(p, o)| (p.to_string(), o.fingerprints())).collect()
    };
    let (parts, observed_fingerprints): (Vec<Partial<'_>>, _) = if products.len() <= chunk {
        (vec![plan_products(&input, products, &managed_index)], fingerprints())
    } else {
        std::thread::scope(|scope| {
            let hashing = scope.spawn(fingerprints);
            let handles: Vec<_> = products
                .chunks(chunk)
                .map(|c| {
                    let (input, index) = (&input, &managed_index);
                    scope.spawn(move || plan_products(input, c, index))
                })
                .collect();
            // The planner is pure; a panicking chunk is a bug, re-raised rather than hidden.
            let parts =
                handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect();
            (parts, hashing.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
        })
    };
    // Sized once: a plan of tens of thousands of actions should not be copied while it grows;
    // the sets are built here, once, from the chunks' lists (not merged from sets of their own).
    let mut actions = Vec::with_capacity(parts.iter().map(|p| p.actions.len()).sum());
    let mut errors = Vec::new();
    let mut wanted = HashSet::with_capacity_and_hasher(parts.iter().map(|p| p.wanted.len()).sum(), Default::default());
    let mut wanted_objects =
        HashSet::with_capacity_and_hasher(parts.iter().map(|p| p.wanted_objects.len()).sum(), Default::default());
    let mut selected =
        HashMap::with_capacity_and_hasher(parts.iter().map(|p| p.selected.len()).sum(), Default::default());
    for part in parts {
        actions.extend(part.actions);
        errors.extend(part.errors);
        wanted.extend(part.wanted);
        wanted_objects.extend(part.wanted_objects);
        selected.extend(part.selected);
    }

    retire_unwanted(&input, &wanted, &wanted_objects, &selected, &mut actions);

    // Rings sort in rollout order (pilot before broad), not alphabetically.
    let ring_rank: HashMap<&str, usize> = input
        .fleet
        .rollouts
        .values()
        .flat_map(|r| r.spec.rings.iter().enumerate().map(|(i, ring)| (ring.name.as_str(), i)))
        .collect();
    let rank = |a: &PlannedAction| a.ring.as_deref().and_then(|r| ring_rank.get(r).copied()).unwrap_or(usize::MAX);
    // In place (no scratch copy of the plan); the key is total, so the order is deterministic.
    actions.sort_unstable_by(|a, b| {
        (&a.product, &a.platform, rank(a), &a.group, a.action, &a.object_id).cmp(&(
            &b.product,
            &b.platform,
            rank(b),
            &b.group,
            b.action,
            &b.object_id,
        ))
    });
    let mut summary = Summary { errors: errors.len(), ..Summary::default() };
    for a in &actions {
        match a.action {
            ActionKind::Publish => summary.publish += 1,
            ActionKind::Update => summary.update += 1,
            ActionKind::Reconfigure => summary.reconfigure += 1,
            ActionKind::Retire => summary.retire += 1,
            ActionKind::None => summary.unchanged += 1,
        }
    }
    let unmanaged = input
        .observed
        .iter()
        .map(|(p, o)| (p.to_string(), o.objects.iter().filter(|o| o.managed().is_none()).count()))
        .filter(|(_, n)| *n > 0)
        .collect();
    Plan {
        format_version: PLAN_FORMAT_VERSION,
        fingerprints: Fingerprints {
            source: serde_json::to_value(input.source.0).unwrap_or_default(),
            source_digest: input.source.1,
            catalogs: input
                .catalogs
                .values()
                .map(|c| CatalogFingerprint {
                    source: c.source_name().to_string(),
                    serial: c.serial(),
                    sha256: c.digest(),
                    key_id: c.key_id().to_string(),
                })
                .collect(),
            observed: observed_fingerprints.iter().map(|(p, (all, _))| (p.clone(), *all)).collect(),
            files: BTreeMap::new(),
            objects: observed_fingerprints.into_iter().map(|(p, (_, each))| (p, each)).collect(),
            signature: None,
        },
        actions,
        errors,
        unmanaged,
        guards: Vec::new(),
        summary,
        made_from: None,
        emulated: None,
    }
}

/// A platform's fingerprint, and each of its objects' by id.
type PlatformFingerprints = (Sha256, BTreeMap<String, Sha256>);

type ManagedIndex<'a> = HashMap<(&'a ObjectName, &'a ProductId), Vec<&'a ObservedObject>>;

/// What planning a slice of the fleet's products yields.
struct Partial<'a> {
    actions: Vec<PlannedAction>,
    errors: Vec<PlanError>,
    /// (platform, catalog product, group) units the fleet wants; the other managed assignments
    /// are retired.
    wanted: Vec<(&'a ObjectName, &'a ProductId, &'a str)>,
    /// (platform, catalog product) objects the fleet wants.
    wanted_objects: Vec<(&'a ObjectName, &'a ProductId)>,
    /// The version selected for each (platform, catalog product) planned without error: the
    /// other versions there are superseded, and kept only as the platform's retention says.
    selected: Vec<((&'a ObjectName, &'a ProductId), String)>,
}

fn plan_products<'a>(
    input: &PlanInput<'a>,
    products: &'a [crate::model::Product],
    managed_index: &ManagedIndex<'a>,
) -> Partial<'a> {
    // One action per (product, platform, ring) is the rule (retiring a second assigned object
    // the exception): sized once, a chunk's list is not regrown nor left up to half empty.
    let units = products.iter().map(|p| p.targets.iter().map(|t| t.rings.len()).sum::<usize>()).sum();
    let mut actions = Vec::with_capacity(units);
    let mut errors = Vec::new();
    // Lists here (a chunk only adds to them); `plan` makes the sets once.
    let mut wanted: Vec<(&ObjectName, &ProductId, &str)> = Vec::with_capacity(units);
    let mut wanted_objects: Vec<(&ObjectName, &ProductId)> = Vec::new();
    let mut selected: Vec<((&ObjectName, &ProductId), String)> = Vec::new();
    let mut text = Interner::default();
    for product in products {
        if product.spec.retire {
            continue;
        }
        let Some(catalog) = input.catalogs.get(&product.catalog) else {
            errors.push(PlanError {
                product: product.name().to_string(),
                reason: "CatalogUnavailable".into(),
                message: format!("catalog source `{}` has no verified catalog", product.catalog),
                origin: product.origin.to_string(),
            });
            continue;
        };
        let selection = match select_installer(product, catalog) {
            Ok(s) => s,
            Err(e) => {
                // Keep what is published for this product: a broken catalog entry must not
                // look like a request to retire it.
                for t in &product.targets {
                    wanted_objects.push((&t.spec.platform, &product.spec.product));
                    if let Some(rollout) = input.fleet.rollouts.get(&t.rollout) {
                        for ring in &t.rings {
                            if let Some(g) = rollout.group(ring, &t.spec.platform) {
                                wanted.push((&t.spec.platform, &product.spec.product, g));
                            }
                        }
                    }
                }
                errors.push(PlanError {
                    product: product.name().to_string(),
                    reason: e.reason().into(),
                    message: e.to_string(),
                    origin: product.origin.to_string(),
                });
                continue;
            }
        };
        let base_fields = desired::product_fields(product, &selection);
        let product_name = text.get(product.name().as_str());
        let catalog_product = text.get(product.spec.product.as_str());
        let origin = text.get(&product.origin.to_string());
        for target in &product.targets {
            let Some(platform) = input.fleet.platforms.get(&target.spec.platform) else { continue };
            let Some(rollout) = input.fleet.rollouts.get(&target.rollout) else { continue };
            // What the platform would refuse at apply is found here. WSUS writes the version into
            // every bt:Version of the SDP, which must be a four-part n.n.n.n.
            if platform.spec.platform_type == crate::vocab::PlatformType::Wsus {
                if let Err(e) = crate::platform::wsus::sdp::four_part_version(&selection.version.to_string()) {
                    // Keep what is published there: an unpublishable version is not a retire.
                    wanted_objects.push((&target.spec.platform, &product.spec.product));
                    for ring in &target.rings {
                        if let Some(g) = rollout.group(ring, &target.spec.platform) {
                            wanted.push((&target.spec.platform, &product.spec.product, g));
                        }
                    }
                    errors.push(PlanError {
                        product: product.name().to_string(),
                        reason: "VersionNotFourPart".into(),
                        message: format!("on WSUS Platform `{}`: {e}", target.spec.platform),
                        origin: product.origin.to_string(),
                    });
                    continue;
                }
            }
            let managed: &[&ObservedObject] =
                managed_index.get(&(&target.spec.platform, &product.spec.product)).map_or(&[], Vec::as_slice);
            wanted_objects.push((&target.spec.platform, &product.spec.product));
            selected.push(((&target.spec.platform, &product.spec.product), selection.version.to_string()));
            let platform_fields = desired::platform_fields(platform.spec.platform_type, target);
            let object_fields = desired::object_fields(platform.spec.platform_type, &base_fields, &platform_fields);
            let assignment_map = desired::assignment_fields(target);
            let assignment_fields = desired::merged(&[&assignment_map]);
            // The object-level fields change once per platform: the first ring that needs the
            // object carries them; later rings only move or add their assignment.
            let mut object_changes_listed = false;
            let version_text = selection.version.to_string();
            let version_shared = text.get(&version_text);
            let platform_name = text.get(target.spec.platform.as_str());
            // Fields the fleet says never to compare (values the platform changes by itself):
            // the Platform's and the Product's drift.ignore.
            let ignored = |field: &str| {
                platform.spec.drift.as_ref().is_some_and(|d| d.ignores(field))
                    || product.spec.drift.as_ref().is_some_and(|d| d.ignores(field))
            };
            for ring in &target.rings {
                let Some(group) = rollout.group(ring, &target.spec.platform) else { continue };
                let group_name = rollout.group_name(ring, &target.spec.platform);
                let shown = group_name.unwrap_or(group);
                wanted.push((&target.spec.platform, &product.spec.product, group));
                // Normally one object is assigned to a ring's group. A run that died in the middle
                // of an update leaves two (the new version assigned, the old one not yet
                // withdrawn): the one holding the selected version and content is the ring's,
                // and the others leave the group.
                let assigned: Vec<(&ObservedObject, &crate::platform::ObservedAssignment)> = managed
                    .iter()
                    .filter_map(|o| o.assignments.iter().find(|a| a.group == group).map(|a| (*o, a)))
                    .collect();
                let is_selected = |o: &ObservedObject| {
                    o.managed()
                        .is_some_and(|m| m.version == version_text && m.content_digest == selection.installer.sha256)
                };
                let current = assigned.iter().find(|(o, _)| is_selected(o)).or(assigned.first()).copied();
                if let Some((chosen, _)) = current.filter(|(o, _)| is_selected(o)) {
                    for (other, _) in assigned.iter().filter(|(o, _)| o.id != chosen.id) {
                        let from = other.managed().map(|m| m.version.clone()).unwrap_or_default();
                        actions.push(PlannedAction {
                            action: ActionKind::Retire,
                            reason: text.get("AlsoAssigned"),
                            message: format!(
                                "{} {from} (object {}) is still assigned to ring {ring} (group {shown}), which runs {} (object {}); it leaves the group",
                                product.spec.product, other.id, selection.version, chosen.id
                            )
                            .into(),
                            product: Arc::clone(&product_name),
                            catalog_product: Arc::clone(&catalog_product),
                            platform: text.get(target.spec.platform.as_str()),
                            platform_type: platform.spec.platform_type,
                            ring: Some(text.get(ring.as_str())),
                            group: Some(text.get(group)),
                            group_name: group_name.map(|n| text.get(n)),
                            version: None,
                            object_id: Some(other.id.as_str().into()),
                            changes: vec![FieldChange { field: text.get("version"), from: Some(from.as_str().into()), to: None }],
                            origin: Some(Arc::clone(&origin)),
                            denied: Vec::new(),
                            waiting: None,
                        });
                    }
                }
                let base = PlannedAction {
                    action: ActionKind::None,
                    reason: text.get(""),
                    message: text.get(""),
                    product: Arc::clone(&product_name),
                    catalog_product: Arc::clone(&catalog_product),
                    platform: Arc::clone(&platform_name),
                    platform_type: platform.spec.platform_type,
                    ring: Some(text.get(ring.as_str())),
                    group: Some(text.get(group)),
                    group_name: group_name.map(|n| text.get(n)),
                    version: Some(Arc::clone(&version_shared)),
                    object_id: None,
                    changes: Vec::new(),
                    origin: Some(Arc::clone(&origin)),
                    denied: Vec::new(),
                    waiting: None,
                };
                let action = match current {
                    None => {
                        let existing = managed.iter().find(|o| {
                            o.managed().is_some_and(|m| {
                                m.version == version_text && m.content_digest == selection.installer.sha256
                            })
                        });
                        let mut changes = if object_changes_listed || existing.is_some() {
                            vec![FieldChange {
                                field: text.get("version"),
                                from: None,
                                to: Some(Arc::clone(&version_shared)),
                            }]
                        } else {
                            desired::diff(std::iter::empty(), &object_fields, "", &mut text)
                        };
                        changes.extend(desired::diff(std::iter::empty(), &assignment_fields, "assignment.", &mut text));
                        let message = match existing {
                            Some(o) => format!(
                                "{} {} is not assigned to ring {ring} (group {shown}); assign the existing object {}",
                                product.spec.product, selection.version, o.id
                            ),
                            None => format!(
                                "{} {} is not published to ring {ring} (group {shown})",
                                product.spec.product, selection.version
                            ),
                        };
                        PlannedAction {
                            action: ActionKind::Publish,
                            reason: text.get("NotPublished"),
                            message: message.into(),
                            object_id: existing.map(|o| o.id.as_str().into()),
                            changes,
                            ..base
                        }
                    }
                    Some((object, assignment)) => {
                        let mut changes = desired::diff(object.fields.iter(), &object_fields, "", &mut text);
                        changes.extend(desired::diff(
                            assignment.fields.iter(),
                            &assignment_fields,
                            "assignment.",
                            &mut text,
                        ));
                        changes.retain(|c| !ignored(&c.field));
                        let from = object.managed().map(|m| m.version.clone()).unwrap_or_default();
                        let version_changes = from != version_text;
                        // Same version, other bytes (a vendor re-release, or a catalog fix): the
                        // content must be published again, not just the settings.
                        let content_changes =
                            object.managed().is_some_and(|m| m.content_digest != selection.installer.sha256);
                        let (action, reason, message) = if content_changes && !version_changes {
                            (
                                ActionKind::Update,
                                "ContentChanged",
                                format!(
                                    "the catalog's installer for {} {} is now {}; the published one is {} (ring {ring})",
                                    product.spec.product,
                                    selection.version,
                                    selection.installer.sha256.short(),
                                    object.managed().map(|m| m.content_digest.short()).unwrap_or_default()
                                ),
                            )
                        } else if version_changes {
                            let older = from.parse::<crate::model::Version>().is_ok_and(|v| v > selection.version);
                            let (reason, why) = if older {
                                (
                                    "VersionPinnedLower",
                                    format!(
                                        "the fleet selects {} ({}), older than the published {from}",
                                        selection.version, product.spec.version
                                    ),
                                )
                            } else {
                                (
                                    "NewVersion",
                                    format!("{} {} replaces {from}", product.spec.product, selection.version),
                                )
                            };
                            (ActionKind::Update, reason, format!("{why} in ring {ring}"))
                        } else if changes.is_empty() {
                            // The reason says it all; no sentence is built for the (many)
                            // unchanged units of a large fleet.
                            (ActionKind::None, "UpToDate", String::new())
                        } else {
                            (
                                ActionKind::Reconfigure,
                                "SettingsDrift",
                                format!("{} setting(s) differ from the fleet in ring {ring}", changes.len()),
                            )
                        };
                        PlannedAction {
                            action,
                            reason: text.get(reason),
                            message: if message.is_empty() { text.get("") } else { message.into() },
                            object_id: Some(object.id.as_str().into()),
                            changes,
                            ..base
                        }
                    }
                };
                let mut action = action;
                if action.action != ActionKind::None {
                    if object_changes_listed {
                        action.changes.retain(|c| &*c.field == "version" || c.field.starts_with("assignment."));
                    }
                    object_changes_listed |= action.changes.iter().any(|c| !c.field.starts_with("assignment."));
                }
                action.changes.shrink_to_fit();
                actions.push(action);
            }
        }
    }

    Partial { actions, errors, wanted, wanted_objects, selected }
}

/// Retires managed assignments and objects that no Product asks for any more.
fn retire_unwanted(
    input: &PlanInput<'_>,
    wanted: &HashSet<(&ObjectName, &ProductId, &str)>,
    wanted_objects: &HashSet<(&ObjectName, &ProductId)>,
    selected: &HashMap<(&ObjectName, &ProductId), String>,
    actions: &mut Vec<PlannedAction>,
) {
    let by_catalog_id: HashMap<&ProductId, &crate::model::Product> =
        input.fleet.products.iter().map(|p| (&p.spec.product, p)).collect();
    for (platform_name, observed) in input.observed {
        let Some(platform) = input.fleet.platforms.get(platform_name) else { continue };
        let beyond_retention =
            superseded_beyond_retention(observed, platform_name, platform.spec.keep_versions(), selected);
        for object in &observed.objects {
            let Some(marker) = object.managed() else { continue };
            let product_id = marker.product.to_string();
            let fleet_product = by_catalog_id.get(&marker.product);
            let (product_name, origin, why) = match fleet_product {
                Some(p) if p.spec.retire => (p.name().to_string(), Some(p.origin.to_string()), "RetireRequested"),
                Some(p) => (p.name().to_string(), Some(p.origin.to_string()), "RingRemoved"),
                None => (product_id.clone(), None, "RemovedFromFleet"),
            };
            // Every retire of this object differs only in ring, group and sentence.
            let retire = |ring: Option<String>, group: Option<&str>, message: String| PlannedAction {
                action: ActionKind::Retire,
                reason: why.into(),
                message: message.into(),
                product: product_name.as_str().into(),
                catalog_product: product_id.as_str().into(),
                platform: platform_name.as_str().into(),
                platform_type: platform.spec.platform_type,
                ring: ring.map(Into::into),
                group: group.map(Into::into),
                group_name: group.and_then(|g| group_name_of(input.fleet, platform_name, g)).map(Into::into),
                version: None,
                object_id: Some(object.id.as_str().into()),
                changes: vec![FieldChange {
                    field: "version".into(),
                    from: Some(marker.version.as_str().into()),
                    to: None,
                }],
                origin: origin.as_deref().map(Into::into),
                denied: Vec::new(),
                waiting: None,
            };
            if let Some(missing) = &object.incomplete {
                let message = format!(
                    "object {} of {product_id} {} was left half-made by an earlier run ({missing}); it is deleted and published afresh",
                    object.id, marker.version
                );
                let mut retire = retire(None, None, message);
                retire.reason = "Incomplete".into();
                actions.push(retire);
                continue;
            }
            for assignment in &object.assignments {
                if wanted.contains(&(platform_name, &marker.product, assignment.group.as_str())) {
                    continue;
                }
                let ring = ring_of_group(input.fleet, platform_name, &assignment.group);
                let message = match why {
                    "RetireRequested" => format!("Product `{product_name}` sets retire: true"),
                    "RemovedFromFleet" => {
                        format!("no Product publishes {product_id} to platform {platform_name} any more")
                    }
                    _ => format!(
                        "Product `{product_name}` no longer targets group {} on {platform_name}",
                        group_name_of(input.fleet, platform_name, &assignment.group).unwrap_or(&assignment.group)
                    ),
                };
                actions.push(retire(ring, Some(&assignment.group), message));
            }
            let object_wanted = wanted_objects.contains(&(platform_name, &marker.product));
            if let Some(kept) = beyond_retention.get(object.id.as_str()) {
                let message = if *kept == 0 {
                    format!(
                        "{product_id} {} (object {}) is superseded, and the platform keeps no superseded version (retention.keepVersions: 0)",
                        marker.version, object.id
                    )
                } else {
                    format!(
                        "{product_id} {} (object {}) is superseded and older than the {kept} most recent version{} the platform keeps (retention.keepVersions: {kept})",
                        marker.version,
                        object.id,
                        if *kept == 1 { "" } else { "s" }
                    )
                };
                let mut retire = retire(None, None, message);
                retire.reason = "Superseded".into();
                actions.push(retire);
                continue;
            }
            if object.assignments.is_empty() && !object_wanted {
                let message =
                    format!("unassigned object {} of {product_id} {} is no longer wanted", object.id, marker.version);
                actions.push(retire(None, None, message));
            }
        }
    }
}

/// The unassigned objects of a platform to retire because they exceed its retention, with the
/// retention: per product planned there, the versions other than the selected one are
/// superseded; the `keep` newest of them (one object per version, assigned ones counted, as
/// this plan moves them off) stay; the other unassigned ones go. Objects of a product that
/// failed to plan are kept (nothing is known about them).
fn superseded_beyond_retention<'o>(
    observed: &'o Observed,
    platform: &ObjectName,
    keep: u16,
    selected: &HashMap<(&ObjectName, &ProductId), String>,
) -> HashMap<&'o str, u16> {
    let mut by_product: HashMap<&ProductId, Vec<(crate::model::Version, &ObservedObject)>> = HashMap::default();
    for o in &observed.objects {
        let Some(m) = o.managed_complete() else { continue };
        let Some(chosen) = selected.get(&(platform, &m.product)) else { continue };
        if &m.version == chosen {
            continue;
        }
        // A version that does not parse is never pruned.
        let Ok(v) = m.version.parse::<crate::model::Version>() else { continue };
        by_product.entry(&m.product).or_default().push((v, o));
    }
    let mut out = HashMap::default();
    for (_, mut superseded) in by_product {
        // Newest first; of one version, an assigned object before an unassigned one.
        superseded.sort_by(|(a, x), (b, y)| b.cmp(a).then(y.assignments.len().cmp(&x.assignments.len())));
        let mut versions_kept: Vec<&crate::model::Version> = Vec::new();
        for (v, o) in &superseded {
            let seen = versions_kept.contains(&v);
            if !seen && versions_kept.len() < usize::from(keep) {
                versions_kept.push(v);
                continue;
            }
            if o.assignments.is_empty() {
                out.insert(o.id.as_str(), keep);
            }
        }
    }
    out
}

/// The display name the fleet gives the group with id `group` on `platform`, if it names it.
fn group_name_of<'f>(fleet: &'f Fleet, platform: &ObjectName, group: &str) -> Option<&'f str> {
    fleet.ring_groups().find(|g| &g.platform == platform && g.group.id() == Some(group)).and_then(|g| g.group.name())
}

fn ring_of_group(fleet: &Fleet, platform: &ObjectName, group: &str) -> Option<String> {
    fleet.rollouts.values().find_map(|r| {
        r.spec
            .rings
            .iter()
            .find(|ring| ring.groups.iter().any(|g| &g.platform == platform && g.group.id() == Some(group)))
            .map(|ring| ring.name.to_string())
    })
}

#[cfg(test)]
mod tests;
