//! Issue 12, item 5: commit signature verification, through the binary on real git
//! repositories. Commits are signed by git itself (`git commit -S`): SSH keys made by
//! ssh-keygen (`gpg.format ssh`) and OpenPGP keys made by gpg, in temporary homes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_contains, fleet_repo, git, patchops, tool, Repo};

/// An SSH key pair made by ssh-keygen.
struct SshKey {
    _dir: tempfile::TempDir,
    private: PathBuf,
    public: String,
}

fn ssh_key(comment: &str) -> SshKey {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("id_ed25519");
    let out = tool("ssh-keygen", "openssh-client")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(&private)
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
    let public = std::fs::read_to_string(private.with_extension("pub")).unwrap().trim().to_string();
    SshKey { _dir: dir, private, public }
}

impl SshKey {
    /// `SHA256:…`, as ssh-keygen -l prints it.
    fn fingerprint(&self) -> String {
        let out =
            tool("ssh-keygen", "openssh-client").arg("-lf").arg(self.private.with_extension("pub")).output().unwrap();
        String::from_utf8_lossy(&out.stdout).split_whitespace().nth(1).unwrap().to_string()
    }
}

/// An OpenPGP key made by gpg in its own home: a certification-only primary key with a signing
/// subkey (so signatures come from the subkey, as with most real keys).
struct PgpKey {
    home: tempfile::TempDir,
    fingerprint: String,
}

fn gpg(home: &Path, args: &[&str]) -> String {
    let out = tool("gpg", "gnupg")
        .arg("--homedir")
        .arg(home)
        .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pgp_key(user: &str) -> PgpKey {
    let home = tempfile::tempdir().unwrap();
    gpg(home.path(), &["--quick-gen-key", user, "ed25519", "cert", "never"]);
    let listing = gpg(home.path(), &["--with-colons", "--list-keys", user]);
    let fingerprint = listing.lines().find_map(|l| l.strip_prefix("fpr:")).unwrap().trim_matches(':').to_string();
    gpg(home.path(), &["--quick-add-key", &fingerprint, "ed25519", "sign", "never"]);
    PgpKey { home, fingerprint }
}

impl PgpKey {
    fn armored(&self) -> String {
        gpg(self.home.path(), &["--armor", "--export", &self.fingerprint])
    }
}

enum Signer<'a> {
    Ssh(&'a SshKey),
    Pgp(&'a PgpKey),
}

/// Commits everything, signed by `signer` through git's own signing, and returns the commit id.
fn signed_commit(repo: &Repo, message: &str, signer: Signer<'_>) -> String {
    git(repo.path(), &["add", "-A"]);
    let mut cmd = Command::new("git");
    cmd.current_dir(repo.path())
        .env("GIT_AUTHOR_NAME", "Alice")
        .env("GIT_AUTHOR_EMAIL", "alice@example.com")
        .env("GIT_COMMITTER_NAME", "Alice")
        .env("GIT_COMMITTER_EMAIL", "alice@example.com")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    match signer {
        Signer::Ssh(k) => {
            cmd.args(["-c", "gpg.format=ssh", "-c"]).arg(format!("user.signingkey={}", k.private.display()));
        }
        Signer::Pgp(k) => {
            cmd.env("GNUPGHOME", k.home.path())
                .args(["-c", "gpg.program=gpg", "-c"])
                .arg(format!("user.signingkey={}", k.fingerprint));
        }
    }
    let out = cmd.args(["commit", "-S", "-q", "--allow-empty", "-m", message]).output().unwrap();
    assert!(out.status.success(), "git commit -S: {}", String::from_utf8_lossy(&out.stderr));
    let id = git(repo.path(), &["rev-parse", "HEAD"]);
    // git's own verification agrees that the commit carries a signature.
    assert!(!git(repo.path(), &["cat-file", "commit", &id]).lines().all(|l| !l.starts_with("gpgsig")));
    id
}

/// A fleet repository whose state directory (`.patchops`, in the work tree, not tracked) trusts
/// `allowed_signers` lines and OpenPGP keys.
fn trusting(allowed_signers: &[String], pgp: &[&PgpKey]) -> Repo {
    let (repo, _key) = fleet_repo(1);
    std::fs::write(repo.path().join(".git/info/exclude"), ".patchops/\n.test-cache/\n").unwrap();
    let dir = repo.path().join(".patchops/commit-signers");
    std::fs::create_dir_all(&dir).unwrap();
    if !allowed_signers.is_empty() {
        std::fs::write(dir.join("allowed_signers"), allowed_signers.join("\n") + "\n").unwrap();
    }
    for (i, k) in pgp.iter().enumerate() {
        std::fs::write(dir.join(format!("key{i}.asc")), k.armored()).unwrap();
    }
    repo
}

fn allowed(principal: &str, key: &SshKey) -> String {
    format!("{principal} namespaces=\"git\" {}", key.public)
}

fn plan(repo: &Repo, extra: &[&str]) -> common::Run {
    let mut args = vec!["plan", "--path", "fleet"];
    args.extend_from_slice(extra);
    patchops(repo.path(), &args)
}

#[test]
fn ssh_signatures_admit_only_commits_an_allowed_signer_made() {
    let (alice, bob) = (ssh_key("alice"), ssh_key("bob"));
    let repo = trusting(&[allowed("alice@example.com", &alice)], &[]);

    // The initial commit is not signed: nothing acts on it.
    let unsigned = git(repo.path(), &["rev-parse", "HEAD"]);
    let run = plan(&repo, &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_contains(&run.stderr, &format!("commit {unsigned} (initial fleet) is not signed"));
    assert_contains(&run.stderr, "git commit -S");

    // Signed by alice: planned and applied, and the plan says who signed.
    signed_commit(&repo, "signed by alice", Signer::Ssh(&alice));
    let run = plan(&repo, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_contains(&run.stdout, &format!("signed by alice@example.com (ssh key {})", alice.fingerprint()));
    let run = plan(&repo, &["--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["fingerprints"]["signature"]["head"]["signer"], "alice@example.com");
    let run = patchops(repo.path(), &["apply", "--path", "fleet", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_contains(&run.stdout, "✓ publish app");
    let run = patchops(repo.path(), &["status", "--path", "fleet"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_contains(&run.stdout, &format!("commit signed by alice@example.com (ssh key {})", alice.fingerprint()));
    let run = patchops(repo.path(), &["history", "--format", "json"]);
    let history: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(
        history["records"][0]["commitSigner"]
            .as_str()
            .unwrap_or_default()
            .starts_with("alice@example.com (ssh key SHA256:"),
        "the audit names the commit's signer: {history:#}"
    );

    // Signed by bob, who is not an allowed signer: refused, naming his key.
    let by_bob = signed_commit(&repo, "signed by bob", Signer::Ssh(&bob));
    for args in [
        &["validate", "--path", "fleet"][..],
        &["plan", "--path", "fleet"],
        &["apply", "--path", "fleet", "--auto-approve"],
    ] {
        let (command, run) = (args[0], patchops(repo.path(), args));
        assert_eq!(run.code, 1, "{command}: {}", run.stdout);
        assert_contains(
            &run.stderr,
            &format!(
                "commit {by_bob} (signed by bob) is signed by SSH key {}, which is not an allowed signer",
                bob.fingerprint()
            ),
        );
    }

    // A commit alice signed, altered afterwards (its message rewritten, the signature kept).
    signed_commit(&repo, "signed by alice again", Signer::Ssh(&alice));
    let tampered = tamper(&repo, "signed by alice again");
    let run = plan(&repo, &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_contains(&run.stderr, &format!("commit {tampered} (signed by alice again, then altered): the signature by alice@example.com (SSH key {}) is not valid: it does not match the commit", alice.fingerprint()));
}

/// Rewrites HEAD's message, keeping its signature header, and points the branch at the result.
fn tamper(repo: &Repo, message: &str) -> String {
    let original = git(repo.path(), &["cat-file", "commit", "HEAD"]);
    let altered = original.replacen(message, &format!("{message}, then altered"), 1);
    assert_ne!(original, altered);
    let mut child = Command::new("git")
        .current_dir(repo.path())
        .args(["hash-object", "-t", "commit", "-w", "--stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(format!("{altered}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    git(repo.path(), &["update-ref", "refs/heads/main", &id]);
    id
}

#[test]
fn an_allowed_signers_line_restricts_namespaces_and_validity() {
    let alice = ssh_key("alice");
    let repo = trusting(&[format!("alice@example.com namespaces=\"file\" {}", alice.public)], &[]);
    signed_commit(&repo, "signed by alice", Signer::Ssh(&alice));
    let run = plan(&repo, &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_contains(&run.stderr, "alice@example.com may sign only in namespaces file");

    let repo = trusting(&[format!("alice@example.com valid-after=\"29990101\" {}", alice.public)], &[]);
    signed_commit(&repo, "signed by alice", Signer::Ssh(&alice));
    let run = plan(&repo, &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_contains(&run.stderr, "valid only after its valid-after time");

    // A malformed line is refused with its file and line, before anything is read.
    let repo = trusting(&["# trusted signers".into(), "alice@example.com ssh-ed25519 not-base64".into()], &[]);
    let run = plan(&repo, &[]);
    assert_eq!(run.code, 1);
    assert_contains(&run.stderr, "commit-signers/allowed_signers:2: not `[options] keytype base64 [comment]`");
}

#[test]
fn openpgp_signatures_verify_against_armored_public_keys() {
    let (alice, mallory) = (pgp_key("Alice <alice@example.com>"), pgp_key("Mallory <mallory@example.com>"));
    let repo = trusting(&[], &[&alice]);
    signed_commit(&repo, "signed by alice with gpg", Signer::Pgp(&alice));
    let run = plan(&repo, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_contains(&run.stdout, &format!("signed by Alice <alice@example.com> (openpgp key {})", alice.fingerprint));
    let run = patchops(repo.path(), &["apply", "--path", "fleet", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);

    // The signature comes from alice's signing subkey, and covers the whole commit.
    signed_commit(&repo, "signed by alice, once more", Signer::Pgp(&alice));
    let tampered = tamper(&repo, "signed by alice, once more");
    let run = plan(&repo, &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_contains(&run.stderr, &format!("commit {tampered} (signed by alice, once more, then altered): the signature by Alice <alice@example.com> (OpenPGP key {}) is not valid: it does not match the commit", alice.fingerprint));

    let by_mallory = signed_commit(&repo, "signed by mallory", Signer::Pgp(&mallory));
    let run = plan(&repo, &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_contains(&run.stderr, &format!("commit {by_mallory} (signed by mallory) is signed by OpenPGP key "));
    assert_contains(&run.stderr, "which is not an allowed signer");
}

#[test]
fn strict_mode_verifies_every_first_parent_commit_since_the_last_applied_one() {
    let alice = ssh_key("alice");
    let repo = trusting(&[allowed("alice@example.com", &alice)], &[]);
    let root = git(repo.path(), &["rev-parse", "HEAD"]);
    signed_commit(&repo, "first signed commit", Signer::Ssh(&alice));

    // Nothing applied yet: strict goes back to the root, which is not signed.
    let run = plan(&repo, &["--verify-commits", "strict"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_contains(&run.stderr, &format!("commit {root} (initial fleet) is not signed"));
    assert_contains(&run.stderr, "(strict mode)");
    // Head mode accepts it; applying records the commit.
    let run = patchops(repo.path(), &["apply", "--path", "fleet", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);

    // An unsigned commit slipped in between two signed ones.
    git(repo.path(), &["commit", "-q", "--allow-empty", "-m", "unsigned in between"]);
    let sneaked = git(repo.path(), &["rev-parse", "HEAD"]);
    signed_commit(&repo, "signed on top", Signer::Ssh(&alice));
    let run = plan(&repo, &[]);
    assert_eq!(run.code, 0, "head mode looks at the head only: {}", run.stderr);
    let run = plan(&repo, &["--verify-commits", "strict"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_contains(&run.stderr, &format!("commit {sneaked} (unsigned in between) is not signed"));

    // Once every commit since the last applied one is signed, strict admits it.
    git(repo.path(), &["reset", "-q", "--hard", "HEAD~2"]);
    signed_commit(&repo, "signed again", Signer::Ssh(&alice));
    signed_commit(&repo, "and again", Signer::Ssh(&alice));
    let run = plan(&repo, &["--verify-commits", "strict"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_contains(&run.stdout, "signed by alice@example.com");
}

#[test]
fn trust_roots_come_from_outside_the_commit_and_cannot_be_switched_off() {
    let (alice, bob) = (ssh_key("alice"), ssh_key("bob"));
    // Asking for verification without trust roots is an error, not a silent pass.
    let (bare, _k) = fleet_repo(1);
    let run = plan(&bare, &["--verify-commits", "head"]);
    assert_eq!(run.code, 1);
    assert_contains(&run.stderr, "there are no commit signers at .patchops/commit-signers");

    // A signers directory without a key is a mistake, not "signatures not required".
    let empty = trusting(&[], &[]);
    let run = plan(&empty, &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_contains(&run.stderr, "commit-signers: it holds no key");

    let repo = trusting(&[allowed("alice@example.com", &alice)], &[]);
    signed_commit(&repo, "signed by alice", Signer::Ssh(&alice));
    let run = plan(&repo, &["--verify-commits", "off"]);
    assert_eq!(run.code, 1);
    assert_contains(&run.stderr, "--verify-commits off is refused while they are there");
    // A directory (or --worktree) has no commit to verify.
    let run = plan(&repo, &["--worktree"]);
    assert_eq!(run.code, 1);
    assert_contains(&run.stderr, "commit signatures are required, but this is not a commit");

    // Bob commits his own key into the state directory's trust roots, and signs with it.
    std::fs::write(
        repo.path().join(".patchops/commit-signers/allowed_signers"),
        format!("{}\n{}\n", allowed("alice@example.com", &alice), allowed("bob@example.com", &bob)),
    )
    .unwrap();
    git(repo.path(), &["add", "-f", ".patchops/commit-signers/allowed_signers"]);
    signed_commit(&repo, "bob trusts himself", Signer::Ssh(&bob));
    let run = plan(&repo, &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_contains(&run.stderr, "is tracked by the repository being verified");
    assert_contains(&run.stderr, "has .patchops/commit-signers/allowed_signers");

    // Trust roots given on the command line, outside the repository, judge the same commit.
    let outside = tempfile::tempdir().unwrap();
    let file = outside.path().join("allowed_signers");
    std::fs::write(&file, allowed("alice@example.com", &alice) + "\n").unwrap();
    let run = plan(&repo, &["--commit-signers", file.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert_contains(&run.stderr, "which is not an allowed signer");
}

#[test]
fn the_daemon_acts_only_on_signed_commits() {
    let alice = ssh_key("alice");
    let repo = trusting(&[allowed("alice@example.com", &alice)], &[]);
    let once = ["run", "--path", "fleet", "--listen", "off", "--no-watch", "--max-cycles", "1"];
    let run = patchops(repo.path(), &once);
    assert_contains(&run.stderr, "is not signed");
    assert!(common::tenant_apps(repo.path()).is_empty(), "nothing was published from an unsigned commit");

    signed_commit(&repo, "signed by alice", Signer::Ssh(&alice));
    let run = patchops(repo.path(), &once);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!common::tenant_apps(repo.path()).is_empty(), "the signed commit was applied: {}", run.stderr);
}
