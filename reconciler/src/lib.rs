//! # reconciler — the patchops engine
//!
//! patchops keeps endpoint-management platforms (WSUS, Configuration Manager, Intune) in line
//! with a fleet repository in git, publishing only what passed the trust chain.
//!
//! The flow, one module per stage:
//!
//! ```text
//! source ──► model ──► catalog ──► plan ──► (policy ──► apply: next releases)
//! commit     Fleet     Verified    Plan
//!                      Catalog       ▲
//!                                    └── platform::observe (Observed)
//! ```
//!
//! - [`source`] reads fleet files from the git objects of one commit (provenance + digest);
//! - [`model`] parses them strictly and resolves references ([`model::load()`]);
//! - [`catalog`] verifies the signed vendor catalog: trust-chain link 1. Only
//!   [`catalog::UnverifiedCatalog::verify`] makes a [`catalog::VerifiedCatalog`];
//! - [`content`] downloads installers and verifies SHA-256 and size while streaming: trust-chain
//!   link 2; only it makes a [`content::VerifiedContent`];
//! - [`platform`] observes and changes what each platform holds, behind the
//!   [`platform::Platform`] trait (Intune through Graph, WSUS through generated PowerShell,
//!   ConfigMgr through the AdminService); [`emulate`] serves emulators of all three;
//! - [`doctor`] explains each platform's own trust (trust-chain link 4), link by link;
//! - [`plan`] is pure: desired × verified catalog × observed → [`plan::Plan`], rendered by
//!   [`plan::render`];
//! - [`state`] remembers catalog serials (rollback protection) under `.patchops/`;
//! - [`ops`] wires the stages for each command.
//!
//! Start reading at [`ops::plan`]. Tests: `cargo test --workspace` (integration tests in the
//! top-level `tests/` make real git repositories and real minisign signatures).

pub mod apply;
pub mod authenticode;
pub mod bounded;
pub mod catalog;
pub mod clock;
pub mod content;
pub mod context;
pub mod doctor;
pub mod emulate;
pub mod failpoint;
pub mod harness;
pub mod http;
pub mod intern;
pub mod model;
pub mod msi;
pub mod ops;
pub mod plan;
pub mod platform;
pub mod policy;
pub mod schema;
pub mod script;
pub mod source;
pub mod state;
mod xml;

#[cfg(test)]
mod testutil;
