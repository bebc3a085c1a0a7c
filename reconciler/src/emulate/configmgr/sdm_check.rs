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
                let used = text_of(child(install, "Content").and_then(|c| child(c, "ContentId")));
                if !content_ids.contains(&used.as_str()) {
                    problems.push(format!("DeploymentType {name}: InstallAction references content {used:?}, which Contents does not define"));
                }
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
                        if roxmltree::Document::parse(&body).is_err() {
                            problems.push(format!(
                                "DeploymentType {name}: the enhanced detection method's MethodBody is not escaped XML"
                            ));
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
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let script = dir.path().join("detect.ps1");
    std::fs::write(&script, body).map_err(|e| e.to_string())?;
    let roots = dir.path().join("roots.pem");
    let text: String = signers.iter().map(|der| pem::encode(&pem::Pem::new("CERTIFICATE", der.clone()))).collect();
    std::fs::write(&roots, text).map_err(|e| e.to_string())?;
    let check = crate::authenticode::inspect(&script, &roots, now).map_err(|e| e.to_string())?;
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
