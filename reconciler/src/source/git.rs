//! Reading a fleet from the objects of a git commit, never from a work tree.

use std::path::{Path, PathBuf};

use super::{is_fleet_file, FleetFile};
use super::{normalize_subpath, Provenance, Reader, SourceError, SourceOptions, SourceSnapshot, SourceWarning};

pub(super) fn is_url(repo: &str) -> bool {
    repo.contains("://") || (repo.contains('@') && repo.contains(':') && !Path::new(repo).exists())
}

/// Removes credentials from a URL before it is shown or recorded.
fn display_repo(repo: &str) -> String {
    match url::Url::parse(repo) {
        Ok(u) if u.scheme() != "file" => crate::http::redact(&u),
        _ => repo.to_string(),
    }
}

/// The path of `given` inside the work tree `workdir` (empty when it is the root).
pub(super) fn prefix_in_repo(workdir: &Path, given: &Path) -> String {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (w, g) = (canon(workdir), canon(given));
    g.strip_prefix(&w).map(|p| p.to_string_lossy().replace('\\', "/")).unwrap_or_default()
}

pub(super) fn open_local(
    repo: git2::Repository,
    opts: &SourceOptions,
    given: &Path,
    subpath: String,
) -> Result<(SourceSnapshot, Vec<SourceWarning>), SourceError> {
    let subpath = match repo.workdir() {
        Some(w) => normalize_subpath(&format!("{}/{subpath}", prefix_in_repo(w, given))),
        None => subpath,
    };
    let (mut snapshot, mut warnings) =
        snapshot_at(&repo, repo.path(), &opts.repo, opts.rev.as_deref(), subpath, opts.limits)?;
    if repo.workdir().is_some() && opts.rev.is_none() {
        snapshot = snapshot.with_worktree(repo.path().to_path_buf());
    }
    if repo.workdir().is_some() && opts.rev.is_none() && has_changes(&repo, snapshot.subpath()) {
        warnings.push(SourceWarning(format!(
            "the work tree has uncommitted changes under `{}`; they are ignored: this run reads {}. Commit them, or pass --worktree to try them out",
            if snapshot.subpath().is_empty() { "." } else { snapshot.subpath() },
            snapshot.provenance()
        )));
    }
    Ok((snapshot, warnings))
}

fn has_changes(repo: &git2::Repository, subpath: &str) -> bool {
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true).recurse_untracked_dirs(true);
    if !subpath.is_empty() {
        opts.pathspec(subpath);
    }
    // Only fleet documents count: the state directory or an editor's backup file is not a change
    // to the fleet.
    repo.statuses(Some(&mut opts))
        .map(|s| {
            s.iter().filter_map(|e| e.path().ok().map(str::to_string)).any(|p| {
                let rel = p.strip_prefix(subpath).unwrap_or(&p);
                is_fleet_file(&p) && !rel.split('/').any(|c| c.starts_with('.'))
            })
        })
        .unwrap_or(false)
}

pub(super) fn open_remote(
    opts: &SourceOptions,
    subpath: String,
) -> Result<(SourceSnapshot, Vec<SourceWarning>), SourceError> {
    use sha2::Digest;
    let shown = display_repo(&opts.repo);
    // libgit2's messages may quote the URL, credentials included: show the redacted form.
    let err = |reason: String| SourceError::Repo { repo: shown.clone(), reason: reason.replace(&opts.repo, &shown) };
    let key = hex::encode(&sha2::Sha256::digest(opts.repo.as_bytes())[..12]);
    let dir: PathBuf = opts.cache_dir.join("repos").join(key);
    std::fs::create_dir_all(&dir).map_err(|e| err(format!("cannot create cache {}: {e}", dir.display())))?;
    let repo = match git2::Repository::open_bare(&dir) {
        Ok(r) => r,
        Err(_) => git2::Repository::init_bare(&dir).map_err(|e| err(e.message().to_string()))?,
    };
    // http(s) remotes go through patchops's own HTTP client; registered before any remote exists.
    super::http_transport::register().map_err(&err)?;
    let mut remote = repo.remote_anonymous(&opts.repo).map_err(|e| err(e.message().to_string()))?;
    let mut callbacks = git2::RemoteCallbacks::new();
    // ssh: the agent's keys. (http(s) credentials are the transport's: the URL's, or git's
    // credential helper's.)
    callbacks.credentials(|_url, username, allowed| {
        if allowed.contains(git2::CredentialType::SSH_KEY) {
            return git2::Cred::ssh_key_from_agent(username.unwrap_or("git"));
        }
        git2::Cred::default()
    });
    let mut fetch = git2::FetchOptions::new();
    fetch.remote_callbacks(callbacks).prune(git2::FetchPrune::On).download_tags(git2::AutotagOption::All);
    remote
        .fetch(&["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"], Some(&mut fetch), None)
        .map_err(|e| err(format!("fetch failed: {}", e.message())))?;
    if let Ok(head) = remote.default_branch() {
        if let Ok(name) = head.as_str() {
            let _ = repo.set_head(name);
        }
    }
    drop(remote);
    snapshot_at(&repo, &dir, &shown, opts.rev.as_deref(), subpath, opts.limits)
}

/// Resolves `rev` and reads the fleet files under `subpath` from that commit's tree.
fn snapshot_at(
    repo: &git2::Repository,
    repo_dir: &Path,
    shown: &str,
    rev: Option<&str>,
    subpath: String,
    limits: super::Limits,
) -> Result<(SourceSnapshot, Vec<SourceWarning>), SourceError> {
    let reference = rev.unwrap_or("HEAD").to_string();
    let commit = repo.revparse_single(&reference).and_then(|o| o.peel_to_commit()).map_err(|_| {
        SourceError::BadRevision { repo: shown.to_string(), rev: reference.clone(), known: known_refs(repo) }
    })?;
    let provenance = Provenance::Commit { repo: shown.to_string(), reference, commit: commit.id().to_string() };
    let at = provenance.to_string();
    let root = commit.tree().map_err(|e| SourceError::Repo { repo: shown.to_string(), reason: e.message().into() })?;
    let tree = if subpath.is_empty() {
        root
    } else {
        root.get_path(Path::new(&subpath))
            .ok()
            .and_then(|entry| entry.to_object(repo).ok())
            .and_then(|o| o.into_tree().ok())
            .ok_or_else(|| SourceError::PathNotFound { at: at.clone(), path: subpath.clone() })?
    };
    let mut files = Vec::new();
    let mut warnings = Vec::new();
    let mut failure = None;
    let mut budget = super::Budget::new(limits, at.clone());
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        let name = entry.name().unwrap_or_default();
        let path = format!("{dir}{name}");
        if name.starts_with('.') {
            return git2::TreeWalkResult::Skip;
        }
        if !is_fleet_file(&path) {
            return git2::TreeWalkResult::Ok;
        }
        // One rule in every mode: fleet documents are regular files. A link or a submodule
        // is not read, and the user is told (the work tree reader does the same).
        if entry.kind() != Some(git2::ObjectType::Blob) || entry.filemode() == 0o120000 {
            let what = if entry.filemode() == 0o120000 { "a symbolic link" } else { "not a regular file" };
            warnings.push(SourceWarning(format!(
                "{at}: {path} is {what}; it is not read as a fleet document (commit the file itself)"
            )));
            return git2::TreeWalkResult::Ok;
        }
        let blob = entry.to_object(repo).ok().and_then(|o| o.into_blob().ok());
        let Some(blob) = blob else {
            failure = Some(SourceError::File { at: at.clone(), path, reason: "the blob cannot be read".into() });
            return git2::TreeWalkResult::Abort;
        };
        if let Err(e) = budget.admit(&path, blob.size() as u64) {
            failure = Some(e);
            return git2::TreeWalkResult::Abort;
        }
        match std::str::from_utf8(blob.content()) {
            Ok(text) => files.push(FleetFile { path, text: text.into() }),
            Err(_) => {
                failure = Some(SourceError::File { at: at.clone(), path, reason: "not UTF-8 text".into() });
                return git2::TreeWalkResult::Abort;
            }
        }
        git2::TreeWalkResult::Ok
    })
    .ok();
    if let Some(f) = failure {
        return Err(f);
    }
    let reader = Reader::Git { repo_dir: repo_dir.to_path_buf(), commit: commit.id() };
    Ok((SourceSnapshot::new(provenance, subpath, files, reader), warnings))
}

fn known_refs(repo: &git2::Repository) -> String {
    let mut branches = Vec::new();
    let mut tags = Vec::new();
    if let Ok(refs) = repo.references() {
        for r in refs.flatten() {
            if let Ok(name) = r.name() {
                if let Some(b) = name.strip_prefix("refs/heads/") {
                    branches.push(b.to_string());
                } else if let Some(t) = name.strip_prefix("refs/tags/") {
                    tags.push(t.to_string());
                }
            }
        }
    }
    let mut out = String::new();
    if !branches.is_empty() {
        out += &format!("; branches: {}", branches.join(", "));
    }
    if !tags.is_empty() {
        out += &format!("; tags: {}", tags.join(", "));
    }
    out
}

pub(super) fn read_file(
    repo_dir: &Path,
    commit: git2::Oid,
    path: &str,
    provenance: &Provenance,
    max: u64,
) -> Result<Option<Vec<u8>>, SourceError> {
    let fail = |reason: String| SourceError::File { at: provenance.to_string(), path: path.to_string(), reason };
    let repo = git2::Repository::open(repo_dir).map_err(|e| fail(e.message().into()))?;
    let tree = repo.find_commit(commit).and_then(|c| c.tree()).map_err(|e| fail(e.message().into()))?;
    let Ok(entry) = tree.get_path(Path::new(path)) else {
        return Ok(None);
    };
    if entry.filemode() == 0o120000 {
        return Err(fail("it is a symbolic link; patchops reads only regular files of the commit".into()));
    }
    if entry.kind() != Some(git2::ObjectType::Blob) {
        return Err(fail("it is not a regular file (a directory or a submodule)".into()));
    }
    let blob = entry.to_object(&repo).and_then(|o| o.peel_to_blob()).map_err(|e| fail(e.message().into()))?;
    if blob.size() as u64 > max {
        return Err(SourceError::TooLarge {
            at: provenance.to_string(),
            path: path.to_string(),
            size: blob.size() as u64,
            limit: max,
            knob: None,
        });
    }
    Ok(Some(blob.content().to_vec()))
}
