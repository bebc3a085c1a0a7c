//! Helpers for the integration tests: real git repositories made with `git`, real minisign
//! keys and signatures, and the real `patchops` binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.
#![allow(dead_code)] // Each test file uses a different subset of these helpers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reconciler::catalog::edit;

/// A temporary directory that is a git repository.
pub struct Repo {
    pub dir: tempfile::TempDir,
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap_or_else(|e| panic!("git {args:?}: {e}"));
    assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Repo {
    pub fn new() -> Repo {
        let dir = tempfile::tempdir().expect("tempdir");
        git(dir.path(), &["init", "-q", "-b", "main"]);
        Repo { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: impl AsRef<[u8]>) {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.dir.path().join(rel)).expect("remove");
    }

    /// Commits everything and returns the commit id.
    pub fn commit(&self, message: &str) -> String {
        git(self.path(), &["add", "-A"]);
        git(self.path(), &["commit", "-q", "--allow-empty", "-m", message]);
        git(self.path(), &["rev-parse", "HEAD"])
    }
}

/// A signing key made for the test.
pub struct Key {
    pub public: String,
    pub public_file: String,
    pub secret_file: String,
}

pub fn key() -> Key {
    let k = edit::keygen().expect("keygen");
    Key {
        public: k.public_base64.clone(),
        public_file: k.public_file.clone(),
        secret_file: k.secret_file.expose().to_string(),
    }
}

pub fn sign(key: &Key, bytes: &[u8]) -> String {
    let sk = edit::SigningKey::from_text(&key.secret_file, None).expect("secret key");
    edit::sign(bytes.to_vec(), &sk).expect("sign").signature
}

/// A catalog with `vendor.app` 1.0 and 2.0 (and `vendor.tool` 3.1), valid for a month.
pub fn catalog(serial: u64) -> String {
    catalog_with(serial, "2026-11-01T00:00:00Z", &future(30))
}

pub fn future(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days)).to_rfc3339()
}

/// The ProductCode of the MSI [`installer_bytes`] returns (as `msiinfo export … Property`
/// reads it): a catalog must agree with the MSI it describes.
pub fn installer_product_code(id: &str, version: &str) -> &'static str {
    match (id, version) {
        ("vendor.app", "1.0") => "{3A9B6C1E-4F2D-4C1A-9B0E-1F7C2D3E4A01}",
        ("vendor.app", "2.0") => "{3A9B6C1E-4F2D-4C1A-9B0E-1F7C2D3E4A02}",
        _ => "{23170F69-40C1-2702-2408-000001000000}",
    }
}

/// The bytes of the test installer of `id` `version`: one of the example fleet's real (tiny)
/// MSI files, distinct per version, so that packaging for Intune reads a real MSI.
pub fn installer_bytes(id: &str, version: &str) -> Vec<u8> {
    let file = match (id, version) {
        ("vendor.app", "1.0") => "mozilla.firefox-128.0.3-x64.msi",
        ("vendor.app", "2.0") => "mozilla.firefox-131.0.2-x64.msi",
        _ => "igorpavlov.7zip-24.08-x64.msi",
    };
    std::fs::read(workspace_root().join("examples/catalog/installers").join(file)).expect("example installer")
}

/// Every (id, version) the test catalog lists.
pub const INSTALLERS: [(&str, &str); 3] = [("vendor.app", "1.0"), ("vendor.app", "2.0"), ("vendor.tool", "3.1")];

pub fn catalog_with(serial: u64, issued: &str, expires: &str) -> String {
    let installer = |id: &str, v: &str| {
        use sha2::Digest;
        let bytes = installer_bytes(id, v);
        format!(
            r#"{{"architecture":"x64","type":"msi","url":"installers/{id}-{v}.msi","sha256":"{}","size":{},"silentInstall":"/qn","msiProductCode":"{}"}}"#,
            hex(&sha2::Sha256::digest(&bytes)),
            bytes.len(),
            installer_product_code(id, v)
        )
    };
    format!(
        r#"{{"apiVersion":"patchops.io/v1alpha1","kind":"Catalog","publisher":"Test publisher","serial":{serial},"issued":"{issued}","expires":"{expires}","products":[
  {{"id":"vendor.app","name":"Vendor App","vendor":"Vendor","versions":[{{"version":"1.0","installers":[{}]}},{{"version":"2.0","installers":[{}]}}]}},
  {{"id":"vendor.tool","name":"Vendor Tool","vendor":"Vendor","versions":[{{"version":"3.1","installers":[{}]}}]}}
]}}
"#,
        installer("vendor.app", "1.0"),
        installer("vendor.app", "2.0"),
        installer("vendor.tool", "3.1")
    )
}

/// A minimal valid fleet trusting `public_key`, with its catalog at `catalog/catalog.json`
/// next to the fleet directory `fleet/`.
pub fn fleet_files(public_key: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "fleet/platforms.yaml",
            "apiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: intune-prod\nspec:\n  type: intune\n  endpoint: embedded\n".into(),
        ),
        (
            "fleet/rollout.yaml",
            "apiVersion: patchops.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: standard\nspec:\n  rings:\n    - name: pilot\n      groups:\n        - { platform: intune-prod, group: { name: sg-pilot } }\n    - name: broad\n      groups:\n        - { platform: intune-prod, group: { name: sg-broad } }\n".into(),
        ),
        (
            "fleet/catalog.yaml",
            format!("apiVersion: patchops.io/v1alpha1\nkind: CatalogSource\nmetadata:\n  name: vendor\nspec:\n  url: ../catalog/catalog.json\n  trustedKeys:\n    - {public_key}\n"),
        ),
        (
            "fleet/products/app.yaml",
            "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: app\nspec:\n  product: vendor.app\n  version: latest\n  targets:\n    - platform: intune-prod\n".into(),
        ),
    ]
}

/// A repository holding a valid fleet, a catalog of `serial` and its signature; committed.
pub fn fleet_repo(serial: u64) -> (Repo, Key) {
    let repo = Repo::new();
    let key = key();
    for (p, t) in fleet_files(&key.public) {
        repo.write(p, t);
    }
    let c = catalog(serial);
    repo.write("catalog/catalog.json", &c);
    repo.write("catalog/catalog.json.minisig", sign(&key, c.as_bytes()));
    for (id, v) in INSTALLERS {
        repo.write(&format!("catalog/installers/{id}-{v}.msi"), installer_bytes(id, v));
    }
    repo.commit("initial fleet");
    (repo, key)
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the real binary in `cwd`, with a state directory inside `state`.
pub fn patchops(cwd: &Path, args: &[&str]) -> Run {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_patchops"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env("XDG_CACHE_HOME", cwd.join(".test-cache"))
        .output()
        .expect("run patchops");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Serves `app` on 127.0.0.1 (a free port) from a background thread; returns `http://addr`.
pub fn serve_on_loopback(app: axum::Router) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    format!("http://{addr}")
}

/// Fails with both texts when `haystack` does not contain `needle`.
#[track_caller]
pub fn assert_contains(haystack: &str, needle: &str) {
    assert!(haystack.contains(needle), "expected to find\n  {needle}\nin\n{haystack}");
}

/// Lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A platform field map from name/value pairs.
pub fn fields(pairs: &[(&str, &str)]) -> reconciler::platform::FieldMap {
    pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
}

/// A self-signed code-signing certificate (RSA 2048, 30 days) made by `openssl`: returns the
/// certificate and its key in one PEM, and the certificate alone.
pub fn code_signing_certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (key, cert, both) =
        (dir.join(format!("{name}.key")), dir.join(format!("{name}.crt")), dir.join(format!("{name}.pem")));
    let out = tool("openssl", "openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30"])
        .args(["-subj", &format!("/CN=patchops test {name}")])
        .args(["-addext", "extendedKeyUsage=codeSigning", "-addext", "keyUsage=digitalSignature"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut pem = std::fs::read(&cert).expect("certificate");
    pem.extend(std::fs::read(&key).expect("key"));
    std::fs::write(&both, pem).expect("write the PEM");
    (both, cert)
}

/// Every file below `dir`.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
}

/// One of the example catalog's Firefox MSIs ("1.0" is 128.0.3, anything else 131.0.2), by
/// file name, with its bytes and product code.
pub fn example_msi(version: &str) -> (&'static str, Vec<u8>, &'static str) {
    let (file, code) = if version == "1.0" {
        ("mozilla.firefox-128.0.3-x64.msi", "{3A9B6C1E-4F2D-4C1A-9B0E-1F7C2D3E4A01}")
    } else {
        ("mozilla.firefox-131.0.2-x64.msi", "{3A9B6C1E-4F2D-4C1A-9B0E-1F7C2D3E4A02}")
    };
    let bytes = std::fs::read(workspace_root().join("examples/catalog/installers").join(file)).expect("example MSI");
    (file, bytes, code)
}

/// A platform object for an example MSI: `product` at `version`, with `fields`; installed
/// silently with `/qn` from `installers/<file>`.
pub fn msi_object(product: &str, version: &str, fields: &[(&str, &str)]) -> reconciler::platform::DesiredObject {
    use reconciler::catalog::{Installer, Sha256};
    let (file, bytes, code) = example_msi(version);
    reconciler::platform::DesiredObject {
        marker: reconciler::platform::TrackingMarker {
            managed_by: "patchops".into(),
            product: reconciler::model::ProductId::new(product).expect("product id"),
            version: version.into(),
            commit: None,
            content_digest: Sha256::digest(&bytes),
        },
        fields: self::fields(fields),
        installer: Installer {
            architecture: reconciler::model::Architecture::X64,
            installer_type: reconciler::model::InstallerType::Msi,
            url: format!("installers/{file}"),
            sha256: Sha256::digest(&bytes),
            size: bytes.len() as u64,
            silent_install: "/qn".into(),
            silent_uninstall: None,
            msi_product_code: Some(code.into()),
            detection: None,
            success_codes: vec![],
            scan: None,
        },
        description: "a test product".into(),
        product_name: "Vendor App".into(),
        homepage: None,
        // Where apply finds an installer of the test catalog: in the fleet's commit.
        origin: Some(reconciler::platform::InstallerOrigin::Repository(format!("catalog/installers/{file}"))),
    }
}

/// `bytes` admitted into a content cache under `cache`: verified content to hand a platform.
pub fn verified(cache: &Path, bytes: &[u8]) -> reconciler::content::VerifiedContent {
    let expected =
        reconciler::content::Expected { sha256: reconciler::catalog::Sha256::digest(bytes), size: bytes.len() as u64 };
    reconciler::content::ContentCache::new(cache).admit("test", bytes, expected).expect("verified")
}

/// Platform documents for an embedded WSUS server (`wsus-onprem`: signing certificate, AllSigned
/// with a script-signing certificate) and an embedded ConfigMgr site (`cm-onprem`: Basic auth),
/// with their certificates and password made in `secrets`.
pub fn onprem_platforms(secrets: &Path) -> String {
    let (signing, _) = code_signing_certificate(secrets, "wsus");
    let (scripts, _) = code_signing_certificate(secrets, "scripts");
    std::fs::write(secrets.join("password"), "cm-password-not-shown").expect("write the password");
    format!(
        "apiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: wsus-onprem\nspec:\n  type: wsus\n  endpoint: embedded\n  trust:\n    signingCertificate: {{ file: {signing} }}\n    executionPolicy: allSigned\n    scriptSigningCertificate: {{ file: {scripts} }}\n---\napiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: cm-onprem\nspec:\n  type: configmgr\n  endpoint: embedded\n  auth:\n    username: CONTOSO\\svc-patchops\n    password: {{ file: {password} }}\n",
        signing = signing.display(),
        scripts = scripts.display(),
        password = secrets.join("password").display()
    )
}

/// The embedded Intune platform `intune-prod` as its emulator persisted it.
pub fn tenant(dir: &Path) -> serde_json::Value {
    match std::fs::read(dir.join(".patchops/emulate/intune-prod.json")) {
        Ok(b) => serde_json::from_slice(&b).expect("emulator state is JSON"),
        Err(_) => serde_json::json!({ "apps": {}, "assignments": {} }),
    }
}

/// (displayVersion, sorted groups) of every app in the tenant, sorted.
pub fn tenant_apps(dir: &Path) -> Vec<(String, Vec<String>)> {
    let t = tenant(dir);
    let mut out: Vec<(String, Vec<String>)> = t["apps"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(id, app)| {
            let mut groups: Vec<String> = t["assignments"][id]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| group_name(&t, a["target"]["groupId"].as_str().unwrap_or_default()))
                .collect();
            groups.sort();
            (app["displayVersion"].as_str().unwrap_or_default().to_string(), groups)
        })
        .collect();
    out.sort();
    out
}

/// The display name of the emulated tenant's group `id` (its id when the directory has no such
/// group).
pub fn group_name(tenant: &serde_json::Value, id: &str) -> String {
    tenant["groups"][id]["displayName"].as_str().unwrap_or(id).to_string()
}

/// The object id of the emulated tenant's group named `name`.
pub fn group_id(tenant: &serde_json::Value, name: &str) -> String {
    tenant["groups"]
        .as_object()
        .into_iter()
        .flatten()
        .find(|(_, g)| g["displayName"] == name)
        .map(|(id, _)| id.clone())
        .unwrap_or_else(|| panic!("the emulated tenant has no group named {name}: {:#}", tenant["groups"]))
}

pub fn v(version: &str, groups: &[&str]) -> (String, Vec<String>) {
    (version.to_string(), groups.iter().map(|g| g.to_string()).collect())
}

/// Runs the real binary in `cwd` with the fail point `point` armed (`PATCHOPS_FAILPOINT`), as
/// the crash tests do; the process aborts there if it reaches it.
pub fn patchops_at_failpoint(cwd: &Path, args: &[&str], point: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_patchops"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env("PATCHOPS_FAILPOINT", point)
        .env("XDG_CACHE_HOME", cwd.join(".test-cache"))
        .output()
        .expect("run patchops")
}

/// A small deterministic generator (xorshift64*), so that a failure can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// `msiinfo export FILE Property` (Debian `msitools`): the MSI's own properties, read by a tool
/// that is not patchops.
pub fn msi_property(bytes: &[u8], name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("package.msi");
    std::fs::write(&path, bytes).unwrap();
    let out = tool("msiinfo", "msitools")
        .args(["export", path.to_str().unwrap(), "Property"])
        .output()
        .unwrap_or_else(|e| panic!("msiinfo (Debian package msitools) is needed for this test: {e}"));
    assert!(out.status.success(), "msiinfo: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix(&format!("{name}\t")).map(str::to_string))
        .unwrap_or_else(|| panic!("the MSI has no {name}"))
}

/// A `Command` for an external program a test cross-checks with, or a failure naming the Debian
/// package that provides it (`tests/run` installs them all): a test never passes silently for
/// want of its tool.
pub fn tool(program: &str, package: &str) -> Command {
    let found = if program.contains('/') {
        Path::new(program).is_file()
    } else {
        std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
    };
    assert!(
        found,
        "`{program}` (Debian package `{package}`) is needed by this test and is not installed; `tests/run` installs what is missing"
    );
    Command::new(program)
}

/// Validates `document` against `schemas/<schema>` with Python's `jsonschema` (draft 2020-12):
/// a validator that is not patchops's.
pub fn assert_matches_schema(document: &str, schema: &str) {
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("doc.json");
    std::fs::write(&doc, document).unwrap();
    let check = "import json, sys, jsonschema\n\
                 schema = json.load(open(sys.argv[1])); doc = json.load(open(sys.argv[2]))\n\
                 jsonschema.Draft202012Validator.check_schema(schema)\n\
                 jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)\n";
    let out = tool("python3", "python3")
        .args(["-c", check])
        .arg(workspace_root().join("schemas").join(schema))
        .arg(&doc)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{schema}: {}\n{document}\n(python3's jsonschema package is needed: `tests/run` installs it)",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `patchops emulate intune` tenant on loopback (state in `dir/remote-tenant.json`, the
/// example app registration, a directory of `groups`), and the Platform document that reaches
/// A `patchops emulate intune` process, killed when dropped.
pub struct RemoteTenant(std::process::Child);

impl Drop for RemoteTenant {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// it by URL as `intune-prod`; `extra` goes on the emulator's command line.
pub fn remote_tenant(dir: &Path, groups: &[&str], extra: &[&str]) -> (RemoteTenant, String) {
    use std::io::BufRead;
    let pem = workspace_root().join("examples/secrets/EXAMPLE-ONLY-intune-app.pem");
    let client_id = "00000000-0000-0000-0000-0000000000aa";
    let mut emulator = Command::new(env!("CARGO_BIN_EXE_patchops"));
    emulator.args(["emulate", "intune", "--listen", "127.0.0.1:0", "--state"]);
    emulator.arg(dir.join("remote-tenant.json")).arg("--app").arg(format!("{client_id}={}", pem.display()));
    for g in groups {
        emulator.args(["--group", g]);
    }
    emulator.args(extra);
    let mut child = emulator.stderr(std::process::Stdio::piped()).spawn().expect("spawn the emulator");
    let mut line = String::new();
    std::io::BufReader::new(child.stderr.take().expect("stderr")).read_line(&mut line).expect("read");
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).expect("url").to_string();
    let platform = format!("apiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: intune-prod\nspec:\n  type: intune\n  endpoint: {url}\n  auth:\n    tenantId: 00000000-0000-0000-0000-000000000001\n    clientId: {client_id}\n    authority: {url}\n    certificate: {{ file: {} }}\n", pem.display());
    (RemoteTenant(child), platform)
}

/// `osslsigncode verify` of `file` against the CA certificates in `ca_pem`, the independent
/// check of a signature patchops made; panics with osslsigncode's words when it does not
/// verify. Returns what osslsigncode printed.
pub fn osslsigncode_verifies(file: &Path, ca_pem: &Path, extra: &[&str]) -> String {
    let out = tool("osslsigncode", "osslsigncode")
        .args(["verify", "-CAfile"])
        .arg(ca_pem)
        .args(extra)
        .arg("-in")
        .arg(file)
        .output()
        .expect("osslsigncode runs");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && said.contains("Signature verification: ok"),
        "osslsigncode does not verify {}:\n{said}",
        file.display()
    );
    said
}

/// An RFC 3161 time-stamping authority: `openssl ts -reply` with a certificate made here
/// (`DIR/tsa.crt`, returned with the URL), behind HTTP on loopback.
pub fn time_stamping_authority(dir: &Path) -> (String, PathBuf) {
    let out = tool("openssl", "openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "tsa.key", "-out", "tsa.crt", "-days", "30"])
        .args(["-subj", "/CN=patchops test TSA", "-addext", "extendedKeyUsage=critical,timeStamping"])
        .args(["-addext", "keyUsage=digitalSignature"])
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tsa = dir.join("tsa.crt");
    std::fs::write(dir.join("serial"), "01\n").unwrap();
    let config = format!(
        "[tsa]\ndefault_tsa = tsa1\n[tsa1]\ndir = {d}\nserial = {d}/serial\nsigner_cert = {d}/tsa.crt\n\
         signer_key = {d}/tsa.key\nsigner_digest = sha256\ndefault_policy = 1.2.3.4.1\ndigests = sha256\n\
         accuracy = secs:1\ness_cert_id_alg = sha256\n",
        d = dir.display()
    );
    std::fs::write(dir.join("ts.cnf"), config).unwrap();
    let work = dir.to_path_buf();
    let app = axum::Router::new().route(
        "/tsa",
        axum::routing::post(move |body: axum::body::Bytes| {
            let work = work.clone();
            async move {
                let query = tempfile::NamedTempFile::new_in(&work).unwrap();
                std::fs::write(query.path(), &body).unwrap();
                let reply = work.join(format!("{}.tsr", uuid::Uuid::new_v4()));
                let out = std::process::Command::new("openssl")
                    .args(["ts", "-reply", "-config"])
                    .arg(work.join("ts.cnf"))
                    .arg("-queryfile")
                    .arg(query.path())
                    .arg("-out")
                    .arg(&reply)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "openssl ts: {}", String::from_utf8_lossy(&out.stderr));
                ([("content-type", "application/timestamp-reply")], std::fs::read(&reply).unwrap())
            }
        }),
    );
    (format!("{}/tsa", serve_on_loopback(app)), tsa)
}
