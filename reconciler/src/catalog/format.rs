//! The catalog format: a JSON document listing products, their versions and installers, with a
//! serial and an expiry. It is signed as bytes (minisign, detached); see `docs` in
//! `schemas/catalog.schema.json` for every field.
//!
//! These are plain serde types, so anyone can build one (the catalog editor does). Trust lives
//! in [`super::VerifiedCatalog`], which only [`super::UnverifiedCatalog::verify`] produces.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::vocab::Sha256;
use crate::vocab::{Architecture, InstallerType, ProductId, Version};

/// `kind` of a catalog document.
pub const CATALOG_KIND: &str = "Catalog";

/// A vendor catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Catalog {
    /// Always `patchops.io/v1alpha1`.
    pub api_version: String,
    /// Always `Catalog`.
    pub kind: String,
    /// Who publishes the catalog.
    pub publisher: String,
    /// Increases with every published catalog; a lower serial than one already seen is refused
    /// as a rollback.
    pub serial: u64,
    /// When the catalog was issued (RFC 3339).
    pub issued: DateTime<Utc>,
    /// After this time the catalog is refused (RFC 3339).
    pub expires: DateTime<Utc>,
    /// The products.
    pub products: Vec<CatalogProduct>,
}

/// A product of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CatalogProduct {
    /// Identifier that fleets refer to, such as `mozilla.firefox`.
    pub id: ProductId,
    /// Display name, such as `Mozilla Firefox`.
    pub name: String,
    /// Vendor (publisher) name, such as `Mozilla`.
    pub vendor: String,
    /// Short description shown on platforms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Vendor's product page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    /// Available versions.
    #[serde(deserialize_with = "crate::intern::shrunk")]
    pub versions: Vec<CatalogVersion>,
}

/// One version of a product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CatalogVersion {
    /// The version (Windows-style, compared numerically).
    pub version: Version,
    /// Release date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released: Option<DateTime<Utc>>,
    /// Versions this one supersedes (replaces).
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "crate::intern::shrunk")]
    pub supersedes: Vec<Version>,
    /// Installers, at most one per architecture and type.
    #[serde(deserialize_with = "crate::intern::shrunk")]
    pub installers: Vec<Installer>,
}

/// One installer file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Installer {
    /// Architecture.
    pub architecture: Architecture,
    /// Installer technology.
    #[serde(rename = "type")]
    pub installer_type: InstallerType,
    /// Download URL: `https://`, `http://`, `file://`, or a path relative to the catalog.
    pub url: String,
    /// SHA-256 of the file: the anchor every download is checked against.
    pub sha256: Sha256,
    /// Exact size in bytes; a longer or shorter download is refused.
    pub size: u64,
    /// Arguments for a silent installation, such as `/qn /norestart` or `-ms`.
    pub silent_install: String,
    /// Command line or arguments for a silent uninstallation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_uninstall: Option<String>,
    /// MSI ProductCode (`{GUID}`), for MSI detection and uninstallation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msi_product_code: Option<String>,
    /// How a device tells that this version is installed, for installers without an MSI
    /// product code (and, for any installer, to tell that *some* version is installed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection: Option<Detection>,
    /// Return codes meaning success besides 0, such as 3010 (restart required).
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "crate::intern::shrunk")]
    pub success_codes: Vec<i32>,
    /// Malware scan of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanResult>,
}

impl Installer {
    /// The installer's file name: the last segment of its URL or path, without query or
    /// fragment (`installer` when there is none). Install commands and packages name it so.
    pub fn file_name(&self) -> &str {
        let path = self.url.split(['?', '#']).next().unwrap_or(&self.url);
        path.rsplit('/').next().filter(|s| !s.is_empty()).unwrap_or("installer")
    }
}

/// Where the installed version shows on a device. The version found is compared numerically
/// with the catalog version (or `version`, when the product reports another one there).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum Detection {
    /// The file version of an installed file.
    File {
        /// Full path of the file; environment variables are expanded, such as
        /// `%ProgramFiles%\7-Zip\7z.exe`.
        path: String,
        /// The file version this release installs, when it differs from the catalog version.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<Version>,
    },
    /// A registry value holding the version.
    Registry {
        /// The key, starting with a hive, such as
        /// `HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\7-Zip`.
        key: String,
        /// The value's name, such as `DisplayVersion`.
        value: String,
        /// The version this release writes there, when it differs from the catalog version.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<Version>,
    },
}

/// The result of scanning an installer with a multi-engine scanner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScanResult {
    /// Scanning service, such as `VirusTotal`.
    pub engine: String,
    /// Engines that flagged the file.
    pub detections: u32,
    /// Engines that scanned it.
    pub engines_total: u32,
    /// When it was scanned.
    pub scanned_at: DateTime<Utc>,
    /// Link to the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

/// What the types of a catalog cannot rule out, found by [`Catalog::check`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum Inconsistent {
    /// Another document.
    #[error(
        "expected apiVersion `{}` and kind `{CATALOG_KIND}`, found `{api_version}` and `{kind}`",
        crate::vocab::API_VERSION
    )]
    Kind {
        /// The document's apiVersion.
        api_version: String,
        /// The document's kind.
        kind: String,
    },
    /// Expires no later than issued.
    #[error("expires ({expires}) is not after issued ({issued})")]
    ExpiresBeforeIssued {
        /// `issued`.
        issued: DateTime<Utc>,
        /// `expires`.
        expires: DateTime<Utc>,
    },
    /// A product id twice.
    #[error("product `{product}` is listed twice")]
    DuplicateProduct {
        /// The id.
        product: String,
    },
    /// A version twice.
    #[error("product `{product}` lists version {version} twice")]
    DuplicateVersion {
        /// The product.
        product: String,
        /// The version.
        version: String,
    },
    /// Two installers of one type and architecture.
    #[error("product `{product}` {version} has two {installer_type} installers for {architecture}")]
    DuplicateInstaller {
        /// The product.
        product: String,
        /// The version.
        version: String,
        /// The installer type.
        installer_type: String,
        /// The architecture.
        architecture: String,
    },
}

impl Inconsistent {
    /// A stable CamelCase reason, for machines.
    pub fn reason(&self) -> &'static str {
        match self {
            Inconsistent::Kind { .. } => "NotACatalog",
            Inconsistent::ExpiresBeforeIssued { .. } => "ExpiresBeforeIssued",
            Inconsistent::DuplicateProduct { .. } => "DuplicateProduct",
            Inconsistent::DuplicateVersion { .. } => "DuplicateVersion",
            Inconsistent::DuplicateInstaller { .. } => "DuplicateInstaller",
        }
    }
}

impl Catalog {
    /// Checks what the types cannot: unique product ids and versions, sensible dates.
    pub fn check(&self) -> Result<(), Inconsistent> {
        if self.api_version != crate::vocab::API_VERSION || self.kind != CATALOG_KIND {
            return Err(Inconsistent::Kind { api_version: self.api_version.clone(), kind: self.kind.clone() });
        }
        if self.expires <= self.issued {
            return Err(Inconsistent::ExpiresBeforeIssued { issued: self.issued, expires: self.expires });
        }
        let mut ids = std::collections::BTreeSet::new();
        for p in &self.products {
            if !ids.insert(&p.id) {
                return Err(Inconsistent::DuplicateProduct { product: p.id.to_string() });
            }
            let mut versions = std::collections::BTreeSet::new();
            for v in &p.versions {
                if !versions.insert(&v.version) {
                    return Err(Inconsistent::DuplicateVersion {
                        product: p.id.to_string(),
                        version: v.version.to_string(),
                    });
                }
                let mut kinds = std::collections::BTreeSet::new();
                for i in &v.installers {
                    if !kinds.insert((i.architecture, i.installer_type)) {
                        return Err(Inconsistent::DuplicateInstaller {
                            product: p.id.to_string(),
                            version: v.version.to_string(),
                            installer_type: format!("{:?}", i.installer_type),
                            architecture: format!("{:?}", i.architecture),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The product with this id.
    pub fn product(&self, id: &ProductId) -> Option<&CatalogProduct> {
        self.products.iter().find(|p| &p.id == id)
    }
}
