//! What `plan --emulate` found, as the plan shows it: the plan's permitted actions applied to
//! emulators seeded from the recorded inventory ([`crate::ops::emulate`]), each with how the
//! emulator took it, and how faithfully each emulator holds what was recorded.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::PlatformType;

/// The dry run on emulators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DryRun {
    /// The recording the emulators were seeded from (`--inventory DIR`, as given).
    pub recording: String,
    /// Each platform's emulator.
    pub platforms: Vec<DryRunPlatform>,
    /// Every permitted action, in the order the engine ran them.
    pub actions: Vec<DryRunAction>,
    /// Counts.
    pub summary: DryRunSummary,
}

/// One platform's emulator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DryRunPlatform {
    /// The Platform.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub platform_type: PlatformType,
    /// How many objects the emulator was seeded with.
    pub seeded: usize,
    /// Platform ids of objects the emulator, observed through the real client, shows otherwise
    /// than the recording: the dry run is not faithful for them (record again).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differs: Vec<String>,
}

/// How an emulator took an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DryRunOutcome {
    /// It went through.
    Succeeded,
    /// The emulator (or the client, before sending) refused it.
    Refused,
    /// Not tried: an earlier action of the same product and platform was refused.
    Skipped,
}

/// One action of the dry run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DryRunAction {
    /// `publish`, `update`, `reconfigure` or `retire`.
    pub action: String,
    /// The Product (or, retired, the catalog product).
    pub product: String,
    /// The Platform.
    pub platform: String,
    /// The ring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring: Option<String>,
    /// The version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// How it ended.
    pub outcome: DryRunOutcome,
    /// Why it was refused or skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The dry run's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DryRunSummary {
    /// Actions run.
    pub actions: usize,
    /// Actions that went through.
    pub succeeded: usize,
    /// Actions refused or skipped.
    pub refused: usize,
    /// Actions the fleet's policies denied (not run).
    pub denied: usize,
    /// Objects observed differently from the recording.
    pub differ: usize,
}

impl DryRun {
    /// Whether every action went through and every emulator held what was recorded.
    pub fn clean(&self) -> bool {
        self.summary.refused == 0 && self.summary.differ == 0
    }

    /// One line: what went through, what was refused.
    pub fn headline(&self) -> String {
        let s = &self.summary;
        let mut line = format!("{} of {} action(s) went through, {} refused", s.succeeded, s.actions, s.refused);
        if s.denied > 0 {
            line += &format!(", {} denied by policy (not run)", s.denied);
        }
        if s.differ > 0 {
            line += &format!(
                "; {} object(s) observed differently from the recording (the dry run is not faithful for them)",
                s.differ
            );
        }
        line
    }
}
