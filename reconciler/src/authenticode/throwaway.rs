//! Throwaway code-signing certificates: a fresh RSA key and a self-signed certificate that
//! lives only as long as the temporary directory it is written to. `plan --emulate` sets its
//! emulated platforms up with these in place of the fleet's own certificates, so that a dry run
//! signs and checks everything the way the real platforms will, with no secret of the fleet.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use der::asn1::ObjectIdentifier;
use der::referenced::OwnedToRef;
use der::EncodePem;
use rsa::pkcs8::EncodePrivateKey;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectKeyIdentifier};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::Validity;

/// `id-kp-codeSigning` (RFC 5280 4.2.1.12).
const CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");

/// How long a throwaway certificate is valid: a dry run takes minutes.
const LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// A self-signed code-signing certificate for `common_name` (a 2048-bit RSA key; basic
/// constraints CA:TRUE so that it is its own trusted root; key usage digitalSignature and
/// keyCertSign; extended key usage codeSigning), valid from an hour before `now` for a week:
/// one PEM text with the certificate first and then the key (PKCS #8), as
/// [`CodeSigner`](super::CodeSigner) reads it.
pub fn code_signing_pem(common_name: &str, now: DateTime<Utc>) -> Result<String, String> {
    let mut rng = rand_core::OsRng;
    let key = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|e| format!("generating an RSA key: {e}"))?;
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.clone());
    let public = SubjectPublicKeyInfoOwned::from_key(key.to_public_key())
        .map_err(|e| format!("encoding the public key: {e}"))?;
    let cn: String = common_name.chars().filter(|c| c.is_ascii_alphanumeric() || " -._".contains(*c)).collect();
    let subject = Name::from_str(&format!("CN={cn}")).map_err(|e| format!("the name {cn:?}: {e}"))?;
    let from = std::time::SystemTime::from(now).checked_sub(Duration::from_secs(3600)).unwrap_or(std::time::UNIX_EPOCH);
    let since_epoch = from.duration_since(std::time::UNIX_EPOCH).map_err(|e| e.to_string())?;
    let validity = Validity {
        not_before: x509_cert::time::Time::try_from(std::time::UNIX_EPOCH + since_epoch)
            .map_err(|e| format!("the validity: {e}"))?,
        not_after: x509_cert::time::Time::try_from(std::time::UNIX_EPOCH + since_epoch + LIFETIME)
            .map_err(|e| format!("the validity: {e}"))?,
    };
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|e| format!("a serial number: {e}"))?;
    serial[0] &= 0x7f;
    let serial = SerialNumber::new(&serial).map_err(|e| format!("a serial number: {e}"))?;
    let mut builder =
        CertificateBuilder::new(Profile::Manual { issuer: None }, serial, validity, subject, public.clone(), &signer)
            .map_err(|e| format!("building the certificate: {e}"))?;
    let bad = |e: x509_cert::builder::Error| format!("building the certificate: {e}");
    builder.add_extension(&BasicConstraints { ca: true, path_len_constraint: None }).map_err(bad)?;
    builder.add_extension(&KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyCertSign)).map_err(bad)?;
    builder.add_extension(&ExtendedKeyUsage(vec![CODE_SIGNING])).map_err(bad)?;
    builder
        .add_extension(&SubjectKeyIdentifier::try_from(public.owned_to_ref()).map_err(|e| format!("{e}"))?)
        .map_err(bad)?;
    let certificate = builder.build::<rsa::pkcs1v15::Signature>().map_err(bad)?;
    let cert_pem =
        certificate.to_pem(der::pem::LineEnding::LF).map_err(|e| format!("encoding the certificate: {e}"))?;
    let key_pem = key.to_pkcs8_pem(der::pem::LineEnding::LF).map_err(|e| format!("encoding the key: {e}"))?;
    Ok(format!("{cert_pem}{}", key_pem.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throwaway_certificate_is_fit_to_sign_code_and_new_each_time() {
        let now = Utc::now();
        let pem = code_signing_pem("patchops dry run", now).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("signing.pem");
        std::fs::write(&file, &pem).unwrap();
        let reference = crate::model::SecretRef::File(file.to_string_lossy().into_owned());
        // CodeSigner judges it as Windows will: code-signing usage, key size, validity, the
        // key the certificate's.
        crate::authenticode::CodeSigner::new(&reference, &crate::model::Secrets::default(), now).unwrap();
        assert!(crate::authenticode::CodeSigner::new(
            &reference,
            &crate::model::Secrets::default(),
            now + chrono::Duration::days(8)
        )
        .is_err());
        assert_ne!(pem, code_signing_pem("patchops dry run", now).unwrap());
    }
}
