//! What the daemon reports: kstatus-style conditions per (Product, Platform, ring) and the last
//! cycles. `/status` and `/history` serve them as JSON.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::cycle::{CycleReport, CycleResult};
use crate::plan::ActionKind;

/// One condition of one target, in the kstatus style.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Reconciling`, `Stalled` or `Waiting`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether it holds.
    pub status: bool,
    /// CamelCase reason.
    pub reason: String,
    /// For people.
    pub message: String,
    /// The fleet commit it was observed at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_commit: Option<String>,
    /// When it last changed.
    pub last_transition: DateTime<Utc>,
}

/// A (Product, Platform, ring) target's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetState {
    /// The fleet Product.
    pub product: String,
    /// The Platform.
    pub platform: String,
    /// The ring (none for a retire of the whole object).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring: Option<String>,
    /// Its condition.
    pub condition: Condition,
}

/// Everything `/status` shows.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonStatus {
    /// A cycle has completed since start (`/readyz`).
    pub ready: bool,
    /// The last cycle reached the desired state (or only waits).
    pub synced: bool,
    /// The fleet's condition.
    pub fleet: Option<Condition>,
    /// The commit the last successful cycle read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Consecutive failed cycles.
    pub consecutive_failures: u32,
    /// When the scheduler wakes next, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_wake: Option<DateTime<Utc>>,
    /// Each target's condition.
    pub targets: Vec<TargetState>,
    /// The last cycles, newest last.
    #[serde(skip)]
    pub history: VecDeque<CycleReport>,
    #[serde(skip)]
    history_limit: usize,
}

impl DaemonStatus {
    /// An empty status keeping the last `history_limit` cycles.
    pub fn new(history_limit: usize) -> DaemonStatus {
        DaemonStatus {
            ready: false,
            synced: false,
            fleet: None,
            commit: None,
            consecutive_failures: 0,
            next_wake: None,
            targets: Vec::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
        }
    }

    fn transition(old: Option<&Condition>, mut new: Condition) -> Condition {
        if let Some(old) = old {
            if old.kind == new.kind && old.status == new.status && old.reason == new.reason {
                new.last_transition = old.last_transition;
            }
        }
        new
    }

    /// Takes in a finished cycle; `stalled` is the error policy's verdict.
    pub fn record(&mut self, report: CycleReport, consecutive_failures: u32, stalled: Option<&str>) {
        let now = report.started;
        self.ready = true;
        self.consecutive_failures = consecutive_failures;
        let commit = report.commit.clone().or_else(|| self.commit.clone());
        let fleet = match (report.result, stalled) {
            (CycleResult::Failed, Some(e)) => Condition {
                kind: "Stalled".into(),
                status: true,
                reason: report.reason.clone().unwrap_or_else(|| "Failed".into()),
                message: format!("{consecutive_failures} cycles failed in a row; last: {e}"),
                observed_commit: commit.clone(),
                last_transition: now,
            },
            (CycleResult::Failed, None) => Condition {
                kind: "Reconciling".into(),
                status: true,
                reason: report.reason.clone().unwrap_or_else(|| "Failed".into()),
                message: format!("the cycle failed and is retried: {}", report.error.clone().unwrap_or_default()),
                observed_commit: commit.clone(),
                last_transition: now,
            },
            (result, _) => Condition {
                kind: "Ready".into(),
                status: matches!(result, CycleResult::Synced | CycleResult::Applied),
                reason: match result {
                    CycleResult::Synced => "Synced",
                    CycleResult::Applied => "Applied",
                    CycleResult::Pending => "ChangesPending",
                    CycleResult::Degraded => "Degraded",
                    CycleResult::Drifted => "Drifted",
                    CycleResult::Failed => "Failed",
                }
                .into(),
                message: format!(
                    "{} applied, {} waiting, {} denied, {} pending",
                    report.actions.len(),
                    report.waiting,
                    report.denied,
                    report.pending
                ),
                observed_commit: commit.clone(),
                last_transition: now,
            },
        };
        self.fleet = Some(Self::transition(self.fleet.as_ref(), fleet));
        self.synced = matches!(report.result, CycleResult::Synced | CycleResult::Applied);
        if report.result != CycleResult::Failed {
            self.commit = commit.clone();
            self.targets = self.targets_from(&report, commit.as_deref(), now);
        }
        self.history.push_back(report);
        while self.history.len() > self.history_limit {
            self.history.pop_front();
        }
    }

    fn targets_from(&self, report: &CycleReport, commit: Option<&str>, now: DateTime<Utc>) -> Vec<TargetState> {
        let Some(plan) = &report.plan else { return self.targets.clone() };
        let previous: BTreeMap<(String, String, Option<String>), &Condition> = self
            .targets
            .iter()
            .map(|t| ((t.product.clone(), t.platform.clone(), t.ring.clone()), &t.condition))
            .collect();
        let mut out = Vec::new();
        for a in &plan.actions {
            let key = (a.product.to_string(), a.platform.to_string(), a.ring.as_deref().map(str::to_string));
            let applied = report.actions.iter().find(|x| {
                x.product == key.0 && x.platform == key.1 && x.ring == key.2 && x.action == a.action.as_str()
            });
            let drifted = report.drift.iter().find(|d| d.product == key.0 && d.platform == key.1 && d.ring == key.2);
            let (kind, status, reason, message) = if let Some(d) = drifted {
                let fields: Vec<String> = d
                    .fields
                    .iter()
                    .map(|f| {
                        format!(
                            "{}: expected {:?}, actual {:?}",
                            f.field,
                            f.expected.as_deref().unwrap_or("(none)"),
                            f.actual.as_deref().unwrap_or("(none)")
                        )
                    })
                    .collect();
                let corrected = d.mode == crate::model::kinds::DriftMode::Correct
                    && applied.is_some_and(|x| x.result == "succeeded");
                let reason = if corrected { "DriftCorrected" } else { "DriftNotCorrected" };
                ("Drifted", true, reason.to_string(), format!("changed outside git: {}", fields.join("; ")))
            } else if let Some(x) = applied {
                if x.result == "succeeded" {
                    ("Ready", true, "Applied".to_string(), format!("{} applied", x.action))
                } else {
                    ("Ready", false, "ActionFailed".to_string(), x.message.clone().unwrap_or_default())
                }
            } else if !a.denied.is_empty() {
                let d = &a.denied[0];
                ("Ready", false, "PolicyDenied".to_string(), format!("denied by policy {}: {}", d.policy, d.message))
            } else if let Some(w) = &a.waiting {
                let kind = if w.reason == "Suspended" { "Suspended" } else { "Waiting" };
                (kind, true, w.reason.clone(), w.message.clone())
            } else if a.action == ActionKind::None {
                ("Ready", true, "UpToDate".to_string(), "as desired".to_string())
            } else {
                ("Reconciling", true, "ChangePending".to_string(), format!("{} pending", a.action.as_str()))
            };
            let condition = Condition {
                kind: kind.into(),
                status,
                reason,
                message,
                observed_commit: commit.map(str::to_string),
                last_transition: now,
            };
            let condition = Self::transition(previous.get(&key).copied(), condition);
            out.push(TargetState { product: key.0, platform: key.1, ring: key.2, condition });
        }
        out
    }
}
