use crate::plan::Plan;

/// The plan as pretty-printed JSON, in the stable format of `schemas/plan.schema.json`.
pub fn json(plan: &Plan) -> String {
    let mut s = serde_json::to_string_pretty(plan).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}
