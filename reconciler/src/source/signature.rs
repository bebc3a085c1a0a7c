//! Commit signature verification: before anything acts on a commit, its signature (SSH or
//! OpenPGP) is checked against trust roots that the commit itself cannot change.
//!
//! The trust roots are an `allowed_signers` file (the format of `ssh-keygen -Y verify`, which
//! git uses with `gpg.format ssh`; signature namespace `git`) and armored OpenPGP public keys
//! (`*.asc`). They are read from the state directory (`<state>/commit-signers/`) or from a
//! path given on the command line, never from the repository: a commit could add its own key.
//!
//! Two modes, as Argo CD's source integrity and Flux's `verify`: **head**, the commit acted on
//! is signed by an allowed signer; **strict**, every first-parent commit since the last applied
//! one is (`git log --first-parent LAST..HEAD`; back to the root when nothing was applied yet).
//!
//! A [`super::UnverifiedSource`] becomes a [`super::SourceSnapshot`] only through
//! [`super::UnverifiedSource::verify`] with a [`CommitPolicy`]: the stages after the source
//! never see a commit that was not admitted.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A trust-root file larger than this is refused (an allowed_signers file of many thousand
/// keys is still far below it).
const MAX_TRUST_FILE: u64 = 1 << 20;
/// At most this many `*.asc` files are read from a signers directory.
const MAX_TRUST_FILES: usize = 256;
/// Strict mode verifies at most this many commits in one run.
pub const MAX_STRICT_COMMITS: usize = 10_000;
/// The SSH signature namespace git signs commits in.
const GIT_NAMESPACE: &str = "git";

/// How strictly commits must be signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum VerifyMode {
    /// The commit acted on is signed by an allowed signer.
    Head,
    /// Every first-parent commit since the last applied one is.
    Strict,
}

impl std::fmt::Display for VerifyMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VerifyMode::Head => "head",
            VerifyMode::Strict => "strict",
        })
    }
}

/// What the command line asked for (`--verify-commits`); `None` when it did not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeChoice {
    /// Do not verify (refused while trust roots are configured).
    Off,
    /// [`VerifyMode::Head`].
    Head,
    /// [`VerifyMode::Strict`].
    Strict,
}

/// Whether, and how, commits must be signed before anything acts on them.
#[derive(Debug, Clone, Default)]
pub enum CommitPolicy {
    /// No trust roots are configured: commits are read unverified (the plan says so).
    #[default]
    NotRequired,
    /// Every commit acted on must be signed by one of `signers`.
    Required {
        /// Head or strict.
        mode: VerifyMode,
        /// The trust roots.
        signers: std::sync::Arc<Signers>,
    },
}

/// The default place of the trust roots inside a state directory.
pub fn default_signers_path(state_dir: &Path) -> PathBuf {
    state_dir.join("commit-signers")
}

impl CommitPolicy {
    /// The policy for a run: the trust roots at `signers` (a directory holding `allowed_signers`
    /// and `*.asc` files, or one such file), given explicitly or defaulting to
    /// `<state>/commit-signers`; the mode from `--verify-commits`, defaulting to `head` when
    /// trust roots exist and to not verifying when none do.
    pub fn load(
        state_dir: &Path,
        signers: Option<&Path>,
        mode: Option<ModeChoice>,
    ) -> Result<CommitPolicy, CommitError> {
        let (path, explicit) = match signers {
            Some(p) => (p.to_path_buf(), true),
            None => (default_signers_path(state_dir), false),
        };
        if explicit && !path.exists() {
            return Err(CommitError::TrustRoots {
                path,
                line: None,
                reason: "no such file or directory; give the allowed_signers file, an armored OpenPGP key (.asc) or a directory of them".into(),
            });
        }
        // Trust roots that exist but hold no key are a mistake, never "not required": a
        // signers directory or file says commits must be signed.
        let found = if path.exists() { Some(Signers::read(&path)?) } else { None };
        if let Some(s) = found.as_ref().filter(|s| s.is_empty()) {
            return Err(CommitError::TrustRoots {
                path: s.from.clone(),
                line: None,
                reason: "it holds no key: put signers in allowed_signers or *.asc files, or remove it to stop verifying commits".into(),
            });
        }
        match (mode, found) {
            (Some(ModeChoice::Off), Some(s)) => Err(CommitError::CannotTurnOff { path: s.from.clone() }),
            (None | Some(ModeChoice::Off), None) => Ok(CommitPolicy::NotRequired),
            (Some(ModeChoice::Head | ModeChoice::Strict), None) => Err(CommitError::NoSigners { path }),
            (Some(ModeChoice::Strict), Some(s)) => {
                Ok(CommitPolicy::Required { mode: VerifyMode::Strict, signers: std::sync::Arc::new(s) })
            }
            (None | Some(ModeChoice::Head), Some(s)) => {
                Ok(CommitPolicy::Required { mode: VerifyMode::Head, signers: std::sync::Arc::new(s) })
            }
        }
    }

    /// Requires `mode` with these trust roots.
    pub fn required(mode: VerifyMode, signers: Signers) -> CommitPolicy {
        CommitPolicy::Required { mode, signers: std::sync::Arc::new(signers) }
    }

    /// The mode, when verification is required.
    pub fn mode(&self) -> Option<VerifyMode> {
        match self {
            CommitPolicy::NotRequired => None,
            CommitPolicy::Required { mode, .. } => Some(*mode),
        }
    }
}

/// The trust roots: SSH allowed signers and OpenPGP public keys.
#[derive(Debug, Default)]
pub struct Signers {
    ssh: Vec<AllowedSigner>,
    openpgp: Vec<OpenPgpSigner>,
    from: PathBuf,
    /// Every file read, to refuse trust roots a commit could change.
    files: Vec<PathBuf>,
}

/// One line of an `allowed_signers` file.
#[derive(Debug)]
struct AllowedSigner {
    principals: String,
    namespaces: Option<Vec<String>>,
    valid_after: Option<i64>,
    valid_before: Option<i64>,
    key: ssh_key::PublicKey,
}

/// One armored OpenPGP public key (its primary key and subkeys).
#[derive(Debug)]
struct OpenPgpSigner {
    key: pgp::composed::SignedPublicKey,
    /// The first user id, for messages.
    user: String,
    revoked: bool,
}

impl Signers {
    /// Reads trust roots from a file or a directory (`allowed_signers` and `*.asc` in it).
    pub fn read(path: &Path) -> Result<Signers, CommitError> {
        let mut signers = Signers { from: path.to_path_buf(), ..Signers::default() };
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|e| CommitError::TrustRoots {
                path: path.to_path_buf(),
                line: None,
                reason: format!("cannot list the directory: {e}"),
            })?;
            let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            let mut asc = 0;
            for file in files {
                let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                if name == "allowed_signers" {
                    signers.read_allowed_signers(&file)?;
                } else if name.ends_with(".asc") {
                    asc += 1;
                    if asc > MAX_TRUST_FILES {
                        return Err(CommitError::TrustRoots {
                            path: path.to_path_buf(),
                            line: None,
                            reason: format!("more than {MAX_TRUST_FILES} .asc files; keep the keys that sign commits"),
                        });
                    }
                    signers.read_openpgp(&file)?;
                }
            }
        } else if path.extension().is_some_and(|e| e == "asc") {
            signers.read_openpgp(path)?;
        } else {
            signers.read_allowed_signers(path)?;
        }
        Ok(signers)
    }

    /// Whether there are no trust roots at all.
    pub fn is_empty(&self) -> bool {
        self.ssh.is_empty() && self.openpgp.is_empty()
    }

    /// Where they were read from.
    pub fn path(&self) -> &Path {
        &self.from
    }

    fn read_allowed_signers(&mut self, file: &Path) -> Result<(), CommitError> {
        let text = read_bounded(file)?;
        self.files.push(file.to_path_buf());
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let signer = parse_allowed_signer(line).map_err(|reason| CommitError::TrustRoots {
                path: file.to_path_buf(),
                line: Some(i + 1),
                reason,
            })?;
            self.ssh.push(signer);
        }
        Ok(())
    }

    fn read_openpgp(&mut self, file: &Path) -> Result<(), CommitError> {
        use pgp::composed::Deserializable;
        let text = read_bounded(file)?;
        self.files.push(file.to_path_buf());
        let bad = |reason: String| CommitError::TrustRoots { path: file.to_path_buf(), line: None, reason };
        let (keys, _) = pgp::composed::SignedPublicKey::from_string_many(&text)
            .map_err(|e| bad(format!("not an armored OpenPGP public key: {e}")))?;
        let mut any = false;
        for key in keys {
            let key = key.map_err(|e| bad(format!("not an armored OpenPGP public key: {e}")))?;
            key.verify_bindings().map_err(|e| bad(format!("the key's self-signatures do not verify: {e}")))?;
            let user = key
                .details
                .users
                .first()
                .map(|u| String::from_utf8_lossy(u.id.id()).into_owned())
                .unwrap_or_else(|| "(no user id)".into());
            let revoked = !key.details.revocation_signatures.is_empty();
            self.openpgp.push(OpenPgpSigner { key, user, revoked });
            any = true;
        }
        if !any {
            return Err(bad("it holds no public key".into()));
        }
        Ok(())
    }
}

fn read_bounded(file: &Path) -> Result<String, CommitError> {
    let bad = |reason: String| CommitError::TrustRoots { path: file.to_path_buf(), line: None, reason };
    let size = std::fs::metadata(file).map_err(|e| bad(format!("cannot read it: {e}")))?.len();
    if size > MAX_TRUST_FILE {
        return Err(bad(format!("it is larger than {MAX_TRUST_FILE} bytes ({size} bytes)")));
    }
    let bytes = std::fs::read(file).map_err(|e| bad(format!("cannot read it: {e}")))?;
    String::from_utf8(bytes).map_err(|_| bad("it is not UTF-8 text".into()))
}

/// Parses `principals [options] keytype base64 [comment]` (ssh-keygen(1), ALLOWED SIGNERS).
/// The fields are split here (quotes respected); the options are read with ssh-key's
/// `ConfigOpts` and the key with its OpenSSH parser.
fn parse_allowed_signer(line: &str) -> Result<AllowedSigner, String> {
    let (principals, rest) = split_field(line).ok_or("no principals before the key")?;
    let rest = rest.trim_start();
    if rest.is_empty() {
        return Err("no key after the principals".into());
    }
    // The key starts with its type; anything before it is the options.
    let is_key_type = |t: &str| {
        t.starts_with("ssh-") || t.starts_with("ecdsa-sha2-") || t.starts_with("sk-ssh-") || t.starts_with("sk-ecdsa-")
    };
    let first = rest.split_whitespace().next().unwrap_or_default();
    let (options, key_text) = if is_key_type(first) {
        (None, rest)
    } else {
        let (opts, key) = split_field(rest).ok_or("no key after the options")?;
        (Some(opts), key.trim_start())
    };
    let key = ssh_key::PublicKey::from_openssh(key_text)
        .map_err(|e| format!("not `[options] keytype base64 [comment]`: the key cannot be read ({e})"))?;
    let mut signer = AllowedSigner {
        principals: principals.trim_matches('"').to_string(),
        namespaces: None,
        valid_after: None,
        valid_before: None,
        key,
    };
    let Some(options) = options else { return Ok(signer) };
    let options = ssh_key::authorized_keys::ConfigOpts::new(options)
        .map_err(|e| format!("not `[options] keytype base64 [comment]`: the options cannot be read ({e})"))?;
    for opt in options.iter() {
        let (name, value) = match opt.split_once('=') {
            Some((n, v)) => (n.to_ascii_lowercase(), Some(v.trim_matches('"'))),
            None => (opt.to_ascii_lowercase(), None),
        };
        match (name.as_str(), value) {
            ("namespaces", Some(v)) => signer.namespaces = Some(v.split(',').map(|s| s.trim().to_string()).collect()),
            ("valid-after", Some(v)) => signer.valid_after = Some(parse_ssh_time(v)?),
            ("valid-before", Some(v)) => signer.valid_before = Some(parse_ssh_time(v)?),
            ("cert-authority", None) => {
                return Err("cert-authority entries (SSH certificates) are not supported; list each signer's key".into())
            }
            (other, _) => {
                return Err(format!("unknown option `{other}` (known: namespaces, valid-after, valid-before)"))
            }
        }
    }
    Ok(signer)
}

/// The first whitespace-delimited field of `line` (whitespace inside double quotes belongs to
/// the field) and the rest.
fn split_field(line: &str) -> Option<(&str, &str)> {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return (i > 0).then(|| line.split_at(i)),
            _ => {}
        }
    }
    (!line.is_empty() && !quoted).then_some((line, ""))
}

/// `YYYYMMDD[HHMM[SS]][Z]` as seconds since the epoch (ssh-keygen reads it as local time
/// without `Z`; patchops, running on servers, reads both as UTC and says so in the docs).
fn parse_ssh_time(v: &str) -> Result<i64, String> {
    let digits = v.strip_suffix(['Z', 'z']).unwrap_or(v);
    let bad = || format!("`{v}` is not a time of the form YYYYMMDD[HHMM[SS]][Z]");
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let padded = match digits.len() {
        8 => format!("{digits}000000"),
        12 => format!("{digits}00"),
        14 => digits.to_string(),
        _ => return Err(bad()),
    };
    chrono::NaiveDateTime::parse_from_str(&padded, "%Y%m%d%H%M%S").map(|t| t.and_utc().timestamp()).map_err(|_| bad())
}

/// Who signed a commit that was admitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SignedBy {
    /// The full commit id.
    pub commit: String,
    /// `ssh` or `openpgp`.
    pub kind: String,
    /// The principals of the allowed_signers line, or the OpenPGP key's user id.
    pub signer: String,
    /// The key: `SHA256:…` (SSH) or the OpenPGP fingerprint.
    pub key: String,
}

/// What verification found for the commit a run acts on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", tag = "status")]
pub enum CommitVerdict {
    /// No trust roots are configured: the commit was not verified.
    #[default]
    NotRequired,
    /// Every commit the mode asks about is signed by an allowed signer.
    #[serde(rename_all = "camelCase")]
    Verified {
        /// Head or strict.
        mode: VerifyMode,
        /// The head commit's signer.
        head: SignedBy,
        /// How many commits were verified (1 in head mode).
        commits: usize,
    },
}

impl std::fmt::Display for CommitVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommitVerdict::NotRequired => f.write_str("commit signatures not required"),
            CommitVerdict::Verified { mode, head, commits } => {
                write!(f, "commit signed by {} ({} key {})", head.signer, head.kind, head.key)?;
                if *mode == VerifyMode::Strict {
                    write!(f, "; strict: {commits} commit(s) since the last applied one verified")?;
                }
                Ok(())
            }
        }
    }
}

/// Why a commit was not admitted, or the trust roots could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// A trust-root file is unreadable or malformed.
    #[error("commit signers {}{}: {reason}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    TrustRoots {
        /// The file or directory.
        path: PathBuf,
        /// The line, in an allowed_signers file.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
    },
    /// `--verify-commits head|strict` without any trust roots.
    #[error("--verify-commits asks for signed commits, but there are no commit signers at {}: put an allowed_signers file (SSH) or armored OpenPGP keys (*.asc) there, or pass --commit-signers PATH", path.display())]
    NoSigners {
        /// Where they were looked for.
        path: PathBuf,
    },
    /// `--verify-commits off` while trust roots are configured.
    #[error("commit signers are configured at {}, so commits must be signed; --verify-commits off is refused while they are there (move them away to stop verifying)", path.display())]
    CannotTurnOff {
        /// Where they are.
        path: PathBuf,
    },
    /// The source is not a commit (a plain directory, or `--worktree`).
    #[error("{at}: commit signatures are required, but this is not a commit; read a commit (drop --worktree, point --repo at a git repository)")]
    NotACommit {
        /// The provenance.
        at: String,
    },
    /// The commit has no signature.
    #[error("commit {commit} ({summary}) is not signed; commits must be signed by an allowed signer ({mode} mode): sign it (`git commit -S`, or `git commit --amend -S`) and push it again")]
    Unsigned {
        /// The commit id.
        commit: String,
        /// Its subject line.
        summary: String,
        /// The mode that asked.
        mode: VerifyMode,
    },
    /// Signed, but by a key that is not a trust root.
    #[error("commit {commit} ({summary}) is signed by {found}, which is not an allowed signer (trust roots: {roots}); add the key there only if you trust it")]
    NotAllowed {
        /// The commit id.
        commit: String,
        /// Its subject line.
        summary: String,
        /// The key found in the signature.
        found: String,
        /// Where the trust roots are.
        roots: String,
    },
    /// The signature does not verify, or its signer may not sign this commit.
    #[error("commit {commit} ({summary}): the signature by {signer} is not valid: {why}")]
    BadSignature {
        /// The commit id.
        commit: String,
        /// Its subject line.
        summary: String,
        /// Who the signature claims to be from.
        signer: String,
        /// Why it is refused.
        why: String,
    },
    /// A trust root is part of the repository whose commits it should judge.
    #[error("commit signers {}: the file is tracked by the repository being verified ({repo} has {path_in_repo}), so a commit could change who may sign; keep the trust roots outside the repository (a state directory elsewhere, or --commit-signers PATH)", path.display())]
    TrustRootsInRepository {
        /// The trust-root file.
        path: PathBuf,
        /// The repository.
        repo: String,
        /// Its path inside the repository.
        path_in_repo: String,
    },
    /// Strict mode: the last applied commit cannot be found.
    #[error("strict commit verification: the last applied commit {commit} is not in {repo}; the history may have been rewritten. Check the new history, then apply once with --verify-commits head")]
    LastAppliedUnknown {
        /// The commit recorded.
        commit: String,
        /// The repository.
        repo: String,
    },
    /// Strict mode: too many commits to verify.
    #[error("strict commit verification: more than {limit} commits since the last applied one; apply once with --verify-commits head after checking them")]
    TooMany {
        /// The bound.
        limit: usize,
    },
    /// git could not read the commits.
    #[error("repository {repo}: {reason}")]
    Repo {
        /// The repository.
        repo: String,
        /// git's message.
        reason: String,
    },
}

impl CommitError {
    /// A stable CamelCase reason.
    pub fn reason(&self) -> &'static str {
        match self {
            CommitError::TrustRoots { .. }
            | CommitError::NoSigners { .. }
            | CommitError::CannotTurnOff { .. }
            | CommitError::TrustRootsInRepository { .. } => "CommitSignersInvalid",
            CommitError::NotACommit { .. } => "CommitNotVerifiable",
            CommitError::Unsigned { .. } => "CommitUnsigned",
            CommitError::NotAllowed { .. } => "CommitSignerNotAllowed",
            CommitError::BadSignature { .. } => "CommitSignatureInvalid",
            CommitError::LastAppliedUnknown { .. } | CommitError::TooMany { .. } => "CommitHistoryUnverifiable",
            CommitError::Repo { .. } => "RepositoryUnavailable",
        }
    }
}

/// Verifies the commits `mode` asks about: `head` alone, or (strict) every first-parent commit
/// of `head` not reachable from `last_applied` (all of them back to the root when `None`).
pub(super) fn verify(
    repo: &git2::Repository,
    shown: &str,
    head: git2::Oid,
    mode: VerifyMode,
    signers: &Signers,
    last_applied: Option<&str>,
) -> Result<CommitVerdict, CommitError> {
    let git_err = |e: git2::Error| CommitError::Repo { repo: shown.to_string(), reason: e.message().to_string() };
    refuse_tracked_roots(repo, shown, head, signers)?;
    let head_signer = verify_one(repo, head, mode, signers)?;
    let mut commits = 1;
    if mode == VerifyMode::Strict {
        let mut walk = repo.revwalk().map_err(git_err)?;
        walk.simplify_first_parent().map_err(git_err)?;
        walk.push(head).map_err(git_err)?;
        if let Some(last) = last_applied {
            let oid = git2::Oid::from_str(last)
                .ok()
                .filter(|o| repo.find_commit(*o).is_ok())
                .ok_or_else(|| CommitError::LastAppliedUnknown { commit: last.to_string(), repo: shown.to_string() })?;
            walk.hide(oid).map_err(git_err)?;
        }
        for (i, oid) in walk.enumerate() {
            let oid = oid.map_err(git_err)?;
            if i >= MAX_STRICT_COMMITS {
                return Err(CommitError::TooMany { limit: MAX_STRICT_COMMITS });
            }
            if oid != head {
                verify_one(repo, oid, mode, signers)?;
                commits += 1;
            }
        }
    }
    Ok(CommitVerdict::Verified { mode, head: head_signer, commits })
}

/// Refuses trust roots inside the repository's work tree that the commit or the index holds:
/// a commit could add its own key (a state directory inside the work tree is common).
fn refuse_tracked_roots(
    repo: &git2::Repository,
    shown: &str,
    head: git2::Oid,
    signers: &Signers,
) -> Result<(), CommitError> {
    let Some(workdir) = repo.workdir().and_then(|w| std::fs::canonicalize(w).ok()) else {
        return Ok(());
    };
    let tree = repo.find_commit(head).and_then(|c| c.tree()).ok();
    let index = repo.index().ok();
    for file in &signers.files {
        let Ok(canonical) = std::fs::canonicalize(file) else { continue };
        let Ok(rel) = canonical.strip_prefix(&workdir) else { continue };
        let in_commit = tree.as_ref().is_some_and(|t| t.get_path(rel).is_ok());
        let in_index = index.as_ref().is_some_and(|i| i.get_path(rel, 0).is_some());
        if in_commit || in_index {
            return Err(CommitError::TrustRootsInRepository {
                path: file.clone(),
                repo: shown.to_string(),
                path_in_repo: rel.to_string_lossy().replace('\\', "/"),
            });
        }
    }
    Ok(())
}

/// Verifies one commit's signature against the trust roots.
fn verify_one(
    repo: &git2::Repository,
    oid: git2::Oid,
    mode: VerifyMode,
    signers: &Signers,
) -> Result<SignedBy, CommitError> {
    let commit = oid.to_string();
    let found = repo.find_commit(oid).ok();
    let summary = found.as_ref().and_then(|c| c.summary().ok().flatten().map(str::to_string)).unwrap_or_default();
    let committed_at = found.as_ref().map(|c| c.committer().when().seconds()).unwrap_or(0);
    let (signature, signed) = match repo.extract_signature(&oid, None) {
        Ok(pair) => pair,
        Err(_) => return Err(CommitError::Unsigned { commit, summary, mode }),
    };
    let text = String::from_utf8_lossy(&signature).into_owned();
    let roots = signers.from.display().to_string();
    let bad = |signer: String, why: String| CommitError::BadSignature {
        commit: commit.clone(),
        summary: summary.clone(),
        signer,
        why,
    };
    if text.trim_start().starts_with("-----BEGIN SSH SIGNATURE-----") {
        let sig = ssh_key::SshSig::from_pem(text.trim())
            .map_err(|e| bad("an SSH signature".into(), format!("it cannot be read: {e}")))?;
        let key = ssh_key::PublicKey::from(sig.public_key().clone());
        let fingerprint = key.fingerprint(ssh_key::HashAlg::Sha256).to_string();
        let allowed: Vec<&AllowedSigner> =
            signers.ssh.iter().filter(|s| s.key.key_data() == sig.public_key()).collect();
        if allowed.is_empty() {
            return Err(CommitError::NotAllowed { commit, summary, found: format!("SSH key {fingerprint}"), roots });
        }
        if sig.namespace() != GIT_NAMESPACE {
            return Err(bad(
                format!("SSH key {fingerprint}"),
                format!("it was made for namespace `{}`, not `git`", sig.namespace()),
            ));
        }
        // The first line for the key whose restrictions admit this commit.
        let mut refusal = None;
        for signer in allowed {
            if let Some(ns) = &signer.namespaces {
                if !ns.iter().any(|n| n == GIT_NAMESPACE || n == "*") {
                    refusal = Some(format!("{} may sign only in namespaces {}", signer.principals, ns.join(",")));
                    continue;
                }
            }
            if signer.valid_after.is_some_and(|t| committed_at < t) {
                refusal = Some(format!("{}'s key is valid only after its valid-after time", signer.principals));
                continue;
            }
            if signer.valid_before.is_some_and(|t| committed_at >= t) {
                refusal = Some(format!("{}'s key is valid only before its valid-before time", signer.principals));
                continue;
            }
            signer.key.verify(GIT_NAMESPACE, &signed, &sig).map_err(|_| {
                bad(
                    format!("{} (SSH key {fingerprint})", signer.principals),
                    "it does not match the commit: the commit was altered after it was signed".into(),
                )
            })?;
            return Ok(SignedBy { commit, kind: "ssh".into(), signer: signer.principals.clone(), key: fingerprint });
        }
        Err(bad(format!("SSH key {fingerprint}"), refusal.unwrap_or_default()))
    } else if text.trim_start().starts_with("-----BEGIN PGP SIGNATURE-----") {
        verify_openpgp(&text, &signed, signers, &commit, &summary, &roots)
    } else {
        Err(bad(
            "an unknown signer".into(),
            "it is neither an SSH nor an OpenPGP signature (X.509 signatures are not supported)".into(),
        ))
    }
}

fn verify_openpgp(
    text: &str,
    signed: &[u8],
    signers: &Signers,
    commit: &str,
    summary: &str,
    roots: &str,
) -> Result<SignedBy, CommitError> {
    use pgp::composed::Deserializable;
    use pgp::types::KeyDetails;
    let bad = |signer: String, why: String| CommitError::BadSignature {
        commit: commit.to_string(),
        summary: summary.to_string(),
        signer,
        why,
    };
    let (sig, _) = pgp::composed::DetachedSignature::from_string(text)
        .map_err(|e| bad("an OpenPGP signature".into(), format!("it cannot be read: {e}")))?;
    let fingerprints: Vec<String> = sig.signature.issuer_fingerprint().iter().map(|f| format!("{f:X}")).collect();
    let key_ids: Vec<String> = sig.signature.issuer_key_id().iter().map(|k| hex::encode_upper(k.as_ref())).collect();
    let issuer = fingerprints.first().or(key_ids.first()).cloned().unwrap_or_else(|| "an unnamed key".into());
    let names = |fp: String, id: String| fingerprints.contains(&fp) || key_ids.contains(&id);
    for signer in &signers.openpgp {
        let primary = &signer.key.primary_key;
        let primary_fp = format!("{:X}", primary.fingerprint());
        let who = format!("{} (OpenPGP key {primary_fp})", signer.user);
        let verdict = |result: pgp::errors::Result<()>| {
            if signer.revoked {
                return Err(bad(who.clone(), "the key is revoked".into()));
            }
            result.map_err(|_| {
                bad(who.clone(), "it does not match the commit: the commit was altered after it was signed".into())
            })?;
            Ok(SignedBy {
                commit: commit.to_string(),
                kind: "openpgp".into(),
                signer: signer.user.clone(),
                key: primary_fp.clone(),
            })
        };
        if names(primary_fp.clone(), hex::encode_upper(primary.legacy_key_id().as_ref())) {
            return verdict(sig.verify(primary, signed));
        }
        for sub in &signer.key.public_subkeys {
            if !names(format!("{:X}", sub.key.fingerprint()), hex::encode_upper(sub.key.legacy_key_id().as_ref())) {
                continue;
            }
            // verify_bindings at load time checked the binding; it must also allow signing.
            if !sub.signatures.iter().any(|s| s.key_flags().sign()) {
                return Err(bad(who, "the subkey that made it is not a signing subkey".into()));
            }
            if sub.signatures.iter().any(|s| s.typ() == Some(pgp::packet::SignatureType::SubkeyRevocation)) {
                return Err(bad(who, "the subkey that made it is revoked".into()));
            }
            return verdict(sig.verify(&sub.key, signed));
        }
    }
    Err(CommitError::NotAllowed {
        commit: commit.to_string(),
        summary: summary.to_string(),
        found: format!("OpenPGP key {issuer}"),
        roots: roots.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_signer_lines_parse_with_their_options() {
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPUGFN+o9Ce3o8toC8ZE6It8hAdkdRs9AQJlxl1Ff4ET";
        let s = parse_allowed_signer(&format!("alice@example.com {key} alice")).unwrap();
        assert_eq!(s.principals, "alice@example.com");
        assert!(s.namespaces.is_none());
        let s = parse_allowed_signer(&format!(
            "\"a@x.org,b@x.org\" namespaces=\"git,file\",valid-after=\"20240101\" {key}"
        ))
        .unwrap();
        assert_eq!(s.principals, "a@x.org,b@x.org");
        assert_eq!(s.namespaces.as_deref(), Some(&["git".to_string(), "file".to_string()][..]));
        assert_eq!(s.valid_after, Some(1_704_067_200));
        assert!(parse_allowed_signer(&format!("a@x.org cert-authority {key}")).unwrap_err().contains("cert-authority"));
        assert!(parse_allowed_signer("a@x.org").unwrap_err().contains("no key"));
        assert!(parse_allowed_signer(&format!("a@x.org namespaces=\"git\" {key}")).is_ok(), "options, and no comment");
        assert!(parse_allowed_signer("a@x.org ssh-ed25519 notbase64").is_err());
        assert!(parse_ssh_time("2024").is_err());
        assert_eq!(parse_ssh_time("20240101000001Z"), Ok(1_704_067_201));
    }
}
