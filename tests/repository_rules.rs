//! House rules checked by `cargo test`: schemas match the Rust types, and the shipped example
//! fleet is valid and plans its publish actions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use common::{patchops, workspace_root};

#[test]
fn checked_in_schemas_match_the_rust_types() {
    let dir = workspace_root().join("schemas");
    let mut stale = Vec::new();
    for (name, text) in reconciler::schema::all() {
        if std::fs::read_to_string(dir.join(&name)).ok().as_deref() != Some(text.as_str()) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "schemas/ is out of date with the Rust types ({}).\nRegenerate with: cargo run -q -- schemas --out schemas",
        stale.join(", ")
    );
}

#[test]
fn example_files_point_their_modelines_at_existing_schemas() {
    let fleet = workspace_root().join("examples/fleet");
    let mut checked = 0;
    for entry in walk(&fleet) {
        let text = std::fs::read_to_string(&entry).expect("read");
        for line in text.lines().filter(|l| l.starts_with("# yaml-language-server: $schema=")) {
            let rel = line.trim_start_matches("# yaml-language-server: $schema=");
            let target = entry.parent().expect("parent").join(rel);
            assert!(target.is_file(), "{}: modeline points at missing {}", entry.display(), target.display());
            checked += 1;
        }
    }
    assert!(checked >= 5, "every example document carries a modeline (found {checked})");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "yaml") {
            out.push(p);
        }
    }
    out
}

/// README command one: the example fleet applies offline to the embedded emulator, and a second
/// run changes nothing.
#[test]
fn the_example_fleet_applies_offline_and_a_second_run_changes_nothing() {
    let state = tempfile::tempdir().expect("tmp");
    let state_dir = state.path().to_string_lossy().to_string();
    let root = workspace_root();
    // --worktree: check the files as they are in this checkout, committed or not.
    let base = ["--worktree", "--path", "examples/fleet", "--state-dir", &state_dir];
    let run = patchops(&root, &[&["validate"][..], &base].concat());
    assert_eq!(run.code, 0, "{}", run.stderr);
    common::assert_contains(&run.stdout, "fleet is valid: 5 products, 3 platforms, 1 rollouts, 1 catalog sources");
    common::assert_contains(
        &run.stdout,
        "policies applied: change_freeze, intune_certificate_auth, scan_detections, script_signing, vendor_allowlist",
    );

    let first = patchops(&root, &[&["apply", "--auto-approve"][..], &base].concat());
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    common::assert_contains(
        &first.stdout,
        "Plan: 18 to publish, 0 to update, 0 to reconfigure, 0 to retire, 0 unchanged.",
    );
    for platform in ["intune-prod", "configmgr-hq"] {
        common::assert_contains(&first.stdout, &format!("✓ publish firefox 131.0.2 on {platform} / pilot"));
    }
    common::assert_contains(&first.stdout, "✓ publish chrome 131.0.6778.86 on wsus-hq / pilot");
    common::assert_contains(&first.stdout, "Apply complete: 10 succeeded, 0 failed, 8 waiting for a later run.");

    let second = patchops(&root, &[&["apply", "--auto-approve"][..], &base].concat());
    assert_eq!(second.code, 0, "{}", second.stderr);
    common::assert_contains(&second.stdout, "10 unchanged. 8 waiting (rings, windows or change budget).");
    common::assert_contains(&second.stdout, "waiting: RingSoaking: ring pilot has run 131.0.2 since ");
    common::assert_contains(&second.stdout, "Nothing to apply.");

    // Every platform's trust holds, and the emulated Windows client installs a WSUS update.
    let doctor = patchops(&root, &[&["doctor"][..], &base].concat());
    assert_eq!(doctor.code, 0, "{}\n{}", doctor.stdout, doctor.stderr);
    common::assert_contains(
        &doctor.stdout,
        "✓ trial install of Google Chrome (x64) 131.0.6778.86: the emulated client installs it",
    );
    common::assert_contains(
        &doctor.stdout,
        "✓ role: create and manage applications: Application Author, Application Deployment Manager",
    );
    common::assert_contains(&doctor.stdout, "doctor: no link fails on 3 platform(s)");
}

#[test]
fn the_example_installers_match_the_example_catalog() {
    let root = workspace_root().join("examples/catalog");
    let catalog: reconciler::catalog::Catalog =
        serde_json::from_slice(&std::fs::read(root.join("catalog.json")).expect("catalog")).expect("json");
    let mut n = 0;
    for p in &catalog.products {
        for v in &p.versions {
            for i in &v.installers {
                let bytes = std::fs::read(root.join(&i.url)).unwrap_or_else(|e| panic!("{}: {e}", i.url));
                assert_eq!(bytes.len() as u64, i.size, "{}", i.url);
                assert_eq!(reconciler::catalog::Sha256::digest(&bytes), i.sha256, "{}", i.url);
                n += 1;
            }
        }
    }
    assert_eq!(n, 10);
}

/// README command two is the set-up-and-test script, `.ci/run` runs that same script, and
/// nothing the project runs reads the steering folder beside the repository.
#[test]
fn the_readme_test_command_is_the_script_ci_runs_and_nothing_reads_outside_the_repository() {
    let root = workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let block = readme.split("```sh\n").nth(1).unwrap().split("```").next().unwrap();
    let commands: Vec<&str> = block.lines().map(|l| l.split('#').next().unwrap().trim()).collect();
    assert_eq!(commands.len(), 2, "README opens with two commands: {commands:?}");
    assert_eq!(commands[1], "tests/run");
    let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    assert!(ci.lines().any(|l| l.trim() == "tests/run"), ".ci/run runs tests/run");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(root.join("tests/run")).unwrap().permissions().mode();
    assert!(mode & 0o111 != 0, "tests/run is executable");
    let run = std::fs::read_to_string(root.join("tests/run")).unwrap();
    assert!(run.contains("cargo test --workspace --locked"), "tests/run runs the workspace's tests");

    let steering = ["..", "shared"].join("/");
    let mut offenders = Vec::new();
    for dir in ["tests", "reconciler/src", "reconciler/benches", "src", ".ci"] {
        for file in common::walk(&root.join(dir)) {
            let Ok(text) = std::fs::read_to_string(&file) else { continue };
            if text.contains(&steering) {
                offenders.push(file.display().to_string());
            }
        }
    }
    assert!(offenders.is_empty(), "these read the steering folder: {offenders:?}");
}
