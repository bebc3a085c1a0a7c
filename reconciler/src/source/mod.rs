//! The fleet source: the files of a fleet, read from the git objects of one commit (or, for local
//! experiments, from a plain directory), with their provenance and a digest.
//!
//! Entry point: [`open`] gives an [`UnverifiedSource`], which only
//! [`UnverifiedSource::verify`] (commit signatures, [`signature`]) turns into a
//! [`SourceSnapshot`]. Stages after this one take only the snapshot, and the plan records its
//! [`Provenance`] and digest, so every plan says which commit it came from and a saved plan can
//! be refused when the fleet's content changed.

mod dir;
mod git;
mod http_transport;
pub mod signature;

use std::path::PathBuf;

use serde::Serialize;

use crate::vocab::Sha256;

/// One file of the fleet: its path relative to the fleet root, and its text.
#[derive(Debug, Clone)]
pub struct FleetFile {
    /// Path relative to the fleet root, with `/` separators.
    pub path: String,
    /// The file's content (shared: diagnostics re-read it without copying it).
    pub text: std::sync::Arc<str>,
}

/// Whether a path is a fleet document (`.yaml` or `.yml`).
pub fn is_fleet_file(path: &str) -> bool {
    path.ends_with(".yaml") || path.ends_with(".yml")
}

/// Joins a relative path to the directory of `base_file` (both `/`-separated, relative to a
/// repository root), resolving `.` and `..`. `None` if the result leaves the root.
pub fn join_relative(base_file: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = base_file.split('/').filter(|s| !s.is_empty()).collect();
    parts.pop();
    for piece in rel.split('/') {
        match piece {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// Where the fleet came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Provenance {
    /// The objects of a git commit.
    #[serde(rename_all = "camelCase")]
    Commit {
        /// The repository as given (path or URL, credentials removed).
        repo: String,
        /// The revision asked for (branch, tag, SHA or `HEAD`).
        reference: String,
        /// The full commit id.
        commit: String,
    },
    /// Files on disk: provenance unknown.
    #[serde(rename_all = "camelCase")]
    Directory {
        /// The directory read.
        path: String,
        /// When it is a git work tree, the commit checked out (the files may differ from it).
        #[serde(skip_serializing_if = "Option::is_none")]
        head: Option<String>,
    },
}

impl std::fmt::Display for Provenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Provenance::Commit { reference, commit, .. } => {
                let short = commit.get(..12).unwrap_or(commit);
                if reference == commit {
                    write!(f, "commit {short}")
                } else {
                    write!(f, "commit {short} ({reference})")
                }
            }
            Provenance::Directory { path, .. } => write!(f, "directory {path} (provenance unknown)"),
        }
    }
}

/// What to read.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// A local path (a git repository or a plain directory) or a URL (`file://`, `https://`,
    /// `ssh://`) to fetch into the cache.
    pub repo: String,
    /// Branch, tag or commit; `HEAD` when `None`.
    pub rev: Option<String>,
    /// The fleet's directory inside the repository.
    pub path: String,
    /// Read a local repository's files from disk instead of from a commit.
    pub worktree: bool,
    /// Where fetched repositories are kept.
    pub cache_dir: PathBuf,
    /// Size caps on what is read.
    pub limits: Limits,
}

/// How much of a fleet is read before it is refused: memory stays proportional to these, not
/// to whatever a commit holds. The command line sets them with `--max-file-mib` and
/// `--max-fleet-mib`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// One fleet document file (default 8 MiB).
    pub file_bytes: u64,
    /// All fleet document files together (default 256 MiB).
    pub fleet_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { file_bytes: 8 << 20, fleet_bytes: 256 << 20 }
    }
}

/// Files a fleet refers to (policy modules) are read up to this size.
pub const MAX_REFERENCED_BYTES: u64 = 16 << 20;

/// Why the source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The repository could not be opened or fetched.
    #[error("repository {repo}: {reason}")]
    Repo {
        /// The repository.
        repo: String,
        /// Why: git's message with the repository's URL redacted. Kept as text on purpose — a
        /// `git2::Error` may quote the URL with its credentials.
        reason: String,
    },
    /// The revision does not exist.
    #[error("repository {repo}: revision `{rev}` not found{known}")]
    BadRevision {
        /// The repository.
        repo: String,
        /// The revision asked for.
        rev: String,
        /// Known branches and tags, for the message.
        known: String,
    },
    /// The fleet path does not exist at that commit or on disk.
    #[error("{at}: fleet path `{path}` does not exist or is not a directory")]
    PathNotFound {
        /// Commit or directory.
        at: String,
        /// The path.
        path: String,
    },
    /// A `--rev` was given for a plain directory.
    #[error(
        "{path} is not a git repository, so --rev {rev} cannot be read; drop --rev or point --repo at a repository"
    )]
    RevWithoutGit {
        /// The directory.
        path: String,
        /// The revision.
        rev: String,
    },
    /// A file, or the fleet, is larger than its cap.
    #[error("{at}: {path} is larger than {limit} bytes ({size} bytes){}", knob.map(|k| format!("; if it really must be, raise {k}")).unwrap_or_default())]
    TooLarge {
        /// Commit or directory.
        at: String,
        /// The file (or `the fleet`).
        path: String,
        /// Its size.
        size: u64,
        /// The cap.
        limit: u64,
        /// The flag that sets the cap, if there is one.
        knob: Option<&'static str>,
    },
    /// The fleet path leaves the repository.
    #[error("fleet path `{path}` leaves the repository; give a path inside it")]
    PathOutside {
        /// The path given.
        path: String,
    },
    /// The fleet path holds no fleet documents.
    #[error("{at}: no fleet documents (*.yaml, *.yml) under {path}; point --path at the fleet's directory")]
    NoFleetDocuments {
        /// Commit or directory.
        at: String,
        /// The fleet path.
        path: String,
    },
    /// The commit was not admitted (commit signature verification), or the trust roots could
    /// not be read.
    #[error(transparent)]
    Unverified(#[from] signature::CommitError),
    /// A file could not be read.
    #[error("{at}: cannot read {path}: {reason}")]
    File {
        /// Commit or directory.
        at: String,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

impl SourceError {
    /// A stable CamelCase reason, for machines (conditions, metrics, notifications).
    pub fn reason(&self) -> &'static str {
        match self {
            SourceError::Repo { .. } => "RepositoryUnavailable",
            SourceError::BadRevision { .. } => "RevisionNotFound",
            SourceError::PathNotFound { .. } => "FleetPathNotFound",
            SourceError::RevWithoutGit { .. } => "RevisionWithoutGit",
            SourceError::TooLarge { .. } => "FleetTooLarge",
            SourceError::PathOutside { .. } => "PathOutsideRepository",
            SourceError::File { .. } => "FleetFileUnreadable",
            SourceError::Unverified(e) => e.reason(),
            SourceError::NoFleetDocuments { .. } => "NoFleetDocuments",
        }
    }
}

/// Something the user should know that does not stop the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceWarning(pub String);

impl std::fmt::Display for SourceWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The fleet files at one commit (or directory), addressed by provenance and digest.
#[derive(Debug, Clone)]
pub struct SourceSnapshot {
    provenance: Provenance,
    subpath: String,
    /// Shared: a snapshot is cloned into blocking tasks (installers read from the commit).
    files: std::sync::Arc<[FleetFile]>,
    digest: Sha256,
    reader: Reader,
    /// The files read through [`SourceSnapshot::read_referenced`], by path (shared by clones).
    referenced: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, Sha256>>>,
    /// The local repository whose work tree may differ from the commit read (HEAD, no
    /// `--rev`): a file the fleet reads that differs there is warned about.
    worktree: Option<PathBuf>,
    /// What commit signature verification found.
    verdict: signature::CommitVerdict,
}

/// A source as read, before its commit was admitted: only [`UnverifiedSource::verify`] gives
/// the [`SourceSnapshot`] the later stages take.
#[derive(Debug)]
#[must_use = "a source is used only once its commit is verified"]
pub struct UnverifiedSource {
    snapshot: SourceSnapshot,
    warnings: Vec<SourceWarning>,
}

impl UnverifiedSource {
    /// Where it came from.
    pub fn provenance(&self) -> &Provenance {
        &self.snapshot.provenance
    }

    /// Admits the source under `policy`: when commits must be signed, the commit (and in strict
    /// mode every first-parent commit since `last_applied`) must be signed by an allowed signer;
    /// a source that is not a commit is refused. Without trust roots the source is admitted as
    /// not verified ([`signature::CommitVerdict::NotRequired`]).
    pub fn verify(
        self,
        policy: &signature::CommitPolicy,
        last_applied: Option<&str>,
    ) -> Result<(SourceSnapshot, Vec<SourceWarning>), SourceError> {
        let UnverifiedSource { mut snapshot, warnings } = self;
        let signature::CommitPolicy::Required { mode, signers } = policy else {
            return Ok((snapshot, warnings));
        };
        let (Reader::Git { repo_dir, commit }, Provenance::Commit { repo: shown, .. }) =
            (&snapshot.reader, &snapshot.provenance)
        else {
            return Err(signature::CommitError::NotACommit { at: snapshot.provenance.to_string() }.into());
        };
        let repo = git2::Repository::open(repo_dir)
            .map_err(|e| SourceError::Repo { repo: shown.clone(), reason: e.message().to_string() })?;
        snapshot.verdict = signature::verify(&repo, shown, *commit, *mode, signers, last_applied)?;
        Ok((snapshot, warnings))
    }
}

#[derive(Debug, Clone)]
enum Reader {
    Git { repo_dir: PathBuf, commit: git2::Oid },
    Dir { root: PathBuf },
}

impl SourceSnapshot {
    fn new(provenance: Provenance, subpath: String, mut files: Vec<FleetFile>, reader: Reader) -> Self {
        use sha2::Digest;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let mut h = sha2::Sha256::new();
        for f in &files {
            h.update((f.path.len() as u64).to_le_bytes());
            h.update(f.path.as_bytes());
            h.update((f.text.len() as u64).to_le_bytes());
            h.update(f.text.as_bytes());
        }
        let digest = Sha256::from_bytes(h.finalize().into());
        SourceSnapshot {
            provenance,
            subpath,
            files: files.into(),
            digest,
            reader,
            referenced: Default::default(),
            worktree: None,
            verdict: signature::CommitVerdict::NotRequired,
        }
    }

    /// What commit signature verification found.
    pub fn verdict(&self) -> &signature::CommitVerdict {
        &self.verdict
    }

    /// Notes the local repository whose work tree the files were read beside.
    pub(super) fn with_worktree(mut self, repo_dir: PathBuf) -> Self {
        self.worktree = Some(repo_dir);
        self
    }

    /// The files read so far through [`SourceSnapshot::read_referenced`] (catalogs, policy
    /// modules) that have uncommitted changes in the work tree: this run read them as of the
    /// commit, not as they are on disk. Only those files are asked about (no scan of the work
    /// tree).
    pub fn uncommitted_reads(&self) -> Vec<String> {
        let Some(dir) = &self.worktree else { return Vec::new() };
        let Ok(read) = self.referenced.lock() else { return Vec::new() };
        let Ok(repo) = git2::Repository::open(dir) else { return Vec::new() };
        read.keys()
            .filter(|p| {
                repo.status_file(std::path::Path::new(p.as_str()))
                    .is_ok_and(|s| !s.is_empty() && !s.contains(git2::Status::IGNORED))
            })
            .cloned()
            .collect()
    }

    /// The warning about [`SourceSnapshot::uncommitted_reads`], if there are any.
    pub fn uncommitted_warning(&self) -> Option<SourceWarning> {
        let paths = self.uncommitted_reads();
        (!paths.is_empty()).then(|| {
            SourceWarning(format!(
                "the work tree has uncommitted changes to {}, which the fleet reads; they are ignored: this run reads {}. Commit them, or pass --worktree to try them out",
                paths.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", "),
                self.provenance
            ))
        })
    }

    /// The SHA-256 of each fleet file, and of each file read through
    /// [`SourceSnapshot::read_referenced`] so far (a catalog or policy module in the repository),
    /// by path in the repository: the content a plan was made from, file by file.
    pub fn content_digests(&self) -> std::collections::BTreeMap<String, Sha256> {
        let mut out: std::collections::BTreeMap<String, Sha256> =
            self.files.iter().map(|f| (self.repo_path(&f.path), Sha256::digest(f.text.as_bytes()))).collect();
        if let Ok(read) = self.referenced.lock() {
            out.extend(read.iter().map(|(p, d)| (p.clone(), *d)));
        }
        out
    }

    /// Where the files came from.
    pub fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    /// The commit id, when read from git objects.
    pub fn commit(&self) -> Option<&str> {
        match &self.provenance {
            Provenance::Commit { commit, .. } => Some(commit),
            Provenance::Directory { .. } => None,
        }
    }

    /// The fleet's `.yaml`/`.yml` files, relative to the fleet path, sorted.
    pub fn files(&self) -> &[FleetFile] {
        &self.files
    }

    /// SHA-256 over every fleet file's path and content.
    pub fn digest(&self) -> Sha256 {
        self.digest
    }

    /// The fleet path inside the repository.
    pub fn subpath(&self) -> &str {
        &self.subpath
    }

    /// Turns a path relative to the fleet into one relative to the repository root.
    pub fn repo_path(&self, fleet_relative: &str) -> String {
        if self.subpath.is_empty() {
            fleet_relative.to_string()
        } else {
            format!("{}/{fleet_relative}", self.subpath)
        }
    }

    /// The repository path of `rel`, written in the fleet file `fleet_file` (a path relative
    /// to the fleet root) and relative to that file's directory; `None` when it leaves the
    /// repository. The one way a fleet reference to another file is resolved.
    pub fn resolve(&self, fleet_file: &str, rel: &str) -> Option<String> {
        join_relative(&self.repo_path(fleet_file), rel)
    }

    /// Reads any file of the same commit (or directory), by its path from the repository root,
    /// refusing it when it holds more than `max` bytes. `Ok(None)` when it does not exist.
    ///
    /// One rule in every mode: only regular files inside the repository are read. A symbolic
    /// link, a submodule, a device or a FIFO is refused with an error naming it.
    pub fn read_repo_file(&self, path: &str, max: u64) -> Result<Option<Vec<u8>>, SourceError> {
        match &self.reader {
            Reader::Git { repo_dir, commit } => git::read_file(repo_dir, *commit, path, &self.provenance, max),
            Reader::Dir { root } => dir::read_file(root, path, max),
        }
    }

    /// [`SourceSnapshot::read_repo_file`] for a file the plan depends on (a catalog or a policy
    /// module in the repository, not an installer — those are anchored by the catalog's
    /// digests): its digest joins [`SourceSnapshot::content_digests`].
    pub fn read_referenced(&self, path: &str, max: u64) -> Result<Option<Vec<u8>>, SourceError> {
        let found = self.read_repo_file(path, max)?;
        if let (Some(bytes), Ok(mut read)) = (&found, self.referenced.lock()) {
            read.insert(path.to_string(), Sha256::digest(bytes));
        }
        Ok(found)
    }
}

/// The local root of `repo`: the work tree of the git repository it is in (the repository
/// itself when bare), or the directory itself outside git; `None` for a URL. The state
/// directory and `file:` secrets are found from here, whichever subdirectory patchops runs in.
pub fn local_root(repo: &str) -> Option<PathBuf> {
    if git::is_url(repo) {
        return None;
    }
    Some(match git2::Repository::discover(repo) {
        Ok(r) => r.workdir().map_or_else(|| r.path().to_path_buf(), std::path::Path::to_path_buf),
        Err(_) => PathBuf::from(repo),
    })
}

/// Opens the fleet source: a commit of a local or remote repository, or a plain directory.
pub fn open(opts: &SourceOptions) -> Result<UnverifiedSource, SourceError> {
    let (snapshot, warnings) = read(opts)?;
    // A directory without fleet documents is a mistake (a wrong --path, an emptied branch),
    // never an empty fleet: an empty fleet would plan to retire everything.
    if snapshot.files.is_empty() {
        let path = if snapshot.subpath.is_empty() { ".".to_string() } else { snapshot.subpath.clone() };
        return Err(SourceError::NoFleetDocuments { at: snapshot.provenance.to_string(), path });
    }
    Ok(UnverifiedSource { snapshot, warnings })
}

fn read(opts: &SourceOptions) -> Result<(SourceSnapshot, Vec<SourceWarning>), SourceError> {
    if opts.path.split(['/', '\\']).any(|c| c == "..") {
        return Err(SourceError::PathOutside { path: opts.path.clone() });
    }
    let subpath = normalize_subpath(&opts.path);
    if git::is_url(&opts.repo) {
        return git::open_remote(opts, subpath);
    }
    let root = PathBuf::from(&opts.repo);
    match git2::Repository::discover(&root) {
        Ok(repo) if opts.worktree && !repo.is_bare() => dir::open_worktree(repo, opts, &root, subpath),
        Ok(repo) => git::open_local(repo, opts, &root, subpath),
        Err(_) => {
            if let Some(rev) = &opts.rev {
                return Err(SourceError::RevWithoutGit { path: opts.repo.clone(), rev: rev.clone() });
            }
            dir::open_plain(&root, subpath, opts.limits)
        }
    }
}

/// Counts the fleet's bytes against the limits as its files are found.
struct Budget {
    limits: Limits,
    used: u64,
    at: String,
}

impl Budget {
    fn new(limits: Limits, at: String) -> Self {
        Budget { limits, used: 0, at }
    }

    /// Admits a file of `size` bytes, or says which cap it breaks.
    fn admit(&mut self, path: &str, size: u64) -> Result<(), SourceError> {
        if size > self.limits.file_bytes {
            return Err(SourceError::TooLarge {
                at: self.at.clone(),
                path: path.to_string(),
                size,
                limit: self.limits.file_bytes,
                knob: Some("--max-file-mib"),
            });
        }
        self.used = self.used.saturating_add(size);
        if self.used > self.limits.fleet_bytes {
            return Err(SourceError::TooLarge {
                at: self.at.clone(),
                path: "the fleet's documents together".into(),
                size: self.used,
                limit: self.limits.fleet_bytes,
                knob: Some("--max-fleet-mib"),
            });
        }
        Ok(())
    }
}

fn normalize_subpath(path: &str) -> String {
    path.split('/').filter(|p| !p.is_empty() && *p != ".").collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_against_the_document_directory() {
        assert_eq!(
            join_relative("examples/fleet/catalog.yaml", "../catalog/c.json").as_deref(),
            Some("examples/catalog/c.json")
        );
        assert_eq!(join_relative("a.yaml", "c.json").as_deref(), Some("c.json"));
        assert_eq!(join_relative("a.yaml", "../c.json"), None);
    }
}
