//! Trust-chain link 2: installer content, downloaded in one streaming pass into a
//! content-addressed cache, and usable only once its SHA-256 and size match the catalog.
//!
//! [`ContentCache::fetch`] is the only way to a [`VerifiedContent`]: every byte is hashed and
//! counted as it is written to a temporary file in the cache directory, and the file is renamed
//! to its digest only when both match. A mismatching, oversized, truncated, stalled or
//! redirect-looping download is refused, and its temporary file is removed: nothing of it stays
//! in the cache. Cached content is hashed again before it is handed out.
//!
//! Memory stays flat in installer size: the download is streamed in chunks (HTTP) or read in
//! fixed-size blocks (`file://`).

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::Digest;

use crate::catalog::Sha256;
use crate::http::{redact, Timeouts};

pub(crate) mod direct;

/// How much of a local file (or of bytes from the fleet's commit) is read at a time: a whole
/// pipeline block, so each read fills one.
const READ: usize = direct::BLOCK;

/// What the catalog says a file must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// SHA-256 of the whole file.
    pub sha256: Sha256,
    /// Exact size in bytes.
    pub size: u64,
}

/// Why content was refused or could not be fetched. URLs are shown without their query.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// The bytes are not the ones the catalog describes.
    #[error("{url}: SHA-256 is {actual}, but the catalog says {expected}; the download was discarded (the file changed upstream or was tampered with)")]
    DigestMismatch {
        /// Where it came from.
        url: String,
        /// The catalog's digest.
        expected: Sha256,
        /// The digest of what arrived.
        actual: Sha256,
    },
    /// More bytes than the catalog's size.
    #[error("{url}: more than the {expected} bytes the catalog says; the download was stopped and discarded")]
    Oversized {
        /// Where it came from.
        url: String,
        /// The catalog's size.
        expected: u64,
    },
    /// Fewer bytes than the catalog's size.
    #[error("{url}: the download ended after {received} of {expected} bytes and was discarded")]
    Truncated {
        /// Where it came from.
        url: String,
        /// The catalog's size.
        expected: u64,
        /// What arrived.
        received: u64,
    },
    /// The server answered with an error status.
    #[error("{url}: HTTP {status}")]
    Status {
        /// Where it came from.
        url: String,
        /// The status.
        status: u16,
    },
    /// The transfer stalled longer than the read timeout.
    #[error("{url}: no data for {}; the transfer was abandoned and discarded", crate::vocab::duration::readable(*.after))]
    Stalled {
        /// Where it came from.
        url: String,
        /// The read timeout.
        after: std::time::Duration,
    },
    /// The transfer kept trickling, slower than the minimum rate over a whole window.
    #[error("{url}: {received} bytes in the last {}, slower than the minimum of {min_rate} bytes/s; the transfer was abandoned and discarded (a stalled or hostile server)", crate::vocab::duration::readable(*.window))]
    TooSlow {
        /// Where it came from.
        url: String,
        /// Bytes received in the window.
        received: u64,
        /// The window.
        window: std::time::Duration,
        /// The minimum rate, bytes per second.
        min_rate: u64,
    },
    /// Too many redirects (a redirect loop).
    #[error("{url}: more than {limit} redirects (a redirect loop?); nothing was downloaded")]
    RedirectLoop {
        /// Where it came from.
        url: String,
        /// The redirect limit.
        limit: usize,
    },
    /// Any other transport failure.
    #[error("{url}: {cause}")]
    Transport {
        /// Where it came from.
        url: String,
        /// What failed.
        #[source]
        cause: crate::vocab::Cause,
    },
    /// The URL's scheme is not supported.
    #[error("{url}: unsupported scheme (use https://, http:// or file://)")]
    Scheme {
        /// The URL.
        url: String,
    },
    /// The cache could not be read or written.
    #[error("content cache {path}: {reason}")]
    Cache {
        /// The file or directory.
        path: String,
        /// What failed.
        reason: String,
    },
}

impl ContentError {
    /// CamelCase reason for conditions and JSON.
    pub fn reason(&self) -> &'static str {
        match self {
            ContentError::DigestMismatch { .. } => "DigestMismatch",
            ContentError::Oversized { .. } | ContentError::Truncated { .. } => "SizeMismatch",
            ContentError::Status { .. }
            | ContentError::Stalled { .. }
            | ContentError::TooSlow { .. }
            | ContentError::RedirectLoop { .. }
            | ContentError::Transport { .. }
            | ContentError::Scheme { .. } => "DownloadFailed",
            ContentError::Cache { .. } => "CacheFailed",
        }
    }
}

/// Installer bytes on disk whose SHA-256 and size matched the catalog.
///
/// Only [`ContentCache`] makes one (no public constructor, no `Deserialize`): packagers and
/// platforms take `&VerifiedContent`, never a bare path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedContent {
    path: PathBuf,
    sha256: Sha256,
    size: u64,
}

impl VerifiedContent {
    /// The file in the cache (read-only by convention: it is addressed by its digest).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its SHA-256.
    pub fn sha256(&self) -> Sha256 {
        self.sha256
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// The stall rule of downloads: a transfer that receives fewer than `bytes_per_sec` on average
/// over any whole `window` is abandoned, so a server sending a byte now and then (never long
/// enough apart to trip the read timeout) cannot hold apply and its lock for hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    /// The minimum average rate.
    pub bytes_per_sec: u64,
    /// Over how long it is measured.
    pub window: std::time::Duration,
}

impl Default for MinRate {
    /// 16 KiB/s over a minute: a dial-up modem passes, a trickle does not.
    fn default() -> Self {
        MinRate { bytes_per_sec: 16 << 10, window: std::time::Duration::from_secs(60) }
    }
}

/// A content-addressed cache of verified installers: `<root>/sha256/<hex>`.
#[derive(Debug, Clone)]
pub struct ContentCache {
    root: PathBuf,
    timeouts: Timeouts,
    min_rate: MinRate,
    progress: std::sync::Arc<dyn Progress>,
}

/// Blocks of [`direct::BLOCK`] bytes shared by the receiving, hashing and writing stages: the
/// pipeline's whole buffer, so memory stays flat (16 MiB) however fast the network is compared
/// with the disk, and the receiving side waits for a free block when both are behind.
const POOL: usize = 16;

/// The hashing and writing stages behind a download.
struct Writer {
    /// The block being filled.
    block: Option<direct::Block>,
    /// Full blocks, to the hashing stage.
    tx: Option<std::sync::mpsc::SyncSender<direct::Block>>,
    /// Blocks the writing stage is done with.
    free: std::sync::mpsc::Receiver<direct::Block>,
    hashing: std::thread::JoinHandle<Sha256>,
    writing: std::thread::JoinHandle<std::io::Result<tempfile::NamedTempFile>>,
    path: PathBuf,
}

impl Writer {
    /// Three stages on three threads: the caller copies what it receives into an aligned block,
    /// one thread hashes full blocks, one writes them to disk (directly, from the block) and
    /// hands them back. On two cores the SHA-256 (the bulk of the work) then overlaps with both
    /// the socket copies and the disk writes instead of waiting for either, and the bytes are
    /// copied once between the network and the disk.
    fn start(mut file: tempfile::NamedTempFile) -> Writer {
        let path = file.path().to_path_buf();
        let (tx, rx) = std::sync::mpsc::sync_channel::<direct::Block>(POOL);
        let (to_disk, from_hash) = std::sync::mpsc::sync_channel::<direct::Block>(POOL);
        let (give_back, free) = std::sync::mpsc::sync_channel::<direct::Block>(POOL);
        for _ in 1..POOL {
            // Cannot fail: the channel has room for every block and its receiver is `free`.
            let _ = give_back.send(direct::Block::new());
        }
        let hashing = std::thread::spawn(move || {
            let mut hasher = sha2::Sha256::new();
            for block in rx {
                hasher.update(block.data());
                if to_disk.send(block).is_err() {
                    // The writer stopped on an error; `finish` reports it.
                    break;
                }
            }
            Sha256::from_bytes(hasher.finalize().into())
        });
        let writing = std::thread::spawn(move || {
            let path = file.path().to_path_buf();
            let mut out = direct::DirectWriter::new(file.as_file_mut(), &path);
            for mut block in from_hash {
                out.write(&block)?;
                block.clear();
                // The receiving side may be gone (a refused download): then the block is freed.
                let _ = give_back.send(block);
            }
            Ok(file)
        });
        Writer { block: Some(direct::Block::new()), tx: Some(tx), free, hashing, writing, path }
    }

    fn broken(&self) -> ContentError {
        // The writer stopped (a disk error); `finish` reports why.
        cache_err(&self.path, "the cache file could not be written")
    }

    /// Copies `data` into blocks, passing each full one on.
    fn send(&mut self, mut data: &[u8]) -> Result<(), ContentError> {
        while !data.is_empty() {
            let Some(block) = self.block.as_mut() else { return Err(self.broken()) };
            let n = block.fill(data);
            data = &data[n..];
            if block.is_full() {
                self.pass_on()?;
            }
        }
        Ok(())
    }

    /// Hands the current block to the hashing stage and takes a free one (waiting for it).
    fn pass_on(&mut self) -> Result<(), ContentError> {
        let block = self.block.take().ok_or_else(|| self.broken())?;
        match self.tx.as_ref().map(|tx| tx.send(block)) {
            Some(Ok(())) => {}
            _ => return Err(self.broken()),
        }
        self.block = Some(self.free.recv().map_err(|_| self.broken())?);
        Ok(())
    }

    /// Waits for every block to be hashed and written; returns the file and its digest.
    fn finish(mut self) -> Result<(tempfile::NamedTempFile, Sha256), ContentError> {
        let last = self.block.take().filter(|b| !b.is_empty());
        let sent = match (last, self.tx.take()) {
            (Some(block), Some(tx)) => tx.send(block).is_ok(),
            _ => true,
        };
        let digest = self.hashing.join().map_err(|_| cache_err(&self.path, "the hashing thread failed"))?;
        match self.writing.join() {
            Ok(Ok(file)) if sent => Ok((file, digest)),
            Ok(Ok(_)) => Err(cache_err(&self.path, "the last block could not be written")),
            Ok(Err(e)) => Err(cache_err(&self.path, e)),
            Err(_) => Err(cache_err(&self.path, "the writing thread failed")),
        }
    }
}

/// Shows transfers to the user. The library never prints; the command line implements this
/// (progress bars on a terminal, one line per file in CI).
pub trait Progress: Send + Sync + std::fmt::Debug {
    /// A transfer of `total` bytes from `origin` starts.
    fn start(&self, origin: &str, total: u64) -> Box<dyn Transfer>;
}

/// One transfer being shown.
pub trait Transfer: Send {
    /// `n` more bytes arrived.
    fn advance(&mut self, n: u64);
    /// It ended: verified, or refused.
    fn finish(&mut self, verified: bool);
}

/// Shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &str, _: u64) -> Box<dyn Transfer> {
        Box::new(NoProgress)
    }
}

impl Transfer for NoProgress {
    fn advance(&mut self, _: u64) {}
    fn finish(&mut self, _: bool) {}
}

/// Counts bytes on their way to the hashing writer, refusing more than expected.
struct Sink {
    writer: Writer,
    received: u64,
    expected: Expected,
    url: String,
    transfer: Box<dyn Transfer>,
}

impl Sink {
    fn write(&mut self, chunk: &[u8]) -> Result<(), ContentError> {
        self.count(chunk.len())?;
        self.writer.send(chunk)
    }

    /// Counts `n` more bytes, refusing more than the catalog's size.
    fn count(&mut self, n: usize) -> Result<(), ContentError> {
        self.received += n as u64;
        if self.received > self.expected.size {
            return Err(ContentError::Oversized { url: self.url.clone(), expected: self.expected.size });
        }
        self.transfer.advance(n as u64);
        Ok(())
    }

    /// Checks size and digest; only then renames the temporary file into the cache. On any
    /// refusal the temporary file is dropped, which deletes it.
    fn finish(self, dest: &Path) -> Result<VerifiedContent, ContentError> {
        let Sink { writer, received, expected, url, mut transfer } = self;
        let result = Self::check(writer, received, expected, url, dest);
        transfer.finish(result.is_ok());
        result
    }

    fn check(
        writer: Writer,
        received: u64,
        expected: Expected,
        url: String,
        dest: &Path,
    ) -> Result<VerifiedContent, ContentError> {
        let (file, actual) = writer.finish()?;
        if received < expected.size {
            return Err(ContentError::Truncated { url, expected: expected.size, received });
        }
        if actual != expected.sha256 {
            return Err(ContentError::DigestMismatch { url, expected: expected.sha256, actual });
        }
        // No fsync: a cache entry is hashed again before every use (`cached`), so a file a crash
        // left incomplete is caught and downloaded again rather than trusted.
        file.persist(dest).map_err(|e| cache_err(dest, e.error))?;
        Ok(VerifiedContent { path: dest.to_path_buf(), sha256: actual, size: received })
    }

    /// Abandons the download: waits for the writer and deletes the temporary file.
    fn discard(mut self) {
        self.transfer.finish(false);
        let _ = self.writer.finish();
    }
}

fn cache_err(path: &Path, e: impl std::fmt::Display) -> ContentError {
    ContentError::Cache { path: path.display().to_string(), reason: e.to_string() }
}

impl ContentCache {
    /// A cache under `root` (created on first use), with the default timeouts.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ContentCache {
            root: root.into(),
            timeouts: Timeouts::default(),
            min_rate: MinRate::default(),
            progress: std::sync::Arc::new(NoProgress),
        }
    }

    /// Shows transfers through `progress`.
    #[must_use]
    pub fn with_progress(mut self, progress: std::sync::Arc<dyn Progress>) -> Self {
        self.progress = progress;
        self
    }

    /// Uses another stall rule (a trickling transfer fails after one window below the rate).
    #[must_use]
    pub fn with_min_rate(mut self, min_rate: MinRate) -> Self {
        self.min_rate = min_rate;
        self
    }

    /// Uses other HTTP timeouts (a stalled transfer fails after `timeouts.read`).
    #[must_use]
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Removes the temporary files of downloads that a killed run left behind (`.partial-*`);
    /// returns how many bytes that freed. Call it only while holding the apply lock, when no
    /// download of this cache can be under way.
    pub fn sweep_partials(&self) -> u64 {
        let dir = self.root.join("sha256");
        let Ok(entries) = std::fs::read_dir(&dir) else { return 0 };
        let mut freed = 0;
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(".partial-") {
                let size = entry.metadata().map_or(0, |m| m.len());
                if std::fs::remove_file(entry.path()).is_ok() {
                    freed += size;
                }
            }
        }
        freed
    }

    fn path_of(&self, sha256: &Sha256) -> PathBuf {
        self.root.join("sha256").join(sha256.to_string())
    }

    /// The cached content for `expected`, hashed again before it is returned. `Ok(None)` when
    /// it is not cached; a cached file that no longer matches is removed and reported.
    pub fn cached(&self, expected: Expected) -> Result<Option<VerifiedContent>, ContentError> {
        let path = self.path_of(&expected.sha256);
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(cache_err(&path, e)),
        };
        let mut hasher = sha2::Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; READ];
        loop {
            let n = file.read(&mut buf).map_err(|e| cache_err(&path, e))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            hasher.update(&buf[..n]);
        }
        let actual = Sha256::from_bytes(hasher.finalize().into());
        if actual != expected.sha256 || size != expected.size {
            // Corrupted on disk: never hand it out, and make room for a fresh download.
            let _ = std::fs::remove_file(&path);
            return Err(ContentError::DigestMismatch {
                url: path.display().to_string(),
                expected: expected.sha256,
                actual,
            });
        }
        Ok(Some(VerifiedContent { path, sha256: actual, size }))
    }

    /// Returns the verified content for `expected`, from the cache or downloaded from `url`.
    pub async fn fetch(&self, url: &url::Url, expected: Expected) -> Result<VerifiedContent, ContentError> {
        // Hashing a cached installer again blocks: off the async threads.
        let this = self.clone();
        let cached = tokio::task::spawn_blocking(move || this.cached(expected)).await.map_err(|e| {
            ContentError::Transport { url: redact(url), cause: crate::vocab::because("the cache check failed", e) }
        })?;
        match cached {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(ContentError::DigestMismatch { .. }) => {
                tracing::warn!(sha256 = %expected.sha256, "cached content did not verify; downloading it again");
            }
            Err(e) => return Err(e),
        }
        let dir = self.root.join("sha256");
        std::fs::create_dir_all(&dir).map_err(|e| cache_err(&dir, e))?;
        let file = tempfile::Builder::new().prefix(".partial-").tempfile_in(&dir).map_err(|e| cache_err(&dir, e))?;
        if !matches!(url.scheme(), "https" | "http" | "file") {
            return Err(ContentError::Scheme { url: redact(url) });
        }
        let mut sink = Sink {
            writer: Writer::start(file),
            received: 0,
            expected,
            url: redact(url),
            transfer: self.progress.start(&redact(url), expected.size),
        };
        let (streamed, sink) = match url.scheme() {
            "file" => (read_local(url, &mut sink), sink),
            _ => self.download_on_own_thread(url.clone(), sink).await?,
        };
        match streamed {
            Ok(()) => sink.finish(&self.path_of(&expected.sha256)),
            Err(e) => {
                sink.discard();
                Err(e)
            }
        }
    }

    /// Admits content read from somewhere other than a URL (an installer stored in the fleet's
    /// own git commit), with the same checks as a download.
    pub fn admit(&self, origin: &str, bytes: &[u8], expected: Expected) -> Result<VerifiedContent, ContentError> {
        if let Ok(Some(v)) = self.cached(expected) {
            return Ok(v);
        }
        let dir = self.root.join("sha256");
        std::fs::create_dir_all(&dir).map_err(|e| cache_err(&dir, e))?;
        let file = tempfile::Builder::new().prefix(".partial-").tempfile_in(&dir).map_err(|e| cache_err(&dir, e))?;
        let mut sink = Sink {
            writer: Writer::start(file),
            received: 0,
            expected,
            url: origin.to_string(),
            transfer: self.progress.start(origin, expected.size),
        };
        for chunk in bytes.chunks(READ) {
            if let Err(e) = sink.write(chunk) {
                sink.discard();
                return Err(e);
            }
        }
        sink.finish(&self.path_of(&expected.sha256))
    }

    /// Runs the download on a thread of its own with a single-threaded runtime: the HTTP
    /// connection and the copying into blocks then share one thread, instead of waking each
    /// other across threads for every chunk the socket yields (thousands per GiB, each a
    /// cross-core wake-up that costs more than the copy on a virtual machine).
    async fn download_on_own_thread(
        &self,
        url: url::Url,
        mut sink: Sink,
    ) -> Result<(Result<(), ContentError>, Sink), ContentError> {
        let this = self.clone();
        let shown = redact(&url);
        tokio::task::spawn_blocking(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            let result = match runtime {
                Ok(rt) => rt.block_on(this.download(&url, &mut sink)),
                Err(e) => Err(ContentError::Transport {
                    url: redact(&url),
                    cause: crate::vocab::because("cannot start a download thread", e),
                }),
            };
            (result, sink)
        })
        .await
        .map_err(|e| ContentError::Transport {
            url: shown,
            cause: crate::vocab::because("the download thread failed", e),
        })
    }

    async fn download(&self, url: &url::Url, sink: &mut Sink) -> Result<(), ContentError> {
        let shown = redact(url);
        let client = crate::http::client_with(self.timeouts)
            .map_err(|e| ContentError::Transport { url: shown.clone(), cause: e.into() })?;
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                ContentError::Stalled { url: shown.clone(), after: self.timeouts.read }
            } else if e.is_redirect() {
                ContentError::RedirectLoop { url: shown.clone(), limit: crate::http::MAX_REDIRECTS }
            } else {
                ContentError::Transport { url: shown.clone(), cause: e.without_url().into() }
            }
        };
        let mut resp = client.get(url.clone()).send().await.map_err(transport)?;
        if !resp.status().is_success() {
            return Err(ContentError::Status { url: shown, status: resp.status().as_u16() });
        }
        if resp.content_length().is_some_and(|n| n > sink.expected.size) {
            return Err(ContentError::Oversized { url: shown, expected: sink.expected.size });
        }
        // The stall rule, measured in consecutive windows: a window that ends with fewer bytes
        // than the rate asks for ends the transfer.
        let rule = self.min_rate;
        let (mut window_start, mut in_window) = (std::time::Instant::now(), 0u64);
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            in_window += chunk.len() as u64;
            sink.write(&chunk)?;
            let took = window_start.elapsed();
            if took >= rule.window {
                if (in_window as f64) < rule.bytes_per_sec as f64 * took.as_secs_f64() {
                    return Err(ContentError::TooSlow {
                        url: shown,
                        received: in_window,
                        window: took,
                        min_rate: rule.bytes_per_sec,
                    });
                }
                (window_start, in_window) = (std::time::Instant::now(), 0);
            }
        }
        Ok(())
    }
}

fn read_local(url: &url::Url, sink: &mut Sink) -> Result<(), ContentError> {
    let shown = redact(url);
    let path = url
        .to_file_path()
        .map_err(|()| ContentError::Transport { url: shown.clone(), cause: "not a local path".into() })?;
    // A regular file only: `file:///dev/zero` or a FIFO would never end (the sink refuses
    // bytes beyond the catalog's size either way).
    let mut file = crate::bounded::open_regular(&path)
        .map_err(|e| ContentError::Transport { url: shown.clone(), cause: e.into() })?;
    let mut buf = vec![0u8; READ];
    loop {
        let n = file.read(&mut buf).map_err(|e| ContentError::Transport { url: shown.clone(), cause: e.into() })?;
        if n == 0 {
            return Ok(());
        }
        sink.write(&buf[..n])?;
    }
}
