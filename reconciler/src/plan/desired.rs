//! What the fleet wants on a platform, as flat fields the planner can compare.

use std::collections::BTreeMap;

use super::FieldChange;
use crate::catalog::{CatalogProduct, Installer, VerifiedCatalog};
use crate::model::kinds::{InstallIntent, RestartBehavior};
use crate::model::{PlatformType, Product, Target, Version};

/// The catalog entry chosen for a Product.
#[derive(Debug, Clone)]
pub struct Selection<'a> {
    /// The catalog product.
    pub product: &'a CatalogProduct,
    /// The chosen version.
    pub version: Version,
    /// The chosen installer.
    pub installer: &'a Installer,
}

/// Why no installer could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    /// The catalog does not list the product.
    #[error("catalog `{catalog}` (serial {serial}) has no product `{product}`{hint}")]
    ProductNotInCatalog {
        /// Catalog source.
        catalog: String,
        /// Serial.
        serial: u64,
        /// The product id.
        product: String,
        /// A suggestion.
        hint: String,
    },
    /// No version satisfies the selector.
    #[error("no version of `{product}` matches `{selector}`; the catalog offers {available}")]
    NoMatchingVersion {
        /// The product id.
        product: String,
        /// The selector.
        selector: String,
        /// The versions offered.
        available: String,
    },
    /// The chosen version has no installer for the architecture (and type).
    #[error("`{product}` {version} has no {wanted} installer; the catalog offers {available}")]
    NoInstaller {
        /// The product id.
        product: String,
        /// The version.
        version: String,
        /// What was asked for.
        wanted: String,
        /// What exists.
        available: String,
    },
    /// The chosen installer has no way to be detected on a device: no MSI product code and no
    /// detection data. Every platform needs one (Intune's detection rule, WSUS's IsInstalled,
    /// ConfigMgr's detection method), so the plan says so instead of apply failing later.
    #[error("`{product}` {version}: the catalog's installer {file} has neither an MSI product code nor detection data, so no platform could tell whether it is installed; add `detection` (file or registry) to the catalog's installer")]
    Undetectable {
        /// The product id.
        product: String,
        /// The version.
        version: String,
        /// The installer's file name.
        file: String,
    },
    /// The chosen installer's location cannot be downloaded from.
    #[error("`{product}` {version}: the catalog's installer location {location} {reason}")]
    InstallerLocation {
        /// The product id.
        product: String,
        /// The version.
        version: String,
        /// The location (credentials and query removed).
        location: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Whether an installer location of a catalog can be read: an `https`, `http` or `file` URL, or
/// a path relative to the catalog. Checked when the installer is selected, so `validate`,
/// `plan` and `apply` refuse the same locations.
pub fn check_installer_location(location: &str) -> Result<(), (String, String)> {
    match url::Url::parse(location) {
        Ok(u) if matches!(u.scheme(), "https" | "http" | "file") => Ok(()),
        Ok(u) => Err((
            crate::http::redact(&u),
            format!("uses the unsupported scheme `{}:`; installers are read from https://, http:// or file:// URLs, or a path relative to the catalog", u.scheme()),
        )),
        Err(_) if location.starts_with(['/', '\\']) || location.get(1..3).is_some_and(|s| s.starts_with(':')) => Err((
            location.to_string(),
            "is an absolute path; write it as a file:// URL or as a path relative to the catalog".into(),
        )),
        Err(_) if location.is_empty() => Err(("\"\"".into(), "is empty".into())),
        Err(_) => Ok(()),
    }
}

impl SelectionError {
    /// CamelCase reason.
    pub fn reason(&self) -> &'static str {
        match self {
            SelectionError::ProductNotInCatalog { .. } => "ProductNotInCatalog",
            SelectionError::NoMatchingVersion { .. } => "NoMatchingVersion",
            SelectionError::NoInstaller { .. } => "NoInstaller",
            SelectionError::InstallerLocation { .. } => "InstallerLocation",
            SelectionError::Undetectable { .. } => "Undetectable",
        }
    }
}

/// Chooses the version and installer of a Product from its verified catalog.
pub fn select_installer<'a>(product: &Product, catalog: &'a VerifiedCatalog) -> Result<Selection<'a>, SelectionError> {
    let spec = &product.spec;
    let Some(entry) = catalog.product(&spec.product) else {
        let ids = catalog.catalog().products.iter().map(|p| p.id.as_str());
        let hint = match crate::model::diagnostic::did_you_mean(spec.product.as_str(), ids) {
            Some(s) => format!("; did you mean `{s}`?"),
            None => String::new(),
        };
        return Err(SelectionError::ProductNotInCatalog {
            catalog: catalog.source_name().to_string(),
            serial: catalog.serial(),
            product: spec.product.to_string(),
            hint,
        });
    };
    let arch_ok = |i: &Installer| {
        (i.architecture == spec.architecture || i.architecture == crate::model::Architecture::Neutral)
            && spec.installer_type.is_none_or(|t| t == i.installer_type)
    };
    // Only versions that have a usable installer are candidates, so `latest` never picks a
    // version that cannot be published.
    let usable: Vec<&Version> =
        entry.versions.iter().filter(|v| v.installers.iter().any(arch_ok)).map(|v| &v.version).collect();
    let chosen = spec.version.select(usable.iter().copied());
    let Some(version) = chosen else {
        let matching =
            entry.versions.iter().filter(|v| spec.version.matches(&v.version)).max_by(|a, b| a.version.cmp(&b.version));
        if let Some(v) = matching {
            return Err(SelectionError::NoInstaller {
                product: spec.product.to_string(),
                version: v.version.to_string(),
                wanted: describe_wanted(product),
                available: v
                    .installers
                    .iter()
                    .map(|i| format!("{:?}/{:?}", i.architecture, i.installer_type).to_lowercase())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let mut all: Vec<&Version> = entry.versions.iter().map(|v| &v.version).collect();
        all.sort();
        return Err(SelectionError::NoMatchingVersion {
            product: spec.product.to_string(),
            selector: spec.version.to_string(),
            available: all.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", "),
        });
    };
    let installer = entry
        .versions
        .iter()
        .find(|v| &v.version == version)
        .and_then(|v| {
            // Prefer the exact architecture over a neutral installer.
            v.installers.iter().filter(|i| arch_ok(i)).min_by_key(|i| i.architecture != spec.architecture)
        })
        .ok_or_else(|| SelectionError::NoInstaller {
            product: spec.product.to_string(),
            version: version.to_string(),
            wanted: describe_wanted(product),
            available: String::new(),
        })?;
    check_installer_location(&installer.url).map_err(|(location, reason)| SelectionError::InstallerLocation {
        product: spec.product.to_string(),
        version: version.to_string(),
        location,
        reason,
    })?;
    if installer.msi_product_code.is_none() && installer.detection.is_none() {
        return Err(SelectionError::Undetectable {
            product: spec.product.to_string(),
            version: version.to_string(),
            file: installer.file_name().to_string(),
        });
    }
    Ok(Selection { product: entry, version: version.clone(), installer })
}

fn describe_wanted(product: &Product) -> String {
    let arch = format!("{:?}", product.spec.architecture).to_lowercase();
    match product.spec.installer_type {
        Some(t) => format!("{arch} {}", format!("{t:?}").to_lowercase()),
        None => arch,
    }
}

/// The uninstall command line. The catalog's `silentUninstall` is either a whole command line
/// (it names a program: `"C:\\Program Files\\App\\uninst.exe" /S`, `msiexec /x …`) or only the
/// arguments (`/S /uninstall`); arguments alone are given to `msiexec /x` for an MSI's product
/// code, and to the installer itself otherwise — never sent without a program to run.
fn uninstall_command(i: &crate::catalog::Installer, file: &str) -> Option<String> {
    let names_a_program = |s: &str| {
        let s = s.trim_start();
        let first = match s.strip_prefix('"') {
            Some(rest) => rest.split('"').next().unwrap_or(""),
            None => s.split_whitespace().next().unwrap_or(""),
        }
        .to_ascii_lowercase();
        let name = first.rsplit(['\\', '/']).next().unwrap_or(&first);
        [".exe", ".cmd", ".bat", ".ps1", ".com"].iter().any(|ext| name.ends_with(ext))
            || matches!(name, "msiexec" | "powershell" | "pwsh" | "cmd")
    };
    let msi = matches!(i.installer_type, crate::model::InstallerType::Msi | crate::model::InstallerType::Msp);
    match (&i.msi_product_code, &i.silent_uninstall) {
        (_, Some(u)) if names_a_program(u) => Some(u.trim().to_string()),
        (Some(code), Some(args)) if msi => Some(format!("msiexec /x {code} {}", args.trim())),
        (_, Some(args)) => Some(format!("\"{file}\" {}", args.trim())),
        (Some(code), None) => Some(format!("msiexec /x {code} /qn")),
        (None, None) => None,
    }
}

/// Desired fields by the planner's field names (fixed names, so no allocation per key).
pub(super) type Fields = BTreeMap<&'static str, String>;

/// The fields of the platform object that depend only on the product and its selection (the
/// same on every platform): computed once per product.
pub(super) fn product_fields(product: &Product, sel: &Selection<'_>) -> Fields {
    let i = sel.installer;
    let file = i.file_name();
    let install = match i.installer_type {
        crate::model::InstallerType::Msi => format!("msiexec /i \"{file}\" {}", i.silent_install),
        crate::model::InstallerType::Msp => format!("msiexec /p \"{file}\" {}", i.silent_install),
        _ => format!("\"{file}\" {}", i.silent_install),
    };
    let uninstall = uninstall_command(i, file);
    let mut f = BTreeMap::new();
    let mut put = |k: &'static str, v: String| {
        f.insert(k, v);
    };
    put("displayName", format!("{} ({})", sel.product.name, format!("{:?}", product.spec.architecture).to_lowercase()));
    put("publisher", sel.product.vendor.clone());
    put("version", sel.version.to_string());
    put("installerType", format!("{:?}", i.installer_type).to_lowercase());
    put("sha256", i.sha256.to_string());
    put("size", i.size.to_string());
    put("installCommand", install.trim_end().to_string());
    if let Some(u) = uninstall {
        put("uninstallCommand", u);
    }
    if let Some(code) = &i.msi_product_code {
        put("msiProductCode", code.clone());
    }
    f
}

/// The fields of the platform object that depend on the platform type and the target.
pub(super) fn platform_fields(ty: PlatformType, target: &Target) -> Fields {
    let mut f = BTreeMap::new();
    match ty {
        PlatformType::Intune => {
            let s = target.spec.intune.clone().unwrap_or_default();
            f.insert("intune.installExperience", enum_text(&s.install_experience));
            f.insert("intune.allowAvailableUninstall", s.allow_available_uninstall.to_string());
            f.insert("intune.updateOnly", s.update_only.to_string());
        }
        PlatformType::Configmgr => {
            let s = target.spec.configmgr.clone().unwrap_or_default();
            f.insert("configmgr.deliverAs", enum_text(&s.deliver_as));
            if let Some(m) = s.estimated_runtime_minutes {
                f.insert("configmgr.estimatedRuntimeMinutes", m.to_string());
            }
        }
        PlatformType::Wsus => {
            let s = target.spec.wsus.clone().unwrap_or_default();
            f.insert("wsus.classification", enum_text(&s.classification));
        }
    }
    f
}

/// Whether objects on a platform of type `ty` hold the field at all. A WSUS update has no
/// uninstall command: it is expired or declined, never uninstalled through WSUS.
fn holds(ty: PlatformType, field: &str) -> bool {
    !(ty == PlatformType::Wsus && field == "uninstallCommand")
}

/// The object's desired fields on a platform of type `ty`: the product's and the platform's,
/// without those the platform does not hold.
pub(super) fn object_fields<'x>(
    ty: PlatformType,
    base: &'x Fields,
    platform: &'x Fields,
) -> Vec<(&'static str, &'x str)> {
    let mut out = merged(&[base, platform]);
    out.retain(|(k, _)| holds(ty, k));
    out
}

/// Desired fields as one sorted list of borrowed pairs, from disjoint field maps.
pub(super) fn merged<'x>(maps: &[&'x Fields]) -> Vec<(&'static str, &'x str)> {
    let mut out: Vec<(&'static str, &'x str)> =
        maps.iter().flat_map(|m| m.iter().map(|(k, v)| (*k, v.as_str()))).collect();
    out.sort_unstable_by_key(|(k, _)| *k);
    out
}

/// The fields of a ring's assignment.
pub(super) fn assignment_fields(target: &Target) -> Fields {
    let install = &target.spec.install;
    let mut f = BTreeMap::new();
    f.insert(
        "intent",
        match install.intent {
            InstallIntent::Required => "required",
            InstallIntent::Available => "available",
        }
        .to_string(),
    );
    f.insert(
        "restart",
        match install.restart {
            RestartBehavior::BasedOnReturnCode => "basedOnReturnCode",
            RestartBehavior::Suppress => "suppress",
            RestartBehavior::Allow => "allow",
            RestartBehavior::Force => "force",
        }
        .to_string(),
    );
    if let Some(d) = install.deadline {
        f.insert("deadline", crate::vocab::duration::readable(d.0));
    }
    if target.spec.intune.as_ref().is_some_and(|i| i.auto_update_superseded_apps) {
        f.insert("intune.autoUpdateSupersededApps", "enabled".to_string());
    }
    f
}

/// The serde name of a unit enum value.
fn enum_text<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// The fields that differ between `current` and `desired`, names prefixed with `prefix`: one
/// merge pass over the two sorted maps.
pub(super) fn diff<'c>(
    current: impl IntoIterator<Item = (&'c str, &'c str)>,
    desired: &[(&'static str, &str)],
    prefix: &str,
    text: &mut super::Interner,
) -> Vec<FieldChange> {
    let current = current.into_iter();
    let desired = desired.iter().copied();
    let mut key = String::new();
    let mut change = |k: &str, from: Option<&str>, to: Option<&str>| {
        key.clear();
        key.push_str(prefix);
        key.push_str(k);
        FieldChange { field: text.get(&key), from: from.map(|v| text.get(v)), to: to.map(|v| text.get(v)) }
    };
    let mut out = Vec::new();
    let (mut a, mut b) = (current.peekable(), desired.peekable());
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => return out,
            (Some((ka, va)), Some((kb, vb))) if ka == kb => {
                if va != vb {
                    out.push(change(ka, Some(*va), Some(*vb)));
                }
                a.next();
                b.next();
            }
            (Some((ka, va)), Some((kb, _))) if ka < kb => {
                out.push(change(ka, Some(*va), None));
                a.next();
            }
            (Some((ka, va)), None) => {
                out.push(change(ka, Some(*va), None));
                a.next();
            }
            (_, Some((kb, vb))) => {
                out.push(change(kb, None, Some(*vb)));
                b.next();
            }
        }
    }
}

/// What a Product's target wants on a platform, as field maps: the object's settings and the
/// assignment's. The apply engine builds platform objects from these; the planner compares with
/// the same values, so an applied object plans as unchanged.
pub fn desired_fields(
    product: &Product,
    target: &Target,
    ty: PlatformType,
    selection: &Selection<'_>,
) -> (crate::platform::FieldMap, crate::platform::FieldMap) {
    let base = product_fields(product, selection);
    let platform = platform_fields(ty, target);
    let object = object_fields(ty, &base, &platform).into_iter().map(|(k, v)| (k.into(), v.into())).collect();
    let assignment = assignment_fields(target).into_iter().map(|(k, v)| (k.into(), v.as_str().into())).collect();
    (object, assignment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_reports_changed_added_and_removed_fields_in_order() {
        let m = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut text = super::super::Interner::default();
        let current: BTreeMap<String, String> = m(&[("a", "1"), ("b", "2"), ("d", "4")]);
        let d = diff(
            current.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &[("b", "3"), ("c", "x"), ("d", "4")],
            "p.",
            &mut text,
        );
        let got: Vec<_> = d.iter().map(|c| (&*c.field, c.from.as_deref(), c.to.as_deref())).collect();
        assert_eq!(got, vec![("p.a", Some("1"), None), ("p.b", Some("2"), Some("3")), ("p.c", None, Some("x"))]);
    }

    // Issue 13, item 9: an uninstall command always names a program.
    #[test]
    fn an_uninstall_given_as_arguments_alone_runs_the_installer_or_msiexec() {
        let installer = |ty: &str, code: Option<&str>, uninstall: Option<&str>| {
            let json = serde_json::json!({
                "architecture": "x64", "type": ty, "url": "https://x.invalid/setup.exe",
                "sha256": "00".repeat(32), "size": 1, "silentInstall": "/S",
                "silentUninstall": uninstall, "msiProductCode": code,
            });
            serde_json::from_value::<crate::catalog::Installer>(json).unwrap_or_else(|e| panic!("{e}"))
        };
        let cmd = |i: &crate::catalog::Installer| uninstall_command(i, "setup.exe");
        assert_eq!(cmd(&installer("exe", None, Some("/S /uninstall"))).as_deref(), Some("\"setup.exe\" /S /uninstall"));
        assert_eq!(
            cmd(&installer("exe", None, Some("\"C:\\Program Files\\App\\uninst.exe\" /S"))).as_deref(),
            Some("\"C:\\Program Files\\App\\uninst.exe\" /S"),
            "a whole command line is kept"
        );
        assert_eq!(
            cmd(&installer("msi", Some("{1}"), Some("/qn REBOOT=ReallySuppress"))).as_deref(),
            Some("msiexec /x {1} /qn REBOOT=ReallySuppress")
        );
        assert_eq!(cmd(&installer("msi", Some("{1}"), None)).as_deref(), Some("msiexec /x {1} /qn"));
        assert_eq!(cmd(&installer("exe", None, None)), None);
    }
}
