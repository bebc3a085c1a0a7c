//! The shared vocabulary, a leaf every other module may use and that uses none of them: names,
//! versions, digests, platform and installer types, and the text helpers their parsers share.

pub mod digest;
pub mod duration;
pub mod names;
pub(crate) mod text;
pub mod types;
pub mod version;

pub use digest::Sha256;
pub use names::{ObjectName, PlatformName, ProductId, RingName};
pub use types::{Architecture, InstallerType, PlatformType, API_VERSION};
pub use version::{Version, VersionSelector};

/// The cause of an error, kept typed where one exists so that machines can tell causes apart
/// ([`std::error::Error::source`] and `downcast_ref`); a plain message where the cause is only
/// words (a platform's own refusal text, a tool's output). Every error's message is whole — it
/// includes its cause, as tough's do — so a reporter prints the top error and never walks the
/// chain.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A typed cause with the words that say what was being done (`cannot read FILE`): its message
/// is `context: cause`, its source the cause.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct InContext {
    context: String,
    #[source]
    source: Cause,
}

/// `cause`, said to have happened while doing `context`.
pub fn because(context: impl Into<String>, cause: impl Into<Cause>) -> Cause {
    Box::new(InContext { context: context.into(), source: cause.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_in_context_says_both_and_keeps_the_typed_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "Permission denied");
        let cause = because("cannot read /srv/inventory.json", io);
        assert_eq!(cause.to_string(), "cannot read /srv/inventory.json: Permission denied");
        let typed = cause.source().and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(typed.map(std::io::Error::kind), Some(std::io::ErrorKind::PermissionDenied));
        let words: Cause = "the server said no".into();
        assert!(words.source().is_none());
    }
}
