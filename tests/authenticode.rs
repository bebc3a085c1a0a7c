//! Authenticode in Rust, checked against an independent implementation: every script and CAB
//! patchops signs verifies with `osslsigncode verify`, and what osslsigncode signs verifies with
//! patchops. Certificates and a CA are made here by `openssl`; the RFC 3161 time-stamping
//! authority is `openssl ts -reply` behind an HTTP server on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use std::path::{Path, PathBuf};

use chrono::{Duration, Utc};
use reconciler::authenticode::{self, CodeSigner, SignatureCheck};
use reconciler::model::{SecretRef, Secrets};

fn openssl(args: &[&str], dir: &Path) {
    let out = common::tool("openssl", "openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A self-signed certificate valid for `days` with `extensions`: (key, certificate, both in one PEM).
fn self_signed(dir: &Path, name: &str, days: u32, extensions: &[&str]) -> (PathBuf, PathBuf, PathBuf) {
    let mut args = vec!["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout"];
    let (key, cert) = (format!("{name}.key"), format!("{name}.crt"));
    let (days, subject) = (days.to_string(), format!("/CN=patchops test {name}"));
    args.extend([key.as_str(), "-out", cert.as_str(), "-days", days.as_str(), "-subj", subject.as_str()]);
    for e in extensions {
        args.extend(["-addext", e]);
    }
    openssl(&args, dir);
    combine(dir, name, &[&dir.join(&key), &dir.join(&cert)])
}

fn combine(dir: &Path, name: &str, parts: &[&Path]) -> (PathBuf, PathBuf, PathBuf) {
    let both = dir.join(format!("{name}.pem"));
    let mut text = Vec::new();
    // Certificate first (patchops signs with the first), then the key, then any chain.
    for p in [parts[1]].iter().chain([parts[0]].iter()).chain(parts[2..].iter()) {
        text.extend(std::fs::read(p).unwrap());
    }
    std::fs::write(&both, text).unwrap();
    (parts[0].to_path_buf(), parts[1].to_path_buf(), both)
}

const CODE_SIGNING: &[&str] = &["extendedKeyUsage=codeSigning", "keyUsage=digitalSignature"];

fn signer(pem: &Path) -> CodeSigner {
    CodeSigner::new(&SecretRef::File(pem.display().to_string()), &Secrets::with_env(|_| None), Utc::now())
        .expect("a fit certificate")
}

fn roots(cert: &Path) -> Vec<Vec<u8>> {
    authenticode::pem_certificates(&std::fs::read(cert).unwrap()).unwrap()
}

fn script() -> reconciler::script::Script<reconciler::script::Unsigned> {
    let detection = reconciler::catalog::Detection::Registry {
        key: r"HKLM\SOFTWARE\Vendor\Tool".into(),
        value: "Version".into(),
        version: None,
    };
    reconciler::script::detection("vendor.tool", &"24.08".parse().unwrap(), &detection)
}

/// A plain cabinet holding `payload` (as makecab and the emulated WSUS server make them).
fn cabinet(path: &Path, payload: &[u8]) {
    let mut builder = cab::CabinetBuilder::new();
    builder.add_folder(cab::CompressionType::MsZip).add_file("setup.msi");
    let mut writer = builder.build(std::fs::File::create(path).unwrap()).unwrap();
    while let Some(mut entry) = writer.next_file().unwrap() {
        std::io::Write::write_all(&mut entry, payload).unwrap();
    }
    writer.finish().unwrap();
}

fn payload() -> Vec<u8> {
    (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

fn assert_good(check: &SignatureCheck, what: &str) {
    assert!(check.signed && check.digest_matches && check.chain_trusted, "{what}: {check:?}");
}

#[test]
fn scripts_and_cabs_patchops_signs_verify_with_osslsigncode_and_altered_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, pem) = self_signed(dir.path(), "signing", 2, CODE_SIGNING);
    let signer = signer(&pem);

    let signed = signer.sign_script(script()).unwrap();
    let ps1 = dir.path().join("detect.ps1");
    std::fs::write(&ps1, signed.text()).unwrap();
    let said = common::osslsigncode_verifies(&ps1, &cert, &[]);
    common::assert_contains(&said, "Message digest algorithm  : SHA256");
    assert_good(&authenticode::inspect(&ps1, &roots(&cert), Utc::now()).unwrap(), "the script");
    assert!(signed.text().ends_with("# SIG # End signature block\r\n"), "CRLF block at the end, as signtool writes it");

    let unsigned = dir.path().join("unsigned.cab");
    cabinet(&unsigned, &payload());
    let cab = dir.path().join("signed.cab");
    signer.sign_cab(&unsigned, &cab).unwrap();
    common::osslsigncode_verifies(&cab, &cert, &[]);
    assert_good(&authenticode::inspect(&cab, &roots(&cert), Utc::now()).unwrap(), "the CAB");
    let out = common::tool("cabextract", "cabextract").arg("-t").arg(&cab).output().unwrap();
    assert!(out.status.success(), "the signed CAB is still a cabinet: {}", String::from_utf8_lossy(&out.stdout));

    // One changed byte of the compressed data: neither verifier accepts it.
    let mut bytes = std::fs::read(&cab).unwrap();
    bytes[2000] ^= 0x01;
    let altered = dir.path().join("altered.cab");
    std::fs::write(&altered, &bytes).unwrap();
    let out = common::tool("osslsigncode", "osslsigncode")
        .args(["verify", "-CAfile"])
        .arg(&cert)
        .arg("-in")
        .arg(&altered)
        .output()
        .unwrap();
    assert!(!out.status.success(), "osslsigncode refuses the altered CAB");
    let check = authenticode::inspect(&altered, &roots(&cert), Utc::now()).unwrap();
    assert!(check.signed && !check.digest_matches && !check.chain_trusted, "{check:?}");
    common::assert_contains(check.chain_error.as_deref().unwrap_or_default(), "MISMATCH");

    // A changed script line, and a signature block with a flipped base64 character.
    let text = signed.text().replacen("$wanted", "$Wanted", 1);
    assert!(!authenticode::inspect_script(&text, &roots(&cert), Utc::now()).digest_matches);
    let lines: Vec<&str> = signed.text().split("\r\n").collect();
    let at = lines.iter().position(|l| l.starts_with("# SIG # Begin")).unwrap() + 10;
    let mut tampered: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let flipped = if tampered[at].as_bytes()[20] == b'A' { "B" } else { "A" };
    tampered[at].replace_range(20..21, flipped);
    let check = authenticode::inspect_script(&tampered.join("\r\n"), &roots(&cert), Utc::now());
    assert!(check.signed && !check.chain_trusted, "a tampered signature does not verify: {check:?}");

    // An uncertified signer: the chain check says why, the digest still matches.
    let (_, other, _) = self_signed(dir.path(), "other", 2, CODE_SIGNING);
    let check = authenticode::inspect(&cab, &roots(&other), Utc::now()).unwrap();
    assert!(check.digest_matches && !check.chain_trusted && check.self_signed, "{check:?}");
    assert_eq!(check.chain_error.as_deref(), Some("self-signed certificate"));
}

/// `osslsigncode sign` with SHA-256.
fn osslsigncode_sign(cert: &Path, key: &Path, input: &Path, output: &Path) {
    let out = common::tool("osslsigncode", "osslsigncode")
        .arg("sign")
        .arg("-certs")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .args(["-h", "sha256", "-in"])
        .arg(input)
        .arg("-out")
        .arg(output)
        .output()
        .unwrap();
    assert!(out.status.success(), "osslsigncode sign: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn signatures_osslsigncode_makes_are_accepted_by_patchops() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert, _) = self_signed(dir.path(), "signing", 2, CODE_SIGNING);
    let sign = |input: &Path, output: &Path| osslsigncode_sign(&cert, &key, input, output);
    let ps1 = dir.path().join("plain.ps1");
    std::fs::write(&ps1, script().text()).unwrap();
    let signed_ps1 = dir.path().join("signed.ps1");
    sign(&ps1, &signed_ps1);
    let check = authenticode::inspect(&signed_ps1, &roots(&cert), Utc::now()).unwrap();
    assert_good(&check, "osslsigncode's script");
    let (subject, _) = check.signer.clone().unwrap();
    assert_eq!(subject, "/CN=patchops test signing");

    let cab = dir.path().join("plain.cab");
    cabinet(&cab, &payload());
    let signed = dir.path().join("signed.cab");
    sign(&cab, &signed);
    assert_good(&authenticode::inspect(&signed, &roots(&cert), Utc::now()).unwrap(), "osslsigncode's CAB");
    assert!(!authenticode::inspect(&cab, &roots(&cert), Utc::now()).unwrap().signed, "the input is unsigned");

    // A TLS certificate can sign (osslsigncode does not judge it), but Windows does not take
    // its signature for code: neither does patchops.
    let (tls_key, tls, _) = self_signed(dir.path(), "tls", 2, &["extendedKeyUsage=serverAuth"]);
    osslsigncode_sign(&tls, &tls_key, &ps1, &dir.path().join("tls.ps1"));
    let check = authenticode::inspect(&dir.path().join("tls.ps1"), &roots(&tls), Utc::now()).unwrap();
    assert!(check.digest_matches && !check.chain_trusted, "{check:?}");
    common::assert_contains(check.chain_error.as_deref().unwrap_or_default(), "not for code signing");
    // patchops makes the same reserve and digest: its signature of the same cabinet differs from
    // osslsigncode's only in the signature itself (the header, the content and the digest agree).
    let ours = dir.path().join("ours.cab");
    signer(&combine(dir.path(), "again", &[&key, &cert]).2).sign_cab(&cab, &ours).unwrap();
    let (theirs, mine) = (std::fs::read(&signed).unwrap(), std::fs::read(&ours).unwrap());
    let at = u32::from_le_bytes(theirs[44..48].try_into().unwrap()) as usize;
    assert_eq!(theirs[..48], mine[..48], "the same header up to the signature's length");
    assert_eq!(theirs[52..at], mine[52..at], "the same cabinet after it");
}

#[test]
fn a_certificate_issued_by_a_ca_chains_to_that_root_and_only_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_, ca, _) = self_signed(d, "ca", 30, &["basicConstraints=critical,CA:TRUE", "keyUsage=keyCertSign,cRLSign"]);
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=patchops test leaf/O=Example",
        ],
        d,
    );
    std::fs::write(d.join("leaf.ext"), "extendedKeyUsage=codeSigning\nkeyUsage=digitalSignature\n").unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.crt",
        ],
        d,
    );
    let (_, leaf, pem) = combine(d, "leaf", &[&d.join("leaf.key"), &d.join("leaf.crt"), &ca]);
    let signer = signer(&pem);
    let signed = signer.sign_script(script()).unwrap();
    let ps1 = d.join("chained.ps1");
    std::fs::write(&ps1, signed.text()).unwrap();
    common::osslsigncode_verifies(&ps1, &ca, &[]);

    let check = authenticode::inspect(&ps1, &roots(&ca), Utc::now()).unwrap();
    assert_good(&check, "the CA-issued signature");
    assert!(!check.self_signed);
    assert_eq!(check.signer.as_ref().map(|s| s.0.as_str()), Some("/CN=patchops test leaf/O=Example"));
    let (_, stranger, _) = self_signed(d, "stranger", 30, &["basicConstraints=critical,CA:TRUE"]);
    let check = authenticode::inspect(&ps1, &roots(&stranger), Utc::now()).unwrap();
    assert!(!check.chain_trusted, "{check:?}");
    assert_eq!(check.chain_error.as_deref(), Some("self-signed certificate in certificate chain"));
    assert!(
        authenticode::verify(&ps1, &leaf, chrono::Utc::now()).is_ok(),
        "the leaf itself, trusted directly, is a trust anchor"
    );
}

#[tokio::test]
async fn a_timestamp_from_an_rfc3161_authority_keeps_a_signature_valid_after_the_certificate_expires() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, pem) = self_signed(dir.path(), "signing", 2, CODE_SIGNING);
    let (url, tsa) = common::time_stamping_authority(dir.path());
    let stamping = signer(&pem).with_timestamps(&url.parse().unwrap()).unwrap();

    let plain = stamping.sign_script(script()).unwrap();
    let stamped = stamping.timestamp(plain.clone()).await.expect("timestamped");
    assert_ne!(plain.text(), stamped.text());
    let ps1 = dir.path().join("stamped.ps1");
    std::fs::write(&ps1, stamped.text()).unwrap();
    let tsa_arg = tsa.display().to_string();
    let said = common::osslsigncode_verifies(&ps1, &cert, &["-TSA-CAfile", &tsa_arg]);
    common::assert_contains(&said, "Timestamp Server Signature verification: ok");

    let mut trusted = roots(&cert);
    trusted.extend(roots(&tsa));
    let now = authenticode::inspect(&ps1, &trusted, Utc::now()).unwrap();
    assert_good(&now, "the timestamped script");
    let stamp = now.timestamp.expect("a trusted timestamp");
    assert!((Utc::now() - stamp).num_seconds().abs() < 120, "{stamp}");

    // Three days on, the two-day certificate has expired: the timestamp keeps the signature good.
    let later = Utc::now() + Duration::days(3);
    let check = authenticode::inspect(&ps1, &trusted, later).unwrap();
    assert!(check.chain_trusted && check.timestamped(), "{check:?}");
    assert_eq!(check.chain_error.as_deref(), Some("certificate has expired"));
    let unstamped = authenticode::inspect_script(plain.text(), &trusted, later);
    assert!(!unstamped.chain_trusted && !unstamped.timestamped(), "{unstamped:?}");
    // Without trust in the authority, the timestamp counts for nothing.
    let check = authenticode::inspect(&ps1, &roots(&cert), later).unwrap();
    assert!(!check.chain_trusted && !check.timestamped(), "{check:?}");

    // What a platform client hands over is signed and timestamped in one step.
    let delivered = reconciler::platform::ScriptSigning::Signed(stamping).deliver(script()).await.unwrap();
    let reconciler::platform::Delivered::Signed(_) = &delivered else { panic!("signed") };
    assert!(authenticode::inspect_script(delivered.text(), &trusted, later).timestamped());

    // An authority that is down fails the signing, naming it; nothing unstamped slips through.
    let down = signer(&pem).with_timestamps(&"http://127.0.0.1:9/tsa".parse().unwrap()).unwrap();
    let err = reconciler::platform::ScriptSigning::Signed(down).deliver(script()).await.expect_err("no authority");
    common::assert_contains(&err.to_string(), "POST http://127.0.0.1:9/tsa");
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused_before_anything_is_signed() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, _) = self_signed(dir.path(), "one", 2, CODE_SIGNING);
    let (key, _, _) = self_signed(dir.path(), "two", 2, CODE_SIGNING);
    let (_, _, mixed) = combine(dir.path(), "mixed", &[&key, &cert]);
    let err = CodeSigner::new(&SecretRef::File(mixed.display().to_string()), &Secrets::with_env(|_| None), Utc::now())
        .expect_err("a key of another certificate");
    common::assert_contains(&err.to_string(), "does not belong to its (first) certificate");
    assert_eq!(err.reason(), "SigningCertificateUnfit");
}
