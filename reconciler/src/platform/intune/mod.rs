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
//! | assignment.intent | assignment intent |
//! | assignment.restart | installExperience.deviceRestartBehavior (one per app in Intune) |
//! | assignment.deadline | settings.installTimeSettings deadline − start |
//!
//! Content upload (.intunewin), authentication and supersedence arrive with the Intune issue;
//! until then only the embedded emulator is reachable.

use std::time::Duration;

use serde_json::{json, Value};

pub mod intunewin;

use super::{
    DesiredAssignment, DesiredObject, FieldMap, Observed, ObservedAssignment, ObservedObject, Platform, PlatformError,
    TrackingMarker,
};
use crate::content::VerifiedContent;
use crate::model::{InstallerType, ObjectName, PlatformType};

const APPS: &str = "beta/deviceAppManagement/mobileApps";

/// The prefix of the marker line in `notes`.
const MARKER_PREFIX: &str = "patchops:";

/// A Graph client for one Intune tenant.
#[derive(Debug, Clone)]
pub struct IntuneClient {
    name: ObjectName,
    base: url::Url,
    http: reqwest::Client,
}

impl IntuneClient {
    /// A client for the Graph service at `base` (such as `https://graph.microsoft.com/`).
    pub fn new(name: ObjectName, base: url::Url) -> Result<IntuneClient, PlatformError> {
        let http =
            crate::http::client().map_err(|reason| PlatformError::Unavailable { platform: name.clone(), reason })?;
        Ok(IntuneClient { name, base, http })
    }

    fn url(&self, path: &str) -> Result<url::Url, PlatformError> {
        self.base.join(path).map_err(|e| PlatformError::Unavailable {
            platform: self.name.clone(),
            reason: format!("bad URL {}{path}: {e}", self.base),
        })
    }

    /// Sends a request and maps Graph's answers: 2xx → body, 429/5xx/transport → Transient
    /// (with Retry-After), other 4xx → Rejected with Graph's error message.
    async fn send(
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
        };
        let resp = req.send().await.map_err(|e| transient(e.without_url().to_string(), None))?;
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
            return Err(transient(format!("{status}: {message}"), retry_after));
        }
        Err(PlatformError::Rejected {
            platform: self.name.clone(),
            operation: operation.to_string(),
            status: status.as_u16(),
            message,
        })
    }

    fn app_body(&self, o: &DesiredObject) -> Result<Value, PlatformError> {
        let f = &o.fields;
        let get = |k: &str| f.get(k).unwrap_or_default().to_string();
        let i = &o.installer;
        let setup = file_name(&i.url);
        let arch = match i.architecture {
            crate::model::Architecture::X64 => "x64",
            crate::model::Architecture::X86 => "x86",
            crate::model::Architecture::Arm64 => "arm64",
            crate::model::Architecture::Neutral => "x86,x64,arm64",
        };
        let detection = match (&i.msi_product_code, i.installer_type) {
            (Some(code), _) => json!({
                "@odata.type": "#microsoft.graph.win32LobAppProductCodeRule",
                "ruleType": "detection",
                "productCode": code,
                "productVersionOperator": "greaterThanOrEqual",
                "productVersion": get("version"),
            }),
            _ => {
                return Err(PlatformError::NotImplemented {
                    platform: self.name.clone(),
                    ty: "intune",
                    what: format!(
                        "publishing {} without an MSI product code (detection scripts arrive with the Intune issue)",
                        setup
                    ),
                })
            }
        };
        let marker = serde_json::to_string(&o.marker).unwrap_or_default();
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
            "rules": [detection],
            "notes": format!("Published by patchops; changes made here are reverted on the next apply.\n{MARKER_PREFIX}{marker}"),
        });
        if i.installer_type == InstallerType::Msi {
            body["msiInformation"] = json!({
                "productCode": i.msi_product_code,
                "productVersion": get("version"),
                "productName": get("displayName"),
                "publisher": get("publisher"),
                "packageType": "perMachine",
                "requiresReboot": false,
            });
        }
        Ok(body)
    }
}

fn file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.rsplit('/').next().filter(|s| !s.is_empty()).unwrap_or("installer").to_string()
}

/// Reads the marker line of `notes`.
fn marker_of(app: &Value) -> Option<TrackingMarker> {
    let notes = app["notes"].as_str()?;
    let line = notes.lines().find_map(|l| l.trim().strip_prefix(MARKER_PREFIX))?;
    serde_json::from_str(line).ok()
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
                    fields.insert("deadline".into(), crate::intern::shared(&humantime::format_duration(d).to_string()));
                }
            }
            Some(ObservedAssignment { group, fields })
        })
        .collect();
    ObservedObject {
        id: app["id"].as_str().unwrap_or_default().to_string(),
        display_name: app["displayName"].as_str().unwrap_or_default().to_string(),
        marker,
        fields,
        assignments,
    }
}

#[async_trait::async_trait]
impl Platform for IntuneClient {
    fn name(&self) -> &ObjectName {
        &self.name
    }

    fn platform_type(&self) -> PlatformType {
        PlatformType::Intune
    }

    async fn observe(&self) -> Result<Observed, PlatformError> {
        let mut url = self.url(APPS)?;
        url.query_pairs_mut()
            .append_pair("$filter", "isof('microsoft.graph.win32LobApp')")
            .append_pair("$expand", "assignments");
        let mut objects = Vec::new();
        let mut next = Some(url);
        while let Some(url) = next.take() {
            let page = self.send("listing mobileApps", self.http.get(url), false).await?.unwrap_or_default();
            crate::intern::with_interner(|| {
                for app in page["value"].as_array().into_iter().flatten() {
                    objects.push(observed_of(app));
                }
            });
            next = match page["@odata.nextLink"].as_str() {
                Some(link) => Some(url::Url::parse(link).map_err(|e| PlatformError::Unavailable {
                    platform: self.name.clone(),
                    reason: format!("bad @odata.nextLink {link}: {e}"),
                })?),
                None => None,
            };
        }
        Ok(Observed { objects })
    }

    async fn create(&self, object: &DesiredObject, content: &VerifiedContent) -> Result<String, PlatformError> {
        // The catalog's digest and the verified content must agree; the marker carries it.
        if content.sha256() != object.marker.content_digest {
            return Err(PlatformError::Rejected {
                platform: self.name.clone(),
                operation: "creating the app".into(),
                status: 0,
                message: format!(
                    "content {} does not match the marker's digest {}",
                    content.sha256(),
                    object.marker.content_digest
                ),
            });
        }
        let body = self.app_body(object)?;
        let created = self
            .send("creating the app", self.http.post(self.url(APPS)?).json(&body), false)
            .await?
            .unwrap_or_default();
        created["id"].as_str().map(str::to_string).ok_or_else(|| PlatformError::Rejected {
            platform: self.name.clone(),
            operation: "creating the app".into(),
            status: 201,
            message: "the response has no id".into(),
        })
    }

    async fn reconfigure(&self, id: &str, object: &DesiredObject) -> Result<(), PlatformError> {
        let body = self.app_body(object)?;
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
            "notes",
        ] {
            patch.insert(k.into(), body[k].clone());
        }
        let url = self.url(&format!("{APPS}/{id}"))?;
        self.send("updating the app", self.http.patch(url).json(&Value::Object(patch)), false).await?;
        Ok(())
    }

    async fn set_assignments(&self, id: &str, assignments: &[DesiredAssignment]) -> Result<(), PlatformError> {
        let now = chrono::Utc::now();
        let list: Vec<Value> = assignments
            .iter()
            .map(|a| {
                let deadline = a.fields.get("deadline").and_then(|d| humantime::parse_duration(d).ok());
                let install_time = deadline.and_then(|d| chrono::Duration::from_std(d).ok()).map(|d| {
                    let fmt = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                    json!({
                        "@odata.type": "#microsoft.graph.mobileAppInstallTimeSettings",
                        "useLocalTime": false,
                        "startDateTime": fmt(now),
                        "deadlineDateTime": fmt(now + d),
                    })
                });
                json!({
                    "@odata.type": "#microsoft.graph.mobileAppAssignment",
                    "intent": a.fields.get("intent").unwrap_or("required"),
                    "target": { "@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": a.group },
                    "settings": {
                        "@odata.type": "#microsoft.graph.win32LobAppAssignmentSettings",
                        "notifications": "showAll",
                        "deliveryOptimizationPriority": "notConfigured",
                        "installTimeSettings": install_time,
                        "restartSettings": null,
                    },
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

    async fn delete(&self, id: &str) -> Result<(), PlatformError> {
        let url = self.url(&format!("{APPS}/{id}"))?;
        self.send("deleting the app", self.http.delete(url), true).await?;
        Ok(())
    }
}
