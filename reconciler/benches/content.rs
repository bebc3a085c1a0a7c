//! Download-and-verify throughput over loopback HTTP, against `openssl dgst -sha256` of the same
//! file in the same run, and peak memory. Prints figures; asserts nothing.
//!
//! Usage: cargo bench -p reconciler --bench content -- [SIZE_MIB] [ROUNDS]   (default 1024 MiB, 5)
//! Peak memory: /usr/bin/time -f %M target/release/deps/content-* 2048 1
//!
//! Each round times `dd oflag=direct` of the file (the disk's floor) and `openssl dgst -sha256`
//! of it (the hash's), then a patchops download of it into a
//! fresh content cache; the figures of every round and the median ratio are printed. The source
//! file is written back to disk before the first round, so the kernel's flushing of it does not
//! compete with the cache writes being measured.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // A benchmark: failing loudly is right.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use reconciler::catalog::Sha256;
use reconciler::content::{ContentCache, Expected};
use sha2::Digest;

mod support;

// The `patchops` binary allocates with mimalloc (src/main.rs); measure the same. With glibc's
// malloc every ~290 KiB chunk hyper receives is a fresh mmap, so the receiving thread spends a
// tenth of its time in page faults and zeroing pages, and the download stalls the hash.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut numbers = std::env::args().skip(1).filter_map(|a| a.parse::<u64>().ok());
    let mib = numbers.next().unwrap_or(1024);
    let rounds = numbers.next().unwrap_or(5).max(1);
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("installer.bin");

    let digest = support::pseudo_random_file(&file, mib);
    println!("  (peak memory after generating the file: {} MiB)", peak_mib());
    let expected = Expected { sha256: Sha256::from_bytes(digest), size: mib << 20 };

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
    let axum_url = url::Url::parse(&format!("http://{addr}/installer.bin")).expect("url");
    // A real web server in its own process, sending with sendfile(2) as a CDN does, when nginx is
    // installed: the harness's own server then costs the two cores far less.
    let nginx = Nginx::start(dir.path(), &file);
    let url = match &nginx {
        Some(n) => {
            println!("server: nginx (sendfile) on {}", n.url);
            n.url.clone()
        }
        None => {
            println!("server: axum in this process (install nginx to serve with sendfile from another process)");
            axum_url
        }
    };

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
    println!("  (peak memory after the diagnostic download: {} MiB)", peak_mib());
    assert_eq!(Sha256::from_bytes(hashed_only.into()), expected.sha256);

    let gbps = |d: Duration| (mib as f64 / 1024.0) / d.as_secs_f64();
    println!("size: {mib} MiB, {rounds} rounds");
    println!(
        "  (diagnostic: download+hash, no cache write: {:.3} s, {:.2} GiB/s)",
        hash_only.as_secs_f64(),
        gbps(hash_only)
    );
    let mut ratios = Vec::new();
    let mut floor_ratios = Vec::new();
    for round in 1..=rounds {
        // The disk's floor: the same bytes copied to the same file system with O_DIRECT writes
        // (what the cache does), nothing hashed, nothing received.
        let floor_dir = tempfile::tempdir().expect("tmp");
        let t = Instant::now();
        let dd = std::process::Command::new("dd")
            .arg(format!("if={}", file.display()))
            .arg(format!("of={}", floor_dir.path().join("floor").display()))
            .args(["bs=1M", "oflag=direct", "status=none"])
            .status();
        let floor = t.elapsed();
        let floor_ok = dd.map(|s| s.success()).unwrap_or(false);
        drop(floor_dir);

        // openssl on the same file (warm page cache, as the server's reads are).
        let t = Instant::now();
        let status = std::process::Command::new("openssl").arg("dgst").arg("-sha256").arg(&file).output();
        let openssl = t.elapsed();
        let openssl_ok = status.map(|o| o.status.success()).unwrap_or(false);

        let cache_dir = tempfile::tempdir().expect("tmp");
        let t = Instant::now();
        let cpu = cpu_time();
        let v = rt.block_on(ContentCache::new(cache_dir.path()).fetch(&url, expected)).expect("verified");
        let ours = t.elapsed();
        let cpu = cpu_time() - cpu;
        assert_eq!(v.size(), mib << 20);
        drop(cache_dir);

        print!(
            "round {round}: patchops download+verify {:.3} s ({:.2} GiB/s, {:.2} s CPU, peak memory {} MiB)",
            ours.as_secs_f64(),
            gbps(ours),
            cpu.as_secs_f64(),
            peak_mib()
        );
        if openssl_ok {
            let ratio = openssl.as_secs_f64() / ours.as_secs_f64();
            ratios.push(ratio);
            println!(
                ", openssl dgst -sha256 {:.3} s ({:.2} GiB/s), ratio {ratio:.2}",
                openssl.as_secs_f64(),
                gbps(openssl)
            );
        } else {
            println!(" (openssl not found: install it to compare)");
        }
        if floor_ok {
            let ratio = floor.as_secs_f64() / ours.as_secs_f64();
            floor_ratios.push(ratio);
            println!(
                "  floor: dd oflag=direct of the same file {:.3} s ({:.2} GiB/s), ratio patchops / dd {ratio:.2}",
                floor.as_secs_f64(),
                gbps(floor)
            );
        }
    }
    print_median("ratio (patchops / dd oflag=direct speed)", &mut floor_ratios);
    print_median("ratio (patchops / openssl speed)", &mut ratios);
}

/// Prints the median and range of `ratios`, when there are any.
fn print_median(what: &str, ratios: &mut [f64]) {
    if ratios.is_empty() {
        return;
    }
    ratios.sort_by(f64::total_cmp);
    println!("{what}: median {:.2}, range {:.2}–{:.2}", ratios[ratios.len() / 2], ratios[0], ratios[ratios.len() - 1]);
}

/// Peak resident memory of this process so far, in MiB (VmHWM).
fn peak_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// CPU time of this process so far (user + system, every thread).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 per second here).
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// nginx serving the directory of one file on a free loopback port, until dropped.
struct Nginx {
    child: std::process::Child,
    url: url::Url,
}

impl Nginx {
    fn start(dir: &std::path::Path, file: &std::path::Path) -> Option<Nginx> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let prefix = dir.join("nginx");
        std::fs::create_dir_all(prefix.join("logs")).ok()?;
        let root = file.parent()?.display().to_string();
        let tmp = prefix.join("tmp").display().to_string();
        let conf = format!(
            "daemon off; master_process off; worker_processes 1; pid {p}/nginx.pid; error_log stderr;\n\
             events {{ worker_connections 16; }}\n\
             http {{ access_log off; sendfile on; tcp_nopush on; client_body_temp_path {tmp}; \
             proxy_temp_path {tmp}; fastcgi_temp_path {tmp}; uwsgi_temp_path {tmp}; scgi_temp_path {tmp};\n\
             server {{ listen 127.0.0.1:{port}; root {root}; }} }}\n",
            p = prefix.display()
        );
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, conf).ok()?;
        let child = std::process::Command::new("nginx")
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf_path)
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let mut nginx = Nginx { child, url: url::Url::parse(&format!("http://127.0.0.1:{port}/installer.bin")).ok()? };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(nginx);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = nginx.child.kill();
        None
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
