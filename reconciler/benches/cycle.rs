//! The daemon's reconcile cycle at scale (issue 11): a no-op cycle of 10,000 products × 3
//! platforms on recorded inventories, side by side with the one-shot `plan` of the same fleet
//! (the reference: what the cycle would cost without the daemon's shortcuts), and resident
//! memory over 1,000 cycles (it must stay flat).
//!
//! Run: `cargo bench -p reconciler --bench cycle` (it generates the fleets with the
//! `synthetic_fleet` example, every product recorded as desired: the plan is empty).
//! `PATCHOPS_BENCH_PRODUCTS` and `PATCHOPS_BENCH_CYCLES` change the sizes.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // A benchmark: failing loudly is right.
#![allow(clippy::disallowed_methods)] // A benchmark reads its sizes from the environment itself.

use std::path::Path;
use std::time::{Duration, Instant};

use reconciler::platform::PlatformClient;
use reconciler::vocab::ObjectName;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn generate(dir: &Path, products: usize) {
    let status = std::process::Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--release", "-p", "reconciler", "--example", "synthetic_fleet", "--"])
        .arg(dir)
        .args([products.to_string().as_str(), "in-sync"])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("cargo run --example synthetic_fleet");
    assert!(status.success(), "the synthetic fleet generator failed");
}

fn source(dir: &Path) -> reconciler::source::SourceOptions {
    reconciler::source::SourceOptions {
        repo: dir.display().to_string(),
        rev: None,
        path: "fleet".into(),
        worktree: false,
        cache_dir: dir.join("cache"),
        limits: Default::default(),
    }
}

fn context(dir: &Path) -> reconciler::context::Context {
    reconciler::context::Context::new(
        reconciler::state::StateDir::new(dir.join("state")),
        reconciler::model::Secrets::default(),
    )
}

fn rss_mib() -> f64 {
    let pages: f64 = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse().ok()))
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

fn stats(mut d: Vec<Duration>) -> String {
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1000.0;
    format!(
        "median {:8.1} ms, min {:8.1} ms, max {:8.1} ms ({} runs)",
        ms(d[d.len() / 2]),
        ms(d[0]),
        ms(d[d.len() - 1]),
        d.len()
    )
}

async fn cycle(
    ctx: &reconciler::context::Context,
    source: &reconciler::source::SourceOptions,
    baseline: &reconciler::daemon::drift::Baseline,
) -> reconciler::daemon::cycle::CycleReport {
    let held = reconciler::daemon::cycle::Held::new();
    reconciler::daemon::cycle::run(ctx, source, false, reconciler::daemon::trigger::Trigger::Poll, baseline, &held)
        .await
}

fn main() {
    let env = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (products, cycles) = (env("PATCHOPS_BENCH_PRODUCTS", 10_000), env("PATCHOPS_BENCH_CYCLES", 1_000));
    if std::env::var_os("RUST_LOG").is_some() {
        // Stage timings (`RUST_LOG=reconciler=debug`): where a cycle spends its time.
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    // 1. A no-op cycle at scale, beside the one-shot plan of the same fleet.
    let big = tempfile::tempdir().unwrap();
    generate(big.path(), products);
    // The daemon's context keeps a memo between cycles (as `patchops run` does); the
    // reference plans without one.
    let (ctx, src) = (context(big.path()).with_memo(), source(big.path()));
    let reference = context(big.path());
    let first = rt.block_on(cycle(&ctx, &src, &Default::default()));
    assert_eq!(first.result.as_str(), "synced", "the fleet is recorded as desired: {:?}", first.error);
    let mut baseline = reconciler::daemon::drift::Baseline::of(first.plan.as_ref().unwrap());
    let (mut noop, mut plan) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        let t = Instant::now();
        let r = rt.block_on(cycle(&ctx, &src, &baseline));
        noop.push(t.elapsed());
        assert_eq!(r.result.as_str(), "synced");
        baseline = reconciler::daemon::drift::Baseline::of(r.plan.as_ref().unwrap());
        let t = Instant::now();
        let p = rt.block_on(reconciler::ops::plan(&reference, &src)).expect("plan");
        plan.push(t.elapsed());
        assert_eq!(p.plan.applicable().count(), 0);
    }
    // What a no-op cycle must redo whatever it remembers: the three platforms observed (their
    // recorded inventories read and parsed), side by side as the cycle does it.
    let state = reconciler::state::StateDir::new(big.path().join("state"));
    let platforms: Vec<reconciler::platform::inventory::InventoryPlatform> = [
        ("wsus-hq", reconciler::vocab::PlatformType::Wsus),
        ("configmgr-hq", reconciler::vocab::PlatformType::Configmgr),
        ("configmgr-east", reconciler::vocab::PlatformType::Configmgr),
    ]
    .into_iter()
    .map(|(n, ty)| reconciler::platform::inventory::InventoryPlatform::new(ObjectName::new(n).unwrap(), ty, &state))
    .collect();
    let mut observe = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let all = rt.block_on(futures::future::join_all(platforms.iter().map(|p| p.observe())));
        observe.push(t.elapsed());
        assert!(all.iter().all(|o| o.as_ref().is_ok_and(|o| o.objects.len() >= products)), "three recorded platforms");
    }
    println!("no-op cycle, {products} products x 3 platforms on recorded inventories (goal < 200 ms)");
    println!("  daemon cycle        {}", stats(noop));
    println!("  reference: ops::plan {}", stats(plan));
    println!("  observation alone   {}", stats(observe));
    let hits = ctx.memo().map(|m| m.hits()).unwrap_or_default();
    println!("  memo hits over {} cycles: fleet {}, catalogs {}, plans {}", 11, hits.fleet, hits.catalogs, hits.plans);
    // The memo holds the 10,000-product fleet and plan: gone before the memory phase.
    drop((ctx, reference));
    drop(big);

    // 2. Resident memory over many cycles of a smaller fleet.
    let small = tempfile::tempdir().unwrap();
    generate(small.path(), 200);
    let (ctx, src) = (context(small.path()).with_memo(), source(small.path()));
    let mut baseline = reconciler::daemon::drift::Baseline::default();
    let mut marks = Vec::new();
    let started = Instant::now();
    for i in 1..=cycles {
        let r = rt.block_on(cycle(&ctx, &src, &baseline));
        assert_eq!(r.result.as_str(), "synced", "cycle {i}: {:?}", r.error);
        baseline = reconciler::daemon::drift::Baseline::of(r.plan.as_ref().unwrap());
        if i == 1 || i % (cycles / 10).max(1) == 0 {
            marks.push((i, rss_mib()));
        }
    }
    println!(
        "resident memory over {cycles} no-op cycles of 200 products x 3 platforms ({:.1} s, {:.1} ms per cycle)",
        started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64() * 1000.0 / cycles as f64
    );
    println!("  {}", marks.iter().map(|(i, m)| format!("{i}: {m:.1} MiB")).collect::<Vec<_>>().join(", "));
}
