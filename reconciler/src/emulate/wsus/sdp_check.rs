//! The emulated WSUS server's check of an SDP document, written from Microsoft's WSUS schemas
//! (`SoftwareDistributionPackage.xsd` and the rule and installer schemas, as summarised in
//! the reference notes `wsus-configmgr.md` of the steering repository), not from patchops's writer. Every problem is
//! reported, each naming the element; real vendor SDPs (`tests/data/sdp/`) pass.

use base64::Engine as _;

const CP: &str = "http://schemas.microsoft.com/wsus/2005/04/CorporatePublishing/";

/// The schemas an SDP may use, by file name under the CorporatePublishing namespace, with the
/// elements each defines (the ones publishers write).
const SCHEMAS: [(&str, &[&str]); 10] = [
    (
        "SoftwareDistributionPackage.xsd",
        &[
            "SoftwareDistributionPackage",
            "Properties",
            "LocalizedProperties",
            "Language",
            "Title",
            "Description",
            "UninstallNotes",
            "MoreInfoUrl",
            "SupportUrl",
            "ProductName",
            "UpdateSpecificData",
            "SecurityBulletinID",
            "KBArticleID",
            "CveID",
            "IsInstallable",
            "IsInstalled",
            "IsSuperseded",
            "InstallableItem",
            "ApplicabilityRules",
            "Metadata",
            "InstallProperties",
            "UninstallProperties",
            "OriginFile",
            "AdditionalDigest",
            "SupersededPackages",
            "PackageID",
            "BundledPackages",
            "Prerequisites",
            "AtLeastOne",
            "HandlerSpecificData",
        ],
    ),
    (
        "BaseApplicabilityRules.xsd",
        &[
            "WindowsVersion",
            "WindowsLanguage",
            "Processor",
            "FileExists",
            "FileExistsPrependRegSz",
            "FileVersion",
            "FileVersionPrependRegSz",
            "FileCreated",
            "FileCreatedPrependRegSz",
            "FileModified",
            "FileModifiedPrependRegSz",
            "FileSize",
            "FileSizePrependRegSz",
            "RegKeyExists",
            "RegValueExists",
            "RegDword",
            "RegExpandSz",
            "RegKeyLoop",
            "RegSz",
            "RegSzToVersion",
            "WmiQuery",
            "MsiProductInstalled",
            "MsiPatchInstalled",
            "MsiComponentInstalled",
            "MsiFeatureInstalled",
            "LicenseValueExists",
            "LicenseDword",
            "Platform",
        ],
    ),
    ("LogicalApplicabilityRules.xsd", &["And", "Or", "Not", "True", "False"]),
    (
        "MsiApplicabilityRules.xsd",
        &[
            "MsiProductInstalled",
            "MsiPatchInstalledForProduct",
            "MsiComponentInstalledForProduct",
            "MsiFeatureInstalledForProduct",
            "MsiPatchSupersededForProduct",
            "MsiPatchInstallableForProduct",
            "MsiPatchMetadata",
        ],
    ),
    ("BaseTypes.xsd", &[]),
    ("UpdateServicesPackage.xsd", &[]),
    ("Installers/CommandLineInstallation.xsd", &["CommandLineInstallerData", "ReturnCode"]),
    ("Installers/MsiInstallation.xsd", &["MsiInstallerData"]),
    ("Installers/MspInstallation.xsd", &["MspInstallerData"]),
    ("Installers/WindowsDriver.xsd", &["WindowsDriverMetaData"]),
];

/// Classification names WSUS maps to its categories.
const CLASSIFICATIONS: [&str; 9] = [
    "Updates",
    "Critical Updates",
    "Security Updates",
    "Feature Packs",
    "Update Rollups",
    "Service Packs",
    "Tools",
    "Hotfixes",
    "Drivers",
];

/// Whether `n` is the SDP element `name`.
fn in_sdp(n: &roxmltree::Node<'_, '_>, name: &str) -> bool {
    n.is_element()
        && n.tag_name().name() == name
        && n.tag_name().namespace().is_some_and(|u| u.strip_prefix(CP) == Some("SoftwareDistributionPackage.xsd"))
}

/// The SDP child `name` of `n`.
fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| in_sdp(c, name))
}

fn schema_of(uri: &str) -> Option<&'static str> {
    let file = uri.strip_prefix(CP)?;
    SCHEMAS.iter().map(|(f, _)| *f).find(|f| *f == file)
}

fn bare_guid(s: &str) -> bool {
    !s.starts_with('{') && uuid::Uuid::parse_str(s).is_ok()
}

fn braced_guid(s: &str) -> bool {
    s.len() == 38 && s.starts_with('{') && s.ends_with('}') && uuid::Uuid::parse_str(&s[1..37]).is_ok()
}

fn date_time(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(s).is_ok()
        || chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").is_ok()
}

/// The facts of a valid SDP the server keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// `Properties/@PackageID`.
    pub package_id: String,
    /// `LocalizedProperties/Title` (the first).
    pub title: String,
    /// The content files.
    pub origin: Vec<Origin>,
}

/// One `OriginFile`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `@FileName`.
    pub name: String,
    /// `@Size`.
    pub size: u64,
    /// `@Digest`: SHA-1.
    pub sha1: Vec<u8>,
    /// The SHA256 `AdditionalDigest`, if present.
    pub sha256: Option<Vec<u8>>,
}

/// Checks an SDP document; returns its facts, or every problem found.
pub fn check(xml: &str) -> Result<Checked, Vec<String>> {
    let doc = match roxmltree::Document::parse(xml) {
        Ok(d) => d,
        Err(e) => return Err(vec![format!("the SDP is not well-formed XML: {e}")]),
    };
    let mut problems = Vec::new();
    let root = doc.root_element();
    let sdp_ns = format!("{CP}SoftwareDistributionPackage.xsd");
    if !in_sdp(&root, "SoftwareDistributionPackage") {
        problems.push(format!(
            "the root element is {{{}}}{}, not SoftwareDistributionPackage in {sdp_ns}",
            root.tag_name().namespace().unwrap_or(""),
            root.tag_name().name()
        ));
        return Err(problems);
    }
    // Every element belongs to a CorporatePublishing schema and is one it defines.
    for n in root.descendants().filter(roxmltree::Node::is_element) {
        let name = n.tag_name().name();
        match n.tag_name().namespace() {
            Some(uri) if uri.contains("/wsus/2002/12/") => problems
                .push(format!("{name} is in {uri}, a Windows Update client namespace; SDP elements belong to {CP}…")),
            Some(uri) if uri.starts_with("https://schemas.microsoft.com/") => problems
                .push(format!("{name} is in {uri}: the CorporatePublishing namespaces are http://, not https://")),
            Some(uri) if uri == format!("{CP}Installers/UpdateExeInstallation.xsd") => problems.push(format!(
                "{name} is in UpdateExeInstallation.xsd, which ships empty; use cmd:CommandLineInstallerData"
            )),
            Some(uri) => match schema_of(uri) {
                Some(file) => {
                    let known = SCHEMAS.iter().find(|(f, _)| *f == file).map_or(&[][..], |(_, e)| *e);
                    if !known.contains(&name) {
                        problems.push(format!("{name} is not an element of {file}"));
                    }
                }
                None => problems.push(format!("{name} is in {uri}, which is not a WSUS publishing schema")),
            },
            None => problems.push(format!("{name} has no namespace")),
        }
    }
    let mut facts = Checked { package_id: String::new(), title: String::new(), origin: Vec::new() };

    match child(root, "Properties") {
        None => problems.push("sdp:Properties is missing".into()),
        Some(p) => {
            match p.attribute("PackageID") {
                Some(id) if bare_guid(id) => facts.package_id = id.to_ascii_lowercase(),
                Some(id) => problems.push(format!("Properties/@PackageID {id:?} is not a bare GUID (no braces)")),
                None => problems.push("Properties/@PackageID is missing".into()),
            }
            match p.attribute("CreationDate") {
                Some(d) if date_time(d) => {}
                Some(d) => problems.push(format!("Properties/@CreationDate {d:?} is not an xs:dateTime")),
                None => problems.push("Properties/@CreationDate is missing".into()),
            }
            if p.attribute("VendorName").is_none_or(str::is_empty) {
                problems.push("Properties/@VendorName is missing".into());
            }
            if let Some(s) = p.attribute("PublicationState") {
                if s != "Published" && s != "Expired" {
                    problems.push(format!("Properties/@PublicationState {s:?} is not Published or Expired"));
                }
            }
        }
    }
    let localized: Vec<_> = root.children().filter(|c| in_sdp(c, "LocalizedProperties")).collect();
    if localized.is_empty() {
        problems.push("sdp:LocalizedProperties is missing".into());
    }
    for l in &localized {
        for required in ["Language", "Title", "Description"] {
            if child(*l, required).is_none() {
                problems.push(format!("LocalizedProperties/{required} is missing (the schema requires it)"));
            }
        }
        if facts.title.is_empty() {
            facts.title = child(*l, "Title").and_then(|t| t.text()).unwrap_or_default().to_string();
        }
    }
    match child(root, "UpdateSpecificData") {
        None => problems.push("sdp:UpdateSpecificData is missing".into()),
        Some(u) => match u.attribute("UpdateClassification") {
            Some(c) if CLASSIFICATIONS.contains(&c) => {}
            Some(c) if uuid::Uuid::parse_str(c.trim_matches(['{', '}'])).is_ok() => problems.push(format!(
                "UpdateSpecificData/@UpdateClassification is the GUID {c}; WSUS wants the classification's name, such as Updates or Security Updates"
            )),
            Some(c) => problems.push(format!("UpdateSpecificData/@UpdateClassification {c:?} is not one of {}", CLASSIFICATIONS.join(", "))),
            None => problems.push("UpdateSpecificData/@UpdateClassification is missing".into()),
        },
    }
    if let Some(s) = child(root, "SupersededPackages") {
        for id in s.children().filter(|c| in_sdp(c, "PackageID")) {
            let t = id.text().unwrap_or_default().trim();
            if !bare_guid(t) {
                problems.push(format!("SupersededPackages/PackageID {t:?} is not a bare GUID"));
            }
        }
    }
    let items: Vec<_> = root.children().filter(|c| in_sdp(c, "InstallableItem")).collect();
    if items.is_empty() {
        problems.push("sdp:InstallableItem is missing".into());
    }
    for item in items {
        match item.attribute("ID") {
            Some(id) if bare_guid(id) => {}
            Some(id) => problems.push(format!("InstallableItem/@ID {id:?} is not a bare GUID")),
            None => problems.push("InstallableItem/@ID is missing".into()),
        }
        if child(item, "ApplicabilityRules").is_none() {
            problems.push("InstallableItem/ApplicabilityRules is missing".into());
        }
        let handlers: Vec<_> = item
            .children()
            .filter(|c| c.is_element() && c.tag_name().namespace().is_some_and(|n| n.contains("/Installers/")))
            .collect();
        if handlers.len() != 1 {
            problems.push(format!(
                "InstallableItem has {} installer handler elements; it needs exactly one",
                handlers.len()
            ));
        }
        for h in handlers {
            let need: &[&str] = match h.tag_name().name() {
                "MsiInstallerData" => &["MsiFile", "ProductCode"],
                "MspInstallerData" => &["MspFile"],
                "CommandLineInstallerData" => &["Program"],
                _ => &[],
            };
            for a in need {
                if h.attribute(*a).is_none_or(str::is_empty) {
                    problems.push(format!("{}/@{a} is missing (the schema requires it)", h.tag_name().name()));
                }
            }
            if let Some(code) = h.attribute("ProductCode") {
                if !braced_guid(code) {
                    problems.push(format!("MsiInstallerData/@ProductCode {code:?} is not a braced GUID"));
                }
            }
        }
        let origins: Vec<_> = item.children().filter(|c| in_sdp(c, "OriginFile")).collect();
        if origins.is_empty() {
            problems.push("InstallableItem/OriginFile is missing".into());
        }
        for o in origins {
            let name = o.attribute("FileName").unwrap_or_default().to_string();
            if name.is_empty() {
                problems.push("OriginFile/@FileName is missing".into());
            }
            let size = o.attribute("Size").and_then(|s| s.parse::<u64>().ok());
            if size.is_none() {
                problems.push(format!("OriginFile/@Size of {name} is missing or not a number"));
            }
            if !o.attribute("Modified").is_some_and(date_time) {
                problems.push(format!("OriginFile/@Modified of {name} is missing or not an xs:dateTime"));
            }
            // The publishing API reads OriginUri into a System.Uri: an absolute URI, and a
            // file's origin is a web or file location.
            match o.attribute("OriginUri").map(url::Url::parse) {
                None => problems.push(format!("OriginFile/@OriginUri of {name} is missing")),
                Some(Err(e)) => problems.push(format!("OriginFile/@OriginUri of {name} is not an absolute URI ({e})")),
                Some(Ok(u)) if !matches!(u.scheme(), "http" | "https" | "file") => problems.push(format!(
                    "OriginFile/@OriginUri of {name} has the scheme {}, not http, https or file",
                    u.scheme()
                )),
                Some(Ok(_)) => {}
            }
            let sha1 = o.attribute("Digest").and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok());
            match &sha1 {
                Some(d) if d.len() == 20 => {}
                Some(d) if d.len() == 32 => problems.push(format!(
                    "OriginFile/@Digest of {name} is 32 bytes: it must be the base64 SHA-1 (20 bytes); put the SHA-256 in AdditionalDigest"
                )),
                _ => problems.push(format!("OriginFile/@Digest of {name} is not a base64 SHA-1")),
            }
            let mut sha256 = None;
            for extra in o.children().filter(|c| in_sdp(c, "AdditionalDigest")) {
                let bytes = base64::engine::general_purpose::STANDARD.decode(extra.text().unwrap_or_default().trim());
                match (extra.attribute("Algorithm"), bytes) {
                    (Some("SHA256"), Ok(b)) if b.len() == 32 => sha256 = Some(b),
                    (Some(alg), _) => problems.push(format!(
                        "OriginFile/AdditionalDigest ({alg}) of {name} is not a base64 digest of its algorithm"
                    )),
                    (None, _) => problems.push(format!("OriginFile/AdditionalDigest of {name} has no Algorithm")),
                }
            }
            if let (Some(size), Some(sha1)) = (size, sha1.filter(|d| d.len() == 20)) {
                facts.origin.push(Origin { name, size, sha1, sha256 });
            }
        }
    }
    for n in root.descendants().filter(|n| n.is_element() && n.tag_name().name().starts_with("Reg")) {
        if let Some(key) = n.attribute("Key") {
            if key != "HKEY_LOCAL_MACHINE" && key != "HKEY_LOOP_TARGET" {
                problems.push(format!(
                    "{} reads {key}; registry rules may read HKEY_LOCAL_MACHINE only",
                    n.tag_name().name()
                ));
            }
        }
    }
    // Every version attribute of the applicability rules is a `bt:Version`: four dot-separated
    // numbers of at most 65535 (BaseTypes.xsd), not a marketing version such as 24.08.
    let versions: [(&str, &[&str]); 5] = [
        ("FileVersion", &["Version"]),
        ("FileVersionPrependRegSz", &["Version"]),
        ("RegSzToVersion", &["Data"]),
        ("MsiProductInstalled", &["VersionMin", "VersionMax"]),
        ("MsiPatchInstalledForProduct", &["VersionMin", "VersionMax"]),
    ];
    for n in root.descendants().filter(|n| n.is_element()) {
        let Some((element, attributes)) = versions.iter().find(|(e, _)| *e == n.tag_name().name()) else { continue };
        for a in *attributes {
            if let Some(v) = n.attribute(*a) {
                if !is_four_part_version(v) {
                    problems.push(format!(
                        "{element}/@{a} {v:?} is not a bt:Version: WSUS takes four numbers n.n.n.n (each at most 65535)"
                    ));
                }
            }
        }
    }
    for n in root.descendants().filter(|n| n.is_element() && n.tag_name().name() == "MsiProductInstalled") {
        if let Some(code) = n.attribute("ProductCode") {
            if !braced_guid(code) {
                problems.push(format!("MsiProductInstalled/@ProductCode {code:?} is not a braced GUID"));
            }
        }
    }
    if problems.is_empty() {
        Ok(facts)
    } else {
        Err(problems)
    }
}

fn is_four_part_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u32>().is_ok_and(|n| n <= 65535))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"<sdp:SoftwareDistributionPackage SchemaVersion="1.2" xmlns:sdp="http://schemas.microsoft.com/wsus/2005/04/CorporatePublishing/SoftwareDistributionPackage.xsd" xmlns:msi="http://schemas.microsoft.com/wsus/2005/04/CorporatePublishing/Installers/MsiInstallation.xsd" xmlns:msiar="http://schemas.microsoft.com/wsus/2005/04/CorporatePublishing/MsiApplicabilityRules.xsd" xmlns:lar="http://schemas.microsoft.com/wsus/2005/04/CorporatePublishing/LogicalApplicabilityRules.xsd">
  <sdp:Properties PackageID="dc718411-a5f1-4b15-966a-63a77cbb156e" CreationDate="2019-01-24T07:52:15Z" VendorName="Dell"><sdp:ProductName>P</sdp:ProductName></sdp:Properties>
  <sdp:LocalizedProperties><sdp:Language>en</sdp:Language><sdp:Title>T</sdp:Title><sdp:Description>D</sdp:Description></sdp:LocalizedProperties>
  <sdp:UpdateSpecificData UpdateClassification="Updates"/>
  <sdp:InstallableItem ID="5968b32a-dc30-4186-8652-ecc4a7cdc684">
    <sdp:ApplicabilityRules><sdp:IsInstalled><msiar:MsiProductInstalled ProductCode="{FB2B7CC0-8307-47e6-A065-11015CC96B99}"/></sdp:IsInstalled><sdp:IsInstallable><lar:True/></sdp:IsInstallable></sdp:ApplicabilityRules>
    <msi:MsiInstallerData MsiFile="a.msi" ProductCode="{FB2B7CC0-8307-47e6-A065-11015CC96B99}"/>
    <sdp:OriginFile Digest="7sJyfjiOzAzMVjZ7FqJLS0hQsG0=" FileName="a.msi" Size="10" Modified="2019-01-24T07:52:15Z" OriginUri="http://x/a.msi"/>
  </sdp:InstallableItem>
</sdp:SoftwareDistributionPackage>"#;

    #[test]
    fn a_minimal_valid_document_passes_with_its_facts() {
        let c = check(VALID).unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(c.package_id, "dc718411-a5f1-4b15-966a-63a77cbb156e");
        assert_eq!(c.origin.len(), 1);
        assert_eq!(c.origin[0].name, "a.msi");
    }

    #[test]
    fn common_mistakes_are_each_named() {
        let bad = VALID
            .replace(
                "wsus/2005/04/CorporatePublishing/MsiApplicabilityRules.xsd",
                "wsus/2002/12/MsiApplicabilityRules.xsd",
            )
            .replace(
                "PackageID=\"dc718411-a5f1-4b15-966a-63a77cbb156e\"",
                "PackageID=\"{dc718411-a5f1-4b15-966a-63a77cbb156e}\"",
            )
            .replace(
                "UpdateClassification=\"Updates\"",
                "UpdateClassification=\"cd5ffd1e-e932-4e3a-bf74-18bf0b1bbd83\"",
            )
            .replace("<sdp:Description>D</sdp:Description>", "")
            .replace("MsiFile=\"a.msi\" ProductCode=\"{FB2B7CC0-8307-47e6-A065-11015CC96B99}\"", "MsiFile=\"a.msi\"")
            .replace(
                "Digest=\"7sJyfjiOzAzMVjZ7FqJLS0hQsG0=\"",
                "Digest=\"CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\"",
            );
        let problems = check(&bad).expect_err("refused");
        let all = problems.join("\n");
        for expected in [
            "a Windows Update client namespace",
            "is not a bare GUID (no braces)",
            "WSUS wants the classification's name",
            "LocalizedProperties/Description is missing",
            "MsiInstallerData/@ProductCode is missing",
            "must be the base64 SHA-1",
        ] {
            assert!(all.contains(expected), "{expected:?} not in:\n{all}");
        }
        let https = VALID.replace(
            "http://schemas.microsoft.com/wsus/2005/04/CorporatePublishing/Installers",
            "https://schemas.microsoft.com/wsus/2005/04/CorporatePublishing/Installers",
        );
        assert!(check(&https).expect_err("refused").join("\n").contains("are http://, not https://"));
    }

    // Issue 13, item 1: WSUS refuses a version that is not four-part.
    #[test]
    fn a_version_that_is_not_four_part_is_refused() {
        let with = |v: &str| {
            VALID.replace(
                r#"<msiar:MsiProductInstalled ProductCode="{FB2B7CC0-8307-47e6-A065-11015CC96B99}"/>"#,
                &format!(r#"<msiar:MsiProductInstalled ProductCode="{{FB2B7CC0-8307-47e6-A065-11015CC96B99}}" VersionMin="{v}"/>"#),
            )
        };
        assert!(check(&with("24.8.0.0")).is_ok());
        for bad in ["24.08", "1.0.0", "1.2.3.4.5", "1.2.3.70000", "1.2.3.x"] {
            let all = check(&with(bad)).expect_err(bad).join("\n");
            assert!(all.contains(&format!("MsiProductInstalled/@VersionMin {bad:?} is not a bt:Version")), "{all}");
        }
    }
}
