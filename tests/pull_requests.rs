//! Issue 12, pull-request-driven change control, through the binary on real git repositories.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use common::{catalog, fleet_repo, git, patchops, sign};

// Item 1: read-only commands never change trust state.
#[test]
fn planning_a_branch_with_a_newer_catalog_does_not_make_mains_a_rollback() {
    let (repo, k) = fleet_repo(2);
    git(repo.path(), &["checkout", "-q", "-b", "new-catalog"]);
    let newer = catalog(9);
    repo.write("catalog/catalog.json", &newer);
    repo.write("catalog/catalog.json.minisig", sign(&k, newer.as_bytes()));
    repo.commit("catalog serial 9, on a branch");
    for command in ["validate", "plan"] {
        let run = patchops(repo.path(), &[command, "--path", "fleet", "--rev", "new-catalog"]);
        assert_eq!(run.code, 0, "{command}: {}", run.stderr);
    }
    // main (serial 2) still plans and applies: nothing recorded serial 9.
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--rev", "main"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = patchops(repo.path(), &["apply", "--path", "fleet", "--rev", "main", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    common::assert_contains(&run.stdout, "✓ publish app 2.0 on intune-prod / pilot");

    // Applying the branch records serial 9; from then on main's serial 2 is a rollback.
    let run = patchops(repo.path(), &["apply", "--path", "fleet", "--rev", "new-catalog", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--rev", "main"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "catalog serial 2 is lower than 9, already seen in the state directory");
}

fn soaking(repo: &common::Repo) {
    repo.write(
        "fleet/rollout.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: standard\nspec:\n  rings:\n    - name: pilot\n      soak: 48h\n      groups:\n        - { platform: intune-prod, group: { name: sg-pilot } }\n    - name: broad\n      groups:\n        - { platform: intune-prod, group: { name: sg-broad } }\n",
    );
    repo.commit("pilot soaks for two days");
}

// Item 4: plans tell the truth about apply.
#[test]
fn a_plan_whose_only_changes_are_waiting_exits_3_and_one_with_changes_to_apply_exits_2() {
    let (repo, _k) = fleet_repo(1);
    soaking(&repo);
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--detailed-exitcode"]);
    assert_eq!(run.code, 2, "the pilot ring can be published now: {}", run.stdout);
    let run = patchops(repo.path(), &["apply", "--path", "fleet", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--detailed-exitcode"]);
    assert_eq!(run.code, 3, "only the broad ring is left, and it waits: {}", run.stdout);
    common::assert_contains(&run.stdout, "waiting: RingSoaking: ring pilot has run 2.0 since ");
    let run = patchops(repo.path(), &["apply", "--path", "fleet", "--auto-approve"]);
    assert_eq!(run.code, 0, "waiting is the rollout at work, not a failure: {}", run.stderr);
}

#[test]
fn the_mass_retire_guard_is_found_by_plan_and_shown_in_the_pull_request_comment() {
    let (repo, _k) = fleet_repo(1);
    assert_eq!(patchops(repo.path(), &["apply", "--path", "fleet", "--auto-approve"]).code, 0);
    repo.remove("fleet/products/app.yaml");
    repo.commit("remove every product");
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--detailed-exitcode"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    common::assert_contains(
        &run.stderr,
        "it would retire too much at once: platform intune-prod: 1 of its 1 managed objects would be retired (100 %, more than the 30 % allowed); apply refuses this unless given --allow-mass-retire",
    );
    let md = patchops(repo.path(), &["plan", "--path", "fleet", "--format", "markdown"]);
    common::assert_contains(&md.stdout, "⛔ **apply would refuse this plan**: it would retire too much at once");
    let json = patchops(repo.path(), &["plan", "--path", "fleet", "--format", "json"]);
    let plan: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(plan["guards"].as_array().map(Vec::len), Some(1));
}

#[test]
fn one_retire_on_a_small_platform_does_not_trip_the_mass_retire_guard() {
    let (repo, _k) = fleet_repo(1);
    repo.write(
        "fleet/products/tool.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: tool\nspec:\n  product: vendor.tool\n  targets:\n    - platform: intune-prod\n",
    );
    repo.commit("two products");
    for _ in 0..2 {
        assert_eq!(patchops(repo.path(), &["apply", "--path", "fleet", "--auto-approve"]).code, 0);
    }
    repo.remove("fleet/products/tool.yaml");
    repo.commit("retire one of two");
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--detailed-exitcode"]);
    assert_eq!(
        run.code, 2,
        "one of two is 50 %, but a single retire is a change, not an emptied fleet: {}",
        run.stderr
    );
    let run = patchops(repo.path(), &["apply", "--path", "fleet", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    common::assert_contains(&run.stdout, "✓ retire vendor.tool on intune-prod");
}

#[test]
fn replacing_the_only_product_on_a_platform_is_a_change_not_an_emptied_fleet() {
    let (repo, _k) = fleet_repo(1);
    for _ in 0..2 {
        assert_eq!(patchops(repo.path(), &["apply", "--path", "fleet", "--auto-approve"]).code, 0);
    }
    // One commit swaps the platform's only product for another: 1 of 1 retired, 1 published.
    repo.remove("fleet/products/app.yaml");
    repo.write(
        "fleet/products/tool.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: tool\nspec:\n  product: vendor.tool\n  targets:\n    - platform: intune-prod\n",
    );
    repo.commit("the tool instead of the app");
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--detailed-exitcode"]);
    assert_eq!(run.code, 2, "the platform stays managed: {}", run.stderr);
    let run = patchops(repo.path(), &["apply", "--path", "fleet", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    common::assert_contains(&run.stdout, "✓ retire vendor.app on intune-prod / pilot");
    common::assert_contains(&run.stdout, "✓ publish tool 3.1 on intune-prod / pilot");
}

// Item 8, in part: the audit stays true later.
#[test]
fn the_audit_names_the_version_a_retire_took_away_and_never_calls_an_old_commit_head() {
    let (repo, _k) = fleet_repo(1);
    assert_eq!(patchops(repo.path(), &["apply", "--path", "fleet", "--auto-approve"]).code, 0);
    let first = git(repo.path(), &["rev-parse", "HEAD"]);
    repo.write(
        "fleet/products/app.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: app\nspec:\n  product: vendor.app\n  retire: true\n  targets:\n    - platform: intune-prod\n",
    );
    repo.commit("retire the app");
    let run = patchops(repo.path(), &["apply", "--path", "fleet", "--auto-approve", "--allow-mass-retire"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let history = patchops(repo.path(), &["history"]);
    common::assert_contains(&history.stdout, "succeeded retire app 2.0 on intune-prod / pilot");
    common::assert_contains(&history.stdout, &format!("from commit {}", &first[..12]));
    assert!(!history.stdout.contains("(HEAD)"), "{}", history.stdout);
}

// Item 2: saved plans are judged by content, not by spelling.
#[test]
fn a_saved_plan_made_on_a_pull_request_applies_after_the_merge_when_the_content_is_the_same() {
    let (repo, _k) = fleet_repo(1);
    // The pull request: a branch that adds the tool.
    git(repo.path(), &["checkout", "-q", "-b", "add-tool"]);
    repo.write(
        "fleet/products/tool.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: tool\nspec:\n  product: vendor.tool\n  targets:\n    - platform: intune-prod\n",
    );
    let head = repo.commit("add the tool");
    // CI plans the pull request's commit by its id, into a file outside the repository.
    let out = tempfile::tempdir().unwrap();
    let plan_file = out.path().join("pr-plan.json");
    let plan_arg = plan_file.to_str().unwrap();
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--rev", &head, "--out", plan_arg]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&plan_file).unwrap()).unwrap();
    assert_eq!(saved["madeFrom"]["path"], "fleet", "{saved:#}");
    assert!(saved["fingerprints"]["files"]["fleet/products/tool.yaml"].is_string(), "{saved:#}");
    assert!(saved["fingerprints"]["files"]["catalog/catalog.json"].is_string(), "the in-repository catalog: {saved:#}");

    // Merged with a merge commit, and a README changed on main meanwhile.
    git(repo.path(), &["checkout", "-q", "main"]);
    repo.write("README.md", "# Our fleet\n");
    repo.commit("docs");
    git(repo.path(), &["merge", "-q", "--no-ff", "-m", "Merge pull request #1", "add-tool"]);

    // Applied at the merge commit, with `--rev main` instead of the id, and no confirmation:
    // the files the plan was made from are the same, so it is not stale.
    let run = patchops(repo.path(), &["apply", plan_arg, "--rev", "main"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    common::assert_contains(&run.stdout, "✓ publish tool 3.1 on intune-prod / pilot");
    common::assert_contains(&run.stdout, "✓ publish app 2.0 on intune-prod / pilot");
}

#[test]
fn a_saved_plan_needs_no_other_flag_and_a_refusal_names_the_files_that_changed() {
    let (repo, _k) = fleet_repo(1);
    let out = tempfile::tempdir().unwrap();
    let plan_file = out.path().join("plan.json");
    let plan_arg = plan_file.to_str().unwrap();
    let state = out.path().join("state");
    let run =
        patchops(repo.path(), &["plan", "--path", "fleet", "--state-dir", state.to_str().unwrap(), "--out", plan_arg]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    // A product changes after the plan was made: refused, naming the file.
    let app = std::fs::read_to_string(repo.path().join("fleet/products/app.yaml")).unwrap();
    repo.write("fleet/products/app.yaml", app.replace("version: latest", "version: \"1.0\""));
    repo.commit("pin the app");
    let run = patchops(repo.path(), &["apply", plan_arg]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    common::assert_contains(
        &run.stderr,
        "the fleet's content changed since the plan was made (changed: fleet/products/app.yaml)",
    );
    common::assert_contains(&run.stderr, "help: make a new plan with `patchops plan --out FILE`");

    // Back as planned (another commit, the same content): `apply FILE` alone reads the
    // repository, fleet path and state directory the plan was made with.
    repo.write("fleet/products/app.yaml", app);
    repo.commit("unpin");
    let run = patchops(repo.path(), &["apply", plan_arg]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    common::assert_contains(&run.stdout, "✓ publish app 2.0 on intune-prod / pilot");
    assert!(state.join("state.db").is_file(), "the state directory the plan was made with");
    assert!(!repo.path().join(".patchops/state.db").exists(), "not the default one");

    // A plan made now, then an object changed on the platform by hand: the refusal names it.
    let run =
        patchops(repo.path(), &["plan", "--path", "fleet", "--state-dir", state.to_str().unwrap(), "--out", plan_arg]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let tenant_file = state.join("emulate/intune-prod.json");
    let mut tenant: serde_json::Value = serde_json::from_slice(&std::fs::read(&tenant_file).unwrap()).unwrap();
    let id = tenant["apps"].as_object().unwrap().keys().next().unwrap().clone();
    tenant["apps"][&id]["displayName"] = "Renamed by hand".into();
    std::fs::write(&tenant_file, serde_json::to_vec(&tenant).unwrap()).unwrap();
    let run = patchops(repo.path(), &["apply", plan_arg]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    common::assert_contains(
        &run.stderr,
        &format!("platform intune-prod changed since the plan was made (its observed state differs; changed: {id} (vendor.app))"),
    );
}

#[test]
fn a_plan_file_cannot_point_apply_at_a_state_directory_without_history() {
    let (repo, _k) = fleet_repo(1);
    let out = tempfile::tempdir().unwrap();
    let plan_file = out.path().join("plan.json");
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--out", plan_file.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // An edited plan file naming a fresh directory: no catalog serials seen, no ring history.
    let mut plan: serde_json::Value = serde_json::from_slice(&std::fs::read(&plan_file).unwrap()).unwrap();
    let fresh = out.path().join("fresh-state");
    plan["madeFrom"]["stateDir"] = fresh.to_str().unwrap().into();
    std::fs::write(&plan_file, serde_json::to_vec(&plan).unwrap()).unwrap();
    let run = patchops(repo.path(), &["apply", plan_file.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    common::assert_contains(&run.stderr, "which holds no state database; pass --state-dir");
    assert!(!fresh.exists(), "nothing was created there");
}

// Item 8: every applied action records who or what approved it, the user and the host.
#[test]
fn every_audited_action_names_its_approval_user_and_host() {
    let (repo, _k) = fleet_repo(1);
    let approvals = |repo: &common::Repo| -> Vec<serde_json::Value> {
        let run = patchops(repo.path(), &["history", "--format", "json"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        doc["records"].as_array().cloned().unwrap_or_default()
    };
    // --auto-approve.
    assert_eq!(patchops(repo.path(), &["apply", "--path", "fleet", "--auto-approve"]).code, 0);
    let records = approvals(&repo);
    assert!(!records.is_empty());
    let user = String::from_utf8(std::process::Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    let host = String::from_utf8(std::process::Command::new("hostname").output().unwrap().stdout).unwrap();
    for r in &records {
        assert_eq!(r["approval"], "--auto-approve", "{r:#}");
        assert_eq!(r["user"], user.trim(), "{r:#}");
        assert_eq!(r["host"], host.trim(), "{r:#}");
    }

    // A plan file, named with the SHA-256 of its bytes.
    repo.write(
        "fleet/products/tool.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: tool\nspec:\n  product: vendor.tool\n  targets:\n    - platform: intune-prod\n",
    );
    repo.commit("add the tool");
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("plan.json");
    assert_eq!(patchops(repo.path(), &["plan", "--path", "fleet", "--out", file.to_str().unwrap()]).code, 0);
    let digest = {
        use sha2::Digest;
        common::hex(&sha2::Sha256::digest(std::fs::read(&file).unwrap()))
    };
    let run = patchops(repo.path(), &["apply", file.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let newest = &approvals(&repo)[0];
    assert_eq!(newest["product"], "tool");
    assert_eq!(newest["approval"], format!("plan file {} (sha256 {digest})", file.display()), "{newest:#}");
    let text = patchops(repo.path(), &["history", "--product", "tool"]).stdout;
    common::assert_contains(
        &text,
        &format!("approved: plan file {} (sha256 {digest}) by {}@{}", file.display(), user.trim(), host.trim()),
    );

    // Typed `yes` at the prompt, on a real terminal (script(1) gives apply one).
    repo.write(
        "fleet/products/tool.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: tool\nspec:\n  product: vendor.tool\n  retire: true\n  targets:\n    - platform: intune-prod\n",
    );
    repo.commit("retire the tool");
    let command = format!("{} apply --path fleet --allow-mass-retire", env!("CARGO_BIN_EXE_patchops"));
    let mut child = common::tool("script", "bsdutils")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(repo.path())
        .env("NO_COLOR", "1")
        .env("XDG_CACHE_HOME", repo.path().join(".test-cache"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"yes\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let newest = &approvals(&repo)[0];
    assert_eq!(
        (&newest["action"], &newest["approval"]),
        (&"retire".into(), &"confirmed at the prompt".into()),
        "{newest:#}"
    );

    // The daemon, with the trigger of its cycle.
    repo.remove("fleet/products/tool.yaml");
    repo.write(
        "fleet/rollout.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: standard\nspec:\n  rings:\n    - name: pilot\n      groups:\n        - { platform: intune-prod, group: { name: sg-pilot-2 } }\n    - name: broad\n      groups:\n        - { platform: intune-prod, group: { name: sg-broad } }\n",
    );
    repo.commit("a new pilot group");
    let run = patchops(repo.path(), &["run", "--path", "fleet", "--listen", "off", "--no-watch", "--max-cycles", "1"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let newest = &approvals(&repo)[0];
    assert_eq!(newest["approval"], "patchops run (trigger startup)", "{newest:#}");
}

// Item 3: `plan --base REV`, the pull-request view.
#[test]
fn plan_base_shows_what_the_change_does_apart_from_what_is_already_pending() {
    let (repo, _k) = fleet_repo(1);
    soaking(&repo);
    // main: the pilot ring is published; broad waits for the pilot's soak (pending on main).
    let run = patchops(repo.path(), &["apply", "--path", "fleet", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);

    // The pull request adds a product and changes the broad ring's group.
    git(repo.path(), &["checkout", "-q", "-b", "add-tool"]);
    repo.write(
        "fleet/products/tool.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: tool\nspec:\n  product: vendor.tool\n  targets:\n    - platform: intune-prod\n",
    );
    repo.commit("add the tool");

    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--base", "main"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = &run.stdout;
    common::assert_contains(text, "This change: 1 to publish; 1 waiting; 1 already pending on the base.");
    common::assert_contains(text, "+ Product tool (added)");
    common::assert_contains(text, "file fleet/products/tool.yaml (added)");
    let caused = text.split("Caused by this change:").nth(1).unwrap().split("\n\n").next().unwrap();
    common::assert_contains(caused, "publish tool 3.1 on intune-prod / pilot: NotPublished");
    common::assert_contains(caused, "publish tool 3.1 on intune-prod / broad: waiting");
    assert!(!caused.contains("app"), "the app's broad ring was pending before the change: {text}");
    let pending = text.split("Already pending on the base (not this change's):").nth(1).unwrap();
    common::assert_contains(pending, "publish app 2.0 on intune-prod / broad: waiting until ");

    // The pull-request comment: one line of summary first, waiting shown as waiting.
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--base", "main", "--format", "markdown"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let md = &run.stdout;
    assert!(
        md.starts_with("### patchops plan\n\n**This change: 1 to publish; 1 waiting; 1 already pending on the base.**"),
        "{md}"
    );
    common::assert_contains(md, "| 🟢 publish | `tool` | `intune-prod` | pilot | 3.1 |");
    common::assert_contains(md, "| ⏳ publish waits");
    assert!(!md.contains("| 🟢 publish | `tool` | `intune-prod` | broad"), "{md}");
    common::assert_contains(md, "<details><summary>Already pending on the base, not this change's (1)</summary>");
    common::assert_contains(md, "<details><summary>Desired-state changes (1 object(s), 1 file(s))</summary>");

    // JSON, valid against its schema.
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--base", "main", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    common::assert_matches_schema(&run.stdout, "plan-change.schema.json");
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["summary"]["publish"], 1, "{doc:#}");
    assert_eq!(doc["summary"]["waiting"], 1);
    assert_eq!(doc["summary"]["pendingOnBase"], 1);
    assert_eq!(doc["base"]["reference"], "main");
    assert_eq!(doc["desired"][0]["kind"], "Product");

    // A field-level change: the pilot's soak shortened on the branch.
    repo.write(
        "fleet/rollout.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: standard\nspec:\n  rings:\n    - name: pilot\n      soak: 1h\n      groups:\n        - { platform: intune-prod, group: { name: sg-pilot } }\n    - name: broad\n      groups:\n        - { platform: intune-prod, group: { name: sg-broad } }\n",
    );
    repo.commit("a shorter soak");
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--base", "main"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    common::assert_contains(&run.stdout, "~ Rollout standard (changed)\n      spec.rings[0].soak: 2 days → 1 hour");

    // A base that does not exist is an error naming it.
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--base", "no-such-branch"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    common::assert_contains(&run.stderr, "revision `no-such-branch` not found; branches: add-tool, main");

    // A base without the fleet (the pull request that introduces it): everything is the change's.
    git(repo.path(), &["switch", "-q", "--orphan", "before-the-fleet"]);
    repo.write("README.md", "# Our fleet, soon\n");
    repo.commit("nothing yet");
    git(repo.path(), &["checkout", "-q", "-f", "add-tool"]);
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--base", "before-the-fleet", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    common::assert_contains(&run.stderr, "the base before-the-fleet could not be planned");
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["summary"]["pendingOnBase"], 0, "{doc:#}");
    assert!(doc["desired"].as_array().unwrap().iter().all(|o| o["change"] == "added"), "{doc:#}");
}

// Item 6: plans without credentials, from a recorded inventory.
#[test]
fn a_recorded_inventory_plans_a_pull_request_without_credentials_or_network() {
    let (repo, _k) = fleet_repo(1);
    assert_eq!(patchops(repo.path(), &["apply", "--path", "fleet", "--auto-approve"]).code, 0);
    // Where the credentials are: record what the platform holds.
    let recording = tempfile::tempdir().unwrap();
    let rec = recording.path().to_str().unwrap();
    let run = patchops(repo.path(), &["inventory", "record", "--path", "fleet", "--out", rec]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    common::assert_contains(&run.stdout, "recorded intune-prod: 1 object(s), 1 managed by patchops → ");
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(recording.path().join("intune-prod.json")).unwrap()).unwrap();
    assert_eq!(recorded["objects"].as_array().unwrap().len(), 1, "{recorded:#}");

    // The fleet points at the real Graph with a certificate this CI job does not have.
    repo.write(
        "fleet/platforms.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: intune-prod\nspec:\n  type: intune\n  endpoint: https://graph.microsoft.invalid\n  auth:\n    tenantId: 00000000-0000-0000-0000-000000000001\n    clientId: 00000000-0000-0000-0000-0000000000aa\n    certificate: { file: /nonexistent/patchops-test/intune-app.pem }\n",
    );
    repo.write(
        "fleet/products/tool.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: tool\nspec:\n  product: vendor.tool\n  targets:\n    - platform: intune-prod\n",
    );
    repo.commit("the real tenant, and a new product");
    let run = patchops(repo.path(), &["plan", "--path", "fleet"]);
    assert_eq!(run.code, 1, "without the recording the platform must be reached: {}", run.stdout);

    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--inventory", rec]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    common::assert_contains(
        &run.stdout,
        "tool vendor.tool (products/tool.yaml:1)\n  + publish     intune-prod / pilot [sg-pilot]  3.1",
    );
    // The recording holds the app on the pilot ring: only its broad ring is left.
    assert!(!run.stdout.contains("intune-prod / pilot [sg-pilot]  2.0"), "{}", run.stdout);
    common::assert_contains(&run.stdout, "+ publish     intune-prod / broad [sg-broad]  2.0");
    let run = patchops(
        repo.path(),
        &["plan", "--path", "fleet", "--inventory", rec, "--base", "main~1", "--format", "markdown"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    common::assert_contains(&run.stdout, "| 🟢 publish | `tool` | `intune-prod` | pilot | 3.1 |");

    // A platform with no recording is an error that says how to make one.
    let empty = tempfile::tempdir().unwrap();
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--inventory", empty.path().to_str().unwrap()]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "there is no recorded inventory at ");
    common::assert_contains(&run.stderr, "`patchops inventory record --platform intune-prod --out DIR`");
    // And a recording cannot be applied.
    let run = patchops(repo.path(), &["inventory", "record", "--path", "fleet", "--platform", "nope"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "the fleet has no Platform `nope`; it has intune-prod");
}

// Item 6: `plan --emulate` — the head's plan applied to emulators seeded from the recording,
// reporting what an emulator refuses and what plain `plan` cannot see.
#[test]
fn plan_emulate_applies_the_head_to_emulators_seeded_from_the_recording() {
    let (repo, _k) = fleet_repo(1);
    assert_eq!(patchops(repo.path(), &["apply", "--path", "fleet", "--auto-approve"]).code, 0);
    let first = tempfile::tempdir().unwrap();
    let run =
        patchops(repo.path(), &["inventory", "record", "--path", "fleet", "--out", first.path().to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(first.path().join("intune-prod.json")).unwrap()).unwrap();
    let ours = recorded["objects"][0]["id"].as_str().unwrap().to_string();

    // In the tenant, someone packaged an app by hand that supersedes ours (through Graph, on
    // the embedded tenant's own state, served on its own).
    let tenant = repo.path().join(".patchops/emulate/intune-prod.json");
    let (emulator, apps) = serve_tenant(&tenant);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let http = reqwest::Client::new();
        hand_packaged(&http, &apps, "App (packaged by hand)", "replace", &ours).await;
    });
    drop(emulator);

    // Where the credentials are: record it (the platform's own documents beside the objects).
    let recording = tempfile::tempdir().unwrap();
    let rec = recording.path().to_str().unwrap();
    let run = patchops(repo.path(), &["inventory", "record", "--path", "fleet", "--out", rec]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    common::assert_contains(&run.stdout, "recorded intune-prod: 2 object(s), 1 managed by patchops");
    assert!(recording.path().join("intune-prod.documents.json").is_file());
    let before = std::fs::read(&tenant).unwrap();
    let history = || {
        let run = patchops(repo.path(), &["history", "--format", "json"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.stdout
    };
    let history_before = history();

    // A pull request adds a product: the dry run publishes it to the seeded tenant — content
    // upload, commit and assignment, through the real client — and it goes through.
    repo.write(
        "fleet/products/tool.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: tool\nspec:\n  product: vendor.tool\n  targets:\n    - platform: intune-prod\n",
    );
    repo.commit("a new product");
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--inventory", rec, "--emulate"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    common::assert_contains(
        &run.stdout,
        &format!("Dry run on emulators seeded from {rec} (plan --emulate; nothing applied):"),
    );
    common::assert_contains(&run.stdout, "  intune-prod (intune): 2 object(s) seeded, observed as recorded\n");
    common::assert_contains(&run.stdout, "  ✓ publish     tool → intune-prod / pilot  3.1\n");
    // (and the broad ring's assignment of `app`, pending on the base: this rollout has no soak)
    common::assert_contains(&run.stdout, "  ✓ publish     app → intune-prod / broad  2.0\n");
    common::assert_contains(&run.stdout, "2 of 2 action(s) went through, 0 refused.");

    // The next commit of the pull request retires `app`. The plan shows a retire, and plain
    // `plan` cannot know that the tenant refuses it; the dry run says so, and exits 1.
    std::fs::remove_file(repo.path().join("fleet/products/app.yaml")).unwrap();
    repo.commit("retire app");
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--inventory", rec]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    common::assert_contains(&run.stdout, "- retire      intune-prod / pilot [sg-pilot]");
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--inventory", rec, "--emulate"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    common::assert_contains(&run.stdout, "  ✗ retire      vendor.app → intune-prod / pilot\n      refused: platform `intune-prod`: deleting the app was refused (409): app ");
    common::assert_contains(&run.stdout, "which patchops does not manage, references app");
    common::assert_contains(&run.stdout, "  ✓ publish     tool → intune-prod / pilot  3.1\n");
    common::assert_contains(&run.stdout, "1 of 2 action(s) went through, 1 refused.");
    let run =
        patchops(repo.path(), &["plan", "--path", "fleet", "--inventory", rec, "--emulate", "--format", "markdown"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stdout, "### Dry run on emulators (`plan --emulate`)");
    common::assert_contains(&run.stdout, "**1 of 2 action(s) went through, 1 refused**");
    common::assert_contains(&run.stdout, "| 🔴 | `retire      vendor.app → intune-prod / pilot` |");

    // JSON: the plan with its `emulated` member, valid against the plan's schema; and the
    // pull-request view with it.
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--inventory", rec, "--emulate", "--format", "json"]);
    assert_eq!(run.code, 1);
    common::assert_matches_schema(&run.stdout, "plan.schema.json");
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let dry = &doc["emulated"];
    assert_eq!(
        dry["summary"],
        serde_json::json!({"actions": 2, "succeeded": 1, "refused": 1, "denied": 0, "differ": 0}),
        "{dry:#}"
    );
    assert_eq!(dry["platforms"][0]["seeded"], 2);
    let retire = dry["actions"].as_array().unwrap().iter().find(|a| a["action"] == "retire").unwrap();
    assert_eq!(retire["outcome"], "refused");
    assert!(retire["message"].as_str().unwrap().contains("which patchops does not manage"), "{retire:#}");
    let run = patchops(
        repo.path(),
        &["plan", "--path", "fleet", "--inventory", rec, "--emulate", "--base", "main~1", "--format", "json"],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    common::assert_matches_schema(&run.stdout, "plan-change.schema.json");
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["emulated"]["summary"]["refused"], 1, "{doc:#}");
    // A saved plan never holds a dry run.
    let saved = repo.path().join("saved-plan.json");
    let run = patchops(
        repo.path(),
        &["plan", "--path", "fleet", "--inventory", rec, "--emulate", "--out", saved.to_str().unwrap()],
    );
    assert_eq!(run.code, 1);
    assert!(!std::fs::read_to_string(&saved).unwrap().contains("\"emulated\""));

    // Nothing was applied or recorded: the tenant is as it was, and so is the history.
    assert_eq!(std::fs::read(&tenant).unwrap(), before, "the dry run changed the real (embedded) tenant");
    assert_eq!(history(), history_before, "the dry run recorded history");

    // A damaged recording is named.
    std::fs::write(recording.path().join("intune-prod.documents.json"), "{\"mobileApps\": [").unwrap();
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--inventory", rec, "--emulate"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "intune-prod.documents.json is corrupt");
    std::fs::write(recording.path().join("intune-prod.documents.json"), "{\"updates\": []}").unwrap();
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--inventory", rec, "--emulate"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "intune-prod.documents.json: the recorded documents have no mobileApps list");
    // A recording without the documents (an older patchops made it) says how to make one.
    std::fs::remove_file(recording.path().join("intune-prod.documents.json")).unwrap();
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--inventory", rec, "--emulate"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "has no documents to seed an emulator with");
    common::assert_contains(&run.stderr, &format!("patchops inventory record --platform intune-prod --out {rec}"));
    // And it needs a recording to seed from.
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--emulate"]);
    assert_ne!(run.code, 0);
    common::assert_contains(&run.stderr, "--inventory");
}

// Item 6: an emulator's own check refuses what the plan cannot judge — Intune's limit of ten
// apps in a supersedence graph, with nine apps packaged by hand already in ours.
#[test]
fn plan_emulate_reports_what_graph_refuses_an_update_that_overfills_a_supersedence_graph() {
    let (repo, _k) = fleet_repo(1);
    let app = "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: app\nspec:\n  product: vendor.app\n  version: \"1.0\"\n  targets:\n    - platform: intune-prod\n";
    repo.write("fleet/products/app.yaml", app);
    repo.commit("app 1.0");
    assert_eq!(patchops(repo.path(), &["apply", "--path", "fleet", "--auto-approve"]).code, 0);
    let recording = tempfile::tempdir().unwrap();
    let rec = recording.path().to_str().unwrap();
    let run = patchops(repo.path(), &["inventory", "record", "--path", "fleet", "--out", rec]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(recording.path().join("intune-prod.json")).unwrap()).unwrap();
    let ours = recorded["objects"][0]["id"].as_str().unwrap().to_string();

    // Nine apps packaged by hand each supersede ours: the graph holds ten apps, Intune's most.
    let tenant = repo.path().join(".patchops/emulate/intune-prod.json");
    let (emulator, apps) = serve_tenant(&tenant);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let http = reqwest::Client::new();
        for n in 1..=9 {
            hand_packaged(&http, &apps, &format!("Packaged by hand {n}"), "update", &ours).await;
        }
    });
    drop(emulator);
    let run = patchops(repo.path(), &["inventory", "record", "--path", "fleet", "--out", rec]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    // The pull request moves app to 2.0: an update that supersedes 1.0, an eleventh app.
    repo.write("fleet/products/app.yaml", app.replace("\"1.0\"", "\"2.0\""));
    repo.commit("app 2.0");
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--inventory", rec]);
    assert_eq!(run.code, 0, "plain plan cannot know: {}", run.stderr);
    common::assert_contains(&run.stdout, "~ update      intune-prod / pilot [sg-pilot]  2.0\n");
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--inventory", rec, "--emulate"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    common::assert_contains(&run.stdout, "  intune-prod (intune): 10 object(s) seeded, observed as recorded\n");
    common::assert_contains(&run.stdout, "  ✗ update      app → intune-prod / pilot  2.0\n");
    common::assert_contains(
        &run.stdout,
        "A supersedence graph can hold at most 10 apps; these relationships would connect 11.",
    );
}

/// Serves the tenant state file `state` with `patchops emulate intune` (no app registration:
/// Graph needs no token), until the guard is dropped; returns the mobileApps URL.
fn serve_tenant(state: &std::path::Path) -> (Served, String) {
    use std::io::BufRead;
    let mut emulator = std::process::Command::new(env!("CARGO_BIN_EXE_patchops"))
        .args(["emulate", "intune", "--listen", "127.0.0.1:0", "--state"])
        .arg(state)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(emulator.stderr.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().trim_end_matches('/').to_string();
    (Served(emulator), format!("{url}/beta/deviceAppManagement/mobileApps"))
}

struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An app packaged by hand (no patchops marker) that supersedes `target` (`kind`: `update` or
/// `replace`), made through Graph at `apps`.
async fn hand_packaged(http: &reqwest::Client, apps: &str, name: &str, kind: &str, target: &str) {
    let hand: serde_json::Value = http
        .post(apps)
        .json(&serde_json::json!({
            "@odata.type": "#microsoft.graph.win32LobApp",
            "displayName": name, "publisher": "p", "fileName": "x.intunewin",
            "setupFilePath": "x.msi", "installCommandLine": "msiexec /i x.msi /qn",
            "rules": [{"@odata.type": "#microsoft.graph.win32LobAppProductCodeRule", "ruleType": "detection", "productCode": "{1}"}],
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hand = hand["id"].as_str().unwrap();
    let status = http
        .post(format!("{apps}/{hand}/updateRelationships"))
        .json(&serde_json::json!({"relationships": [{"@odata.type": "#microsoft.graph.mobileAppSupersedence", "supersedenceType": kind, "targetId": target}]}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204, "{name}");
}
