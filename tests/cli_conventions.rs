//! The conventions of the ecosystem (issue 15, item 3): shell completions, man pages checked with
//! groff, `--version` with the commit and build date, and global flags under their own heading.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use common::{assert_matches_schema, patchops, workspace_root};

#[test]
fn completions_are_valid_scripts_for_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    let bash = patchops(dir.path(), &["completions", "bash"]);
    assert_eq!(bash.code, 0, "{}", bash.stderr);
    let script = dir.path().join("patchops.bash");
    std::fs::write(&script, &bash.stdout).unwrap();
    // bash itself checks the script's syntax.
    let check = common::tool("bash", "bash").arg("-n").arg(&script).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    for word in ["plan", "apply", "run", "catalog", "--detailed-exitcode", "--state-dir"] {
        common::assert_contains(&bash.stdout, word);
    }
    for (shell, marker) in
        [("zsh", "#compdef patchops"), ("fish", "complete -c patchops"), ("powershell", "Register-ArgumentCompleter")]
    {
        let run = patchops(dir.path(), &["completions", shell]);
        assert_eq!(run.code, 0, "{shell}: {}", run.stderr);
        common::assert_contains(&run.stdout, marker);
        common::assert_contains(&run.stdout, "detailed-exitcode");
    }
    let bad = patchops(dir.path(), &["completions", "tcsh"]);
    assert_eq!(bad.code, 2);
    common::assert_contains(&bad.stderr, "possible values: bash, elvish, fish, powershell, zsh");
}

#[test]
fn man_pages_cover_every_command_and_render_with_groff() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man");
    let run = patchops(dir.path(), &["man", "--out", out.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for page in [
        "patchops.1",
        "patchops-plan.1",
        "patchops-apply.1",
        "patchops-run.1",
        "patchops-status.1",
        "patchops-catalog-sign.1",
        "patchops-policy-test.1",
        "patchops-completions.1",
    ] {
        let path = out.join(page);
        assert!(path.is_file(), "{page} is missing");
        // groff renders it (-k: UTF-8 input through preconv, as man does) and says nothing is
        // wrong (-ww: all warnings).
        let render = common::tool("groff", "groff-base")
            .args(["-k", "-man", "-Tutf8", "-ww", "-P", "-cbou"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(render.status.success(), "{page}: {}", String::from_utf8_lossy(&render.stderr));
        assert!(render.stderr.is_empty(), "{page}: {}", String::from_utf8_lossy(&render.stderr));
        let text = String::from_utf8_lossy(&render.stdout);
        assert!(text.contains("NAME"), "{page}:\n{text}");
    }
    let plan = std::fs::read_to_string(out.join("patchops-plan.1")).unwrap();
    assert!(plan.contains("detailed\\-exitcode"), "{plan}");
}

#[test]
fn version_names_the_commit_and_the_build_date() {
    let dir = tempfile::tempdir().unwrap();
    let run = patchops(dir.path(), &["--version"]);
    assert_eq!(run.code, 0);
    let head = common::git(&workspace_root(), &["rev-parse", "--short=12", "HEAD"]);
    let line = run.stdout.trim();
    assert!(line.starts_with(&format!("patchops {} ({head}", env!("CARGO_PKG_VERSION"))), "{line}");
    let date = line.rsplit(' ').next().unwrap().trim_end_matches(')');
    assert!(chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok(), "{line}");
}

#[test]
fn global_flags_are_grouped_apart_from_each_commands_own() {
    let dir = tempfile::tempdir().unwrap();
    let run = patchops(dir.path(), &["plan", "--help"]);
    let (own, global) = run.stdout.split_once("Global options:").expect("a Global options heading");
    assert!(global.contains("--verbose") && global.contains("--color"), "{global}");
    assert!(!own.contains("--verbose") && !own.contains("--color <COLOR>"), "{own}");
    assert!(own.contains("--detailed-exitcode"));
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{text}"))
}

// Issue 15, item 3: `--format json` on the reporting commands, each document valid against
// its schema in schemas/, and errors as error reports.
#[test]
fn reporting_commands_print_json_documents_that_match_their_schemas() {
    let (repo, key) = common::fleet_repo(1);
    let p = repo.path();

    let validate = patchops(p, &["validate", "--path", "fleet", "--format", "json"]);
    assert_eq!(validate.code, 0, "{}", validate.stderr);
    assert_matches_schema(&validate.stdout, "validate-report.schema.json");
    let v = json(&validate.stdout);
    assert_eq!(v["valid"], true);
    assert_eq!(v["catalogs"][0]["serial"], 1);
    assert_eq!(v["source"]["commit"], common::git(p, &["rev-parse", "HEAD"]).as_str());

    assert_eq!(patchops(p, &["apply", "--path", "fleet", "--auto-approve"]).code, 0);
    let status = patchops(p, &["status", "--path", "fleet", "--format", "json"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert_matches_schema(&status.stdout, "status-report.schema.json");
    let s = json(&status.stdout);
    assert_eq!(s["targets"][0]["product"], "app");
    assert_eq!(s["targets"][0]["last"]["outcome"], "succeeded");

    let history = patchops(p, &["history", "--format", "json"]);
    assert_eq!(history.code, 0, "{}", history.stderr);
    assert_matches_schema(&history.stdout, "history-report.schema.json");
    assert_eq!(json(&history.stdout)["records"][0]["action"], "publish");

    let policies = patchops(p, &["policy", "list", "--format", "json"]);
    assert_eq!(policies.code, 0);
    assert_matches_schema(&policies.stdout, "policy-list-report.schema.json");
    assert!(json(&policies.stdout)["builtin"].as_array().unwrap().len() >= 5);

    let catalog = p.join("catalog/catalog.json");
    let verify =
        patchops(p, &["catalog", "verify", catalog.to_str().unwrap(), "--public-key", &key.public, "--format", "json"]);
    assert_eq!(verify.code, 0, "{}", verify.stderr);
    assert_matches_schema(&verify.stdout, "catalog-verify-report.schema.json");
    assert_eq!(json(&verify.stdout)["serial"], 1);

    // Errors: an invalid fleet, with each problem's place; a refused catalog, with its reason.
    repo.write("fleet/products/app.yaml", "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: app\nspec:\n  product: vendor.app\n  versoin: latest\n");
    repo.commit("a typo");
    let invalid = patchops(p, &["validate", "--path", "fleet", "--format", "json"]);
    assert_eq!(invalid.code, 1);
    assert_matches_schema(&invalid.stdout, "error-report.schema.json");
    let e = json(&invalid.stdout);
    assert_eq!(e["error"]["diagnostics"][0]["file"], "products/app.yaml");
    assert!(e["error"]["diagnostics"][0]["line"].as_u64().is_some(), "{e}");
    let stranger = common::key();
    let refused = patchops(
        p,
        &["catalog", "verify", catalog.to_str().unwrap(), "--public-key", &stranger.public, "--format", "json"],
    );
    assert_eq!(refused.code, 1);
    assert_matches_schema(&refused.stdout, "error-report.schema.json");
    assert_eq!(json(&refused.stdout)["error"]["reason"], "CatalogKeyUntrusted");
}

#[test]
fn doctor_prints_a_json_report_that_matches_its_schema() {
    let (repo, _key) = common::fleet_repo(1);
    let run = patchops(repo.path(), &["doctor", "--path", "fleet", "--format", "json"]);
    assert_matches_schema(&run.stdout, "doctor-report.schema.json");
    let d = json(&run.stdout);
    assert_eq!(d["platforms"][0]["platform"], "intune-prod");
    assert_eq!(d["platforms"][0]["type"], "intune");
    assert_eq!(run.code == 0, d["ok"] == true, "the exit code agrees with ok: {d}");
    assert!(!d["platforms"][0]["checks"].as_array().unwrap().is_empty());
}

#[test]
fn apply_prints_a_json_report_of_what_it_did() {
    let (repo, _key) = common::fleet_repo(1);
    let p = repo.path();
    // Nothing is asked with --format json: it needs --auto-approve (or a plan file).
    let asked = patchops(p, &["apply", "--path", "fleet", "--format", "json"]);
    assert_eq!(asked.code, 1);
    assert_matches_schema(&asked.stdout, "error-report.schema.json");
    assert_eq!(json(&asked.stdout)["error"]["reason"], "ConfirmationNeeded");

    let first = patchops(p, &["apply", "--path", "fleet", "--auto-approve", "--format", "json"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_matches_schema(&first.stdout, "apply-report.schema.json");
    let a = json(&first.stdout);
    assert_eq!(a["ok"], true);
    assert_eq!(a["actions"][0]["action"], "publish");
    assert_eq!(a["actions"][0]["ring"], "pilot");
    assert_eq!(a["actions"][0]["result"], "succeeded");
    assert!(a["actions"][0]["objectId"].is_string(), "{a}");
    assert_eq!(a["source"]["commit"], common::git(p, &["rev-parse", "HEAD"]).as_str());

    // The broad ring next, then nothing left: an empty list of actions.
    assert_eq!(patchops(p, &["apply", "--path", "fleet", "--auto-approve"]).code, 0);
    let idle = patchops(p, &["apply", "--path", "fleet", "--auto-approve", "--format", "json"]);
    assert_eq!(idle.code, 0, "{}", idle.stderr);
    assert_matches_schema(&idle.stdout, "apply-report.schema.json");
    assert_eq!(json(&idle.stdout)["actions"], serde_json::json!([]));
}
