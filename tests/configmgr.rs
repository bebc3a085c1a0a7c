//! Configuration Manager applications through the emulated AdminService over loopback, with the
//! real client: content on the site's share, SDMPackageXML, revisions, supersedence,
//! deployments, retirement, and the role-based access control refusals with their advice.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use chrono::Utc;
use reconciler::authenticode::CodeSigner;
use reconciler::catalog::{Detection, Installer, Sha256};
use reconciler::content::VerifiedContent;
use reconciler::emulate::{self, configmgr::Admin, EmulatorOptions};
use reconciler::model::{Architecture, InstallerType, ObjectName, PlatformType, ProductId, SecretRef, Secrets};
use reconciler::platform::configmgr::{ConfigMgrClient, Share};
use reconciler::platform::{DesiredAssignment, DesiredObject, PlatformClient, ScriptSigning};
use serde_json::Value;

const USER: &str = "CONTOSO\\svc-patchops";
const PASSWORD: &str = "correct horse battery staple";

struct Site {
    dir: tempfile::TempDir,
    base: url::Url,
}

impl Site {
    fn share(&self) -> Share {
        Share { unc: "\\\\cm01\\patchops$".into(), local: self.dir.path().join("share") }
    }

    fn state(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.dir.path().join("site.json")).unwrap()).unwrap()
    }
}

/// An emulated site with collections PO100012 and PO100013 and the user `USER` holding `roles`;
/// AllSigned clients trusting `signer` when given.
async fn site(roles: &[&str], all_signed_by: Option<Vec<u8>>) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let mut options = EmulatorOptions::default();
    let s = &mut options.configmgr;
    s.site_id = "5F3E0A11-7C2B-4D1E-9A8F-0123456789AB".into();
    s.share_unc = "\\\\cm01\\patchops$".into();
    s.share_local = dir.path().join("share");
    s.collections = vec!["PO100012".into(), "PO100013".into()];
    s.admins = vec![Admin {
        logon: USER.into(),
        password: PASSWORD.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
    }];
    s.all_signed_by = all_signed_by.map(|d| vec![d]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = emulate::serve(listener, PlatformType::Configmgr, &dir.path().join("site.json"), options).unwrap();
    Site { dir, base }
}

fn client(s: &Site) -> ConfigMgrClient {
    ConfigMgrClient::new(ObjectName::new("cm-test").unwrap(), s.base.clone(), s.share())
        .unwrap()
        .with_account(USER.into(), PASSWORD.into())
}

fn msi(version: &str) -> (&'static str, Vec<u8>) {
    let (file, bytes, _) = common::example_msi(version);
    (file, bytes)
}

fn object(version: &str, title: &str) -> DesiredObject {
    let (file, _, code) = common::example_msi(version);
    let mut o = common::msi_object(
        "vendor.app",
        version,
        &[
            ("displayName", title),
            ("publisher", "Vendor"),
            ("version", version),
            ("installerType", "msi"),
            ("installCommand", &format!("msiexec /i \"{file}\" /qn")),
            ("uninstallCommand", &format!("msiexec /x {code} /qn")),
            ("msiProductCode", code),
            ("configmgr.deliverAs", "application"),
            ("configmgr.estimatedRuntimeMinutes", "5"),
        ],
    );
    o.description = "Vendor App".into();
    o
}

fn verified(cache: &std::path::Path, b: &[u8]) -> VerifiedContent {
    common::verified(cache, b)
}

fn deploy(group: &str, intent: &str, deadline: Option<&str>) -> DesiredAssignment {
    let mut f = vec![("intent", intent), ("restart", "suppress")];
    if let Some(d) = deadline {
        f.push(("deadline", d));
    }
    DesiredAssignment { group: group.into(), fields: common::fields(&f) }
}

#[tokio::test]
async fn publish_revise_supersede_deploy_and_retire_through_the_adminservice() {
    let s = site(&["Application Author", "Application Deployment Manager"], None).await;
    let cache = tempfile::tempdir().unwrap();
    let c = client(&s);
    assert!(c.observe().await.unwrap().objects.is_empty());

    let (file, b1) = msi("1.0");
    let v1 = c.create(&object("1.0", "Vendor App (x64)"), &verified(cache.path(), &b1)).await.unwrap();
    c.set_assignments(&v1, &[deploy("PO100012", "required", Some("3 days"))]).await.unwrap();
    // The content is on the share, byte for byte, where the deployment type says.
    let on_share: Vec<_> =
        common::walk(&s.dir.path().join("share")).into_iter().filter(|p| p.ends_with(file)).collect();
    assert_eq!(on_share.len(), 1);
    assert_eq!(std::fs::read(&on_share[0]).unwrap(), b1);

    let seen = c.observe().await.unwrap();
    let o = &seen.objects[0];
    assert_eq!(o.id, v1);
    assert_eq!(o.managed().map(|m| m.version.as_str()), Some("1.0"));
    for (k, v) in [
        ("displayName", "Vendor App (x64)"),
        ("installerType", "msi"),
        ("installCommand", "msiexec /i \"mozilla.firefox-128.0.3-x64.msi\" /qn"),
        ("msiProductCode", "{3A9B6C1E-4F2D-4C1A-9B0E-1F7C2D3E4A01}"),
        ("configmgr.estimatedRuntimeMinutes", "5"),
        ("size", "9728"),
    ] {
        assert_eq!(o.fields.get(k), Some(v), "{k}");
    }
    assert_eq!(o.assignments.len(), 1);
    assert_eq!(o.assignments[0].group, "PO100012");
    assert_eq!(o.assignments[0].fields.get("deadline"), Some("3 days"));
    assert_eq!(o.assignments[0].fields.get("restart"), Some("suppress"));
    let state = s.state();
    let revision_after_deploy = state["apps"][&v1]["revision"].as_u64().unwrap();

    // A changed setting is a new revision of the same application.
    c.reconfigure(&v1, &object("1.0", "Vendor App (x64, renamed)")).await.unwrap();
    assert_eq!(s.state()["apps"][&v1]["revision"].as_u64(), Some(revision_after_deploy + 1));
    assert_eq!(c.observe().await.unwrap().objects[0].fields.get("displayName"), Some("Vendor App (x64, renamed)"));

    // A new version is a new application whose deployment type supersedes the old one.
    let (_, b2) = msi("2.0");
    let v2 = c.create(&object("2.0", "Vendor App (x64)"), &verified(cache.path(), &b2)).await.unwrap();
    c.supersede(&v2, &v1).await.unwrap();
    c.set_assignments(&v2, &[deploy("PO100012", "available", None)]).await.unwrap();
    c.delete(&v1).await.unwrap();
    let seen = c.observe().await.unwrap();
    assert_eq!(seen.objects.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), vec![v2.as_str()], "1.0 is retired");
    assert_eq!(seen.objects[0].assignments[0].fields.get("intent"), Some("available"));
    // The superseded application is retired, so the relationship points at no live object.
    let state = s.state();
    assert_eq!(state["apps"][&v1]["expired"], true);
    assert!(state["apps"][&v2]["sdm"].as_str().unwrap().contains("DeploymentTypeApplicationReference"));
    assert!(state["assignments"].as_object().unwrap().values().all(|d| d["AssignedCIs"][0]
        .as_u64()
        .map(|n| n.to_string())
        .as_deref()
        == Some(v2.as_str())));
}

#[tokio::test]
async fn an_account_without_an_authoring_role_is_told_which_role_it_needs() {
    let s = site(&["Application Deployment Manager"], None).await;
    let cache = tempfile::tempdir().unwrap();
    let c = client(&s);
    let (_, b) = msi("1.0");
    let err = c.create(&object("1.0", "Vendor App (x64)"), &verified(cache.path(), &b)).await.unwrap_err().to_string();
    common::assert_contains(&err, "platform `cm-test`: creating the application was refused (403): Access denied: CONTOSO\\svc-patchops (roles Application Deployment Manager) does not have permission to create applications");
    common::assert_contains(&err, "the account CONTOSO\\svc-patchops needs the security role Application Author (or Application Administrator) on this site: add it in Administration > Security > Administrative Users");
    assert!(c.observe().await.unwrap().objects.is_empty(), "nothing was created");
}

#[tokio::test]
async fn an_account_without_a_deployment_role_is_told_which_role_it_needs() {
    let s = site(&["Application Author"], None).await;
    let cache = tempfile::tempdir().unwrap();
    let c = client(&s);
    let (_, b) = msi("1.0");
    let id = c.create(&object("1.0", "Vendor App (x64)"), &verified(cache.path(), &b)).await.unwrap();
    c.observe().await.unwrap();
    let err = c.set_assignments(&id, &[deploy("PO100012", "required", None)]).await.unwrap_err().to_string();
    common::assert_contains(&err, "creating a deployment was refused (403)");
    common::assert_contains(
        &err,
        "needs the security role Application Deployment Manager (or Application Administrator)",
    );
    assert!(s.state()["assignments"].as_object().unwrap().is_empty());
}

#[tokio::test]
async fn a_wrong_password_is_refused_without_showing_it() {
    let s = site(&["Full Administrator"], None).await;
    let c = ConfigMgrClient::new(ObjectName::new("cm-test").unwrap(), s.base.clone(), s.share())
        .unwrap()
        .with_account(USER.into(), "wrong-password-123".into());
    let err = c.observe().await.unwrap_err().to_string();
    common::assert_contains(&err, "listing applications was refused (401)");
    common::assert_contains(&err, "check auth.username (CONTOSO\\svc-patchops) and auth.password");
    assert!(!err.contains("wrong-password-123"), "{err}");
}

fn exe_object(bytes: &[u8]) -> DesiredObject {
    let mut o = object("1.0", "Vendor Tool (x64)");
    o.marker.product = ProductId::new("vendor.tool").unwrap();
    o.marker.content_digest = Sha256::digest(bytes);
    o.fields = common::fields(&[
        ("displayName", "Vendor Tool (x64)"),
        ("publisher", "Vendor"),
        ("version", "1.0"),
        ("installerType", "exe"),
        ("installCommand", "\"tool-setup.exe\" /S"),
        ("configmgr.deliverAs", "application"),
    ]);
    o.installer = Installer {
        architecture: Architecture::X64,
        installer_type: InstallerType::Exe,
        url: "installers/tool-setup.exe".into(),
        sha256: Sha256::digest(bytes),
        size: bytes.len() as u64,
        silent_install: "/S".into(),
        silent_uninstall: None,
        msi_product_code: None,
        detection: Some(Detection::Registry {
            key: r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\VendorTool".into(),
            value: "DisplayVersion".into(),
            version: None,
        }),
        success_codes: vec![],
        scan: None,
    };
    o
}

#[tokio::test]
async fn an_allsigned_site_takes_only_signed_detection_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, cert) = common::code_signing_certificate(dir.path(), "scripts");
    let der = reconciler::authenticode::pem_certificates(&std::fs::read(&cert).unwrap()).unwrap().remove(0);
    let s = site(&["Application Administrator"], Some(der)).await;
    let cache = tempfile::tempdir().unwrap();
    let bytes = b"MZ patchops test installer, not a real program".repeat(50);

    // Unsigned: the site refuses the application.
    let err = client(&s).create(&exe_object(&bytes), &verified(cache.path(), &bytes)).await.unwrap_err().to_string();
    common::assert_contains(&err, "clients run PowerShell as AllSigned, but the detection script is not signed");

    // Signed with the certificate the clients trust: created, and the stored script verifies.
    let signer =
        CodeSigner::new(&SecretRef::File(pem.display().to_string()), &Secrets::with_env(|_| None), Utc::now()).unwrap();
    let c = client(&s).with_script_signing(ScriptSigning::Signed(signer));
    let id = c.create(&exe_object(&bytes), &verified(cache.path(), &bytes)).await.unwrap();
    let sdm = s.state()["apps"][&id]["sdm"].as_str().unwrap().to_string();
    let app = reconciler::platform::configmgr::sdm::Application::parse(&sdm).unwrap();
    let reconciler::platform::configmgr::sdm::Detection::Script { body } = app.detection else {
        panic!("a script detection")
    };
    assert!(body.contains("# SIG # Begin signature block"));
    let script = dir.path().join("detect.ps1");
    std::fs::write(&script, &body).unwrap();
    common::osslsigncode_verifies(&script, &cert, &[]);
    reconciler::authenticode::verify(&script, &cert, chrono::Utc::now())
        .expect("patchops verifies the stored detection script");
    assert!(sdm.starts_with("<?xml version=\"1.0\" encoding=\"utf-16\"?>"));
    assert!(sdm.contains("<Technology>Script</Technology>") && sdm.contains("<Provider>Script</Provider>"));
}

#[tokio::test]
async fn the_site_checks_sdmpackagexml_and_names_each_problem() {
    let s = site(&["Full Administrator"], None).await;
    let cache = tempfile::tempdir().unwrap();
    let c = client(&s);
    let (_, b) = msi("1.0");
    let id = c.create(&object("1.0", "Vendor App (x64)"), &verified(cache.path(), &b)).await.unwrap();
    let good = s.state()["apps"][&id]["sdm"].as_str().unwrap().to_string();
    let post = |xml: String| {
        let url = s.base.join("AdminService/wmi/SMS_Application").unwrap();
        async move {
            reqwest::Client::new()
                .post(url)
                .basic_auth(USER, Some(PASSWORD))
                .json(&serde_json::json!({ "SDMPackageXML": xml }))
                .send()
                .await
                .unwrap()
        }
    };
    // A copy under another logical name, so that it is not refused as an existing application.
    let app_guid = good.split("LogicalName=\"Application_").nth(1).unwrap()[..36].to_string();
    let fresh = |xml: &str| xml.replace(&app_guid, "00000000-0000-4000-8000-00000000abcd");
    let wrong_ns = fresh(&good).replace(
        "SystemCenterConfigurationManager/2009/AppMgmtDigest",
        "SystemsCenterConfigurationManager/2009/AppMgmtDigest",
    );
    let resp = post(wrong_ns).await;
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    common::assert_contains(
        body["error"]["message"].as_str().unwrap(),
        "the AppMgmtDigest namespace is spelled SystemCenter, without the s",
    );

    let broken = fresh(&good)
        .replace("encoding=\"utf-16\"", "encoding=\"utf-8\"")
        .replace("<Provider>MSI</Provider>\n        <Args>", "<Provider>Script</Provider>\n        <Args>")
        .replace("\\\\cm01\\patchops$", "\\\\elsewhere\\share");
    let resp = post(broken).await;
    let body: Value = resp.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    for expected in [
        "must start with an XML declaration with encoding=\"utf-16\"",
        "InstallAction/Provider \"Script\" must equal the installer technology MSI",
        "is not on the site's content share \\\\cm01\\patchops$",
    ] {
        common::assert_contains(message, expected);
    }
}

// Issue 14, item 14: a content location that climbs out of the share is refused before the
// site looks at anything outside it (not even a file's size is revealed).
#[tokio::test]
async fn a_content_location_outside_the_share_is_refused_without_revealing_anything() {
    let s = site(&["Full Administrator"], None).await;
    let cache = tempfile::tempdir().unwrap();
    let (_, b) = msi("1.0");
    let id = client(&s).create(&object("1.0", "Vendor App (x64)"), &verified(cache.path(), &b)).await.unwrap();
    let good = s.state()["apps"][&id]["sdm"].as_str().unwrap().to_string();
    let app_guid = good.split("LogicalName=\"Application_").nth(1).unwrap()[..36].to_string();
    let location = good.split("<Location>").nth(1).unwrap().split("</Location>").next().unwrap().to_string();
    let escaping = good
        .replace(&app_guid, "00000000-0000-4000-8000-00000000abce")
        .replace(&location, &format!("{location}..\\..\\..\\..\\..\\..\\etc\\"))
        .replace("Name=\"mozilla.firefox-128.0.3-x64.msi\"", "Name=\"passwd\"");
    let resp = reqwest::Client::new()
        .post(s.base.join("AdminService/wmi/SMS_Application").unwrap())
        .basic_auth(USER, Some(PASSWORD))
        .json(&serde_json::json!({ "SDMPackageXML": escaping }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    common::assert_contains(message, "leaves the site's content share");
    assert!(!message.contains("bytes, the document says"), "no size of a file outside the share: {message}");
}

fn el<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| c.tag_name().name() == name)
}

// Issue 13, items 3 and 4: as real exports, each action references the Installer's content as
// `Contents/Content[@ContentId]` after its Args, and an MSI is detected by an enhanced detection
// method with an MSI setting whose rule compares the installed ProductVersion with the MSI's own
// (128.0.3 here; the catalog's version is 1.0). The emulated site refuses the other shapes.
#[tokio::test]
async fn actions_reference_their_content_and_msi_detection_uses_the_msis_own_version() {
    let s = site(&["Full Administrator"], None).await;
    let cache = tempfile::tempdir().unwrap();
    let (_, b) = msi("1.0");
    let id = client(&s).create(&object("1.0", "Vendor App (x64)"), &verified(cache.path(), &b)).await.unwrap();
    let good = s.state()["apps"][&id]["sdm"].as_str().unwrap().to_string();
    let text = good.replacen("encoding=\"utf-16\"", "encoding=\"utf-8\"", 1);
    let doc = roxmltree::Document::parse(&text).unwrap();
    let installer = doc.descendants().find(|n| n.tag_name().name() == "Installer").unwrap();
    let content_id = el(el(installer, "Contents").unwrap(), "Content").unwrap().attribute("ContentId").unwrap();
    for action in ["InstallAction", "UninstallAction"] {
        let a = el(installer, action).unwrap_or_else(|| panic!("no {action}"));
        let names: Vec<&str> = a.children().filter(|c| c.is_element()).map(|c| c.tag_name().name()).collect();
        assert_eq!(names, ["Provider", "Args", "Contents"], "{action}");
        let reference = el(el(a, "Contents").unwrap(), "Content").unwrap();
        assert_eq!(reference.attribute("ContentId"), Some(content_id), "{action}");
        assert_eq!(reference.attribute("Version"), Some("1"), "{action}");
    }
    let detect = el(installer, "DetectAction").unwrap();
    assert_eq!(el(detect, "Provider").unwrap().text(), Some("Local"));
    let body = detect
        .descendants()
        .find(|n| n.attribute("Name") == Some("MethodBody"))
        .and_then(|n| n.text())
        .unwrap()
        .replacen("encoding=\"utf-16\"", "encoding=\"utf-8\"", 1);
    let edm = roxmltree::Document::parse(&body).unwrap();
    let find = |name: &str| edm.descendants().find(|n| n.tag_name().name() == name).unwrap();
    assert_eq!(find("ProductCode").text().unwrap(), common::msi_property(&b, "ProductCode"));
    let reference = find("SettingReference");
    assert_eq!(reference.attribute("SettingLogicalName"), find("MSI").attribute("LogicalName"));
    assert_eq!(reference.attribute("PropertyPath"), Some("ProductVersion"));
    assert_eq!(reference.attribute("DataType"), Some("Version"));
    assert_eq!(find("Operator").text(), Some("GreaterEquals"));
    let own = common::msi_property(&b, "ProductVersion");
    assert_eq!(own, "128.0.3", "the example MSI's own version, not the catalog's 1.0");
    assert_eq!(find("ConstantValue").attribute("Value"), Some(own.as_str()));

    // What the emulated site refuses.
    let post = |xml: String| {
        let url = s.base.join("AdminService/wmi/SMS_Application").unwrap();
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .basic_auth(USER, Some(PASSWORD))
                .json(&serde_json::json!({ "SDMPackageXML": xml }))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or_default();
            (status, body["error"]["message"].as_str().unwrap_or_default().to_string())
        }
    };
    let app_guid = good.split("LogicalName=\"Application_").nth(1).unwrap()[..36].to_string();
    let fresh = |xml: &str| xml.replace(&app_guid, "00000000-0000-4000-8000-00000000abce");
    // The install action's content as patchops wrote it before: `<Content><ContentId>` of its own.
    let start = good.find("<InstallAction>").unwrap();
    let end = start + good[start..].find("</InstallAction>").unwrap();
    let action = &good[start..end];
    let (cs, ce) = (action.find("<Contents>").unwrap(), action.find("</Contents>").unwrap() + "</Contents>".len());
    let old_shape =
        action[..cs].to_string() + &format!("<Content><ContentId>{content_id}</ContentId></Content>") + &action[ce..];
    let (status, message) = post(fresh(&good.replacen(action, &old_shape, 1))).await;
    assert_eq!(status, 400, "{message}");
    common::assert_contains(&message, "InstallAction has a Content element of its own");
    common::assert_contains(&message, "InstallAction references no content");
    // Contents before Args.
    let (contents, rest) = (&action[cs..ce], action[..cs].to_string() + &action[ce..]);
    let args_at = rest.find("<Args>").unwrap();
    let reordered = rest[..args_at].to_string() + contents + &rest[args_at..];
    let (status, message) = post(fresh(&good.replacen(action, &reordered, 1))).await;
    assert_eq!(status, 400, "{message}");
    common::assert_contains(&message, "InstallAction's Contents must follow its Args");
    // A detection rule comparing with something that is not a version, and one naming a
    // setting it does not define.
    let (status, message) = post(fresh(&good.replace("128.0.3", "latest"))).await;
    assert_eq!(status, 400, "{message}");
    common::assert_contains(&message, "which is not a version");
    let setting = find("MSI").attribute("LogicalName").unwrap().to_string();
    let renamed = good.replacen(&setting, "MSI_00000000-0000-4000-8000-000000000000", 1);
    let (status, message) = post(fresh(&renamed)).await;
    assert_eq!(status, 400, "{message}");
    common::assert_contains(&message, "which its Settings do not define");
}
