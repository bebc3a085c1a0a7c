//! Generates a synthetic fleet for benchmarks: N products × 3 platforms × 2 rings, a signed
//! catalog with two versions of each product, a git repository holding both, and recorded
//! platform inventories in which a third of the products are up to date, a third outdated and a
//! third absent (so the plan has publish, update and unchanged units). The platforms are two
//! ConfigMgr sites and a WSUS server, whose `inventory` endpoints read such recorded inventories
//! (the `embedded` endpoints are emulators, which this generator does not fill).
//!
//! With `in-sync` after PRODUCTS, every product is recorded exactly as desired (the plan is
//! empty: what a daemon's no-op cycle reads).
//!
//! Usage: cargo run --release -p reconciler --example synthetic_fleet -- OUT_DIR [PRODUCTS [in-sync]]
//! Then:  patchops plan --repo OUT_DIR --path fleet --state-dir OUT_DIR/state

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // A generator: failing loudly is right.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use reconciler::catalog::edit;
use reconciler::catalog::Sha256;
use reconciler::platform::{Observed, ObservedAssignment, ObservedObject, TrackingMarker};

const PLATFORMS: [(&str, &str); 3] =
    [("configmgr-east", "configmgr"), ("configmgr-hq", "configmgr"), ("wsus-hq", "wsus")];
const PER_FILE: usize = 100;

fn main() {
    let mut args = std::env::args().skip(1);
    let out = args.next().expect("usage: synthetic_fleet OUT_DIR [PRODUCTS]");
    let n: usize = args.next().map(|s| s.parse().expect("PRODUCTS is a number")).unwrap_or(10_000);
    let in_sync = args.next().as_deref() == Some("in-sync");
    let out = Path::new(&out);
    std::fs::create_dir_all(out.join("fleet/products")).expect("mkdir");
    std::fs::create_dir_all(out.join("catalog")).expect("mkdir");

    let key = edit::keygen().expect("keygen");
    let mut docs = String::new();
    for (name, ty) in PLATFORMS {
        let _ = write!(docs, "---\napiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: {name}\nspec:\n  type: {ty}\n  endpoint: inventory\n");
    }
    std::fs::write(out.join("fleet/platforms.yaml"), docs).expect("write");
    let mut rollout =
        String::from("apiVersion: patchops.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: standard\nspec:\n  rings:\n");
    for ring in ["pilot", "broad"] {
        let _ = write!(rollout, "    - name: {ring}\n      groups:\n");
        for (p, _) in PLATFORMS {
            let _ = writeln!(rollout, "        - {{ platform: {p}, group: {p}-{ring} }}");
        }
    }
    std::fs::write(out.join("fleet/rollout.yaml"), rollout).expect("write");
    std::fs::write(
        out.join("fleet/catalog.yaml"),
        format!("apiVersion: patchops.io/v1alpha1\nkind: CatalogSource\nmetadata:\n  name: synthetic\nspec:\n  url: ../catalog/catalog.json\n  trustedKeys:\n    - {}\n", key.public_base64),
    )
    .expect("write");

    let mut products = Vec::with_capacity(n);
    for chunk in 0..n.div_ceil(PER_FILE) {
        let mut text = String::new();
        for i in chunk * PER_FILE..((chunk + 1) * PER_FILE).min(n) {
            let _ = write!(
                text,
                "---\napiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: product-{i}\nspec:\n  product: vendor.product-{i}\n  version: latest\n  targets:\n    - platform: configmgr-east\n      install: {{ deadline: 72h }}\n    - platform: configmgr-hq\n    - platform: wsus-hq\n"
            );
            let installer = |v: &str| {
                serde_json::json!({"architecture": "x64", "type": "msi", "url": format!("installers/p{i}-{v}.msi"),
                    "sha256": Sha256::digest(format!("{i}-{v}").as_bytes()).to_string(), "size": 1_000_000 + i,
                    "silentInstall": "/qn /norestart", "msiProductCode": format!("{{00000000-0000-0000-0000-{i:012}}}"),
                    "scan": {"engine": "VirusTotal", "detections": 0, "enginesTotal": 70, "scannedAt": "2026-11-01T00:00:00Z"}})
            };
            products.push(serde_json::json!({"id": format!("vendor.product-{i}"), "name": format!("Product {i}"), "vendor": "Vendor",
                "versions": [{"version": "1.0.0", "installers": [installer("1.0.0")]},
                             {"version": "1.1.0", "supersedes": ["1.0.0"], "installers": [installer("1.1.0")]}]}));
        }
        std::fs::write(out.join(format!("fleet/products/batch-{chunk:04}.yaml")), text).expect("write");
    }
    let now = chrono::Utc::now();
    let catalog = serde_json::json!({"apiVersion": "patchops.io/v1alpha1", "kind": "Catalog", "publisher": "synthetic",
        "serial": 1, "issued": now.to_rfc3339(), "expires": (now + chrono::Duration::days(365)).to_rfc3339(), "products": products});
    let bytes = serde_json::to_vec(&catalog).expect("json");
    let sk = edit::SigningKey::from_text(key.secret_file.expose(), None).expect("key");
    let signed = edit::sign(bytes, &sk).expect("sign");
    std::fs::write(out.join("catalog/catalog.json"), &signed.bytes).expect("write");
    std::fs::write(out.join("catalog/catalog.json.minisig"), &signed.signature).expect("write");

    // Commit everything with git2.
    let repo = git2::Repository::init(out).expect("git init");
    let mut index = repo.index().expect("index");
    index.add_all(["fleet", "catalog"], git2::IndexAddOption::DEFAULT, None).expect("add");
    index.write().expect("index write");
    let tree = repo.find_tree(index.write_tree().expect("tree")).expect("tree");
    let sig = git2::Signature::now("bench", "bench@example.invalid").expect("sig");
    repo.commit(Some("HEAD"), &sig, &sig, "synthetic fleet", &tree, &[]).expect("commit");

    // Inventories, from what the fleet asks for: product i is absent (i % 3 == 0), published at
    // the previous version (== 1) or exactly as desired (== 2).
    let source = reconciler::source::SourceOptions {
        repo: out.display().to_string(),
        rev: None,
        path: "fleet".into(),
        worktree: false,
        cache_dir: out.join("cache"),
        limits: Default::default(),
    };
    let ctx = reconciler::context::Context::new(
        reconciler::state::StateDir::new(out.join("state")),
        reconciler::model::Secrets::default(),
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let plan = runtime.block_on(reconciler::ops::plan(&ctx, &source)).expect("plan").plan;
    let mut inventories: BTreeMap<String, BTreeMap<String, ObservedObject>> = BTreeMap::new();
    for a in &plan.actions {
        let i: usize = a.catalog_product.trim_start_matches("vendor.product-").parse().expect("index");
        if i.is_multiple_of(3) && !in_sync {
            continue;
        }
        let objects = inventories.entry(a.platform.to_string()).or_default();
        let object = objects.entry(a.catalog_product.to_string()).or_insert_with(|| {
            let mut fields: BTreeMap<String, String> = a
                .changes
                .iter()
                .filter(|c| !c.field.starts_with("assignment."))
                .filter_map(|c| Some((c.field.to_string(), c.to.as_deref()?.to_string())))
                .collect();
            if i % 3 == 1 && !in_sync {
                fields.insert("version".into(), "1.0.0".into());
                fields.insert("sha256".into(), Sha256::digest(format!("{i}-1.0.0").as_bytes()).to_string());
            }
            ObservedObject {
                relationships: Vec::new(),
                incomplete: None,
                id: format!("{}-obj-{i}", a.platform),
                display_name: fields.get("displayName").cloned().unwrap_or_default(),
                marker: Some(TrackingMarker {
                    managed_by: "patchops".into(),
                    product: reconciler::model::ProductId::new(a.catalog_product.to_string()).expect("id"),
                    version: fields.get("version").cloned().unwrap_or_default(),
                    commit: None,
                    // The catalog's digest of the version published.
                    content_digest: fields
                        .get("sha256")
                        .and_then(|d| d.parse().ok())
                        .unwrap_or_else(|| Sha256::digest(format!("{i}").as_bytes())),
                }),
                fields: fields.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
                assignments: Vec::new(),
            }
        });
        object.assignments.push(ObservedAssignment {
            since: None,
            group: a.group.as_deref().unwrap_or_default().to_string(),
            fields: a
                .changes
                .iter()
                .filter_map(|c| Some((c.field.strip_prefix("assignment.")?.into(), c.to.clone()?)))
                .collect(),
        });
    }
    for (platform, objects) in inventories {
        let dir = out.join("state/inventory");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let observed = Observed { objects: objects.into_values().collect(), ..Default::default() };
        std::fs::write(dir.join(format!("{platform}.json")), serde_json::to_vec(&observed).expect("json"))
            .expect("write");
    }
    println!("synthetic fleet of {n} products x {} platforms written to {}", PLATFORMS.len(), out.display());
}
