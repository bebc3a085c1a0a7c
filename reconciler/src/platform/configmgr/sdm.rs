//! SDMPackageXML: the `AppMgmtDigest` document a Configuration Manager application is created
//! from (the reference notes `wsus-configmgr.md` of the steering repository, "Configuration Manager").
//!
//! [`Application`] is what patchops writes: one application with one deployment type (MSI or
//! Script technology), its content on the site's content share, a detection method (the MSI
//! product code, or a generated PowerShell detection script, signed on AllSigned sites), the
//! install and uninstall actions, and supersedence of the previous version's deployment type.
//! [`Application::to_xml`] declares `encoding="utf-16"` as the SMS Provider does;
//! [`Application::parse`] reads back a document patchops wrote.
//!
//! Namespaces: the digest's is `…/SystemCenterConfigurationManager/2009/AppMgmtDigest` (no "s"
//! in SystemCenter); the rules' are spelled `SystemsCenter…`.

/// The AppMgmtDigest namespace.
pub const DIGEST_NS: &str = "http://schemas.microsoft.com/SystemCenterConfigurationManager/2009/AppMgmtDigest";
/// The rules namespace (supersedence, detection rules), with its historical "Systems".
pub const RULES_NS: &str = "http://schemas.microsoft.com/SystemsCenterConfigurationManager/2009/06/14/Rules";
/// The desired-configuration namespace of detection settings (an `MSI` setting), also "Systems".
pub const DC_NS: &str =
    "http://schemas.microsoft.com/SystemsCenterConfigurationManager/2009/07/10/DesiredConfiguration";

/// The deployment type's technology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Technology {
    /// Windows Installer (`GLOBAL/MSIDeploymentTechnology`).
    Msi,
    /// A command line (`GLOBAL/ScriptDeploymentTechnology`).
    Script,
}

impl Technology {
    fn name(self) -> &'static str {
        match self {
            Technology::Msi => "MSI",
            Technology::Script => "Script",
        }
    }
    fn global(self) -> &'static str {
        match self {
            Technology::Msi => "GLOBAL/MSIDeploymentTechnology",
            Technology::Script => "GLOBAL/ScriptDeploymentTechnology",
        }
    }
}

/// How the client tells the application is installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detection {
    /// Windows Installer detection as real exports carry it: an enhanced detection method
    /// (`Provider` Local, its XML escaped in the `MethodBody` Arg) with an MSI setting on the
    /// product code, and a rule that the installed `ProductVersion` is at least the MSI's own
    /// (what Windows Installer reports — not the catalog's marketing version), or, when no
    /// version is known, that the product is installed at all.
    Msi {
        /// `{GUID}`.
        product_code: String,
        /// The MSI's `ProductVersion`.
        product_version: Option<String>,
    },
    /// A PowerShell detection script (`Provider` Script, `ScriptType` 0), signed or not.
    Script {
        /// The script's text.
        body: String,
    },
}

/// `PostInstallBehavior`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostInstall {
    /// Decide from the exit code (the fleet's `basedOnReturnCode`).
    BasedOnExitCode,
    /// No action (`suppress`).
    NoAction,
    /// The program may restart the device (`allow`).
    ProgramReboot,
    /// ConfigMgr restarts the device (`force`).
    ForceReboot,
}

impl PostInstall {
    fn as_str(self) -> &'static str {
        match self {
            PostInstall::BasedOnExitCode => "BasedOnExitCode",
            PostInstall::NoAction => "NoAction",
            PostInstall::ProgramReboot => "ProgramReboot",
            PostInstall::ForceReboot => "ForceReboot",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [PostInstall::BasedOnExitCode, PostInstall::NoAction, PostInstall::ProgramReboot, PostInstall::ForceReboot]
            .into_iter()
            .find(|p| p.as_str() == s)
    }

    /// From the fleet's `restart`.
    pub fn from_restart(restart: &str) -> Self {
        match restart {
            "suppress" => PostInstall::NoAction,
            "allow" => PostInstall::ProgramReboot,
            "force" => PostInstall::ForceReboot,
            _ => PostInstall::BasedOnExitCode,
        }
    }

    /// The fleet's `restart` it stands for.
    pub fn restart(self) -> &'static str {
        match self {
            PostInstall::BasedOnExitCode => "basedOnReturnCode",
            PostInstall::NoAction => "suppress",
            PostInstall::ProgramReboot => "allow",
            PostInstall::ForceReboot => "force",
        }
    }
}

/// A reference to another application's deployment type (supersedence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentTypeRef {
    /// `ScopeId_…`.
    pub scope: String,
    /// `Application_…`.
    pub application: String,
    /// `DeploymentType_…`.
    pub deployment_type: String,
}

/// An application as patchops writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    /// `ScopeId_<site GUID>`.
    pub scope: String,
    /// `Application_<GUID>`.
    pub application: String,
    /// `DeploymentType_<GUID>`.
    pub deployment_type: String,
    /// `Content_<GUID>`.
    pub content_id: String,
    /// The SDM version (the revision), from 1.
    pub version: u32,
    /// Title (the planner's displayName).
    pub title: String,
    /// Publisher.
    pub publisher: String,
    /// Software version.
    pub software_version: String,
    /// Administrator comments (patchops's marker is the last line).
    pub description: String,
    /// The deployment type's technology.
    pub technology: Technology,
    /// The content folder as the site reads it (UNC, ending in `\`).
    pub location: String,
    /// The installer's name and size.
    pub file: (String, u64),
    /// Install command line.
    pub install: String,
    /// Uninstall command line (empty when none).
    pub uninstall: String,
    /// Detection method.
    pub detection: Detection,
    /// Post-install behaviour.
    pub post_install: PostInstall,
    /// Estimated installation time in minutes (0: not set).
    pub execute_time: u32,
    /// Exit codes meaning success (besides 0), restart (3010) and the like.
    pub success_codes: Vec<i32>,
    /// Deployment types this one supersedes.
    pub supersedes: Vec<DeploymentTypeRef>,
}

/// SDM `Arg` elements.
trait Args {
    fn arg(&mut self, name: &str, ty: &str, value: &str);
    fn codes(&mut self, name: &str, codes: &[i32]);
}

impl Args for crate::xml::XmlWriter {
    fn arg(&mut self, name: &str, ty: &str, value: &str) {
        self.text("Arg", &[("Name", name), ("Type", ty)], value);
    }
    fn codes(&mut self, name: &str, codes: &[i32]) {
        self.open("Arg", &[("Name", name), ("Type", "Int32[]")]);
        for c in codes {
            self.text("Item", &[], &c.to_string());
        }
        self.close("Arg");
    }
}

impl Application {
    /// The document (declared utf-16, as the SMS Provider stores it; sent as a JSON string).
    pub fn to_xml(&self) -> String {
        let mut x = crate::xml::XmlWriter::new("utf-16");
        x.open("AppMgmtDigest", &[("xmlns", DIGEST_NS), ("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance")]);
        let v = self.version.to_string();
        let app_attrs = [
            ("AuthoringScopeId", self.scope.as_str()),
            ("LogicalName", self.application.as_str()),
            ("Version", v.as_str()),
        ];
        let dt_attrs = [
            ("AuthoringScopeId", self.scope.as_str()),
            ("LogicalName", self.deployment_type.as_str()),
            ("Version", v.as_str()),
        ];
        x.open("Application", &app_attrs);
        x.open("DisplayInfo", &[("DefaultLanguage", "en-US")]);
        x.open("Info", &[("Language", "en-US")]);
        x.text("Title", &[], &self.title);
        x.text("Publisher", &[], &self.publisher);
        x.text("Version", &[], &self.software_version);
        x.close("Info");
        x.close("DisplayInfo");
        x.open("DeploymentTypes", &[]);
        x.empty("DeploymentType", &dt_attrs);
        x.close("DeploymentTypes");
        x.text("Title", &[("ResourceId", "Res_1")], &self.title);
        x.text("Description", &[("ResourceId", "Res_2")], &self.description);
        x.text("Publisher", &[("ResourceId", "Res_3")], &self.publisher);
        x.text("SoftwareVersion", &[("ResourceId", "Res_4")], &self.software_version);
        x.close("Application");

        x.open("DeploymentType", &dt_attrs);
        x.text("Title", &[("ResourceId", "Res_5")], &format!("{} - {}", self.title, self.technology.name()));
        x.text("DeploymentTechnology", &[], self.technology.global());
        x.text("Technology", &[], self.technology.name());
        x.text("Hosting", &[], "Native");
        x.open("Installer", &[("Technology", self.technology.name())]);
        x.text("ExecutionContext", &[], "System");
        x.open("Contents", &[]);
        x.open("Content", &[("ContentId", &self.content_id), ("Version", "1")]);
        let size = self.file.1.to_string();
        x.empty("File", &[("Name", &self.file.0), ("Size", &size)]);
        x.text("Location", &[], &self.location);
        x.text("PeerCache", &[], "true");
        x.text("OnFastNetwork", &[], "Download");
        x.text("OnSlowNetwork", &[], "DoNothing");
        x.close("Content");
        x.close("Contents");
        x.open("DetectAction", &[]);
        match &self.detection {
            Detection::Msi { product_code, product_version } => {
                x.text("Provider", &[], "Local");
                x.open("Args", &[]);
                x.arg("ExecutionContext", "String", "System");
                x.arg("MethodBody", "String", &self.enhanced_detection(product_code, product_version.as_deref()));
                x.close("Args");
            }
            Detection::Script { body } => {
                x.text("Provider", &[], "Script");
                x.open("Args", &[]);
                x.arg("ExecutionContext", "String", "System");
                x.arg("ScriptType", "Int32", "0");
                x.arg("ScriptBody", "String", body);
                x.arg("RunAs32Bit", "Boolean", "false");
                x.close("Args");
            }
        }
        x.close("DetectAction");
        // As real exports: Provider, Args, then the content the action runs from
        // (`Contents/Content@ContentId`, the Installer's content).
        x.open("InstallAction", &[]);
        x.text("Provider", &[], self.technology.name());
        x.open("Args", &[]);
        x.arg("InstallCommandLine", "String", &self.install);
        x.arg("ExecutionContext", "String", "System");
        x.arg("RequiresLogOn", "String", "");
        x.arg("RequiresElevatedRights", "Boolean", "false");
        x.arg("RequiresUserInteraction", "Boolean", "false");
        x.arg("UserInteractionMode", "String", "Hidden");
        x.arg("PostInstallBehavior", "String", self.post_install.as_str());
        x.arg("ExecuteTime", "Int32", &self.execute_time.to_string());
        x.arg("MaxExecuteTime", "Int32", "120");
        if let Detection::Msi { product_code, .. } = &self.detection {
            x.arg("ProductCode", "String", product_code);
        }
        let mut success = vec![0, 1707];
        success.extend(self.success_codes.iter().copied().filter(|c| ![0, 1707, 3010, 1641, 1618].contains(c)));
        x.codes("SuccessExitCodes", &success);
        x.codes("RebootExitCodes", &[3010]);
        x.codes("HardRebootExitCodes", &[1641]);
        x.codes("FastRetryExitCodes", &[1618]);
        x.close("Args");
        self.content_reference(&mut x);
        x.close("InstallAction");
        if !self.uninstall.is_empty() {
            x.open("UninstallAction", &[]);
            x.text("Provider", &[], self.technology.name());
            x.open("Args", &[]);
            x.arg("InstallCommandLine", "String", &self.uninstall);
            x.arg("ExecutionContext", "String", "System");
            x.close("Args");
            self.content_reference(&mut x);
            x.close("UninstallAction");
        }
        x.close("Installer");
        if !self.supersedes.is_empty() {
            x.open("Supersedes", &[]);
            for (i, s) in self.supersedes.iter().enumerate() {
                let id = format!("SupersedenceRule_{}_{i}", self.deployment_type.trim_start_matches("DeploymentType_"));
                x.open(
                    "DeploymentTypeRule",
                    &[
                        ("xmlns", RULES_NS),
                        ("Id", &id),
                        ("Severity", "Critical"),
                        ("NonCompliantWhenSettingIsNotFound", "false"),
                    ],
                );
                x.open("DeploymentTypeIntentExpression", &[("DesiredState", "Required")]);
                x.empty(
                    "DeploymentTypeApplicationReference",
                    &[
                        ("AuthoringScopeId", s.scope.as_str()),
                        ("LogicalName", s.application.as_str()),
                        ("DeploymentTypeAuthoringScopeId", s.scope.as_str()),
                        ("DeploymentTypeLogicalName", s.deployment_type.as_str()),
                        ("Changeable", "true"),
                    ],
                );
                x.close("DeploymentTypeIntentExpression");
                x.close("DeploymentTypeRule");
            }
            x.close("Supersedes");
        }
        x.close("DeploymentType");
        x.close("AppMgmtDigest");
        x.finish()
    }

    /// `<Contents><Content ContentId="…" Version="1"/></Contents>`: an action's reference to the
    /// Installer's content.
    fn content_reference(&self, x: &mut crate::xml::XmlWriter) {
        x.open("Contents", &[]);
        x.empty("Content", &[("ContentId", &self.content_id), ("Version", "1")]);
        x.close("Contents");
    }

    /// The logical name of the MSI detection setting (fixed per deployment type).
    fn msi_setting(&self) -> String {
        format!("MSI_{}", self.deployment_type.trim_start_matches("DeploymentType_"))
    }

    /// The `EnhancedDetectionMethod` document of an MSI detection, in the shape of real exports:
    /// an `MSI` setting on the product code, and the rule `IsInstalledRule` — the installed
    /// `ProductVersion` at least `version` (Version data, `Value` method), or else the product's
    /// presence (`Count` not 0).
    fn enhanced_detection(&self, product_code: &str, version: Option<&str>) -> String {
        let mut x = crate::xml::XmlWriter::new("utf-16");
        let setting = self.msi_setting();
        x.open("EnhancedDetectionMethod", &[("xmlns", DIGEST_NS)]);
        x.open("Settings", &[("xmlns", DIGEST_NS)]);
        x.open("MSI", &[("xmlns", DC_NS), ("LogicalName", &setting), ("IsPerUser", "false")]);
        x.open("Annotation", &[("xmlns", RULES_NS)]);
        x.empty("DisplayName", &[("Text", "")]);
        x.empty("Description", &[("Text", "")]);
        x.close("Annotation");
        x.text("ProductCode", &[], product_code);
        x.close("MSI");
        x.close("Settings");
        x.open(
            "Rule",
            &[
                ("xmlns", RULES_NS),
                ("id", "IsInstalledRule"),
                ("Severity", "None"),
                ("NonCompliantWhenSettingIsNotFound", "false"),
            ],
        );
        x.open("Expression", &[]);
        let sdm_version = self.version.to_string();
        // At least this version (a Version value), or present at all (a count not 0).
        let (operator, data_type, method, value) = match version {
            Some(v) => ("GreaterEquals", "Version", "Value", v),
            None => ("NotEquals", "Int64", "Count", "0"),
        };
        x.text("Operator", &[], operator);
        x.open("Operands", &[]);
        let mut reference = vec![
            ("AuthoringScopeId", self.scope.as_str()),
            ("LogicalName", self.application.as_str()),
            ("Version", sdm_version.as_str()),
            ("DataType", data_type),
            ("SettingLogicalName", setting.as_str()),
            ("SettingSourceType", "MSI"),
            ("Method", method),
        ];
        if version.is_some() {
            reference.push(("PropertyPath", "ProductVersion"));
        }
        reference.push(("Changeable", "false"));
        x.empty("SettingReference", &reference);
        x.empty("ConstantValue", &[("Value", value), ("DataType", data_type)]);
        x.close("Operands");
        x.close("Expression");
        x.close("Rule");
        x.close("EnhancedDetectionMethod");
        x.finish()
    }

    /// Reads back a document patchops wrote.
    pub fn parse(xml: &str) -> Result<Application, crate::platform::NotOurs> {
        // roxmltree reads UTF-8 text; the declaration's utf-16 names the stored encoding.
        let text = xml.replacen("encoding=\"utf-16\"", "encoding=\"utf-8\"", 1);
        let doc = roxmltree::Document::parse(&text).map_err(|e| format!("not XML: {e}"))?;
        let root = doc.root_element();
        if root.tag_name().name() != "AppMgmtDigest" || root.tag_name().namespace() != Some(DIGEST_NS) {
            return Err("the root is not AppMgmtDigest in the AppMgmtDigest namespace".into());
        }
        let app = child(root, "Application")?;
        let dt = child(root, "DeploymentType")?;
        let installer = child(dt, "Installer")?;
        let content = child(child(installer, "Contents")?, "Content")?;
        let file = child(content, "File")?;
        let install = child(installer, "InstallAction")?;
        let detect = child(installer, "DetectAction")?;
        let args = |action: roxmltree::Node<'_, '_>| -> Vec<(String, String)> {
            action
                .children()
                .find(|c| c.has_tag_name((DIGEST_NS, "Args")))
                .map(|a| {
                    a.children()
                        .filter(|c| c.has_tag_name((DIGEST_NS, "Arg")))
                        .map(|c| {
                            (
                                c.attribute("Name").unwrap_or_default().to_string(),
                                c.text().unwrap_or_default().to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let install_args = args(install);
        let arg = |list: &[(String, String)], name: &str| list.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let technology = match text_of(child(dt, "Technology")?).as_str() {
            "MSI" => Technology::Msi,
            "Script" => Technology::Script,
            other => return Err(format!("technology {other} is not one patchops writes").into()),
        };
        let detect_args = args(detect);
        let detection = match text_of(child(detect, "Provider")?).as_str() {
            // What earlier patchops versions wrote: the product code alone.
            "MSI" => Detection::Msi {
                product_code: arg(&detect_args, "ProductCode").ok_or("no ProductCode")?,
                product_version: None,
            },
            "Local" => msi_detection(&arg(&detect_args, "MethodBody").ok_or("no MethodBody")?)?,
            "Script" => Detection::Script { body: arg(&detect_args, "ScriptBody").ok_or("no ScriptBody")? },
            other => return Err(format!("detection provider {other} is not one patchops writes").into()),
        };
        let success_codes = install
            .descendants()
            .find(|n| n.has_tag_name((DIGEST_NS, "Arg")) && n.attribute("Name") == Some("SuccessExitCodes"))
            .map(|a| a.children().filter_map(|i| i.text()?.parse().ok()).filter(|c| ![0, 1707].contains(c)).collect())
            .unwrap_or_default();
        let uninstall = installer
            .children()
            .find(|c| c.has_tag_name((DIGEST_NS, "UninstallAction")))
            .and_then(|u| arg(&args(u), "InstallCommandLine"))
            .unwrap_or_default();
        let supersedes = dt
            .children()
            .find(|c| c.has_tag_name((DIGEST_NS, "Supersedes")))
            .map(|s| {
                s.descendants()
                    .filter(|n| n.tag_name().name() == "DeploymentTypeApplicationReference")
                    .map(|r| DeploymentTypeRef {
                        scope: r.attribute("AuthoringScopeId").unwrap_or_default().to_string(),
                        application: r.attribute("LogicalName").unwrap_or_default().to_string(),
                        deployment_type: r.attribute("DeploymentTypeLogicalName").unwrap_or_default().to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Application {
            scope: attr(app, "AuthoringScopeId")?,
            application: attr(app, "LogicalName")?,
            deployment_type: attr(dt, "LogicalName")?,
            content_id: attr(content, "ContentId")?,
            version: attr(app, "Version")?.parse().map_err(|e| format!("Version: {e}"))?,
            title: text_of(child(app, "Title")?),
            publisher: text_of(child(app, "Publisher")?),
            software_version: text_of(child(app, "SoftwareVersion")?),
            description: text_of(child(app, "Description")?),
            technology,
            location: text_of(child(content, "Location")?),
            file: (attr(file, "Name")?, attr(file, "Size")?.parse().map_err(|e| format!("Size: {e}"))?),
            install: arg(&install_args, "InstallCommandLine").ok_or("no InstallCommandLine")?,
            uninstall,
            detection,
            post_install: arg(&install_args, "PostInstallBehavior")
                .as_deref()
                .and_then(PostInstall::parse)
                .ok_or("no PostInstallBehavior")?,
            execute_time: arg(&install_args, "ExecuteTime").and_then(|t| t.parse().ok()).unwrap_or(0),
            success_codes,
            supersedes,
        })
    }
}

/// The product code and version of an enhanced detection method patchops wrote.
fn msi_detection(body: &str) -> Result<Detection, crate::platform::NotOurs> {
    let text = body.replacen("encoding=\"utf-16\"", "encoding=\"utf-8\"", 1);
    let doc = roxmltree::Document::parse(&text).map_err(|e| format!("MethodBody is not XML: {e}"))?;
    let product_code = doc
        .descendants()
        .find(|n| n.has_tag_name((DC_NS, "MSI")))
        .and_then(|m| m.children().find(|c| c.has_tag_name((DC_NS, "ProductCode"))))
        .and_then(|c| c.text())
        .ok_or("the enhanced detection method has no MSI setting with a ProductCode")?
        .to_string();
    let product_version = doc
        .descendants()
        .find(|n| {
            n.has_tag_name((RULES_NS, "SettingReference")) && n.attribute("PropertyPath") == Some("ProductVersion")
        })
        .and_then(|r| r.next_sibling_element())
        .filter(|c| c.has_tag_name((RULES_NS, "ConstantValue")))
        .and_then(|c| c.attribute("Value"))
        .map(str::to_string);
    Ok(Detection::Msi { product_code, product_version })
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Result<roxmltree::Node<'a, 'i>, crate::platform::NotOurs> {
    n.children()
        .find(|c| c.has_tag_name((DIGEST_NS, name)))
        .ok_or_else(|| format!("no {name} in {}", n.tag_name().name()).into())
}

fn attr(n: roxmltree::Node<'_, '_>, name: &str) -> Result<String, crate::platform::NotOurs> {
    n.attribute(name).map(str::to_string).ok_or_else(|| format!("{} has no {name}", n.tag_name().name()).into())
}

fn text_of(n: roxmltree::Node<'_, '_>) -> String {
    n.text().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Application {
        Application {
            scope: "ScopeId_0A1B2C3D-0000-4000-8000-000000000001".into(),
            application: "Application_5f7d6c1e-0000-4000-8000-000000000002".into(),
            deployment_type: "DeploymentType_9a8b7c6d-0000-4000-8000-000000000003".into(),
            content_id: "Content_11111111-0000-4000-8000-000000000004".into(),
            version: 1,
            title: "Mozilla Firefox (x64)".into(),
            publisher: "Mozilla".into(),
            software_version: "131.0.2".into(),
            description: "Browser\npatchops:{}".into(),
            technology: Technology::Msi,
            location: "\\\\cm01\\sources\\patchops\\mozilla.firefox\\131.0.2\\".into(),
            file: ("firefox.msi".into(), 9728),
            install: "msiexec /i \"firefox.msi\" /qn".into(),
            uninstall: "msiexec /x {X} /qn".into(),
            detection: Detection::Msi {
                product_code: "{3A9B6C1E-4F2D-4C1A-9B0E-1F7C2D3E4A02}".into(),
                product_version: Some("24.08.0.0".into()),
            },
            post_install: PostInstall::NoAction,
            execute_time: 5,
            success_codes: vec![42],
            supersedes: vec![DeploymentTypeRef {
                scope: "ScopeId_0A1B2C3D-0000-4000-8000-000000000001".into(),
                application: "Application_old".into(),
                deployment_type: "DeploymentType_old".into(),
            }],
        }
    }

    #[test]
    fn a_written_digest_reads_back_the_same() {
        let a = sample();
        let xml = a.to_xml();
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"utf-16\"?>"), "{xml}");
        assert!(
            xml.contains("xmlns=\"http://schemas.microsoft.com/SystemCenterConfigurationManager/2009/AppMgmtDigest\"")
        );
        assert_eq!(Application::parse(&xml), Ok(a));
        let mut s = sample();
        s.technology = Technology::Script;
        s.detection = Detection::Script { body: "# SIG # Begin signature block\r\n<&>".into() };
        s.supersedes.clear();
        s.uninstall.clear();
        assert_eq!(Application::parse(&s.to_xml()), Ok(s));
    }
}
