//! Catalog and minisign signature parsing and verification. Two paths: arbitrary bytes with an
//! arbitrary signature (the signature parser and verifier), and arbitrary bytes signed with the
//! example-only key (so the bytes pass step 1 and reach the catalog parser and every later
//! check, which only ever see signed bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use reconciler::catalog::{edit, TrustedKey, UnverifiedCatalog};

const PUBLIC: &str = include_str!("../../../examples/catalog/EXAMPLE-ONLY-catalog.pub");
const SECRET: &str = include_str!("../../../examples/catalog/EXAMPLE-ONLY-catalog.key");

fuzz_target!(|data: &[u8]| {
    let Ok(key) = TrustedKey::parse(PUBLIC) else { return };
    let Ok(name) = reconciler::model::ObjectName::new("fuzz") else { return };
    let now = chrono::Utc::now();
    // Bytes and a signature, split at the first NUL.
    let (bytes, sig) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], Some(String::from_utf8_lossy(&data[i + 1..]).into_owned())),
        None => (data, None),
    };
    let raw = UnverifiedCatalog::new(name.clone(), "fuzz", bytes.to_vec(), "fuzz.minisig", sig);
    let _ = raw.verify(std::slice::from_ref(&key), None, None, now);
    // The same bytes signed by the trusted key.
    let Ok(secret) = edit::SigningKey::from_text(SECRET, None) else { return };
    let Ok(signed) = edit::sign(bytes.to_vec(), &secret) else { return };
    let good = UnverifiedCatalog::new(name, "fuzz", signed.bytes.clone(), "fuzz.minisig", Some(signed.signature));
    let _ = good.verify(std::slice::from_ref(&key), Some(std::time::Duration::from_secs(3600)), None, now);
});
