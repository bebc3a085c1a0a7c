//! Trust-chain link 2: installer downloads are hashed and counted as they stream, and anything
//! that does not match the catalog is refused with nothing left in the cache. Real HTTP on
//! loopback (axum), real files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use reconciler::catalog::Sha256;
use reconciler::content::{ContentCache, ContentError, Expected};
use reconciler::http::Timeouts;

const GOOD: &[u8] = b"MZ pretend this is a 64-byte installer for the content tests!!!!";

fn expected() -> Expected {
    Expected { sha256: Sha256::digest(GOOD), size: GOOD.len() as u64 }
}

fn serve() -> String {
    let mut tampered = GOOD.to_vec();
    tampered[10] ^= 0xff;
    let app = Router::new()
        .route("/good", get(|| async { GOOD.to_vec() }))
        .route("/tampered", get(move || async move { tampered.clone() }))
        .route("/truncated", get(|| async { GOOD[..40].to_vec() }))
        .route("/oversized", get(|| async { [GOOD, b"extra"].concat() }))
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .route("/loop", get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/loop")]).into_response() }))
        .route(
            "/trickle",
            get(|| async {
                // A byte every 100 ms: never silent for the read timeout, never done.
                let bytes = futures::stream::unfold(0usize, |i| async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    (i < GOOD.len()).then(|| (Ok::<_, std::io::Error>(vec![GOOD[i]]), i + 1))
                });
                axum::body::Body::from_stream(bytes)
            }),
        )
        .route(
            "/stalled",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                GOOD.to_vec()
            }),
        );
    common::serve_on_loopback(app)
}

fn cache(dir: &tempfile::TempDir) -> ContentCache {
    ContentCache::new(dir.path())
        .with_timeouts(Timeouts { connect: Duration::from_secs(5), read: Duration::from_millis(500) })
}

/// Every file left under the cache directory, temporary ones included.
fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                out.extend(files_in(&e.path()));
            } else {
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// Fetches `path` from a fresh server into a fresh cache, expecting a refusal that leaves
/// nothing in the cache; returns the server's base URL and the error.
async fn refused(path: &str) -> (String, ContentError) {
    let base = serve();
    let dir = tempfile::tempdir().expect("tmp");
    let err = fetch(&base, path, &dir).await.expect_err("refused");
    assert_eq!(files_in(dir.path()), Vec::<String>::new(), "nothing of a refused download is kept ({err})");
    (base, err)
}

async fn fetch(
    base: &str,
    path: &str,
    dir: &tempfile::TempDir,
) -> Result<reconciler::content::VerifiedContent, ContentError> {
    let url = url::Url::parse(&format!("{base}{path}")).expect("url");
    cache(dir).fetch(&url, expected()).await
}

#[tokio::test]
async fn a_matching_download_is_verified_and_cached_by_digest() {
    let base = serve();
    let dir = tempfile::tempdir().expect("tmp");
    let v = fetch(&base, "/good", &dir).await.expect("verified");
    assert_eq!(v.sha256(), expected().sha256);
    assert_eq!(v.size(), 64);
    assert_eq!(std::fs::read(v.path()).expect("read"), GOOD);
    assert_eq!(files_in(dir.path()), vec![expected().sha256.to_string()]);
    // Served from the cache afterwards, even with the server gone from the URL.
    let again = fetch("http://127.0.0.1:1", "/gone", &dir).await.expect("from the cache");
    assert_eq!(again, v);
}

#[tokio::test]
async fn a_tampered_download_is_refused_and_nothing_is_kept() {
    let (base, err) = refused("/tampered").await;
    assert!(matches!(err, ContentError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().starts_with(&format!("{base}/tampered: SHA-256 is ")), "{err}");
    assert!(err.to_string().contains(&format!("but the catalog says {}", expected().sha256)), "{err}");
}

#[tokio::test]
async fn a_truncated_download_is_refused() {
    let (base, err) = refused("/truncated").await;
    assert_eq!(err.to_string(), format!("{base}/truncated: the download ended after 40 of 64 bytes and was discarded"));
}

#[tokio::test]
async fn an_oversized_download_is_refused() {
    let (base, err) = refused("/oversized").await;
    assert_eq!(
        err.to_string(),
        format!("{base}/oversized: more than the 64 bytes the catalog says; the download was stopped and discarded")
    );
}

#[tokio::test]
async fn a_trickling_transfer_is_abandoned_by_the_stall_rule_and_leaves_nothing() {
    let base = serve();
    let dir = tempfile::tempdir().unwrap();
    let cache =
        cache(&dir).with_min_rate(reconciler::content::MinRate { bytes_per_sec: 1024, window: Duration::from_secs(1) });
    let started = std::time::Instant::now();
    let err = cache.fetch(&url::Url::parse(&format!("{base}/trickle")).unwrap(), expected()).await.unwrap_err();
    assert!(matches!(err, ContentError::TooSlow { min_rate: 1024, .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3), "abandoned after one window, not at the end");
    common::assert_contains(
        &err.to_string(),
        "slower than the minimum of 1024 bytes/s; the transfer was abandoned and discarded",
    );
    assert_eq!(files_in(dir.path()), Vec::<String>::new(), "nothing left in the cache");
}

#[tokio::test]
async fn a_stalled_transfer_times_out() {
    let (base, err) = refused("/stalled").await;
    assert!(matches!(err, ContentError::Stalled { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("{base}/stalled: no data for 500 ms; the transfer was abandoned and discarded")
    );
}

#[tokio::test]
async fn a_redirect_loop_is_refused() {
    let (base, err) = refused("/loop").await;
    assert!(matches!(err, ContentError::RedirectLoop { limit: 10, .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("{base}/loop: more than 10 redirects (a redirect loop?); nothing was downloaded")
    );
}

#[tokio::test]
async fn an_http_error_names_the_status_and_hides_the_query() {
    let (base, err) = refused("/missing?sas=SECRET").await;
    assert_eq!(err.to_string(), format!("{base}/missing?REDACTED: HTTP 404"));
}

#[tokio::test]
async fn local_files_are_verified_the_same_way() {
    let src = tempfile::tempdir().expect("tmp");
    let good = src.path().join("good.msi");
    std::fs::write(&good, GOOD).expect("write");
    let bad = src.path().join("bad.msi");
    std::fs::write(&bad, [GOOD, b"!"].concat()).expect("write");
    let dir = tempfile::tempdir().expect("tmp");
    let url = |p: &std::path::Path| url::Url::from_file_path(p).expect("file url");
    let v = cache(&dir).fetch(&url(&good), expected()).await.expect("verified");
    assert_eq!(v.size(), 64);
    let other = tempfile::tempdir().expect("tmp");
    let err = cache(&other).fetch(&url(&bad), expected()).await.expect_err("refused");
    assert!(matches!(err, ContentError::Oversized { .. }), "{err}");
    assert_eq!(files_in(other.path()), Vec::<String>::new());
}

#[tokio::test]
async fn cached_content_is_verified_again_before_use() {
    let base = serve();
    let dir = tempfile::tempdir().expect("tmp");
    let v = fetch(&base, "/good", &dir).await.expect("verified");
    std::fs::write(v.path(), b"corrupted on disk").expect("corrupt");
    let err = cache(&dir).cached(expected()).expect_err("refused");
    assert!(matches!(err, ContentError::DigestMismatch { .. }), "{err}");
    assert!(!v.path().exists(), "a corrupted cache entry is removed");
    // The next fetch downloads a good copy again.
    let fresh = fetch(&base, "/good", &dir).await.expect("verified");
    assert_eq!(std::fs::read(fresh.path()).expect("read"), GOOD);
}
