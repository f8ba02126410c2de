//! The mapping config model (`[sources.<name>.mapping]`) and its validation.

use serde::{Deserialize, Serialize};

use crate::sources::{SourceKind, SourceName};

/// How one source's submissions become GHL records. Empty means the default mapping.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {}

/// A mapping problem, with the key (relative to `mapping.`) that causes it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("mapping.{key}: {message}")]
pub struct MappingConfigError {
    pub key: String,
    pub message: String,
}

impl MappingConfig {
    /// Checks templates, conditions and durations.
    pub fn validate(
        &self,
        _source: &SourceName,
        _kind: SourceKind,
    ) -> Result<(), MappingConfigError> {
        Ok(())
    }
}
