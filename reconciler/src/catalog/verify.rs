//! Trust-chain link 1: a catalog is imported only if its signature verifies against a key the
//! fleet trusts, it has not expired, and it is not a rollback or an equivocation.
//!
//! The steps run in the order DESIGN.md lists them, each with its own [`CatalogError`]:
//!
//! 1. signature: present, well formed, made by a trusted key, valid over the exact bytes;
//! 2. content: parses as a catalog (only verified bytes are ever parsed);
//! 3. freshness: not expired, not older than the source's `maxAge`;
//! 4. rollback: serial not lower than the highest already seen for this source;
//! 5. equivocation: an already-seen serial must come with the same content digest.
//!
//! Nothing is recorded here: the caller records the serial in `state` only after every step
//! passed (see [`crate::state::CatalogHistory::record`]).

use std::io::Cursor;

use chrono::{DateTime, Utc};

use super::format::{Catalog, CatalogProduct, Sha256};
use super::keys::{key_id, TrustedKey};
use crate::vocab::{ObjectName, ProductId};

/// The highest serial already accepted for a source, and the digest it had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeenCatalog {
    /// Highest serial accepted.
    pub serial: u64,
    /// SHA-256 of the catalog accepted under that serial.
    pub sha256: Sha256,
}

/// Why a catalog was refused. Every variant names the source and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The catalog or its signature could not be read.
    #[error("catalog source `{source_name}`: cannot read {location}: {cause}")]
    Fetch {
        /// CatalogSource name.
        source_name: ObjectName,
        /// What was read.
        location: String,
        /// Why it failed.
        #[source]
        cause: crate::vocab::Cause,
    },
    /// No detached signature next to the catalog.
    #[error("catalog source `{source_name}`: no signature at {location}; an unsigned catalog is never imported (sign it with `patchops catalog sign` or `minisign -S`)")]
    MissingSignature {
        /// CatalogSource name.
        source_name: ObjectName,
        /// Where the signature was expected.
        location: String,
    },
    /// The signature file is not a minisign signature.
    #[error("catalog source `{source_name}`: {location} is not a minisign signature: {reason}")]
    MalformedSignature {
        /// CatalogSource name.
        source_name: ObjectName,
        /// The signature's location.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Signed by a key the fleet does not trust.
    #[error("catalog source `{source_name}`: signed by key {key_id}, which is not trusted (trusted: {trusted}); add the publisher's public key to `trustedKeys` only if you trust it")]
    UntrustedKey {
        /// CatalogSource name.
        source_name: ObjectName,
        /// The signing key's id.
        key_id: String,
        /// The trusted key ids.
        trusted: String,
    },
    /// A legacy (not prehashed) minisign signature: patchops verifies only the current format.
    #[error("catalog source `{source_name}`: the signature by key {key_id} is a legacy minisign signature (made with `minisign -S -l` or a minisign before 0.8), which patchops does not accept; re-sign the catalog with `minisign -S` (without `-l`) or `patchops catalog sign`")]
    LegacySignature {
        /// CatalogSource name.
        source_name: ObjectName,
        /// The signing key's id.
        key_id: String,
    },
    /// The signature does not match the bytes.
    #[error("catalog source `{source_name}`: the signature by key {key_id} does not verify: {reason}; the catalog was altered after signing or the signature belongs to another file")]
    BadSignature {
        /// CatalogSource name.
        source_name: ObjectName,
        /// The signing key's id.
        key_id: String,
        /// minisign's reason.
        reason: String,
    },
    /// The signed content is not a valid catalog.
    #[error("catalog source `{source_name}`: the signed catalog is invalid: {cause}")]
    Malformed {
        /// CatalogSource name.
        source_name: ObjectName,
        /// What is wrong, with line and column where known.
        #[source]
        cause: crate::vocab::Cause,
    },
    /// Past its expiry.
    #[error("catalog source `{source_name}`: catalog serial {serial} expired at {expires} (now {now}); ask the publisher for a fresh catalog")]
    Expired {
        /// CatalogSource name.
        source_name: ObjectName,
        /// Its serial.
        serial: u64,
        /// When it expired.
        expires: DateTime<Utc>,
        /// The time of the check.
        now: DateTime<Utc>,
    },
    /// Older than the CatalogSource's `maxAge`.
    #[error("catalog source `{source_name}`: catalog serial {serial} was issued at {issued}, longer ago than maxAge {max_age}; ask the publisher for a fresh catalog or raise `maxAge`")]
    TooOld {
        /// CatalogSource name.
        source_name: ObjectName,
        /// Its serial.
        serial: u64,
        /// When it was issued.
        issued: DateTime<Utc>,
        /// The limit.
        max_age: String,
    },
    /// A lower serial than one already accepted.
    #[error("catalog source `{source_name}`: catalog serial {serial} is lower than {seen}, already seen in the state directory; refusing a possible rollback (if this is deliberate, see `patchops catalog forget --help`)")]
    Rollback {
        /// CatalogSource name.
        source_name: ObjectName,
        /// The offered serial.
        serial: u64,
        /// The highest seen serial.
        seen: u64,
    },
    /// The same serial as an accepted catalog, with other content.
    #[error("catalog source `{source_name}`: catalog serial {serial} was already seen with digest {seen}, but this one has digest {digest}; a publisher never signs two catalogs under one serial, so one of them is not genuine")]
    SerialReused {
        /// CatalogSource name.
        source_name: ObjectName,
        /// The serial.
        serial: u64,
        /// The digest seen before.
        seen: Sha256,
        /// This catalog's digest.
        digest: Sha256,
    },
}

impl CatalogError {
    /// A CamelCase reason for conditions, JSON and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            CatalogError::Fetch { .. } => "CatalogUnavailable",
            CatalogError::MissingSignature { .. } => "CatalogUnsigned",
            CatalogError::MalformedSignature { .. } | CatalogError::BadSignature { .. } => "CatalogSignatureInvalid",
            CatalogError::LegacySignature { .. } => "CatalogSignatureLegacy",
            CatalogError::UntrustedKey { .. } => "CatalogKeyUntrusted",
            CatalogError::Malformed { .. } => "CatalogInvalid",
            CatalogError::Expired { .. } | CatalogError::TooOld { .. } => "CatalogExpired",
            CatalogError::Rollback { .. } => "CatalogRollback",
            CatalogError::SerialReused { .. } => "CatalogSerialReused",
        }
    }
}

/// Catalog bytes and their detached signature, as fetched: nothing about them is trusted yet.
#[derive(Debug, Clone)]
pub struct UnverifiedCatalog {
    source_name: ObjectName,
    location: String,
    bytes: Vec<u8>,
    signature: Option<String>,
    signature_location: String,
}

impl UnverifiedCatalog {
    /// Wraps fetched bytes. `signature` is `None` when no signature was found.
    pub fn new(
        source_name: ObjectName,
        location: impl Into<String>,
        bytes: Vec<u8>,
        signature_location: impl Into<String>,
        signature: Option<String>,
    ) -> Self {
        UnverifiedCatalog {
            source_name,
            location: location.into(),
            bytes,
            signature,
            signature_location: signature_location.into(),
        }
    }

    /// Where the catalog came from.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Runs every check of trust-chain link 1 and returns the verified catalog.
    pub fn verify(
        self,
        trusted: &[TrustedKey],
        max_age: Option<std::time::Duration>,
        seen: Option<SeenCatalog>,
        now: DateTime<Utc>,
    ) -> Result<VerifiedCatalog, CatalogError> {
        self.verify_reusing(trusted, max_age, seen, now, None)
    }

    /// [`UnverifiedCatalog::verify`], reusing the work of an `earlier` verification when it
    /// was of the very same bytes (SHA-256) with the very same signature, for the same source,
    /// by a key that is still trusted (the same public key, not only its id):
    /// then steps 1 and 2 (the signature over the bytes, the parse) would give the same answer
    /// and are not repeated. Steps 3 to 5 — expiry, `maxAge`, rollback, equivocation — depend on
    /// the time and the history and always run. A daemon cycling every minute on an unchanged
    /// multi-megabyte catalog checks its signature once.
    pub fn verify_reusing(
        self,
        trusted: &[TrustedKey],
        max_age: Option<std::time::Duration>,
        seen: Option<SeenCatalog>,
        now: DateTime<Utc>,
        earlier: Option<&VerifiedCatalog>,
    ) -> Result<VerifiedCatalog, CatalogError> {
        let digest = Sha256::digest(&self.bytes);
        let body = match earlier.filter(|e| e.authenticates(&self, digest, trusted)) {
            Some(e) => std::sync::Arc::clone(&e.body),
            None => std::sync::Arc::new(self.authenticate(trusted, digest)?),
        };
        self.admit(body, max_age, seen, now)
    }

    /// Steps 1 and 2: the signature by a trusted key over the exact bytes, then the parse.
    fn authenticate(&self, trusted: &[TrustedKey], digest: Sha256) -> Result<Authentic, CatalogError> {
        let source_name = self.source_name.clone();
        let sig_text = self.signature.as_deref().ok_or_else(|| CatalogError::MissingSignature {
            source_name: source_name.clone(),
            location: self.signature_location.clone(),
        })?;
        let sig = minisign::SignatureBox::from_string(sig_text).map_err(|e| CatalogError::MalformedSignature {
            source_name: source_name.clone(),
            location: self.signature_location.clone(),
            reason: e.to_string(),
        })?;
        let signer = key_id(sig.keynum());
        let key = trusted.iter().find(|k| k.key_id() == signer).ok_or_else(|| CatalogError::UntrustedKey {
            source_name: source_name.clone(),
            key_id: signer.clone(),
            trusted: trusted.iter().map(TrustedKey::key_id).collect::<Vec<_>>().join(", "),
        })?;
        // A legacy signature would fail below as if the catalog were altered: say what it is.
        if !sig.is_prehashed() {
            return Err(CatalogError::LegacySignature { source_name, key_id: signer });
        }
        minisign::verify(key.public_key(), &sig, Cursor::new(&self.bytes), true, false, false).map_err(|e| {
            CatalogError::BadSignature {
                source_name: source_name.clone(),
                key_id: signer.clone(),
                reason: e.to_string(),
            }
        })?;
        let trusted_comment = sig.trusted_comment().unwrap_or_default();

        // Step 2: parse, only now that the bytes are known to be the publisher's.
        let catalog: Catalog =
            crate::vocab::text::json_from_utf8(&self.bytes).map_err(|e| CatalogError::Malformed {
                source_name: source_name.clone(),
                cause: crate::vocab::because(self.location.clone(), e),
            })?;
        catalog.check().map_err(|e| CatalogError::Malformed { source_name: source_name.clone(), cause: e.into() })?;
        let index = catalog.products.iter().enumerate().map(|(i, p)| (p.id.clone(), i)).collect();
        Ok(Authentic {
            catalog,
            index,
            digest,
            key_id: signer,
            public_key: key.public_key().to_base64(),
            signature: sig_text.to_string(),
            trusted_comment,
        })
    }

    /// Steps 3 to 5: freshness, rollback and equivocation, at `now` against the history.
    fn admit(
        self,
        body: std::sync::Arc<Authentic>,
        max_age: Option<std::time::Duration>,
        seen: Option<SeenCatalog>,
        now: DateTime<Utc>,
    ) -> Result<VerifiedCatalog, CatalogError> {
        let source_name = self.source_name;
        let (catalog, digest) = (&body.catalog, body.digest);
        if catalog.expires <= now {
            return Err(CatalogError::Expired { source_name, serial: catalog.serial, expires: catalog.expires, now });
        }
        if let Some(max_age) = max_age {
            let age = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
            if catalog.issued.checked_add_signed(age).is_some_and(|limit| limit < now) {
                return Err(CatalogError::TooOld {
                    source_name,
                    serial: catalog.serial,
                    issued: catalog.issued,
                    max_age: crate::vocab::duration::readable(max_age),
                });
            }
        }
        if let Some(seen) = seen {
            if catalog.serial < seen.serial {
                return Err(CatalogError::Rollback { source_name, serial: catalog.serial, seen: seen.serial });
            }
            if catalog.serial == seen.serial && digest != seen.sha256 {
                return Err(CatalogError::SerialReused {
                    source_name,
                    serial: catalog.serial,
                    seen: seen.sha256,
                    digest,
                });
            }
        }
        Ok(VerifiedCatalog { source_name, location: self.location, body })
    }
}

/// What steps 1 and 2 established about a catalog's bytes: who signed them and what they say.
/// Shared (not copied) between the verifications that reuse it.
#[derive(Debug)]
struct Authentic {
    catalog: Catalog,
    index: std::collections::HashMap<ProductId, usize>,
    digest: Sha256,
    key_id: String,
    /// The signer's public key (base64), so a reuse needs the same key, not only its id.
    public_key: String,
    /// The signature text, as fetched.
    signature: String,
    trusted_comment: String,
}

/// A catalog that passed every check of trust-chain link 1.
///
/// It has no public constructor, no `Deserialize` and no `Default`: the only way to get one is
/// [`UnverifiedCatalog::verify`], so the planner cannot be handed an unchecked catalog.
#[derive(Debug, Clone)]
pub struct VerifiedCatalog {
    source_name: ObjectName,
    location: String,
    body: std::sync::Arc<Authentic>,
}

impl VerifiedCatalog {
    /// Whether this verification was of exactly what `unverified` holds (source, bytes by
    /// SHA-256, signature text) by a key `trusted` still holds. Where the bytes were read from
    /// does not matter (an in-repository catalog is "at" each new commit); the new location is
    /// the one the result reports.
    fn authenticates(&self, unverified: &UnverifiedCatalog, digest: Sha256, trusted: &[TrustedKey]) -> bool {
        self.source_name == unverified.source_name
            && self.body.digest == digest
            && unverified.signature.as_deref() == Some(self.body.signature.as_str())
            && trusted
                .iter()
                .any(|k| k.key_id() == self.body.key_id && k.public_key().to_base64() == self.body.public_key)
    }

    /// Whether `other` reused this verification's signature check and parse (or this one
    /// reused `other`'s): both share one body.
    pub fn shares_verification(&self, other: &VerifiedCatalog) -> bool {
        std::sync::Arc::ptr_eq(&self.body, &other.body)
    }

    /// The CatalogSource it was verified for.
    pub fn source_name(&self) -> &ObjectName {
        &self.source_name
    }

    /// Where it was read from.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The verified content.
    pub fn catalog(&self) -> &Catalog {
        &self.body.catalog
    }

    /// The product with this id.
    pub fn product(&self, id: &ProductId) -> Option<&CatalogProduct> {
        self.body.index.get(id).and_then(|i| self.body.catalog.products.get(*i))
    }

    /// SHA-256 of the signed bytes.
    pub fn digest(&self) -> Sha256 {
        self.body.digest
    }

    /// The serial.
    pub fn serial(&self) -> u64 {
        self.body.catalog.serial
    }

    /// Id of the key that signed it.
    pub fn key_id(&self) -> &str {
        &self.body.key_id
    }

    /// The signature's trusted (signed) comment.
    pub fn trusted_comment(&self) -> &str {
        &self.body.trusted_comment
    }

    /// What to record in the state once it is accepted.
    pub fn seen(&self) -> SeenCatalog {
        SeenCatalog { serial: self.body.catalog.serial, sha256: self.body.digest }
    }
}
