//! The ids every room names: a source, a GHL location, a contact within it, a stored event.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A string newtype for an identifier formbridge keeps: built from any string, shown as it is,
/// serialized as a plain string.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps the stored or configured string.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The string as stored.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }
    };
}

pub(crate) use string_id;

string_id!(
    /// A GHL sub-account (location) id: the unit of rate budget, tokens and fair turns.
    LocationId
);
string_id!(
    /// Who an event is about within its location (`{location}/email:…`): events with the same
    /// key are dispatched one at a time in arrival order.
    ContactKey
);
/// Store-assigned id of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub i64);

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
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
}
