//! `patchops policy`: the built-in policies, and Rego unit tests.

use std::path::PathBuf;

use clap::Subcommand;
use reconciler::policy::{self, PolicyModule, TestOutcome};

use super::{out, print_error, ColorChoice, EXIT_ERROR, EXIT_OK};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// List the built-in policies and what each refuses.
    List {
        /// Output format: text, or JSON (schemas/policy-list-report.schema.json).
        #[arg(long, value_enum, default_value_t = super::ReportFormat::Text)]
        format: super::ReportFormat,
    },
    /// Run Rego unit tests (rules named `test_…`), as `opa test` does.
    ///
    /// Loads every `.rego` file under the given paths together with the built-in policies (so
    /// your tests can exercise them with your parameters, through `with data.patchops.parameters
    /// as …`). With no path, runs the built-in policies' own tests. Exit code 1 when a test fails.
    Test {
        /// Files or directories of Rego modules and tests.
        paths: Vec<PathBuf>,
        /// Print every test, not only failures.
        #[arg(long = "list")]
        verbose_tests: bool,
    },
}

pub fn run(cmd: PolicyCommand, color: ColorChoice) -> u8 {
    match cmd {
        PolicyCommand::List { format: super::ReportFormat::Json } => {
            super::print_json(&reconciler::ops::report::PolicyListReport::builtin())
        }
        PolicyCommand::List { format: super::ReportFormat::Text } => {
            let mut s = String::from("Built-in policies (package patchops.policy.<name>):\n");
            for b in policy::BUILTIN {
                s += &format!("  {:<25} denies {}\n", b.name, b.summary);
            }
            s += "\nA fleet without a PolicySet applies all of them; a PolicySet's `builtin` list selects,\n\
                  its `modules` add the fleet's own Rego, and `parameters.<name>` configures each.\n";
            out(color, &s);
            EXIT_OK
        }
        PolicyCommand::Test { paths, verbose_tests } => test(&paths, verbose_tests, color),
    }
}

fn test(paths: &[PathBuf], verbose: bool, color: ColorChoice) -> u8 {
    let mut modules: Vec<PolicyModule> = Vec::new();
    let mut user_modules = 0;
    for path in paths {
        let files: Vec<PathBuf> = if path.is_dir() {
            walkdir(path)
        } else if path.is_file() {
            vec![path.clone()]
        } else {
            print_error(&format!("{}: no such file or directory", path.display()));
            return EXIT_ERROR;
        };
        for f in files {
            match std::fs::read_to_string(&f) {
                Ok(source) => {
                    modules.push(PolicyModule { origin: f.display().to_string(), source });
                    user_modules += 1;
                }
                Err(e) => {
                    print_error(&format!("cannot read {}: {e}", f.display()));
                    return EXIT_ERROR;
                }
            }
        }
    }
    // The built-in modules, unless the paths hold a copy of them (such as this repository's
    // `policies/`): a package defined twice would merge its rules.
    let defined: Vec<String> = modules.iter().map(|m| m.source.clone()).collect();
    for b in policy::BUILTIN {
        let package = format!("package patchops.policy.{}\n", b.name);
        if !defined.iter().any(|s| s.contains(&package)) {
            modules.push(PolicyModule { origin: format!("builtin:{}.rego", b.name), source: b.source.into() });
            if paths.is_empty() {
                modules.push(PolicyModule { origin: format!("builtin:{}_test.rego", b.name), source: b.tests.into() });
            }
        }
    }
    let results = match policy::run_tests(modules) {
        Ok(r) => r,
        Err(e) => {
            print_error(&e.to_string());
            return EXIT_ERROR;
        }
    };
    let mut s = String::new();
    let (mut pass, mut fail) = (0, 0);
    for r in &results {
        match &r.outcome {
            TestOutcome::Pass => {
                pass += 1;
                if verbose {
                    s += &format!("PASS  {}.{}\n", r.package, r.name);
                }
            }
            TestOutcome::Fail => {
                fail += 1;
                s += &format!("FAIL  {}.{} ({})\n", r.package, r.name, r.origin);
            }
            TestOutcome::Error(e) => {
                fail += 1;
                s += &format!("ERROR {}.{} ({}): {e}\n", r.package, r.name, r.origin);
            }
        }
    }
    if results.is_empty() {
        print_error(&format!(
            "no tests found in {} module(s); tests are rules whose names start with `test_`",
            user_modules.max(policy::BUILTIN.len())
        ));
        return EXIT_ERROR;
    }
    s += &format!("{}: {pass} passed, {fail} failed\n", if fail == 0 { "PASS" } else { "FAIL" });
    out(color, &s);
    if fail == 0 {
        EXIT_OK
    } else {
        EXIT_ERROR
    }
}

/// Every `.rego` file under `dir`, sorted.
fn walkdir(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rego") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}
