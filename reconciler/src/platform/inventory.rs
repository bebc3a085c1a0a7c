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
}

impl InventoryPlatform {
    /// The embedded platform `name`, stored under `state`.
    pub fn new(name: ObjectName, ty: PlatformType, state: &StateDir) -> Self {
        let inventory = inventory_path(state, &name);
        InventoryPlatform { name, ty, inventory }
    }
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

    async fn observe(&self) -> Result<Observed, PlatformError> {
        let bytes = match tokio::fs::read(&self.inventory).await {
            Ok(b) => b,
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
        let parsed =
            tokio::task::spawn_blocking(move || crate::intern::with_interner(|| serde_json::from_slice(&bytes)))
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
