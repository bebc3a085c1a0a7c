//! Authenticode signatures on what patchops hands to Windows: generated PowerShell (and, for
//! WSUS, CABs), made and checked in Rust — RustCrypto's `cms`, `x509-cert`, `der`, `rsa` and
//! `sha2`, building the structures Microsoft specifies ([`spc`]: SpcIndirectDataContent and
//! the SIP information; [`powershell`]: the signature block; [`cab`]: the reserve and the
//! appended signature) — with optional RFC 3161 timestamps ([`timestamp`]). No external
//! program is run; the tests check every signature against `osslsigncode verify` and the
//! other way round.
//!
//! A [`CodeSigner`] is made from the customer's code-signing certificate and key (one PEM, by
//! reference). Before anything is signed the certificate is judged as Windows will judge it
//! ([`judge_certificate`]): code-signing usage, an RSA key of at least 2048 bits, inside its
//! validity. Only a `CodeSigner` turns a [`Script<Unsigned>`](crate::script::Script) into a
//! `Script<Signed>`, so a rule that tells devices to enforce the signature cannot be built from
//! an unsigned script.

pub mod cab;
pub mod pkcs7;
pub mod powershell;
pub mod spc;
pub mod throwaway;
pub mod timestamp;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use x509_cert::der::{Decode, Encode};

use crate::model::{SecretRef, Secrets};
use crate::script::{Script, Signed, Unsigned};

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
    /// Signing or checking failed.
    #[error("{what}: {cause}")]
    Failed {
        /// What was being signed or verified.
        what: String,
        /// Why.
        #[source]
        cause: crate::vocab::Cause,
    },
}

impl SignError {
    /// A stable CamelCase reason, for machines (conditions, metrics, notifications).
    pub fn reason(&self) -> &'static str {
        match self {
            SignError::Certificate { .. } => "SigningCertificateUnfit",
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
    /// The key is not an RSA key.
    #[error("its private key is not an RSA key (PKCS #8 or PKCS #1); Windows code signing here needs RSA ≥ 2048")]
    NotRsaKey,
    /// The key is not the certificate's.
    #[error("its private key does not belong to its (first) certificate; put the certificate first and its own key beside it")]
    KeyMismatch,
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
            Unfit::NotPem | Unfit::BadPem(_) => "NotPem",
            Unfit::NoCertificate => "NoCertificate",
            Unfit::NoKey => "NoPrivateKey",
            Unfit::EncryptedKey => "EncryptedPrivateKey",
            Unfit::NotRsaKey => "NotRsaKey",
            Unfit::KeyMismatch => "KeyMismatch",
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
    key: pkcs7::Key,
    facts: CertificateFacts,
    timestamper: Option<timestamp::Timestamper>,
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
    /// key that is not the certificate's.
    pub fn new(reference: &SecretRef, secrets: &Secrets, now: DateTime<Utc>) -> Result<CodeSigner, SignError> {
        let refused = |unfit: Unfit| SignError::Certificate { reference: reference.to_string(), unfit };
        let text = secrets.read_bytes(reference).map_err(|e| refused(e.into()))?;
        let key = read_key(&text).map_err(refused)?;
        let der = key.signer.to_der().map_err(|e| refused(Unfit::Decode(CertificateError::NotX509(e))))?;
        let facts = judge_certificate(&der, now).map_err(|e| refused(e.into()))?;
        if let Some(problem) = facts.problems.first() {
            return Err(refused(Unfit::Problem {
                subject: facts.subject.clone(),
                thumbprint: facts.thumbprint.clone(),
                problem: problem.clone(),
            }));
        }
        Ok(CodeSigner {
            inner: Arc::new(SignerInner { reference: reference.to_string(), key, facts, timestamper: None }),
        })
    }

    /// The same signer, asking the RFC 3161 time-stamping authority at `url` to timestamp
    /// each signature ([`CodeSigner::timestamp`]).
    pub fn with_timestamps(self, url: &url::Url) -> Result<CodeSigner, SignError> {
        let timestamper = timestamp::Timestamper::new(url.clone())?;
        let inner = SignerInner {
            reference: self.inner.reference.clone(),
            key: self.inner.key.clone(),
            facts: self.inner.facts.clone(),
            timestamper: Some(timestamper),
        };
        Ok(CodeSigner { inner: Arc::new(inner) })
    }

    /// The signing certificate's facts.
    pub fn certificate(&self) -> &CertificateFacts {
        &self.inner.facts
    }

    /// Signs a generated script in PowerShell's format (without a timestamp; see
    /// [`CodeSigner::timestamp`]). CPU only: an RSA signature.
    pub fn sign_script(&self, script: Script<Unsigned>) -> Result<Script<Signed>, SignError> {
        let failed = |e: String| self.failed(script.name(), e);
        let content = spc::powershell(powershell::digest(script.text())).map_err(|e| failed(e.to_string()))?;
        let signature = pkcs7::sign(&content, &self.inner.key).map_err(|e| failed(e.to_string()))?;
        let der = signature.to_der().map_err(|e| failed(e.to_string()))?;
        let signed = powershell::append(script.text(), &der);
        Ok(script.into_signed(signed))
    }

    /// Adds an RFC 3161 timestamp to a signed script when this signer has a time-stamping
    /// authority; the script as it is otherwise.
    pub async fn timestamp(&self, script: Script<Signed>) -> Result<Script<Signed>, SignError> {
        let Some(timestamper) = &self.inner.timestamper else { return Ok(script) };
        let split = powershell::split(script.text());
        let der = match split.signature {
            Some(Ok(der)) => der,
            Some(Err(e)) => return Err(self.failed(script.name(), e)),
            None => return Err(self.failed(script.name(), "the signed script has no signature block".to_string())),
        };
        let mut signature = pkcs7::Signature::from_der(&der).map_err(|e| self.failed(script.name(), e))?;
        timestamper.stamp(&mut signature).await.map_err(|e| self.failed(script.name(), e))?;
        let der = signature.to_der().map_err(|e| self.failed(script.name(), e.to_string()))?;
        let text = powershell::append(split.body, &der);
        Ok(script.retimestamped(text))
    }

    /// Signs the cabinet `input` into `output`. Blocking (streams the files).
    pub fn sign_cab(&self, input: &Path, output: &Path) -> Result<(), SignError> {
        cab::sign(input, output, &self.inner.key).map_err(|e| self.failed(&input.display().to_string(), e))
    }

    fn failed(&self, what: &str, cause: impl Into<crate::vocab::Cause>) -> SignError {
        SignError::Failed { what: format!("signing {what} with {}", self.inner.reference), cause: cause.into() }
    }
}

/// The certificate (first `CERTIFICATE` block), further certificates (the chain) and the
/// unencrypted RSA key of one PEM text, the key checked to be the certificate's.
fn read_key(text: &[u8]) -> Result<pkcs7::Key, Unfit> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    if !text.starts_with(b"-----") && !text.iter().take(64).all(|b| b.is_ascii()) {
        return Err(Unfit::NotPem);
    }
    let blocks = pem::parse_many(text).map_err(Unfit::BadPem)?;
    let mut certificates = blocks.iter().filter(|b| b.tag() == "CERTIFICATE").map(|b| {
        x509_cert::Certificate::from_der(b.contents()).map_err(|e| Unfit::Decode(CertificateError::NotX509(e)))
    });
    let signer = certificates.next().ok_or(Unfit::NoCertificate)??;
    let chain = certificates.collect::<Result<Vec<_>, _>>()?;
    let key = blocks.iter().find(|b| b.tag().ends_with("PRIVATE KEY")).ok_or(Unfit::NoKey)?;
    let legacy_encrypted = key.headers().get("Proc-Type").is_some_and(|v| v.contains("ENCRYPTED"));
    if key.tag() == "ENCRYPTED PRIVATE KEY" || legacy_encrypted {
        return Err(Unfit::EncryptedKey);
    }
    let private = match key.tag() {
        "RSA PRIVATE KEY" => rsa::RsaPrivateKey::from_pkcs1_der(key.contents()).map_err(|_| Unfit::NotRsaKey)?,
        "PRIVATE KEY" => rsa::RsaPrivateKey::from_pkcs8_der(key.contents()).map_err(|_| Unfit::NotRsaKey)?,
        _ => return Err(Unfit::NotRsaKey),
    };
    let spki = signer
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| Unfit::Decode(CertificateError::NotX509(e)))?;
    let public = <rsa::RsaPublicKey as rsa::pkcs8::DecodePublicKey>::from_public_key_der(&spki).ok();
    if public.as_ref() != Some(private.as_ref()) {
        return Err(Unfit::KeyMismatch);
    }
    Ok(pkcs7::Key { private, signer, chain })
}

/// Signs the cabinet `input` into `output` with the certificate and key in `pem` as they
/// are, without judging the certificate first. A server signs with what it is configured with
/// (the WSUS emulator signs CABs so, even with an expired certificate, as the real server
/// would); the judging belongs to whoever trusts the signature. Blocking.
pub fn sign_as_configured(pem: &Path, input: &Path, output: &Path) -> Result<(), SignError> {
    let what = format!("signing {}", input.display());
    let failed = |cause: crate::vocab::Cause| SignError::Failed { what: what.clone(), cause };
    let text = crate::bounded::read(pem, 1 << 20)
        .map_err(|e| failed(crate::vocab::because(format!("cannot read {}", pem.display()), e)))?;
    let key = read_key(&text).map_err(|e| failed(e.to_string().into()))?;
    cab::sign(input, output, &key).map_err(|e| failed(e.into()))
}

/// What checking a file's Authenticode signature found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureCheck {
    /// Whether the file carries a signature at all.
    pub signed: bool,
    /// Whether the signed digest matches the file's bytes (false: altered after signing), and
    /// the signature itself holds (its signed attributes and the signer's RSA signature).
    pub digest_matches: bool,
    /// Whether the signer's chain ends in one of the trusted roots given, at the time given
    /// (or at a trusted timestamp's time).
    pub chain_trusted: bool,
    /// The signer's subject and serial (`/CN=…`, upper-case hex), as [`signer_identity`].
    pub signer: Option<(String, String)>,
    /// Whether the signer's certificate is self-signed (its issuer is its subject).
    pub self_signed: bool,
    /// The time of an attached timestamp that verifies against the trusted roots.
    pub timestamp: Option<DateTime<Utc>>,
    /// Why the signature or the chain did not verify (such as `self-signed certificate` or
    /// `certificate has expired`).
    pub chain_error: Option<String>,
}

impl SignatureCheck {
    /// Whether a trusted timestamp is attached.
    pub fn timestamped(&self) -> bool {
        self.timestamp.is_some()
    }

    fn unsigned() -> SignatureCheck {
        SignatureCheck {
            signed: false,
            digest_matches: false,
            chain_trusted: false,
            signer: None,
            self_signed: false,
            timestamp: None,
            chain_error: None,
        }
    }

    fn of(parsed: &pkcs7::Parsed, digest: Result<Vec<u8>, String>, roots: &[Vec<u8>], at: DateTime<Utc>) -> Self {
        let checked = parsed.check(roots, at);
        let digest_error = match digest {
            Ok(d) if d == parsed.file_digest() => None,
            Ok(_) => Some("the file's digest does not match the signature (MISMATCH)".to_string()),
            Err(e) => Some(e),
        };
        let problem = checked.problem.clone().or(digest_error);
        let signer_der = checked.signer.as_ref().and_then(|c| c.to_der().ok());
        SignatureCheck {
            signed: true,
            digest_matches: problem.is_none(),
            chain_trusted: problem.is_none() && checked.chain_trusted,
            signer: signer_der.as_deref().and_then(|d| signer_identity(d).ok()),
            self_signed: checked.signer.as_ref().is_some_and(|c| c.tbs_certificate.issuer == c.tbs_certificate.subject),
            timestamp: checked.timestamp,
            chain_error: problem.or(checked.chain_error),
        }
    }
}

/// Checks the Authenticode signature of a PowerShell script's text against the trusted roots
/// (DER) at `at`, reporting each part separately.
pub fn inspect_script(text: &str, roots: &[Vec<u8>], at: DateTime<Utc>) -> SignatureCheck {
    let split = powershell::split(text);
    let parsed = match split.signature {
        None => return SignatureCheck::unsigned(),
        Some(Err(e)) => return SignatureCheck { signed: true, chain_error: Some(e), ..SignatureCheck::unsigned() },
        Some(Ok(der)) => match pkcs7::Parsed::from_der(&der) {
            Ok(p) => p,
            Err(e) => return SignatureCheck { signed: true, chain_error: Some(e), ..SignatureCheck::unsigned() },
        },
    };
    let digest = if *parsed.kind() != spc::SPC_SIPINFO {
        Err(format!("the signature is for a {} file, not a script", parsed.kind()))
    } else if *parsed.file_digest_algorithm() != spc::SHA256 {
        // PowerShell's SIP hashes with the signature's algorithm; patchops accepts SHA-256.
        Err(format!("the script is hashed with {}, not SHA-256", parsed.file_digest_algorithm()))
    } else {
        Ok(powershell::digest(split.body))
    };
    SignatureCheck::of(&parsed, digest, roots, at)
}

/// Checks the Authenticode signature of the file at `path` — a cabinet (by its `MSCF` magic)
/// or a PowerShell script — against the trusted roots (DER) at `at`. Blocking (streams a
/// cabinet).
pub fn inspect(path: &Path, roots: &[Vec<u8>], at: DateTime<Utc>) -> Result<SignatureCheck, SignError> {
    let failed =
        |cause: String| SignError::Failed { what: format!("checking {}", path.display()), cause: cause.into() };
    let mut magic = [0u8; 4];
    let is_cab = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .map(|()| &magic == b"MSCF")
        .unwrap_or(false);
    if is_cab {
        return Ok(match cab::read(path).map_err(failed)? {
            None => SignatureCheck::unsigned(),
            Some(signed) => SignatureCheck::of(&signed.signature, signed.digest, roots, at),
        });
    }
    let bytes = crate::bounded::read(path, MAX_SCRIPT).map_err(|e| failed(format!("cannot read it: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| failed("it is not a UTF-8 script".into()))?;
    Ok(inspect_script(&text, roots, at))
}

/// The largest script checked.
const MAX_SCRIPT: u64 = 16 << 20;

/// A certificate's subject and serial in OpenSSL's one-line form (`/CN=…/O=…`, upper-case
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

/// Verifies the Authenticode signature of `file` (a cabinet or a script) against the CA
/// certificates in the PEM file `ca_pem`, at `at`: signed, unaltered, and chained to one of them.
pub fn verify(file: &Path, ca_pem: &Path, at: DateTime<Utc>) -> Result<(), SignError> {
    let failed =
        |cause: String| SignError::Failed { what: format!("verifying {}", file.display()), cause: cause.into() };
    let text = crate::bounded::read(ca_pem, 16 << 20).map_err(|e| failed(format!("{}: {e}", ca_pem.display())))?;
    let roots = pem_certificates(&text).map_err(|e| failed(e.to_string()))?;
    let check = inspect(file, &roots, at)?;
    match check {
        SignatureCheck { signed: false, .. } => Err(failed("it is not signed".into())),
        SignatureCheck { chain_trusted: true, digest_matches: true, .. } => Ok(()),
        SignatureCheck { chain_error, .. } => Err(failed(chain_error.unwrap_or_else(|| "it does not verify".into()))),
    }
}
