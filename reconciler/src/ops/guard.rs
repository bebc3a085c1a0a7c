//! The mass-retire guard: an empty or broken fleet looks exactly like a fleet that retires
//! everything, so one run may retire only a share of a platform's managed objects.

use std::collections::BTreeMap;

use crate::model::ObjectName;
use crate::plan::{self, Plan};
use crate::platform::{self, Observed};

/// The fewest objects a run must retire from a platform for the mass-retire guard to refuse it
/// (unless it empties the platform — retires every managed object there and publishes none):
/// one retire on a small platform is a change, not an emptied fleet.
pub const MIN_MASS_RETIRE_COUNT: usize = 3;

/// Platforms where the plan would retire more than `share` of the managed objects: at least
/// [`MIN_MASS_RETIRE_COUNT`] of them, or all of them while publishing nothing there (what an
/// empty fleet does; a plan that retires the one object left and publishes another — its
/// replacement, or a product whose object was deleted by hand — leaves the platform managed).
pub(super) fn mass_retire(plan: &Plan, observed: &BTreeMap<ObjectName, Observed>, share: f64) -> Vec<MassRetire> {
    let mut out = Vec::new();
    for (name, o) in observed {
        // Half-made objects are replaced, not retired from devices: they do not count.
        let managed: Vec<&platform::ObservedObject> =
            o.objects.iter().filter(|x| x.managed_complete().is_some()).collect();
        if managed.is_empty() {
            continue;
        }
        let retires: Vec<&plan::PlannedAction> = plan
            .applicable()
            // A version withdrawn from a group that already runs the selected one (a crash
            // mid-update) is the end of an update, not a fleet emptying itself.
            .filter(|a| {
                a.action == plan::ActionKind::Retire && &*a.platform == name.as_str() && &*a.reason != "AlsoAssigned"
            })
            .collect();
        let gone = managed
            .iter()
            .filter(|obj| {
                let mine = |a: &&&plan::PlannedAction| a.object_id.as_deref() == Some(obj.id.as_str());
                retires.iter().filter(mine).any(|a| a.group.is_none())
                    || (!obj.assignments.is_empty()
                        && obj
                            .assignments
                            .iter()
                            .all(|g| retires.iter().filter(mine).any(|a| a.group.as_deref() == Some(g.group.as_str()))))
            })
            .count();
        let publishes =
            plan.applicable().any(|a| a.action == plan::ActionKind::Publish && &*a.platform == name.as_str());
        let emptied = gone == managed.len() && !publishes;
        let enough = gone >= MIN_MASS_RETIRE_COUNT || emptied;
        if gone > 0 && enough && (gone as f64) > share * managed.len() as f64 {
            out.push(MassRetire {
                platform: name.clone(),
                retired: gone,
                managed: managed.len(),
                allowed_share: share,
            });
        }
    }
    out
}

/// A platform where one run would retire too much.
#[derive(Debug, Clone, PartialEq)]
pub struct MassRetire {
    /// The Platform.
    pub platform: ObjectName,
    /// The managed objects the run would retire.
    pub retired: usize,
    /// The platform's managed objects.
    pub managed: usize,
    /// The share one run may retire.
    pub allowed_share: f64,
}

impl std::fmt::Display for MassRetire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "platform {}: {} of its {} managed objects would be retired ({:.0} %, more than the {:.0} % allowed)",
            self.platform,
            self.retired,
            self.managed,
            100.0 * self.retired as f64 / self.managed as f64,
            100.0 * self.allowed_share
        )
    }
}
