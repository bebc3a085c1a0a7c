//! Judging a plan: every change is evaluated by the fleet's policies and its denials recorded
//! on the action (what `plan` shows; `apply` permits again before sending).

use super::input::{input_of, ActionView, InputParts};
use super::{subject, Policies, PolicyContext, PolicyError};
use crate::plan::{ActionKind, Plan, PlannedAction, PolicyFinding};

/// Evaluates the policies on every change of a plan, recording denials on the actions.
///
/// Actions are independent: large plans are judged in chunks on every core, each with its own
/// copy of the compiled policies (the result is the same as judging them one by one).
pub fn judge(plan: &mut Plan, policies: &mut Policies, ctx: &PolicyContext<'_>) -> Result<(), PolicyError> {
    let read = policies.read_paths().map(|paths| InputParts::of(&paths));
    let judge_all = |actions: &mut [PlannedAction], policies: &mut Policies| -> Result<(), PolicyError> {
        // The input is a function of the action's view: actions whose views agree on every
        // part a policy reads get the same verdict, so it is built and judged once for them.
        let mut known: crate::intern::FastMap<ActionView<'_>, Vec<PolicyFinding>> = Default::default();
        let mut verdicts = Vec::with_capacity(actions.len());
        for a in actions.iter() {
            if a.action == ActionKind::None {
                verdicts.push(None);
                continue;
            }
            let view = ActionView::of(a);
            let key = read.map(|r| view.masked(r));
            if let Some(denied) = key.as_ref().and_then(|k| known.get(k)) {
                verdicts.push(Some(denied.clone()));
                continue;
            }
            let denied = policies.evaluate(&input_of(view, ctx), &subject(a))?.denials;
            if let Some(k) = key {
                known.insert(k, denied.clone());
            }
            verdicts.push(Some(denied));
        }
        for (a, denied) in actions.iter_mut().zip(verdicts) {
            if let Some(denied) = denied {
                a.denied = denied;
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

#[cfg(test)]
mod tests {
    use super::InputParts;

    #[test]
    fn a_field_is_relevant_when_a_read_path_reaches_it() {
        let p = |s: &str| s.split('.').map(str::to_string).collect::<Vec<_>>();
        let r = InputParts::of(&[p("action.kind"), p("installer.scan"), p("platform")]);
        assert!(!r.reason && !r.object_id && !r.changes && !r.ring, "{r:?}");
        let r = InputParts::of(&[p("action"), p("ring.index")]);
        assert!(r.reason && r.object_id && r.changes && r.ring, "{r:?}");
    }
}
