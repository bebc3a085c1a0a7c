//! The daemon's HTTP endpoint (axum; loopback by default):
//!
//! - `GET /healthz` — the process answers; `GET /readyz` — a cycle has completed;
//! - `GET /status` — conditions per target and the fleet's; `GET /history` — the last cycles;
//! - `POST /reconcile` — run a cycle now; needs `Authorization: Bearer <token>` (the token is
//!   read from a secret reference at start; without one the route is disabled);
//! - `POST /hooks/{github,gitlab,azure,generic}` — webhook deliveries ([`super::webhook`]):
//!   bodies capped, a bad signature gets 401 and nothing is fetched, a repeated delivery id and
//!   a push to another branch are acknowledged and ignored;
//! - `GET /metrics` — Prometheus text format ([`super::metrics`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, Mutex, RwLock};

use super::metrics::Metrics;
use super::status::DaemonStatus;
use super::trigger::Trigger;
use super::webhook::{self, Deliveries, Provider, WebhookSecrets};

/// What the endpoint shares with the loop.
pub struct Shared {
    /// The status the loop keeps.
    pub status: RwLock<DaemonStatus>,
    /// The metrics.
    pub metrics: Metrics,
    /// Wakes the loop.
    pub wake: mpsc::Sender<Trigger>,
    /// Webhook senders' secrets.
    pub webhooks: WebhookSecrets,
    /// The bearer token of `POST /reconcile`.
    pub token: Option<String>,
    /// The branch the daemon follows (for webhook filtering).
    pub branch: Option<String>,
    /// Delivery ids seen.
    pub deliveries: Mutex<Deliveries>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("webhooks", &self.webhooks).finish_non_exhaustive()
    }
}

/// The router.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/history", get(history))
        .route("/metrics", get(metrics))
        .route("/reconcile", post(reconcile))
        .route("/hooks/{provider}", post(hook))
        .layer(axum::extract::DefaultBodyLimit::max(webhook::MAX_BODY_BYTES))
        .with_state(shared)
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    let mut body = body.into();
    body.push('\n');
    (status, body).into_response()
}

async fn readyz(State(s): State<Arc<Shared>>) -> Response {
    if s.status.read().await.ready {
        text(StatusCode::OK, "ready")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "not ready: the first cycle has not completed")
    }
}

async fn status(State(s): State<Arc<Shared>>) -> Json<serde_json::Value> {
    Json(serde_json::to_value(&*s.status.read().await).unwrap_or_default())
}

async fn history(State(s): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let status = s.status.read().await;
    Json(serde_json::to_value(&status.history).unwrap_or_default())
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        s.metrics.encode(),
    )
        .into_response()
}

async fn reconcile(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(token) = &s.token else {
        return text(
            StatusCode::FORBIDDEN,
            "POST /reconcile is disabled: start the daemon with --token (a secret reference) to enable it",
        );
    };
    let given = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let ok = given.is_some_and(|g| g.len() == token.len() && bool::from(g.as_bytes().ct_eq(token.as_bytes())));
    if !ok {
        return text(StatusCode::UNAUTHORIZED, "a bearer token is needed: Authorization: Bearer <token>");
    }
    match s.wake.try_send(Trigger::Manual) {
        Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => text(StatusCode::ACCEPTED, "a cycle will run now"),
        Err(mpsc::error::TrySendError::Closed(_)) => text(StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping"),
    }
}

async fn hook(State(s): State<Arc<Shared>>, Path(provider): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(provider) = Provider::from_path(&provider) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("no webhook sender `{provider}`: use github, gitlab, azure or generic"),
        );
    };
    let delivery = match webhook::verify(provider, &s.webhooks, &headers, &body) {
        Ok(d) => d,
        Err(e) => {
            s.metrics.delivery(provider.as_str(), "refused");
            tracing::warn!(provider = provider.as_str(), error = %e, "webhook delivery refused");
            let status = if matches!(e, webhook::Refused::NotConfigured(_)) {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::UNAUTHORIZED
            };
            return text(status, e.to_string());
        }
    };
    if delivery.ping {
        s.metrics.delivery(provider.as_str(), "ignored");
        return text(StatusCode::OK, "pong");
    }
    if let Some(id) = &delivery.id {
        if !s.deliveries.lock().await.first_time(id) {
            s.metrics.delivery(provider.as_str(), "duplicate");
            return text(StatusCode::OK, format!("delivery {id} was seen already; ignored"));
        }
    }
    if let Some(branch) = &s.branch {
        if !webhook::concerns(&delivery, branch) {
            s.metrics.delivery(provider.as_str(), "ignored");
            return text(StatusCode::ACCEPTED, format!("the push is not to {branch}; ignored"));
        }
    }
    s.metrics.delivery(provider.as_str(), "accepted");
    let _ = s.wake.try_send(Trigger::Webhook);
    text(StatusCode::ACCEPTED, "accepted: the fleet will be fetched and reconciled")
}
