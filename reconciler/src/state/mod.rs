//! What patchops remembers between runs, under the state directory (default `.patchops/`).
//!
//! Today that is the catalog history: for each CatalogSource, the highest serial accepted and
//! its digest. It exists for trust-chain link 1: without it, an attacker who can serve files
//! could replay an older, validly signed catalog (rollback) or a second catalog under an
//! already-used serial (equivocation). Losing the state directory loses that protection until
//! the next catalog is accepted; patchops then trusts whatever validly signed, unexpired catalog
//! it sees first.
//!
//! Files are written whole to a temporary file and renamed into place, so a crash leaves either
//! the old or the new content, never a torn file.

mod db;
mod lock;

pub use db::{AuditRecord, Interrupted, StateDb};
pub use lock::{ApplyLock, LockError};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::catalog::{SeenCatalog, VerifiedCatalog};
use crate::model::ObjectName;

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("state directory {path}: {reason}")]
pub struct StateError {
    path: String,
    reason: String,
}

impl StateError {
    /// An error about `path`.
    pub fn new(path: &Path, reason: impl Into<String>) -> StateError {
        StateError { path: path.display().to_string(), reason: reason.into() }
    }
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Uses `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StateDir { root: root.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Opens the state database.
    pub fn db(&self) -> Result<StateDb, StateError> {
        StateDb::open(&self.root)
    }

    /// Takes the apply lock.
    pub fn lock(&self, what: &str) -> Result<ApplyLock, LockError> {
        ApplyLock::acquire(&self.root, what)
    }

    /// The content cache.
    pub fn content(&self) -> crate::content::ContentCache {
        crate::content::ContentCache::new(self.root.join("content"))
    }

    /// The catalog history.
    pub fn catalogs(&self) -> Result<CatalogHistory, StateError> {
        let path = self.root.join("catalogs.json");
        let sources = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<CatalogFile>(&bytes)
                    .map_err(|e| StateError {
                        path: path.display().to_string(),
                        reason: format!(
                            "corrupt ({e}); restore it from backup, or remove it to trust the next valid catalog again"
                        ),
                    })?
                    .sources
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(StateError { path: path.display().to_string(), reason: e.to_string() }),
        };
        Ok(CatalogHistory { path, sources })
    }
}

#[derive(Serialize, Deserialize, Default)]
struct CatalogFile {
    sources: BTreeMap<String, SeenCatalog>,
}

/// The highest catalog serial accepted per CatalogSource.
#[derive(Debug, Clone)]
pub struct CatalogHistory {
    path: PathBuf,
    sources: BTreeMap<String, SeenCatalog>,
}

impl CatalogHistory {
    /// What was last accepted for a source.
    pub fn seen(&self, source: &ObjectName) -> Option<SeenCatalog> {
        self.sources.get(source.as_str()).copied()
    }

    /// Records an accepted catalog (call only after every check passed) and writes the file.
    pub fn record(&mut self, catalog: &VerifiedCatalog) -> Result<(), StateError> {
        let seen = catalog.seen();
        let newer = self.seen(catalog.source_name()).is_none_or(|old| seen.serial > old.serial);
        if !newer {
            return Ok(());
        }
        self.sources.insert(catalog.source_name().to_string(), seen);
        self.write()
    }

    /// Forgets a source, so that its next valid catalog is accepted whatever its serial.
    pub fn forget(&mut self, source: &str) -> Result<bool, StateError> {
        let had = self.sources.remove(source).is_some();
        if had {
            self.write()?;
        }
        Ok(had)
    }

    fn write(&self) -> Result<(), StateError> {
        let file = CatalogFile { sources: self.sources.clone() };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| self.err(e.to_string()))?;
        write_atomic(&self.path, &bytes).map_err(|e| self.err(e))
    }

    fn err(&self, reason: String) -> StateError {
        StateError { path: self.path.display().to_string(), reason }
    }
}

/// Writes a file by renaming a fully written temporary file over it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| e.to_string())?;
    tmp.write_all(bytes).map_err(|e| e.to_string())?;
    // Temporary files are created private (0600); what is written here is not secret.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644)).map_err(|e| e.to_string())?;
    }
    tmp.as_file().sync_all().map_err(|e| e.to_string())?;
    tmp.persist(path).map_err(|e| e.error.to_string())?;
    Ok(())
}
