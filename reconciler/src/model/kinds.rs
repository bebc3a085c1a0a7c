//! The YAML kinds of a fleet repository, exactly as written by users.
//!
//! Every struct denies unknown fields, so a typo is an error with its position rather than a
//! silently ignored setting. These types are the source of the JSON Schemas in `schemas/`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::names::{ObjectName, PlatformName, ProductId, RingName};
use super::secret::SecretRef;
use super::version::VersionSelector;
pub use crate::vocab::types::{Architecture, InstallerType, PlatformType, API_VERSION};

/// The kinds a fleet repository may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Kind {
    /// What to publish: a catalog product, its version and its targets.
    Product,
    /// Where to publish: one WSUS, Configuration Manager or Intune instance.
    Platform,
    /// How to roll out: ordered rings mapped to each platform's groups.
    Rollout,
    /// Which signed vendor catalog to trust.
    CatalogSource,
    /// Which policies every action must pass, and their parameters.
    PolicySet,
    /// How `patchops run` watches this fleet: its interval and whom it notifies.
    Reconciler,
}

impl Kind {
    /// Every kind, in the order they are documented.
    pub const ALL: [Kind; 6] =
        [Kind::Product, Kind::Platform, Kind::Rollout, Kind::CatalogSource, Kind::PolicySet, Kind::Reconciler];

    /// The kind's name as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Product => "Product",
            Kind::Platform => "Platform",
            Kind::Rollout => "Rollout",
            Kind::CatalogSource => "CatalogSource",
            Kind::PolicySet => "PolicySet",
            Kind::Reconciler => "Reconciler",
        }
    }

    /// Parses a kind as written in YAML.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// `metadata` of every fleet object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// Unique among objects of the same kind.
    pub name: ObjectName,
    /// Free-form labels, shown in plans and status.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Free-form annotations, for humans and other tools.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A fleet document: `apiVersion`, `kind`, `metadata` and a kind-specific `spec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Document<S> {
    /// Always `patchops.io/v1alpha1`.
    pub api_version: String,
    /// The kind, matching the spec's type.
    pub kind: String,
    /// Name, labels and annotations.
    pub metadata: Metadata,
    /// The kind-specific content.
    pub spec: S,
}

// ---------------------------------------------------------------------------------------------
// Product

/// What to publish: a catalog product at a chosen version, to chosen platforms and rings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProductSpec {
    /// The product's id in the catalog, such as `mozilla.firefox`.
    pub product: ProductId,
    /// Which CatalogSource provides it; may be left out when the fleet has exactly one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<ObjectName>,
    /// `latest`, an exact version (quoted, such as "128.0.1") or a range such as ">=128, <129".
    #[serde(default = "latest")]
    pub version: VersionSelector,
    /// The installer architecture to publish.
    #[serde(default)]
    pub architecture: Architecture,
    /// Prefer this installer type when the catalog offers several for the architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installer_type: Option<InstallerType>,
    /// Retire the product everywhere it is published (as if the document were removed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retire: bool,
    /// Overrides the Platforms' drift settings for this Product (the mode replaces theirs; the
    /// ignored fields add to theirs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftSettings>,
    /// Where the product goes: platforms and the rings on each.
    pub targets: Vec<ProductTarget>,
}

fn latest() -> VersionSelector {
    VersionSelector::Latest
}

/// One platform a product is published to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProductTarget {
    /// The Platform's `metadata.name`.
    pub platform: PlatformName,
    /// The Rollout to follow; may be left out when the fleet has exactly one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<ObjectName>,
    /// Rings of the rollout to deploy to; every ring of the rollout when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rings: Option<Vec<RingName>>,
    /// Platform-neutral install behaviour.
    #[serde(default)]
    pub install: InstallSettings,
    /// Intune-only settings (only on a Platform of type `intune`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intune: Option<IntuneSettings>,
    /// Configuration Manager-only settings (only on a Platform of type `configmgr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configmgr: Option<ConfigMgrSettings>,
    /// WSUS-only settings (only on a Platform of type `wsus`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wsus: Option<WsusSettings>,
}

/// How devices install the product.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InstallSettings {
    /// `required` installs on every device of the ring; `available` offers it to users.
    #[serde(default)]
    pub intent: InstallIntent,
    /// Time after the ring opens by which installation is enforced, such as `72h` or `3d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Duration>,
    /// What happens when the installer asks for a restart.
    #[serde(default)]
    pub restart: RestartBehavior,
}

/// Assignment intent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum InstallIntent {
    /// Installed on every device of the ring.
    #[default]
    Required,
    /// Offered to users (Company Portal, Software Center); not supported by WSUS.
    Available,
}

/// Restart handling after installation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RestartBehavior {
    /// Decide from the installer's return code (3010 means restart needed).
    #[default]
    BasedOnReturnCode,
    /// Never restart.
    Suppress,
    /// Allow the device to restart.
    Allow,
    /// Force a restart.
    Force,
}

/// Intune-specific settings of a target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IntuneSettings {
    /// Install in the system context (default) or the signed-in user's.
    #[serde(default)]
    pub install_experience: RunAs,
    /// Let users uninstall an `available` app from Company Portal.
    #[serde(default)]
    pub allow_available_uninstall: bool,
    /// Install only where some version is already installed (a requirement script built from
    /// the catalog's detection data): keeps a `required` update from spreading the product to
    /// devices that never had it.
    #[serde(default)]
    pub update_only: bool,
    /// With an `available` assignment: devices that installed an earlier version patchops
    /// published (one this version supersedes) get this one automatically (Graph's
    /// `autoUpdateSettings` on the assignment). Only for `intent: available`.
    #[serde(default)]
    pub auto_update_superseded_apps: bool,
}

/// Security context of an installer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RunAs {
    /// Local system.
    #[default]
    System,
    /// The signed-in user.
    User,
}

/// Configuration Manager-specific settings of a target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigMgrSettings {
    /// Publish as an application (default) or as a software update through WSUS.
    #[serde(default)]
    pub deliver_as: ConfigMgrDelivery,
    /// Estimated installation time shown in Software Center, in minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_runtime_minutes: Option<u32>,
}

/// How Configuration Manager delivers a product.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ConfigMgrDelivery {
    /// An application created through the AdminService.
    #[default]
    Application,
    /// A third-party software update through the software update point: publish it with a
    /// target on the WSUS Platform that is the site's software update point (validation says
    /// so when a ConfigMgr target asks for it).
    SoftwareUpdate,
}

/// WSUS-specific settings of a target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WsusSettings {
    /// The update classification.
    #[serde(default)]
    pub classification: WsusClassification,
}

/// WSUS update classifications patchops publishes under.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum WsusClassification {
    /// Updates.
    #[default]
    Updates,
    /// Security updates.
    SecurityUpdates,
    /// Critical updates.
    CriticalUpdates,
}

// ---------------------------------------------------------------------------------------------
// Platform

/// One publishing target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PlatformSpec {
    /// The kind of platform.
    #[serde(rename = "type")]
    pub platform_type: PlatformType,
    /// `embedded` (an emulator of the platform patchops runs on loopback, for trials and CI),
    /// `inventory` (a recorded, read-only inventory under the state directory, for plans), or
    /// the service: the Graph URL (Intune), the SMS Provider's URL (ConfigMgr AdminService), or
    /// `ssh://HOST[:PORT]` for a WSUS server.
    pub endpoint: String,
    /// How patchops authenticates; every secret is a reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<PlatformAuth>,
    /// The platform's own trust settings.
    #[serde(default)]
    pub trust: PlatformTrust,
    /// Most actions run at once against this platform.
    #[serde(default = "default_concurrency")]
    pub concurrency: u16,
    /// What `patchops run` does when a managed object changed outside git, and which fields
    /// are never compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftSettings>,
    /// WSUS-only settings (only on a Platform of type `wsus`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wsus: Option<WsusPlatformSettings>,
    /// Configuration Manager-only settings (only on a Platform of type `configmgr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configmgr: Option<ConfigMgrPlatformSettings>,
    /// Intune-only settings (only on a Platform of type `intune`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intune: Option<IntunePlatformSettings>,
    /// How many superseded versions of each product stay on the platform, unassigned, to roll
    /// back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
}

/// Superseded versions kept on a platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Retention {
    /// The most recent superseded versions of a product kept, unassigned, after an update
    /// (default 1; 0 deletes a version as soon as no ring runs it). A ring pinned back to a
    /// kept version is assigned it again, without a new upload; older versions are retired
    /// once their relationships are removed. Intune allows at most 9 (a supersedence graph
    /// holds at most 10 apps).
    pub keep_versions: u16,
}

/// Superseded versions kept when a Platform says nothing.
pub const DEFAULT_KEEP_VERSIONS: u16 = 1;

/// The most superseded versions an Intune platform keeps: "There can be a maximum of 10 nodes
/// in a supersedence relationship in Intune" (Add Win32 app supersedence,
/// <https://learn.microsoft.com/mem/intune/apps/apps-win32-supersedence>).
pub const MAX_INTUNE_KEEP_VERSIONS: u16 = 9;

impl PlatformSpec {
    /// How many superseded versions of a product this platform keeps.
    pub fn keep_versions(&self) -> u16 {
        self.retention.as_ref().map_or(DEFAULT_KEEP_VERSIONS, |r| r.keep_versions)
    }
}

/// How patchops talks to an Intune tenant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IntunePlatformSettings {
    /// The most Graph write requests (create, change, assign, delete) patchops sends in a
    /// window: it paces itself below Intune's documented limits (100 per 20 s per app
    /// registration, 200 per 20 s per tenant) instead of meeting 429s. Default 80 per 20 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_budget: Option<WriteBudgetSpec>,
}

/// A budget of write requests: `requests` in any window of `per`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WriteBudgetSpec {
    /// Writes per window, at least 1.
    pub requests: u32,
    /// The window, such as `20s`.
    pub per: Duration,
}

/// How patchops reaches and changes a WSUS server.
///
/// WSUS's publishing API exists only on Windows, so patchops generates PowerShell that calls it
/// on the server and runs it through a transport: by default `scp` copies the script and its
/// files into a staging folder and `ssh` runs it (`endpoint: ssh://HOST[:PORT]`, as
/// `auth.username` with `auth.sshKey`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WsusPlatformSettings {
    /// What retiring an update does: `expire` (default; irreversible, WSUS removes its
    /// approvals) or `decline` (approvals removed; devices that have it keep it).
    #[serde(default)]
    pub retire: WsusRetire,
    /// The SSH transport's commands, when the defaults do not fit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<WsusTransport>,
}

/// How a WSUS update is retired.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum WsusRetire {
    /// Expire the package (PublicationState Expired): irreversible; approvals are removed.
    #[default]
    Expire,
    /// Decline the update: approvals are removed; it can be approved again by hand.
    Decline,
}

/// The commands of the SSH transport to a WSUS server. Each is a program and its first
/// arguments; patchops appends the key, port, destination and paths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WsusTransport {
    /// Runs a command on the server; default `[ssh, -o, BatchMode=yes]`.
    #[serde(default = "default_ssh")]
    pub command: Vec<String>,
    /// Copies files to the server; default `[scp, -q, -o, BatchMode=yes]`.
    #[serde(default = "default_scp")]
    pub copy_command: Vec<String>,
    /// How the server runs a staged script, the script's path appended; default
    /// `[powershell.exe, -NoProfile, -NonInteractive, -ExecutionPolicy, <trust.executionPolicy>, -File]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shell: Vec<String>,
    /// The server's folder for staged scripts and files (one sub-folder per request).
    #[serde(default = "default_staging")]
    pub staging_dir: String,
}

impl Default for WsusTransport {
    fn default() -> Self {
        WsusTransport {
            command: default_ssh(),
            copy_command: default_scp(),
            shell: Vec::new(),
            staging_dir: default_staging(),
        }
    }
}

fn default_ssh() -> Vec<String> {
    ["ssh", "-o", "BatchMode=yes"].map(String::from).to_vec()
}

fn default_scp() -> Vec<String> {
    ["scp", "-q", "-o", "BatchMode=yes"].map(String::from).to_vec()
}

fn default_staging() -> String {
    "C:/ProgramData/patchops/staging".into()
}

/// How patchops publishes applications to a Configuration Manager site.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigMgrPlatformSettings {
    /// Where application content goes: the share's UNC path as the site reads it, and where
    /// that share is mounted on the machine patchops runs on. Required for a real site; an
    /// embedded site keeps its share under the state directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_share: Option<ContentShare>,
    /// The Platform of type `wsus` that is this site's software update point: targets with
    /// `configmgr.deliverAs: softwareUpdate` are published there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_update_point: Option<PlatformName>,
}

/// A content source share, seen from the site and from patchops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContentShare {
    /// The share as the site reads it, such as `\\cm01\sources\patchops`.
    pub unc: String,
    /// The same share mounted here, such as `/mnt/cm-sources/patchops`.
    pub local_path: String,
}

fn default_concurrency() -> u16 {
    4
}

/// Credentials, by reference. Which fields apply depends on the platform type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PlatformAuth {
    /// Entra tenant id (Intune).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// The Entra ID authority that issues tokens (Intune); `https://login.microsoftonline.com/`
    /// when left out. Sovereign clouds use their own, such as `https://login.microsoftonline.us/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// App registration (client) id (Intune).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Certificate and private key (PEM or PFX) for certificate authentication (recommended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<SecretRef>,
    /// How the client assertion is signed (Intune): `ps256` (default; header `x5t#S256`) or the
    /// older `rs256` (header `x5t`, the certificate's SHA-1 thumbprint), for tenants or proxies
    /// that still need it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assertion_algorithm: Option<AssertionAlgorithm>,
    /// Client secret (Intune); the default policy flags it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<SecretRef>,
    /// Account name (AdminService, or the SSH user for WSUS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password of `username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretRef>,
    /// SSH private key for the WSUS transport.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key: Option<SecretRef>,
}

/// Signature algorithms of a client assertion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AssertionAlgorithm {
    /// RSASSA-PSS with SHA-256, header `x5t#S256`.
    #[default]
    Ps256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, header `x5t` (SHA-1 thumbprint).
    Rs256,
}

/// A platform's own trust settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PlatformTrust {
    /// WSUS code-signing certificate (and key) used to sign published updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_certificate: Option<SecretRef>,
    /// Code-signing certificate for generated PowerShell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_signing_certificate: Option<SecretRef>,
    /// An RFC 3161 time-stamping authority (`http://…` or `https://…`, such as your CA's) that
    /// timestamps every script signature, so scripts keep running after the signing
    /// certificate expires. Without it signatures are valid only while the certificate is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_url: Option<String>,
    /// The endpoints' PowerShell execution policy; `allSigned` requires script signing.
    #[serde(default)]
    pub execution_policy: ExecutionPolicy,
    /// What the managed Windows devices trust (as your Group Policy or ConfigMgr client
    /// settings deploy it), for `patchops doctor` and its emulated client (WSUS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<ClientTrust>,
}

/// The trust settings of a platform's Windows devices.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientTrust {
    /// Policy "Allow signed updates from an intranet Microsoft update service location"
    /// (`HKLM\SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate\AcceptTrustedPublisherCerts`).
    #[serde(default)]
    pub accept_trusted_publisher_certs: bool,
    /// Certificates (PEM or DER files) in the Local Computer's Trusted Publishers store.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_publishers: Vec<SecretRef>,
    /// Certificates in the Local Computer's Trusted Root Certification Authorities store
    /// (besides the operating system's own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_roots: Vec<SecretRef>,
}

/// PowerShell execution policy of the managed endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ExecutionPolicy {
    /// Scripts run unsigned.
    #[default]
    Bypass,
    /// Downloaded scripts must be signed.
    RemoteSigned,
    /// Every script must be signed by a trusted publisher.
    AllSigned,
}

// ---------------------------------------------------------------------------------------------
// Rollout

/// Ordered rings and their pacing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Rings in rollout order: each ring opens after the previous one has soaked.
    pub rings: Vec<Ring>,
    /// Windows in which changes may be applied; always when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintenance_windows: Vec<MaintenanceWindow>,
    /// Most actions applied per platform in one step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_changes_per_step: Option<u32>,
}

/// One ring of a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Ring {
    /// The ring's name, unique in the rollout.
    pub name: RingName,
    /// How long this ring runs a version before the next ring gets it, such as `48h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak: Option<Duration>,
    /// The group of devices on each platform: an Entra group (Intune), a collection id
    /// (ConfigMgr) or a computer target group (WSUS).
    pub groups: Vec<RingGroup>,
}

/// A ring's device group on one platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RingGroup {
    /// The Platform's `metadata.name`.
    pub platform: PlatformName,
    /// The group on that platform: its id — an Entra ID object id (a GUID) on Intune, a
    /// collection id on ConfigMgr, a computer target group's name on WSUS — or, on Intune,
    /// `{ name: DISPLAY-NAME }`, which patchops resolves read-only through Graph (exactly one
    /// group of that name, else an error).
    pub group: GroupRef,
}

/// How a ring names its group on a platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum GroupRef {
    /// The platform's id of the group.
    Id(String),
    /// An Entra ID group named by its `displayName` (Intune only).
    Named(NamedGroup),
}

/// An Entra ID group named by its display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamedGroup {
    /// The group's `displayName` in Entra ID.
    pub name: String,
    /// The group's object id, once resolved through Graph (never written in a fleet).
    #[serde(skip)]
    #[schemars(skip)]
    pub resolved: Option<String>,
}

impl GroupRef {
    /// The group's id on its platform; `None` for a named group not resolved yet.
    pub fn id(&self) -> Option<&str> {
        match self {
            GroupRef::Id(id) => Some(id),
            GroupRef::Named(n) => n.resolved.as_deref(),
        }
    }

    /// The display name a fleet gave the group, if it named it.
    pub fn name(&self) -> Option<&str> {
        match self {
            GroupRef::Id(_) => None,
            GroupRef::Named(n) => Some(&n.name),
        }
    }

    /// How people are shown the group: its name when the fleet named it, else its id.
    pub fn label(&self) -> &str {
        match self {
            GroupRef::Id(id) => id,
            GroupRef::Named(n) => &n.name,
        }
    }
}

/// A recurring window in which changes may be applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MaintenanceWindow {
    /// Days of the week, such as `[sat, sun]`; every day when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<Weekday>,
    /// Start time, `HH:MM`, in `timeZone` (UTC when it is left out).
    pub start: String,
    /// Length of the window, such as `6h`.
    pub duration: Duration,
    /// The IANA time zone `days` and `start` are read in, such as `Europe/Berlin`: the window
    /// follows its daylight-saving changes. UTC when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

impl MaintenanceWindow {
    /// The window's time zone (UTC when none is given or the name is unknown — validation
    /// refuses unknown names).
    pub fn tz(&self) -> chrono_tz::Tz {
        self.time_zone.as_deref().and_then(|z| z.parse().ok()).unwrap_or(chrono_tz::UTC)
    }
}

/// Days of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

// ---------------------------------------------------------------------------------------------
// CatalogSource

/// A signed vendor catalog and the keys trusted to sign it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CatalogSourceSpec {
    /// The catalog: an `https://`, `http://` or `file://` URL, or a path relative to this
    /// document, read from the same commit as the fleet.
    pub url: String,
    /// The detached minisign signature; `<url>.minisig` when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_url: Option<String>,
    /// minisign public keys (the base64 line of a `.pub` file, starting with `RW`) trusted to
    /// sign this catalog.
    pub trusted_keys: Vec<String>,
    /// Refuse a catalog issued longer ago than this, such as `30d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Duration>,
    /// For a catalog at an `https://` or `http://` URL: how often `patchops run` fetches it
    /// between cycles, such as `10m`, to reconcile as soon as the publisher signs a new serial
    /// (verified as every cycle verifies it). Left out, the catalog is read at each cycle only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
}

// ---------------------------------------------------------------------------------------------
// PolicySet

/// What the daemon does with drift: a managed object changed outside git between commits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DriftMode {
    /// Not checked: differences found between commits are neither reported nor corrected.
    Off,
    /// Reported (per object, field by field, expected against actual), not corrected.
    Warn,
    /// Reported and corrected: the desired state is applied again.
    #[default]
    Correct,
}

/// Drift settings of a Platform (or a Product's override).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DriftSettings {
    /// `off`, `warn` or `correct` (default `correct`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<DriftMode>,
    /// Fields never compared, as `plan` names them (`displayName`, `assignment.deadline`); a
    /// trailing `*` matches a prefix (`intune.*`). For values the platform changes by itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
}

impl DriftSettings {
    /// Whether `field` is ignored.
    pub fn ignores(&self, field: &str) -> bool {
        self.ignore.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => field.starts_with(prefix),
            None => p == field,
        })
    }
}

/// How `patchops run` watches the fleet. What belongs to the fleet is here, reviewed like every
/// other change; what belongs to the host (listen address, state directory, repository) is
/// flags. At most one Reconciler per fleet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReconcilerSpec {
    /// How often the branch is fetched and the platforms observed again (drift checks), such as
    /// `5m`; one minute when left out. `--interval` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Where events are sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<NotificationTarget>,
}

/// An outgoing webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NotificationTarget {
    /// A name for logs and metrics.
    pub name: String,
    /// The message format.
    #[serde(rename = "type")]
    pub format: NotificationFormat,
    /// The webhook URL, by reference: Slack and Teams URLs carry their own credential.
    pub url: SecretRef,
    /// HMAC-SHA256 key the generic format signs its body with (`X-Patchops-Signature-256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretRef>,
    /// The events to send; every one when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<NotificationEvent>>,
}

/// Message formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NotificationFormat {
    /// patchops's JSON event, signed with HMAC-SHA256 when `secret` is given.
    Generic,
    /// A Slack incoming webhook message.
    Slack,
    /// A Microsoft Teams message with an Adaptive Card (Workflows or incoming webhook).
    Teams,
}

/// What is notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NotificationEvent {
    /// Changes were applied.
    Applied,
    /// An action or a cycle failed.
    Failed,
    /// Objects changed outside git.
    Drift,
    /// The fleet failed too often in a row.
    Stalled,
    /// A catalog or commit was refused (signature, rollback, expiry).
    Refused,
}

impl NotificationEvent {
    /// As written in YAML and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationEvent::Applied => "applied",
            NotificationEvent::Failed => "failed",
            NotificationEvent::Drift => "drift",
            NotificationEvent::Stalled => "stalled",
            NotificationEvent::Refused => "refused",
        }
    }
}

/// A policy shipped with patchops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BuiltinPolicy {
    /// `scan_detections`.
    ScanDetections,
    /// `vendor_allowlist`.
    VendorAllowlist,
    /// `intune_certificate_auth`.
    IntuneCertificateAuth,
    /// `script_signing`.
    ScriptSigning,
    /// `change_freeze`.
    ChangeFreeze,
}

impl BuiltinPolicy {
    /// Every built-in policy, in the order `patchops policy list` shows them.
    pub const ALL: [BuiltinPolicy; 5] = [
        BuiltinPolicy::ScanDetections,
        BuiltinPolicy::VendorAllowlist,
        BuiltinPolicy::IntuneCertificateAuth,
        BuiltinPolicy::ScriptSigning,
        BuiltinPolicy::ChangeFreeze,
    ];

    /// Their names, in the same order.
    pub const NAMES: [&'static str; 5] =
        ["scan_detections", "vendor_allowlist", "intune_certificate_auth", "script_signing", "change_freeze"];

    /// The name (the last component of its Rego package).
    pub fn as_str(self) -> &'static str {
        match self {
            BuiltinPolicy::ScanDetections => "scan_detections",
            BuiltinPolicy::VendorAllowlist => "vendor_allowlist",
            BuiltinPolicy::IntuneCertificateAuth => "intune_certificate_auth",
            BuiltinPolicy::ScriptSigning => "script_signing",
            BuiltinPolicy::ChangeFreeze => "change_freeze",
        }
    }

    /// The built-in policy called `name`.
    pub fn from_name(name: &str) -> Option<BuiltinPolicy> {
        BuiltinPolicy::ALL.into_iter().find(|b| b.as_str() == name)
    }
}

/// A name in `spec.builtin`: a built-in policy, or a name that is none. An unknown name is kept
/// (not refused by serde) so that loading reports it with its position and the nearest name,
/// together with every other problem of the fleet; the schema lists the names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuiltinName {
    /// A built-in policy.
    Known(BuiltinPolicy),
    /// A name no built-in policy has.
    Unknown(String),
}

impl BuiltinName {
    /// The policy, when the name is one.
    pub fn known(&self) -> Option<BuiltinPolicy> {
        match self {
            BuiltinName::Known(b) => Some(*b),
            BuiltinName::Unknown(_) => None,
        }
    }
}

impl std::fmt::Display for BuiltinName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuiltinName::Known(b) => f.write_str(b.as_str()),
            BuiltinName::Unknown(s) => f.write_str(s),
        }
    }
}

impl Serialize for BuiltinName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BuiltinName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Ok(match BuiltinPolicy::from_name(&name) {
            Some(b) => BuiltinName::Known(b),
            None => BuiltinName::Unknown(name),
        })
    }
}

impl JsonSchema for BuiltinName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "BuiltinPolicy".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A built-in policy (`patchops policy list` describes them).",
            "type": "string",
            "enum": BuiltinPolicy::NAMES,
        })
    }
}

/// The policies every planned action must pass before it is applied (trust-chain link 3).
///
/// A fleet without a PolicySet gets every built-in policy with its default parameters. With one
/// or more PolicySets, the policies applied are the union of what they select.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicySetSpec {
    /// Built-in policies to apply, by name (`scan_detections`, `vendor_allowlist`,
    /// `intune_certificate_auth`, `script_signing`, `change_freeze`); every one when left out.
    /// `patchops policy list` describes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<Vec<BuiltinName>>,
    /// The fleet's own Rego modules: paths relative to this document, read from the same commit.
    /// Each declares `package patchops.policy.<name>` and a `deny` set of messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<String>,
    /// Parameters by policy name, visible to Rego as `data.patchops.parameters.<name>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, serde_json::Value>,
}

// ---------------------------------------------------------------------------------------------

/// A duration written like `48h`, `3d` or `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub std::time::Duration);

impl Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&crate::vocab::duration::readable(self.0))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        super::text::deserialize_str(d, "a duration such as 48h")
    }
}

impl Duration {
    /// The longest duration a fleet may write (ten years): longer ones are mistakes, and every
    /// date computed from a fleet duration stays far inside the range of a date.
    pub const MAX: std::time::Duration = std::time::Duration::from_secs(10 * 366 * 24 * 3600);
}

impl std::str::FromStr for Duration {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let d = humantime::parse_duration(text)
            .map_err(|e| format!("invalid duration {text:?} ({e}); write it like 48h, 3d or 1h 30m"))?;
        if d > Duration::MAX {
            return Err(format!("duration {text:?} is longer than ten years; write it like 48h, 3d or 1h 30m"));
        }
        Ok(Duration(d))
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration such as 48h, 3d or 1h 30m (at most ten years).",
            "pattern": "^\\s*[0-9]+\\s*[a-zA-Z]+(\\s*[0-9]+\\s*[a-zA-Z]+)*\\s*$",
        })
    }
}
