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
