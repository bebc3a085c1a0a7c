//! The Entra ID (Azure AD) token endpoint of the emulated tenant, and the bearer check in front
//! of the Graph routes.
//!
//! `POST /{tenant}/oauth2/v2.0/token` with the client-credentials grant and a client assertion:
//! the assertion's `x5t#S256` must name the certificate registered for the client, its
//! signature (PS256, or RS256) must verify with that certificate's key, `aud` must be this
//! endpoint's URL, `iss` and `sub` the client id, the time within `nbf`..`exp`, and its `jti`
//! never seen before. A client secret is accepted only when the app registration has that secret
//! and the tenant is not told to refuse secrets. Errors have the service's shape (`error`, `error_description` with an AADSTS
//! code).

use std::collections::HashMap;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use serde_json::{json, Value};

use super::Shared;

/// An app registration of the emulated tenant. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct RegisteredApp {
    /// Its client (application) id.
    pub client_id: String,
    /// The DER of its certificate credential (empty when it has none).
    pub certificate_der: Vec<u8>,
    /// Its client secret, if it has one (and the tenant accepts secrets).
    pub secret: Option<String>,
    /// The Microsoft Graph application permissions granted to it (admin-consented app roles),
    /// such as `DeviceManagementApps.ReadWrite.All` and `Group.Read.All`.
    pub permissions: Vec<String>,
}

/// What an app registration patchops uses is granted: Intune apps, and reading groups.
pub fn default_permissions() -> Vec<String> {
    vec!["DeviceManagementApps.ReadWrite.All".into(), "Group.Read.All".into()]
}

impl std::fmt::Debug for RegisteredApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredApp")
            .field("client_id", &self.client_id)
            .field("certificate_der_len", &self.certificate_der.len())
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("permissions", &self.permissions)
            .finish()
    }
}

pub(super) fn routes() -> Router<Shared> {
    Router::new().route("/{tenant}/oauth2/v2.0/token", post(token))
}

fn refuse(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": error, "error_description": description, "error_codes": [], "trace_id": "emulated" })),
    )
        .into_response()
}

async fn token(
    State(emu): State<Shared>,
    UrlPath(tenant): UrlPath<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if get("grant_type") != "client_credentials" {
        return refuse(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "AADSTS70003: The app requested an unsupported grant type.",
        );
    }
    let client_id = get("client_id");
    let Some(app) = emu.options.apps.iter().find(|a| a.client_id == client_id) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            &format!("AADSTS700016: Application with identifier '{client_id}' was not found in the directory."),
        );
    };
    if let Some(secret) = form.get("client_secret") {
        let accepted = !emu.options.refuse_secrets && app.secret.as_deref() == Some(secret.as_str());
        if !accepted {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, and that the app accepts secrets.",
            );
        }
        return issue(&emu, client_id, None);
    }
    if get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS900144: The request body must contain the following parameter: 'client_assertion'.",
        );
    }
    let assertion = get("client_assertion");
    let header = match jsonwebtoken::decode_header(assertion) {
        Ok(h) => h,
        Err(_) => {
            return refuse(StatusCode::BAD_REQUEST, "invalid_client", "AADSTS50027: JWT token is invalid or malformed.")
        }
    };
    // PS256 assertions name the certificate by its SHA-256 thumbprint (x5t#S256); the older
    // RS256 ones by its SHA-1 thumbprint (x5t).
    let names_registered = match header.alg {
        jsonwebtoken::Algorithm::RS256 => header.x5t.as_deref() == Some(thumbprint_sha1(&app.certificate_der).as_str()),
        _ => header.x5t_s256.as_deref() == Some(thumbprint_s256(&app.certificate_der).as_str()),
    };
    if !names_registered {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            &format!("AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application '{client_id}'."),
        );
    }
    let algorithm = match header.alg {
        jsonwebtoken::Algorithm::PS256 | jsonwebtoken::Algorithm::RS256 => header.alg,
        _ => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid_client",
                "AADSTS5002730: The client assertion uses an unsupported algorithm.",
            )
        }
    };
    let Some(key) = public_key(&app.certificate_der) else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "the registered certificate has no RSA key");
    };
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    let audience = format!("http://{host}/{tenant}/oauth2/v2.0/token");
    let mut validation = jsonwebtoken::Validation::new(algorithm);
    validation.set_audience(&[audience.as_str()]);
    validation.set_issuer(&[client_id]);
    validation.sub = Some(client_id.to_string());
    validation.validate_nbf = true;
    validation.leeway = 30;
    validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
    let claims = match jsonwebtoken::decode::<Value>(assertion, &key, &validation) {
        Ok(t) => t.claims,
        Err(e) => {
            use jsonwebtoken::errors::ErrorKind;
            let description = match e.kind() {
                ErrorKind::InvalidSignature => {
                    "AADSTS700027: Client assertion contains an invalid signature.".to_string()
                }
                ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => {
                    "AADSTS700024: Client assertion is not within its valid time range.".to_string()
                }
                ErrorKind::InvalidAudience => {
                    format!(
                        "AADSTS700016: The audience of the client assertion is not this token endpoint ({audience})."
                    )
                }
                other => format!("AADSTS50027: JWT token is invalid: {other:?}."),
            };
            return refuse(StatusCode::UNAUTHORIZED, "invalid_client", &description);
        }
    };
    let jti = claims["jti"].as_str().unwrap_or_default().to_string();
    issue(&emu, client_id, Some(jti))
}

/// Issues an access token; with an assertion's `jti`, only if it was never seen.
fn issue(emu: &Shared, client_id: &str, jti: Option<String>) -> Response {
    let mut state = match emu.tokens.lock() {
        Ok(s) => s,
        Err(_) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "state poisoned"),
    };
    if let Some(jti) = jti {
        if jti.is_empty() || !state.seen_jti.insert(jti) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "AADSTS700021: Client assertion jti was used before or is missing; each assertion may be used once.",
            );
        }
    }
    let lifetime = emu.options.token_lifetime.unwrap_or(std::time::Duration::from_secs(3599));
    let mut raw = [0u8; 24];
    let _ = getrandom::fill(&mut raw);
    let token = hex::encode(raw);
    state.issued.insert(token.clone(), (std::time::Instant::now() + lifetime, client_id.to_string()));
    Json(json!({ "token_type": "Bearer", "expires_in": lifetime.as_secs(), "ext_expires_in": lifetime.as_secs(), "access_token": token }))
        .into_response()
}

/// base64url(SHA-256 of the certificate's DER), as the `x5t#S256` header carries it.
fn thumbprint_s256(cert_der: &[u8]) -> String {
    use base64::Engine as _;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(cert_der))
}

/// base64url(SHA-1 of the certificate's DER), as the `x5t` header carries it.
fn thumbprint_sha1(cert_der: &[u8]) -> String {
    use base64::Engine as _;
    use sha1::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(cert_der))
}

fn public_key(cert_der: &[u8]) -> Option<jsonwebtoken::DecodingKey> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(cert_der).ok()?;
    let spki = cert.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes().to_vec();
    Some(jsonwebtoken::DecodingKey::from_rsa_der(&spki))
}

/// Tokens issued and assertion ids seen.
#[derive(Debug, Default)]
pub(super) struct TokenState {
    /// Each token's expiry and the app registration it was issued to.
    issued: HashMap<String, (std::time::Instant, String)>,
    seen_jti: std::collections::HashSet<String>,
}

/// In front of the Graph routes: when the tenant has app registrations, every request needs a
/// valid bearer token.
pub(super) async fn require_bearer(State(emu): State<Shared>, req: axum::extract::Request, next: Next) -> Response {
    if emu.options.apps.is_empty() {
        return next.run(req).await;
    }
    let token = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::to_string);
    let valid = match (token, emu.tokens.lock()) {
        (Some(t), Ok(state)) => state.issued.get(&t).is_some_and(|(exp, _)| std::time::Instant::now() < *exp),
        _ => false,
    };
    if !valid {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": { "code": "InvalidAuthenticationToken", "message": "Access token is empty, expired or not valid." } })),
        )
            .into_response();
    }
    next.run(req).await
}

/// Whether the caller may use `permission`, one of `any` (Graph accepts any of several for an
/// operation): always in a tenant without app registrations; otherwise when the app the token
/// was issued to holds one of them.
pub(super) fn holds(emu: &super::Emulator, headers: &axum::http::HeaderMap, any: &[&str]) -> bool {
    if emu.options.apps.is_empty() {
        return true;
    }
    let caller = caller(emu, headers);
    emu.options
        .apps
        .iter()
        .find(|a| a.client_id == caller)
        .is_some_and(|a| a.permissions.iter().any(|p| any.contains(&p.as_str())))
}

/// The app registration a request's bearer token was issued to (`anonymous` without one).
pub(super) fn caller(emu: &super::Emulator, headers: &axum::http::HeaderMap) -> String {
    let token = headers.get("authorization").and_then(|h| h.to_str().ok()).and_then(|h| h.strip_prefix("Bearer "));
    match (token, emu.tokens.lock()) {
        (Some(t), Ok(state)) => state.issued.get(t).map_or_else(|| "anonymous".to_string(), |(_, app)| app.clone()),
        _ => "anonymous".to_string(),
    }
}
