//! OAuth 2.0 client credentials with a certificate: a client-assertion JWT (PS256, with the
//! certificate's `x5t#S256` thumbprint) exchanged at the tenant's token endpoint for a Graph
//! access token. Tokens are cached and renewed before they expire, also in the middle of a long
//! upload. The private key never leaves this module and is never printed.

use std::time::{Duration, Instant};

use base64::Engine as _;
use sha2::Digest;

use crate::model::ObjectName;
use crate::platform::PlatformError;

/// The Graph scope requested.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// An app registration's certificate credential.
pub struct CertificateCredential {
    client_id: String,
    thumbprint_s256: String,
    thumbprint_sha1: String,
    algorithm: crate::model::kinds::AssertionAlgorithm,
    key: jsonwebtoken::EncodingKey,
}

impl std::fmt::Debug for CertificateCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateCredential")
            .field("client_id", &self.client_id)
            .field("x5t#S256", &self.thumbprint_s256)
            .finish_non_exhaustive()
    }
}

/// The certificate (DER) of a PEM file holding a `CERTIFICATE` block.
pub fn certificate_der(pem_text: &[u8]) -> Result<Vec<u8>, CredentialError> {
    crate::authenticode::pem_certificates(pem_text)?.into_iter().next().ok_or(CredentialError::NoCertificate)
}

/// Why a certificate credential cannot be made or used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The PEM cannot be read.
    #[error("{0}")]
    Pem(#[from] crate::authenticode::CertificateError),
    /// No certificate in it.
    #[error("no CERTIFICATE block")]
    NoCertificate,
    /// No key in it.
    #[error("no PRIVATE KEY block (the file must hold the certificate and its key)")]
    NoKey,
    /// The key is not RSA.
    #[error("the private key is not an RSA key: {0}")]
    NotRsa(#[source] jsonwebtoken::errors::Error),
    /// The system's random source failed.
    #[error("no randomness for the assertion id: {0}")]
    Random(getrandom::Error),
    /// The assertion could not be signed.
    #[error("cannot sign the client assertion: {0}")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

impl CredentialError {
    /// A stable CamelCase reason, for machines.
    pub fn reason(&self) -> &'static str {
        match self {
            CredentialError::Pem(e) => e.reason(),
            CredentialError::NoCertificate => "NoCertificate",
            CredentialError::NoKey => "NoPrivateKey",
            CredentialError::NotRsa(_) => "NotRsaKey",
            CredentialError::Random(_) => "NoRandomness",
            CredentialError::Sign(_) => "AssertionNotSigned",
        }
    }
}

/// base64url(SHA-1 of the certificate's DER): the older `x5t` header.
pub fn thumbprint_sha1(cert_der: &[u8]) -> String {
    use sha1::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(cert_der))
}

/// base64url(SHA-256 of the certificate's DER): the `x5t#S256` header.
pub fn thumbprint_s256(cert_der: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(cert_der))
}

impl CertificateCredential {
    /// From a PEM file holding the certificate and its RSA private key (PKCS#8 or PKCS#1).
    pub fn from_pem(client_id: &str, pem_text: &[u8]) -> Result<CertificateCredential, CredentialError> {
        let cert = certificate_der(pem_text)?;
        let blocks = pem::parse_many(pem_text).map_err(crate::authenticode::CertificateError::NotPem)?;
        let key_block = blocks
            .iter()
            .find(|b| b.tag() == "PRIVATE KEY" || b.tag() == "RSA PRIVATE KEY")
            .ok_or(CredentialError::NoKey)?;
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem::encode(key_block).as_bytes())
            .map_err(CredentialError::NotRsa)?;
        Ok(CertificateCredential {
            client_id: client_id.to_string(),
            thumbprint_s256: thumbprint_s256(&cert),
            thumbprint_sha1: thumbprint_sha1(&cert),
            algorithm: crate::model::kinds::AssertionAlgorithm::Ps256,
            key,
        })
    }

    /// Signs assertions with `algorithm` instead of PS256.
    #[must_use]
    pub fn with_algorithm(mut self, algorithm: crate::model::kinds::AssertionAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// A fresh client assertion for `audience` (the token endpoint URL).
    pub fn assertion(&self, audience: &str) -> Result<String, CredentialError> {
        let mut header = match self.algorithm {
            crate::model::kinds::AssertionAlgorithm::Ps256 => {
                let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS256);
                h.x5t_s256 = Some(self.thumbprint_s256.clone());
                h
            }
            crate::model::kinds::AssertionAlgorithm::Rs256 => {
                let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
                h.x5t = Some(self.thumbprint_sha1.clone());
                h
            }
        };
        header.typ = Some("JWT".into());
        // Entra checks the assertion against its own (real) time, whatever clock drives the
        // reconciler: the system clock, always.
        let now = crate::clock::Clock::now(&crate::clock::SystemClock).timestamp();
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).map_err(CredentialError::Random)?;
        let claims = serde_json::json!({
            "aud": audience,
            "iss": self.client_id,
            "sub": self.client_id,
            "jti": hex::encode(jti),
            "nbf": now,
            "iat": now,
            "exp": now + 600,
        });
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(CredentialError::Sign)
    }
}

/// How an app registration proves itself: its certificate (recommended) or a client secret.
pub enum Credential {
    /// A client assertion signed with the certificate's key.
    Certificate(CertificateCredential),
    /// A client secret (a shared password; the default policy denies it for Intune).
    Secret {
        /// The client id.
        client_id: String,
        /// The secret; never shown.
        secret: String,
    },
}

impl From<CertificateCredential> for Credential {
    fn from(c: CertificateCredential) -> Credential {
        Credential::Certificate(c)
    }
}

impl Credential {
    fn client_id(&self) -> &str {
        match self {
            Credential::Certificate(c) => &c.client_id,
            Credential::Secret { client_id, .. } => client_id,
        }
    }
}

struct Cached {
    token: String,
    renew_at: Instant,
}

/// Access tokens for one app registration, cached.
pub struct TokenSource {
    platform: ObjectName,
    http: reqwest::Client,
    token_url: url::Url,
    credential: Credential,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource").field("token_url", &self.token_url).finish_non_exhaustive()
    }
}

impl TokenSource {
    /// Tokens from `authority` (such as `https://login.microsoftonline.com/`) for `tenant`.
    pub fn new(
        platform: ObjectName,
        authority: &url::Url,
        tenant: &str,
        credential: impl Into<Credential>,
    ) -> Result<TokenSource, PlatformError> {
        let credential = credential.into();
        let token_url =
            authority.join(&format!("{tenant}/oauth2/v2.0/token")).map_err(|e| PlatformError::Unavailable {
                platform: platform.clone(),
                cause: crate::vocab::because("bad authority URL", e),
            })?;
        let http = crate::http::client()
            .map_err(|reason| PlatformError::Unavailable { platform: platform.clone(), cause: reason.into() })?;
        Ok(TokenSource { platform, http, token_url, credential, cached: tokio::sync::Mutex::new(None) })
    }

    /// A valid access token: the cached one unless it is about to expire.
    pub async fn bearer(&self) -> Result<String, PlatformError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| Instant::now() < c.renew_at) {
            return Ok(c.token.clone());
        }
        let fresh = self.request().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Forgets the cached token (the service said it is no longer valid).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn request(&self) -> Result<Cached, PlatformError> {
        let fail = |reason: crate::vocab::Cause| PlatformError::Failed {
            platform: self.platform.clone(),
            operation: format!("getting a token from {}", self.token_url),
            cause: reason,
        };
        let client_id = self.credential.client_id();
        let mut form = vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", client_id.to_string()),
            ("scope", GRAPH_SCOPE.to_string()),
        ];
        match &self.credential {
            Credential::Certificate(c) => {
                let assertion = c.assertion(self.token_url.as_str()).map_err(|e| fail(e.into()))?;
                form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()));
                form.push(("client_assertion", assertion));
            }
            Credential::Secret { secret, .. } => form.push(("client_secret", secret.clone())),
        }
        let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let resp = self
            .http
            .post(self.token_url.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| PlatformError::Transient {
                platform: self.platform.clone(),
                operation: "getting a token".into(),
                reason: e.without_url().to_string(),
                retry_after: None,
                throttled: false,
            })?;
        let status = resp.status();
        let json: serde_json::Value = resp.json().await.unwrap_or_default();
        if !status.is_success() {
            let description = json["error_description"].as_str().unwrap_or_default();
            return Err(PlatformError::Rejected {
                platform: self.platform.clone(),
                operation: format!("getting a token for client {client_id}"),
                status: status.as_u16(),
                message: format!("{}: {description}", json["error"].as_str().unwrap_or("error")),
            });
        }
        let token = json["access_token"].as_str().ok_or_else(|| fail("no access_token in the response".into()))?;
        let lifetime = Duration::from_secs(json["expires_in"].as_u64().unwrap_or(3599));
        // Renew with a margin: 5 minutes, or a tenth of a short lifetime.
        let margin = Duration::from_secs(300).min(lifetime / 10);
        Ok(Cached { token: token.to_string(), renew_at: Instant::now() + lifetime - margin })
    }
}
