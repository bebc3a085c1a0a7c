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
        // A visitor (not an untagged enum) so that serde_yaml still knows the position when
        // the value is refused, and so that an inline value is never buffered or echoed.
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SecretRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret reference `{ env: NAME }` or `{ file: PATH }`")
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<SecretRef, E> {
                Err(E::custom(INLINE_SECRET))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<SecretRef, E> {
                Err(E::custom(INLINE_SECRET))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<SecretRef, E> {
                Err(E::custom(INLINE_SECRET))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<SecretRef, A::Error> {
                use serde::de::Error;
                let mut found: Option<SecretRef> = None;
                while let Some(key) = map.next_key::<String>()? {
                    let value: String = map.next_value()?;
                    let r = match key.as_str() {
                        "env" => {
                            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                                return Err(A::Error::custom(format!(
                                    "`env: {value:?}` is not an environment variable name (letters, digits and '_')"
                                )));
                            }
                            SecretRef::Env(value)
                        }
                        "file" => {
                            if value.contains("-----BEGIN") || value.contains('\n') {
                                return Err(A::Error::custom(INLINE_SECRET));
                            }
                            SecretRef::File(value)
                        }
                        other => return Err(A::Error::unknown_field(other, &["env", "file"])),
                    };
                    if found.replace(r).is_some() {
                        return Err(A::Error::custom("a secret reference needs exactly one of `env` or `file`"));
                    }
                }
                found.ok_or_else(|| A::Error::custom("a secret reference needs exactly one of `env` or `file`"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_that_cannot_be_read_keeps_its_typed_cause_and_never_its_value() {
        use std::error::Error as _;
        let secrets = Secrets::with_env(|name| (name == "SET").then(|| "s3cret".to_string()));
        let missing = secrets.read(&SecretRef::File("/nonexistent/patchops.pem".into())).unwrap_err();
        assert_eq!(missing.reason(), "SecretUnreadable");
        assert_eq!(missing.to_string(), "cannot read /nonexistent/patchops.pem: No such file or directory");
        let cause = missing.source().and_then(|s| s.downcast_ref::<crate::bounded::ReadError>());
        assert!(matches!(cause, Some(crate::bounded::ReadError::NotFound)), "{cause:?}");
        assert_eq!(missing.cause(), "No such file or directory");
        let unset = secrets.read(&SecretRef::Env("UNSET".into())).unwrap_err();
        assert_eq!(
            (unset.reason(), unset.to_string().as_str()),
            ("SecretUnset", "the environment variable UNSET is not set")
        );
        assert_eq!(secrets.read(&SecretRef::Env("SET".into())).ok().as_deref(), Some("s3cret"));
    }

    #[test]
    fn references_parse_and_inline_values_are_refused() {
        let env: Result<SecretRef, _> = serde_yaml::from_str("{ env: INTUNE_SECRET }");
        assert_eq!(env.ok(), Some(SecretRef::Env("INTUNE_SECRET".into())));
        let inline = serde_yaml::from_str::<SecretRef>("s3cr3t-Value").err().map(|e| e.to_string());
        assert!(inline.is_some_and(|e| e.contains("written inline") && !e.contains("s3cr3t")));
        let unknown = serde_yaml::from_str::<SecretRef>("{ vault: x }").err().map(|e| e.to_string());
        assert!(unknown.is_some_and(|e| e.contains("unknown field `vault`, expected `env` or `file`")));
        let pem = serde_yaml::from_str::<SecretRef>("file: \"-----BEGIN PRIVATE KEY-----\"").err();
        assert!(pem.is_some());
        let both = serde_yaml::from_str::<SecretRef>("{ env: A, file: /x }").err().map(|e| e.to_string());
        assert!(both.is_some_and(|e| e.contains("exactly one")));
    }
}

/// Reads secrets by reference. The library never reads the environment itself (the command line
/// hands it a lookup), and a secret read is never logged or shown.
#[derive(Clone, Default)]
pub struct Secrets {
    env: Option<std::sync::Arc<EnvLookup>>,
    /// What a relative `{ file: PATH }` is relative to (the fleet repository's root); the
    /// process's current directory when unset.
    base: Option<std::path::PathBuf>,
}

/// Looks up an environment variable.
type EnvLookup = dyn Fn(&str) -> Option<String> + Send + Sync;

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secrets")
    }
}

impl Secrets {
    /// Secrets from files and, through `env`, from environment variables.
    pub fn with_env(env: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Secrets {
        Secrets { env: Some(std::sync::Arc::new(env)), base: None }
    }

    /// Reads relative `{ file: PATH }` references from `base` (the command line gives the
    /// fleet repository's root, so a fleet means the same file from any directory).
    #[must_use]
    pub fn relative_to(mut self, base: std::path::PathBuf) -> Secrets {
        self.base = Some(base);
        self
    }

    /// Where a `{ file: PATH }` reference points: `PATH` itself when absolute, else under the
    /// base directory.
    pub fn path_of(&self, path: &str) -> std::path::PathBuf {
        let p = std::path::Path::new(path);
        match &self.base {
            Some(base) if p.is_relative() => base.join(p),
            _ => p.to_path_buf(),
        }
    }

    /// The secret's text (trailing newline removed), or why it cannot be read. The error names
    /// the reference, never the value.
    pub fn read(&self, r: &SecretRef) -> Result<String, SecretError> {
        match r {
            SecretRef::Env(name) => self
                .env
                .as_ref()
                .and_then(|lookup| lookup(name))
                .filter(|v| !v.is_empty())
                .ok_or_else(|| SecretError::EnvUnset { name: name.clone() }),
            SecretRef::File(path) => {
                let bytes = read_file(&self.path_of(path), path)?;
                let text = String::from_utf8(bytes).map_err(|_| SecretError::NotText { path: path.clone() })?;
                Ok(text.trim_end_matches(['\r', '\n']).to_string())
            }
        }
    }

    /// The secret's bytes as stored (a DER certificate, a PEM bundle), or why it cannot be
    /// read; never the value.
    pub fn read_bytes(&self, r: &SecretRef) -> Result<Vec<u8>, SecretError> {
        match r {
            SecretRef::Env(_) => self.read(r).map(String::into_bytes),
            SecretRef::File(path) => read_file(&self.path_of(path), path),
        }
    }
}

/// Reads `at`; errors name the reference as written (`shown`).
fn read_file(at: &std::path::Path, shown: &str) -> Result<Vec<u8>, SecretError> {
    crate::bounded::read(at, crate::bounded::MAX_SECRET_BYTES)
        .map_err(|source| SecretError::Read { path: shown.to_string(), source })
}

/// Why a secret could not be read. It names the reference (a variable, a path), never a value.
/// Like every error here, its message is whole (it includes the cause) and the typed cause is
/// also its [`source`](std::error::Error::source), for machines.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is unset or empty.
    #[error("the environment variable {name} is not set")]
    EnvUnset {
        /// The variable.
        name: String,
    },
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: crate::bounded::ReadError,
    },
    /// The file is not UTF-8 text (a text secret was asked for).
    #[error("{path} is not UTF-8 text")]
    NotText {
        /// The file.
        path: String,
    },
    /// A secret from the environment could not be staged as a private file.
    #[error("cannot stage {reference} as a private file: {source}")]
    Stage {
        /// The reference (`env:NAME`).
        reference: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl SecretError {
    /// A stable CamelCase reason, for machines (conditions, metrics, notifications).
    pub fn reason(&self) -> &'static str {
        match self {
            SecretError::EnvUnset { .. } => "SecretUnset",
            SecretError::Read { .. } => "SecretUnreadable",
            SecretError::NotText { .. } => "SecretNotText",
            SecretError::Stage { .. } => "SecretNotStaged",
        }
    }

    /// The cause without the reference (`No such file or directory`), for a caller that names
    /// what the secret was for itself.
    pub fn cause(&self) -> String {
        match self {
            SecretError::Read { source, .. } => source.to_string(),
            other => other.to_string(),
        }
    }
}

/// A secret as a file, for tools that read keys from files (ssh, an emulated
/// server): a `{ file }` reference is its own path; an `{ env }` one is copied into a private
/// file (mode 0600, in a directory removed when this is dropped).
#[derive(Debug)]
pub struct SecretFile {
    path: std::path::PathBuf,
    _private: Option<tempfile::TempDir>,
}

impl SecretFile {
    /// The file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Secrets {
    /// The secret as a file; the error names the reference, never the value.
    pub fn file(&self, r: &SecretRef) -> Result<SecretFile, SecretError> {
        match r {
            SecretRef::File(path) => Ok(SecretFile { path: self.path_of(path), _private: None }),
            SecretRef::Env(_) => {
                let text = self.read(r)?;
                let dir = tempfile::Builder::new()
                    .prefix("patchops-secret-")
                    .tempdir()
                    .map_err(|source| SecretError::Stage { reference: r.to_string(), source })?;
                let path = dir.path().join("secret");
                write_private(&path, text.as_bytes())
                    .map_err(|source| SecretError::Stage { reference: r.to_string(), source })?;
                Ok(SecretFile { path, _private: Some(dir) })
            }
        }
    }
}

/// Writes `bytes` to `path`, a new file only its owner can read (mode 0600), replacing any
/// file there.
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(bytes)
}
