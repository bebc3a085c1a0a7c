//! `patchops suspend` / `resume` (issue 11, item 5): a suspended product, platform or fleet is
//! still observed and planned — its changes shown as waiting, `Suspended` — and never changed by
//! `apply` until it is resumed. Through the real binary on a real git repository and the
//! embedded Intune emulator.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use common::{assert_contains, fleet_repo, patchops, tenant_apps, v};

fn apply(dir: &std::path::Path) -> common::Run {
    patchops(dir, &["apply", "--path", "fleet", "--auto-approve"])
}

#[test]
fn a_suspended_product_is_planned_but_not_changed_until_resumed() {
    let (repo, _k) = fleet_repo(1);
    let run = patchops(repo.path(), &["suspend", "--product", "app", "--reason", "INC-4711: crashes on start"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_contains(
        &run.stdout,
        "suspended product app: it is observed and planned, never changed, until `patchops resume --product app`",
    );

    let plan = patchops(repo.path(), &["plan", "--path", "fleet"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert_contains(&plan.stdout, "waiting: Suspended: product app is suspended since ");
    assert_contains(&plan.stdout, "(INC-4711: crashes on start); `patchops resume` lets it change again");
    let run = apply(repo.path());
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_contains(&run.stdout, "Nothing to apply.");
    assert_eq!(tenant_apps(repo.path()), vec![], "nothing reached the platform");
    let status = patchops(repo.path(), &["status", "--path", "fleet"]);
    assert_contains(&status.stdout, "suspended: product app since ");
    assert_contains(&status.stdout, ": INC-4711: crashes on start");
    let app = status.stdout.lines().find(|l| l.starts_with("app ")).unwrap();
    assert!(app.ends_with("  suspended"), "the SYNC column: {app}");
    assert!(
        status.stdout.lines().next().unwrap_or("").contains("SYNC") || status.stdout.contains("  SYNC"),
        "{}",
        status.stdout
    );

    let run = patchops(repo.path(), &["resume", "--product", "app"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = apply(repo.path());
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_contains(&run.stdout, "✓ publish app 2.0 on intune-prod / pilot");
    let again = patchops(repo.path(), &["resume", "--product", "app"]);
    assert_eq!(again.code, 1);
    assert_contains(&again.stderr, "product app is not suspended; `patchops status` lists what is");
}

#[test]
fn a_suspended_platform_or_fleet_holds_back_everything_on_it() {
    let (repo, _k) = fleet_repo(1);
    for (args, shown) in [
        (vec!["suspend", "--platform", "intune-prod"], "platform intune-prod is suspended since "),
        (vec!["suspend"], "the fleet is suspended since "),
    ] {
        assert_eq!(patchops(repo.path(), &args).code, 0);
        let run = apply(repo.path());
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        assert_contains(&run.stdout, shown);
        assert_eq!(tenant_apps(repo.path()), vec![]);
        let resume: Vec<&str> = args.iter().map(|a| if *a == "suspend" { "resume" } else { a }).collect();
        assert_eq!(patchops(repo.path(), &resume).code, 0);
    }
    assert_eq!(apply(repo.path()).code, 0);
    assert_eq!(tenant_apps(repo.path()), vec![v("2.0", &["sg-pilot"])]);
}
