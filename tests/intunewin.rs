//! `.intunewin` packages: made by `patchops package intunewin`, then opened independently of the
//! packer — `unzip` for the zips, `openssl` for the HMAC and the AES-256-CBC decryption — and by
//! `patchops package unpack`, which refuses an altered package.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use sha2::Digest;

fn tool(cmd: &str, args: &[&str], dir: &Path) -> Vec<u8> {
    let out = Command::new(cmd).args(args).current_dir(dir).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn element(xml: &str, name: &str) -> String {
    let start = xml.find(&format!("<{name}>")).unwrap_or_else(|| panic!("no <{name}> in {xml}")) + name.len() + 2;
    let end = xml[start..].find(&format!("</{name}>")).unwrap() + start;
    xml[start..end].to_string()
}

fn b64hex(xml: &str, name: &str) -> String {
    common::hex(&base64::engine::general_purpose::STANDARD.decode(element(xml, name)).unwrap())
}

#[test]
fn a_package_opens_with_unzip_and_openssl_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let msi = common::workspace_root().join("examples/catalog/installers/mozilla.firefox-131.0.2-x64.msi");
    let original = std::fs::read(&msi).unwrap();
    let run = common::patchops(d, &["package", "intunewin", msi.to_str().unwrap(), "--out", "ff.intunewin"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    common::assert_contains(&run.stdout, "MSI {3A9B6C1E-4F2D-4C1A-9B0E-1F7C2D3E4A02} 131.0.2 (Mozilla), perMachine");
    assert!(!run.stdout.contains("encryptionKey"), "keys are shown only with --show-keys");

    // The outer zip, read by unzip.
    // `unzip -t` checks every entry's CRC-32 (the content's is patched in after the MAC).
    let tested = String::from_utf8(tool("unzip", &["-t", "ff.intunewin"], d)).unwrap();
    common::assert_contains(&tested, "No errors detected");
    let listing = String::from_utf8(tool("unzip", &["-l", "ff.intunewin"], d)).unwrap();
    common::assert_contains(&listing, "IntuneWinPackage/Contents/IntunePackage.intunewin");
    common::assert_contains(&listing, "IntuneWinPackage/Metadata/Detection.xml");
    let xml = String::from_utf8(tool("unzip", &["-p", "ff.intunewin", "IntuneWinPackage/Metadata/Detection.xml"], d))
        .unwrap();
    common::assert_contains(&xml, "<ApplicationInfo xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" ToolVersion=\"1.8.6.0\">");
    assert_eq!(element(&xml, "SetupFile"), "mozilla.firefox-131.0.2-x64.msi");
    assert_eq!(element(&xml, "FileName"), "IntunePackage.intunewin");
    assert_eq!(element(&xml, "ProfileIdentifier"), "ProfileVersion1");
    assert_eq!(element(&xml, "FileDigestAlgorithm"), "SHA256");
    // MsiInfo comes from the MSI itself (its Property table and summary information).
    assert_eq!(element(&xml, "MsiProductCode"), "{3A9B6C1E-4F2D-4C1A-9B0E-1F7C2D3E4A02}");
    assert_eq!(element(&xml, "MsiProductVersion"), "131.0.2");
    assert_eq!(element(&xml, "MsiPublisher"), "Mozilla");
    assert_eq!(element(&xml, "MsiExecutionContext"), "System");
    assert!(element(&xml, "MsiPackageCode").starts_with('{'));

    let content = tool("unzip", &["-p", "ff.intunewin", "IntuneWinPackage/Contents/IntunePackage.intunewin"], d);
    let (mac, rest) = content.split_at(32);
    let (iv, ciphertext) = rest.split_at(16);
    assert_eq!(common::hex(iv), b64hex(&xml, "InitializationVector"));
    assert_eq!(common::hex(mac), b64hex(&xml, "Mac"));
    std::fs::write(d.join("iv-and-ciphertext"), rest).unwrap();
    std::fs::write(d.join("ciphertext"), ciphertext).unwrap();

    // HMAC-SHA256(macKey, IV ‖ ciphertext), by openssl.
    let mac_key = b64hex(&xml, "MacKey");
    let hmac = tool(
        "openssl",
        &["dgst", "-sha256", "-mac", "HMAC", "-macopt", &format!("hexkey:{mac_key}"), "-binary", "iv-and-ciphertext"],
        d,
    );
    assert_eq!(common::hex(&hmac), common::hex(mac));

    // AES-256-CBC with PKCS#7 padding, by openssl.
    let key = b64hex(&xml, "EncryptionKey");
    tool(
        "openssl",
        &["enc", "-d", "-aes-256-cbc", "-K", &key, "-iv", &common::hex(iv), "-in", "ciphertext", "-out", "inner.zip"],
        d,
    );
    let inner = std::fs::read(d.join("inner.zip")).unwrap();
    assert_eq!(inner.len().to_string(), element(&xml, "UnencryptedContentSize"));
    assert_eq!(common::hex(&sha2::Sha256::digest(&inner)), b64hex(&xml, "FileDigest"));
    let setup = tool("unzip", &["-p", "inner.zip", "mozilla.firefox-131.0.2-x64.msi"], d);
    assert!(setup == original, "the installer comes back byte for byte");

    // And patchops's own unpack agrees.
    let run = common::patchops(d, &["package", "unpack", "ff.intunewin", "--out", "."]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    common::assert_contains(
        &run.stdout,
        "MAC and SHA-256 verified; wrote ./mozilla.firefox-131.0.2-x64.msi (9728 bytes)",
    );
}

/// Rewrites `package` with `alter` applied to the encrypted content (the zip's checksums are
/// recomputed, so only patchops's own checks can notice).
fn rewrite(package: &Path, alter: impl Fn(&mut Vec<u8>)) {
    use std::io::{Read, Write};
    let mut archive = zip::ZipArchive::new(std::fs::File::open(package).unwrap()).unwrap();
    let mut entries = Vec::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).unwrap();
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        entries.push((f.name().unwrap().to_string(), data));
    }
    let mut w = zip::ZipWriter::new(std::fs::File::create(package).unwrap());
    for (name, mut data) in entries {
        if name.ends_with("IntunePackage.intunewin") {
            alter(&mut data);
        }
        w.start_file(name, zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored))
            .unwrap();
        w.write_all(&data).unwrap();
    }
    w.finish().unwrap();
}

fn pack_7zip(d: &Path) {
    let msi = common::workspace_root().join("examples/catalog/installers/igorpavlov.7zip-24.08-x64.msi");
    assert_eq!(common::patchops(d, &["package", "intunewin", msi.to_str().unwrap(), "--out", "p.intunewin"]).code, 0);
    std::fs::create_dir_all(d.join("out")).unwrap();
}

#[test]
fn an_altered_package_is_refused_by_unpack_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // One ciphertext byte changed: the HMAC no longer matches.
    pack_7zip(d);
    rewrite(&d.join("p.intunewin"), |data| data[48 + 100] ^= 0x01);
    let run = common::patchops(d, &["package", "unpack", "p.intunewin", "--out", "out"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "error: p.intunewin: the content's HMAC does not match Detection.xml's Mac; the package was altered or is corrupt");
    assert_eq!(std::fs::read_dir(d.join("out")).unwrap().count(), 0, "nothing was written");

    // A byte changed in place, zip checksum and all: the zip layer notices first.
    pack_7zip(d);
    let mut bytes = std::fs::read(d.join("p.intunewin")).unwrap();
    let content = tool("unzip", &["-p", "p.intunewin", "IntuneWinPackage/Contents/IntunePackage.intunewin"], d);
    let at = bytes.windows(64).position(|w| w == &content[..64]).expect("entry data found") + 148;
    bytes[at] ^= 0x01;
    std::fs::write(d.join("p.intunewin"), &bytes).unwrap();
    let run = common::patchops(d, &["package", "unpack", "p.intunewin", "--out", "out"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "error: p.intunewin is not a valid .intunewin package: IntuneWinPackage/Contents/IntunePackage.intunewin fails its zip checksum");
    assert_eq!(std::fs::read_dir(d.join("out")).unwrap().count(), 0, "nothing was written");
}

#[test]
fn a_file_that_is_not_an_msi_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fake.msi"), b"not an msi").unwrap();
    let run = common::patchops(dir.path(), &["package", "intunewin", "fake.msi"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "error: fake.msi: not a readable Windows Installer package: ");
}

#[test]
fn a_package_is_named_as_microsofts_tool_names_it_and_unpack_makes_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let msi = common::workspace_root().join("examples/catalog/installers/igorpavlov.7zip-24.08-x64.msi");
    let run = common::patchops(d, &["package", "intunewin", msi.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(d.join("igorpavlov.7zip-24.08-x64.intunewin").is_file(), "setup.msi → setup.intunewin");
    let run = common::patchops(d, &["package", "unpack", "igorpavlov.7zip-24.08-x64.intunewin", "--out", "new/dir"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(d.join("new/dir/igorpavlov.7zip-24.08-x64.msi").is_file(), "--out DIR is created");
    // A refused package leaves no directory behind.
    std::fs::write(d.join("bad.intunewin"), b"not a zip").unwrap();
    let run = common::patchops(d, &["package", "unpack", "bad.intunewin", "--out", "never"]);
    assert_eq!(run.code, 1);
    assert!(!d.join("never").exists());
}
