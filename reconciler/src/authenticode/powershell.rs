//! PowerShell's signature format: the script's text, without its signature block, hashed as
//! UTF-16LE (what PowerShell's Subject Interface Package hashes), and the PKCS #7 signature
//! appended in base64 as comment lines:
//!
//! ```text
//! <script>␍␊# SIG # Begin signature block␍␊# <64 base64 characters>␍␊…␍␊# SIG # End signature block␍␊
//! ```

use base64::Engine as _;

const BEGIN: &str = "# SIG # Begin signature block";
const END: &str = "# SIG # End signature block";

/// The largest signature block read back (a signature with a chain and a timestamp is a few
/// kilobytes).
const MAX_BLOCK: usize = 1 << 20;

/// The SHA-256 of `body` (a script without signature block) as PowerShell hashes it.
pub fn digest(body: &str) -> Vec<u8> {
    let mut d = super::pkcs7::Digester::Sha256(Default::default());
    let mut buffer = Vec::with_capacity(8192);
    for unit in body.encode_utf16() {
        buffer.extend_from_slice(&unit.to_le_bytes());
        if buffer.len() >= 8192 {
            d.update(&buffer);
            buffer.clear();
        }
    }
    d.update(&buffer);
    d.finish()
}

/// `body` with `signature` (DER) appended as a signature block.
pub fn append(body: &str, signature: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(signature);
    let mut out = String::with_capacity(body.len() + encoded.len() * 3 / 2 + 80);
    out.push_str(body);
    out.push_str("\r\n");
    out.push_str(BEGIN);
    for line in encoded.as_bytes().chunks(64) {
        out.push_str("\r\n# ");
        // base64 is ASCII.
        out.push_str(&String::from_utf8_lossy(line));
    }
    out.push_str("\r\n");
    out.push_str(END);
    out.push_str("\r\n");
    out
}

/// A script split into its body and its signature block, if it has one.
pub struct Split<'a> {
    /// The text before the signature block (what the signature covers).
    pub body: &'a str,
    /// The DER signature, when there is a well-formed block.
    pub signature: Option<Result<Vec<u8>, String>>,
}

/// Splits `text` at its signature block: the first line that is exactly the block's first
/// line (the line break before it belongs to the block).
pub fn split(text: &str) -> Split<'_> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\r', '\n']);
        if bare == BEGIN && offset > 0 {
            let before = &text[..offset];
            let body = before.strip_suffix("\r\n").or_else(|| before.strip_suffix('\n')).unwrap_or(before);
            return Split { body, signature: Some(decode_block(&text[offset..])) };
        }
        offset += line.len();
    }
    Split { body: text, signature: None }
}

fn decode_block(block: &str) -> Result<Vec<u8>, String> {
    if block.len() > MAX_BLOCK {
        return Err(format!("the signature block is larger than {} KiB", MAX_BLOCK >> 10));
    }
    let mut encoded = String::new();
    let mut ended = false;
    let mut lines = block.lines().skip(1);
    for line in lines.by_ref() {
        if line == END {
            ended = true;
            break;
        }
        let Some(chunk) = line.strip_prefix("# ") else {
            return Err(format!("the signature block has a line that is not a comment: {line:?}"));
        };
        encoded.push_str(chunk.trim_end());
    }
    if !ended {
        return Err("the signature block has no end line".into());
    }
    if lines.any(|l| !l.trim().is_empty()) {
        return Err("there is text after the signature block, which the signature does not cover".into());
    }
    base64::engine::general_purpose::STANDARD
        .decode(encoded.as_bytes())
        .map_err(|e| format!("the signature block is not base64: {e}"))
}
