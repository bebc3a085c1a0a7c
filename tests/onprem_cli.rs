//! `patchops apply` to embedded WSUS and ConfigMgr platforms from a real git repository: a
//! product published ring by ring, updated to a new version (a new update or application that
//! supersedes the old one, which is kept unassigned to roll back to and retired beyond the
//! platform's retention), rolled back, and retired — read back from the emulators' persisted
//! state.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use std::path::Path;

use common::{assert_contains, fleet_repo, patchops, Run};
use serde_json::Value;

fn apply(dir: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["apply", "--path", "fleet", "--auto-approve"];
    args.extend_from_slice(extra);
    let run = patchops(dir, &args);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    run
}

fn state(dir: &Path, platform: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join(format!(".patchops/emulate/{platform}.json"))).unwrap()).unwrap()
}

/// (title, expired or declined, sorted approval groups) of every WSUS update.
fn updates(dir: &Path) -> Vec<(String, bool, Vec<String>)> {
    let s = state(dir, "wsus-onprem");
    let mut out: Vec<_> = s["updates"]
        .as_object()
        .unwrap()
        .values()
        .map(|u| {
            let mut groups: Vec<String> =
                u["approvals"].as_array().unwrap().iter().map(|a| a["group"].as_str().unwrap().to_string()).collect();
            groups.sort();
            (u["title"].as_str().unwrap().to_string(), u["expired"].as_bool().unwrap(), groups)
        })
        .collect();
    out.sort();
    out
}

/// (software version, retired, sorted collections) of every ConfigMgr application.
fn applications(dir: &Path) -> Vec<(String, bool, Vec<String>)> {
    let s = state(dir, "cm-onprem");
    let mut out: Vec<_> = s["apps"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, a)| {
            let mut groups: Vec<String> = s["assignments"]
                .as_object()
                .unwrap()
                .values()
                .filter(|d| d["AssignedCIs"][0].as_u64().map(|n| n.to_string()).as_deref() == Some(id.as_str()))
                .map(|d| d["TargetCollectionID"].as_str().unwrap().to_string())
                .collect();
            groups.sort();
            (a["version"].as_str().unwrap().to_string(), a["expired"].as_bool().unwrap(), groups)
        })
        .collect();
    out.sort();
    out
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn product(version: &str) -> String {
    format!(
        "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: app\nspec:\n  product: vendor.app\n  version: {version}\n  targets:\n    - platform: wsus-onprem\n    - platform: cm-onprem\n      install: {{ deadline: 3d }}\n"
    )
}

#[test]
fn wsus_and_configmgr_publish_update_and_retire_from_the_fleet() {
    let (repo, _k) = fleet_repo(1);
    let secrets = tempfile::tempdir().unwrap();
    let (signing, _) = common::code_signing_certificate(secrets.path(), "wsus");
    let (scripts, _) = common::code_signing_certificate(secrets.path(), "scripts");
    std::fs::write(secrets.path().join("password"), "cm-password-not-shown").unwrap();
    repo.write(
        "fleet/platforms.yaml",
        format!(
            "apiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: wsus-onprem\nspec:\n  type: wsus\n  endpoint: embedded\n  trust:\n    signingCertificate: {{ file: {signing} }}\n    executionPolicy: allSigned\n    scriptSigningCertificate: {{ file: {scripts} }}\n---\napiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: cm-onprem\nspec:\n  type: configmgr\n  endpoint: embedded\n  auth:\n    username: CONTOSO\\svc-patchops\n    password: {{ file: {password} }}\n",
            signing = signing.display(),
            scripts = scripts.display(),
            password = secrets.path().join("password").display()
        ),
    );
    repo.write(
        "fleet/rollout.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: standard\nspec:\n  rings:\n    - name: pilot\n      groups:\n        - { platform: wsus-onprem, group: Pilot }\n        - { platform: cm-onprem, group: PO100012 }\n    - name: broad\n      groups:\n        - { platform: wsus-onprem, group: Broad }\n        - { platform: cm-onprem, group: PO100013 }\n",
    );
    repo.write("fleet/products/app.yaml", product("\"1.0\""));
    repo.commit("vendor.app 1.0 on WSUS and ConfigMgr");

    let run = apply(repo.path(), &[]);
    assert_contains(&run.stdout, "✓ publish app 1.0 on wsus-onprem / pilot");
    assert_contains(&run.stdout, "✓ publish app 1.0 on cm-onprem / pilot");
    let run = apply(repo.path(), &[]);
    assert_contains(&run.stdout, "✓ publish app 1.0 on wsus-onprem / broad");
    assert_contains(&run.stdout, "✓ publish app 1.0 on cm-onprem / broad");
    assert_eq!(updates(repo.path()), vec![("Vendor App (x64) 1.0".into(), false, s(&["Broad", "Pilot"]))]);
    assert_eq!(applications(repo.path()), vec![("1.0".into(), false, s(&["PO100012", "PO100013"]))]);
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--detailed-exitcode"]);
    assert_eq!(run.code, 0, "nothing left to do:\n{}", run.stdout);

    // Follow the latest version: pilot first, then broad; the old version goes when no ring runs it.
    repo.write("fleet/products/app.yaml", product("latest"));
    repo.commit("follow latest");
    let run = apply(repo.path(), &[]);
    assert_contains(&run.stdout, "✓ update app 2.0 on wsus-onprem / pilot");
    assert_contains(&run.stdout, "✓ update app 2.0 on cm-onprem / pilot");
    assert_eq!(
        updates(repo.path()),
        vec![
            ("Vendor App (x64) 1.0".into(), false, s(&["Broad"])),
            ("Vendor App (x64) 2.0".into(), false, s(&["Pilot"]))
        ]
    );
    let run = apply(repo.path(), &[]);
    assert_contains(&run.stdout, "✓ update app 2.0 on wsus-onprem / broad");
    // The superseded version stays, unapproved and undeployed, to roll back to (retention 1).
    assert_eq!(
        updates(repo.path()),
        vec![
            ("Vendor App (x64) 1.0".into(), false, s(&[])),
            ("Vendor App (x64) 2.0".into(), false, s(&["Broad", "Pilot"]))
        ],
        "1.0 is kept, approved for no group"
    );
    assert_eq!(
        applications(repo.path()),
        vec![("1.0".into(), false, s(&[])), ("2.0".into(), false, s(&["PO100012", "PO100013"]))],
        "the 1.0 application is kept, deployed to no collection"
    );
    let wsus = state(repo.path(), "wsus-onprem");
    let new = wsus["updates"].as_object().unwrap().values().find(|u| u["title"] == "Vendor App (x64) 2.0").unwrap();
    assert!(new["sdp"].as_str().unwrap().contains("<sdp:SupersededPackages>"), "2.0 supersedes 1.0");
    let settled = patchops(repo.path(), &["plan", "--path", "fleet", "--detailed-exitcode"]);
    assert_eq!(settled.code, 0, "a kept version is no change to make:\n{}", settled.stdout);

    // A rollback approves and deploys the kept version again: nothing is published anew.
    let ids = |platform: &str, key: &str| -> Vec<String> {
        let mut ids: Vec<String> = state(repo.path(), platform)[key].as_object().unwrap().keys().cloned().collect();
        ids.sort();
        ids
    };
    let (wsus_ids, cm_ids) = (ids("wsus-onprem", "updates"), ids("cm-onprem", "apps"));
    repo.write("fleet/products/app.yaml", product("\"1.0\""));
    repo.commit("roll back to 1.0");
    for _ in 0..2 {
        apply(repo.path(), &[]);
    }
    assert_eq!(
        updates(repo.path()),
        vec![
            ("Vendor App (x64) 1.0".into(), false, s(&["Broad", "Pilot"])),
            ("Vendor App (x64) 2.0".into(), false, s(&[]))
        ]
    );
    assert_eq!(
        applications(repo.path()),
        vec![("1.0".into(), false, s(&["PO100012", "PO100013"])), ("2.0".into(), false, s(&[]))]
    );
    assert_eq!(ids("wsus-onprem", "updates"), wsus_ids, "no update was published again");
    assert_eq!(ids("cm-onprem", "apps"), cm_ids, "no application was created again");

    // Forward again, keeping no superseded version: the old one is expired and retired.
    let keep_none = std::fs::read_to_string(repo.path().join("fleet/platforms.yaml"))
        .unwrap()
        .replace("  endpoint: embedded\n", "  endpoint: embedded\n  retention: { keepVersions: 0 }\n");
    repo.write("fleet/platforms.yaml", keep_none);
    repo.write("fleet/products/app.yaml", product("latest"));
    repo.commit("latest, keeping no superseded version");
    for _ in 0..2 {
        apply(repo.path(), &[]);
    }
    assert_eq!(
        updates(repo.path()),
        vec![
            ("Vendor App (x64) 1.0".into(), true, s(&[])),
            ("Vendor App (x64) 2.0".into(), false, s(&["Broad", "Pilot"]))
        ],
        "1.0 is expired"
    );
    assert_eq!(
        applications(repo.path()),
        vec![("1.0".into(), true, s(&[])), ("2.0".into(), false, s(&["PO100012", "PO100013"]))],
        "the 1.0 application is retired"
    );

    // Retire the product (it is every managed object of both platforms: allowed explicitly).
    repo.remove("fleet/products/app.yaml");
    repo.commit("drop vendor.app");
    let refused = patchops(repo.path(), &["apply", "--path", "fleet", "--auto-approve"]);
    assert_eq!(refused.code, 1);
    assert_contains(&refused.stderr, "platform wsus-onprem: 1 of its 1 managed objects would be retired");
    let run = apply(repo.path(), &["--allow-mass-retire"]);
    assert_contains(&run.stdout, "✓ retire vendor.app on wsus-onprem / broad");
    assert_contains(&run.stdout, "✓ retire vendor.app on cm-onprem / broad");
    assert!(updates(repo.path()).iter().all(|(_, expired, groups)| *expired && groups.is_empty()));
    assert!(applications(repo.path()).iter().all(|(_, retired, groups)| *retired && groups.is_empty()));
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--detailed-exitcode"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(!run.stdout.contains("cm-password-not-shown") && !run.stderr.contains("cm-password-not-shown"));
}

/// README command one's fleet, in a plain-directory copy: Firefox pinned to 128.0.3 on every
/// platform, then back to `latest` (an update on each), then removed (retired everywhere).
#[test]
fn the_example_fleet_updates_and_retires_on_wsus_and_configmgr() {
    let dir = tempfile::tempdir().unwrap();
    common::copy_dir(&common::workspace_root().join("examples"), &dir.path().join("examples"));
    let state = dir.path().join("state").display().to_string();
    let run = |extra: &[&str]| {
        let args =
            [&["apply", "--auto-approve", "--repo", ".", "--path", "examples/fleet", "--state-dir", &state][..], extra]
                .concat();
        let run = patchops(dir.path(), &args);
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        run
    };
    let browsers = dir.path().join("examples/fleet/products/browsers.yaml");
    let with_wsus = firefox_pinned_on_every_platform(&browsers);
    let first = run(&[]);
    for platform in ["intune-prod", "configmgr-hq", "wsus-hq"] {
        assert_contains(&first.stdout, &format!("✓ publish firefox 128.0.3 on {platform} / pilot"));
    }
    std::fs::write(&browsers, &with_wsus).unwrap();
    let second = run(&[]);
    for platform in ["intune-prod", "configmgr-hq", "wsus-hq"] {
        assert_contains(&second.stdout, &format!("✓ update firefox 131.0.2 on {platform} / pilot"));
    }
    // 128.0.3 ran in no other ring: it is kept, unassigned, on every platform (retention 1).
    let wsus: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state/emulate/wsus-hq.json")).unwrap()).unwrap();
    let titles: Vec<(String, bool)> = wsus["updates"]
        .as_object()
        .unwrap()
        .values()
        .filter(|u| u["title"].as_str().unwrap().starts_with("Mozilla Firefox"))
        .map(|u| (u["title"].as_str().unwrap().to_string(), u["expired"].as_bool().unwrap()))
        .collect();
    assert!(titles.contains(&("Mozilla Firefox (x64) 128.0.3".into(), false)), "{titles:?}");
    assert!(titles.contains(&("Mozilla Firefox (x64) 131.0.2".into(), false)), "{titles:?}");
    let cm: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state/emulate/configmgr-hq.json")).unwrap()).unwrap();
    let firefox: Vec<(String, bool)> = cm["apps"]
        .as_object()
        .unwrap()
        .values()
        .filter(|a| a["title"].as_str().unwrap().starts_with("Mozilla Firefox"))
        .map(|a| (a["version"].as_str().unwrap().to_string(), a["expired"].as_bool().unwrap()))
        .collect();
    assert_eq!(firefox.len(), 2);
    assert!(
        firefox.contains(&("128.0.3".into(), false)) && firefox.contains(&("131.0.2".into(), false)),
        "{firefox:?}"
    );

    // Drop Firefox from the fleet: retired everywhere (guarded: allowed explicitly).
    let text = std::fs::read_to_string(&browsers).unwrap();
    let chrome = &text[text.find("# yaml-language-server").map_or(0, |_| text.rfind("---").unwrap_or(0))..];
    std::fs::write(&browsers, chrome.trim_start_matches("---\n")).unwrap();
    let third = run(&["--allow-mass-retire"]);
    for platform in ["intune-prod", "configmgr-hq", "wsus-hq"] {
        assert_contains(&third.stdout, &format!("✓ retire mozilla.firefox on {platform} / pilot"));
    }
    // The kept 128.0.3 goes with the product: nothing of Firefox is left unexpired.
    let wsus: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state/emulate/wsus-hq.json")).unwrap()).unwrap();
    let cm: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state/emulate/configmgr-hq.json")).unwrap()).unwrap();
    let firefox = |items: &Value, title: &str| -> Vec<bool> {
        items
            .as_object()
            .unwrap()
            .values()
            .filter(|u| u[title].as_str().unwrap().starts_with("Mozilla Firefox"))
            .map(|u| u["expired"].as_bool().unwrap())
            .collect()
    };
    assert_eq!(firefox(&wsus["updates"], "title"), vec![true, true], "both Firefox updates are expired");
    assert_eq!(firefox(&cm["apps"], "title"), vec![true, true], "both Firefox applications are retired");
    let again = run(&[]);
    assert_contains(&again.stdout, "Nothing to apply.");
}

/// README command one on a machine with no program at all on PATH: patchops signs its request
/// and detection scripts, and the emulated WSUS server its CABs, in process (Authenticode in
/// Rust). The CAB it made verifies with osslsigncode, run by the test.
#[test]
fn the_example_fleet_applies_with_no_external_program_on_path() {
    let dir = tempfile::tempdir().unwrap();
    common::copy_dir(&common::workspace_root().join("examples"), &dir.path().join("examples"));
    let browsers = dir.path().join("examples/fleet/products/browsers.yaml");
    let text = std::fs::read_to_string(&browsers).unwrap().replace(
        "      configmgr: { estimatedRuntimeMinutes: 5 }\n",
        "      configmgr: { estimatedRuntimeMinutes: 5 }\n    - platform: wsus-hq\n",
    );
    std::fs::write(&browsers, text).unwrap();
    let empty = dir.path().join("empty-path");
    std::fs::create_dir(&empty).unwrap();
    let state = dir.path().join("state");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_patchops"))
        .args(["apply", "--auto-approve", "--repo", ".", "--path", "examples/fleet", "--state-dir"])
        .arg(&state)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", &empty)
        .env("HOME", dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for platform in ["intune-prod", "configmgr-hq", "wsus-hq"] {
        assert_contains(&stdout, &format!("on {platform} / pilot"));
    }
    let cabs: Vec<_> = walk(&state).into_iter().filter(|p| p.extension().is_some_and(|e| e == "cab")).collect();
    assert!(!cabs.is_empty(), "the WSUS server made a CAB");
    let cert = dir.path().join("examples/secrets/EXAMPLE-ONLY-wsus-signing.cer");
    for cab in &cabs {
        common::osslsigncode_verifies(cab, &cert, &[]);
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `plan --emulate` on the example fleet: its recording seeds all three emulators (the
/// WSUS server's SDPs and approvals, the site's SDMPackageXML and deployments, Graph's apps),
/// each observed back through the real client exactly as recorded; an update of Firefox then
/// runs on all three — revisions, new packages, AllSigned scripts signed with the run's
/// throwaway certificate — and the real (embedded) platforms are left as they were.
#[test]
fn plan_emulate_dry_runs_an_update_on_wsus_configmgr_and_intune() {
    let dir = tempfile::tempdir().unwrap();
    common::copy_dir(&common::workspace_root().join("examples"), &dir.path().join("examples"));
    let state = dir.path().join("state").display().to_string();
    let rec = dir.path().join("recording").display().to_string();
    let common_args = ["--repo", ".", "--path", "examples/fleet", "--state-dir", &state];
    let browsers = dir.path().join("examples/fleet/products/browsers.yaml");
    let with_wsus = firefox_pinned_on_every_platform(&browsers);
    let run = patchops(dir.path(), &[&["apply", "--auto-approve"][..], &common_args].concat());
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let run = patchops(dir.path(), &[&["inventory", "record", "--out", &rec][..], &common_args].concat());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let emulated = |name: &str| std::fs::read(dir.path().join("state/emulate").join(format!("{name}.json"))).unwrap();
    let before: Vec<Vec<u8>> = ["wsus-hq", "configmgr-hq", "intune-prod"].map(emulated).to_vec();

    std::fs::write(&browsers, &with_wsus).unwrap();
    let run = patchops(dir.path(), &[&["plan", "--inventory", &rec, "--emulate"][..], &common_args].concat());
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for (platform, ty) in [("configmgr-hq", "configmgr"), ("intune-prod", "intune"), ("wsus-hq", "wsus")] {
        assert_contains(&run.stdout, &format!("  {platform} ({ty}): "));
        assert_contains(&run.stdout, &format!("✓ update      firefox → {platform} / pilot  131.0.2\n"));
    }
    assert_eq!(run.stdout.matches("observed as recorded").count(), 3, "{}", run.stdout);
    assert!(!run.stdout.contains('✗'), "{}", run.stdout);
    let after: Vec<Vec<u8>> = ["wsus-hq", "configmgr-hq", "intune-prod"].map(emulated).to_vec();
    assert!(before == after, "the dry run changed an embedded platform's state");

    // Documents that do not hold what the recording observed (here: one update's approvals
    // gone) make a dry run that is not faithful: it names the objects, and exits 1.
    let docs_path = dir.path().join("recording/wsus-hq.documents.json");
    let mut docs: Value = serde_json::from_slice(&std::fs::read(&docs_path).unwrap()).unwrap();
    let first = docs["updates"][0]["packageId"].as_str().unwrap().to_string();
    docs["updates"][0]["approvals"] = serde_json::json!([]);
    std::fs::write(&docs_path, serde_json::to_vec(&docs).unwrap()).unwrap();
    let run = patchops(dir.path(), &[&["plan", "--inventory", &rec, "--emulate"][..], &common_args].concat());
    assert_eq!(
        run.code, 1,
        "{}
{}",
        run.stdout, run.stderr
    );
    assert_contains(
        &run.stdout,
        &format!("wsus-hq (wsus): 3 object(s) seeded; 1 observed differently from the recording: {first}\n"),
    );
    assert_contains(
        &run.stdout,
        "3 of 3 action(s) went through, 0 refused; 1 object(s) observed differently from the recording",
    );
}

/// Puts the example fleet's Firefox on WSUS too (it is on Intune and ConfigMgr), pinned to
/// 128.0.3; returns the file with WSUS added and `version: latest` kept (the update).
fn firefox_pinned_on_every_platform(browsers: &std::path::Path) -> String {
    let latest = std::fs::read_to_string(browsers).unwrap();
    let with_wsus = latest.replace(
        "      configmgr: { estimatedRuntimeMinutes: 5 }\n",
        "      configmgr: { estimatedRuntimeMinutes: 5 }\n    - platform: wsus-hq\n",
    );
    std::fs::write(browsers, with_wsus.replacen("  version: latest", "  version: \"128.0.3\"", 1)).unwrap();
    with_wsus
}
