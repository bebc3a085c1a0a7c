//! `patchops policy test`: Rego unit tests, as `opa test` runs them. Every rule whose name
//! starts with `test_` is a test; it passes when it evaluates to `true`.

use super::{new_engine, PolicyError, PolicyModule};

/// How a test ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestOutcome {
    /// It evaluated to true.
    Pass,
    /// It was undefined or false.
    Fail,
    /// Evaluating it failed.
    Error(String),
}

/// One test's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// The test's package, such as `patchops.policy.scan_detections_test`.
    pub package: String,
    /// The rule, such as `test_clean_installer_is_allowed`.
    pub name: String,
    /// The module it is defined in.
    pub origin: String,
    /// How it ended.
    pub outcome: TestOutcome,
}

/// Compiles the modules together and runs every test rule among them.
pub fn run_tests(modules: Vec<PolicyModule>) -> Result<Vec<TestResult>, PolicyError> {
    let mut engine = new_engine();
    for m in modules {
        engine
            .add_policy(m.origin.clone(), m.source)
            .map_err(|e| PolicyError::Module { origin: m.origin.clone(), reason: e.to_string() })?;
    }
    let tests = discover(&mut engine);
    let mut results = Vec::with_capacity(tests.len());
    for (package, name, origin) in tests {
        let outcome = match engine.eval_rule(format!("data.{package}.{name}")) {
            Ok(regorus::Value::Bool(true)) => TestOutcome::Pass,
            Ok(_) => TestOutcome::Fail,
            Err(e) => TestOutcome::Error(e.to_string()),
        };
        results.push(TestResult { package, name, origin, outcome });
    }
    Ok(results)
}

/// (package, rule, origin) of every `test_` rule, in source order, each once.
fn discover(engine: &mut regorus::Engine) -> Vec<(String, String, String)> {
    super::declared_rules(engine).into_iter().filter(|(_, name, _)| name.starts_with("test_")).collect()
}
