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
    let applied = run.execute(ops::Approval::AutoApprove).await.expect("execute");
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
    soaking_ring_opens_on_the_context_clock(false).await;
}

/// The same with the daemon's memo: the plan of unchanged inputs is reused, the gate is not —
/// it runs again at every cycle's time, so the ring still opens exactly when its soak ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_memo_the_gate_still_runs_at_every_cycle() {
    soaking_ring_opens_on_the_context_clock(true).await;
}

async fn soaking_ring_opens_on_the_context_clock(memo: bool) {
    let (repo, _key) = fleet_repo(1);
    repo.write(
        "fleet/rollout.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: standard\nspec:\n  rings:\n    - name: pilot\n      soak: 48h\n      groups:\n        - { platform: intune-prod, group: { name: sg-pilot } }\n    - name: broad\n      groups:\n        - { platform: intune-prod, group: { name: sg-broad } }\n",
    );
    repo.commit("pilot soaks for two days");
    // The state database keeps milliseconds.
    let start = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 3);
    let clock = reconciler::clock::ManualClock::new(start);
    let ctx = context(&repo).with_clock(clock.clone().into());
    let ctx = if memo { ctx.with_memo() } else { ctx };

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
    if let Some(m) = ctx.memo() {
        // Five loads of one commit: the fleet parsed and the catalog checked once; the plan
        // made again only after each apply changed the tenant (and reused in between).
        let hits = m.hits();
        assert_eq!((hits.fleet, hits.catalogs), (4, 4), "{hits:?}");
        assert!(hits.plans >= 2, "{hits:?}");
    }
}

async fn plan_of(ctx: &Context, repo: &Repo) -> reconciler::plan::Plan {
    ops::plan(ctx, &source(repo)).await.expect("plan").plan
}

/// What a memo reuses, and what makes it plan afresh: the fleet's content (not its commit), a
/// catalog's bytes, and what the platform holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memo_reuses_only_what_did_not_change() {
    let (repo, key) = fleet_repo(1);
    // A read-only recorded inventory stands for the platform: the test edits it by hand.
    repo.write(
        "fleet/platforms.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: intune-prod\nspec:\n  type: intune\n  endpoint: inventory\n",
    );
    repo.commit("a recorded inventory");
    // The recording holds the ids of the groups the fleet names.
    let groups = r#""groups":{"sg-broad":"5d1c2f3e-0a4b-4c6d-8e9f-0000000000b2","sg-pilot":"5d1c2f3e-0a4b-4c6d-8e9f-0000000000b1"}"#;
    let inventory = repo.path().join(".patchops/inventory/intune-prod.json");
    std::fs::create_dir_all(inventory.parent().unwrap()).unwrap();
    std::fs::write(&inventory, format!(r#"{{"objects":[],{groups}}}"#)).unwrap();
    let ctx = context(&repo).with_memo();
    let memo = ctx.memo().unwrap().clone();
    let publishes = |p: &reconciler::plan::Plan| {
        p.actions
            .iter()
            .filter(|a| a.action != reconciler::plan::ActionKind::None)
            .map(|a| format!("{} {}", a.version.as_deref().unwrap_or("-"), a.ring.as_deref().unwrap_or("-")))
            .collect::<Vec<_>>()
    };

    let first = plan_of(&ctx, &repo).await;
    assert_eq!(publishes(&first), vec!["2.0 pilot", "2.0 broad"]);
    assert_eq!(memo.hits(), Default::default());
    let second = plan_of(&ctx, &repo).await;
    assert_eq!(second.actions, first.actions);
    let hits = memo.hits();
    assert_eq!((hits.fleet, hits.catalogs, hits.plans), (1, 1, 1));

    // A commit that changes no fleet file: everything reused, the plan names the new commit.
    repo.write("README.md", "notes\n");
    let commit = repo.commit("notes only");
    let third = plan_of(&ctx, &repo).await;
    assert_eq!(third.actions, first.actions);
    assert_eq!(third.fingerprints.source["commit"], commit.as_str());
    let hits = memo.hits();
    assert_eq!((hits.fleet, hits.catalogs, hits.plans), (2, 2, 2));

    // The fleet changes: parsed and planned afresh.
    repo.write(
        "fleet/products/app.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: app\nspec:\n  product: vendor.app\n  version: \"1.0\"\n  targets:\n    - platform: intune-prod\n",
    );
    repo.commit("pin 1.0");
    let pinned = plan_of(&ctx, &repo).await;
    assert_eq!(publishes(&pinned), vec!["1.0 pilot", "1.0 broad"]);
    let hits = memo.hits();
    assert_eq!((hits.fleet, hits.catalogs, hits.plans), (2, 3, 2));

    // A new catalog (serial 2, same products): checked afresh, and planned afresh.
    let c = common::catalog(2);
    repo.write("catalog/catalog.json", &c);
    repo.write("catalog/catalog.json.minisig", common::sign(&key, c.as_bytes()));
    repo.commit("catalog serial 2");
    let newer = plan_of(&ctx, &repo).await;
    assert_eq!(newer.fingerprints.catalogs[0].serial, 2);
    let hits = memo.hits();
    assert_eq!((hits.fleet, hits.catalogs, hits.plans), (3, 3, 2));

    // The platform changes outside git (an object appears): planned afresh.
    std::fs::write(&inventory, format!(r#"{{"objects":[{{"id":"a1","displayName":"Made by hand"}}],{groups}}}"#))
        .unwrap();
    let observed = plan_of(&ctx, &repo).await;
    assert_eq!(observed.unmanaged.get("intune-prod"), Some(&1), "{:?}", observed.unmanaged);
    assert_eq!(memo.hits().plans, 2);
    // And unchanged again: reused.
    let again = plan_of(&ctx, &repo).await;
    assert_eq!(again.actions, observed.actions);
    assert_eq!(memo.hits().plans, 3);
}

/// `/history` of a daemon at `base`: each cycle's trigger and its applied actions
/// (`publish app pilot`).
async fn history(http: &reqwest::Client, base: &str) -> Vec<(String, Vec<String>)> {
    let v: serde_json::Value = http.get(format!("{base}/history")).send().await.unwrap().json().await.unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let actions = c["actions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    format!(
                        "{} {} {} {}",
                        a["action"].as_str().unwrap(),
                        a["product"].as_str().unwrap(),
                        a["ring"].as_str().unwrap_or("-"),
                        a["result"].as_str().unwrap()
                    )
                })
                .collect();
            (c["trigger"].as_str().unwrap().to_string(), actions)
        })
        .collect()
}

/// Waits (at most 60 s) until the daemon has run `n` cycles; returns its history.
async fn cycles(http: &reqwest::Client, base: &str, n: usize) -> Vec<(String, Vec<String>)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let h = history(http, base).await;
        if h.len() >= n {
            return h;
        }
        assert!(std::time::Instant::now() < deadline, "fewer than {n} cycles after 60 s: {h:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_wakes_when_a_soaking_ring_opens_on_its_clock_and_not_before() {
    let (repo, _key) = fleet_repo(1);
    repo.write(
        "fleet/rollout.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: standard\nspec:\n  rings:\n    - name: pilot\n      soak: 48h\n      groups:\n        - { platform: intune-prod, group: { name: sg-pilot } }\n    - name: broad\n      groups:\n        - { platform: intune-prod, group: { name: sg-broad } }\n",
    );
    repo.commit("pilot soaks for two days");
    let start = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 3);
    let clock = reconciler::clock::ManualClock::new(start);
    let ctx = std::sync::Arc::new(context(&repo).with_clock(clock.clone().into()));
    let mut options = reconciler::daemon::DaemonOptions::new(source(&repo));
    // No polling and no watching: only the scheduler's own wake-up can run a cycle.
    options.watch = false;
    options.interval = Some(std::time::Duration::from_secs(3600));
    options.listen = Some("127.0.0.1:0".parse().unwrap());
    let daemon = reconciler::daemon::Daemon::start(ctx.clone(), options).await.expect("start");
    let base = format!("http://{}", daemon.addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(daemon.run(async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();

    // The pilot at once, then the requeue after the change finds the broad ring soaking.
    let h = cycles(&http, &base, 2).await;
    assert_eq!(h[0], ("startup".to_string(), vec!["publish app pilot succeeded".to_string()]), "{h:?}");
    assert_eq!(h[1], ("requeue".to_string(), vec![]), "{h:?}");
    let status: serde_json::Value = http.get(format!("{base}/status")).send().await.unwrap().json().await.unwrap();
    let wake: chrono::DateTime<chrono::Utc> = serde_json::from_value(status["nextWake"].clone()).unwrap();
    assert_eq!(wake, start + chrono::Duration::hours(48), "{status:#}");

    // Real time passing runs nothing, nor does the clock short of the soak's end.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    clock.advance(chrono::Duration::hours(47));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(history(&http, &base).await.len(), 2, "no cycle before the ring opens");

    // The soak ends on the clock: the scheduler wakes and the broad ring is published.
    clock.advance(chrono::Duration::hours(1));
    let h = cycles(&http, &base, 3).await;
    assert_eq!(h[2], ("requeue".to_string(), vec!["publish app broad succeeded".to_string()]), "{h:?}");

    let _ = stop.send(());
    tokio::time::timeout(std::time::Duration::from_secs(30), running).await.expect("stops").expect("joins");
}

/// With a memo, a decision at unchanged inputs skips re-checking the ring history only while
/// the history still holds as many records as that check left: records lost in between (another
/// process, a state.db restored by hand) are recorded again, so no ring is left without the
/// evidence its next ring's soak counts from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_memo_lost_ring_records_are_recorded_again() {
    let (repo, _key) = fleet_repo(1);
    let ctx = context(&repo).with_memo();
    assert_eq!(apply(&ctx, &repo).await, vec!["publish app 2.0 on intune-prod / pilot: ok"]);
    assert_eq!(apply(&ctx, &repo).await, vec!["publish app 2.0 on intune-prod / broad: ok"]);
    assert_eq!(apply(&ctx, &repo).await, Vec::<String>::new());
    let db = rusqlite::Connection::open(repo.path().join(".patchops/state.db")).unwrap();
    let count = |db: &rusqlite::Connection| -> i64 {
        db.query_row("SELECT count(*) FROM ring_reached", [], |r| r.get(0)).unwrap()
    };
    assert_eq!(count(&db), 2, "pilot and broad");
    let before = ctx.memo().unwrap().hits().plans;
    db.execute("DELETE FROM ring_reached", []).unwrap();
    assert_eq!(apply(&ctx, &repo).await, Vec::<String>::new());
    assert_eq!(ctx.memo().unwrap().hits().plans, before + 1, "the plan was reused");
    assert_eq!(count(&db), 2, "both rings recorded again");
}
