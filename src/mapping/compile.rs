//! The mapping compiled once, at start: templates parsed, conditions and their regexes built,
//! durations read, kind-specific keys checked. A config that compiles can always build a plan;
//! one that does not is refused at start with the exact key (`mapping.tasks[0].due_in`).

use super::appointment_rules::{compile_appointments, CompiledAppointment};
use super::condition::CompiledCondition;
use super::config::{AnswerTags, MappingConfig, MissingContact};
use super::consent::{self, CompiledDndRule};
use super::error::MappingConfigError;
use super::files::CompiledFiles;
use super::follow_up::{self, CompiledFollowUp};
use super::local_time::LocalTime;
use super::opportunity_rules::{self, CompiledOpportunity};
use super::owner::CompiledOwner;
use super::task_rules::{compile_tasks, CompiledTask};
use super::template::{at_key, tag_at_key, Template};
use crate::domain::SourceName;
use crate::sources::SourceKind;
use crate::submission::{country_id, ContactField};

/// One source's mapping, checked and ready to build plans.
#[derive(Debug, Clone)]
pub struct CompiledMapping {
    pub(super) source: SourceName,
    pub(super) kind: SourceKind,
    /// The tool's name: the default GHL `source` value.
    pub(super) tool: String,
    /// The GHL `source` value.
    pub(super) contact_source: String,
    /// Send `source` only to contacts the upsert creates.
    pub(super) keep_first_source: bool,
    /// Tools with events (JivoChat): the events that make or update a contact; `None` for
    /// other tools.
    pub(super) contact_events: Option<Vec<String>>,
    /// Events that update the contact only when they carry an email or phone (the tool's,
    /// unless `contact_events` is set).
    pub(super) contact_if_present: Vec<String>,
    /// Add the tool's own follow-up tasks.
    pub(super) tool_tasks: bool,
    pub(super) skip_test_submissions: bool,
    pub(super) on_missing_contact: MissingContact,
    pub(super) values: Vec<(ContactField, Template)>,
    pub(super) custom_fields: Vec<CompiledCustomField>,
    pub(super) tags: CompiledTags,
    pub(super) tasks: Vec<CompiledTask>,
    pub(super) note: NoteRule,
    /// Selectors of the values tying deliveries of one lead together (`mapping.references`,
    /// else the tool's).
    pub(super) references: Vec<String>,
    /// `[[mapping.follow_ups]]`, in order.
    pub(super) follow_ups: Vec<CompiledFollowUp>,
    /// `mapping.assign_to`: who owns the lead.
    pub(super) owner: CompiledOwner,
    /// `[[mapping.dnd]]`, in order.
    pub(super) dnd: Vec<CompiledDndRule>,
    /// `[[mapping.opportunities]]`, in order.
    pub(super) opportunities: Vec<CompiledOpportunity>,
    /// `[[mapping.files]]` and the hosts they download from.
    pub(super) files: CompiledFiles,
    /// `mapping.time_zone` and `mapping.default_due_time`.
    pub(super) local: LocalTime,
    /// `[[mapping.appointments]]`, in order.
    pub(super) appointments: Vec<CompiledAppointment>,
}

/// A custom field rule: its GHL id or key, and where its value comes from.
#[derive(Debug, Clone)]
pub(super) struct CompiledCustomField {
    pub(super) id: Option<String>,
    pub(super) key: Option<String>,
    pub(super) value: CustomFieldSource,
}

#[derive(Debug, Clone)]
pub(super) enum CustomFieldSource {
    Answer(String),
    Template(Template),
}

#[derive(Debug, Clone)]
pub(super) struct CompiledTags {
    /// The source's name, when `source_tag` is on.
    pub(super) source_tag: Option<String>,
    pub(super) static_tags: Vec<Template>,
    pub(super) when: Vec<(CompiledCondition, Template)>,
    /// Tags removed when their condition does not hold.
    pub(super) remove_when_false: Vec<(CompiledCondition, Template)>,
    pub(super) from_answers: Vec<AnswerTags>,
}

#[derive(Debug, Clone)]
pub(super) enum NoteRule {
    Off,
    /// Every answer as `Label: value` (JivoChat: the transcript or message).
    Default,
    Template(Template),
}

impl CompiledMapping {
    /// Checks `config` for the source and compiles it; the error's `key` names the exact key.
    pub fn compile(
        config: &MappingConfig,
        source: &SourceName,
        kind: SourceKind,
    ) -> Result<Self, MappingConfigError> {
        if let Some(c) = &config.default_country {
            country_id(c).map_err(|e| MappingConfigError::new("default_country", e.to_string()))?;
        }
        check_kind_specific_keys(config, kind)?;
        for (field, selector) in &config.fields {
            let key = format!("fields.{field}");
            if !field.is_selectable() {
                return Err(MappingConfigError::new(
                    key,
                    "no form asks for it; set it with mapping.values",
                ));
            }
            if selector.trim().is_empty() {
                return Err(MappingConfigError::new(key, "is empty"));
            }
        }
        let mut values = Vec::new();
        for (field, text) in &config.values {
            let key = format!("values.{field}");
            if !field.is_fixable() {
                return Err(MappingConfigError::new(
                    key,
                    "comes from the answers; select it with mapping.fields instead",
                ));
            }
            values.push((*field, at_key(&key, text)?));
        }
        let tool = kind.tool_name(source);
        Ok(Self {
            source: source.clone(),
            kind,
            contact_source: config.source.clone().unwrap_or_else(|| tool.clone()),
            keep_first_source: config.keep_first_source,
            tool,
            contact_events: kind.events().map(|rules| {
                config.contact_events.clone().unwrap_or_else(|| {
                    rules
                        .contact_by_default
                        .iter()
                        .map(|e| (*e).to_owned())
                        .collect()
                })
            }),
            contact_if_present: match (kind.events(), &config.contact_events) {
                (Some(rules), None) => rules
                    .contact_if_present
                    .iter()
                    .map(|e| (*e).to_owned())
                    .collect(),
                _ => Vec::new(),
            },
            tool_tasks: !config.skip_tool_tasks,
            skip_test_submissions: config.skip_test_submissions,
            on_missing_contact: config
                .on_missing_contact
                .unwrap_or_else(|| MissingContact::default_for(kind)),
            values,
            custom_fields: custom_fields(config)?,
            tags: tags(config, source)?,
            tasks: tasks(config)?,
            note: match (&config.note.enabled, &config.note.template) {
                (false, _) => NoteRule::Off,
                (true, None) => NoteRule::Default,
                (true, Some(t)) => NoteRule::Template(at_key("note.template", t)?),
            },
            references: follow_up::selectors(config, kind.default_references())?,
            follow_ups: follow_up::compile(config)?,
            owner: CompiledOwner::compile(config)?,
            dnd: consent::compile(config)?,
            opportunities: opportunity_rules::compile(config)?,
            files: CompiledFiles::compile(config, kind)?,
            local: LocalTime::compile(
                config.time_zone.as_deref(),
                config.default_due_time.as_deref(),
            )?,
            appointments: compile_appointments(&config.appointments)?,
        })
    }
}

fn check_kind_specific_keys(
    config: &MappingConfig,
    kind: SourceKind,
) -> Result<(), MappingConfigError> {
    if !kind.generic_keys() {
        for (key, set) in [
            ("submission_id", config.submission_id.is_some()),
            ("strip_html", config.strip_html.is_some()),
        ] {
            if set {
                return Err(MappingConfigError::new(
                    key,
                    format!(
                        "only used by generic-kind sources ({}); `{}` finds it itself",
                        generic_kinds(),
                        kind.as_str()
                    ),
                ));
            }
        }
    }
    if let Some(events) = &config.contact_events {
        let Some(rules) = kind.events() else {
            return Err(MappingConfigError::new(
                "contact_events",
                format!("only used by {} sources", kinds_with_events()),
            ));
        };
        for (i, e) in events.iter().enumerate() {
            if !rules.known.contains(&e.as_str()) {
                return Err(MappingConfigError::new(
                    format!("contact_events[{i}]"),
                    format!(
                        "unknown {} event `{e}`; known: {}",
                        kind.title(),
                        rules.known.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The kinds that take `mapping.submission_id` and `mapping.strip_html`.
fn generic_kinds() -> String {
    SourceKind::all()
        .filter(|k| k.generic_keys())
        .map(SourceKind::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The kinds that take `mapping.contact_events`.
fn kinds_with_events() -> String {
    SourceKind::all()
        .filter(|k| k.events().is_some())
        .map(SourceKind::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn custom_fields(config: &MappingConfig) -> Result<Vec<CompiledCustomField>, MappingConfigError> {
    let mut out = Vec::new();
    for (i, cf) in config.custom_fields.iter().enumerate() {
        let key = format!("custom_fields[{i}]");
        if cf.id.is_some() == cf.key.is_some() {
            return Err(MappingConfigError::new(
                key,
                "set exactly one of `id` or `key`",
            ));
        }
        let value = match (&cf.answer, &cf.value) {
            (Some(answer), None) => CustomFieldSource::Answer(answer.clone()),
            (None, Some(v)) => CustomFieldSource::Template(at_key(&format!("{key}.value"), v)?),
            _ => {
                return Err(MappingConfigError::new(
                    key,
                    "set exactly one of `answer` or `value`",
                ))
            }
        };
        out.push(CompiledCustomField {
            id: cf.id.clone(),
            key: cf.key.clone(),
            value,
        });
    }
    Ok(out)
}

fn tags(config: &MappingConfig, source: &SourceName) -> Result<CompiledTags, MappingConfigError> {
    let t = &config.tags;
    let mut static_tags = Vec::new();
    for (i, tag) in t.static_tags.iter().enumerate() {
        static_tags.push(tag_at_key(&format!("tags.static[{i}]"), tag)?);
    }
    let mut when = Vec::new();
    let mut remove_when_false = Vec::new();
    for (i, rule) in t.when.iter().enumerate() {
        let tag = tag_at_key(&format!("tags.when[{i}].tag"), &rule.tag)?;
        let compiled = (rule.when.compile(&format!("tags.when[{i}].when"))?, tag);
        if rule.remove_when_false {
            remove_when_false.push(compiled.clone());
        }
        when.push(compiled);
    }
    for (i, rule) in t.from_answers.iter().enumerate() {
        if rule.answer.trim().is_empty() {
            return Err(MappingConfigError::new(
                format!("tags.from_answers[{i}].answer"),
                "is empty",
            ));
        }
    }
    Ok(CompiledTags {
        source_tag: t.source_tag.then(|| source.to_string()),
        static_tags,
        when,
        remove_when_false,
        from_answers: t.from_answers.clone(),
    })
}

fn tasks(config: &MappingConfig) -> Result<Vec<CompiledTask>, MappingConfigError> {
    compile_tasks(&config.tasks, "tasks")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(json: &str, kind: SourceKind) -> Result<CompiledMapping, MappingConfigError> {
        let config: MappingConfig = serde_json::from_str(json).unwrap();
        CompiledMapping::compile(&config, &SourceName::parse("site").unwrap(), kind)
    }

    #[test]
    fn each_contact_field_is_selected_or_fixed_where_it_makes_sense() {
        let refused = |json: &str, key: &str| {
            let e = compile(json, SourceKind::generic()).unwrap_err();
            assert_eq!(e.key, key, "{json}: {e}");
        };
        refused(r#"{"fields":{"timezone":"tz"}}"#, "fields.timezone");
        refused(r#"{"fields":{"email":" "}}"#, "fields.email");
        refused(r#"{"values":{"email":"x@y.io"}}"#, "values.email");
        refused(r#"{"values":{"phone":"1"}}"#, "values.phone");
        refused(r#"{"values":{"city":"{{nope}}"}}"#, "values.city");
        assert!(compile(
            r#"{"fields":{"email":"mail","company_name":"org"},"values":{"timezone":"UTC","city":"{{answers.town}}"}}"#,
            SourceKind::generic()
        )
        .is_ok());
        let unknown = serde_json::from_str::<MappingConfig>(r#"{"fields":{"emial":"x"}}"#)
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("unknown variant `emial`"), "{unknown}");
    }

    #[test]
    fn a_due_date_is_always_computable() {
        let e = compile(
            r#"{"tasks":[{"title":"t","due_in":"20years"}]}"#,
            SourceKind::generic(),
        )
        .unwrap_err();
        assert_eq!(e.key, "tasks[0].due_in");
        let ok = compile(
            r#"{"tasks":[{"title":"t","due_in":"2d 4h"}]}"#,
            SourceKind::generic(),
        )
        .unwrap();
        assert_eq!(ok.tasks[0].due_in, time::Duration::hours(52));
    }

    #[test]
    fn conditions_are_compiled_once_and_bad_regexes_refused() {
        let e = compile(
            r#"{"tags":{"when":[{"tag":"big","when":{"field":"answers.budget","matches":"("}}]}}"#,
            SourceKind::generic(),
        )
        .unwrap_err();
        assert_eq!(e.key, "tags.when[0].when.matches");
        let ok = compile(
            r#"{"tags":{"when":[{"tag":"big","when":{"field":"answers.budget","matches":"^[5-9]"}}]}}"#,
            SourceKind::generic(),
        )
        .unwrap();
        assert_eq!(ok.tags.when.len(), 1);
    }

    #[test]
    fn jivochat_contact_events_default_and_belong_to_jivochat_only() {
        let jivo = compile("{}", SourceKind::parse("jivochat").unwrap()).unwrap();
        let defaults: Vec<String> = ["chat_finished", "offline_message", "client_updated"]
            .iter()
            .map(|e| (*e).to_owned())
            .collect();
        assert_eq!(jivo.contact_events, Some(defaults));
        assert!(compile("{}", SourceKind::parse("jotform").unwrap())
            .unwrap()
            .contact_events
            .is_none());
        let e = compile(
            r#"{"contact_events":["chat_finished"]}"#,
            SourceKind::parse("jotform").unwrap(),
        )
        .unwrap_err();
        assert_eq!(e.key, "contact_events");
    }
}
