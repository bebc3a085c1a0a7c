//! Drift: a managed object changed outside git. A target (Product, Platform, ring) that the
//! last cycle found as desired, read again from the same fleet content and catalogs, can only differ
//! because the platform changed: that difference is drift (a ring the gate releases later, or
//! a change a new commit asks for, is not). Each such change is reported per
//! object, field by field (expected against actual), and handled by the mode the fleet chose
//! (`drift.mode` on the Platform, overridden per Product): `correct` applies the desired state
//! again, `warn` reports and holds the change back (it waits, reason `DriftNotCorrected`), `off`
//! neither reports nor corrects. Fields listed in `drift.ignore` are never compared (the planner
//! leaves them out). A plain `patchops apply` is an explicit request and always corrects.

use std::collections::HashSet;

use serde::Serialize;

use crate::intern::Text;
use crate::model::kinds::DriftMode;
use crate::model::Fleet;
use crate::plan::{Plan, Waiting};

/// One field that differs from the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftedField {
    /// The field, as `plan` names it.
    pub field: String,
    /// What the fleet says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// What the platform holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
}

/// One object that drifted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    /// The fleet Product.
    pub product: String,
    /// The Platform.
    pub platform: String,
    /// The ring.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring: Option<String>,
    /// The platform object, when it still exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// The change that puts it back (`reconfigure`; `publish` when it was deleted).
    pub action: String,
    /// The differing fields.
    pub fields: Vec<DriftedField>,
    /// What was done: `warn` (reported only) or `correct`.
    pub mode: DriftMode,
}

/// The mode for (product, platform): the Product's override, else the Platform's, else correct.
pub fn mode(fleet: &Fleet, product: &str, platform: &str) -> DriftMode {
    let of_product = fleet.product(product).and_then(|p| p.spec.drift.as_ref()).and_then(|d| d.mode);
    let of_platform = fleet
        .platforms
        .iter()
        .find(|(n, _)| n.as_str() == platform)
        .and_then(|(_, p)| p.spec.drift.as_ref())
        .and_then(|d| d.mode);
    of_product.or(of_platform).unwrap_or_default()
}

/// A target: (Product, Platform, ring).
pub type Target = (Text, Text, Option<Text>);

fn target(a: &crate::plan::PlannedAction) -> Target {
    (a.product.clone(), a.platform.clone(), a.ring.clone())
}

/// What the last cycle found as desired, and at which inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baseline {
    /// The fleet's content digest (its files; the same for a commit or a directory).
    pub source_digest: Option<crate::catalog::Sha256>,
    /// Each catalog's source and serial.
    pub catalogs: Vec<(String, u64)>,
    /// The targets that were as desired.
    pub in_sync: HashSet<Target>,
}

impl Baseline {
    /// The baseline a plan leaves: its inputs and the targets it found as desired.
    pub fn of(plan: &Plan) -> Baseline {
        Baseline {
            source_digest: Some(plan.fingerprints.source_digest),
            catalogs: plan.fingerprints.catalogs.iter().map(|c| (c.source.clone(), c.serial)).collect(),
            in_sync: plan
                .actions
                .iter()
                // As desired, or drifted and left so by `warn`/`off`: the next cycle at the
                // same inputs still sees the difference as drift, not as a change to make.
                .filter(|a| {
                    a.action == crate::plan::ActionKind::None
                        || a.waiting.as_ref().is_some_and(|w| w.reason == "DriftNotCorrected")
                })
                .map(target)
                .collect(),
        }
    }

    /// The form kept in the state directory (none before a cycle made a plan).
    pub fn to_saved(&self) -> Option<crate::state::DriftBaseline> {
        Some(crate::state::DriftBaseline {
            source_digest: self.source_digest?,
            catalogs: self.catalogs.clone(),
            in_sync: self
                .in_sync
                .iter()
                .map(|(p, pl, r)| (p.to_string(), pl.to_string(), r.as_deref().map(str::to_string)))
                .collect(),
        })
    }

    /// The baseline a previous run of the daemon kept.
    pub fn from_saved(saved: crate::state::DriftBaseline) -> Baseline {
        Baseline {
            source_digest: Some(saved.source_digest),
            catalogs: saved.catalogs,
            in_sync: saved
                .in_sync
                .into_iter()
                .map(|(p, pl, r)| (Text::from(p), Text::from(pl), r.map(Text::from)))
                .collect(),
        }
    }

    /// Whether `plan` was made from the same inputs.
    pub fn same_inputs(&self, plan: &Plan) -> bool {
        let f = &plan.fingerprints;
        self.source_digest == Some(f.source_digest)
            && self.catalogs.len() == f.catalogs.len()
            && self.catalogs.iter().zip(&f.catalogs).all(|((s, n), c)| *s == c.source && *n == c.serial)
    }
}

/// Classifies the applicable changes of a plan made from the baseline's inputs, on targets the
/// baseline found as desired, as drift: reports them, and holds back what `warn` and `off` do
/// not correct. Returns what is reported.
pub fn classify(plan: &mut Plan, fleet: &Fleet, baseline: &Baseline) -> Vec<Drift> {
    let mut found = Vec::new();
    if !baseline.same_inputs(plan) {
        return found;
    }
    let drifted = |a: &crate::plan::PlannedAction| a.is_applicable() && baseline.in_sync.contains(&target(a));
    for a in plan.actions.iter_mut().filter(|a| drifted(a)) {
        let mode = mode(fleet, &a.product, &a.platform);
        if mode != DriftMode::Correct {
            a.waiting = Some(Box::new(Waiting {
                reason: "DriftNotCorrected".into(),
                message: format!(
                    "{} on {} changed outside git; drift mode `{}` does not correct it",
                    a.product,
                    a.platform,
                    if mode == DriftMode::Warn { "warn" } else { "off" }
                ),
                until: None,
            }));
        }
        if mode == DriftMode::Off {
            continue;
        }
        let fields: Vec<DriftedField> = a
            .changes
            .iter()
            .map(|c| DriftedField {
                field: c.field.to_string(),
                expected: c.to.as_deref().map(str::to_string),
                actual: c.from.as_deref().map(str::to_string),
            })
            .collect();
        // One report per object: the rings of one object share its fields.
        let object_id = a.object_id.as_deref().map(str::to_string);
        if let Some(same) =
            found.iter_mut().find(|d| object_id.is_some() && d.object_id == object_id && *d.platform == *a.platform)
        {
            for f in fields {
                if !same.fields.contains(&f) {
                    same.fields.push(f);
                }
            }
            continue;
        }
        found.push(Drift {
            product: a.product.to_string(),
            platform: a.platform.to_string(),
            ring: a.ring.as_deref().map(str::to_string),
            object_id,
            action: a.action.as_str().to_string(),
            fields,
            mode,
        });
    }
    plan.recount();
    found
}
