//! Download-and-verify throughput over loopback HTTP, against `openssl dgst -sha256` of the same
//! file in the same run, and peak memory. Prints figures; asserts nothing.
//!
//! Usage: cargo bench -p reconciler --bench content -- [SIZE_MIB]   (default 1024)
//! Peak memory: /usr/bin/time -f %M target/release/deps/content-* [SIZE_MIB]

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // A benchmark: failing loudly is right.

use std::time::Instant;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use reconciler::catalog::Sha256;
use reconciler::content::{ContentCache, Expected};
use sha2::Digest;

mod support;

fn main() {
    let mib: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1024);
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("installer.bin");

    let digest = support::pseudo_random_file(&file, mib);
    let expected = Expected { sha256: Sha256::from_bytes(digest), size: mib << 20 };

    // openssl on the same file (warm page cache).
    let t = Instant::now();
    let status = std::process::Command::new("openssl").arg("dgst").arg("-sha256").arg(&file).output();
    let openssl = t.elapsed();
    let openssl_ok = status.map(|o| o.status.success()).unwrap_or(false);

    // Serve it over loopback with axum, streaming from disk.
    let path = file.clone();
    let app = Router::new().route(
        "/installer.bin",
        get(move || {
            let path = path.clone();
            async move {
                let f = tokio::fs::File::open(path).await.expect("open");
                Body::from_stream(tokio_util_stream(f))
            }
        }),
    );
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(async move { axum::serve(listener, app).await.expect("serve") });

    let cache_dir = tempfile::tempdir().expect("tmp");
    let url = url::Url::parse(&format!("http://{addr}/installer.bin")).expect("url");
    let t = Instant::now();
    let v = rt.block_on(ContentCache::new(cache_dir.path()).fetch(&url, expected)).expect("verified");
    let ours = t.elapsed();
    assert_eq!(v.size(), mib << 20);

    // Diagnostic: the same download, hashed but not written anywhere (what the cache write costs).
    let t = Instant::now();
    let hashed_only = rt.block_on(async {
        let mut resp = reqwest::get(url.clone()).await.expect("get");
        let mut h = sha2::Sha256::new();
        let mut chunks = 0u64;
        while let Some(chunk) = resp.chunk().await.expect("chunk") {
            h.update(&chunk);
            chunks += 1;
        }
        println!("  (the client received {chunks} chunks, {} KiB on average)", (mib << 10) / chunks.max(1));
        h.finalize()
    });
    let hash_only = t.elapsed();
    assert_eq!(Sha256::from_bytes(hashed_only.into()), expected.sha256);

    let gbps = |d: std::time::Duration| (mib as f64 / 1024.0) / d.as_secs_f64();
    println!("size: {mib} MiB");
    println!("patchops download+verify over loopback HTTP: {:.3} s, {:.2} GiB/s", ours.as_secs_f64(), gbps(ours));
    println!(
        "  (diagnostic: download+hash, no cache write: {:.3} s, {:.2} GiB/s)",
        hash_only.as_secs_f64(),
        gbps(hash_only)
    );
    if openssl_ok {
        println!(
            "openssl dgst -sha256 (same file):           {:.3} s, {:.2} GiB/s",
            openssl.as_secs_f64(),
            gbps(openssl)
        );
        println!("ratio (patchops / openssl speed):            {:.2}", openssl.as_secs_f64() / ours.as_secs_f64());
    } else {
        println!("openssl not found: install it to compare");
    }
}

/// Streams a file in 1 MiB chunks, read on a plain thread (a file server's job, kept off the
/// async runtime so that the harness spends as little CPU as it can on its side of loopback).
fn tokio_util_stream(
    f: tokio::fs::File,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    use std::io::Read;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let mut f = futures::executor::block_on(f.into_std());
    std::thread::spawn(move || loop {
        // read_to_end fills spare capacity without zeroing it first.
        let mut buf = Vec::with_capacity(1 << 20);
        match std::io::Read::by_ref(&mut f).take(1 << 20).read_to_end(&mut buf) {
            Ok(0) => return,
            Ok(_) => {
                if tx.blocking_send(Ok(bytes::Bytes::from(buf))).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}
