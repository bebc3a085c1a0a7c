//! Packaging throughput: `.intunewin` of a generated installer against `openssl enc
//! -aes-256-cbc` of the same file in the same run. Prints figures; asserts nothing.
//!
//! Usage: cargo bench -p reconciler --bench intunewin -- [SIZE_MIB]   (default 1024)
//! Peak memory: /usr/bin/time -f %M target/release/deps/intunewin-* [SIZE_MIB]

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // A benchmark: failing loudly is right.

use std::time::Instant;

mod support;

fn main() {
    let mib: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1024);
    let dir = tempfile::tempdir_in(".").expect("tmp");
    let source = dir.path().join("setup.exe");
    let digest = support::pseudo_random_file(&source, mib);
    let t = Instant::now();
    let status = std::process::Command::new("openssl")
        .args(["enc", "-aes-256-cbc", "-K"])
        .arg("00".repeat(32))
        .arg("-iv")
        .arg("00".repeat(16))
        .arg("-in")
        .arg(&source)
        .arg("-out")
        .arg(dir.path().join("openssl.bin"))
        .status();
    let openssl = t.elapsed();
    let openssl_ok = status.map(|s| s.success()).unwrap_or(false);
    let _ = std::fs::remove_file(dir.path().join("openssl.bin"));

    let t = Instant::now();
    let packed =
        reconciler::platform::intune::intunewin::pack(&source, "setup.exe", &dir.path().join("setup.intunewin"), None)
            .expect("pack");
    let ours = t.elapsed();
    assert!(packed.encrypted_size > mib << 20);

    // End to end: verify the installer into a content cache, then publish it to the Graph
    // emulator on loopback (pack, upload in 6 MiB blocks, commit, set the committed version).
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let publish = rt.block_on(async {
        use reconciler::catalog::Sha256;
        use reconciler::platform::PlatformClient;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let base = reconciler::emulate::serve(
            listener,
            reconciler::model::PlatformType::Intune,
            &dir.path().join("tenant.json"),
            reconciler::emulate::EmulatorOptions::default(),
        )
        .expect("emulator");
        let url = url::Url::from_file_path(&source).expect("file url");
        let sha = Sha256::from_bytes(digest);
        let expected = reconciler::content::Expected { sha256: sha, size: mib << 20 };
        let content = reconciler::content::ContentCache::new(dir.path().join("cache"))
            .fetch(&url, expected)
            .await
            .expect("verified");
        let object = support::exe_object("bench.app", "1.0", "Bench (x64)", sha, mib << 20);
        let client = reconciler::platform::intune::IntuneClient::new(
            reconciler::model::ObjectName::new("bench").expect("name"),
            base,
        )
        .expect("client");
        let t = Instant::now();
        client.create(&object, &content).await.expect("published");
        t.elapsed()
    });

    let gbps = |d: std::time::Duration| (mib as f64 / 1024.0) / d.as_secs_f64();
    println!("size: {mib} MiB");
    println!(
        "patchops .intunewin (zip, SHA-256, AES-256-CBC, HMAC, outer zip): {:.3} s, {:.2} GiB/s",
        ours.as_secs_f64(),
        gbps(ours)
    );
    println!(
        "publish to the Graph emulator end to end (pack, upload, commit):  {:.3} s, {:.2} GiB/s",
        publish.as_secs_f64(),
        gbps(publish)
    );
    if openssl_ok {
        println!("openssl enc -aes-256-cbc (same file):  {:.3} s, {:.2} GiB/s", openssl.as_secs_f64(), gbps(openssl));
        println!("ratio (patchops / openssl speed):       {:.2}", openssl.as_secs_f64() / ours.as_secs_f64());
    }
}
