//! Issue 12, pull-request-driven change control, through the binary on real git repositories.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use common::{catalog, fleet_repo, git, patchops, sign};

// Item 1: read-only commands never change trust state.
#[test]
fn planning_a_branch_with_a_newer_catalog_does_not_make_mains_a_rollback() {
    let (repo, k) = fleet_repo(2);
    git(repo.path(), &["checkout", "-q", "-b", "new-catalog"]);
    let newer = catalog(9);
    repo.write("catalog/catalog.json", &newer);
    repo.write("catalog/catalog.json.minisig", sign(&k, newer.as_bytes()));
    repo.commit("catalog serial 9, on a branch");
    for command in ["validate", "plan"] {
        let run = patchops(repo.path(), &[command, "--path", "fleet", "--rev", "new-catalog"]);
        assert_eq!(run.code, 0, "{command}: {}", run.stderr);
    }
    // main (serial 2) still plans and applies: nothing recorded serial 9.
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--rev", "main"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = patchops(repo.path(), &["apply", "--path", "fleet", "--rev", "main", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    common::assert_contains(&run.stdout, "✓ publish app 2.0 on intune-prod / pilot");

    // Applying the branch records serial 9; from then on main's serial 2 is a rollback.
    let run = patchops(repo.path(), &["apply", "--path", "fleet", "--rev", "new-catalog", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let run = patchops(repo.path(), &["plan", "--path", "fleet", "--rev", "main"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "catalog serial 2 is lower than 9, already seen in the state directory");
}
