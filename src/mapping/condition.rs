//! Conditions (`when = { field = "answers.budget", matches = "^[5-9]" }`) for tags and tasks.

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use super::error::MappingConfigError;
use super::vars::{is_known_variable, Vars};

/// A test on one template variable. Set `field` and exactly one of `equals`, `contains`,
/// `matches` or `present`. `equals` and `contains` ignore case; a list answer holds when any
/// choice does.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// A template variable name without braces: `answers.q7_budget`, `email`, `event`, `utm.source`.
    pub field: String,
    /// The value equals this (case-insensitive, trimmed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    /// The value contains this (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// The value matches this regular expression (Rust `regex` syntax; `(?i)` for any case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
    /// `true`: the value is present and not blank; `false`: it is missing or blank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
}

/// A checked [`Condition`] ready to evaluate.
#[derive(Debug, Clone)]
pub struct CompiledCondition {
    field: String,
    op: Op,
}

#[derive(Debug, Clone)]
enum Op {
    Equals(String),
    Contains(String),
    Matches(Regex),
    Present(bool),
}

impl Condition {
    /// Checks the field name and the operator; `key` names this condition in errors.
    pub fn compile(&self, key: &str) -> Result<CompiledCondition, MappingConfigError> {
        let field = self.field.trim();
        if !is_known_variable(field) {
            return Err(MappingConfigError::new(
                format!("{key}.field"),
                format!("unknown field `{field}`; use a template variable name such as `answers.<key>`, `email` or `event`"),
            ));
        }
        let set = [
            self.equals.is_some(),
            self.contains.is_some(),
            self.matches.is_some(),
            self.present.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if set != 1 {
            return Err(MappingConfigError::new(
                key,
                "set exactly one of `equals`, `contains`, `matches` or `present`",
            ));
        }
        let op = if let Some(v) = &self.equals {
            Op::Equals(v.trim().to_lowercase())
        } else if let Some(v) = &self.contains {
            Op::Contains(v.to_lowercase())
        } else if let Some(re) = &self.matches {
            Op::Matches(
                RegexBuilder::new(re)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| {
                        MappingConfigError::new(format!("{key}.matches"), format!("bad regex: {e}"))
                    })?,
            )
        } else {
            Op::Present(self.present.unwrap_or(true))
        };
        Ok(CompiledCondition {
            field: field.to_owned(),
            op,
        })
    }
}

impl CompiledCondition {
    /// Whether the condition holds for these variables.
    pub fn holds(&self, vars: &Vars<'_>) -> bool {
        let values = vars.items(&self.field);
        match &self.op {
            Op::Present(want) => values.iter().any(|v| !v.trim().is_empty()) == *want,
            Op::Equals(x) => values.iter().any(|v| v.trim().to_lowercase() == *x),
            Op::Contains(x) => values.iter().any(|v| v.to_lowercase().contains(x.as_str())),
            Op::Matches(re) => values.iter().any(|v| re.is_match(v)),
        }
    }
}
