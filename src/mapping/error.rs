//! [`MappingConfigError`]: a mapping config problem, naming the key that causes it.

/// A mapping problem, with the key (relative to `mapping.`) that causes it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("mapping.{key}: {message}")]
pub struct MappingConfigError {
    pub key: String,
    pub message: String,
}

impl MappingConfigError {
    /// An error at `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}
