//! `patchops run` (issue 11), through the real binary on real git repositories, with the
//! embedded Intune emulator and real HTTP over loopback: a commit is applied as soon as the
//! refs move, webhooks are verified before anything is fetched, `/reconcile` needs its token,
//! `/metrics` parses with Prometheus's own client library, and SIGTERM stops the daemon
//! cleanly. Every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{fleet_repo, tenant_apps, v, Rng};
use serde_json::Value;

/// A running `patchops run`, stopped (SIGTERM, then kill) when dropped.
struct Daemon {
    child: Option<Child>,
    base: String,
    rt: tokio::runtime::Runtime,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Daemon {
    fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_patchops"));
        cmd.arg("run")
            .args(["--path", "fleet", "--listen", "127.0.0.1:0"])
            .args(args)
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .env("XDG_CACHE_HOME", dir.join(".test-cache"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, val) in env {
            cmd.env(k, val);
        }
        let mut child = cmd.spawn().expect("start patchops run");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.trim().to_string());
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("patchops run did not start listening:\n{}", log.lock().unwrap()));
        Daemon { child: Some(child), base, rt: tokio::runtime::Runtime::new().unwrap(), stderr: log }
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn get(&self, path: &str) -> (u16, String) {
        let url = format!("{}{path}", self.base);
        self.rt.block_on(async {
            let r = reqwest::get(&url).await.expect("GET");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        })
    }

    fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
        let url = format!("{}{path}", self.base);
        self.rt.block_on(async {
            let mut req = reqwest::Client::new().post(&url).body(body.to_vec());
            for (k, val) in headers {
                req = req.header(*k, *val);
            }
            let r = req.send().await.expect("POST");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        })
    }

    fn history(&self) -> Vec<Value> {
        serde_json::from_str::<Value>(&self.get("/history").1).unwrap().as_array().cloned().unwrap_or_default()
    }

    /// Waits (bounded) until `done` holds for the history.
    fn wait_for(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let h = self.history();
            if done(&h) {
                return h;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}; history: {h:#?}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM and waits (bounded) for the exit code.
    fn terminate(&mut self) -> i32 {
        let mut child = self.child.take().unwrap();
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if started.elapsed() > Duration::from_secs(40) {
                let _ = child.kill();
                panic!("patchops run did not stop within 40 s of SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn triggers(history: &[Value]) -> Vec<String> {
    history.iter().map(|c| c["trigger"].as_str().unwrap_or_default().to_string()).collect()
}

#[test]
fn a_commit_to_a_local_repository_is_applied_as_soon_as_its_refs_move() {
    let (repo, _key) = watched_fleet();
    let daemon = Daemon::start(repo.path(), &["--interval", "1h"], &[]);
    let first = daemon.wait_for("the startup cycle", |h| !h.is_empty());
    assert_eq!(first[0]["trigger"], "startup");
    assert_eq!(first[0]["result"], "applied", "{:#?}", first[0]);
    // The broad ring follows the pilot's publish in the cycle the scheduler requeues.
    let h = daemon.wait_for("both rings", |h| h.iter().filter(|c| c["result"] == "applied").count() == 2);
    assert_eq!(triggers(&h)[..2], ["startup", "requeue"]);
    assert_eq!(tenant_apps(repo.path()), vec![v("2.0", &["sg-broad", "sg-pilot"])]);
    let (code, ready) = daemon.get("/readyz");
    assert_eq!((code, ready.trim()), (200, "ready"));

    // A new product, committed: the hour-long poll interval cannot be what finds it.
    repo.write(
        "fleet/products/tool.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: tool\nspec:\n  product: vendor.tool\n  version: latest\n  targets:\n    - platform: intune-prod\n",
    );
    let head = repo.commit("add the tool");
    let h = daemon.wait_for("the commit to be applied", |h| h.iter().any(|c| c["commit"] == head.as_str()));
    let cycle = h.iter().find(|c| c["commit"] == head.as_str()).unwrap();
    assert_eq!(cycle["trigger"], "watch", "{cycle:#?}");
    assert_eq!(cycle["result"], "applied", "{cycle:#?}");
    let published: Vec<String> = cycle["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{} {} / {}",
                a["action"].as_str().unwrap(),
                a["product"].as_str().unwrap(),
                a["ring"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(published, vec!["publish tool / pilot"]);
    let status: Value = serde_json::from_str(&daemon.get("/status").1).unwrap();
    assert_eq!(status["commit"], head.as_str());
    assert_eq!(status["fleet"]["type"], "Ready");
    assert!(status["targets"].as_array().unwrap().iter().any(|t| t["product"] == "tool"), "{status:#}");
}

#[test]
fn webhooks_are_verified_before_anything_is_fetched() {
    let (repo, _key) = watched_fleet();
    let secret = "It's a Secret to Everybody";
    let daemon = Daemon::start(
        repo.path(),
        &["--interval", "1h", "--no-watch", "--github-secret", "env:GH_SECRET", "--token", "env:RECONCILE_TOKEN"],
        &[("GH_SECRET", secret), ("RECONCILE_TOKEN", "let-me-in")],
    );
    let settled =
        daemon.wait_for("the fleet to be in sync", |h| h.last().is_some_and(|c| c["result"] == "synced")).len();
    let branch = common::git(repo.path(), &["rev-parse", "--abbrev-ref", "HEAD"]);
    let push = format!("{{\"ref\":\"refs/heads/{}\"}}", branch.trim());

    // A forged signature: 401, and no cycle.
    let (code, body) = daemon.post(
        "/hooks/github",
        &[
            ("x-hub-signature-256", &reconciler::daemon::webhook::sign("guess", push.as_bytes())),
            ("x-github-event", "push"),
        ],
        push.as_bytes(),
    );
    assert_eq!(code, 401, "{body}");
    let (code, _) = daemon.post("/hooks/github", &[("x-github-event", "push")], push.as_bytes());
    assert_eq!(code, 401, "an unsigned delivery");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(daemon.history().len(), settled, "a refused delivery fetched nothing");

    // Signed: accepted, and it wakes the loop.
    let signed = reconciler::daemon::webhook::sign(secret, push.as_bytes());
    let headers = [("x-hub-signature-256", signed.as_str()), ("x-github-event", "push"), ("x-github-delivery", "d-1")];
    let (code, body) = daemon.post("/hooks/github", &headers, push.as_bytes());
    assert_eq!(code, 202, "{body}");
    let h = daemon.wait_for("the webhook's cycle", |h| h.len() == settled + 1);
    assert_eq!(triggers(&h)[settled], "webhook");
    // The same delivery again, and a push to another branch: acknowledged, ignored.
    let (code, body) = daemon.post("/hooks/github", &headers, push.as_bytes());
    assert_eq!(code, 200, "{body}");
    common::assert_contains(&body, "seen already");
    let other = b"{\"ref\":\"refs/heads/some-feature\"}";
    let signed_other = reconciler::daemon::webhook::sign(secret, other);
    let (code, body) = daemon.post(
        "/hooks/github",
        &[("x-hub-signature-256", &signed_other), ("x-github-event", "push"), ("x-github-delivery", "d-2")],
        other,
    );
    assert_eq!(code, 202, "{body}");
    common::assert_contains(&body, "ignored");
    // A body over the cap is refused.
    let big = vec![b' '; reconciler::daemon::webhook::MAX_BODY_BYTES + 1];
    assert_eq!(daemon.post("/hooks/github", &[], &big).0, 413);
    // GitLab is not configured on this daemon.
    assert_eq!(daemon.post("/hooks/gitlab", &[("x-gitlab-token", secret)], b"{}").0, 404);

    // POST /reconcile needs the bearer token.
    assert_eq!(daemon.post("/reconcile", &[], b"").0, 401);
    assert_eq!(daemon.post("/reconcile", &[("authorization", "Bearer let-me-out")], b"").0, 401);
    assert_eq!(daemon.post("/reconcile", &[("authorization", "Bearer let-me-in")], b"").0, 202);
    let h = daemon.wait_for("the manual cycle", |h| h.len() == settled + 2);
    assert_eq!(triggers(&h)[settled..], ["webhook", "manual"]);
    assert!(!daemon.log().contains(secret) && !daemon.log().contains("let-me-in"), "secrets stay out of the log");
}

#[test]
fn metrics_parse_with_the_prometheus_client_library_and_sigterm_stops_cleanly() {
    let (repo, _key) = watched_fleet();
    let mut daemon = Daemon::start(repo.path(), &["--interval", "1h", "--no-watch"], &[]);
    daemon.wait_for("the startup cycle", |h| !h.is_empty());
    let (code, text) = daemon.get("/metrics");
    assert_eq!(code, 200);
    common::assert_contains(&text, "patchops_cycles_total{trigger=\"startup\",result=\"applied\"} 1");
    common::assert_contains(
        &text,
        "patchops_actions_total{platform=\"intune-prod\",action=\"publish\",result=\"succeeded\"} ",
    );
    common::assert_contains(&text, "patchops_catalog_serial{source=\"vendor\"} 1");
    // Every Graph request of the cycle, per platform and outcome; the targets' conditions.
    let ok_requests = text
        .lines()
        .find_map(|l| l.strip_prefix("patchops_platform_requests_total{platform=\"intune-prod\",outcome=\"ok\"} "))
        .and_then(|n| n.trim().parse::<u64>().ok());
    assert!(ok_requests.is_some_and(|n| n >= 3), "{text}");
    common::assert_contains(&text, "patchops_conditions{type=\"Ready\"} ");
    common::assert_contains(&text, "patchops_suspended_objects 0");
    // An independent parser: Prometheus's Python client (PyPI `prometheus-client`).
    let script = "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as p\nnames = sorted(f.name for f in p(sys.stdin.read()))\nprint(' '.join(names))\n";
    let mut py = common::tool("python3", "python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is installed");
    std::io::Write::write_all(py.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let out = py.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("No module named"),
        "the independent check needs the PyPI package prometheus-client (pip install prometheus-client): {err}"
    );
    assert!(out.status.success(), "the exposition does not parse: {err}\n{text}");
    let names = String::from_utf8_lossy(&out.stdout);
    for family in [
        "patchops_cycle_duration_seconds",
        "patchops_cycles",
        "patchops_actions",
        "patchops_ready",
        "patchops_platform_requests",
        "patchops_conditions",
        "patchops_suspended_objects",
    ] {
        assert!(names.split_whitespace().any(|n| n == family), "{family} missing from {names}");
    }

    let code = daemon.terminate();
    assert_eq!(code, 0, "{}", daemon.log());
    common::assert_contains(&daemon.log(), "patchops run: stopped");
}

/// The embedded Intune emulator's base URL, from the daemon's log.
fn emulator_url(daemon: &Daemon) -> String {
    let log = daemon.log();
    let line = log
        .lines()
        .find(|l| l.contains("embedded emulator listening") && l.contains("intune-prod"))
        .unwrap_or_else(|| panic!("no emulator URL in the log:\n{log}"));
    line.split("url=").nth(1).unwrap().split_whitespace().next().unwrap().to_string()
}

/// Changes the app's fields on the emulated tenant, as an administrator would in the portal.
fn edit_app_by_hand(daemon: &Daemon, fields: Value) -> String {
    let base = emulator_url(daemon);
    daemon.rt.block_on(async {
        let list: Value =
            reqwest::get(format!("{base}beta/deviceAppManagement/mobileApps")).await.unwrap().json().await.unwrap();
        let id = list["value"][0]["id"].as_str().unwrap().to_string();
        let mut patch = fields;
        patch["@odata.type"] = "#microsoft.graph.win32LobApp".into();
        let r = reqwest::Client::new()
            .patch(format!("{base}beta/deviceAppManagement/mobileApps/{id}"))
            .json(&patch)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());
        id
    })
}

fn app_field(daemon: &Daemon, id: &str, field: &str) -> String {
    let base = emulator_url(daemon);
    daemon.rt.block_on(async {
        let app: Value = reqwest::get(format!("{base}beta/deviceAppManagement/mobileApps/{id}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        app[field].as_str().unwrap_or_default().to_string()
    })
}

/// The fleet of `fleet_repo`, with the daemon's state directory and download cache ignored:
/// they change under a test's `git add -A` while cycles run (SQLite's `-shm` file can vanish
/// between git listing it and reading it).
fn watched_fleet() -> (common::Repo, common::Key) {
    let (repo, key) = fleet_repo(1);
    repo.write(".gitignore", ".patchops/\n.test-cache/\n");
    repo.commit("ignore the state directory");
    (repo, key)
}

fn drift_fleet(drift: &str) -> (common::Repo, common::Key) {
    let (repo, key) = watched_fleet();
    repo.write(
        "fleet/platforms.yaml",
        format!("apiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: intune-prod\nspec:\n  type: intune\n  endpoint: embedded\n  drift: {drift}\n"),
    );
    repo.commit("drift settings");
    (repo, key)
}

fn reconcile_and_wait(daemon: &Daemon) -> Value {
    let before = daemon.history().len();
    assert_eq!(daemon.post("/reconcile", &[("authorization", "Bearer t")], b"").0, 202);
    let h = daemon.wait_for("the manual cycle", |h| h.iter().skip(before).any(|c| c["trigger"] == "manual"));
    h.iter().skip(before).find(|c| c["trigger"] == "manual").unwrap().clone()
}

#[test]
fn drift_is_reported_under_warn_with_expected_and_actual_and_ignore_rules_hold() {
    let (repo, _key) = drift_fleet("{ mode: warn, ignore: [publisher] }");
    let daemon = Daemon::start(repo.path(), &["--interval", "1h", "--no-watch", "--token", "env:T"], &[("T", "t")]);
    daemon.wait_for("the fleet to be in sync", |h| h.last().is_some_and(|c| c["result"] == "synced"));
    let id = edit_app_by_hand(&daemon, serde_json::json!({ "displayName": "Renamed by hand", "publisher": "Someone" }));

    let cycle = reconcile_and_wait(&daemon);
    assert_eq!(cycle["result"], "drifted", "{cycle:#}");
    let drift = cycle["drift"].as_array().unwrap();
    assert_eq!(drift.len(), 1, "{cycle:#}");
    assert_eq!(drift[0]["mode"], "warn");
    assert_eq!(drift[0]["objectId"], id.as_str());
    let fields: Vec<(String, String, String)> = drift[0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["field"].as_str().unwrap().into(),
                f["expected"].as_str().unwrap_or("").into(),
                f["actual"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    // `publisher` is ignored: only the display name is drift.
    assert_eq!(
        fields,
        vec![("displayName".to_string(), "Vendor App (x64)".to_string(), "Renamed by hand".to_string())]
    );
    assert!(cycle["actions"].as_array().unwrap().is_empty(), "warn changes nothing");
    assert_eq!(app_field(&daemon, &id, "displayName"), "Renamed by hand");
    let status: Value = serde_json::from_str(&daemon.get("/status").1).unwrap();
    let drifted: Vec<&Value> =
        status["targets"].as_array().unwrap().iter().filter(|t| t["condition"]["type"] == "Drifted").collect();
    assert!(!drifted.is_empty(), "{status:#}");
    common::assert_contains(
        drifted[0]["condition"]["message"].as_str().unwrap(),
        "displayName: expected \"Vendor App (x64)\", actual \"Renamed by hand\"",
    );
    common::assert_contains(&daemon.get("/metrics").1, "patchops_drifted_objects 1");
    // Still drift at the next cycle, still left alone.
    let again = reconcile_and_wait(&daemon);
    assert_eq!(again["result"], "drifted", "{again:#}");
    assert_eq!(app_field(&daemon, &id, "displayName"), "Renamed by hand");
}

#[test]
fn a_fleet_has_at_most_one_reconciler_and_its_fields_are_checked() {
    let (repo, _key) = watched_fleet();
    repo.write(
        "fleet/reconciler.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Reconciler\nmetadata:\n  name: a\nspec:\n  interval: 5m\n---\napiVersion: patchops.io/v1alpha1\nkind: Reconciler\nmetadata:\n  name: b\nspec:\n  notifications:\n    - { name: x, type: pager, url: { env: U } }\n",
    );
    repo.commit("two reconcilers");
    let run = common::patchops(repo.path(), &["validate", "--path", "fleet"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    common::assert_contains(&run.stderr, "reconciler.yaml:");
    common::assert_contains(&run.stderr, "unknown variant `pager`, expected one of `generic`, `slack`, `teams`");
    repo.write(
        "fleet/reconciler.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Reconciler\nmetadata:\n  name: a\nspec:\n  interval: 5m\n---\napiVersion: patchops.io/v1alpha1\nkind: Reconciler\nmetadata:\n  name: b\nspec: {}\n",
    );
    repo.commit("still two");
    let run = common::patchops(repo.path(), &["validate", "--path", "fleet"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    common::assert_contains(&run.stderr, "a second Reconciler: `a` is already defined");

    // A catalog in the repository changes with commits: an interval for it is a mistake.
    repo.remove("fleet/reconciler.yaml");
    let catalog = std::fs::read_to_string(repo.path().join("fleet/catalog.yaml")).unwrap();
    repo.write("fleet/catalog.yaml", catalog.replace("  trustedKeys:", "  interval: 10m\n  trustedKeys:"));
    repo.commit("an interval for an in-repository catalog");
    let run = common::patchops(repo.path(), &["validate", "--path", "fleet"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    common::assert_contains(&run.stderr, "catalog.yaml:");
    common::assert_contains(&run.stderr, "an interval applies to a catalog fetched from an https:// or http:// URL");
}

#[test]
fn drift_is_corrected_under_correct() {
    let (repo, _key) = drift_fleet("{ mode: correct }");
    let daemon = Daemon::start(repo.path(), &["--interval", "1h", "--no-watch", "--token", "env:T"], &[("T", "t")]);
    daemon.wait_for("the fleet to be in sync", |h| h.last().is_some_and(|c| c["result"] == "synced"));
    let id = edit_app_by_hand(&daemon, serde_json::json!({ "displayName": "Renamed by hand" }));
    let cycle = reconcile_and_wait(&daemon);
    assert_eq!(cycle["result"], "applied", "{cycle:#}");
    assert_eq!(cycle["drift"][0]["mode"], "correct", "{cycle:#}");
    assert_eq!(cycle["actions"][0]["action"], "reconfigure", "{cycle:#}");
    assert_eq!(app_field(&daemon, &id, "displayName"), "Vendor App (x64)", "the desired state is back");
    // The correction is observed: the next cycle finds nothing.
    let h =
        daemon.wait_for("a synced cycle after the correction", |h| h.last().is_some_and(|c| c["result"] == "synced"));
    assert!(h.last().unwrap().get("drift").is_none());
}

type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, axum::http::HeaderMap, Vec<u8>)>>>;

/// A loopback receiver of notifications; `/flaky` answers 500 to its first delivery.
fn receiver() -> (String, Received) {
    use axum::extract::{Path as UrlPath, State};
    let got: Received = Default::default();
    let flaky_failed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let app = axum::Router::new()
        .route(
            "/{path}",
            axum::routing::post(
                |State((got, flaky)): State<(Received, std::sync::Arc<std::sync::atomic::AtomicBool>)>,
                 UrlPath(path): UrlPath<String>,
                 headers: axum::http::HeaderMap,
                 body: axum::body::Bytes| async move {
                    if path == "flaky" && !flaky.swap(true, std::sync::atomic::Ordering::SeqCst) {
                        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    got.lock().unwrap().push((path, headers, body.to_vec()));
                    axum::http::StatusCode::OK
                },
            ),
        )
        .with_state((got.clone(), flaky_failed));
    (common::serve_on_loopback(app), got)
}

#[test]
fn applied_changes_and_drift_are_notified_once_signed_and_in_each_format() {
    let (base, got) = receiver();
    let (repo, _key) = drift_fleet("{ mode: warn }");
    repo.write(
        "fleet/reconciler.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Reconciler\nmetadata:\n  name: default\nspec:\n  notifications:\n    - { name: ops, type: generic, url: { env: HOOK_GENERIC }, secret: { env: HOOK_KEY } }\n    - { name: chat, type: slack, url: { env: HOOK_SLACK }, events: [drift] }\n    - { name: teams, type: teams, url: { env: HOOK_TEAMS }, events: [applied] }\n",
    );
    repo.commit("notify the team");
    let (generic, slack, teams) = (format!("{base}/generic"), format!("{base}/slack"), format!("{base}/flaky"));
    let daemon = Daemon::start(
        repo.path(),
        &["--interval", "1h", "--no-watch", "--token", "env:T"],
        &[
            ("T", "t"),
            ("HOOK_GENERIC", &generic),
            ("HOOK_KEY", "notify-key"),
            ("HOOK_SLACK", &slack),
            ("HOOK_TEAMS", &teams),
        ],
    );
    daemon.wait_for("the fleet to be in sync", |h| h.last().is_some_and(|c| c["result"] == "synced"));
    edit_app_by_hand(&daemon, serde_json::json!({ "displayName": "Renamed by hand" }));
    reconcile_and_wait(&daemon);
    reconcile_and_wait(&daemon); // the same drift again: not notified again

    let started = Instant::now();
    let deliveries = loop {
        let d = got.lock().unwrap().clone();
        let generic_events = d.iter().filter(|(p, _, _)| p == "generic").count();
        if (generic_events >= 3 && d.iter().any(|(p, _, _)| p == "flaky"))
            || started.elapsed() > Duration::from_secs(30)
        {
            break d;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let of = |path: &str| -> Vec<(axum::http::HeaderMap, Value)> {
        deliveries
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, h, b)| (h.clone(), serde_json::from_slice(b).unwrap()))
            .collect()
    };
    // Generic: every event, each signed with the target's key over the exact body.
    let generic = of("generic");
    let kinds: Vec<&str> = generic.iter().map(|(_, b)| b["event"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "applied").count(), 2, "pilot, then broad: {kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "drift").count(), 1, "drift notified once: {kinds:?}");
    for (path, headers, body) in deliveries.iter().filter(|(p, _, _)| p == "generic") {
        let sig = headers.get("x-patchops-signature-256").and_then(|v| v.to_str().ok());
        assert!(reconciler::daemon::webhook::hmac_matches("notify-key", body, sig), "{path}: bad signature");
    }
    let drift = generic.iter().find(|(_, b)| b["event"] == "drift").unwrap();
    assert_eq!(drift.1["details"]["fields"][0]["actual"], "Renamed by hand");
    // Slack: only drift, as a message with text.
    let slack = of("slack");
    assert_eq!(slack.len(), 1, "{slack:?}");
    common::assert_contains(slack[0].1["text"].as_str().unwrap(), "changed outside git");
    // Teams: the applied events as Adaptive Cards, delivered although the first attempt got 500.
    let teams = of("flaky");
    assert!(!teams.is_empty(), "retried after a 500");
    assert_eq!(teams[0].1["attachments"][0]["contentType"], "application/vnd.microsoft.card.adaptive");
    assert_eq!(teams[0].1["attachments"][0]["content"]["type"], "AdaptiveCard");
    assert!(!daemon.log().contains("notify-key"), "the key stays out of the log");
}

#[test]
fn sigterm_mid_apply_lets_the_action_finish_and_the_next_start_converges() {
    let (repo, _key) = watched_fleet();
    let mut daemon = Daemon::start(
        repo.path(),
        &["--interval", "1h", "--no-watch"],
        &[("PATCHOPS_PAUSEPOINT", "after-content:1500")],
    );
    // Inside the first publish: the installer is verified, nothing reached the platform yet.
    let started = Instant::now();
    while !daemon.log().contains("pause point after-content reached") {
        assert!(started.elapsed() < Duration::from_secs(30), "no pause:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let code = daemon.terminate();
    assert_eq!(code, 0, "{}", daemon.log());
    common::assert_contains(&daemon.log(), "letting the cycle in flight finish");
    assert_eq!(tenant_apps(repo.path()), vec![v("2.0", &["sg-pilot"])], "the action in flight finished");
    drop(daemon);

    // The next start picks up where it stopped: the broad ring, and no second object.
    let daemon = Daemon::start(repo.path(), &["--interval", "1h", "--no-watch"], &[]);
    daemon.wait_for("the fleet to be in sync", |h| h.last().is_some_and(|c| c["result"] == "synced"));
    assert_eq!(tenant_apps(repo.path()), vec![v("2.0", &["sg-broad", "sg-pilot"])]);
}

#[test]
fn a_fleet_that_cannot_be_read_is_retried_with_backoff_and_counted() {
    let (repo, _key) = watched_fleet();
    let daemon = Daemon::start(repo.path(), &["--interval", "1h", "--no-watch", "--rev", "no-such-branch"], &[]);
    let h = daemon.wait_for("the failed startup cycle", |h| !h.is_empty());
    assert_eq!(h[0]["result"], "failed", "{:#}", h[0]);
    assert_eq!(h[0]["reason"], "RevisionNotFound", "{:#}", h[0]);
    let status: Value = serde_json::from_str(&daemon.get("/status").1).unwrap();
    assert_eq!(status["fleet"]["type"], "Reconciling", "{status:#}");
    assert_eq!(status["consecutiveFailures"], 1);
    assert!(status["nextWake"].is_string(), "a retry is scheduled: {status:#}");
    let metrics = daemon.get("/metrics").1;
    common::assert_contains(&metrics, "patchops_git_fetch_failures_total 1");
    common::assert_contains(&metrics, "patchops_consecutive_failures 1");
    common::assert_contains(&metrics, "patchops_ready 0");
}

#[test]
fn a_failing_product_backs_off_on_its_own_and_the_others_go_ahead() {
    let (repo, _key) = watched_fleet();
    repo.write(
        "fleet/products/tool.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: tool\nspec:\n  product: vendor.tool\n  version: latest\n  targets:\n    - platform: intune-prod\n",
    );
    // The tool's installer is not in the commit: its publish fails every time.
    repo.remove("catalog/installers/vendor.tool-3.1.msi");
    repo.commit("the tool, without its installer");
    let daemon = Daemon::start(repo.path(), &["--interval", "1h", "--no-watch", "--backoff", "2s"], &[]);
    let h = daemon.wait_for("the app in both rings", |h| {
        h.iter().any(|c| {
            c["actions"].as_array().is_some_and(|a| a.iter().any(|x| x["ring"] == "broad" && x["product"] == "app"))
        })
    });
    let attempts = |h: &[Value]| -> usize {
        h.iter()
            .flat_map(|c| c["actions"].as_array().cloned().unwrap_or_default())
            .filter(|a| a["product"] == "tool" && a["result"] == "failed")
            .count()
    };
    assert_eq!(attempts(&h), 1, "the tool was not tried again while it backs off: {h:#?}");
    let status: Value = serde_json::from_str(&daemon.get("/status").1).unwrap();
    let tool: Vec<&Value> = status["targets"].as_array().unwrap().iter().filter(|t| t["product"] == "tool").collect();
    assert!(tool.iter().any(|t| t["condition"]["reason"] == "BackingOff"), "{status:#}");
    assert_eq!(tenant_apps(repo.path()), vec![v("2.0", &["sg-broad", "sg-pilot"])], "the app went ahead");
    // When its backoff ends, the tool is tried again, on its own timer.
    let h = daemon.wait_for("the tool's retry", |h| attempts(h) >= 2);
    assert!(triggers(&h).contains(&"retry".to_string()), "{:?}", triggers(&h));
}

/// Serves a catalog, its signature and the installers it lists from memory, on loopback; the
/// catalog can be replaced while the daemon runs.
struct CatalogServer {
    base: String,
    files: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>>,
}

impl CatalogServer {
    fn start() -> CatalogServer {
        let files = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::<String, Vec<u8>>::new()));
        let served = files.clone();
        let app = axum::Router::new().route(
            "/{*path}",
            axum::routing::get(move |axum::extract::Path(path): axum::extract::Path<String>| {
                let served = served.clone();
                async move {
                    match served.lock().unwrap().get(&path) {
                        Some(b) => (axum::http::StatusCode::OK, b.clone()),
                        None => (axum::http::StatusCode::NOT_FOUND, Vec::new()),
                    }
                }
            }),
        );
        CatalogServer { base: common::serve_on_loopback(app), files }
    }

    fn put(&self, path: &str, bytes: impl Into<Vec<u8>>) {
        self.files.lock().unwrap().insert(path.to_string(), bytes.into());
    }

    /// Publishes `catalog`, signed with `key`.
    fn publish(&self, catalog: &str, key: &common::Key) {
        self.put("catalog.json.minisig", common::sign(key, catalog.as_bytes()));
        self.put("catalog.json", catalog.as_bytes().to_vec());
    }
}

/// The test catalog at `serial` with a `vendor.app` 3.0 added (the 7-Zip MSI as its installer).
fn catalog_with_app_3(serial: u64) -> String {
    use sha2::Digest;
    let mut c: Value = serde_json::from_str(&common::catalog(serial)).unwrap();
    let bytes = common::installer_bytes("vendor.tool", "3.1");
    let mut three = c["products"][0]["versions"][1].clone();
    three["version"] = "3.0".into();
    three["installers"][0]["url"] = "installers/vendor.app-3.0.msi".into();
    three["installers"][0]["sha256"] = common::hex(&sha2::Sha256::digest(&bytes)).into();
    three["installers"][0]["size"] = bytes.len().into();
    three["installers"][0]["msiProductCode"] = common::installer_product_code("vendor.tool", "3.1").into();
    c["products"][0]["versions"].as_array_mut().unwrap().push(three);
    serde_json::to_string(&c).unwrap()
}

#[test]
fn a_new_catalog_serial_at_a_remote_url_is_fetched_at_its_interval_and_applied() {
    let (repo, key) = watched_fleet();
    let server = CatalogServer::start();
    for (id, version) in common::INSTALLERS {
        server.put(&format!("installers/{id}-{version}.msi"), common::installer_bytes(id, version));
    }
    server.put("installers/vendor.app-3.0.msi", common::installer_bytes("vendor.tool", "3.1"));
    server.publish(&common::catalog(1), &key);
    repo.write(
        "fleet/catalog.yaml",
        format!("apiVersion: patchops.io/v1alpha1\nkind: CatalogSource\nmetadata:\n  name: vendor\nspec:\n  url: {}/catalog.json\n  interval: 1s\n  trustedKeys:\n    - {}\n", server.base, key.public),
    );
    repo.commit("the catalog from the publisher's server, checked every second");
    // Neither polling (an hour) nor watching can be what finds the new catalog.
    let daemon = Daemon::start(repo.path(), &["--interval", "1h", "--no-watch"], &[]);
    daemon.wait_for("both rings at 2.0", |h| h.iter().filter(|c| c["result"] == "applied").count() == 2);
    assert_eq!(tenant_apps(repo.path()), vec![v("2.0", &["sg-broad", "sg-pilot"])]);

    // Fetched every second, an unchanged catalog wakes nothing.
    std::thread::sleep(Duration::from_millis(2500));
    let before = daemon.history().len();
    assert!(!triggers(&daemon.history()).contains(&"catalog".to_string()), "{:#?}", daemon.history());

    // A catalog signed by another key is fetched, wakes the loop once, and is refused there.
    let stranger = common::key();
    server.publish(&catalog_with_app_3(2), &stranger);
    let h = daemon.wait_for("the refused catalog", |h| h.iter().any(|c| c["trigger"] == "catalog"));
    let refused = h.iter().find(|c| c["trigger"] == "catalog").unwrap();
    assert_eq!(refused["result"], "failed", "{refused:#?}");
    assert_eq!(refused["reason"], "CatalogKeyUntrusted", "{refused:#?}");
    assert_eq!(tenant_apps(repo.path()), vec![v("2.0", &["sg-broad", "sg-pilot"])], "nothing changed");

    // The publisher signs serial 2 with 3.0: the daemon fetches it within its interval and
    // publishes 3.0, verified as every cycle verifies a catalog.
    server.publish(&catalog_with_app_3(2), &key);
    let h = daemon.wait_for("3.0 on both rings", |h| {
        h.iter().filter(|c| c["catalogs"] == serde_json::json!([["vendor", 2]]) && c["result"] == "applied").count()
            >= 2
    });
    let woke: Vec<&Value> = h[before..].iter().filter(|c| c["trigger"] == "catalog").collect();
    assert_eq!(woke.len(), 2, "one wake-up per new catalog content: {h:#?}");
    assert_eq!(woke[1]["result"], "applied", "{:#?}", woke[1]);
    assert_eq!(
        tenant_apps(repo.path()),
        vec![v("2.0", &[]), v("3.0", &["sg-broad", "sg-pilot"])],
        "2.0 is kept, unassigned, to roll back to"
    );
}

/// The app ids on the emulated tenant.
fn app_ids(daemon: &Daemon) -> Vec<String> {
    let base = emulator_url(daemon);
    daemon.rt.block_on(async {
        let list: Value =
            reqwest::get(format!("{base}beta/deviceAppManagement/mobileApps")).await.unwrap().json().await.unwrap();
        list["value"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_string()).collect()
    })
}

#[test]
fn a_bounded_soak_of_random_commits_and_drift_ends_converged_without_duplicates() {
    const STEPS: usize = 60;
    const MIN_CYCLES: usize = 200;
    let seed = 0x5eed_2026_1202_u64;
    let mut rng = Rng(seed);
    let (repo, _key) = drift_fleet("{ mode: correct }");
    let product = |name: &str, id: &str, version: &str| {
        format!("apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: {name}\nspec:\n  product: {id}\n  version: \"{version}\"\n  targets:\n    - platform: intune-prod\n")
    };
    let mut daemon =
        Daemon::start(repo.path(), &["--interval", "1h", "--token", "env:T", "--history", "1000"], &[("T", "t")]);
    daemon.wait_for("the first cycle", |h| !h.is_empty());
    let (mut app_version, mut tool) = ("latest", false);
    let started = Instant::now();
    let mut step_log = Vec::new();
    for step in 0..STEPS {
        let what = rng.below(6);
        match what {
            // A commit pinning the app to another version (an update or a downgrade).
            0 | 1 => {
                app_version = ["1.0", "2.0", "latest"][rng.below(3) as usize];
                repo.write("fleet/products/app.yaml", product("app", "vendor.app", app_version));
                repo.commit(&format!("step {step}: app at {app_version}"));
            }
            // A commit adding or removing the tool (a publish or a retire).
            2 => {
                tool = !tool;
                if tool {
                    repo.write("fleet/products/tool.yaml", product("tool", "vendor.tool", "latest"));
                } else {
                    repo.remove("fleet/products/tool.yaml");
                }
                repo.commit(&format!("step {step}: tool {}", if tool { "added" } else { "removed" }));
            }
            // Drift: an administrator renames an app, or deletes one, in the portal.
            3 | 4 => {
                let ids = app_ids(&daemon);
                if !ids.is_empty() {
                    let id = &ids[rng.below(ids.len() as u64) as usize];
                    let base = emulator_url(&daemon);
                    daemon.rt.block_on(async {
                        let url = format!("{base}beta/deviceAppManagement/mobileApps/{id}");
                        let c = reqwest::Client::new();
                        let r = if what == 3 {
                            c.patch(&url)
                                .json(&serde_json::json!({ "@odata.type": "#microsoft.graph.win32LobApp", "displayName": format!("renamed at step {step}") }))
                                .send()
                                .await
                        } else {
                            c.delete(&url).send().await
                        };
                        // A cycle may have replaced the app meanwhile: a 404 is drift that was not.
                        // A kept version that a newer one supersedes cannot be deleted (Graph
                        // refuses while the relationship stands): the portal refused the admin.
                        let r = r.unwrap();
                        let status = r.status().as_u16();
                        let body = r.text().await.unwrap_or_default();
                        let refused_as_referenced = status == 400 && body.contains("Remove the relationship first");
                        if !(status < 300 || status == 404 || refused_as_referenced) {
                            panic!("step {step}: {status} {body}\n{}", daemon.log());
                        }
                    });
                }
            }
            // Someone asks for a cycle now.
            _ => {
                assert_eq!(daemon.post("/reconcile", &[("authorization", "Bearer t")], b"").0, 202);
            }
        }
        step_log.push(what);
        // Sometimes the next step comes at once (wake-ups merge); sometimes the fleet settles.
        if rng.below(3) == 0 {
            let n = daemon.history().len();
            assert_eq!(daemon.post("/reconcile", &[("authorization", "Bearer t")], b"").0, 202);
            daemon.wait_for("a cycle after the step", |h| h.len() > n);
        }
        assert!(started.elapsed() < Duration::from_secs(240), "the soak is taking too long (seed {seed:#x})");
    }
    // Manual cycles until there have been enough, each waited for.
    while daemon.history().len() < MIN_CYCLES {
        let n = daemon.history().len();
        assert_eq!(daemon.post("/reconcile", &[("authorization", "Bearer t")], b"").0, 202);
        daemon.wait_for("another cycle", |h| h.len() > n);
        assert!(started.elapsed() < Duration::from_secs(300), "the soak is taking too long (seed {seed:#x})");
    }
    // Settled: a manual cycle that changes nothing and finds no drift.
    daemon.wait_for("the fleet to settle", |h| h.last().is_some_and(|c| c["result"] == "synced"));
    let last = reconcile_and_wait(&daemon);
    assert_eq!(last["result"], "synced", "seed {seed:#x}, steps {step_log:?}: {last:#}");
    assert!(last.get("drift").is_none(), "{last:#}");
    let history = daemon.history();
    assert!(history.len() >= MIN_CYCLES, "{} cycles", history.len());
    let failed: Vec<&Value> = history.iter().filter(|c| c["result"] == "failed").collect();
    assert!(failed.is_empty(), "seed {seed:#x}: failed cycles {failed:#?}");

    // The tenant holds exactly the desired state: one assigned app per product, both rings, no
    // copies; and at most one other version of the app, unassigned (retention 1).
    let app = if app_version == "latest" { "2.0" } else { app_version };
    let mut expected = vec![v(app, &["sg-broad", "sg-pilot"])];
    if tool {
        expected.push(v("3.1", &["sg-broad", "sg-pilot"]));
    }
    expected.sort();
    let (assigned, kept): (Vec<_>, Vec<_>) = tenant_apps(repo.path()).into_iter().partition(|(_, g)| !g.is_empty());
    assert_eq!(assigned, expected, "seed {seed:#x}, steps {step_log:?}");
    assert!(kept.len() <= 1, "one superseded version is kept at most: {kept:?}");
    assert!(kept.iter().all(|(version, _)| ["1.0", "2.0"].contains(&version.as_str()) && version != app), "{kept:?}");
    assert_eq!(daemon.terminate(), 0, "{}", daemon.log());
    // And an independent read-only plan agrees: nothing to do.
    let plan = common::patchops(repo.path(), &["plan", "--path", "fleet", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
}

#[test]
fn drift_mode_off_neither_reports_nor_corrects_until_a_commit_changes_the_fleet() {
    let (repo, _key) = drift_fleet("{ mode: off }");
    let daemon = Daemon::start(repo.path(), &["--interval", "1h", "--no-watch", "--token", "env:T"], &[("T", "t")]);
    daemon.wait_for("the fleet to be in sync", |h| h.last().is_some_and(|c| c["result"] == "synced"));
    let id = edit_app_by_hand(&daemon, serde_json::json!({ "displayName": "Renamed by hand" }));
    let cycle = reconcile_and_wait(&daemon);
    assert!(cycle.get("drift").is_none(), "off reports nothing: {cycle:#}");
    assert_ne!(cycle["result"], "drifted", "{cycle:#}");
    assert!(cycle["actions"].as_array().unwrap().is_empty(), "off changes nothing: {cycle:#}");
    assert_eq!(app_field(&daemon, &id, "displayName"), "Renamed by hand");
    let (_, metrics) = daemon.get("/metrics");
    common::assert_contains(&metrics, "patchops_drifted_objects 0");
}

#[test]
fn gitlab_azure_devops_and_generic_webhooks_wake_the_loop_only_when_verified() {
    let (repo, _key) = watched_fleet();
    let daemon = Daemon::start(
        repo.path(),
        &[
            "--interval",
            "1h",
            "--no-watch",
            "--gitlab-token",
            "env:GL",
            "--azure-credentials",
            "env:AZ",
            "--webhook-secret",
            "env:GEN",
        ],
        &[("GL", "gitlab-token"), ("AZ", "hook:azure-password"), ("GEN", "generic-key")],
    );
    let mut seen =
        daemon.wait_for("the fleet to be in sync", |h| h.last().is_some_and(|c| c["result"] == "synced")).len();
    let branch = common::git(repo.path(), &["rev-parse", "--abbrev-ref", "HEAD"]);
    let push = format!("{{\"ref\":\"refs/heads/{branch}\"}}");
    let azure = format!(
        "{{\"id\":\"az-1\",\"eventType\":\"git.push\",\"resource\":{{\"refUpdates\":[{{\"name\":\"refs/heads/{branch}\"}}]}}}}"
    );
    let basic = |cred: &str| {
        use base64::Engine as _;
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(cred))
    };
    let generic_sig = reconciler::daemon::webhook::sign("generic-key", push.as_bytes());
    let wrong_sig = reconciler::daemon::webhook::sign("guess", push.as_bytes());
    let (good_basic, bad_basic) = (basic("hook:azure-password"), basic("hook:guess"));
    type Headers<'a> = Vec<(&'a str, &'a str)>;
    let cases: [(&str, Headers, &str, Headers); 3] = [
        (
            "/hooks/gitlab",
            vec![("x-gitlab-token", "gitlab-token"), ("x-gitlab-event", "Push Hook"), ("x-gitlab-event-uuid", "gl-1")],
            push.as_str(),
            vec![("x-gitlab-token", "gitlab-tokeN"), ("x-gitlab-event", "Push Hook")],
        ),
        (
            "/hooks/azure",
            vec![("authorization", good_basic.as_str())],
            azure.as_str(),
            vec![("authorization", bad_basic.as_str())],
        ),
        (
            "/hooks/generic",
            vec![("x-patchops-signature-256", generic_sig.as_str()), ("x-patchops-delivery", "gen-1")],
            push.as_str(),
            vec![("x-patchops-signature-256", wrong_sig.as_str())],
        ),
    ];
    for (path, good, body, bad) in cases {
        // Refused: 401 and no cycle.
        let (code, text) = daemon.post(path, &bad, body.as_bytes());
        assert_eq!(code, 401, "{path}: {text}");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(daemon.history().len(), seen, "{path}: a refused delivery fetched nothing");
        // Verified: accepted, and exactly one cycle, triggered by the webhook.
        let (code, text) = daemon.post(path, &good, body.as_bytes());
        assert_eq!(code, 202, "{path}: {text}");
        let h = daemon.wait_for("the webhook's cycle", |h| h.len() > seen);
        assert_eq!(h[seen]["trigger"], "webhook", "{path}");
        seen = h.len();
        // The same delivery again: acknowledged and ignored.
        let (code, text) = daemon.post(path, &good, body.as_bytes());
        assert_eq!(code, 200, "{path}: {text}");
        common::assert_contains(&text, "seen already");
    }
    let (_, metrics) = daemon.get("/metrics");
    for provider in ["gitlab", "azure", "generic"] {
        common::assert_contains(
            &metrics,
            &format!("patchops_webhook_deliveries_total{{provider=\"{provider}\",result=\"accepted\"}} 1"),
        );
        common::assert_contains(
            &metrics,
            &format!("patchops_webhook_deliveries_total{{provider=\"{provider}\",result=\"refused\"}} 1"),
        );
    }
    assert!(!daemon.log().contains("azure-password") && !daemon.log().contains("generic-key"));
}

#[test]
fn a_remote_branch_is_polled_at_the_interval_and_a_push_is_applied() {
    let (work, _key) = fleet_repo(1);
    let remote = tempfile::tempdir().unwrap();
    let bare = remote.path().join("fleet.git");
    common::git(remote.path(), &["clone", "-q", "--bare", work.path().to_str().unwrap(), bare.to_str().unwrap()]);
    common::git(work.path(), &["remote", "add", "origin", bare.to_str().unwrap()]);
    // The daemon runs elsewhere and knows the repository only by its URL: no watching, polling.
    let host = tempfile::tempdir().unwrap();
    let url = format!("file://{}", bare.display());
    let daemon = Daemon::start(host.path(), &["--repo", &url, "--rev", "main", "--interval", "1s"], &[]);
    daemon.wait_for("both rings", |h| h.iter().filter(|c| c["result"] == "applied").count() == 2);
    assert_eq!(tenant_apps(host.path()), vec![v("2.0", &["sg-broad", "sg-pilot"])]);
    assert!(!daemon.log().contains("watching"), "a URL is not watched: {}", daemon.log());

    work.write(
        "fleet/products/tool.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: tool\nspec:\n  product: vendor.tool\n  version: latest\n  targets:\n    - platform: intune-prod\n",
    );
    let head = work.commit("add the tool");
    common::git(work.path(), &["push", "-q", "origin", "main"]);
    let h = daemon
        .wait_for("the pushed commit", |h| h.iter().any(|c| c["commit"] == head.as_str() && c["result"] == "applied"));
    let cycle = h.iter().find(|c| c["commit"] == head.as_str()).unwrap();
    assert_eq!(cycle["trigger"], "poll", "{cycle:#}");
    // Polls keep coming at about the interval (1 s ± 7.5 %), each a fetch.
    let polls_before = triggers(&daemon.history()).iter().filter(|t| *t == "poll").count();
    std::thread::sleep(Duration::from_millis(3500));
    let polls = triggers(&daemon.history()).iter().filter(|t| *t == "poll").count() - polls_before;
    assert!((1..=6).contains(&polls), "{polls} polls in 3.5 s at a 1 s interval");
}

#[test]
fn drift_survives_a_restart_and_patchops_status_says_drifted() {
    let (repo, _key) = drift_fleet("{ mode: warn }");
    let args = ["--interval", "1h", "--no-watch", "--token", "env:T"];
    let mut daemon = Daemon::start(repo.path(), &args, &[("T", "t")]);
    daemon.wait_for("the fleet to be in sync", |h| h.last().is_some_and(|c| c["result"] == "synced"));
    let status = common::patchops(repo.path(), &["status", "--path", "fleet"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(status.stdout.lines().any(|l| l.starts_with("app ") && l.contains("synced")), "{}", status.stdout);
    let id = edit_app_by_hand(&daemon, serde_json::json!({ "displayName": "Renamed by hand" }));
    assert_eq!(daemon.terminate(), 0, "{}", daemon.log());

    // Read-only, from the state directory: the daemon's last cycle found the app as desired at
    // this very fleet content, so the difference was made outside git.
    let status = common::patchops(repo.path(), &["status", "--path", "fleet"]);
    assert!(status.stdout.lines().any(|l| l.starts_with("app ") && l.contains("drifted")), "{}", status.stdout);

    // A restarted daemon still knows it for drift: reported under warn, not corrected.
    let daemon = Daemon::start(repo.path(), &args, &[("T", "t")]);
    let h = daemon.wait_for("the first cycle", |h| !h.is_empty());
    assert_eq!(h[0]["result"], "drifted", "{:#}", h[0]);
    assert!(h[0]["actions"].as_array().unwrap().is_empty(), "{:#}", h[0]);
    assert_eq!(app_field(&daemon, &id, "displayName"), "Renamed by hand");

    // A commit that changes the fleet is a new desired state: the difference is a change again.
    let app = std::fs::read_to_string(repo.path().join("fleet/products/app.yaml")).unwrap();
    repo.write("fleet/products/app.yaml", format!("{app}# reviewed\n"));
    repo.commit("a comment");
    let status = common::patchops(repo.path(), &["status", "--path", "fleet"]);
    assert!(status.stdout.lines().any(|l| l.starts_with("app ") && l.contains("out of sync")), "{}", status.stdout);
}
