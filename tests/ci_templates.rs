//! The CI templates in `examples/ci/` (issue 12, item 7): the `patchops` commands each one
//! runs — on a pull request, then on the merge — run here in the same order, on a real
//! repository with a branch and a merge, against the embedded Intune emulator.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use common::{fleet_repo, git, tenant_apps, v, workspace_root};

/// The `patchops` command lines of a template, for the pull request and for the merge: the
/// lines (YAML list items included) that start with `patchops `, split at the templates'
/// `# --- on merge ---` marker.
fn commands(template: &str) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(workspace_root().join("examples/ci").join(template)).unwrap();
    let (pr, merge) = text.split_once("# --- on merge ---").expect("a merge section");
    let pr = pr.split_once("# --- on pull request ---").expect("a pull request section").1;
    let lines = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| l.trim().trim_start_matches("- ").trim())
            .filter(|l| l.starts_with("patchops "))
            .map(str::to_string)
            .collect()
    };
    (lines(pr), lines(merge))
}

/// Runs a template's command line in `dir` as the CI job would: through the shell, with the
/// binary on PATH and the template's variables.
fn run(dir: &std::path::Path, line: &str) -> (i32, String, String) {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_patchops")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = common::tool("sh", "dash")
        .args(["-c", line])
        .current_dir(dir)
        .env("PATH", path)
        .env("PATCHOPS_PATH", "fleet")
        .env("PATCHOPS_STATE_DIR", dir.join(".patchops"))
        .env("PATCHOPS_CACHE_DIR", dir.join(".cache"))
        .env("NO_COLOR", "1")
        // What each CI service sets on a pull request: the branch it targets.
        .env("GITHUB_BASE_REF", "main")
        .env("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main")
        .env("SYSTEM_PULLREQUEST_TARGETBRANCH", "refs/heads/main")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn pull_request_then_merge(template: &str) {
    let (pr, merge) = commands(template);
    assert!(pr.iter().any(|c| c.starts_with("patchops plan")), "{template}: {pr:?}");
    assert!(merge.iter().any(|c| c.starts_with("patchops apply")), "{template}: {merge:?}");

    let (repo, _key) = fleet_repo(1);
    let dir = repo.path();
    // The pull request: a branch that pins the app to 1.0.
    git(dir, &["checkout", "-q", "-b", "pin"]);
    let app = "fleet/products/app.yaml";
    let text = std::fs::read_to_string(dir.join(app)).unwrap();
    repo.write(app, text.replace("version: latest", "version: \"1.0\""));
    repo.commit("pin the app to 1.0");
    // The CI checkout has the target branch as a remote-tracking branch.
    git(dir, &["update-ref", "refs/remotes/origin/main", "main"]);
    for line in &pr {
        let (code, stdout, stderr) = run(dir, line);
        assert_eq!(code, 0, "{template}: `{line}`:\n{stdout}\n{stderr}");
    }
    let comment = std::fs::read_to_string(dir.join("plan.md")).expect("the plan comment");
    common::assert_contains(&comment, "**This change: 1 to publish");
    common::assert_contains(&comment, "| 🟢 publish | `app` | `intune-prod` | pilot | 1.0 |");
    let plan: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("plan.json")).unwrap()).unwrap();
    assert_eq!(plan["actions"][0]["version"], "1.0");
    assert_eq!(tenant_apps(dir), vec![], "a pull request changes nothing");

    // The merge: main gets the change, and the merged commit is applied.
    git(dir, &["checkout", "-q", "main"]);
    git(dir, &["merge", "-q", "--no-ff", "-m", "Merge pin", "pin"]);
    for line in &merge {
        let (code, stdout, stderr) = run(dir, line);
        assert_eq!(code, 0, "{template}: `{line}`:\n{stdout}\n{stderr}");
    }
    assert_eq!(tenant_apps(dir), vec![v("1.0", &["sg-pilot"])], "{template}");
}

#[test]
fn github_actions_template() {
    pull_request_then_merge("github-actions.yml");
}

#[test]
fn gitlab_ci_template() {
    pull_request_then_merge("gitlab-ci.yml");
}

#[test]
fn azure_pipelines_template() {
    pull_request_then_merge("azure-pipelines.yml");
}
