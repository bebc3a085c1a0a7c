//! The one place that builds HTTP clients, so timeouts, size limits and redaction always apply.

use std::time::Duration;

/// Removes credentials, query strings and fragments from a URL before it is shown or logged
/// (SAS tokens and signed URLs carry secrets in the query).
pub fn redact(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    if u.query().is_some() {
        u.set_query(Some("REDACTED"));
    }
    u.set_fragment(None);
    u.to_string()
}

/// Timeouts of an HTTP client.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Establishing the connection.
    pub connect: Duration,
    /// Waiting for the next bytes of a response: a stalled transfer fails after this long.
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { connect: Duration::from_secs(15), read: Duration::from_secs(60) }
    }
}

/// Most redirects followed; a loop fails after this many.
pub const MAX_REDIRECTS: usize = 10;

/// The shared client: connect and read timeouts, a bounded number of redirects, a user agent.
pub fn client() -> Result<reqwest::Client, String> {
    client_with(Timeouts::default())
}

/// The shared client with other timeouts.
#[allow(clippy::disallowed_methods)] // This is the one sanctioned place.
pub fn client_with(timeouts: Timeouts) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .read_timeout(timeouts.read)
        .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
        .user_agent(concat!("patchops/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// GETs a URL into memory, refusing bodies larger than `cap`. `Ok(None)` on 404.
pub async fn get_capped(url: &url::Url, cap: u64) -> Result<Option<Vec<u8>>, String> {
    let shown = redact(url);
    let mut resp = client()?.get(url.clone()).send().await.map_err(|e| format!("GET {shown}: {}", e.without_url()))?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !resp.status().is_success() {
        return Err(format!("GET {shown}: HTTP {}", resp.status()));
    }
    if resp.content_length().is_some_and(|n| n > cap) {
        return Err(format!("GET {shown}: larger than {cap} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("GET {shown}: {}", e.without_url()))? {
        if body.len() as u64 + chunk.len() as u64 > cap {
            return Err(format!("GET {shown}: larger than {cap} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}
