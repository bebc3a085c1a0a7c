//! JSON Schemas for every YAML kind, the catalog and the JSON plan, generated from the Rust
//! types. `patchops schemas --out schemas/` writes them; a test fails when the checked-in copies
//! are stale.

use schemars::JsonSchema;
use serde_json::{json, Value};

use crate::catalog::Catalog;
use crate::model::kinds::{
    CatalogSourceSpec, Document, Kind, PlatformSpec, PolicySetSpec, ProductSpec, RolloutSpec, API_VERSION,
};
use crate::plan::Plan;

const BASE: &str = "https://patchops.dev/schemas/";

fn schema_of<T: JsonSchema>() -> Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null)
}

/// A kind's document schema, with `apiVersion` and `kind` pinned to their only values.
fn kind_schema<S: JsonSchema>(kind: Kind) -> Value {
    let mut v = schema_of::<Document<S>>();
    if let Some(props) = v.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert("apiVersion".into(), json!({ "const": API_VERSION }));
        props.insert("kind".into(), json!({ "const": kind.as_str() }));
    }
    if let Some(obj) = v.as_object_mut() {
        obj.insert("title".into(), json!(kind.as_str()));
    }
    v
}

/// Every schema as (file name, JSON text).
pub fn all() -> Vec<(String, String)> {
    let mut out: Vec<(&str, Value)> = vec![
        ("product", kind_schema::<ProductSpec>(Kind::Product)),
        ("platform", kind_schema::<PlatformSpec>(Kind::Platform)),
        ("rollout", kind_schema::<RolloutSpec>(Kind::Rollout)),
        ("catalogsource", kind_schema::<CatalogSourceSpec>(Kind::CatalogSource)),
        ("policyset", kind_schema::<PolicySetSpec>(Kind::PolicySet)),
        ("reconciler", kind_schema::<crate::model::kinds::ReconcilerSpec>(Kind::Reconciler)),
        ("catalog", schema_of::<Catalog>()),
        ("plan", schema_of::<Plan>()),
        ("plan-change", schema_of::<crate::plan::change::Change>()),
        // What the reporting commands print with --format json.
        ("error-report", schema_of::<crate::ops::report::ErrorReport>()),
        ("validate-report", schema_of::<crate::ops::report::ValidateReport>()),
        ("status-report", schema_of::<crate::ops::report::StatusReport>()),
        ("history-report", schema_of::<crate::ops::report::HistoryReport>()),
        ("policy-list-report", schema_of::<crate::ops::report::PolicyListReport>()),
        ("catalog-verify-report", schema_of::<crate::ops::report::CatalogEntry>()),
        ("doctor-report", schema_of::<crate::ops::report::DoctorReport>()),
        ("apply-report", schema_of::<crate::ops::report::ApplyReport>()),
    ];
    out.push((
        "fleet",
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "patchops fleet document (any kind)",
            "oneOf": Kind::ALL.iter().map(|k| json!({ "$ref": format!("{BASE}{}.schema.json", k.as_str().to_lowercase()) })).collect::<Vec<_>>(),
        }),
    ));
    out.into_iter()
        .map(|(name, mut v)| {
            if let Some(obj) = v.as_object_mut() {
                obj.insert("$id".into(), json!(format!("{BASE}{name}.schema.json")));
            }
            let text = serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
            (format!("{name}.schema.json"), text)
        })
        .collect()
}
