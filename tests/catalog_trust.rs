//! Trust-chain link 1: a catalog is imported only when its minisign signature verifies against a
//! trusted key, it is unexpired, and it is neither a rollback nor a reused serial. Signatures
//! interoperate with the `minisign` command both ways.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use chrono::Utc;
use common::{catalog, catalog_with, future, key, patchops, sign, Key};
use reconciler::catalog::{CatalogError, SeenCatalog, Sha256, TrustedKey, UnverifiedCatalog, VerifiedCatalog};
use reconciler::model::ObjectName;

fn trusted(k: &Key) -> Vec<TrustedKey> {
    vec![TrustedKey::parse(&k.public).expect("key")]
}

fn unverified(bytes: &str, signature: Option<String>) -> UnverifiedCatalog {
    UnverifiedCatalog::new(
        ObjectName::new("vendor").expect("name"),
        "catalog.json",
        bytes.as_bytes().to_vec(),
        "catalog.json.minisig",
        signature,
    )
}

fn verify(
    bytes: &str,
    signature: Option<String>,
    keys: &[TrustedKey],
    seen: Option<SeenCatalog>,
) -> Result<VerifiedCatalog, CatalogError> {
    unverified(bytes, signature).verify(keys, None, seen, Utc::now())
}

#[test]
fn a_signed_unexpired_catalog_verifies() {
    let k = key();
    let c = catalog(5);
    let v = verify(&c, Some(sign(&k, c.as_bytes())), &trusted(&k), None).expect("verifies");
    assert_eq!(v.serial(), 5);
    assert_eq!(v.digest(), Sha256::digest(c.as_bytes()));
    assert_eq!(v.catalog().products.len(), 2);
    assert!(v.trusted_comment().contains("patchops catalog serial:5"), "{}", v.trusted_comment());
}

#[test]
fn a_missing_signature_is_refused() {
    let k = key();
    let err = verify(&catalog(1), None, &trusted(&k), None).expect_err("refused");
    assert!(matches!(err, CatalogError::MissingSignature { .. }));
    assert_eq!(
        err.to_string(),
        "catalog source `vendor`: no signature at catalog.json.minisig; an unsigned catalog is never imported (sign it with `patchops catalog sign` or `minisign -S`)"
    );
}

#[test]
fn a_malformed_signature_is_refused() {
    let k = key();
    let err = verify(&catalog(1), Some("not a signature".into()), &trusted(&k), None).expect_err("refused");
    assert!(matches!(err, CatalogError::MalformedSignature { .. }), "{err}");
    assert!(err.to_string().contains("catalog.json.minisig is not a minisign signature"), "{err}");
}

#[test]
fn a_signature_by_an_untrusted_key_is_refused() {
    let (signer, fleet_key) = (key(), key());
    let c = catalog(1);
    let err = verify(&c, Some(sign(&signer, c.as_bytes())), &trusted(&fleet_key), None).expect_err("refused");
    assert!(matches!(err, CatalogError::UntrustedKey { .. }), "{err}");
    let signer_id = TrustedKey::parse(&signer.public).expect("key").key_id();
    let trusted_id = TrustedKey::parse(&fleet_key.public).expect("key").key_id();
    assert_eq!(
        err.to_string(),
        format!("catalog source `vendor`: signed by key {signer_id}, which is not trusted (trusted: {trusted_id}); add the publisher's public key to `trustedKeys` only if you trust it")
    );
}

#[test]
fn a_catalog_altered_after_signing_is_refused() {
    let k = key();
    let c = catalog(1);
    let sig = sign(&k, c.as_bytes());
    let tampered = c.replace("\"size\":9728", "\"size\":9729");
    let err = verify(&tampered, Some(sig), &trusted(&k), None).expect_err("refused");
    assert!(matches!(err, CatalogError::BadSignature { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("does not verify: Signature verification failed; the catalog was altered after signing"),
        "{err}"
    );
}

#[test]
fn an_expired_catalog_is_refused() {
    let k = key();
    let c = catalog_with(3, "2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z");
    let err = verify(&c, Some(sign(&k, c.as_bytes())), &trusted(&k), None).expect_err("refused");
    assert!(matches!(err, CatalogError::Expired { serial: 3, .. }), "{err}");
    assert!(
        err.to_string().starts_with("catalog source `vendor`: catalog serial 3 expired at 2021-01-01 00:00:00 UTC"),
        "{err}"
    );
}

#[test]
fn a_catalog_older_than_max_age_is_refused() {
    let k = key();
    let c = catalog_with(3, "2026-01-01T00:00:00Z", &future(30));
    let err = unverified(&c, Some(sign(&k, c.as_bytes())))
        .verify(&trusted(&k), Some(std::time::Duration::from_secs(7 * 86400)), None, Utc::now())
        .expect_err("refused");
    assert!(matches!(err, CatalogError::TooOld { .. }), "{err}");
    assert!(err.to_string().contains("longer ago than maxAge 7 days"), "{err}");
}

#[test]
fn catalog_with_lower_serial_is_refused_as_rollback() {
    let k = key();
    let c = catalog(41);
    let seen = SeenCatalog { serial: 42, sha256: Sha256::digest(b"the catalog of serial 42") };
    let err = verify(&c, Some(sign(&k, c.as_bytes())), &trusted(&k), Some(seen)).expect_err("refused");
    assert!(matches!(err, CatalogError::Rollback { serial: 41, seen: 42, .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "catalog source `vendor`: catalog serial 41 is lower than 42, already seen in the state directory; refusing a possible rollback (if this is deliberate, see `patchops catalog forget --help`)"
    );
}

#[test]
fn a_different_catalog_under_a_seen_serial_is_refused() {
    let k = key();
    let c = catalog(42);
    let seen = SeenCatalog { serial: 42, sha256: Sha256::digest(b"another catalog") };
    let err = verify(&c, Some(sign(&k, c.as_bytes())), &trusted(&k), Some(seen)).expect_err("refused");
    assert!(matches!(err, CatalogError::SerialReused { serial: 42, .. }), "{err}");
    assert!(err.to_string().contains("was already seen with digest"), "{err}");
    // The same bytes under the same serial are fine (a re-run).
    let same = SeenCatalog { serial: 42, sha256: Sha256::digest(c.as_bytes()) };
    verify(&c, Some(sign(&k, c.as_bytes())), &trusted(&k), Some(same)).expect("same catalog again");
}

#[test]
fn signed_content_that_is_not_a_catalog_is_refused_after_the_signature() {
    // `patchops catalog sign` refuses invalid catalogs, so the publisher here is `minisign`.
    let dir = tempfile::tempdir().expect("tmp");
    assert!(minisign(&["-G", "-W", "-p", "m.pub", "-s", "m.key"], dir.path()).status.success());
    let c = catalog(1).replace("\"kind\":\"Catalog\"", "\"kind\":\"Catalog\",\"extra\":1");
    std::fs::write(dir.path().join("c.json"), &c).expect("write");
    assert!(minisign(&["-S", "-s", "m.key", "-m", "c.json"], dir.path()).status.success());
    let keys = vec![TrustedKey::parse(&std::fs::read_to_string(dir.path().join("m.pub")).expect("pub")).expect("key")];
    let sig = std::fs::read_to_string(dir.path().join("c.json.minisig")).expect("sig");
    let err = verify(&c, Some(sig), &keys, None).expect_err("refused");
    assert!(matches!(err, CatalogError::Malformed { .. }), "{err}");
    assert!(err.to_string().contains("the signed catalog is invalid: catalog.json: unknown field `extra`"), "{err}");
}

fn minisign(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    common::tool("minisign", "minisign")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the minisign command (Debian package minisign) is installed")
}

#[test]
fn signatures_made_by_the_minisign_command_verify_in_patchops() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = minisign(&["-G", "-W", "-p", "m.pub", "-s", "m.key"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c = catalog(9);
    std::fs::write(dir.path().join("catalog.json"), &c).expect("write");
    let out = minisign(&["-S", "-s", "m.key", "-m", "catalog.json"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Through the library...
    let pub_file = std::fs::read_to_string(dir.path().join("m.pub")).expect("pub");
    let sig = std::fs::read_to_string(dir.path().join("catalog.json.minisig")).expect("sig");
    let keys = vec![TrustedKey::parse(&pub_file).expect("minisign public key")];
    assert_eq!(verify(&c, Some(sig), &keys, None).expect("verifies").serial(), 9);
    // ...and through the command line.
    let run = patchops(dir.path(), &["catalog", "verify", "catalog.json", "--public-key", "m.pub"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    common::assert_contains(&run.stdout, "catalog catalog.json verified: serial 9, 2 products");
    // A key made by `minisign -G -W` also signs through patchops.
    let run = patchops(dir.path(), &["catalog", "sign", "catalog.json", "--key", "m.key"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = minisign(&["-V", "-p", "m.pub", "-m", "catalog.json"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

// Issue 13, item 9: a legacy signature is named as such, not as an altered catalog.
#[test]
fn a_legacy_minisign_signature_is_refused_as_legacy_with_how_to_re_sign() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = minisign(&["-G", "-W", "-p", "m.pub", "-s", "m.key"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c = catalog(9);
    std::fs::write(dir.path().join("catalog.json"), &c).expect("write");
    let out = minisign(&["-S", "-l", "-s", "m.key", "-m", "catalog.json"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run = patchops(dir.path(), &["catalog", "verify", "catalog.json", "--public-key", "m.pub"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "is a legacy minisign signature (made with `minisign -S -l` or a minisign before 0.8), which patchops does not accept; re-sign the catalog with `minisign -S` (without `-l`) or `patchops catalog sign`");
    assert!(!run.stderr.contains("altered"), "{}", run.stderr);
}

#[test]
fn catalogs_signed_by_patchops_verify_with_the_minisign_command() {
    let dir = tempfile::tempdir().expect("tmp");
    let run = patchops(dir.path(), &["catalog", "keygen", "--name", "team"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    common::assert_contains(&run.stdout, "trustedKeys:\n    - RW");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("team.key")).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the secret key is private");
    }
    let again = patchops(dir.path(), &["catalog", "keygen", "--name", "team"]);
    assert_eq!(again.code, 1);
    common::assert_contains(&again.stderr, "team.key exists; pass --force to overwrite it");

    std::fs::write(dir.path().join("catalog.json"), catalog(12)).expect("write");
    let run = patchops(dir.path(), &["catalog", "sign", "catalog.json", "--key", "team.key"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = minisign(&["-V", "-p", "team.pub", "-m", "catalog.json"], dir.path());
    assert!(out.status.success(), "minisign -V: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("patchops catalog serial:12"));

    std::fs::write(dir.path().join("bad.json"), "{\"serial\": 1}").expect("write");
    let run = patchops(dir.path(), &["catalog", "sign", "bad.json", "--key", "team.key"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "bad.json: refusing to sign an invalid catalog: missing field `apiVersion`");
    assert!(!dir.path().join("bad.json.minisig").exists(), "nothing is written for a refused catalog");
}

#[test]
fn the_cli_verify_reports_a_tampered_catalog() {
    let dir = tempfile::tempdir().expect("tmp");
    let k = key();
    std::fs::write(dir.path().join("k.pub"), &k.public_file).expect("write");
    let c = catalog(3);
    std::fs::write(dir.path().join("catalog.json.minisig"), sign(&k, c.as_bytes())).expect("write");
    std::fs::write(dir.path().join("catalog.json"), c.replace("Vendor App", "Evil App")).expect("write");
    let run = patchops(dir.path(), &["catalog", "verify", "catalog.json", "--public-key", "k.pub"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "does not verify");
}

#[test]
fn an_encrypted_secret_key_asks_for_its_password() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut child = common::tool("minisign", "minisign")
        .args(["-G", "-p", "enc.pub", "-s", "enc.key"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("minisign");
    {
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(b"correct horse\ncorrect horse\n").expect("password");
    }
    assert!(child.wait().expect("wait").success());
    std::fs::write(dir.path().join("catalog.json"), catalog(4)).expect("write");
    let run = patchops(dir.path(), &["catalog", "sign", "catalog.json", "--key", "enc.key"]);
    assert_eq!(run.code, 1);
    common::assert_contains(&run.stderr, "the secret key is encrypted with a password; pass the password through an environment variable with --password-env NAME");
    assert!(!dir.path().join("catalog.json.minisig").exists());
}

/// A long-running process reuses an earlier verification of the same bytes and signature (the
/// signature check and the parse), never the checks that depend on the time or the history.
mod reuse {
    use super::*;

    fn verify_after(
        earlier: &VerifiedCatalog,
        bytes: &str,
        signature: String,
        keys: &[TrustedKey],
        seen: Option<SeenCatalog>,
        now: chrono::DateTime<Utc>,
    ) -> Result<VerifiedCatalog, CatalogError> {
        unverified(bytes, Some(signature)).verify_reusing(keys, None, seen, now, Some(earlier))
    }

    #[test]
    fn the_same_bytes_and_signature_reuse_the_verification() {
        let k = key();
        let c = catalog(3);
        let sig = sign(&k, c.as_bytes());
        let first = verify(&c, Some(sig.clone()), &trusted(&k), None).expect("verifies");
        let again = verify_after(&first, &c, sig, &trusted(&k), None, Utc::now()).expect("verifies");
        assert!(again.shares_verification(&first));
        assert_eq!((again.serial(), again.digest()), (first.serial(), first.digest()));
    }

    #[test]
    fn other_bytes_a_new_signature_or_another_trust_set_are_verified_afresh() {
        let (k, other) = (key(), key());
        let c = catalog(3);
        let first = verify(&c, Some(sign(&k, c.as_bytes())), &trusted(&k), None).expect("verifies");

        // New bytes, correctly signed: verified afresh.
        let newer = catalog(4);
        let v = verify_after(&first, &newer, sign(&k, newer.as_bytes()), &trusted(&k), None, Utc::now()).expect("ok");
        assert!(!v.shares_verification(&first));
        assert_eq!(v.serial(), 4);

        // New bytes under the old signature: the check runs, and refuses.
        let err = verify_after(&first, &newer, sign(&k, c.as_bytes()), &trusted(&k), None, Utc::now()).expect_err("no");
        assert!(matches!(err, CatalogError::BadSignature { .. }), "{err}");

        // The same bytes re-signed by another key the fleet does not trust: refused, although
        // the bytes are the ones verified before.
        let err = verify_after(&first, &c, sign(&other, c.as_bytes()), &trusted(&k), None, Utc::now()).expect_err("no");
        assert!(matches!(err, CatalogError::UntrustedKey { .. }), "{err}");

        // The signer's key no longer trusted: the same bytes and signature are refused.
        let err = verify_after(&first, &c, sign(&k, c.as_bytes()), &trusted(&other), None, Utc::now()).expect_err("no");
        assert!(matches!(err, CatalogError::UntrustedKey { .. }), "{err}");
    }

    #[test]
    fn a_key_with_the_same_id_but_other_bytes_does_not_reuse() {
        use base64::Engine;
        let k = key();
        let c = catalog(3);
        let sig = sign(&k, c.as_bytes());
        let first = verify(&c, Some(sig.clone()), &trusted(&k), None).expect("verifies");
        // Same key id (bytes 2..10 of the key), other public key bytes: an impostor key.
        let line = k.public.lines().map(str::trim).find(|l| !l.starts_with("untrusted comment:")).unwrap();
        let mut raw = base64::engine::general_purpose::STANDARD.decode(line).unwrap();
        raw[20] ^= 0xff;
        let impostor = TrustedKey::parse(&base64::engine::general_purpose::STANDARD.encode(&raw)).expect("key");
        assert_eq!(impostor.key_id(), trusted(&k)[0].key_id());
        let err = verify_after(&first, &c, sig, &[impostor], None, Utc::now()).expect_err("refused");
        assert!(matches!(err, CatalogError::BadSignature { .. }), "{err}");
    }

    #[test]
    fn expiry_and_rollback_are_checked_again_on_every_reuse() {
        let k = key();
        let c = catalog_with(3, "2026-11-01T00:00:00Z", &future(2));
        let sig = sign(&k, c.as_bytes());
        let first = verify(&c, Some(sig.clone()), &trusted(&k), None).expect("verifies");
        // Three days later, the same catalog has expired.
        let later = Utc::now() + chrono::Duration::days(3);
        let err = verify_after(&first, &c, sig.clone(), &trusted(&k), None, later).expect_err("expired");
        assert!(matches!(err, CatalogError::Expired { .. }), "{err}");
        // A higher serial recorded since (another apply): now a rollback.
        let seen = SeenCatalog { serial: 4, sha256: Sha256::digest(b"other") };
        let err = verify_after(&first, &c, sig.clone(), &trusted(&k), Some(seen), Utc::now()).expect_err("rollback");
        assert!(matches!(err, CatalogError::Rollback { .. }), "{err}");
        // The same serial recorded with other content: an equivocation.
        let seen = SeenCatalog { serial: 3, sha256: Sha256::digest(b"other") };
        let err = verify_after(&first, &c, sig, &trusted(&k), Some(seen), Utc::now()).expect_err("reused");
        assert!(matches!(err, CatalogError::SerialReused { .. }), "{err}");
    }
}
