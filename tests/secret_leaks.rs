//! Issue 14, "the suite that keeps it so": every command, run with `-vv` over a fleet that uses
//! every kind of secret (a client secret and a password from the environment, certificates and
//! keys from files and from the environment), never shows a secret value — not in any output,
//! log line, plan, audit record or file of the state directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use std::path::Path;
use std::process::Command;

const CLIENT_SECRET: &str = "cs-7f3a9c1e-never-shown-5b2d";
const CM_PASSWORD: &str = "cm-pw-41d8e6b2-never-shown";

/// The lines of the base64 body of every private key block in `pem`: any one of them in an
/// output would be a key leaking.
fn key_lines(pem: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in pem.lines() {
        if line.starts_with("-----BEGIN") && line.contains("PRIVATE KEY") {
            inside = true;
        } else if line.starts_with("-----END") {
            inside = false;
        } else if inside && line.len() >= 40 {
            out.push(line.to_string());
        }
    }
    out
}

fn run(dir: &Path, args: &[&str], script_pem: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_patchops"))
        .arg("-vv")
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env("XDG_CACHE_HOME", dir.join(".test-cache"))
        .env("PATCHOPS_TEST_CLIENT_SECRET", CLIENT_SECRET)
        .env("PATCHOPS_TEST_CM_PASSWORD", CM_PASSWORD)
        .env("PATCHOPS_TEST_SCRIPT_PEM", script_pem)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains("panicked"), "patchops {args:?} crashed:\n{text}");
    text
}

#[test]
fn no_command_shows_a_secret_in_any_output_plan_log_or_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::copy_dir(&common::workspace_root().join("examples"), &d.join("examples"));
    let script_pem = std::fs::read_to_string(d.join("examples/secrets/EXAMPLE-ONLY-script-signing.pem")).unwrap();
    // Every kind of reference: the password and a client secret from the environment, the
    // script-signing key from the environment (a PEM in a variable), the rest from files.
    let platforms = std::fs::read_to_string(d.join("examples/fleet/platforms.yaml")).unwrap();
    let platforms = platforms
        .replace("password: { file: examples/secrets/EXAMPLE-ONLY-configmgr-password }", "password: { env: PATCHOPS_TEST_CM_PASSWORD }")
        .replacen(
            "scriptSigningCertificate: { file: examples/secrets/EXAMPLE-ONLY-script-signing.pem }",
            "scriptSigningCertificate: { env: PATCHOPS_TEST_SCRIPT_PEM }",
            1,
        )
        + "---\napiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: intune-secret\nspec:\n  type: intune\n  endpoint: embedded\n  auth:\n    tenantId: 00000000-0000-0000-0000-000000000001\n    clientId: 00000000-0000-0000-0000-0000000000bb\n    clientSecret: { env: PATCHOPS_TEST_CLIENT_SECRET }\n";
    assert!(platforms.contains("PATCHOPS_TEST_CM_PASSWORD") && platforms.contains("PATCHOPS_TEST_SCRIPT_PEM"));
    std::fs::write(d.join("examples/fleet/platforms.yaml"), platforms).unwrap();
    common::git(d, &["init", "-q", "-b", "main"]);
    common::git(d, &["add", "-A"]);
    common::git(d, &["commit", "-q", "-m", "the example fleet, secrets by every kind of reference"]);

    let mut outputs = Vec::new();
    for args in [
        &["validate", "--path", "examples/fleet"][..],
        &["plan", "--path", "examples/fleet"],
        &["plan", "--path", "examples/fleet", "--format", "markdown"],
        &["plan", "--path", "examples/fleet", "--format", "json", "--out", "plan.json"],
        &["apply", "--path", "examples/fleet", "--auto-approve"],
        &["apply", "plan.json", "--path", "examples/fleet", "--auto-approve"],
        &["status", "--path", "examples/fleet"],
        &["history"],
        &["doctor", "--path", "examples/fleet"],
    ] {
        outputs.push((format!("patchops -vv {}", args.join(" ")), run(d, args, &script_pem)));
    }
    // The apply really ran (so its logs were seen), and the client secret was really read.
    assert!(outputs[4].1.contains("Apply complete"), "{}", outputs[4].1);
    for f in common::walk(&d.join(".patchops")).into_iter().chain([d.join("plan.json")]) {
        let bytes = std::fs::read(&f).unwrap();
        outputs.push((f.display().to_string(), String::from_utf8_lossy(&bytes).into_owned()));
    }

    let mut secrets: Vec<(String, String)> =
        vec![("the client secret".into(), CLIENT_SECRET.into()), ("the ConfigMgr password".into(), CM_PASSWORD.into())];
    for pem in ["EXAMPLE-ONLY-intune-app.pem", "EXAMPLE-ONLY-script-signing.pem", "EXAMPLE-ONLY-wsus-signing.pem"] {
        let text = std::fs::read_to_string(d.join("examples/secrets").join(pem)).unwrap();
        let lines = key_lines(&text);
        assert!(!lines.is_empty(), "{pem} has a private key");
        secrets.extend(lines.into_iter().map(|l| (format!("a line of the private key in {pem}"), l)));
    }
    let mut leaks = Vec::new();
    for (source, text) in &outputs {
        for (what, value) in &secrets {
            if text.contains(value.as_str()) {
                leaks.push(format!("{what} appears in {source}"));
            }
        }
    }
    leaks.dedup();
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    assert!(outputs.len() > 12, "the state directory was searched too");
}
