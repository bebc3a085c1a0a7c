//! The Configuration Manager client: applications through the SMS Provider's REST API, the
//! AdminService (`https://{provider}/AdminService/wmi/{Class}`, OData v4).
//!
//! One platform object is one application (`SMS_Application`, by `CI_ID`); a ring's group is a
//! collection, and an assignment is a deployment (`SMS_ApplicationAssignment`). Publishing
//! copies the verified installer to the site's content share (checked again after the copy),
//! then creates the application from an SDMPackageXML document ([`sdm`]). A changed setting is
//! a new revision of the same application; a new version is a new application whose deployment
//! type supersedes the old one; retiring removes its deployments and marks it retired
//! (`SetIsExpired`). Field mapping:
//!
//! | planner field | SDMPackageXML / AdminService |
//! |---|---|
//! | displayName, publisher, version | Application `Title`, `Publisher`, `SoftwareVersion` |
//! | installerType | the content file's extension (`msi`, `msp`, `exe`) |
//! | installCommand / uninstallCommand | the install and uninstall actions' command lines |
//! | msiProductCode | the MSI detection's product code |
//! | size, sha256 | the content `File/@Size`; the marker's digest |
//! | configmgr.estimatedRuntimeMinutes | `ExecuteTime` |
//! | assignment.intent | `OfferTypeID` 0 (required) or 2 (available) |
//! | assignment.deadline | `EnforcementDeadline` − `StartTime` |
//! | assignment.restart | `PostInstallBehavior` (one per deployment type) |
//!
//! patchops's [`TrackingMarker`] is the last line of the application's administrator comments
//! (`Description`). The account needs a security role that may create and manage applications
//! (Application Author or Application Administrator) and one that may deploy them (Application
//! Deployment Manager); a refusal names the role to add. Authentication is HTTP Basic over TLS
//! with `auth.username` and `auth.password` (the AdminService's IIS site must allow it, or a
//! reverse proxy in front of it must).

pub mod sdm;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::{json, Value};

use super::{
    DesiredAssignment, DesiredObject, FieldMap, Observed, ObservedAssignment, ObservedObject, ObservedRelationship,
    PlatformClient, PlatformError, ScriptSigning, TrackingMarker,
};
use crate::content::VerifiedContent;
use crate::model::{InstallerType, ObjectName, PlatformType};
use sdm::{Application, Detection, PostInstall, Technology};

/// The namespace of patchops's logical names (UUID v5 of `configmgr/<platform>/…`).
const NAMES: uuid::Uuid = uuid::Uuid::from_u128(0x2d4e_8a1f_93b7_4f02_b6c1_58e0_aa7d_3c19);

/// The content share: how the site reads it and where it is mounted here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// UNC path, such as `\\cm01\sources\patchops`.
    pub unc: String,
    /// Local mount, such as `/mnt/cm-sources/patchops`.
    pub local: PathBuf,
}

/// Which security role a refused operation needs.
fn role_for(operation: &str) -> &'static str {
    if operation.contains("deploy") || operation.contains("deployment") {
        "Application Deployment Manager (or Application Administrator)"
    } else {
        "Application Author (or Application Administrator)"
    }
}

/// A client for one site's AdminService.
#[derive(Debug)]
pub struct ConfigMgrClient {
    name: ObjectName,
    base: url::Url,
    http: reqwest::Client,
    account: Option<(String, String)>,
    share: Share,
    scripts: ScriptSigning,
    /// The site's authoring scope (`ScopeId_<SMS_Identification.ThisSiteID>`), read once.
    scope: tokio::sync::OnceCell<String>,
    /// Applications by CI_ID from the last listing or this client's own changes.
    known: Mutex<BTreeMap<String, Application>>,
    clock: crate::clock::SharedClock,
    requests: super::retry::Requests,
}

impl ConfigMgrClient {
    /// What [`PlatformClient::observe`] reads, and the documents it read it from.
    async fn observe_listing(&self) -> Result<(Observed, Value), PlatformError> {
        let mut url = self.url("SMS_Application")?;
        url.query_pairs_mut()
            .append_pair("$filter", "IsLatest eq true and IsExpired eq false")
            .append_pair("$select", "CI_ID,ModelName,LocalizedDisplayName,SoftwareVersion,Manufacturer");
        let list = self.send("listing applications", self.http.get(url)).await?;
        let mut apps = Vec::new();
        let mut instances = Vec::new();
        for entry in list["value"].as_array().into_iter().flatten() {
            let Some(ci) = entry["CI_ID"].as_u64().map(|n| n.to_string()) else { continue };
            // SDMPackageXML is a lazy property: only a single instance's GET returns it.
            let one = self
                .send("reading an application", self.http.get(self.url(&format!("SMS_Application({ci})"))?))
                .await?;
            let xml = one["value"][0]["SDMPackageXML"].as_str().unwrap_or_default().to_string();
            apps.push((ci, entry.clone(), Application::parse(&xml).ok()));
            let mut one = one;
            instances.push(one["value"][0].take());
        }
        let assignments =
            self.send("listing deployments", self.http.get(self.url("SMS_ApplicationAssignment")?)).await?;
        let assignments = assignments["value"].as_array().cloned().unwrap_or_default();
        let by_model: BTreeMap<String, String> = apps
            .iter()
            .filter_map(|(ci, entry, _)| Some((entry["ModelName"].as_str()?.to_string(), ci.clone())))
            .collect();
        let mut objects = Vec::new();
        let mut known = BTreeMap::new();
        crate::intern::with_interner(|| {
            for (ci, entry, app) in &apps {
                let model = entry["ModelName"].as_str().unwrap_or_default();
                let marker = app.as_ref().and_then(|a| TrackingMarker::from_note(&a.description));
                let fields = match (app, &marker) {
                    (Some(a), Some(m)) => fields_of(a, m),
                    _ => FieldMap::default(),
                };
                let restart = app.as_ref().map(|a| a.post_install.restart());
                let object_assignments = assignments
                    .iter()
                    .filter(|d| d["ApplicationName"].as_str() == Some(model))
                    .filter_map(|d| {
                        let mut fields = FieldMap::default();
                        let intent = if d["OfferTypeID"].as_u64() == Some(2) { "available" } else { "required" };
                        fields.insert("intent".into(), intent.into());
                        if let Some(r) = restart {
                            fields.insert("restart".into(), r.into());
                        }
                        let at = |k: &str| d[k].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
                        if let (Some(start), Some(deadline)) = (at("StartTime"), at("EnforcementDeadline")) {
                            if let Ok(dur) = (deadline - start).to_std() {
                                fields.insert(
                                    "deadline".into(),
                                    crate::intern::shared(&crate::vocab::duration::readable(dur)),
                                );
                            }
                        }
                        let since = at("StartTime").map(|t| t.with_timezone(&chrono::Utc));
                        Some(ObservedAssignment { group: d["TargetCollectionID"].as_str()?.to_string(), fields, since })
                    })
                    .collect();
                let mut relationships: Vec<ObservedRelationship> = app
                    .as_ref()
                    .map(|a| {
                        a.supersedes
                            .iter()
                            .filter_map(|s| {
                                let target = by_model.get(&format!("{}/{}", s.scope, s.application))?;
                                Some(ObservedRelationship {
                                    kind: "supersedence:replace".into(),
                                    target: target.clone(),
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                relationships.sort();
                if let Some(a) = app {
                    known.insert(ci.clone(), a.clone());
                }
                objects.push(ObservedObject {
                    id: ci.clone(),
                    display_name: entry["LocalizedDisplayName"].as_str().unwrap_or_default().to_string(),
                    marker,
                    fields,
                    assignments: object_assignments,
                    relationships,
                    incomplete: None,
                });
            }
        });
        if let Ok(mut k) = self.known.lock() {
            *k = known;
        }
        let mut documents = serde_json::Map::new();
        documents.insert("SMS_Application".into(), Value::Array(instances));
        documents.insert("SMS_ApplicationAssignment".into(), Value::Array(assignments));
        Ok((Observed { objects, groups: BTreeMap::new() }, Value::Object(documents)))
    }

    /// A client for the SMS Provider at `base` (the URL before `/AdminService/`), writing
    /// content to `share`.
    pub fn new(name: ObjectName, base: url::Url, share: Share) -> Result<Self, PlatformError> {
        let http = crate::http::client()
            .map_err(|reason| PlatformError::Unavailable { platform: name.clone(), cause: reason.into() })?;
        Ok(ConfigMgrClient {
            name,
            base,
            http,
            account: None,
            share,
            scripts: ScriptSigning::Unsigned,
            scope: tokio::sync::OnceCell::new(),
            known: Mutex::new(BTreeMap::new()),
            clock: crate::clock::SharedClock::default(),
            requests: super::retry::Requests::default(),
        })
    }

    /// Authenticates as `user` with `password` (never shown).
    #[must_use]
    pub fn with_account(mut self, user: String, password: String) -> Self {
        self.account = Some((user, password));
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

    /// How generated detection scripts are signed.
    #[must_use]
    pub fn with_script_signing(mut self, scripts: ScriptSigning) -> Self {
        self.scripts = scripts;
        self
    }

    fn failed(&self, operation: &str, message: impl Into<crate::vocab::Cause>) -> PlatformError {
        PlatformError::Failed { platform: self.name.clone(), operation: operation.into(), cause: message.into() }
    }

    fn url(&self, path: &str) -> Result<url::Url, PlatformError> {
        self.base.join(&format!("AdminService/wmi/{path}")).map_err(|e| PlatformError::Unavailable {
            platform: self.name.clone(),
            cause: crate::vocab::because(format!("bad URL {}AdminService/wmi/{path}", self.base), e),
        })
    }

    /// Sends an AdminService request: 2xx → body; 429/5xx/transport → Transient; 401/403 →
    /// Rejected naming the account and the role it needs; other 4xx → Rejected with the
    /// provider's OData message.
    async fn send(&self, operation: &str, req: reqwest::RequestBuilder) -> Result<Value, PlatformError> {
        if req.try_clone().is_none() {
            return self.send_once(operation, req).await;
        }
        self.requests
            .send(|| async {
                match req.try_clone() {
                    Some(attempt) => self.send_once(operation, attempt).await,
                    None => Err(self.failed(operation, "the request cannot be sent again")),
                }
            })
            .await
    }

    /// One AdminService request (see [`ConfigMgrClient::send`], which retries it).
    async fn send_once(&self, operation: &str, req: reqwest::RequestBuilder) -> Result<Value, PlatformError> {
        let req = match &self.account {
            Some((user, password)) => req.basic_auth(user, Some(password)),
            None => req,
        };
        let transient = |reason: String| PlatformError::Transient {
            platform: self.name.clone(),
            operation: operation.into(),
            reason,
            retry_after: None,
            throttled: false,
        };
        let resp = req.send().await.map_err(|e| transient(e.without_url().to_string()))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(std::time::Duration::from_secs);
        let body = resp.text().await.map_err(|e| transient(e.without_url().to_string()))?;
        if status.is_success() {
            if body.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&body)
                .map_err(|e| self.failed(operation, format!("the answer is not JSON: {e}")));
        }
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| body.chars().take(300).collect());
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(PlatformError::Transient {
                platform: self.name.clone(),
                operation: operation.into(),
                reason: format!("{status}: {message}"),
                retry_after,
                throttled: status.as_u16() == 429,
            });
        }
        let account = self.account.as_ref().map_or("the anonymous caller", |(u, _)| u.as_str());
        let message = match status.as_u16() {
            401 => format!("{message} — check auth.username ({account}) and auth.password"),
            403 => format!(
                "{message} — the account {account} needs the security role {} on this site: add it in Administration > Security > Administrative Users (a remote publisher's computer account, such as SERVER$, needs the same)",
                role_for(operation)
            ),
            _ => message,
        };
        Err(PlatformError::Rejected {
            platform: self.name.clone(),
            operation: operation.into(),
            status: status.as_u16(),
            message,
        })
    }

    /// The site's authoring scope.
    async fn scope(&self) -> Result<String, PlatformError> {
        self.scope
            .get_or_try_init(|| async {
                let v = self.send("reading the site identity", self.http.get(self.url("SMS_Identification")?)).await?;
                let id = v["value"][0]["ThisSiteID"]
                    .as_str()
                    .ok_or_else(|| self.failed("reading the site identity", "SMS_Identification has no ThisSiteID"))?;
                Ok(format!("ScopeId_{}", id.trim_matches(['{', '}'])))
            })
            .await
            .cloned()
    }

    fn remember(&self, id: &str, app: Application) {
        if let Ok(mut k) = self.known.lock() {
            k.insert(id.to_string(), app);
        }
    }

    fn known(&self, id: &str, operation: &str) -> Result<Application, PlatformError> {
        self.known.lock().ok().and_then(|k| k.get(id).cloned()).ok_or_else(|| {
            self.failed(
                operation,
                format!("application {id} was not in the site's listing; observe the platform again"),
            )
        })
    }

    /// Copies verified content to the share and checks the copy; returns the UNC folder.
    async fn upload_content(&self, o: &DesiredObject, content: &VerifiedContent) -> Result<String, PlatformError> {
        let folder =
            format!("{}/{}-{}", o.marker.product, o.marker.version, &o.marker.content_digest.to_string()[..12]);
        let dir = self.share.local.join(&folder);
        let target = dir.join(o.installer.file_name());
        let (source, expected) = (content.path().to_path_buf(), content.sha256());
        let copied = tokio::task::spawn_blocking(move || -> Result<(), String> {
            std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let partial = dir.join(".patchops-partial");
            std::fs::copy(&source, &partial).map_err(|e| format!("cannot copy to {}: {e}", partial.display()))?;
            // The share is another machine's disk: check what arrived before the site reads it.
            let actual = sha256_of(&partial).map_err(|e| format!("cannot read back {}: {e}", partial.display()))?;
            if actual != expected {
                let _ = std::fs::remove_file(&partial);
                return Err(format!("the copy on the share has SHA-256 {actual}, not {expected}; it was removed"));
            }
            std::fs::rename(&partial, &target).map_err(|e| format!("cannot rename into {}: {e}", target.display()))
        })
        .await
        .map_err(|e| self.failed("copying the content to the share", e.to_string()))?;
        copied.map_err(|e| self.failed("copying the content to the share", e))?;
        let unc = self.share.unc.trim_end_matches('\\');
        Ok(format!("{unc}\\{}\\", folder.replace('/', "\\")))
    }

    /// The application document for `o`, keeping the logical names and content of `previous`.
    async fn application_for(
        &self,
        o: &DesiredObject,
        location: String,
        previous: Option<&Application>,
        msi: Option<&crate::msi::MsiInfo>,
    ) -> Result<Application, PlatformError> {
        let building = "building the application";
        let field = |k: &str| o.fields.get(k).unwrap_or_default().to_string();
        let i = &o.installer;
        let scope = self.scope().await?;
        let names =
            format!("configmgr/{}/{}/{}/{}", self.name, o.marker.product, o.marker.version, o.marker.content_digest);
        let logical =
            |kind: &str| format!("{kind}_{}", uuid::Uuid::new_v5(&NAMES, format!("{names}/{kind}").as_bytes()));
        let technology = if i.installer_type == InstallerType::Msi { Technology::Msi } else { Technology::Script };
        if i.installer_type == InstallerType::Msix {
            return Err(
                self.failed(building, format!("{} is an MSIX package: deploy it through Intune", i.file_name()))
            );
        }
        // An MSI is detected by what Windows Installer reports: its own ProductCode and
        // ProductVersion (read from the MSI), not the catalog's marketing version. A revision
        // keeps the version the application was created with (its content is the same).
        let kept_version = previous.and_then(|p| match &p.detection {
            Detection::Msi { product_version, .. } => product_version.clone(),
            Detection::Script { .. } => None,
        });
        let msi_detection = |code: &String| Detection::Msi {
            product_code: code.clone(),
            product_version: msi.map(|m| m.product_version.clone()).or_else(|| kept_version.clone()),
        };
        let detection = match (&i.msi_product_code, &i.detection) {
            (Some(code), _) if technology == Technology::Msi => msi_detection(code),
            (_, Some(d)) => {
                let version: crate::model::Version = o.marker.version.parse().map_err(|_| {
                    self.failed(building, format!("the marker's version {:?} is not a version", o.marker.version))
                })?;
                let script = crate::script::detection(o.marker.product.as_str(), &version, d);
                let delivered =
                    self.scripts.deliver(script).await.map_err(|e| self.failed("signing the detection script", e))?;
                Detection::Script { body: delivered.text().to_string() }
            }
            (Some(code), None) => Detection::Msi { product_code: code.clone(), product_version: None },
            (None, None) => return Err(self.failed(building, o.undetectable("clients"))),
        };
        Ok(Application {
            scope: previous.map_or(scope, |p| p.scope.clone()),
            application: previous.map_or_else(|| logical("Application"), |p| p.application.clone()),
            deployment_type: previous.map_or_else(|| logical("DeploymentType"), |p| p.deployment_type.clone()),
            content_id: previous.map_or_else(|| logical("Content"), |p| p.content_id.clone()),
            // A revision's version is set by `revise`.
            version: previous.map_or(1, |p| p.version),
            title: field("displayName"),
            publisher: field("publisher"),
            software_version: field("version"),
            description: format!("{}\n\n{}", o.description, o.marker.note()),
            technology,
            location,
            file: (i.file_name().to_string(), i.size),
            install: field("installCommand"),
            uninstall: field("uninstallCommand"),
            detection,
            post_install: previous.map_or(PostInstall::BasedOnExitCode, |p| p.post_install),
            execute_time: field("configmgr.estimatedRuntimeMinutes").parse().unwrap_or(0),
            success_codes: i.success_codes.clone(),
            supersedes: previous.map(|p| p.supersedes.clone()).unwrap_or_default(),
        })
    }

    /// Finds the application with `app`'s logical name, retired or not; when there is one,
    /// reinstates it if it was retired, makes `app` its next revision and returns its id.
    async fn reinstate(&self, app: &Application) -> Result<Option<String>, PlatformError> {
        let operation = "reinstating the application";
        let model = format!("{}/{}", app.scope, app.application);
        let mut url = self.url("SMS_Application")?;
        url.query_pairs_mut()
            .append_pair("$filter", &format!("ModelName eq '{}' and IsLatest eq true", model.replace('\'', "''")))
            .append_pair("$select", "CI_ID,ModelName,IsExpired");
        let found = self.send(operation, self.http.get(url)).await?;
        let Some(entry) = found["value"].as_array().and_then(|l| l.first()) else { return Ok(None) };
        let id = entry["CI_ID"]
            .as_u64()
            .map(|n| n.to_string())
            .ok_or_else(|| self.failed(operation, format!("the application {model} has no CI_ID")))?;
        if entry["IsExpired"].as_bool() == Some(true) {
            let url = self.url(&format!("SMS_Application({id})/AdminService.SetIsExpired"))?;
            self.send(operation, self.http.post(url).json(&json!({ "Expired": false }))).await?;
        }
        let one = self.send(operation, self.http.get(self.url(&format!("SMS_Application({id})"))?)).await?;
        let current = Application::parse(one["value"][0]["SDMPackageXML"].as_str().unwrap_or_default())
            .map_err(|e| self.failed(operation, format!("application {id}'s SDMPackageXML: {e}")))?;
        self.remember(&id, current);
        self.revise(&id, app.clone(), operation).await?;
        tracing::info!(platform = %self.name, application = %id, %model, "reinstated and revised an existing application instead of creating a second one");
        Ok(Some(id))
    }

    /// A new revision of application `id` from `app` (its SDM version the next one).
    async fn revise(&self, id: &str, mut app: Application, operation: &str) -> Result<(), PlatformError> {
        app.version = self.known(id, operation)?.version + 1;
        let url = self.url(&format!("SMS_Application({id})"))?;
        self.send(operation, self.http.patch(url).json(&json!({ "SDMPackageXML": app.to_xml() }))).await?;
        self.remember(id, app);
        Ok(())
    }

    /// The deployments of the application whose model name is `model`.
    async fn deployments(&self, model: &str) -> Result<Vec<Value>, PlatformError> {
        let mut url = self.url("SMS_ApplicationAssignment")?;
        url.query_pairs_mut().append_pair("$filter", &format!("ApplicationName eq '{}'", model.replace('\'', "''")));
        let v = self.send("listing deployments", self.http.get(url)).await?;
        Ok(v["value"].as_array().cloned().unwrap_or_default())
    }

    /// The security roles of the account (doctor).
    pub async fn account_roles(&self) -> Result<(String, Vec<String>), PlatformError> {
        let account = self.account.as_ref().map(|(u, _)| u.clone()).unwrap_or_default();
        let mut url = self.url("SMS_Admin")?;
        url.query_pairs_mut().append_pair("$filter", &format!("LogonName eq '{}'", account.replace('\'', "''")));
        let v = self.send("reading the account's security roles", self.http.get(url)).await?;
        let roles = v["value"][0]["RoleNames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect();
        Ok((account, roles))
    }
}

fn sha256_of(path: &std::path::Path) -> std::io::Result<crate::catalog::Sha256> {
    use sha2::Digest;
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(crate::catalog::Sha256::from_bytes(h.finalize().into()));
        }
        h.update(&buf[..n]);
    }
}

/// The planner's fields of an application patchops published.
fn fields_of(a: &Application, marker: &TrackingMarker) -> FieldMap {
    let shared = crate::intern::shared;
    let mut f = FieldMap::default();
    let mut put = |k: &str, v: &str| f.insert(shared(k), shared(v));
    put("displayName", &a.title);
    put("publisher", &a.publisher);
    put("version", &a.software_version);
    let ext = a.file.0.rsplit('.').next().unwrap_or_default().to_ascii_lowercase();
    let installer_type = match (a.technology, ext.as_str()) {
        (Technology::Msi, _) => "msi",
        (_, "msp") => "msp",
        (_, "msix") => "msix",
        _ => "exe",
    };
    put("installerType", installer_type);
    put("sha256", &marker.content_digest.to_string());
    put("size", &a.file.1.to_string());
    put("installCommand", &a.install);
    if !a.uninstall.is_empty() {
        put("uninstallCommand", &a.uninstall);
    }
    if let Detection::Msi { product_code, .. } = &a.detection {
        put("msiProductCode", product_code);
    }
    put("configmgr.deliverAs", "application");
    if a.execute_time > 0 {
        put("configmgr.estimatedRuntimeMinutes", &a.execute_time.to_string());
    }
    f
}

#[async_trait::async_trait]
impl PlatformClient for ConfigMgrClient {
    fn name(&self) -> &ObjectName {
        &self.name
    }

    fn platform_type(&self) -> PlatformType {
        PlatformType::Configmgr
    }

    async fn observe(&self) -> Result<Observed, PlatformError> {
        Ok(self.observe_listing().await?.0)
    }

    async fn observe_documents(&self) -> Result<(Observed, Value), PlatformError> {
        let (observed, mut documents) = self.observe_listing().await?;
        // The site's identity too: its applications are authored in its scope.
        let site = self.send("reading the site identity", self.http.get(self.url("SMS_Identification")?)).await?;
        documents["SMS_Identification"] = site["value"].clone();
        Ok((observed, documents))
    }

    async fn create(&self, object: &DesiredObject, content: &VerifiedContent) -> Result<String, PlatformError> {
        object.check_content(content).map_err(|e| self.failed("creating the application", e))?;
        if object.fields.get("configmgr.deliverAs") == Some("softwareUpdate") {
            return Err(self.failed(
                "creating the application",
                "configmgr.deliverAs: softwareUpdate is published through WSUS: add a target on the WSUS Platform that is this site's software update point (configmgr.softwareUpdatePoint); the site syncs third-party updates from there",
            ));
        }
        let location = self.upload_content(object, content).await?;
        crate::failpoint::hit("configmgr-after-copy");
        let msi = object.msi_facts(content).await.map_err(|e| self.failed("reading the MSI", e))?;
        let app = self.application_for(object, location, None, msi.as_ref()).await?;
        // The logical name is fixed per (platform, product, version, content): an application
        // with it exists when a version comes back (A → B → A: A was retired) or when a run died
        // after the site created it. The site refuses a second one, so that one is reinstated
        // (SetIsExpired false, as the console's Reinstate does) and revised instead.
        if let Some(id) = self.reinstate(&app).await? {
            return Ok(id);
        }
        let created = self
            .send(
                "creating the application",
                self.http.post(self.url("SMS_Application")?).json(&json!({ "SDMPackageXML": app.to_xml() })),
            )
            .await?;
        let id = created["CI_ID"]
            .as_u64()
            .or_else(|| created["value"][0]["CI_ID"].as_u64())
            .map(|n| n.to_string())
            .ok_or_else(|| self.failed("creating the application", "the answer has no CI_ID"))?;
        self.remember(&id, app);
        Ok(id)
    }

    async fn reconfigure(&self, id: &str, object: &DesiredObject) -> Result<(), PlatformError> {
        let current = self.known(id, "revising the application")?;
        let app = self.application_for(object, current.location.clone(), Some(&current), None).await?;
        self.revise(id, app, "revising the application").await
    }

    async fn set_assignments(&self, id: &str, assignments: &[DesiredAssignment]) -> Result<(), PlatformError> {
        let mut app = self.known(id, "deploying the application")?;
        if let Some(restart) = assignments.iter().find_map(|a| a.fields.get("restart")) {
            let wanted = PostInstall::from_restart(restart);
            if app.post_install != wanted {
                app.post_install = wanted;
                self.revise(id, app.clone(), "revising the application's restart behaviour").await?;
            }
        }
        let model = format!("{}/{}", app.scope, app.application);
        let current = self.deployments(&model).await?;
        let now = self.clock.now();
        let fmt = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut wanted: Vec<Value> = Vec::new();
        for a in assignments {
            let offer = if a.fields.get("intent") == Some("available") { 2 } else { 0 };
            let deadline = a
                .fields
                .get("deadline")
                .and_then(|d| humantime::parse_duration(d).ok())
                .and_then(|d| chrono::Duration::from_std(d).ok());
            let mut body = json!({
                "AssignmentName": format!("{} - {}", app.title, a.group),
                "ApplicationName": model,
                "AssignedCIs": [id.parse::<u64>().unwrap_or_default()],
                "TargetCollectionID": a.group,
                "OfferTypeID": offer,
                "DesiredConfigType": 1,
                "StartTime": fmt(now),
            });
            if let Some(due) = deadline.and_then(|d| now.checked_add_signed(d)) {
                body["EnforcementDeadline"] = json!(fmt(due));
            }
            wanted.push(body);
        }
        // Keep deployments that already match; remove the others; create what is missing.
        let same = |d: &Value, w: &Value| {
            d["TargetCollectionID"] == w["TargetCollectionID"]
                && d["OfferTypeID"] == w["OfferTypeID"]
                && d["EnforcementDeadline"].is_null() == w["EnforcementDeadline"].is_null()
                && match (d["StartTime"].as_str(), d["EnforcementDeadline"].as_str(), w["EnforcementDeadline"].as_str())
                {
                    (Some(s), Some(e), Some(we)) => {
                        let p = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
                        match (p(s), p(e), p(we), w["StartTime"].as_str().and_then(p)) {
                            (Some(s), Some(e), Some(we), Some(ws)) => e - s == we - ws,
                            _ => false,
                        }
                    }
                    _ => true,
                }
        };
        for d in &current {
            if !wanted.iter().any(|w| same(d, w)) {
                let Some(aid) = d["AssignmentID"].as_u64() else { continue };
                let url = self.url(&format!("SMS_ApplicationAssignment({aid})"))?;
                self.send("removing a deployment", self.http.delete(url)).await?;
            }
        }
        for w in &wanted {
            if !current.iter().any(|d| same(d, w)) {
                self.send("creating a deployment", self.http.post(self.url("SMS_ApplicationAssignment")?).json(w))
                    .await?;
            }
        }
        Ok(())
    }

    async fn delete(&self, id: &str) -> Result<(), PlatformError> {
        let app = match self.known(id, "retiring the application") {
            Ok(a) => a,
            // Not in the listing: already retired or deleted.
            Err(_) => return Ok(()),
        };
        let model = format!("{}/{}", app.scope, app.application);
        for d in self.deployments(&model).await? {
            if let Some(aid) = d["AssignmentID"].as_u64() {
                let url = self.url(&format!("SMS_ApplicationAssignment({aid})"))?;
                self.send("removing a deployment", self.http.delete(url)).await?;
            }
        }
        let url = self.url(&format!("SMS_Application({id})/AdminService.SetIsExpired"))?;
        self.send("retiring the application", self.http.post(url).json(&json!({ "Expired": true }))).await?;
        if let Ok(mut k) = self.known.lock() {
            k.remove(id);
        }
        Ok(())
    }

    async fn supersede(&self, new: &str, old: &str) -> Result<(), PlatformError> {
        let mut app = self.known(new, "setting supersedence")?;
        let previous = self.known(old, "setting supersedence")?;
        let reference = sdm::DeploymentTypeRef {
            scope: previous.scope.clone(),
            application: previous.application.clone(),
            deployment_type: previous.deployment_type.clone(),
        };
        if app.supersedes.contains(&reference) {
            return Ok(());
        }
        app.supersedes.push(reference);
        self.revise(new, app, "setting supersedence").await
    }
}
