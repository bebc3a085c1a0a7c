//! Webhook deliveries: who sent them (checked before anything else) and whether they concern
//! the watched branch. A delivery only wakes the loop, which then fetches and verifies the
//! fleet itself: nothing in a payload is trusted for content.
//!
//! - GitHub: `X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body>`, delivery id
//!   `X-GitHub-Delivery`, event `X-GitHub-Event` (`push`; `ping` is answered, not acted on);
//! - GitLab: `X-Gitlab-Token` equal to the secret (compared in constant time), delivery id
//!   `X-Gitlab-Event-UUID`;
//! - Azure DevOps: a service hook with basic authentication (`user:password` compared in
//!   constant time), delivery id the notification's `id`;
//! - generic: `X-Patchops-Signature-256: sha256=<HMAC-SHA256 of the body>`, delivery id
//!   `X-Patchops-Delivery`.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The largest body a webhook may send; larger deliveries are refused with 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Delivery ids remembered, to ignore redeliveries.
pub const REMEMBERED_DELIVERIES: usize = 1024;

/// The senders a daemon accepts, each with its secret (read by reference at start; never
/// shown).
#[derive(Clone, Default)]
pub struct WebhookSecrets {
    /// GitHub's webhook secret.
    pub github: Option<String>,
    /// GitLab's secret token.
    pub gitlab: Option<String>,
    /// Azure DevOps service hook basic authentication, as `user:password`.
    pub azure: Option<String>,
    /// The generic sender's HMAC key.
    pub generic: Option<String>,
}

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSecrets")
            .field("github", &self.github.is_some())
            .field("gitlab", &self.gitlab.is_some())
            .field("azure", &self.azure.is_some())
            .field("generic", &self.generic.is_some())
            .finish()
    }
}

/// Webhook senders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// GitHub.
    Github,
    /// GitLab.
    Gitlab,
    /// Azure DevOps.
    Azure,
    /// Any sender that signs with HMAC-SHA256.
    Generic,
}

impl Provider {
    /// From the URL path segment (`/hooks/<provider>`).
    pub fn from_path(s: &str) -> Option<Provider> {
        match s {
            "github" => Some(Provider::Github),
            "gitlab" => Some(Provider::Gitlab),
            "azure" | "azure-devops" => Some(Provider::Azure),
            "generic" => Some(Provider::Generic),
            _ => None,
        }
    }

    /// As written in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Github => "github",
            Provider::Gitlab => "gitlab",
            Provider::Azure => "azure",
            Provider::Generic => "generic",
        }
    }
}

/// What a delivery is, once its sender is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The sender's delivery id, when it gives one.
    pub id: Option<String>,
    /// The branches it says were pushed (full refs such as `refs/heads/main`); empty when it
    /// names none.
    pub refs: Vec<String>,
    /// A ping or test delivery: acknowledged, nothing to fetch.
    pub ping: bool,
}

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No secret is configured for this sender: its deliveries are not accepted.
    #[error("webhooks from {0} are not configured on this daemon")]
    NotConfigured(&'static str),
    /// The signature, token or credentials do not match.
    #[error("the delivery's signature does not match")]
    BadSignature,
}

impl Refused {
    /// A stable CamelCase reason, for machines.
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::NotConfigured(_) => "WebhookNotConfigured",
            Refused::BadSignature => "WebhookSignatureMismatch",
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`, in
/// constant time.
pub fn hmac_matches(secret: &str, body: &[u8], signature: Option<&str>) -> bool {
    let Some(hex_sig) = signature.and_then(|s| s.trim().strip_prefix("sha256=")) else { return false };
    let Ok(expected) = hex::decode(hex_sig) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Verifies a delivery from `provider` and reads its id and branches.
pub fn verify(
    provider: Provider,
    secrets: &WebhookSecrets,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Delivery, Refused> {
    let json = || serde_json::from_slice::<serde_json::Value>(body).unwrap_or_default();
    let refs_of = |v: &serde_json::Value| v["ref"].as_str().map(|r| vec![r.to_string()]).unwrap_or_default();
    match provider {
        Provider::Github => {
            let secret = secrets.github.as_deref().ok_or(Refused::NotConfigured("GitHub"))?;
            if !hmac_matches(secret, body, header(headers, "x-hub-signature-256")) {
                return Err(Refused::BadSignature);
            }
            let v = json();
            Ok(Delivery {
                id: header(headers, "x-github-delivery").map(str::to_string),
                refs: refs_of(&v),
                ping: header(headers, "x-github-event") == Some("ping"),
            })
        }
        Provider::Gitlab => {
            let secret = secrets.gitlab.as_deref().ok_or(Refused::NotConfigured("GitLab"))?;
            if !header(headers, "x-gitlab-token").is_some_and(|t| same(t, secret)) {
                return Err(Refused::BadSignature);
            }
            let v = json();
            Ok(Delivery {
                id: header(headers, "x-gitlab-event-uuid").map(str::to_string),
                refs: refs_of(&v),
                ping: false,
            })
        }
        Provider::Azure => {
            let expected = secrets.azure.as_deref().ok_or(Refused::NotConfigured("Azure DevOps"))?;
            let given = header(headers, "authorization")
                .and_then(|a| a.strip_prefix("Basic "))
                .and_then(|b| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b.trim()).ok())
                .and_then(|b| String::from_utf8(b).ok());
            if !given.as_deref().is_some_and(|g| same(g, expected)) {
                return Err(Refused::BadSignature);
            }
            let v = json();
            let refs = v["resource"]["refUpdates"]
                .as_array()
                .map(|l| l.iter().filter_map(|r| r["name"].as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            Ok(Delivery { id: v["id"].as_str().map(str::to_string), refs, ping: false })
        }
        Provider::Generic => {
            let secret = secrets.generic.as_deref().ok_or(Refused::NotConfigured("generic senders"))?;
            if !hmac_matches(secret, body, header(headers, "x-patchops-signature-256")) {
                return Err(Refused::BadSignature);
            }
            let v = json();
            Ok(Delivery {
                id: header(headers, "x-patchops-delivery").map(str::to_string),
                refs: refs_of(&v),
                ping: false,
            })
        }
    }
}

/// Whether a delivery concerns `branch` (a delivery naming no branch does).
pub fn concerns(delivery: &Delivery, branch: &str) -> bool {
    let full = if branch.starts_with("refs/") { branch.to_string() } else { format!("refs/heads/{branch}") };
    delivery.refs.is_empty() || delivery.refs.contains(&full)
}

/// The delivery ids seen lately (bounded).
#[derive(Debug, Default)]
pub struct Deliveries {
    order: std::collections::VecDeque<String>,
    seen: std::collections::HashSet<String>,
}

impl Deliveries {
    /// Records `id`; false when it was seen already.
    pub fn first_time(&mut self, id: &str) -> bool {
        if self.seen.contains(id) {
            return false;
        }
        self.seen.insert(id.to_string());
        self.order.push_back(id.to_string());
        while self.order.len() > REMEMBERED_DELIVERIES {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }
}

/// The HMAC-SHA256 signature header value (`sha256=<hex>`) of `body` under `secret`, as a
/// sender computes it.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn github_deliveries_are_checked_by_their_hmac_and_read_for_the_branch() {
        // GitHub's documented example: secret "It's a Secret to Everybody", payload
        // "Hello, World!" → this signature (docs.github.com, "Validating webhook deliveries").
        let secrets = WebhookSecrets { github: Some("It's a Secret to Everybody".into()), ..Default::default() };
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let ok = verify(Provider::Github, &secrets, &headers(&[("x-hub-signature-256", sig)]), b"Hello, World!");
        assert_eq!(ok, Ok(Delivery { id: None, refs: vec![], ping: false }));
        let forged = verify(Provider::Github, &secrets, &headers(&[("x-hub-signature-256", sig)]), b"Hello, World?");
        assert_eq!(forged, Err(Refused::BadSignature));
        let unsigned = verify(Provider::Github, &secrets, &HeaderMap::new(), b"Hello, World!");
        assert_eq!(unsigned, Err(Refused::BadSignature));
        let body = br#"{"ref":"refs/heads/feature"}"#;
        let d = verify(
            Provider::Github,
            &secrets,
            &headers(&[
                ("x-hub-signature-256", &sign("It's a Secret to Everybody", body)),
                ("x-github-delivery", "d-1"),
            ]),
            body,
        )
        .unwrap();
        assert_eq!(d.id.as_deref(), Some("d-1"));
        assert!(!concerns(&d, "main") && concerns(&d, "feature"));
    }

    #[test]
    fn gitlab_tokens_azure_credentials_and_unconfigured_senders() {
        let secrets =
            WebhookSecrets { gitlab: Some("t0ken".into()), azure: Some("hook:pa55".into()), ..Default::default() };
        assert!(verify(Provider::Gitlab, &secrets, &headers(&[("x-gitlab-token", "t0ken")]), b"{}").is_ok());
        assert_eq!(
            verify(Provider::Gitlab, &secrets, &headers(&[("x-gitlab-token", "t0kem")]), b"{}"),
            Err(Refused::BadSignature)
        );
        let basic =
            format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "hook:pa55"));
        let body = br#"{"id":"n-7","resource":{"refUpdates":[{"name":"refs/heads/main"}]}}"#;
        let d = verify(Provider::Azure, &secrets, &headers(&[("authorization", &basic)]), body).unwrap();
        assert_eq!((d.id.as_deref(), concerns(&d, "main")), (Some("n-7"), true));
        assert_eq!(
            verify(Provider::Generic, &secrets, &HeaderMap::new(), b"{}"),
            Err(Refused::NotConfigured("generic senders"))
        );
    }

    #[test]
    fn a_delivery_id_counts_once() {
        let mut d = Deliveries::default();
        assert!(d.first_time("a"));
        assert!(!d.first_time("a"));
        for i in 0..REMEMBERED_DELIVERIES {
            d.first_time(&i.to_string());
        }
        assert!(d.first_time("a"), "forgotten after {REMEMBERED_DELIVERIES} others");
    }
}
