//! The Intune Graph client against the Graph emulator over loopback: validation errors the live
//! service gives, paging, and throttling (429 with Retry-After) retried with backoff.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use std::time::Duration;

use base64::Engine as _;
use reconciler::catalog::{Installer, Sha256};
use reconciler::emulate::{self, EmulatorOptions};
use reconciler::model::{Architecture, InstallerType, ObjectName, PlatformType, ProductId};
use reconciler::platform::intune::IntuneClient;
use reconciler::platform::retry::{retry, RetryPolicy};
use reconciler::platform::{DesiredAssignment, DesiredObject, FieldMap, PlatformClient, PlatformError, TrackingMarker};
use serde_json::{json, Value};

const APPS: &str = "beta/deviceAppManagement/mobileApps";

async fn start(options: EmulatorOptions) -> (tempfile::TempDir, url::Url) {
    let dir = tempfile::tempdir().expect("tmp");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
    let url = emulate::serve(listener, PlatformType::Intune, &dir.path().join("tenant.json"), options).expect("serve");
    (dir, url)
}

fn client(base: &url::Url) -> IntuneClient {
    IntuneClient::new(ObjectName::new("intune-test").unwrap(), base.clone()).expect("client")
}

fn object(version: &str) -> DesiredObject {
    let fields = common::fields(&[
        ("displayName", "Vendor App (x64)"),
        ("publisher", "Vendor"),
        ("version", version),
        ("installCommand", "msiexec /i \"app.msi\" /qn"),
        ("intune.installExperience", "system"),
        ("intune.allowAvailableUninstall", "false"),
    ]);
    DesiredObject {
        marker: TrackingMarker {
            managed_by: "patchops".into(),
            product: ProductId::new("vendor.app").unwrap(),
            version: version.into(),
            commit: None,
            content_digest: Sha256::digest(&msi_bytes()),
        },
        fields,
        installer: Installer {
            architecture: Architecture::X64,
            installer_type: InstallerType::Msi,
            url: "installers/app.msi".into(),
            sha256: Sha256::digest(&msi_bytes()),
            size: msi_bytes().len() as u64,
            silent_install: "/qn".into(),
            silent_uninstall: None,
            msi_product_code: Some("{3A9B6C1E-4F2D-4C1A-9B0E-1F7C2D3E4A02}".into()),
            detection: None,
            success_codes: vec![],
            scan: None,
        },
        description: "Vendor App".into(),
        product_name: "Vendor App".into(),
        homepage: None,
        origin: None,
    }
}

async fn post(base: &url::Url, path: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new().post(base.join(path).unwrap()).json(&body).send().await.expect("send");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_emulator_refuses_what_the_live_service_refuses() {
    let (_dir, base) = start(EmulatorOptions::default()).await;
    let app = json!({
        "@odata.type": "#microsoft.graph.win32LobApp",
        "displayName": "x", "publisher": "p", "fileName": "x.intunewin", "setupFilePath": "x.msi",
        "installCommandLine": "msiexec /i x.msi /qn",
    });
    let (status, body) = post(&base, APPS, app.clone()).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["message"], "The Win32LobApp must have at least one detection rule specified.");
    assert_eq!(body["error"]["code"], "ModelValidationFailure");

    let mut both = app.clone();
    both["rules"] = json!([{"@odata.type": "#microsoft.graph.win32LobAppProductCodeRule", "ruleType": "detection", "productCode": "{1}"}]);
    both["detectionRules"] = json!([]);
    let (status, body) = post(&base, APPS, both).await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (400, Some("Specify either rules or detectionRules, not both."))
    );

    let mut flags = app.clone();
    flags["rules"] = json!([{"@odata.type": "#microsoft.graph.win32LobAppProductCodeRule", "ruleType": "detection", "productCode": "{1}"}]);
    flags["applicableArchitectures"] = json!(["x64", "x86"]);
    let (status, body) = post(&base, APPS, flags).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("comma-separated string"), "{body}");

    let mut untyped = app.clone();
    untyped.as_object_mut().unwrap().remove("@odata.type");
    let (status, _) = post(&base, APPS, untyped).await;
    assert_eq!(status, 400);

    // Property names are exact (Graph's metadata), and enum members too.
    let mut valid = app.clone();
    valid["rules"] = json!([{"@odata.type": "#microsoft.graph.win32LobAppProductCodeRule", "ruleType": "detection", "productCode": "{1}"}]);
    let mut typo = valid.clone();
    typo["displayversion"] = json!("1.0");
    let (status, body) = post(&base, APPS, typo).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("The property 'displayversion' does not exist on type 'microsoft.graph.win32LobApp'"),
        "{body}"
    );
    let mut member = valid;
    member["installExperience"] = json!({"@odata.type": "#microsoft.graph.win32LobAppInstallExperience", "deviceRestartBehavior": "BasedOnReturnCode"});
    let (status, body) = post(&base, APPS, member).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'BasedOnReturnCode' to the expected type 'microsoft.graph.win32LobAppRestartBehavior'"),
        "{body}"
    );

    let mut operator = app;
    operator["rules"] = json!([{"@odata.type": "#microsoft.graph.win32LobAppProductCodeRule", "ruleType": "detection", "productCode": "{1}", "operator": "equal"}]);
    let (status, body) = post(&base, APPS, operator).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("productVersionOperator"), "{body}");
}

#[tokio::test]
async fn the_client_publishes_assigns_pages_and_deletes() {
    let (_dir, base) = start(EmulatorOptions::default()).await;
    let c = client(&base);
    let content = verified_content();
    // More apps than one page (50): observe must follow @odata.nextLink.
    let mut ids = Vec::new();
    for i in 0..60 {
        ids.push(c.create(&object(&format!("1.{i}")), &content.1).await.expect("create"));
    }
    let assignment = DesiredAssignment {
        group: "5d1c2f3e-0a4b-4c6d-8e9f-000000000001".into(),
        fields: [("intent", "required"), ("restart", "suppress"), ("deadline", "3 days")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect(),
    };
    c.set_assignments(&ids[0], std::slice::from_ref(&assignment)).await.expect("assign");
    // Seven groups on another app: more than one page (5) of its assignments.
    let groups: Vec<DesiredAssignment> = (0..7)
        .map(|g| DesiredAssignment {
            group: format!("5d1c2f3e-0a4b-4c6d-8e9f-00000000010{g}"),
            fields: assignment.fields.clone(),
        })
        .collect();
    c.set_assignments(&ids[1], &groups).await.expect("assign seven groups");
    let observed = c.observe().await.expect("observe");
    assert_eq!(observed.objects.len(), 60, "every page was read");
    let first = observed.objects.iter().find(|o| o.id == ids[0]).expect("found");
    assert_eq!(first.managed().map(|m| m.version.as_str()), Some("1.0"));
    assert_eq!(first.assignments.len(), 1);
    assert_eq!(first.assignments[0].fields, assignment.fields, "intent, restart and deadline read back as written");
    let second = observed.objects.iter().find(|o| o.id == ids[1]).expect("found");
    assert_eq!(second.assignments.len(), 7, "every page of the app's assignments was read");
    assert_eq!(first.fields.get("version"), Some("1.0"));
    assert_eq!(first.fields.get("msiProductCode"), Some("{3A9B6C1E-4F2D-4C1A-9B0E-1F7C2D3E4A02}"));
    for id in &ids {
        c.delete(id).await.expect("delete");
    }
    c.delete(&ids[0]).await.expect("deleting what is gone succeeds");
    assert!(c.observe().await.expect("observe").objects.is_empty());
}

#[tokio::test]
async fn listing_apps_with_expand_is_refused_as_graph_deprecates_it() {
    let (_dir, base) = start(EmulatorOptions::default()).await;
    for expand in ["assignments", "relationships", "assignments,relationships"] {
        let url = base.join(&format!("beta/deviceAppManagement/mobileApps?$expand={expand}")).unwrap();
        let resp = reqwest::get(url).await.unwrap();
        assert_eq!(resp.status().as_u16(), 400, "$expand={expand}");
        let body: Value = resp.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("list the apps without it and read each app's"), "{body}");
    }
    let url = base.join("beta/deviceAppManagement/mobileApps").unwrap();
    assert_eq!(reqwest::get(url).await.unwrap().status().as_u16(), 200, "without $expand the list is served");
}

#[tokio::test]
async fn a_429_storm_is_ridden_out_honouring_retry_after() {
    // Every second Graph request is throttled, through a whole publish: app, content version,
    // file, upload states, commit, committed version, assignment.
    let (_dir, base) = start(EmulatorOptions { throttle_every: Some(2), ..EmulatorOptions::default() }).await;
    let c = client(&base);
    let started = std::time::Instant::now();
    let id = c.create(&object("1.0"), &verified_content().1).await.expect("published despite the storm");
    let assignment =
        DesiredAssignment { group: "5d1c2f3e-0a4b-4c6d-8e9f-0000000000aa".into(), fields: FieldMap::default() };
    c.set_assignments(&id, std::slice::from_ref(&assignment)).await.expect("assigned despite the storm");
    let observed = c.observe().await.expect("observed");
    assert_eq!(observed.objects[0].assignments.len(), 1);
    assert!(started.elapsed() >= Duration::from_secs(3), "each 429 waited its Retry-After of 1 s");
}

#[tokio::test]
async fn a_storm_that_does_not_end_surfaces_as_a_transient_error_the_engine_can_retry() {
    let (_dir, base) = start(EmulatorOptions { throttle_every: Some(1), ..EmulatorOptions::default() }).await;
    let c = client(&base);
    match c.observe().await {
        Err(PlatformError::Transient { retry_after, reason, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(1)));
            assert!(reason.starts_with("429 Too Many Requests"), "{reason}");
        }
        other => panic!("expected a transient error, got {other:?}"),
    }
    // The apply engine's retry wraps whole actions the same way.
    let policy = RetryPolicy { attempts: 1, base: Duration::from_millis(10), max: Duration::from_secs(1) };
    assert!(matches!(retry(policy, || c.observe()).await, Err(PlatformError::Transient { .. })));
}

#[tokio::test]
async fn the_emulated_tenant_persists_between_emulator_processes() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("tenant.json");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
    let base = emulate::serve(listener, PlatformType::Intune, &file, EmulatorOptions::default()).expect("serve");
    let content = verified_content();
    let id = client(&base).create(&object("2.0"), &content.1).await.expect("create");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
    let again = emulate::serve(listener, PlatformType::Intune, &file, EmulatorOptions::default()).expect("serve");
    let observed = client(&again).observe().await.expect("observe");
    assert_eq!(observed.objects.iter().map(|o| o.id.clone()).collect::<Vec<_>>(), vec![id]);
}

/// A real (tiny) MSI from the example catalog.
fn msi_bytes() -> Vec<u8> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::fs::read(root.join("examples/catalog/installers/mozilla.firefox-131.0.2-x64.msi")).expect("example MSI")
}

/// Content verified by the real cache (the only way to make a `VerifiedContent`).
fn verified_content() -> (tempfile::TempDir, reconciler::content::VerifiedContent) {
    let dir = tempfile::tempdir().expect("tmp");
    let cache = reconciler::content::ContentCache::new(dir.path());
    let bytes = msi_bytes();
    let expected = reconciler::content::Expected { sha256: Sha256::digest(&bytes), size: bytes.len() as u64 };
    let v = cache.admit("test", &bytes, expected).expect("admit");
    (dir, v)
}

#[tokio::test]
async fn patchops_emulate_serves_the_emulator_on_its_own() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tmp");
    let state = dir.path().join("tenant.json");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_patchops"))
        .args(["emulate", "intune", "--listen", "127.0.0.1:0", "--state"])
        .arg(&state)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    std::io::BufReader::new(child.stderr.take().expect("stderr")).read_line(&mut line).expect("read");
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).expect("url in the first line").to_string();
    let base = url::Url::parse(&url).expect("url");
    let id = client(&base).create(&object("1.0"), &verified_content().1).await.expect("create");
    let _ = child.kill();
    let _ = child.wait();
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).expect("state written")).expect("json");
    assert_eq!(saved["apps"][&id]["displayVersion"], "1.0");
}

#[tokio::test]
async fn an_upload_outliving_its_sas_renews_it_and_completes() {
    // 2 KiB blocks: the ~10 KB package takes six; the SAS expires every two blocks.
    let (dir, base) = start(EmulatorOptions { sas_expires_after_blocks: Some(2), ..EmulatorOptions::default() }).await;
    let c = client(&base).with_block_size(2048);
    let id = c.create(&object("1.0"), &verified_content().1).await.expect("published despite the expiring SAS");
    let tenant: Value = serde_json::from_slice(&std::fs::read(dir.path().join("tenant.json")).unwrap()).unwrap();
    assert_eq!(tenant["apps"][&id]["publishingState"], "published");
    assert_eq!(tenant["apps"][&id]["committedContentVersion"], "1");
    let file = tenant["files"].as_object().unwrap().values().next().unwrap().clone();
    assert_eq!(file["uploadState"], "commitFileSuccess");
    assert_eq!(file["isCommitted"], true);
    // The SAS was renewed (the last renewal's counter restarted from zero).
    assert!(file["_"]["blocksWithThisSas"].as_u64().unwrap() <= 2);
}

#[tokio::test]
async fn a_failed_commit_leaves_no_half_created_app() {
    let (_dir, base) = start(EmulatorOptions { fail_commits: true, ..EmulatorOptions::default() }).await;
    let c = client(&base);
    let err = c.create(&object("1.0"), &verified_content().1).await.expect_err("the commit fails");
    assert_eq!(
        err.to_string(),
        "platform `intune-test`: waiting for the content file failed: its uploadState became commitFileFailed"
    );
    assert!(c.observe().await.expect("observe").objects.is_empty(), "the half-created app was deleted");
}

#[tokio::test]
async fn the_emulator_refuses_a_tampered_upload_at_commit() {
    let (_dir, base) = start(EmulatorOptions::default()).await;
    let http = reqwest::Client::new();
    let app = json!({
        "@odata.type": "#microsoft.graph.win32LobApp",
        "displayName": "x", "publisher": "p", "fileName": "x.intunewin", "setupFilePath": "x.msi",
        "installCommandLine": "msiexec /i x.msi /qn",
        "rules": [{"@odata.type": "#microsoft.graph.win32LobAppProductCodeRule", "ruleType": "detection", "productCode": "{1}"}],
    });
    let (status, created) = post(&base, APPS, app).await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap().to_string();
    let versions = format!("{APPS}/{id}/microsoft.graph.win32LobApp/contentVersions");
    let (_, v) = post(&base, &versions, json!({})).await;
    let files = format!("{versions}/{}/files", v["id"].as_str().unwrap());
    // A real package, whose ciphertext is altered before upload.
    let dir = tempfile::tempdir().unwrap();
    let msi = dir.path().join("app.msi");
    std::fs::write(&msi, msi_bytes()).unwrap();
    let packed =
        reconciler::platform::intune::intunewin::pack(&msi, "app.msi", &dir.path().join("p.intunewin"), None).unwrap();
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&packed.path).unwrap()).unwrap();
    let mut content = Vec::new();
    std::io::Read::read_to_end(
        &mut zip.by_name(reconciler::platform::intune::intunewin::CONTENT_ENTRY).unwrap(),
        &mut content,
    )
    .unwrap();
    content[200] ^= 0x01;
    let (status, file) = post(
        &base,
        &files,
        json!({"@odata.type": "#microsoft.graph.mobileAppContentFile", "name": "p.intunewin",
               "size": packed.unencrypted_size, "sizeEncrypted": packed.encrypted_size, "manifest": null}),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(file["uploadState"], "azureStorageUriRequestPending", "the SAS URI comes asynchronously");
    let file_url = base.join(&format!("{files}/{}", file["id"].as_str().unwrap())).unwrap();
    let file: Value = http.get(file_url.clone()).send().await.unwrap().json().await.unwrap();
    assert_eq!(file["uploadState"], "azureStorageUriRequestSuccess");
    let sas = file["azureStorageUri"].as_str().unwrap().to_string();
    let put = |url: String, body: Vec<u8>| http.put(url).header("x-ms-blob-type", "BlockBlob").body(body).send();
    assert_eq!(put(format!("{sas}&comp=block&blockid=MDAwMA%3D%3D"), content).await.unwrap().status(), 201);
    let list = b"<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><Latest>MDAwMA==</Latest></BlockList>".to_vec();
    assert_eq!(put(format!("{sas}&comp=blocklist"), list).await.unwrap().status(), 201);
    // A forged signature is refused by the blob endpoint.
    let forged = sas.replace("sig=", "sig=00");
    assert_eq!(put(format!("{forged}&comp=block&blockid=MDAwMQ%3D%3D"), vec![1]).await.unwrap().status(), 403);

    let commit = json!({ "fileEncryptionInfo": packed.encryption.to_graph() });
    let resp = http
        .post(base.join(&format!("{}/commit", file_url.path().trim_start_matches('/'))).unwrap())
        .json(&commit)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let file: Value = http.get(file_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(file["uploadState"], "commitFileFailed", "the altered bytes do not match the mac");
    // Without committed content the app cannot be published, hence not assigned.
    let patch = http
        .patch(base.join(&format!("{APPS}/{id}")).unwrap())
        .json(&json!({"@odata.type": "#microsoft.graph.win32LobApp", "committedContentVersion": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 400);
    let body: Value = patch.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        format!("Content version '1' of app {id} has no committed file; upload and commit it first.")
    );
    let (status, body) = post(
        &base,
        &format!("{APPS}/{id}/assign"),
        json!({"mobileAppAssignments": [{
        "@odata.type": "#microsoft.graph.mobileAppAssignment", "intent": "required",
        "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": "5d1c2f3e-0a4b-4c6d-8e9f-0000000000aa"}}]}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("cannot be assigned before it is published"), "{body}");
}

/// A self-signed RSA certificate and its key in one PEM (made with `openssl req`), and the DER.
fn app_certificate(dir: &std::path::Path, name: &str) -> (Vec<u8>, Vec<u8>) {
    let (key, cert) = (dir.join(format!("{name}.key")), dir.join(format!("{name}.crt")));
    let out = common::tool("openssl", "openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", &format!("/CN={name}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cert_pem = std::fs::read(&cert).unwrap();
    let mut both = cert_pem.clone();
    both.extend(std::fs::read(&key).unwrap());
    (both, reconciler::platform::intune::auth::certificate_der(&cert_pem).unwrap())
}

const CLIENT: &str = "00000000-0000-0000-0000-0000000000aa";
const TENANT: &str = "00000000-0000-0000-0000-000000000001";

async fn tenant_with_app(dir: &std::path::Path, cert_der: Vec<u8>, lifetime: Option<Duration>) -> url::Url {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
    let options = EmulatorOptions {
        apps: vec![emulate::intune::RegisteredApp {
            client_id: CLIENT.into(),
            certificate_der: cert_der,
            secret: None,
            permissions: emulate::intune::default_permissions(),
        }],
        token_lifetime: lifetime,
        ..EmulatorOptions::default()
    };
    emulate::serve(listener, PlatformType::Intune, &dir.join("tenant.json"), options).expect("serve")
}

fn signed_in(base: &url::Url, pem: &[u8]) -> IntuneClient {
    use reconciler::platform::intune::auth::{CertificateCredential, TokenSource};
    let credential = CertificateCredential::from_pem(CLIENT, pem).expect("credential");
    let tokens = TokenSource::new(ObjectName::new("intune-test").unwrap(), base, TENANT, credential).expect("tokens");
    client(base).with_auth(tokens)
}

#[tokio::test]
async fn a_certificate_assertion_gets_a_token_and_tokens_are_renewed_when_they_expire() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, der) = app_certificate(dir.path(), "app");
    let base = tenant_with_app(dir.path(), der, Some(Duration::from_secs(2))).await;
    // Without a token, Graph refuses.
    let resp = reqwest::get(base.join(APPS).unwrap()).await.unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");

    let c = signed_in(&base, &pem);
    let id = c.create(&object("1.0"), &verified_content().1).await.expect("publish with a certificate token");
    // Tokens live 2 s here: after 2.5 s the client must have renewed its token to go on.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let observed = c.observe().await.expect("observe with a renewed token");
    assert_eq!(observed.objects.iter().map(|o| o.id.clone()).collect::<Vec<_>>(), vec![id]);
}

#[tokio::test]
async fn a_certificate_the_app_registration_does_not_hold_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, registered) = app_certificate(dir.path(), "registered");
    let (other, _) = app_certificate(dir.path(), "other");
    let base = tenant_with_app(dir.path(), registered, None).await;
    let err = signed_in(&base, &other).observe().await.expect_err("refused");
    let text = err.to_string();
    assert!(text.contains(&format!("getting a token for client {CLIENT} was refused (401): invalid_client: AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application '{CLIENT}'.")), "{text}");
}

#[tokio::test]
async fn the_token_endpoint_refuses_replayed_assertions_and_client_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, der) = app_certificate(dir.path(), "app");
    let base = tenant_with_app(dir.path(), der, None).await;
    let token_url = base.join(&format!("{TENANT}/oauth2/v2.0/token")).unwrap();
    let credential = reconciler::platform::intune::auth::CertificateCredential::from_pem(CLIENT, &pem).unwrap();
    let assertion = credential.assertion(token_url.as_str()).unwrap();
    let form = |extra: (&'static str, &str)| {
        vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", CLIENT.to_string()),
            ("scope", "https://graph.microsoft.com/.default".to_string()),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_string()),
            (extra.0, extra.1.to_string()),
        ]
    };
    let http = reqwest::Client::new();
    let post = |f: Vec<(&'static str, String)>| {
        let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(f).finish();
        http.post(token_url.clone()).header("content-type", "application/x-www-form-urlencoded").body(body).send()
    };
    let first = post(form(("client_assertion", &assertion))).await.unwrap();
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["token_type"], "Bearer");
    let again = post(form(("client_assertion", &assertion))).await.unwrap();
    assert_eq!(again.status(), 401);
    let again: Value = again.json().await.unwrap();
    assert!(again["error_description"].as_str().unwrap().starts_with("AADSTS700021:"), "{again}");

    let secret = post(form(("client_secret", "hunter2"))).await.unwrap();
    assert_eq!(secret.status(), 401);
    let secret: Value = secret.json().await.unwrap();
    assert!(secret["error_description"].as_str().unwrap().starts_with("AADSTS7000215:"), "{secret}");
}

#[tokio::test]
async fn supersedence_keeps_the_relationships_an_app_already_has() {
    let (_dir, base) = start(EmulatorOptions::default()).await;
    let c = client(&base);
    let content = verified_content();
    let (runtime, old, new) = (
        c.create(&object("0.1"), &content.1).await.unwrap(),
        c.create(&object("1.0"), &content.1).await.unwrap(),
        c.create(&object("2.0"), &content.1).await.unwrap(),
    );
    // Someone made 2.0 depend on a runtime app.
    let (status, _) = post(
        &base,
        &format!("{APPS}/{new}/updateRelationships"),
        json!({"relationships": [{"@odata.type": "#microsoft.graph.mobileAppDependency", "targetId": runtime, "dependencyType": "autoInstall"}]}),
    )
    .await;
    assert_eq!(status, 204);
    c.supersede(&new, &old).await.expect("supersede");
    let rel: Value =
        reqwest::get(base.join(&format!("{APPS}/{new}/relationships")).unwrap()).await.unwrap().json().await.unwrap();
    let mut kinds: Vec<(String, String)> = rel["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["@odata.type"].as_str().unwrap().to_string(), r["targetId"].as_str().unwrap().to_string()))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            ("#microsoft.graph.mobileAppDependency".to_string(), runtime.clone()),
            ("#microsoft.graph.mobileAppSupersedence".to_string(), old.clone()),
        ]
    );
    // Observe reads them back (with the apps, in one listing).
    let observed = c.observe().await.expect("observe");
    let seen = &observed.objects.iter().find(|o| o.id == new).expect("new app").relationships;
    let seen: Vec<(&str, &str)> = seen.iter().map(|r| (r.kind.as_str(), r.target.as_str())).collect();
    assert!(seen.contains(&("dependency:autoInstall", runtime.as_str())), "{seen:?}");
    assert!(seen.contains(&("supersedence:update", old.as_str())), "{seen:?}");
    assert_eq!(seen.len(), 2, "{seen:?}");
    // Bad relationship bodies are refused as Graph does.
    let (status, body) =
        post(&base, &format!("{APPS}/{new}/updateRelationships"), json!({"relationships": [{"targetId": new}]})).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn an_installer_larger_than_one_block_uploads_in_full_size_blocks() {
    // 7 MiB: two blocks of the client's default 6 MiB, each far above axum's default body limit.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("setup.exe");
    let bytes: Vec<u8> = (0..7u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    std::fs::write(&file, &bytes).unwrap();
    let sha = Sha256::digest(&bytes);
    let content = reconciler::content::ContentCache::new(dir.path().join("cache"))
        .fetch(
            &url::Url::from_file_path(&file).unwrap(),
            reconciler::content::Expected { sha256: sha, size: bytes.len() as u64 },
        )
        .await
        .expect("verified");
    let mut o = object("3.0");
    o.marker.content_digest = sha;
    o.installer.installer_type = InstallerType::Exe;
    o.installer.url = "setup.exe".into();
    o.installer.sha256 = sha;
    o.installer.size = bytes.len() as u64;
    let (state, base) = start(EmulatorOptions::default()).await;
    let id = client(&base).create(&o, &content).await.expect("published");
    let tenant: Value = serde_json::from_slice(&std::fs::read(state.path().join("tenant.json")).unwrap()).unwrap();
    assert_eq!(tenant["apps"][&id]["publishingState"], "published");
}

#[tokio::test]
async fn the_older_rs256_assertion_with_an_x5t_thumbprint_is_accepted_when_chosen() {
    use reconciler::model::kinds::AssertionAlgorithm;
    use reconciler::platform::intune::auth::{CertificateCredential, TokenSource};
    let dir = tempfile::tempdir().unwrap();
    let (pem, der) = app_certificate(dir.path(), "app");
    let base = tenant_with_app(dir.path(), der, None).await;
    let credential = CertificateCredential::from_pem(CLIENT, &pem).unwrap().with_algorithm(AssertionAlgorithm::Rs256);
    let token_url = base.join(&format!("{TENANT}/oauth2/v2.0/token")).unwrap();
    let header = jsonwebtoken_header(&credential.assertion(token_url.as_str()).unwrap());
    assert_eq!(header["alg"], "RS256");
    assert!(header["x5t"].is_string() && header.get("x5t#S256").is_none(), "{header}");
    let tokens = TokenSource::new(ObjectName::new("intune-test").unwrap(), &base, TENANT, credential).unwrap();
    client(&base).with_auth(tokens).observe().await.expect("signed in with RS256");
}

/// The decoded header of a JWT.
fn jsonwebtoken_header(jwt: &str) -> Value {
    let part = jwt.split('.').next().unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn a_tenant_told_to_refuse_secrets_refuses_even_the_right_one() {
    use reconciler::platform::intune::auth::{Credential, TokenSource};
    for (refuse, ok) in [(false, true), (true, false)] {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let options = EmulatorOptions {
            apps: vec![emulate::intune::RegisteredApp {
                client_id: CLIENT.into(),
                certificate_der: vec![],
                secret: Some("right".into()),
                permissions: emulate::intune::default_permissions(),
            }],
            refuse_secrets: refuse,
            ..EmulatorOptions::default()
        };
        let base = emulate::serve(listener, PlatformType::Intune, &dir.path().join("t.json"), options).unwrap();
        let credential = Credential::Secret { client_id: CLIENT.into(), secret: "right".into() };
        let tokens = TokenSource::new(ObjectName::new("intune-test").unwrap(), &base, TENANT, credential).unwrap();
        let result = client(&base).with_auth(tokens).observe().await;
        assert_eq!(result.is_ok(), ok, "refuse_secrets={refuse}: {result:?}");
        if let Err(e) = result {
            assert!(e.to_string().contains("AADSTS7000215"), "{e}");
            assert!(!e.to_string().contains("right"), "the secret is not shown: {e}");
        }
    }
}

#[tokio::test]
async fn every_request_is_counted_per_platform_with_throttling_apart() {
    // Every second request is throttled (429 with Retry-After: 1); the retry layer waits it
    // out and counts each attempt.
    let (_dir, base) = start(EmulatorOptions { throttle_every: Some(2), ..EmulatorOptions::default() }).await;
    let stats = std::sync::Arc::new(reconciler::platform::retry::RequestStats::default());
    let policy = RetryPolicy { attempts: 4, base: Duration::from_millis(10), max: Duration::from_secs(2) };
    let c = client(&base).with_retry(policy).with_request_stats(stats.clone());
    c.observe().await.expect("observe succeeds once the throttling is waited out");
    c.observe().await.expect("and again");
    let counts = stats.snapshot();
    let count = |outcome| counts.get(&("intune-test".to_string(), outcome)).copied().unwrap_or(0);
    use reconciler::platform::retry::Outcome;
    assert!(count(Outcome::Throttled) >= 1, "{counts:?}");
    assert!(count(Outcome::Ok) >= 2, "{counts:?}");
    assert_eq!(count(Outcome::Transient) + count(Outcome::Failed), 0, "{counts:?}");
    // Each throttled attempt was retried: as many answers as throttles came after them.
    assert!(count(Outcome::Ok) >= count(Outcome::Throttled), "{counts:?}");
}

// Issue 13, item 8: Graph throttling as a budget.
fn limits(per_app: u32, per_tenant: u32, window_ms: u64) -> EmulatorOptions {
    EmulatorOptions {
        intune_write_limits: Some(emulate::intune::WriteLimits {
            per_app,
            per_tenant,
            window: Duration::from_millis(window_ms),
        }),
        ..EmulatorOptions::default()
    }
}

#[tokio::test]
async fn the_emulated_tenant_throttles_writes_beyond_its_limits_and_says_when_to_retry() {
    let (_dir, base) = start(limits(5, 8, 2000)).await;
    let http = reqwest::Client::new();
    let write = || http.post(base.join(APPS).unwrap()).json(&json!({})).send();
    for i in 0..5 {
        assert_ne!(write().await.unwrap().status().as_u16(), 429, "write {i} is within the limit");
    }
    let refused = write().await.unwrap();
    assert_eq!(refused.status().as_u16(), 429, "the sixth write of the app in the window");
    let after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&after), "Retry-After {after}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TooManyRequests");
    // Reads are not writes.
    assert_eq!(reqwest::get(base.join(APPS).unwrap()).await.unwrap().status().as_u16(), 200);
    // Once the window has passed, writes go through again.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_ne!(write().await.unwrap().status().as_u16(), 429);
    // The documented limits, as the harness gives an embedded tenant.
    assert_eq!(
        emulate::intune::WriteLimits::DOCUMENTED,
        emulate::intune::WriteLimits { per_app: 100, per_tenant: 200, window: Duration::from_secs(20) }
    );
}

#[tokio::test]
async fn a_write_budget_below_the_limits_publishes_without_a_single_429() {
    use reconciler::platform::retry::Outcome;
    let publish = |budget: Option<u32>| async move {
        let (_dir, base) = start(limits(10, 20, 1000)).await;
        let stats = std::sync::Arc::new(reconciler::platform::retry::RequestStats::default());
        let policy = RetryPolicy { attempts: 8, base: Duration::from_millis(10), max: Duration::from_secs(2) };
        let mut c = client(&base).with_retry(policy).with_request_stats(stats.clone());
        if let Some(n) = budget {
            c = c.with_write_budget(std::sync::Arc::new(reconciler::platform::budget::WriteBudget::new(
                n,
                Duration::from_millis(1000),
            )));
        }
        let content = verified_content();
        let started = std::time::Instant::now();
        for i in 0..6 {
            let id = c.create(&object(&format!("1.{i}")), &content.1).await.expect("create");
            let a =
                DesiredAssignment { group: "5d1c2f3e-0a4b-4c6d-8e9f-0000000000aa".into(), fields: FieldMap::default() };
            c.set_assignments(&id, std::slice::from_ref(&a)).await.expect("assign");
        }
        let throttled = stats.snapshot().get(&("intune-test".to_string(), Outcome::Throttled)).copied().unwrap_or(0);
        (throttled, started.elapsed())
    };
    let (throttled, elapsed) = publish(Some(8)).await;
    assert_eq!(throttled, 0, "paced below the limit, the tenant never throttles");
    // Six publishes are well over 8 writes: the budget spreads them over seconds.
    assert!(elapsed >= Duration::from_secs(2), "{elapsed:?}");
    let (throttled, _) = publish(None).await;
    assert!(throttled > 0, "unpaced, the same publish meets 429s (and rides them out)");
}

// Issue 13, item 5: groups are named by object id on the wire; a fleet's group name is looked
// up in the directory, read-only, and must match exactly one group.
#[tokio::test]
async fn group_names_resolve_through_the_directory_to_exactly_one_object_id() {
    use reconciler::emulate::intune::Group;
    let twin = "7a3e0c55-1b2d-4e6f-8a9b-0c1d2e3f4a5b";
    let groups = vec![
        Group::named("t", "sg-pilot"),
        Group::named("t", "O'Brien's devices"),
        Group::named("t", "sg-twice"),
        Group { id: twin.into(), display_name: "sg-twice".into() },
    ];
    let (_dir, base) = start(EmulatorOptions { intune_groups: groups.clone(), ..EmulatorOptions::default() }).await;
    let c = client(&base);

    // One match each, a quote in the name included (OData doubles it); case as the directory
    // compares.
    let names = vec!["sg-pilot".to_string(), "O'Brien's devices".to_string(), "SG-PILOT".to_string()];
    let ids = c.resolve_groups(&names).await.expect("resolved");
    assert_eq!(ids["sg-pilot"], groups[0].id);
    assert_eq!(ids["O'Brien's devices"], groups[1].id);
    assert_eq!(ids["SG-PILOT"], groups[0].id);

    // None, or two: an error that says which and what to do.
    let none = c.resolve_groups(&["sg-nobody".to_string()]).await.expect_err("no such group");
    let text = none.to_string();
    assert!(text.contains("no group whose displayName is `sg-nobody`"), "{text}");
    assert!(text.contains("object id"), "{text}");
    let two = c.resolve_groups(&["sg-twice".to_string()]).await.expect_err("ambiguous");
    let text = two.to_string();
    assert!(text.contains("2 groups have the displayName `sg-twice`"), "{text}");
    assert!(text.contains(twin) && text.contains(&groups[2].id), "both ids are named: {text}");

    // The directory answers only the filter Graph documents for this lookup.
    let resp = reqwest::get(base.join("v1.0/groups?$filter=startswith(displayName,'sg')").unwrap()).await.unwrap();
    assert_eq!(resp.status(), 400);
    let resp = reqwest::get(base.join("v1.0/groups?$filter=displayName eq 'it's'").unwrap()).await.unwrap();
    assert_eq!(resp.status(), 400, "an undoubled quote inside the literal is a syntax error");

    // Assignments name groups by object id: a name, or an id the directory lacks, is refused.
    let content = verified_content();
    let id = c.create(&object("1.0"), &content.1).await.expect("create");
    for (group, says) in [
        ("sg-pilot", "Invalid groupId 'sg-pilot'"),
        ("5d1c2f3e-0a4b-4c6d-8e9f-000000000999", "does not exist in the tenant's directory"),
    ] {
        let a = DesiredAssignment { group: group.into(), fields: FieldMap::default() };
        let e = c.set_assignments(&id, std::slice::from_ref(&a)).await.expect_err("refused");
        assert!(e.to_string().contains(says), "{group}: {e}");
    }
    let a = DesiredAssignment { group: groups[0].id.clone(), fields: FieldMap::default() };
    c.set_assignments(&id, std::slice::from_ref(&a)).await.expect("a directory group by its id");
}

// Issue 13, item 6: an app is deleted only once no app references it; patchops removes the
// relationships of apps it manages and leaves those of apps someone else made.
#[tokio::test]
async fn an_app_another_references_is_deleted_only_after_its_relationships_go() {
    let (_dir, base) = start(EmulatorOptions::default()).await;
    let c = client(&base);
    let content = verified_content();
    let old = c.create(&object("1.0"), &content.1).await.unwrap();
    let new = c.create(&object("2.0"), &content.1).await.unwrap();
    c.supersede(&new, &old).await.expect("supersede");
    // The service refuses to delete a referenced app.
    let raw = reqwest::Client::new().delete(base.join(&format!("{APPS}/{old}")).unwrap()).send().await.unwrap();
    assert_eq!(raw.status(), 400);

    // An app someone made by hand also supersedes 1.0.
    let (status, hand) = post(
        &base,
        APPS,
        json!({
            "@odata.type": "#microsoft.graph.win32LobApp",
            "displayName": "Vendor App (packaged by hand)", "publisher": "p", "fileName": "x.intunewin",
            "setupFilePath": "x.msi", "installCommandLine": "msiexec /i x.msi /qn",
            "rules": [{"@odata.type": "#microsoft.graph.win32LobAppProductCodeRule", "ruleType": "detection", "productCode": "{1}"}],
        }),
    )
    .await;
    assert_eq!(status, 201, "{hand}");
    let hand = hand["id"].as_str().unwrap().to_string();
    let (status, _) = post(
        &base,
        &format!("{APPS}/{hand}/updateRelationships"),
        json!({"relationships": [{"@odata.type": "#microsoft.graph.mobileAppSupersedence", "supersedenceType": "replace", "targetId": old}]}),
    )
    .await;
    assert_eq!(status, 204);
    let refused = c.delete(&old).await.expect_err("an app patchops does not manage references it");
    let text = refused.to_string();
    assert!(
        text.contains(&format!("app {hand} (Vendor App (packaged by hand)), which patchops does not manage")),
        "{text}"
    );
    assert!(text.contains("remove that relationship in Intune, then apply again"), "{text}");
    let relationships = |id: String| {
        let url = base.join(&format!("{APPS}/{id}/relationships")).unwrap();
        async move {
            let listed: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
            listed["value"].as_array().unwrap().iter().filter(|r| r["targetType"] == "child").count()
        }
    };
    assert_eq!(relationships(new.clone()).await, 1, "nothing was half undone: 2.0 still supersedes 1.0");
    assert_eq!(relationships(hand.clone()).await, 1, "the hand-made relationship is kept");

    // Once that relationship is removed in the console, the delete goes through, patchops's own
    // relationship first.
    let (status, _) = post(&base, &format!("{APPS}/{hand}/updateRelationships"), json!({"relationships": []})).await;
    assert_eq!(status, 204);
    c.delete(&old).await.expect("delete");
    assert_eq!(relationships(new.clone()).await, 0);
    let ids: Vec<String> = c.observe().await.unwrap().objects.into_iter().map(|o| o.id).collect();
    assert!(!ids.contains(&old) && ids.contains(&new), "{ids:?}");
}

// Intune offers auto-update of superseded apps on available assignments only.
#[tokio::test]
async fn auto_update_of_superseded_apps_is_accepted_on_available_assignments_only() {
    let (_dir, base) = start(EmulatorOptions::default()).await;
    let c = client(&base);
    let content = verified_content();
    let id = c.create(&object("2.0"), &content.1).await.unwrap();
    let body = |intent: &str, state: &str| {
        json!({"mobileAppAssignments": [{
            "@odata.type": "#microsoft.graph.mobileAppAssignment", "intent": intent,
            "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": "5d1c2f3e-0a4b-4c6d-8e9f-0000000000aa"},
            "settings": {"@odata.type": "#microsoft.graph.win32LobAppAssignmentSettings",
                "autoUpdateSettings": {"@odata.type": "#microsoft.graph.win32LobAppAutoUpdateSettings", "autoUpdateSupersededAppsState": state}}}]})
    };
    let (status, refused) = post(&base, &format!("{APPS}/{id}/assign"), body("required", "enabled")).await;
    assert_eq!(status, 400);
    assert!(
        refused["error"]["message"].as_str().unwrap().contains("only for assignments with intent 'available'"),
        "{refused}"
    );
    let (status, refused) = post(&base, &format!("{APPS}/{id}/assign"), body("available", "always")).await;
    assert_eq!(status, 400, "{refused}");
    let (status, _) = post(&base, &format!("{APPS}/{id}/assign"), body("required", "notConfigured")).await;
    assert_eq!(status, 204);
    let (status, _) = post(&base, &format!("{APPS}/{id}/assign"), body("available", "enabled")).await;
    assert_eq!(status, 204);

    // The client writes it from the assignment's fields and reads it back.
    let assignment = DesiredAssignment {
        group: "5d1c2f3e-0a4b-4c6d-8e9f-0000000000ab".into(),
        fields: [("intent", "available"), ("intune.autoUpdateSupersededApps", "enabled")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect(),
    };
    c.set_assignments(&id, std::slice::from_ref(&assignment)).await.expect("assign");
    let observed = c.observe().await.unwrap();
    let seen = &observed.objects.iter().find(|o| o.id == id).unwrap().assignments[0];
    assert_eq!(seen.fields.get("intune.autoUpdateSupersededApps"), Some("enabled"), "{:?}", seen.fields);
    let mut required = assignment;
    required.fields.insert("intent".into(), "required".into());
    let refused = c.set_assignments(&id, &[required]).await.expect_err("refused by the service");
    assert!(refused.to_string().contains("only for assignments with intent 'available'"), "{refused}");
}
