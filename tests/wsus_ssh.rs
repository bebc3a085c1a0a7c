//! The SSH transport to a WSUS server, over a real `sshd` on loopback started here with keys
//! made by `ssh-keygen`: `ssh` creates the staging folder, `scp` copies the signed request
//! script and its files, `ssh` runs the script with the server's PowerShell — here the emulated
//! WSUS server's own runner (`patchops emulate wsus --run`), which checks the signature and the
//! SDP and signs the CAB, since a Linux test machine has no Windows PowerShell.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;

use chrono::Utc;
use reconciler::authenticode::CodeSigner;
use reconciler::model::kinds::WsusTransport;
use reconciler::model::{ObjectName, SecretRef, Secrets};
use reconciler::platform::wsus::transport::SshTransport;
use reconciler::platform::wsus::WsusClient;
use reconciler::platform::{DesiredAssignment, DesiredObject, PlatformClient, ScriptSigning};

/// sshd on 127.0.0.1, killed when dropped.
struct Sshd {
    child: Child,
    port: u16,
    known_hosts: PathBuf,
    client_key: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let out = common::tool("ssh-keygen", "openssh-client")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn sshd(dir: &Path) -> Sshd {
    let (host_key, client_key) = (dir.join("host_key"), dir.join("client_key"));
    keygen(&host_key);
    keygen(&client_key);
    std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {host}\nAuthorizedKeysFile {keys}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile {pid}\nSubsystem sftp internal-sftp\nLogLevel ERROR\n",
            host = host_key.display(),
            keys = dir.join("authorized_keys").display(),
            pid = dir.join("sshd.pid").display()
        ),
    )
    .unwrap();
    // sshd running as root wants its privilege-separation directory.
    let _ = std::fs::create_dir_all("/run/sshd");
    let child = common::tool("/usr/sbin/sshd", "openssh-server")
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .spawn()
        .expect("start /usr/sbin/sshd (Debian package openssh-server)");
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let host_pub = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
    let known_hosts = dir.join("known_hosts");
    std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_pub}")).unwrap();
    Sshd { child, port, known_hosts, client_key }
}

fn user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn object() -> DesiredObject {
    let mut o = common::msi_object(
        "mozilla.firefox",
        "131.0.2",
        &[
            ("displayName", "Mozilla Firefox (x64)"),
            ("publisher", "Mozilla"),
            ("version", "131.0.2"),
            ("wsus.classification", "updates"),
        ],
    );
    o.description = "Firefox".into();
    o.product_name = "Mozilla Firefox".into();
    o
}

#[tokio::test]
async fn requests_reach_the_server_over_ssh_and_scp() {
    let dir = tempfile::tempdir().unwrap();
    let server = sshd(dir.path());
    let (wsus_pem, wsus_cert) = common::code_signing_certificate(dir.path(), "wsus");
    let (script_pem, _) = common::code_signing_certificate(dir.path(), "scripts");

    // The server's PowerShell: folders for `-Command New-Item`, and the emulated server's
    // runner for `-File` (AllSigned, trusting the script-signing certificate).
    let state = dir.path().join("wsus.json");
    let powershell = dir.path().join("powershell");
    std::fs::write(
        &powershell,
        format!(
            "#!/bin/sh\ncase \"$*\" in\n  *New-Item*) exec mkdir -p \"$(printf '%s' \"$*\" | sed -n \"s/.*-Path '\\([^']*\\)'.*/\\1/p\")\" ;;\nesac\nfor script; do :; done\nexec {patchops} emulate wsus --state {state} --signing-certificate {wsus} --group Pilot --all-signed-by {scripts} --run \"$script\"\n",
            patchops = env!("CARGO_BIN_EXE_patchops"),
            state = state.display(),
            wsus = wsus_pem.display(),
            scripts = script_pem.display(),
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&powershell, std::fs::Permissions::from_mode(0o755)).unwrap();

    let options = |tool: &str| {
        vec![
            tool.to_string(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", server.known_hosts.display()),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
        ]
    };
    let staging = dir.path().join("staging");
    let settings = WsusTransport {
        command: options("ssh"),
        copy_command: [options("scp"), vec!["-q".into()]].concat(),
        shell: vec![powershell.display().to_string(), "-File".into()],
        staging_dir: staging.display().to_string(),
    };
    let name = ObjectName::new("wsus-ssh").unwrap();
    let transport = || {
        let key = Secrets::with_env(|_| None).file(&SecretRef::File(server.client_key.display().to_string())).unwrap();
        let shell = settings.shell.clone();
        Arc::new(SshTransport::new(
            name.clone(),
            &user(),
            "127.0.0.1",
            Some(server.port),
            Some(key),
            settings.clone(),
            shell,
        ))
    };
    let signer =
        CodeSigner::new(&SecretRef::File(script_pem.display().to_string()), &Secrets::with_env(|_| None), Utc::now())
            .unwrap();
    let client = WsusClient::new(name.clone(), transport()).with_script_signing(ScriptSigning::Signed(signer));

    let o = object();
    let cache = tempfile::tempdir().unwrap();
    let content = common::verified(cache.path(), &common::example_msi("131.0.2").1);
    let id = client.create(&o, &content).await.unwrap();
    client.observe().await.unwrap();
    client
        .set_assignments(
            &id,
            &[DesiredAssignment { group: "Pilot".into(), fields: common::fields(&[("intent", "required")]) }],
        )
        .await
        .unwrap();
    let seen = client.observe().await.unwrap();
    assert_eq!(seen.objects.len(), 1);
    assert_eq!(seen.objects[0].id, id);
    assert_eq!(seen.objects[0].assignments[0].group, "Pilot");
    // The server signed the CAB with its certificate; the staging folders are gone.
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let cab = dir.path().join("wsus.content").join(s["updates"][&id]["cab"].as_str().unwrap());
    common::osslsigncode_verifies(&cab, &wsus_cert, &[]);
    reconciler::authenticode::verify(&cab, &wsus_cert, chrono::Utc::now())
        .expect("the CAB verifies through patchops too");
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0, "each request removed its staging folder");

    // An unsigned script is refused by the server's AllSigned policy, and said so.
    let unsigned = WsusClient::new(name.clone(), transport());
    let err = unsigned.observe().await.unwrap_err().to_string();
    common::assert_contains(&err, "is not digitally signed");

    // A host key that is not the known one is refused without a prompt, with the fix.
    std::fs::write(
        &server.known_hosts,
        format!(
            "[127.0.0.1]:{} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPpatchopsXwrongXkeyXforXtheXtestXXXXXXXXXX\n",
            server.port
        ),
    )
    .unwrap();
    let err = client.observe().await.unwrap_err().to_string();
    common::assert_contains(&err, "Host key verification failed");
    common::assert_contains(&err, "add the server's host key to known_hosts");
}
