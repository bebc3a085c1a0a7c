//! Judging a plan: every change is evaluated by the fleet's policies and its denials recorded
//! on the action (what `plan` shows; `apply` permits again before sending).

use super::{input_for, subject, Policies, PolicyContext, PolicyError};
use crate::plan::{ActionKind, Plan, PlannedAction};

/// Evaluates the policies on every change of a plan, recording denials on the actions.
///
/// Actions are independent: large plans are judged in chunks on every core, each with its own
/// copy of the compiled policies (the result is the same as judging them one by one).
pub fn judge(plan: &mut Plan, policies: &mut Policies, ctx: &PolicyContext<'_>) -> Result<(), PolicyError> {
    let relevant = policies.read_paths().map(|paths| Relevant::of(&paths));
    let judge_all = |actions: &mut [PlannedAction], policies: &mut Policies| -> Result<(), PolicyError> {
        // Actions that agree on every field the read parts of the input are built from get
        // the same verdict: the input is built and judged once for them.
        let mut known: crate::intern::FastMap<String, Vec<crate::plan::PolicyFinding>> = Default::default();
        for a in actions.iter_mut().filter(|a| a.action != ActionKind::None) {
            let key = relevant.as_ref().map(|r| r.key(a));
            if let Some(denied) = key.as_ref().and_then(|k| known.get(k)) {
                a.denied = denied.clone();
                continue;
            }
            let input = input_for(a, ctx);
            a.denied = policies.evaluate(&input, &subject(a))?.denials;
            if let Some(k) = key {
                known.insert(k, a.denied.clone());
            }
        }
        Ok(())
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let chunk = plan.actions.len().div_ceil(threads).max(512);
    if plan.actions.len() <= chunk {
        judge_all(&mut plan.actions, policies)?;
    } else {
        let results: Vec<(Result<(), PolicyError>, u64)> = std::thread::scope(|scope| {
            let handles: Vec<_> = plan
                .actions
                .chunks_mut(chunk)
                .map(|part| {
                    let mut mine = policies.clone();
                    scope.spawn(move || {
                        let result = judge_all(part, &mut mine);
                        (result, mine.evaluations())
                    })
                })
                .collect();
            // Judging is pure; a panicking chunk is a bug, re-raised rather than hidden.
            handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
        });
        let before = policies.evaluations();
        for (result, evaluations) in results {
            policies.count_evaluations(evaluations - before);
            result?;
        }
    }
    plan.recount();
    Ok(())
}

/// Which fields of an action the parts of the input the policies read are built from
/// ([`input_for`]): `action.kind`, `action.version`, the product, catalog product and platform
/// always (they feed `product`, `installer`, `catalog` and `platform`); the reason, object id,
/// changes and ring only when a policy reads them.
#[derive(Debug, Clone, Copy)]
struct Relevant {
    reason: bool,
    object_id: bool,
    changes: bool,
    ring: bool,
}

impl Relevant {
    fn of(paths: &[Vec<String>]) -> Relevant {
        // A path reaches a field when one is a prefix of the other (`input.action` reads them all).
        let reads = |field: &[&str]| paths.iter().any(|p| p.iter().zip(field).all(|(a, b)| a == b));
        Relevant {
            reason: reads(&["action", "reason"]),
            object_id: reads(&["action", "objectId"]),
            changes: reads(&["action", "changes"]),
            ring: reads(&["ring"]),
        }
    }

    /// The fields [`input_for`] reads from `a` that matter here. Every field of
    /// [`PlannedAction`] that `input_for` reads must be named in this key or in [`Relevant`].
    fn key(&self, a: &PlannedAction) -> String {
        format!(
            "{:?}",
            (
                a.action,
                &a.version,
                &a.product,
                &a.catalog_product,
                &a.platform,
                a.platform_type,
                self.reason.then_some(&a.reason),
                self.object_id.then_some(&a.object_id),
                self.changes.then_some(&a.changes),
                self.ring.then_some((&a.ring, &a.group, &a.group_name)),
            )
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Relevant;

    #[test]
    fn a_field_is_relevant_when_a_read_path_reaches_it() {
        let p = |s: &str| s.split('.').map(str::to_string).collect::<Vec<_>>();
        let r = Relevant::of(&[p("action.kind"), p("installer.scan"), p("platform")]);
        assert!(!r.reason && !r.object_id && !r.changes && !r.ring, "{r:?}");
        let r = Relevant::of(&[p("action"), p("ring.index")]);
        assert!(r.reason && r.object_id && r.changes && r.ring, "{r:?}");
    }
}
