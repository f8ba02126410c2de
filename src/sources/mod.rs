//! Webhook sources: their names and kinds, request authentication, and per-tool normalizers.

pub mod auth;
pub mod detect;
pub mod generic;
pub mod jivochat;
pub mod jotform;
pub mod jotform_values;
pub mod normalize;
pub mod ordered;
pub mod presets;

pub use normalize::{normalize, normalize_parsed, NormalizeError};

use std::fmt;

use serde::{Deserialize, Serialize};

/// Sources every installation knows, served when configured with a secret.
pub const BUILT_IN_SOURCES: &[&str] =
    &["jotform", "powr", "123formbuilder", "jivochat", "dripjobs"];

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

/// Which normalizer reads a source's deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Jotform and Jotform Enterprise: multipart envelope with a `rawRequest` JSON document.
    Jotform,
    /// JivoChat Webhooks API events (JSON).
    Jivochat,
    /// DripJobs through a Zapier "Webhooks by Zapier" POST (generic with the DripJobs preset).
    Dripjobs,
    /// POWR Form Builder through Zapier or a form post (generic with the POWR preset).
    Powr,
    /// 123FormBuilder webhooks (generic with the 123FormBuilder preset).
    #[serde(rename = "123formbuilder")]
    Formbuilder123,
    /// Any tool that POSTs JSON, urlencoded or multipart fields.
    Generic,
}

impl SourceKind {
    /// The built-in kind for a source of this name, or `Generic`.
    pub fn default_for(name: &SourceName) -> Self {
        match name.as_str() {
            "jotform" => Self::Jotform,
            "jivochat" => Self::Jivochat,
            "dripjobs" => Self::Dripjobs,
            "powr" => Self::Powr,
            "123formbuilder" => Self::Formbuilder123,
            _ => Self::Generic,
        }
    }

    /// The content type to read a delivery as. JivoChat's docs do not state a Content-Type and
    /// its deliveries are always JSON, so its body is read as JSON whatever the header says
    /// (as Jivo's own PHP handlers do); other kinds trust the header.
    pub fn body_content_type(self, declared: Option<&str>) -> Option<&str> {
        match self {
            Self::Jivochat => Some("application/json"),
            _ => declared,
        }
    }

    /// The tool's display name, used as the default GHL `source` and tag.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jotform => "jotform",
            Self::Jivochat => "jivochat",
            Self::Dripjobs => "dripjobs",
            Self::Powr => "powr",
            Self::Formbuilder123 => "123formbuilder",
            Self::Generic => "generic",
        }
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
        for name in BUILT_IN_SOURCES {
            let kind = SourceKind::default_for(&SourceName::parse(name).unwrap());
            assert_eq!(kind.as_str(), *name);
        }
    }
}
