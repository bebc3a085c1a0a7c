//! Win32 app content: content versions, content files with their asynchronous states, the blob
//! endpoint (blocks, block list, expiring SAS) and the commit check.
//!
//! The commit is checked the way the service must: the committed blob is `HMAC ‖ IV ‖
//! ciphertext`; the HMAC-SHA256 under `macKey` over `IV ‖ ciphertext` must equal `mac` and the
//! blob's first 32 bytes, the ciphertext must decrypt (AES-256-CBC, PKCS#7) under
//! `encryptionKey`, and the plaintext's SHA-256 must equal `fileDigest`. This is written here,
//! apart from the packer, so that a packer bug cannot hide behind a matching emulator bug.

use std::io::{Read, Write};

use aes::cipher::{BlockDecryptMut, KeyIvInit};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine as _;
use hmac::Mac;
use serde_json::{json, Value};
use sha2::Digest;

use super::{bad, not_found, GraphError, Shared, APPS};

/// How long a SAS URI stays valid.
const SAS_LIFETIME: chrono::Duration = chrono::Duration::minutes(10);

const VERSIONS: &str = "microsoft.graph.win32LobApp/contentVersions";

pub(super) fn graph_routes() -> Router<Shared> {
    Router::new()
        .route(&format!("{APPS}/{{id}}/{VERSIONS}"), post(create_version))
        .route(&format!("{APPS}/{{id}}/{VERSIONS}/{{v}}/files"), post(create_file))
        .route(&format!("{APPS}/{{id}}/{VERSIONS}/{{v}}/files/{{f}}"), get(get_file))
        .route(&format!("{APPS}/{{id}}/{VERSIONS}/{{v}}/files/{{f}}/commit"), post(commit_file))
        .route(&format!("{APPS}/{{id}}/{VERSIONS}/{{v}}/files/{{f}}/renewUpload"), post(renew_upload))
}

/// The blob endpoint: authorized by its SAS, not by a Graph token.
pub(super) fn blob_routes() -> Router<Shared> {
    // Azure accepts blocks of up to 100 MiB (4000 MiB in newer service versions); axum's default
    // body limit is 2 MB.
    Router::new().route("/blob/{f}", put(put_blob)).layer(axum::extract::DefaultBodyLimit::max(100 << 20))
}

fn sas(now: chrono::DateTime<chrono::Utc>, host: &str, file: &str) -> (String, String) {
    let expiry = now + SAS_LIFETIME;
    let sig = hex::encode(
        &sha2::Sha256::digest(format!("{file}{}{}", expiry.timestamp(), expiry.timestamp_subsec_nanos()))[..16],
    );
    (
        format!("http://{host}/blob/{file}?sv=2019-02-02&se={}&sr=b&sp=rw&sig={sig}", expiry.timestamp()),
        expiry.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

fn host(headers: &HeaderMap) -> String {
    headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1").to_string()
}

async fn create_version(
    State(emu): State<Shared>,
    UrlPath(id): UrlPath<String>,
) -> Result<(StatusCode, Json<Value>), GraphError> {
    emu.throttle()?;
    emu.with_store(
        |s| {
            if !s.apps.contains_key(&id) {
                return Err(not_found(&id));
            }
            let versions = s.content_versions.entry(id.clone()).or_default();
            let v = (versions.len() + 1).to_string();
            versions.push(v.clone());
            Ok((StatusCode::CREATED, Json(json!({ "@odata.type": "#microsoft.graph.mobileAppContent", "id": v }))))
        },
        true,
    )
}

async fn create_file(
    State(emu): State<Shared>,
    UrlPath((id, v)): UrlPath<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), GraphError> {
    emu.throttle()?;
    if body["@odata.type"] != "#microsoft.graph.mobileAppContentFile" {
        return Err(bad("The content file needs @odata.type #microsoft.graph.mobileAppContentFile."));
    }
    super::metadata::conform(&body, "mobileAppContentFile").map_err(bad)?;
    let name =
        body["name"].as_str().filter(|n| !n.is_empty()).ok_or_else(|| bad("The property 'name' is required."))?;
    let size = body["size"].as_u64().ok_or_else(|| bad("The property 'size' is required."))?;
    let size_encrypted =
        body["sizeEncrypted"].as_u64().ok_or_else(|| bad("The property 'sizeEncrypted' is required."))?;
    let name = name.to_string();
    emu.with_store(
        |s| {
            if !s.content_versions.get(&id).is_some_and(|vs| vs.contains(&v)) {
                return Err(GraphError(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFound",
                    format!("content version {v} of {id} does not exist"),
                ));
            }
            s.next_id += 1;
            let fid = super::guid(s.next_id);
            let (uri, expiry) = sas(emu.options.clock.now(), &host(&headers), &fid);
            let file = json!({
                "@odata.type": "#microsoft.graph.mobileAppContentFile",
                "id": fid,
                "name": name,
                "size": size,
                "sizeEncrypted": size_encrypted,
                "manifest": null,
                "isDependency": body["isDependency"].as_bool().unwrap_or(false),
                "isCommitted": false,
                "uploadState": "azureStorageUriRequestPending",
                "azureStorageUri": null,
                "azureStorageUriExpirationDateTime": null,
                "_": { "app": id, "version": v, "uri": uri, "expiry": expiry },
            });
            s.files.insert(fid, file.clone());
            Ok((StatusCode::CREATED, Json(public(&file))))
        },
        true,
    )
}

/// The file as Graph shows it (without the emulator's bookkeeping).
fn public(file: &Value) -> Value {
    let mut f = file.clone();
    if let Some(o) = f.as_object_mut() {
        o.remove("_");
    }
    f
}

async fn get_file(
    State(emu): State<Shared>,
    UrlPath((_, _, f)): UrlPath<(String, String, String)>,
) -> Result<Json<Value>, GraphError> {
    emu.throttle()?;
    let dir = emu.blob_dir();
    let fail_commits = emu.options.fail_commits;
    emu.with_store(
        |s| {
            let file = s.files.get_mut(&f).ok_or_else(|| not_found(&f))?;
            // Asynchronous states move on when they are looked at, as a background job would.
            match file["uploadState"].as_str().unwrap_or_default() {
                "azureStorageUriRequestPending" | "azureStorageUriRenewalPending" => {
                    let renewal = file["uploadState"] == "azureStorageUriRenewalPending";
                    file["azureStorageUri"] = file["_"]["uri"].clone();
                    file["azureStorageUriExpirationDateTime"] = file["_"]["expiry"].clone();
                    file["uploadState"] =
                        json!(if renewal { "azureStorageUriRenewalSuccess" } else { "azureStorageUriRequestSuccess" });
                }
                "commitFilePending" => match verify_commit(&dir, &f, file).and_then(|()| {
                    if fail_commits {
                        Err("commit failure injected by the emulator".to_string())
                    } else {
                        Ok(())
                    }
                }) {
                    Ok(()) => {
                        file["uploadState"] = json!("commitFileSuccess");
                        file["isCommitted"] = json!(true);
                    }
                    Err(reason) => {
                        file["uploadState"] = json!("commitFileFailed");
                        file["_"]["failure"] = json!(reason);
                    }
                },
                _ => {}
            }
            Ok(Json(public(file)))
        },
        true,
    )
}

async fn renew_upload(
    State(emu): State<Shared>,
    UrlPath((_, _, f)): UrlPath<(String, String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, GraphError> {
    emu.throttle()?;
    emu.with_store(
        |s| {
            let file = s.files.get_mut(&f).ok_or_else(|| not_found(&f))?;
            let (uri, expiry) = sas(emu.options.clock.now(), &host(&headers), &f);
            file["_"]["uri"] = json!(uri);
            file["_"]["expiry"] = json!(expiry);
            file["_"]["blocksWithThisSas"] = json!(0);
            file["uploadState"] = json!("azureStorageUriRenewalPending");
            Ok(StatusCode::NO_CONTENT)
        },
        true,
    )
}

async fn commit_file(
    State(emu): State<Shared>,
    UrlPath((_, _, f)): UrlPath<(String, String, String)>,
    Json(body): Json<Value>,
) -> Result<StatusCode, GraphError> {
    emu.throttle()?;
    let info = body.get("fileEncryptionInfo").ok_or_else(|| bad("The parameter 'fileEncryptionInfo' is missing."))?;
    super::only_parameters(&body, &["fileEncryptionInfo"])?;
    super::metadata::conform(info, "fileEncryptionInfo").map_err(bad)?;
    for k in [
        "encryptionKey",
        "macKey",
        "initializationVector",
        "mac",
        "fileDigest",
        "profileIdentifier",
        "fileDigestAlgorithm",
    ] {
        if info[k].as_str().is_none_or(str::is_empty) {
            return Err(bad(format!("fileEncryptionInfo.{k} is required.")));
        }
    }
    let info = info.clone();
    emu.with_store(
        |s| {
            let file = s.files.get_mut(&f).ok_or_else(|| not_found(&f))?;
            file["_"]["encryption"] = info;
            file["uploadState"] = json!("commitFilePending");
            Ok(StatusCode::NO_CONTENT)
        },
        true,
    )
}

#[derive(serde::Deserialize)]
struct BlobQuery {
    comp: Option<String>,
    blockid: Option<String>,
    se: Option<i64>,
    sig: Option<String>,
}

/// Azure Blob `Put Block` and `Put Block List`, behind the SAS the file resource handed out.
async fn put_blob(
    State(emu): State<Shared>,
    UrlPath(f): UrlPath<String>,
    Query(q): Query<BlobQuery>,
    body: axum::body::Bytes,
) -> Result<StatusCode, (StatusCode, String)> {
    let denied = |m: &str| {
        (StatusCode::FORBIDDEN, format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthenticationFailed</Code><Message>{m}</Message></Error>"))
    };
    let uri = emu
        .with_store(|s| Ok(s.files.get(&f).map(|x| x["_"]["uri"].as_str().unwrap_or_default().to_string())), false)
        .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, String::new()))?
        .ok_or((StatusCode::NOT_FOUND, "<Error><Code>BlobNotFound</Code></Error>".to_string()))?;
    let (Some(se), Some(sig)) = (q.se, q.sig.as_deref()) else {
        return Err(denied("Signature fields not well formed."));
    };
    if !uri.contains(&format!("se={se}&")) || !uri.ends_with(&format!("sig={sig}")) {
        return Err(denied("Signature did not match."));
    }
    if se <= emu.options.clock.now().timestamp() {
        return Err(denied("Signed expiry time has to be after signed start time: the SAS has expired."));
    }
    if q.comp.as_deref() == Some("block") {
        if let Some(limit) = emu.options.sas_expires_after_blocks {
            let used = emu
                .with_store(
                    |s| {
                        let file = s.files.get_mut(&f).ok_or_else(|| not_found(&f))?;
                        let used = file["_"]["blocksWithThisSas"].as_u64().unwrap_or(0);
                        file["_"]["blocksWithThisSas"] = json!(used + 1);
                        Ok(used)
                    },
                    true,
                )
                .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, String::new()))?;
            if used >= u64::from(limit) {
                return Err(denied("Signed expiry time has passed: the SAS has expired."));
            }
        }
    }
    let dir = emu.blob_dir().join(&f);
    let io_err = |e: std::io::Error| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    match q.comp.as_deref() {
        Some("block") => {
            let id = q
                .blockid
                .ok_or((StatusCode::BAD_REQUEST, "<Error><Code>InvalidQueryParameterValue</Code></Error>".into()))?;
            std::fs::create_dir_all(dir.join("blocks")).map_err(io_err)?;
            std::fs::write(dir.join("blocks").join(hex::encode(id.as_bytes())), &body).map_err(io_err)?;
            Ok(StatusCode::CREATED)
        }
        Some("blocklist") => {
            let xml = String::from_utf8_lossy(&body);
            let ids = block_ids(&xml).map_err(|m| (StatusCode::BAD_REQUEST, m))?;
            let mut out = std::fs::File::create(dir.join("committed")).map_err(io_err)?;
            for id in ids {
                let mut block = std::fs::File::open(dir.join("blocks").join(hex::encode(id.as_bytes())))
                    .map_err(|_| (StatusCode::BAD_REQUEST, format!("<Error><Code>InvalidBlockList</Code><Message>block {id} was not uploaded</Message></Error>")))?;
                std::io::copy(&mut block, &mut out).map_err(io_err)?;
            }
            out.flush().map_err(io_err)?;
            Ok(StatusCode::CREATED)
        }
        _ => Err((StatusCode::BAD_REQUEST, "<Error><Code>UnsupportedQueryParameter</Code></Error>".into())),
    }
}

/// The ids of `<Latest>`, `<Committed>` or `<Uncommitted>` entries of a block list.
fn block_ids(xml: &str) -> Result<Vec<String>, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut ids = Vec::new();
    let mut inside = false;
    loop {
        match reader.read_event().map_err(|e| format!("the block list is not XML: {e}"))? {
            Event::Start(e) if matches!(AsRef::<str>::as_ref(&e.name()), "Latest" | "Committed" | "Uncommitted") => {
                inside = true
            }
            Event::Text(t) if inside => ids.push(t.into_inner().trim().to_string()),
            Event::End(_) => inside = false,
            Event::Eof => return Ok(ids),
            _ => {}
        }
    }
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Checks a committed file against the fileEncryptionInfo it was committed with.
fn verify_commit(dir: &std::path::Path, f: &str, file: &Value) -> Result<(), String> {
    let info = &file["_"]["encryption"];
    let b64 = |k: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(info[k].as_str().unwrap_or_default())
            .map_err(|e| format!("fileEncryptionInfo.{k} is not base64: {e}"))
    };
    let (key, mac_key, iv, mac, digest) =
        (b64("encryptionKey")?, b64("macKey")?, b64("initializationVector")?, b64("mac")?, b64("fileDigest")?);
    if key.len() != 32 || mac_key.len() != 32 || iv.len() != 16 || mac.len() != 32 || digest.len() != 32 {
        return Err("fileEncryptionInfo has keys of the wrong length".into());
    }
    let path = dir.join(f).join("committed");
    let mut blob = std::fs::File::open(&path).map_err(|_| "no block list was committed for the file".to_string())?;
    let len = blob.metadata().map_err(|e| e.to_string())?.len();
    if Some(len) != file["sizeEncrypted"].as_u64() {
        return Err(format!(
            "the uploaded blob has {len} bytes, the file's sizeEncrypted says {}",
            file["sizeEncrypted"]
        ));
    }
    let mut header = [0u8; 48];
    blob.read_exact(&mut header).map_err(|_| "the blob is shorter than its header".to_string())?;
    if header[..32] != mac[..] || header[32..] != iv[..] {
        return Err("the blob's header does not carry the committed mac and IV".into());
    }
    let mut hmac = <HmacSha256 as Mac>::new_from_slice(&mac_key).map_err(|e| e.to_string())?;
    hmac.update(&iv);
    let mut cipher = cbc::Decryptor::<aes::Aes256>::new(key.as_slice().into(), iv.as_slice().into());
    let mut sha = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut held: Vec<u8> = Vec::new();
    let mut plain_len = 0u64;
    loop {
        let n = blob.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        hmac.update(&buf[..n]);
        held.extend_from_slice(&buf[..n]);
        let ready = held.len().saturating_sub(16) / 16 * 16;
        for block in held[..ready].chunks_exact_mut(16) {
            cipher.decrypt_block_mut(block.into());
        }
        sha.update(&held[..ready]);
        plain_len += ready as u64;
        held.drain(..ready);
    }
    if hmac.verify_slice(&mac).is_err() {
        return Err("the HMAC of the uploaded content does not match fileEncryptionInfo.mac".into());
    }
    if held.len() != 16 {
        return Err("the ciphertext is not a whole number of AES blocks".into());
    }
    cipher.decrypt_block_mut(held.as_mut_slice().into());
    let pad = usize::from(held[15]);
    if pad == 0 || pad > 16 {
        return Err("the content does not decrypt with fileEncryptionInfo.encryptionKey (bad padding)".into());
    }
    sha.update(&held[..16 - pad]);
    plain_len += (16 - pad) as u64;
    if sha.finalize()[..] != digest[..] {
        return Err("the decrypted content does not match fileEncryptionInfo.fileDigest".into());
    }
    if Some(plain_len) != file["size"].as_u64() {
        return Err(format!("the decrypted content has {plain_len} bytes, the file's size says {}", file["size"]));
    }
    Ok(())
}

/// Whether an app has a committed content version `v`.
pub(super) fn committed(store: &super::Store, app: &str, v: &str) -> bool {
    store.files.values().any(|f| f["_"]["app"] == app && f["_"]["version"] == v && f["isCommitted"] == true)
}
