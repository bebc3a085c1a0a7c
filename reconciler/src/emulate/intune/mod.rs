//! An emulator of the Microsoft Graph (beta) endpoints patchops uses for Intune Win32 apps:
//! `deviceAppManagement/mobileApps` (list with paging, `$expand` on the list refused as Graph
//! deprecates it; each app's `assignments` and `relationships`, paged; create, read, patch,
//! delete), `assign`. It validates request bodies the way the live
//! service does (see the reference notes `intune-graph.md` of the steering repository) and answers errors in Graph's
//! `{"error": {"code", "message"}}` shape.
//!
//! Content (`content.rs`): content versions and files with their asynchronous upload and commit
//! states, an Azure-Blob-like endpoint for blocks and block lists behind an expiring SAS, and a
//! commit that checks the uploaded bytes decrypt with the given keys and match fileDigest and
//! mac. Tokens and supersedence arrive later in the Intune issue.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::EmulatorOptions;

mod content;
pub mod metadata;
mod token;

pub use token::{default_permissions, RegisteredApp};

/// The Graph base path of Win32 app management.
pub const APPS: &str = "/beta/deviceAppManagement/mobileApps";

/// Items per page of a list; the client must follow `@odata.nextLink`.
const PAGE: usize = 50;

/// Assignment intents Graph accepts.

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Store {
    next_id: u64,
    apps: BTreeMap<String, Value>,
    #[serde(default)]
    assignments: BTreeMap<String, Vec<Value>>,
    /// Content versions per app.
    #[serde(default)]
    content_versions: BTreeMap<String, Vec<String>>,
    /// Content files by id (mobileAppContentFile, plus the emulator's bookkeeping under `_`).
    #[serde(default)]
    files: BTreeMap<String, Value>,
    /// Relationships (supersedence, dependency) per source app.
    #[serde(default)]
    relationships: BTreeMap<String, Vec<Value>>,
    /// The directory's groups by object id (Graph `group` resources).
    #[serde(default)]
    groups: BTreeMap<String, Value>,
}

/// A group of the emulated tenant's Entra ID directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Its object id (a GUID).
    pub id: String,
    /// Its `displayName`; several groups may share one, as in Entra ID.
    pub display_name: String,
}

impl Group {
    /// A group named `display_name` under an id of the tenant's own, the same each time for
    /// the same `tenant` and name (so that a restarted emulator keeps its directory).
    pub fn named(tenant: &str, display_name: &str) -> Group {
        let id = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_URL,
            format!("patchops:emulated-tenant:{tenant}:group:{display_name}").as_bytes(),
        );
        Group { id: id.to_string(), display_name: display_name.to_string() }
    }
}

/// The emulator's state and options.
#[derive(Debug)]
pub struct Emulator {
    store: Mutex<Store>,
    file: PathBuf,
    pub(super) options: EmulatorOptions,
    tokens: Mutex<token::TokenState>,
    requests: AtomicU32,
    /// The writes of the last window: when, and by which app registration.
    writes: Mutex<std::collections::VecDeque<(std::time::Instant, String)>>,
}

type Shared = Arc<Emulator>;

/// Graph's limits on Intune app writes: per app registration and tenant, and per tenant, in a
/// window. [`WriteLimits::DOCUMENTED`] are the service's ("Intune service limits",
/// <https://learn.microsoft.com/graph/throttling-limits#intune-service-limits>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteLimits {
    /// Writes one app registration may send in a window.
    pub per_app: u32,
    /// Writes the tenant takes in a window, from all apps.
    pub per_tenant: u32,
    /// The window.
    pub window: std::time::Duration,
}

impl WriteLimits {
    /// 100 writes per 20 s per app registration, 200 per 20 s per tenant.
    pub const DOCUMENTED: WriteLimits =
        WriteLimits { per_app: 100, per_tenant: 200, window: std::time::Duration::from_secs(20) };
}

/// Refuses a Graph write beyond the tenant's write limits with `429` and the seconds until
/// one more would fit (`Retry-After`), as the service throttles.
async fn limit_writes(
    State(emu): State<Shared>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(limits) = emu.options.intune_write_limits else { return next.run(req).await };
    let write = matches!(
        *req.method(),
        axum::http::Method::POST | axum::http::Method::PATCH | axum::http::Method::PUT | axum::http::Method::DELETE
    );
    if !write {
        return next.run(req).await;
    }
    let app = token::caller(&emu, req.headers());
    let refused = {
        let Ok(mut writes) = emu.writes.lock() else {
            return GraphError(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "state poisoned".into())
                .into_response();
        };
        let now = std::time::Instant::now();
        while writes.front().is_some_and(|(t, _)| now.duration_since(*t) >= limits.window) {
            writes.pop_front();
        }
        let by_app: Vec<std::time::Instant> = writes.iter().filter(|(_, a)| *a == app).map(|(t, _)| *t).collect();
        // The oldest write that must leave the window before this one fits.
        let blocking = if writes.len() >= limits.per_tenant as usize {
            writes.front().map(|(t, _)| *t)
        } else if by_app.len() >= limits.per_app as usize {
            by_app.first().copied()
        } else {
            None
        };
        match blocking {
            Some(oldest) => Some((oldest + limits.window).saturating_duration_since(now)),
            None => {
                writes.push_back((now, app));
                None
            }
        }
    };
    match refused {
        None => next.run(req).await,
        Some(wait) => {
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            let mut resp = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({ "error": { "code": "TooManyRequests", "message": "Too many write requests for this tenant; retry after the time in Retry-After." } })),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
                resp.headers_mut().insert("retry-after", v);
            }
            resp
        }
    }
}

/// A Graph error response.
struct GraphError(StatusCode, &'static str, String);

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let GraphError(status, code, message) = self;
        let mut resp = (status, Json(json!({ "error": { "code": code, "message": message } }))).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            resp.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
        }
        resp
    }
}

fn bad(message: impl Into<String>) -> GraphError {
    GraphError(StatusCode::BAD_REQUEST, "ModelValidationFailure", message.into())
}

/// An action's body holds its parameters and nothing else.
fn only_parameters(body: &Value, parameters: &[&str]) -> Result<(), GraphError> {
    match body.as_object().and_then(|o| o.keys().find(|k| !parameters.contains(&k.as_str()))) {
        Some(k) => {
            Err(bad(format!("The parameter '{k}' in the request payload is not a valid parameter for the operation.")))
        }
        None => Ok(()),
    }
}

/// The one collection parameter of an action (`assign`, `updateRelationships`), present, alone
/// in the body, and each item conforming to `item_type`.
fn action_items<'a>(body: &'a Value, parameter: &str, item_type: &str) -> Result<&'a Vec<Value>, GraphError> {
    let list = body
        .get(parameter)
        .and_then(Value::as_array)
        .ok_or_else(|| bad(format!("The parameter '{parameter}' is missing.")))?;
    only_parameters(body, &[parameter])?;
    for item in list {
        metadata::conform(item, item_type).map_err(bad)?;
    }
    Ok(list)
}

fn not_found(id: &str) -> GraphError {
    GraphError(StatusCode::NOT_FOUND, "ResourceNotFound", format!("mobileApp {id} does not exist"))
}

impl Emulator {
    /// Opens the emulator's state file (an empty tenant when it does not exist).
    pub fn open(file: &Path, options: EmulatorOptions) -> Result<Emulator, String> {
        // Nothing is in flight while the state is opened: what a killed process half-wrote goes.
        crate::state::sweep_atomic_leftovers(file);
        let store = match std::fs::read(file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                format!("{} is corrupt ({e}); remove it to start the emulated tenant empty", file.display())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Store::default(),
            Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
        };
        // The directory is the tenant's: its groups are written with the next change (opening
        // the tenant writes nothing).
        let mut store: Store = store;
        for g in &options.intune_groups {
            store.groups.insert(
                g.id.clone(),
                json!({
                    "id": g.id,
                    "displayName": g.display_name,
                    "securityEnabled": true,
                    "mailEnabled": false,
                    "groupTypes": [],
                }),
            );
        }
        Ok(Emulator {
            store: Mutex::new(store),
            file: file.to_path_buf(),
            options,
            tokens: Mutex::new(token::TokenState::default()),
            requests: AtomicU32::new(0),
            writes: Mutex::new(std::collections::VecDeque::new()),
        })
    }

    fn throttle(&self) -> Result<(), GraphError> {
        let n = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        match self.options.throttle_every {
            Some(every) if every > 0 && n.is_multiple_of(every) => Err(GraphError(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Too many requests; retry after the time in Retry-After".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Where uploaded blocks and committed content are kept.
    fn blob_dir(&self) -> PathBuf {
        self.file.with_extension("blobs")
    }

    fn with_store<T>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, GraphError>,
        persist: bool,
    ) -> Result<T, GraphError> {
        let mut store = self
            .store
            .lock()
            .map_err(|_| GraphError(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "state poisoned".into()))?;
        let out = f(&mut store)?;
        if persist {
            let bytes = serde_json::to_vec_pretty(&*store)
                .map_err(|e| GraphError(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", e.to_string()))?;
            crate::state::write_atomic(&self.file, &bytes)
                .map_err(|e| GraphError(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", e.to_string()))?;
        }
        Ok(out)
    }
}

/// The router of the emulated Graph endpoints.
pub fn router(emulator: Shared) -> Router {
    let graph = Router::new()
        .route(APPS, get(list_apps).post(create_app))
        .route(&format!("{APPS}/{{id}}"), get(get_app).patch(patch_app).delete(delete_app))
        .route(&format!("{APPS}/{{id}}/assign"), post(assign))
        .route(&format!("{APPS}/{{id}}/assignments"), get(list_assignments))
        .route(&format!("{APPS}/{{id}}/relationships"), get(list_relationships))
        .route(&format!("{APPS}/{{id}}/updateRelationships"), post(update_relationships))
        .route("/v1.0/groups", get(list_groups))
        .route("/beta/groups", get(list_groups))
        .merge(content::graph_routes())
        .route_layer(axum::middleware::from_fn_with_state(emulator.clone(), limit_writes))
        .route_layer(axum::middleware::from_fn_with_state(emulator.clone(), token::require_bearer));
    graph.merge(content::blob_routes()).merge(token::routes()).with_state(emulator)
}

fn guid(seed: u64) -> String {
    use sha2::Digest;
    // Unique across restarts of the emulator: the counter, and randomness.
    let mut salt = [0u8; 16];
    let _ = getrandom::fill(&mut salt);
    let h = sha2::Sha256::digest(format!("patchops-emulated-app-{seed}-{}", hex::encode(salt)));
    let x = hex::encode(&h[..16]);
    format!("{}-{}-{}-{}-{}", &x[0..8], &x[8..12], &x[12..16], &x[16..20], &x[20..32])
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(rename = "$expand")]
    expand: Option<String>,
    #[serde(rename = "$skiptoken")]
    skiptoken: Option<usize>,
    #[serde(rename = "$filter")]
    filter: Option<String>,
}

async fn list_apps(
    State(emu): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, GraphError> {
    emu.throttle()?;
    let skip = q.skiptoken.unwrap_or(0);
    // "Listing mobile apps with $expand=assignments has been deprecated. Instead get the list
    // of apps without the $expand query on assignments. Then, perform the expansion on
    // individual applications." (mobileApp resource type, Graph beta,
    // https://learn.microsoft.com/graph/api/resources/intune-apps-mobileapp?view=graph-rest-beta).
    // The same holds for relationships here: a client must read both per app.
    if let Some(p) = q.expand.as_deref().into_iter().flat_map(|e| e.split(',')).map(str::trim).next() {
        return Err(match p {
            "assignments" | "relationships" => bad(format!(
                "Listing mobile apps with $expand={p} is not supported; list the apps without it and read each app's {p} (GET mobileApps/{{id}}/{p})."
            )),
            "categories" => bad("$expand is not supported on this list in the emulated tenant; read each app instead."),
            unknown => bad(format!("Could not find a property named '{unknown}' on type 'microsoft.graph.mobileApp'.")),
        });
    }
    let only_win32 = q.filter.as_deref().is_some_and(|f| f.contains("isof('microsoft.graph.win32LobApp')"));
    emu.with_store(
        |s| {
            let all: Vec<&Value> = s
                .apps
                .values()
                .filter(|a| !only_win32 || a["@odata.type"] == "#microsoft.graph.win32LobApp")
                .collect();
            let page: Vec<Value> = all
                .iter()
                .skip(skip)
                .take(PAGE)
                .map(|a| (*a).clone())
                .collect();
            let mut body = json!({ "@odata.context": "https://graph.microsoft.com/beta/$metadata#deviceAppManagement/mobileApps", "value": page });
            if skip + PAGE < all.len() {
                let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
                let mut next = format!("http://{host}{APPS}?$skiptoken={}", skip + PAGE);
                if only_win32 {
                    next += "&$filter=isof('microsoft.graph.win32LobApp')";
                }
                body["@odata.nextLink"] = Value::String(next);
            }
            Ok(Json(body))
        },
        false,
    )
}

/// The checks the live service makes on a new win32LobApp.
fn validate_win32(app: &Value) -> Result<(), GraphError> {
    match app.get("@odata.type").and_then(Value::as_str) {
        Some("#microsoft.graph.win32LobApp") => {}
        Some(other) => {
            return Err(bad(format!("The type '{other}' is not a supported mobileApp type for this request.")))
        }
        None => return Err(bad("A type must be specified: the mobileApp type is abstract; send @odata.type.")),
    }
    for required in ["displayName", "publisher", "fileName", "setupFilePath", "installCommandLine"] {
        if app.get(required).and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(bad(format!("The property '{required}' is required.")));
        }
    }
    if app.get("applicableArchitectures").is_some_and(|v| !v.is_string()) {
        return Err(bad("Cannot convert the literal to the expected type 'microsoft.graph.windowsArchitecture': flags are sent as a comma-separated string."));
    }
    let rules = app.get("rules").and_then(Value::as_array);
    let legacy = app.get("detectionRules").and_then(Value::as_array);
    if rules.is_some() && legacy.is_some() {
        return Err(bad("Specify either rules or detectionRules, not both."));
    }
    let detections = match (rules, legacy) {
        (Some(r), _) => r.iter().filter(|x| x["ruleType"] == "detection").count(),
        (None, Some(d)) => d.len(),
        (None, None) => 0,
    };
    if detections == 0 {
        return Err(bad("The Win32LobApp must have at least one detection rule specified."));
    }
    for r in rules.into_iter().flatten() {
        let ty = r.get("@odata.type").and_then(Value::as_str).unwrap_or_default();
        if !matches!(
            ty,
            "#microsoft.graph.win32LobAppProductCodeRule"
                | "#microsoft.graph.win32LobAppFileSystemRule"
                | "#microsoft.graph.win32LobAppRegistryRule"
                | "#microsoft.graph.win32LobAppPowerShellScriptRule"
        ) {
            return Err(bad(format!("A rule needs a concrete @odata.type; got '{ty}'.")));
        }
        if ty == "#microsoft.graph.win32LobAppProductCodeRule" && r.get("operator").is_some() {
            return Err(bad("The property 'operator' does not exist on type 'microsoft.graph.win32LobAppProductCodeRule'. Use productVersionOperator."));
        }
    }
    Ok(())
}

async fn create_app(
    State(emu): State<Shared>,
    Json(mut app): Json<Value>,
) -> Result<(StatusCode, Json<Value>), GraphError> {
    emu.throttle()?;
    validate_win32(&app)?;
    metadata::conform(&app, "mobileApp").map_err(bad)?;
    emu.with_store(
        |s| {
            s.next_id += 1;
            let id = guid(s.next_id);
            let now = emu.options.clock.now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            app["id"] = Value::String(id.clone());
            app["createdDateTime"] = Value::String(now.clone());
            app["lastModifiedDateTime"] = Value::String(now);
            app["publishingState"] = Value::String("notPublished".into());
            app["uploadState"] = json!(0);
            s.apps.insert(id, app.clone());
            Ok((StatusCode::CREATED, Json(app)))
        },
        true,
    )
}

async fn get_app(State(emu): State<Shared>, UrlPath(id): UrlPath<String>) -> Result<Json<Value>, GraphError> {
    emu.throttle()?;
    emu.with_store(|s| s.apps.get(&id).cloned().map(Json).ok_or_else(|| not_found(&id)), false)
}

async fn patch_app(
    State(emu): State<Shared>,
    UrlPath(id): UrlPath<String>,
    Json(patch): Json<Value>,
) -> Result<StatusCode, GraphError> {
    emu.throttle()?;
    let Value::Object(patch) = patch else { return Err(bad("The request body must be a JSON object.")) };
    if patch.get("@odata.type").is_some() || !patch.contains_key("committedContentVersion") {
        metadata::conform_patch(&Value::Object(patch.clone()), "mobileApp").map_err(bad)?;
    }
    emu.with_store(
        |s| {
            if let Some(v) = patch.get("committedContentVersion") {
                let v = v.as_str().unwrap_or_default();
                if !content::committed(s, &id, v) {
                    return Err(bad(format!(
                        "Content version '{v}' of app {id} has no committed file; upload and commit it first."
                    )));
                }
            }
            let app = s.apps.get_mut(&id).ok_or_else(|| not_found(&id))?;
            if patch.contains_key("committedContentVersion") {
                app["publishingState"] = json!("published");
            }
            if let Some(t) = patch.get("@odata.type") {
                if t != &app["@odata.type"] {
                    return Err(bad("The @odata.type of an existing mobileApp cannot change."));
                }
            } else if patch.contains_key("committedContentVersion") {
                return Err(bad("The property 'committedContentVersion' does not exist on type 'microsoft.graph.mobileApp'; send @odata.type #microsoft.graph.win32LobApp."));
            }
            for (k, v) in patch {
                if k != "id" {
                    app[k.as_str()] = v;
                }
            }
            app["lastModifiedDateTime"] =
                Value::String(emu.options.clock.now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            Ok(StatusCode::NO_CONTENT)
        },
        true,
    )
}

async fn delete_app(State(emu): State<Shared>, UrlPath(id): UrlPath<String>) -> Result<StatusCode, GraphError> {
    emu.throttle()?;
    emu.with_store(
        |s| {
            if !s.apps.contains_key(&id) {
                return Err(not_found(&id));
            }
            // An app that another app supersedes or depends on cannot be deleted: the
            // relationship has to go first.
            if let Some((parent, _)) =
                s.relationships.iter().find(|(src, list)| **src != id && list.iter().any(|r| r["targetId"] == id.as_str()))
            {
                return Err(bad(format!(
                    "The app {id} cannot be deleted: app {parent} has a supersedence or dependency relationship with it. Remove the relationship first."
                )));
            }
            s.apps.remove(&id);
            s.assignments.remove(&id);
            s.content_versions.remove(&id);
            // The app's own relationships go with it.
            s.relationships.remove(&id);
            s.files.retain(|_, f| f["_"]["app"] != id.as_str());
            Ok(StatusCode::NO_CONTENT)
        },
        true,
    )
}

async fn assign(
    State(emu): State<Shared>,
    UrlPath(id): UrlPath<String>,
    Json(body): Json<Value>,
) -> Result<StatusCode, GraphError> {
    emu.throttle()?;
    let list = action_items(&body, "mobileAppAssignments", "mobileAppAssignment")?;
    let mut stored = Vec::new();
    for (i, a) in list.iter().enumerate() {
        if a["@odata.type"] != "#microsoft.graph.mobileAppAssignment" {
            return Err(bad("Each assignment needs @odata.type #microsoft.graph.mobileAppAssignment."));
        }
        // The metadata check has judged the member; Graph also requires one.
        if a["intent"].as_str().is_none() {
            return Err(bad("The property 'intent' is required."));
        }
        let target = &a["target"];
        let group = match target["@odata.type"].as_str() {
            Some("#microsoft.graph.groupAssignmentTarget" | "#microsoft.graph.exclusionGroupAssignmentTarget") => {
                target["groupId"].as_str().filter(|g| !g.is_empty()).ok_or_else(|| bad("groupId is required."))?
            }
            Some(
                "#microsoft.graph.allDevicesAssignmentTarget" | "#microsoft.graph.allLicensedUsersAssignmentTarget",
            ) => "all",
            _ => return Err(bad("The assignment target needs a concrete @odata.type.")),
        };
        if let Some(settings) = a.get("settings").filter(|s| !s.is_null()) {
            if settings["@odata.type"] != "#microsoft.graph.win32LobAppAssignmentSettings" {
                return Err(bad("Assignment settings of a Win32 app need @odata.type #microsoft.graph.win32LobAppAssignmentSettings."));
            }
            // Auto-update of superseded apps is a setting of available assignments: Intune
            // offers it only there (a required assignment installs the new app anyway). The
            // metadata check has judged the enum member.
            if settings["autoUpdateSettings"]["autoUpdateSupersededAppsState"] == "enabled"
                && a["intent"] != "available"
            {
                return Err(bad(format!(
                    "autoUpdateSupersededAppsState 'enabled' is supported only for assignments with intent 'available', not '{}'.",
                    a["intent"].as_str().unwrap_or_default()
                )));
            }
        }
        if group != "all" && !is_guid(group) {
            // groupAssignmentTarget.groupId holds a directory object id.
            return Err(bad(format!(
                "Invalid groupId '{group}': an assignment targets a group by its Entra ID object id (a GUID)."
            )));
        }
        let mut a = a.clone();
        a["id"] = Value::String(format!("{group}_{i}_0"));
        stored.push(a);
    }
    emu.with_store(
        |s| {
            if !s.groups.is_empty() {
                for a in &stored {
                    let group = a["target"]["groupId"].as_str().unwrap_or_default();
                    if !group.is_empty() && !s.groups.contains_key(group) {
                        return Err(GraphError(
                            StatusCode::BAD_REQUEST,
                            "BadRequest",
                            format!("The group {group} does not exist in the tenant's directory."),
                        ));
                    }
                }
            }
            let app = s.apps.get(&id).ok_or_else(|| not_found(&id))?;
            if !stored.is_empty() && app["publishingState"] != "published" {
                return Err(bad(format!(
                    "The app {id} cannot be assigned before it is published (publishingState {}); commit its content first.",
                    app["publishingState"].as_str().unwrap_or("notPublished")
                )));
            }
            s.assignments.insert(id.clone(), stored);
            Ok(StatusCode::NO_CONTENT)
        },
        true,
    )
}

/// An object id as Graph writes it: a GUID, 8-4-4-4-12 hexadecimal digits.
fn is_guid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok()
}

#[derive(Deserialize)]
struct GroupQuery {
    #[serde(rename = "$filter")]
    filter: Option<String>,
    #[serde(rename = "$select")]
    select: Option<String>,
}

/// `GET /groups` ("List groups", Graph v1.0 and beta): with `$filter=displayName eq '…'` (a
/// quote inside the literal doubled, as OData writes it) and `$select`. Other filters are
/// refused here, as an unsupported query is by the directory.
async fn list_groups(
    State(emu): State<Shared>,
    headers: axum::http::HeaderMap,
    Query(q): Query<GroupQuery>,
) -> Result<Json<Value>, GraphError> {
    emu.throttle()?;
    // "List groups" needs GroupMember.Read.All, Group.Read.All, Directory.Read.All (or a
    // ReadWrite variant) as an application permission; without one Graph answers 403
    // Authorization_RequestDenied.
    if !token::holds(
        &emu,
        &headers,
        &[
            "GroupMember.Read.All",
            "Group.Read.All",
            "Directory.Read.All",
            "Group.ReadWrite.All",
            "Directory.ReadWrite.All",
        ],
    ) {
        return Err(GraphError(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.".into(),
        ));
    }
    let wanted = match q.filter.as_deref() {
        None => None,
        Some(f) => Some(display_name_filter(f).ok_or_else(|| {
            GraphError(
                StatusCode::BAD_REQUEST,
                "Request_UnsupportedQuery",
                format!("Unsupported or invalid query filter clause specified for property 'displayName' of resource 'Group': {f}"),
            )
        })?),
    };
    let select: Option<Vec<String>> = q.select.as_deref().map(|s| s.split(',').map(|p| p.trim().to_string()).collect());
    emu.with_store(
        |s| {
            let value: Vec<Value> = s
                .groups
                .values()
                // Directory string comparisons ignore case.
                .filter(|g| {
                    wanted
                        .as_deref()
                        .is_none_or(|w| g["displayName"].as_str().is_some_and(|n| n.to_lowercase() == w.to_lowercase()))
                })
                .map(|g| match &select {
                    None => g.clone(),
                    Some(props) => {
                        Value::Object(props.iter().filter_map(|p| g.get(p).map(|v| (p.clone(), v.clone()))).collect())
                    }
                })
                .collect();
            Ok(Json(json!({ "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#groups", "value": value })))
        },
        false,
    )
}

/// The literal of `displayName eq '…'`, with doubled quotes read as one.
fn display_name_filter(filter: &str) -> Option<String> {
    let rest = filter.trim().strip_prefix("displayName")?.trim_start().strip_prefix("eq")?.trim_start();
    let inner = rest.strip_prefix('\'')?.strip_suffix('\'')?;
    // Every quote inside must be doubled.
    let mut out = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' && chars.next() != Some('\'') {
            return None;
        }
        out.push(c);
    }
    Some(out)
}

/// Items per page of an app's assignments or relationships (small, so that clients are seen to
/// follow `@odata.nextLink` there too).
const ITEM_PAGE: usize = 5;

#[derive(Deserialize)]
struct PageQuery {
    #[serde(rename = "$skiptoken")]
    skiptoken: Option<usize>,
}

/// One page of `items`, with the link to the next.
fn paged(items: &[Value], skip: usize, headers: &HeaderMap, path: &str) -> Json<Value> {
    let mut body = json!({ "value": items.iter().skip(skip).take(ITEM_PAGE).cloned().collect::<Vec<_>>() });
    if skip + ITEM_PAGE < items.len() {
        let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
        body["@odata.nextLink"] = Value::String(format!("http://{host}{path}?$skiptoken={}", skip + ITEM_PAGE));
    }
    Json(body)
}

async fn list_assignments(
    State(emu): State<Shared>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<Value>, GraphError> {
    emu.throttle()?;
    emu.with_store(
        |s| {
            if !s.apps.contains_key(&id) {
                return Err(not_found(&id));
            }
            let items = s.assignments.get(&id).map_or(&[][..], Vec::as_slice);
            Ok(paged(items, q.skiptoken.unwrap_or(0), &headers, &format!("{APPS}/{id}/assignments")))
        },
        false,
    )
}

/// Most supersedence relationships an app may have.
/// Apps one supersedence graph may connect (Intune's documented limit).
const MAX_GRAPH_NODES: usize = 10;

const MAX_SUPERSEDENCES: usize = 10;

async fn update_relationships(
    State(emu): State<Shared>,
    UrlPath(id): UrlPath<String>,
    Json(body): Json<Value>,
) -> Result<StatusCode, GraphError> {
    emu.throttle()?;
    let list = action_items(&body, "relationships", "mobileAppRelationship")?.clone();
    emu.with_store(
        |s| {
            if !s.apps.contains_key(&id) {
                return Err(not_found(&id));
            }
            let mut stored = Vec::new();
            let mut supersedences = 0;
            for r in &list {
                let target = r["targetId"].as_str().unwrap_or_default();
                let target_app =
                    s.apps.get(target).ok_or_else(|| bad(format!("The target app '{target}' does not exist.")))?;
                if target == id {
                    return Err(bad("An app cannot have a relationship with itself."));
                }
                let mut kept = json!({
                    "@odata.type": r["@odata.type"],
                    "id": format!("{id}_{target}"),
                    "sourceId": id,
                    "targetId": target,
                    "targetDisplayName": target_app["displayName"],
                    "targetDisplayVersion": target_app["displayVersion"],
                    "targetPublisher": target_app["publisher"],
                    "targetType": "child",
                });
                match r["@odata.type"].as_str() {
                    Some("#microsoft.graph.mobileAppSupersedence") => {
                        // The metadata check has judged the member; Graph also requires one.
                        let ty = r["supersedenceType"]
                            .as_str()
                            .ok_or_else(|| bad("The property 'supersedenceType' is required."))?;
                        kept["supersedenceType"] = json!(ty);
                        supersedences += 1;
                    }
                    Some("#microsoft.graph.mobileAppDependency") => {
                        kept["dependencyType"] = r["dependencyType"].clone();
                    }
                    _ => return Err(bad(
                        "A relationship needs a concrete @odata.type (mobileAppSupersedence or mobileAppDependency).",
                    )),
                }
                stored.push(kept);
            }
            if supersedences > MAX_SUPERSEDENCES {
                return Err(bad(format!("An app can supersede at most {MAX_SUPERSEDENCES} apps.")));
            }
            // "There can be a maximum of 10 nodes in a supersedence relationship in Intune"
            // (Add Win32 app supersedence): the apps connected to this one, either way, with
            // the new set in place.
            let mut edges: Vec<(String, String)> = s
                .relationships
                .iter()
                .filter(|(src, _)| **src != id)
                .flat_map(|(src, list)| {
                    list.iter().filter_map(move |r| r["targetId"].as_str().map(|t| (src.clone(), t.to_string())))
                })
                .collect();
            edges.extend(stored.iter().filter_map(|r| r["targetId"].as_str().map(|t| (id.clone(), t.to_string()))));
            let mut graph = std::collections::BTreeSet::from([id.clone()]);
            loop {
                let before = graph.len();
                for (a, b) in &edges {
                    if graph.contains(a) || graph.contains(b) {
                        graph.insert(a.clone());
                        graph.insert(b.clone());
                    }
                }
                if graph.len() == before {
                    break;
                }
            }
            if graph.len() > MAX_GRAPH_NODES {
                return Err(bad(format!(
                    "A supersedence graph can hold at most {MAX_GRAPH_NODES} apps; these relationships would connect {}.",
                    graph.len()
                )));
            }
            s.relationships.insert(id.clone(), stored);
            Ok(StatusCode::NO_CONTENT)
        },
        true,
    )
}

async fn list_relationships(
    State(emu): State<Shared>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<Value>, GraphError> {
    emu.throttle()?;
    emu.with_store(
        |s| {
            if !s.apps.contains_key(&id) {
                return Err(not_found(&id));
            }
            // Both directions, as Graph lists them: the app's own relationships (targetType
            // child) and those of apps that point at it (targetType parent, read-only).
            let mut items: Vec<Value> = s.relationships.get(&id).cloned().unwrap_or_default();
            for (source, list) in &s.relationships {
                for r in list.iter().filter(|r| r["targetId"] == id.as_str()) {
                    let app = s.apps.get(source);
                    let mut parent = r.clone();
                    parent["id"] = json!(format!("{source}_{id}_parent"));
                    parent["targetId"] = json!(source);
                    parent["targetType"] = json!("parent");
                    parent["targetDisplayName"] = app.map_or(Value::Null, |a| a["displayName"].clone());
                    parent["targetDisplayVersion"] = app.map_or(Value::Null, |a| a["displayVersion"].clone());
                    parent["targetPublisher"] = app.map_or(Value::Null, |a| a["publisher"].clone());
                    items.push(parent);
                }
            }
            Ok(paged(&items, q.skiptoken.unwrap_or(0), &headers, &format!("{APPS}/{id}/relationships")))
        },
        false,
    )
}

/// Writes the state file of an emulated tenant that holds what a real one listed: `documents`
/// is `{"mobileApps": [...]}`, each app as Graph returned it with, for apps patchops manages,
/// its `assignments` and `relationships` read into it (what `patchops inventory record`
/// keeps). Relationships Graph listed from the target's side (`targetType: parent`) are kept
/// as the source app's, as Graph stores them; content versions up to each app's
/// `committedContentVersion` exist (committed), so the next one gets the next number, as in the
/// service. Returns how many apps it holds.
pub fn seed(file: &Path, documents: &Value) -> Result<usize, String> {
    let apps = documents["mobileApps"]
        .as_array()
        .ok_or("the recorded documents have no mobileApps list (record the inventory again)")?;
    let mut store = Store::default();
    for app in apps {
        let id = app["id"].as_str().filter(|i| !i.is_empty()).ok_or("a recorded mobileApp has no id")?.to_string();
        let mut doc = app.clone();
        let (assignments, relationships) = match doc.as_object_mut() {
            Some(o) => (o.remove("assignments"), o.remove("relationships")),
            None => return Err(format!("the recorded mobileApp {id} is not an object")),
        };
        if let Some(Value::Array(a)) = assignments {
            store.assignments.insert(id.clone(), a);
        }
        for r in relationships.as_ref().and_then(Value::as_array).into_iter().flatten() {
            let target = r["targetId"].as_str().unwrap_or_default().to_string();
            let (source, target) =
                if r["targetType"] == "parent" { (target, id.clone()) } else { (id.clone(), target) };
            let list = store.relationships.entry(source.clone()).or_default();
            if list.iter().any(|k| k["targetId"] == target.as_str()) {
                continue;
            }
            let mut kept = r.clone();
            kept["id"] = json!(format!("{source}_{target}"));
            kept["sourceId"] = json!(source);
            kept["targetId"] = json!(target);
            kept["targetType"] = json!("child");
            list.push(kept);
        }
        let committed: usize = doc["committedContentVersion"].as_str().and_then(|v| v.parse().ok()).unwrap_or(0);
        if committed > 0 {
            store.content_versions.insert(id.clone(), (1..=committed.min(10_000)).map(|n| n.to_string()).collect());
        }
        store.apps.insert(id, doc);
    }
    // A parent listed only from its target's side has its display fields from its own app.
    for list in store.relationships.values_mut() {
        for r in list.iter_mut() {
            if let Some(t) = r["targetId"].as_str().and_then(|t| store.apps.get(t)) {
                r["targetDisplayName"] = t["displayName"].clone();
                r["targetDisplayVersion"] = t["displayVersion"].clone();
                r["targetPublisher"] = t["publisher"].clone();
            }
        }
    }
    let count = store.apps.len();
    super::write_seeded(file, &store)?;
    Ok(count)
}
