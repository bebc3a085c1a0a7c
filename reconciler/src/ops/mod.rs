//! The operations behind the commands, cargo-style, one module per operation: each gathers
//! its inputs through the one [`pipeline`] (load → connect/observe → decide) and returns values
//! for the command line to render. Commands stay thin; the logic lives here.
//!
//! - [`validate()`], [`plan()`], [`plan_change()`], [`status()`], [`doctor()`],
//!   [`record_inventory()`]: read-only;
//! - [`prepare_apply`] → [`ApplyRun::execute`]: the one operation that changes platforms;
//! - [`pipeline`]: the stages they share, and what the daemon's cycle runs.

mod apply;
mod doctor;
mod emulated;
mod guard;
mod inventory;
pub mod pipeline;
mod plan;
pub mod report;
mod saved;
mod status;
mod validate;

pub use apply::{prepare_apply, Applied, ApplyOptions, ApplyRun, Approval};
pub use doctor::{doctor, DoctorOptions};
pub use emulated::{emulate, Emulated, EmulatedPlatform};
pub use guard::{MassRetire, MIN_MASS_RETIRE_COUNT};
pub use inventory::record_inventory;
pub use pipeline::Loaded;
pub use plan::{plan, plan_change, Planned, PlannedChange};
pub use saved::{PlanEdit, StaleInput};
pub use status::{status, Status, TargetStatus};
pub use validate::{validate, Validated};

use crate::catalog::CatalogError;
use crate::model::{self, Diagnostics, ObjectName};
use crate::plan::SelectionError;
use crate::platform::PlatformError;
use crate::policy::{PolicyError, PolicyFinding};
use crate::source;
use crate::state::StateError;

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The source could not be read.
    #[error(transparent)]
    Source(#[from] source::SourceError),
    /// The fleet has errors.
    #[error(transparent)]
    Fleet(#[from] Diagnostics),
    /// One or more catalogs were refused.
    #[error("{}", join(.0))]
    Catalogs(Vec<CatalogError>),
    /// Products whose catalog entry cannot be used: (Product name, origin, error).
    #[error("{}", .0.iter().map(|(p, o, e)| format!("Product `{p}` ({o}): {e}")).collect::<Vec<_>>().join("\n"))]
    Selection(Vec<(ObjectName, model::Origin, SelectionError)>),
    /// The state directory failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// Platforms could not be observed.
    #[error("{}", join(.0))]
    Platforms(Vec<PlatformError>),
    /// The policies could not be loaded or evaluated.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// `apply` refused to start.
    #[error(transparent)]
    Refused(ApplyRefusal),
    /// A command named a Platform the fleet does not have.
    #[error("the fleet has no Platform `{name}`; it has {known}")]
    UnknownPlatform {
        /// The name given.
        name: String,
        /// The fleet's Platforms.
        known: String,
    },
    /// `plan --emulate` could not set its emulators up.
    #[error("plan --emulate: {0}")]
    Emulate(String),
    /// A task the operation ran off the async threads failed (a bug: it panicked).
    #[error("an internal task failed: {0}")]
    Task(String),
    /// `validate`: policies refuse what the fleet asks for.
    #[error("{}", .0.iter().map(|(s, d)| format!("{s}: denied by policy {}: {}", d.policy, d.message)).collect::<Vec<_>>().join("\n"))]
    Denied(Vec<(String, PolicyFinding)>),
}

/// Resident memory in MiB, for the `-vv` phase timings (Linux; 0 elsewhere).
pub(crate) fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096 / (1024 * 1024))
}

fn join<E: std::fmt::Display>(errors: &[E]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

/// The default share of a platform's managed objects one apply may retire.
pub const DEFAULT_MAX_RETIRE_SHARE: f64 = 0.3;

/// Why apply refused to start.
#[derive(Debug, thiserror::Error)]
pub enum ApplyRefusal {
    /// Another apply holds the state directory.
    #[error(transparent)]
    Locked(#[from] crate::state::LockError),
    /// The saved plan no longer matches its inputs.
    #[error("the saved plan is stale and was not applied:\n{}", bullets(.0))]
    Stale(Vec<StaleInput>),
    /// The saved plan's actions are not those its recorded inputs give: it was edited.
    #[error("the saved plan does not match what its own inputs give, so it was edited after it was made; nothing was applied:\n{}", bullets(.0))]
    Tampered(Vec<PlanEdit>),
    /// The plan would retire too much of a platform.
    #[error("refusing to retire so much at once:\n{}", bullets(.0))]
    MassRetire(Vec<MassRetire>),
}

fn bullets<T: std::fmt::Display>(items: &[T]) -> String {
    items.iter().map(|s| format!("  - {s}")).collect::<Vec<_>>().join("\n")
}

impl ApplyRefusal {
    /// A stable CamelCase reason, for machines.
    pub fn reason(&self) -> &'static str {
        match self {
            ApplyRefusal::Locked(e) => e.reason(),
            ApplyRefusal::Stale(_) => "StalePlan",
            ApplyRefusal::Tampered(_) => "EditedPlan",
            ApplyRefusal::MassRetire(_) => "MassRetire",
        }
    }

    /// What to do about it, for the command line to show after the error.
    pub fn help(&self) -> Option<&'static str> {
        match self {
            ApplyRefusal::Locked(_) => None,
            ApplyRefusal::Stale(_) => {
                Some("make a new plan with `patchops plan --out FILE`, review it, and apply that")
            }
            ApplyRefusal::Tampered(_) => Some(
                "a plan file is applied only as `patchops plan --out FILE` wrote it; make a new plan and review that",
            ),
            ApplyRefusal::MassRetire(_) => Some(
                "an empty or broken fleet looks exactly like this; if the retirement is intended, run again with \
                 --allow-mass-retire",
            ),
        }
    }
}

impl OpsError {
    /// What to do about it, where the error itself does not say: for the command line to show
    /// as `help:` after the error (conditions and notifications carry the message only).
    pub fn help(&self) -> Option<&'static str> {
        match self {
            OpsError::Refused(r) => r.help(),
            _ => None,
        }
    }
}

impl OpsError {
    /// A stable CamelCase reason, for machines (the daemon's conditions, metrics and
    /// notifications): the cause's own reason where it has one.
    pub fn reason(&self) -> &'static str {
        match self {
            OpsError::Source(e) => e.reason(),
            OpsError::Fleet(d) => d.reason(),
            OpsError::Catalogs(list) => list.first().map_or("CatalogRefused", CatalogError::reason),
            OpsError::Selection(list) => list.first().map_or("InstallerNotSelected", |(_, _, e)| e.reason()),
            OpsError::State(e) => e.reason(),
            OpsError::Platforms(list) => list.first().map_or("PlatformUnavailable", PlatformError::reason),
            OpsError::Policy(e) => e.reason(),
            OpsError::Refused(r) => r.reason(),
            OpsError::UnknownPlatform { .. } => "UnknownPlatform",
            OpsError::Emulate(_) => "EmulationFailed",
            OpsError::Task(_) => "InternalTaskFailed",
            OpsError::Denied(_) => "PolicyDenied",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camel(s: &str) -> bool {
        s.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && s.chars().all(|c| c.is_ascii_alphanumeric())
    }

    #[test]
    fn every_operation_error_has_a_camel_case_reason_from_its_cause() {
        let platform = crate::model::ObjectName::new("wsus-hq").unwrap();
        let cases = [
            OpsError::Platforms(vec![PlatformError::Transient {
                platform: platform.clone(),
                operation: "observe".into(),
                reason: "503".into(),
                retry_after: None,
                throttled: false,
            }]),
            OpsError::Refused(ApplyRefusal::MassRetire(vec![MassRetire {
                platform,
                retired: 3,
                managed: 3,
                allowed_share: 0.3,
            }])),
            OpsError::Refused(ApplyRefusal::Stale(vec![StaleInput::Platform {
                platform: "intune".into(),
                changed: Vec::new(),
                added: Vec::new(),
                removed: Vec::new(),
            }])),
            OpsError::State(crate::state::StateError::new(std::path::Path::new("x"), "y")),
            OpsError::Task("panicked".into()),
            OpsError::UnknownPlatform { name: "x".into(), known: "y".into() },
        ];
        let reasons: Vec<&str> = cases.iter().map(OpsError::reason).collect();
        assert_eq!(
            reasons,
            [
                "PlatformTransient",
                "MassRetire",
                "StalePlan",
                "StateUnavailable",
                "InternalTaskFailed",
                "UnknownPlatform"
            ]
        );
        assert!(reasons.iter().all(|r| camel(r)), "{reasons:?}");
    }
}
