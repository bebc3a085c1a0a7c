//! Authenticode signatures on what patchops hands to Windows: generated PowerShell (and, for
//! WSUS, CABs), made and checked with `osslsigncode` (≥ 2.8; the tool Linux uses for
//! Authenticode, which also implements PowerShell's signature format).
//!
//! A [`CodeSigner`] is made from the customer's code-signing certificate and key (one PEM, by
//! reference). Before anything is signed the certificate is judged as Windows will judge it
//! ([`judge_certificate`]): code-signing usage, an RSA key of at least 2048 bits, inside its
//! validity. Only a `CodeSigner` turns a [`Script<Unsigned>`](crate::script::Script) into a
//! `Script<Signed>`, so a rule that tells devices to enforce the signature cannot be built from
//! an unsigned script.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use x509_cert::der::Decode;

use crate::model::{SecretRef, Secrets};
use crate::script::{Script, Signed, Unsigned};

/// The oldest osslsigncode that signs PowerShell and CABs correctly (2.7 fixed CAB signing).
pub const MIN_OSSLSIGNCODE: (u32, u32) = (2, 8);

/// Why signing or verifying failed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The certificate cannot be read or is not fit to sign code.
    #[error("the code-signing certificate {reference}: {unfit}")]
    Certificate {
        /// Where it was read from (`file:PATH` or `env:NAME`; never the content).
        reference: String,
        /// What is wrong and what to do.
        #[source]
        unfit: Unfit,
    },
    /// osslsigncode is missing or too old.
    #[error("{0}")]
    Tool(String),
    /// osslsigncode refused to sign or the signature did not verify.
    #[error("{what}: {cause}")]
    Failed {
        /// What was being signed or verified.
        what: String,
        /// osslsigncode's own words, or why it could not run.
        #[source]
        cause: crate::vocab::Cause,
    },
}

impl SignError {
    /// A stable CamelCase reason, for machines (conditions, metrics, notifications).
    pub fn reason(&self) -> &'static str {
        match self {
            SignError::Certificate { .. } => "SigningCertificateUnfit",
            SignError::Tool { .. } => "SigningToolMissing",
            SignError::Failed { .. } => "SigningFailed",
        }
    }
}

/// Why a certificate and key cannot sign code, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Unfit {
    /// The reference cannot be read.
    #[error("{0}")]
    Secret(#[from] crate::model::SecretError),
    /// The staged file cannot be read.
    #[error("cannot read it: {0}")]
    Read(#[source] std::io::Error),
    /// Binary, not PEM.
    #[error(
        "it is not PEM (a PFX?); convert it with `openssl pkcs12 -in FILE.pfx -nodes -out FILE.pem` and \
         keep the PEM as private as the PFX"
    )]
    NotPem,
    /// Not parseable PEM.
    #[error("not PEM: {0}")]
    BadPem(#[source] pem::PemError),
    /// No certificate in the PEM.
    #[error("it holds no CERTIFICATE block; put the certificate and its key in one PEM")]
    NoCertificate,
    /// No key in the PEM.
    #[error("it holds no PRIVATE KEY block; put the certificate and its key in one PEM")]
    NoKey,
    /// The key is encrypted.
    #[error(
        "its private key is encrypted; patchops signs unattended, so give it the key unencrypted \
         (`openssl pkey -in KEY -out KEY.pem`) in a file only patchops's account can read"
    )]
    EncryptedKey,
    /// The certificate cannot be decoded.
    #[error("{0}")]
    Decode(#[from] CertificateError),
    /// The certificate decodes but Windows would not accept it for code signing.
    #[error("{subject} ({thumbprint}): {problem}")]
    Problem {
        /// Its subject.
        subject: String,
        /// Its SHA-1 thumbprint.
        thumbprint: String,
        /// The first problem.
        problem: CertificateProblem,
    },
}

impl Unfit {
    /// A stable CamelCase reason, for machines.
    pub fn reason(&self) -> &'static str {
        match self {
            Unfit::Secret(e) => e.reason(),
            Unfit::Read(_) => "CertificateUnreadable",
            Unfit::NotPem | Unfit::BadPem(_) => "NotPem",
            Unfit::NoCertificate => "NoCertificate",
            Unfit::NoKey => "NoPrivateKey",
            Unfit::EncryptedKey => "EncryptedPrivateKey",
            Unfit::Decode(e) => e.reason(),
            Unfit::Problem { .. } => "CertificateUnfit",
        }
    }
}

/// Why certificate bytes cannot be read as certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The reference cannot be read.
    #[error("{0}")]
    Secret(#[from] crate::model::SecretError),
    /// Not DER X.509.
    #[error("not an X.509 certificate: {0}")]
    NotX509(#[source] x509_cert::der::Error),
    /// The RSA public key inside cannot be decoded.
    #[error("its RSA public key cannot be read: {0}")]
    RsaKey(#[source] x509_cert::der::Error),
    /// Not PEM.
    #[error("not PEM: {0}")]
    NotPem(#[source] pem::PemError),
    /// A PEM text without a certificate.
    #[error("{reference} holds no CERTIFICATE")]
    NoCertificate {
        /// The reference.
        reference: String,
    },
}

impl CertificateError {
    /// A stable CamelCase reason, for machines.
    pub fn reason(&self) -> &'static str {
        match self {
            CertificateError::Secret(e) => e.reason(),
            CertificateError::NotX509(_) => "NotACertificate",
            CertificateError::RsaKey(_) => "BadPublicKey",
            CertificateError::NotPem(_) => "NotPem",
            CertificateError::NoCertificate { .. } => "NoCertificate",
        }
    }
}

/// One problem with a code-signing certificate, as Windows would see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateProblem {
    /// Not yet valid or expired.
    OutsideValidity {
        /// Start of validity.
        not_before: DateTime<Utc>,
        /// End of validity.
        not_after: DateTime<Utc>,
    },
    /// No code-signing extended key usage (1.3.6.1.5.5.7.3.3).
    NotForCodeSigning,
    /// Key usage present without digitalSignature.
    NoDigitalSignatureUsage,
    /// Not an RSA key.
    NotRsa,
    /// An RSA key shorter than 2048 bits.
    WeakKey {
        /// The modulus length.
        bits: usize,
    },
}

impl std::fmt::Display for CertificateProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertificateProblem::OutsideValidity { not_before, not_after } => write!(
                f,
                "it is valid from {} to {} only; renew it and reference the new one",
                not_before.format("%Y-%m-%d %H:%M UTC"),
                not_after.format("%Y-%m-%d %H:%M UTC")
            ),
            CertificateProblem::NotForCodeSigning => f.write_str(
                "it lacks the code-signing extended key usage (1.3.6.1.5.5.7.3.3); issue one from a code-signing template",
            ),
            CertificateProblem::NoDigitalSignatureUsage => {
                f.write_str("its key usage does not include digitalSignature; issue one that does")
            }
            CertificateProblem::NotRsa => f.write_str("its key is not RSA; Windows code signing here needs RSA ≥ 2048"),
            CertificateProblem::WeakKey { bits } => {
                write!(f, "its RSA key has {bits} bits; Windows needs at least 2048: issue a new one")
            }
        }
    }
}

/// Facts about a certificate, for reports (`patchops doctor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// The subject, as an RFC 4514 string.
    pub subject: String,
    /// Whether issuer and subject are the same (self-signed).
    pub self_signed: bool,
    /// SHA-1 thumbprint in upper-case hex, as Windows shows it.
    pub thumbprint: String,
    /// Everything wrong with it; empty when it is fit to sign code.
    pub problems: Vec<CertificateProblem>,
}

/// Judges a DER certificate as a code-signing certificate at `now`.
pub fn judge_certificate(der: &[u8], now: DateTime<Utc>) -> Result<CertificateFacts, CertificateError> {
    use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage, KeyUsages};
    let cert = x509_cert::Certificate::from_der(der).map_err(CertificateError::NotX509)?;
    let tbs = &cert.tbs_certificate;
    let mut problems = Vec::new();
    let time = |t: &x509_cert::time::Time| DateTime::<Utc>::from(t.to_system_time());
    let (not_before, not_after) = (time(&tbs.validity.not_before), time(&tbs.validity.not_after));
    if now < not_before || now > not_after {
        problems.push(CertificateProblem::OutsideValidity { not_before, not_after });
    }
    const CODE_SIGNING: x509_cert::der::asn1::ObjectIdentifier =
        x509_cert::der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
    match tbs.get::<ExtendedKeyUsage>() {
        Ok(Some((_, eku))) if eku.0.contains(&CODE_SIGNING) => {}
        _ => problems.push(CertificateProblem::NotForCodeSigning),
    }
    if let Ok(Some((_, usage))) = tbs.get::<KeyUsage>() {
        if !usage.0.contains(KeyUsages::DigitalSignature) {
            problems.push(CertificateProblem::NoDigitalSignatureUsage);
        }
    }
    const RSA: x509_cert::der::asn1::ObjectIdentifier =
        x509_cert::der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
    let spki = &tbs.subject_public_key_info;
    if spki.algorithm.oid != RSA {
        problems.push(CertificateProblem::NotRsa);
    } else {
        let key =
            pkcs1::RsaPublicKey::from_der(spki.subject_public_key.raw_bytes()).map_err(CertificateError::RsaKey)?;
        let modulus = key.modulus.as_bytes();
        let bits = modulus
            .iter()
            .position(|b| *b != 0)
            .map(|i| (modulus.len() - i) * 8 - modulus[i].leading_zeros() as usize)
            .unwrap_or(0);
        if bits < 2048 {
            problems.push(CertificateProblem::WeakKey { bits });
        }
    }
    use sha1::Digest;
    let thumbprint = hex::encode_upper(sha1::Sha1::digest(der));
    Ok(CertificateFacts {
        subject: tbs.subject.to_string(),
        self_signed: tbs.subject == tbs.issuer,
        thumbprint,
        problems,
    })
}

/// The end of a certificate's validity.
pub fn not_after(der: &[u8]) -> Option<DateTime<Utc>> {
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    Some(DateTime::<Utc>::from(cert.tbs_certificate.validity.not_after.to_system_time()))
}

/// The certificates (DER) a reference names: a PEM file (or variable) with one or more, or a
/// DER file with one.
pub fn certificates_at(reference: &SecretRef, secrets: &Secrets) -> Result<Vec<Vec<u8>>, CertificateError> {
    let text = secrets.read_bytes(reference)?;
    if !text.starts_with(b"-----") && text.first() == Some(&0x30) {
        return Ok(vec![text]);
    }
    let certs = pem_certificates(&text)?;
    if certs.is_empty() {
        return Err(CertificateError::NoCertificate { reference: reference.to_string() });
    }
    Ok(certs)
}

/// The certificates (DER) of a PEM text, in order.
pub fn pem_certificates(pem_text: &[u8]) -> Result<Vec<Vec<u8>>, CertificateError> {
    let blocks = pem::parse_many(pem_text).map_err(CertificateError::NotPem)?;
    Ok(blocks.into_iter().filter(|b| b.tag() == "CERTIFICATE").map(|b| b.into_contents()).collect())
}

/// Signs with one code-signing certificate. Cheap to clone.
#[derive(Clone)]
pub struct CodeSigner {
    inner: Arc<SignerInner>,
}

struct SignerInner {
    reference: String,
    /// A file holding the certificate (first) and its unencrypted key, as PEM (a private copy
    /// when it came from an environment variable, kept while the signer lives).
    pem: crate::model::SecretFile,
    facts: CertificateFacts,
    tool: PathBuf,
}

impl std::fmt::Debug for CodeSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeSigner")
            .field("certificate", &self.inner.reference)
            .field("subject", &self.inner.facts.subject)
            .finish_non_exhaustive()
    }
}

impl CodeSigner {
    /// A signer for the certificate and key `reference` names (one PEM holding both). Refuses
    /// a certificate that is unfit ([`judge_certificate`] at `now`), a PEM without a key, and a
    /// missing or too old osslsigncode.
    pub fn new(reference: &SecretRef, secrets: &Secrets, now: DateTime<Utc>) -> Result<CodeSigner, SignError> {
        let refused = |unfit: Unfit| SignError::Certificate { reference: reference.to_string(), unfit };
        let pem = secrets.file(reference).map_err(|e| refused(e.into()))?;
        let text = std::fs::read(pem.path()).map_err(|e| refused(Unfit::Read(e)))?;
        if !text.starts_with(b"-----") && !text.iter().take(64).all(|b| b.is_ascii()) {
            return Err(refused(Unfit::NotPem));
        }
        let blocks = pem::parse_many(&text).map_err(|e| refused(Unfit::BadPem(e)))?;
        let Some(der) = blocks.iter().find(|b| b.tag() == "CERTIFICATE").map(|b| b.contents()) else {
            return Err(refused(Unfit::NoCertificate));
        };
        let Some(key) = blocks.iter().find(|b| b.tag().ends_with("PRIVATE KEY")) else {
            return Err(refused(Unfit::NoKey));
        };
        let legacy_encrypted = key.headers().get("Proc-Type").is_some_and(|v| v.contains("ENCRYPTED"));
        if key.tag() == "ENCRYPTED PRIVATE KEY" || legacy_encrypted {
            return Err(refused(Unfit::EncryptedKey));
        }
        let facts = judge_certificate(der, now).map_err(|e| refused(e.into()))?;
        if let Some(problem) = facts.problems.first() {
            return Err(refused(Unfit::Problem {
                subject: facts.subject.clone(),
                thumbprint: facts.thumbprint.clone(),
                problem: problem.clone(),
            }));
        }
        let tool = osslsigncode()?;
        Ok(CodeSigner { inner: Arc::new(SignerInner { reference: reference.to_string(), pem, facts, tool }) })
    }

    /// The signing certificate's facts.
    pub fn certificate(&self) -> &CertificateFacts {
        &self.inner.facts
    }

    /// Signs a generated script. Blocking (runs osslsigncode).
    pub fn sign_script(&self, script: Script<Unsigned>) -> Result<Script<Signed>, SignError> {
        let dir = tempfile::tempdir().map_err(|e| self.failed(script.name(), e))?;
        let (input, output) = (dir.path().join("in.ps1"), dir.path().join("out.ps1"));
        std::fs::write(&input, script.text()).map_err(|e| self.failed(script.name(), e))?;
        self.sign_file(&input, &output, script.name())?;
        let signed = std::fs::read_to_string(&output).map_err(|e| self.failed(script.name(), e))?;
        Ok(script.into_signed(signed))
    }

    /// Signs `input` into `output` (a script, a CAB, an MSI, a PE file). Blocking.
    pub fn sign_file(&self, input: &Path, output: &Path, what: &str) -> Result<(), SignError> {
        run_sign(&self.inner.tool, self.inner.pem.path(), input, output).map_err(|reason| self.failed(what, reason))
    }

    fn failed(&self, what: &str, cause: impl Into<crate::vocab::Cause>) -> SignError {
        SignError::Failed { what: format!("signing {what} with {}", self.inner.reference), cause: cause.into() }
    }
}

/// Signs `input` into `output` with the certificate and key in `pem` as they are, without
/// judging the certificate first. A server signs with what it is configured with (the WSUS
/// emulator signs CABs so, even with an expired certificate, as the real server would); the
/// judging belongs to whoever trusts the signature. Blocking.
pub fn sign_as_configured(pem: &Path, input: &Path, output: &Path) -> Result<(), SignError> {
    let tool = osslsigncode()?;
    run_sign(&tool, pem, input, output)
        .map_err(|cause| SignError::Failed { what: format!("signing {}", input.display()), cause })
}

/// `osslsigncode sign` with the certificate and key in one PEM, SHA-256; the tool's own words
/// when it fails. Never given a terminal (it would prompt for an encrypted key).
fn run_sign(tool: &Path, pem: &Path, input: &Path, output: &Path) -> Result<(), crate::vocab::Cause> {
    let out = Command::new(tool)
        .stdin(std::process::Stdio::null())
        .arg("sign")
        .arg("-certs")
        .arg(pem)
        .arg("-key")
        .arg(pem)
        .args(["-h", "sha256", "-in"])
        .arg(input)
        .arg("-out")
        .arg(output)
        .output()
        .map_err(|e| crate::vocab::because(format!("cannot run {}", tool.display()), e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(tool_words(&out).into())
    }
}

/// What checking a file's Authenticode signature found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureCheck {
    /// Whether the file carries a signature at all.
    pub signed: bool,
    /// Whether the signed digest matches the file's bytes (false: altered after signing).
    pub digest_matches: bool,
    /// Whether the signer's chain ends in one of the trusted roots given, at the time given.
    pub chain_trusted: bool,
    /// The signer's subject and serial, as osslsigncode prints them (`/CN=…`, hex).
    pub signer: Option<(String, String)>,
    /// Whether the signer's certificate is self-signed (its issuer is its subject).
    pub self_signed: bool,
    /// Whether a timestamp countersignature is present.
    pub timestamped: bool,
    /// osslsigncode's reason when the chain did not verify (such as `self-signed certificate`
    /// or `certificate has expired`).
    pub chain_error: Option<String>,
}

/// Checks the Authenticode signature of `file` against the trusted roots in `roots_pem` at
/// `at` (osslsigncode's `-time`), reporting each part separately. Blocking.
pub fn inspect(file: &Path, roots_pem: &Path, at: DateTime<Utc>) -> Result<SignatureCheck, SignError> {
    let tool = osslsigncode()?;
    let out = Command::new(&tool)
        .stdin(std::process::Stdio::null())
        .arg("verify")
        .arg("-CAfile")
        .arg(roots_pem)
        .arg("-time")
        .arg(at.timestamp().to_string())
        .arg("-in")
        .arg(file)
        .output()
        .map_err(|e| SignError::Tool(format!("cannot run {}: {e}", tool.display())))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let signed = text.contains("Signer's certificate") || text.contains("Message digest");
    let digest_matches = signed && !text.contains("MISMATCH");
    let chain_trusted = out.status.success() && text.contains("Signature verification: ok");
    let field = |name: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim_start_matches([' ', ':']).trim().to_string())
    };
    let signer = match (field("Subject"), field("Serial")) {
        (Some(subject), Some(serial)) => Some((subject, serial)),
        _ => None,
    };
    let self_signed = matches!((&signer, field("Issuer")), (Some((subject, _)), Some(issuer)) if *subject == issuer);
    let timestamped = signed && !text.contains("Timestamp is not available");
    let chain_error = if chain_trusted {
        None
    } else {
        text.lines().map(str::trim).find_map(|l| l.strip_prefix("Error:")).map(|e| e.trim().to_string())
    };
    Ok(SignatureCheck { signed, digest_matches, chain_trusted, signer, self_signed, timestamped, chain_error })
}

/// A certificate's subject and serial as osslsigncode prints a signer (`/CN=…/O=…`, upper-case
/// hex), to find the signer among certificates.
pub fn signer_identity(der: &[u8]) -> Result<(String, String), CertificateError> {
    let cert = x509_cert::Certificate::from_der(der).map_err(CertificateError::NotX509)?;
    let tbs = &cert.tbs_certificate;
    // RFC 4514 lists the most specific name first; OpenSSL's one-line form starts at the root.
    let mut parts: Vec<String> = tbs.subject.to_string().split(',').map(|p| p.trim().to_string()).collect();
    parts.reverse();
    let subject = parts.iter().map(|p| format!("/{p}")).collect::<String>();
    let serial = hex::encode_upper(tbs.serial_number.as_bytes());
    Ok((subject, serial.trim_start_matches("00").to_string()))
}

/// Verifies the Authenticode signature of `file` against the CA certificates in `ca_pem`.
pub fn verify(file: &Path, ca_pem: &Path) -> Result<(), SignError> {
    let tool = osslsigncode()?;
    let out = Command::new(&tool)
        .arg("verify")
        .arg("-CAfile")
        .arg(ca_pem)
        .arg("-in")
        .arg(file)
        .output()
        .map_err(|e| SignError::Tool(format!("cannot run {}: {e}", tool.display())))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && text.contains("Signature verification: ok") {
        Ok(())
    } else {
        Err(SignError::Failed { what: format!("verifying {}", file.display()), cause: tool_words(&out).into() })
    }
}

/// osslsigncode's last meaningful lines.
fn tool_words(out: &std::process::Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(4)..].join("; ")
}

/// Finds osslsigncode on PATH and checks its version, once per process (each check runs it).
pub fn osslsigncode() -> Result<PathBuf, SignError> {
    static FOUND: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    FOUND.get_or_init(|| find_osslsigncode().map_err(|e| e.to_string())).clone().map_err(SignError::Tool)
}

fn find_osslsigncode() -> Result<PathBuf, SignError> {
    let tool = PathBuf::from("osslsigncode");
    let install = "install osslsigncode ≥ 2.8 (Debian 12: `apt-get install -t bookworm-backports osslsigncode`)";
    let out = Command::new(&tool)
        .arg("--version")
        .output()
        .map_err(|e| SignError::Tool(format!("signing needs osslsigncode, which cannot be run ({e}): {install}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .split_whitespace()
        .nth(1)
        .and_then(|v| {
            let mut p = v.split('.').map(|x| x.trim_end_matches(',').parse::<u32>().ok());
            Some((p.next()??, p.next().flatten().unwrap_or(0)))
        })
        .ok_or_else(|| SignError::Tool(format!("cannot tell osslsigncode's version from {text:?}: {install}")))?;
    if version < MIN_OSSLSIGNCODE {
        return Err(SignError::Tool(format!(
            "osslsigncode {}.{} is too old to sign scripts and CABs correctly: {install}",
            version.0, version.1
        )));
    }
    Ok(tool)
}
