//! Windows-style versions (`major.minor.build.revision`, each part compared as a number, so
//! `1.10 > 1.9` and `1.2 == 1.2.0.0`) and the selectors a Product uses to choose one.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Why a version or a version selector was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The text is not one to four dot-separated numbers.
    #[error("invalid version {0:?}: expected one to four dot-separated numbers such as 128.0.1 or 24.08")]
    Version(String),
    /// A range comparator could not be read.
    #[error("invalid version range {0:?}: expected comparators such as \">=128, <129\" (operators: = > >= < <=)")]
    Range(String),
}

impl VersionError {
    /// A stable CamelCase reason, for machines (conditions, metrics, notifications).
    pub fn reason(&self) -> &'static str {
        match self {
            VersionError::Version { .. } => "InvalidVersion",
            VersionError::Range { .. } => "InvalidVersionRange",
        }
    }
}

/// A version as Windows orders them: up to four numeric parts, missing parts count as zero.
///
/// Equality and ordering use the numbers; `Display` keeps the text as written (`24.08` stays
/// `24.08`, although it equals `24.8`).
#[derive(Debug, Clone)]
pub struct Version {
    parts: [u32; 4],
    text: String,
}

impl Version {
    /// The four numeric parts, padded with zeros.
    pub fn parts(&self) -> [u32; 4] {
        self.parts
    }

    /// The version as written in the catalog or fleet.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let mut parts = [0u32; 4];
        for (count, piece) in text.split('.').enumerate() {
            let slot = parts.get_mut(count).ok_or_else(|| VersionError::Version(s.into()))?;
            if piece.is_empty() || !piece.bytes().all(|b| b.is_ascii_digit()) {
                return Err(VersionError::Version(s.into()));
            }
            *slot = piece.parse().map_err(|_| VersionError::Version(s.into()))?;
        }
        Ok(Version { parts, text: text.to_string() })
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.parts == other.parts
    }
}
impl Eq for Version {}
impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts.cmp(&other.parts)
    }
}
impl std::hash::Hash for Version {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.parts.hash(state);
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        super::text::deserialize_str(d, "a version such as 128.0.1")
    }
}

impl JsonSchema for Version {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Version".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]+(\\.[0-9]+){0,3}$",
            "description": "A Windows-style version: one to four dot-separated numbers, compared numerically.",
        })
    }
}

/// One comparison of a range, such as `>=128`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparator {
    op: Op,
    version: Version,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Comparator {
    fn matches(&self, v: &Version) -> bool {
        let ord = v.cmp(&self.version);
        match self.op {
            Op::Eq => ord == Ordering::Equal,
            Op::Gt => ord == Ordering::Greater,
            Op::Ge => ord != Ordering::Less,
            Op::Lt => ord == Ordering::Less,
            Op::Le => ord != Ordering::Greater,
        }
    }
}

impl fmt::Display for Comparator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Op::Eq => "=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        };
        write!(f, "{op}{}", self.version)
    }
}

/// How a Product chooses its version among those the catalog offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSelector {
    /// The highest version in the catalog.
    Latest,
    /// Exactly this version (compared numerically).
    Exact(Version),
    /// The highest version that satisfies every comparator.
    Range(Vec<Comparator>),
}

impl VersionSelector {
    /// Whether `v` is acceptable to this selector.
    pub fn matches(&self, v: &Version) -> bool {
        match self {
            VersionSelector::Latest => true,
            VersionSelector::Exact(want) => want == v,
            VersionSelector::Range(cmps) => cmps.iter().all(|c| c.matches(v)),
        }
    }

    /// The highest of `candidates` this selector accepts.
    pub fn select<'a, I>(&self, candidates: I) -> Option<&'a Version>
    where
        I: IntoIterator<Item = &'a Version>,
    {
        candidates.into_iter().filter(|v| self.matches(v)).max()
    }
}

impl FromStr for VersionSelector {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if text == "latest" {
            return Ok(VersionSelector::Latest);
        }
        if text.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
            return text.parse().map(VersionSelector::Exact);
        }
        let mut cmps = Vec::new();
        for piece in text.split(',') {
            let piece = piece.trim();
            let (op, rest) = [(">=", Op::Ge), ("<=", Op::Le), (">", Op::Gt), ("<", Op::Lt), ("=", Op::Eq)]
                .iter()
                .find_map(|(tok, op)| piece.strip_prefix(tok).map(|rest| (*op, rest)))
                .ok_or_else(|| VersionError::Range(s.into()))?;
            let version = rest.trim().parse().map_err(|_| VersionError::Range(s.into()))?;
            cmps.push(Comparator { op, version });
        }
        Ok(VersionSelector::Range(cmps))
    }
}

impl fmt::Display for VersionSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionSelector::Latest => f.write_str("latest"),
            VersionSelector::Exact(v) => write!(f, "{v}"),
            VersionSelector::Range(cmps) => {
                let parts: Vec<String> = cmps.iter().map(ToString::to_string).collect();
                f.write_str(&parts.join(", "))
            }
        }
    }
}

impl Serialize for VersionSelector {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for VersionSelector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Numbers such as `24.08` arrive as YAML floats and would lose their text (24.08 -> 24.8
        // is harmless, but 1.10 -> 1.1 is not), so only strings are accepted.
        super::text::deserialize_str(d, "a quoted version selector: \"latest\", \"1.2.3\" or \">=1.2, <2\"")
    }
}

impl JsonSchema for VersionSelector {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "VersionSelector".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "`latest`, an exact version such as \"128.0.1\" (quote it), or a range such as \">=128, <129\".",
            "examples": ["latest", "24.08", ">=128, <129"],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        match s.parse() {
            Ok(v) => v,
            Err(e) => unreachable!("test version {s}: {e}"),
        }
    }

    #[test]
    fn versions_compare_numerically_part_by_part() {
        assert!(v("1.10") > v("1.9"));
        assert!(v("128.0.1") > v("128.0"));
        assert!(v("10.0.19041.1") < v("10.0.19041.10"));
        assert_eq!(v("1.2"), v("1.2.0.0"));
        assert_eq!(v("24.08").to_string(), "24.08");
    }

    #[test]
    fn malformed_versions_are_refused() {
        for bad in ["", "1.", ".1", "1.2.3.4.5", "1.2a", "v1", "1..2", "99999999999"] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn selectors_choose_the_highest_matching_version() {
        let all = [v("127.0"), v("128.0.1"), v("128.0.3"), v("129.0")];
        let pick = |sel: &str| sel.parse::<VersionSelector>().ok().and_then(|s| s.select(&all).cloned());
        assert_eq!(pick("latest"), Some(v("129.0")));
        assert_eq!(pick("128.0.1"), Some(v("128.0.1")));
        assert_eq!(pick(">=128, <129"), Some(v("128.0.3")));
        assert_eq!(pick("<127"), None);
        assert_eq!(pick("130"), None);
    }

    #[test]
    fn malformed_ranges_are_refused_with_an_example() {
        let err = "~>128".parse::<VersionSelector>().err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("expected comparators such as")));
        assert!(">=abc".parse::<VersionSelector>().is_err());
    }
}
