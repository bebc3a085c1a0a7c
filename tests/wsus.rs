//! WSUS through the emulated server over loopback, with the real client: SDP documents,
//! request scripts (signed when the server runs AllSigned), CABs signed with a WSUS signing
//! certificate made here by `openssl` and checked with `osslsigncode verify` and `cabextract`,
//! and every refusal with its message.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use std::sync::Arc;

use chrono::Utc;
use reconciler::authenticode::CodeSigner;
use reconciler::catalog::Sha256;
use reconciler::content::VerifiedContent;
use reconciler::emulate::{self, EmulatorOptions};
use reconciler::model::kinds::WsusRetire;
use reconciler::model::{ObjectName, PlatformType, SecretRef, Secrets};
use reconciler::platform::wsus::request::{self, Request};
use reconciler::platform::wsus::sdp::Sdp;
use reconciler::platform::wsus::transport::{HttpTransport, Run, Transport};
use reconciler::platform::wsus::WsusClient;
use reconciler::platform::InstallerOrigin;
use reconciler::platform::{DesiredAssignment, DesiredObject, PlatformClient, ScriptSigning};

fn der(cert: &std::path::Path) -> Vec<u8> {
    reconciler::authenticode::pem_certificates(&std::fs::read(cert).unwrap()).unwrap().remove(0)
}

struct Server {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    base: url::Url,
    signing_cert: std::path::PathBuf,
    script_pem: std::path::PathBuf,
}

/// The emulated server: signing certificate `wsus`, groups Pilot and Broad, AllSigned trusting
/// the certificate `scripts`.
async fn server(signing: bool) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let (wsus_pem, wsus_cert) = common::code_signing_certificate(&path, "wsus");
    let (script_pem, script_cert) = common::code_signing_certificate(&path, "scripts");
    let mut options = EmulatorOptions::default();
    options.wsus.signing_pem = signing.then(|| wsus_pem.clone());
    options.wsus.groups = vec!["Pilot".into(), "Broad".into()];
    options.wsus.all_signed = true;
    options.wsus.trusted_script_signers = vec![der(&script_cert)];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = emulate::serve(listener, PlatformType::Wsus, &path.join("wsus.json"), options).unwrap();
    Server { _dir: dir, dir: path, base, signing_cert: wsus_cert, script_pem }
}

fn name() -> ObjectName {
    ObjectName::new("wsus-test").unwrap()
}

fn transport(s: &Server) -> Arc<dyn Transport> {
    Arc::new(HttpTransport::new(name(), s.base.clone()).unwrap())
}

fn client(s: &Server) -> WsusClient {
    let signer =
        CodeSigner::new(&SecretRef::File(s.script_pem.display().to_string()), &Secrets::with_env(|_| None), Utc::now())
            .unwrap();
    WsusClient::new(name(), transport(s)).with_script_signing(ScriptSigning::Signed(signer))
}

fn installer_file(version: &str) -> &'static str {
    common::example_msi(version).0
}

fn bytes(version: &str) -> Vec<u8> {
    common::example_msi(version).1
}

fn object(version: &str) -> DesiredObject {
    let code = common::example_msi(version).2;
    let mut o = common::msi_object(
        "vendor.app",
        version,
        &[
            ("displayName", "Vendor App (x64)"),
            ("publisher", "Vendor"),
            ("version", version),
            ("installerType", "msi"),
            ("installCommand", &format!("msiexec /i \"{}\" /qn /norestart", installer_file(version))),
            ("msiProductCode", code),
            ("wsus.classification", "securityUpdates"),
        ],
    );
    o.marker.commit = Some("0123456789abcdef".into());
    o.installer.url = format!("https://downloads.example.invalid/{}", installer_file(version));
    // Fetched from that URL, as apply records it.
    o.origin = url::Url::parse(&o.installer.url).ok().map(InstallerOrigin::Url);
    o.installer.silent_install = "/qn /norestart".into();
    o.installer.success_codes = vec![3010];
    o.description = "Vendor App, a test product".into();
    o.homepage = Some("https://vendor.example.invalid/".into());
    o
}

fn verified(cache: &std::path::Path, version: &str) -> VerifiedContent {
    common::verified(cache, &bytes(version))
}

fn pilot(deadline: Option<&str>, restart: &str) -> Vec<DesiredAssignment> {
    let mut f = vec![("intent", "required"), ("restart", restart)];
    if let Some(d) = deadline {
        f.push(("deadline", d));
    }
    vec![DesiredAssignment { group: "Pilot".into(), fields: common::fields(&f) }]
}

/// The signed CAB of an update, from the server's content folder.
fn cab_of(s: &Server, package: &str) -> std::path::PathBuf {
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(s.dir.join("wsus.json")).unwrap()).unwrap();
    let rel = state["updates"][package]["cab"].as_str().unwrap();
    s.dir.join("wsus.content").join(rel)
}

#[tokio::test]
async fn publish_update_and_retire_go_through_the_emulated_server() {
    let s = server(true).await;
    let cache = tempfile::tempdir().unwrap();
    let c = client(&s);
    assert!(c.observe().await.unwrap().objects.is_empty());

    // Publish 1.0 and approve it for Pilot with a deadline.
    let v1 = c.create(&object("1.0"), &verified(cache.path(), "1.0")).await.unwrap();
    c.set_assignments(&v1, &pilot(Some("3 days"), "suppress")).await.unwrap();
    let seen = c.observe().await.unwrap();
    assert_eq!(seen.objects.len(), 1);
    let o = &seen.objects[0];
    assert_eq!(o.id, v1);
    let m = o.managed().expect("the marker reads back");
    assert_eq!((m.version.as_str(), m.commit.as_deref()), ("1.0", Some("0123456789abcdef")));
    assert_eq!(o.fields.get("displayName"), Some("Vendor App (x64)"));
    assert_eq!(o.fields.get("installCommand"), Some("msiexec /i \"mozilla.firefox-128.0.3-x64.msi\" /qn /norestart"));
    assert_eq!(o.fields.get("wsus.classification"), Some("securityUpdates"));
    assert_eq!(o.fields.get("sha256").map(str::to_string), Some(Sha256::digest(&bytes("1.0")).to_string()));
    assert_eq!(o.assignments.len(), 1);
    assert_eq!(o.assignments[0].group, "Pilot");
    assert_eq!(o.assignments[0].fields.get("deadline"), Some("3 days"));
    assert_eq!(o.assignments[0].fields.get("restart"), Some("suppress"));

    // The server wrapped the installer in a CAB signed with its WSUS certificate.
    let cab = cab_of(&s, &v1);
    common::osslsigncode_verifies(&cab, &s.signing_cert, &[]);
    reconciler::authenticode::verify(&cab, &s.signing_cert, chrono::Utc::now()).expect("patchops verifies the CAB too");
    let out_dir = tempfile::tempdir().unwrap();
    let out = common::tool("cabextract", "cabextract")
        .arg("-q")
        .arg("-d")
        .arg(out_dir.path())
        .arg(&cab)
        .output()
        .expect("cabextract");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(out_dir.path().join(installer_file("1.0"))).unwrap(), bytes("1.0"));

    // Publishing the same version again finds the update instead of adding one.
    assert_eq!(c.create(&object("1.0"), &verified(cache.path(), "1.0")).await.unwrap(), v1);

    // An update: 2.0 is a new package superseding 1.0 (a metadata-only revision of 2.0).
    let v2 = c.create(&object("2.0"), &verified(cache.path(), "2.0")).await.unwrap();
    assert_ne!(v1, v2);
    c.supersede(&v2, &v1).await.unwrap();
    c.set_assignments(&v2, &pilot(None, "basedOnReturnCode")).await.unwrap();
    c.delete(&v1).await.unwrap();
    let seen = c.observe().await.unwrap();
    assert_eq!(seen.objects.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), vec![v2.as_str()], "1.0 is expired");
    let rel = &seen.objects[0].relationships;
    assert_eq!(rel.len(), 1);
    assert_eq!((rel[0].kind.as_str(), rel[0].target.as_str()), ("supersedence:update", v1.as_str()));
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(s.dir.join("wsus.json")).unwrap()).unwrap();
    assert_eq!(state["updates"][&v1]["expired"], true);
    assert_eq!(state["updates"][&v2]["revision"], 2, "the supersedence was a revision");

    // Retiring by declining keeps the package, without approvals.
    let declining = client(&s).with_retire(WsusRetire::Decline);
    declining.observe().await.unwrap();
    declining.delete(&v2).await.unwrap();
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(s.dir.join("wsus.json")).unwrap()).unwrap();
    assert_eq!(
        (state["updates"][&v2]["declined"].as_bool(), state["updates"][&v2]["expired"].as_bool()),
        (Some(true), Some(false))
    );
    assert!(c.observe().await.unwrap().objects.is_empty());
}

#[tokio::test]
async fn content_that_is_not_the_catalogs_never_reaches_the_server() {
    let s = server(true).await;
    let cache = tempfile::tempdir().unwrap();
    let c = client(&s);
    // The catalog says 1.0's digest; the content handed over is 2.0's.
    let err = c.create(&object("1.0"), &verified(cache.path(), "2.0")).await.unwrap_err().to_string();
    common::assert_contains(&err, "publishing the update failed: content ");
    common::assert_contains(&err, "does not match the marker's digest");
    assert!(c.observe().await.unwrap().objects.is_empty());
    // The only requests that reached the server were listings: no content was ever staged.
    assert!(!s.dir.join("wsus.content").exists(), "no CAB was made");
    let left = std::fs::read_dir(s.dir.join("wsus.staging")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "no staging folder is left");
}

/// Runs a publish request by hand with `content` staged under the SDP's file name.
async fn publish_by_hand(
    s: &Server,
    sdp: &Sdp,
    content: &[u8],
    signed: bool,
) -> reconciler::platform::wsus::transport::Output {
    let dir = tempfile::tempdir().unwrap();
    let id = sdp.package_id.to_string();
    std::fs::write(dir.path().join("u.sdp.xml"), sdp.to_xml()).unwrap();
    std::fs::write(dir.path().join(&sdp.origin.file_name), content).unwrap();
    let req = Request::Publish { package_id: id, sdp: "u.sdp.xml".into(), content: sdp.origin.file_name.clone() };
    let script = request::script(&req, "by hand");
    let text = if signed {
        let signer = CodeSigner::new(
            &SecretRef::File(s.script_pem.display().to_string()),
            &Secrets::with_env(|_| None),
            Utc::now(),
        )
        .unwrap();
        signer.sign_script(script).unwrap().text().to_string()
    } else {
        script.text().to_string()
    };
    transport(s)
        .run(Run {
            id: "by-hand".into(),
            script_name: "p.ps1",
            script: &text,
            files: vec![
                ("u.sdp.xml".into(), dir.path().join("u.sdp.xml")),
                (sdp.origin.file_name.clone(), dir.path().join(&sdp.origin.file_name)),
            ],
        })
        .await
        .unwrap()
}

/// The SDP the client publishes for 1.0, read back from the server.
async fn published_sdp(s: &Server) -> (String, Sdp) {
    let cache = tempfile::tempdir().unwrap();
    let c = client(s);
    let id = c.create(&object("1.0"), &verified(cache.path(), "1.0")).await.unwrap();
    let content = c.published_content().await.unwrap();
    (id, Sdp::parse(&content[0].sdp).unwrap())
}

#[tokio::test]
async fn the_server_refuses_a_binary_that_is_not_the_one_its_sdp_describes() {
    let s = server(true).await;
    let (_, mut sdp) = published_sdp(&s).await;
    sdp.package_id = uuid::Uuid::from_u128(0xabc);
    let mut tampered = bytes("1.0");
    tampered[100] ^= 0xff;
    let out = publish_by_hand(&s, &sdp, &tampered, true).await;
    assert_eq!(out.exit_code, 1);
    common::assert_contains(
        &out.stdout,
        "the file mozilla.firefox-128.0.3-x64.msi does not match the SDP's OriginFile: 9728 bytes with SHA-1 ",
    );
    let listed = client(&s).published_content().await.unwrap();
    assert_eq!(listed.len(), 1, "only the genuine update is published");
}

#[tokio::test]
async fn an_allsigned_server_refuses_an_unsigned_request_script() {
    let s = server(true).await;
    let c = WsusClient::new(name(), transport(&s));
    let err = c.observe().await.unwrap_err().to_string();
    common::assert_contains(&err, "is not digitally signed. You cannot run this script on the current system.");
    common::assert_contains(&err, "the server runs PowerShell as AllSigned: set trust.scriptSigningCertificate");
    // A script signed and then altered is refused too.
    let (_, mut sdp) = published_sdp(&s).await;
    sdp.package_id = uuid::Uuid::from_u128(0xdef);
    let script = request::script(&Request::Observe, "observe");
    let signer =
        CodeSigner::new(&SecretRef::File(s.script_pem.display().to_string()), &Secrets::with_env(|_| None), Utc::now())
            .unwrap();
    let altered =
        signer.sign_script(script).unwrap().text().replace("$Wsus.GetUpdates($scope)", "$Wsus.GetUpdates($scope) ");
    let out = transport(&s)
        .run(Run { id: "altered".into(), script_name: "o.ps1", script: &altered, files: vec![] })
        .await
        .unwrap();
    assert_eq!(out.exit_code, 1);
    common::assert_contains(&out.stderr, "might have been changed by an unauthorized user or process");
}

#[tokio::test]
async fn publishing_without_a_signing_certificate_fails_and_leaves_nothing() {
    let s = server(false).await;
    let cache = tempfile::tempdir().unwrap();
    let c = client(&s);
    let err = c.create(&object("1.0"), &verified(cache.path(), "1.0")).await.unwrap_err().to_string();
    common::assert_contains(
        &err,
        "Publishing failed: the server has no signing certificate for locally published updates",
    );
    assert!(c.observe().await.unwrap().objects.is_empty());
    assert!(c.server_facts().await.unwrap().signing_certificate.is_none());
}

#[tokio::test]
async fn sdp_documents_have_the_required_elements_and_namespaces() {
    let s = server(true).await;
    let (id, sdp) = published_sdp(&s).await;
    let xml = sdp.to_xml();
    let checked = reconciler::emulate::wsus::sdp_check::check(&xml).unwrap_or_else(|p| panic!("{p:?}"));
    assert_eq!(checked.package_id, id);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let sdp_ns = "http://schemas.microsoft.com/wsus/2005/04/CorporatePublishing/SoftwareDistributionPackage.xsd";
    let has = |ns: &str, name: &str| doc.descendants().any(|n| n.has_tag_name((ns, name)));
    for element in [
        "Properties",
        "LocalizedProperties",
        "Title",
        "Description",
        "UpdateSpecificData",
        "IsInstallable",
        "InstallableItem",
        "ApplicabilityRules",
        "IsInstalled",
        "InstallProperties",
        "OriginFile",
        "AdditionalDigest",
    ] {
        assert!(has(sdp_ns, element), "sdp:{element} is missing:\n{xml}");
    }
    assert!(has(
        "http://schemas.microsoft.com/wsus/2005/04/CorporatePublishing/MsiApplicabilityRules.xsd",
        "MsiProductInstalled"
    ));
    assert!(has(
        "http://schemas.microsoft.com/wsus/2005/04/CorporatePublishing/Installers/MsiInstallation.xsd",
        "MsiInstallerData"
    ));
    // The installed rule compares the MSI's own ProductVersion (128.0.3, four-part), not the
    // catalog's 1.0 (issue 13, item 4).
    let installed = doc.descendants().find(|n| n.tag_name().name() == "MsiProductInstalled").unwrap();
    assert_eq!(common::msi_property(&bytes("1.0"), "ProductVersion"), "128.0.3");
    assert_eq!(installed.attribute("VersionMin"), Some("128.0.3.0"), "{xml}");
    let origin = doc.descendants().find(|n| n.has_tag_name((sdp_ns, "OriginFile"))).unwrap();
    use base64::Engine as _;
    use sha1::Digest as _;
    let sha1 = base64::engine::general_purpose::STANDARD.decode(origin.attribute("Digest").unwrap()).unwrap();
    assert_eq!(sha1, sha1::Sha1::digest(bytes("1.0")).to_vec(), "Digest is the base64 SHA-1");
    assert_eq!(
        origin.attribute("OriginUri"),
        Some("https://downloads.example.invalid/mozilla.firefox-128.0.3-x64.msi")
    );
    // Real vendor SDPs pass the same checks.
    for sample in ["dell-dsia-msi.xml", "dell-realtek-audio-cmdline.xml"] {
        let path = common::workspace_root().join("tests/data/sdp").join(sample);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        reconciler::emulate::wsus::sdp_check::check(&text).unwrap_or_else(|p| panic!("{sample}: {p:?}"));
    }
}

/// Runs a signed publish request with only the SDP staged, naming `sdp_name` and `content`.
async fn publish_naming(
    s: &Server,
    sdp: &Sdp,
    sdp_name: &str,
    content: &str,
) -> reconciler::platform::wsus::transport::Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("u.sdp.xml"), sdp.to_xml()).unwrap();
    let req =
        Request::Publish { package_id: sdp.package_id.to_string(), sdp: sdp_name.into(), content: content.into() };
    let signer =
        CodeSigner::new(&SecretRef::File(s.script_pem.display().to_string()), &Secrets::with_env(|_| None), Utc::now())
            .unwrap();
    let text = signer.sign_script(request::script(&req, "by hand")).unwrap().text().to_string();
    transport(s)
        .run(Run {
            id: "by-hand".into(),
            script_name: "p.ps1",
            script: &text,
            files: vec![("u.sdp.xml".into(), dir.path().join("u.sdp.xml"))],
        })
        .await
        .unwrap()
}

// Issue 14, item 14: the emulated server reads only what was staged for the request.
#[tokio::test]
async fn the_emulated_server_reads_only_files_staged_for_the_request() {
    let s = server(true).await;
    let (_, mut sdp) = published_sdp(&s).await;
    sdp.package_id = uuid::Uuid::from_u128(0xdef);
    let cabs_before = common::walk(&s.dir.join("wsus.content")).len();

    // The SDP's OriginFile names a file outside the staging folder that matches it exactly.
    std::fs::write(s.dir.join("outside.msi"), bytes("1.0")).unwrap();
    sdp.origin.file_name = "../../outside.msi".into();
    let out = publish_naming(&s, &sdp, "u.sdp.xml", "../../outside.msi").await;
    assert_eq!(out.exit_code, 1, "{}", out.stdout);
    common::assert_contains(&out.stdout, "not a plain file name; the server reads only files staged for the request");

    // The request names the server's own state file as its SDP.
    let out = publish_naming(&s, &sdp, "../../wsus.json", "x.msi").await;
    assert_eq!(out.exit_code, 1, "{}", out.stdout);
    common::assert_contains(&out.stdout, r#"\"../../wsus.json\" is not a plain file name"#);
    assert_eq!(common::walk(&s.dir.join("wsus.content")).len(), cabs_before, "no CAB was made of either");
}

// Issue 13, item 2: OriginUri is an absolute URI. An installer URL reaches it whole (a signed
// download URL keeps its query string; only what people see is redacted); one read from the
// fleet's commit is recorded as `file:///` and its repository path; the emulated server refuses
// a relative OriginUri and other schemes.
#[tokio::test]
async fn origin_uri_is_absolute_and_whole() {
    let s = server(true).await;
    let cache = tempfile::tempdir().unwrap();
    let c = client(&s);
    let origin = |sdp: &str| {
        let doc = roxmltree::Document::parse(sdp).unwrap();
        let o = doc.descendants().find(|n| n.tag_name().name() == "OriginFile").unwrap();
        o.attribute("OriginUri").unwrap().to_string()
    };

    let mut signed = object("1.0");
    let url = "https://downloads.example.invalid/mozilla.firefox-128.0.3-x64.msi?se=2026-12-31&sig=c2VjcmV0%2Bc2ln";
    signed.origin = Some(InstallerOrigin::Url(url::Url::parse(url).unwrap()));
    c.create(&signed, &verified(cache.path(), "1.0")).await.unwrap();
    let mut from_commit = object("2.0");
    from_commit.installer.url = "installers/mozilla.firefox-131.0.2-x64.msi".into();
    from_commit.origin = Some(InstallerOrigin::Repository("catalog/installers/mozilla.firefox-131.0.2-x64.msi".into()));
    c.create(&from_commit, &verified(cache.path(), "2.0")).await.unwrap();
    let content = c.published_content().await.unwrap();
    let mut origins: Vec<String> = content.iter().map(|p| origin(&p.sdp)).collect();
    origins.sort();
    assert_eq!(
        origins,
        vec!["file:///catalog/installers/mozilla.firefox-131.0.2-x64.msi".to_string(), url.to_string()]
    );

    // The server's own check refuses what System.Uri would not take, or a scheme not a file's.
    let good = content[0].sdp.clone();
    let relative = with_origin_uri(&good, "mozilla.firefox.msi");
    let problems = reconciler::emulate::wsus::sdp_check::check(&relative).unwrap_err();
    assert!(problems.iter().any(|p| p.contains("is not an absolute URI")), "{problems:?}");
    let ftp = with_origin_uri(&good, "ftp://mirror.example.invalid/a.msi");
    let problems = reconciler::emulate::wsus::sdp_check::check(&ftp).unwrap_err();
    assert!(problems.iter().any(|p| p.contains("has the scheme ftp")), "{problems:?}");
}

/// `sdp` with its OriginUri attribute's value replaced by `value`.
fn with_origin_uri(sdp: &str, value: &str) -> String {
    let start = sdp.find("OriginUri=\"").unwrap() + "OriginUri=\"".len();
    let end = start + sdp[start..].find('"').unwrap();
    format!("{}{value}{}", &sdp[..start], &sdp[end..])
}
