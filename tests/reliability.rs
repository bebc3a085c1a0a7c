//! Issue 14, "fail closed, converge after any crash": one regression test per numbered item,
//! through the real binary on real git repositories and the embedded emulators. Each test
//! failed on the code before its fix.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use std::path::Path;

use common::{fleet_repo, patchops, tenant_apps as apps, v, Run};
use serde_json::Value;

fn apply(dir: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["apply", "--path", "fleet", "--auto-approve"];
    args.extend_from_slice(extra);
    patchops(dir, &args)
}

/// The test fleet with a 48-hour soak after the pilot ring.
fn soaking_fleet() -> (common::Repo, common::Key) {
    let (repo, key) = fleet_repo(1);
    repo.write(
        "fleet/rollout.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: standard\nspec:\n  rings:\n    - name: pilot\n      soak: 48h\n      groups:\n        - { platform: intune-prod, group: { name: sg-pilot } }\n    - name: broad\n      groups:\n        - { platform: intune-prod, group: { name: sg-broad } }\n",
    );
    repo.commit("pilot soaks for two days");
    (repo, key)
}

fn sql(dir: &Path, statement: &str) {
    let conn = rusqlite::Connection::open(dir.join(".patchops/state.db")).unwrap();
    conn.execute_batch(statement).unwrap();
}

// Item 1: a ring whose previous ring's history record is missing waits the full soak.
#[test]
fn a_lost_ring_history_record_makes_the_next_ring_wait_instead_of_skipping_its_soak() {
    let (repo, _k) = soaking_fleet();
    let first = apply(repo.path(), &[]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    assert_eq!(apps(repo.path()), vec![v("2.0", &["sg-pilot"])]);

    // As after a crash between the platform change and the history write, or a lost or fresh
    // state directory: the pilot ring runs 2.0 and nothing says since when.
    sql(repo.path(), "DELETE FROM ring_reached");
    let plan = patchops(repo.path(), &["plan", "--path", "fleet"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    common::assert_contains(
        &plan.stdout,
        "waiting: RingSoaking: there is no record of when ring pilot got 2.0; its soak counts from now",
    );

    let second = apply(repo.path(), &[]);
    assert_eq!(second.code, 0, "{}\n{}", second.stdout, second.stderr);
    common::assert_contains(&second.stdout, "waiting: RingSoaking: ring pilot has run 2.0 since ");
    common::assert_contains(&second.stdout, "Nothing to apply.");
    assert_eq!(apps(repo.path()), vec![v("2.0", &["sg-pilot"])], "the broad ring did not skip its soak");

    // apply recorded when it first saw the pilot ring run 2.0: the soak ends 48 hours from
    // then, not at once and not at a moving time.
    let conn = rusqlite::Connection::open(repo.path().join(".patchops/state.db")).unwrap();
    let reached: String = conn
        .query_row("SELECT reached_at FROM ring_reached WHERE ring = 'pilot' AND version = '2.0'", [], |r| r.get(0))
        .unwrap();
    let reached = chrono::DateTime::parse_from_rfc3339(&reached).unwrap();
    let age = chrono::Utc::now().signed_duration_since(reached);
    assert!(age >= chrono::Duration::zero() && age < chrono::Duration::minutes(10), "recorded now: {reached}");
    // Once that record is older than the soak, the broad ring goes.
    sql(repo.path(), "UPDATE ring_reached SET reached_at = '2020-01-01T00:00:00.000Z'");
    let third = apply(repo.path(), &[]);
    assert_eq!(third.code, 0, "{}\n{}", third.stdout, third.stderr);
    common::assert_contains(&third.stdout, "✓ publish app 2.0 on intune-prod / broad");
}

// Item 1, the same evidence rule for a fresh state directory (a new CI runner).
#[test]
fn a_fresh_state_directory_does_not_release_the_next_ring_of_what_the_platform_already_runs() {
    let (repo, _k) = soaking_fleet();
    assert_eq!(apply(repo.path(), &[]).code, 0);
    // The emulated tenant is kept; patchops's own records are lost.
    for f in ["state.db", "state.db-wal", "state.db-shm"] {
        let _ = std::fs::remove_file(repo.path().join(".patchops").join(f));
    }
    let run = apply(repo.path(), &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    common::assert_contains(&run.stdout, "waiting: RingSoaking: ring pilot has run 2.0 since ");
    assert_eq!(apps(repo.path()), vec![v("2.0", &["sg-pilot"])]);
}

fn edit_plan(dir: &Path, edit: impl FnOnce(&mut Value)) {
    let path = dir.join("plan.json");
    let mut plan: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut plan);
    std::fs::write(&path, serde_json::to_vec_pretty(&plan).unwrap()).unwrap();
}

// Item 2: a hand-edited plan is refused, not trusted.
#[test]
fn a_saved_plan_whose_group_was_edited_is_refused_as_tampered_and_nothing_is_sent() {
    let (repo, _k) = fleet_repo(1);
    let plan = patchops(repo.path(), &["plan", "--path", "fleet", "--out", "plan.json"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    edit_plan(repo.path(), |p| {
        let a = p["actions"].as_array_mut().unwrap().iter_mut().find(|a| a["ring"] == "pilot").unwrap();
        a["group"] = "sg-everyone".into();
    });
    let run = apply(repo.path(), &["plan.json"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    common::assert_contains(&run.stderr, "the saved plan does not match what its own inputs give");
    common::assert_contains(
        &run.stderr,
        "the plan file has `publish app 2.0 on intune-prod / pilot (group sg-pilot, id sg-everyone)`, which its inputs do not give",
    );
    common::assert_contains(
        &run.stderr,
        "its inputs give `publish app 2.0 on intune-prod / pilot (group sg-pilot, id ",
    );
    assert_eq!(apps(repo.path()), vec![], "nothing reached the platform");
}

#[test]
fn a_saved_plan_whose_version_was_edited_is_refused_and_an_unedited_one_applies_what_it_says() {
    let (repo, _k) = fleet_repo(1);
    assert_eq!(patchops(repo.path(), &["plan", "--path", "fleet", "--out", "plan.json"]).code, 0);
    let pristine = std::fs::read(repo.path().join("plan.json")).unwrap();
    edit_plan(repo.path(), |p| {
        for a in p["actions"].as_array_mut().unwrap() {
            a["version"] = "1.0".into();
        }
    });
    let run = apply(repo.path(), &["plan.json"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "`publish app 1.0 on intune-prod / pilot (group sg-pilot, id ");
    assert_eq!(apps(repo.path()), vec![]);
    // Removing a waiting action is an edit too.
    edit_plan(repo.path(), |p| {
        *p = serde_json::from_slice(&pristine).unwrap();
        p["actions"].as_array_mut().unwrap().retain(|a| a["ring"] != "broad");
    });
    let run = apply(repo.path(), &["plan.json"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "which the plan file lacks");

    std::fs::write(repo.path().join("plan.json"), &pristine).unwrap();
    let run = apply(repo.path(), &["plan.json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(apps(repo.path()), vec![v("2.0", &["sg-pilot"])]);
    // The audit records what was sent.
    let history = patchops(repo.path(), &["history"]);
    common::assert_contains(&history.stdout, "succeeded publish app 2.0 on intune-prod / pilot");
}

// Item 6: a run whose actions merely failed is not reported as interrupted by the next one.
#[test]
fn after_a_run_with_failed_actions_the_next_run_does_not_call_it_interrupted() {
    let (repo, _k) = fleet_repo(1);
    repo.write("catalog/installers/vendor.app-2.0.msi", b"not the installer the catalog describes");
    repo.commit("the installer is broken");
    let failed = apply(repo.path(), &[]);
    assert_eq!(failed.code, 1, "{}\n{}", failed.stdout, failed.stderr);
    common::assert_contains(&failed.stdout, "✗ publish app 2.0 on intune-prod / pilot: ");
    let next = apply(repo.path(), &[]);
    assert!(!next.stderr.contains("interrupted"), "{}", next.stderr);
    let conn = rusqlite::Connection::open(repo.path().join(".patchops/state.db")).unwrap();
    let open: i64 = conn.query_row("SELECT count(*) FROM journal WHERE finished_at IS NULL", [], |r| r.get(0)).unwrap();
    assert_eq!(open, 0, "every journal entry of a finished run is closed");
    let failed_rows: i64 =
        conn.query_row("SELECT count(*) FROM journal WHERE outcome = 'failed'", [], |r| r.get(0)).unwrap();
    assert!(failed_rows >= 1, "the failure is journaled as such");
}

/// The test fleet on embedded WSUS and ConfigMgr platforms (signed scripts, Basic auth), with
/// `vendor.app` pinned at `version`; the certificates and password live in `secrets`.
fn onprem_fleet(version: &str) -> (common::Repo, common::Key, tempfile::TempDir) {
    let (repo, key) = fleet_repo(1);
    let secrets = tempfile::tempdir().unwrap();
    repo.write("fleet/platforms.yaml", common::onprem_platforms(secrets.path()));
    repo.write(
        "fleet/rollout.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: standard\nspec:\n  rings:\n    - name: pilot\n      groups:\n        - { platform: wsus-onprem, group: Pilot }\n        - { platform: cm-onprem, group: PO100012 }\n",
    );
    repo.write("fleet/products/app.yaml", onprem_product(version));
    repo.commit("vendor.app on WSUS and ConfigMgr");
    (repo, key, secrets)
}

fn onprem_product(version: &str) -> String {
    format!(
        "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: app\nspec:\n  product: vendor.app\n  version: \"{version}\"\n  targets:\n    - platform: wsus-onprem\n    - platform: cm-onprem\n"
    )
}

fn emulated(dir: &Path, platform: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join(format!(".patchops/emulate/{platform}.json"))).unwrap()).unwrap()
}

// Item 4: rolling back to an earlier version (A → B → A) converges on every platform.
#[test]
fn rolling_back_a_to_b_to_a_converges_on_configmgr_and_wsus() {
    let (repo, _k, _secrets) = onprem_fleet("1.0");
    for (version, step) in [("1.0", "publish"), ("2.0", "update"), ("1.0", "update")] {
        repo.write("fleet/products/app.yaml", onprem_product(version));
        repo.commit(&format!("pin {version}"));
        let run = apply(repo.path(), &[]);
        assert_eq!(run.code, 0, "{version}: {}\n{}", run.stdout, run.stderr);
        common::assert_contains(&run.stdout, &format!("✓ {step} app {version} on cm-onprem / pilot"));
        common::assert_contains(&run.stdout, &format!("✓ {step} app {version} on wsus-onprem / pilot"));
        // And every later run converges: nothing left to do, no error.
        let again = apply(repo.path(), &[]);
        assert_eq!(again.code, 0, "{version}, second run: {}\n{}", again.stdout, again.stderr);
        common::assert_contains(&again.stdout, "Nothing to apply.");
    }
    // ConfigMgr: the rolled-back application is the first one, reinstated; 2.0 is kept, not
    // expired (retention 1), to go forward to again.
    let cm_apps = |dir: &Path| {
        let cm = emulated(dir, "cm-onprem");
        let mut apps: Vec<(String, bool)> = cm["apps"]
            .as_object()
            .unwrap()
            .values()
            .map(|a| (a["version"].as_str().unwrap().to_string(), a["expired"].as_bool().unwrap()))
            .collect();
        apps.sort();
        apps
    };
    assert_eq!(
        cm_apps(repo.path()),
        vec![("1.0".to_string(), false), ("2.0".to_string(), false)],
        "no second 1.0 application"
    );

    // With no version kept, 2.0 is retired: undeployed and expired.
    let platforms = std::fs::read_to_string(repo.path().join("fleet/platforms.yaml")).unwrap();
    let keep_none = platforms.replace("  type: configmgr\n", "  type: configmgr\n  retention: { keepVersions: 0 }\n");
    assert_ne!(keep_none, platforms);
    repo.write("fleet/platforms.yaml", keep_none);
    repo.commit("keep no superseded version");
    let run = apply(repo.path(), &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(cm_apps(repo.path()), vec![("1.0".to_string(), false), ("2.0".to_string(), true)]);
}

/// Runs apply with the fail point `point` armed; the process must abort there.
fn crash_at(dir: &Path, point: &str) {
    let out = common::patchops_at_failpoint(dir, &["apply", "--path", "fleet", "--auto-approve"], point);
    assert!(!out.status.success(), "{point}: the process was aborted");
    common::assert_contains(&String::from_utf8_lossy(&out.stderr), &format!("fail point {point}"));
}

fn publishing_states(dir: &Path) -> Vec<String> {
    let t: Value =
        serde_json::from_slice(&std::fs::read(dir.join(".patchops/emulate/intune-prod.json")).unwrap()).unwrap();
    let mut out: Vec<String> = t["apps"]
        .as_object()
        .unwrap()
        .values()
        .map(|a| a["publishingState"].as_str().unwrap_or_default().to_string())
        .collect();
    out.sort();
    out
}

// Item 3: an Intune app left `notPublished` by a run killed before its content was committed
// is replaced by the next run, which then converges.
#[test]
fn an_intune_app_left_unpublished_by_a_killed_run_is_replaced_and_the_fleet_converges() {
    for point in ["intune-before-commit", "intune-before-content-version"] {
        let (repo, _k) = fleet_repo(1);
        crash_at(repo.path(), point);
        assert_eq!(publishing_states(repo.path()), vec!["notPublished"], "{point}: a half-published app is left");

        let plan = patchops(repo.path(), &["plan", "--path", "fleet"]);
        common::assert_contains(
            &plan.stdout,
            "was left half-made by an earlier run (its content was never committed (publishingState notPublished))",
        );
        let run = apply(repo.path(), &[]);
        assert_eq!(run.code, 0, "{point}: {}\n{}", run.stdout, run.stderr);
        common::assert_contains(&run.stdout, "✓ publish app 2.0 on intune-prod / pilot");
        common::assert_contains(&run.stdout, "✓ retire app on intune-prod (object ");
        assert_eq!(apps(repo.path()), vec![v("2.0", &["sg-pilot"])], "{point}: the half-made app is gone");
        let run = apply(repo.path(), &[]);
        assert_eq!(run.code, 0, "{point}: {}\n{}", run.stdout, run.stderr);
        let done = apply(repo.path(), &[]);
        common::assert_contains(&done.stdout, "Nothing to apply.");
        assert_eq!(apps(repo.path()), vec![v("2.0", &["sg-broad", "sg-pilot"])], "{point}: exactly one app");
        assert_eq!(publishing_states(repo.path()), vec!["published"]);
    }
}

/// Every file under `dir` with a path component (below `dir`) starting with `prefix`.
fn leftovers(dir: &Path, prefix: &str) -> Vec<std::path::PathBuf> {
    common::walk(dir)
        .into_iter()
        .filter(|p| {
            p.strip_prefix(dir)
                .is_ok_and(|r| r.components().any(|c| c.as_os_str().to_string_lossy().starts_with(prefix)))
        })
        .collect()
}

// Item 5: what a killed run leaves (staging folders, half-signed CABs, partial downloads) is
// cleaned up, and never blocks a package.
#[test]
fn leftovers_of_killed_runs_are_cleaned_up_and_block_nothing() {
    let (repo, _k, _secrets) = onprem_fleet("1.0");
    let emulate = repo.path().join(".patchops/emulate");
    // Killed after staging a WSUS request: its staging folder is left on the server.
    crash_at(repo.path(), "wsus-after-stage");
    let staging = emulate.join("wsus-onprem.staging");
    assert!(std::fs::read_dir(&staging).unwrap().next().is_some(), "a staging folder is left");
    // Killed while the server was making a CAB: the half-made CAB is left.
    crash_at(repo.path(), "wsus-server-signing");
    assert!(!leftovers(&emulate.join("wsus-onprem.content"), ".signing-").is_empty(), "a half-made CAB is left");
    // A killed download leaves its partial file (here 1 MiB of it), a killed emulator its
    // half-written state. Another file's write in progress is not the emulator's to remove.
    let partial = repo.path().join(".patchops/content/sha256/.partial-killed");
    std::fs::write(&partial, vec![0u8; 1 << 20]).unwrap();
    let half_written = emulate.join(".patchops-tmp-wsus-onprem.json.killed");
    std::fs::write(&half_written, b"{\"updates\":").unwrap();
    let not_its_own = emulate.join(".patchops-tmp-intune-other.json.writing");
    std::fs::write(&not_its_own, b"{\"apps\":").unwrap();

    let run = apply(repo.path(), &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    common::assert_contains(&run.stdout, "✓ publish app 1.0 on wsus-onprem / pilot");
    assert!(!partial.exists(), "the partial download is removed");
    assert!(!half_written.exists(), "the half-written emulator state is removed");
    assert!(not_its_own.exists(), "another file's temporary file is left alone");
    assert_eq!(leftovers(&emulate, ".signing-"), Vec::<std::path::PathBuf>::new());
    assert!(std::fs::read_dir(&staging).map_or(true, |mut d| d.next().is_none()), "no staging folder is left");
    let wsus = emulated(repo.path(), "wsus-onprem");
    assert_eq!(wsus["updates"].as_object().unwrap().len(), 1, "one update, published once");
}

// Item 12: `package unpack` never writes through a link already in `--out`.
#[test]
fn package_unpack_replaces_a_link_in_out_instead_of_writing_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let msi = common::workspace_root().join("examples/catalog/installers/igorpavlov.7zip-24.08-x64.msi");
    assert_eq!(patchops(d, &["package", "intunewin", msi.to_str().unwrap(), "--out", "p.intunewin"]).code, 0);
    std::fs::create_dir_all(d.join("out")).unwrap();
    std::fs::write(d.join("outside.txt"), "keep me").unwrap();
    std::os::unix::fs::symlink("../outside.txt", d.join("out/igorpavlov.7zip-24.08-x64.msi")).unwrap();

    let run = patchops(d, &["package", "unpack", "p.intunewin", "--out", "out"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(d.join("outside.txt")).unwrap(), "keep me", "the link's target is untouched");
    let written = d.join("out/igorpavlov.7zip-24.08-x64.msi");
    assert!(std::fs::symlink_metadata(&written).unwrap().file_type().is_file(), "the link was replaced by the file");
    assert_eq!(std::fs::read(&written).unwrap(), std::fs::read(&msi).unwrap());
    let names: Vec<String> = std::fs::read_dir(d.join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["igorpavlov.7zip-24.08-x64.msi".to_string()], "no temporary file is left");
}

// Item 15: one bad field in a Platform or Rollout is one error, not a cascade.
#[test]
fn one_bad_field_in_a_platform_or_rollout_is_reported_once_without_its_consequences() {
    let (repo, _k) = fleet_repo(1);
    repo.write(
        "fleet/platforms.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: intune-prod\nspec:\n  type: intune\n  endpoint: embedded\n  concurrency: many\n",
    );
    repo.commit("a bad field");
    let run = patchops(repo.path(), &["validate", "--path", "fleet"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "platforms.yaml:8:");
    common::assert_contains(&run.stderr, "concurrency");
    assert!(!run.stderr.contains("is not defined"), "no consequence is reported:\n{}", run.stderr);
    common::assert_contains(&run.stderr, "the fleet has 1 error");

    repo.write(
        "fleet/rollout.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: standard\nspec:\n  rings:\n    - name: pilot\n      soak: forever\n      groups:\n        - { platform: intune-prod, group: { name: sg-pilot } }\n",
    );
    repo.commit("and a bad rollout");
    let run = patchops(repo.path(), &["validate", "--path", "fleet"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "invalid duration \"forever\"");
    assert!(!run.stderr.contains("is not defined") && !run.stderr.contains("is needed because"), "{}", run.stderr);
    common::assert_contains(&run.stderr, "the fleet has 2 errors");
}

// Item 1, what the platforms themselves record: WSUS approvals and ConfigMgr deployments carry
// when they were made, and that time stands in for a lost ring history record.
#[test]
fn a_lost_ring_history_record_is_derived_from_the_platforms_own_records_where_they_keep_them() {
    let (repo, _k, _secrets) = onprem_fleet("1.0");
    repo.write(
        "fleet/rollout.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: standard\nspec:\n  rings:\n    - name: pilot\n      soak: 48h\n      groups:\n        - { platform: wsus-onprem, group: Pilot }\n        - { platform: cm-onprem, group: PO100012 }\n    - name: broad\n      groups:\n        - { platform: wsus-onprem, group: Broad }\n        - { platform: cm-onprem, group: PO100013 }\n",
    );
    repo.commit("two rings, two days apart");
    let first = apply(repo.path(), &[]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    common::assert_contains(&first.stdout, "✓ publish app 1.0 on wsus-onprem / pilot");

    // Recent platform records, no history: the broad ring waits the soak from then.
    sql(repo.path(), "DELETE FROM ring_reached");
    let run = apply(repo.path(), &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    common::assert_contains(&run.stdout, "Nothing to apply.");

    // The platforms say the pilot ring got 1.0 three days ago: the soak is over.
    sql(repo.path(), "DELETE FROM ring_reached");
    let three_days_ago =
        (chrono::Utc::now() - chrono::Duration::days(3)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let edit = |platform: &str, f: &dyn Fn(&mut Value)| {
        let path = repo.path().join(format!(".patchops/emulate/{platform}.json"));
        let mut state: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        f(&mut state);
        std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
    };
    edit("wsus-onprem", &|s| {
        for u in s["updates"].as_object_mut().unwrap().values_mut() {
            for a in u["approvals"].as_array_mut().unwrap() {
                a["created"] = three_days_ago.clone().into();
            }
        }
    });
    edit("cm-onprem", &|s| {
        for d in s["assignments"].as_object_mut().unwrap().values_mut() {
            d["StartTime"] = three_days_ago.clone().into();
        }
    });
    let run = apply(repo.path(), &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    common::assert_contains(&run.stdout, "✓ publish app 1.0 on wsus-onprem / broad");
    common::assert_contains(&run.stdout, "✓ publish app 1.0 on cm-onprem / broad");
}

// Item 13: one rule for links in every mode: a fleet document that is a symbolic link is not
// read, and the user is told, whether the fleet comes from a commit or from the work tree.
#[test]
fn a_fleet_document_that_is_a_link_is_skipped_with_a_warning_in_git_and_worktree_modes() {
    let (repo, _k) = fleet_repo(1);
    std::os::unix::fs::symlink("app.yaml", repo.path().join("fleet/products/link.yaml")).unwrap();
    repo.commit("a link to a product");
    for extra in [&[][..], &["--worktree"]] {
        let mut args = vec!["validate", "--path", "fleet"];
        args.extend_from_slice(extra);
        let run = patchops(repo.path(), &args);
        assert_eq!(run.code, 0, "{extra:?}: {}", run.stderr);
        common::assert_contains(
            &run.stderr,
            "products/link.yaml is a symbolic link; it is not read as a fleet document",
        );
    }
}
