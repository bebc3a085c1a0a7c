//! An emulator of the Configuration Manager SMS Provider's AdminService
//! (`/AdminService/wmi/{Class}` and `{Class}({key})`, OData v4 shapes) for the classes patchops
//! uses: `SMS_Application` (list, read with the lazy `SDMPackageXML`, create, new revision,
//! `AdminService.SetIsExpired`), `SMS_ApplicationAssignment` (list, create, delete),
//! `SMS_Identification` and `SMS_Admin`.
//!
//! Role-based access control is enforced as the site does: every request authenticates
//! (HTTP Basic here) as an administrative user, and each change needs a security role that
//! grants it — creating and changing applications: Full Administrator, Application
//! Administrator or Application Author; deploying them: Full Administrator, Application
//! Administrator or Application Deployment Manager. Refusals are 403 with an OData error.
//!
//! An application's SDMPackageXML is checked ([`sdm_check`]): the AppMgmtDigest namespace and
//! `utf-16` declaration, the site's authoring scope, logical names, the deployment type's
//! technology, install and detect actions, and that its content is on the site's share.

pub mod sdm_check;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// An administrative user of the emulated site.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Admin {
    /// Logon name, such as `CONTOSO\svc-patchops`.
    pub logon: String,
    /// Password (never shown).
    pub password: String,
    /// Security role names.
    pub roles: Vec<String>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("logon", &self.logon)
            .field("password", &"REDACTED")
            .field("roles", &self.roles)
            .finish()
    }
}

/// How the emulated site is set up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SiteOptions {
    /// `SMS_Identification.ThisSiteID` (a GUID); the authoring scope is `ScopeId_<it>`.
    pub site_id: String,
    /// The content share as the site reads it (UNC) …
    pub share_unc: String,
    /// … and where it is on this machine.
    pub share_local: PathBuf,
    /// Collections besides the built-in ones (`SMS00001`, All Systems).
    pub collections: Vec<String>,
    /// Administrative users.
    pub admins: Vec<Admin>,
    /// Clients run PowerShell as AllSigned: detection scripts must be signed by one of these
    /// certificates (DER).
    pub all_signed_by: Option<Vec<Vec<u8>>>,
    /// The site's clock (certificate checks of signed detection scripts).
    pub clock: crate::clock::SharedClock,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppRecord {
    model_name: String,
    /// Its deployment type's logical name (what supersedence refers to).
    deployment_type: String,
    revision: u32,
    expired: bool,
    sdm: String,
    title: String,
    version: String,
    publisher: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Store {
    next_ci: u64,
    next_assignment: u64,
    apps: BTreeMap<u64, AppRecord>,
    assignments: BTreeMap<u64, Value>,
}

/// The emulated site.
#[derive(Debug)]
pub struct Emulator {
    store: Mutex<Store>,
    file: PathBuf,
    options: SiteOptions,
}

type Shared = Arc<Emulator>;

/// An OData error answer.
struct ODataError(StatusCode, String);

impl IntoResponse for ODataError {
    fn into_response(self) -> Response {
        let code = self.0.as_u16().to_string();
        let mut resp = (self.0, Json(json!({ "error": { "code": code, "message": self.1 } }))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert("www-authenticate", axum::http::HeaderValue::from_static("Basic realm=\"AdminService\""));
        }
        resp
    }
}

fn bad(message: impl Into<String>) -> ODataError {
    ODataError(StatusCode::BAD_REQUEST, message.into())
}

/// What a change needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Permission {
    Read,
    ManageApplications,
    Deploy,
}

impl Permission {
    fn roles(self) -> &'static [&'static str] {
        match self {
            Permission::Read => &[
                "Full Administrator",
                "Application Administrator",
                "Application Author",
                "Application Deployment Manager",
                "Read-only Analyst",
            ],
            Permission::ManageApplications => {
                &["Full Administrator", "Application Administrator", "Application Author"]
            }
            Permission::Deploy => {
                &["Full Administrator", "Application Administrator", "Application Deployment Manager"]
            }
        }
    }
}

impl Emulator {
    /// Opens the site's state (empty when the file does not exist).
    pub fn open(file: &Path, options: SiteOptions) -> Result<Emulator, String> {
        // Nothing is in flight while the state is opened: what a killed process half-wrote goes.
        crate::state::sweep_atomic_leftovers(file);
        let store = match std::fs::read(file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                format!("{} is corrupt ({e}); remove it to start the emulated site empty", file.display())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Store { next_ci: 16_777_217, next_assignment: 16_777_217, ..Store::default() }
            }
            Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
        };
        Ok(Emulator { store: Mutex::new(store), file: file.to_path_buf(), options })
    }

    fn scope(&self) -> String {
        format!("ScopeId_{}", self.options.site_id.trim_matches(['{', '}']).to_uppercase())
    }

    /// The caller, checked against the administrative users and the permission needed.
    fn authorize(&self, headers: &HeaderMap, need: Permission, what: &str) -> Result<(), ODataError> {
        use base64::Engine as _;
        let unauthorized = || ODataError(StatusCode::UNAUTHORIZED, "The request requires authentication.".into());
        let value = headers.get("authorization").and_then(|v| v.to_str().ok()).ok_or_else(unauthorized)?;
        let encoded = value.strip_prefix("Basic ").ok_or_else(unauthorized)?;
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| unauthorized())?;
        let text = String::from_utf8(decoded).map_err(|_| unauthorized())?;
        let (user, password) = text.split_once(':').ok_or_else(unauthorized)?;
        let admin = self
            .options
            .admins
            .iter()
            .find(|a| a.logon.eq_ignore_ascii_case(user) && a.password == password)
            .ok_or_else(unauthorized)?;
        if admin.roles.iter().any(|r| need.roles().contains(&r.as_str())) {
            return Ok(());
        }
        Err(ODataError(
            StatusCode::FORBIDDEN,
            format!(
                "Access denied: {} ({}) does not have permission to {what}; it needs one of the security roles {}",
                admin.logon,
                if admin.roles.is_empty() {
                    "no security roles".to_string()
                } else {
                    format!("roles {}", admin.roles.join(", "))
                },
                need.roles().join(", ")
            ),
        ))
    }

    fn with_store<T>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, ODataError>,
        persist: bool,
    ) -> Result<T, ODataError> {
        let internal = |m: String| ODataError(StatusCode::INTERNAL_SERVER_ERROR, m);
        let mut store = self.store.lock().map_err(|_| internal("state poisoned".into()))?;
        let out = f(&mut store)?;
        if persist {
            let bytes = serde_json::to_vec_pretty(&*store).map_err(|e| internal(e.to_string()))?;
            crate::state::write_atomic(&self.file, &bytes).map_err(|e| internal(e.to_string()))?;
        }
        Ok(out)
    }

    fn check_sdm(&self, store: &Store, xml: &str, keep: Option<&AppRecord>) -> Result<sdm_check::Checked, ODataError> {
        let existing: Vec<(String, String)> =
            store.apps.values().map(|a| (a.model_name.clone(), a.deployment_type.clone())).collect();
        let site = sdm_check::Site {
            scope: self.scope(),
            share_unc: self.options.share_unc.clone(),
            share_local: self.options.share_local.clone(),
            existing,
            all_signed_by: self.options.all_signed_by.clone(),
            now: self.options.clock.now(),
        };
        let checked =
            sdm_check::check(xml, &site).map_err(|p| bad(format!("SDMPackageXML is not valid: {}", p.join("; "))))?;
        if let Some(k) = keep {
            if checked.model_name != k.model_name {
                return Err(bad(format!("a revision must keep the application's logical name {}", k.model_name)));
            }
        }
        Ok(checked)
    }
}

/// The router of the emulated AdminService.
pub fn router(emulator: Shared) -> Router {
    Router::new()
        .route("/AdminService/wmi/{target}", get(read).post(create).patch(revise).delete(remove))
        .route("/AdminService/wmi/{target}/{action}", axum::routing::post(action))
        .with_state(emulator)
}

/// `Class` or `Class(key)`.
fn target(t: &str) -> (&str, Option<u64>) {
    match t.split_once('(') {
        Some((class, rest)) => (class, rest.trim_end_matches(')').trim_matches('\'').parse().ok()),
        None => (t, None),
    }
}

fn collection(class: &str, value: Vec<Value>) -> Json<Value> {
    Json(json!({ "@odata.context": format!("https://localhost/AdminService/wmi/$metadata#{class}"), "value": value }))
}

fn app_json(id: u64, a: &AppRecord, with_sdm: bool) -> Value {
    let mut v = json!({
        "__CLASS": "SMS_Application",
        "CI_ID": id,
        "CI_UniqueID": format!("{}/{}", a.model_name, a.revision),
        "ModelName": a.model_name,
        "CIVersion": a.revision,
        "LocalizedDisplayName": a.title,
        "SoftwareVersion": a.version,
        "Manufacturer": a.publisher,
        "IsLatest": true,
        "IsExpired": a.expired,
    });
    if with_sdm {
        v["SDMPackageXML"] = json!(a.sdm);
    }
    v
}

#[derive(Deserialize)]
struct ODataQuery {
    #[serde(rename = "$filter")]
    filter: Option<String>,
}

/// The value of `Field eq 'text'` in a filter.
fn filter_value(filter: &str, field: &str) -> Option<String> {
    let at = filter.find(&format!("{field} eq '"))? + field.len() + 5;
    let rest = &filter[at..];
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            if chars.peek() == Some(&'\'') {
                chars.next();
                out.push('\'');
                continue;
            }
            return Some(out);
        }
        out.push(c);
    }
    None
}

async fn read(
    State(emu): State<Shared>,
    headers: HeaderMap,
    UrlPath(t): UrlPath<String>,
    Query(q): Query<ODataQuery>,
) -> Result<Json<Value>, ODataError> {
    let (class, key) = target(&t);
    emu.authorize(&headers, Permission::Read, &format!("read {class}"))?;
    let filter = q.filter.unwrap_or_default();
    emu.with_store(
        |s| match (class, key) {
            ("SMS_Application", Some(id)) => {
                let a = s.apps.get(&id).ok_or_else(|| ODataError(StatusCode::NOT_FOUND, format!("SMS_Application({id}) was not found")))?;
                Ok(collection(class, vec![app_json(id, a, true)]))
            }
            ("SMS_Application", None) => {
                let live_only = filter.contains("IsExpired eq false");
                let model = filter_value(&filter, "ModelName");
                Ok(collection(
                    class,
                    s.apps
                        .iter()
                        .filter(|(_, a)| !live_only || !a.expired)
                        .filter(|(_, a)| model.as_deref().is_none_or(|m| a.model_name == m))
                        .map(|(id, a)| app_json(*id, a, false))
                        .collect(),
                ))
            }
            ("SMS_ApplicationAssignment", None) => {
                let name = filter_value(&filter, "ApplicationName");
                Ok(collection(
                    class,
                    s.assignments.values().filter(|d| name.as_deref().is_none_or(|n| d["ApplicationName"] == n)).cloned().collect(),
                ))
            }
            ("SMS_Identification", None) => Ok(collection(
                class,
                vec![json!({ "ThisSiteID": format!("{{{}}}", emu.options.site_id.trim_matches(['{', '}']).to_uppercase()), "ThisSiteCode": "PS1", "ThisSiteName": "patchops emulated site" })],
            )),
            ("SMS_Admin", None) => {
                let name = filter_value(&filter, "LogonName");
                Ok(collection(
                    class,
                    emu.options
                        .admins
                        .iter()
                        .filter(|a| name.as_deref().is_none_or(|n| a.logon.eq_ignore_ascii_case(n)))
                        .map(|a| json!({ "LogonName": a.logon, "RoleNames": a.roles }))
                        .collect(),
                ))
            }
            _ => Err(ODataError(StatusCode::NOT_FOUND, format!("Resource not found for the segment '{t}'."))),
        },
        false,
    )
}

async fn create(
    State(emu): State<Shared>,
    headers: HeaderMap,
    UrlPath(t): UrlPath<String>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), ODataError> {
    let (class, _) = target(&t);
    match class {
        "SMS_Application" => {
            emu.authorize(&headers, Permission::ManageApplications, "create applications (SMS_Application Create)")?;
            let xml = body["SDMPackageXML"]
                .as_str()
                .ok_or_else(|| bad("The property 'SDMPackageXML' is required."))?
                .to_string();
            emu.with_store(
                |s| {
                    let checked = emu.check_sdm(s, &xml, None)?;
                    if s.apps.values().any(|a| a.model_name == checked.model_name) {
                        return Err(bad(format!("an application with the logical name {} exists", checked.model_name)));
                    }
                    let id = s.next_ci;
                    s.next_ci += 1;
                    let record = AppRecord {
                        model_name: checked.model_name,
                        deployment_type: checked.deployment_type,
                        revision: 1,
                        expired: false,
                        sdm: xml,
                        title: checked.title,
                        version: checked.version,
                        publisher: checked.publisher,
                    };
                    let out = app_json(id, &record, false);
                    s.apps.insert(id, record);
                    Ok((StatusCode::CREATED, Json(out)))
                },
                true,
            )
        }
        "SMS_ApplicationAssignment" => {
            emu.authorize(&headers, Permission::Deploy, "deploy applications (SMS_ApplicationAssignment Create)")?;
            emu.with_store(
                |s| {
                    let model = body["ApplicationName"]
                        .as_str()
                        .ok_or_else(|| bad("The property 'ApplicationName' is required."))?;
                    let (ci, app) = s
                        .apps
                        .iter()
                        .find(|(_, a)| a.model_name == model)
                        .ok_or_else(|| bad(format!("no application {model}")))?;
                    if app.expired {
                        return Err(bad(format!("application {model} is retired and cannot be deployed")));
                    }
                    if body["AssignedCIs"].as_array().is_none_or(|l| !l.iter().any(|x| x.as_u64() == Some(*ci))) {
                        return Err(bad(format!("AssignedCIs must hold the application's CI_ID {ci}")));
                    }
                    let collection = body["TargetCollectionID"].as_str().unwrap_or_default();
                    if collection != "SMS00001" && !emu.options.collections.iter().any(|c| c == collection) {
                        return Err(bad(format!("collection '{collection}' does not exist")));
                    }
                    if !matches!(body["OfferTypeID"].as_u64(), Some(0) | Some(2)) {
                        return Err(bad("OfferTypeID must be 0 (required) or 2 (available)"));
                    }
                    for k in ["StartTime", "EnforcementDeadline"] {
                        if let Some(t) = body.get(k).filter(|v| !v.is_null()) {
                            if t.as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).is_none() {
                                return Err(bad(format!("{k} is not a date and time")));
                            }
                        }
                    }
                    let id = s.next_assignment;
                    s.next_assignment += 1;
                    let mut record = body.clone();
                    record["AssignmentID"] = json!(id);
                    record["__CLASS"] = json!("SMS_ApplicationAssignment");
                    s.assignments.insert(id, record.clone());
                    Ok((StatusCode::CREATED, Json(record)))
                },
                true,
            )
        }
        _ => Err(ODataError(StatusCode::METHOD_NOT_ALLOWED, format!("{class} cannot be created here"))),
    }
}

async fn revise(
    State(emu): State<Shared>,
    headers: HeaderMap,
    UrlPath(t): UrlPath<String>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ODataError> {
    let (class, key) = target(&t);
    let (true, Some(id)) = (class == "SMS_Application", key) else {
        return Err(ODataError(StatusCode::METHOD_NOT_ALLOWED, format!("{t} cannot be changed here")));
    };
    emu.authorize(&headers, Permission::ManageApplications, "modify applications (SMS_Application Modify)")?;
    let xml =
        body["SDMPackageXML"].as_str().ok_or_else(|| bad("The property 'SDMPackageXML' is required."))?.to_string();
    emu.with_store(
        |s| {
            let current = s
                .apps
                .get(&id)
                .cloned()
                .ok_or_else(|| ODataError(StatusCode::NOT_FOUND, format!("SMS_Application({id}) was not found")))?;
            if current.expired {
                return Err(bad(format!("SMS_Application({id}) is retired; reinstate it before revising it")));
            }
            let checked = emu.check_sdm(s, &xml, Some(&current))?;
            let record = AppRecord {
                revision: current.revision + 1,
                deployment_type: checked.deployment_type,
                sdm: xml,
                title: checked.title,
                version: checked.version,
                publisher: checked.publisher,
                ..current
            };
            let out = app_json(id, &record, false);
            s.apps.insert(id, record);
            Ok(Json(out))
        },
        true,
    )
}

async fn remove(
    State(emu): State<Shared>,
    headers: HeaderMap,
    UrlPath(t): UrlPath<String>,
) -> Result<StatusCode, ODataError> {
    let (class, key) = target(&t);
    let (true, Some(id)) = (class == "SMS_ApplicationAssignment", key) else {
        return Err(ODataError(StatusCode::METHOD_NOT_ALLOWED, format!("{t} cannot be deleted here")));
    };
    emu.authorize(&headers, Permission::Deploy, "delete deployments (SMS_ApplicationAssignment Delete)")?;
    emu.with_store(
        |s| {
            s.assignments.remove(&id);
            Ok(StatusCode::NO_CONTENT)
        },
        true,
    )
}

async fn action(
    State(emu): State<Shared>,
    headers: HeaderMap,
    UrlPath((t, name)): UrlPath<(String, String)>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ODataError> {
    let (class, key) = target(&t);
    let (true, Some(id), "AdminService.SetIsExpired") = (class == "SMS_Application", key, name.as_str()) else {
        return Err(ODataError(StatusCode::NOT_FOUND, format!("Resource not found for the segment '{name}'.")));
    };
    emu.authorize(&headers, Permission::ManageApplications, "retire applications (SMS_Application SetIsExpired)")?;
    let expired = body["Expired"].as_bool().ok_or_else(|| bad("The parameter 'Expired' is required."))?;
    emu.with_store(
        |s| {
            let a = s
                .apps
                .get_mut(&id)
                .ok_or_else(|| ODataError(StatusCode::NOT_FOUND, format!("SMS_Application({id}) was not found")))?;
            a.expired = expired;
            Ok(Json(json!({ "ReturnValue": 0 })))
        },
        true,
    )
}

/// What a seeded site is: its id, as the recorded site identified itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seeded {
    /// How many applications it holds.
    pub applications: usize,
    /// `SMS_Identification.ThisSiteID` of the recorded site (its applications' authoring
    /// scope), when recorded.
    pub site_id: Option<String>,
}

/// Writes the state file of an emulated site that holds what a real one listed: `documents`
/// holds the `SMS_Application` instances (with SDMPackageXML), the
/// `SMS_ApplicationAssignment`s and the `SMS_Identification` the AdminService returned, as
/// `patchops inventory record` keeps them. The content the applications reference on the
/// share `share_unc` is represented under `share_local` by files of the recorded sizes with no
/// data (sparse: a dry run does not copy installers from the real share, and a revision checks
/// only that the content is there). Returns what it seeded.
pub fn seed(file: &Path, documents: &Value, share_unc: &str, share_local: &Path) -> Result<Seeded, String> {
    let instances = documents["SMS_Application"]
        .as_array()
        .ok_or("the recorded documents have no SMS_Application list (record the inventory again)")?;
    let mut store = Store { next_ci: 16_777_217, next_assignment: 16_777_217, ..Store::default() };
    let prefix = share_unc.trim_end_matches('\\');
    for a in instances {
        let ci = a["CI_ID"].as_u64().ok_or("a recorded SMS_Application has no CI_ID")?;
        let sdm = a["SDMPackageXML"].as_str().unwrap_or_default().to_string();
        let (deployment_type, files) = sdm_check::held(&sdm).unwrap_or_default();
        for sdm_check::HeldFile { location, name, size } in files {
            let Some(rel) = location.strip_prefix(prefix).map(|r| r.trim_matches('\\').replace('\\', "/")) else {
                continue;
            };
            // Only plain names below the share: a recording cannot make the dry run write
            // anywhere else (an absolute path, `..`, a drive letter).
            let plain = |p: &str| {
                std::path::Path::new(p).components().all(|c| matches!(c, std::path::Component::Normal(_)))
                    && !p.contains(':')
            };
            if !plain(&rel) || name.is_empty() || !plain(&name) || name.contains('/') {
                continue;
            }
            let dir = share_local.join(&rel);
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            match std::fs::OpenOptions::new().write(true).create_new(true).open(dir.join(&name)) {
                Ok(placeholder) => placeholder.set_len(size).map_err(|e| format!("{}: {e}", dir.display()))?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(format!("{}: {e}", dir.display())),
            }
        }
        store.next_ci = store.next_ci.max(ci + 1);
        store.apps.insert(
            ci,
            AppRecord {
                model_name: a["ModelName"].as_str().unwrap_or_default().to_string(),
                deployment_type,
                revision: a["CIVersion"].as_u64().and_then(|r| u32::try_from(r).ok()).unwrap_or(1),
                expired: a["IsExpired"] == true,
                sdm,
                title: a["LocalizedDisplayName"].as_str().unwrap_or_default().to_string(),
                version: a["SoftwareVersion"].as_str().unwrap_or_default().to_string(),
                publisher: a["Manufacturer"].as_str().unwrap_or_default().to_string(),
            },
        );
    }
    for d in documents["SMS_ApplicationAssignment"].as_array().into_iter().flatten() {
        let id = d["AssignmentID"].as_u64().ok_or("a recorded SMS_ApplicationAssignment has no AssignmentID")?;
        store.next_assignment = store.next_assignment.max(id + 1);
        store.assignments.insert(id, d.clone());
    }
    let site_id = documents["SMS_Identification"][0]["ThisSiteID"].as_str().map(str::to_string);
    let applications = store.apps.len();
    super::write_seeded(file, &store)?;
    Ok(Seeded { applications, site_id })
}

#[cfg(test)]
mod seed_tests {
    use super::*;

    fn sdm(location: &str, file: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="utf-16"?><AppMgmtDigest xmlns="http://schemas.microsoft.com/SystemCenterConfigurationManager/2009/AppMgmtDigest"><Application LogicalName="Application_1"/><DeploymentType LogicalName="DeploymentType_1"><Installer><Contents><Content ContentId="c"><File Name="{file}" Size="1024"/><Location>{location}</Location></Content></Contents></Installer></DeploymentType></AppMgmtDigest>"#
        )
    }

    #[test]
    fn a_seeded_share_holds_the_recorded_files_and_nothing_outside_it() {
        let dir = tempfile::tempdir().unwrap();
        let share = dir.path().join("share");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"precious").unwrap();
        let hostile = [
            (format!("\\\\cm01\\src\\{}", outside.display()), "keep".to_string()),
            ("\\\\cm01\\src\\..\\..\\outside".to_string(), "keep".to_string()),
            ("\\\\cm01\\src\\app".to_string(), "..".to_string()),
            ("\\\\cm01\\src\\C:\\x".to_string(), "keep".to_string()),
        ];
        let mut apps: Vec<Value> = hostile
            .iter()
            .enumerate()
            .map(|(i, (loc, file))| json!({ "CI_ID": 100 + i, "ModelName": format!("m{i}"), "SDMPackageXML": sdm(loc, file) }))
            .collect();
        apps.push(json!({ "CI_ID": 7, "ModelName": "ok", "CIVersion": 3, "SDMPackageXML": sdm("\\\\cm01\\src\\app\\1.0", "app.msi") }));
        let documents = json!({
            "SMS_Application": apps,
            "SMS_ApplicationAssignment": [{ "AssignmentID": 16777300, "ApplicationName": "ok" }],
            "SMS_Identification": [{ "ThisSiteID": "{ABC}" }],
        });
        let seeded = seed(&dir.path().join("site.json"), &documents, "\\\\cm01\\src", &share).unwrap();
        assert_eq!(seeded, Seeded { applications: 5, site_id: Some("{ABC}".into()) });
        assert_eq!(std::fs::read(outside.join("keep")).unwrap(), b"precious");
        let placeholder = share.join("app/1.0/app.msi");
        assert_eq!(std::fs::metadata(&placeholder).unwrap().len(), 1024);
        let files: Vec<_> =
            walkdir::WalkDir::new(&share).into_iter().flatten().filter(|e| e.file_type().is_file()).collect();
        assert_eq!(files.len(), 1, "{files:?}");
        let site = Emulator::open(&dir.path().join("site.json"), SiteOptions::default()).unwrap();
        let store = site.store.lock().unwrap();
        assert_eq!(store.apps[&7].revision, 3);
        assert_eq!(store.apps[&7].deployment_type, "DeploymentType_1");
        assert_eq!(store.next_ci, 16_777_217, "CI_IDs below the site's first are kept; new ones come after");
        assert_eq!(store.next_assignment, 16777301);
    }
}
