//! The platforms patchops publishes to, behind one trait.
//!
//! A [`Platform`] observes what is published (this release) and, from the apply issue on,
//! changes it. Only the modules below this one know a platform's wire format; the planner sees
//! [`Observed`] values only.
//!
//! Every object patchops publishes carries a [`TrackingMarker`]; objects without one are
//! *unmanaged* and are never updated or retired.

pub mod embedded;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::catalog::Sha256;
use crate::intern::Text;
use crate::model::{ObjectName, PlatformType, ProductId};

/// The value of [`TrackingMarker::managed_by`].
pub const MANAGED_BY: &str = "patchops";

/// The marker on every object patchops publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrackingMarker {
    /// Always `patchops`.
    pub managed_by: String,
    /// The catalog product id.
    pub product: ProductId,
    /// The published version.
    pub version: String,
    /// The fleet commit the object was published from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// SHA-256 of the published installer.
    pub content_digest: Sha256,
}

impl TrackingMarker {
    /// Whether the marker says patchops manages the object.
    pub fn is_managed(&self) -> bool {
        self.managed_by == MANAGED_BY
    }
}

/// One object on a platform (an Intune app, a ConfigMgr application, a WSUS update).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObservedObject {
    /// The platform's id for it.
    pub id: String,
    /// Its display name.
    pub display_name: String,
    /// patchops's marker; `None` for objects patchops does not manage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marker: Option<TrackingMarker>,
    /// Settings of the object, by the planner's field names.
    #[serde(default, deserialize_with = "crate::intern::deserialize_shared_map")]
    pub fields: BTreeMap<Text, Text>,
    /// Deployments to device groups.
    #[serde(default)]
    pub assignments: Vec<ObservedAssignment>,
}

impl ObservedObject {
    /// The marker, if patchops manages this object.
    pub fn managed(&self) -> Option<&TrackingMarker> {
        self.marker.as_ref().filter(|m| m.is_managed())
    }
}

/// One deployment of an object to a device group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObservedAssignment {
    /// The group (Entra group, collection, computer target group).
    pub group: String,
    /// Settings of the assignment, by the planner's field names.
    #[serde(default, deserialize_with = "crate::intern::deserialize_shared_map")]
    pub fields: BTreeMap<Text, Text>,
}

/// Everything observed on one platform.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Observed {
    /// Objects, managed or not.
    pub objects: Vec<ObservedObject>,
}

impl Observed {
    /// A digest of the observed state, for refusing stale saved plans. Independent of the
    /// order in which the platform listed objects and assignments; streamed into the hash.
    pub fn fingerprint(&self) -> Sha256 {
        use sha2::Digest;
        let mut objects: Vec<&ObservedObject> = self.objects.iter().collect();
        objects.sort_by(|a, b| a.id.cmp(&b.id));
        let mut hasher = sha2::Sha256::new();
        for o in objects {
            let mut assignments: Vec<&ObservedAssignment> = o.assignments.iter().collect();
            assignments.sort_by(|a, b| a.group.cmp(&b.group));
            // Serializing plain data into a hasher cannot fail.
            let _ = serde_json::to_writer(&mut hasher, &(&o.id, &o.display_name, &o.marker, &o.fields, assignments));
            hasher.update(b"\n");
        }
        Sha256::from_bytes(hasher.finalize().into())
    }
}

/// Why a platform could not be observed.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The platform's state could not be read.
    #[error("platform `{platform}`: {reason}")]
    Unavailable {
        /// Platform name.
        platform: ObjectName,
        /// Why.
        reason: String,
    },
    /// No client for this kind of endpoint exists in this release.
    #[error("platform `{platform}`: talking to a real {ty} endpoint ({endpoint}) is not available in this release; use `endpoint: embedded` to try the fleet against the built-in emulator")]
    Unsupported {
        /// Platform name.
        platform: ObjectName,
        /// Platform type.
        ty: &'static str,
        /// The endpoint.
        endpoint: String,
    },
}

/// A publishing target.
#[async_trait::async_trait]
pub trait Platform: Send + Sync {
    /// The Platform's name in the fleet.
    fn name(&self) -> &ObjectName;

    /// Its type.
    fn platform_type(&self) -> PlatformType;

    /// Reads everything published, managed or not.
    async fn observe(&self) -> Result<Observed, PlatformError>;
}

/// Builds the client for a fleet Platform.
pub fn connect(
    platform: &crate::model::Platform,
    state: &crate::state::StateDir,
) -> Result<Box<dyn Platform>, PlatformError> {
    if platform.spec.endpoint == "embedded" {
        return Ok(Box::new(embedded::EmbeddedPlatform::new(
            platform.metadata.name.clone(),
            platform.spec.platform_type,
            state,
        )));
    }
    Err(PlatformError::Unsupported {
        platform: platform.metadata.name.clone(),
        ty: platform.spec.platform_type.as_str(),
        endpoint: platform.spec.endpoint.clone(),
    })
}
