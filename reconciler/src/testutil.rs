//! Builders shared by unit tests: a fleet from YAML text and a catalog really signed and
//! verified (there is no other way to get a `VerifiedCatalog`).

use chrono::Duration;

use crate::catalog::edit;
use crate::catalog::{TrustedKey, UnverifiedCatalog, VerifiedCatalog};
use crate::model::{self, Fleet, FleetFile, ObjectName};

pub fn fleet(files: &[(&str, &str)]) -> Fleet {
    let files: Vec<FleetFile> = files.iter().map(|(p, t)| FleetFile { path: (*p).into(), text: (*t).into() }).collect();
    let fleet = match model::load(&files) {
        Ok(f) => f,
        Err(e) => unreachable!("test fleet should load: {e}"),
    };
    // Named groups resolve as in a directory where each group's id is its name.
    fleet.with_placeholder_group_ids()
}

/// A catalog JSON with the given (product id, [versions]) entries.
pub fn catalog_json(serial: u64, products: &[(&str, &[&str])]) -> String {
    let now = crate::clock::Clock::now(&crate::clock::SystemClock);
    let products: Vec<serde_json::Value> = products
        .iter()
        .map(|(id, versions)| {
            serde_json::json!({
                "id": id, "name": format!("Name of {id}"), "vendor": "Vendor",
                "versions": versions.iter().map(|v| serde_json::json!({
                    "version": v,
                    "installers": [{
                        "architecture": "x64", "type": "msi", "url": format!("installers/{id}-{v}.msi"),
                        "sha256": format!("{:064x}", v.len()), "size": 1000,
                        "silentInstall": "/qn", "msiProductCode": "{00000000-0000-0000-0000-000000000001}"
                    }]
                })).collect::<Vec<_>>()
            })
        })
        .collect();
    serde_json::json!({
        "apiVersion": "patchops.io/v1alpha1", "kind": "Catalog", "publisher": "test",
        "serial": serial, "issued": (now - Duration::days(1)).to_rfc3339(),
        "expires": (now + Duration::days(30)).to_rfc3339(), "products": products,
    })
    .to_string()
}

pub fn verified(json: &str) -> VerifiedCatalog {
    let key = edit::keygen().ok();
    let result = key.as_ref().and_then(|k| {
        let sk = edit::SigningKey::from_text(k.secret_file.expose(), None).ok()?;
        let signed = edit::sign(json.as_bytes().to_vec(), &sk).ok()?;
        let trusted = TrustedKey::parse(&k.public_base64).ok()?;
        let name = ObjectName::new("example").ok()?;
        UnverifiedCatalog::new(name, "test", signed.bytes, "test.minisig", Some(signed.signature))
            .verify(&[trusted], None, None, crate::clock::Clock::now(&crate::clock::SystemClock))
            .ok()
    });
    match result {
        Some(c) => c,
        None => unreachable!("test catalog should sign and verify"),
    }
}
