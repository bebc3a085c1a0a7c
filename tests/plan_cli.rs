//! `patchops plan` and `validate` end to end: real git repositories made with `git`, real
//! signatures, the real binary, and the embedded Intune emulator. (Applying, drift and
//! retirement: `apply_cli.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use common::{catalog, fleet_repo, git, patchops, sign};
use serde_json::{json, Value};

fn plan_json(dir: &std::path::Path, extra: &[&str]) -> (i32, Value, String) {
    let mut args = vec!["plan", "--path", "fleet", "--format", "json", "--detailed-exitcode"];
    args.extend_from_slice(extra);
    let run = patchops(dir, &args);
    let v = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
    (run.code, v, run.stderr)
}

fn actions(plan: &Value) -> Vec<(String, String, String)> {
    plan["actions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    (
                        x["action"].as_str().unwrap_or_default().to_string(),
                        x["product"].as_str().unwrap_or_default().to_string(),
                        x["ring"].as_str().unwrap_or("-").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn t(a: &str, p: &str, r: &str) -> (String, String, String) {
    (a.into(), p.into(), r.into())
}

#[test]
fn plan_reads_the_fleet_from_a_commit_and_records_it() {
    let (repo, _k) = fleet_repo(1);
    let head = git(repo.path(), &["rev-parse", "HEAD"]);
    let (code, plan, stderr) = plan_json(repo.path(), &[]);
    assert_eq!(code, 2, "changes exit 2 with --detailed-exitcode: {stderr}");
    assert_eq!(actions(&plan), vec![t("publish", "app", "pilot"), t("publish", "app", "broad")]);
    assert_eq!(
        plan["fingerprints"]["source"],
        json!({"type": "commit", "repo": ".", "reference": "HEAD", "commit": head})
    );
    assert_eq!(plan["fingerprints"]["catalogs"][0]["serial"], 1);
    assert_eq!(plan["actions"][0]["version"], "2.0");
    assert_eq!(plan["formatVersion"], 1);
}

#[test]
fn a_fleet_change_between_two_commits_changes_the_plan() {
    let (repo, _k) = fleet_repo(1);
    let first = git(repo.path(), &["rev-parse", "HEAD"]);
    repo.write(
        "fleet/products/tool.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: tool\nspec:\n  product: vendor.tool\n  targets:\n    - platform: intune-prod\n      rings: [pilot]\n",
    );
    let second = repo.commit("add the tool");
    let (_, at_head, _) = plan_json(repo.path(), &[]);
    assert_eq!(
        actions(&at_head),
        vec![t("publish", "app", "pilot"), t("publish", "app", "broad"), t("publish", "tool", "pilot")]
    );
    assert_eq!(at_head["fingerprints"]["source"]["commit"], json!(second));
    let (_, at_first, _) = plan_json(repo.path(), &["--rev", &first]);
    assert_eq!(actions(&at_first).len(), 2);
    assert_eq!(at_first["fingerprints"]["source"]["commit"], json!(first));
    assert_ne!(at_first["fingerprints"]["sourceDigest"], at_head["fingerprints"]["sourceDigest"]);
}

#[test]
fn branches_and_tags_are_read_without_touching_the_work_tree() {
    let (repo, _k) = fleet_repo(1);
    git(repo.path(), &["tag", "v1"]);
    git(repo.path(), &["checkout", "-q", "-b", "pin-old"]);
    let app = "fleet/products/app.yaml";
    let text = std::fs::read_to_string(repo.path().join(app)).expect("read");
    repo.write(app, text.replace("version: latest", "version: \"1.0\""));
    repo.commit("pin app to 1.0");
    git(repo.path(), &["checkout", "-q", "main"]);
    let (_, on_branch, _) = plan_json(repo.path(), &["--rev", "pin-old"]);
    assert_eq!(on_branch["actions"][0]["version"], "1.0");
    assert_eq!(on_branch["fingerprints"]["source"]["reference"], "pin-old");
    let (_, on_tag, _) = plan_json(repo.path(), &["--rev", "v1"]);
    assert_eq!(on_tag["actions"][0]["version"], "2.0");
    let status = git(repo.path(), &["status", "--porcelain", "--", "fleet", "catalog"]);
    assert_eq!(status, "", "the work tree is untouched");
    assert_eq!(git(repo.path(), &["branch", "--show-current"]), "main");
}

#[test]
fn a_bad_revision_is_an_error_listing_branches_and_tags() {
    let (repo, _k) = fleet_repo(1);
    git(repo.path(), &["tag", "v1"]);
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--rev", "mian"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "error: repository .: revision `mian` not found; branches: main; tags: v1");
}

#[test]
fn a_missing_fleet_path_is_an_error() {
    let (repo, _k) = fleet_repo(1);
    let run = patchops(repo.path(), &["validate", "--path", "flet"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "fleet path `flet` does not exist or is not a directory");
}

#[test]
fn uncommitted_changes_are_ignored_with_a_warning_unless_worktree_is_asked() {
    let (repo, _k) = fleet_repo(1);
    let app = "fleet/products/app.yaml";
    let text = std::fs::read_to_string(repo.path().join(app)).expect("read");
    repo.write(app, text.replace("version: latest", "version: \"1.0\""));
    let (_, committed, stderr) = plan_json(repo.path(), &[]);
    assert!(
        stderr.contains("warning: the work tree has uncommitted changes under `fleet`; they are ignored"),
        "{stderr}"
    );
    assert_eq!(committed["actions"][0]["version"], "2.0");
    let (_, worktree, stderr) = plan_json(repo.path(), &["--worktree"]);
    assert!(stderr.contains("(--worktree): provenance is unknown"), "{stderr}");
    assert_eq!(worktree["actions"][0]["version"], "1.0");
    assert_eq!(worktree["fingerprints"]["source"]["type"], "directory");
}

// Issue 12, item 9: a file the fleet reads outside `--path` (here the catalog next to it, and a
// policy module) changed in the work tree is warned about too, by plan, validate and status.
#[test]
fn uncommitted_changes_to_files_the_fleet_reads_outside_its_path_are_warned_about() {
    let (repo, key) = fleet_repo(1);
    repo.write(
        "policies/extra.rego",
        "package patchops.policy.extra\n\nimport rego.v1\n\ndeny contains msg if { false; msg := \"never\" }\n",
    );
    repo.write(
        "fleet/policies.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: PolicySet\nmetadata:\n  name: extra\nspec:\n  modules:\n    - ../policies/extra.rego\n",
    );
    repo.commit("a policy module outside the fleet path");
    let (_, _, stderr) = plan_json(repo.path(), &[]);
    assert!(!stderr.contains("uncommitted"), "a clean work tree: {stderr}");

    // The catalog is re-signed at serial 2 but not committed; a README change is not read.
    let c = common::catalog(2);
    repo.write("catalog/catalog.json", &c);
    repo.write("catalog/catalog.json.minisig", common::sign(&key, c.as_bytes()));
    repo.write(
        "policies/extra.rego",
        "package patchops.policy.extra\n\nimport rego.v1\n\ndeny contains msg if { true; msg := \"always\" }\n",
    );
    repo.write("README.md", "notes\n");
    let (_, plan, stderr) = plan_json(repo.path(), &[]);
    assert_eq!(plan["fingerprints"]["catalogs"][0]["serial"], 1, "the committed catalog is read");
    for needle in [
        "warning: the work tree has uncommitted changes to `catalog/catalog.json`, `catalog/catalog.json.minisig`, `policies/extra.rego`, which the fleet reads; they are ignored",
        "Commit them, or pass --worktree to try them out",
    ] {
        assert!(stderr.contains(needle), "{needle}\n{stderr}");
    }
    assert!(!stderr.contains("README.md"), "{stderr}");
    assert!(!stderr.contains("under `fleet`"), "nothing changed under the fleet path: {stderr}");
    for cmd in ["validate", "status"] {
        let run = patchops(repo.path(), &[cmd, "--path", "fleet"]);
        assert!(
            run.stderr.contains("uncommitted changes to `catalog/catalog.json`"),
            "{cmd}: {} {}\n{}",
            run.code,
            run.stdout,
            run.stderr
        );
    }
}

#[test]
fn a_plain_directory_works_with_a_provenance_warning() {
    let dir = tempfile::tempdir().expect("tmp");
    let k = common::key();
    for (p, text) in common::fleet_files(&k.public) {
        let path = dir.path().join(p);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    let c = catalog(1);
    std::fs::create_dir_all(dir.path().join("catalog")).expect("mkdir");
    std::fs::write(dir.path().join("catalog/catalog.json"), &c).expect("write");
    std::fs::write(dir.path().join("catalog/catalog.json.minisig"), sign(&k, c.as_bytes())).expect("write");
    let run = patchops(dir.path(), &["validate", "--path", "fleet"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    common::assert_contains(&run.stderr, "is not a git repository: provenance is unknown");
    let run = patchops(dir.path(), &["validate", "--path", "fleet", "--rev", "main"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "is not a git repository, so --rev main cannot be read");
}

#[test]
fn a_remote_repository_is_fetched_into_the_cache_and_refetched() {
    let (repo, _k) = fleet_repo(1);
    let elsewhere = tempfile::tempdir().expect("tmp");
    let url = format!("file://{}", repo.path().display());
    let (code, plan, stderr) = plan_json(elsewhere.path(), &["--repo", &url]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(actions(&plan).len(), 2);
    assert_eq!(plan["fingerprints"]["source"]["repo"], json!(url));
    repo.remove("fleet/products/app.yaml");
    let newer = repo.commit("remove the app");
    let (code, plan, stderr) = plan_json(elsewhere.path(), &["--repo", &url]);
    assert_eq!(code, 0, "no products, nothing published: no changes. {stderr}");
    assert_eq!(plan["fingerprints"]["source"]["commit"], json!(newer));
    assert!(elsewhere.path().join(".test-cache/patchops/repos").is_dir(), "fetched into the cache");
}

#[test]
fn the_catalog_is_read_from_the_same_commit_as_the_fleet() {
    let (repo, _k) = fleet_repo(1);
    // An uncommitted, unsigned catalog in the work tree changes nothing.
    repo.write("catalog/catalog.json", "garbage");
    let (code, plan, stderr) = plan_json(repo.path(), &[]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(plan["fingerprints"]["catalogs"][0]["serial"], 1);
}

#[test]
fn a_committed_catalog_with_a_lower_serial_is_refused_as_rollback() {
    let (repo, k) = fleet_repo(5);
    // Only apply records the serial it acted on (planning records nothing).
    let run = patchops(repo.path(), &["apply", "--path", "fleet", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let old = catalog(4);
    repo.write("catalog/catalog.json", &old);
    repo.write("catalog/catalog.json.minisig", sign(&k, old.as_bytes()));
    repo.commit("an older, validly signed catalog");
    let run = patchops(repo.path(), &["plan", "--path", "fleet"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "catalog serial 4 is lower than 5, already seen in the state directory");
    let run = patchops(repo.path(), &["catalog", "forget", "vendor"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (code, _, stderr) = plan_json(repo.path(), &[]);
    assert_eq!(code, 2, "accepted after a deliberate forget: {stderr}");
}

#[test]
fn an_unsigned_or_untrusted_catalog_stops_the_plan() {
    let (repo, _k) = fleet_repo(1);
    repo.remove("catalog/catalog.json.minisig");
    repo.commit("drop the signature");
    let run = patchops(repo.path(), &["plan", "--path", "fleet"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "catalog source `vendor`: no signature at catalog/catalog.json.minisig");
    assert!(run.stdout.is_empty(), "no plan is shown: {}", run.stdout);
}

#[test]
fn a_saved_plan_carries_the_fingerprints_of_its_inputs() {
    let (repo, _k) = fleet_repo(1);
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--out", "plan.json"]);
    assert_eq!(run.code, 0, "without --detailed-exitcode changes exit 0: {}", run.stderr);
    common::assert_contains(
        &run.stdout,
        "Plan: 2 to publish, 0 to update, 0 to reconfigure, 0 to retire, 0 unchanged.",
    );
    let saved: Value =
        serde_json::from_slice(&std::fs::read(repo.path().join("plan.json")).expect("saved")).expect("json");
    let fp = &saved["fingerprints"];
    assert_eq!(fp["source"]["commit"], json!(git(repo.path(), &["rev-parse", "HEAD"])));
    assert_eq!(fp["catalogs"][0]["source"], "vendor");
    assert_eq!(fp["sourceDigest"].as_str().map(str::len), Some(64));
    assert_eq!(fp["observed"]["intune-prod"].as_str().map(str::len), Some(64));
}

#[test]
fn markdown_output_is_a_compact_pull_request_comment() {
    let (repo, _k) = fleet_repo(1);
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--format", "markdown"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("### patchops plan\n\n**Plan: 2 to publish"), "{}", run.stdout);
    common::assert_contains(&run.stdout, "| 🟢 publish | `app` | `intune-prod` | pilot | 2.0 | NotPublished |");
}

#[test]
fn a_product_the_catalog_lacks_is_reported_and_exits_1() {
    let (repo, _k) = fleet_repo(1);
    repo.write(
        "fleet/products/ghost.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: ghost\nspec:\n  product: vendor.ghost\n  targets:\n    - platform: intune-prod\n",
    );
    repo.commit("a product the catalog does not have");
    let run = patchops(repo.path(), &["validate", "--path", "fleet"]);
    assert_eq!(run.code, 1);
    common::assert_contains(
        &run.stderr,
        "Product `ghost` (products/ghost.yaml:1): catalog `vendor` (serial 1) has no product `vendor.ghost`",
    );
    let run = patchops(repo.path(), &["plan", "--path", "fleet"]);
    assert_eq!(run.code, 1, "the other products are planned, but the exit code tells the truth");
    common::assert_contains(&run.stdout, "publish");
    common::assert_contains(&run.stdout, "error: Product ghost (products/ghost.yaml:1): ProductNotInCatalog");
}

// Issue 12, item 4: an installer no platform could detect (no MSI product code, no detection
// data) is found by validate and plan, not only when apply fails to create it; what is
// published stays; apply exits 1 without trying.
#[test]
fn an_installer_without_detection_data_is_found_by_plan_not_by_a_failed_apply() {
    let (repo, key) = fleet_repo(1);
    assert_eq!(patchops(repo.path(), &["apply", "--path", "fleet", "--auto-approve"]).code, 0);
    // Serial 2 turns 2.0 into an EXE without detection data.
    let mut c: serde_json::Value = serde_json::from_str(&common::catalog(2)).unwrap();
    let i = &mut c["products"][0]["versions"][1]["installers"][0];
    i["type"] = "exe".into();
    i.as_object_mut().unwrap().remove("msiProductCode");
    let c = c.to_string();
    repo.write("catalog/catalog.json", &c);
    repo.write("catalog/catalog.json.minisig", common::sign(&key, c.as_bytes()));
    repo.commit("2.0 as an EXE the catalog cannot detect");
    let expected = "`vendor.app` 2.0: the catalog's installer vendor.app-2.0.msi has neither an MSI product code nor detection data, so no platform could tell whether it is installed; add `detection` (file or registry) to the catalog's installer";
    let validate = patchops(repo.path(), &["validate", "--path", "fleet"]);
    assert_eq!(validate.code, 1);
    common::assert_contains(&validate.stderr, expected);
    let plan = patchops(repo.path(), &["plan", "--path", "fleet"]);
    assert_eq!(plan.code, 1, "{}", plan.stdout);
    common::assert_contains(&plan.stdout, "Undetectable");
    assert!(!plan.stdout.contains("retire"), "what is published stays: {}", plan.stdout);
    let apply = patchops(repo.path(), &["apply", "--path", "fleet", "--auto-approve"]);
    assert_eq!(apply.code, 1, "{}", apply.stdout);
    common::assert_contains(&apply.stdout, "Nothing to apply.");
    assert_eq!(common::tenant_apps(repo.path()).len(), 1, "the published app is kept");
}

#[test]
fn credentials_in_a_repository_url_are_never_shown() {
    let dir = tempfile::tempdir().expect("tmp");
    // Nothing listens on port 1 of loopback: the fetch fails at once.
    let run = patchops(dir.path(), &["validate", "--repo", "https://patchops:hunter2-token@127.0.0.1:1/fleet.git"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "error: repository https://127.0.0.1:1/fleet.git: fetch failed");
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
}

#[test]
fn a_real_configmgr_site_needs_a_content_share_and_an_unreachable_one_is_named() {
    let (repo, _k) = fleet_repo(1);
    let platform = "apiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: intune-prod\nspec:\n  type: configmgr\n  endpoint: https://127.0.0.1:1/AdminService\n  auth:\n    username: svc\n    password: { file: pw.txt }\n";
    repo.write("fleet/platforms.yaml", platform);
    // Its rings' groups are collections.
    repo.write(
        "fleet/rollout.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: standard\nspec:\n  rings:\n    - name: pilot\n      groups:\n        - { platform: intune-prod, group: PO100012 }\n    - name: broad\n      groups:\n        - { platform: intune-prod, group: PO100013 }\n",
    );
    repo.commit("a real ConfigMgr site");
    let run = patchops(repo.path(), &["validate", "--path", "fleet"]);
    assert_eq!(run.code, 1);
    common::assert_contains(
        &run.stderr,
        "platforms.yaml:7:13: a real Configuration Manager site needs `configmgr.contentShare`",
    );
    let share = tempfile::tempdir().expect("tmp");
    repo.write(
        "fleet/platforms.yaml",
        format!(
            "{platform}  configmgr:\n    contentShare: {{ unc: '\\\\cm01\\patchops', localPath: {} }}\n",
            share.path().display()
        ),
    );
    std::fs::write(repo.path().join("pw.txt"), "secret-password").expect("password");
    repo.commit("with its share");
    let run = patchops(repo.path(), &["plan", "--path", "fleet"]);
    assert_eq!(run.code, 1);
    // Nothing listens on port 1 of loopback.
    common::assert_contains(&run.stderr, "platform `intune-prod`: listing applications: ");
    assert!(!run.stderr.contains("secret-password"), "{}", run.stderr);
}

#[test]
fn a_real_intune_endpoint_needs_its_certificate_file() {
    let (repo, _k) = fleet_repo(1);
    repo.write(
        "fleet/platforms.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: intune-prod\nspec:\n  type: intune\n  endpoint: https://graph.microsoft.com\n  auth:\n    tenantId: t\n    clientId: c\n    certificate: { file: /nonexistent/patchops/intune.pem }\n",
    );
    repo.commit("a real Intune tenant");
    let run = patchops(repo.path(), &["plan", "--path", "fleet"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "platform `intune-prod`: cannot read the certificate file /nonexistent/patchops/intune.pem (auth.certificate): No such file or directory");
}

/// The `key=value` field of the `-vv` line that ends with `message`.
fn debug_field(stderr: &str, message: &str, field: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.contains(&format!(" {message} ")))
        .unwrap_or_else(|| panic!("no `{message}` in {stderr}"));
    let value = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{field}=")))
        .unwrap_or_else(|| panic!("no {field} in {line}"));
    value.parse().unwrap_or_else(|_| panic!("{field}={value} in {line}"))
}

// Issue 16: policies are judged per distinct value of what they read, so more rings (more
// changes with the same product, version and platform) cost no more policy evaluations.
#[test]
fn policy_evaluations_do_not_grow_with_the_number_of_changes() {
    let mut counts = Vec::new();
    for rings in [2, 8] {
        let (repo, _k) = fleet_repo(1);
        let mut rollout = String::from(
            "apiVersion: patchops.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: standard\nspec:\n  rings:\n",
        );
        for r in 0..rings {
            rollout.push_str(&format!(
                "    - name: ring{r}\n      groups:\n        - {{ platform: intune-prod, group: {{ name: sg-ring{r} }} }}\n"
            ));
        }
        repo.write("fleet/rollout.yaml", rollout);
        repo.commit(&format!("{rings} rings"));
        let run = patchops(repo.path(), &["plan", "--path", "fleet", "-vv"]);
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        counts.push((
            debug_field(&run.stderr, "judged", "changes"),
            debug_field(&run.stderr, "judged", "policy_evaluations"),
        ));
    }
    let [(few_changes, few), (many_changes, many)] = counts[..] else { unreachable!() };
    assert_eq!((few_changes, many_changes), (2, 8), "one publish per ring");
    assert_eq!(few, many, "evaluations per plan stay constant as the changes grow: {counts:?}");
    assert!(many < many_changes * 5, "fewer evaluations than changes × policies: {counts:?}");
}
