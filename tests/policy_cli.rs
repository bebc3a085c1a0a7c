//! Policies end to end: the shipped Rego files and their tests, a fleet's own module, PolicySet
//! validation, and denials shown by `plan`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use common::{fleet_repo, patchops, workspace_root};

#[test]
fn the_shipped_policies_pass_their_rego_tests() {
    let root = workspace_root();
    let run = patchops(&root, &["policy", "test", "policies", "--list"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    common::assert_contains(
        &run.stdout,
        "PASS  patchops.policy.scan_detections_test.test_detections_above_default_threshold_are_denied",
    );
    common::assert_contains(&run.stdout, "PASS  patchops.policy.change_freeze_test.test_inside_the_window_is_denied");
    common::assert_contains(&run.stdout, "PASS: 19 passed, 0 failed");
    // Without a path, the built-in copies (compiled into the binary) run the same tests.
    let builtin = patchops(&root, &["policy", "test"]);
    common::assert_contains(&builtin.stdout, "PASS: 19 passed, 0 failed");
}

#[test]
fn a_failing_rego_test_fails_the_command_and_names_the_test() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mine_test.rego"),
        "package patchops.policy.mine_test\n\nimport data.patchops.policy.vendor_allowlist\nimport rego.v1\n\n\
         test_acme_is_allowed if {\n\tcount(vendor_allowlist.deny) == 0 with input as {\"action\": {\"kind\": \"publish\"}, \"product\": {\"vendor\": \"Acme\", \"catalogProduct\": \"acme.x\"}}\n\t\twith data.patchops.parameters.vendor_allowlist as {\"vendors\": [\"Other\"]}\n}\n\n\
         test_other_is_allowed if {\n\tcount(vendor_allowlist.deny) == 0 with input as {\"action\": {\"kind\": \"publish\"}, \"product\": {\"vendor\": \"Other\", \"catalogProduct\": \"o.x\"}}\n\t\twith data.patchops.parameters.vendor_allowlist as {\"vendors\": [\"Other\"]}\n}\n",
    )
    .unwrap();
    let run = patchops(dir.path(), &["policy", "test", "."]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stdout, "FAIL  patchops.policy.mine_test.test_acme_is_allowed (./mine_test.rego)");
    common::assert_contains(&run.stdout, "FAIL: 1 passed, 1 failed");

    std::fs::write(dir.path().join("broken.rego"), "package patchops.policy.broken\ndeny contains msg if {\n").unwrap();
    let run = patchops(dir.path(), &["policy", "test", "broken.rego"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "error: policy module broken.rego: ");
}

#[test]
fn a_policy_set_naming_an_unknown_builtin_is_a_validation_error() {
    let (repo, _k) = fleet_repo(1);
    repo.write(
        "fleet/policies.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: PolicySet\nmetadata:\n  name: p\nspec:\n  builtin: [scan_detection]\n  modules: [/etc/x.rego]\n",
    );
    repo.commit("typo");
    let run = patchops(repo.path(), &["validate", "--path", "fleet"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "error: policies.yaml:6:13: no built-in policy is called `scan_detection`\n  help: did you mean `scan_detections`?");
    common::assert_contains(
        &run.stderr,
        "error: policies.yaml:7:13: `/etc/x.rego` is not a relative path to a .rego file",
    );
}

#[test]
fn a_fleets_own_module_is_read_from_the_commit_and_its_denials_shown() {
    let (repo, _k) = fleet_repo(1);
    repo.write(
        "fleet/policies.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: PolicySet\nmetadata:\n  name: local\nspec:\n  builtin: []\n  modules: [rego/no-broad.rego]\n  parameters:\n    no_broad: { reason: broad ring is closed this week }\n",
    );
    repo.write(
        "fleet/rego/no-broad.rego",
        "package patchops.policy.no_broad\n\nimport rego.v1\n\ndeny contains msg if {\n\tinput.ring.name == \"broad\"\n\tmsg := data.patchops.parameters.no_broad.reason\n}\n",
    );
    repo.commit("local policy");
    let run = patchops(repo.path(), &["plan", "--path", "fleet"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    common::assert_contains(&run.stdout, "+ publish     intune-prod / broad [sg-broad]  2.0\n      NotPublished: vendor.app 2.0 is not published to ring broad (group sg-broad)\n      denied by policy no_broad: broad ring is closed this week");
    common::assert_contains(&run.stdout, "1 denied by policy.");

    // The module must be in the commit: a missing one is an error naming the PolicySet.
    repo.remove("fleet/rego/no-broad.rego");
    repo.commit("lose the module");
    let run = patchops(repo.path(), &["plan", "--path", "fleet"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "PolicySet `local` (policies.yaml:1): module `rego/no-broad.rego` is not in the fleet's commit (looked for fleet/rego/no-broad.rego)");
}
