//! How a request script and its files reach the WSUS server and run there.
//!
//! A [`Transport`] stages the script and the files it names into a fresh folder on the server
//! and runs the script; it returns the script's exit code and output. Two exist:
//!
//! - [`SshTransport`] (a real server, `endpoint: ssh://HOST[:PORT]`): `ssh` creates the staging
//!   folder, `scp` copies the files, `ssh` runs `powershell.exe … -File script.ps1` (PowerShell
//!   checks a signed script's signature only when it runs from a file, so it is never piped).
//!   Host keys are checked against the user's `known_hosts` (`BatchMode=yes`: nothing prompts).
//! - [`HttpTransport`] (the emulator, `endpoint: embedded` or its URL): the same staging and run
//!   steps as `PUT …/staging/{id}/{name}` and `POST …/run`.

use std::path::{Path, PathBuf};

use crate::model::ObjectName;
use crate::platform::PlatformError;

/// One staged run: a script and the files it names.
#[derive(Debug)]
pub struct Run<'a> {
    /// A fresh id for the staging folder.
    pub id: String,
    /// The script's file name (`….ps1`).
    pub script_name: &'a str,
    /// The script's text.
    pub script: &'a str,
    /// Files to stage next to it: (name on the server, local path).
    pub files: Vec<(String, PathBuf)>,
}

/// What the script did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    /// Its exit code.
    pub exit_code: i32,
    /// Its standard output (one JSON line from patchops's scripts).
    pub stdout: String,
    /// Its standard error.
    #[serde(default)]
    pub stderr: String,
}

/// Runs request scripts on a WSUS server.
#[async_trait::async_trait]
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// Where it runs scripts, for messages (`ssh patchops@wsus01:22`).
    fn describe(&self) -> String;

    /// Stages the script and its files, runs it, and returns what it did. Transport failures
    /// (a connection refused, a copy that failed) are errors; a script that ran and failed is
    /// an [`Output`] with a non-zero exit code.
    async fn run(&self, run: Run<'_>) -> Result<Output, PlatformError>;
}

/// The emulator's endpoints for staging and running.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    platform: ObjectName,
    base: url::Url,
    http: reqwest::Client,
}

impl HttpTransport {
    /// A transport to the emulated server at `base`.
    pub fn new(platform: ObjectName, base: url::Url) -> Result<Self, PlatformError> {
        let http = crate::http::client()
            .map_err(|reason| PlatformError::Unavailable { platform: platform.clone(), cause: reason.into() })?;
        Ok(HttpTransport { platform, base, http })
    }

    fn transient(&self, operation: &str, reason: String) -> PlatformError {
        PlatformError::Transient {
            platform: self.platform.clone(),
            operation: operation.into(),
            reason,
            retry_after: None,
            throttled: false,
        }
    }

    fn url(&self, path: &str) -> Result<url::Url, PlatformError> {
        self.base.join(path).map_err(|e| PlatformError::Unavailable {
            platform: self.platform.clone(),
            cause: crate::vocab::because(format!("bad URL {}{path}", self.base), e),
        })
    }

    async fn put(&self, id: &str, name: &str, body: reqwest::Body) -> Result<(), PlatformError> {
        let operation = format!("staging {name}");
        let url = self.url(&format!("patchops/v1/staging/{id}/{}", urlencode(name)))?;
        let resp = self
            .http
            .put(url)
            .body(body)
            .send()
            .await
            .map_err(|e| self.transient(&operation, e.without_url().to_string()))?;
        if resp.status().is_success() {
            return Ok(());
        }
        let status = resp.status().as_u16();
        let message = resp.text().await.unwrap_or_default();
        Err(PlatformError::Rejected { platform: self.platform.clone(), operation, status, message })
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[async_trait::async_trait]
impl Transport for HttpTransport {
    fn describe(&self) -> String {
        crate::http::redact(&self.base)
    }

    async fn run(&self, run: Run<'_>) -> Result<Output, PlatformError> {
        for (name, path) in &run.files {
            let file = tokio::fs::File::open(path).await.map_err(|e| PlatformError::Failed {
                platform: self.platform.clone(),
                operation: format!("staging {name}"),
                cause: crate::vocab::because(format!("cannot read {}", path.display()), e),
            })?;
            self.put(&run.id, name, reqwest::Body::from(file)).await?;
        }
        self.put(&run.id, run.script_name, reqwest::Body::from(run.script.to_string())).await?;
        crate::failpoint::hit("wsus-after-stage");
        let body = serde_json::json!({ "id": run.id, "script": run.script_name });
        let resp = self
            .http
            .post(self.url("patchops/v1/run")?)
            .json(&body)
            .send()
            .await
            .map_err(|e| self.transient("running the script", e.without_url().to_string()))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.transient("running the script", e.without_url().to_string()))?;
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(PlatformError::Transient {
                platform: self.platform.clone(),
                operation: "running the script".into(),
                reason: format!("{status}: {text}"),
                retry_after: None,
                throttled: status.as_u16() == 429,
            });
        }
        if !status.is_success() {
            return Err(PlatformError::Rejected {
                platform: self.platform.clone(),
                operation: "running the script".into(),
                status: status.as_u16(),
                message: text.chars().take(300).collect(),
            });
        }
        serde_json::from_str(&text).map_err(|e| PlatformError::Failed {
            platform: self.platform.clone(),
            operation: "running the script".into(),
            cause: crate::vocab::because("the answer is not a script result", e),
        })
    }
}

/// `ssh`/`scp` to the server, as configured in the Platform's `wsus.transport`.
#[derive(Debug)]
pub struct SshTransport {
    platform: ObjectName,
    destination: String,
    port: Option<u16>,
    /// The private key (a private copy when it came from an environment variable).
    key: Option<crate::model::SecretFile>,
    settings: crate::model::kinds::WsusTransport,
    shell: Vec<String>,
}

impl SshTransport {
    /// A transport to `host` as `user`, with the key file `key` (if any) and `settings`; scripts
    /// run under `shell` (the script's path appended).
    pub fn new(
        platform: ObjectName,
        user: &str,
        host: &str,
        port: Option<u16>,
        key: Option<crate::model::SecretFile>,
        settings: crate::model::kinds::WsusTransport,
        shell: Vec<String>,
    ) -> Self {
        SshTransport { platform, destination: format!("{user}@{host}"), port, key, settings, shell }
    }

    fn base(&self, program: &[String], port_flag: &str) -> Result<tokio::process::Command, PlatformError> {
        let Some((first, rest)) = program.split_first() else {
            return Err(PlatformError::Unavailable {
                platform: self.platform.clone(),
                cause: "wsus.transport: a command is empty".into(),
            });
        };
        let mut c = tokio::process::Command::new(first);
        c.args(rest).stdin(std::process::Stdio::null()).kill_on_drop(true);
        if let Some(key) = &self.key {
            c.arg("-i").arg(key.path());
        }
        if let Some(port) = self.port {
            c.arg(port_flag).arg(port.to_string());
        }
        Ok(c)
    }

    async fn output(&self, what: &str, mut c: tokio::process::Command) -> Result<std::process::Output, PlatformError> {
        c.output().await.map_err(|e| PlatformError::Unavailable {
            platform: self.platform.clone(),
            cause: crate::vocab::because(format!("{what}: cannot run {:?}", c.as_std().get_program()), e),
        })
    }

    fn failed(&self, what: &str, out: &std::process::Output) -> PlatformError {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let words: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let words = words[words.len().saturating_sub(3)..].join("; ");
        let hint = if words.contains("Host key verification failed") {
            " — add the server's host key to known_hosts (for example `ssh-keyscan HOST >> ~/.ssh/known_hosts`, after checking its fingerprint)"
        } else if words.contains("Permission denied") {
            " — check auth.username and auth.sshKey, and that the key is in the account's authorized_keys on the server"
        } else {
            ""
        };
        let message = format!("{what} through {} failed ({}): {words}{hint}", self.describe(), out.status);
        // ssh exits 255 for its own failures (connection, authentication): worth retrying only
        // when the connection itself failed.
        if words.contains("Connection refused") || words.contains("timed out") || words.contains("Connection reset") {
            PlatformError::Transient {
                platform: self.platform.clone(),
                operation: what.into(),
                reason: message,
                retry_after: None,
                throttled: false,
            }
        } else {
            PlatformError::Failed { platform: self.platform.clone(), operation: what.into(), cause: message.into() }
        }
    }
}

#[async_trait::async_trait]
impl Transport for SshTransport {
    fn describe(&self) -> String {
        match self.port {
            Some(p) => format!("ssh {}:{p}", self.destination),
            None => format!("ssh {}", self.destination),
        }
    }

    async fn run(&self, run: Run<'_>) -> Result<Output, PlatformError> {
        let dir = format!("{}/{}", self.settings.staging_dir.trim_end_matches(['/', '\\']), run.id);
        let local = tempfile::tempdir().map_err(|e| PlatformError::Failed {
            platform: self.platform.clone(),
            operation: "staging".into(),
            cause: e.into(),
        })?;
        let script = local.path().join(run.script_name);
        std::fs::write(&script, run.script).map_err(|e| PlatformError::Failed {
            platform: self.platform.clone(),
            operation: "staging".into(),
            cause: e.into(),
        })?;

        let mut mkdir = self.base(&self.settings.command, "-p")?;
        let powershell = self.shell.first().map_or("powershell.exe", String::as_str);
        mkdir.arg(&self.destination).arg(format!(
            "{powershell} -NoProfile -NonInteractive -Command \"New-Item -ItemType Directory -Force -Path '{dir}' | Out-Null\""
        ));
        let out = self.output("creating the staging folder", mkdir).await?;
        if !out.status.success() {
            return Err(self.failed("creating the staging folder", &out));
        }

        let mut copy = self.base(&self.settings.copy_command, "-P")?;
        for (name, path) in &run.files {
            // scp names the target by its folder; a staged file keeps the name the SDP uses.
            let staged = local.path().join(name);
            if staged != *path {
                link_or_copy(path, &staged).map_err(|e| PlatformError::Failed {
                    platform: self.platform.clone(),
                    operation: format!("staging {name}"),
                    cause: e,
                })?;
            }
            copy.arg(&staged);
        }
        copy.arg(&script).arg(format!("{}:{dir}/", self.destination));
        let out = self.output("copying the request files", copy).await?;
        if !out.status.success() {
            return Err(self.failed("copying the request files", &out));
        }
        crate::failpoint::hit("wsus-after-stage");

        let mut exec = self.base(&self.settings.command, "-p")?;
        exec.arg(&self.destination);
        for part in &self.shell {
            exec.arg(part);
        }
        exec.arg(format!("{dir}/{}", run.script_name));
        let out = self.output("running the script", exec).await?;
        // ssh's own failures exit 255 with nothing on stdout; a script's failure prints its
        // JSON result first.
        if out.status.code() == Some(255) && out.stdout.is_empty() {
            return Err(self.failed("running the script", &out));
        }
        Ok(Output {
            exit_code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// A hard link to `from` at `to` (same file system), or a copy.
fn link_or_copy(from: &Path, to: &Path) -> Result<(), crate::vocab::Cause> {
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| crate::vocab::because(format!("cannot copy {} to {}", from.display(), to.display()), e))
}
