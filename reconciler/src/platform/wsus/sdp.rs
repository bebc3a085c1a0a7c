//! Software Distribution Package (SDP) metadata: the XML document WSUS publishes an update from.
//!
//! [`Sdp`] is the slice of Microsoft's SDP schema patchops writes (`SoftwareDistributionPackage.xsd`
//! with the base, logical and MSI applicability rules and the MSI, MSP and command-line installer
//! handlers; see the reference notes `wsus-configmgr.md` of the steering repository): [`Sdp::to_xml`] writes it in the shape
//! of real vendor SDPs (namespaces declared on the root, prefixes `sdp`, `bar`, `lar`, `msiar`,
//! `cmd`, `msi`, `msp`), and [`Sdp::parse`] reads back a document patchops wrote (WSUS exports it
//! with `ExportPackageMetadata`), so observe sees exactly what was published.
//!
//! Facts the format insists on: `OriginFile/@Digest` is the base64 **SHA-1** of the file (the
//! catalog's SHA-256 goes in `AdditionalDigest`, and patchops checks it before anything is
//! handed over); `UpdateClassification` is a name, not a GUID; `PackageID` and item ids are bare
//! GUIDs while an MSI `ProductCode` is braced; registry rules read `HKEY_LOCAL_MACHINE` only.

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};

/// The namespace URI of each prefix (the CorporatePublishing namespaces are `http://`).
pub const NAMESPACES: [(&str, &str); 8] = [
    ("sdp", "http://schemas.microsoft.com/wsus/2005/04/CorporatePublishing/SoftwareDistributionPackage.xsd"),
    ("bar", "http://schemas.microsoft.com/wsus/2005/04/CorporatePublishing/BaseApplicabilityRules.xsd"),
    ("lar", "http://schemas.microsoft.com/wsus/2005/04/CorporatePublishing/LogicalApplicabilityRules.xsd"),
    ("msiar", "http://schemas.microsoft.com/wsus/2005/04/CorporatePublishing/MsiApplicabilityRules.xsd"),
    ("bt", "http://schemas.microsoft.com/wsus/2005/04/CorporatePublishing/BaseTypes.xsd"),
    ("cmd", "http://schemas.microsoft.com/wsus/2005/04/CorporatePublishing/Installers/CommandLineInstallation.xsd"),
    ("msi", "http://schemas.microsoft.com/wsus/2005/04/CorporatePublishing/Installers/MsiInstallation.xsd"),
    ("msp", "http://schemas.microsoft.com/wsus/2005/04/CorporatePublishing/Installers/MspInstallation.xsd"),
];

fn ns(prefix: &str) -> &'static str {
    NAMESPACES.iter().find(|(p, _)| *p == prefix).map_or("", |(_, uri)| uri)
}

/// WSUS update classifications patchops publishes under, by the names the SDP carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classification {
    /// `Updates`.
    Updates,
    /// `Security Updates`.
    SecurityUpdates,
    /// `Critical Updates`.
    CriticalUpdates,
}

impl Classification {
    /// The name in `UpdateClassification`.
    pub fn sdp_name(self) -> &'static str {
        match self {
            Classification::Updates => "Updates",
            Classification::SecurityUpdates => "Security Updates",
            Classification::CriticalUpdates => "Critical Updates",
        }
    }

    /// The fleet's name (`wsus.classification`).
    pub fn fleet_name(self) -> &'static str {
        match self {
            Classification::Updates => "updates",
            Classification::SecurityUpdates => "securityUpdates",
            Classification::CriticalUpdates => "criticalUpdates",
        }
    }

    /// From the fleet's name.
    pub fn from_fleet(name: &str) -> Option<Self> {
        [Classification::Updates, Classification::SecurityUpdates, Classification::CriticalUpdates]
            .into_iter()
            .find(|c| c.fleet_name() == name)
    }

    fn from_sdp(name: &str) -> Option<Self> {
        [Classification::Updates, Classification::SecurityUpdates, Classification::CriticalUpdates]
            .into_iter()
            .find(|c| c.sdp_name() == name)
    }
}

/// `InstallProperties/@RebootBehavior`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebootBehavior {
    /// The installer never needs a restart (the fleet's `restart: suppress`).
    NeverReboots,
    /// A restart always follows (`restart: force`).
    AlwaysRequiresReboot,
    /// The installer may ask for one (`restart: basedOnReturnCode`).
    CanRequestReboot,
}

impl RebootBehavior {
    fn as_str(self) -> &'static str {
        match self {
            RebootBehavior::NeverReboots => "NeverReboots",
            RebootBehavior::AlwaysRequiresReboot => "AlwaysRequiresReboot",
            RebootBehavior::CanRequestReboot => "CanRequestReboot",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [RebootBehavior::NeverReboots, RebootBehavior::AlwaysRequiresReboot, RebootBehavior::CanRequestReboot]
            .into_iter()
            .find(|r| r.as_str() == s)
    }

    /// From the fleet's `restart` (WSUS has no `allow`; validation refuses it).
    pub fn from_restart(restart: &str) -> Self {
        match restart {
            "suppress" => RebootBehavior::NeverReboots,
            "force" => RebootBehavior::AlwaysRequiresReboot,
            _ => RebootBehavior::CanRequestReboot,
        }
    }

    /// The fleet's `restart` it stands for.
    pub fn restart(self) -> &'static str {
        match self {
            RebootBehavior::NeverReboots => "suppress",
            RebootBehavior::AlwaysRequiresReboot => "force",
            RebootBehavior::CanRequestReboot => "basedOnReturnCode",
        }
    }
}

/// A rule that tells whether the update is installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstalledRule {
    /// `msiar:MsiProductInstalled`: the MSI product at this version or later.
    MsiProduct {
        /// Braced product code.
        product_code: String,
        /// Lowest version that counts as installed.
        version_min: String,
    },
    /// `bar:FileVersion`: a file's version at least `version`.
    FileVersion {
        /// CSIDL of the folder `path` is relative to (None: `path` is absolute).
        csidl: Option<u32>,
        /// The path.
        path: String,
        /// The version.
        version: String,
    },
    /// `bar:RegSzToVersion` under `HKEY_LOCAL_MACHINE`: a string value read as a version.
    RegistryVersion {
        /// The subkey below HKLM.
        subkey: String,
        /// The value's name.
        value: String,
        /// The version.
        version: String,
    },
}

/// `InstallableItem`'s installer handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handler {
    /// `msi:MsiInstallerData`.
    Msi {
        /// The MSI's file name.
        file: String,
        /// Braced product code.
        product_code: String,
        /// Arguments and properties passed to msiexec.
        command_line: String,
    },
    /// `msp:MspInstallerData`.
    Msp {
        /// The MSP's file name.
        file: String,
        /// Arguments and properties passed to msiexec.
        command_line: String,
    },
    /// `cmd:CommandLineInstallerData` with its return codes.
    CommandLine {
        /// The program (the installer's file name).
        program: String,
        /// Its silent arguments.
        arguments: String,
        /// Codes that mean success: (code, needs a restart).
        success_codes: Vec<(i32, bool)>,
    },
}

/// `sdp:OriginFile`: the content file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginFile {
    /// The file's name.
    pub file_name: String,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-1 (what WSUS checks).
    pub sha1: [u8; 20],
    /// SHA-256 (the catalog's anchor), in `AdditionalDigest`.
    pub sha256: [u8; 32],
    /// When the file was released.
    pub modified: DateTime<Utc>,
    /// Where it came from.
    pub origin_uri: String,
}

/// Processor architectures an update applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processor {
    /// Any.
    Any,
    /// x64 (`bar:Processor Architecture="9"`).
    X64,
    /// ARM64 (`Architecture="12"`).
    Arm64,
}

/// An SDP document's content, as patchops writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    /// `Properties/@PackageID`: kept across metadata-only revisions.
    pub package_id: uuid::Uuid,
    /// `Properties/@CreationDate`.
    pub creation_date: DateTime<Utc>,
    /// `Properties/@VendorName`.
    pub vendor: String,
    /// `Properties/ProductName`.
    pub product_name: String,
    /// `Properties/@PublicationState` is Expired.
    pub expired: bool,
    /// `Properties/MoreInfoUrl`.
    pub more_info_url: Option<String>,
    /// `LocalizedProperties/Title`.
    pub title: String,
    /// `LocalizedProperties/Description` (patchops's marker is its last line).
    pub description: String,
    /// `UpdateSpecificData/@UpdateClassification`.
    pub classification: Classification,
    /// The package's `IsInstallable`: Windows 10 or later on this processor.
    pub processor: Processor,
    /// `SupersededPackages`.
    pub supersedes: Vec<uuid::Uuid>,
    /// `InstallableItem/@ID`.
    pub item_id: uuid::Uuid,
    /// `InstallableItem/ApplicabilityRules/IsInstalled`.
    pub installed: InstalledRule,
    /// `InstallProperties/@RebootBehavior`.
    pub reboot: RebootBehavior,
    /// The installer handler.
    pub handler: Handler,
    /// The content file.
    pub origin: OriginFile,
}

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl Sdp {
    /// The document, UTF-8, namespaces declared on the root as in vendor SDPs.
    pub fn to_xml(&self) -> String {
        let mut x = crate::xml::XmlWriter::new("utf-8");
        let mut root: Vec<(String, &str)> = vec![("SchemaVersion".into(), "1.2")];
        for (prefix, uri) in NAMESPACES {
            root.push((format!("xmlns:{prefix}"), uri));
        }
        let root: Vec<(&str, &str)> = root.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        x.open("sdp:SoftwareDistributionPackage", &root);

        let (package_id, created) = (self.package_id.to_string(), time(&self.creation_date));
        let state = if self.expired { "Expired" } else { "Published" };
        x.open(
            "sdp:Properties",
            &[
                ("PackageID", &package_id),
                ("CreationDate", &created),
                ("VendorName", &self.vendor),
                ("PublicationState", state),
                ("UpdateType", "Software"),
            ],
        );
        if let Some(url) = &self.more_info_url {
            x.text("sdp:MoreInfoUrl", &[], url);
        }
        x.text("sdp:ProductName", &[], &self.product_name);
        x.close("sdp:Properties");

        x.open("sdp:LocalizedProperties", &[]);
        x.text("sdp:Language", &[], "en");
        x.text("sdp:Title", &[], &self.title);
        x.text("sdp:Description", &[], &self.description);
        x.close("sdp:LocalizedProperties");

        x.empty("sdp:UpdateSpecificData", &[("UpdateClassification", self.classification.sdp_name())]);

        x.open("sdp:IsInstallable", &[]);
        let windows10 = [("Comparison", "GreaterThanOrEqualTo"), ("MajorVersion", "10"), ("MinorVersion", "0")];
        match self.processor {
            Processor::Any => x.empty("bar:WindowsVersion", &windows10),
            Processor::X64 | Processor::Arm64 => {
                x.open("lar:And", &[]);
                x.empty("bar:WindowsVersion", &windows10);
                let arch = if self.processor == Processor::X64 { "9" } else { "12" };
                x.empty("bar:Processor", &[("Architecture", arch)]);
                x.close("lar:And");
            }
        }
        x.close("sdp:IsInstallable");

        if !self.supersedes.is_empty() {
            x.open("sdp:SupersededPackages", &[]);
            for id in &self.supersedes {
                x.text("sdp:PackageID", &[], &id.to_string());
            }
            x.close("sdp:SupersededPackages");
        }

        let item_id = self.item_id.to_string();
        x.open("sdp:InstallableItem", &[("ID", &item_id)]);
        x.open("sdp:ApplicabilityRules", &[]);
        x.open("sdp:IsInstalled", &[]);
        match &self.installed {
            InstalledRule::MsiProduct { product_code, version_min } => {
                x.empty("msiar:MsiProductInstalled", &[("ProductCode", product_code), ("VersionMin", version_min)])
            }
            InstalledRule::FileVersion { csidl, path, version } => {
                let csidl_text = csidl.map(|c| c.to_string());
                let mut attrs =
                    vec![("Path", path.as_str()), ("Comparison", "GreaterThanOrEqualTo"), ("Version", version)];
                if let Some(c) = &csidl_text {
                    attrs.insert(0, ("Csidl", c));
                }
                x.empty("bar:FileVersion", &attrs);
            }
            InstalledRule::RegistryVersion { subkey, value, version } => x.empty(
                "bar:RegSzToVersion",
                &[
                    ("Key", "HKEY_LOCAL_MACHINE"),
                    ("Subkey", subkey),
                    ("Value", value),
                    ("Comparison", "GreaterThanOrEqualTo"),
                    ("Data", version),
                ],
            ),
        }
        x.close("sdp:IsInstalled");
        x.open("sdp:IsInstallable", &[]);
        x.empty("lar:True", &[]);
        x.close("sdp:IsInstallable");
        x.close("sdp:ApplicabilityRules");
        x.empty(
            "sdp:InstallProperties",
            &[
                ("CanRequestUserInput", "false"),
                ("Impact", "Normal"),
                ("RebootBehavior", self.reboot.as_str()),
                ("RequiresNetworkConnectivity", "false"),
            ],
        );
        match &self.handler {
            Handler::Msi { file, product_code, command_line } => x.empty(
                "msi:MsiInstallerData",
                &[("MsiFile", file), ("ProductCode", product_code), ("CommandLine", command_line)],
            ),
            Handler::Msp { file, command_line } => {
                x.empty("msp:MspInstallerData", &[("MspFile", file), ("CommandLine", command_line)])
            }
            Handler::CommandLine { program, arguments, success_codes } => {
                x.open(
                    "cmd:CommandLineInstallerData",
                    &[
                        ("Program", program),
                        ("Arguments", arguments),
                        ("DefaultResult", "Failed"),
                        ("RebootByDefault", "false"),
                    ],
                );
                for (code, reboot) in success_codes {
                    let code = code.to_string();
                    let reboot = if *reboot { "true" } else { "false" };
                    x.empty("cmd:ReturnCode", &[("Code", &code), ("Result", "Succeeded"), ("Reboot", reboot)]);
                }
                x.close("cmd:CommandLineInstallerData");
            }
        }
        let o = &self.origin;
        let (digest, size, modified) = (b64(&o.sha1), o.size.to_string(), time(&o.modified));
        x.open(
            "sdp:OriginFile",
            &[
                ("Digest", &digest),
                ("FileName", &o.file_name),
                ("Size", &size),
                ("Modified", &modified),
                ("OriginUri", &o.origin_uri),
            ],
        );
        x.text("sdp:AdditionalDigest", &[("Algorithm", "SHA256")], &b64(&o.sha256));
        x.close("sdp:OriginFile");
        x.text("sdp:Language", &[], "en");
        x.close("sdp:InstallableItem");
        x.close("sdp:SoftwareDistributionPackage");
        x.finish()
    }

    /// Reads back a document patchops wrote. Documents other tools wrote are refused with the
    /// first element patchops does not write (observe then treats the update as unmanaged).
    pub fn parse(xml: &str) -> Result<Sdp, crate::platform::NotOurs> {
        let doc = roxmltree::Document::parse(xml).map_err(|e| format!("not XML: {e}"))?;
        let root = doc.root_element();
        if !is(&root, "sdp", "SoftwareDistributionPackage") {
            return Err("the root is not sdp:SoftwareDistributionPackage".into());
        }
        let guid = |s: &str| uuid::Uuid::parse_str(s).map_err(|e| format!("{s:?} is not a GUID: {e}"));
        let at =
            |s: &str| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(|e| format!("{s:?}: {e}"));

        let props = child(root, "sdp", "Properties")?;
        let localized = child(root, "sdp", "LocalizedProperties")?;
        let specific = child(root, "sdp", "UpdateSpecificData")?;
        let installable = child(root, "sdp", "IsInstallable")?;
        let item = child(root, "sdp", "InstallableItem")?;
        let rules = child(item, "sdp", "ApplicabilityRules")?;
        let installed_node = child(rules, "sdp", "IsInstalled")?
            .children()
            .find(roxmltree::Node::is_element)
            .ok_or("IsInstalled is empty")?;
        let installed = if is(&installed_node, "msiar", "MsiProductInstalled") {
            InstalledRule::MsiProduct {
                product_code: attr(installed_node, "ProductCode")?,
                version_min: attr(installed_node, "VersionMin")?,
            }
        } else if is(&installed_node, "bar", "FileVersion") {
            InstalledRule::FileVersion {
                csidl: installed_node.attribute("Csidl").and_then(|c| c.parse().ok()),
                path: attr(installed_node, "Path")?,
                version: attr(installed_node, "Version")?,
            }
        } else if is(&installed_node, "bar", "RegSzToVersion") {
            InstalledRule::RegistryVersion {
                subkey: attr(installed_node, "Subkey")?,
                value: attr(installed_node, "Value")?,
                version: attr(installed_node, "Data")?,
            }
        } else {
            return Err(format!(
                "IsInstalled holds {}, which patchops does not write",
                installed_node.tag_name().name()
            )
            .into());
        };
        let handler_node = item
            .children()
            .find(|c| {
                is(c, "msi", "MsiInstallerData")
                    || is(c, "msp", "MspInstallerData")
                    || is(c, "cmd", "CommandLineInstallerData")
            })
            .ok_or("no installer handler data")?;
        let handler = match handler_node.tag_name().name() {
            "MsiInstallerData" => Handler::Msi {
                file: attr(handler_node, "MsiFile")?,
                product_code: attr(handler_node, "ProductCode")?,
                command_line: handler_node.attribute("CommandLine").unwrap_or_default().to_string(),
            },
            "MspInstallerData" => Handler::Msp {
                file: attr(handler_node, "MspFile")?,
                command_line: handler_node.attribute("CommandLine").unwrap_or_default().to_string(),
            },
            _ => Handler::CommandLine {
                program: attr(handler_node, "Program")?,
                arguments: handler_node.attribute("Arguments").unwrap_or_default().to_string(),
                success_codes: handler_node
                    .children()
                    .filter(|c| is(c, "cmd", "ReturnCode") && c.attribute("Result") == Some("Succeeded"))
                    .filter_map(|c| Some((c.attribute("Code")?.parse().ok()?, c.attribute("Reboot") == Some("true"))))
                    .collect(),
            },
        };
        let origin_node = child(item, "sdp", "OriginFile")?;
        let decode = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).map_err(|e| format!("{s:?}: {e}"));
        let sha1: [u8; 20] = decode(&attr(origin_node, "Digest")?)?.try_into().map_err(|_| "Digest is not a SHA-1")?;
        let sha256_node = origin_node
            .children()
            .find(|c| is(c, "sdp", "AdditionalDigest") && c.attribute("Algorithm") == Some("SHA256"))
            .ok_or("no SHA256 AdditionalDigest")?;
        let sha256: [u8; 32] =
            decode(text(sha256_node).trim())?.try_into().map_err(|_| "the SHA256 AdditionalDigest is not 32 bytes")?;
        let processor = if installable
            .descendants()
            .any(|n| is(&n, "bar", "Processor") && n.attribute("Architecture") == Some("9"))
        {
            Processor::X64
        } else if installable
            .descendants()
            .any(|n| is(&n, "bar", "Processor") && n.attribute("Architecture") == Some("12"))
        {
            Processor::Arm64
        } else {
            Processor::Any
        };
        let supersedes = match root.children().find(|c| is(c, "sdp", "SupersededPackages")) {
            Some(s) => s
                .children()
                .filter(|c| is(c, "sdp", "PackageID"))
                .map(|c| guid(text(c).trim()))
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        let install_props = child(item, "sdp", "InstallProperties")?;
        Ok(Sdp {
            package_id: guid(&attr(props, "PackageID")?)?,
            creation_date: at(&attr(props, "CreationDate")?)?,
            vendor: attr(props, "VendorName")?,
            product_name: text(child(props, "sdp", "ProductName")?),
            expired: props.attribute("PublicationState") == Some("Expired"),
            more_info_url: props.children().find(|c| is(c, "sdp", "MoreInfoUrl")).map(text),
            title: text(child(localized, "sdp", "Title")?),
            description: text(child(localized, "sdp", "Description")?),
            classification: Classification::from_sdp(&attr(specific, "UpdateClassification")?)
                .ok_or("UpdateClassification is not one patchops writes")?,
            processor,
            supersedes,
            item_id: guid(&attr(item, "ID")?)?,
            installed,
            reboot: RebootBehavior::parse(&attr(install_props, "RebootBehavior")?).ok_or("unknown RebootBehavior")?,
            handler,
            origin: OriginFile {
                file_name: attr(origin_node, "FileName")?,
                size: attr(origin_node, "Size")?.parse().map_err(|e| format!("Size: {e}"))?,
                sha1,
                sha256,
                modified: at(&attr(origin_node, "Modified")?)?,
                origin_uri: attr(origin_node, "OriginUri")?,
            },
        })
    }
}

/// Whether `n` is the element `prefix:name` (by namespace URI, whatever prefix it uses).
fn is(n: &roxmltree::Node<'_, '_>, prefix: &str, name: &str) -> bool {
    n.is_element() && n.tag_name().name() == name && n.tag_name().namespace() == Some(ns(prefix))
}

fn child<'a, 'i>(
    n: roxmltree::Node<'a, 'i>,
    prefix: &str,
    name: &str,
) -> Result<roxmltree::Node<'a, 'i>, crate::platform::NotOurs> {
    n.children().find(|c| is(c, prefix, name)).ok_or_else(|| format!("no {prefix}:{name}").into())
}

fn attr(n: roxmltree::Node<'_, '_>, name: &str) -> Result<String, crate::platform::NotOurs> {
    n.attribute(name).map(str::to_string).ok_or_else(|| format!("{} has no {name}", n.tag_name().name()).into())
}

fn text(n: roxmltree::Node<'_, '_>) -> String {
    n.text().unwrap_or_default().to_string()
}

/// Splits a detection path that starts with a known folder variable into its CSIDL and the
/// rest, as `bar:FileVersion` wants (`%ProgramFiles%\7-Zip\7z.exe` → 38, `7-Zip\7z.exe`).
/// An absolute path stays whole; other variables cannot be expressed and are refused.
pub fn csidl_path(path: &str) -> Result<(Option<u32>, String), String> {
    // CSIDL values from Microsoft's shlobj.h.
    const FOLDERS: [(&str, u32); 7] = [
        ("%programfiles%", 38),
        ("%programfiles(x86)%", 42),
        ("%programw6432%", 38),
        ("%systemroot%", 36),
        ("%windir%", 36),
        ("%programdata%", 35),
        ("%commonprogramfiles%", 43),
    ];
    let lower = path.to_ascii_lowercase();
    for (var, csidl) in FOLDERS {
        if let Some(rest) = lower.strip_prefix(var) {
            let rest = &path[path.len() - rest.len()..];
            return Ok((Some(csidl), rest.trim_start_matches('\\').to_string()));
        }
    }
    if path.starts_with('%') {
        return Err(format!(
            "the detection path {path} starts with a variable WSUS rules cannot express; use %ProgramFiles%, \
             %ProgramFiles(x86)%, %SystemRoot%, %ProgramData% or an absolute path"
        ));
    }
    Ok((None, path.to_string()))
}

/// A version as the four-part `n.n.n.n` every `bt:Version` attribute of an SDP is
/// (BaseTypes.xsd): missing parts are zeros and leading zeros go, as Windows compares
/// versions (`24.08` is `24.8.0.0`). More than four parts, a part that is not a number or one
/// above 65535 cannot be written, and is refused with what to do.
pub fn four_part_version(version: &str) -> Result<String, String> {
    let parts: Vec<&str> = version.trim().split('.').collect();
    let numbers: Option<Vec<u16>> = parts.iter().map(|p| p.parse::<u16>().ok()).collect();
    match numbers {
        Some(mut n) if (1..=4).contains(&n.len()) => {
            n.resize(4, 0);
            Ok(n.iter().map(u16::to_string).collect::<Vec<_>>().join("."))
        }
        _ => Err(format!(
            "version {version:?} cannot be written as the four-part n.n.n.n (each part at most 65535) WSUS compares; give the catalog installer's detection a four-part version"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_written_four_part_the_way_windows_compares_them() {
        let four = |v: &str| four_part_version(v);
        assert_eq!(four("24.08").as_deref(), Ok("24.8.0.0"));
        assert_eq!(four("1.0.0").as_deref(), Ok("1.0.0.0"));
        assert_eq!(four("131.0.6778.86").as_deref(), Ok("131.0.6778.86"));
        assert_eq!(four("7").as_deref(), Ok("7.0.0.0"));
        for bad in ["1.2.3.4.5", "24.08b", "1.70000", "", "1..2"] {
            let err = four(bad).expect_err(bad);
            assert!(err.contains("cannot be written as the four-part n.n.n.n"), "{err}");
        }
    }

    pub(crate) fn sample() -> Sdp {
        Sdp {
            package_id: uuid::Uuid::from_u128(0x1234),
            creation_date: DateTime::parse_from_rfc3339("2026-11-01T10:00:00Z")
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default(),
            vendor: "Mozilla".into(),
            product_name: "Mozilla Firefox".into(),
            expired: false,
            more_info_url: Some("https://www.mozilla.org/".into()),
            title: "Mozilla Firefox (x64) 131.0.2".into(),
            description: "Browser <& friends>\npatchops:{\"a\":1}".into(),
            classification: Classification::SecurityUpdates,
            processor: Processor::X64,
            supersedes: vec![uuid::Uuid::from_u128(0x99)],
            item_id: uuid::Uuid::from_u128(0x5678),
            installed: InstalledRule::MsiProduct {
                product_code: "{3A9B6C1E-4F2D-4C1A-9B0E-1F7C2D3E4A02}".into(),
                version_min: "131.0.2".into(),
            },
            reboot: RebootBehavior::CanRequestReboot,
            handler: Handler::Msi {
                file: "firefox.msi".into(),
                product_code: "{3A9B6C1E-4F2D-4C1A-9B0E-1F7C2D3E4A02}".into(),
                command_line: "/qn /norestart".into(),
            },
            origin: OriginFile {
                file_name: "firefox.msi".into(),
                size: 9728,
                sha1: [7; 20],
                sha256: [9; 32],
                modified: DateTime::parse_from_rfc3339("2026-10-01T00:00:00Z")
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or_default(),
                origin_uri: "https://example.invalid/firefox.msi".into(),
            },
        }
    }

    #[test]
    fn a_written_document_reads_back_the_same() {
        for installed in [
            InstalledRule::FileVersion { csidl: Some(38), path: "7-Zip\\7z.exe".into(), version: "24.8.0.0".into() },
            InstalledRule::RegistryVersion {
                subkey: "SOFTWARE\\X".into(),
                value: "DisplayVersion".into(),
                version: "1.2".into(),
            },
        ] {
            let mut s = sample();
            s.installed = installed;
            s.handler = Handler::CommandLine {
                program: "setup.exe".into(),
                arguments: "/S".into(),
                success_codes: vec![(0, false), (3010, true)],
            };
            assert_eq!(Sdp::parse(&s.to_xml()), Ok(s));
        }
        let s = sample();
        assert_eq!(Sdp::parse(&s.to_xml()), Ok(s));
    }

    #[test]
    fn the_document_uses_the_corporate_publishing_namespaces_and_a_sha1_origin_digest() {
        let xml = sample().to_xml();
        assert!(xml.contains("xmlns:sdp=\"http://schemas.microsoft.com/wsus/2005/04/CorporatePublishing/SoftwareDistributionPackage.xsd\""), "{xml}");
        assert!(!xml.contains("wsus/2002/12") && !xml.contains("https://schemas"), "{xml}");
        assert!(xml.contains("Digest=\"BwcHBwcHBwcHBwcHBwcHBwcHBwc=\""), "{xml}");
        assert!(xml.contains("<sdp:AdditionalDigest Algorithm=\"SHA256\">CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=</sdp:AdditionalDigest>"), "{xml}");
        assert!(xml.contains("UpdateClassification=\"Security Updates\""), "{xml}");
        assert!(xml.contains("PackageID=\"00000000-0000-0000-0000-000000001234\""), "{xml}");
    }

    #[test]
    fn detection_paths_become_csidl_relative_paths() {
        assert_eq!(csidl_path("%ProgramFiles%\\7-Zip\\7z.exe"), Ok((Some(38), "7-Zip\\7z.exe".into())));
        assert_eq!(csidl_path("%ProgramFiles(x86)%\\App\\a.exe"), Ok((Some(42), "App\\a.exe".into())));
        assert_eq!(csidl_path("C:\\Tools\\t.exe"), Ok((None, "C:\\Tools\\t.exe".into())));
        assert!(csidl_path("%LOCALAPPDATA%\\x.exe").is_err_and(|e| e.contains("cannot express")));
    }
}
