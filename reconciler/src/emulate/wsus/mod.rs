//! An emulator of a WSUS server as patchops reaches it: a staging folder for request scripts
//! and their files, a runner that executes patchops's generated PowerShell requests with the
//! checks and effects of the WSUS API they call, and the server's content folder.
//!
//! - `PUT /patchops/v1/staging/{id}/{name}` stages a file (streamed to disk);
//!   `POST /patchops/v1/run {"id", "script"}` runs a staged script and answers
//!   `{"exitCode", "stdout", "stderr"}`, as `ssh … powershell.exe -File` would.
//! - When the server runs PowerShell as AllSigned, a script whose Authenticode signature does not
//!   verify against the certificates the server trusts is refused with PowerShell's own message.
//! - A script is recognised by its request (the JSON here-string) and must call the API the
//!   request needs (`GetPublisher` + `PublishPackage`, `RevisePackage`, `Approve`,
//!   `ExpirePackage`, `Decline`, `ExportPackageMetadata`).
//! - Publishing checks the SDP ([`sdp_check`]), the staged file against its OriginFile (size,
//!   SHA-1, and the SHA-256 AdditionalDigest), then wraps the file in a CAB and signs it with the
//!   server's WSUS signing certificate, as the real server does (CreateCab → SignCab); with no
//!   signing certificate configured, publishing fails.
//! - `GET /Content/{xx}/{sha1}.cab` serves published content, as WSUS's content virtual folder.
//!
//! [`client`] is an emulated Windows client of this server.

pub mod client;
pub mod sdp_check;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// How the emulated server is set up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WsusServerOptions {
    /// The WSUS signing certificate and its key (one PEM): CABs are signed with it. None: the
    /// server has no signing certificate and refuses to publish.
    pub signing_pem: Option<PathBuf>,
    /// Computer target groups besides `All Computers` and `Unassigned Computers`.
    pub groups: Vec<String>,
    /// PowerShell on the server runs as AllSigned.
    pub all_signed: bool,
    /// Certificates (DER) the server trusts to sign scripts (Trusted Publishers, and roots).
    pub trusted_script_signers: Vec<Vec<u8>>,
    /// The server's clock (approval times, certificate checks).
    pub clock: crate::clock::SharedClock,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApprovalRecord {
    group: String,
    action: String,
    created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deadline: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateRecord {
    revision: u32,
    sdp: String,
    title: String,
    expired: bool,
    declined: bool,
    approvals: Vec<ApprovalRecord>,
    /// The signed CAB, relative to the content folder (`XX/SHA1.cab`).
    cab: String,
    /// The installer's name inside it.
    file_name: String,
    /// SHA-1 of the installer (a revision may not change it).
    sha1: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Store {
    updates: BTreeMap<String, UpdateRecord>,
}

/// The emulated server.
#[derive(Debug)]
pub struct Emulator {
    store: Mutex<Store>,
    file: PathBuf,
    options: WsusServerOptions,
    base: OnceLock<String>,
}

type Shared = Arc<Emulator>;

/// A request the runner could not serve (bad staging names, unreadable state).
struct Refused(StatusCode, String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

/// What a script did: exit code and output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ScriptResult {
    exit_code: i32,
    stdout: String,
    stderr: String,
}

impl ScriptResult {
    fn ok(value: Value) -> Self {
        let mut v = value;
        v["ok"] = json!(true);
        ScriptResult { exit_code: 0, stdout: format!("{v}\n"), stderr: String::new() }
    }
    /// A failure inside the script: its catch block prints the error as JSON and exits 1.
    fn failed(message: impl Into<String>) -> Self {
        ScriptResult {
            exit_code: 1,
            stdout: format!("{}\n", json!({ "ok": false, "error": message.into() })),
            stderr: String::new(),
        }
    }
    /// PowerShell refused to run the file at all.
    fn not_run(stderr: String) -> Self {
        ScriptResult { exit_code: 1, stdout: String::new(), stderr }
    }
}

impl Emulator {
    /// Opens the server's state (empty when the file does not exist).
    pub fn open(file: &Path, options: WsusServerOptions) -> Result<Emulator, String> {
        let store = match std::fs::read(file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                format!("{} is corrupt ({e}); remove it to start the emulated WSUS server empty", file.display())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Store::default(),
            Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
        };
        let emulator = Emulator { store: Mutex::new(store), file: file.to_path_buf(), options, base: OnceLock::new() };
        emulator.sweep_leftovers();
        Ok(emulator)
    }

    /// Removes what a server process killed mid-request leaves (nothing is in flight when the
    /// emulator opens its state): its half-written state, staging folders, and half-made CABs
    /// in the content folder.
    fn sweep_leftovers(&self) {
        crate::state::sweep_atomic_leftovers(&self.file);
        let _ = std::fs::remove_dir_all(self.file.with_extension("staging"));
        let Ok(entries) = std::fs::read_dir(self.content_dir()) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                let path = entry.path();
                let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            }
        }
    }

    /// What each request script does first (see the client's script prelude): staging folders
    /// of requests that never ran are removed once they are a day old.
    fn sweep_stale_staging(&self, current: &str) {
        let Ok(entries) = std::fs::read_dir(self.file.with_extension("staging")) else { return };
        let day_ago = std::time::SystemTime::from(self.options.clock.now())
            .checked_sub(std::time::Duration::from_secs(24 * 3600));
        for entry in entries.flatten() {
            let old = entry.metadata().and_then(|m| m.modified()).ok().zip(day_ago).is_some_and(|(m, d)| m < d);
            let ours = uuid::Uuid::parse_str(&entry.file_name().to_string_lossy()).is_ok();
            if entry.file_name() != current && old && ours {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Where the server's content (signed CABs) is kept.
    pub fn content_dir(&self) -> PathBuf {
        self.file.with_extension("content")
    }

    fn staging_dir(&self, id: &str) -> PathBuf {
        self.file.with_extension("staging").join(id)
    }

    fn persist(&self, store: &Store) -> Result<(), String> {
        let bytes = serde_json::to_vec_pretty(store).map_err(|e| e.to_string())?;
        crate::state::write_atomic(&self.file, &bytes).map_err(|e| e.to_string())
    }

    fn groups(&self) -> Vec<String> {
        let mut g = vec!["All Computers".to_string(), "Unassigned Computers".to_string()];
        g.extend(self.options.groups.iter().cloned());
        g
    }
}

/// The router of the emulated server.
pub fn router(emulator: Shared) -> Router {
    Router::new()
        .route("/patchops/v1/staging/{id}/{name}", put(stage))
        .route("/patchops/v1/run", post(run))
        .route("/Content/{dir}/{file}", get(content))
        .with_state(emulator)
}

/// Records the URL the server is reached at (for content URLs in listings).
pub fn set_base(emulator: &Emulator, base: &url::Url) {
    let _ = emulator.base.set(base.as_str().trim_end_matches('/').to_string());
}

/// A staging id or file name: one plain path segment.
fn segment(s: &str) -> Result<&str, Refused> {
    plain_name(s).map_err(|e| Refused(StatusCode::BAD_REQUEST, e))
}

/// A name that stays inside the folder it is joined to: no separators, no `..`, no drive. A
/// request's SDP and an SDP's `OriginFile/@FileName` are both held to it, so the server reads
/// only what was staged for the request.
fn plain_name(s: &str) -> Result<&str, String> {
    let ok = !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\', '\0', ':']);
    if ok {
        Ok(s)
    } else {
        Err(format!("{s:?} is not a plain file name; the server reads only files staged for the request"))
    }
}

/// The most one staged file may hold (8 GiB: larger than any installer WSUS takes).
pub const MAX_STAGED_BYTES: u64 = 8 << 30;

async fn stage(
    State(emu): State<Shared>,
    UrlPath((id, name)): UrlPath<(String, String)>,
    body: Body,
) -> Result<StatusCode, Refused> {
    use futures::StreamExt as _;
    use tokio::io::AsyncWriteExt as _;
    let dir = emu.staging_dir(segment(&id)?);
    let internal = |e: std::io::Error| Refused(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    tokio::fs::create_dir_all(&dir).await.map_err(internal)?;
    let path = dir.join(segment(&name)?);
    let mut file = tokio::fs::File::create(&path).await.map_err(internal)?;
    let mut stream = body.into_data_stream();
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Refused(StatusCode::BAD_REQUEST, e.to_string()))?;
        written += chunk.len() as u64;
        if written > MAX_STAGED_BYTES {
            drop(file);
            let _ = tokio::fs::remove_file(&path).await;
            return Err(Refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("{name} is larger than the {MAX_STAGED_BYTES} bytes a staged file may hold"),
            ));
        }
        file.write_all(&chunk).await.map_err(internal)?;
    }
    file.flush().await.map_err(internal)?;
    Ok(StatusCode::CREATED)
}

#[derive(Deserialize)]
struct RunRequest {
    id: String,
    script: String,
}

async fn run(State(emu): State<Shared>, Json(req): Json<RunRequest>) -> Result<Json<ScriptResult>, Refused> {
    let dir = emu.staging_dir(segment(&req.id)?);
    let script_path = dir.join(segment(&req.script)?);
    emu.sweep_stale_staging(&req.id);
    let emu2 = emu.clone();
    let result = tokio::task::spawn_blocking(move || emu2.execute(&dir, &script_path))
        .await
        .map_err(|e| Refused(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    // The script removes its staging folder when it ends, whatever happened.
    let _ = tokio::fs::remove_dir_all(emu.staging_dir(&req.id)).await;
    Ok(Json(result))
}

async fn content(
    State(emu): State<Shared>,
    UrlPath((dir, file)): UrlPath<(String, String)>,
) -> Result<Response, Refused> {
    let path = emu.content_dir().join(segment(&dir)?).join(segment(&file)?);
    let f = tokio::fs::File::open(&path).await.map_err(|_| Refused(StatusCode::NOT_FOUND, "no such content".into()))?;
    let stream = futures::stream::unfold(f, |mut f| async move {
        use tokio::io::AsyncReadExt as _;
        let mut buf = vec![0u8; 1 << 16];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    Ok(([("content-type", "application/vnd.ms-cab-compressed")], Body::from_stream(stream)).into_response())
}

/// The API call each operation's script must make.
fn api_calls(operation: &str) -> &'static [&'static str] {
    match operation {
        "observe" => &["GetUpdates(", "ExportPackageMetadata("],
        "publish" => &["GetPublisher(", ".PublishPackage("],
        "revise" => &["GetPublisher(", ".RevisePackage()"],
        "approve" => &[".Approve('Install'", ".Delete()"],
        "expire" => &[".ExpirePackage()"],
        "decline" => &[".Decline()"],
        "server" => &["Cert:\\LocalMachine\\WSUS"],
        _ => &[],
    }
}

/// The request document of a patchops script: the here-string assigned to `$Request`.
fn request_of(script: &str) -> Option<Value> {
    let start = script.find("$Request = @'")?;
    let rest = &script[start..];
    let body_start = rest.find('\n')? + 1;
    let end = rest.find("\n'@")?;
    serde_json::from_str(rest.get(body_start..end)?.trim()).ok()
}

impl Emulator {
    /// Runs a script staged in a folder of this machine, as PowerShell on the WSUS server runs
    /// `-File script.ps1` (for a test server reached over SSH): returns exit code, standard
    /// output and standard error. The staging folder is removed afterwards, as the script does.
    pub fn run_staged(&self, script_path: &Path) -> (i32, String, String) {
        let dir = script_path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let r = self.execute(&dir, script_path);
        let _ = std::fs::remove_dir_all(&dir);
        (r.exit_code, r.stdout, r.stderr)
    }

    /// Runs a staged script (blocking: signature checks and CAB signing run tools).
    fn execute(&self, dir: &Path, script_path: &Path) -> ScriptResult {
        let id = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let name = script_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let shown = format!("C:\\ProgramData\\patchops\\staging\\{id}\\{name}");
        let script = match std::fs::read_to_string(script_path) {
            Ok(s) => s,
            Err(_) => {
                return ScriptResult::not_run(format!("The argument '{shown}' to the -File parameter does not exist."))
            }
        };
        if self.options.all_signed {
            if let Err(refusal) = self.check_script_signature(script_path, &shown) {
                return ScriptResult::not_run(refusal);
            }
        }
        let Some(request) = request_of(&script) else {
            return ScriptResult::failed("the script holds no patchops request ($Request here-string)");
        };
        let operation = request["operation"].as_str().unwrap_or_default().to_string();
        if let Some(missing) = api_calls(&operation).iter().find(|call| !script.contains(*call)) {
            return ScriptResult::failed(format!(
                "the {operation} script does not call the WSUS API it needs ({missing})"
            ));
        }
        let mut store = match self.store.lock() {
            Ok(s) => s,
            Err(_) => return ScriptResult::failed("the server's state is poisoned"),
        };
        let outcome = match operation.as_str() {
            "observe" => Ok(self.observe(&store)),
            "server" => self.server(),
            "publish" => self.publish(&mut store, dir, &request),
            "revise" => self.revise(&mut store, dir, &request),
            "approve" => self.approve(&mut store, &request),
            "expire" | "decline" => self.retire(&mut store, &request, operation == "expire"),
            other => Err(format!("unknown request {other:?}")),
        };
        match outcome {
            Ok(v) => match self.persist(&store) {
                Ok(()) => ScriptResult::ok(v),
                Err(e) => ScriptResult::failed(format!("the server could not save its state: {e}")),
            },
            Err(e) => ScriptResult::failed(e),
        }
    }

    /// PowerShell's AllSigned check of a script file.
    fn check_script_signature(&self, script: &Path, shown: &str) -> Result<(), String> {
        let policy =
            "For more information, see about_Execution_Policies at https:/go.microsoft.com/fwlink/?LinkID=135170.";
        let check =
            crate::authenticode::inspect(script, &self.options.trusted_script_signers, self.options.clock.now())
                .map_err(|e| e.to_string())?;
        if !check.signed {
            return Err(format!(
                "File {shown} cannot be loaded. The file {shown} is not digitally signed. You cannot run this script on the current system. {policy}"
            ));
        }
        if !check.digest_matches {
            return Err(format!(
                "File {shown} cannot be loaded. The contents of file {shown} might have been changed by an unauthorized user or process, because the hash of the file does not match the hash stored in the digital signature. The script cannot run on the specified system. {policy}"
            ));
        }
        if !check.chain_trusted {
            return Err(format!(
                "File {shown} cannot be loaded. A certificate chain processed, but terminated in a root certificate which is not trusted by the trust provider ({}). {policy}",
                check.chain_error.unwrap_or_default()
            ));
        }
        Ok(())
    }

    fn observe(&self, store: &Store) -> Value {
        let base = self.base.get().cloned().unwrap_or_default();
        let updates: Vec<Value> = store
            .updates
            .iter()
            .map(|(id, u)| {
                let sdp = if u.expired {
                    u.sdp.replacen("PublicationState=\"Published\"", "PublicationState=\"Expired\"", 1)
                } else {
                    u.sdp.clone()
                };
                json!({
                    "packageId": id,
                    "revision": u.revision,
                    "title": u.title,
                    "publicationState": if u.expired { "Expired" } else { "Published" },
                    "isDeclined": u.declined,
                    "sdp": sdp,
                    "approvals": u.approvals,
                    "files": [{ "name": u.file_name, "url": format!("{base}/Content/{}", u.cab) }],
                })
            })
            .collect();
        json!({ "updates": updates })
    }

    fn server(&self) -> Result<Value, String> {
        let der = match &self.options.signing_pem {
            Some(pem_path) => {
                let text = std::fs::read(pem_path)
                    .map_err(|e| format!("the signing certificate {}: {e}", pem_path.display()))?;
                crate::authenticode::pem_certificates(&text).map_err(|e| e.to_string())?.into_iter().next()
            }
            None => None,
        };
        use base64::Engine as _;
        Ok(json!({
            "version": "10.0.20348.1 (patchops emulator)",
            "signingCertificate": der.as_ref().map(|d| base64::engine::general_purpose::STANDARD.encode(d)),
            "hasPrivateKey": der.is_some(),
        }))
    }

    fn staged_sdp(&self, dir: &Path, request: &Value) -> Result<(String, sdp_check::Checked), String> {
        let name = plain_name(request["sdp"].as_str().ok_or("the request names no SDP")?)?;
        let xml = crate::bounded::read(&dir.join(name), 16 << 20)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| format!("the SDP {name} was not staged"))?;
        let checked =
            sdp_check::check(&xml).map_err(|problems| format!("the SDP is not valid: {}", problems.join("; ")))?;
        let wanted = request["packageId"].as_str().unwrap_or_default().to_ascii_lowercase();
        if checked.package_id != wanted {
            return Err(format!("the SDP's PackageID {} is not the request's {wanted}", checked.package_id));
        }
        Ok((xml, checked))
    }

    fn publish(&self, store: &mut Store, dir: &Path, request: &Value) -> Result<Value, String> {
        let id = request["packageId"].as_str().unwrap_or_default().to_ascii_lowercase();
        if let Some(existing) = store.updates.get(&id) {
            if existing.expired {
                return Err(format!("package {id} is expired; an expired package cannot be published again"));
            }
            return Ok(json!({ "packageId": id, "created": false }));
        }
        let Some(signing) = &self.options.signing_pem else {
            return Err("Publishing failed: the server has no signing certificate for locally published updates; \
                 configure one (IUpdateServerConfiguration.SetSigningCertificate) before publishing"
                .into());
        };
        let (xml, checked) = self.staged_sdp(dir, request)?;
        let [sdp_check::Origin { name: file_name, size, sha1, sha256 }] = checked.origin.as_slice() else {
            return Err("the SDP must describe exactly one OriginFile".into());
        };
        if request["content"].as_str() != Some(file_name.as_str()) {
            return Err(format!("the request's content is not the SDP's OriginFile {file_name}"));
        }
        let staged = dir.join(plain_name(file_name)?);
        let (actual_size, actual_sha1, actual_sha256) =
            digests(&staged).map_err(|e| format!("the content {file_name} was not staged: {e}"))?;
        if actual_size != *size || actual_sha1.as_slice() != sha1.as_slice() {
            return Err(format!(
                "the file {file_name} does not match the SDP's OriginFile: {actual_size} bytes with SHA-1 {}, the SDP says {size} bytes with SHA-1 {}",
                hex::encode(actual_sha1),
                hex::encode(sha1)
            ));
        }
        if let Some(expected) = sha256 {
            if actual_sha256.as_slice() != expected.as_slice() {
                return Err(format!("the file {file_name} does not match the SDP's SHA256 AdditionalDigest"));
            }
        }
        // CreateCab → SignCab, as WSUS does when it publishes.
        let content = self.content_dir();
        std::fs::create_dir_all(&content).map_err(|e| e.to_string())?;
        // Half-made CABs live in a dot-folder of their own, removed when this ends (and by the
        // next start if the process is killed): a crash never blocks a package.
        let work = tempfile::Builder::new().prefix(".signing-").tempdir_in(&content).map_err(|e| e.to_string())?;
        let unsigned = work.path().join("unsigned.cab");
        make_cab(&staged, file_name, &unsigned).map_err(|e| format!("making the CAB: {e}"))?;
        crate::failpoint::hit("wsus-server-signing");
        let signed = work.path().join(format!("{id}.cab"));
        crate::authenticode::sign_as_configured(signing, &unsigned, &signed)
            .map_err(|e| format!("signing the CAB with the WSUS signing certificate: {e}"))?;
        let (_, cab_sha1, _) = digests(&signed).map_err(|e| e.to_string())?;
        let hex_sha1 = hex::encode_upper(cab_sha1);
        let relative = format!("{}/{hex_sha1}.cab", &hex_sha1[hex_sha1.len() - 2..]);
        let target = content.join(&relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::rename(&signed, &target).map_err(|e| e.to_string())?;
        store.updates.insert(
            id.clone(),
            UpdateRecord {
                revision: 1,
                sdp: xml,
                title: checked.title,
                expired: false,
                declined: false,
                approvals: Vec::new(),
                cab: relative,
                file_name: file_name.clone(),
                sha1: hex::encode(sha1),
            },
        );
        Ok(json!({ "packageId": id, "created": true }))
    }

    fn revise(&self, store: &mut Store, dir: &Path, request: &Value) -> Result<Value, String> {
        let id = request["packageId"].as_str().unwrap_or_default().to_ascii_lowercase();
        let (xml, checked) = self.staged_sdp(dir, request)?;
        let u = store.updates.get_mut(&id).ok_or_else(|| format!("update {id} does not exist on this server"))?;
        if u.expired {
            return Err(format!("update {id} is expired and cannot be revised"));
        }
        if checked.origin.iter().any(|o| o.name != u.file_name || hex::encode(&o.sha1) != u.sha1) {
            return Err(format!(
                "a revision cannot change update {id}'s file ({}); publish a new update that supersedes it",
                u.file_name
            ));
        }
        u.sdp = xml;
        u.title = checked.title;
        u.revision += 1;
        Ok(json!({ "packageId": id, "revision": u.revision }))
    }

    fn approve(&self, store: &mut Store, request: &Value) -> Result<Value, String> {
        let id = request["packageId"].as_str().unwrap_or_default().to_ascii_lowercase();
        let groups = self.groups();
        let u = store.updates.get_mut(&id).ok_or_else(|| format!("update {id} does not exist on this server"))?;
        if u.expired {
            return Err(format!("update {id} is expired and cannot be approved"));
        }
        let now = self.options.clock.now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut approvals = Vec::new();
        for a in request["approvals"].as_array().into_iter().flatten() {
            let group = a["group"].as_str().unwrap_or_default();
            if !groups.iter().any(|g| g == group) {
                return Err(format!("computer target group '{group}' does not exist on this server"));
            }
            let deadline = a["deadline"].as_str().map(str::to_string);
            let created = u
                .approvals
                .iter()
                .find(|x| x.group == group && x.deadline == deadline)
                .map_or(now.clone(), |x| x.created.clone());
            approvals.push(ApprovalRecord { group: group.into(), action: "Install".into(), created, deadline });
        }
        u.approvals = approvals;
        // Approving a declined update brings it back, as in the console.
        u.declined = false;
        Ok(json!({ "packageId": id }))
    }

    fn retire(&self, store: &mut Store, request: &Value, expire: bool) -> Result<Value, String> {
        let id = request["packageId"].as_str().unwrap_or_default().to_ascii_lowercase();
        if let Some(u) = store.updates.get_mut(&id) {
            // Expiring removes approvals and declines; declining removes approvals.
            u.approvals.clear();
            u.declined = true;
            u.expired |= expire;
        }
        Ok(json!({ "packageId": id }))
    }
}

/// Size, SHA-1 and SHA-256 of a file, streamed.
fn digests(path: &Path) -> std::io::Result<(u64, [u8; 20], [u8; 32])> {
    use sha2::Digest as _;
    let mut f = std::fs::File::open(path)?;
    let (mut h1, mut h256, mut size) = (sha1::Sha1::new(), sha2::Sha256::new(), 0u64);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok((size, h1.finalize().into(), h256.finalize().into()));
        }
        size += n as u64;
        h1.update(&buf[..n]);
        h256.update(&buf[..n]);
    }
}

/// A CAB holding `source` as `name` (MSZIP, streamed).
fn make_cab(source: &Path, name: &str, out: &Path) -> std::io::Result<()> {
    let mut builder = cab::CabinetBuilder::new();
    builder.add_folder(cab::CompressionType::MsZip).add_file(name.to_string());
    let mut writer = builder.build(std::fs::File::create(out)?)?;
    while let Some(mut entry) = writer.next_file()? {
        let mut input = std::fs::File::open(source)?;
        std::io::copy(&mut input, &mut entry)?;
    }
    writer.finish()?.sync_all()
}

/// Writes the state file of an emulated server that holds what a real one listed: `documents`
/// is the server's listing (`{"updates": [...]}`, each locally published update with its SDP,
/// publication state, declined flag, approvals and files), as `patchops inventory record` keeps
/// it. The signed CABs are not copied (a dry run revises, approves, declines and expires
/// updates, which do not read them). Returns how many updates it holds.
pub fn seed(file: &Path, documents: &Value) -> Result<usize, String> {
    let updates = documents["updates"]
        .as_array()
        .ok_or("the recorded documents have no updates list (record the inventory again)")?;
    let mut store = Store::default();
    for u in updates {
        let id = u["packageId"]
            .as_str()
            .filter(|i| !i.is_empty())
            .ok_or("a recorded update has no packageId")?
            .to_ascii_lowercase();
        let expired = u["publicationState"] == "Expired";
        let listed = u["sdp"].as_str().unwrap_or_default();
        // The listing shows an expired update's SDP as expired; the server keeps it as published.
        let sdp = if expired {
            listed.replacen("PublicationState=\"Expired\"", "PublicationState=\"Published\"", 1)
        } else {
            listed.to_string()
        };
        // Updates another tool published may not pass this server's checks; they are kept as
        // listed (patchops never changes them).
        let checked = sdp_check::check(&sdp).ok();
        let origin = checked.as_ref().and_then(|c| c.origin.first());
        let approvals: Vec<ApprovalRecord> = serde_json::from_value(u["approvals"].clone()).unwrap_or_default();
        let cab = u["files"][0]["url"]
            .as_str()
            .and_then(|url| url.split_once("/Content/"))
            .map(|(_, rel)| rel.to_string())
            .unwrap_or_default();
        store.updates.insert(
            id,
            UpdateRecord {
                revision: u["revision"].as_u64().and_then(|r| u32::try_from(r).ok()).unwrap_or(1),
                title: u["title"].as_str().unwrap_or_default().to_string(),
                sdp,
                expired,
                declined: u["isDeclined"] == true,
                approvals,
                cab,
                file_name: origin.map(|o| o.name.clone()).unwrap_or_default(),
                sha1: origin.map(|o| hex::encode(&o.sha1)).unwrap_or_default(),
            },
        );
    }
    let count = store.updates.len();
    super::write_seeded(file, &store)?;
    Ok(count)
}
