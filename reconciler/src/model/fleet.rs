//! The resolved fleet: every reference checked, defaults filled in. Only `load` builds it.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::kinds::{CatalogSourceSpec, Metadata, PlatformSpec, PolicySetSpec, ProductSpec, ProductTarget, RolloutSpec};
use super::names::{ObjectName, RingName};
use crate::catalog::TrustedKey;

/// Where a fleet object was defined.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Origin {
    /// File, relative to the fleet path.
    pub file: String,
    /// 1-based line of the document's start.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A desired state whose references all resolve.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    /// Products, sorted by name.
    pub products: Vec<Product>,
    /// Platforms by name.
    pub platforms: BTreeMap<ObjectName, Platform>,
    /// Rollouts by name.
    pub rollouts: BTreeMap<ObjectName, Rollout>,
    /// Catalog sources by name.
    pub catalog_sources: BTreeMap<ObjectName, CatalogSource>,
    /// Policy sets by name; none means every built-in policy with default parameters.
    pub policy_sets: BTreeMap<ObjectName, PolicySet>,
    /// How `patchops run` watches the fleet (at most one Reconciler; defaults when none).
    pub reconciler: Option<super::kinds::ReconcilerSpec>,
}

impl Fleet {
    /// The Product called `name` (a binary search: products are sorted by name).
    pub fn product(&self, name: &str) -> Option<&Product> {
        self.products.binary_search_by(|p| p.name().as_str().cmp(name)).ok().map(|i| &self.products[i])
    }

    /// Every ring's group on every platform, rollout by rollout.
    pub fn ring_groups(&self) -> impl Iterator<Item = &super::kinds::RingGroup> {
        self.rollouts.values().flat_map(|r| r.spec.rings.iter()).flat_map(|ring| ring.groups.iter())
    }

    /// The groups the fleet names by display name on `platform` (Intune), sorted.
    pub fn named_groups(&self, platform: &ObjectName) -> Vec<String> {
        let mut names: Vec<String> = self
            .ring_groups()
            .filter(|g| g.platform.as_str() == platform.as_str())
            .filter_map(|g| g.group.name().map(str::to_string))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Whether any ring names a group by display name.
    pub fn has_named_groups(&self) -> bool {
        self.ring_groups().any(|g| g.group.name().is_some())
    }

    /// This fleet with every named group's id filled in from `ids` (per platform: display
    /// name → object id, as the platform resolved them). A name without an id stays
    /// unresolved; [`Fleet::unresolved_groups`] lists those.
    pub fn with_group_ids(&self, ids: &BTreeMap<ObjectName, BTreeMap<String, String>>) -> Fleet {
        let mut fleet = self.clone();
        for rollout in fleet.rollouts.values_mut() {
            for ring in &mut rollout.spec.rings {
                for g in &mut ring.groups {
                    if let super::kinds::GroupRef::Named(n) = &mut g.group {
                        n.resolved = ids
                            .iter()
                            .find(|(p, _)| p.as_str() == g.platform.as_str())
                            .and_then(|(_, by_name)| by_name.get(&n.name))
                            .cloned();
                    }
                }
            }
        }
        fleet
    }

    /// This fleet with every named group standing in for its own id, for `validate`, which
    /// reads no platform: its plan is judged by the policies, never applied.
    pub fn with_placeholder_group_ids(&self) -> Fleet {
        let ids = self
            .platforms
            .keys()
            .map(|p| (p.clone(), self.named_groups(p).into_iter().map(|n| (n.clone(), n)).collect()))
            .collect();
        self.with_group_ids(&ids)
    }

    /// The named groups without an id, as `platform: name` — a fleet with any is not planned.
    pub fn unresolved_groups(&self) -> Vec<String> {
        self.ring_groups()
            .filter(|g| g.group.id().is_none())
            .map(|g| format!("{}: {}", g.platform, g.group.label()))
            .collect()
    }
}

/// A Product with its catalog, rollouts and rings resolved.
#[derive(Debug, Clone)]
pub struct Product {
    /// `metadata`.
    pub metadata: Metadata,
    /// Where it was defined.
    pub origin: Origin,
    /// The spec as written.
    pub spec: ProductSpec,
    /// The CatalogSource providing the product.
    pub catalog: ObjectName,
    /// The targets, with rollout and rings resolved.
    pub targets: Vec<Target>,
}

impl Product {
    /// The Product's `metadata.name`.
    pub fn name(&self) -> &ObjectName {
        &self.metadata.name
    }
}

/// One resolved target of a Product.
#[derive(Debug, Clone)]
pub struct Target {
    /// The target as written.
    pub spec: ProductTarget,
    /// The Rollout it follows.
    pub rollout: ObjectName,
    /// Its rings, in rollout order.
    pub rings: Vec<RingName>,
}

/// A Platform.
#[derive(Debug, Clone)]
pub struct Platform {
    /// `metadata`.
    pub metadata: Metadata,
    /// Where it was defined.
    pub origin: Origin,
    /// The spec as written.
    pub spec: PlatformSpec,
    /// `spec.endpoint`, parsed once at load.
    pub endpoint: Endpoint,
}

/// Where a Platform is reached: `spec.endpoint`, parsed and checked at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `embedded`: an emulator started on loopback for this process.
    Embedded,
    /// `inventory`: a recorded, read-only inventory under the state directory.
    Inventory,
    /// The service at an http(s) URL (Graph, the SMS Provider, a WSUS request runner).
    Http(url::Url),
    /// A WSUS server reached over SSH (`ssh://HOST[:PORT]`).
    Ssh(url::Url),
}

impl Endpoint {
    /// Parses `spec.endpoint` for a platform of type `ty`; the error says what is accepted.
    pub fn parse(text: &str, ty: super::PlatformType) -> Result<Endpoint, BadEndpoint> {
        match text {
            "embedded" => return Ok(Endpoint::Embedded),
            "inventory" => return Ok(Endpoint::Inventory),
            _ => {}
        }
        let wsus = ty == super::PlatformType::Wsus;
        match url::Url::parse(text) {
            Ok(u) if matches!(u.scheme(), "https" | "http") => Ok(Endpoint::Http(u)),
            Ok(u) if wsus && u.scheme() == "ssh" && u.host_str().is_some() => Ok(Endpoint::Ssh(u)),
            _ => Err(BadEndpoint { text: text.chars().take(200).collect(), ssh_allowed: wsus }),
        }
    }

    /// A real service (neither `embedded` nor `inventory`).
    pub fn is_real(&self) -> bool {
        matches!(self, Endpoint::Http(_) | Endpoint::Ssh(_))
    }
}

/// `spec.endpoint` is none of the forms accepted.
#[derive(Debug, Clone, thiserror::Error)]
#[error("endpoint `{text}` is not `embedded`{}", if *.ssh_allowed { ", an ssh:// URL or an http(s) URL" } else { " or an http(s) URL" })]
pub struct BadEndpoint {
    /// What was written.
    pub text: String,
    /// Whether an ssh:// URL would do (WSUS).
    pub ssh_allowed: bool,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Embedded => f.write_str("embedded"),
            Endpoint::Inventory => f.write_str("inventory"),
            Endpoint::Http(u) | Endpoint::Ssh(u) => write!(f, "{u}"),
        }
    }
}

/// A Rollout.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// `metadata`.
    pub metadata: Metadata,
    /// Where it was defined.
    pub origin: Origin,
    /// The spec as written.
    pub spec: RolloutSpec,
}

impl Rollout {
    /// The group a ring maps to on a platform.
    pub fn group(&self, ring: &RingName, platform: &ObjectName) -> Option<&str> {
        self.spec
            .rings
            .iter()
            .find(|r| &r.name == ring)
            .and_then(|r| r.groups.iter().find(|g| &g.platform == platform))
            .and_then(|g| g.group.id())
    }

    /// The display name of the ring's group on a platform, when the fleet names it.
    pub fn group_name(&self, ring: &RingName, platform: &ObjectName) -> Option<&str> {
        self.spec
            .rings
            .iter()
            .find(|r| &r.name == ring)
            .and_then(|r| r.groups.iter().find(|g| &g.platform == platform))
            .and_then(|g| g.group.name())
    }
}

/// A CatalogSource with its keys parsed.
#[derive(Debug, Clone)]
pub struct CatalogSource {
    /// `metadata`.
    pub metadata: Metadata,
    /// Where it was defined.
    pub origin: Origin,
    /// The spec as written.
    pub spec: CatalogSourceSpec,
    /// The keys trusted to sign the catalog.
    pub trusted_keys: Vec<TrustedKey>,
}

/// A PolicySet.
#[derive(Debug, Clone)]
pub struct PolicySet {
    /// `metadata`.
    pub metadata: Metadata,
    /// Where it was defined.
    pub origin: Origin,
    /// The spec as written.
    pub spec: PolicySetSpec,
}
