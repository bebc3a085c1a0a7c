//! References to secrets. A fleet names *where* a secret lives (an environment variable or a
//! file), never the secret itself: a secret written inline in git is a validation error.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a secret (a client secret, a certificate's private key, a password) is read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SecretRef {
    /// An environment variable of the patchops process.
    Env(String),
    /// A file on the machine running patchops (a PEM, a PFX, a file holding a token).
    File(String),
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::File(path) => write!(f, "file:{path}"),
        }
    }
}

/// The message given for a secret written inline; the loader adds file, line and column.
pub const INLINE_SECRET: &str = "a secret is written inline; secrets must never be committed to git. \
Reference it instead, e.g. `{ env: PATCHOPS_INTUNE_SECRET }` or `{ file: /run/secrets/intune.pem }`, \
and remove the value from the repository's history";

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            env: Option<String>,
            file: Option<String>,
        }
        // The inline value is captured only to recognise its shape; it is never read or printed.
        #[allow(dead_code)]
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shape {
            Reference(Raw),
            Inline(String),
            Other(serde_yaml::Value),
        }
        match Shape::deserialize(d)? {
            Shape::Inline(_) => Err(serde::de::Error::custom(INLINE_SECRET)),
            Shape::Other(_) => Err(serde::de::Error::custom(
                "a secret reference is `{ env: NAME }` or `{ file: PATH }`",
            )),
            Shape::Reference(Raw { env: Some(env), file: None }) => {
                if env.is_empty() || !env.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Err(serde::de::Error::custom(format!(
                        "`env: {env:?}` is not an environment variable name (letters, digits and '_')"
                    )));
                }
                Ok(SecretRef::Env(env))
            }
            Shape::Reference(Raw { env: None, file: Some(file) }) => {
                if file.contains("-----BEGIN") || file.contains('\n') {
                    return Err(serde::de::Error::custom(INLINE_SECRET));
                }
                Ok(SecretRef::File(file))
            }
            Shape::Reference(_) => Err(serde::de::Error::custom(
                "a secret reference needs exactly one of `env` or `file`",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_and_inline_values_are_refused() {
        let env: Result<SecretRef, _> = serde_yaml::from_str("{ env: INTUNE_SECRET }");
        assert_eq!(env.ok(), Some(SecretRef::Env("INTUNE_SECRET".into())));
        let inline = serde_yaml::from_str::<SecretRef>("s3cr3t-Value").err().map(|e| e.to_string());
        assert!(inline.is_some_and(|e| e.contains("written inline")));
        let pem = serde_yaml::from_str::<SecretRef>("file: \"-----BEGIN PRIVATE KEY-----\"").err();
        assert!(pem.is_some());
        let both = serde_yaml::from_str::<SecretRef>("{ env: A, file: /x }").err().map(|e| e.to_string());
        assert!(both.is_some_and(|e| e.contains("exactly one")));
    }
}
