//! `.intunewin` packages, made and opened on any system, in one streaming pass.
//!
//! The format (what Microsoft's IntuneWinAppUtil writes and Intune reads):
//!
//! ```text
//! outer zip
//! ├── IntuneWinPackage/Contents/IntunePackage.intunewin   HMAC(32) ‖ IV(16) ‖ AES-256-CBC(inner zip, PKCS#7)
//! └── IntuneWinPackage/Metadata/Detection.xml             ApplicationInfo: sizes, EncryptionInfo, MsiInfo
//! ```
//!
//! The inner zip holds the setup file. `HMAC = HMAC-SHA256(macKey, IV ‖ ciphertext)`;
//! `FileDigest = SHA-256(inner zip)`, before encryption. Key, MAC key and IV are fresh random
//! bytes per package. Memory stays flat and the installer is read once: the inner zip is
//! streamed through the cipher straight into the outer zip, whose first 48 content bytes
//! (HMAC ‖ IV) are filled in at the end.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine as _;
use hmac::Mac;
use sha2::Digest;

use crate::msi::MsiInfo;

/// Path of the encrypted content inside the outer zip.
pub const CONTENT_ENTRY: &str = "IntuneWinPackage/Contents/IntunePackage.intunewin";
/// Path of the metadata inside the outer zip.
pub const DETECTION_ENTRY: &str = "IntuneWinPackage/Metadata/Detection.xml";
/// `ToolVersion` written to Detection.xml.
pub const TOOL_VERSION: &str = "1.8.6.0";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;
type Encryptor = cbc::Encryptor<aes::Aes256>;
type Decryptor = cbc::Decryptor<aes::Aes256>;

/// Bytes gathered before each encryption step (a multiple of the AES block).
const WORK: usize = 1 << 20;

/// What Intune needs to decrypt and check a package (Graph's `fileEncryptionInfo`). The keys
/// are secrets of the package: `Debug` does not show them.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionInfo {
    /// AES-256 key.
    pub encryption_key: [u8; 32],
    /// HMAC-SHA256 key.
    pub mac_key: [u8; 32],
    /// CBC initialization vector.
    pub iv: [u8; 16],
    /// HMAC-SHA256 of IV ‖ ciphertext.
    pub mac: [u8; 32],
    /// SHA-256 of the plaintext inner zip.
    pub file_digest: [u8; 32],
}

impl std::fmt::Debug for EncryptionInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionInfo")
            .field("mac", &hex::encode(self.mac))
            .field("file_digest", &hex::encode(self.file_digest))
            .finish_non_exhaustive()
    }
}

impl EncryptionInfo {
    /// Graph's `fileEncryptionInfo` (base64 values).
    pub fn to_graph(&self) -> serde_json::Value {
        let b = |x: &[u8]| base64::engine::general_purpose::STANDARD.encode(x);
        serde_json::json!({
            "@odata.type": "#microsoft.graph.fileEncryptionInfo",
            "encryptionKey": b(&self.encryption_key),
            "macKey": b(&self.mac_key),
            "initializationVector": b(&self.iv),
            "mac": b(&self.mac),
            "profileIdentifier": "ProfileVersion1",
            "fileDigest": b(&self.file_digest),
            "fileDigestAlgorithm": "SHA256",
        })
    }
}

/// A package made by [`pack`].
#[derive(Debug, Clone)]
pub struct Packed {
    /// The `.intunewin` file.
    pub path: PathBuf,
    /// The setup file's name.
    pub setup_file: String,
    /// Size of the plaintext inner zip (Graph's content file `size`).
    pub unencrypted_size: u64,
    /// Size of HMAC ‖ IV ‖ ciphertext (Graph's `sizeEncrypted`, and what is uploaded).
    pub encrypted_size: u64,
    /// Keys, MAC and digest.
    pub encryption: EncryptionInfo,
    /// The MSI's facts, for MSI installers.
    pub msi: Option<MsiInfo>,
}

/// Why a package could not be made or opened.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// Reading or writing failed.
    #[error("{path}: {cause}")]
    Io {
        /// The file concerned.
        path: String,
        /// Why.
        #[source]
        cause: crate::vocab::Cause,
    },
    /// The file is not a well-formed `.intunewin`.
    #[error("{path} is not a valid .intunewin package: {reason}")]
    Malformed {
        /// The package.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The content's MAC does not match: altered, or not made with these keys.
    #[error("{path}: the content's HMAC does not match Detection.xml's Mac; the package was altered or is corrupt")]
    MacMismatch {
        /// The package.
        path: String,
    },
    /// The decrypted inner zip does not have the digest Detection.xml records.
    #[error("{path}: the decrypted content's SHA-256 does not match Detection.xml's FileDigest")]
    DigestMismatch {
        /// The package.
        path: String,
    },
}

impl PackageError {
    /// A stable CamelCase reason, for machines (conditions, metrics, notifications).
    pub fn reason(&self) -> &'static str {
        match self {
            PackageError::Io { .. } => "PackageIo",
            PackageError::Malformed { .. } => "PackageMalformed",
            PackageError::MacMismatch { .. } => "PackageMacMismatch",
            PackageError::DigestMismatch { .. } => "PackageDigestMismatch",
        }
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> PackageError + '_ {
    move |e| PackageError::Io { path: path.display().to_string(), cause: e.into() }
}

fn zip_err(path: &Path) -> impl Fn(zip::result::ZipError) -> PackageError + '_ {
    move |e| PackageError::Io { path: path.display().to_string(), cause: e.into() }
}

/// Sends what is written to it down a channel, in chunks whose length is a multiple of the AES
/// block (except the last), so that the cipher never has to copy a chunk to realign it.
struct ChannelWriter {
    tx: std::sync::mpsc::SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self, all: bool) -> std::io::Result<()> {
        let n = if all { self.buf.len() } else { self.buf.len() - self.buf.len() % 16 };
        let rest = self.buf.split_off(n);
        let chunk = std::mem::replace(&mut self.buf, rest);
        self.buf.reserve(WORK + 16);
        self.tx.send(chunk).map_err(|_| std::io::Error::other("the packaging pipeline stopped"))
    }

    fn finish(mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.send(true)?;
        }
        Ok(())
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(buf);
        if self.buf.len() >= WORK {
            self.send(false)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Chunks in flight between two stages of the packaging pipeline.
const STAGE_QUEUE: usize = 4;

/// Length of the header in front of the ciphertext: HMAC (32) ‖ IV (16).
const HEADER: usize = 48;

/// What the last stage of the pipeline hands back: the outer zip (still open, for
/// Detection.xml), the MAC, the CRC-32 and length of the ciphertext alone.
struct Written<W> {
    outer: W,
    mac: [u8; 32],
    cipher_crc: crc32fast::Hasher,
    cipher_len: u64,
}

/// The three stages after the inner zip: SHA-256 of the plaintext, AES-256-CBC, then HMAC and
/// the write into the outer zip's content entry. Each on its own (scoped) thread, joined by
/// bounded channels, so that on several cores the digests and the cipher run side by side
/// while memory stays at a few chunks.
struct Pipeline<'scope, W> {
    input: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    hashing: std::thread::ScopedJoinHandle<'scope, ([u8; 32], u64)>,
    encrypting: std::thread::ScopedJoinHandle<'scope, ()>,
    writing: std::thread::ScopedJoinHandle<'scope, std::io::Result<Written<W>>>,
}

impl<'scope, W: Write + Send + 'scope> Pipeline<'scope, W> {
    /// Starts the stages. `outer` is the outer zip with its content entry started; the stage
    /// writes a 48-byte placeholder for HMAC ‖ IV first (the MAC is known only at the end, and
    /// `patch_header` puts it in place afterwards).
    fn start<'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        mut outer: W,
        key: [u8; 32],
        mac_key: [u8; 32],
        iv: [u8; 16],
    ) -> Result<Self, crate::vocab::Cause> {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&mac_key)?;
        let (input, from_zip) = std::sync::mpsc::sync_channel::<Vec<u8>>(STAGE_QUEUE);
        let (to_cipher, from_hash) = std::sync::mpsc::sync_channel::<Vec<u8>>(STAGE_QUEUE);
        let (to_disk, from_cipher) = std::sync::mpsc::sync_channel::<Vec<u8>>(STAGE_QUEUE);
        let hashing = scope.spawn(move || {
            let mut sha = sha2::Sha256::new();
            let mut len = 0u64;
            for chunk in from_zip {
                sha.update(&chunk);
                len += chunk.len() as u64;
                if to_cipher.send(chunk).is_err() {
                    break;
                }
            }
            (sha.finalize().into(), len)
        });
        let encrypting = scope.spawn(move || {
            let mut cipher = Encryptor::new((&key).into(), (&iv).into());
            let mut last: Vec<u8> = Vec::new();
            for mut chunk in from_hash {
                // Every chunk but the last is whole blocks (see ChannelWriter).
                let whole = chunk.len() - chunk.len() % 16;
                last = chunk.split_off(whole);
                for block in chunk.chunks_exact_mut(16) {
                    cipher.encrypt_block_mut(block.into());
                }
                if to_disk.send(chunk).is_err() {
                    return;
                }
            }
            // PKCS#7: 1 to 16 bytes of padding, each holding the padding's length.
            let pad = 16 - last.len() % 16;
            last.extend(std::iter::repeat_n(pad as u8, pad));
            for block in last.chunks_exact_mut(16) {
                cipher.encrypt_block_mut(block.into());
            }
            let _ = to_disk.send(last);
        });
        let writing = scope.spawn(move || {
            mac.update(&iv);
            outer.write_all(&[0u8; HEADER])?;
            let mut cipher_crc = crc32fast::Hasher::new();
            let mut cipher_len = 0u64;
            for chunk in from_cipher {
                mac.update(&chunk);
                cipher_crc.update(&chunk);
                cipher_len += chunk.len() as u64;
                outer.write_all(&chunk)?;
            }
            Ok(Written { outer, mac: mac.finalize().into_bytes().into(), cipher_crc, cipher_len })
        });
        Ok(Pipeline { input: Some(input), hashing, encrypting, writing })
    }

    fn writer(&mut self) -> Option<ChannelWriter> {
        self.input.take().map(|tx| ChannelWriter { tx, buf: Vec::with_capacity(WORK + 16) })
    }

    /// Waits for every stage; returns what was written and the plaintext's digest and length.
    fn finish(self) -> std::io::Result<(Written<W>, [u8; 32], u64)> {
        let failed = || std::io::Error::other("a packaging thread failed");
        let (digest, plain_len) = self.hashing.join().map_err(|_| failed())?;
        self.encrypting.join().map_err(|_| failed())?;
        let written = self.writing.join().map_err(|_| failed())??;
        Ok((written, digest, plain_len))
    }
}

fn random<const N: usize>() -> Result<[u8; N], PackageError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b)
        .map_err(|e| PackageError::Io { path: "the system random source".into(), cause: e.to_string().into() })?;
    Ok(b)
}

/// Packs `source` (the installer) into `out`, a `.intunewin` file, naming the installer
/// `setup_file` inside it. `msi` facts, when given, go into Detection.xml's MsiInfo.
///
/// One pass: the installer is read once, and the ciphertext goes straight into the outer zip's
/// content entry (written around the page cache) behind a placeholder for HMAC ‖ IV, which
/// `patch_header` fills in, with the entry's CRC-32, once the MAC is known.
pub fn pack(source: &Path, setup_file: &str, out: &Path, msi: Option<MsiInfo>) -> Result<Packed, PackageError> {
    let setup_file = setup_file.to_string();
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let (key, mac_key, iv) = (random::<32>()?, random::<32>()?, random::<16>()?);
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored).large_file(true);

    let mut outer_tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
    let outer_path = outer_tmp.path().to_path_buf();
    let (packed, cipher_crc) = std::thread::scope(|scope| -> Result<_, PackageError> {
        let sink = crate::content::direct::DirectStream::new(outer_tmp.as_file_mut(), &outer_path);
        let mut outer = zip::ZipWriter::new_stream(sink);
        outer.start_file(CONTENT_ENTRY, options).map_err(zip_err(out))?;
        let mut pipeline = Pipeline::start(scope, outer, key, mac_key, iv)
            .map_err(|cause| PackageError::Io { path: out.display().to_string(), cause })?;
        let sink = pipeline
            .writer()
            .ok_or_else(|| PackageError::Io { path: out.display().to_string(), cause: "pipeline".into() })?;

        // The inner zip, streamed through the pipeline.
        let mut inner = zip::ZipWriter::new_stream(sink);
        inner.start_file(setup_file.as_str(), options).map_err(zip_err(source))?;
        let mut input = File::open(source).map_err(io(source))?;
        let mut buf = vec![0u8; WORK];
        loop {
            let n = input.read(&mut buf).map_err(io(source))?;
            if n == 0 {
                break;
            }
            inner.write_all(&buf[..n]).map_err(io(out))?;
        }
        inner.finish().map_err(zip_err(out))?.into_inner().finish().map_err(io(out))?;
        let (written, file_digest, unencrypted_size) = pipeline.finish().map_err(io(out))?;

        let encryption = EncryptionInfo { encryption_key: key, mac_key, iv, mac: written.mac, file_digest };
        let packed = Packed {
            path: out.to_path_buf(),
            setup_file: setup_file.clone(),
            unencrypted_size,
            encrypted_size: HEADER as u64 + written.cipher_len,
            encryption,
            msi,
        };
        let mut outer = written.outer;
        outer.start_file(DETECTION_ENTRY, options.large_file(false)).map_err(zip_err(out))?;
        outer.write_all(detection_xml(&packed).as_bytes()).map_err(io(out))?;
        outer.finish().map_err(zip_err(out))?.into_inner().finish().map_err(io(out))?;
        Ok((packed, written.cipher_crc))
    })?;
    patch_header(outer_tmp.as_file_mut(), out, &packed.encryption, cipher_crc)?;
    outer_tmp.persist(out).map_err(|e| io(out)(e.error))?;
    Ok(packed)
}

/// Puts HMAC ‖ IV in place of the content entry's placeholder, and the entry's true CRC-32
/// (the placeholder's CRC combined with the ciphertext's) wherever the zip crate recorded the
/// placeholder's: the data descriptor, the central directory and, if set, the local header.
/// Offsets come from reading the archive back with the zip crate; each field is checked to
/// hold the expected value before it is overwritten.
fn patch_header(
    file: &mut File,
    out: &Path,
    encryption: &EncryptionInfo,
    cipher_crc: crc32fast::Hasher,
) -> Result<(), PackageError> {
    use std::os::unix::fs::FileExt;
    let malformed = |reason: &str| PackageError::Malformed { path: out.display().to_string(), reason: reason.into() };
    file.seek(SeekFrom::Start(0)).map_err(io(out))?;
    let mut archive = zip::ZipArchive::new(&mut *file).map_err(zip_err(out))?;
    let entry = archive.by_name(CONTENT_ENTRY).map_err(zip_err(out))?;
    let data_start = entry.data_start().ok_or_else(|| malformed("the content entry has no data offset"))?;
    let (size, placeholder_crc) = (entry.compressed_size(), entry.crc32());
    let (local, central) = (entry.header_start(), entry.central_header_start());
    drop(entry);
    drop(archive);

    let mut header = [0u8; HEADER];
    header[..32].copy_from_slice(&encryption.mac);
    header[32..].copy_from_slice(&encryption.iv);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header);
    crc.combine(&cipher_crc);
    let crc = crc.finalize().to_le_bytes();

    let read_u32 = |at: u64| -> Result<u32, PackageError> {
        let mut b = [0u8; 4];
        file.read_exact_at(&mut b, at).map_err(io(out))?;
        Ok(u32::from_le_bytes(b))
    };
    // Data descriptor: signature, then CRC-32.
    let descriptor = data_start + size;
    if read_u32(descriptor)? != 0x0807_4b50 || read_u32(descriptor + 4)? != placeholder_crc {
        return Err(malformed("the content entry's data descriptor is not where the zip writer put it"));
    }
    if read_u32(central + 16)? != placeholder_crc {
        return Err(malformed("the content entry's central directory record does not hold its CRC-32"));
    }
    let mut places = vec![descriptor + 4, central + 16];
    match read_u32(local + 14)? {
        0 => {}
        c if c == placeholder_crc => places.push(local + 14),
        _ => return Err(malformed("the content entry's local header holds an unexpected CRC-32")),
    }
    file.write_all_at(&header, data_start).map_err(io(out))?;
    for at in places {
        file.write_all_at(&crc, at).map_err(io(out))?;
    }
    Ok(())
}

/// Detection.xml for a package.
pub fn detection_xml(p: &Packed) -> String {
    use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
    let b = |x: &[u8]| base64::engine::general_purpose::STANDARD.encode(x);
    let mut w = quick_xml::Writer::new_with_indent(Vec::new(), b' ', 2);
    let el = |w: &mut quick_xml::Writer<Vec<u8>>, name: &str, text: &str| {
        let _ = w.write_event(Event::Start(BytesStart::new(name)));
        let _ = w.write_event(Event::Text(BytesText::new(text)));
        let _ = w.write_event(Event::End(BytesEnd::new(name)));
    };
    let _ = w.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)));
    let mut root = BytesStart::new("ApplicationInfo");
    root.push_attribute(("xmlns:xsd", "http://www.w3.org/2001/XMLSchema"));
    root.push_attribute(("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance"));
    root.push_attribute(("ToolVersion", TOOL_VERSION));
    let _ = w.write_event(Event::Start(root));
    el(&mut w, "Name", &p.setup_file);
    el(&mut w, "UnencryptedContentSize", &p.unencrypted_size.to_string());
    el(&mut w, "FileName", "IntunePackage.intunewin");
    el(&mut w, "SetupFile", &p.setup_file);
    let _ = w.write_event(Event::Start(BytesStart::new("EncryptionInfo")));
    let e = &p.encryption;
    el(&mut w, "EncryptionKey", &b(&e.encryption_key));
    el(&mut w, "MacKey", &b(&e.mac_key));
    el(&mut w, "InitializationVector", &b(&e.iv));
    el(&mut w, "Mac", &b(&e.mac));
    el(&mut w, "ProfileIdentifier", "ProfileVersion1");
    el(&mut w, "FileDigest", &b(&e.file_digest));
    el(&mut w, "FileDigestAlgorithm", "SHA256");
    let _ = w.write_event(Event::End(BytesEnd::new("EncryptionInfo")));
    if let Some(m) = &p.msi {
        let _ = w.write_event(Event::Start(BytesStart::new("MsiInfo")));
        el(&mut w, "MsiProductCode", &m.product_code);
        el(&mut w, "MsiProductVersion", &m.product_version);
        el(&mut w, "MsiPackageCode", m.package_code.as_deref().unwrap_or_default());
        el(&mut w, "MsiPublisher", m.publisher.as_deref().unwrap_or_default());
        el(&mut w, "MsiUpgradeCode", m.upgrade_code.as_deref().unwrap_or_default());
        el(&mut w, "MsiExecutionContext", m.execution_context.as_str());
        el(&mut w, "MsiRequiresLogon", "false");
        el(&mut w, "MsiRequiresReboot", if m.requires_reboot { "true" } else { "false" });
        let machine = m.execution_context == crate::msi::ExecutionContext::System;
        el(&mut w, "MsiIsMachineInstall", if machine { "true" } else { "false" });
        el(&mut w, "MsiIsUserInstall", if machine { "false" } else { "true" });
        el(&mut w, "MsiIncludesServices", "false");
        el(&mut w, "MsiIncludesODBCDataSource", "false");
        el(&mut w, "MsiContainsSystemRegistryKeys", "false");
        el(&mut w, "MsiContainsSystemFolders", "false");
        let _ = w.write_event(Event::End(BytesEnd::new("MsiInfo")));
    }
    let _ = w.write_event(Event::End(BytesEnd::new("ApplicationInfo")));
    String::from_utf8(w.into_inner()).unwrap_or_default()
}

/// What [`unpack`] found.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// The setup file written out.
    pub setup_file: PathBuf,
    /// Its size.
    pub size: u64,
    /// Detection.xml's text.
    pub detection_xml: String,
}

/// The largest Detection.xml `unpack` reads.
pub const MAX_DETECTION_XML: u64 = 1 << 20;

/// Opens a `.intunewin`: reads Detection.xml, checks the MAC, decrypts, checks the digest, and
/// writes the setup file into `out_dir`. Nothing is written unless every check passes, and a
/// link already in `out_dir` is replaced, never followed.
pub fn unpack(package: &Path, out_dir: &Path) -> Result<Unpacked, PackageError> {
    // The output directory is made when it is missing, and taken away again when the package
    // is refused: a refused package leaves nothing behind.
    let made = !out_dir.exists();
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let result = unpack_into(package, out_dir);
    if result.is_err() && made {
        let _ = std::fs::remove_dir(out_dir);
    }
    result
}

fn unpack_into(package: &Path, out_dir: &Path) -> Result<Unpacked, PackageError> {
    let bad = |reason: String| PackageError::Malformed { path: package.display().to_string(), reason };
    let file = File::open(package).map_err(io(package))?;
    let mut outer = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    let mut xml = String::new();
    // Detection.xml is a few KiB; a compressed entry that inflates without end is refused.
    outer
        .by_name(DETECTION_ENTRY)
        .map_err(|_| bad(format!("no {DETECTION_ENTRY}")))?
        .take(MAX_DETECTION_XML + 1)
        .read_to_string(&mut xml)
        .map_err(|e| bad(e.to_string()))?;
    if xml.len() as u64 > MAX_DETECTION_XML {
        return Err(bad(format!("{DETECTION_ENTRY} is larger than {MAX_DETECTION_XML} bytes")));
    }
    let field = |name: &str| -> Result<Vec<u8>, PackageError> {
        let text = xml_text(&xml, name).ok_or_else(|| bad(format!("Detection.xml has no {name}")))?;
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| bad(format!("Detection.xml's {name} is not base64: {e}")))
    };
    let key: [u8; 32] = field("EncryptionKey")?.try_into().map_err(|_| bad("EncryptionKey is not 32 bytes".into()))?;
    let mac_key: [u8; 32] = field("MacKey")?.try_into().map_err(|_| bad("MacKey is not 32 bytes".into()))?;
    let mac: [u8; 32] = field("Mac")?.try_into().map_err(|_| bad("Mac is not 32 bytes".into()))?;
    let digest: [u8; 32] = field("FileDigest")?.try_into().map_err(|_| bad("FileDigest is not 32 bytes".into()))?;

    // Copy the encrypted entry out (it is read twice: MAC first, then decryption).
    let mut enc = tempfile::tempfile_in(out_dir).map_err(io(out_dir))?;
    std::io::copy(&mut outer.by_name(CONTENT_ENTRY).map_err(|_| bad(format!("no {CONTENT_ENTRY}")))?, &mut enc)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => {
                bad(format!("{CONTENT_ENTRY} fails its zip checksum ({e}); the package was altered or is corrupt"))
            }
            _ => io(package)(e),
        })?;
    enc.seek(SeekFrom::Start(0)).map_err(io(package))?;
    let mut header = [0u8; 48];
    enc.read_exact(&mut header).map_err(|_| bad("the content is shorter than its header".into()))?;
    let (stored_mac, iv) = header.split_at(32);
    let iv: [u8; 16] = iv.try_into().map_err(|_| bad("bad IV".into()))?;
    if stored_mac != mac {
        return Err(PackageError::MacMismatch { path: package.display().to_string() });
    }
    let mut hmac = <HmacSha256 as Mac>::new_from_slice(&mac_key).map_err(|e| bad(e.to_string()))?;
    hmac.update(&iv);
    let mut buf = vec![0u8; WORK];
    loop {
        let n = enc.read(&mut buf).map_err(io(package))?;
        if n == 0 {
            break;
        }
        hmac.update(&buf[..n]);
    }
    if hmac.verify_slice(&mac).is_err() {
        return Err(PackageError::MacMismatch { path: package.display().to_string() });
    }

    // Decrypt into a temporary inner zip, hashing the plaintext.
    enc.seek(SeekFrom::Start(48)).map_err(io(package))?;
    let mut inner = tempfile::tempfile_in(out_dir).map_err(io(out_dir))?;
    let mut cipher = Decryptor::new((&key).into(), (&iv).into());
    let mut plain = sha2::Sha256::new();
    let mut held: Vec<u8> = Vec::new();
    loop {
        let n = enc.read(&mut buf).map_err(io(package))?;
        if n == 0 {
            break;
        }
        held.extend_from_slice(&buf[..n]);
        // Keep the last block back: it carries the padding.
        let ready = held.len().saturating_sub(16) / 16 * 16;
        for block in held[..ready].chunks_exact_mut(16) {
            cipher.decrypt_block_mut(block.into());
        }
        plain.update(&held[..ready]);
        inner.write_all(&held[..ready]).map_err(io(out_dir))?;
        held.drain(..ready);
    }
    if held.len() != 16 {
        return Err(bad("the ciphertext is not a whole number of AES blocks".into()));
    }
    cipher.decrypt_block_mut(held.as_mut_slice().into());
    let pad = usize::from(held[15]);
    if pad == 0 || pad > 16 || held[16 - pad..].iter().any(|&b| usize::from(b) != pad) {
        return Err(bad("bad PKCS#7 padding".into()));
    }
    plain.update(&held[..16 - pad]);
    inner.write_all(&held[..16 - pad]).map_err(io(out_dir))?;
    if <[u8; 32]>::from(plain.finalize()) != digest {
        return Err(PackageError::DigestMismatch { path: package.display().to_string() });
    }

    // The inner zip holds the setup file.
    inner.seek(SeekFrom::Start(0)).map_err(io(out_dir))?;
    let mut zip = zip::ZipArchive::new(inner).map_err(|e| bad(format!("the decrypted content is not a zip: {e}")))?;
    let setup_name = xml_text(&xml, "SetupFile").unwrap_or_default();
    let mut entry = zip.by_name(setup_name.trim()).map_err(|_| bad(format!("the content has no {setup_name}")))?;
    let name =
        Path::new(setup_name.trim()).file_name().ok_or_else(|| bad("SetupFile is not a file name".into()))?.to_owned();
    let dest = out_dir.join(name);
    // Written to a temporary file beside it and renamed into place only once the whole entry
    // was read (its CRC checked): a refusal leaves nothing, and a link already at `dest` is
    // replaced, never followed (rename does not follow it).
    let mut out = tempfile::Builder::new().prefix(".patchops-unpack-").tempfile_in(out_dir).map_err(io(out_dir))?;
    let size = std::io::copy(&mut entry, out.as_file_mut()).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => bad(format!("{setup_name} fails its zip checksum ({e})")),
        _ => io(&dest)(e),
    })?;
    if size != entry.size() {
        return Err(bad(format!("{setup_name} holds {size} bytes, its zip entry says {}", entry.size())));
    }
    out.persist(&dest).map_err(|e| io(&dest)(e.error))?;
    Ok(Unpacked { setup_file: dest, size, detection_xml: xml })
}

/// The text of the first `<name>` element of a small XML document.
fn xml_text(xml: &str, name: &str) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut inside = false;
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) if AsRef::<str>::as_ref(&e.name()) == name => inside = true,
            Event::Text(t) if inside => {
                return quick_xml::escape::unescape(&t.into_inner()).ok().map(|c| c.into_owned())
            }
            Event::End(_) if inside => return Some(String::new()),
            Event::Eof => return None,
            _ => {}
        }
    }
}
