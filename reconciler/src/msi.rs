//! Facts read from a Windows Installer package itself (with the `msi` crate): product and
//! upgrade codes, version, publisher, the package code, and the installation context. Intune's
//! Detection.xml (`MsiInfo`) and Graph's `msiInformation` carry them; WSUS rules use them too.

use std::path::Path;

/// The installation context an MSI declares (its `ALLUSERS` and `MSIINSTALLPERUSER` properties).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionContext {
    /// Per-machine (`ALLUSERS=1`).
    System,
    /// Per-user (no `ALLUSERS`).
    User,
    /// Either (`ALLUSERS=2`).
    Any,
}

impl ExecutionContext {
    /// As Detection.xml writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionContext::System => "System",
            ExecutionContext::User => "User",
            ExecutionContext::Any => "Any",
        }
    }

    /// Graph's `msiInformation.packageType`.
    pub fn package_type(self) -> &'static str {
        match self {
            ExecutionContext::System => "perMachine",
            ExecutionContext::User => "perUser",
            ExecutionContext::Any => "dualPurpose",
        }
    }
}

/// What an MSI says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsiInfo {
    /// `ProductCode`, such as `{23170F69-…}`.
    pub product_code: String,
    /// `ProductVersion`.
    pub product_version: String,
    /// The package code (summary information revision number), braced and upper case.
    pub package_code: Option<String>,
    /// `UpgradeCode`.
    pub upgrade_code: Option<String>,
    /// `Manufacturer`.
    pub publisher: Option<String>,
    /// `ProductName`.
    pub product_name: Option<String>,
    /// Per-machine, per-user or either.
    pub execution_context: ExecutionContext,
    /// Whether the package forces a reboot (`REBOOT=Force`).
    pub requires_reboot: bool,
}

/// Why an MSI could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: not a readable Windows Installer package: {reason}")]
pub struct MsiError {
    path: String,
    reason: String,
}

impl MsiError {
    /// A stable CamelCase reason, for machines (conditions, metrics, notifications).
    pub fn reason(&self) -> &'static str {
        "MsiUnreadable"
    }
}

/// Reads the facts of the MSI at `path`.
pub fn read(path: &Path) -> Result<MsiInfo, MsiError> {
    let err = |reason: String| MsiError { path: path.display().to_string(), reason };
    let mut package = ::msi::open(path).map_err(|e| err(e.to_string()))?;
    let package_code = package.summary_info().uuid().map(|u| format!("{{{}}}", u.hyphenated()).to_uppercase());
    let rows = package.select_rows(::msi::Select::table("Property")).map_err(|e| err(e.to_string()))?;
    let mut props = std::collections::BTreeMap::new();
    for row in rows {
        if let (Some(k), Some(v)) = (row["Property"].as_str(), row["Value"].as_str()) {
            props.insert(k.to_string(), v.to_string());
        }
    }
    let get = |k: &str| props.get(k).cloned();
    let product_code = get("ProductCode").ok_or_else(|| err("its Property table has no ProductCode".into()))?;
    let product_version =
        get("ProductVersion").ok_or_else(|| err("its Property table has no ProductVersion".into()))?;
    let execution_context = match (get("ALLUSERS").as_deref(), get("MSIINSTALLPERUSER").as_deref()) {
        (Some("2"), _) => ExecutionContext::Any,
        (Some("1"), _) => ExecutionContext::System,
        (_, Some("1")) => ExecutionContext::User,
        (Some(_), _) => ExecutionContext::System,
        (None, _) => ExecutionContext::User,
    };
    Ok(MsiInfo {
        product_code,
        product_version,
        package_code,
        upgrade_code: get("UpgradeCode"),
        publisher: get("Manufacturer"),
        product_name: get("ProductName"),
        execution_context,
        requires_reboot: get("REBOOT").is_some_and(|r| r.eq_ignore_ascii_case("force")),
    })
}
