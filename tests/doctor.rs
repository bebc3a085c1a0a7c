//! `patchops doctor` on a copy of the example fleet after it was applied: each broken link of
//! the WSUS trust chain is named, with the error the emulated Windows client reports, and the
//! links before it still pass.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use common::{assert_contains, patchops, Run};

/// The example (fleet, catalog, secrets) copied into a plain directory, applied once.
struct Applied {
    dir: tempfile::TempDir,
}

impl Applied {
    fn new() -> Applied {
        let dir = tempfile::tempdir().unwrap();
        common::copy_dir(&common::workspace_root().join("examples"), &dir.path().join("examples"));
        let a = Applied { dir };
        let run = a.run(&["apply", "--auto-approve"]);
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        assert_contains(&run.stdout, "✓ publish chrome 131.0.6778.86 on wsus-hq / pilot");
        a
    }

    fn run(&self, args: &[&str]) -> Run {
        let state = self.dir.path().join("state").display().to_string();
        let base = ["--repo", ".", "--path", "examples/fleet", "--state-dir", &state];
        patchops(self.dir.path(), &[args, &base].concat())
    }

    fn doctor(&self) -> Run {
        self.run(&["doctor", "--platform", "wsus-hq"])
    }

    /// Rewrites the WSUS platform's `trust.clients` lines.
    fn edit_platforms(&self, from: &str, to: &str) {
        let path = self.dir.path().join("examples/fleet/platforms.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{from:?} not in platforms.yaml");
        std::fs::write(&path, text.replace(from, to)).unwrap();
    }
}

const ROOTS: &str = "      trustedRoots: [{ file: examples/secrets/EXAMPLE-ONLY-wsus-signing.cer }]\n";
const PUBLISHERS: &str = "      trustedPublishers: [{ file: examples/secrets/EXAMPLE-ONLY-wsus-signing.cer }]\n";

#[test]
fn a_self_signed_certificate_missing_from_trusted_root_is_the_failing_link() {
    let a = Applied::new();
    let ok = a.doctor();
    assert_eq!(ok.code, 0, "{}", ok.stdout);
    a.edit_platforms(ROOTS, "");
    let run = a.doctor();
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_contains(&run.stdout, "✓ clients: Trusted Publishers: holds the server's signing certificate");
    assert_contains(
        &run.stdout,
        "✗ clients: Trusted Root (the certificate is self-signed): does not hold the server's signing certificate",
    );
    assert_contains(
        &run.stdout,
        "fix: a self-signed WSUS certificate must also be in Local Computer\\Trusted Root Certification Authorities",
    );
    assert_contains(&run.stdout, "✓ client: CAB signature: signed, and the bytes are the ones signed");
    assert_contains(
        &run.stdout,
        "✗ client: signer's chain ends in Trusted Root: /CN=patchops EXAMPLE-ONLY WSUS signing (serial ",
    );
    assert_contains(&run.stdout, "is self-signed and not in Trusted Root Certification Authorities; a self-signed WSUS certificate must be there as well as in Trusted Publishers (0x800B0109)");
    assert_contains(&run.stdout, "✗ trial install of Google Chrome (x64) 131.0.6778.86: the emulated client refuses it at `client: signer's chain ends in Trusted Root`");
    assert_contains(&run.stdout, "doctor: a trust link fails on wsus-hq");
}

#[test]
fn clients_trusting_another_certificate_refuse_the_update_as_not_a_trusted_publisher() {
    let a = Applied::new();
    // Clients hold some other publisher's certificate in Trusted Publishers.
    a.edit_platforms(
        PUBLISHERS,
        "      trustedPublishers: [{ file: examples/secrets/EXAMPLE-ONLY-script-signing.pem }]\n",
    );
    let run = a.doctor();
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_contains(&run.stdout, "✗ clients: Trusted Publishers: does not hold the server's signing certificate");
    assert_contains(&run.stdout, "✓ client: signer's chain ends in Trusted Root");
    assert_contains(
        &run.stdout,
        "✗ client: signer is in Trusted Publishers: /CN=patchops EXAMPLE-ONLY WSUS signing (serial ",
    );
    assert_contains(&run.stdout, "is not in the Local Computer's Trusted Publishers store; deploy the WSUS signing certificate there (0x800B0109 then 0x8024B303)");
}

#[test]
fn clients_without_the_intranet_signed_updates_policy_install_nothing() {
    let a = Applied::new();
    a.edit_platforms("acceptTrustedPublisherCerts: true", "acceptTrustedPublisherCerts: false");
    let run = a.doctor();
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_contains(&run.stdout, "✗ clients: allow signed updates from an intranet server: the policy is off: clients install Microsoft-signed updates only");
    assert_contains(&run.stdout, "AcceptTrustedPublisherCerts = 1");
    assert_contains(
        &run.stdout,
        "✗ client: policy: allow signed updates from an intranet update service: the policy is off",
    );
    assert_contains(&run.stdout, "(0x800B0004)");
}

#[test]
fn a_cab_altered_after_signing_is_refused_by_the_client() {
    let a = Applied::new();
    let content = a.dir.path().join("state/emulate/wsus-hq.content");
    let cabs: Vec<_> =
        common::walk(&content).into_iter().filter(|p| p.extension().is_some_and(|x| x == "cab")).collect();
    assert!(!cabs.is_empty(), "published CABs");
    for cab in cabs {
        // A byte of the compressed installer, well inside the signed range.
        let mut bytes = std::fs::read(&cab).unwrap();
        let middle = bytes.len() / 3;
        bytes[middle] ^= 0x55;
        std::fs::write(&cab, bytes).unwrap();
    }
    let run = a.doctor();
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_contains(&run.stdout, "✗ client: CAB signature: the CAB was changed after it was signed (its digest does not match the signature) (0x80096010)");
}

#[test]
fn an_expired_signing_certificate_fails_at_the_server_and_on_the_client() {
    let a = Applied::new();
    // Eleven years on, the example's ten-year certificate has expired.
    let later = chrono::Utc::now() + chrono::Duration::days(11 * 366);
    let source = reconciler::source::SourceOptions {
        repo: a.dir.path().display().to_string(),
        rev: None,
        path: "examples/fleet".into(),
        worktree: false,
        cache_dir: a.dir.path().join("cache"),
        limits: Default::default(),
    };
    let ctx = reconciler::context::Context::new(
        reconciler::state::StateDir::new(a.dir.path().join("state")),
        reconciler::model::Secrets::with_env(|_| None),
    );
    // Certificates judged as of eleven years on.
    let options = reconciler::ops::DoctorOptions { platform: Some("wsus-hq".into()), at: Some(later) };
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Secrets are referenced relative to where patchops runs: the copy's root.
    let reports = in_dir(a.dir.path(), || rt.block_on(reconciler::ops::doctor(&ctx, &source, &options))).unwrap();
    let checks = &reports[0].checks;
    let find =
        |link: &str| checks.iter().find(|c| c.link == link).unwrap_or_else(|| panic!("no {link} in {checks:#?}"));
    let server = find("server: certificate fit to sign code");
    assert_eq!(server.verdict, reconciler::doctor::Verdict::Fail);
    assert_contains(server.fix.as_deref().unwrap(), "it is valid from ");
    assert_contains(server.fix.as_deref().unwrap(), "only; renew it and reference the new one");
    let client = find("client: certificate valid (or signature timestamped)");
    assert_eq!(client.verdict, reconciler::doctor::Verdict::Fail);
    assert_contains(&client.detail, "certificate has expired; the signature has no timestamp");
    assert_contains(&client.detail, "(0x800B0101)");
}

#[test]
fn a_server_signing_with_another_certificate_than_the_fleet_expects_is_named() {
    let a = Applied::new();
    // The WSUS server, reached by URL like a real one, signs with the example certificate; the
    // fleet says it should sign with the script-signing one.
    let state = a.dir.path().join("wsus-url.json");
    let mut options = reconciler::emulate::EmulatorOptions::default();
    options.wsus.signing_pem = Some(a.dir.path().join("examples/secrets/EXAMPLE-ONLY-wsus-signing.pem"));
    let server = std::sync::Arc::new(reconciler::emulate::wsus::Emulator::open(&state, options.wsus).unwrap());
    let url = common::serve_on_loopback(reconciler::emulate::wsus::router(server));
    a.edit_platforms(
        "  endpoint: embedded\n  wsus:\n",
        &format!("  endpoint: {url}/\n  auth: {{ username: patchops }}\n  wsus:\n"),
    );
    a.edit_platforms(
        "    executionPolicy: allSigned\n    scriptSigningCertificate: { file: examples/secrets/EXAMPLE-ONLY-script-signing.pem }\n",
        "",
    );
    a.edit_platforms(
        "signingCertificate: { file: examples/secrets/EXAMPLE-ONLY-wsus-signing.pem }",
        "signingCertificate: { file: examples/secrets/EXAMPLE-ONLY-script-signing.pem }",
    );
    let run = a.doctor();
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_contains(&run.stdout, "✓ transport: ran a request script on the server");
    assert_contains(
        &run.stdout,
        "✗ server: the certificate the fleet expects: the server signs with CN=patchops EXAMPLE-ONLY WSUS signing (",
    );
    assert_contains(&run.stdout, "not with the certificate in file:examples/secrets/EXAMPLE-ONLY-script-signing.pem");
    assert_contains(&run.stdout, "? trial install: no update published by patchops on this server yet");
}

/// Runs `f` with the process's working directory at `dir` (tests in this file that do so are
/// serialised by the lock).
fn in_dir<T>(dir: &std::path::Path, f: impl FnOnce() -> T) -> T {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _held = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let before = std::env::current_dir().unwrap();
    std::env::set_current_dir(dir).unwrap();
    let out = f();
    std::env::set_current_dir(before).unwrap();
    out
}

#[test]
fn an_adminservice_account_without_the_roles_it_needs_is_named_by_doctor() {
    let a = Applied::new();
    // The site, reached by URL like a real SMS Provider, knows the account with one role only.
    let mut options = reconciler::emulate::EmulatorOptions::default();
    options.configmgr.site_id = "5F3E0A11-7C2B-4D1E-9A8F-0123456789AB".into();
    options.configmgr.admins = vec![reconciler::emulate::configmgr::Admin {
        logon: "CONTOSO\\svc-patchops".into(),
        password: "EXAMPLE-ONLY-not-a-secret".into(),
        roles: vec!["Read-only Analyst".into()],
    }];
    let site =
        reconciler::emulate::configmgr::Emulator::open(&a.dir.path().join("site.json"), options.configmgr).unwrap();
    let url = common::serve_on_loopback(reconciler::emulate::configmgr::router(std::sync::Arc::new(site)));
    let share = a.dir.path().join("share").display().to_string();
    a.edit_platforms(
        "  endpoint: embedded\n  auth:\n    username: CONTOSO",
        &format!("  endpoint: {url}/AdminService\n  configmgr:\n    contentShare: {{ unc: '\\\\cm01\\patchops', localPath: {share} }}\n  auth:\n    username: CONTOSO"),
    );
    let run = a.run(&["doctor", "--platform", "configmgr-hq"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_contains(&run.stdout, "✓ AdminService: signed in as CONTOSO\\svc-patchops");
    assert_contains(&run.stdout, "✗ role: create and manage applications: CONTOSO\\svc-patchops has Read-only Analyst");
    assert_contains(&run.stdout, "fix: add the security role Application Author (or Application Administrator) to CONTOSO\\svc-patchops in Administration > Security > Administrative Users");
    assert_contains(&run.stdout, "✗ role: deploy applications: CONTOSO\\svc-patchops has Read-only Analyst");
}

/// The test fleet on a remote emulated tenant (`groups` in its directory, `extra` on its
/// command line), committed.
fn fleet_on_remote_tenant(groups: &[&str], extra: &[&str]) -> (common::Repo, common::Key, common::RemoteTenant) {
    let (repo, key) = common::fleet_repo(1);
    let (tenant, platform) = common::remote_tenant(repo.path(), groups, extra);
    repo.write("fleet/platforms.yaml", platform);
    repo.commit("a tenant reached by URL");
    (repo, key, tenant)
}

// Issue 13, item 5: the groups a fleet names on Intune are looked up by doctor, read-only, as
// plan does; a group the directory does not have is named before a plan needs it.
#[test]
fn doctor_looks_up_the_named_intune_groups_in_the_directory() {
    // A tenant whose directory has sg-pilot but not sg-broad.
    let (repo, _k, _tenant) = fleet_on_remote_tenant(&["sg-pilot"], &[]);
    let missing = patchops(repo.path(), &["doctor", "--path", "fleet"]);
    // Now with both groups in the directory: the lookup passes and shows the ids.
    repo.write(
        "fleet/rollout.yaml",
        "apiVersion: patchops.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: standard\nspec:\n  rings:\n    - name: pilot\n      groups:\n        - { platform: intune-prod, group: { name: sg-pilot } }\n",
    );
    repo.commit("only the pilot ring");
    let found = patchops(repo.path(), &["doctor", "--path", "fleet"]);
    assert_eq!(missing.code, 1, "{}\n{}", missing.stdout, missing.stderr);
    assert_contains(&missing.stdout, "directory: named groups");
    assert_contains(&missing.stdout, "the tenant has no group whose displayName is `sg-broad`");
    assert_contains(&missing.stdout, "Group.Read.All");
    assert_eq!(found.code, 0, "{}\n{}", found.stdout, found.stderr);
    assert_contains(&found.stdout, "directory: named groups");
    assert_contains(&found.stdout, "sg-pilot = ");
}

// Looking groups up by name needs a directory permission: without Group.Read.All (or
// GroupMember.Read.All) Graph answers 403, and doctor and plan say which permission to grant.
#[test]
fn a_missing_group_read_permission_is_named_by_doctor_and_plan() {
    let (repo, _k, _tenant) =
        fleet_on_remote_tenant(&["sg-pilot", "sg-broad"], &["--permission", "DeviceManagementApps.ReadWrite.All"]);
    let doctor = patchops(repo.path(), &["doctor", "--path", "fleet"]);
    let plan = patchops(repo.path(), &["plan", "--path", "fleet"]);
    assert_eq!(doctor.code, 1, "{}\n{}", doctor.stdout, doctor.stderr);
    assert_contains(&doctor.stdout, "directory: named groups");
    assert_contains(&doctor.stdout, "Insufficient privileges to complete the operation.");
    assert_contains(&doctor.stdout, "Group.Read.All");
    assert_eq!(plan.code, 1, "{}\n{}", plan.stdout, plan.stderr);
    assert_contains(&plan.stderr, "403");
    assert_contains(
        &plan.stderr,
        "grant the app registration the Microsoft Graph application permission Group.Read.All",
    );
}

#[test]
fn doctor_asks_the_time_stamping_authority_for_a_test_timestamp() {
    let a = Applied::new();
    let signing =
        "    scriptSigningCertificate: { file: examples/secrets/EXAMPLE-ONLY-script-signing.pem }\n    # What";
    a.edit_platforms(signing, &signing.replace("    # What", "    timestampUrl: http://127.0.0.1:9/tsa\n    # What"));
    let run = a.doctor();
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_contains(&run.stdout, "✗ script signing: time-stamping authority: signing a doctor's test script with");
    assert_contains(&run.stdout, "POST http://127.0.0.1:9/tsa");
    assert_contains(&run.stdout, "check trust.timestampUrl");

    let (url, _) = common::time_stamping_authority(a.dir.path());
    a.edit_platforms("http://127.0.0.1:9/tsa", &url);
    let run = a.doctor();
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_contains(
        &run.stdout,
        &format!("✓ script signing: time-stamping authority: {url} timestamped a test signature"),
    );
}
