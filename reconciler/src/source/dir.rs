//! Reading a fleet from files on disk (a plain directory, or a work tree with `--worktree`).

use std::path::Path;

use walkdir::WalkDir;

use super::{normalize_subpath, Provenance, Reader, SourceError, SourceSnapshot, SourceWarning};
use crate::model::load::is_fleet_file;
use crate::model::FleetFile;

pub(super) fn read_file(root: &Path, path: &str) -> Result<Option<Vec<u8>>, SourceError> {
    match std::fs::read(root.join(path)) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SourceError::File { at: root.display().to_string(), path: path.into(), reason: e.to_string() }),
    }
}

fn collect(root: &Path, subpath: &str) -> Result<Vec<FleetFile>, SourceError> {
    let base = root.join(subpath);
    if !base.is_dir() {
        return Err(SourceError::PathNotFound { at: root.display().to_string(), path: subpath.into() });
    }
    let mut files = Vec::new();
    for entry in WalkDir::new(&base).follow_links(false).sort_by_file_name() {
        let entry = entry.map_err(|e| SourceError::File {
            at: root.display().to_string(),
            path: subpath.into(),
            reason: e.to_string(),
        })?;
        let rel = entry.path().strip_prefix(&base).unwrap_or(entry.path());
        let rel = rel.to_string_lossy().replace('\\', "/");
        if !entry.file_type().is_file() || !is_fleet_file(&rel) || rel.split('/').any(|p| p.starts_with('.')) {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).map_err(|e| SourceError::File {
            at: root.display().to_string(),
            path: rel.clone(),
            reason: e.to_string(),
        })?;
        files.push(FleetFile { path: rel, text: text.into() });
    }
    Ok(files)
}

pub(super) fn open_plain(root: &Path, subpath: String) -> Result<(SourceSnapshot, Vec<SourceWarning>), SourceError> {
    let files = collect(root, &subpath)?;
    let provenance = Provenance::Directory { path: root.join(&subpath).display().to_string(), head: None };
    let warning = SourceWarning(format!(
        "{} is not a git repository: provenance is unknown, and plans made from it cannot be traced to a commit",
        root.display()
    ));
    Ok((SourceSnapshot::new(provenance, subpath, files, Reader::Dir { root: root.to_path_buf() }), vec![warning]))
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
    let files = collect(workdir, &subpath)?;
    let head = repo.head().ok().and_then(|h| h.target()).map(|o| o.to_string());
    let provenance = Provenance::Directory { path: workdir.join(&subpath).display().to_string(), head };
    let warning = SourceWarning(format!(
        "reading the work tree of {} (--worktree): provenance is unknown; commit and plan without --worktree to record the commit",
        workdir.display()
    ));
    Ok((SourceSnapshot::new(provenance, subpath, files, Reader::Dir { root: workdir.to_path_buf() }), vec![warning]))
}
