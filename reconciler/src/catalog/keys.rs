//! minisign public keys trusted to sign a catalog.

use std::fmt;

/// A minisign public key from a CatalogSource's `trustedKeys`.
#[derive(Clone)]
pub struct TrustedKey {
    key: minisign::PublicKey,
}

impl TrustedKey {
    /// Parses the base64 line of a minisign `.pub` file (a whole two-line file is accepted too).
    pub fn parse(text: &str) -> Result<Self, NotAKey> {
        let line =
            text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("untrusted comment:")).unwrap_or("");
        let key = minisign::PublicKey::from_base64(line).map_err(NotAKey)?;
        Ok(TrustedKey { key })
    }

    /// The key id, as `minisign` prints it (16 uppercase hex digits).
    pub fn key_id(&self) -> String {
        key_id(self.key.keynum())
    }

    pub(crate) fn public_key(&self) -> &minisign::PublicKey {
        &self.key
    }
}

/// Text that is not a minisign public key: minisign's reason.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotAKey(#[source] minisign::PError);

impl fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustedKey({})", self.key_id())
    }
}

/// minisign shows key ids as the little-endian u64 of the 8 key-number bytes, in hex.
pub(crate) fn key_id(keynum: &[u8]) -> String {
    let mut bytes = [0u8; 8];
    for (dst, src) in bytes.iter_mut().zip(keynum) {
        *dst = *src;
    }
    format!("{:016X}", u64::from_le_bytes(bytes))
}
