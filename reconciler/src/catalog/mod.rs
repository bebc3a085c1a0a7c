//! The vendor catalog: its format, trust-chain link 1 (verification), and the editor that makes
//! and signs catalogs.
//!
//! Entry points: [`fetch()`] gives an [`UnverifiedCatalog`]; its [`UnverifiedCatalog::verify`] is
//! the only way to a [`VerifiedCatalog`], which is what the planner takes.

pub mod edit;
pub mod fetch;
pub mod format;
pub mod keys;
pub mod location;
pub mod verify;

pub use fetch::{fetch, CatalogRef, MAX_CATALOG_BYTES};
pub use format::{Catalog, CatalogProduct, CatalogVersion, Detection, Installer, ScanResult, Sha256};
pub use keys::TrustedKey;
pub use location::CatalogLocation;
pub use verify::{CatalogError, SeenCatalog, UnverifiedCatalog, VerifiedCatalog};
