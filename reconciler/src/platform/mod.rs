//! The real clients of the platforms patchops publishes to, behind one trait.
//!
//! A [`PlatformClient`] observes what is published and changes it (create, reconfigure,
//! assign, supersede, delete). Only the modules below this one know a platform's wire format;
//! the planner sees [`Observed`] values only. [`connect()`] builds a client from a fleet
//! Platform; [`retry`] is the one retry layer. Nothing here knows an emulator: an embedded
//! Platform is reached at the base URL the [`crate::harness`] hands over.
//!
//! Every object patchops publishes carries a [`TrackingMarker`]; objects without one are
//! *unmanaged* and are never updated or retired.

pub mod budget;
pub mod configmgr;
mod connect;
pub mod intune;
pub mod inventory;
pub mod retry;
pub mod wsus;

pub use connect::{
    connect, connect_configmgr, connect_wsus, intune_sign_in, ClientEnv, EmbeddedEndpoint, IntuneSignIn,
};

use schemars::JsonSchema;
use std::collections::BTreeMap;

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

/// The prefix of the marker's line in an object's notes or description.
const MARKER_PREFIX: &str = "patchops:";

impl TrackingMarker {
    /// Whether the marker says patchops manages the object.
    pub fn is_managed(&self) -> bool {
        self.managed_by == MANAGED_BY
    }

    /// The note patchops leaves on an object (Intune notes, the SDP description, ConfigMgr
    /// administrator comments): a line for people, then `patchops:` and the marker as JSON.
    pub fn note(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        format!("Published by patchops; changes made here are reverted on the next apply.\n{MARKER_PREFIX}{json}")
    }

    /// The marker on the last `patchops:` line of a note.
    pub fn from_note(text: &str) -> Option<TrackingMarker> {
        let line = text.lines().rev().find_map(|l| l.trim().strip_prefix(MARKER_PREFIX))?;
        serde_json::from_str(line).ok()
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
    #[serde(default)]
    pub fields: FieldMap,
    /// Deployments to device groups.
    #[serde(default, deserialize_with = "crate::intern::shrunk")]
    pub assignments: Vec<ObservedAssignment>,
    /// Relationships to other objects on the platform (supersedence, dependencies), as the
    /// platform reports them; empty where the platform has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "crate::intern::shrunk")]
    pub relationships: Vec<ObservedRelationship>,
    /// Set when the object was left half-made (a run died between creating it and committing
    /// its content): what is missing. Such an object is never assigned or reused; the planner
    /// retires it and publishes afresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
}

/// One relationship of an object to another (Intune: a mobileAppRelationship).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObservedRelationship {
    /// The kind, such as `supersedence:update`, `supersedence:replace` or
    /// `dependency:autoInstall`.
    pub kind: String,
    /// The other object's id.
    pub target: String,
}

impl ObservedObject {
    /// The marker, if patchops manages this object.
    pub fn managed(&self) -> Option<&TrackingMarker> {
        self.marker.as_ref().filter(|m| m.is_managed())
    }

    /// The marker, if patchops manages this object and it is whole (not left half-made by a
    /// run that died): the objects a ring can run and a publish can reuse.
    pub fn managed_complete(&self) -> Option<&TrackingMarker> {
        self.managed().filter(|_| self.incomplete.is_none())
    }
}

/// One deployment of an object to a device group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObservedAssignment {
    /// The group (Entra group, collection, computer target group).
    pub group: String,
    /// Settings of the assignment, by the planner's field names.
    #[serde(default)]
    pub fields: FieldMap,
    /// When the platform says the assignment was made, where it records that (a WSUS
    /// approval's creation date, a ConfigMgr deployment's start time; Graph's app assignments
    /// carry none). Evidence for the rollout gate when patchops's own ring history is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
}

/// Settings by the planner's field names, sorted by name. A compact list rather than a tree:
/// objects have about a dozen fields and assignments two or three, and a platform can hold tens
/// of thousands of them. Names and values are shared while an inventory is read (see
/// [`crate::intern::with_interner`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldMap(Vec<(Text, Text)>);

impl FieldMap {
    /// The fields in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    /// The value of a field.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(name)).ok().map(|i| &*self.0[i].1)
    }

    /// Sets a field.
    pub fn insert(&mut self, name: Text, value: Text) {
        // Fields mostly arrive in name order (inventories and plans are written sorted): one
        // comparison with the last instead of a search.
        if self.0.last().is_none_or(|(k, _)| *k < name) {
            self.0.push((name, value));
            return;
        }
        match self.0.binary_search_by(|(k, _)| k.cmp(&name)) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (name, value)),
        }
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(Text, Text)> for FieldMap {
    fn from_iter<I: IntoIterator<Item = (Text, Text)>>(iter: I) -> Self {
        let mut m = FieldMap::default();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

impl Serialize for FieldMap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for FieldMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = FieldMap;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of field names to string values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<FieldMap, A::Error> {
                let mut out = FieldMap::default();
                while let Some((k, v)) = map.next_entry::<std::borrow::Cow<'de, str>, std::borrow::Cow<'de, str>>()? {
                    out.insert(crate::intern::shared(&k), crate::intern::shared(&v));
                }
                out.0.shrink_to_fit();
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

impl JsonSchema for FieldMap {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FieldMap".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "object", "additionalProperties": { "type": "string" } })
    }
}

/// Everything observed on one platform.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Observed {
    /// Objects, managed or not.
    pub objects: Vec<ObservedObject>,
    /// The groups the fleet names by display name, as the platform resolved them (display
    /// name → object id; Intune).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, String>,
}

impl Observed {
    /// A digest of the observed state, for refusing stale saved plans, and each object's own
    /// digest by id, which lets a stale saved plan name the objects that changed. Each object is
    /// hashed once; the platform's digest is the hash of the objects' (id, digest) pairs in id
    /// order, then the named groups. Independent of the order in which the platform listed
    /// objects and assignments; every string is hashed with its length, so distinct states
    /// cannot collide by concatenation.
    pub fn fingerprints(&self) -> (Sha256, BTreeMap<String, Sha256>) {
        use sha2::Digest;
        let mut each: Vec<(&str, Sha256)> = self
            .objects
            .iter()
            .map(|o| {
                let mut h = sha2::Sha256::new();
                hash_object(&mut h, o);
                (o.id.as_str(), Sha256::from_bytes(h.finalize().into()))
            })
            .collect();
        // Two objects under one id (which no platform should list) both count.
        each.sort_unstable();
        let mut h = sha2::Sha256::new();
        h.update((each.len() as u64).to_le_bytes());
        for (id, digest) in &each {
            put(&mut h, id);
            h.update(digest.as_bytes());
        }
        // Where the fleet's named groups point is part of what was observed: a group renamed
        // or replaced changes the plan.
        if !self.groups.is_empty() {
            for s in std::iter::once("groups").chain(self.groups.iter().flat_map(|(n, i)| [n.as_str(), i.as_str()])) {
                put(&mut h, s);
            }
        }
        let objects = each.into_iter().map(|(id, digest)| (id.to_string(), digest)).collect();
        (Sha256::from_bytes(h.finalize().into()), objects)
    }
}

/// Hashes `s` with its length first, so that consecutive strings cannot collide by
/// concatenation.
fn put(h: &mut sha2::Sha256, s: &str) {
    use sha2::Digest;
    h.update((s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

fn hash_object(h: &mut sha2::Sha256, o: &ObservedObject) {
    use sha2::Digest;
    fn put_map(h: &mut sha2::Sha256, m: &FieldMap) {
        h.update((m.len() as u64).to_le_bytes());
        for (k, v) in m.iter() {
            put(h, k);
            put(h, v);
        }
    }
    put(h, &o.id);
    put(h, &o.display_name);
    match &o.marker {
        None => h.update([0u8]),
        Some(m) => {
            h.update([1u8]);
            put(h, &m.managed_by);
            put(h, m.product.as_str());
            put(h, &m.version);
            put(h, m.commit.as_deref().unwrap_or("\u{0}none"));
            // Always 32 bytes: no length needed, and no hex text made per object.
            h.update(m.content_digest.as_bytes());
        }
    }
    put_map(h, &o.fields);
    let mut assignments: Vec<&ObservedAssignment> = o.assignments.iter().collect();
    assignments.sort_by(|a, b| a.group.cmp(&b.group));
    h.update((assignments.len() as u64).to_le_bytes());
    for a in assignments {
        put(h, &a.group);
        put_map(h, &a.fields);
    }
    put(h, o.incomplete.as_deref().unwrap_or("\u{0}complete"));
    let mut relationships: Vec<&ObservedRelationship> = o.relationships.iter().collect();
    relationships.sort();
    h.update((relationships.len() as u64).to_le_bytes());
    for r in relationships {
        put(h, &r.kind);
        put(h, &r.target);
    }
}

/// A document read back from a platform (an SDP, an SDMPackageXML) that patchops did not write,
/// or no longer writes that way: the first thing found that it does not write. Observe treats
/// such an object as unmanaged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotOurs(pub String);

impl From<String> for NotOurs {
    fn from(s: String) -> Self {
        NotOurs(s)
    }
}

impl From<&str> for NotOurs {
    fn from(s: &str) -> Self {
        NotOurs(s.to_string())
    }
}

/// Why a platform could not be observed or changed.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// A temporary failure (throttling, 5xx, a dropped connection): worth retrying.
    #[error("platform `{platform}`: {operation}: {reason}")]
    Transient {
        /// Platform name.
        platform: ObjectName,
        /// What was being done.
        operation: String,
        /// Why it failed.
        reason: String,
        /// How long the platform asked us to wait.
        retry_after: Option<std::time::Duration>,
        /// The platform throttled the request (`429 Too Many Requests`), as opposed to failing
        /// (a `5xx`, a dropped connection).
        throttled: bool,
    },
    /// The platform refused the request: retrying the same request cannot help.
    #[error("platform `{platform}`: {operation} was refused ({status}): {message}")]
    Rejected {
        /// Platform name.
        platform: ObjectName,
        /// What was being done.
        operation: String,
        /// HTTP status.
        status: u16,
        /// The platform's message.
        message: String,
    },
    /// A multi-step operation failed at a step (not an HTTP refusal).
    #[error("platform `{platform}`: {operation} failed: {cause}")]
    Failed {
        /// Platform name.
        platform: ObjectName,
        /// The step.
        operation: String,
        /// What went wrong.
        #[source]
        cause: crate::vocab::Cause,
    },
    /// This client cannot do that yet.
    #[error("platform `{platform}`: {what} is not available for {ty} platforms in this release")]
    NotImplemented {
        /// Platform name.
        platform: ObjectName,
        /// Platform type.
        ty: &'static str,
        /// What was asked.
        what: String,
    },
    /// The platform's state could not be read.
    #[error("platform `{platform}`: {cause}")]
    Unavailable {
        /// Platform name.
        platform: ObjectName,
        /// Why.
        #[source]
        cause: crate::vocab::Cause,
    },
}

impl PlatformError {
    /// A stable CamelCase reason, for machines (conditions, metrics, notifications).
    pub fn reason(&self) -> &'static str {
        match self {
            PlatformError::Transient { .. } => "PlatformTransient",
            PlatformError::Rejected { .. } => "PlatformRejected",
            PlatformError::Failed { .. } => "PlatformFailed",
            PlatformError::NotImplemented { .. } => "NotImplemented",
            PlatformError::Unavailable { .. } => "PlatformUnavailable",
        }
    }
}

/// Content handed to a client is not the content its object's marker names (a bug upstream:
/// the engine pairs them).
#[derive(Debug, Clone, thiserror::Error)]
#[error("content {content} does not match the marker's digest {marker}")]
pub struct ContentMismatch {
    /// The content's digest.
    pub content: crate::vocab::Sha256,
    /// The marker's.
    pub marker: crate::vocab::Sha256,
}

/// Why a generated script could not be handed to a platform.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// The platform needs signed scripts and has no certificate.
    #[error(
        "the platform runs PowerShell as AllSigned but has no trust.scriptSigningCertificate, so the {script} \
         would not run; add the certificate (PEM with its key, by reference)"
    )]
    SigningRequired {
        /// The script's name.
        script: String,
    },
    /// Signing failed.
    #[error("{0}")]
    Sign(#[from] crate::authenticode::SignError),
    /// The signing task failed (a bug: it panicked).
    #[error("the signing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl DeliverError {
    /// A stable CamelCase reason, for machines.
    pub fn reason(&self) -> &'static str {
        match self {
            DeliverError::SigningRequired { .. } => "ScriptSigningRequired",
            DeliverError::Sign(e) => e.reason(),
            DeliverError::Task(_) => "InternalTaskFailed",
        }
    }
}

/// What patchops wants a platform object to be: built by the apply engine from the fleet and
/// the verified catalog entry.
#[derive(Debug, Clone)]
pub struct DesiredObject {
    /// The marker the object carries.
    pub marker: TrackingMarker,
    /// Settings by the planner's field names (`displayName`, `version`, `installCommand`, …).
    pub fields: FieldMap,
    /// The catalog's installer entry.
    pub installer: crate::catalog::Installer,
    /// The catalog's description of the product.
    pub description: String,
    /// The catalog's name of the product (`Mozilla Firefox`), without architecture.
    pub product_name: String,
    /// The vendor's page for the product, if the catalog names one.
    pub homepage: Option<String>,
    /// Where apply obtained the installer (`None` for an object made by hand, such as a test's:
    /// then only an absolute catalog URL tells).
    pub origin: Option<InstallerOrigin>,
}

/// Where an installer was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallerOrigin {
    /// A URL: the catalog's absolute one, or its relative one resolved against a catalog
    /// fetched from a URL — whole, with its query string (only what is shown to people is
    /// redacted).
    Url(url::Url),
    /// A file of the fleet's commit, by its path in the repository.
    Repository(String),
}

impl DesiredObject {
    /// Why the object cannot be published when the catalog gives no way to detect it: `who`
    /// (devices, WSUS clients) could not tell whether it is installed.
    pub fn undetectable(&self, who: &str) -> String {
        format!(
            "{} {} ({}) has neither an MSI product code nor detection data in the catalog, so {who} could not \
             tell whether it is installed; add `detection` (file or registry) to the catalog's installer",
            self.marker.product,
            self.marker.version,
            self.installer.file_name()
        )
    }

    /// Trust-chain link 2 again, at the hand-over: the content is the one the catalog (and so
    /// the marker) describes.
    pub fn check_content(&self, content: &crate::content::VerifiedContent) -> Result<(), ContentMismatch> {
        if content.sha256() == self.marker.content_digest {
            Ok(())
        } else {
            Err(ContentMismatch { content: content.sha256(), marker: self.marker.content_digest })
        }
    }

    /// The MSI's own facts (ProductCode, ProductVersion …) read from the verified content, for
    /// an MSI installer (`None` for others): what Windows Installer reports on a device, and so
    /// what every platform's detection compares. A catalog product code the MSI contradicts is
    /// refused (detection would never find what the MSI installs). Reading is blocking file IO:
    /// on a blocking thread.
    pub async fn msi_facts(
        &self,
        content: &crate::content::VerifiedContent,
    ) -> Result<Option<crate::msi::MsiInfo>, crate::vocab::Cause> {
        if self.installer.installer_type != crate::model::InstallerType::Msi {
            return Ok(None);
        }
        let path = content.path().to_path_buf();
        let msi = tokio::task::spawn_blocking(move || crate::msi::read(&path))
            .await
            .map_err(|e| crate::vocab::because("reading the MSI stopped", e))?
            .map_err(|e| crate::vocab::because("cannot read the MSI's ProductCode and ProductVersion", e))?;
        if let Some(code) = &self.installer.msi_product_code {
            if !code.eq_ignore_ascii_case(&msi.product_code) {
                return Err(format!(
                    "the catalog gives {} the product code {code}, but the MSI's own ProductCode is {}: correct the catalog (detection would never find what this MSI installs)",
                    self.installer.file_name(),
                    msi.product_code
                )
                .into());
            }
        }
        Ok(Some(msi))
    }
}

/// One wanted deployment of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredAssignment {
    /// The group.
    pub group: String,
    /// Settings by the planner's field names (`intent`, `restart`, `deadline`).
    pub fields: FieldMap,
}

/// A publishing target.
///
/// Every change is idempotent in effect: assigning sets the whole assignment list, deleting an
/// object that is gone succeeds. The apply engine relies on this to converge after a crash.
#[async_trait::async_trait]
pub trait PlatformClient: Send + Sync {
    /// The Platform's name in the fleet.
    fn name(&self) -> &ObjectName;

    /// Its type.
    fn platform_type(&self) -> PlatformType;

    /// Reads everything published, managed or not.
    async fn observe(&self) -> Result<Observed, PlatformError>;

    /// Reads everything published as the platform's own documents, and what patchops observes
    /// of them — Graph's `mobileApp`s with their assignments and relationships (Intune), the
    /// server's listing with each update's SDP and approvals (WSUS), the AdminService's
    /// `SMS_Application` instances with their SDMPackageXML and the `SMS_ApplicationAssignment`s
    /// (ConfigMgr). `patchops inventory record` keeps the documents beside the observation, so
    /// that `plan --emulate` can seed an emulator with exactly what the platform holds.
    async fn observe_documents(&self) -> Result<(Observed, serde_json::Value), PlatformError> {
        Err(PlatformError::NotImplemented {
            platform: self.name().clone(),
            ty: self.platform_type().as_str(),
            what: "reading the platform's documents".into(),
        })
    }

    /// Creates an object for verified content; returns its id. Only [`VerifiedContent`] can be
    /// handed over, so nothing whose SHA-256 was not checked reaches a platform.
    ///
    /// [`VerifiedContent`]: crate::content::VerifiedContent
    async fn create(
        &self,
        object: &DesiredObject,
        content: &crate::content::VerifiedContent,
    ) -> Result<String, PlatformError>;

    /// Brings an existing object's settings in line with `object`.
    async fn reconfigure(&self, id: &str, object: &DesiredObject) -> Result<(), PlatformError>;

    /// Replaces the object's assignments with `assignments`.
    async fn set_assignments(&self, id: &str, assignments: &[DesiredAssignment]) -> Result<(), PlatformError>;

    /// Deletes the object (succeeds when it is already gone).
    async fn delete(&self, id: &str) -> Result<(), PlatformError>;

    /// Records that `new` supersedes `old` (an update), keeping `new`'s other relationships.
    /// Platforms without such a notion do nothing.
    async fn supersede(&self, new: &str, old: &str) -> Result<(), PlatformError> {
        let _ = (new, old);
        Ok(())
    }

    /// The ids of the groups named `names` (display names), read-only: exactly one group per
    /// name, else an error naming it. Only Intune's fleets name groups (validation refuses it
    /// elsewhere); other platforms refuse.
    async fn resolve_groups(&self, names: &[String]) -> Result<BTreeMap<String, String>, PlatformError> {
        match names.first() {
            None => Ok(BTreeMap::new()),
            Some(name) => Err(PlatformError::NotImplemented {
                platform: self.name().clone(),
                ty: self.platform_type().as_str(),
                what: format!("finding the group named `{name}` (name groups by id on this platform)"),
            }),
        }
    }
}

/// How the PowerShell patchops generates (detection and requirement scripts for devices,
/// request scripts for a WSUS server) reaches the machines that run it.
#[derive(Debug, Clone, Default)]
pub enum ScriptSigning {
    /// Unsigned (machines that do not run AllSigned).
    #[default]
    Unsigned,
    /// Authenticode-signed with the customer's certificate.
    Signed(crate::authenticode::CodeSigner),
    /// The machines run AllSigned and no certificate was given: anything that needs a script
    /// is refused rather than sent with a script that would not run.
    Required,
}

/// A generated script ready to hand over: only a signed one may ask for its signature to be
/// enforced.
#[derive(Debug, Clone)]
pub enum Delivered {
    /// As generated.
    Plain(crate::script::Script<crate::script::Unsigned>),
    /// With its Authenticode signature block.
    Signed(crate::script::Script<crate::script::Signed>),
}

impl Delivered {
    /// The script's text.
    pub fn text(&self) -> &str {
        match self {
            Delivered::Plain(s) => s.text(),
            Delivered::Signed(s) => s.text(),
        }
    }

    /// `scriptContent` (base64) and whether the signature may be enforced.
    pub fn content(&self) -> (String, bool) {
        match self {
            Delivered::Plain(s) => (s.to_base64(), false),
            Delivered::Signed(s) => (s.to_base64(), true),
        }
    }
}

impl ScriptSigning {
    /// Signs `script` when the platform signs (the RSA signature off the async threads), and
    /// has it timestamped when the platform names a time-stamping authority.
    pub async fn deliver(
        &self,
        script: crate::script::Script<crate::script::Unsigned>,
    ) -> Result<Delivered, DeliverError> {
        match self {
            ScriptSigning::Unsigned => Ok(Delivered::Plain(script)),
            ScriptSigning::Required => Err(DeliverError::SigningRequired { script: script.name().to_string() }),
            ScriptSigning::Signed(signer) => {
                let blocking = signer.clone();
                let signed = tokio::task::spawn_blocking(move || blocking.sign_script(script)).await??;
                Ok(Delivered::Signed(signer.timestamp(signed).await?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(id: &str, groups: &[&str]) -> ObservedObject {
        ObservedObject {
            relationships: Vec::new(),
            incomplete: None,
            id: id.into(),
            display_name: id.into(),
            marker: None,
            fields: [("version".into(), "1.0".into())].into_iter().collect(),
            assignments: groups
                .iter()
                .map(|g| ObservedAssignment { group: (*g).into(), fields: FieldMap::default(), since: None })
                .collect(),
        }
    }

    #[test]
    fn fingerprints_ignore_listing_order_but_see_every_change() {
        let a = Observed { objects: vec![object("x", &["g1", "g2"]), object("y", &[])], ..Default::default() };
        let b = Observed { objects: vec![object("y", &[]), object("x", &["g2", "g1"])], ..Default::default() };
        assert_eq!(a.fingerprints().0, b.fingerprints().0);
        let mut c = a.clone();
        c.objects[0].fields.insert("version".into(), "1.1".into());
        assert_ne!(a.fingerprints().0, c.fingerprints().0);
        // Concatenation cannot collide: ("ab", "c") differs from ("a", "bc").
        let d = Observed { objects: vec![object("ab", &["c"])], ..Default::default() };
        let e = Observed { objects: vec![object("a", &["bc"])], ..Default::default() };
        assert_ne!(d.fingerprints().0, e.fingerprints().0);
    }
}
