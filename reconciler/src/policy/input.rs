//! The input document a policy sees for one action (documented in `policies/README.md`).
//!
//! ```json
//! {
//!   "action":    { "kind": "publish", "reason": "NotPublished", "version": "128.0.1", "changes": [...] },
//!   "product":   { "name": "firefox", "catalogProduct": "mozilla.firefox", "vendor": "Mozilla", "labels": {} },
//!   "installer": { ...the catalog's installer entry, with its "scan" result... },
//!   "catalog":   { "source": "example", "serial": 7, "publisher": "...", "keyId": "..." },
//!   "platform":  { "name": "intune-prod", "type": "intune", "embedded": true,
//!                  "auth": { "method": "certificate" },
//!                  "trust": { "executionPolicy": "bypass", "scriptSigningCertificate": false, "signingCertificate": false } },
//!   "ring":      { "name": "pilot", "index": 0, "group": "sg-patch-pilot" },
//!   "time":      "2026-11-22T10:00:00Z"
//! }
//! ```
//!
//! Secrets never enter it: authentication appears only as the *kind* of credential.

use std::collections::BTreeMap;

use crate::intern::FastMap as HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::catalog::{CatalogProduct, VerifiedCatalog};
use crate::model::kinds::PlatformAuth;
use crate::model::{Fleet, ObjectName, Version};
use crate::plan::PlannedAction;

/// What besides the action a policy input is built from, indexed once so that building the
/// inputs of tens of thousands of actions stays linear.
#[derive(Debug, Clone)]
pub struct PolicyContext<'a> {
    /// The fleet.
    pub fleet: &'a Fleet,
    /// Verified catalogs by CatalogSource.
    pub catalogs: &'a BTreeMap<ObjectName, VerifiedCatalog>,
    /// The time the action would be applied.
    pub now: DateTime<Utc>,
    /// (CatalogSource, product id) → entry; and product id → the first catalog listing it.
    entries: HashMap<(&'a str, &'a str), &'a CatalogProduct>,
    anywhere: HashMap<&'a str, (&'a VerifiedCatalog, &'a CatalogProduct)>,
}

impl<'a> PolicyContext<'a> {
    /// Indexes the catalogs' entries (products are found by binary search in the fleet).
    pub fn new(fleet: &'a Fleet, catalogs: &'a BTreeMap<ObjectName, VerifiedCatalog>, now: DateTime<Utc>) -> Self {
        let mut entries = HashMap::default();
        let mut anywhere = HashMap::default();
        for c in catalogs.values() {
            for e in &c.catalog().products {
                entries.insert((c.source_name().as_str(), e.id.as_str()), e);
                anywhere.entry(e.id.as_str()).or_insert((c, e));
            }
        }
        PolicyContext { fleet, catalogs, now, entries, anywhere }
    }
}

/// The kind of credential a Platform uses, never the credential.
pub fn auth_method(auth: Option<&PlatformAuth>) -> &'static str {
    match auth {
        Some(a) if a.certificate.is_some() => "certificate",
        Some(a) if a.client_secret.is_some() => "clientSecret",
        Some(a) if a.ssh_key.is_some() => "sshKey",
        Some(a) if a.password.is_some() => "password",
        _ => "none",
    }
}

/// The fields of an action its input document is built from, and nothing else: the input is a
/// function of this view and the context, so actions with equal views have equal inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ActionView<'a> {
    kind: crate::plan::ActionKind,
    reason: &'a str,
    version: Option<&'a str>,
    object_id: Option<&'a str>,
    changes: &'a [crate::plan::FieldChange],
    product: &'a str,
    catalog_product: &'a str,
    platform: &'a str,
    platform_type: crate::model::PlatformType,
    ring: Option<&'a str>,
    group: Option<&'a str>,
    group_name: Option<&'a str>,
}

/// Which parts of the input the policies can read (see [`ActionView::masked`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputParts {
    /// `action.reason`.
    pub reason: bool,
    /// `action.objectId`.
    pub object_id: bool,
    /// `action.changes`.
    pub changes: bool,
    /// `ring`.
    pub ring: bool,
}

impl InputParts {
    /// The parts the input paths reach (a path reaches a field when one is a prefix of the
    /// other: `input.action` reads them all).
    pub fn of(paths: &[Vec<String>]) -> InputParts {
        let reads = |field: &[&str]| paths.iter().any(|p| p.iter().zip(field).all(|(a, b)| a == b));
        InputParts {
            reason: reads(&["action", "reason"]),
            object_id: reads(&["action", "objectId"]),
            changes: reads(&["action", "changes"]),
            ring: reads(&["ring"]),
        }
    }
}

impl<'a> ActionView<'a> {
    /// The view of `a`.
    pub fn of(a: &'a PlannedAction) -> Self {
        ActionView {
            kind: a.action,
            reason: &a.reason,
            version: a.version.as_deref(),
            object_id: a.object_id.as_deref(),
            changes: &a.changes,
            product: &a.product,
            catalog_product: &a.catalog_product,
            platform: &a.platform,
            platform_type: a.platform_type,
            ring: a.ring.as_deref(),
            group: a.group.as_deref(),
            group_name: a.group_name.as_deref(),
        }
    }

    /// The view with the parts no policy reads blanked: two actions with equal masked views
    /// have inputs that agree on everything the policies read. (`kind`, `version`, product and
    /// platform are always kept: they feed the `product`, `installer`, `catalog` and `platform`
    /// parts.)
    pub fn masked(self, read: InputParts) -> Self {
        ActionView {
            reason: if read.reason { self.reason } else { "" },
            object_id: self.object_id.filter(|_| read.object_id),
            changes: if read.changes { self.changes } else { &[] },
            ring: self.ring.filter(|_| read.ring),
            group: self.group.filter(|_| read.ring),
            group_name: self.group_name.filter(|_| read.ring),
            ..self
        }
    }
}

/// Builds the input document for one action.
pub fn input_for(a: &PlannedAction, ctx: &PolicyContext<'_>) -> Value {
    input_of(ActionView::of(a), ctx)
}

/// Builds the input document from an action's view.
pub fn input_of(a: ActionView<'_>, ctx: &PolicyContext<'_>) -> Value {
    let fleet_product = ctx.fleet.product(a.product);
    // The catalog entry: from the Product's own catalog, or (for an object no Product describes
    // any more) from whichever catalog lists the product id.
    let (catalog, entry) = match fleet_product.and_then(|p| ctx.catalogs.get(&p.catalog)) {
        Some(c) => (Some(c), ctx.entries.get(&(c.source_name().as_str(), a.catalog_product)).copied()),
        None => ctx.anywhere.get(a.catalog_product).map_or((None, None), |(c, e)| (Some(*c), Some(*e))),
    };
    let installer = match (entry, a.version.and_then(|v| v.parse::<Version>().ok()), fleet_product) {
        (Some(entry), Some(version), Some(p)) => entry
            .versions
            .iter()
            .find(|v| v.version == version)
            .and_then(|v| {
                v.installers.iter().find(|i| {
                    i.architecture == p.spec.architecture && p.spec.installer_type.is_none_or(|t| t == i.installer_type)
                })
            })
            .and_then(|i| serde_json::to_value(i).ok()),
        _ => None,
    };
    let platform = ctx.fleet.platforms.iter().find(|(n, _)| n.as_str() == a.platform).map(|(_, p)| p);
    let ring_index = a.ring.and_then(|r| {
        ctx.fleet.rollouts.values().find_map(|ro| ro.spec.rings.iter().position(|x| x.name.as_str() == r))
    });
    json!({
        "action": {
            "kind": a.kind.as_str(),
            "reason": a.reason,
            "version": a.version,
            "objectId": a.object_id,
            "changes": a.changes.iter().map(|c| json!({ "field": &*c.field, "from": c.from.as_deref(), "to": c.to.as_deref() })).collect::<Vec<_>>(),
        },
        "product": {
            "name": a.product,
            "catalogProduct": a.catalog_product,
            "displayName": entry.map(|e| e.name.as_str()),
            "vendor": entry.map(|e| e.vendor.as_str()),
            "labels": fleet_product.map(|p| json!(p.metadata.labels)).unwrap_or_else(|| json!({})),
        },
        "installer": installer.unwrap_or_else(|| json!({})),
        "catalog": catalog.map(|c| json!({
            "source": c.source_name().as_str(),
            "serial": c.serial(),
            "publisher": c.catalog().publisher,
            "keyId": c.key_id(),
        })),
        "platform": platform.map(|p| json!({
            "name": p.metadata.name.as_str(),
            "type": p.spec.platform_type.as_str(),
            "embedded": p.endpoint == crate::model::Endpoint::Embedded,
            "labels": p.metadata.labels,
            "auth": { "method": auth_method(p.spec.auth.as_ref()) },
            "trust": {
                "executionPolicy": serde_json::to_value(p.spec.trust.execution_policy).unwrap_or(Value::Null),
                "scriptSigningCertificate": p.spec.trust.script_signing_certificate.is_some(),
                "signingCertificate": p.spec.trust.signing_certificate.is_some(),
            },
        })).unwrap_or_else(|| json!({ "name": a.platform, "type": a.platform_type.as_str() })),
        "ring": a.ring.map(|r| json!({ "name": r, "index": ring_index, "group": a.group, "groupName": a.group_name })),
        "time": ctx.now.to_rfc3339_opts(SecondsFormat::Secs, true),
    })
}
