//! Fleets fetched over git's smart HTTP protocol: a real `git http-backend` (CGI) behind a
//! loopback server, `socat` in front of it for TLS with a CA and server certificate made here by
//! `openssl`, and the real binary. The requests are patchops's own (its user agent, its TLS
//! verification), not libgit2's, which is built without an HTTPS transport (BENCHMARKS.md,
//! issue 16).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Request, Response, StatusCode};
use base64::Engine;
use common::{fleet_repo, git};

/// What `-vv` logs when the system's trusted roots are loaded (`http::LazyPlatformVerifier`).
const LOADING_ROOTS: &str = "loading the system's trusted roots for TLS";

/// What the server saw: method, path and query, user agent.
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

struct Backend {
    root: PathBuf,
    /// `user:password` the server wants as basic authentication, if any.
    wants: Option<String>,
    seen: Seen,
}

async fn http_backend(State(b): State<Arc<Backend>>, req: Request<Body>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let agent = parts.headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let target = parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default();
    b.seen.lock().unwrap().push((parts.method.to_string(), target, agent));
    if let Some(wants) = &b.wants {
        let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(wants));
        if parts.headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            return Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header("www-authenticate", "Basic realm=\"fleet\"")
                .body(Body::empty())
                .unwrap();
        }
    }
    let body = axum::body::to_bytes(body, 64 << 20).await.unwrap();
    let content_type = header(&parts.headers, "content-type");
    let mut child = tokio::process::Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", &b.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", content_type)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("git http-backend");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&body).await.unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "git http-backend: {}", String::from_utf8_lossy(&out.stderr));
    // CGI: header lines, a blank line, the body.
    let split = out.stdout.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
    let split = split.or_else(|| out.stdout.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let (at, gap) = split.expect("CGI headers");
    let mut response = Response::builder();
    for line in String::from_utf8_lossy(&out.stdout[..at]).lines() {
        let (name, value) = line.split_once(':').expect("a CGI header");
        if name.eq_ignore_ascii_case("status") {
            let code: u16 = value.trim().split(' ').next().unwrap().parse().unwrap();
            response = response.status(code);
        } else {
            response = response.header(name.trim(), value.trim());
        }
    }
    response.body(Body::from(out.stdout[at + gap..].to_vec())).unwrap()
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

/// A bare copy of a fleet repository served by `git http-backend` on loopback.
struct Served {
    _repo: common::Repo,
    _root: tempfile::TempDir,
    work: PathBuf,
    bare: PathBuf,
    /// `http://127.0.0.1:port`
    base: String,
    seen: Seen,
}

fn serve_fleet(wants: Option<&str>) -> Served {
    let (repo, _key) = fleet_repo(1);
    let root = tempfile::tempdir().unwrap();
    let bare = root.path().join("fleet.git");
    git(root.path(), &["clone", "-q", "--bare", repo.path().to_str().unwrap(), bare.to_str().unwrap()]);
    let seen = Seen::default();
    let backend =
        Arc::new(Backend { root: root.path().to_path_buf(), wants: wants.map(str::to_string), seen: seen.clone() });
    let app = axum::Router::new().fallback(http_backend).with_state(backend);
    let base = common::serve_on_loopback(app);
    Served { work: repo.path().to_path_buf(), _repo: repo, _root: root, bare, base, seen }
}

/// The binary with a home of its own (no git configuration but what the test writes), extra
/// environment, in `cwd`.
fn patchops_with(cwd: &Path, home: &Path, env: &[(&str, &str)], args: &[&str]) -> common::Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_patchops"));
    command
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", cwd.join(".test-cache"));
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("run patchops");
    common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn plan(cwd: &Path, home: &Path, env: &[(&str, &str)], url: &str) -> (common::Run, serde_json::Value) {
    let run = patchops_with(cwd, home, env, &["plan", "--repo", url, "--path", "fleet", "--format", "json"]);
    let v = serde_json::from_str(&run.stdout).unwrap_or(serde_json::Value::Null);
    (run, v)
}

#[test]
fn a_fleet_is_fetched_over_smart_http_with_patchops_own_client_and_refetched() {
    let served = serve_fleet(None);
    let (cwd, home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let url = format!("{}/fleet.git", served.base);
    let (run, v) = plan(cwd.path(), home.path(), &[], &url);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let first = git(&served.bare, &["rev-parse", "HEAD"]);
    // Plain http never loads the system's trusted roots (it costs tens of milliseconds).
    let verbose = patchops_with(cwd.path(), home.path(), &[], &["-vv", "validate", "--repo", &url]);
    assert_eq!(verbose.code, 0, "{}", verbose.stderr);
    assert!(!verbose.stderr.contains(LOADING_ROOTS), "{}", verbose.stderr);
    assert_eq!(v["fingerprints"]["source"]["commit"], serde_json::json!(first));
    assert_eq!(v["fingerprints"]["source"]["repo"], serde_json::json!(url));
    {
        let seen = served.seen.lock().unwrap();
        assert!(
            seen.iter().any(|(m, t, _)| m == "GET" && t == "/fleet.git/info/refs?service=git-upload-pack"),
            "{seen:?}"
        );
        assert!(seen.iter().any(|(m, t, _)| m == "POST" && t == "/fleet.git/git-upload-pack"), "{seen:?}");
        assert!(seen.iter().all(|(_, _, ua)| ua.starts_with("patchops/")), "every request is patchops's own: {seen:?}");
    }
    // A new commit on the server is fetched by the next run.
    std::fs::remove_file(served.work.join("fleet/products/app.yaml")).unwrap();
    git(&served.work, &["add", "-A"]);
    git(
        &served.work,
        &["-c", "user.name=T", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "remove the app"],
    );
    git(&served.work, &["push", "-q", served.bare.to_str().unwrap(), "HEAD:main"]);
    let (run, v) = plan(cwd.path(), home.path(), &[], &url);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let second = git(&served.bare, &["rev-parse", "HEAD"]);
    assert_ne!(first, second);
    assert_eq!(v["fingerprints"]["source"]["commit"], serde_json::json!(second));
}

#[test]
fn a_missing_repository_and_a_server_that_is_not_git_are_named() {
    let served = serve_fleet(None);
    let (cwd, home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let run =
        patchops_with(cwd.path(), home.path(), &[], &["validate", "--repo", &format!("{}/nothing.git", served.base)]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    common::assert_contains(&run.stderr, "nothing.git/info/refs?REDACTED: HTTP 404: no git repository there");
    // A plain web server (the fleet's files, say) is no git server.
    let plain = common::serve_on_loopback(axum::Router::new().fallback(|| async { "<html>hello</html>" }));
    let run = patchops_with(cwd.path(), home.path(), &[], &["validate", "--repo", &format!("{plain}/fleet.git")]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    common::assert_contains(&run.stderr, "not a smart git HTTP server");
}

#[test]
fn credentials_come_from_the_url_or_git_s_credential_helper_and_are_never_shown() {
    let served = serve_fleet(Some("patchops:s3cret-token"));
    let (cwd, home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let url = format!("{}/fleet.git", served.base);
    // None given: refused, with what to do.
    let run = patchops_with(cwd.path(), home.path(), &[], &["validate", "--repo", &url]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    common::assert_contains(&run.stderr, "HTTP 401 Unauthorized: the server refused the credentials (none were given)");
    common::assert_contains(&run.stderr, "credential helper");
    // Wrong ones in the URL: refused, and not shown.
    let wrong = url.replacen("http://", "http://patchops:wrong-token@", 1);
    let run = patchops_with(cwd.path(), home.path(), &[], &["validate", "--repo", &wrong]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    common::assert_contains(&run.stderr, "refused the credentials given");
    assert!(!run.stderr.contains("wrong-token"), "{}", run.stderr);
    // Right ones in the URL.
    let right = url.replacen("http://", "http://patchops:s3cret-token@", 1);
    let run = patchops_with(cwd.path(), home.path(), &[], &["validate", "--repo", &right]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("s3cret"), "{}", run.stderr);
    // From git's credential helper, as git would.
    std::fs::write(
        home.path().join(".gitconfig"),
        "[credential]\n\thelper = \"!f() { echo username=patchops; echo password=s3cret-token; }; f\"\n",
    )
    .unwrap();
    let other = tempfile::tempdir().unwrap();
    let run = patchops_with(other.path(), home.path(), &[], &["validate", "--repo", &url]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("s3cret"), "{}", run.stderr);
}

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = common::tool("openssl", "openssl").args(args).current_dir(dir).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA and a server certificate for 127.0.0.1 that it signed: (CA file, cert+key file).
fn certificates(dir: &Path, ca: &str) -> (PathBuf, PathBuf) {
    let subj = format!("/CN={ca}");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
            "-days",
            "2",
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    let mut both = std::fs::read(dir.join("server.pem")).unwrap();
    both.extend(std::fs::read(dir.join("server.key")).unwrap());
    std::fs::write(dir.join("server-both.pem"), both).unwrap();
    (dir.join(format!("{ca}.pem")), dir.join("server-both.pem"))
}

/// `socat` terminating TLS on a free loopback port and forwarding to `to` (`127.0.0.1:port`).
struct Tls {
    child: Child,
    port: u16,
}

impl Drop for Tls {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tls_in_front(to: &str, cert: &Path) -> Tls {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = common::tool("socat", "socat")
        .arg(format!("OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,verify=0,cert={}", cert.display()))
        .arg(format!("TCP:{to}"))
        .stderr(Stdio::null())
        .spawn()
        .expect("socat");
    let tls = Tls { child, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "socat did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    tls
}

#[test]
fn https_is_verified_against_the_system_s_trusted_roots_and_a_stranger_is_refused() {
    let served = serve_fleet(None);
    let certs = tempfile::tempdir().unwrap();
    let (ca, server) = certificates(certs.path(), "fleet-test-ca");
    let tls = tls_in_front(served.base.trim_start_matches("http://"), &server);
    let url = format!("https://127.0.0.1:{}/fleet.git", tls.port);
    let (cwd, home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // The machine's roots (SSL_CERT_FILE stands in for the system bundle) hold the CA: fetched.
    let trusted = [("SSL_CERT_FILE", ca.to_str().unwrap())];
    let (run, v) = plan(cwd.path(), home.path(), &trusted, &url);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Loaded once for the process, however many requests (the advertisement, the pack).
    let verbose = patchops_with(cwd.path(), home.path(), &trusted, &["-vv", "validate", "--repo", &url]);
    assert_eq!(verbose.code, 0, "{}", verbose.stderr);
    assert_eq!(verbose.stderr.matches(LOADING_ROOTS).count(), 1, "{}", verbose.stderr);
    assert_eq!(v["fingerprints"]["source"]["commit"], serde_json::json!(git(&served.bare, &["rev-parse", "HEAD"])));
    // Roots without it: the server's certificate is refused, nothing is read.
    let stranger = tempfile::tempdir().unwrap();
    let (other_ca, _) = certificates(stranger.path(), "some-other-ca");
    let before = served.seen.lock().unwrap().len();
    let other = tempfile::tempdir().unwrap();
    let run = patchops_with(
        other.path(),
        home.path(),
        &[("SSL_CERT_FILE", other_ca.to_str().unwrap())],
        &["validate", "--repo", &url],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    common::assert_contains(&run.stderr, "invalid peer certificate: UnknownIssuer");
    common::assert_contains(&run.stderr, "add its CA to the system's store");
    assert_eq!(served.seen.lock().unwrap().len(), before, "no request got through");
}
