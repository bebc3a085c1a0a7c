//! A CAB's Authenticode signature. The cabinet carries a 20-byte header reserve
//! (`cbCFHeader = 20`, flag `cfhdrRESERVE_PRESENT`) whose first four bytes are
//! `00 00 10 00`, then the signature's offset and length; the PKCS #7 signature is appended
//! after the cabinet, padded with zeros to 8 bytes. The digest covers the header without
//! `reserved1` (bytes 4–7), `iCabinet`, the reserve sizes and the first 16 reserve bytes
//! (bytes 34–55), then everything from byte 56 to the signature.
//!
//! The layout is Microsoft's (the CAB format, "CFHEADER", and the signed-CAB layout that
//! signtool writes). A plain cabinet (the `cab` crate makes them) is signed by inserting the
//! reserve. Files are streamed: memory does not grow with the cabinet.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::pkcs7::{Digester, Key, Parsed};

/// The first four bytes of a signature reserve.
const RESERVE_MARK: [u8; 4] = [0, 0, 0x10, 0];

const HEADER: usize = 60;
const FLAG_PREV_CABINET: u16 = 0x0001;
const FLAG_NEXT_CABINET: u16 = 0x0002;
const FLAG_RESERVE_PRESENT: u16 = 0x0004;
const MAX_SIGNATURE: u32 = 1 << 20;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The fixed header and its signature reserve.
struct Header {
    bytes: [u8; HEADER],
}

impl Header {
    fn read(file: &mut File, what: &Path) -> Result<Header, String> {
        let mut bytes = [0u8; HEADER];
        let mut filled = 0;
        while filled < HEADER {
            match file.read(&mut bytes[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => return Err(format!("cannot read {}: {e}", what.display())),
            }
        }
        if filled < 36 || &bytes[..4] != b"MSCF" {
            return Err(format!("{} is not a cabinet (no MSCF header)", what.display()));
        }
        if u32_at(&bytes, 4) != 0 {
            return Err(format!("{} is not a valid cabinet: reserved1 is not 0", what.display()));
        }
        if u16_at(&bytes, 30) & FLAG_PREV_CABINET != 0 {
            return Err(format!("{} is part of a multi-cabinet set, which patchops does not handle", what.display()));
        }
        if filled < HEADER {
            bytes[filled..].fill(0);
        }
        Ok(Header { bytes })
    }

    /// Whether the header has the 20-byte signature reserve.
    fn has_signature_reserve(&self) -> bool {
        u16_at(&self.bytes, 30) & FLAG_RESERVE_PRESENT != 0
            && u32_at(&self.bytes, 36) == 20
            && self.bytes[40..44] == RESERVE_MARK
    }

    fn signature_at(&self) -> (u32, u32) {
        (u32_at(&self.bytes, 44), u32_at(&self.bytes, 48))
    }
}

/// Feeds the signed parts of a signed cabinet's header to `d`: all but `reserved1` (4–7),
/// `iCabinet`, the reserve sizes and the reserve's first 16 bytes (34–55).
fn digest_header(header: &[u8; HEADER], d: &mut Digester) {
    d.update(&header[0..4]);
    d.update(&header[8..34]);
    d.update(&header[56..60]);
}

/// Streams `len` bytes from `from` into `d` (and `to`, when given).
fn stream(from: &mut File, mut len: u64, d: &mut Digester, mut to: Option<&mut File>) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 1 << 20];
    while len > 0 {
        let want = usize::try_from(len.min(buffer.len() as u64)).unwrap_or(buffer.len());
        let n = from.read(&mut buffer[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the cabinet ended early"));
        }
        d.update(&buffer[..n]);
        if let Some(out) = to.as_deref_mut() {
            out.write_all(&buffer[..n])?;
        }
        len -= n as u64;
    }
    Ok(())
}

/// Signs the cabinet `input` (a plain one, as makecab or the `cab` crate make it) into
/// `output`: the header gains the 20-byte signature reserve (every offset after it moves by
/// 24 bytes), and the signature is appended.
pub fn sign(input: &Path, output: &Path, key: &Key) -> Result<(), String> {
    let shown = input.display();
    let mut file = File::open(input).map_err(|e| format!("cannot open {shown}: {e}"))?;
    let len = file.metadata().map_err(|e| format!("cannot read {shown}: {e}"))?.len();
    let mut fixed = [0u8; 36];
    file.read_exact(&mut fixed).map_err(|_| format!("{shown} is not a cabinet (shorter than its header)"))?;
    if &fixed[..4] != b"MSCF" || u32_at(&fixed, 4) != 0 {
        return Err(format!("{shown} is not a cabinet (no MSCF header)"));
    }
    let flags = u16_at(&fixed, 30);
    if flags & (FLAG_PREV_CABINET | FLAG_NEXT_CABINET) != 0 {
        return Err(format!("{shown} is part of a multi-cabinet set, which patchops does not sign"));
    }
    if flags & FLAG_RESERVE_PRESENT != 0 {
        return Err(format!("{shown} already has a reserve area (is it signed?); sign the cabinet as it was made"));
    }
    let cabinet = u32_at(&fixed, 8);
    if u64::from(cabinet) != len {
        return Err(format!("{shown} is {len} bytes but its header says {cabinet}"));
    }
    let folders = usize::from(u16_at(&fixed, 26));
    if u64::from(u32_at(&fixed, 16)) != 36 + 8 * folders as u64 {
        return Err(format!("{shown}: its first file entry is not right after its folder table"));
    }
    let mut table = vec![0u8; 8 * folders];
    file.read_exact(&mut table).map_err(|e| format!("cannot read the folders of {shown}: {e}"))?;
    let grown = u32::try_from(len + 24).map_err(|_| format!("{shown} is too large for a cabinet"))?;
    let mut header = [0u8; HEADER];
    header[..36].copy_from_slice(&fixed);
    header[8..12].copy_from_slice(&grown.to_le_bytes());
    header[16..20].copy_from_slice(&(u32_at(&fixed, 16) + 24).to_le_bytes());
    header[30..32].copy_from_slice(&(flags | FLAG_RESERVE_PRESENT).to_le_bytes());
    header[36..40].copy_from_slice(&20u32.to_le_bytes());
    header[40..44].copy_from_slice(&RESERVE_MARK);
    header[44..48].copy_from_slice(&grown.to_le_bytes());
    for entry in table.chunks_mut(8) {
        let start = u32_at(entry, 0).checked_add(24).ok_or_else(|| format!("{shown}: a folder starts past 4 GiB"))?;
        entry[..4].copy_from_slice(&start.to_le_bytes());
    }
    let mut d = Digester::Sha256(Default::default());
    digest_header(&header, &mut d);
    d.update(&table);
    let mut out = File::create(output).map_err(|e| format!("cannot create {}: {e}", output.display()))?;
    let written = (|| -> std::io::Result<()> {
        out.write_all(&header)?;
        out.write_all(&table)?;
        stream(&mut file, len - 36 - table.len() as u64, &mut d, Some(&mut out))
    })();
    written.map_err(|e| format!("copying {shown} to {}: {e}", output.display()))?;
    let content = super::spc::cab(d.finish()).map_err(|e| e.to_string())?;
    let mut signature =
        super::pkcs7::sign(&content, key).map_err(|e| e.to_string())?.to_der().map_err(|e| e.to_string())?;
    signature.resize(signature.len().div_ceil(8) * 8, 0);
    let siglen = u32::try_from(signature.len()).map_err(|_| "the signature is too large".to_string())?;
    let finished = (|| -> std::io::Result<()> {
        out.write_all(&signature)?;
        out.seek(SeekFrom::Start(48))?;
        out.write_all(&siglen.to_le_bytes())?;
        out.sync_all()
    })();
    finished.map_err(|e| format!("writing the signature to {}: {e}", output.display()))
}

/// A signed cabinet: its signature, and the digest of its bytes in the algorithm the
/// signature names (or why that digest could not be made).
pub struct Signed {
    /// The signature.
    pub signature: Parsed,
    /// The cabinet's digest.
    pub digest: Result<Vec<u8>, String>,
}

/// A cabinet's signature and digest; `None` when the cabinet is not signed.
pub fn read(path: &Path) -> Result<Option<Signed>, String> {
    let mut file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let len = file.metadata().map_err(|e| format!("cannot read {}: {e}", path.display()))?.len();
    let header = Header::read(&mut file, path)?;
    if !header.has_signature_reserve() || header.signature_at().0 == 0 {
        return Ok(None);
    }
    let (at, size) = header.signature_at();
    if u64::from(at) + u64::from(size) != len || size == 0 || size > MAX_SIGNATURE || (at as usize) < HEADER {
        return Err(format!(
            "{}: the signature is said to be {size} bytes at {at}, which does not fit the {len}-byte file",
            path.display()
        ));
    }
    let mut der = vec![0u8; size as usize];
    file.seek(SeekFrom::Start(u64::from(at)))
        .and_then(|_| file.read_exact(&mut der))
        .map_err(|e| format!("cannot read the signature of {}: {e}", path.display()))?;
    let parsed = Parsed::from_der(&der)?;
    let Some(mut d) = Digester::new(parsed.file_digest_algorithm()) else {
        let alg = parsed.file_digest_algorithm().to_string();
        return Ok(Some(Signed {
            signature: parsed,
            digest: Err(format!("the file digest algorithm {alg} is not accepted")),
        }));
    };
    digest_header(&header.bytes, &mut d);
    let digested = file
        .seek(SeekFrom::Start(HEADER as u64))
        .and_then(|_| stream(&mut file, u64::from(at) - HEADER as u64, &mut d, None))
        .map(|()| d.finish())
        .map_err(|e| format!("cannot read {}: {e}", path.display()));
    Ok(Some(Signed { signature: parsed, digest: digested }))
}
