//! `endpoint: embedded`: a platform that lives in the state directory, so a fleet can be tried
//! with no service at all. Its inventory is the JSON file
//! `<state>/embedded/<platform>.json`, holding an [`Observed`] value.

use std::path::PathBuf;

use super::{Observed, Platform, PlatformError};
use crate::model::{ObjectName, PlatformType};
use crate::state::StateDir;

/// A platform whose inventory is a file under the state directory.
#[derive(Debug, Clone)]
pub struct EmbeddedPlatform {
    name: ObjectName,
    ty: PlatformType,
    inventory: PathBuf,
}

impl EmbeddedPlatform {
    /// The embedded platform `name`, stored under `state`.
    pub fn new(name: ObjectName, ty: PlatformType, state: &StateDir) -> Self {
        let inventory = inventory_path(state, &name);
        EmbeddedPlatform { name, ty, inventory }
    }
}

/// Where an embedded platform keeps its inventory.
pub fn inventory_path(state: &StateDir, name: &ObjectName) -> PathBuf {
    state.path().join("embedded").join(format!("{name}.json"))
}

#[async_trait::async_trait]
impl Platform for EmbeddedPlatform {
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
                    reason: format!("cannot read {}: {e}", self.inventory.display()),
                })
            }
        };
        // Thousands of objects share field names and most values: store each once.
        crate::intern::with_interner(|| serde_json::from_slice(&bytes)).map_err(|e| PlatformError::Unavailable {
            platform: self.name.clone(),
            reason: format!("{} is corrupt: {e}", self.inventory.display()),
        })
    }
}
