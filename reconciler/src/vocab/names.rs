//! Validated names: a value of these types has already been checked, and none of them derefs to
//! `str`, so a raw string cannot be passed where a checked name is expected.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {rule}")]
pub struct InvalidName {
    what: &'static str,
    value: String,
    rule: &'static str,
}

impl InvalidName {
    /// A stable CamelCase reason, for machines (conditions, metrics, notifications).
    pub fn reason(&self) -> &'static str {
        "InvalidName"
    }
}

macro_rules! validated_name {
    ($(#[$doc:meta])* $name:ident, $what:literal, $pattern:literal, $max:literal, $check:expr, $rule:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(into = "String")]
        pub struct $name(String);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                super::text::deserialize_str(d, concat!("a ", $what))
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl $name {
            /// Checks `value` and wraps it.
            pub fn new(value: impl Into<String>) -> Result<Self, InvalidName> {
                let value = value.into();
                let check: fn(&str) -> bool = $check;
                if value.is_empty() || value.len() > $max || !check(&value) {
                    return Err(InvalidName { what: $what, value, rule: $rule });
                }
                Ok(Self(value))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidName;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "pattern": $pattern,
                    "maxLength": $max,
                    "description": $rule,
                })
            }
        }
    };
}

fn is_dns_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    let edge_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    bytes.iter().all(|&b| edge_ok(b) || b == b'-' || b == b'.')
        && bytes.first().is_some_and(|&b| edge_ok(b))
        && bytes.last().is_some_and(|&b| edge_ok(b))
}

validated_name!(
    /// The `metadata.name` of a fleet object (Product, Platform, Rollout, CatalogSource).
    ObjectName,
    "name",
    "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
    63,
    is_dns_name,
    "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 63 characters"
);

validated_name!(
    /// A ring of a Rollout, such as `pilot` or `broad`.
    RingName,
    "ring name",
    "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
    63,
    is_dns_name,
    "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 63 characters"
);

validated_name!(
    /// A product identifier in a vendor catalog, such as `mozilla.firefox`.
    ProductId,
    "product id",
    "^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$",
    128,
    |s| is_dns_name(&s.replace('_', "-")),
    "lowercase letters, digits, '-', '_' and '.', starting and ending with a letter or digit, at most 128 characters"
);

/// A fleet object's name used to refer to a Platform.
pub type PlatformName = ObjectName;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_dns_labels_and_refuse_the_rest() {
        assert!(ObjectName::new("intune-prod").is_ok());
        assert!(ObjectName::new("a.b-c1").is_ok());
        for bad in ["", "Intune", "-a", "a-", "a_b", "a b", &"x".repeat(64)] {
            assert!(ObjectName::new(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(ProductId::new("mozilla.firefox_esr").is_ok());
        assert!(ProductId::new("Mozilla.Firefox").is_err());
    }

    #[test]
    fn deserializing_an_invalid_name_names_the_rule() {
        let err = serde_yaml::from_str::<RingName>("Pilot").err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("invalid ring name \"Pilot\": lowercase letters")));
    }
}
