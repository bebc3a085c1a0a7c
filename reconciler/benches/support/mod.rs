//! What the benchmarks share: a large installer-like file of pseudo-random bytes.

use std::io::Write;

use sha2::Digest;

/// Writes `mib` MiB of xorshift bytes to `path` in 1 MiB blocks; returns their SHA-256.
#[allow(dead_code)] // Not every benchmark writes a file.
pub fn pseudo_random_file(path: &std::path::Path, mib: u64) -> [u8; 32] {
    let mut hasher = sha2::Sha256::new();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        hasher.update(&block);
        out.write_all(&block).expect("write");
    }
    out.flush().expect("flush");
    // Written back before anything is measured: otherwise the kernel flushes the source file
    // during the measurement, competing with the cache writes for the disk.
    out.get_ref().sync_all().expect("sync");
    hasher.finalize().into()
}

/// The `setup.exe` of a benchmark as patchops would publish it: product `product`, version
/// `version`, content of `size` bytes with digest `sha`.
#[allow(dead_code)] // Not every benchmark publishes.
pub fn exe_object(
    product: &str,
    version: &str,
    display: &str,
    sha: reconciler::catalog::Sha256,
    size: u64,
) -> reconciler::platform::DesiredObject {
    use reconciler::platform::{DesiredObject, FieldMap, TrackingMarker};
    let fields: FieldMap =
        [("displayName", display), ("publisher", "Bench"), ("version", version), ("installCommand", "setup.exe /S")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
    DesiredObject {
        marker: TrackingMarker {
            managed_by: "patchops".into(),
            product: reconciler::model::ProductId::new(product).expect("id"),
            version: version.into(),
            commit: None,
            content_digest: sha,
        },
        fields,
        installer: reconciler::catalog::Installer {
            architecture: reconciler::model::Architecture::X64,
            installer_type: reconciler::model::InstallerType::Exe,
            url: "setup.exe".into(),
            sha256: sha,
            size,
            silent_install: "/S".into(),
            silent_uninstall: None,
            msi_product_code: Some("{11111111-2222-3333-4444-555555555555}".into()),
            detection: None,
            success_codes: vec![],
            scan: None,
        },
        description: "bench".into(),
        product_name: "Bench".into(),
        homepage: None,
        origin: None,
    }
}
