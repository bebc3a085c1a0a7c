//! Trust-chain link 3, permission: every action passes the fleet's policies before it is applied.
//!
//! Policies are Rego modules (the language of OPA and conftest) evaluated with the `regorus`
//! crate. Each module declares `package patchops.policy.<name>` and a `deny` set of messages
//! (and optionally a `warn` set); an action is permitted when no selected policy denies it.
//! The input document is described in `policies/README.md` and built by [`input`].
//!
//! The only way to a [`PermittedAction`] is [`Policies::permit`], which evaluates the policies
//! itself: the apply engine accepts nothing else, so an unpermitted action cannot reach a
//! platform by mistake.

mod guard;
pub use guard::EVALUATION_MEMORY_LIMIT;
pub mod input;
mod judge;
pub mod reads;
mod rego_test;

use crate::model::{Fleet, Origin};
use crate::plan::PlannedAction;
pub use crate::plan::PolicyFinding;
use crate::source::SourceSnapshot;

pub use input::{input_for, PolicyContext};
pub use judge::judge;
pub use rego_test::{run_tests, TestOutcome, TestResult};

/// A policy shipped with patchops (the files in `policies/`, compiled into the binary).
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    /// Its name: the last component of its package.
    pub name: &'static str,
    /// One line saying what it refuses.
    pub summary: &'static str,
    /// The Rego module.
    pub source: &'static str,
    /// Its Rego unit tests.
    pub tests: &'static str,
}

macro_rules! builtin {
    ($name:literal, $summary:literal) => {
        Builtin {
            name: $name,
            summary: $summary,
            source: include_str!(concat!("../../../policies/", $name, ".rego")),
            tests: include_str!(concat!("../../../policies/", $name, "_test.rego")),
        }
    };
}

/// The default policy set.
pub const BUILTIN: &[Builtin] = &[
    builtin!("scan_detections", "installers flagged by more malware-scan engines than allowed (default 0)"),
    builtin!("vendor_allowlist", "products of vendors not on the allow-list (once a list is configured)"),
    builtin!("intune_certificate_auth", "Intune platforms that authenticate with a client secret"),
    builtin!("script_signing", "changes to AllSigned platforms that have no script-signing certificate"),
    builtin!("change_freeze", "any change inside a configured freeze window"),
];

/// The names of [`BUILTIN`] (the fleet kinds' [`crate::model::kinds::BuiltinPolicy`]).
pub const BUILTIN_NAMES: &[&str] = &crate::model::kinds::BuiltinPolicy::NAMES;

/// The package every policy module lives under.
pub const PACKAGE_PREFIX: &str = "patchops.policy.";

/// What the policies say about one action.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Judgement {
    /// Refusals; the action is permitted when there are none.
    pub denials: Vec<PolicyFinding>,
    /// Remarks that do not block the action (`warn` rules).
    pub warnings: Vec<PolicyFinding>,
}

/// An action the fleet's policies permit. Only [`Policies::permit`] makes one.
#[derive(Debug, Clone)]
pub struct PermittedAction {
    action: PlannedAction,
    warnings: Vec<PolicyFinding>,
    policies: Vec<String>,
}

impl PermittedAction {
    /// The action.
    pub fn action(&self) -> &PlannedAction {
        &self.action
    }

    /// Non-blocking remarks of the policies.
    pub fn warnings(&self) -> &[PolicyFinding] {
        &self.warnings
    }

    /// The policies that were evaluated and permitted it.
    pub fn policies(&self) -> &[String] {
        &self.policies
    }
}

/// Why policies could not be loaded or evaluated.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A module does not compile.
    #[error("policy module {origin}: {reason}")]
    Module {
        /// Where the module is.
        origin: String,
        /// The compiler's message.
        reason: String,
    },
    /// A module's package is outside `patchops.policy`.
    #[error("policy module {origin}: package `{package}` is not under `patchops.policy`; declare `package patchops.policy.<name>`")]
    Package {
        /// Where the module is.
        origin: String,
        /// The package it declares.
        package: String,
    },
    /// A PolicySet names a module the commit does not have.
    #[error("PolicySet `{set}` ({origin}): module `{module}` is not in the fleet's commit (looked for {path})")]
    MissingModule {
        /// The PolicySet.
        set: String,
        /// Where it is defined.
        origin: Origin,
        /// The module as written.
        module: String,
        /// The repository path looked up.
        path: String,
    },
    /// Reading the module failed.
    #[error("PolicySet `{set}`: cannot read module `{module}`: {reason}")]
    Read {
        /// The PolicySet.
        set: String,
        /// The module as written.
        module: String,
        /// Why.
        reason: String,
    },
    /// A policy failed while evaluating (a runtime error in Rego).
    #[error("policy `{policy}` failed on {subject}: {reason}")]
    Evaluation {
        /// The policy.
        policy: String,
        /// The action evaluated.
        subject: String,
        /// The interpreter's message.
        reason: String,
    },
}

impl PolicyError {
    /// A stable CamelCase reason, for machines (conditions, metrics, notifications).
    pub fn reason(&self) -> &'static str {
        match self {
            PolicyError::Module { .. } => "PolicyModuleInvalid",
            PolicyError::Package { .. } => "PolicyPackageInvalid",
            PolicyError::MissingModule { .. } => "PolicyModuleMissing",
            PolicyError::Read { .. } => "PolicyModuleUnreadable",
            PolicyError::Evaluation { .. } => "PolicyEvaluationFailed",
        }
    }
}

/// A Rego module and where it came from.
#[derive(Debug, Clone)]
pub struct PolicyModule {
    /// `builtin:<name>` or the module's path in the repository.
    pub origin: String,
    /// The Rego text.
    pub source: String,
}

/// The policies a fleet applies, compiled.
#[derive(Clone)]
pub struct Policies {
    engine: regorus::Engine,
    /// Policy names (package last components), sorted.
    names: Vec<String>,
    /// The `deny`/`warn` rules declared, as `data.patchops.policy.<name>.<rule>`, with the
    /// policy's name for the memory guard when the policy comes from the fleet.
    rules: Vec<(String, &'static str, String, Option<std::sync::Arc<str>>)>,
    /// Per policy (as `names`): the input paths its verdict depends on, when they can be bounded
    /// ([`reads`]); `None` evaluates it on every input.
    keys: Vec<Option<Vec<Vec<String>>>>,
    /// Per policy: verdicts already reached, by the key of the input parts it reads.
    cache: Vec<crate::intern::FastMap<String, std::sync::Arc<Judgement>>>,
    /// Policy evaluations run (cache misses), for the regression counter and `-vv`.
    evaluations: u64,
}

/// Most verdicts cached per policy; beyond it, new inputs are evaluated and not kept.
pub const MAX_CACHED_VERDICTS: usize = 100_000;

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policies").field("names", &self.names).finish_non_exhaustive()
    }
}

impl Policies {
    /// The fleet's policies: the built-ins its PolicySets select (all of them when it has none)
    /// and its own modules, read from the same commit, with the PolicySets' parameters.
    pub fn for_fleet(fleet: &Fleet, snapshot: &SourceSnapshot) -> Result<Policies, PolicyError> {
        let mut modules = Vec::new();
        let mut parameters = serde_json::Map::new();
        let selected: Vec<&str> = if fleet.policy_sets.is_empty() {
            BUILTIN_NAMES.to_vec()
        } else {
            let mut names: Vec<&str> = Vec::new();
            for set in fleet.policy_sets.values() {
                match &set.spec.builtin {
                    None => names.extend(BUILTIN_NAMES),
                    Some(list) => names.extend(list.iter().filter_map(|n| n.known()).map(|b| b.as_str())),
                }
            }
            names.sort_unstable();
            names.dedup();
            names
        };
        for b in BUILTIN.iter().filter(|b| selected.contains(&b.name)) {
            modules.push(PolicyModule { origin: format!("builtin:{}", b.name), source: b.source.to_string() });
        }
        for set in fleet.policy_sets.values() {
            for module in &set.spec.modules {
                let missing = |path: String| PolicyError::MissingModule {
                    set: set.metadata.name.to_string(),
                    origin: set.origin.clone(),
                    module: module.clone(),
                    path,
                };
                let path = snapshot
                    .resolve(&set.origin.file, module)
                    .ok_or_else(|| missing("a path outside the repository".into()))?;
                let bytes = snapshot
                    .read_referenced(&path, crate::source::MAX_REFERENCED_BYTES)
                    .map_err(|e| PolicyError::Read {
                        set: set.metadata.name.to_string(),
                        module: module.clone(),
                        reason: e.to_string(),
                    })?
                    .ok_or_else(|| missing(path.clone()))?;
                let source = String::from_utf8(bytes).map_err(|_| PolicyError::Read {
                    set: set.metadata.name.to_string(),
                    module: module.clone(),
                    reason: "not UTF-8 text".into(),
                })?;
                modules.push(PolicyModule { origin: path, source });
            }
            for (k, v) in &set.spec.parameters {
                parameters.insert(k.clone(), v.clone());
            }
        }
        Policies::compile(modules, serde_json::Value::Object(parameters))
    }

    /// Compiles modules with the given parameters (`data.patchops.parameters`).
    pub fn compile(modules: Vec<PolicyModule>, parameters: serde_json::Value) -> Result<Policies, PolicyError> {
        let mut engine = new_engine();
        let mut names = Vec::new();
        let mut module_reads: Vec<(String, reads::Reads)> = Vec::new();
        // The fleet's own modules are guarded (memory); the built-in ones are patchops's code.
        let mut from_fleet = std::collections::BTreeSet::new();
        for m in modules {
            let builtin = m.origin.starts_with("builtin:");
            let read = reads::reads(&m.origin, &m.source);
            let package = engine
                .add_policy(m.origin.clone(), m.source)
                .map_err(|e| PolicyError::Module { origin: m.origin.clone(), reason: e.to_string() })?;
            let package = package.strip_prefix("data.").unwrap_or(&package).to_string();
            match package.strip_prefix(PACKAGE_PREFIX) {
                Some(name) if !name.is_empty() && !name.contains('.') => {
                    names.push(name.to_string());
                    module_reads.push((name.to_string(), read));
                    if !builtin {
                        from_fleet.insert(name.to_string());
                    }
                }
                _ => return Err(PolicyError::Package { origin: m.origin, package }),
            }
        }
        names.sort();
        names.dedup();
        let program: Vec<reads::Reads> = module_reads.iter().map(|(_, r)| r.clone()).collect();
        let keys = names
            .iter()
            .map(|name| {
                // Every name comes from at least one module; the package reads what its
                // modules read.
                let mut own = module_reads.iter().filter(|(n, _)| n == name).map(|(_, r)| r.clone());
                let first = own.next()?;
                own.fold(first, |mut all, r| {
                    all.merge(r);
                    all
                })
                .widened(&program)
                .key_paths()
            })
            .collect();
        let cache = vec![crate::intern::FastMap::default(); names.len()];
        let declared = declared_rules(&mut engine);
        let mut rules = Vec::new();
        for name in &names {
            for rule in ["deny", "warn"] {
                let package = format!("{PACKAGE_PREFIX}{name}");
                if declared.iter().any(|(p, r, _)| *p == package && r == rule) {
                    let guarded = from_fleet.contains(name).then(|| std::sync::Arc::from(name.as_str()));
                    rules.push((name.clone(), rule, format!("data.{package}.{rule}"), guarded));
                }
            }
        }
        let data = serde_json::json!({ "patchops": { "parameters": parameters } });
        engine
            .add_data(regorus::Value::from(data))
            .map_err(|e| PolicyError::Module { origin: "parameters".into(), reason: e.to_string() })?;
        Ok(Policies { engine, names, rules, keys, cache, evaluations: 0 })
    }

    /// The names of the policies applied.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Policy evaluations run so far (an input whose verdict was already known for the parts
    /// of it a policy reads costs none).
    pub fn evaluations(&self) -> u64 {
        self.evaluations
    }

    /// Every input path some policy's verdict can depend on; `None` when one of them reads
    /// what cannot be bounded (then every action is evaluated on its own input).
    pub fn read_paths(&self) -> Option<Vec<Vec<String>>> {
        let mut all: Vec<Vec<String>> = Vec::new();
        for paths in &self.keys {
            all.extend(paths.as_ref()?.iter().cloned());
        }
        all.sort();
        all.dedup();
        Some(all)
    }

    /// Adds evaluations counted by a copy of these policies (judging on several threads).
    pub(crate) fn count_evaluations(&mut self, n: u64) {
        self.evaluations += n;
    }

    /// Evaluates every policy on one input document.
    ///
    /// A policy whose input references can be bounded ([`reads`]) is evaluated once per
    /// distinct value of what it reads; the verdict is the same as evaluating it every time.
    pub fn evaluate(&mut self, input: &serde_json::Value, subject: &str) -> Result<Judgement, PolicyError> {
        let mut verdict = Judgement::default();
        let mut input_set = false;
        for index in 0..self.names.len() {
            let key = self.keys[index].as_deref().map(|paths| reads::key(input, paths));
            if let Some(found) = key.as_ref().and_then(|k| self.cache[index].get(k)) {
                verdict.denials.extend(found.denials.iter().cloned());
                verdict.warnings.extend(found.warnings.iter().cloned());
                continue;
            }
            if !input_set {
                self.engine.set_input(regorus::Value::from(input.clone()));
                input_set = true;
            }
            let found = evaluate_policy(&mut self.engine, &self.rules, &self.names[index], subject)?;
            self.evaluations += 1;
            verdict.denials.extend(found.denials.iter().cloned());
            verdict.warnings.extend(found.warnings.iter().cloned());
            if let Some(k) = key {
                if self.cache[index].len() < MAX_CACHED_VERDICTS {
                    self.cache[index].insert(k, std::sync::Arc::new(found));
                }
            }
        }
        verdict.denials.sort();
        verdict.warnings.sort();
        Ok(verdict)
    }

    /// Evaluates the policies on an action and permits it when none denies it.
    pub fn permit(
        &mut self,
        action: PlannedAction,
        ctx: &PolicyContext<'_>,
    ) -> Result<Result<PermittedAction, Vec<PolicyFinding>>, PolicyError> {
        let input = input_for(&action, ctx);
        let verdict = self.evaluate(&input, &subject(&action))?;
        if verdict.denials.is_empty() {
            Ok(Ok(PermittedAction { action, warnings: verdict.warnings, policies: self.names.clone() }))
        } else {
            Ok(Err(verdict.denials))
        }
    }
}

/// Evaluates the rules of one policy on the engine's current input.
fn evaluate_policy(
    engine: &mut regorus::Engine,
    rules: &[(String, &'static str, String, Option<std::sync::Arc<str>>)],
    policy: &str,
    subject: &str,
) -> Result<Judgement, PolicyError> {
    let mut verdict = Judgement::default();
    for (name, rule, path, guarded) in rules.iter().filter(|r| r.0 == policy) {
        let _evaluating = guarded.as_ref().map(guard::Evaluating::start);
        let value = engine.eval_rule(path.clone()).map_err(|e| {
            let limit = e.downcast_ref::<regorus::utils::limits::LimitError>().is_some();
            PolicyError::Evaluation {
                policy: name.clone(),
                subject: subject.to_string(),
                reason: if limit {
                    format!(
                        "rule `{rule}` ran longer than {} and was stopped ({e}); make it iterate less (a comprehension over a huge range, say)",
                        crate::vocab::duration::readable(EVALUATION_TIME_LIMIT)
                    )
                } else {
                    e.to_string()
                },
            }
        })?;
        let out = if *rule == "deny" { &mut verdict.denials } else { &mut verdict.warnings };
        // A message is kept to a bounded size (a large allow-list interpolated into every
        // denial would otherwise be copied into every action of a plan).
        out.extend(
            messages(&value)
                .into_iter()
                .map(|message| PolicyFinding { policy: name.clone(), message: bounded_message(message) }),
        );
    }
    Ok(verdict)
}

/// How an action is named in messages: `publish firefox to intune-prod (ring pilot)`.
pub fn subject(a: &PlannedAction) -> String {
    match &a.ring {
        Some(r) => format!("{} {} to {} (ring {r})", a.action.as_str(), a.product, a.platform),
        None => format!("{} {} on {}", a.action.as_str(), a.product, a.platform),
    }
}

/// (package, rule, origin) of every rule with a plain name, in source order, each once.
fn declared_rules(engine: &mut regorus::Engine) -> Vec<(String, String, String)> {
    // regorus has no stable API for listing rules; its AST is reachable through `unstable`.
    use regorus::unstable::{Parser, Rule, RuleHead};
    let mut found: Vec<(String, String, String)> = Vec::new();
    for module in engine.get_modules().iter() {
        let Ok(package) = Parser::get_path_ref_components(&module.package.refr) else { continue };
        let package = package.iter().map(|s| s.text()).collect::<Vec<_>>().join(".");
        let origin = module.package.span.source.get_path().to_string();
        for rule in &module.policy {
            let refr = match rule.as_ref() {
                Rule::Spec { head: RuleHead::Compr { refr, .. } | RuleHead::Set { refr, .. }, .. } => refr,
                Rule::Default { refr, .. } => refr,
                Rule::Spec { head: RuleHead::Func { .. }, .. } => continue,
            };
            let Ok(parts) = Parser::get_path_ref_components(refr) else { continue };
            let [only] = parts.as_slice() else { continue };
            let name = only.text();
            if !found.iter().any(|(p, n, _)| p == &package && n == name) {
                found.push((package.clone(), name.to_string(), origin.clone()));
            }
        }
    }
    found
}

/// How long one rule of one policy may evaluate on one input before it is stopped with an error
/// naming the policy (a comprehension over `numbers.range(1, 1e9)` would otherwise hang
/// `validate` in CI). Every built-in rule takes well under a millisecond.
pub const EVALUATION_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

fn new_engine() -> regorus::Engine {
    let mut engine = regorus::Engine::new();
    engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
        limit: EVALUATION_TIME_LIMIT,
        check_interval: std::num::NonZeroU32::MIN,
    });
    // A builtin that fails (a bad time string, say) is an error, not a silently undefined rule
    // that would let an action through.
    engine.set_strict_builtin_errors(true);
    engine
}

/// Longest policy message kept, in characters; the rest is cut and counted.
pub const MAX_MESSAGE_CHARS: usize = 500;

fn bounded_message(message: String) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        None => message,
        Some((cut, _)) => {
            let rest = message[cut..].chars().count();
            format!("{}… ({rest} more characters)", &message[..cut])
        }
    }
}

/// The messages of a `deny`/`warn` set: strings, or objects with a `msg` field (conftest style).
fn messages(value: &regorus::Value) -> Vec<String> {
    let json = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    match json {
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Object(o) => match o.get("msg") {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    _ => serde_json::Value::Object(o).to_string(),
                },
                other => other.to_string(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn builtin_modules() -> Vec<PolicyModule> {
        BUILTIN
            .iter()
            .flat_map(|b| {
                [
                    PolicyModule { origin: format!("policies/{}.rego", b.name), source: b.source.into() },
                    PolicyModule { origin: format!("policies/{}_test.rego", b.name), source: b.tests.into() },
                ]
            })
            .collect()
    }

    #[test]
    fn the_shipped_rego_tests_pass() {
        let results = run_tests(builtin_modules()).unwrap();
        assert!(results.len() >= 15, "found only {} tests", results.len());
        let failed: Vec<_> = results.iter().filter(|r| r.outcome != TestOutcome::Pass).collect();
        assert!(failed.is_empty(), "{failed:#?}");
    }

    #[test]
    fn a_failing_rego_test_is_reported_as_failing() {
        let module = PolicyModule {
            origin: "t.rego".into(),
            source: "package patchops.policy.t_test\nimport rego.v1\ntest_ok if { 1 == 1 }\ntest_bad if { 1 == 2 }\n"
                .into(),
        };
        let results = run_tests(vec![module]).unwrap();
        let outcomes: Vec<_> = results.iter().map(|r| (r.name.as_str(), r.outcome.clone())).collect();
        assert_eq!(outcomes, vec![("test_ok", TestOutcome::Pass), ("test_bad", TestOutcome::Fail)]);
    }

    #[test]
    fn names_and_packages_are_checked() {
        assert_eq!(BUILTIN.iter().map(|b| b.name).collect::<Vec<_>>(), BUILTIN_NAMES);
        let names = crate::model::kinds::BuiltinPolicy::ALL.map(|b| b.as_str());
        assert_eq!(names, crate::model::kinds::BuiltinPolicy::NAMES);
        let bad = PolicyModule { origin: "x.rego".into(), source: "package other.x\ndeny := set()\n".into() };
        let err = Policies::compile(vec![bad], serde_json::json!({})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "policy module x.rego: package `other.x` is not under `patchops.policy`; declare `package patchops.policy.<name>`"
        );
    }

    #[test]
    fn evaluation_collects_denials_and_warnings_of_every_policy() {
        let modules = vec![
            PolicyModule { origin: "a.rego".into(), source: "package patchops.policy.a\nimport rego.v1\ndeny contains \"no\" if input.x > data.patchops.parameters.a.limit\n".into() },
            PolicyModule { origin: "b.rego".into(), source: "package patchops.policy.b\nimport rego.v1\nwarn contains {\"msg\": \"hmm\"} if input.x > 0\n".into() },
        ];
        let mut p = Policies::compile(modules, serde_json::json!({ "a": { "limit": 1 } })).unwrap();
        let v = p.evaluate(&serde_json::json!({ "x": 2 }), "test").unwrap();
        assert_eq!(v.denials, vec![PolicyFinding { policy: "a".into(), message: "no".into() }]);
        assert_eq!(v.warnings, vec![PolicyFinding { policy: "b".into(), message: "hmm".into() }]);
        let v = p.evaluate(&serde_json::json!({ "x": 1 }), "test").unwrap();
        assert!(v.denials.is_empty());
    }

    /// Inputs that vary in everything the built-in policies read, and in what they do not.
    fn varied_inputs() -> Vec<serde_json::Value> {
        let mut inputs = Vec::new();
        for kind in ["publish", "update", "retire", "reconfigure"] {
            for (platform, ty, auth, policy) in [
                ("intune-prod", "intune", "clientSecret", "bypass"),
                ("intune-cert", "intune", "certificate", "bypass"),
                ("cm", "configmgr", "password", "allSigned"),
            ] {
                for (vendor, scan) in [
                    ("Mozilla", serde_json::json!({ "detections": 0, "enginesTotal": 70, "engine": "vt" })),
                    (
                        "Evil Corp",
                        serde_json::json!({ "detections": 4, "enginesTotal": 70, "engine": "vt", "report": "r" }),
                    ),
                    ("Google", serde_json::Value::Null),
                ] {
                    for ring in ["pilot", "broad"] {
                        let mut installer = serde_json::json!({ "url": "x.msi" });
                        if !scan.is_null() {
                            installer["scan"] = scan.clone();
                        }
                        inputs.push(serde_json::json!({
                            "action": { "kind": kind, "version": "1.0", "reason": "r", "changes": [] },
                            "product": { "catalogProduct": format!("{vendor}.app"), "vendor": vendor, "name": "app" },
                            "installer": installer,
                            "platform": { "name": platform, "type": ty, "auth": { "method": auth },
                                "trust": { "executionPolicy": policy, "scriptSigningCertificate": false } },
                            "ring": { "name": ring, "index": 0 },
                            "time": if ring == "pilot" { "2026-12-24T10:00:00Z" } else { "2026-11-01T10:00:00Z" },
                        }));
                    }
                }
            }
        }
        inputs
    }

    #[test]
    fn a_cached_verdict_is_the_verdict_of_evaluating_again() {
        let parameters = serde_json::json!({
            "vendor_allowlist": { "vendors": ["Mozilla", "Google"] },
            "scan_detections": { "maxDetections": 1, "requireScan": true },
            "change_freeze": { "windows": [{ "start": "2026-12-20T00:00:00Z", "end": "2027-01-02T00:00:00Z", "platforms": ["cm"], "allowRetire": true }] },
        });
        let policies = || {
            BUILTIN
                .iter()
                .map(|b| PolicyModule { origin: format!("builtin:{}", b.name), source: b.source.into() })
                .collect::<Vec<_>>()
        };
        let mut cached = Policies::compile(policies(), parameters.clone()).unwrap();
        assert!(
            cached.keys.iter().all(Option::is_some),
            "every built-in policy reads bounded parts: {:?}",
            cached.keys
        );
        let mut uncached = Policies::compile(policies(), parameters).unwrap();
        uncached.keys.iter_mut().for_each(|k| *k = None);
        let inputs = varied_inputs();
        let mut denied = 0;
        for input in &inputs {
            let a = cached.evaluate(input, "test").unwrap();
            let b = uncached.evaluate(input, "test").unwrap();
            assert_eq!(a, b, "{input}");
            denied += usize::from(!a.denials.is_empty());
        }
        assert!(denied > 0 && denied < inputs.len(), "the inputs are judged both ways: {denied} of {}", inputs.len());
        assert_eq!(uncached.evaluations(), (inputs.len() * BUILTIN.len()) as u64);
        assert!(
            cached.evaluations() < uncached.evaluations() / 3,
            "{} evaluations with the cache, {} without",
            cached.evaluations(),
            uncached.evaluations()
        );
    }

    #[test]
    fn a_policy_reading_the_whole_input_is_evaluated_every_time() {
        let modules = vec![PolicyModule {
            origin: "w.rego".into(),
            source: "package patchops.policy.w\nimport rego.v1\ndeny contains m if { m := json.marshal(input); count(m) > 20 }\n".into(),
        }];
        let mut p = Policies::compile(modules, serde_json::json!({})).unwrap();
        let short = serde_json::json!({ "a": 1 });
        let long = serde_json::json!({ "a": 1, "b": "a longer input document" });
        assert!(p.evaluate(&short, "t").unwrap().denials.is_empty());
        assert_eq!(p.evaluate(&long, "t").unwrap().denials.len(), 1);
        assert!(p.evaluate(&short, "t").unwrap().denials.is_empty());
        assert_eq!(p.evaluations(), 3);
    }
}
