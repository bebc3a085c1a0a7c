//! Issue 14, "converge after any crash", as a matrix rather than a sample: for publish, update,
//! reconfigure, retire and rollback on Intune, ConfigMgr and WSUS at once (embedded emulators),
//! apply is aborted at every journal step of the run (`step:N` until a run finishes without
//! reaching step N), at each fail point inside the clients' multi-request writes, and killed
//! with SIGKILL at pseudo-random moments (a bounded count, seeded: the seed is in every failure
//! message). After each crash, apply runs again (at most four times) until nothing is left to
//! do, and the platforms must hold exactly what the fleet asks: one object per version, none
//! half-published, every deployment in place.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{fleet_repo, patchops, Repo, Rng};
use serde_json::Value;

/// Every platform gets vendor.app in one ring.
const ROLLOUT: &str = "apiVersion: patchops.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: standard\nspec:\n  rings:\n    - name: pilot\n      groups:\n        - { platform: intune-prod, group: { name: sg-pilot } }\n        - { platform: wsus-onprem, group: Pilot }\n        - { platform: cm-onprem, group: PO100012 }\n";

fn product(version: &str, deadline: Option<&str>, retire: bool) -> String {
    let install = deadline.map(|d| format!("\n      install: {{ deadline: {d} }}")).unwrap_or_default();
    let targets = ["intune-prod", "wsus-onprem", "cm-onprem"]
        .iter()
        .map(|p| format!("    - platform: {p}{install}"))
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: app\nspec:\n  product: vendor.app\n  version: \"{version}\"\n  retire: {retire}\n  targets:\n{targets}\n"
    )
}

struct Fleet {
    repo: Repo,
    _key: common::Key,
    _secrets: tempfile::TempDir,
}

/// The test fleet on embedded Intune, WSUS and ConfigMgr with vendor.app pinned at 1.0.
fn fleet() -> Fleet {
    let (repo, key) = fleet_repo(1);
    let secrets = tempfile::tempdir().unwrap();
    let intune = "apiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: intune-prod\nspec:\n  type: intune\n  endpoint: embedded\n---\n";
    repo.write("fleet/platforms.yaml", format!("{intune}{}", common::onprem_platforms(secrets.path())));
    repo.write("fleet/rollout.yaml", ROLLOUT);
    repo.write("fleet/products/app.yaml", product("1.0", None, false));
    repo.commit("vendor.app 1.0 everywhere");
    Fleet { repo, _key: key, _secrets: secrets }
}

/// What a scenario does: the commits that bring the fleet to its starting point (each applied
/// to convergence), then the change whose apply is crashed.
struct Scenario {
    name: &'static str,
    before: &'static [(&'static str, Option<&'static str>, bool)],
    change: (&'static str, Option<&'static str>, bool),
    /// What the platforms hold in the end: the version published, or `None` when retired.
    expect: Option<&'static str>,
}

const SCENARIOS: [Scenario; 5] = [
    Scenario { name: "publish", before: &[], change: ("1.0", None, false), expect: Some("1.0") },
    Scenario { name: "update", before: &[("1.0", None, false)], change: ("2.0", None, false), expect: Some("2.0") },
    Scenario {
        name: "reconfigure",
        before: &[("2.0", None, false)],
        change: ("2.0", Some("3d"), false),
        expect: Some("2.0"),
    },
    Scenario { name: "retire", before: &[("2.0", None, false)], change: ("2.0", None, true), expect: None },
    Scenario {
        name: "rollback",
        before: &[("1.0", None, false), ("2.0", None, false)],
        change: ("1.0", None, false),
        expect: Some("1.0"),
    },
];

const APPLY: [&str; 5] = ["apply", "--path", "fleet", "--auto-approve", "--allow-mass-retire"];

fn write_product(repo: &Repo, (version, deadline, retire): (&str, Option<&str>, bool)) {
    repo.write("fleet/products/app.yaml", product(version, deadline, retire));
    repo.commit(&format!("vendor.app {version} deadline {deadline:?} retire {retire}"));
}

/// Applies until nothing is left (at most four runs); returns the last output on failure.
fn converge(dir: &Path, context: &str) {
    let mut last = String::new();
    for _ in 0..4 {
        let run = patchops(dir, &APPLY);
        last = format!("exit {}\n{}\n{}", run.code, run.stdout, run.stderr);
        if run.code == 0 && run.stdout.contains("Nothing to apply.") {
            let plan = patchops(dir, &["plan", "--path", "fleet", "--detailed-exitcode"]);
            assert_eq!(plan.code, 0, "{context}: converged, yet the plan has changes:\n{}", plan.stdout);
            return;
        }
    }
    panic!("{context}: did not converge in four runs; the last:\n{last}");
}

fn emulated(dir: &Path, platform: &str) -> Value {
    std::fs::read(dir.join(format!(".patchops/emulate/{platform}.json")))
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap_or(Value::Null)
}

/// What every platform holds: exactly one live object of the expected version, whole and
/// deployed to its ring, and nothing else live.
fn check_platforms(dir: &Path, expect: Option<&str>, context: &str) {
    // Intune: apps by displayVersion; every app published; the expected one assigned.
    let t = emulated(dir, "intune-prod");
    let apps: Vec<(&String, &Value)> = t["apps"].as_object().map(|m| m.iter().collect()).unwrap_or_default();
    for (id, app) in &apps {
        assert_eq!(app["publishingState"], "published", "{context}: Intune app {id} is half-published");
    }
    let live: Vec<(&String, &Value)> = apps
        .iter()
        .copied()
        .filter(|(id, _)| t["assignments"][id.as_str()].as_array().is_some_and(|a| !a.is_empty()))
        .collect();
    match expect {
        Some(v) => {
            assert_eq!(live.len(), 1, "{context}: Intune has {} assigned apps: {apps:?}", live.len());
            assert_eq!(live[0].1["displayVersion"], v, "{context}: Intune runs another version");
            let same: Vec<_> = apps.iter().filter(|(_, a)| a["displayVersion"] == v).collect();
            assert_eq!(same.len(), 1, "{context}: Intune holds {} apps of {v} (a duplicate)", same.len());
        }
        None => assert!(live.is_empty(), "{context}: Intune still has assigned apps: {live:?}"),
    }
    // ConfigMgr: live (not expired) applications, one per version, deployed.
    let cm = emulated(dir, "cm-onprem");
    let live: Vec<(String, String)> = cm["apps"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, a)| a["expired"] == false)
        .map(|(id, a)| (id.clone(), a["version"].as_str().unwrap_or_default().to_string()))
        .collect();
    let deployed = |id: &str| {
        cm["assignments"].as_object().into_iter().flatten().any(|(_, d)| {
            d["AssignedCIs"][0].as_u64().map(|n| n.to_string()).as_deref() == Some(id)
                && d["TargetCollectionID"] == "PO100012"
        })
    };
    match expect {
        Some(v) => {
            let of_v: Vec<_> = live.iter().filter(|(_, ver)| ver == v).collect();
            assert_eq!(of_v.len(), 1, "{context}: ConfigMgr has {} live applications of {v}: {live:?}", of_v.len());
            assert!(deployed(&of_v[0].0), "{context}: ConfigMgr's {v} is not deployed");
            assert!(
                live.iter().all(|(id, ver)| ver == v || !deployed(id)),
                "{context}: another ConfigMgr version is still deployed: {live:?}"
            );
        }
        None => assert!(live.iter().all(|(id, _)| !deployed(id)), "{context}: ConfigMgr still deploys {live:?}"),
    }
    // WSUS: live (not expired, not declined) updates, one per version, approved for Pilot.
    let w = emulated(dir, "wsus-onprem");
    let live: Vec<(&String, &Value)> = w["updates"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, u)| u["expired"] == false && u["declined"] == false)
        .collect();
    let approved = |u: &Value| u["approvals"].as_array().is_some_and(|a| a.iter().any(|x| x["group"] == "Pilot"));
    match expect {
        Some(v) => {
            let title = format!("Vendor App (x64) {v}");
            let of_v: Vec<_> = live.iter().filter(|(_, u)| u["title"] == title.as_str()).collect();
            assert_eq!(of_v.len(), 1, "{context}: WSUS has {} live updates of {v}", of_v.len());
            assert!(approved(of_v[0].1), "{context}: WSUS's {v} is not approved for Pilot");
            assert!(
                live.iter().all(|(_, u)| u["title"] == title.as_str() || !approved(u)),
                "{context}: another WSUS version is still approved"
            );
        }
        None => assert!(live.iter().all(|(_, u)| !approved(u)), "{context}: WSUS still approves an update"),
    }
}

/// A fleet brought to the scenario's starting point, with its change committed (not applied).
fn prepared(s: &Scenario) -> Fleet {
    let f = fleet();
    if !s.before.is_empty() {
        for step in s.before {
            write_product(&f.repo, *step);
            converge(f.repo.path(), &format!("{}: setting up", s.name));
        }
    }
    write_product(&f.repo, s.change);
    f
}

/// Runs apply with `point` armed; whether the process aborted there.
fn crashed_at(dir: &Path, point: &str) -> bool {
    let out = common::patchops_at_failpoint(dir, &APPLY, point);
    let aborted = String::from_utf8_lossy(&out.stderr).contains("reached; aborting (test hook)");
    assert!(
        aborted || out.status.success(),
        "{point}: apply failed without crashing:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    aborted
}

/// Every journal step, then every client fail point, for one scenario.
fn every_step(s: &Scenario) {
    let mut steps = 0;
    for n in 1..=60 {
        let f = prepared(s);
        let context = format!("{}: crash at journal step {n}", s.name);
        if !crashed_at(f.repo.path(), &format!("step:{n}")) {
            // The run finished before step n: every step was crashed at.
            check_platforms(f.repo.path(), s.expect, &format!("{}: the uncrashed run", s.name));
            break;
        }
        steps = n;
        converge(f.repo.path(), &context);
        check_platforms(f.repo.path(), s.expect, &context);
    }
    assert!(steps >= 3, "{}: only {steps} journal steps were reached", s.name);
    for point in [
        "after-content",
        "after-create",
        "after-assign",
        "before-audit",
        "intune-before-commit",
        "intune-before-content-version",
        "configmgr-after-copy",
        "wsus-after-stage:2",
        "wsus-server-signing",
    ] {
        let f = prepared(s);
        let context = format!("{}: crash at {point}", s.name);
        crashed_at(f.repo.path(), point);
        converge(f.repo.path(), &context);
        check_platforms(f.repo.path(), s.expect, &context);
    }
}

/// SIGKILL at pseudo-random moments of the scenario's apply (within how long an uncrashed run
/// of it takes), `count` times.
fn random_kills(s: &Scenario, seed: u64, count: u32) {
    let f = prepared(s);
    let started = Instant::now();
    converge(f.repo.path(), &format!("{}: timing an uncrashed run", s.name));
    let span = started.elapsed().as_millis().clamp(50, 5_000) as u64;
    let mut rng = Rng(seed);
    for i in 0..count {
        let f = prepared(s);
        let after = Duration::from_millis(rng.below(span));
        let context = format!("{}: SIGKILL after {after:?} (seed {seed}, kill {i})", s.name);
        let mut child = Command::new(env!("CARGO_BIN_EXE_patchops"))
            .args(APPLY)
            .current_dir(f.repo.path())
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .env("XDG_CACHE_HOME", f.repo.path().join(".test-cache"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(after);
        let _ = child.kill(); // SIGKILL; a run that already ended is fine too.
        let _ = child.wait();
        converge(f.repo.path(), &context);
        check_platforms(f.repo.path(), s.expect, &context);
    }
}

fn seed() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1
}

#[test]
fn a_crash_at_any_step_of_a_publish_converges_on_every_platform() {
    every_step(&SCENARIOS[0]);
    random_kills(&SCENARIOS[0], seed(), 4);
}

#[test]
fn a_crash_at_any_step_of_an_update_converges_on_every_platform() {
    every_step(&SCENARIOS[1]);
    random_kills(&SCENARIOS[1], seed(), 4);
}

#[test]
fn a_crash_at_any_step_of_a_reconfigure_converges_on_every_platform() {
    every_step(&SCENARIOS[2]);
    random_kills(&SCENARIOS[2], seed(), 4);
}

#[test]
fn a_crash_at_any_step_of_a_retire_converges_on_every_platform() {
    every_step(&SCENARIOS[3]);
    random_kills(&SCENARIOS[3], seed(), 4);
}

#[test]
fn a_crash_at_any_step_of_a_rollback_converges_on_every_platform() {
    every_step(&SCENARIOS[4]);
    random_kills(&SCENARIOS[4], seed(), 4);
}
