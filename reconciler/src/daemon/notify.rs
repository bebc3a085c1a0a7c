//! Notifications: outgoing webhooks on applied changes, failures, drift, a stalled fleet and
//! refused catalogs or commits, to the targets the fleet's `Reconciler` names — patchops's own
//! JSON (signed with HMAC-SHA256 in `X-Patchops-Signature-256` when the target has a secret),
//! a Slack message, or a Microsoft Teams message with an Adaptive Card. An event is sent once
//! for the same object in the same state (a key of the event and what it is about), each
//! delivery runs in a task of its own with retries and backoff, and nothing waits for it: the
//! loop never blocks on a slow receiver. URLs and keys are secret references, read when sent.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use serde_json::{json, Value};

use super::cycle::{CycleReport, CycleResult};
use crate::model::kinds::{NotificationEvent, NotificationFormat, NotificationTarget};
use crate::model::Secrets;

/// Attempts per delivery.
pub const ATTEMPTS: u32 = 4;
/// Event keys remembered for de-duplication.
const REMEMBERED: usize = 4096;

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What happened.
    pub kind: NotificationEvent,
    /// The same key means the same event about the same state: sent once.
    pub key: String,
    /// One line.
    pub title: String,
    /// The detail, for people.
    pub text: String,
    /// The detail, for machines.
    pub details: Value,
    /// The fleet commit.
    pub commit: Option<String>,
}

/// The events a cycle gives rise to.
pub fn events(report: &CycleReport, stalled: Option<&str>) -> Vec<Event> {
    let commit = report.commit.clone();
    let short = commit.as_deref().map(|c| c.get(..12).unwrap_or(c).to_string()).unwrap_or_else(|| "-".into());
    let mut out = Vec::new();
    let applied: Vec<&super::cycle::AppliedAction> =
        report.actions.iter().filter(|a| a.result == "succeeded").collect();
    if !applied.is_empty() {
        let lines: Vec<String> = applied
            .iter()
            .map(|a| {
                format!(
                    "{} {} on {}{}",
                    a.action,
                    a.product,
                    a.platform,
                    a.ring.as_deref().map(|r| format!(" / {r}")).unwrap_or_default()
                )
            })
            .collect();
        out.push(Event {
            kind: NotificationEvent::Applied,
            key: format!("applied:{short}:{}", lines.join(",")),
            title: format!("patchops applied {} change(s) from {short}", applied.len()),
            text: lines.join("\n"),
            details: json!({ "actions": applied }),
            commit: commit.clone(),
        });
    }
    let failed: Vec<&super::cycle::AppliedAction> = report.actions.iter().filter(|a| a.result == "failed").collect();
    if !failed.is_empty() || report.result == CycleResult::Failed {
        let mut lines: Vec<String> = failed
            .iter()
            .map(|a| {
                format!("{} {} on {}: {}", a.action, a.product, a.platform, a.message.as_deref().unwrap_or("failed"))
            })
            .collect();
        if let Some(e) = &report.error {
            lines.push(e.clone());
        }
        if report.refused {
            out.push(Event {
                kind: NotificationEvent::Refused,
                key: format!("refused:{}", lines.join(",")),
                title: format!(
                    "patchops refused the fleet at {short}: {}",
                    report.reason.as_deref().unwrap_or("refused")
                ),
                text: lines.join("\n"),
                details: json!({ "reason": report.reason, "error": report.error }),
                commit: commit.clone(),
            });
        } else {
            out.push(Event {
                kind: NotificationEvent::Failed,
                key: format!("failed:{short}:{}", lines.join(",")),
                title: format!("patchops failed at {short}"),
                text: lines.join("\n"),
                details: json!({ "reason": report.reason, "error": report.error, "actions": failed }),
                commit: commit.clone(),
            });
        }
    }
    for d in &report.drift {
        let fields: Vec<String> =
            d.fields.iter().map(|f| format!("{}: expected {:?}, actual {:?}", f.field, f.expected, f.actual)).collect();
        out.push(Event {
            kind: NotificationEvent::Drift,
            key: format!(
                "drift:{}:{}:{}:{}",
                d.product,
                d.platform,
                d.object_id.as_deref().unwrap_or("-"),
                fields.join(",")
            ),
            title: format!(
                "{} on {} changed outside git (drift mode {})",
                d.product,
                d.platform,
                if d.mode == crate::model::kinds::DriftMode::Warn { "warn: left as is" } else { "correct: put back" }
            ),
            text: fields.join("\n"),
            details: serde_json::to_value(d).unwrap_or_default(),
            commit: commit.clone(),
        });
    }
    if let Some(e) = stalled {
        out.push(Event {
            kind: NotificationEvent::Stalled,
            key: format!("stalled:{e}"),
            title: "patchops is stalled: the fleet failed repeatedly".into(),
            text: e.to_string(),
            details: json!({ "error": e }),
            commit,
        });
    }
    out
}

/// The keys of events already sent.
#[derive(Debug, Default)]
pub struct Sent {
    order: VecDeque<String>,
    keys: HashSet<String>,
}

impl Sent {
    /// Records `key`; false when it was sent already.
    pub fn first_time(&mut self, key: &str) -> bool {
        if !self.keys.insert(key.to_string()) {
            return false;
        }
        self.order.push_back(key.to_string());
        while self.order.len() > REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.keys.remove(&old);
            }
        }
        true
    }
}

/// The body a target receives for an event.
pub fn body(format: NotificationFormat, event: &Event) -> Value {
    match format {
        NotificationFormat::Generic => json!({
            "event": event.kind.as_str(),
            "title": event.title,
            "text": event.text,
            "commit": event.commit,
            "details": event.details,
        }),
        NotificationFormat::Slack => json!({
            "text": format!("*{}*\n{}", event.title, event.text),
        }),
        NotificationFormat::Teams => json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        { "type": "TextBlock", "size": "Medium", "weight": "Bolder", "text": event.title, "wrap": true },
                        { "type": "TextBlock", "text": event.text, "wrap": true },
                    ],
                },
            }],
        }),
    }
}

/// Sends `event` to every target that wants it, each delivery in a task of its own.
pub fn dispatch(client: &reqwest::Client, targets: &[NotificationTarget], secrets: &Secrets, event: &Event) {
    for t in targets {
        if t.events.as_ref().is_some_and(|e| !e.contains(&event.kind)) {
            continue;
        }
        let url = match secrets.read(&t.url) {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(target = %t.name, error = %e, "cannot read the notification URL; not sent");
                continue;
            }
        };
        let key = match &t.secret {
            None => None,
            Some(r) => match secrets.read(r) {
                Ok(k) => Some(k),
                Err(e) => {
                    tracing::warn!(target = %t.name, error = %e, "cannot read the notification secret; not sent");
                    continue;
                }
            },
        };
        let (client, name, format, event) = (client.clone(), t.name.clone(), t.format, event.clone());
        tokio::spawn(async move { deliver(&client, &name, format, &url, key.as_deref(), &event).await });
    }
}

async fn deliver(
    client: &reqwest::Client,
    name: &str,
    format: NotificationFormat,
    url: &str,
    key: Option<&str>,
    event: &Event,
) {
    let payload = serde_json::to_vec(&body(format, event)).unwrap_or_default();
    let delivery = uuid::Uuid::new_v4().to_string();
    let mut wait = Duration::from_millis(500);
    for attempt in 1..=ATTEMPTS {
        let mut req = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-patchops-event", event.kind.as_str())
            .header("x-patchops-delivery", &delivery)
            .body(payload.clone());
        if let Some(k) = key {
            req = req.header("x-patchops-signature-256", super::webhook::sign(k, &payload));
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => {
                tracing::info!(target = name, event = event.kind.as_str(), "notification sent");
                return;
            }
            Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
                tracing::warn!(
                    target = name,
                    status = r.status().as_u16(),
                    "the notification was refused; not retried"
                );
                return;
            }
            Ok(r) => {
                tracing::warn!(target = name, status = r.status().as_u16(), attempt, "notification failed; retrying")
            }
            Err(e) => tracing::warn!(target = name, error = %e.without_url(), attempt, "notification failed; retrying"),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(30));
    }
    tracing::error!(target = name, event = event.kind.as_str(), "the notification could not be delivered");
}
