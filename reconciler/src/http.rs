//! The one place that builds HTTP clients, so timeouts, size limits and redaction always apply.

use std::time::Duration;

/// Removes credentials, query strings and fragments from a URL before it is shown or logged
/// (SAS tokens and signed URLs carry secrets in the query).
pub fn redact(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    if u.query().is_some() {
        u.set_query(Some("REDACTED"));
    }
    u.set_fragment(None);
    u.to_string()
}

/// Timeouts of an HTTP client.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Establishing the connection.
    pub connect: Duration,
    /// Waiting for the next bytes of a response: a stalled transfer fails after this long.
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { connect: Duration::from_secs(15), read: Duration::from_secs(60) }
    }
}

/// Most redirects followed; a loop fails after this many.
pub const MAX_REDIRECTS: usize = 10;

/// Why an HTTP request made here failed. URLs are shown [`redact`]ed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The client could not be built (no TLS backend, say).
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The system's TLS configuration could not be loaded.
    #[error("cannot set up TLS (rustls): {0}")]
    Tls(String),
    /// The request or the transfer failed.
    #[error("GET {url}: {source}")]
    Transfer {
        /// The redacted URL.
        url: String,
        /// Why (without the URL, which may carry secrets).
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status.
    #[error("GET {url}: HTTP {status}")]
    Status {
        /// The redacted URL.
        url: String,
        /// The status.
        status: reqwest::StatusCode,
    },
    /// The body is larger than the cap.
    #[error("GET {url}: larger than {cap} bytes")]
    TooLarge {
        /// The redacted URL.
        url: String,
        /// The cap.
        cap: u64,
    },
}

impl HttpError {
    /// A stable CamelCase reason, for machines.
    pub fn reason(&self) -> &'static str {
        match self {
            HttpError::Client(_) | HttpError::Tls(_) => "HttpClientUnavailable",
            HttpError::Transfer { .. } => "HttpTransferFailed",
            HttpError::Status { .. } => "HttpStatus",
            HttpError::TooLarge { .. } => "HttpBodyTooLarge",
        }
    }
}

/// The shared client: connect and read timeouts, a bounded number of redirects, a user agent.
pub fn client() -> Result<reqwest::Client, HttpError> {
    client_with(Timeouts::default())
}

/// The process's TLS configuration (rustls with ring, the platform's certificate verifier),
/// made once, on the first client, and shared by every client: it holds no connection, so
/// clients on any runtime may share it. Making it costs microseconds; the system's trusted
/// roots are loaded by [`LazyPlatformVerifier`] on the first certificate checked, so a process
/// that only speaks plain http (the embedded emulators) never reads the CA bundle.
fn tls() -> Result<rustls::ClientConfig, HttpError> {
    static TLS: std::sync::OnceLock<Result<rustls::ClientConfig, String>> = std::sync::OnceLock::new();
    TLS.get_or_init(|| {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier = LazyPlatformVerifier { provider: provider.clone(), inner: std::sync::OnceLock::new() };
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| {
                // `dangerous` is rustls's name for any verifier of one's own: this one is the
                // platform's, only made later.
                b.dangerous().with_custom_certificate_verifier(std::sync::Arc::new(verifier)).with_no_client_auth()
            })
            .map_err(|e| e.to_string())
    })
    .clone()
    .map_err(HttpError::Tls)
}

/// rustls-platform-verifier's [`Verifier`](rustls_platform_verifier::Verifier), made on the
/// first server certificate checked rather than with the client. On Linux and the BSDs making
/// it reads and parses the system's CA bundle (tens of milliseconds with thousands of
/// allocations); on Windows and macOS it defers to the system's own verification. Every check
/// is the platform verifier's: if it cannot be made (no trusted roots on the system, say),
/// every certificate is refused with its reason, in every later handshake too.
#[derive(Debug)]
struct LazyPlatformVerifier {
    provider: std::sync::Arc<rustls::crypto::CryptoProvider>,
    inner: std::sync::OnceLock<Result<rustls_platform_verifier::Verifier, rustls::Error>>,
}

impl LazyPlatformVerifier {
    fn verifier(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        self.inner
            .get_or_init(|| {
                tracing::debug!("loading the system's trusted roots for TLS");
                rustls_platform_verifier::Verifier::new(self.provider.clone())
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl rustls::client::danger::ServerCertVerifier for LazyPlatformVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls13_signature(message, cert, dss)
    }

    /// Offered in the ClientHello, before any certificate: the provider's schemes, which are
    /// what the platform verifier answers too (it checks signatures with the same provider).
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The shared client with other timeouts.
#[allow(clippy::disallowed_methods)] // This is the one sanctioned place.
pub fn client_with(timeouts: Timeouts) -> Result<reqwest::Client, HttpError> {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls()?)
        .connect_timeout(timeouts.connect)
        .read_timeout(timeouts.read)
        .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
        .user_agent(concat!("patchops/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(HttpError::Client)
}

/// GETs a URL into memory, refusing bodies larger than `cap`. `Ok(None)` on 404.
pub async fn get_capped(url: &url::Url, cap: u64) -> Result<Option<Vec<u8>>, HttpError> {
    let shown = redact(url);
    let transfer = |e: reqwest::Error| HttpError::Transfer { url: shown.clone(), source: e.without_url() };
    let mut resp = client()?.get(url.clone()).send().await.map_err(transfer)?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !resp.status().is_success() {
        return Err(HttpError::Status { url: shown, status: resp.status() });
    }
    if resp.content_length().is_some_and(|n| n > cap) {
        return Err(HttpError::TooLarge { url: shown, cap });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(transfer)? {
        if body.len() as u64 + chunk.len() as u64 > cap {
            return Err(HttpError::TooLarge { url: shown, cap });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}
