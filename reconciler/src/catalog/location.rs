//! Where a catalog (or its signature) is read from.

use std::fmt;

/// A catalog location as written in a CatalogSource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogLocation {
    /// `https://`, `http://` or `file://`.
    Url(url::Url),
    /// A path relative to the CatalogSource document, read from the same commit as the fleet.
    InSource(String),
}

/// A location that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("catalog location {text:?} {reason}")]
pub struct LocationError {
    text: String,
    reason: &'static str,
}

impl LocationError {
    /// A stable CamelCase reason, for machines (conditions, metrics, notifications).
    pub fn reason(&self) -> &'static str {
        "CatalogLocationInvalid"
    }
}

impl CatalogLocation {
    /// Parses a URL or a relative path.
    pub fn parse(text: &str) -> Result<Self, LocationError> {
        let err = |reason| LocationError { text: text.to_string(), reason };
        if text.contains("://") {
            let url = url::Url::parse(text).map_err(|_| err("is not a valid URL"))?;
            return match url.scheme() {
                "https" | "http" | "file" => Ok(CatalogLocation::Url(url)),
                _ => Err(err("has an unsupported scheme (use https://, http://, file:// or a relative path)")),
            };
        }
        if text.is_empty() {
            return Err(err("is empty"));
        }
        if text.starts_with('/') || text.contains('\\') {
            return Err(err("is an absolute or Windows path; write `file:///…` or a path relative to the document"));
        }
        Ok(CatalogLocation::InSource(text.to_string()))
    }

    /// The signature's location: this location with `.minisig` appended.
    pub fn signature(&self) -> Self {
        match self {
            CatalogLocation::Url(u) => {
                let mut u = u.clone();
                u.set_path(&format!("{}.minisig", u.path()));
                CatalogLocation::Url(u)
            }
            CatalogLocation::InSource(p) => CatalogLocation::InSource(format!("{p}.minisig")),
        }
    }
}

impl fmt::Display for CatalogLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Signed URLs carry secrets in their query: never shown.
            CatalogLocation::Url(u) => f.write_str(&crate::http::redact(u)),
            CatalogLocation::InSource(p) => f.write_str(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_accept_urls_and_relative_paths_only() {
        assert!(matches!(CatalogLocation::parse("https://x.test/c.json"), Ok(CatalogLocation::Url(_))));
        assert!(matches!(CatalogLocation::parse("../c.json"), Ok(CatalogLocation::InSource(_))));
        assert!(CatalogLocation::parse("/etc/c.json").is_err());
        assert!(CatalogLocation::parse("ftp://x/c.json").is_err());
        let sig = CatalogLocation::parse("https://x.test/c.json").map(|l| l.signature().to_string());
        assert_eq!(sig.ok().as_deref(), Some("https://x.test/c.json.minisig"));
    }
}
