//! Webhook sources: their names, the tool seam (one [`Tool`] per form or chat tool, listed in
//! the [`registry`]), request authentication, and normalization into a `Submission`.

pub mod auth;
pub mod detect;
pub mod generic;
pub mod jivochat;
pub mod jotform;
pub mod jotform_values;
pub mod normalize;
pub mod ordered;
pub mod presets;
pub mod registry;
pub mod tool;
pub mod typeform;

pub use normalize::{normalize, normalize_parsed, ReadOptions};
pub use registry::{SourceKind, UnknownKind};
pub use tool::{CrmCard, EventRules, NormalizeError, OpenTask, ReadInput, Tool};

use std::fmt;

use serde::{Deserialize, Serialize};

/// Sources every installation knows (one per tool, named after it), served when configured
/// with a secret.
pub fn built_in_sources() -> impl Iterator<Item = &'static str> {
    SourceKind::all()
        .filter(|kind| !kind.named_after_source())
        .map(SourceKind::as_str)
}

/// A validated source name as it appears in `/hooks/{source}` and in `[sources.<name>]`:
/// 1–64 characters of lower-case ASCII letters, digits, `-` and `_`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SourceName(String);

/// A source name that does not follow the rules of [`SourceName`].
#[derive(Debug, thiserror::Error)]
#[error("invalid source name `{0}`: use 1-64 lower-case letters, digits, '-' or '_'")]
pub struct InvalidSourceName(pub String);

impl SourceName {
    /// Parses and validates a source name.
    pub fn parse(raw: &str) -> Result<Self, InvalidSourceName> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidSourceName(raw.to_owned()))
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SourceName {
    type Error = InvalidSourceName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<SourceName> for String {
    fn from(value: SourceName) -> Self {
        value.0
    }
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names_are_validated() {
        assert!(SourceName::parse("123formbuilder").is_ok());
        assert!(SourceName::parse("my_form-2").is_ok());
        assert!(SourceName::parse("").is_err());
        assert!(SourceName::parse("Jotform").is_err());
        assert!(SourceName::parse("a/b").is_err());
    }

    #[test]
    fn built_in_names_map_to_their_kind() {
        for name in built_in_sources() {
            let kind = SourceKind::default_for(&SourceName::parse(name).unwrap());
            assert_eq!(kind.as_str(), name);
        }
        let names: Vec<&str> = built_in_sources().collect();
        assert!(!names.contains(&"generic"), "{names:?}");
    }
}
