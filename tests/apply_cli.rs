//! `patchops apply`, `status` and `history` end to end: real git repositories, real signed
//! catalogs and installers, the real binary, and the embedded Intune emulator on loopback, whose
//! persisted state is read back to check what reached the platform.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use std::path::Path;
use std::process::Command;

use common::{fleet_repo, patchops, tenant, tenant_apps as apps, v, Run};
use serde_json::{json, Value};

fn apply(dir: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["apply", "--path", "fleet", "--auto-approve"];
    args.extend_from_slice(extra);
    patchops(dir, &args)
}

#[test]
fn apply_publishes_ring_by_ring_and_a_second_run_changes_nothing() {
    let (repo, _k) = fleet_repo(1);
    let first = apply(repo.path(), &[]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    common::assert_contains(&first.stdout, "✓ publish app 2.0 on intune-prod / pilot (object ");
    common::assert_contains(&first.stdout, "waiting: PreviousRingPending: ring pilot gets 2.0 first");
    common::assert_contains(&first.stdout, "Apply complete: 1 succeeded, 0 failed, 1 waiting for a later run.");
    // Not a terminal: one quiet line per verified download instead of a progress bar.
    common::assert_contains(
        &first.stderr,
        "verified catalog/installers/vendor.app-2.0.msi (9728 bytes, SHA-256 and size match the catalog) in ",
    );
    assert_eq!(apps(repo.path()), vec![v("2.0", &["sg-pilot"])]);

    // The pilot ring has no soak time: the next run takes the broad ring.
    let second = apply(repo.path(), &[]);
    assert_eq!(second.code, 0, "{}\n{}", second.stdout, second.stderr);
    common::assert_contains(&second.stdout, "✓ publish app 2.0 on intune-prod / broad");
    assert_eq!(apps(repo.path()), vec![v("2.0", &["sg-broad", "sg-pilot"])], "one app, both rings");

    let third = apply(repo.path(), &[]);
    assert_eq!(third.code, 0);
    common::assert_contains(&third.stdout, "No changes: 2 deployments match the fleet.");
    common::assert_contains(&third.stdout, "Nothing to apply.");
    let plan = patchops(repo.path(), &["plan", "--path", "fleet", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.stdout);

    // The app carries patchops's marker with the commit and the content digest.
    let t = tenant(repo.path());
    let app = t["apps"].as_object().unwrap().values().next().unwrap().clone();
    let head = common::git(repo.path(), &["rev-parse", "HEAD"]);
    common::assert_contains(app["notes"].as_str().unwrap(), &format!("\"commit\":\"{head}\""));
    assert_eq!(app["@odata.type"], "#microsoft.graph.win32LobApp");
    assert_eq!(app["rules"][0]["@odata.type"], "#microsoft.graph.win32LobAppProductCodeRule");
    // Detection compares what Windows Installer reports: the MSI's own ProductVersion (131.0.2
    // for this package), not the catalog's 2.0 (issue 13, item 4).
    let own = common::msi_property(&common::installer_bytes("vendor.app", "2.0"), "ProductVersion");
    assert_eq!(own, "131.0.2");
    assert_eq!(app["rules"][0]["productVersion"], own.as_str());
    assert_eq!(app["rules"][0]["productVersionOperator"], "greaterThanOrEqual");
    assert_eq!(app["msiInformation"]["productVersion"], own.as_str());
    assert_eq!(app["displayVersion"], "2.0", "what people see stays the catalog's version");

    // Status and history tell what is published and why.
    let status = patchops(repo.path(), &["status", "--path", "fleet"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    common::assert_contains(
        &status.stdout,
        &format!(
            "app                  intune-prod      2.0              sg-broad,sg-pilot          {}  publish succeeded ",
            &head[..12]
        ),
    );
    let history = patchops(repo.path(), &["history"]);
    common::assert_contains(&history.stdout, "succeeded publish app 2.0 on intune-prod / broad");
    common::assert_contains(&history.stdout, &format!("from commit {}", &head[..12]));
    common::assert_contains(&history.stdout, "catalog vendor serial 1; content ");
    common::assert_contains(&history.stdout, "permitted by 5 policies");
}

#[test]
fn an_update_keeps_the_superseded_app_to_roll_back_to_until_retention_lets_it_go() {
    let (repo, _k) = fleet_repo(1);
    repo.write(
        "fleet/products/app.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: app\nspec:\n  product: vendor.app\n  version: \"1.0\"\n  targets:\n    - platform: intune-prod\n",
    );
    repo.commit("pin 1.0");
    for _ in 0..2 {
        assert_eq!(apply(repo.path(), &[]).code, 0);
    }
    assert_eq!(apps(repo.path()), vec![v("1.0", &["sg-broad", "sg-pilot"])]);

    repo.write(
        "fleet/products/app.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: app\nspec:\n  product: vendor.app\n  version: latest\n  targets:\n    - platform: intune-prod\n",
    );
    repo.commit("follow latest");
    let run = apply(repo.path(), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    common::assert_contains(&run.stdout, "✓ update app 2.0 on intune-prod / pilot");
    assert_eq!(apps(repo.path()), vec![v("1.0", &["sg-broad"]), v("2.0", &["sg-pilot"])]);
    // The new app supersedes the old one (an update), as Intune expects.
    let t = tenant(repo.path());
    let id_of = |version: &str| {
        t["apps"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(_, a)| a["displayVersion"] == version)
            .map(|(id, _)| id.clone())
            .unwrap()
    };
    let relationships = &t["relationships"][&id_of("2.0")];
    assert_eq!(relationships.as_array().map(Vec::len), Some(1), "{relationships}");
    assert_eq!(relationships[0]["@odata.type"], "#microsoft.graph.mobileAppSupersedence");
    assert_eq!(relationships[0]["supersedenceType"], "update");
    assert_eq!(relationships[0]["targetId"], id_of("1.0"));
    let run = apply(repo.path(), &[]);
    common::assert_contains(&run.stdout, "✓ update app 2.0 on intune-prod / broad");
    // The superseded app is kept, unassigned (retention 1 by default), to roll back to.
    assert_eq!(apps(repo.path()), vec![v("1.0", &[]), v("2.0", &["sg-broad", "sg-pilot"])], "1.0 is kept");
    let settled = patchops(repo.path(), &["plan", "--path", "fleet", "--detailed-exitcode"]);
    assert_eq!(settled.code, 0, "a kept version is no change to make: {}", settled.stdout);
    let kept = id_of("1.0");

    // A rollback assigns the kept app again: no new app, no new upload.
    repo.write(
        "fleet/products/app.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: app\nspec:\n  product: vendor.app\n  version: \"1.0\"\n  targets:\n    - platform: intune-prod\n",
    );
    repo.commit("roll back to 1.0");
    for _ in 0..2 {
        assert_eq!(apply(repo.path(), &[]).code, 0);
    }
    assert_eq!(apps(repo.path()), vec![v("1.0", &["sg-broad", "sg-pilot"]), v("2.0", &[])]);
    let t = tenant(repo.path());
    assert!(t["apps"].get(&kept).is_some(), "the same 1.0 app, assigned again");
    assert_eq!(t["apps"].as_object().unwrap().len(), 2, "nothing was uploaded again");

    // With no versions kept, forward again: the superseded app goes, and the relationship that
    // points at it goes first (the service refuses to delete an app another references).
    repo.write(
        "fleet/products/app.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: app\nspec:\n  product: vendor.app\n  version: latest\n  targets:\n    - platform: intune-prod\n",
    );
    repo.write(
        "fleet/platforms.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: intune-prod\nspec:\n  type: intune\n  endpoint: embedded\n  retention: { keepVersions: 0 }\n",
    );
    repo.commit("latest, keeping nothing");
    for _ in 0..2 {
        let run = apply(repo.path(), &[]);
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    }
    assert_eq!(apps(repo.path()), vec![v("2.0", &["sg-broad", "sg-pilot"])], "the 1.0 app is gone");
    let t = tenant(repo.path());
    let two = t["apps"].as_object().unwrap().keys().next().unwrap().clone();
    assert_eq!(t["relationships"][&two], json!([]), "and the relationship with it");
}

#[test]
fn drift_made_on_the_platform_is_planned_and_corrected() {
    let (repo, _k) = fleet_repo(1);
    for _ in 0..2 {
        assert_eq!(apply(repo.path(), &[]).code, 0);
    }
    // Someone changes the pilot assignment by hand in the (emulated) console.
    let path = repo.path().join(".patchops/emulate/intune-prod.json");
    let mut t = tenant(repo.path());
    let id = t["apps"].as_object().unwrap().keys().next().unwrap().clone();
    let pilot = common::group_id(&t, "sg-pilot");
    for a in t["assignments"][&id].as_array_mut().unwrap() {
        if a["target"]["groupId"] == pilot.as_str() {
            a["intent"] = json!("available");
        }
    }
    std::fs::write(&path, serde_json::to_vec(&t).unwrap()).unwrap();

    let plan = patchops(repo.path(), &["plan", "--path", "fleet", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2);
    common::assert_contains(&plan.stdout, "~ reconfigure intune-prod / pilot [sg-pilot]  2.0");
    common::assert_contains(&plan.stdout, "~ assignment.intent: available → required");
    let run = apply(repo.path(), &[]);
    common::assert_contains(&run.stdout, "✓ reconfigure app 2.0 on intune-prod / pilot");
    let plan = patchops(repo.path(), &["plan", "--path", "fleet", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "converged: {}", plan.stdout);
}

#[test]
fn an_emptied_fleet_is_refused_by_the_mass_retire_guard_until_allowed() {
    let (repo, _k) = fleet_repo(1);
    for _ in 0..2 {
        assert_eq!(apply(repo.path(), &[]).code, 0);
    }
    let before = tenant(repo.path());
    repo.remove("fleet/products/app.yaml");
    repo.commit("remove every product");

    let refused = apply(repo.path(), &[]);
    assert_eq!(refused.code, 1);
    common::assert_contains(
        &refused.stderr,
        "refusing to retire so much at once:\n  - platform intune-prod: 1 of its 1 managed objects would be retired (100 %, more than the 30 % allowed)",
    );
    common::assert_contains(&refused.stderr, "if the retirement is intended, run again with --allow-mass-retire");
    assert_eq!(tenant(repo.path()), before, "nothing reached the platform");

    let allowed = apply(repo.path(), &["--allow-mass-retire"]);
    assert_eq!(allowed.code, 0, "{}\n{}", allowed.stdout, allowed.stderr);
    common::assert_contains(&allowed.stdout, "✓ retire vendor.app on intune-prod / pilot");
    assert_eq!(apps(repo.path()), vec![], "the app is deleted once its last assignment goes");
}

#[test]
fn a_saved_plan_is_applied_exactly_and_refused_once_stale() {
    let (repo, _k) = fleet_repo(1);
    let plan = patchops(repo.path(), &["plan", "--path", "fleet", "--out", "plan.json"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    // The fleet changes after the plan was made: the plan is stale.
    repo.write("fleet/extra.yaml", "# a comment-only change still changes the fleet digest\n");
    repo.commit("touch the fleet");
    let stale = apply(repo.path(), &["plan.json"]);
    assert_eq!(stale.code, 1);
    common::assert_contains(
        &stale.stderr,
        "the saved plan is stale and was not applied:\n  - the fleet's content changed since the plan was made (added: fleet/extra.yaml)",
    );
    assert_eq!(apps(repo.path()), vec![], "nothing reached the platform");

    let plan = patchops(repo.path(), &["plan", "--path", "fleet", "--out", "plan.json"]);
    assert_eq!(plan.code, 0);
    let run = apply(repo.path(), &["plan.json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    common::assert_contains(&run.stdout, "✓ publish app 2.0 on intune-prod / pilot");
    // Applying the same plan again: the platform changed since, so it is stale now.
    let again = apply(repo.path(), &["plan.json"]);
    assert_eq!(again.code, 1);
    common::assert_contains(&again.stderr, "  - platform intune-prod changed since the plan was made");
}

#[test]
fn a_denied_action_never_reaches_the_platform() {
    let (repo, _k) = fleet_repo(1);
    repo.write(
        "fleet/policies.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: PolicySet\nmetadata:\n  name: strict\nspec:\n  parameters:\n    vendor_allowlist:\n      vendors: [Mozilla]\n",
    );
    repo.commit("allow only Mozilla");
    let validate = patchops(repo.path(), &["validate", "--path", "fleet"]);
    assert_eq!(validate.code, 1);
    common::assert_contains(
        &validate.stderr,
        "publish app to intune-prod (ring pilot): denied by policy vendor_allowlist: vendor \"Vendor\" of vendor.app is not on the allow-list (Mozilla)",
    );
    let run = apply(repo.path(), &[]);
    assert_eq!(run.code, 1, "a denial means the desired state is not reached (issue 12, item 4): {}", run.stderr);
    common::assert_contains(
        &run.stdout,
        "denied by policy vendor_allowlist: vendor \"Vendor\" of vendor.app is not on the allow-list (Mozilla)",
    );
    common::assert_contains(&run.stdout, "2 denied by policy.");
    common::assert_contains(&run.stdout, "Nothing to apply.");
    assert_eq!(apps(repo.path()), vec![]);
}

#[test]
fn a_second_apply_on_the_same_state_directory_is_refused_while_one_runs() {
    let (repo, _k) = fleet_repo(1);
    let state = reconciler::state::StateDir::new(repo.path().join(".patchops"));
    let lock = state.lock("test").expect("lock");
    let run = apply(repo.path(), &[]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "another patchops apply holds the state directory");
    common::assert_contains(&run.stderr, &format!("pid {}", std::process::id()));
    assert_eq!(apps(repo.path()), vec![]);
    drop(lock);
    assert_eq!(apply(repo.path(), &[]).code, 0, "the lock is free again");
}

/// Kills apply at `point` (the process aborts, as on a crash or `kill -9`), then runs it again.
fn crash_then_converge(point: &str) {
    let (repo, _k) = fleet_repo(1);
    let crashed = Command::new(env!("CARGO_BIN_EXE_patchops"))
        .args(["apply", "--path", "fleet", "--auto-approve"])
        .current_dir(repo.path())
        .env("NO_COLOR", "1")
        .env("PATCHOPS_FAILPOINT", point)
        .env("XDG_CACHE_HOME", repo.path().join(".test-cache"))
        .output()
        .expect("run");
    assert!(!crashed.status.success(), "{point}: the process was aborted");
    common::assert_contains(&String::from_utf8_lossy(&crashed.stderr), "fail point");

    // The lock died with the process; the next run recovers and converges.
    let run = apply(repo.path(), &[]);
    assert_eq!(run.code, 0, "{point}: {}\n{}", run.stdout, run.stderr);
    common::assert_contains(&run.stderr, "was interrupted during publish app on intune-prod (ring pilot)");
    let run = apply(repo.path(), &[]);
    assert_eq!(run.code, 0, "{point}: {}", run.stderr);
    let done = apply(repo.path(), &[]);
    common::assert_contains(&done.stdout, "Nothing to apply.");
    assert_eq!(apps(repo.path()), vec![v("2.0", &["sg-broad", "sg-pilot"])], "{point}: exactly one app, no duplicate");
}

#[test]
fn a_crash_after_content_verification_converges() {
    crash_then_converge("after-content");
}

#[test]
fn a_crash_after_the_app_was_created_converges_without_a_duplicate() {
    crash_then_converge("after-create");
}

#[test]
fn a_crash_after_assigning_converges() {
    crash_then_converge("after-assign");
}

#[test]
fn a_crash_before_the_audit_record_converges() {
    crash_then_converge("before-audit");
}

#[test]
fn a_tampered_installer_is_refused_and_nothing_reaches_the_platform() {
    let (repo, _k) = fleet_repo(1);
    let mut bytes = common::installer_bytes("vendor.app", "2.0");
    bytes[100] ^= 1;
    repo.write("catalog/installers/vendor.app-2.0.msi", &bytes);
    repo.commit("tamper with the installer");
    let run = apply(repo.path(), &[]);
    assert_eq!(run.code, 1);
    common::assert_contains(
        &run.stdout,
        "✗ publish app 2.0 on intune-prod / pilot: catalog/installers/vendor.app-2.0.msi: SHA-256 is ",
    );
    common::assert_contains(&run.stdout, "but the catalog says ");
    common::assert_contains(&run.stdout, "the download was discarded (the file changed upstream or was tampered with)");
    common::assert_contains(&run.stdout, "Apply complete: 0 succeeded, 1 failed, 1 waiting for a later run.");
    common::assert_contains(&run.stderr, "refused catalog/installers/vendor.app-2.0.msi after 9728 of 9728 bytes");
    assert_eq!(apps(repo.path()), vec![], "nothing reached the platform");
    let cached: Vec<_> = std::fs::read_dir(repo.path().join(".patchops/content/sha256"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(cached.is_empty(), "nothing of the refused content is kept: {cached:?}");
    let history = patchops(repo.path(), &["history"]);
    common::assert_contains(
        &history.stdout,
        "failed    publish app 2.0 on intune-prod / pilot: catalog/installers/vendor.app-2.0.msi: SHA-256 is ",
    );

    // A truncated file is refused too.
    repo.write("catalog/installers/vendor.app-2.0.msi", &common::installer_bytes("vendor.app", "2.0")[..1000]);
    repo.commit("truncate the installer");
    let run = apply(repo.path(), &[]);
    common::assert_contains(
        &run.stdout,
        "catalog/installers/vendor.app-2.0.msi: the download ended after 1000 of 9728 bytes and was discarded",
    );
    assert_eq!(apps(repo.path()), vec![]);
}

#[test]
fn one_product_failing_does_not_stop_the_others() {
    let (repo, _k) = fleet_repo(1);
    repo.write(
        "fleet/products/tool.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: tool\nspec:\n  product: vendor.tool\n  targets:\n    - platform: intune-prod\n",
    );
    repo.write("catalog/installers/vendor.app-2.0.msi", b"not the installer the catalog describes");
    repo.commit("a second product; the first one's installer is broken");
    let run = apply(repo.path(), &[]);
    assert_eq!(run.code, 1, "a failed action fails the run");
    common::assert_contains(&run.stdout, "✗ publish app 2.0 on intune-prod / pilot: ");
    common::assert_contains(&run.stdout, "✓ publish tool 3.1 on intune-prod / pilot");
    common::assert_contains(&run.stdout, "Apply complete: 1 succeeded, 1 failed, 2 waiting for a later run.");
    assert_eq!(apps(repo.path()), vec![v("3.1", &["sg-pilot"])]);
}

#[test]
fn a_re_released_installer_under_the_same_version_is_published_again() {
    use sha2::Digest;
    let (repo, key) = fleet_repo(1);
    for _ in 0..2 {
        assert_eq!(apply(repo.path(), &[]).code, 0);
    }
    // The vendor re-releases 2.0 with other bytes; the catalog (serial 2) says so.
    let old = common::installer_bytes("vendor.app", "2.0");
    let new =
        std::fs::read(common::workspace_root().join("examples/catalog/installers/mozilla.firefox-128.0.3-x64.msi"))
            .unwrap();
    // (The re-released MSI has its own product code; the catalog says so too.)
    let catalog = common::catalog(2)
        .replace(&common::hex(&sha2::Sha256::digest(&old)), &common::hex(&sha2::Sha256::digest(&new)))
        .replace(
            common::installer_product_code("vendor.app", "2.0"),
            common::installer_product_code("vendor.app", "1.0"),
        );
    repo.write("catalog/catalog.json", &catalog);
    repo.write("catalog/catalog.json.minisig", common::sign(&key, catalog.as_bytes()));
    repo.write("catalog/installers/vendor.app-2.0.msi", &new);
    repo.commit("2.0 re-released");

    let run = apply(repo.path(), &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    common::assert_contains(&run.stdout, "ContentChanged: the catalog's installer for vendor.app 2.0 is now ");
    common::assert_contains(&run.stdout, "✓ update app 2.0 on intune-prod / pilot");
    assert_eq!(
        apps(repo.path()),
        vec![v("2.0", &["sg-broad"]), v("2.0", &["sg-pilot"])],
        "old and new 2.0 side by side"
    );
    let run = apply(repo.path(), &[]);
    common::assert_contains(&run.stdout, "✓ update app 2.0 on intune-prod / broad");
    assert_eq!(apps(repo.path()), vec![v("2.0", &["sg-broad", "sg-pilot"])], "the old build is gone");
    let notes = tenant(repo.path())["apps"].as_object().unwrap().values().next().unwrap()["notes"].clone();
    common::assert_contains(notes.as_str().unwrap(), &common::hex(&sha2::Sha256::digest(&new)));
}

#[test]
fn an_embedded_intune_platform_signs_in_with_the_fleets_certificate() {
    let (repo, _k) = fleet_repo(1);
    let platform = |file: &str| {
        format!("apiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: intune-prod\nspec:\n  type: intune\n  endpoint: embedded\n  auth:\n    tenantId: 00000000-0000-0000-0000-000000000001\n    clientId: 00000000-0000-0000-0000-0000000000aa\n    certificate: {{ file: {file} }}\n")
    };
    repo.write("fleet/platforms.yaml", platform("missing.pem"));
    repo.commit("a certificate file that does not exist");
    let run = apply(repo.path(), &[]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "error: platform `intune-prod`: cannot read the certificate file missing.pem (auth.certificate): No such file or directory");
    assert_eq!(apps(repo.path()), vec![]);

    // The example's certificate: the emulated tenant registers it and the client signs in with it.
    let pem = common::workspace_root().join("examples/secrets/EXAMPLE-ONLY-intune-app.pem");
    repo.write("fleet/platforms.yaml", platform(pem.to_str().unwrap()));
    repo.commit("the example certificate");
    let run = apply(repo.path(), &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(apps(repo.path()), vec![v("2.0", &["sg-pilot"])]);
}

/// "Pointing the clients at the real service is a configuration change": a Platform whose
/// endpoint and authority are a Graph emulator running as its own process, reached over HTTP
/// with certificate sign-in, exactly as a real tenant would be.
#[test]
fn a_platform_pointed_at_a_graph_endpoint_by_url_publishes_through_it() {
    let (repo, _k) = fleet_repo(1);
    let (emulator, platform) = common::remote_tenant(repo.path(), &["sg-pilot", "sg-broad"], &[]);
    repo.write("fleet/platforms.yaml", platform);
    repo.commit("a tenant reached by URL");
    let run = apply(repo.path(), &[]);
    drop(emulator);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    common::assert_contains(&run.stdout, "✓ publish app 2.0 on intune-prod / pilot");
    let remote: Value =
        serde_json::from_slice(&std::fs::read(repo.path().join("remote-tenant.json")).unwrap()).unwrap();
    assert_eq!(remote["apps"].as_object().map(|a| a.len()), Some(1), "the app is in the remote tenant");
    assert!(!repo.path().join(".patchops/emulate").exists(), "no embedded emulator was involved");
}

#[test]
fn a_client_secret_is_read_by_reference_flagged_by_policy_and_never_shown() {
    let secret = "s3cr3t-value-that-must-never-be-printed";
    let (repo, _k) = fleet_repo(1);
    repo.write(
        "fleet/platforms.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: intune-prod\nspec:\n  type: intune\n  endpoint: embedded\n  auth:\n    tenantId: 00000000-0000-0000-0000-000000000001\n    clientId: 00000000-0000-0000-0000-0000000000aa\n    clientSecret: { env: PATCHOPS_TEST_INTUNE_SECRET }\n",
    );
    repo.commit("sign in with a client secret");
    let run_with = |secret: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_patchops"));
        cmd.args(["apply", "--path", "fleet", "--auto-approve"])
            .current_dir(repo.path())
            .env("NO_COLOR", "1")
            .env("XDG_CACHE_HOME", repo.path().join(".test-cache"))
            .env_remove("PATCHOPS_TEST_INTUNE_SECRET");
        if let Some(s) = secret {
            cmd.env("PATCHOPS_TEST_INTUNE_SECRET", s);
        }
        let out = cmd.output().expect("run");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };

    // Not set: the error names the reference.
    let (code, out) = run_with(None);
    assert_eq!(code, 1);
    common::assert_contains(&out, "cannot read the client secret (env:PATCHOPS_TEST_INTUNE_SECRET): the environment variable PATCHOPS_TEST_INTUNE_SECRET is not set");

    // Set: the default policy refuses secret authentication for Intune; nothing is published,
    // and apply says so by its exit code (issue 12, item 4).
    let (code, out) = run_with(Some(secret));
    assert_eq!(code, 1, "{out}");
    common::assert_contains(&out, "denied by policy intune_certificate_auth: platform intune-prod authenticates with a client secret; give auth.certificate");
    assert_eq!(apps(repo.path()), vec![]);
    assert!(!out.contains(secret), "the secret never appears in output");

    // A fleet that chooses to allow it publishes, signing in with the secret.
    repo.write(
        "fleet/policies.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: PolicySet\nmetadata:\n  name: no-cert-rule\nspec:\n  builtin: [scan_detections, vendor_allowlist, script_signing, change_freeze]\n",
    );
    repo.commit("allow client secrets");
    let (code, out) = run_with(Some(secret));
    assert_eq!(code, 0, "{out}");
    common::assert_contains(&out, "✓ publish app 2.0 on intune-prod / pilot");
    assert!(!out.contains(secret), "the secret never appears in output");
    let state = std::fs::read_to_string(repo.path().join(".patchops/emulate/intune-prod.json")).unwrap();
    assert!(!state.contains(secret), "nor in the emulated tenant's state");
}

#[test]
fn a_policy_warning_is_shown_but_does_not_block() {
    let (repo, _k) = fleet_repo(1);
    repo.write(
        "fleet/policies.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: PolicySet\nmetadata:\n  name: notes\nspec:\n  modules: [rego/notes.rego]\n",
    );
    repo.write(
        "fleet/rego/notes.rego",
        "package patchops.policy.notes\n\nimport rego.v1\n\nwarn contains \"no scan result in this catalog\" if not input.installer.scan\n",
    );
    repo.commit("a warning policy");
    let run = apply(repo.path(), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    common::assert_contains(&run.stdout, "✓ publish app 2.0 on intune-prod / pilot (object ");
    common::assert_contains(&run.stdout, "      warning from policy notes: no scan result in this catalog");
    assert_eq!(apps(repo.path()), vec![v("2.0", &["sg-pilot"])]);
}

// Issue 15, item 4: no surprises about where things are.
#[test]
fn from_a_subdirectory_the_state_and_file_secrets_are_the_repository_roots() {
    let (repo, _k) = common::fleet_repo(1);
    // The app registration's certificate, read at run time from a path relative to the root,
    // and never committed.
    std::fs::write(repo.path().join(".git/info/exclude"), "secrets/\n.patchops/\n.test-cache/\n").unwrap();
    std::fs::create_dir_all(repo.path().join("secrets")).unwrap();
    common::code_signing_certificate(&repo.path().join("secrets"), "intune-app");
    repo.write(
        "fleet/platforms.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: intune-prod\nspec:\n  type: intune\n  endpoint: embedded\n  auth:\n    tenantId: 00000000-0000-0000-0000-000000000001\n    clientId: 00000000-0000-0000-0000-0000000000aa\n    certificate: { file: secrets/intune-app.pem }\n",
    );
    repo.commit("sign in with a certificate");
    let fleet_dir = repo.path().join("fleet");
    let run = common::patchops(&fleet_dir, &["apply", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    common::assert_contains(&run.stdout, "✓ publish app 2.0 on intune-prod / pilot");
    assert!(repo.path().join(".patchops/state.db").is_file(), "the state is at the repository's root");
    assert!(!fleet_dir.join(".patchops").exists(), "nothing is made in the subdirectory");
    // From the root, the same state: the pilot ring is published, only broad is left.
    let run = common::patchops(repo.path(), &["plan", "--path", "fleet"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains("intune-prod / pilot"), "{}", run.stdout);
    common::assert_contains(&run.stdout, "intune-prod / broad");

    // A directory without fleet documents is an error that creates nothing.
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(empty.path().join("nothing-here")).unwrap();
    let run = common::patchops(empty.path(), &["validate", "--path", "nothing-here"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "no fleet documents (*.yaml, *.yml) under nothing-here");
    assert!(!empty.path().join(".patchops").exists(), "nothing was created");
}

// Issue 13, item 5: a fleet names its Entra ID groups; the tenant is sent the object ids its
// directory gives for them, and people are shown the names.
#[test]
fn named_groups_are_assigned_by_the_ids_the_directory_gives_and_shown_by_name() {
    let (repo, _k) = fleet_repo(1);
    let plan = patchops(repo.path(), &["plan", "--path", "fleet", "--format", "json"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let json: Value = serde_json::from_str(&plan.stdout).unwrap();
    let pilot = json["actions"].as_array().unwrap().iter().find(|a| a["ring"] == "pilot").unwrap().clone();
    assert_eq!(pilot["groupName"], "sg-pilot");
    let text = patchops(repo.path(), &["plan", "--path", "fleet"]);
    common::assert_contains(&text.stdout, "+ publish     intune-prod / pilot [sg-pilot]  2.0");

    assert_eq!(apply(repo.path(), &[]).code, 0);
    let t = tenant(repo.path());
    assert_eq!(pilot["group"], common::group_id(&t, "sg-pilot").as_str(), "the directory's id, not the name");
    let sent: Vec<String> = t["assignments"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|l| l.as_array().unwrap().iter().map(|a| a["target"]["groupId"].as_str().unwrap().to_string()))
        .collect();
    assert!(!sent.is_empty());
    for id in &sent {
        assert!(uuid::Uuid::try_parse(id).is_ok(), "an object id is sent, not a name: {id}");
    }
    assert_eq!(apps(repo.path()), vec![v("2.0", &["sg-pilot"])]);

    // A recording keeps the ids, so a plan from it needs no directory; a group named after the
    // recording was made cannot be looked up there, and the plan says how to mend it.
    let rec = "recorded";
    assert_eq!(patchops(repo.path(), &["inventory", "record", "--path", "fleet", "--out", rec]).code, 0);
    let recorded: Value =
        serde_json::from_slice(&std::fs::read(repo.path().join(rec).join("intune-prod.json")).unwrap()).unwrap();
    assert_eq!(recorded["groups"]["sg-pilot"], common::group_id(&t, "sg-pilot").as_str());
    let offline = patchops(repo.path(), &["plan", "--path", "fleet", "--inventory", rec, "--detailed-exitcode"]);
    assert_eq!(offline.code, 2, "{}\n{}", offline.stdout, offline.stderr);
    common::assert_contains(&offline.stdout, "intune-prod / broad [sg-broad]");
    let rollout = std::fs::read_to_string(repo.path().join("fleet/rollout.yaml")).unwrap();
    repo.write("fleet/rollout.yaml", rollout.replace("sg-broad", "sg-everyone"));
    repo.commit("broad is everyone now");
    let stale = patchops(repo.path(), &["plan", "--path", "fleet", "--inventory", rec]);
    assert_eq!(stale.code, 1, "{}", stale.stdout);
    common::assert_contains(&stale.stderr, "has no id for the group named `sg-everyone`");
    common::assert_contains(&stale.stderr, "patchops inventory record");
}

// Issue 13, item 6: versions beyond the platform's retention are retired, relationships first.
#[test]
fn a_kept_version_beyond_the_retention_is_retired_as_superseded() {
    let (repo, _k) = fleet_repo(1);
    let pinned = |version: &str| {
        format!("apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: app\nspec:\n  product: vendor.app\n  version: \"{version}\"\n  targets:\n    - platform: intune-prod\n")
    };
    repo.write("fleet/products/app.yaml", pinned("1.0"));
    repo.commit("pin 1.0");
    assert_eq!(apply(repo.path(), &[]).code, 0);
    repo.write("fleet/products/app.yaml", pinned("2.0"));
    repo.commit("pin 2.0");
    for _ in 0..2 {
        assert_eq!(apply(repo.path(), &[]).code, 0);
    }
    assert_eq!(apps(repo.path()), vec![v("1.0", &[]), v("2.0", &["sg-broad", "sg-pilot"])]);

    repo.write(
        "fleet/platforms.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: intune-prod\nspec:\n  type: intune\n  endpoint: embedded\n  retention: { keepVersions: 0 }\n",
    );
    repo.commit("keep no superseded version");
    let plan = patchops(repo.path(), &["plan", "--path", "fleet"]);
    common::assert_contains(&plan.stdout, "- retire");
    common::assert_contains(
        &plan.stdout,
        "is superseded, and the platform keeps no superseded version (retention.keepVersions: 0)",
    );
    let run = apply(repo.path(), &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(apps(repo.path()), vec![v("2.0", &["sg-broad", "sg-pilot"])]);

    // Intune's supersedence graph holds ten apps: more kept versions are refused at load.
    repo.write(
        "fleet/platforms.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: intune-prod\nspec:\n  type: intune\n  endpoint: embedded\n  retention: { keepVersions: 10 }\n",
    );
    repo.commit("keep too many");
    let run = patchops(repo.path(), &["validate", "--path", "fleet"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "Intune keeps at most 9 superseded versions");
}

// Issue 13, item 6: the fleet asks Intune to update superseded apps on available assignments.
#[test]
fn auto_update_of_superseded_apps_reaches_available_assignments_and_is_refused_on_required_ones() {
    let (repo, _k) = fleet_repo(1);
    let product = |version: &str, intent: &str| {
        format!("apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: app\nspec:\n  product: vendor.app\n  version: \"{version}\"\n  targets:\n    - platform: intune-prod\n      install: {{ intent: {intent} }}\n      intune: {{ autoUpdateSupersededApps: true }}\n")
    };
    repo.write("fleet/products/app.yaml", product("2.0", "required"));
    repo.commit("auto-update on required");
    let refused = patchops(repo.path(), &["validate", "--path", "fleet"]);
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    common::assert_contains(&refused.stderr, "products/app.yaml:11:");
    common::assert_contains(&refused.stderr, "or remove `autoUpdateSupersededApps`");
    common::assert_contains(&refused.stderr, "auto-update applies to `available` assignments only");
    common::assert_contains(&refused.stderr, "set `install.intent: available`");

    repo.write("fleet/products/app.yaml", product("1.0", "available"));
    repo.commit("1.0, available");
    for _ in 0..2 {
        let run = apply(repo.path(), &[]);
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    }
    repo.write("fleet/products/app.yaml", product("2.0", "available"));
    repo.commit("2.0, available, auto-updating 1.0");
    for _ in 0..2 {
        let run = apply(repo.path(), &[]);
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    }
    assert_eq!(apps(repo.path()), vec![v("1.0", &[]), v("2.0", &["sg-broad", "sg-pilot"])]);
    let t = tenant(repo.path());
    let (two, _) = t["apps"].as_object().unwrap().iter().find(|(_, a)| a["displayVersion"] == "2.0").unwrap();
    let assignments = t["assignments"][two].as_array().unwrap();
    assert_eq!(assignments.len(), 2);
    for a in assignments {
        assert_eq!(a["intent"], "available");
        assert_eq!(
            a["settings"]["autoUpdateSettings"]["@odata.type"],
            "#microsoft.graph.win32LobAppAutoUpdateSettings"
        );
        assert_eq!(a["settings"]["autoUpdateSettings"]["autoUpdateSupersededAppsState"], "enabled", "{a}");
    }
    // The 2.0 app supersedes 1.0: what auto-update works from.
    assert_eq!(t["relationships"][two][0]["supersedenceType"], "update");
    let plan = patchops(repo.path(), &["plan", "--path", "fleet", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "settled: {}", plan.stdout);
}
