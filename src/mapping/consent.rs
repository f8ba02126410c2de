//! Consent and opt-out answers as GHL do-not-disturb (`[[mapping.dnd]]`): rules compiled once
//! at start, and the `SetDnd` step a submission's answers make.

use super::condition::CompiledCondition;
use super::config::MappingConfig;
use super::error::MappingConfigError;
use super::vars::Vars;
use crate::domain::dnd::{DndChanges, DndChannel, DndTarget};
use crate::domain::plan::Step;

/// One `[[mapping.dnd]]` rule, checked.
#[derive(Debug, Clone)]
pub(super) struct CompiledDndRule {
    when: CompiledCondition,
    channels: Vec<DndChannel>,
    target: DndTarget,
}

/// Checks `[[mapping.dnd]]`: a valid `when`, known channels, `active` or `inactive`, and
/// `lift` only with `inactive`.
pub(super) fn compile(config: &MappingConfig) -> Result<Vec<CompiledDndRule>, MappingConfigError> {
    let mut out = Vec::new();
    for (i, rule) in config.dnd.iter().enumerate() {
        let key = |f: &str| format!("dnd[{i}].{f}");
        let when = rule.when.compile(&key("when"))?;
        if rule.channels.is_empty() {
            return Err(MappingConfigError::new(
                key("channels"),
                "is empty; list GHL channels: SMS, Email, WhatsApp, GMB, FB, Call, or All",
            ));
        }
        let mut channels = Vec::new();
        for (j, name) in rule.channels.iter().enumerate() {
            let channel = DndChannel::parse(name).ok_or_else(|| {
                MappingConfigError::new(
                    format!("dnd[{i}].channels[{j}]"),
                    format!("unknown channel `{name}`; GHL's are SMS, Email, WhatsApp, GMB, FB, Call (All: every channel)"),
                )
            })?;
            if !channels.contains(&channel) {
                channels.push(channel);
            }
        }
        let active = match rule.status.as_deref().map(str::trim) {
            None => true,
            Some(s) if s.eq_ignore_ascii_case("active") => true,
            Some(s) if s.eq_ignore_ascii_case("inactive") => false,
            Some(s) => {
                return Err(MappingConfigError::new(
                    key("status"),
                    format!("`{s}` is not a status formbridge sets; use \"active\" (opted out) or \"inactive\" (consent given); \"permanent\" is GHL's own"),
                ))
            }
        };
        let target = match (active, rule.lift) {
            (true, true) => {
                return Err(MappingConfigError::new(
                    key("lift"),
                    "only applies to status = \"inactive\" (consent given lifting an opt-out); remove it",
                ))
            }
            (true, false) => DndTarget::Active,
            (false, true) => DndTarget::Lift,
            (false, false) => DndTarget::Inactive,
        };
        out.push(CompiledDndRule {
            when,
            channels,
            target,
        });
    }
    Ok(out)
}

/// The `SetDnd` step of the rules that hold, if any: on a channel named by several, an
/// opt-out (`active`) wins over a lift, and a lift over a consent recorded.
pub(super) fn dnd_step(rules: &[CompiledDndRule], vars: &Vars<'_>) -> Option<Step> {
    let mut channels = DndChanges::new();
    for rule in rules.iter().filter(|r| r.when.holds(vars)) {
        for channel in &rule.channels {
            let target = channels.entry(*channel).or_insert(rule.target);
            *target = (*target).max(rule.target);
        }
    }
    (!channels.is_empty()).then_some(Step::SetDnd { channels })
}

#[cfg(test)]
mod tests {
    use crate::domain::dnd::{DndChannel, DndTarget};
    use crate::domain::plan::Step;
    use crate::domain::SourceName;
    use crate::mapping::{build_plan, CompiledMapping, MappingConfigError};
    use crate::sources::SourceKind;
    use crate::submission::{Answer, AnswerValue, Email, Submission};

    fn compile(json: &str) -> Result<CompiledMapping, MappingConfigError> {
        let config = serde_json::from_str(json).unwrap();
        CompiledMapping::compile(
            &config,
            &SourceName::parse("site").unwrap(),
            SourceKind::generic(),
        )
    }

    #[test]
    fn dnd_rules_are_refused_at_start_naming_the_key() {
        let refused = |rule: &str, key: &str| {
            let json = format!(r#"{{"dnd":[{rule}]}}"#);
            let e = compile(&json).unwrap_err();
            assert_eq!(e.key, key, "{json}: {e}");
        };
        let when = r#""when":{"field":"answers.optout","present":true}"#;
        refused(&format!(r#"{{{when},"channels":[]}}"#), "dnd[0].channels");
        refused(
            &format!(r#"{{{when},"channels":["sms","Pigeon"]}}"#),
            "dnd[0].channels[1]",
        );
        refused(
            &format!(r#"{{{when},"channels":["SMS"],"status":"permanent"}}"#),
            "dnd[0].status",
        );
        refused(
            &format!(r#"{{{when},"channels":["SMS"],"lift":true}}"#),
            "dnd[0].lift",
        );
        refused(
            r#"{"when":{"field":"answers.x","matches":"("},"channels":["SMS"]}"#,
            "dnd[0].when.matches",
        );
    }

    #[test]
    fn the_rules_that_hold_make_one_step_last_an_opt_out_winning() {
        let mapping = compile(
            r#"{"dnd":[
                {"when":{"field":"answers.optout","contains":"sms"},"channels":["SMS"]},
                {"when":{"field":"answers.consent","equals":"yes"},"channels":["sms","EMAIL","all"],
                 "status":"inactive","lift":true},
                {"when":{"field":"answers.consent","equals":"no"},"channels":["Call"]}]}"#,
        )
        .unwrap();
        let mut sub = Submission::new(time::OffsetDateTime::UNIX_EPOCH);
        sub.contact.email = Some(Email::parse("ada@example.com").unwrap());
        for (key, value) in [("optout", "No SMS"), ("consent", "yes")] {
            sub.answers.push(Answer {
                key: key.to_owned(),
                label: key.to_owned(),
                value: AnswerValue::Text(value.to_owned()),
            });
        }
        let plan = build_plan(&mapping, &sub).unwrap();
        let Some(Step::SetDnd { channels }) = plan.steps.last() else {
            panic!("no set_dnd last: {plan:?}")
        };
        let got: Vec<(DndChannel, DndTarget)> = channels.iter().map(|(c, t)| (*c, *t)).collect();
        assert_eq!(
            got,
            [
                (DndChannel::All, DndTarget::Lift),
                (DndChannel::Sms, DndTarget::Active),
                (DndChannel::Email, DndTarget::Lift),
            ]
        );
    }
}
