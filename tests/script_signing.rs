//! Generated PowerShell (detection and requirement scripts) signed with a code-signing
//! certificate made here by `openssl`, published to the Graph emulator over loopback, and
//! checked with `osslsigncode verify` on the bytes the emulated tenant stored. Unfit
//! certificates are refused before anything is signed, each with its reason.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use base64::Engine as _;
use chrono::{Duration, Utc};
use reconciler::authenticode::{self, CodeSigner};
use reconciler::catalog::{Detection, Installer, Sha256};
use reconciler::emulate::{self, EmulatorOptions};
use reconciler::model::{Architecture, InstallerType, ObjectName, PlatformType, ProductId, SecretRef, Secrets};
use reconciler::platform::intune::{IntuneClient, ScriptSigning};
use reconciler::platform::{DesiredObject, PlatformClient, TrackingMarker};
use serde_json::Value;

const APPS: &str = "beta/deviceAppManagement/mobileApps";

/// A self-signed certificate with `extensions` and an RSA key of `bits`, both in one PEM;
/// returns (combined PEM path, certificate-only PEM path).
fn certificate(
    dir: &std::path::Path,
    name: &str,
    bits: u32,
    extensions: &[&str],
) -> (std::path::PathBuf, std::path::PathBuf) {
    let (key, cert) = (dir.join(format!("{name}.key")), dir.join(format!("{name}.crt")));
    let mut cmd = common::tool("openssl", "openssl");
    cmd.args(["req", "-x509", "-newkey", &format!("rsa:{bits}"), "-nodes", "-days", "2"])
        .args(["-subj", &format!("/CN=patchops test {name}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert);
    for e in extensions {
        cmd.args(["-addext", e]);
    }
    let out = cmd.output().expect("openssl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let both = dir.join(format!("{name}.pem"));
    let mut pem = std::fs::read(&key).unwrap();
    pem.extend(std::fs::read(&cert).unwrap());
    std::fs::write(&both, pem).unwrap();
    (both, cert)
}

const CODE_SIGNING: &[&str] = &["extendedKeyUsage=codeSigning", "keyUsage=digitalSignature"];

fn no_env() -> Secrets {
    Secrets::with_env(|_| None)
}

fn signer(pem: &std::path::Path) -> Result<CodeSigner, authenticode::SignError> {
    CodeSigner::new(&SecretRef::File(pem.display().to_string()), &no_env(), Utc::now())
}

fn exe_bytes() -> Vec<u8> {
    b"MZ patchops test installer, not a real program".repeat(100)
}

/// An EXE installer detected by a registry value, deployed update-only.
fn exe_object() -> DesiredObject {
    let bytes = exe_bytes();
    let fields = common::fields(&[
        ("displayName", "Vendor Tool (x64)"),
        ("publisher", "Vendor"),
        ("version", "24.08"),
        ("installCommand", "\"vendor-tool-24.08.exe\" /S"),
        ("intune.installExperience", "system"),
        ("intune.allowAvailableUninstall", "false"),
        ("intune.updateOnly", "true"),
    ]);
    DesiredObject {
        marker: TrackingMarker {
            managed_by: "patchops".into(),
            product: ProductId::new("vendor.tool").unwrap(),
            version: "24.08".into(),
            commit: None,
            content_digest: Sha256::digest(&bytes),
        },
        fields,
        installer: Installer {
            architecture: Architecture::X64,
            installer_type: InstallerType::Exe,
            url: "installers/vendor-tool-24.08.exe".into(),
            sha256: Sha256::digest(&bytes),
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
        },
        description: "Vendor Tool".into(),
        product_name: "Vendor Tool".into(),
        homepage: None,
        origin: None,
    }
}

fn verified_exe() -> (tempfile::TempDir, reconciler::content::VerifiedContent) {
    let dir = tempfile::tempdir().unwrap();
    let cache = reconciler::content::ContentCache::new(dir.path());
    let bytes = exe_bytes();
    let expected = reconciler::content::Expected { sha256: Sha256::digest(&bytes), size: bytes.len() as u64 };
    let v = cache.admit("test", &bytes, expected).expect("admit");
    (dir, v)
}

async fn tenant(dir: &std::path::Path) -> url::Url {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    emulate::serve(listener, PlatformType::Intune, &dir.join("tenant.json"), EmulatorOptions::default()).unwrap()
}

async fn stored_rules(base: &url::Url, id: &str) -> Vec<Value> {
    let app: Value = reqwest::get(base.join(&format!("{APPS}/{id}")).unwrap()).await.unwrap().json().await.unwrap();
    app["rules"].as_array().cloned().unwrap_or_default()
}

fn script_of(rule: &Value) -> String {
    let b = base64::engine::general_purpose::STANDARD.decode(rule["scriptContent"].as_str().unwrap()).unwrap();
    String::from_utf8(b).unwrap()
}

#[tokio::test]
async fn generated_scripts_are_signed_and_verify_with_osslsigncode() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, cert) = certificate(dir.path(), "signing", 2048, CODE_SIGNING);
    let base = tenant(dir.path()).await;
    let client = IntuneClient::new(ObjectName::new("intune-test").unwrap(), base.clone())
        .unwrap()
        .with_script_signing(ScriptSigning::Signed(signer(&pem).expect("a fit certificate")));
    let content = verified_exe();
    let id = client.create(&exe_object(), &content.1).await.expect("published");

    let rules = stored_rules(&base, &id).await;
    assert_eq!(rules.len(), 2, "{rules:?}");
    for (rule, kind) in rules.iter().zip(["detection", "requirement"]) {
        assert_eq!(rule["@odata.type"], "#microsoft.graph.win32LobAppPowerShellScriptRule");
        assert_eq!(rule["ruleType"], kind);
        assert_eq!(rule["enforceSignatureCheck"], true, "devices are told to check the signature");
        let text = script_of(rule);
        common::assert_contains(&text, "# SIG # Begin signature block");
        let file = dir.path().join(format!("{kind}.ps1"));
        std::fs::write(&file, &text).unwrap();
        common::osslsigncode_verifies(&file, &cert, &[]);
        authenticode::verify(&file, &cert, chrono::Utc::now()).expect("verifies through patchops too");

        // One changed byte of the script and the signature no longer verifies.
        std::fs::write(&file, text.replacen("exit 0", "exit 1", 1)).unwrap();
        assert!(
            authenticode::verify(&file, &cert, chrono::Utc::now()).is_err(),
            "an altered {kind} script must not verify"
        );
    }
    assert_eq!(rules[1]["comparisonValue"], "installed");
    assert_eq!(rules[1]["operationType"], "string");

    // Observe reads the update-only requirement back, so the plan sees no drift.
    let observed = client.observe().await.unwrap();
    assert_eq!(observed.objects[0].fields.get("intune.updateOnly"), Some("true"));
}

#[tokio::test]
async fn without_a_certificate_scripts_go_unsigned_and_devices_are_not_told_to_check() {
    let dir = tempfile::tempdir().unwrap();
    let base = tenant(dir.path()).await;
    let client = IntuneClient::new(ObjectName::new("intune-test").unwrap(), base.clone()).unwrap();
    let mut object = exe_object();
    object.fields.insert("intune.updateOnly".into(), "false".into());
    let id = client.create(&object, &verified_exe().1).await.expect("published");
    let rules = stored_rules(&base, &id).await;
    assert_eq!(rules.len(), 1, "no requirement script without updateOnly");
    assert_eq!(rules[0]["enforceSignatureCheck"], false);
    assert!(!script_of(&rules[0]).contains("# SIG #"));
    assert_eq!(client.observe().await.unwrap().objects[0].fields.get("intune.updateOnly"), Some("false"));
}

#[tokio::test]
async fn an_all_signed_platform_without_a_certificate_publishes_nothing_that_needs_a_script() {
    let dir = tempfile::tempdir().unwrap();
    let base = tenant(dir.path()).await;
    let client = IntuneClient::new(ObjectName::new("intune-test").unwrap(), base.clone())
        .unwrap()
        .with_script_signing(ScriptSigning::Required);
    let err = client.create(&exe_object(), &verified_exe().1).await.expect_err("refused").to_string();
    common::assert_contains(&err, "runs PowerShell as AllSigned but has no trust.scriptSigningCertificate");
    common::assert_contains(&err, "detection script for vendor.tool 24.08");
    assert!(client.observe().await.unwrap().objects.is_empty(), "no app was created");
}

#[tokio::test]
async fn an_exe_without_detection_data_is_refused_with_what_to_add() {
    let dir = tempfile::tempdir().unwrap();
    let base = tenant(dir.path()).await;
    let client = IntuneClient::new(ObjectName::new("intune-test").unwrap(), base.clone()).unwrap();
    let mut object = exe_object();
    object.installer.detection = None;
    let err = client.create(&object, &verified_exe().1).await.expect_err("refused").to_string();
    common::assert_contains(&err, "has neither an MSI product code nor detection data in the catalog");
    common::assert_contains(&err, "add `detection` (file or registry)");
}

#[test]
fn unfit_certificates_are_refused_before_anything_is_signed() {
    let dir = tempfile::tempdir().unwrap();
    let refuse = |pem: &std::path::Path, now| {
        CodeSigner::new(&SecretRef::File(pem.display().to_string()), &no_env(), now).expect_err("unfit").to_string()
    };
    let (good, _) = certificate(dir.path(), "good", 2048, CODE_SIGNING);
    // Expired: judged three days on (it is valid for two).
    let err = refuse(&good, Utc::now() + Duration::days(3));
    common::assert_contains(&err, "is valid from");
    common::assert_contains(&err, "renew it");

    let (tls, _) = certificate(dir.path(), "tls", 2048, &["extendedKeyUsage=serverAuth"]);
    common::assert_contains(&refuse(&tls, Utc::now()), "lacks the code-signing extended key usage (1.3.6.1.5.5.7.3.3)");

    let (weak, _) = certificate(dir.path(), "weak", 1024, CODE_SIGNING);
    common::assert_contains(&refuse(&weak, Utc::now()), "its RSA key has 1024 bits; Windows needs at least 2048");

    let (_, cert_only) = certificate(dir.path(), "nokey", 2048, CODE_SIGNING);
    common::assert_contains(&refuse(&cert_only, Utc::now()), "holds no PRIVATE KEY block");

    // An encrypted key would make osslsigncode prompt; it is refused up front instead.
    certificate(dir.path(), "locked", 2048, CODE_SIGNING);
    let locked_key = dir.path().join("locked.enc.key");
    let out = common::tool("openssl", "openssl")
        .args(["pkey", "-aes256", "-passout", "pass:secret", "-in"])
        .arg(dir.path().join("locked.key"))
        .arg("-out")
        .arg(&locked_key)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let locked = dir.path().join("locked-both.pem");
    let mut pem = std::fs::read(&locked_key).unwrap();
    pem.extend(std::fs::read(dir.path().join("locked.crt")).unwrap());
    std::fs::write(&locked, pem).unwrap();
    common::assert_contains(&refuse(&locked, Utc::now()), "its private key is encrypted");

    let pfx = dir.path().join("signing.pfx");
    std::fs::write(&pfx, [0x30u8, 0x82, 0x0a, 0x01, 0xff, 0xfe, 0x80, 0x81]).unwrap();
    common::assert_contains(&refuse(&pfx, Utc::now()), "openssl pkcs12 -in FILE.pfx -nodes -out FILE.pem");

    // The reference is named; the key never is.
    let err = refuse(&weak, Utc::now());
    common::assert_contains(&err, &format!("file:{}", weak.display()));
    assert!(!err.contains("PRIVATE KEY-----"), "{err}");
}

#[test]
fn a_certificate_from_an_environment_variable_signs_too() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, cert) = certificate(dir.path(), "env", 2048, CODE_SIGNING);
    let text = std::fs::read_to_string(&pem).unwrap();
    let secrets = Secrets::with_env(move |name| (name == "SIGNING_PEM").then(|| text.clone()));
    let signer = CodeSigner::new(&SecretRef::Env("SIGNING_PEM".into()), &secrets, Utc::now()).expect("signer");
    let object = exe_object();
    let script = reconciler::script::detection(
        "vendor.tool",
        &"24.08".parse().unwrap(),
        object.installer.detection.as_ref().unwrap(),
    );
    let signed = signer.sign_script(script).expect("signed");
    let file = dir.path().join("d.ps1");
    std::fs::write(&file, signed.text()).unwrap();
    authenticode::verify(&file, &cert, chrono::Utc::now()).expect("verifies");
    assert!(format!("{signer:?}").contains("env:SIGNING_PEM") && !format!("{signer:?}").contains("PRIVATE"));
}
