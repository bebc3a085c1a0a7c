//! The desired state: the YAML kinds of a fleet repository, parsed strictly and resolved.
//!
//! Entry point: [`load()`], from [`FleetFile`]s to a [`Fleet`] or every [`Diagnostic`] found.

pub mod diagnostic;
pub mod fleet;
pub mod kinds;
pub mod load;
pub mod secret;
pub mod spans;

pub(crate) use crate::vocab::text;
pub use crate::vocab::{names, version};

pub use diagnostic::{Diagnostic, Diagnostics};
pub use fleet::{CatalogSource, Endpoint, Fleet, Origin, Platform, Product, Rollout, Target};
pub use kinds::{Architecture, ExecutionPolicy, InstallerType, Kind, PlatformType, API_VERSION};
pub use load::{load, FleetFile};
pub use names::{ObjectName, PlatformName, ProductId, RingName};
pub use secret::{write_private, SecretError, SecretFile, SecretRef, Secrets};
pub use version::{Version, VersionSelector};
