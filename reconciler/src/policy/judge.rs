//! Judging a plan: every change is evaluated by the fleet's policies and its denials recorded
//! on the action (what `plan` shows; `apply` permits again before sending).

use super::{input_for, subject, Policies, PolicyContext, PolicyError};
use crate::plan::{ActionKind, Plan, PlannedAction};

/// Evaluates the policies on every change of a plan, recording denials on the actions.
///
/// Actions are independent: large plans are judged in chunks on every core, each with its own
/// copy of the compiled policies (the result is the same as judging them one by one).
pub fn judge(plan: &mut Plan, policies: &mut Policies, ctx: &PolicyContext<'_>) -> Result<(), PolicyError> {
    fn judge_all(
        actions: &mut [PlannedAction],
        policies: &mut Policies,
        ctx: &PolicyContext<'_>,
    ) -> Result<(), PolicyError> {
        for a in actions.iter_mut().filter(|a| a.action != ActionKind::None) {
            let input = input_for(a, ctx);
            a.denied = policies.evaluate(&input, &subject(a))?.denials;
        }
        Ok(())
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let chunk = plan.actions.len().div_ceil(threads).max(512);
    if plan.actions.len() <= chunk {
        judge_all(&mut plan.actions, policies, ctx)?;
    } else {
        let results: Vec<(Result<(), PolicyError>, u64)> = std::thread::scope(|scope| {
            let handles: Vec<_> = plan
                .actions
                .chunks_mut(chunk)
                .map(|part| {
                    let mut mine = policies.clone();
                    scope.spawn(move || {
                        let result = judge_all(part, &mut mine, ctx);
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
