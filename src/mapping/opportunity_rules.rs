//! Opportunity rules (`[[mapping.opportunities]]` and a follow-up rule's `opportunity`),
//! checked and compiled once at start; the plan builder renders them per delivery.

use super::condition::CompiledCondition;
use super::config::{FollowUpOpportunityConfig, MappingConfig, OpportunityConfig};
use super::error::MappingConfigError;
use super::template::{at_key, Template};
use super::vars::Vars;
use crate::domain::opportunity::{NameOrId, OpportunityFields, OpportunityMove, OpportunityStatus};
use crate::domain::plan::Step;

/// The name of an opportunity when its rule sets none.
const DEFAULT_NAME: &str = "{{name}}";

/// One `[[mapping.opportunities]]` rule, checked.
#[derive(Debug, Clone)]
pub(super) struct CompiledOpportunity {
    /// `opportunities[0]`.
    rule: String,
    pipeline: NameOrId,
    stage: Option<StageRule>,
    name: Template,
    monetary_value: Option<Template>,
    status: OpportunityStatus,
    assigned_to: Option<Template>,
    when: Option<CompiledCondition>,
}

/// A follow-up rule's `opportunity`, checked.
#[derive(Debug, Clone)]
pub(super) struct CompiledOpportunityMove {
    /// `follow_ups[1].opportunity`.
    rule: String,
    stage: Option<StageRule>,
    status: Option<OpportunityStatus>,
}

/// A stage by its name (a template) or by its id.
#[derive(Debug, Clone)]
enum StageRule {
    Name(Template),
    Id(String),
}

/// Exactly one of a name and an id, at `key` (`opportunities[0].pipeline`).
fn one_of<'a>(
    key: &str,
    id_key: &str,
    name: Option<&'a String>,
    id: Option<&'a String>,
) -> Result<Option<Result<&'a str, &'a str>>, MappingConfigError> {
    for (k, value) in [(key, name), (id_key, id)] {
        if value.is_some_and(|v| v.trim().is_empty()) {
            return Err(MappingConfigError::new(k, "is empty"));
        }
    }
    match (name, id) {
        (Some(_), Some(_)) => Err(MappingConfigError::new(
            key,
            format!("set `{}` or `{}`, not both", last(key), last(id_key)),
        )),
        (Some(name), None) => Ok(Some(Ok(name.trim()))),
        (None, Some(id)) => Ok(Some(Err(id.trim()))),
        (None, None) => Ok(None),
    }
}

fn last(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

fn stage_rule(
    at: &str,
    name: Option<&String>,
    id: Option<&String>,
) -> Result<Option<StageRule>, MappingConfigError> {
    let (key, id_key) = (format!("{at}.stage"), format!("{at}.stage_id"));
    Ok(match one_of(&key, &id_key, name, id)? {
        Some(Ok(name)) => Some(StageRule::Name(at_key(&key, name)?)),
        Some(Err(id)) => Some(StageRule::Id(id.to_owned())),
        None => None,
    })
}

/// Checks and compiles `[[mapping.opportunities]]`.
pub(super) fn compile(
    config: &MappingConfig,
) -> Result<Vec<CompiledOpportunity>, MappingConfigError> {
    config
        .opportunities
        .iter()
        .enumerate()
        .map(|(i, rule)| compile_one(&format!("opportunities[{i}]"), rule))
        .collect()
}

fn compile_one(
    at: &str,
    rule: &OpportunityConfig,
) -> Result<CompiledOpportunity, MappingConfigError> {
    let key = |f: &str| format!("{at}.{f}");
    let pipeline = match one_of(
        &key("pipeline"),
        &key("pipeline_id"),
        rule.pipeline.as_ref(),
        rule.pipeline_id.as_ref(),
    )? {
        Some(Ok(name)) => NameOrId::Name(name.to_owned()),
        Some(Err(id)) => NameOrId::Id(id.to_owned()),
        None => {
            return Err(MappingConfigError::new(
                key("pipeline"),
                "is missing: name the GHL pipeline (`pipeline = \"Sales\"`) or give its id (`pipeline_id`)",
            ))
        }
    };
    let template = |field: &str, text: &Option<String>| {
        text.as_ref()
            .filter(|t| !t.trim().is_empty())
            .map(|t| at_key(&key(field), t))
            .transpose()
    };
    Ok(CompiledOpportunity {
        rule: at.to_owned(),
        pipeline,
        stage: stage_rule(at, rule.stage.as_ref(), rule.stage_id.as_ref())?,
        name: at_key(&key("name"), rule.name.as_deref().unwrap_or(DEFAULT_NAME))?,
        monetary_value: template("monetary_value", &rule.monetary_value)?,
        status: rule.status,
        assigned_to: template("assigned_to", &rule.assigned_to)?,
        when: rule
            .when
            .as_ref()
            .map(|w| w.compile(&key("when")))
            .transpose()?,
    })
}

/// Checks and compiles a follow-up rule's `opportunity` at `at` (`follow_ups[1].opportunity`).
pub(super) fn compile_move(
    at: &str,
    rule: &FollowUpOpportunityConfig,
) -> Result<CompiledOpportunityMove, MappingConfigError> {
    let stage = stage_rule(at, rule.stage.as_ref(), rule.stage_id.as_ref())?;
    if stage.is_none() && rule.status.is_none() {
        return Err(MappingConfigError::new(
            at,
            "changes nothing: set `stage` (or `stage_id`) and/or `status`",
        ));
    }
    Ok(CompiledOpportunityMove {
        rule: at.to_owned(),
        stage,
        status: rule.status,
    })
}

fn render_stage(stage: Option<&StageRule>, vars: &Vars<'_>) -> Option<NameOrId> {
    match stage? {
        StageRule::Name(t) => Some(t.render(vars).trim().to_owned())
            .filter(|n| !n.is_empty())
            .map(NameOrId::Name),
        StageRule::Id(id) => Some(NameOrId::Id(id.clone())),
    }
}

/// The lead's opportunity step: the first rule whose `when` holds, rendered.
pub(super) fn lead_step(rules: &[CompiledOpportunity], vars: &Vars<'_>) -> Option<Step> {
    let rule = rules
        .iter()
        .find(|r| r.when.as_ref().is_none_or(|w| w.holds(vars)))?;
    let rendered = |t: &Option<Template>| {
        t.as_ref()
            .map(|t| t.render(vars).trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let name = Some(rule.name.render(vars).trim().to_owned())
        .filter(|n| !n.is_empty())
        .or_else(|| vars.text("email"))
        .or_else(|| vars.text("phone"))
        .unwrap_or_else(|| format!("{} lead", vars.tool));
    Some(Step::UpsertOpportunity {
        opportunity: OpportunityFields {
            rule: rule.rule.clone(),
            pipeline: rule.pipeline.clone(),
            stage: render_stage(rule.stage.as_ref(), vars),
            name,
            monetary_value: rendered(&rule.monetary_value).and_then(|v| money(&v)),
            status: rule.status,
            assigned_to: rendered(&rule.assigned_to),
        },
    })
}

impl CompiledOpportunityMove {
    /// The follow-up's step on its lead's opportunity; none when its stage renders blank and
    /// it sets no status.
    pub(super) fn step(&self, vars: &Vars<'_>) -> Option<Step> {
        let stage = render_stage(self.stage.as_ref(), vars);
        if stage.is_none() && self.status.is_none() {
            return None;
        }
        Some(Step::MoveLeadOpportunity {
            change: OpportunityMove {
                rule: self.rule.clone(),
                stage,
                status: self.status,
            },
        })
    }
}

/// A monetary value as written in an answer (`$4,500.00`): a finite number, else none.
fn money(text: &str) -> Option<f64> {
    let digits: String = text
        .chars()
        .filter(|c| !matches!(c, '$' | ',' | ' ' | '\u{a0}'))
        .collect();
    digits.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn money_reads_written_amounts() {
        assert_eq!(money("$4,500.00"), Some(4500.0));
        assert_eq!(money(" 220 "), Some(220.0));
        assert_eq!(money("call us"), None);
        assert_eq!(money("inf"), None);
    }

    #[test]
    fn a_rule_names_one_pipeline() {
        let rule = |json: serde_json::Value| -> OpportunityConfig {
            serde_json::from_value(json).unwrap()
        };
        let at = "opportunities[0]";
        let err = compile_one(at, &rule(serde_json::json!({"stage": "New"}))).unwrap_err();
        assert_eq!(err.key, "opportunities[0].pipeline");
        let both = serde_json::json!({"pipeline": "Sales", "pipeline_id": "p1"});
        let err = compile_one(at, &rule(both)).unwrap_err();
        assert!(err.message.contains("not both"), "{err}");
        let unknown = serde_json::json!({"pipeline": "Sales", "stage": "{{nope}}"});
        let err = compile_one(at, &rule(unknown)).unwrap_err();
        assert_eq!(err.key, "opportunities[0].stage");
        let by_id = serde_json::json!({"pipeline_id": "p1", "stage": "{{answers.stage}}"});
        assert!(compile_one(at, &rule(by_id)).is_ok());
        assert!(serde_json::from_value::<OpportunityConfig>(
            serde_json::json!({"pipeline": "Sales", "colour": "red"})
        )
        .is_err());
        let err = compile_move(
            "follow_ups[0].opportunity",
            &FollowUpOpportunityConfig::default(),
        )
        .unwrap_err();
        assert!(err.message.contains("changes nothing"), "{err}");
    }
}
