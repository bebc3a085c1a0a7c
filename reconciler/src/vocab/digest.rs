//! Content digests.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A SHA-256 digest, 64 lowercase hexadecimal characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256([u8; 32]);

impl Sha256 {
    /// Hashes `bytes`.
    pub fn digest(bytes: &[u8]) -> Self {
        use sha2::Digest;
        Sha256(sha2::Sha256::digest(bytes).into())
    }

    /// Wraps a finished digest.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Sha256(bytes)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses 64 hexadecimal characters.
    pub fn parse(s: &str) -> Result<Self, NotADigest> {
        let mut out = [0u8; 32];
        let refused = || NotADigest { text: s.chars().take(80).collect() };
        if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(refused());
        }
        hex::decode_to_slice(s, &mut out).map_err(|_| refused())?;
        Ok(Sha256(out))
    }

    /// The first 12 hex characters, for display.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl Serialize for Sha256 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        super::text::deserialize_str(d, "a SHA-256 digest")
    }
}

/// Text that is not a SHA-256 digest.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{text:?} is not a SHA-256 digest (64 lowercase hexadecimal characters)")]
pub struct NotADigest {
    /// The text (its first 80 characters).
    pub text: String,
}

impl std::str::FromStr for Sha256 {
    type Err = NotADigest;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Sha256::parse(s)
    }
}

impl JsonSchema for Sha256 {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Sha256".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "pattern": "^[0-9a-f]{64}$" })
    }
}

#[cfg(test)]
mod tests {
    use super::Sha256;

    #[test]
    fn parse_takes_lowercase_hex_of_64_characters_only() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(5));
        let text = hex::encode(bytes);
        let d = Sha256::parse(&text).unwrap();
        assert_eq!(d.as_bytes(), &bytes);
        assert_eq!(d.to_string(), text, "round trip");
        for bad in [
            text.to_uppercase(),
            text[..63].to_string(),
            format!("{text}0"),
            format!("{}g", &text[..63]),
            format!("{} ", &text[..63]),
            // 64 bytes, not 64 hex digits: a two-byte character.
            format!("{}é", &text[..62]),
            String::new(),
        ] {
            assert!(Sha256::parse(&bad).is_err(), "{bad:?} refused");
        }
    }
}
