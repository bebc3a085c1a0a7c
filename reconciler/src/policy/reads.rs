//! What part of the input document a policy can read, found from its modules' tokens, so that
//! one evaluation stands for every action whose input agrees on that part.
//!
//! A policy's verdict is a function of the input parts its rules reference, the parameters, and
//! the rules of other packages it reads (which see the same input). [`reads`] lexes a module
//! with regorus's own lexer and collects every `input.a.b` reference as a path. Anything it
//! cannot bound — `input` used whole or indexed at the root, `data` beyond
//! `data.patchops.parameters` (another package's rules), builtins whose value is not a function
//! of their arguments (`time.now_ns`, `rand.intn`, …) — widens the result, down to "cannot be
//! cached". The analysis only ever errs towards evaluating more often: a cached verdict is
//! reused only for an input that agrees on every path the policy can reach.

use std::collections::BTreeSet;

use regorus::unstable::{Lexer, Source, TokenKind};
use serde_json::Value;

/// Builtins whose result is not a function of their arguments.
const NONDETERMINISTIC: &[&[&str]] =
    &[&["time", "now_ns"], &["rand"], &["uuid"], &["opa", "runtime"], &["http", "send"], &["net", "lookup_ip_addr"]];

/// The input references of one module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reads {
    /// Paths below `input` (`["platform", "name"]`); `None` when the module reads the input
    /// in a way that cannot be bounded.
    pub input: Option<BTreeSet<Vec<String>>>,
    /// The module refers to `data` beyond `data.patchops.parameters`: rules of other packages.
    pub other_packages: bool,
    /// The module calls a builtin whose value changes between calls.
    pub nondeterministic: bool,
}

impl Reads {
    /// What a policy made of `self` and, when it reads other packages, everything else reads.
    pub fn widened(&self, program: &[Reads]) -> Reads {
        if !self.other_packages {
            return self.clone();
        }
        let mut all = self.clone();
        for r in program {
            all.merge(r.clone());
        }
        all
    }

    /// Merges what another module reads (of the same package, or one this package reads).
    pub fn merge(&mut self, other: Reads) {
        self.other_packages |= other.other_packages;
        self.nondeterministic |= other.nondeterministic;
        match (&mut self.input, other.input) {
            (Some(mine), Some(theirs)) => mine.extend(theirs),
            (mine, _) => *mine = None,
        }
    }

    /// The paths to key a cache on, shortest first and none below another; `None` when the
    /// verdict cannot be cached.
    pub fn key_paths(&self) -> Option<Vec<Vec<String>>> {
        if self.nondeterministic {
            return None;
        }
        let paths = self.input.as_ref()?;
        let mut kept: Vec<Vec<String>> = Vec::new();
        for p in paths {
            // BTreeSet order puts a prefix before its extensions.
            if !kept.iter().any(|k| p.starts_with(k)) {
                kept.push(p.clone());
            }
        }
        Some(kept)
    }
}

/// The input references of a module's source (unbounded when it does not lex).
pub fn reads(origin: &str, source: &str) -> Reads {
    let unbounded = Reads { input: None, other_packages: true, nondeterministic: true };
    let Ok(source) = Source::from_contents(origin.to_string(), source.to_string()) else {
        return unbounded;
    };
    let mut lexer = Lexer::new(&source);
    let mut tokens: Vec<(TokenKind, String)> = Vec::new();
    loop {
        match lexer.next_token() {
            Ok(t) if t.0 == TokenKind::Eof => break,
            Ok(t) => tokens.push((t.0, t.1.text().to_string())),
            Err(_) => return unbounded,
        }
    }
    let mut out = Reads { input: Some(BTreeSet::new()), other_packages: false, nondeterministic: false };
    for (i, (kind, text)) in tokens.iter().enumerate() {
        if *kind != TokenKind::Ident {
            continue;
        }
        // `x.input` is a field named input, not the document.
        if i > 0 && tokens[i - 1].0 == TokenKind::Symbol && tokens[i - 1].1 == "." {
            continue;
        }
        let chain = chain_after(&tokens, i);
        match text.as_str() {
            "input" if chain.is_empty() => out.input = None,
            "input" => {
                if let Some(paths) = &mut out.input {
                    paths.insert(chain);
                }
            }
            "data" if chain.len() >= 2 && chain[0] == "patchops" && chain[1] == "parameters" => {}
            "data" if chain.is_empty() && parameters_lookup(&tokens, i) => {}
            "data" => out.other_packages = true,
            name => {
                if NONDETERMINISTIC.iter().any(|b| b[0] == name && b[1..].iter().zip(&chain).all(|(x, y)| x == y)) {
                    out.nondeterministic = true;
                }
            }
        }
    }
    out
}

/// Whether the bare `data` at token `i` is the first argument of
/// `object.get(data, ["patchops", "parameters", …], …)`: a read of the parameters only.
fn parameters_lookup(tokens: &[(TokenKind, String)], i: usize) -> bool {
    let text = |j: usize| tokens.get(j).map(|(_, t)| t.as_str());
    let string = |j: usize| tokens.get(j).filter(|(k, _)| *k == TokenKind::String).map(|(_, t)| t.trim_matches('"'));
    i >= 4
        && text(i - 4) == Some("object")
        && text(i - 3) == Some(".")
        && text(i - 2) == Some("get")
        && text(i - 1) == Some("(")
        && text(i + 1) == Some(",")
        && text(i + 2) == Some("[")
        && string(i + 3) == Some("patchops")
        && text(i + 4) == Some(",")
        && string(i + 5) == Some("parameters")
}

/// The `.name` components that follow token `i`.
fn chain_after(tokens: &[(TokenKind, String)], i: usize) -> Vec<String> {
    let mut chain = Vec::new();
    let mut j = i + 1;
    while let (Some((TokenKind::Symbol, dot)), Some((TokenKind::Ident, name))) = (tokens.get(j), tokens.get(j + 1)) {
        if dot != "." {
            break;
        }
        chain.push(name.clone());
        j += 2;
    }
    chain
}

/// The cache key of an input for the given paths: each path's value, or where the walk down
/// it stopped, so two inputs with the same key agree on everything the paths reach.
pub fn key(input: &Value, paths: &[Vec<String>]) -> String {
    let mut parts: Vec<Value> = Vec::with_capacity(paths.len());
    for path in paths {
        let mut at = input;
        let mut depth = 0;
        for name in path {
            match at.get(name.as_str()) {
                Some(next) if at.is_object() => {
                    at = next;
                    depth += 1;
                }
                _ => break,
            }
        }
        if depth == path.len() {
            parts.push(Value::Array(vec![at.clone()]));
        } else if at.is_object() {
            // The member is absent: undefined, unlike null.
            parts.push(Value::Array(vec![]));
        } else {
            // The walk met a non-object: what stands there decides.
            parts.push(serde_json::json!({ "stoppedAt": depth, "value": at }));
        }
    }
    Value::Array(parts).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(r: &Reads) -> Vec<String> {
        r.key_paths().unwrap_or_default().iter().map(|p| p.join(".")).collect()
    }

    #[test]
    fn references_below_input_are_collected() {
        let r = reads(
            "t.rego",
            "package patchops.policy.t\nimport rego.v1\ndeny contains msg if {\n input.platform.type == \"intune\"\n x := input.platform\n msg := sprintf(\"%s\", [input.action.kind])\n y := {\"input\": 1}\n y.input == 1\n}\n",
        );
        assert_eq!(paths(&r), vec!["action.kind", "platform"]);
        assert!(!r.other_packages && !r.nondeterministic);
    }

    #[test]
    fn what_cannot_be_bounded_is_not_cached() {
        let whole = reads("t.rego", "package patchops.policy.t\ndeny contains m if { m := json.marshal(input) }\n");
        assert_eq!(whole.key_paths(), None);
        let indexed = reads("t.rego", "package patchops.policy.t\ndeny contains m if { m := input[\"platform\"] }\n");
        assert_eq!(indexed.key_paths(), None);
        let clock = reads("t.rego", "package patchops.policy.t\ndeny contains \"late\" if { time.now_ns() > 0 }\n");
        assert_eq!(clock.key_paths(), None);
        let broken = reads("t.rego", "package patchops.policy.t\ndeny contains \"x if {");
        assert_eq!(broken.key_paths(), None);
    }

    #[test]
    fn reading_another_package_takes_in_what_every_module_reads() {
        let parameters = reads(
            "a.rego",
            "package patchops.policy.a\nmax := object.get(data.patchops.parameters, [\"a\", \"max\"], 0)\ndeny contains \"x\" if input.ring.index > max\n",
        );
        assert!(!parameters.other_packages);
        let other =
            reads("b.rego", "package patchops.policy.b\ndeny contains \"y\" if data.patchops.policy.a.deny[_]\n");
        assert!(other.other_packages);
        let bare = reads("c.rego", "package patchops.policy.c\nw := object.get(data, [\"x\"], [])\n");
        assert!(bare.other_packages);
        let looked_up = reads(
            "d.rego",
            "package patchops.policy.d\nw := object.get(data, [\"patchops\", \"parameters\", \"d\"], [])\n",
        );
        assert!(!looked_up.other_packages, "object.get(data, [\"patchops\", \"parameters\", …]) reads the parameters");
        let program = [parameters.clone(), other.clone(), bare.clone()];
        assert_eq!(paths(&other.widened(&program)), vec!["ring.index"]);
        assert_eq!(paths(&parameters.widened(&program)), vec!["ring.index"]);
    }

    #[test]
    fn keys_tell_absent_from_null_and_follow_every_path() {
        let paths = vec![vec!["installer".to_string(), "scan".to_string()], vec!["action".to_string()]];
        let with_null = serde_json::json!({ "installer": { "scan": null }, "action": { "kind": "publish" } });
        let absent = serde_json::json!({ "installer": {}, "action": { "kind": "publish" } });
        let other_action = serde_json::json!({ "installer": {}, "action": { "kind": "update" } });
        let not_object = serde_json::json!({ "installer": "x", "action": { "kind": "publish" } });
        let keys = [&with_null, &absent, &other_action, &not_object].map(|v| key(v, &paths));
        let distinct: BTreeSet<&String> = keys.iter().collect();
        assert_eq!(distinct.len(), 4, "{keys:?}");
        let same = serde_json::json!({ "installer": {}, "action": { "kind": "publish" }, "ring": { "name": "pilot" } });
        assert_eq!(key(&same, &paths), keys[1], "what the policy does not read does not matter");
    }
}
