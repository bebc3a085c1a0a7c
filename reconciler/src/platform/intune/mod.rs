//! The Intune client: Win32 apps through Microsoft Graph (beta).
//!
//! patchops's [`TrackingMarker`] lives in the app's `notes`, on a line starting `patchops:`
//! followed by the marker as JSON. Field mapping between the planner's names and Graph:
//!
//! | planner field | Graph |
//! |---|---|
//! | displayName, publisher | displayName, publisher |
//! | version | displayVersion |
//! | installCommand / uninstallCommand | installCommandLine / uninstallCommandLine |
//! | size | size |
//! | installerType | `msi` when msiInformation is set, else the setup file's extension |
//! | msiProductCode | msiInformation.productCode |
//! | sha256 | the marker's contentDigest |
//! | intune.installExperience | installExperience.runAsAccount |
//! | intune.allowAvailableUninstall | allowAvailableUninstall |
//! | intune.updateOnly | a requirement rule named `patchops: update only …` |
//! | assignment.intent | assignment intent |
//! | assignment.restart | installExperience.deviceRestartBehavior (one per app in Intune) |
//! | assignment.deadline | settings.installTimeSettings deadline − start |
//!
//! Publishing uploads the installer as a `.intunewin` ([`intunewin`]): content version, content
//! file, blocks to the SAS URI (renewed when it expires), block list, commit with the package's
//! encryption info, then `committedContentVersion`. A half-created app is deleted when any step
//! fails. Detection is by MSI product code, or by a generated PowerShell script
//! ([`crate::script`]) from the catalog's detection data, signed when the Platform has a
//! script-signing certificate; `intune.updateOnly` adds a requirement script. Observe lists the
//! apps with their assignments and relationships in one paged listing.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

pub mod auth;
pub mod intunewin;

use super::{
    DesiredAssignment, DesiredObject, FieldMap, Observed, ObservedAssignment, ObservedObject, ObservedRelationship,
    PlatformClient, PlatformError, TrackingMarker,
};
use crate::content::VerifiedContent;
use crate::model::{InstallerType, ObjectName, PlatformType};

const APPS: &str = "beta/deviceAppManagement/mobileApps";
/// The directory's groups (Graph v1.0 "List groups").
const GROUPS: &str = "v1.0/groups";
/// How many managed apps have their assignments and relationships read at once.
const OBSERVE_CONCURRENCY: usize = 8;
/// A collection longer than this many pages is refused (a service that pages forever).
const MAX_PAGES: usize = 100_000;

/// Bytes per uploaded block (Azure Blob allows up to 100 MB; tools commonly use a few MiB).
const BLOCK_SIZE: usize = 6 * 1024 * 1024;

/// Renewals of an expired SAS URI tried for one request before giving up.
const MAX_RENEWALS: u32 = 3;

/// How long to wait for an asynchronous upload or commit state.
const STATE_TIMEOUT: Duration = Duration::from_secs(600);

/// A Graph client for one Intune tenant.
#[derive(Debug, Clone)]
pub struct IntuneClient {
    name: ObjectName,
    base: url::Url,
    http: reqwest::Client,
    block_size: usize,
    auth: Option<std::sync::Arc<auth::TokenSource>>,
    scripts: ScriptSigning,
    clock: crate::clock::SharedClock,
    requests: super::retry::Requests,
    /// Paces Graph writes below the tenant's limits; none: unpaced.
    budget: Option<std::sync::Arc<super::budget::WriteBudget>>,
}

pub use super::{Delivered, ScriptSigning};

/// `displayName` of the update-only requirement rule (how observe recognises it).
const UPDATE_ONLY_RULE: &str = "patchops: update only (a version is installed)";

/// An app's assignments and relationships, as listed.
type AppDetails = (Vec<Value>, Vec<Value>);

impl IntuneClient {
    /// A client for the Graph service at `base` (such as `https://graph.microsoft.com/`).
    pub fn new(name: ObjectName, base: url::Url) -> Result<IntuneClient, PlatformError> {
        let http = crate::http::client()
            .map_err(|reason| PlatformError::Unavailable { platform: name.clone(), cause: reason.into() })?;
        Ok(IntuneClient {
            name,
            base,
            http,
            block_size: BLOCK_SIZE,
            auth: None,
            scripts: ScriptSigning::Unsigned,
            clock: crate::clock::SharedClock::default(),
            requests: super::retry::Requests::default(),
            budget: None,
        })
    }

    /// Paces Graph writes (POST, PATCH, PUT, DELETE) through `budget`, before each attempt:
    /// a retried write counts again, as it does for the service.
    #[must_use]
    pub fn with_write_budget(mut self, budget: std::sync::Arc<super::budget::WriteBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Takes the time (deadlines, creation times, certificate checks) from `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: crate::clock::SharedClock) -> Self {
        self.clock = clock;
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

    /// How generated scripts are delivered (unsigned by default).
    #[must_use]
    pub fn with_script_signing(mut self, scripts: ScriptSigning) -> Self {
        self.scripts = scripts;
        self
    }

    /// Authenticates every Graph request with tokens from `tokens`.
    #[must_use]
    pub fn with_auth(mut self, tokens: auth::TokenSource) -> Self {
        self.auth = Some(std::sync::Arc::new(tokens));
        self
    }

    /// Uploads in blocks of `bytes` (at least 1 KiB) instead of 6 MiB.
    #[must_use]
    pub fn with_block_size(mut self, bytes: usize) -> Self {
        self.block_size = bytes.max(1024);
        self
    }

    fn url(&self, path: &str) -> Result<url::Url, PlatformError> {
        self.base.join(path).map_err(|e| PlatformError::Unavailable {
            platform: self.name.clone(),
            cause: crate::vocab::because(format!("bad URL {}{path}", self.base), e),
        })
    }

    /// Every item of a Graph collection: the first page at `url`, then each `@odata.nextLink`.
    async fn list_all(&self, operation: &str, url: url::Url) -> Result<Vec<Value>, PlatformError> {
        Ok(self.list_all_of(operation, url, false).await?.unwrap_or_default())
    }

    /// [`IntuneClient::list_all`] of a collection whose owner may be gone (`None` on 404: an
    /// app deleted between listing the apps and reading its assignments).
    async fn list_all_of(
        &self,
        operation: &str,
        url: url::Url,
        owner_may_be_gone: bool,
    ) -> Result<Option<Vec<Value>>, PlatformError> {
        let mut items = Vec::new();
        let mut next = Some(url);
        let mut pages = 0usize;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(self.failed(operation, format!("more than {MAX_PAGES} pages; the service keeps paging")));
            }
            let Some(mut page) = self.send(operation, self.http.get(url), owner_may_be_gone).await? else {
                if owner_may_be_gone {
                    return Ok(None);
                }
                break;
            };
            if let Some(Value::Array(v)) = page.get_mut("value").map(Value::take) {
                items.extend(v);
            }
            next = match page["@odata.nextLink"].as_str() {
                Some(link) => Some(url::Url::parse(link).map_err(|e| PlatformError::Unavailable {
                    platform: self.name.clone(),
                    cause: crate::vocab::because(format!("bad @odata.nextLink {link}"), e),
                })?),
                None => None,
            };
        }
        Ok(Some(items))
    }

    /// Sends a Graph request through the retry layer ([`super::retry`]): throttling (429),
    /// server errors and dropped connections are retried with backoff that honours
    /// Retry-After, so that one throttled step does not undo a multi-step operation such as an
    /// upload. A request whose body cannot be replayed is sent once.
    async fn send(
        &self,
        operation: &str,
        req: reqwest::RequestBuilder,
        allow_404: bool,
    ) -> Result<Option<Value>, PlatformError> {
        if req.try_clone().is_none() {
            return self.send_once(operation, req, allow_404).await;
        }
        self.requests
            .send(|| async {
                match req.try_clone() {
                    Some(attempt) => self.send_once(operation, attempt, allow_404).await,
                    None => Err(self.failed(operation, "the request cannot be sent again")),
                }
            })
            .await
    }

    /// Sends a request once and maps Graph's answers: 2xx → body, 429/5xx/transport →
    /// Transient (with Retry-After), other 4xx → Rejected with Graph's error message.
    async fn send_once(
        &self,
        operation: &str,
        req: reqwest::RequestBuilder,
        allow_404: bool,
    ) -> Result<Option<Value>, PlatformError> {
        let transient = |reason: String, retry_after| PlatformError::Transient {
            platform: self.name.clone(),
            operation: operation.to_string(),
            reason,
            retry_after,
            throttled: false,
        };
        let retry = req.try_clone();
        if let Some(budget) = &self.budget {
            let is_write = req
                .try_clone()
                .and_then(|r| r.build().ok())
                .is_none_or(|r| r.method() != reqwest::Method::GET && r.method() != reqwest::Method::HEAD);
            if is_write {
                budget.acquire().await;
            }
        }
        let resp =
            self.authorized(req).await?.send().await.map_err(|e| transient(e.without_url().to_string(), None))?;
        // An expired or revoked token: get a fresh one and try once more.
        let resp = match (resp.status(), retry, &self.auth) {
            (reqwest::StatusCode::UNAUTHORIZED, Some(again), Some(tokens)) => {
                tokens.invalidate().await;
                self.authorized(again).await?.send().await.map_err(|e| transient(e.without_url().to_string(), None))?
            }
            _ => resp,
        };
        let status = resp.status();
        if status.is_success() {
            if status == reqwest::StatusCode::NO_CONTENT {
                return Ok(None);
            }
            let body = resp.bytes().await.map_err(|e| transient(e.without_url().to_string(), None))?;
            if body.is_empty() {
                return Ok(None);
            }
            return serde_json::from_slice(&body).map(Some).map_err(|e| PlatformError::Rejected {
                platform: self.name.clone(),
                operation: operation.to_string(),
                status: status.as_u16(),
                message: format!("the response is not JSON: {e}"),
            });
        }
        if allow_404 && status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| body.chars().take(300).collect());
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(PlatformError::Transient {
                platform: self.name.clone(),
                operation: operation.to_string(),
                reason: format!("{status}: {message}"),
                retry_after,
                throttled: status == reqwest::StatusCode::TOO_MANY_REQUESTS,
            });
        }
        Err(PlatformError::Rejected {
            platform: self.name.clone(),
            operation: operation.to_string(),
            status: status.as_u16(),
            message,
        })
    }

    async fn authorized(&self, req: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder, PlatformError> {
        match &self.auth {
            Some(tokens) => Ok(req.bearer_auth(tokens.bearer().await?)),
            None => Ok(req),
        }
    }

    /// The app's properties except `rules` (see [`IntuneClient::rules`]).
    /// The app's body. `msi_version` is the MSI's own `ProductVersion` (what Windows Installer
    /// reports on a device), for `msiInformation` and the product-code detection rule.
    fn app_body(&self, o: &DesiredObject, msi_version: Option<&str>) -> Result<Value, PlatformError> {
        let f = &o.fields;
        let get = |k: &str| f.get(k).unwrap_or_default().to_string();
        let i = &o.installer;
        let setup = i.file_name();
        let arch = match i.architecture {
            crate::model::Architecture::X64 => "x64",
            crate::model::Architecture::X86 => "x86",
            crate::model::Architecture::Arm64 => "arm64",
            crate::model::Architecture::Neutral => "x86,x64,arm64",
        };
        let mut body = json!({
            "@odata.type": "#microsoft.graph.win32LobApp",
            "displayName": get("displayName"),
            "description": o.description,
            "publisher": get("publisher"),
            "displayVersion": get("version"),
            "fileName": format!("{setup}.intunewin"),
            "setupFilePath": setup,
            "installCommandLine": get("installCommand"),
            "uninstallCommandLine": get("uninstallCommand"),
            "size": i.size,
            "applicableArchitectures": arch,
            "minimumSupportedWindowsRelease": "Windows10_22H2",
            "allowAvailableUninstall": get("intune.allowAvailableUninstall") == "true",
            "installExperience": {
                "@odata.type": "#microsoft.graph.win32LobAppInstallExperience",
                "runAsAccount": f.get("intune.installExperience").unwrap_or("system"),
                "deviceRestartBehavior": "basedOnReturnCode",
                "maxRunTimeInMinutes": 60,
            },
            "returnCodes": [
                { "@odata.type": "#microsoft.graph.win32LobAppReturnCode", "returnCode": 0, "type": "success" },
                { "@odata.type": "#microsoft.graph.win32LobAppReturnCode", "returnCode": 1707, "type": "success" },
                { "@odata.type": "#microsoft.graph.win32LobAppReturnCode", "returnCode": 3010, "type": "softReboot" },
                { "@odata.type": "#microsoft.graph.win32LobAppReturnCode", "returnCode": 1641, "type": "hardReboot" },
                { "@odata.type": "#microsoft.graph.win32LobAppReturnCode", "returnCode": 1618, "type": "retry" },
            ],
            "notes": o.marker.note(),
        });
        if i.installer_type == InstallerType::Msi {
            body["msiInformation"] = json!({
                "productCode": i.msi_product_code,
                "productVersion": msi_version.map_or_else(|| get("version"), str::to_string),
                "productName": get("displayName"),
                "publisher": get("publisher"),
                "packageType": "perMachine",
                "requiresReboot": false,
            });
        }
        Ok(body)
    }

    /// Detection and requirement rules. MSI installers are detected by product code; others
    /// by a generated detection script from the catalog's detection data. `intune.updateOnly`
    /// adds a requirement script: only devices with some version installed get the app.
    /// Scripts are signed when the platform signs ([`ScriptSigning`]).
    async fn rules(&self, o: &DesiredObject, msi_version: Option<&str>) -> Result<Vec<Value>, PlatformError> {
        let i = &o.installer;
        let product = o.marker.product.as_str();
        let version: crate::model::Version = o.marker.version.parse().map_err(|_| {
            self.failed(
                "building detection rules",
                format!("the marker's version {:?} is not a version", o.marker.version),
            )
        })?;
        let mut rules = Vec::new();
        match (&i.msi_product_code, &i.detection) {
            (Some(code), _) => rules.push(json!({
                "@odata.type": "#microsoft.graph.win32LobAppProductCodeRule",
                "ruleType": "detection",
                "productCode": code,
                "productVersionOperator": "greaterThanOrEqual",
                // What a device reports is the MSI's ProductVersion, not the catalog's version
                // (Chrome's catalog says 131.0.6778.86, its MSI 131.0.6778).
                "productVersion": msi_version.unwrap_or_else(|| o.fields.get("version").unwrap_or_default()),
            })),
            (None, Some(d)) => {
                let (content, enforce) = self.deliver(crate::script::detection(product, &version, d)).await?.content();
                rules.push(json!({
                    "@odata.type": "#microsoft.graph.win32LobAppPowerShellScriptRule",
                    "ruleType": "detection",
                    "enforceSignatureCheck": enforce,
                    "runAs32Bit": false,
                    "scriptContent": content,
                    "operationType": "notConfigured",
                    "operator": "notConfigured",
                }));
            }
            (None, None) => return Err(self.failed("building detection rules", o.undetectable("devices"))),
        }
        if o.fields.get("intune.updateOnly") == Some("true") {
            let Some(d) = &i.detection else {
                return Err(self.failed(
                    "building requirement rules",
                    format!(
                        "intune.updateOnly needs the catalog's detection data (file or registry) for {product} to tell \
                         whether some version is installed; add `detection` to the catalog's installer or drop updateOnly"
                    ),
                ));
            };
            let (content, enforce) = self.deliver(crate::script::presence(product, d)).await?.content();
            rules.push(json!({
                "@odata.type": "#microsoft.graph.win32LobAppPowerShellScriptRule",
                "ruleType": "requirement",
                "displayName": UPDATE_ONLY_RULE,
                "enforceSignatureCheck": enforce,
                "runAs32Bit": false,
                "runAsAccount": "system",
                "scriptContent": content,
                "operationType": "string",
                "operator": "equal",
                "comparisonValue": crate::script::PRESENT,
            }));
        }
        Ok(rules)
    }

    /// Signs a generated script when the platform signs.
    async fn deliver(
        &self,
        script: crate::script::Script<crate::script::Unsigned>,
    ) -> Result<Delivered, PlatformError> {
        self.scripts.deliver(script).await.map_err(|e| self.failed("signing a generated script", e))
    }
}

impl IntuneClient {
    /// Every Win32 app of the tenant as Graph documents it; each app patchops manages with its
    /// `assignments` and `relationships` read into it. Apps deleted while being read are left
    /// out.
    async fn documents(&self) -> Result<Vec<Value>, PlatformError> {
        // The list is read without `$expand`: "Listing mobile apps with $expand=assignments has
        // been deprecated. Instead get the list of apps without the $expand query on
        // assignments. Then, perform the expansion on individual applications." (mobileApp
        // resource type, Graph beta:
        // https://learn.microsoft.com/graph/api/resources/intune-apps-mobileapp?view=graph-rest-beta).
        // Each patchops-managed app's assignments and relationships are then read with the
        // documented list calls (`GET mobileApps/{id}/assignments`, "List
        // mobileAppAssignments"; `GET mobileApps/{id}/relationships`, "List
        // mobileAppRelationships"), following `@odata.nextLink` on every list. Apps patchops
        // does not manage are never changed, so their assignments are not read.
        let mut url = self.url(APPS)?;
        url.query_pairs_mut().append_pair("$filter", "isof('microsoft.graph.win32LobApp')");
        let mut apps = self.list_all("listing mobileApps", url).await?;
        let managed: Vec<usize> = (0..apps.len()).filter(|&i| marker_of(&apps[i]).is_some()).collect();
        let ids: Vec<String> =
            managed.iter().map(|&i| apps[i]["id"].as_str().unwrap_or_default().to_string()).collect();
        let reads = ids.into_iter().map(|id| -> futures::future::BoxFuture<'_, _> {
            Box::pin(async move {
                let assignments = self.url(&format!("{APPS}/{id}/assignments"))?;
                let relationships = self.url(&format!("{APPS}/{id}/relationships"))?;
                // An app deleted since the list was read (a 404, confirmed by reading the app
                // itself) is gone, not an error.
                let a = self.list_all_of("listing the app's assignments", assignments, true).await?;
                let r = match a {
                    Some(_) => self.list_all_of("listing the app's relationships", relationships, true).await?,
                    None => None,
                };
                match (a, r) {
                    (Some(a), Some(r)) => Ok::<_, PlatformError>(Some((a, r))),
                    _ => {
                        let app = self.url(&format!("{APPS}/{id}"))?;
                        match self.send("reading the app", self.http.get(app), true).await? {
                            None => Ok(None),
                            Some(_) => {
                                Err(self.failed("listing the app's assignments", "the service answered nothing"))
                            }
                        }
                    }
                }
            })
        });
        // A few apps at a time: the tenant's read budget is shared with every other tool.
        let read: Vec<Result<Option<AppDetails>, PlatformError>> = futures::StreamExt::collect(
            futures::StreamExt::buffered(futures::stream::iter(reads), OBSERVE_CONCURRENCY),
        )
        .await;
        let mut gone = vec![false; apps.len()];
        for (&i, r) in managed.iter().zip(read) {
            match r? {
                Some((a, r)) => {
                    apps[i]["assignments"] = Value::Array(a);
                    apps[i]["relationships"] = Value::Array(r);
                }
                None => gone[i] = true,
            }
        }
        Ok(apps.into_iter().zip(gone).filter(|(_, g)| !*g).map(|(app, _)| app).collect())
    }

    /// The relationships `app` points from (Graph lists the other direction too, read-only),
    /// as updateRelationships takes them.
    async fn own_relationships(&self, app: &str) -> Result<Vec<Value>, PlatformError> {
        let url = self.url(&format!("{APPS}/{app}/relationships"))?;
        let listed = self.list_all("reading the app's relationships", url).await?;
        Ok(listed
            .iter()
            .filter(|r| r["targetType"] != "parent")
            .map(|r| {
                let mut kept = json!({ "@odata.type": r["@odata.type"], "targetId": r["targetId"] });
                for k in ["supersedenceType", "dependencyType"] {
                    if !r[k].is_null() {
                        kept[k] = r[k].clone();
                    }
                }
                kept
            })
            .collect())
    }

    /// Removes `app`'s relationship to `target`, keeping its others.
    async fn drop_relationship(&self, app: &str, target: &str) -> Result<(), PlatformError> {
        let mut relationships = self.own_relationships(app).await?;
        relationships.retain(|r| r["targetId"] != target);
        let url = self.url(&format!("{APPS}/{app}/updateRelationships"))?;
        self.send(
            "removing a relationship",
            self.http.post(url).json(&json!({ "relationships": relationships })),
            false,
        )
        .await?;
        Ok(())
    }

    fn failed(&self, operation: &str, message: impl Into<crate::vocab::Cause>) -> PlatformError {
        PlatformError::Failed { platform: self.name.clone(), operation: operation.into(), cause: message.into() }
    }

    /// Packs the content (with the MSI's facts already read, for Detection.xml) and uploads it
    /// as the app's first committed content version.
    async fn upload(
        &self,
        id: &str,
        object: &DesiredObject,
        content: &VerifiedContent,
        msi: Option<crate::msi::MsiInfo>,
    ) -> Result<(), PlatformError> {
        let setup = object.installer.file_name().to_string();
        let dir = tempfile::tempdir().map_err(|e| self.failed("packaging", e.to_string()))?;
        let package = dir.path().join(format!("{setup}.intunewin"));
        let source = content.path().to_path_buf();
        let (setup_name, out) = (setup.clone(), package.clone());
        let packed = tokio::task::spawn_blocking(move || {
            intunewin::pack(&source, &setup_name, &out, msi).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| self.failed("packaging", e.to_string()))?
        .map_err(|e| self.failed("packaging", e))?;

        let versions = format!("{APPS}/{id}/microsoft.graph.win32LobApp/contentVersions");
        let version = self
            .send("creating a content version", self.http.post(self.url(&versions)?).json(&json!({})), false)
            .await?
            .unwrap_or_default();
        let v = version["id"].as_str().ok_or_else(|| self.failed("creating a content version", "no id"))?.to_string();
        let files = format!("{versions}/{v}/files");
        let file = self
            .send(
                "creating the content file",
                self.http.post(self.url(&files)?).json(&json!({
                    "@odata.type": "#microsoft.graph.mobileAppContentFile",
                    "name": format!("{setup}.intunewin"),
                    "size": packed.unencrypted_size,
                    "sizeEncrypted": packed.encrypted_size,
                    "manifest": null,
                    "isDependency": false,
                })),
                false,
            )
            .await?
            .unwrap_or_default();
        let fid = file["id"].as_str().ok_or_else(|| self.failed("creating the content file", "no id"))?.to_string();
        let file_url = format!("{files}/{fid}");
        let ready = self.wait_for(&file_url, "azureStorageUriRequestSuccess", "azureStorageUriRequest").await?;
        let mut sas = ready["azureStorageUri"].as_str().unwrap_or_default().to_string();

        // Blocks, read from the package's encrypted entry: memory stays at one block.
        let pkg = package.clone();
        let block_size = self.block_size;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, String>>(2);
        let reader = tokio::task::spawn_blocking(move || {
            let run = || -> Result<(), String> {
                let file = std::fs::File::open(&pkg).map_err(|e| e.to_string())?;
                let mut zip = zip::ZipArchive::new(file).map_err(|e| e.to_string())?;
                let mut entry = zip.by_name(intunewin::CONTENT_ENTRY).map_err(|e| e.to_string())?;
                loop {
                    let mut block = Vec::with_capacity(block_size);
                    use std::io::Read as _;
                    let n = std::io::Read::take(&mut entry, block_size as u64)
                        .read_to_end(&mut block)
                        .map_err(|e| e.to_string())?;
                    if n == 0 || tx.blocking_send(Ok(block)).is_err() {
                        return Ok(());
                    }
                }
            };
            if let Err(e) = run() {
                let _ = tx.blocking_send(Err(e));
            }
        });
        let mut ids = Vec::new();
        while let Some(block) = rx.recv().await {
            let block = bytes::Bytes::from(block.map_err(|e| self.failed("reading the package", e))?);
            let block_id = base64::engine::general_purpose::STANDARD.encode(format!("{:06}", ids.len()));
            let mut renewals = 0;
            loop {
                let url = format!("{sas}&comp=block&blockid={}", urlencode(&block_id));
                let req = self.http.put(&url).header("x-ms-blob-type", "BlockBlob").body(block.clone());
                match self.send_blob("uploading a block", req).await {
                    Err(BlobError::Expired) if renewals < MAX_RENEWALS => {
                        renewals += 1;
                        sas = self.renew(&file_url).await?;
                    }
                    Err(BlobError::Expired) => {
                        return Err(self.failed("uploading a block", "the SAS URI expired again right after renewal"))
                    }
                    Err(BlobError::Platform(e)) => return Err(e),
                    Ok(()) => break,
                }
            }
            ids.push(block_id);
        }
        reader.await.map_err(|e| self.failed("reading the package", e.to_string()))?;
        let list: String = ids.iter().map(|i| format!("<Latest>{i}</Latest>")).collect();
        let body = format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>{list}</BlockList>");
        for renewals in 0.. {
            let req = self.http.put(format!("{sas}&comp=blocklist")).body(body.clone());
            match self.send_blob("committing the block list", req).await {
                Err(BlobError::Expired) if renewals < MAX_RENEWALS => sas = self.renew(&file_url).await?,
                Err(BlobError::Expired) => {
                    return Err(
                        self.failed("committing the block list", "the SAS URI expired again right after renewal")
                    )
                }
                Err(BlobError::Platform(e)) => return Err(e),
                Ok(()) => break,
            }
        }

        crate::failpoint::hit("intune-before-commit");
        let commit = json!({ "fileEncryptionInfo": packed.encryption.to_graph() });
        self.send(
            "committing the content file",
            self.http.post(self.url(&format!("{file_url}/commit"))?).json(&commit),
            false,
        )
        .await?;
        self.wait_for(&file_url, "commitFileSuccess", "commitFile").await?;
        crate::failpoint::hit("intune-before-content-version");
        let patch = json!({ "@odata.type": "#microsoft.graph.win32LobApp", "committedContentVersion": v });
        self.send(
            "setting the committed content version",
            self.http.patch(self.url(&format!("{APPS}/{id}"))?).json(&patch),
            false,
        )
        .await?;
        Ok(())
    }

    /// Polls a content file until its `uploadState` is `success`; fails on `<prefix>Failed` or
    /// `<prefix>TimedOut`.
    async fn wait_for(&self, file_url: &str, success: &str, prefix: &str) -> Result<Value, PlatformError> {
        let started = std::time::Instant::now();
        let mut wait = Duration::from_millis(50);
        loop {
            let file = self
                .send("reading the content file", self.http.get(self.url(file_url)?), false)
                .await?
                .unwrap_or_default();
            let state = file["uploadState"].as_str().unwrap_or_default();
            if state == success {
                return Ok(file);
            }
            if state == format!("{prefix}Failed") || state == format!("{prefix}TimedOut") || state == "error" {
                return Err(self.failed("waiting for the content file", format!("its uploadState became {state}")));
            }
            if started.elapsed() > STATE_TIMEOUT {
                return Err(
                    self.failed("waiting for the content file", format!("still {state} after {STATE_TIMEOUT:?}"))
                );
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
    }

    /// Asks for a fresh SAS URI and returns it once granted.
    async fn renew(&self, file_url: &str) -> Result<String, PlatformError> {
        tracing::info!(platform = %self.name, "the upload SAS expired; renewing it");
        self.send("renewing the upload URI", self.http.post(self.url(&format!("{file_url}/renewUpload"))?), false)
            .await?;
        let file = self.wait_for(file_url, "azureStorageUriRenewalSuccess", "azureStorageUriRenewal").await?;
        Ok(file["azureStorageUri"].as_str().unwrap_or_default().to_string())
    }

    /// Sends a blob request through the retry layer (an expired SAS is not retried here: the
    /// caller renews it).
    async fn send_blob(&self, operation: &str, req: reqwest::RequestBuilder) -> Result<(), BlobError> {
        if req.try_clone().is_none() {
            return self.send_blob_once(operation, req).await;
        }
        self.requests
            .send_with(
                || async {
                    match req.try_clone() {
                        Some(attempt) => self.send_blob_once(operation, attempt).await,
                        None => Err(BlobError::Platform(self.failed(operation, "the request cannot be sent again"))),
                    }
                },
                |e| match e {
                    BlobError::Platform(p) => Some(p),
                    BlobError::Expired => None,
                },
            )
            .await
    }

    async fn send_blob_once(&self, operation: &str, req: reqwest::RequestBuilder) -> Result<(), BlobError> {
        let resp = req.send().await.map_err(|e| {
            BlobError::Platform(PlatformError::Transient {
                platform: self.name.clone(),
                operation: operation.into(),
                reason: e.without_url().to_string(),
                retry_after: None,
                throttled: false,
            })
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default();
        if status == reqwest::StatusCode::FORBIDDEN && body.contains("AuthenticationFailed") {
            return Err(BlobError::Expired);
        }
        Err(BlobError::Platform(if status.is_server_error() || status.as_u16() == 429 {
            PlatformError::Transient {
                platform: self.name.clone(),
                operation: operation.into(),
                reason: status.to_string(),
                retry_after: None,
                throttled: status.as_u16() == 429,
            }
        } else {
            PlatformError::Rejected {
                platform: self.name.clone(),
                operation: operation.into(),
                status: status.as_u16(),
                message: body.chars().take(300).collect(),
            }
        }))
    }
}

/// A blob request's failure: an expired SAS (renew and retry) or anything else.
enum BlobError {
    Expired,
    Platform(PlatformError),
}

impl std::fmt::Display for BlobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobError::Expired => f.write_str("the upload SAS expired"),
            BlobError::Platform(e) => e.fmt(f),
        }
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Reads the marker line of `notes`.
fn marker_of(app: &Value) -> Option<TrackingMarker> {
    TrackingMarker::from_note(app["notes"].as_str()?)
}

fn observed_of(app: &Value) -> ObservedObject {
    let marker = marker_of(app);
    let s = |v: &Value| v.as_str().map(crate::intern::shared);
    let mut fields = FieldMap::default();
    let mut put = |k: &str, v: Option<crate::intern::Text>| {
        if let Some(v) = v {
            fields.insert(crate::intern::shared(k), v);
        }
    };
    put("displayName", s(&app["displayName"]));
    put("publisher", s(&app["publisher"]));
    put("version", s(&app["displayVersion"]));
    put("installCommand", s(&app["installCommandLine"]));
    put("uninstallCommand", s(&app["uninstallCommandLine"]).filter(|u| !u.is_empty()));
    put("size", app["size"].as_u64().map(|n| crate::intern::shared(&n.to_string())));
    let setup = app["setupFilePath"].as_str().unwrap_or_default().to_ascii_lowercase();
    let installer_type = if app["msiInformation"].is_object() {
        Some("msi")
    } else {
        setup.rsplit('.').next().filter(|e| matches!(*e, "exe" | "msp" | "msix"))
    };
    put("installerType", installer_type.map(crate::intern::shared));
    put("msiProductCode", s(&app["msiInformation"]["productCode"]));
    put("sha256", marker.as_ref().map(|m| crate::intern::shared(&m.content_digest.to_string())));
    put("intune.installExperience", s(&app["installExperience"]["runAsAccount"]));
    put(
        "intune.allowAvailableUninstall",
        app["allowAvailableUninstall"].as_bool().map(|b| crate::intern::shared(&b.to_string())),
    );
    let update_only = app["rules"]
        .as_array()
        .map(|rules| rules.iter().any(|r| r["ruleType"] == "requirement" && r["displayName"] == UPDATE_ONLY_RULE));
    put("intune.updateOnly", update_only.map(|b| crate::intern::shared(&b.to_string())));
    let restart = s(&app["installExperience"]["deviceRestartBehavior"]);
    let assignments = app["assignments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let group = a["target"]["groupId"].as_str()?.to_string();
            let mut fields = FieldMap::default();
            if let Some(i) = a["intent"].as_str() {
                fields.insert("intent".into(), crate::intern::shared(i));
            }
            if let Some(r) = &restart {
                fields.insert("restart".into(), r.clone());
            }
            let t = &a["settings"]["installTimeSettings"];
            let at = |k: &str| t[k].as_str().and_then(|x| chrono::DateTime::parse_from_rfc3339(x).ok());
            if let (Some(start), Some(deadline)) = (at("startDateTime"), at("deadlineDateTime")) {
                if let Ok(d) = (deadline - start).to_std() {
                    fields.insert("deadline".into(), crate::intern::shared(&crate::vocab::duration::readable(d)));
                }
            }
            if let Some(state) = a["settings"]["autoUpdateSettings"]["autoUpdateSupersededAppsState"]
                .as_str()
                .filter(|s| *s != "notConfigured")
            {
                fields.insert("intune.autoUpdateSupersededApps".into(), crate::intern::shared(state));
            }
            Some(ObservedAssignment { group, fields, since: None })
        })
        .collect();
    let mut relationships: Vec<ObservedRelationship> = app["relationships"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let target = r["targetId"].as_str()?.to_string();
            let kind = match r["@odata.type"].as_str()? {
                "#microsoft.graph.mobileAppSupersedence" => {
                    format!("supersedence:{}", r["supersedenceType"].as_str().unwrap_or("update"))
                }
                "#microsoft.graph.mobileAppDependency" => {
                    format!("dependency:{}", r["dependencyType"].as_str().unwrap_or("detect"))
                }
                other => other.trim_start_matches("#microsoft.graph.").to_string(),
            };
            // Graph lists both directions; keep the ones this app points from.
            (r["targetType"].as_str() != Some("parent")).then_some(ObservedRelationship { kind, target })
        })
        .collect();
    relationships.sort();
    // An app whose content was never committed (a run died between creating the app and
    // committing its file) stays `notPublished` and cannot be assigned: mobileApp's
    // publishingState, https://learn.microsoft.com/graph/api/resources/intune-apps-mobileapp
    // (`processing` is the service finishing a commit: not half-made, and never deleted).
    let incomplete = (app["publishingState"].as_str() == Some("notPublished"))
        .then(|| "its content was never committed (publishingState notPublished)".to_string());
    ObservedObject {
        incomplete,
        id: app["id"].as_str().unwrap_or_default().to_string(),
        display_name: app["displayName"].as_str().unwrap_or_default().to_string(),
        marker,
        fields,
        assignments,
        relationships,
    }
}

#[async_trait::async_trait]
impl PlatformClient for IntuneClient {
    fn name(&self) -> &ObjectName {
        &self.name
    }

    fn platform_type(&self) -> PlatformType {
        PlatformType::Intune
    }

    async fn observe(&self) -> Result<Observed, PlatformError> {
        let apps = self.documents().await?;
        let objects = crate::intern::with_interner(|| apps.iter().map(observed_of).collect());
        Ok(Observed { objects, groups: std::collections::BTreeMap::new() })
    }

    async fn observe_documents(&self) -> Result<(Observed, Value), PlatformError> {
        let apps = self.documents().await?;
        let objects = apps.iter().map(observed_of).collect();
        Ok((Observed { objects, groups: std::collections::BTreeMap::new() }, json!({ "mobileApps": apps })))
    }

    async fn create(&self, object: &DesiredObject, content: &VerifiedContent) -> Result<String, PlatformError> {
        // The catalog's digest and the verified content must agree; the marker carries it.
        object.check_content(content).map_err(|e| self.failed("creating the app", e))?;
        let msi = object.msi_facts(content).await.map_err(|e| self.failed("reading the MSI", e))?;
        let version = msi.as_ref().map(|m| m.product_version.as_str());
        let mut body = self.app_body(object, version)?;
        body["rules"] = Value::Array(self.rules(object, version).await?);
        let created = self
            .send("creating the app", self.http.post(self.url(APPS)?).json(&body), false)
            .await?
            .unwrap_or_default();
        let id = created["id"].as_str().map(str::to_string).ok_or_else(|| PlatformError::Rejected {
            platform: self.name.clone(),
            operation: "creating the app".into(),
            status: 201,
            message: "the response has no id".into(),
        })?;
        match self.upload(&id, object, content, msi).await {
            Ok(()) => Ok(id),
            Err(e) => {
                // Never leave a half-created app behind.
                if let Err(cleanup) = self.delete(&id).await {
                    tracing::warn!(app = %id, error = %cleanup, "could not delete the half-created app");
                }
                Err(e)
            }
        }
    }

    async fn reconfigure(&self, id: &str, object: &DesiredObject) -> Result<(), PlatformError> {
        // The content is the app's own (a reconfiguration changes settings only): the MSI's
        // version is the one the app was created with.
        let version = if object.installer.installer_type == InstallerType::Msi {
            let url = self.url(&format!("{APPS}/{id}"))?;
            let app = self.send("reading the app", self.http.get(url), false).await?.unwrap_or_default();
            app["msiInformation"]["productVersion"].as_str().map(str::to_string)
        } else {
            None
        };
        let mut body = self.app_body(object, version.as_deref())?;
        body["rules"] = Value::Array(self.rules(object, version.as_deref()).await?);
        let mut patch = serde_json::Map::new();
        for k in [
            "@odata.type",
            "displayName",
            "description",
            "publisher",
            "displayVersion",
            "installCommandLine",
            "uninstallCommandLine",
            "allowAvailableUninstall",
            "installExperience",
            "rules",
            "notes",
        ] {
            patch.insert(k.into(), body[k].clone());
        }
        let url = self.url(&format!("{APPS}/{id}"))?;
        self.send("updating the app", self.http.patch(url).json(&Value::Object(patch)), false).await?;
        Ok(())
    }

    async fn set_assignments(&self, id: &str, assignments: &[DesiredAssignment]) -> Result<(), PlatformError> {
        let now = self.clock.now();
        let list: Vec<Value> = assignments
            .iter()
            .map(|a| {
                let deadline = a.fields.get("deadline").and_then(|d| humantime::parse_duration(d).ok());
                let due =
                    deadline.and_then(|d| chrono::Duration::from_std(d).ok()).and_then(|d| now.checked_add_signed(d));
                let install_time = due.map(|due| {
                    let fmt = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                    json!({
                        "@odata.type": "#microsoft.graph.mobileAppInstallTimeSettings",
                        "useLocalTime": false,
                        "startDateTime": fmt(now),
                        "deadlineDateTime": fmt(due),
                    })
                });
                let mut settings = json!({
                    "@odata.type": "#microsoft.graph.win32LobAppAssignmentSettings",
                    "notifications": "showAll",
                    "deliveryOptimizationPriority": "notConfigured",
                    "installTimeSettings": install_time,
                    "restartSettings": null,
                });
                // Devices with a superseded version of an available app get this one:
                // win32LobAppAssignmentSettings.autoUpdateSettings, a win32LobAppAutoUpdateSettings
                // whose autoUpdateSupersededAppsState is notConfigured or enabled (Graph v1.0,
                // https://learn.microsoft.com/graph/api/resources/intune-apps-win32lobappautoupdatesettings;
                // the older beta page's `autoUpdateSupersededApps` is not what the service takes:
                // Graph SDK models and working scripts send `autoUpdateSupersededAppsState`).
                // Intune applies it to `available` assignments only.
                if let Some(state) = a.fields.get("intune.autoUpdateSupersededApps") {
                    settings["autoUpdateSettings"] = json!({
                        "@odata.type": "#microsoft.graph.win32LobAppAutoUpdateSettings",
                        "autoUpdateSupersededAppsState": state,
                    });
                }
                json!({
                    "@odata.type": "#microsoft.graph.mobileAppAssignment",
                    "intent": a.fields.get("intent").unwrap_or("required"),
                    "target": { "@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": a.group },
                    "settings": settings,
                })
            })
            .collect();
        // Intune has one restart behaviour per app: take the assignments' (they agree, as the
        // fleet sets it per target).
        if let Some(restart) = assignments.iter().find_map(|a| a.fields.get("restart")) {
            let url = self.url(&format!("{APPS}/{id}"))?;
            let current = self.send("reading the app", self.http.get(url.clone()), false).await?.unwrap_or_default();
            if current["installExperience"]["deviceRestartBehavior"].as_str() != Some(restart) {
                let mut experience = current["installExperience"].clone();
                experience["@odata.type"] = json!("#microsoft.graph.win32LobAppInstallExperience");
                experience["deviceRestartBehavior"] = json!(restart);
                let patch = json!({ "@odata.type": "#microsoft.graph.win32LobApp", "installExperience": experience });
                self.send("setting the restart behaviour", self.http.patch(url).json(&patch), false).await?;
            }
        }
        let url = self.url(&format!("{APPS}/{id}/assign"))?;
        self.send("assigning the app", self.http.post(url).json(&json!({ "mobileAppAssignments": list })), false)
            .await?;
        Ok(())
    }

    async fn supersede(&self, new: &str, old: &str) -> Result<(), PlatformError> {
        // updateRelationships replaces the whole set: read it and add to it.
        let mut relationships = self.own_relationships(new).await?;
        relationships.retain(|r| r["targetId"] != old);
        relationships.push(json!({
            "@odata.type": "#microsoft.graph.mobileAppSupersedence",
            "supersedenceType": "update",
            "targetId": old,
        }));
        let url = self.url(&format!("{APPS}/{new}/updateRelationships"))?;
        self.send("setting supersedence", self.http.post(url).json(&json!({ "relationships": relationships })), false)
            .await?;
        Ok(())
    }

    async fn delete(&self, id: &str) -> Result<(), PlatformError> {
        // The service refuses to delete an app another app references (a newer version that
        // supersedes it): those relationships go first — on apps patchops manages only; an app
        // someone else made keeps its relationships, and the app stays.
        let url = self.url(&format!("{APPS}/{id}/relationships"))?;
        let Some(listed) = self.list_all_of("listing the app's relationships", url, true).await? else {
            return Ok(()); // Already gone.
        };
        let parents: Vec<String> = listed
            .iter()
            .filter(|r| r["targetType"] == "parent")
            .filter_map(|r| r["targetId"].as_str().map(str::to_string))
            .collect();
        // Every referencing app is read before any relationship is removed: a refusal leaves
        // the graph as it was, not half undone.
        let mut managed = Vec::new();
        for parent in parents {
            let app = self.url(&format!("{APPS}/{parent}"))?;
            let Some(app) = self.send("reading an app that references it", self.http.get(app), true).await? else {
                continue;
            };
            if marker_of(&app).is_none() {
                return Err(PlatformError::Rejected {
                    platform: self.name.clone(),
                    operation: "deleting the app".into(),
                    status: 409,
                    message: format!(
                        "app {parent} ({}), which patchops does not manage, references app {id} (supersedence or dependency); remove that relationship in Intune, then apply again",
                        app["displayName"].as_str().unwrap_or_default()
                    ),
                });
            }
            managed.push(parent);
        }
        for parent in managed {
            self.drop_relationship(&parent, id).await?;
        }
        let url = self.url(&format!("{APPS}/{id}"))?;
        self.send("deleting the app", self.http.delete(url), true).await?;
        Ok(())
    }

    async fn resolve_groups(&self, names: &[String]) -> Result<BTreeMap<String, String>, PlatformError> {
        // "List groups" (Graph v1.0, `GET /groups`) with `$filter=displayName eq '…'`, which the
        // directory supports without advanced query parameters; a quote inside an OData string
        // literal is doubled. Needs Group.Read.All (or GroupMember.Read.All) for the app.
        let reads = names.iter().cloned().map(|name| -> futures::future::BoxFuture<'_, _> {
            Box::pin(async move {
                let operation = format!("finding the group named `{name}`");
                let mut url = self.url(GROUPS)?;
                url.query_pairs_mut()
                    .append_pair("$filter", &format!("displayName eq '{}'", name.replace('\'', "''")))
                    .append_pair("$select", "id,displayName");
                let found = self.list_all(&operation, url).await.map_err(|e| match e {
                    PlatformError::Rejected { status: 403, platform, operation, message } => PlatformError::Rejected {
                        platform,
                        operation,
                        status: 403,
                        message: format!(
                            "{message} (grant the app registration the Microsoft Graph application permission Group.Read.All, or GroupMember.Read.All, or name the group by its object id)"
                        ),
                    },
                    e => e,
                })?;
                let ids: Vec<String> = found.iter().filter_map(|g| g["id"].as_str().map(str::to_string)).collect();
                match ids.as_slice() {
                    [id] if crate::model::load::is_object_id(id) => Ok((name, id.clone())),
                    [id] => Err(self.failed(&operation, format!("the directory answered the id `{id}`, which is not a GUID"))),
                    [] => Err(PlatformError::Rejected {
                        platform: self.name.clone(),
                        operation,
                        status: 404,
                        message: format!(
                            "the tenant has no group whose displayName is `{name}`; check the name in the Entra admin center, or give the group's object id (`group: <object id>`)"
                        ),
                    }),
                    many => Err(PlatformError::Rejected {
                        platform: self.name.clone(),
                        operation,
                        status: 409,
                        message: format!(
                            "{} groups have the displayName `{name}` ({}); give the one meant by its object id (`group: <object id>`)",
                            many.len(),
                            many.join(", ")
                        ),
                    }),
                }
            })
        });
        let found: Vec<Result<(String, String), PlatformError>> = futures::StreamExt::collect(
            futures::StreamExt::buffered(futures::stream::iter(reads), OBSERVE_CONCURRENCY),
        )
        .await;
        found.into_iter().collect()
    }
}
