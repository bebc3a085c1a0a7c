//! The platform and installer types every layer names.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The only `apiVersion` this release reads.
pub const API_VERSION: &str = "patchops.io/v1alpha1";

/// Installer architectures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// 64-bit x86.
    #[default]
    X64,
    /// 32-bit x86.
    X86,
    /// 64-bit ARM.
    Arm64,
    /// Architecture-neutral installers.
    Neutral,
}

/// Installer technologies a catalog may offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InstallerType {
    /// Windows Installer package.
    Msi,
    /// Executable installer with silent switches.
    Exe,
    /// Windows Installer patch.
    Msp,
    /// MSIX package.
    Msix,
}

/// Platform types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlatformType {
    /// Microsoft Intune through Microsoft Graph.
    Intune,
    /// Configuration Manager through the AdminService.
    Configmgr,
    /// Windows Server Update Services.
    Wsus,
}

impl PlatformType {
    /// The type as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            PlatformType::Intune => "intune",
            PlatformType::Configmgr => "configmgr",
            PlatformType::Wsus => "wsus",
        }
    }
}
