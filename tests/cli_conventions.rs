//! The conventions of the ecosystem (issue 15, item 3): shell completions, man pages checked with
//! groff, `--version` with the commit and build date, and global flags under their own heading.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use common::{patchops, workspace_root};

#[test]
fn completions_are_valid_scripts_for_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    let bash = patchops(dir.path(), &["completions", "bash"]);
    assert_eq!(bash.code, 0, "{}", bash.stderr);
    let script = dir.path().join("patchops.bash");
    std::fs::write(&script, &bash.stdout).unwrap();
    // bash itself checks the script's syntax.
    let check = common::tool("bash", "bash").arg("-n").arg(&script).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    for word in ["plan", "apply", "run", "catalog", "--detailed-exitcode", "--state-dir"] {
        common::assert_contains(&bash.stdout, word);
    }
    for (shell, marker) in
        [("zsh", "#compdef patchops"), ("fish", "complete -c patchops"), ("powershell", "Register-ArgumentCompleter")]
    {
        let run = patchops(dir.path(), &["completions", shell]);
        assert_eq!(run.code, 0, "{shell}: {}", run.stderr);
        common::assert_contains(&run.stdout, marker);
        common::assert_contains(&run.stdout, "detailed-exitcode");
    }
    let bad = patchops(dir.path(), &["completions", "tcsh"]);
    assert_eq!(bad.code, 2);
    common::assert_contains(&bad.stderr, "possible values: bash, elvish, fish, powershell, zsh");
}

#[test]
fn man_pages_cover_every_command_and_render_with_groff() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man");
    let run = patchops(dir.path(), &["man", "--out", out.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for page in [
        "patchops.1",
        "patchops-plan.1",
        "patchops-apply.1",
        "patchops-run.1",
        "patchops-status.1",
        "patchops-catalog-sign.1",
        "patchops-policy-test.1",
        "patchops-completions.1",
    ] {
        let path = out.join(page);
        assert!(path.is_file(), "{page} is missing");
        // groff renders it (-k: UTF-8 input through preconv, as man does) and says nothing is
        // wrong (-ww: all warnings).
        let render = common::tool("groff", "groff-base")
            .args(["-k", "-man", "-Tutf8", "-ww", "-P", "-cbou"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(render.status.success(), "{page}: {}", String::from_utf8_lossy(&render.stderr));
        assert!(render.stderr.is_empty(), "{page}: {}", String::from_utf8_lossy(&render.stderr));
        let text = String::from_utf8_lossy(&render.stdout);
        assert!(text.contains("NAME"), "{page}:\n{text}");
    }
    let plan = std::fs::read_to_string(out.join("patchops-plan.1")).unwrap();
    assert!(plan.contains("detailed\\-exitcode"), "{plan}");
}

#[test]
fn version_names_the_commit_and_the_build_date() {
    let dir = tempfile::tempdir().unwrap();
    let run = patchops(dir.path(), &["--version"]);
    assert_eq!(run.code, 0);
    let head = common::git(&workspace_root(), &["rev-parse", "--short=12", "HEAD"]);
    let line = run.stdout.trim();
    assert!(line.starts_with(&format!("patchops {} ({head}", env!("CARGO_PKG_VERSION"))), "{line}");
    let date = line.rsplit(' ').next().unwrap().trim_end_matches(')');
    assert!(chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok(), "{line}");
}

#[test]
fn global_flags_are_grouped_apart_from_each_commands_own() {
    let dir = tempfile::tempdir().unwrap();
    let run = patchops(dir.path(), &["plan", "--help"]);
    let (own, global) = run.stdout.split_once("Global options:").expect("a Global options heading");
    assert!(global.contains("--verbose") && global.contains("--color"), "{global}");
    assert!(!own.contains("--verbose") && !own.contains("--color <COLOR>"), "{own}");
    assert!(own.contains("--detailed-exitcode"));
}
