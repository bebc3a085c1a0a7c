//! Catalogs fetched over real HTTP on loopback (an axum server started by the test).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use common::{catalog, fleet_files, key, patchops, sign, Repo};

/// Serves `files` by name on 127.0.0.1; 404 for anything else. Returns the base URL.
fn serve(files: HashMap<String, Vec<u8>>) -> String {
    let app = Router::new()
        .route(
            "/{name}",
            get(|State(files): State<Arc<HashMap<String, Vec<u8>>>>, Path(name): Path<String>| async move {
                match files.get(&name) {
                    Some(body) => Ok(body.clone()),
                    None => Err(StatusCode::NOT_FOUND),
                }
            }),
        )
        .with_state(Arc::new(files));
    common::serve_on_loopback(app)
}

fn repo_with_catalog_url(public_key: &str, url: &str) -> Repo {
    let repo = Repo::new();
    for (p, t) in fleet_files(public_key) {
        repo.write(p, t.replace("url: ../catalog/catalog.json", &format!("url: {url}")));
    }
    repo.commit("fleet with an http catalog");
    repo
}

#[test]
fn a_catalog_served_over_http_is_fetched_and_verified() {
    let k = key();
    let c = catalog(7);
    let base = serve(HashMap::from([
        ("catalog.json".to_string(), c.clone().into_bytes()),
        ("catalog.json.minisig".to_string(), sign(&k, c.as_bytes()).into_bytes()),
    ]));
    let repo = repo_with_catalog_url(&k.public, &format!("{base}/catalog.json"));
    let run = patchops(repo.path(), &["validate", "--path", "fleet"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    common::assert_contains(&run.stdout, "catalogs verified: vendor serial 7");
}

#[test]
fn a_missing_signature_over_http_is_refused() {
    let k = key();
    let base = serve(HashMap::from([("catalog.json".to_string(), catalog(7).into_bytes())]));
    let repo = repo_with_catalog_url(&k.public, &format!("{base}/catalog.json"));
    let run = patchops(repo.path(), &["plan", "--path", "fleet"]);
    assert_eq!(run.code, 1);
    common::assert_contains(
        &run.stderr,
        &format!("catalog source `vendor`: no signature at {base}/catalog.json.minisig"),
    );
}

#[test]
fn a_catalog_url_that_does_not_exist_names_the_url() {
    let k = key();
    let base = serve(HashMap::new());
    let repo = repo_with_catalog_url(&k.public, &format!("{base}/catalog.json?sig=SECRET-TOKEN"));
    let run = patchops(repo.path(), &["validate", "--path", "fleet"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "catalog source `vendor`: cannot read");
    common::assert_contains(&run.stderr, "not found");
    assert!(!run.stderr.contains("SECRET-TOKEN"), "a URL's query is never shown: {}", run.stderr);
    common::assert_contains(&run.stderr, "catalog.json?REDACTED");
}
