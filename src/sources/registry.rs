//! The registry of tools, and [`SourceKind`], a handle to one of them. Adding a tool is its
//! own file plus one line in [`TOOLS`].

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::tool::Tool;
use super::{jivochat, jotform, presets, typeform};
use crate::domain::SourceName;

/// Every tool formbridge knows, by its config name. The generic adapter is last.
static TOOLS: &[&dyn Tool] = &[
    &jotform::Jotform,
    &jivochat::Jivochat,
    &presets::DRIPJOBS,
    &presets::POWR,
    &presets::FORMBUILDER123,
    &typeform::Typeform,
    &presets::GENERIC,
];

/// The tool that reads a source's deliveries: a handle to a registered [`Tool`]. Written in
/// config as the tool's name (`kind = "jotform"`); equal when the names are.
#[derive(Clone, Copy)]
pub struct SourceKind(&'static dyn Tool);

/// A `kind` that names no registered tool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown kind `{0}`; known kinds: {known}", known = SourceKind::names().collect::<Vec<_>>().join(", "))]
pub struct UnknownKind(pub String);

impl SourceKind {
    /// The registered tool of this name.
    pub fn parse(name: &str) -> Result<Self, UnknownKind> {
        TOOLS
            .iter()
            .find(|t| t.name() == name)
            .map(|t| Self(*t))
            .ok_or_else(|| UnknownKind(name.to_owned()))
    }

    /// Every registered tool.
    pub fn all() -> impl Iterator<Item = SourceKind> {
        TOOLS.iter().map(|t| Self(*t))
    }

    /// Every registered tool's name.
    pub fn names() -> impl Iterator<Item = &'static str> {
        TOOLS.iter().map(|t| t.name())
    }

    /// The generic adapter.
    pub fn generic() -> Self {
        Self(&presets::GENERIC)
    }

    /// The tool for a source of this name when its `kind` is not set: the tool of the same
    /// name, else the generic adapter.
    pub fn default_for(name: &SourceName) -> Self {
        Self::parse(name.as_str()).unwrap_or_else(|_| Self::generic())
    }

    /// The tool.
    pub fn tool(self) -> &'static dyn Tool {
        self.0
    }

    /// The tool's config name (`jotform`).
    pub fn as_str(self) -> &'static str {
        self.0.name()
    }

    /// The tool's name for a source: the default GHL `source` value (the source's own name for
    /// a tool named after its source).
    pub fn tool_name(self, source: &SourceName) -> String {
        if self.0.named_after_source() {
            source.to_string()
        } else {
            self.0.name().to_owned()
        }
    }

    /// The tool's display title for a source, in notes.
    pub fn tool_title(self, source: &SourceName) -> String {
        if self.0.named_after_source() {
            source.to_string()
        } else {
            self.0.title().to_owned()
        }
    }
}

impl Deref for SourceKind {
    type Target = dyn Tool;
    fn deref(&self) -> &Self::Target {
        self.0
    }
}

impl PartialEq for SourceKind {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for SourceKind {}

impl Hash for SourceKind {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourceKind({})", self.as_str())
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SourceKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SourceKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Self::parse(&name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_is_found_by_its_name_once() {
        let names: Vec<&str> = SourceKind::names().collect();
        for name in &names {
            assert_eq!(names.iter().filter(|n| *n == name).count(), 1, "{name}");
            assert_eq!(SourceKind::parse(name).unwrap().as_str(), *name);
            let source = SourceName::parse(name).unwrap();
            assert_eq!(SourceKind::default_for(&source).as_str(), *name);
        }
        let custom = SourceName::parse("my-site").unwrap();
        assert_eq!(SourceKind::default_for(&custom), SourceKind::generic());
    }

    #[test]
    fn an_unknown_kind_lists_the_known_ones() {
        let e = serde_json::from_str::<SourceKind>("\"jotfrom\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown kind `jotfrom`"), "{e}");
        assert!(e.contains("jotform, jivochat"), "{e}");
        assert_eq!(
            serde_json::to_string(&SourceKind::parse("123formbuilder").unwrap()).unwrap(),
            "\"123formbuilder\""
        );
    }
}
