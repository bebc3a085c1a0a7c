//! What the reporting commands print with `--format json`: one JSON document per run, each
//! with a JSON Schema in `schemas/` (written by [`crate::schema::all`]). A command that fails
//! prints an [`ErrorReport`] instead (and exits 1). Field names are camelCase, as the plan's.

use schemars::JsonSchema;
use serde::Serialize;

use super::{OpsError, Status, Validated};
use crate::catalog::VerifiedCatalog;
use crate::state::{AuditRecord, Suspension};

/// A failed command: what went wrong, machine-readably.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorReport {
    /// The error.
    pub error: ErrorEntry,
}

/// One error.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorEntry {
    /// The machine reason (CamelCase), such as `FleetInvalid` or `CatalogRollback`.
    pub reason: String,
    /// The message, as the text output says it.
    pub message: String,
    /// What to do about it, when there is advice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Each problem of an invalid fleet, with its place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<DiagnosticEntry>,
}

/// One problem of a fleet document.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiagnosticEntry {
    /// The file, relative to the fleet path.
    pub file: String,
    /// The line (from 1), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The column (from 1), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl ErrorReport {
    /// The report of `e`.
    pub fn of(e: &OpsError) -> ErrorReport {
        let diagnostics = match e {
            OpsError::Fleet(d) => {
                d.0.iter()
                    .map(|d| DiagnosticEntry {
                        file: d.file.clone(),
                        line: d.pos.map(|p| p.line),
                        column: d.pos.map(|p| p.column),
                        message: d.message.clone(),
                        help: d.help.clone(),
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        ErrorReport {
            error: ErrorEntry {
                reason: e.reason().to_string(),
                message: e.to_string(),
                help: e.help().map(str::to_string),
                diagnostics,
            },
        }
    }

    /// A report of an error outside the operations (a file that cannot be read, a bad flag
    /// value), with its machine reason.
    pub fn message(reason: &str, message: impl Into<String>) -> ErrorReport {
        ErrorReport {
            error: ErrorEntry { reason: reason.into(), message: message.into(), help: None, diagnostics: Vec::new() },
        }
    }
}

/// One verified catalog.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogEntry {
    /// The CatalogSource (or `command-line` for `catalog verify` without `--source`).
    pub source: String,
    /// Where it was read from.
    pub location: String,
    /// Its serial.
    pub serial: u64,
    /// SHA-256 of the signed bytes.
    pub sha256: String,
    /// The signing key's id.
    pub key_id: String,
    /// When it was issued.
    pub issued: chrono::DateTime<chrono::Utc>,
    /// When it expires.
    pub expires: chrono::DateTime<chrono::Utc>,
    /// How many products it lists.
    pub products: usize,
    /// The signature's trusted comment.
    pub trusted_comment: String,
}

impl CatalogEntry {
    /// The entry of a verified catalog.
    pub fn of(c: &VerifiedCatalog) -> CatalogEntry {
        CatalogEntry {
            source: c.source_name().to_string(),
            location: c.location().to_string(),
            serial: c.serial(),
            sha256: c.digest().to_string(),
            key_id: c.key_id().to_string(),
            issued: c.catalog().issued,
            expires: c.catalog().expires,
            products: c.catalog().products.len(),
            trusted_comment: c.trusted_comment().to_string(),
        }
    }
}

/// `patchops validate --format json`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidateReport {
    /// Always true: an invalid fleet is an [`ErrorReport`].
    pub valid: bool,
    /// Where the fleet was read from (the commit, or a directory).
    #[schemars(with = "serde_json::Value")]
    pub source: serde_json::Value,
    /// Counts of the fleet's documents.
    pub products: usize,
    /// Platforms.
    pub platforms: usize,
    /// Rollouts.
    pub rollouts: usize,
    /// Catalog sources.
    pub catalog_sources: usize,
    /// Each catalog, verified.
    pub catalogs: Vec<CatalogEntry>,
    /// The policies the fleet applies.
    pub policies: Vec<String>,
    /// Warnings about the source.
    pub warnings: Vec<String>,
}

impl ValidateReport {
    /// The report of a valid fleet.
    pub fn of(v: &Validated) -> ValidateReport {
        let l = &v.loaded;
        ValidateReport {
            valid: true,
            source: serde_json::to_value(l.snapshot.provenance()).unwrap_or_default(),
            products: l.fleet.products.len(),
            platforms: l.fleet.platforms.len(),
            rollouts: l.fleet.rollouts.len(),
            catalog_sources: l.fleet.catalog_sources.len(),
            catalogs: l.catalogs.values().map(CatalogEntry::of).collect(),
            policies: v.policies.clone(),
            warnings: super::pipeline::warnings(l).iter().map(ToString::to_string).collect(),
        }
    }
}

/// `patchops status --format json`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    /// One entry per (Product, Platform), in fleet order.
    pub targets: Vec<TargetEntry>,
    /// What `patchops suspend` holds back.
    pub suspended: Vec<Suspension>,
    /// Warnings about the source.
    pub warnings: Vec<String>,
    /// Who signed the commit read, when commit signatures are required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_signature: Option<crate::source::signature::CommitVerdict>,
}

/// One (Product, Platform).
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetEntry {
    /// The fleet Product.
    pub product: String,
    /// The Platform.
    pub platform: String,
    /// The versions the platform holds for it.
    pub versions: Vec<String>,
    /// The groups they are assigned to.
    pub groups: Vec<String>,
    /// The fleet commits (short) they were published from.
    pub commits: Vec<String>,
    /// `synced`, `drifted`, `out of sync`, `waiting`, `suspended`, `backing off` or `denied`.
    pub sync: String,
    /// The last audit record for the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<AuditRecord>,
}

impl StatusReport {
    /// The report of a status.
    pub fn of(s: &Status) -> StatusReport {
        StatusReport {
            targets: s
                .targets
                .iter()
                .map(|t| TargetEntry {
                    product: t.product.clone(),
                    platform: t.platform.clone(),
                    versions: t.versions.clone(),
                    groups: t.groups.clone(),
                    commits: t.commits.clone(),
                    sync: t.sync.to_string(),
                    last: t.last.clone(),
                })
                .collect(),
            suspended: s.suspended.clone(),
            warnings: s.warnings.iter().map(ToString::to_string).collect(),
            commit_signature: match &s.commit {
                crate::source::signature::CommitVerdict::NotRequired => None,
                verified => Some(verified.clone()),
            },
        }
    }
}

/// `patchops history --format json`: the audit log, newest first.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryReport {
    /// The records.
    pub records: Vec<AuditRecord>,
}

/// `patchops policy list --format json`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyListReport {
    /// The built-in policies (package `patchops.policy.<name>`).
    pub builtin: Vec<PolicyEntry>,
}

/// One built-in policy.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyEntry {
    /// Its name.
    pub name: String,
    /// What it denies.
    pub denies: String,
}

impl PolicyListReport {
    /// The built-in policies.
    pub fn builtin() -> PolicyListReport {
        PolicyListReport {
            builtin: crate::policy::BUILTIN
                .iter()
                .map(|b| PolicyEntry { name: b.name.to_string(), denies: b.summary.to_string() })
                .collect(),
        }
    }
}

/// `patchops doctor --format json`: each platform's trust, link by link.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DoctorReport {
    /// True when no link fails (the exit code is then 0).
    pub ok: bool,
    /// One entry per platform checked.
    pub platforms: Vec<DoctorPlatform>,
}

/// The checks of one platform.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DoctorPlatform {
    /// The Platform.
    pub platform: String,
    /// `intune`, `wsus` or `configmgr`.
    #[serde(rename = "type")]
    pub ty: String,
    /// The endpoint, as the fleet writes it.
    pub endpoint: String,
    /// The worst verdict of its links.
    pub verdict: crate::doctor::Verdict,
    /// Every link, in chain order.
    pub checks: Vec<crate::doctor::Check>,
}

impl DoctorReport {
    /// The report of `doctor`'s platform reports.
    pub fn of(reports: &[crate::doctor::PlatformReport]) -> DoctorReport {
        DoctorReport {
            ok: reports.iter().all(|r| r.verdict() != crate::doctor::Verdict::Fail),
            platforms: reports
                .iter()
                .map(|r| DoctorPlatform {
                    platform: r.platform.to_string(),
                    ty: r.ty.as_str().to_string(),
                    endpoint: r.endpoint.clone(),
                    verdict: r.verdict(),
                    checks: r.checks.clone(),
                })
                .collect(),
        }
    }
}

/// `patchops apply --format json`: what one apply did.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplyReport {
    /// True when the desired state is reached, or everything left waits (the exit code is 0).
    pub ok: bool,
    /// Where the fleet was read from (the commit, or a directory).
    #[schemars(with = "serde_json::Value")]
    pub source: serde_json::Value,
    /// The plan's counts, before applying.
    pub summary: crate::plan::Summary,
    /// Every action attempted, in order.
    pub actions: Vec<AppliedEntry>,
    /// Changes refused by policy (when planning or at apply time).
    pub denied: Vec<DeniedEntry>,
    /// Changes left for a later run (a ring's soak, a window, the change budget).
    pub waiting: usize,
    /// Products that could not be planned.
    pub errors: Vec<String>,
    /// Earlier runs found interrupted and recovered.
    pub interrupted: Vec<String>,
    /// Warnings about the source.
    pub warnings: Vec<String>,
}

/// One attempted action.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppliedEntry {
    /// publish, update, reconfigure or retire.
    pub action: String,
    /// The fleet Product.
    pub product: String,
    /// The Platform.
    pub platform: String,
    /// The ring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring: Option<String>,
    /// The version published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `succeeded`, `failed` or `skipped`.
    pub result: String,
    /// The platform object it produced or changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What policies' `warn` rules said about it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_warnings: Vec<crate::plan::PolicyFinding>,
}

/// One change a policy refused.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeniedEntry {
    /// The action refused.
    pub action: String,
    /// The fleet Product.
    pub product: String,
    /// The Platform.
    pub platform: String,
    /// The ring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring: Option<String>,
    /// The policies that refused it, with their words.
    pub denied_by: Vec<crate::plan::PolicyFinding>,
}

impl ApplyReport {
    /// The report of an apply that had nothing to do (`applied` is `None`) or that ran.
    pub fn of(
        plan: &crate::plan::Plan,
        applied: Option<&super::Applied>,
        interrupted: &[crate::state::Interrupted],
        warnings: &[crate::source::SourceWarning],
    ) -> ApplyReport {
        use crate::apply::Outcome;
        let denied_entry = |a: &crate::plan::PlannedAction, by: &[crate::plan::PolicyFinding]| DeniedEntry {
            action: a.action.as_str().to_string(),
            product: a.product.to_string(),
            platform: a.platform.to_string(),
            ring: a.ring.as_deref().map(str::to_string),
            denied_by: by.to_vec(),
        };
        let mut denied: Vec<DeniedEntry> =
            plan.actions.iter().filter(|a| !a.denied.is_empty()).map(|a| denied_entry(a, &a.denied)).collect();
        let mut actions = Vec::new();
        if let Some(applied) = applied {
            denied.extend(applied.denied.iter().map(|(a, by)| denied_entry(a, by)));
            for r in &applied.reports {
                let a = &r.action;
                let (result, object_id, message) = match &r.outcome {
                    Outcome::Succeeded { object_id } => ("succeeded", object_id.clone(), None),
                    Outcome::Failed(e) => ("failed", None, Some(e.clone())),
                    Outcome::Skipped(why) => ("skipped", None, Some(why.clone())),
                };
                actions.push(AppliedEntry {
                    action: a.action.as_str().to_string(),
                    product: a.product.to_string(),
                    platform: a.platform.to_string(),
                    ring: a.ring.as_deref().map(str::to_string),
                    version: a.version.as_deref().map(str::to_string),
                    result: result.to_string(),
                    object_id,
                    message,
                    policy_warnings: r.warnings.clone(),
                });
            }
        }
        let errors: Vec<String> =
            plan.errors.iter().map(|e| format!("{} ({}): {}", e.product, e.origin, e.message)).collect();
        let ok = actions.iter().all(|a| a.result == "succeeded") && denied.is_empty() && errors.is_empty();
        ApplyReport {
            ok,
            source: plan.fingerprints.source.clone(),
            summary: plan.summary.clone(),
            actions,
            denied,
            waiting: plan.summary.waiting,
            errors,
            interrupted: interrupted
                .iter()
                .map(|i| {
                    format!("run {} was interrupted during {} (last step: {} {})", i.run, i.subject, i.step, i.detail)
                })
                .collect(),
            warnings: warnings.iter().map(ToString::to_string).collect(),
        }
    }
}
