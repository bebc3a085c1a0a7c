//! # reconciler — the patchops engine
//!
//! patchops keeps endpoint-management platforms (WSUS, Configuration Manager, Intune) in line
//! with a fleet repository in git, publishing only what passed the trust chain.
//!
//! The flow, one module per stage, all run through one pipeline ([`ops::pipeline`]):
//!
//! ```text
//! source ──► model ──► catalog ──► plan ──► policy ──► apply
//! commit     Fleet     Verified    Plan     Permitted   journal + audit
//!                      Catalog       ▲      Action
//!                                    └── platform::Platform::observe (Observed)
//! ```
//!
//! - [`source`] reads fleet files from the git objects of one commit (provenance + digest);
//! - [`model`] parses them strictly and resolves references ([`model::load()`]);
//! - [`catalog`] verifies the signed vendor catalog: trust-chain link 1. Only
//!   [`catalog::UnverifiedCatalog::verify`] makes a [`catalog::VerifiedCatalog`];
//! - [`content`] downloads installers and verifies SHA-256 and size while streaming: trust-chain
//!   link 2; only it makes a [`content::VerifiedContent`];
//! - [`plan`] is pure: desired × verified catalog × observed → [`plan::Plan`], rendered by
//!   [`plan::render`]; [`policy`] judges it and is the only maker of a
//!   [`policy::PermittedAction`] (trust-chain link 3); [`apply`] sends only those;
//! - [`platform`] holds the real clients behind the [`platform::PlatformClient`] trait (Intune through
//!   Graph, WSUS through generated PowerShell, ConfigMgr through the AdminService);
//!   [`emulate`] serves emulators of all three, which the [`harness`] starts for
//!   `endpoint: embedded`;
//! - [`doctor`] explains each platform's own trust (trust-chain link 4), link by link;
//! - [`state`] remembers catalog serials, the journal, the audit log and ring history;
//! - [`context`] is what every operation shares (state, secrets, [`clock`], harness);
//!   [`ops`] holds the operations, one module each.
//!
//! Start reading at [`ops::pipeline`]. Tests: `cargo test --workspace` (integration tests in the
//! top-level `tests/` make real git repositories and real minisign signatures).

// In dependency order, an invariant (ARCHITECTURE.md; checked by tests/module_graph.rs): a
// module uses only modules listed above it, so the graph has no cycle.

// Leaves: they use no other module of the crate.
pub mod bounded;
pub mod clock;
pub mod failpoint;
pub mod http;
pub mod intern;
pub mod msi;
pub mod vocab;
mod xml;

// Where the fleet comes from and what it says: trust-chain links 1 and 2.
pub mod source;
pub mod catalog;
pub mod content;
pub mod model;

// Signing what patchops generates.
pub mod script;
pub mod authenticode;

// What patchops remembers.
pub mod state;

// The platforms: real clients, and emulators of the services (independent of the clients).
pub mod platform;
pub mod emulate;

// Deciding: the pure middle.
pub mod plan;
pub mod policy;

// Acting.
pub mod apply;

// The edges: the harness of embedded emulators, the memo of a long-running process, the
// context, the operations.
pub mod harness;
pub mod memo;
pub mod context;
pub mod doctor;
pub mod ops;
pub mod daemon;
pub mod schema;

#[cfg(test)]
mod testutil;
