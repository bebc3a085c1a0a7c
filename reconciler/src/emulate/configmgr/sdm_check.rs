//! The emulated SMS Provider's check of an application's SDMPackageXML (from the
//! AppMgmtDigest facts in the reference notes `wsus-configmgr.md` of the steering repository), written apart from
//! patchops's writer. Every problem is reported.

use std::path::PathBuf;

const DIGEST_NS: &str = "http://schemas.microsoft.com/SystemCenterConfigurationManager/2009/AppMgmtDigest";

/// What the site knows when it checks a document.
#[derive(Debug, Clone)]
pub struct Site {
    /// The site's authoring scope, `ScopeId_<GUID>`.
    pub scope: String,
    /// The content share's UNC path and local directory.
    pub share_unc: String,
    /// Where the share is on this machine.
    pub share_local: PathBuf,
    /// Existing applications: (model name, deployment type logical name).
    pub existing: Vec<(String, String)>,
    /// Detection scripts must be Authenticode-signed by one of these certificates.
    pub all_signed_by: Option<Vec<Vec<u8>>>,
    /// The site's time, for the signing certificate's validity.
    pub now: chrono::DateTime<chrono::Utc>,
}

/// The facts the site keeps of a valid document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// `ScopeId_…/Application_…`.
    pub model_name: String,
    /// The deployment type's logical name (`DeploymentType_…`).
    pub deployment_type: String,
    /// The title.
    pub title: String,
    /// The software version.
    pub version: String,
    /// The publisher.
    pub publisher: String,
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| c.has_tag_name((DIGEST_NS, name)))
}

/// The desired-configuration namespace of detection settings, and the rules namespace (both
/// spelled "SystemsCenter").
const DC_NS: &str = "http://schemas.microsoft.com/SystemsCenterConfigurationManager/2009/07/10/DesiredConfiguration";
const RULES_NS: &str = "http://schemas.microsoft.com/SystemsCenterConfigurationManager/2009/06/14/Rules";

/// An install or uninstall action's content reference, as real exports have it: after `Args`,
/// `<Contents><Content ContentId="…" Version="…"/></Contents>`, naming the Installer's content.
/// A client downloads nothing for an action whose reference is missing or of another shape.
fn action_content(
    dt: &str,
    action_name: &str,
    action: roxmltree::Node<'_, '_>,
    defined: &[&str],
    required: bool,
    problems: &mut Vec<String>,
) {
    if action.children().any(|c| c.has_tag_name((DIGEST_NS, "Content"))) {
        problems.push(format!(
            "DeploymentType {dt}: {action_name} has a Content element of its own; an action references content as Contents/Content[@ContentId] after Args"
        ));
    }
    let elements: Vec<&str> = action.children().filter(|c| c.is_element()).map(|c| c.tag_name().name()).collect();
    let at = |n: &str| elements.iter().position(|e| *e == n);
    let Some(contents) = child(action, "Contents") else {
        if required {
            problems.push(format!(
                "DeploymentType {dt}: {action_name} references no content (Contents/Content[@ContentId] after Args)"
            ));
        }
        return;
    };
    if at("Args").is_some_and(|a| at("Contents").is_some_and(|c| c < a)) {
        problems.push(format!("DeploymentType {dt}: {action_name}'s Contents must follow its Args"));
    }
    let refs: Vec<_> = contents.children().filter(|c| c.has_tag_name((DIGEST_NS, "Content"))).collect();
    if refs.is_empty() {
        problems.push(format!("DeploymentType {dt}: {action_name}'s Contents holds no Content"));
    }
    for r in refs {
        match (r.attribute("ContentId"), r.attribute("Version")) {
            (Some(id), Some(v)) if v.parse::<u32>().is_ok() => {
                if !defined.contains(&id) {
                    problems.push(format!("DeploymentType {dt}: {action_name} references content {id:?}, which the Installer's Contents does not define"));
                }
            }
            _ => problems
                .push(format!("DeploymentType {dt}: {action_name}'s Content needs ContentId and a numeric Version")),
        }
    }
}

/// Problems of an `EnhancedDetectionMethod` document (the escaped `MethodBody`): its root and
/// namespaces, every rule's setting reference naming a setting it defines and this application,
/// MSI settings' product codes, and version constants.
fn enhanced_detection(body: &str, scope: &str, application: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let text = body.replacen("encoding=\"utf-16\"", "encoding=\"utf-8\"", 1);
    let doc = match roxmltree::Document::parse(&text) {
        Ok(d) => d,
        Err(e) => return vec![format!("is not escaped XML ({e})")],
    };
    let root = doc.root_element();
    if !root.has_tag_name((DIGEST_NS, "EnhancedDetectionMethod")) {
        return vec!["is not an EnhancedDetectionMethod in the AppMgmtDigest namespace".into()];
    }
    let Some(settings) = root.children().find(|c| c.has_tag_name((DIGEST_NS, "Settings"))) else {
        return vec!["has no Settings".into()];
    };
    let mut defined = Vec::new();
    for setting in settings.children().filter(|c| c.is_element()) {
        if setting.tag_name().namespace() != Some(DC_NS) {
            problems
                .push(format!("setting {} is not in the DesiredConfiguration namespace", setting.tag_name().name()));
        }
        let logical = setting.attribute("LogicalName").unwrap_or_default();
        defined.push((logical.to_string(), setting.tag_name().name().to_string()));
        if setting.tag_name().name() == "MSI" {
            let code = setting
                .children()
                .find(|c| c.has_tag_name((DC_NS, "ProductCode")))
                .and_then(|c| c.text())
                .unwrap_or_default();
            let braced = code.len() == 38 && code.starts_with('{') && uuid::Uuid::parse_str(&code[1..37]).is_ok();
            if !braced {
                problems.push(format!("MSI setting {logical}: ProductCode {code:?} is not a braced GUID"));
            }
        }
    }
    let Some(rule) = root.children().find(|c| c.has_tag_name((RULES_NS, "Rule"))) else {
        problems.push("has no Rule in the Rules namespace".into());
        return problems;
    };
    let references: Vec<_> = rule.descendants().filter(|n| n.has_tag_name((RULES_NS, "SettingReference"))).collect();
    if references.is_empty() {
        problems.push("has a Rule that references no setting".into());
    }
    for r in references {
        let setting = r.attribute("SettingLogicalName").unwrap_or_default();
        match defined.iter().find(|(l, _)| l == setting) {
            None => problems.push(format!("references setting {setting:?}, which its Settings do not define")),
            Some((_, kind)) if r.attribute("SettingSourceType") != Some(kind.as_str()) => problems.push(format!(
                "references {setting} with SettingSourceType {:?}, not {kind}",
                r.attribute("SettingSourceType").unwrap_or_default()
            )),
            Some(_) => {}
        }
        if r.attribute("AuthoringScopeId") != Some(scope) || r.attribute("LogicalName") != Some(application) {
            problems.push(format!(
                "references {setting} of another application (AuthoringScopeId and LogicalName must be this one's)"
            ));
        }
        if r.attribute("DataType") == Some("Version") {
            let value = r
                .next_sibling_element()
                .filter(|c| c.has_tag_name((RULES_NS, "ConstantValue")))
                .and_then(|c| c.attribute("Value"))
                .unwrap_or_default();
            let parts: Vec<&str> = value.split('.').collect();
            if !(2..=4).contains(&parts.len()) || parts.iter().any(|p| p.parse::<u32>().is_err()) {
                problems
                    .push(format!("compares {setting} with {value:?}, which is not a version (two to four numbers)"));
            }
        }
    }
    problems
}

fn guid_name(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|g| uuid::Uuid::parse_str(g).is_ok())
}

/// Checks a document; returns its facts or every problem.
pub fn check(xml: &str, site: &Site) -> Result<Checked, Vec<String>> {
    let mut problems = Vec::new();
    if !xml.trim_start().starts_with("<?xml") || !xml.lines().next().is_some_and(|l| l.contains("encoding=\"utf-16\""))
    {
        problems.push("SDMPackageXML must start with an XML declaration with encoding=\"utf-16\"".to_string());
    }
    let text = xml.replacen("encoding=\"utf-16\"", "encoding=\"utf-8\"", 1);
    let doc = match roxmltree::Document::parse(&text) {
        Ok(d) => d,
        Err(e) => {
            problems.push(format!("SDMPackageXML is not well-formed XML: {e}"));
            return Err(problems);
        }
    };
    let root = doc.root_element();
    let ns = root.tag_name().namespace().unwrap_or_default();
    if root.tag_name().name() != "AppMgmtDigest" || ns != DIGEST_NS {
        let hint = if ns.contains("SystemsCenterConfigurationManager/2009/AppMgmtDigest") {
            " (the AppMgmtDigest namespace is spelled SystemCenter, without the s)"
        } else {
            ""
        };
        problems
            .push(format!("the root is {{{ns}}}{}, not AppMgmtDigest in {DIGEST_NS}{hint}", root.tag_name().name()));
        return Err(problems);
    }
    let text_of = |n: Option<roxmltree::Node<'_, '_>>| n.and_then(|n| n.text()).unwrap_or_default().trim().to_string();
    let Some(app) = child(root, "Application") else {
        problems.push("Application is missing".into());
        return Err(problems);
    };
    let scope = app.attribute("AuthoringScopeId").unwrap_or_default();
    if !scope.eq_ignore_ascii_case(&site.scope) {
        problems
            .push(format!("Application/@AuthoringScopeId {scope:?} is not this site's authoring scope {}", site.scope));
    }
    let logical = app.attribute("LogicalName").unwrap_or_default();
    if !guid_name(logical, "Application_") {
        problems.push(format!("Application/@LogicalName {logical:?} is not Application_<GUID>"));
    }
    if app.attribute("Version").and_then(|v| v.parse::<u32>().ok()).is_none() {
        problems.push("Application/@Version is missing or not a number".into());
    }
    let title = text_of(child(app, "Title"));
    if title.is_empty() {
        problems.push("Application/Title is missing or empty".into());
    }
    if child(app, "DisplayInfo").and_then(|d| child(d, "Info")).and_then(|i| child(i, "Title")).is_none() {
        problems.push("Application/DisplayInfo/Info/Title is missing (Software Center shows it)".into());
    }
    let referenced: Vec<String> = child(app, "DeploymentTypes")
        .map(|d| d.children().filter_map(|c| c.attribute("LogicalName").map(str::to_string)).collect())
        .unwrap_or_default();
    if referenced.is_empty() {
        problems.push("Application/DeploymentTypes lists no deployment type".into());
    }
    let dts: Vec<_> = root.children().filter(|c| c.has_tag_name((DIGEST_NS, "DeploymentType"))).collect();
    for r in &referenced {
        if !dts.iter().any(|d| d.attribute("LogicalName") == Some(r.as_str())) {
            problems
                .push(format!("the application references deployment type {r}, which the document does not define"));
        }
    }
    for dt in &dts {
        let name = dt.attribute("LogicalName").unwrap_or_default();
        if !guid_name(name, "DeploymentType_") {
            problems.push(format!("DeploymentType/@LogicalName {name:?} is not DeploymentType_<GUID>"));
        }
        let technology = text_of(child(*dt, "Technology"));
        if technology != "MSI" && technology != "Script" {
            problems.push(format!("DeploymentType {name}: Technology {technology:?} is not MSI or Script"));
        }
        let Some(installer) = child(*dt, "Installer") else {
            problems.push(format!("DeploymentType {name}: Installer is missing"));
            continue;
        };
        if installer.attribute("Technology") != Some(technology.as_str()) {
            problems.push(format!(
                "DeploymentType {name}: Installer/@Technology is not the deployment type's {technology}"
            ));
        }
        let contents: Vec<_> = child(installer, "Contents")
            .map(|c| c.children().filter(|n| n.has_tag_name((DIGEST_NS, "Content"))).collect())
            .unwrap_or_default();
        for content in &contents {
            let location = text_of(child(*content, "Location"));
            let relative = location
                .strip_prefix(site.share_unc.trim_end_matches('\\'))
                .map(|r| r.trim_matches('\\').replace('\\', "/"));
            match relative {
                None => problems.push(format!(
                    "content location {location:?} is not on the site's content share {}",
                    site.share_unc
                )),
                // The site reads only its share: a location or file name with `..` is refused
                // before anything outside it is looked at (not even its size is told).
                Some(rel) if rel.split('/').any(|c| c == "..") => problems
                    .push(format!("content location {location:?} leaves the site's content share {}", site.share_unc)),
                Some(rel) => {
                    for f in content.children().filter(|n| n.has_tag_name((DIGEST_NS, "File"))) {
                        let file = f.attribute("Name").unwrap_or_default();
                        if file.is_empty() || file == ".." || file.contains(['/', '\\']) {
                            problems.push(format!("content file name {file:?} is not a plain file name"));
                            continue;
                        }
                        let size = f.attribute("Size").and_then(|s| s.parse::<u64>().ok());
                        let path = site.share_local.join(&rel).join(file);
                        match std::fs::metadata(&path) {
                            Ok(m) if Some(m.len()) == size => {}
                            Ok(m) => problems
                                .push(format!("{location}{file} is {} bytes, the document says {size:?}", m.len())),
                            Err(_) => problems.push(format!("{location}{file} is not on the content share")),
                        }
                    }
                }
            }
        }
        let content_ids: Vec<&str> = contents.iter().filter_map(|c| c.attribute("ContentId")).collect();
        match child(installer, "InstallAction") {
            None => problems.push(format!("DeploymentType {name}: InstallAction is missing")),
            Some(install) => {
                let provider = text_of(child(install, "Provider"));
                if provider != technology {
                    problems.push(format!("DeploymentType {name}: InstallAction/Provider {provider:?} must equal the installer technology {technology}"));
                }
                action_content(name, "InstallAction", install, &content_ids, true, &mut problems);
                let command = install
                    .descendants()
                    .find(|n| n.has_tag_name((DIGEST_NS, "Arg")) && n.attribute("Name") == Some("InstallCommandLine"))
                    .and_then(|n| n.text())
                    .unwrap_or_default();
                if command.trim().is_empty() {
                    problems.push(format!("DeploymentType {name}: the install command line is empty"));
                }
            }
        }
        if let Some(uninstall) = child(installer, "UninstallAction") {
            action_content(name, "UninstallAction", uninstall, &content_ids, false, &mut problems);
        }
        match child(installer, "DetectAction") {
            None => problems.push(format!(
                "DeploymentType {name}: DetectAction is missing (clients could not tell it is installed)"
            )),
            Some(detect) => {
                let provider = text_of(child(detect, "Provider"));
                let arg = |n: &str| {
                    detect
                        .descendants()
                        .find(|a| a.has_tag_name((DIGEST_NS, "Arg")) && a.attribute("Name") == Some(n))
                        .and_then(|a| a.text())
                        .map(str::to_string)
                };
                match provider.as_str() {
                    "MSI" => {
                        let code = arg("ProductCode").unwrap_or_default();
                        let braced =
                            code.len() == 38 && code.starts_with('{') && uuid::Uuid::parse_str(&code[1..37]).is_ok();
                        if !braced {
                            problems.push(format!(
                                "DeploymentType {name}: MSI detection's ProductCode {code:?} is not a braced GUID"
                            ));
                        }
                    }
                    "Script" => {
                        let body = arg("ScriptBody").unwrap_or_default();
                        if body.trim().is_empty() {
                            problems.push(format!("DeploymentType {name}: the detection script is empty"));
                        } else if let Some(signers) = &site.all_signed_by {
                            if let Err(why) = script_signed(&body, signers, site.now) {
                                problems.push(format!("DeploymentType {name}: clients run PowerShell as AllSigned, but the detection script {why}"));
                            }
                        }
                    }
                    "Local" => {
                        let body = arg("MethodBody").unwrap_or_default();
                        for p in enhanced_detection(&body, scope, logical) {
                            problems.push(format!("DeploymentType {name}: the enhanced detection method {p}"));
                        }
                    }
                    other => problems.push(format!(
                        "DeploymentType {name}: detection provider {other:?} is not MSI, Script or Local"
                    )),
                }
            }
        }
        for r in dt.descendants().filter(|n| n.tag_name().name() == "DeploymentTypeApplicationReference") {
            let model = format!(
                "{}/{}",
                r.attribute("AuthoringScopeId").unwrap_or_default(),
                r.attribute("LogicalName").unwrap_or_default()
            );
            let target_dt = r.attribute("DeploymentTypeLogicalName").unwrap_or_default();
            if !site.existing.iter().any(|(m, d)| m.eq_ignore_ascii_case(&model) && d == target_dt) {
                problems.push(format!(
                    "DeploymentType {name} supersedes {model}/{target_dt}, which is not an application of this site"
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Checked {
        model_name: format!("{scope}/{logical}"),
        deployment_type: dts.first().and_then(|d| d.attribute("LogicalName")).unwrap_or_default().to_string(),
        title,
        version: text_of(child(app, "SoftwareVersion")),
        publisher: text_of(child(app, "Publisher")),
    })
}

/// Whether a script carries a valid Authenticode signature by one of `signers`.
fn script_signed(body: &str, signers: &[Vec<u8>], now: chrono::DateTime<chrono::Utc>) -> Result<(), String> {
    let check = crate::authenticode::inspect_script(body, signers, now);
    match (check.signed, check.digest_matches, check.chain_trusted) {
        (false, _, _) => Err("is not signed".into()),
        (true, false, _) => Err("was changed after it was signed".into()),
        (true, true, false) => Err(format!(
            "is signed by a certificate the clients do not trust ({})",
            check.chain_error.unwrap_or_default()
        )),
        (true, true, true) => Ok(()),
    }
}

/// A content file an application's deployment types reference.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldFile {
    /// The content's `Location` (a UNC path).
    pub location: String,
    /// The file's name.
    pub name: String,
    /// Its size.
    pub size: u64,
}

/// What a site keeps of an application it already holds: its first deployment type's logical
/// name, and each content file its deployment types reference. `None` when the document
/// cannot be read.
pub fn held(xml: &str) -> Option<(String, Vec<HeldFile>)> {
    let text = xml.replacen("encoding=\"utf-16\"", "encoding=\"utf-8\"", 1);
    let doc = roxmltree::Document::parse(&text).ok()?;
    let root = doc.root_element();
    let dts: Vec<_> = root.children().filter(|c| c.has_tag_name((DIGEST_NS, "DeploymentType"))).collect();
    let deployment_type = dts.first()?.attribute("LogicalName")?.to_string();
    let mut files = Vec::new();
    for content in root.descendants().filter(|n| n.has_tag_name((DIGEST_NS, "Content"))) {
        let location = child(content, "Location").and_then(|n| n.text()).unwrap_or_default().trim().to_string();
        for f in content.children().filter(|n| n.has_tag_name((DIGEST_NS, "File"))) {
            let size = f.attribute("Size").and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
            files.push(HeldFile {
                location: location.clone(),
                name: f.attribute("Name").unwrap_or_default().to_string(),
                size,
            });
        }
    }
    Some((deployment_type, files))
}
