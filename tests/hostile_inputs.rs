//! Issue 14, "bound every input": a table of hostile inputs, each run through the real binary
//! under an address-space limit (`ulimit -v`, 1 GB for all but one row), asserting a clear error that names the file
//! and the bound, an exit code of 1 (never a crash, a hang or an abort), and that nothing was
//! written to the state directory or any platform.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{fleet_repo, Repo};

/// What a row does to a fresh test fleet (committed as `fleet_repo` makes it) before running.
type Setup = fn(&Repo, &common::Key);

struct Row {
    name: &'static str,
    /// The address-space limit it runs under, in KiB (`ulimit -v`).
    limit_kb: u64,
    setup: Setup,
    args: &'static [&'static str],
    /// Every one of these must appear in stderr.
    expect: &'static [&'static str],
}

const CATALOG_SOURCE: &str = "apiVersion: patchops.io/v1alpha1\nkind: CatalogSource\nmetadata:\n  name: vendor\nspec:\n  url: URL\n  trustedKeys:\n    - RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3\n";

fn catalog_source_at(repo: &Repo, url: &str) {
    repo.write("fleet/catalog.yaml", CATALOG_SOURCE.replace("URL", url));
    repo.commit("catalog elsewhere");
}

/// Re-signs the test catalog with the installer of vendor.app 2.0 at `location`.
fn installer_at(repo: &Repo, key: &common::Key, location: &str) {
    let catalog = common::catalog(1).replace("installers/vendor.app-2.0.msi", location);
    repo.write("catalog/catalog.json", &catalog);
    repo.write("catalog/catalog.json.minisig", common::sign(key, catalog.as_bytes()));
    repo.commit("installer elsewhere");
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            name: "sequences nested 40,000 deep (80 KB)",
            limit_kb: 1_000_000,
            setup: |r, _| {
                r.write("fleet/deep.yaml", "- ".repeat(40_000) + "x\n");
                r.commit("deep");
            },
            args: &["validate", "--path", "fleet"],
            expect: &["deep.yaml:1:", "nest deeper than 64 levels"],
        },
        Row {
            name: "flow sequences nested 40,000 deep",
            limit_kb: 1_000_000,
            setup: |r, _| {
                r.write(
                    "fleet/deep.yaml",
                    format!("kind: Product\nspec: {}{}\n", "[".repeat(40_000), "]".repeat(40_000)),
                );
                r.commit("deep");
            },
            args: &["validate", "--path", "fleet"],
            expect: &["deep.yaml:", "YAML syntax error"],
        },
        Row {
            name: "a soak of 500000 years",
            limit_kb: 1_000_000,
            setup: |r, _| {
                r.write(
                    "fleet/rollout.yaml",
                    "apiVersion: patchops.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: standard\nspec:\n  rings:\n    - name: pilot\n      soak: 500000years\n      groups:\n        - { platform: intune-prod, group: { name: sg-pilot } }\n    - name: broad\n      groups:\n        - { platform: intune-prod, group: { name: sg-broad } }\n",
                );
                r.commit("long soak");
            },
            args: &["plan", "--path", "fleet"],
            expect: &["rollout.yaml:", "longer than ten years"],
        },
        Row {
            name: "a maintenance window of 500000 years",
            limit_kb: 1_000_000,
            setup: |r, _| {
                r.write(
                    "fleet/rollout.yaml",
                    "apiVersion: patchops.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: standard\nspec:\n  maintenanceWindows:\n    - { start: \"20:00\", duration: 500000years }\n  rings:\n    - name: pilot\n      groups:\n        - { platform: intune-prod, group: { name: sg-pilot } }\n",
                );
                r.commit("long window");
            },
            args: &["plan", "--path", "fleet"],
            expect: &["rollout.yaml:", "longer than ten years"],
        },
        Row {
            name: "a 9 MiB fleet file",
            limit_kb: 1_000_000,
            setup: |r, _| {
                r.write("fleet/huge.yaml", "---\n".repeat(9 << 18));
                r.commit("huge");
            },
            args: &["validate", "--path", "fleet"],
            expect: &["huge.yaml is larger than 8388608 bytes", "raise --max-file-mib"],
        },
        Row {
            name: "a fleet over --max-fleet-mib",
            limit_kb: 1_000_000,
            setup: |r, _| {
                for i in 0..3 {
                    r.write(&format!("fleet/big-{i}.yaml"), format!("# {}\n", "x".repeat(600 << 10)));
                }
                r.commit("big");
            },
            args: &["validate", "--path", "fleet", "--max-fleet-mib", "1"],
            expect: &["the fleet's documents together is larger than 1048576 bytes", "raise --max-fleet-mib"],
        },
        Row {
            name: "a file of 500,000 empty documents (2 MB of ---)",
            limit_kb: 1_000_000,
            setup: |r, _| {
                r.write("fleet/empty.yaml", "---\n".repeat(500_000));
                r.commit("empty documents");
            },
            args: &["validate", "--path", "fleet"],
            expect: &["empty.yaml:", "more than 20000 documents"],
        },
        Row {
            name: "a fleet file that is not UTF-8",
            limit_kb: 1_000_000,
            setup: |r, _| {
                r.write("fleet/latin1.yaml", b"kind: Product\n# caf\xe9\n".as_slice());
                r.commit("latin-1");
            },
            args: &["validate", "--path", "fleet"],
            expect: &["latin1.yaml", "not UTF-8 text"],
        },
        Row {
            name: "a YAML alias bomb",
            limit_kb: 1_000_000,
            setup: |r, _| {
                let mut s = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
                for (i, c) in ('b'..='j').enumerate() {
                    let prev = (b'a' + i as u8) as char;
                    s += &format!("{c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n");
                }
                // Policy parameters are free-form: the one place a bomb could be expanded.
                r.write("fleet/bomb.yaml", format!("apiVersion: patchops.io/v1alpha1\nkind: PolicySet\nmetadata:\n  name: bomb\nspec:\n  parameters:\n    bomb:\n      {}", s.trim_end().replace('\n', "\n      ")));
                r.commit("bomb");
            },
            args: &["validate", "--path", "fleet"],
            expect: &["bomb.yaml:", "repetition limit exceeded"],
        },
        Row {
            name: "catalog file:///dev/zero",
            limit_kb: 1_000_000,
            setup: |r, _| catalog_source_at(r, "file:///dev/zero"),
            args: &["validate", "--path", "fleet"],
            expect: &["file:///dev/zero", "not a regular file (a device)"],
        },
        Row {
            name: "catalog a FIFO (URL)",
            limit_kb: 1_000_000,
            setup: |r, _| {
                mkfifo(&r.path().join("catalog.fifo"));
                let url = format!("file://{}", r.path().join("catalog.fifo").display());
                catalog_source_at(r, &url);
            },
            args: &["validate", "--path", "fleet"],
            expect: &["catalog.fifo", "not a regular file (a FIFO)"],
        },
        Row {
            name: "catalog a FIFO in the work tree (--worktree)",
            limit_kb: 1_000_000,
            setup: |r, _| {
                std::fs::remove_file(r.path().join("catalog/catalog.json")).unwrap();
                mkfifo(&r.path().join("catalog/catalog.json"));
            },
            args: &["validate", "--path", "fleet", "--worktree"],
            expect: &["catalog/catalog.json", "not a regular file (a FIFO)"],
        },
        Row {
            name: "catalog a symbolic link to /dev/zero in the work tree",
            limit_kb: 1_000_000,
            setup: |r, _| {
                std::fs::remove_file(r.path().join("catalog/catalog.json")).unwrap();
                std::os::unix::fs::symlink("/dev/zero", r.path().join("catalog/catalog.json")).unwrap();
            },
            args: &["validate", "--path", "fleet", "--worktree"],
            expect: &["catalog/catalog.json", "is a symbolic link"],
        },
        Row {
            name: "catalog a committed symbolic link",
            limit_kb: 1_000_000,
            setup: |r, _| {
                std::fs::rename(r.path().join("catalog/catalog.json"), r.path().join("catalog/real.json")).unwrap();
                std::os::unix::fs::symlink("real.json", r.path().join("catalog/catalog.json")).unwrap();
                r.commit("a link");
            },
            args: &["validate", "--path", "fleet"],
            expect: &["catalog/catalog.json", "is a symbolic link"],
        },
        Row {
            name: "--worktree --path leaving the repository",
            limit_kb: 1_000_000,
            setup: |_, _| {},
            args: &["validate", "--path", "../../etc", "--worktree"],
            expect: &["fleet path `../../etc` leaves the repository"],
        },
        Row {
            name: "--path leaving the repository (git mode)",
            limit_kb: 1_000_000,
            setup: |_, _| {},
            args: &["validate", "--path", "fleet/../../x"],
            expect: &["leaves the repository"],
        },
        Row {
            name: "a fleet policy that iterates 400 million times",
            limit_kb: 1_000_000,
            setup: |r, _| {
                r.write(
                    "fleet/slow.rego",
                    "package patchops.policy.slow\n\nimport rego.v1\n\ndeny contains msg if {\n    n := count([1 | some x in numbers.range(1, 20000); some y in numbers.range(1, 20000); x > y])\n    n < 0\n    msg := \"never\"\n}\n",
                );
                r.write(
                    "fleet/policies.yaml",
                    "apiVersion: patchops.io/v1alpha1\nkind: PolicySet\nmetadata:\n  name: slow\nspec:\n  modules: [slow.rego]\n",
                );
                r.commit("a slow policy");
            },
            args: &["validate", "--path", "fleet"],
            expect: &["policy `slow` failed on publish app to intune-prod (ring pilot): rule `deny` ran longer than 2 seconds and was stopped"],
        },
        Row {
            name: "a fleet policy that builds an array of 300 million numbers",
            // regorus reserves the whole 7.2 GB array at once: the address space must allow it
            // for the memory guard, not the allocator, to be what stops it.
            limit_kb: 16_000_000,
            setup: |r, _| {
                r.write(
                    "fleet/big.rego",
                    "package patchops.policy.big\n\nimport rego.v1\n\ndeny contains msg if {\n    n := count(numbers.range(1, 300000000))\n    n < 0\n    msg := \"never\"\n}\n",
                );
                r.write(
                    "fleet/policies.yaml",
                    "apiVersion: patchops.io/v1alpha1\nkind: PolicySet\nmetadata:\n  name: big\nspec:\n  modules: [big.rego]\n",
                );
                r.commit("a policy that allocates without end");
            },
            args: &["validate", "--path", "fleet"],
            expect: &["policy `big` used more than 1024 MiB of memory while evaluating, and patchops stopped"],
        },
        Row {
            name: "an allow-list of 20,000 vendors quoted in every denial",
            limit_kb: 1_000_000,
            setup: |r, _| {
                let vendors: Vec<String> = (0..20_000).map(|i| format!("vendor-{i}")).collect();
                r.write(
                    "fleet/policies.yaml",
                    format!("apiVersion: patchops.io/v1alpha1\nkind: PolicySet\nmetadata:\n  name: strict\nspec:\n  parameters:\n    vendor_allowlist:\n      vendors: [{}]\n", vendors.join(", ")),
                );
                r.commit("a long allow-list");
            },
            args: &["validate", "--path", "fleet"],
            expect: &["denied by policy vendor_allowlist: vendor \"Vendor\" of vendor.app is not on the allow-list (vendor-0, ", "more characters)"],
        },
        Row {
            name: "an installer on ftp://",
            limit_kb: 1_000_000,
            setup: |r, k| installer_at(r, k, "ftp://downloads.example.invalid/app.msi"),
            args: &["validate", "--path", "fleet"],
            expect: &["`vendor.app` 2.0: the catalog's installer location ftp://downloads.example.invalid/app.msi uses the unsupported scheme `ftp:`"],
        },
        Row {
            name: "an installer at an absolute path",
            limit_kb: 1_000_000,
            setup: |r, k| installer_at(r, k, "/etc/passwd"),
            args: &["validate", "--path", "fleet"],
            expect: &["the catalog's installer location /etc/passwd is an absolute path"],
        },
        Row {
            name: "an installer that is /dev/zero",
            limit_kb: 1_000_000,
            setup: |r, k| installer_at(r, k, "file:///dev/zero"),
            args: &["apply", "--path", "fleet", "--auto-approve"],
            expect: &["refused file:///dev/zero after 0 of 9728 bytes", "file:///dev/zero: it is not a regular file (a device)"],
        },
        Row {
            name: "an emulator asked to listen beyond loopback",
            limit_kb: 1_000_000,
            setup: |_, _| {},
            args: &["emulate", "intune", "--listen", "0.0.0.0:0", "--state", "tenant.json"],
            expect: &["--listen 0.0.0.0:0 is not a loopback address", "pass --allow-remote"],
        },
        Row {
            name: "a catalog path that climbs out of the repository",
            limit_kb: 1_000_000,
            setup: |r, _| catalog_source_at(r, "../../../../../../etc/passwd"),
            args: &["validate", "--path", "fleet"],
            expect: &["`../../../../../../etc/passwd` leaves the repository"],
        },
        Row {
            name: "a policy module path that climbs out of the repository",
            limit_kb: 1_000_000,
            setup: |r, _| {
                r.write(
                    "fleet/policies.yaml",
                    "apiVersion: patchops.io/v1alpha1\nkind: PolicySet\nmetadata:\n  name: outside\nspec:\n  modules: [../../../../../../etc/x.rego]\n",
                );
                r.commit("a module outside");
            },
            args: &["validate", "--path", "fleet"],
            expect: &["module `../../../../../../etc/x.rego` is not in the fleet's commit (looked for a path outside the repository)"],
        },
        Row {
            name: "an installer path that climbs out of the repository",
            limit_kb: 1_000_000,
            setup: |r, k| installer_at(r, k, "../../../../../../etc/passwd"),
            args: &["apply", "--path", "fleet", "--auto-approve"],
            expect: &["installer path ../../../../../../etc/passwd leaves the repository"],
        },
        Row {
            name: "a secret file that is a FIFO",
            limit_kb: 1_000_000,
            setup: |r, _| {
                mkfifo(&r.path().join("secret.fifo"));
                r.write(
                    "fleet/platforms.yaml",
                    format!("apiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: intune-prod\nspec:\n  type: intune\n  endpoint: embedded\n  auth:\n    tenantId: 00000000-0000-0000-0000-000000000001\n    clientId: 00000000-0000-0000-0000-000000000002\n    clientSecret: {{ file: {} }}\n", r.path().join("secret.fifo").display()),
                );
                r.commit("secret from a FIFO");
            },
            args: &["plan", "--path", "fleet"],
            expect: &["secret.fifo", "not a regular file (a FIFO)"],
        },
    ]
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().is_ok_and(|s| s.success());
    assert!(ok, "mkfifo (coreutils) is needed for this test");
}

/// Runs the binary under an address-space limit (KiB) with a 60 s deadline; returns its exit
/// code and what it printed (stderr, then stdout).
fn run_bounded(dir: &Path, args: &[&str], limit_kb: u64) -> (Option<i32>, String, Duration) {
    let mut line = format!("ulimit -v {limit_kb}; exec {}", env!("CARGO_BIN_EXE_patchops"));
    for a in args {
        line += &format!(" '{a}'");
    }
    let started = Instant::now();
    let mut child = Command::new("sh")
        .args(["-c", &line])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env("XDG_CACHE_HOME", dir.join(".test-cache"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let reader = std::thread::spawn(move || {
        let err = err.join().unwrap_or_default();
        err + &out.join().unwrap_or_default()
    });
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code(), reader.join().unwrap(), started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            return (None, format!("hung: still running after 60 s\n{}", reader.join().unwrap()), started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_hostile_input_is_refused_clearly_within_bounds_and_writes_nothing() {
    let mut failures = Vec::new();
    for row in rows() {
        let (repo, key) = fleet_repo(1);
        (row.setup)(&repo, &key);
        let (code, stderr, took) = run_bounded(repo.path(), row.args, row.limit_kb);
        let missing: Vec<&&str> = row.expect.iter().filter(|e| !stderr.contains(**e)).collect();
        // An apply whose one action fails exits 1 as well; the rows expect that failure.
        if code != Some(1) || !missing.is_empty() {
            failures
                .push(format!("{}: exit {code:?} after {took:?}, missing {missing:?} in stderr:\n{stderr}", row.name));
        }
        for crash in ["panicked", "overflowed its stack", "memory allocation", "fatal runtime error"] {
            if stderr.contains(crash) {
                failures.push(format!("{}: crashed ({crash})", row.name));
            }
        }
        // Nothing recorded, nothing published.
        let state = repo.path().join(".patchops");
        for written in ["emulate", "content"] {
            let files = common::walk(&state.join(written));
            let platform_objects =
                written == "content" || files.iter().any(|f| f.extension().is_some_and(|e| e == "json"));
            if !files.is_empty() && platform_objects {
                failures.push(format!("{}: wrote {files:?}", row.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
