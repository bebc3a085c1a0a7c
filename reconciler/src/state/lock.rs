//! The apply lock: one apply (or daemon) per state directory.
//!
//! An advisory lock on `<state>/apply.lock` (`flock` on Unix, `LockFileEx` on Windows). The
//! operating system releases it when the process ends, however it ends, so a crashed apply never
//! leaves a stale lock behind. The file's text says who holds it, for the error message.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::StateError;

/// Held while an apply runs; released on drop (or by the OS when the process dies).
#[derive(Debug)]
pub struct ApplyLock {
    file: std::fs::File,
    path: PathBuf,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("another patchops apply holds the state directory {dir} ({holder}); wait for it to finish — the lock is released automatically when that process ends, even if it crashes")]
    Held {
        /// The state directory.
        dir: String,
        /// What the holder wrote.
        holder: String,
    },
    /// The lock file could not be used.
    #[error(transparent)]
    State(#[from] StateError),
}

impl LockError {
    /// A stable CamelCase reason, for machines (conditions, metrics, notifications).
    pub fn reason(&self) -> &'static str {
        match self {
            LockError::Held { .. } => "ApplyLockHeld",
            LockError::State { .. } => "StateUnavailable",
        }
    }
}

impl ApplyLock {
    /// Takes the lock without waiting.
    pub fn acquire(dir: &Path, what: &str, at: chrono::DateTime<chrono::Utc>) -> Result<ApplyLock, LockError> {
        let path = dir.join("apply.lock");
        let err = |e: std::io::Error| StateError::new(&path, e);
        std::fs::create_dir_all(dir).map_err(err)?;
        let mut file =
            std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(LockError::Held {
                    dir: dir.display().to_string(),
                    holder: if holder.is_empty() { "unknown process".into() } else { holder.to_string() },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(err(e).into()),
        }
        let note = format!("pid {} since {} ({what})", std::process::id(), at.format("%Y-%m-%d %H:%M:%S UTC"));
        file.set_len(0).map_err(err)?;
        file.rewind().map_err(err)?;
        file.write_all(note.as_bytes()).map_err(err)?;
        Ok(ApplyLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ApplyLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}
