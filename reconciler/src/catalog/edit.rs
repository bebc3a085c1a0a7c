//! Making catalogs: key generation and signing, for teams that curate their own catalog.
//!
//! Kept apart from [`super::verify`] (as tough keeps its editor apart from its loader). Keys and
//! signatures are minisign's own formats, so `minisign -V` verifies what `patchops catalog sign`
//! writes and patchops verifies what `minisign -S` writes.

use std::io::Cursor;

use super::format::Catalog;
use super::keys::key_id;

/// Why a key could not be made or used, or a catalog could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// minisign refused.
    #[error("{0}")]
    Minisign(String),
    /// The secret key needs a password.
    #[error("the secret key is encrypted with a password; pass the password through an environment variable with --password-env NAME")]
    PasswordNeeded,
    /// The bytes to sign are not a valid catalog.
    #[error("refusing to sign an invalid catalog: {0}")]
    InvalidCatalog(#[source] crate::vocab::Cause),
}

impl EditError {
    /// A stable CamelCase reason, for machines (conditions, metrics, notifications).
    pub fn reason(&self) -> &'static str {
        match self {
            EditError::Minisign { .. } => "SigningFailed",
            EditError::PasswordNeeded => "KeyPasswordNeeded",
            EditError::InvalidCatalog { .. } => "InvalidCatalog",
        }
    }
}

fn ms(e: minisign::PError) -> EditError {
    EditError::Minisign(e.to_string())
}

/// A new key pair, as the text of minisign's `.pub` and `.key` files.
pub struct GeneratedKey {
    /// Contents of the `.pub` file (comment line and base64 line).
    pub public_file: String,
    /// The base64 line alone, as written in a CatalogSource's `trustedKeys`.
    pub public_base64: String,
    /// Contents of the `.key` file (unencrypted, as `minisign -G -W` writes).
    pub secret_file: minisign_secret::SecretText,
    /// The key id.
    pub key_id: String,
}

/// Keeps secret key text out of `Debug` and `Display`.
pub mod minisign_secret {
    use std::fmt;

    /// Text of a secret key file. `Debug` prints `REDACTED`; [`SecretText::expose`] marks the
    /// places that need the content.
    pub struct SecretText(pub(crate) String);

    impl SecretText {
        /// The secret content.
        pub fn expose(&self) -> &str {
            &self.0
        }
    }

    impl fmt::Debug for SecretText {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("SecretText(REDACTED)")
        }
    }
}

/// Generates an unencrypted minisign key pair.
pub fn keygen() -> Result<GeneratedKey, EditError> {
    let pair = minisign::KeyPair::generate_unencrypted_keypair().map_err(ms)?;
    let public_file = pair.pk.to_box().map_err(ms)?.into_string();
    let secret_file = pair.sk.to_box(None).map_err(ms)?.into_string();
    Ok(GeneratedKey {
        public_base64: pair.pk.to_base64(),
        key_id: key_id(pair.pk.keynum()),
        public_file,
        secret_file: minisign_secret::SecretText(secret_file),
    })
}

/// A secret key loaded for signing.
pub struct SigningKey(minisign::SecretKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", key_id(self.0.keynum()))
    }
}

impl SigningKey {
    /// Reads a minisign secret key file; `password` for encrypted keys.
    pub fn from_text(text: &str, password: Option<String>) -> Result<Self, EditError> {
        let boxed = minisign::SecretKeyBox::from_string(text).map_err(ms)?;
        let key = match password {
            Some(p) => boxed.into_secret_key(Some(p)).map_err(ms)?,
            None => match boxed.into_unencrypted_secret_key() {
                Ok(key) => key,
                // Decide from the key's own header, not from the wording of the crate's error.
                Err(e) => match secret_key_bytes(text) {
                    Some(bytes) if bytes.get(2..4) != Some(&[0, 0][..]) => return Err(EditError::PasswordNeeded),
                    Some(bytes) if has_zero_checksum(&bytes) => minisign::SecretKey::from_bytes(&bytes).map_err(ms)?,
                    _ => return Err(ms(e)),
                },
            },
        };
        Ok(SigningKey(key))
    }

    /// The key id.
    pub fn key_id(&self) -> String {
        key_id(self.0.keynum())
    }
}

/// The decoded key line of a minisign secret key file. Layout: sig_alg(2) kdf_alg(2)
/// chk_alg(2) salt(32) ops(8) mem(8) keynum(8) sk(64) chk(32).
fn secret_key_bytes(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let line = text.lines().nth(1)?.trim();
    base64::engine::general_purpose::STANDARD.decode(line).ok().filter(|b| b.len() == 158)
}

/// The `minisign` command (0.11) writes password-less keys (`-G -W`) with an all-zero checksum,
/// which the minisign crate refuses as corrupted. Such a key is read as is; a damaged key is
/// still caught, because [`sign`] verifies every signature with the public half before
/// returning it.
fn has_zero_checksum(bytes: &[u8]) -> bool {
    bytes.get(126..).is_some_and(|chk| chk.iter().all(|b| *b == 0))
}

/// A catalog and its signature. `bytes` is exactly what was signed: write it as is, never a
/// re-serialization.
#[derive(Debug, Clone)]
pub struct SignedCatalog {
    /// The signed catalog bytes.
    pub bytes: Vec<u8>,
    /// The `.minisig` file content.
    pub signature: String,
}

/// Checks that `bytes` is a valid catalog and signs it. The trusted comment records the serial,
/// so the signature itself says which catalog it is for.
pub fn sign(bytes: Vec<u8>, key: &SigningKey) -> Result<SignedCatalog, EditError> {
    let catalog: Catalog = serde_json::from_slice(&bytes).map_err(|e| EditError::InvalidCatalog(e.into()))?;
    catalog.check().map_err(|e| EditError::InvalidCatalog(e.into()))?;
    let comment = format!(
        "timestamp:{}\tpatchops catalog serial:{} publisher:{}",
        crate::clock::Clock::now(&crate::clock::SystemClock).timestamp(),
        catalog.serial,
        catalog.publisher.replace(['\n', '\r'], " ")
    );
    let public = minisign::PublicKey::from_secret_key(&key.0).map_err(ms)?;
    let sig = minisign::sign(
        Some(&public),
        &key.0,
        Cursor::new(&bytes),
        Some(&comment),
        Some("signature from patchops catalog sign"),
    )
    .map_err(ms)?;
    Ok(SignedCatalog { bytes, signature: sig.into_string() })
}
