//! The owner of a lead (`mapping.assign_to`): compiled once at start, resolved per submission
//! into [`crate::domain::Plan::owner`] and given to the plan's tasks that name no assignee.

use super::condition::CompiledCondition;
use super::config::{AssignTo, MappingConfig};
use super::error::MappingConfigError;
use super::vars::Vars;
use crate::domain::plan::Step;

/// `mapping.assign_to`, checked: rules in order (a single user id is one rule without `when`).
#[derive(Debug, Clone, Default)]
pub(super) struct CompiledOwner {
    rules: Vec<(Option<CompiledCondition>, String)>,
}

impl CompiledOwner {
    /// Checks `mapping.assign_to`: every user id non-blank and without spaces, every `when`
    /// a valid condition.
    pub(super) fn compile(config: &MappingConfig) -> Result<Self, MappingConfigError> {
        let rules = match &config.assign_to {
            None => Vec::new(),
            Some(AssignTo::User(id)) => vec![(None, user_id("assign_to", id)?)],
            Some(AssignTo::Rules(rules)) => {
                if rules.is_empty() {
                    return Err(MappingConfigError::new(
                        "assign_to",
                        "is an empty list; give a user id, or at least one `{ when = …, user_id = \"…\" }` rule, or leave it out",
                    ));
                }
                let mut out = Vec::new();
                for (i, rule) in rules.iter().enumerate() {
                    let at = format!("assign_to[{i}]");
                    let when = rule
                        .when
                        .as_ref()
                        .map(|w| w.compile(&format!("{at}.when")))
                        .transpose()?;
                    out.push((when, user_id(&format!("{at}.user_id"), &rule.user_id)?));
                }
                out
            }
        };
        Ok(Self { rules })
    }

    /// The user who owns this submission's lead: the first rule that holds, if any.
    pub(super) fn resolve(&self, vars: &Vars<'_>) -> Option<String> {
        self.rules
            .iter()
            .find(|(when, _)| when.as_ref().is_none_or(|w| w.holds(vars)))
            .map(|(_, id)| id.clone())
    }
}

/// A GHL user id as written at `key`, trimmed.
fn user_id(key: &str, id: &str) -> Result<String, MappingConfigError> {
    let id = id.trim();
    if id.is_empty() {
        return Err(MappingConfigError::new(
            key,
            "is empty; give the GHL user id (Settings → My Staff, or GET /users/?locationId=…)",
        ));
    }
    if id
        .chars()
        .any(|c| c.is_whitespace() || c == '{' || c == '}')
    {
        return Err(MappingConfigError::new(
            key,
            format!("`{id}` is not a GHL user id (ids have no spaces or templates, e.g. `y0BeYjuRIlDwsDcOHOJo`)"),
        ));
    }
    Ok(id.to_owned())
}

/// Gives `owner` to every step of `steps` that assigns something and names no assignee of its
/// own: tasks, the lead's opportunity and its appointments.
pub(super) fn assign_owner(steps: &mut [Step], owner: Option<&str>) {
    let Some(owner) = owner else { return };
    for step in steps {
        let assignee = match step {
            Step::CreateTask { assigned_to, .. } => assigned_to,
            Step::UpsertOpportunity { opportunity } => &mut opportunity.assigned_to,
            Step::BookAppointment {
                assigned_user_id, ..
            } => assigned_user_id,
            _ => continue,
        };
        if assignee.is_none() {
            *assignee = Some(owner.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::SourceName;
    use crate::mapping::{CompiledMapping, MappingConfigError};
    use crate::sources::SourceKind;

    fn compile(json: &str) -> Result<CompiledMapping, MappingConfigError> {
        let config = serde_json::from_str(json).unwrap();
        CompiledMapping::compile(
            &config,
            &SourceName::parse("site").unwrap(),
            SourceKind::generic(),
        )
    }

    #[test]
    fn assign_to_is_refused_at_start_naming_the_key() {
        let refused = |json: &str, key: &str| {
            let e = compile(json).unwrap_err();
            assert_eq!(e.key, key, "{json}: {e}");
        };
        refused(r#"{"assign_to":" "}"#, "assign_to");
        refused(r#"{"assign_to":[]}"#, "assign_to");
        refused(r#"{"assign_to":"{{answers.owner}}"}"#, "assign_to");
        refused(
            r#"{"assign_to":[{"when":{"field":"answers.x","equals":"a"},"user_id":"u1"},{"user_id":"two words"}]}"#,
            "assign_to[1].user_id",
        );
        refused(
            r#"{"assign_to":[{"when":{"field":"nope","equals":"a"},"user_id":"u1"}]}"#,
            "assign_to[0].when.field",
        );
        let unknown = serde_json::from_str::<crate::mapping::config::MappingConfig>(
            r#"{"assign_to":[{"user":"u1"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(unknown.contains("[[mapping.assign_to]]"), "{unknown}");
        assert!(compile(r#"{"assign_to":"y0BeYjuRIlDwsDcOHOJo"}"#).is_ok());
    }
}
