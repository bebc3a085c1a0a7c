//! `endpoint: inventory`: a read-only inventory in the JSON file
//! `<state>/inventory/<platform>.json`, holding an [`Observed`] value — a recorded snapshot of
//! what a platform holds. Plans work against it (the planning benchmark's 10,000-product fleet
//! does); changes are refused with [`PlatformError::NotImplemented`]. (`endpoint: embedded` is a
//! real emulator of the platform's API: [`crate::emulate`].)

use std::path::PathBuf;

use super::{DesiredAssignment, DesiredObject, Observed, PlatformClient, PlatformError};
use crate::model::{ObjectName, PlatformType};
use crate::state::StateDir;

/// A platform whose inventory is a file under the state directory.
#[derive(Debug, Clone)]
pub struct InventoryPlatform {
    name: ObjectName,
    ty: PlatformType,
    inventory: PathBuf,
    /// A missing file is an error (a recording asked for), not an empty platform.
    required: bool,
}

impl InventoryPlatform {
    /// The `endpoint: inventory` platform `name`, stored under `state` (empty until written).
    pub fn new(name: ObjectName, ty: PlatformType, state: &StateDir) -> Self {
        let inventory = inventory_path(state, &name);
        InventoryPlatform { name, ty, inventory, required: false }
    }

    /// The platform `name` as `patchops inventory record` wrote it to `<dir>/<name>.json`,
    /// whatever its endpoint (`plan --inventory DIR`): no credentials, no network. A missing
    /// recording is an error.
    pub fn recorded(name: ObjectName, ty: PlatformType, dir: &std::path::Path) -> Self {
        let inventory = dir.join(format!("{name}.json"));
        InventoryPlatform { name, ty, inventory, required: true }
    }
}

/// A recorded inventory is refused above this size (a tenant of 100,000 apps records in far
/// less).
pub const MAX_INVENTORY_BYTES: u64 = 1 << 30;

/// Where a recording in `dir` keeps the platform `name`'s own documents (beside
/// `<dir>/<name>.json`): what `plan --emulate` seeds an emulator with.
pub fn documents_path(dir: &std::path::Path, name: &ObjectName) -> PathBuf {
    dir.join(format!("{name}.documents.json"))
}

/// Where an embedded platform keeps its inventory.
pub fn inventory_path(state: &StateDir, name: &ObjectName) -> PathBuf {
    state.path().join("inventory").join(format!("{name}.json"))
}

impl InventoryPlatform {
    fn not_yet(&self, what: &str) -> PlatformError {
        PlatformError::NotImplemented {
            platform: self.name.clone(),
            ty: self.ty.as_str(),
            what: format!("{what} through a recorded inventory (endpoint: inventory)"),
        }
    }
}

#[async_trait::async_trait]
impl PlatformClient for InventoryPlatform {
    fn name(&self) -> &ObjectName {
        &self.name
    }

    fn platform_type(&self) -> PlatformType {
        self.ty
    }

    async fn resolve_groups(
        &self,
        names: &[String],
    ) -> Result<std::collections::BTreeMap<String, String>, PlatformError> {
        // The recording holds the ids of the groups its fleet named; a group named since was
        // never looked up, and a plan without network cannot look it up now.
        match names.first() {
            None => Ok(std::collections::BTreeMap::new()),
            Some(name) => Err(PlatformError::Unavailable {
                platform: self.name.clone(),
                cause: format!(
                    "{} has no id for the group named `{name}` (the fleet named it after the inventory was recorded); record it again with this fleet: patchops inventory record",
                    self.inventory.display()
                )
                .into(),
            }),
        }
    }

    async fn observe(&self) -> Result<Observed, PlatformError> {
        if let Ok(meta) = tokio::fs::metadata(&self.inventory).await {
            if meta.len() > MAX_INVENTORY_BYTES {
                return Err(PlatformError::Unavailable {
                    platform: self.name.clone(),
                    cause: format!(
                        "{} is larger than {MAX_INVENTORY_BYTES} bytes ({} bytes); it is not a recorded inventory",
                        self.inventory.display(),
                        meta.len()
                    )
                    .into(),
                });
            }
        }
        let bytes = match tokio::fs::read(&self.inventory).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.required => {
                return Err(PlatformError::Unavailable {
                    platform: self.name.clone(),
                    cause: format!(
                        "there is no recorded inventory at {}; record one where the platform's credentials are: `patchops inventory record --platform {} --out DIR`",
                        self.inventory.display(),
                        self.name
                    )
                    .into(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Observed::default()),
            Err(e) => {
                return Err(PlatformError::Unavailable {
                    platform: self.name.clone(),
                    cause: crate::vocab::because(format!("cannot read {}", self.inventory.display()), e),
                })
            }
        };
        // Parsing tens of thousands of objects takes CPU: on a blocking thread, so the platforms
        // of a fleet (observed together) are parsed side by side. Thousands of objects share
        // field names and most values: store each once.
        let (name, path) = (self.name.clone(), self.inventory.clone());
        let parsed = tokio::task::spawn_blocking(move || {
            crate::intern::with_interner(|| crate::vocab::text::json_from_utf8(&bytes))
        })
        .await
        .map_err(|e| PlatformError::Unavailable {
            platform: name.clone(),
            cause: crate::vocab::because(format!("reading {} stopped", path.display()), e),
        })?;
        parsed.map_err(|e| PlatformError::Unavailable {
            platform: name,
            cause: crate::vocab::because(format!("{} is corrupt", path.display()), e),
        })
    }

    /// The recording and, beside it, the platform's documents (`<name>.documents.json`);
    /// `null` documents when the recording has none (it was made by an older patchops, or it
    /// is a recording of a recording).
    async fn observe_documents(&self) -> Result<(Observed, serde_json::Value), PlatformError> {
        let observed = self.observe().await?;
        let path = self.inventory.with_extension("documents.json");
        let unavailable =
            |cause: crate::vocab::Cause| PlatformError::Unavailable { platform: self.name.clone(), cause };
        // Read (a regular file, capped) and parsed off the async threads.
        let shown = path.display().to_string();
        let read = tokio::task::spawn_blocking(move || match crate::bounded::read(&path, MAX_INVENTORY_BYTES) {
            Err(crate::bounded::ReadError::NotFound) => Ok(serde_json::Value::Null),
            Err(e) => Err(crate::vocab::because(format!("cannot read {}", path.display()), e)),
            Ok(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes)
                .map_err(|e| crate::vocab::because(format!("{} is corrupt", path.display()), e)),
        })
        .await
        .map_err(|e| unavailable(crate::vocab::because(format!("reading {shown} stopped"), e)))?;
        let documents = read.map_err(unavailable)?;
        Ok((observed, documents))
    }

    async fn create(&self, _: &DesiredObject, _: &crate::content::VerifiedContent) -> Result<String, PlatformError> {
        Err(self.not_yet("publishing"))
    }

    async fn reconfigure(&self, _: &str, _: &DesiredObject) -> Result<(), PlatformError> {
        Err(self.not_yet("reconfiguring"))
    }

    async fn set_assignments(&self, _: &str, _: &[DesiredAssignment]) -> Result<(), PlatformError> {
        Err(self.not_yet("assigning"))
    }

    async fn delete(&self, _: &str) -> Result<(), PlatformError> {
        Err(self.not_yet("retiring"))
    }
}
