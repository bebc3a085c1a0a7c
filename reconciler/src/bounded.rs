//! Reading local files the way every input is read: regular files only, never more than a cap.
//!
//! `/dev/zero`, a FIFO, a socket or a symbolic link to one would otherwise read forever or block
//! the run (and the apply lock) for good. The file is opened without blocking, the *opened*
//! file is checked (so it cannot be swapped for a FIFO between a check and the read), and at
//! most `max + 1` bytes are read, so an oversized file is refused without being read whole.

use std::io::Read;
use std::path::Path;

/// Secrets, keys and certificates are read up to this size (1 MiB; a PEM chain is a few KiB).
pub const MAX_SECRET_BYTES: u64 = 1 << 20;

/// Why a local file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// It does not exist.
    #[error("No such file or directory")]
    NotFound,
    /// It is a directory, device, FIFO or socket.
    #[error("it is not a regular file ({0}); patchops reads only regular files")]
    NotRegular(&'static str),
    /// It is larger than the cap.
    #[error("it is larger than {max} bytes")]
    TooLarge {
        /// The cap.
        max: u64,
    },
    /// Reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl ReadError {
    /// A stable CamelCase reason, for machines (conditions, metrics, notifications).
    pub fn reason(&self) -> &'static str {
        match self {
            ReadError::NotFound => "FileNotFound",
            ReadError::NotRegular { .. } => "NotARegularFile",
            ReadError::TooLarge { .. } => "FileTooLarge",
            ReadError::Io { .. } => "ReadFailed",
        }
    }
}

/// What a file that is not regular is, for messages.
pub fn kind_of(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading if it is a regular file (following symbolic links, as `open`
/// does), without ever blocking on a FIFO.
pub fn open_regular(path: &Path) -> Result<std::fs::File, ReadError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ReadError::NotFound
        } else {
            ReadError::Io(e)
        }
    })?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular(kind_of(meta.file_type())));
    }
    Ok(file)
}

/// Reads the regular file `path`, refusing it when it holds more than `max` bytes.
pub fn read(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    let file = open_regular(path)?;
    let len = file.metadata()?.len();
    if len > max {
        return Err(ReadError::TooLarge { max });
    }
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // `take`: the file may grow after the check.
    file.take(max.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(ReadError::TooLarge { max });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_files_are_refused_without_reading_them() {
        assert!(matches!(read(Path::new("/dev/zero"), 1024), Err(ReadError::NotRegular("a device"))));
        assert!(matches!(read(Path::new("/"), 1024), Err(ReadError::NotRegular("a directory"))));
        assert!(matches!(read(Path::new("/nonexistent/patchops"), 1024), Err(ReadError::NotFound)));
    }

    #[test]
    fn a_fifo_is_refused_instead_of_blocking() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success());
        assert!(made, "mkfifo (coreutils) is needed for this test");
        assert!(matches!(read(&fifo, 1024), Err(ReadError::NotRegular("a FIFO"))));
    }

    #[test]
    fn a_file_over_the_cap_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let f = dir.path().join("big");
        std::fs::write(&f, vec![1u8; 2048]).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(read(&f, 1024), Err(ReadError::TooLarge { max: 1024 })));
        assert_eq!(read(&f, 2048).map(|b| b.len()).unwrap_or_default(), 2048);
    }
}
