//! Reading a fleet from files on disk (a plain directory, or a work tree with `--worktree`).

use std::path::Path;

use walkdir::WalkDir;

use super::{is_fleet_file, FleetFile};
use super::{normalize_subpath, Provenance, Reader, SourceError, SourceSnapshot, SourceWarning};

/// Reads a file of the directory with the same rule as a commit: a regular file inside the
/// directory, not a link to one (a link could point anywhere), at most `max` bytes.
pub(super) fn read_file(root: &Path, path: &str, max: u64) -> Result<Option<Vec<u8>>, SourceError> {
    let at = root.display().to_string();
    let fail = |reason: String| SourceError::File { at: at.clone(), path: path.into(), reason };
    if path.split('/').any(|c| c == "..") || Path::new(path).is_absolute() {
        return Err(fail("the path leaves the directory".into()));
    }
    let full = root.join(path);
    // No component below the root may be a link: the same file as in a commit, or nothing.
    let mut here = root.to_path_buf();
    for component in path.split('/').filter(|c| !c.is_empty()) {
        here.push(component);
        match std::fs::symlink_metadata(&here) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(fail(e.to_string())),
            Ok(m) if m.file_type().is_symlink() => {
                return Err(fail(format!(
                    "{} is a symbolic link; patchops reads only regular files (a commit would not follow it either)",
                    here.strip_prefix(root).unwrap_or(&here).display()
                )))
            }
            Ok(_) => {}
        }
    }
    match crate::bounded::read(&full, max) {
        Ok(b) => Ok(Some(b)),
        Err(crate::bounded::ReadError::NotFound) => Ok(None),
        Err(crate::bounded::ReadError::TooLarge { max }) => {
            let size = std::fs::metadata(&full).map_or(max.saturating_add(1), |m| m.len());
            Err(SourceError::TooLarge { at, path: path.into(), size, limit: max, knob: None })
        }
        Err(e) => Err(fail(e.to_string())),
    }
}

fn collect(
    root: &Path,
    subpath: &str,
    limits: super::Limits,
    warnings: &mut Vec<SourceWarning>,
) -> Result<Vec<FleetFile>, SourceError> {
    let base = root.join(subpath);
    if !base.is_dir() {
        return Err(SourceError::PathNotFound { at: root.display().to_string(), path: subpath.into() });
    }
    let mut files = Vec::new();
    let mut budget = super::Budget::new(limits, root.display().to_string());
    for entry in WalkDir::new(&base).follow_links(false).sort_by_file_name() {
        let entry = entry.map_err(|e| SourceError::File {
            at: root.display().to_string(),
            path: subpath.into(),
            reason: e.to_string(),
        })?;
        let rel = entry.path().strip_prefix(&base).unwrap_or(entry.path());
        let rel = rel.to_string_lossy().replace('\\', "/");
        if !is_fleet_file(&rel) || rel.split('/').any(|p| p.starts_with('.')) || entry.file_type().is_dir() {
            continue;
        }
        if !entry.file_type().is_file() {
            // The same rule as a commit's links and submodules: told, not read.
            warnings.push(SourceWarning(format!(
                "{}: {rel} is {}; it is not read as a fleet document",
                root.display(),
                crate::bounded::kind_of(entry.file_type())
            )));
            continue;
        }
        let bytes = match crate::bounded::read(entry.path(), limits.file_bytes) {
            Ok(b) => b,
            Err(crate::bounded::ReadError::TooLarge { .. }) => {
                let size = entry.metadata().map_or(limits.file_bytes.saturating_add(1), |m| m.len());
                return Err(SourceError::TooLarge {
                    at: root.display().to_string(),
                    path: rel,
                    size,
                    limit: limits.file_bytes,
                    knob: Some("--max-file-mib"),
                });
            }
            Err(e) => {
                return Err(SourceError::File { at: root.display().to_string(), path: rel, reason: e.to_string() })
            }
        };
        budget.admit(&rel, bytes.len() as u64)?;
        let text = String::from_utf8(bytes).map_err(|_| SourceError::File {
            at: root.display().to_string(),
            path: rel.clone(),
            reason: "not UTF-8 text".into(),
        })?;
        files.push(FleetFile { path: rel, text: text.into() });
    }
    Ok(files)
}

pub(super) fn open_plain(
    root: &Path,
    subpath: String,
    limits: super::Limits,
) -> Result<(SourceSnapshot, Vec<SourceWarning>), SourceError> {
    let mut warnings = Vec::new();
    let files = collect(root, &subpath, limits, &mut warnings)?;
    let provenance = Provenance::Directory { path: root.join(&subpath).display().to_string(), head: None };
    let warning = SourceWarning(format!(
        "{} is not a git repository: provenance is unknown, and plans made from it cannot be traced to a commit",
        root.display()
    ));
    warnings.insert(0, warning);
    Ok((SourceSnapshot::new(provenance, subpath, files, Reader::Dir { root: root.to_path_buf() }), warnings))
}

pub(super) fn open_worktree(
    repo: git2::Repository,
    opts: &super::SourceOptions,
    given: &Path,
    subpath: String,
) -> Result<(SourceSnapshot, Vec<SourceWarning>), SourceError> {
    let Some(workdir) = repo.workdir() else {
        return Err(SourceError::Repo { repo: opts.repo.clone(), reason: "a bare repository has no work tree".into() });
    };
    let prefix = super::git::prefix_in_repo(workdir, given);
    let subpath = normalize_subpath(&format!("{prefix}/{subpath}"));
    let mut warnings = Vec::new();
    let files = collect(workdir, &subpath, opts.limits, &mut warnings)?;
    let head = repo.head().ok().and_then(|h| h.target()).map(|o| o.to_string());
    let provenance = Provenance::Directory { path: workdir.join(&subpath).display().to_string(), head };
    let warning = SourceWarning(format!(
        "reading the work tree of {} (--worktree): provenance is unknown; commit and plan without --worktree to record the commit",
        workdir.display()
    ));
    warnings.insert(0, warning);
    Ok((SourceSnapshot::new(provenance, subpath, files, Reader::Dir { root: workdir.to_path_buf() }), warnings))
}
