//! The PKCS #7 SignedData of an Authenticode signature: made with RustCrypto's `cms` types and
//! an RSA PKCS #1 v1.5 signature (`rsa`), and checked the way Windows checks it — the file's
//! digest against the indirect data, the indirect data against the signed `messageDigest`, the
//! signed attributes against the signer's key, and the signer's chain against trusted roots at
//! a time (the timestamp's, when a trusted RFC 3161 timestamp is attached).
//!
//! Authenticode differs from plain CMS in two ways that matter here: the content is the
//! `SpcIndirectDataContent` itself (PKCS #7's `[0] EXPLICIT ANY`, not an OCTET STRING), and
//! the `messageDigest` attribute is the digest of that SEQUENCE's contents without its tag and
//! length. `cms` keeps `eContent` as an `Any`, so both are expressed without a special case.

use chrono::{DateTime, Utc};
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignatureValue, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{Any, ObjectIdentifier, OctetString, SetOfVec};
use der::{Decode, Encode};
use x509_cert::attr::Attribute;
use x509_cert::Certificate;

use super::spc::{self, SpcIndirectDataContent};

/// The most certificates a signature may carry, and the longest chain followed.
const MAX_CERTIFICATES: usize = 32;
const MAX_CHAIN: usize = 8;

/// A streaming digest of one of the algorithms Authenticode uses.
pub enum Digester {
    /// SHA-1, for older signatures.
    Sha1(sha1::Sha1),
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-384.
    Sha384(sha2::Sha384),
    /// SHA-512.
    Sha512(sha2::Sha512),
}

impl Digester {
    /// The digester for `oid`, or `None` for an algorithm patchops does not accept.
    pub fn new(oid: &ObjectIdentifier) -> Option<Digester> {
        use sha2::Digest;
        Some(match *oid {
            spc::SHA1 => Digester::Sha1(sha1::Sha1::new()),
            spc::SHA256 => Digester::Sha256(sha2::Sha256::new()),
            spc::SHA384 => Digester::Sha384(sha2::Sha384::new()),
            spc::SHA512 => Digester::Sha512(sha2::Sha512::new()),
            _ => return None,
        })
    }

    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        use sha2::Digest;
        match self {
            Digester::Sha1(h) => h.update(bytes),
            Digester::Sha256(h) => h.update(bytes),
            Digester::Sha384(h) => h.update(bytes),
            Digester::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest.
    pub fn finish(self) -> Vec<u8> {
        use sha2::Digest;
        match self {
            Digester::Sha1(h) => h.finalize().to_vec(),
            Digester::Sha256(h) => h.finalize().to_vec(),
            Digester::Sha384(h) => h.finalize().to_vec(),
            Digester::Sha512(h) => h.finalize().to_vec(),
        }
    }

    fn digest(oid: &ObjectIdentifier, bytes: &[u8]) -> Option<Vec<u8>> {
        let mut d = Digester::new(oid)?;
        d.update(bytes);
        Some(d.finish())
    }
}

/// A signing key and the certificates that go with it (the signer's first).
#[derive(Clone)]
pub struct Key {
    pub(super) private: rsa::RsaPrivateKey,
    pub(super) signer: Certificate,
    pub(super) chain: Vec<Certificate>,
}

/// A made signature, before it is encoded into a file (a timestamp can still be attached).
#[derive(Clone, Debug)]
pub struct Signature {
    signed: SignedData,
}

impl Signature {
    /// A signature read back from its DER ContentInfo (to attach a timestamp).
    pub fn from_der(der_bytes: &[u8]) -> Result<Signature, String> {
        let info = ContentInfo::from_der(der_bytes).map_err(|e| format!("the signature is not PKCS #7: {e}"))?;
        let signed =
            info.content.decode_as().map_err(|e| format!("the signature's SignedData does not decode: {e}"))?;
        Ok(Signature { signed })
    }

    /// The signer's signature value, which an RFC 3161 timestamp covers.
    pub fn signature_value(&self) -> Option<&[u8]> {
        self.signed.signer_infos.0.get(0).map(|s| s.signature.as_bytes())
    }

    /// Attaches an RFC 3161 timestamp token (a DER ContentInfo) as the unsigned attribute
    /// `SPC_RFC3161_OBJID`, where signtool puts it.
    pub fn attach_timestamp(&mut self, token: &[u8]) -> Result<(), der::Error> {
        let value = Any::from_der(token)?;
        let attribute = Attribute { oid: spc::SPC_RFC3161, values: SetOfVec::try_from(vec![value])? };
        let mut infos: Vec<SignerInfo> = self.signed.signer_infos.0.clone().into_vec();
        let Some(info) = infos.first_mut() else { return Err(der::ErrorKind::Failed.into()) };
        info.unsigned_attrs = Some(SetOfVec::try_from(vec![attribute])?);
        self.signed.signer_infos = SignerInfos(SetOfVec::try_from(infos)?);
        Ok(())
    }

    /// The DER ContentInfo.
    pub fn to_der(&self) -> Result<Vec<u8>, der::Error> {
        ContentInfo { content_type: spc::SIGNED_DATA, content: Any::encode_from(&self.signed)? }.to_der()
    }
}

/// Signs `content` with `key`: SignedData version 1, one SignerInfo identified by issuer and
/// serial, SHA-256, the signed attributes signtool writes (content type, SpcSpOpusInfo,
/// SpcStatementType, message digest) and no signing time (as signtool without a timestamp).
pub fn sign(content: &SpcIndirectDataContent, key: &Key) -> Result<Signature, SignFailure> {
    use rsa::signature::{SignatureEncoding, Signer};
    let econtent = Any::from_der(&content.to_der()?)?;
    let digest = Digester::digest(&spc::SHA256, econtent.value()).ok_or(SignFailure::Digest)?;
    let attribute = |oid: ObjectIdentifier, value: Any| -> Result<Attribute, der::Error> {
        Ok(Attribute { oid, values: SetOfVec::try_from(vec![value])? })
    };
    let statement = Any::from_der(&vec![spc::SPC_INDIVIDUAL_SP_KEY_PURPOSE].to_der()?)?;
    let opus = Any::from_der(&[0x30, 0x00])?;
    let signed_attrs: SetOfVec<Attribute> = SetOfVec::try_from(vec![
        attribute(spc::CONTENT_TYPE, Any::encode_from(&spc::SPC_INDIRECT_DATA)?)?,
        attribute(spc::SPC_SP_OPUS_INFO, opus)?,
        attribute(spc::SPC_STATEMENT_TYPE, statement)?,
        attribute(spc::MESSAGE_DIGEST, Any::encode_from(&OctetString::new(digest)?)?)?,
    ])?;
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.private.clone());
    let signature = signer.try_sign(&signed_attrs.to_der()?).map_err(|_| SignFailure::Rsa)?;
    let tbs = &key.signer.tbs_certificate;
    let info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer.clone(),
            serial_number: tbs.serial_number.clone(),
        }),
        digest_alg: spc::digest_algorithm(spc::SHA256),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: spc::digest_algorithm(spc::RSA_ENCRYPTION),
        signature: SignatureValue::new(signature.to_vec())?,
        unsigned_attrs: None,
    };
    let mut certificates = vec![CertificateChoices::Certificate(key.signer.clone())];
    certificates.extend(key.chain.iter().cloned().map(CertificateChoices::Certificate));
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![spc::digest_algorithm(spc::SHA256)])?,
        encap_content_info: EncapsulatedContentInfo { econtent_type: spc::SPC_INDIRECT_DATA, econtent: Some(econtent) },
        certificates: Some(CertificateSet(SetOfVec::try_from(certificates)?)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![info])?),
    };
    Ok(Signature { signed })
}

/// Why a signature could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SignFailure {
    /// A structure would not encode.
    #[error("encoding the signature: {0}")]
    Der(#[from] der::Error),
    /// The digest algorithm is not available.
    #[error("no SHA-256")]
    Digest,
    /// The RSA operation failed.
    #[error("the RSA signature failed")]
    Rsa,
}

/// A parsed Authenticode signature.
pub struct Parsed {
    signed: SignedData,
    indirect: SpcIndirectDataContent,
    econtent_value: Vec<u8>,
}

impl Parsed {
    /// Parses a DER ContentInfo, ignoring trailing zero padding (a CAB pads to 8 bytes).
    pub fn from_der(der_bytes: &[u8]) -> Result<Parsed, String> {
        let mut reader = der::SliceReader::new(der_bytes).map_err(|e| e.to_string())?;
        let info = <ContentInfo as der::Decode>::decode(&mut reader)
            .map_err(|e| format!("the signature is not PKCS #7: {e}"))?;
        let remaining = der::Reader::remaining_len(&reader);
        let rest = der::Reader::read_slice(&mut reader, remaining).map_err(|e| e.to_string())?;
        if rest.len() >= 8 || rest.iter().any(|b| *b != 0) {
            return Err("the signature is followed by other data".into());
        }
        if info.content_type != spc::SIGNED_DATA {
            return Err(format!("the signature's content type is {}, not signed data", info.content_type));
        }
        let signed: SignedData =
            info.content.decode_as().map_err(|e| format!("the signature's SignedData does not decode: {e}"))?;
        if signed.encap_content_info.econtent_type != spc::SPC_INDIRECT_DATA {
            return Err(format!(
                "the signature signs {}, not Authenticode indirect data",
                signed.encap_content_info.econtent_type
            ));
        }
        let econtent = signed.encap_content_info.econtent.as_ref().ok_or("the signature has no content")?;
        let indirect: SpcIndirectDataContent =
            econtent.decode_as().map_err(|e| format!("the indirect data does not decode: {e}"))?;
        let econtent_value = econtent.value().to_vec();
        if signed.certificates.as_ref().is_some_and(|c| c.0.len() > MAX_CERTIFICATES) {
            return Err(format!("the signature carries more than {MAX_CERTIFICATES} certificates"));
        }
        Ok(Parsed { signed, indirect, econtent_value })
    }

    /// The kind of file signed (`SPC_SIPINFO_OBJID`, `SPC_CAB_DATA_OBJID`, …).
    pub fn kind(&self) -> &ObjectIdentifier {
        &self.indirect.data.value_type
    }

    /// The algorithm the file was hashed with.
    pub fn file_digest_algorithm(&self) -> &ObjectIdentifier {
        &self.indirect.message_digest.digest_algorithm.oid
    }

    /// The file digest the signature signs.
    pub fn file_digest(&self) -> &[u8] {
        self.indirect.message_digest.digest.as_bytes()
    }

    /// Checks everything but the file digest: the signed attributes, the signer's signature and
    /// chain against `roots` (DER) at `at`, and a timestamp when there is one.
    pub fn check(&self, roots: &[Vec<u8>], at: DateTime<Utc>) -> SignerCheck {
        let certificates = certificates_of(&self.signed);
        let signer = match verify_signer(&self.signed, &self.econtent_value, &spc::SPC_INDIRECT_DATA, &certificates) {
            Ok(signer) => signer,
            Err(problem) => return SignerCheck { problem: Some(problem), ..SignerCheck::default() },
        };
        // As Windows: a signer whose certificate names its uses must name code signing.
        if !usable_for(&signer.certificate, CODE_SIGNING) {
            return SignerCheck {
                signer: Some(signer.certificate),
                chain_error: Some("the signer's certificate is not for code signing (no 1.3.6.1.5.5.7.3.3 among its extended key usages)".into()),
                ..SignerCheck::default()
            };
        }
        let timestamp = self.timestamp(roots, at);
        let chain_error = chain(&signer.certificate, &certificates, roots, at).err();
        // A trusted timestamp inside the certificate's validity keeps an expired signature good.
        let chain_trusted = match &chain_error {
            None => true,
            Some(ChainError::Validity(_)) => {
                timestamp.as_ref().is_some_and(|t| chain(&signer.certificate, &certificates, roots, *t).is_ok())
            }
            Some(_) => false,
        };
        SignerCheck {
            problem: None,
            signer: Some(signer.certificate.clone()),
            chain_trusted,
            chain_error: chain_error.map(|e| e.to_string()),
            timestamp,
        }
    }

    /// The time of an attached RFC 3161 timestamp whose token verifies, covers this signature
    /// and chains to `roots` at its own time.
    fn timestamp(&self, roots: &[Vec<u8>], at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let info = self.signed.signer_infos.0.get(0)?;
        let attribute = info.unsigned_attrs.as_ref()?.iter().find(|a| a.oid == spc::SPC_RFC3161)?;
        let token: ContentInfo = attribute.values.get(0)?.decode_as().ok()?;
        let signed: SignedData = token.content.decode_as().ok()?;
        let econtent = signed.encap_content_info.econtent.as_ref()?;
        if signed.encap_content_info.econtent_type != spc::TST_INFO {
            return None;
        }
        // The TSTInfo is carried as an OCTET STRING (plain CMS).
        let octets: OctetString = econtent.decode_as().ok()?;
        let tst = x509_tsp::TstInfo::from_der(octets.as_bytes()).ok()?;
        let imprint = &tst.message_imprint;
        let expected = Digester::digest(&imprint.hash_algorithm.oid, info.signature.as_bytes())?;
        if imprint.hashed_message.as_bytes() != expected.as_slice() {
            return None;
        }
        let certificates = certificates_of(&signed);
        let signer = verify_signer(&signed, octets.as_bytes(), &spc::TST_INFO, &certificates).ok()?;
        if !usable_for(&signer.certificate, TIME_STAMPING) {
            return None;
        }
        let time = DateTime::<Utc>::from(tst.gen_time.to_system_time());
        if time > at {
            return None;
        }
        chain(&signer.certificate, &certificates, roots, time).ok()?;
        Some(time)
    }
}

/// What checking the signer found (the file digest is checked by the format).
#[derive(Debug, Default)]
pub struct SignerCheck {
    /// Why the signature itself does not hold (no signer, a bad signed attribute, a wrong RSA
    /// signature).
    pub problem: Option<String>,
    /// The signer's certificate.
    pub signer: Option<Certificate>,
    /// Whether the chain ends in a trusted root (at the timestamp's time, when one holds).
    pub chain_trusted: bool,
    /// Why the chain did not verify at the time of checking.
    pub chain_error: Option<String>,
    /// The time of a trusted timestamp.
    pub timestamp: Option<DateTime<Utc>>,
}

const CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
const TIME_STAMPING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.8");
const ANY_EXTENDED_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37.0");

/// Whether `certificate` may be used for `purpose`: it has no extended key usage (any use), or
/// one that names the purpose or any use.
fn usable_for(certificate: &Certificate, purpose: ObjectIdentifier) -> bool {
    match certificate.tbs_certificate.get::<x509_cert::ext::pkix::ExtendedKeyUsage>() {
        Ok(None) => true,
        Ok(Some((_, eku))) => eku.0.contains(&purpose) || eku.0.contains(&ANY_EXTENDED_KEY_USAGE),
        Err(_) => false,
    }
}

/// The X.509 certificates a SignedData carries.
fn certificates_of(signed: &SignedData) -> Vec<Certificate> {
    signed
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

struct VerifiedSigner {
    certificate: Certificate,
}

/// The one SignerInfo: its certificate, its content type and message digest attributes, and
/// its RSA signature over the signed attributes.
fn verify_signer(
    signed: &SignedData,
    econtent_value: &[u8],
    content_type: &ObjectIdentifier,
    certificates: &[Certificate],
) -> Result<VerifiedSigner, String> {
    let [info] = signed.signer_infos.0.as_slice() else {
        return Err(format!("the signature has {} signers; Authenticode has exactly one", signed.signer_infos.0.len()));
    };
    let SignerIdentifier::IssuerAndSerialNumber(sid) = &info.sid else {
        return Err("the signer is named by key identifier, which Authenticode does not use".into());
    };
    let certificate = certificates
        .iter()
        .find(|c| c.tbs_certificate.issuer == sid.issuer && c.tbs_certificate.serial_number == sid.serial_number)
        .ok_or("the signer's certificate is not in the signature")?;
    let attrs = info.signed_attrs.as_ref().ok_or("the signature has no signed attributes")?;
    let value = |oid: ObjectIdentifier| attrs.iter().find(|a| a.oid == oid).and_then(|a| a.values.get(0));
    let found_type: ObjectIdentifier = value(spc::CONTENT_TYPE)
        .and_then(|v| v.decode_as().ok())
        .ok_or("the signature has no content-type attribute")?;
    if found_type != *content_type {
        return Err(format!("the signed content type {found_type} is not {content_type}"));
    }
    let signed_digest: OctetString = value(spc::MESSAGE_DIGEST)
        .and_then(|v| v.decode_as().ok())
        .ok_or("the signature has no message-digest attribute")?;
    let computed = Digester::digest(&info.digest_alg.oid, econtent_value)
        .ok_or_else(|| format!("the digest algorithm {} is not accepted", info.digest_alg.oid))?;
    if signed_digest.as_bytes() != computed.as_slice() {
        return Err("the signed message digest does not match the signed content".into());
    }
    let message = attrs.to_der().map_err(|e| e.to_string())?;
    verify_rsa(certificate, &info.digest_alg.oid, &message, info.signature.as_bytes())
        .map_err(|e| format!("the signer's signature does not verify: {e}"))?;
    Ok(VerifiedSigner { certificate: certificate.clone() })
}

/// Verifies an RSA PKCS #1 v1.5 signature over `message` with `certificate`'s key.
fn verify_rsa(
    certificate: &Certificate,
    digest: &ObjectIdentifier,
    message: &[u8],
    signature: &[u8],
) -> Result<(), String> {
    use rsa::pkcs1v15::Pkcs1v15Sign;
    use x509_cert::der::Encode as _;
    let spki = certificate.tbs_certificate.subject_public_key_info.to_der().map_err(|e| e.to_string())?;
    let key = <rsa::RsaPublicKey as rsa::pkcs8::DecodePublicKey>::from_public_key_der(&spki)
        .map_err(|e| format!("the key is not RSA ({e})"))?;
    let hashed = Digester::digest(digest, message).ok_or_else(|| format!("the digest {digest} is not accepted"))?;
    let scheme = match *digest {
        spc::SHA1 => Pkcs1v15Sign::new::<sha1::Sha1>(),
        spc::SHA256 => Pkcs1v15Sign::new::<sha2::Sha256>(),
        spc::SHA384 => Pkcs1v15Sign::new::<sha2::Sha384>(),
        _ => Pkcs1v15Sign::new::<sha2::Sha512>(),
    };
    key.verify(scheme, &hashed, signature).map_err(|e| e.to_string())
}

/// Why a chain did not verify.
#[derive(Debug, thiserror::Error)]
enum ChainError {
    /// A certificate is outside its validity at the time.
    #[error("{0}")]
    Validity(String),
    /// The chain does not end in a trusted root.
    #[error("{0}")]
    Untrusted(String),
}

/// Follows `leaf`'s issuers through `pool` and `roots` to a trusted root, checking each
/// certificate's signature and validity at `at`.
fn chain(leaf: &Certificate, pool: &[Certificate], roots: &[Vec<u8>], at: DateTime<Utc>) -> Result<(), ChainError> {
    let roots: Vec<Certificate> = roots.iter().filter_map(|der| Certificate::from_der(der).ok()).collect();
    let mut current = leaf.clone();
    let mut validity: Option<ChainError> = None;
    for _ in 0..MAX_CHAIN {
        let tbs = &current.tbs_certificate;
        let not_before = DateTime::<Utc>::from(tbs.validity.not_before.to_system_time());
        let not_after = DateTime::<Utc>::from(tbs.validity.not_after.to_system_time());
        if validity.is_none() {
            if at > not_after {
                validity = Some(ChainError::Validity("certificate has expired".into()));
            } else if at < not_before {
                validity = Some(ChainError::Validity("certificate is not yet valid".into()));
            }
        }
        if roots.contains(&current) {
            return validity.map_or(Ok(()), Err);
        }
        let issued_by =
            |candidate: &Certificate| candidate.tbs_certificate.subject == tbs.issuer && signed_by(&current, candidate);
        if tbs.issuer == tbs.subject && issued_by(&current) {
            return Err(ChainError::Untrusted(if current == *leaf {
                "self-signed certificate".into()
            } else {
                "self-signed certificate in certificate chain".into()
            }));
        }
        match roots.iter().chain(pool.iter()).find(|c| issued_by(c)) {
            // Only a CA may issue: an end-entity certificate that signed another is no link.
            Some(issuer) if !may_issue(issuer) => return Err(ChainError::Untrusted("invalid CA certificate".into())),
            Some(issuer) => current = issuer.clone(),
            None => return Err(ChainError::Untrusted("unable to get local issuer certificate".into())),
        }
    }
    Err(ChainError::Untrusted(format!("the chain is longer than {MAX_CHAIN} certificates")))
}

/// Whether `certificate` is a CA's (basic constraints `CA:TRUE`, and `keyCertSign` when it
/// names its key usages), as RFC 5280 requires of every issuer in a chain.
fn may_issue(certificate: &Certificate) -> bool {
    use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
    let tbs = &certificate.tbs_certificate;
    let ca = matches!(tbs.get::<BasicConstraints>(), Ok(Some((_, c))) if c.ca);
    let signs_certificates = match tbs.get::<KeyUsage>() {
        Ok(None) => true,
        Ok(Some((_, usage))) => usage.0.contains(KeyUsages::KeyCertSign),
        Err(_) => false,
    };
    ca && signs_certificates
}

/// Whether `issuer`'s key made `certificate`'s signature.
fn signed_by(certificate: &Certificate, issuer: &Certificate) -> bool {
    const SHA1_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");
    const SHA256_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
    const SHA384_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
    const SHA512_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
    let digest = match certificate.signature_algorithm.oid {
        SHA1_RSA => spc::SHA1,
        SHA256_RSA => spc::SHA256,
        SHA384_RSA => spc::SHA384,
        SHA512_RSA => spc::SHA512,
        _ => return false,
    };
    let Ok(tbs) = certificate.tbs_certificate.to_der() else { return false };
    let Some(signature) = certificate.signature.as_bytes() else { return false };
    verify_rsa(issuer, &digest, &tbs, signature).is_ok()
}
