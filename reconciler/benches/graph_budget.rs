//! Graph throttling as a budget (issue 13, item 8): publishing N apps (default 500) to the
//! emulated tenant, which enforces Intune's write limits scaled to a 1-second window (100
//! writes per app registration and 200 per tenant per second, in place of per 20 s), once
//! paced by a client-side budget of 80 writes per second and once unpaced, side by side.
//! Prints figures; asserts nothing.
//!
//! Usage: cargo bench -p reconciler --bench graph_budget -- [APPS]

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // A benchmark: failing loudly is right.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reconciler::catalog::Sha256;
use reconciler::platform::budget::WriteBudget;
use reconciler::platform::retry::{Outcome, RequestStats, RetryPolicy};
use reconciler::platform::{DesiredAssignment, DesiredObject, FieldMap, PlatformClient};

mod support;

const WINDOW: Duration = Duration::from_secs(1);

fn object(i: usize, sha: Sha256, size: u64) -> DesiredObject {
    support::exe_object(&format!("bench.app{i}"), &format!("1.{i}"), &format!("Bench {i} (x64)"), sha, size)
}

struct Run {
    elapsed: Duration,
    throttled: u64,
    writes: Option<u64>,
}

async fn publish(dir: &std::path::Path, apps: usize, budget: Option<u32>) -> Run {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
    let options = reconciler::emulate::EmulatorOptions {
        intune_write_limits: Some(reconciler::emulate::intune::WriteLimits {
            per_app: 100,
            per_tenant: 200,
            window: WINDOW,
        }),
        ..Default::default()
    };
    let tenant = dir.join(format!("tenant-{}.json", budget.map_or("unpaced".to_string(), |b| b.to_string())));
    let base = reconciler::emulate::serve(listener, reconciler::model::PlatformType::Intune, &tenant, options)
        .expect("emulator");
    let source = dir.join("setup.exe");
    let bytes = vec![7u8; 64 << 10];
    std::fs::write(&source, &bytes).expect("write");
    let sha = {
        use sha2::Digest;
        Sha256::from_bytes(sha2::Sha256::digest(&bytes).into())
    };
    let url = url::Url::from_file_path(&source).expect("file url");
    let content = reconciler::content::ContentCache::new(dir.join("cache"))
        .fetch(&url, reconciler::content::Expected { sha256: sha, size: bytes.len() as u64 })
        .await
        .expect("verified");
    let stats = Arc::new(RequestStats::default());
    let policy = RetryPolicy { attempts: 20, base: Duration::from_millis(50), max: Duration::from_secs(5) };
    let mut client = reconciler::platform::intune::IntuneClient::new(
        reconciler::model::ObjectName::new("bench").expect("name"),
        base,
    )
    .expect("client")
    .with_retry(policy)
    .with_request_stats(stats.clone());
    let shared = budget.map(|n| Arc::new(WriteBudget::new(n, WINDOW)));
    if let Some(b) = &shared {
        client = client.with_write_budget(b.clone());
    }
    let client = Arc::new(client);
    let t = Instant::now();
    // Four publishes at a time, as a platform's default concurrency runs them.
    let objects: Vec<DesiredObject> = (0..apps).map(|i| object(i, sha, bytes.len() as u64)).collect();
    let work = objects.iter().map(|o| {
        let (client, content) = (client.clone(), &content);
        async move {
            let id = client.create(o, content).await.expect("published");
            let a =
                DesiredAssignment { group: "00000000-0000-0000-0000-00000000beef".into(), fields: FieldMap::default() };
            client.set_assignments(&id, std::slice::from_ref(&a)).await.expect("assigned");
        }
    });
    futures::StreamExt::collect::<Vec<()>>(futures::StreamExt::buffer_unordered(futures::stream::iter(work), 4)).await;
    let elapsed = t.elapsed();
    let throttled = stats.snapshot().get(&("bench".to_string(), Outcome::Throttled)).copied().unwrap_or(0);
    Run { elapsed, throttled, writes: shared.map(|b| b.writes()) }
}

fn main() {
    let apps: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(500);
    let dir = tempfile::tempdir_in(".").expect("tmp");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let paced = rt.block_on(publish(dir.path(), apps, Some(80)));
    let unpaced = rt.block_on(publish(dir.path(), apps, None));
    println!("{apps} apps published (create, upload, commit, assign) to the emulated tenant");
    println!("limits: 100 writes per app registration, 200 per tenant, per {WINDOW:?} (Intune's, per 20 s, scaled)");
    let writes = paced.writes.unwrap_or(0);
    println!(
        "budget 80 writes/s:  {:.1} s, {writes} writes, {:.1} writes/s ({:.0} % of the budget), {} responses 429",
        paced.elapsed.as_secs_f64(),
        writes as f64 / paced.elapsed.as_secs_f64(),
        100.0 * writes as f64 / paced.elapsed.as_secs_f64() / 80.0,
        paced.throttled
    );
    println!(
        "unpaced:             {:.1} s, {} responses 429 (each waited out per Retry-After)",
        unpaced.elapsed.as_secs_f64(),
        unpaced.throttled
    );
}
