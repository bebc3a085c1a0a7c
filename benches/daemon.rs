//! `patchops run` latency: from a commit (a push into the watched repository) to the change
//! applied on the embedded Intune emulator, for the file-watch and the webhook triggers, over
//! 20 commits each. Prints the median and the maximum; `BENCHMARKS.md` records the figures.
//!
//! Run: `cargo bench --bench daemon` (needs git; builds the release binary first).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A benchmark reports failures by panicking.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const PUSHES: usize = 20;

fn history(rt: &tokio::runtime::Runtime, base: &str) -> Vec<Value> {
    rt.block_on(async {
        let r = reqwest::get(format!("{base}/history")).await.unwrap();
        r.json::<Value>().await.unwrap().as_array().cloned().unwrap_or_default()
    })
}

fn wait(rt: &tokio::runtime::Runtime, base: &str, done: impl Fn(&[Value]) -> bool) {
    let started = Instant::now();
    while !done(&history(rt, base)) {
        assert!(started.elapsed() < Duration::from_secs(120), "timed out");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Measures `PUSHES` commits, woken by the file watcher (`watch`) or by a signed webhook.
fn measure(watch: bool) -> (Vec<Duration>, Vec<Duration>) {
    let (repo, _key) = common::fleet_repo(1);
    let mut args =
        vec!["run", "--path", "fleet", "--listen", "127.0.0.1:0", "--interval", "1h", "--github-secret", "env:GH"];
    if !watch {
        args.push("--no-watch");
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_patchops"))
        .args(&args)
        .current_dir(repo.path())
        .env("GH", "bench-secret")
        .env("NO_COLOR", "1")
        .env("XDG_CACHE_HOME", repo.path().join(".cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on ").nth(1) {
                let _ = tx.send(rest.trim().to_string());
            }
        }
    });
    let base = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    wait(&rt, &base, |h| h.last().is_some_and(|c| c["result"] == "synced"));
    let branch = common::git(repo.path(), &["rev-parse", "--abbrev-ref", "HEAD"]);
    let push = format!("{{\"ref\":\"refs/heads/{}\"}}", branch.trim());
    let (mut first, mut all) = (Vec::new(), Vec::new());
    for i in 0..PUSHES {
        // Alternate the pinned version: every commit is an update on both rings.
        let version = if i % 2 == 0 { "\"1.0\"" } else { "latest" };
        repo.write(
            "fleet/products/app.yaml",
            format!("apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: app\nspec:\n  product: vendor.app\n  version: {version}\n  targets:\n    - platform: intune-prod\n"),
        );
        let t = Instant::now();
        let head = repo.commit(&format!("push {i}"));
        if !watch {
            let sig = reconciler::daemon::webhook::sign("bench-secret", push.as_bytes());
            rt.block_on(async {
                reqwest::Client::new()
                    .post(format!("{base}/hooks/github"))
                    .header("x-hub-signature-256", sig)
                    .header("x-github-event", "push")
                    .header("x-github-delivery", format!("bench-{i}"))
                    .body(push.clone())
                    .send()
                    .await
                    .unwrap()
            });
        }
        wait(&rt, &base, |h| h.iter().any(|c| c["commit"] == head.as_str() && c["result"] == "applied"));
        first.push(t.elapsed());
        wait(&rt, &base, |h| h.last().is_some_and(|c| c["commit"] == head.as_str() && c["result"] == "synced"));
        all.push(t.elapsed());
    }
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    (first, all)
}

fn stats(mut d: Vec<Duration>) -> String {
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1000.0;
    format!("median {:7.1} ms, max {:7.1} ms", ms(d[d.len() / 2]), ms(d[d.len() - 1]))
}

fn main() {
    // `cargo bench` passes flags such as `--bench`; there is nothing to select.
    println!("patchops run: commit → applied on the embedded Intune emulator ({PUSHES} commits each)");
    for (name, watch) in [("file watch", true), ("webhook", false)] {
        let (first, all) = measure(watch);
        println!("  {name:<10}  first ring applied: {}   every ring (synced): {}", stats(first), stats(all));
    }
}
