//! The WSUS client: third-party updates published with SDP metadata through generated
//! PowerShell that a [`transport::Transport`] runs on the server.
//!
//! One platform object is one update, identified by its SDP `PackageID` (the update id WSUS
//! gives a locally published package). The PackageID is derived from the Platform, product,
//! version and content digest, so it is stable for a product version and republishing after a
//! crash finds the update instead of adding a second one. Field mapping:
//!
//! | planner field | SDP / WSUS |
//! |---|---|
//! | displayName, version | `Title` (`<displayName> <version>`); the version is the marker's |
//! | publisher | `Properties/@VendorName` |
//! | installerType | the installer handler (`msi:`, `msp:` or `cmd:` …InstallerData) |
//! | installCommand | `msiexec /i "<MsiFile>" <CommandLine>`, `msiexec /p …`, `"<Program>" <Arguments>` |
//! | msiProductCode | `msi:MsiInstallerData/@ProductCode` |
//! | size, sha256 | `OriginFile/@Size`, `OriginFile/AdditionalDigest[@Algorithm=SHA256]` |
//! | wsus.classification | `UpdateSpecificData/@UpdateClassification` (by name) |
//! | assignment (a ring's group) | an Install approval for the computer target group |
//! | assignment.deadline | the approval's deadline − its creation time, to the nearest minute |
//! | assignment.restart | `InstallProperties/@RebootBehavior` (one per update, like Intune's) |
//!
//! patchops's [`TrackingMarker`] is the last line of the SDP `Description`, `patchops:` and the
//! marker as JSON. A changed binary is never republished in place: an update is a new package
//! that supersedes the old one (`SupersededPackages`, written by a metadata-only revision).
//! Retiring expires the package (default) or declines it (`wsus.retire: decline`).

pub mod request;
pub mod sdp;
pub mod transport;

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::Value;

use super::{
    DesiredAssignment, DesiredObject, FieldMap, Observed, ObservedAssignment, ObservedObject, ObservedRelationship,
    PlatformClient, PlatformError, ScriptSigning, TrackingMarker,
};
use crate::catalog::Detection;
use crate::content::VerifiedContent;
use crate::model::kinds::WsusRetire;
use crate::model::{Architecture, InstallerType, ObjectName, PlatformType};
use request::{Approval, Request};
use sdp::{Classification, Handler, InstalledRule, OriginFile, Processor, RebootBehavior, Sdp};
use transport::{Run, Transport};

/// The namespace of patchops's PackageIDs (UUID v5 names are `wsus/<platform>/<product>/…`).
const PACKAGE_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6f1c_2b8e_4d0a_4c55_9a7e_3b52_d1e0_7a41);

/// What the client knows of an update from the last listing or its own changes.
#[derive(Debug, Clone)]
struct Known {
    sdp: Option<Sdp>,
    /// Expired packages cannot be published again (see [`WsusClient::package_id`]).
    expired: bool,
}

/// One update of the server's listing, read.
struct Listed {
    object: ObservedObject,
    known: Known,
    /// Expired or declined: retired, so not published any more.
    retired: bool,
    /// Its SDP as the server exported it, and its content URLs.
    sdp_text: String,
    files: Vec<String>,
}

/// A client for one WSUS server.
#[derive(Debug)]
pub struct WsusClient {
    name: ObjectName,
    transport: Arc<dyn Transport>,
    scripts: ScriptSigning,
    retire: WsusRetire,
    known: Mutex<BTreeMap<String, Known>>,
    /// The server's signing certificate, judged once before the first publish.
    signing_checked: tokio::sync::OnceCell<()>,
    clock: crate::clock::SharedClock,
    requests: super::retry::Requests,
}

/// The server's publishing facts (`patchops doctor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFacts {
    /// The WSUS version.
    pub version: String,
    /// The signing certificate (DER) in the server's `WSUS` store, if one is configured.
    pub signing_certificate: Option<Vec<u8>>,
    /// Whether the server holds its private key.
    pub has_private_key: bool,
}

/// One published update's content, as the server offers it to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedContent {
    /// The update.
    pub package_id: String,
    /// Its title.
    pub title: String,
    /// Its SDP document.
    pub sdp: String,
    /// URLs of its files (the signed CAB) on the server.
    pub files: Vec<String>,
}

impl WsusClient {
    /// A client for the WSUS server behind `transport`.
    pub fn new(name: ObjectName, transport: Arc<dyn Transport>) -> Self {
        WsusClient {
            name,
            transport,
            scripts: ScriptSigning::Unsigned,
            retire: WsusRetire::default(),
            known: Mutex::new(BTreeMap::new()),
            signing_checked: tokio::sync::OnceCell::new(),
            clock: crate::clock::SharedClock::default(),
            requests: super::retry::Requests::default(),
        }
    }

    /// How request scripts are signed (unsigned by default).
    #[must_use]
    pub fn with_script_signing(mut self, scripts: ScriptSigning) -> Self {
        self.scripts = scripts;
        self
    }

    /// Retries transient failures of each request with `policy` (the one retry layer).
    #[must_use]
    pub fn with_retry(mut self, policy: super::retry::RetryPolicy) -> Self {
        self.requests = self.requests.with_policy(policy);
        self
    }

    /// Counts each request's outcome in `stats` (per platform: the daemon's metrics).
    #[must_use]
    pub fn with_request_stats(mut self, stats: std::sync::Arc<super::retry::RequestStats>) -> Self {
        self.requests = self.requests.counted(stats, self.name.as_str());
        self
    }

    /// Takes the time (deadlines, creation times, certificate checks) from `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: crate::clock::SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// What retiring does (expire by default).
    #[must_use]
    pub fn with_retire(mut self, retire: WsusRetire) -> Self {
        self.retire = retire;
        self
    }

    fn failed(&self, operation: &str, message: impl Into<crate::vocab::Cause>) -> PlatformError {
        PlatformError::Failed { platform: self.name.clone(), operation: operation.into(), cause: message.into() }
    }

    /// Runs one request on the server with the staged `files`; returns the script's JSON result.
    async fn call(
        &self,
        request: &Request,
        what: &str,
        files: Vec<(String, std::path::PathBuf)>,
    ) -> Result<Value, PlatformError> {
        let operation = format!("{} ({what})", request.operation());
        let script = request::script(request, what);
        let delivered = self.scripts.deliver(script).await.map_err(|e| self.failed(&operation, e))?;
        let script_name = format!("patchops-{}.ps1", request.operation());
        // A transport that could not reach the server is retried (each attempt stages afresh).
        let output = self
            .requests
            .send(|| {
                let id = uuid::Uuid::new_v4().to_string();
                self.transport.run(Run {
                    id,
                    script_name: &script_name,
                    script: delivered.text(),
                    files: files.clone(),
                })
            })
            .await?;
        let result = output
            .stdout
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('{'))
            .and_then(|l| serde_json::from_str::<Value>(l).ok());
        match result {
            Some(v) if output.exit_code == 0 && v["ok"] == true => Ok(v),
            Some(v) => {
                Err(self.failed(&operation, v["error"].as_str().unwrap_or("the script reported a failure").to_string()))
            }
            None => {
                let words: Vec<&str> = output.stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
                let mut message = format!(
                    "the script on {} exited with {} without a result: {}",
                    self.transport.describe(),
                    output.exit_code,
                    words[words.len().saturating_sub(3)..].join("; ")
                );
                if output.stderr.contains("is not digitally signed")
                    || output.stderr.contains("not signed by a trusted publisher")
                {
                    message.push_str(
                        " — the server runs PowerShell as AllSigned: set trust.scriptSigningCertificate (and trust.executionPolicy: allSigned) so patchops signs its scripts, and trust that certificate on the server",
                    );
                }
                Err(self.failed(&operation, message))
            }
        }
    }

    /// The server's signing certificate and version.
    pub async fn server_facts(&self) -> Result<ServerFacts, PlatformError> {
        let v = self.call(&Request::Server, "reading the server's publishing settings", Vec::new()).await?;
        let der = match v["signingCertificate"].as_str() {
            Some(b) => Some(base64::engine::general_purpose::STANDARD.decode(b).map_err(|e| {
                self.failed("reading the server's settings", format!("the signing certificate is not base64: {e}"))
            })?),
            None => None,
        };
        Ok(ServerFacts {
            version: v["version"].as_str().unwrap_or_default().to_string(),
            signing_certificate: der,
            has_private_key: v["hasPrivateKey"] == true,
        })
    }

    /// The published (not expired, not declined) updates patchops manages, with their content
    /// URLs: what a client would install.
    pub async fn published_content(&self) -> Result<Vec<PublishedContent>, PlatformError> {
        Ok(self
            .listing()
            .await?
            .into_iter()
            .filter(|l| !l.retired && l.object.managed().is_some())
            .map(|l| PublishedContent {
                package_id: l.object.id,
                title: l.object.display_name,
                sdp: l.sdp_text,
                files: l.files,
            })
            .collect())
    }

    /// Refuses to publish when the server signs with a certificate clients would reject (as
    /// `patchops doctor` explains): nothing is handed over that no client could install.
    async fn check_signing(&self) -> Result<(), PlatformError> {
        self.signing_checked
            .get_or_try_init(|| async {
                let facts = self.server_facts().await?;
                let Some(der) = facts.signing_certificate else {
                    // The server itself refuses to publish without one, with its own words.
                    return Ok(());
                };
                let judged = crate::authenticode::judge_certificate(&der, self.clock.now())
                    .map_err(|e| self.failed("checking the server's signing certificate", e))?;
                match judged.problems.first() {
                    None => Ok(()),
                    Some(problem) => Err(self.failed(
                        "checking the server's signing certificate",
                        format!(
                            "the WSUS server signs updates with {} ({}), and clients would refuse every update signed with it: {problem}; `patchops doctor` shows the whole chain",
                            judged.subject, judged.thumbprint
                        ),
                    )),
                }
            })
            .await
            .map(|_| ())
    }

    fn remember(&self, id: &str, known: Known) {
        if let Ok(mut k) = self.known.lock() {
            k.insert(id.to_string(), known);
        }
    }

    fn known(&self, id: &str) -> Option<Known> {
        self.known.lock().ok().and_then(|k| k.get(id).cloned())
    }

    /// The PackageID for an object: stable for a Platform, product, version and content; a
    /// package expired earlier cannot be published again, so its successor takes the next id.
    fn package_id(&self, o: &DesiredObject) -> uuid::Uuid {
        let base = format!("wsus/{}/{}/{}/{}", self.name, o.marker.product, o.marker.version, o.marker.content_digest);
        let mut generation = 1;
        loop {
            let name = if generation == 1 { base.clone() } else { format!("{base}/{generation}") };
            let id = uuid::Uuid::new_v5(&PACKAGE_NAMESPACE, name.as_bytes());
            match self.known(&id.to_string()) {
                Some(k) if k.expired => generation += 1,
                _ => return id,
            }
        }
    }

    /// The SDP for `o`, keeping what an earlier revision fixed (`previous`).
    fn sdp_for(
        &self,
        o: &DesiredObject,
        package_id: uuid::Uuid,
        sha1: [u8; 20],
        previous: Option<&Sdp>,
        msi: Option<&crate::msi::MsiInfo>,
    ) -> Result<Sdp, PlatformError> {
        let building = "building the SDP";
        let i = &o.installer;
        let field = |k: &str| o.fields.get(k).unwrap_or_default().to_string();
        let file_name = i.file_name().to_string();
        // Every version in the applicability rules is a four-part bt:Version.
        let four = |v: &str| sdp::four_part_version(v).map_err(|e| self.failed(building, e));
        let version = o.marker.version.clone();
        let rule_version = four(&version)?;
        let installed = match (&i.msi_product_code, &i.detection) {
            // What Windows Installer reports is the MSI's own ProductVersion, not the catalog's
            // version; a revision keeps the rule its update was published with (same content).
            (Some(code), _) => {
                let kept = previous.and_then(|p| match &p.installed {
                    InstalledRule::MsiProduct { product_code, version_min }
                        if product_code.eq_ignore_ascii_case(code) =>
                    {
                        Some(version_min.clone())
                    }
                    _ => None,
                });
                let version_min = match (msi, kept) {
                    (Some(m), _) => four(&m.product_version)?,
                    (None, Some(kept)) => kept,
                    (None, None) => rule_version.clone(),
                };
                InstalledRule::MsiProduct { product_code: code.clone(), version_min }
            }
            (None, Some(Detection::File { path, version: v })) => {
                let (csidl, path) = sdp::csidl_path(path).map_err(|e| self.failed(building, e))?;
                InstalledRule::FileVersion {
                    csidl,
                    path,
                    version: v.as_ref().map_or(Ok(rule_version.clone()), |v| four(&v.to_string()))?,
                }
            }
            (None, Some(Detection::Registry { key, value, version: v })) => {
                let subkey = ["HKLM\\", "HKEY_LOCAL_MACHINE\\"]
                    .iter()
                    .find_map(|hive| key.get(..hive.len()).filter(|h| h.eq_ignore_ascii_case(hive)).map(|_| &key[hive.len()..]))
                    .ok_or_else(|| {
                        self.failed(building, format!("WSUS registry rules read HKEY_LOCAL_MACHINE only, but the catalog's detection key is {key}"))
                    })?;
                InstalledRule::RegistryVersion {
                    subkey: subkey.to_string(),
                    value: value.clone(),
                    version: v.as_ref().map_or(Ok(rule_version.clone()), |v| four(&v.to_string()))?,
                }
            }
            (None, None) => return Err(self.failed(building, o.undetectable("WSUS clients"))),
        };
        let handler = match i.installer_type {
            InstallerType::Msi => Handler::Msi {
                file: file_name.clone(),
                product_code: i.msi_product_code.clone().ok_or_else(|| {
                    self.failed(
                        building,
                        format!(
                            "the MSI {file_name} has no product code in the catalog (msi:MsiInstallerData needs one)"
                        ),
                    )
                })?,
                command_line: i.silent_install.clone(),
            },
            InstallerType::Msp => Handler::Msp { file: file_name.clone(), command_line: i.silent_install.clone() },
            InstallerType::Exe => {
                let mut success_codes = vec![(0, false), (3010, true), (1641, true)];
                for code in &i.success_codes {
                    if !success_codes.iter().any(|(c, _)| c == code) {
                        success_codes.push((*code, false));
                    }
                }
                Handler::CommandLine { program: file_name.clone(), arguments: i.silent_install.clone(), success_codes }
            }
            InstallerType::Msix => {
                return Err(self.failed(
                    building,
                    format!("WSUS cannot install MSIX packages ({file_name}); target Intune for it"),
                ))
            }
        };
        let classification =
            Classification::from_fleet(&field("wsus.classification")).unwrap_or(Classification::Updates);
        let now = self.clock.now();
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(o.marker.content_digest.to_string(), &mut sha256)
            .map_err(|e| self.failed(building, e.to_string()))?;
        let origin_uri = origin_uri(o).map_err(|e| self.failed(building, e))?;
        Ok(Sdp {
            package_id,
            creation_date: previous.map_or(now, |p| p.creation_date),
            vendor: field("publisher"),
            product_name: o.product_name.clone(),
            expired: false,
            more_info_url: o.homepage.clone(),
            title: format!("{} {version}", field("displayName")),
            description: format!("{}\n\n{}", o.description, o.marker.note()),
            classification,
            processor: match i.architecture {
                Architecture::X64 => Processor::X64,
                Architecture::Arm64 => Processor::Arm64,
                Architecture::X86 | Architecture::Neutral => Processor::Any,
            },
            supersedes: previous.map(|p| p.supersedes.clone()).unwrap_or_default(),
            item_id: previous.map_or_else(
                || uuid::Uuid::new_v5(&PACKAGE_NAMESPACE, format!("{package_id}/item").as_bytes()),
                |p| p.item_id,
            ),
            installed,
            reboot: previous.map_or(RebootBehavior::CanRequestReboot, |p| p.reboot),
            handler,
            origin: OriginFile {
                file_name,
                size: i.size,
                sha1,
                sha256,
                modified: previous.map_or(now, |p| p.origin.modified),
                origin_uri,
            },
        })
    }

    /// A metadata-only revision with `sdp`.
    async fn revise(&self, id: &str, sdp: Sdp, what: &str) -> Result<(), PlatformError> {
        let (_dir, name, file) = self.stage_sdp(id, &sdp)?;
        self.call(&Request::Revise { package_id: id.to_string(), sdp: name.clone() }, what, vec![(name, file)]).await?;
        self.remember(id, Known { sdp: Some(sdp), expired: false });
        Ok(())
    }

    /// Writes the SDP of update `id` into a temporary folder for the transport: (the folder,
    /// the file's name on the server, the file).
    fn stage_sdp(&self, id: &str, sdp: &Sdp) -> Result<(tempfile::TempDir, String, std::path::PathBuf), PlatformError> {
        let dir = tempfile::tempdir().map_err(|e| self.failed("staging the SDP", e.to_string()))?;
        let name = format!("{id}.sdp.xml");
        let file = dir.path().join(&name);
        std::fs::write(&file, sdp.to_xml()).map_err(|e| self.failed("staging the SDP", e.to_string()))?;
        Ok((dir, name, file))
    }

    /// Every locally published update of the server, read.
    async fn listing(&self) -> Result<Vec<Listed>, PlatformError> {
        Ok(self.listing_documents().await?.0)
    }

    /// The listing, read, and as the server answered it.
    async fn listing_documents(&self) -> Result<(Vec<Listed>, Value), PlatformError> {
        let v = self.call(&Request::Observe, "listing updates", Vec::new()).await?;
        let listed =
            crate::intern::with_interner(|| v["updates"].as_array().into_iter().flatten().filter_map(listed).collect());
        Ok((listed, v))
    }

    fn current_sdp(&self, id: &str, operation: &str) -> Result<Sdp, PlatformError> {
        self.known(id).and_then(|k| k.sdp).ok_or_else(|| {
            self.failed(operation, format!("update {id} was not in the server's listing; observe the platform again"))
        })
    }
}

/// SHA-1 of verified content, for `OriginFile/@Digest` (streamed: memory stays flat).
fn sha1_of(content: &VerifiedContent) -> std::io::Result<[u8; 20]> {
    use sha1::Digest;
    let mut file = std::fs::File::open(content.path())?;
    let mut h = sha1::Sha1::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

/// The planner's fields of an update patchops published.
fn fields_of(s: &Sdp, marker: &TrackingMarker) -> FieldMap {
    let shared = crate::intern::shared;
    let mut f = FieldMap::default();
    let mut put = |k: &str, v: String| f.insert(shared(k), shared(&v));
    let suffix = format!(" {}", marker.version);
    put("displayName", s.title.strip_suffix(&suffix).unwrap_or(&s.title).to_string());
    put("publisher", s.vendor.clone());
    put("version", marker.version.clone());
    put("size", s.origin.size.to_string());
    put("sha256", hex::encode(s.origin.sha256));
    put("wsus.classification", s.classification.fleet_name().to_string());
    let join = |a: String, b: &str| if b.is_empty() { a } else { format!("{a} {b}") };
    match &s.handler {
        Handler::Msi { file, product_code, command_line } => {
            put("installerType", "msi".into());
            put("installCommand", join(format!("msiexec /i \"{file}\""), command_line));
            put("msiProductCode", product_code.clone());
        }
        Handler::Msp { file, command_line } => {
            put("installerType", "msp".into());
            put("installCommand", join(format!("msiexec /p \"{file}\""), command_line));
        }
        Handler::CommandLine { program, arguments, .. } => {
            put("installerType", "exe".into());
            put("installCommand", join(format!("\"{program}\""), arguments));
        }
    }
    f
}

/// An update of the server's listing: as the planner sees it, what the client keeps of it, and
/// whether it is retired (observe leaves expired and declined updates out).
fn listed(u: &Value) -> Option<Listed> {
    let id = u["packageId"].as_str()?.to_string();
    let title = u["title"].as_str().unwrap_or_default().to_string();
    let sdp_text = u["sdp"].as_str().unwrap_or_default().to_string();
    let sdp = Sdp::parse(&sdp_text).ok();
    let expired = u["publicationState"] == "Expired";
    let retired = expired || u["isDeclined"] == true;
    let files =
        u["files"].as_array().into_iter().flatten().filter_map(|f| f["url"].as_str().map(str::to_string)).collect();
    let marker = sdp.as_ref().and_then(|s| TrackingMarker::from_note(&s.description));
    let fields = match (&sdp, &marker) {
        (Some(s), Some(m)) => fields_of(s, m),
        _ => FieldMap::default(),
    };
    let restart = sdp.as_ref().map(|s| s.reboot.restart());
    let assignments = u["approvals"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["action"] == "Install")
        .filter_map(|a| {
            let mut fields = FieldMap::default();
            fields.insert("intent".into(), "required".into());
            if let Some(r) = restart {
                fields.insert("restart".into(), r.into());
            }
            let at = |k: &str| a[k].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            if let (Some(created), Some(deadline)) = (at("created"), at("deadline")) {
                if let Ok(d) = (deadline - created).to_std() {
                    // The creation time is the server's clock and the deadline was computed
                    // on patchops's: they differ by the request's latency and any clock skew.
                    // Compared to the nearest minute, the deadline reads back as the fleet wrote
                    // it (fleet deadlines are minutes to days).
                    let minutes = (d.as_secs() + 30) / 60;
                    let d = std::time::Duration::from_secs(minutes * 60);
                    fields.insert("deadline".into(), crate::intern::shared(&crate::vocab::duration::readable(d)));
                }
            }
            let since = at("created").map(|t| t.with_timezone(&chrono::Utc));
            Some(ObservedAssignment { group: a["group"].as_str()?.to_string(), fields, since })
        })
        .collect();
    let mut relationships: Vec<ObservedRelationship> = sdp
        .as_ref()
        .map(|s| {
            s.supersedes
                .iter()
                .map(|p| ObservedRelationship { kind: "supersedence:update".into(), target: p.to_string() })
                .collect()
        })
        .unwrap_or_default();
    relationships.sort();
    Some(Listed {
        object: ObservedObject {
            id,
            display_name: title,
            marker,
            fields,
            assignments,
            relationships,
            incomplete: None,
        },
        known: Known { sdp, expired },
        retired,
        sdp_text,
        files,
    })
}

/// `OriginFile/@OriginUri`: an absolute URI (`System.Uri`, "where the file was originally
/// located"). The installer's URL when it came from one — whole, with its query string, because
/// the server is told where the file is, not a person (logs and plans show it redacted); for an
/// installer read from the fleet's commit, `file:///` and its path in the repository (WSUS gets
/// the content with the package, so the origin is a record, never fetched). Anything else is
/// refused.
fn origin_uri(o: &DesiredObject) -> Result<String, String> {
    let uri = match &o.origin {
        Some(crate::platform::InstallerOrigin::Url(url)) => url.clone(),
        Some(crate::platform::InstallerOrigin::Repository(path)) => {
            let mut u = url::Url::parse("file:///").map_err(|e| e.to_string())?;
            u.set_path(path);
            u
        }
        None => url::Url::parse(&o.installer.url).map_err(|_| {
            format!("the installer {} has no absolute location to record as its OriginUri", o.installer.url)
        })?,
    };
    match uri.scheme() {
        "http" | "https" | "file" => Ok(uri.to_string()),
        other => Err(format!(
            "the installer's location {} has the scheme {other}: WSUS records http, https or file origins",
            crate::http::redact(&uri)
        )),
    }
}

#[async_trait::async_trait]
impl PlatformClient for WsusClient {
    fn name(&self) -> &ObjectName {
        &self.name
    }

    fn platform_type(&self) -> PlatformType {
        PlatformType::Wsus
    }

    async fn observe(&self) -> Result<Observed, PlatformError> {
        Ok(self.observe_documents().await?.0)
    }

    async fn observe_documents(&self) -> Result<(Observed, Value), PlatformError> {
        let (listing, documents) = self.listing_documents().await?;
        let mut objects = Vec::new();
        let mut known = BTreeMap::new();
        for l in listing {
            known.insert(l.object.id.clone(), l.known);
            if !l.retired {
                objects.push(l.object);
            }
        }
        if let Ok(mut k) = self.known.lock() {
            *k = known;
        }
        Ok((Observed { objects, groups: BTreeMap::new() }, documents))
    }

    async fn create(&self, object: &DesiredObject, content: &VerifiedContent) -> Result<String, PlatformError> {
        // Trust-chain link 2, again at the hand-over: the content is the catalog's.
        object.check_content(content).map_err(|e| self.failed("publishing the update", e))?;
        self.check_signing().await?;
        let for_hash = content.clone();
        let sha1 = tokio::task::spawn_blocking(move || sha1_of(&for_hash))
            .await
            .map_err(|e| self.failed("hashing the content", e.to_string()))?
            .map_err(|e| self.failed("hashing the content", format!("{}: {e}", content.path().display())))?;
        let package_id = self.package_id(object);
        let id = package_id.to_string();
        let msi = object.msi_facts(content).await.map_err(|e| self.failed("reading the MSI", e))?;
        let sdp = self.sdp_for(object, package_id, sha1, None, msi.as_ref())?;
        let (_dir, sdp_name, sdp_file) = self.stage_sdp(&id, &sdp)?;
        let content_name = object.installer.file_name().to_string();
        let what = format!("publish {} {}", object.marker.product, object.marker.version);
        let request = Request::Publish { package_id: id.clone(), sdp: sdp_name.clone(), content: content_name.clone() };
        self.call(&request, &what, vec![(sdp_name, sdp_file), (content_name, content.path().to_path_buf())]).await?;
        self.remember(&id, Known { sdp: Some(sdp), expired: false });
        Ok(id)
    }

    async fn reconfigure(&self, id: &str, object: &DesiredObject) -> Result<(), PlatformError> {
        let current = self.current_sdp(id, "revising the update")?;
        let package_id = current.package_id;
        let sdp = self.sdp_for(object, package_id, current.origin.sha1, Some(&current), None)?;
        self.revise(id, sdp, &format!("revise {} {}", object.marker.product, object.marker.version)).await
    }

    async fn set_assignments(&self, id: &str, assignments: &[DesiredAssignment]) -> Result<(), PlatformError> {
        // WSUS has one reboot behaviour per update: take the assignments' (the fleet sets it
        // per target, so they agree), revising the update when it differs.
        if let Some(restart) = assignments.iter().find_map(|a| a.fields.get("restart")) {
            let mut current = self.current_sdp(id, "approving the update")?;
            let wanted = RebootBehavior::from_restart(restart);
            if current.reboot != wanted {
                current.reboot = wanted;
                self.revise(id, current, "set the reboot behaviour").await?;
            }
        }
        let now = self.clock.now();
        let approvals = assignments
            .iter()
            .map(|a| {
                let deadline = a
                    .fields
                    .get("deadline")
                    .and_then(|d| humantime::parse_duration(d).ok())
                    .and_then(|d| chrono::Duration::from_std(d).ok())
                    .and_then(|d| now.checked_add_signed(d))
                    .map(|due| due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                Approval { group: a.group.clone(), deadline }
            })
            .collect();
        self.call(&Request::Approve { package_id: id.to_string(), approvals }, "approve", Vec::new()).await?;
        Ok(())
    }

    async fn delete(&self, id: &str) -> Result<(), PlatformError> {
        let request = match self.retire {
            WsusRetire::Expire => Request::Expire { package_id: id.to_string() },
            WsusRetire::Decline => Request::Decline { package_id: id.to_string() },
        };
        self.call(&request, "retire", Vec::new()).await?;
        if let Ok(mut k) = self.known.lock() {
            if let Some(entry) = k.get_mut(id) {
                entry.expired |= self.retire == WsusRetire::Expire;
            }
        }
        Ok(())
    }

    async fn supersede(&self, new: &str, old: &str) -> Result<(), PlatformError> {
        let mut current = self.current_sdp(new, "setting supersedence")?;
        let old_id = uuid::Uuid::parse_str(old)
            .map_err(|e| self.failed("setting supersedence", format!("{old} is not a PackageID: {e}")))?;
        if current.supersedes.contains(&old_id) {
            return Ok(());
        }
        current.supersedes.push(old_id);
        self.revise(new, current, "supersede the previous version").await
    }
}
