use crate::plan::Plan;

/// The plan as pretty-printed JSON, in the stable format of `schemas/plan.schema.json`.
pub fn json(plan: &Plan) -> String {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail, and a Plan always serializes.
    let _ = json_to_writer(plan, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Streams the JSON plan into `w` (large plans are not built as one string first).
pub fn json_to_writer(plan: &Plan, mut w: impl std::io::Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut w, plan)?;
    w.write_all(b"\n")
}
