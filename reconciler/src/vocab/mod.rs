//! The shared vocabulary, a leaf every other module may use and that uses none of them: names,
//! versions, digests, platform and installer types, and the text helpers their parsers share.

pub mod digest;
pub mod names;
pub(crate) mod text;
pub mod types;
pub mod version;

pub use digest::Sha256;
pub use names::{ObjectName, PlatformName, ProductId, RingName};
pub use types::{Architecture, InstallerType, PlatformType, API_VERSION};
pub use version::{Version, VersionSelector};
