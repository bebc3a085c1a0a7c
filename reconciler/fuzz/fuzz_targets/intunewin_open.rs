//! Opening a .intunewin (Detection.xml, MAC, decryption, digest, inner zip): any bytes as a
//! package must be refused or opened, never crash, and never leave output behind on refusal.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let package = dir.path().join("p.intunewin");
    let out = dir.path().join("out");
    if std::fs::write(&package, data).is_err() || std::fs::create_dir(&out).is_err() {
        return;
    }
    let opened = reconciler::platform::intune::intunewin::unpack(&package, &out);
    let left = std::fs::read_dir(&out).map(|d| d.count()).unwrap_or(0);
    assert!(opened.is_ok() || left == 0, "a refused package left {left} files behind");
});
