//! One long-lived `Context` across cycles, as the daemon will hold it (issue 17): the harness
//! reconfigures a running embedded emulator when the fleet changes its setup, the clock the
//! context holds drives the rollout gate (and says when to run again), and the harness stops
//! what it started. In-process, through the library's operations, on real git repositories.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use common::{fleet_repo, Repo};
use reconciler::apply::Outcome;
use reconciler::context::Context;
use reconciler::ops::{self, ApplyOptions};
use reconciler::source::SourceOptions;
use reconciler::state::StateDir;

fn source(repo: &Repo) -> SourceOptions {
    SourceOptions {
        repo: repo.path().display().to_string(),
        rev: None,
        path: "fleet".into(),
        worktree: false,
        cache_dir: repo.path().join(".cache"),
        limits: Default::default(),
    }
}

fn context(repo: &Repo) -> Context {
    Context::new(StateDir::new(repo.path().join(".patchops")), reconciler::model::Secrets::default())
}

/// Applies the fleet at HEAD with `ctx`; returns the reports as `action product version on
/// platform / ring: outcome` lines.
async fn apply(ctx: &Context, repo: &Repo) -> Vec<String> {
    let run = ops::prepare_apply(ctx, &source(repo), ApplyOptions::default()).await.expect("prepare");
    let applied = run.execute().await.expect("execute");
    applied
        .reports
        .iter()
        .map(|r| {
            let a = &r.action;
            let outcome = match &r.outcome {
                Outcome::Succeeded { .. } => "ok".to_string(),
                Outcome::Failed(e) => format!("failed: {e}"),
                Outcome::Skipped(e) => format!("skipped: {e}"),
            };
            format!(
                "{} {} {} on {} / {}: {outcome}",
                a.action.as_str(),
                a.product,
                a.version.as_deref().unwrap_or("-"),
                a.platform,
                a.ring.as_deref().unwrap_or("-")
            )
        })
        .collect()
}

/// The embedded site `cm-onprem`, signing in with a password kept in `password_file`.
fn cm_platform(password_file: &std::path::Path) -> String {
    format!(
        "apiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: cm-onprem\nspec:\n  type: configmgr\n  endpoint: embedded\n  auth:\n    username: CONTOSO\\svc-patchops\n    password: {{ file: {} }}\n",
        password_file.display()
    )
}

fn cm_rollout(rings: &[(&str, &str)]) -> String {
    let mut s =
        "apiVersion: patchops.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: standard\nspec:\n  rings:\n".to_string();
    for (ring, collection) in rings {
        s += &format!("    - name: {ring}\n      groups:\n        - {{ platform: cm-onprem, group: {collection} }}\n");
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_change_reaches_the_running_embedded_emulator() {
    let (repo, _key) = fleet_repo(1);
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("password"), "cm-password-not-shown").unwrap();
    repo.write("fleet/platforms.yaml", cm_platform(&secrets.path().join("password")));
    repo.write("fleet/rollout.yaml", cm_rollout(&[("pilot", "PO100001")]));
    repo.write(
        "fleet/products/app.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: app\nspec:\n  product: vendor.app\n  version: latest\n  targets:\n    - platform: cm-onprem\n",
    );
    repo.commit("a ConfigMgr site with one ring");
    let ctx = context(&repo);
    assert_eq!(apply(&ctx, &repo).await, vec!["publish app 2.0 on cm-onprem / pilot: ok"]);
    assert_eq!(ctx.harness().running().await, 1);

    // A second ring on a collection the emulated site did not have: the harness sets the site
    // up again (the deployment would be refused by a site without the collection).
    repo.write("fleet/rollout.yaml", cm_rollout(&[("pilot", "PO100001"), ("broad", "PO100002")]));
    repo.commit("a broad ring");
    assert_eq!(apply(&ctx, &repo).await, vec!["publish app 2.0 on cm-onprem / broad: ok"]);
    assert_eq!(ctx.harness().running().await, 1, "restarted, not started twice");

    // What the site holds survived the restart: nothing left to do.
    let planned = ops::plan(&ctx, &source(&repo)).await.expect("plan");
    assert_eq!(planned.plan.applicable().count(), 0, "{:#?}", planned.plan.actions);
    ctx.harness().stop_all().await;
    assert_eq!(ctx.harness().running().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_context_clock_opens_a_soaking_ring_and_says_when() {
    let (repo, _key) = fleet_repo(1);
    repo.write(
        "fleet/rollout.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: standard\nspec:\n  rings:\n    - name: pilot\n      soak: 48h\n      groups:\n        - { platform: intune-prod, group: sg-pilot }\n    - name: broad\n      groups:\n        - { platform: intune-prod, group: sg-broad }\n",
    );
    repo.commit("pilot soaks for two days");
    // The state database keeps milliseconds.
    let start = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 3);
    let clock = reconciler::clock::ManualClock::new(start);
    let ctx = context(&repo).with_clock(clock.clone().into());

    assert_eq!(apply(&ctx, &repo).await, vec!["publish app 2.0 on intune-prod / pilot: ok"]);
    let planned = ops::plan(&ctx, &source(&repo)).await.expect("plan");
    assert_eq!(planned.plan.applicable().count(), 0);
    // The broad ring opens when the pilot's soak ends, counted on the context's clock.
    assert_eq!(planned.requeue_at, Some(start + chrono::Duration::hours(48)), "{:#?}", planned.plan.actions);

    clock.advance(chrono::Duration::hours(47));
    assert_eq!(apply(&ctx, &repo).await, Vec::<String>::new(), "still soaking after 47 hours");
    clock.advance(chrono::Duration::hours(2));
    assert_eq!(apply(&ctx, &repo).await, vec!["publish app 2.0 on intune-prod / broad: ok"]);
    let planned = ops::plan(&ctx, &source(&repo)).await.expect("plan");
    assert_eq!(planned.requeue_at, None, "nothing waits");
}
