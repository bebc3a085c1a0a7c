//! What patchops remembers between runs, under the state directory (default `.patchops/`).
//!
//! - `state.db` (SQLite, [`StateDb`]): the catalog history — for each CatalogSource, the highest
//!   serial accepted and its digest —, the journal of in-flight actions, the audit log, when each
//!   ring reached each version, and the content cache index.
//! - `apply.lock` ([`ApplyLock`]): one apply at a time.
//! - `content/` (the verified installers) and `emulate/` (embedded platforms' state).
//!
//! The catalog history exists for trust-chain link 1: without it, an attacker who can serve
//! files could replay an older, validly signed catalog (rollback) or a second catalog under an
//! already-used serial (equivocation). Losing the state directory loses that protection until
//! the next catalog is accepted; patchops then trusts whatever validly signed, unexpired catalog
//! it sees first. (Releases before the state database kept it in `catalogs.json`; it is imported
//! once and renamed `catalogs.json.imported`.)

mod db;
mod lock;

pub use db::{AuditRecord, Interrupted, RingRecords, StateDb};
pub use lock::{ApplyLock, LockError};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::catalog::{SeenCatalog, VerifiedCatalog};
use crate::model::ObjectName;

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("state directory {path}: {cause}")]
pub struct StateError {
    path: String,
    #[source]
    cause: crate::vocab::Cause,
}

impl StateError {
    /// A stable CamelCase reason, for machines (conditions, metrics, notifications).
    pub fn reason(&self) -> &'static str {
        "StateUnavailable"
    }
}

impl StateError {
    /// An error about `path`.
    pub fn new(path: &Path, cause: impl Into<crate::vocab::Cause>) -> StateError {
        StateError { path: path.display().to_string(), cause: cause.into() }
    }
}

/// What `patchops suspend` holds back: the whole fleet, one Product, or one Platform.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", tag = "scope", content = "name")]
pub enum SuspendScope {
    /// Every Product on every Platform.
    Fleet,
    /// One fleet Product.
    Product(String),
    /// One Platform.
    Platform(String),
}

impl SuspendScope {
    fn key(&self) -> (&'static str, &str) {
        match self {
            SuspendScope::Fleet => ("fleet", "*"),
            SuspendScope::Product(p) => ("product", p),
            SuspendScope::Platform(p) => ("platform", p),
        }
    }

    fn from_key(kind: &str, name: &str) -> Option<SuspendScope> {
        match kind {
            "fleet" => Some(SuspendScope::Fleet),
            "product" => Some(SuspendScope::Product(name.to_string())),
            "platform" => Some(SuspendScope::Platform(name.to_string())),
            _ => None,
        }
    }

    /// Whether an action on `product` and `platform` falls under it.
    pub fn covers(&self, product: &str, platform: &str) -> bool {
        match self {
            SuspendScope::Fleet => true,
            SuspendScope::Product(p) => p == product,
            SuspendScope::Platform(p) => p == platform,
        }
    }
}

impl std::fmt::Display for SuspendScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SuspendScope::Fleet => f.write_str("the fleet"),
            SuspendScope::Product(p) => write!(f, "product {p}"),
            SuspendScope::Platform(p) => write!(f, "platform {p}"),
        }
    }
}

/// One suspension.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Suspension {
    /// What is suspended.
    #[serde(flatten)]
    pub scope: SuspendScope,
    /// Since when.
    pub since: chrono::DateTime<chrono::Utc>,
    /// Why, as given.
    pub reason: String,
}

/// What `patchops run`'s last cycle found as desired, and at which inputs: a difference found
/// later at the same inputs on one of those targets is drift. Kept in the state directory so
/// that a restarted daemon still tells drift from a change, and `patchops status` can say
/// `drifted`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftBaseline {
    /// The fleet's content digest.
    pub source_digest: crate::vocab::Sha256,
    /// Each catalog's source and serial.
    pub catalogs: Vec<(String, u64)>,
    /// The (Product, Platform, ring) targets that were as desired.
    pub in_sync: std::collections::BTreeSet<(String, String, Option<String>)>,
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
    /// What the records written here are time-stamped with.
    clock: crate::clock::SharedClock,
}

impl StateDir {
    /// Uses `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StateDir { root: root.into(), clock: crate::clock::system() }
    }

    /// Time-stamps what is written here (journal, audit, ring history, lock) with `clock`.
    pub fn with_clock(mut self, clock: crate::clock::SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The clock records are time-stamped with.
    pub fn clock(&self) -> &crate::clock::SharedClock {
        &self.clock
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Opens the state database.
    pub fn db(&self) -> Result<StateDb, StateError> {
        StateDb::open_with_clock(&self.root, self.clock.clone())
    }

    /// Takes the apply lock.
    pub fn lock(&self, what: &str) -> Result<ApplyLock, LockError> {
        ApplyLock::acquire(&self.root, what, self.clock.now())
    }

    /// Removes what a killed run left under the state directory: partial downloads. Returns
    /// the bytes freed. Call it only while holding the apply lock, when no download into this
    /// state directory is under way.
    ///
    /// The embedded emulators' half-written state is not touched here: an emulator of this
    /// very process (the daemon's) may be writing its state at this moment, for a request
    /// that is not patchops's. Each emulator removes its own leftovers when it opens its state
    /// ([`sweep_atomic_leftovers`]), before it serves anything.
    pub fn sweep_leftovers(&self) -> u64 {
        self.content().sweep_partials()
    }

    /// The content cache.
    pub fn content(&self) -> crate::content::ContentCache {
        crate::content::ContentCache::new(self.root.join("content"))
    }

    /// The catalog history.
    pub fn catalogs(&self) -> Result<CatalogHistory, StateError> {
        let db = self.db()?;
        let legacy = self.root.join("catalogs.json");
        if let Ok(bytes) = std::fs::read(&legacy) {
            let old = serde_json::from_slice::<LegacyCatalogFile>(&bytes).map_err(|e| {
                StateError::new(&legacy, format!("corrupt ({e}); remove it to trust the next valid catalog again"))
            })?;
            for (source, seen) in old.sources {
                db.catalog_accepted(&source, seen.serial, &seen.sha256.to_string())?;
            }
            std::fs::rename(&legacy, self.root.join("catalogs.json.imported"))
                .map_err(|e| StateError::new(&legacy, e))?;
        }
        let mut sources = BTreeMap::new();
        for (source, serial, sha256) in db.catalogs()? {
            let sha256 = sha256.parse().map_err(|_| {
                StateError::new(&self.root.join("state.db"), format!("catalog history of `{source}` has a bad digest"))
            })?;
            sources.insert(source, SeenCatalog { serial, sha256 });
        }
        Ok(CatalogHistory { db, sources })
    }
}

#[derive(Deserialize, Default)]
struct LegacyCatalogFile {
    sources: BTreeMap<String, SeenCatalog>,
}

/// The highest catalog serial accepted per CatalogSource.
#[derive(Debug)]
pub struct CatalogHistory {
    db: StateDb,
    sources: BTreeMap<String, SeenCatalog>,
}

impl CatalogHistory {
    /// What was last accepted for a source.
    pub fn seen(&self, source: &ObjectName) -> Option<SeenCatalog> {
        self.sources.get(source.as_str()).copied()
    }

    /// Records an accepted catalog (call only after every check passed).
    pub fn record(&mut self, catalog: &VerifiedCatalog) -> Result<(), StateError> {
        let seen = catalog.seen();
        let newer = self.seen(catalog.source_name()).is_none_or(|old| seen.serial > old.serial);
        if !newer {
            return Ok(());
        }
        self.db.catalog_accepted(catalog.source_name().as_str(), seen.serial, &seen.sha256.to_string())?;
        self.sources.insert(catalog.source_name().to_string(), seen);
        Ok(())
    }

    /// The state database the history is kept in.
    pub fn db(&self) -> &StateDb {
        &self.db
    }

    /// Forgets a source, so that its next valid catalog is accepted whatever its serial.
    pub fn forget(&mut self, source: &str) -> Result<bool, StateError> {
        self.sources.remove(source);
        self.db.catalog_forget(source)
    }
}

/// Who runs this process, for the audit log: the user and the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The account name.
    pub user: String,
    /// The host name.
    pub host: String,
}

/// The name prefix of the temporary files [`write_atomic`] renames into `path`: one per
/// file, so that whoever owns a file can remove its leftovers without touching another file's
/// write in progress.
fn temp_prefix(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    format!(".patchops-tmp-{name}.")
}

/// Writes a file by renaming a fully written temporary file over it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display())))?;
    let mut tmp = tempfile::Builder::new().prefix(&temp_prefix(path)).tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    // Temporary files are created private (0600); what is written here is not secret.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Removes the temporary files a killed process left while [`write_atomic`] wrote `path`.
/// Only the owner of `path` may call it, while nothing writes `path` (an emulator, when it
/// opens its state). Returns the bytes freed.
pub fn sweep_atomic_leftovers(path: &Path) -> u64 {
    let prefix = temp_prefix(path);
    let dir = path.parent().unwrap_or(Path::new("."));
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut freed = 0;
    for entry in entries.flatten() {
        let is_temp = entry.file_name().to_string_lossy().starts_with(&prefix);
        if is_temp && entry.file_type().is_ok_and(|t| t.is_file()) {
            let size = entry.metadata().map_or(0, |m| m.len());
            if std::fs::remove_file(entry.path()).is_ok() {
                freed += size;
            }
        }
    }
    freed
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_legacy_catalogs_json_is_imported_once_into_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let digest = crate::catalog::Sha256::digest(b"catalog");
        std::fs::write(
            dir.path().join("catalogs.json"),
            format!(r#"{{"sources":{{"vendor":{{"serial":7,"sha256":"{digest}"}}}}}}"#),
        )
        .unwrap();
        let state = StateDir::new(dir.path());
        let name = ObjectName::new("vendor").unwrap();
        assert_eq!(state.catalogs().unwrap().seen(&name), Some(SeenCatalog { serial: 7, sha256: digest }));
        assert!(!dir.path().join("catalogs.json").exists());
        assert!(dir.path().join("catalogs.json.imported").exists());
        // Read again from the database alone; forgetting removes it there.
        let mut history = state.catalogs().unwrap();
        assert_eq!(history.seen(&name).map(|s| s.serial), Some(7));
        assert!(history.forget("vendor").unwrap());
        assert_eq!(state.catalogs().unwrap().seen(&name), None);
    }
}
