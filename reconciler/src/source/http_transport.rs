//! git's smart HTTP protocol (`http://` and `https://` remotes) for libgit2, carried by the
//! process's one HTTP client ([`crate::http`]: rustls with the platform's verifier, timeouts,
//! bounded redirects, the patchops user agent).
//!
//! libgit2 is built without its own HTTPS transport: that transport sets up OpenSSL at
//! libgit2's global initialisation and loads the system's CA bundle there, in every process,
//! whatever the repository (BENCHMARKS.md, issue 16). Here the roots are loaded on the first
//! certificate checked, as for every other HTTPS request patchops makes.
//!
//! The protocol is the stateless ("RPC") one of `gitprotocol-http(5)`: `GET
//! …/info/refs?service=git-upload-pack` for the advertisement, then one `POST
//! …/git-upload-pack` per negotiation round. Each request runs on a thread of its own with a
//! one-thread runtime (libgit2 calls in synchronously, from whatever thread fetches), and its
//! body flows back through a bounded channel, so memory stays small whatever the pack's size.
//! Only fetching is supported: patchops never pushes.
//!
//! Credentials: in the URL (`https://user:token@host/…`, sent as basic authentication and never
//! shown), or, when the server answers 401 to a URL without them, from git's credential helper
//! (`git config credential.helper`), as git itself would.

use std::io::{self, Read, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use git2::transport::{Service, SmartSubtransport, SmartSubtransportStream, Transport};

/// Most bytes one response may carry (a pack): a fleet repository is far smaller.
pub const MAX_RESPONSE_BYTES: u64 = 4 << 30;
/// Most bytes of one negotiation request (the wants and haves libgit2 writes).
const MAX_REQUEST_BYTES: usize = 64 << 20;
/// Chunks of a response buffered between its thread and libgit2's reads.
const CHANNEL_CHUNKS: usize = 8;

/// Registers the transport for `http` and `https`, once per process. Must run before the first
/// remote is made; `git::open_remote` calls it first.
pub(super) fn register() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            for scheme in ["http", "https"] {
                register_scheme(scheme)
                    .map_err(|e| format!("cannot register the git {scheme} transport: {}", e.message()))?;
            }
            Ok(())
        })
        .clone()
}

#[allow(unsafe_code)] // The one unsafe call of the workspace (ARCHITECTURE.md, invariants).
fn register_scheme(scheme: &str) -> Result<(), git2::Error> {
    // SAFETY: git2 asks that registering a transport be synchronised with the making of
    // transports (libgit2 keeps the registry in a plain global list). Every remote patchops
    // makes is made in `git::open_remote` after `register` has returned, and `register`'s
    // OnceLock holds any other thread there until the registration is complete.
    unsafe { git2::transport::register(scheme, factory) }
}

fn factory(remote: &git2::Remote<'_>) -> Result<Transport, git2::Error> {
    Transport::smart(remote, true, HttpTransport { session: Arc::default() })
}

/// One remote's fetch: the repository's URL (moved by a redirect of the advertisement) and the
/// credentials the helper gave, shared by its requests.
struct HttpTransport {
    session: Arc<Mutex<Session>>,
}

#[derive(Default)]
struct Session {
    base: Option<url::Url>,
    helper_credentials: Option<(String, String)>,
}

impl SmartSubtransport for HttpTransport {
    fn action(&self, url: &str, action: Service) -> Result<Box<dyn SmartSubtransportStream>, git2::Error> {
        let (method, suffix, content_type) = match action {
            Service::UploadPackLs => (
                reqwest::Method::GET,
                "info/refs?service=git-upload-pack",
                "application/x-git-upload-pack-advertisement",
            ),
            Service::UploadPack => (reqwest::Method::POST, "git-upload-pack", "application/x-git-upload-pack-result"),
            Service::ReceivePackLs | Service::ReceivePack => {
                return Err(git2::Error::from_str("patchops only fetches: pushing over http(s) is not supported"));
            }
        };
        let base = {
            let mut session =
                self.session.lock().map_err(|_| git2::Error::from_str("git http transport: poisoned state"))?;
            match &session.base {
                Some(b) => b.clone(),
                None => {
                    let parsed = url::Url::parse(url).map_err(|e| {
                        git2::Error::from_str(&format!("not a URL ({e}); write it as https://host/path"))
                    })?;
                    session.base = Some(parsed.clone());
                    parsed
                }
            }
        };
        Ok(Box::new(Stream {
            session: self.session.clone(),
            request: Some(Request { method, target: join(&base, suffix)?, base, content_type, body: Vec::new() }),
            response: None,
            chunk: bytes::Bytes::new(),
        }))
    }

    fn close(&self) -> Result<(), git2::Error> {
        Ok(())
    }
}

/// `base` + `/` + `suffix` (which may carry a query), keeping the base's credentials.
fn join(base: &url::Url, suffix: &str) -> Result<url::Url, git2::Error> {
    let mut text = base.as_str().trim_end_matches('/').to_string();
    if base.query().is_some() || base.fragment().is_some() {
        return Err(git2::Error::from_str(&format!(
            "{}: a repository URL takes no query or fragment",
            crate::http::redact(base)
        )));
    }
    text.push('/');
    text.push_str(suffix);
    url::Url::parse(&text).map_err(|e| git2::Error::from_str(&format!("{}: {e}", crate::http::redact(base))))
}

/// What one stream will send, until its first read sends it.
struct Request {
    method: reqwest::Method,
    target: url::Url,
    base: url::Url,
    content_type: &'static str,
    body: Vec<u8>,
}

enum Message {
    Data(bytes::Bytes),
    End,
    Failed(String),
}

/// One request and its response, as libgit2 reads and writes them.
struct Stream {
    session: Arc<Mutex<Session>>,
    request: Option<Request>,
    response: Option<mpsc::Receiver<Message>>,
    chunk: bytes::Bytes,
}

impl Write for Stream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let Some(request) = &mut self.request else {
            return Err(io::Error::other("git http transport: written to after the response began"));
        };
        if request.body.len() + data.len() > MAX_REQUEST_BYTES {
            return Err(io::Error::other(format!(
                "{}: the negotiation request is larger than {MAX_REQUEST_BYTES} bytes",
                crate::http::redact(&request.target)
            )));
        }
        request.body.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for Stream {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(request) = self.request.take() {
            self.response = Some(start(request, self.session.clone())?);
        }
        while self.chunk.is_empty() {
            let Some(rx) = &self.response else { return Ok(0) };
            match rx.recv() {
                Ok(Message::Data(data)) => self.chunk = data,
                Ok(Message::End) => {
                    self.response = None;
                    return Ok(0);
                }
                Ok(Message::Failed(why)) => {
                    self.response = None;
                    return Err(io::Error::other(why));
                }
                Err(mpsc::RecvError) => {
                    self.response = None;
                    return Err(io::Error::other("git http transport: the request's thread ended without an answer"));
                }
            }
        }
        let n = out.len().min(self.chunk.len());
        out[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

/// Sends `request` on a thread of its own and returns the channel its response flows through.
fn start(request: Request, session: Arc<Mutex<Session>>) -> io::Result<mpsc::Receiver<Message>> {
    let (tx, rx) = mpsc::sync_channel(CHANNEL_CHUNKS);
    std::thread::Builder::new().name("git-http".into()).spawn(move || {
        let shown = crate::http::redact(&request.target);
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Message::Failed(format!("{shown}: cannot start the request's runtime: {e}")));
                return;
            }
        };
        let message = runtime
            .block_on(transfer(&request, &session, &tx))
            .err()
            .map(|why| Message::Failed(format!("{shown}: {why}")));
        let _ = tx.send(message.unwrap_or(Message::End));
    })?;
    Ok(rx)
}

/// Sends the request (once more with the credential helper's answer after a 401) and streams
/// the body into `tx`. `Ok` once the whole body is sent; the reader may stop early.
async fn transfer(request: &Request, session: &Mutex<Session>, tx: &mpsc::SyncSender<Message>) -> Result<(), String> {
    let client = crate::http::client().map_err(|e| e.to_string())?;
    let helper = || session.lock().ok().and_then(|s| s.helper_credentials.clone());
    let mut response = send(&client, request, helper()).await?;
    let in_url = !request.target.username().is_empty();
    if response.status() == reqwest::StatusCode::UNAUTHORIZED && !in_url && helper().is_none() {
        if let Some(found) = credential_helper(&request.base) {
            if let Ok(mut s) = session.lock() {
                s.helper_credentials = Some(found.clone());
            }
            response = send(&client, request, Some(found)).await?;
        }
    }
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(format!(
            "HTTP {status}: the server refused the credentials{}; give them to git's credential helper \
             (`git config --global credential.helper …`) or in the URL (read from the environment, never \
             written in a file)",
            if in_url || helper().is_some() { " given" } else { " (none were given)" }
        ));
    }
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err("HTTP 404: no git repository there; check the URL".into());
    }
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    let got = response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if got.split(';').next().map(str::trim) != Some(request.content_type) {
        return Err(format!(
            "not a smart git HTTP server (Content-Type {got:?}, not {}): patchops reads only from servers that \
             speak git's smart protocol (git http-backend, GitHub, GitLab, Azure DevOps, Gitea …)",
            request.content_type
        ));
    }
    if request.method == reqwest::Method::GET {
        moved(session, &request.base, response.url());
    }
    let mut total = 0u64;
    while let Some(chunk) = response.chunk().await.map_err(|e| chain(&e.without_url()))? {
        total += chunk.len() as u64;
        if total > MAX_RESPONSE_BYTES {
            return Err(format!("the response is larger than {MAX_RESPONSE_BYTES} bytes"));
        }
        if tx.send(Message::Data(chunk)).is_err() {
            return Ok(()); // libgit2 stopped reading.
        }
    }
    Ok(())
}

async fn send(
    client: &reqwest::Client,
    request: &Request,
    credentials: Option<(String, String)>,
) -> Result<reqwest::Response, String> {
    let mut builder = client.request(request.method.clone(), request.target.clone()).header("Pragma", "no-cache");
    if request.method == reqwest::Method::POST {
        builder = builder
            .header(reqwest::header::CONTENT_TYPE, "application/x-git-upload-pack-request")
            .header(reqwest::header::ACCEPT, request.content_type)
            .body(request.body.clone());
    }
    if let Some((user, password)) = credentials {
        builder = builder.basic_auth(user, Some(password));
    }
    builder.send().await.map_err(|e| {
        let why = chain(&e.without_url());
        if why.contains("invalid peer certificate") {
            format!(
                "{why}; the server's certificate must chain to a root this machine trusts: add its CA to \
                 the system's store (update-ca-certificates), or point SSL_CERT_FILE at a bundle that holds it"
            )
        } else {
            why
        }
    })
}

/// After a redirect of the advertisement, the repository's new URL (git follows it for the
/// later requests too, when the redirected URL still ends in the advertisement's path).
fn moved(session: &Mutex<Session>, base: &url::Url, now: &url::Url) {
    let mut asked = base.clone();
    let _ = asked.set_username("");
    let _ = asked.set_password(None);
    let Some(stem) = now.as_str().split_once('?').map(|(s, _)| s).and_then(|s| s.strip_suffix("/info/refs")) else {
        return;
    };
    if stem == asked.as_str().trim_end_matches('/') {
        return;
    }
    let (Ok(mut new), Ok(mut s)) = (url::Url::parse(stem), session.lock()) else { return };
    tracing::info!(from = %crate::http::redact(&asked), to = %crate::http::redact(&new), "git repository moved");
    if new.origin() == base.origin() {
        // The same server: the URL's credentials go on with it.
        let _ = new.set_username(base.username());
        let _ = new.set_password(base.password());
    } else {
        // Another server gets no credentials meant for this one; its own come from the helper.
        s.helper_credentials = None;
    }
    s.base = Some(new);
}

/// git's credential helper's answer for `url` (without the credentials of a URL, which are used
/// as they are), or `None` when no helper is configured or it has none.
fn credential_helper(url: &url::Url) -> Option<(String, String)> {
    let config = git2::Config::open_default().ok()?;
    git2::CredentialHelper::new(url.as_str()).config(&config).execute()
}

/// An error with its causes, `: `-separated (reqwest's own message alone says only "error
/// sending request").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    let mut depth = 0;
    while let Some(cause) = next {
        depth += 1;
        if depth > 8 {
            break;
        }
        let shown = cause.to_string();
        if !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        next = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_made_under_the_repository_url() {
        let base = url::Url::parse("https://u:p@git.example/org/fleet.git/").unwrap();
        let t = join(&base, "info/refs?service=git-upload-pack").unwrap();
        assert_eq!(t.as_str(), "https://u:p@git.example/org/fleet.git/info/refs?service=git-upload-pack");
        assert_eq!(crate::http::redact(&t), "https://git.example/org/fleet.git/info/refs?REDACTED");
        assert!(join(&url::Url::parse("https://git.example/r?x=1").unwrap(), "git-upload-pack").is_err());
    }

    #[test]
    fn a_redirected_advertisement_moves_the_repository() {
        let session = Mutex::new(Session::default());
        let base = url::Url::parse("https://u:p@old.example/fleet.git").unwrap();
        moved(
            &session,
            &base,
            &url::Url::parse("https://old.example/fleet.git/info/refs?service=git-upload-pack").unwrap(),
        );
        assert!(session.lock().unwrap().base.is_none(), "not moved");
        moved(
            &session,
            &base,
            &url::Url::parse("https://new.example/a/fleet.git/info/refs?service=git-upload-pack").unwrap(),
        );
        assert_eq!(
            session.lock().unwrap().base.as_ref().map(url::Url::as_str),
            Some("https://new.example/a/fleet.git")
        );
        let same = Mutex::new(Session::default());
        moved(
            &same,
            &base,
            &url::Url::parse("https://old.example/b/fleet.git/info/refs?service=git-upload-pack").unwrap(),
        );
        assert_eq!(
            same.lock().unwrap().base.as_ref().map(url::Url::as_str),
            Some("https://u:p@old.example/b/fleet.git")
        );
        let other = Mutex::new(Session::default());
        moved(&other, &base, &url::Url::parse("https://new.example/login?next=x").unwrap());
        assert!(other.lock().unwrap().base.is_none(), "a redirect elsewhere is not a move");
    }
}
