//! `{{variable}}` templates for task titles, bodies, notes, tags and values: parsing with
//! variable checks, and rendering against a submission's [`Vars`].

use super::error::MappingConfigError;
use super::vars::{is_known_variable, Vars, KNOWN_PREFIXES, KNOWN_VARIABLES};

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    Variable(String),
}

impl Template {
    /// Parses `text`, refusing unclosed `{{`, empty `{{}}` and unknown variables.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed `{{{{` at `{}`", snippet(&rest[start..])))?;
            let name = after[..end].trim();
            if name.is_empty() {
                return Err("empty `{{}}`; put a variable name inside".to_owned());
            }
            if !is_known_variable(name) {
                return Err(format!(
                    "unknown template variable `{name}`; known: {}, and {}",
                    KNOWN_VARIABLES.join(", "),
                    KNOWN_PREFIXES
                        .iter()
                        .map(|p| format!("{p}<name>"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            parts.push(Part::Variable(name.to_owned()));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    /// Renders with `vars`; unknown or missing values render as empty text.
    pub fn render(&self, vars: &Vars<'_>) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Literal(s) => s.clone(),
                Part::Variable(name) => vars.text(name).unwrap_or_default(),
            })
            .collect()
    }
}

/// Parses the template at config `key`; the error names the key.
pub fn at_key(key: &str, text: &str) -> Result<Template, MappingConfigError> {
    Template::parse(text).map_err(|m| MappingConfigError::new(key, m))
}

/// Parses the tag template at config `key`, refusing an empty tag.
pub fn tag_at_key(key: &str, tag: &str) -> Result<Template, MappingConfigError> {
    if tag.trim().is_empty() {
        return Err(MappingConfigError::new(key, "is empty"));
    }
    at_key(key, tag)
}

fn snippet(s: &str) -> String {
    s.chars().take(24).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert!(Template::parse("Call {{ first_name }} about {{answers.q3_x}}").is_ok());
        assert!(Template::parse("no vars").is_ok());
        assert!(Template::parse("{{ nope }}")
            .unwrap_err()
            .contains("unknown template variable `nope`"));
        assert!(Template::parse("{{first_name")
            .unwrap_err()
            .contains("unclosed"));
        assert!(Template::parse("{{ }}").is_err());
        assert!(Template::parse("{{answers.}}").is_err());
    }
}
