//! The mapping config model (`[sources.<name>.mapping]`) and its validation.
//!
//! Every field is optional: an empty mapping is the default mapping (contact with email, phone
//! and name, the source's tag, one note with every answer). See `docs/sources.md`.

use serde::{Deserialize, Serialize};

use super::condition::Condition;
use super::template::Template;
use crate::sources::{SourceKind, SourceName};
use crate::submission::country_id;

/// How one source's submissions become GHL records. Empty means the default mapping.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    /// Country (ISO 3166 alpha-2) for phone numbers written without `+country`. Default `US`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_country: Option<String>,
    /// The GHL contact `source`. Default: the tool's name (`jotform`), or the source's own name
    /// for `generic` sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Generic-kind sources (generic, dripjobs, powr, 123formbuilder): field name or dot path of
    /// the tool's submission id. Default: the preset's id keys, then `dedupe_field`, then
    /// `submission_id`/`entry_id`/`id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submission_id: Option<String>,
    /// Generic-kind sources: turn HTML-wrapped text (`<p>…</p>`) into plain text. Default: on
    /// for DripJobs, off otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_html: Option<bool>,
    /// JivoChat only: the events that create or update a contact; other events plan nothing.
    /// Default `["chat_finished", "offline_message", "client_updated"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_events: Option<Vec<String>>,
    /// What to do when a submission has no usable email or phone (GHL's upsert needs one): `error` (default; the event
    /// is dead-lettered with a reason and can be replayed after a mapping fix) or `skip` (the
    /// event is marked done with an empty plan).
    #[serde(default)]
    pub on_missing_contact: MissingContact,
    /// Skip test submissions (Jotform `preview=true`) with an empty plan. Default `false`.
    #[serde(default)]
    pub skip_test_submissions: bool,
    /// Where contact fields come from: an answer key (`q4_email`), a label (`E-mail`) or, for
    /// generic sources, a dot path (`customer.email`). Overrides detection.
    #[serde(default)]
    pub fields: FieldSelectors,
    /// Fixed contact values (templates allowed, e.g. `"{{answers.q9_company}} Ltd"`); they win
    /// over answers.
    #[serde(default)]
    pub values: ContactValues,
    /// GHL custom fields to set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_fields: Vec<CustomFieldRule>,
    /// Tags to add.
    #[serde(default)]
    pub tags: TagsConfig,
    /// Tasks to create (none by default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskConfig>,
    /// The note written for each submission.
    #[serde(default)]
    pub note: NoteConfig,
}

/// What to do with a submission that has no email and no phone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingContact {
    /// Fail with a mapping error: the event is dead-lettered and can be replayed.
    #[default]
    Error,
    /// Plan nothing; the event is done.
    Skip,
}

/// `mapping.fields`: answer selectors (key, label or dot path) per contact field.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSelectors {
    /// Email answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Phone answer (parsed to E.164 with `default_country`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// First-name answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last-name answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Full-name answer, split into first and last when those are not selected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Company answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    /// Street address answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address1: Option<String>,
    /// City answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// State answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Postal code answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// Country answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Website answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
}

/// `mapping.values`: fixed contact values (templates).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ContactValues {
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Company.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    /// Street address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address1: Option<String>,
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// State.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// Country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Website.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    /// IANA time zone, e.g. `America/New_York`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

/// `[[mapping.custom_fields]]`: one GHL custom field, by `id` or `key`, from an `answer` or a
/// `value` template.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CustomFieldRule {
    /// The GHL custom field id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The GHL custom field key (`contact.budget`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Answer selector (key, label or path); list answers are sent as arrays. Skipped when blank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// A template for the value instead of an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `[mapping.tags]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TagsConfig {
    /// Add the source's name as a tag (`jotform`). Default `true`.
    #[serde(default = "yes")]
    pub source_tag: bool,
    /// Tags always added (templates allowed).
    #[serde(default, rename = "static", skip_serializing_if = "Vec::is_empty")]
    pub static_tags: Vec<String>,
    /// Tags added when a condition holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<ConditionalTag>,
    /// One tag per choice of these answers (e.g. a "Services" checkbox).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_answers: Vec<AnswerTags>,
}

impl Default for TagsConfig {
    fn default() -> Self {
        Self {
            source_tag: true,
            static_tags: Vec::new(),
            when: Vec::new(),
            from_answers: Vec::new(),
        }
    }
}

fn yes() -> bool {
    true
}

/// `[[mapping.tags.when]]`: `tag` when `when` holds.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionalTag {
    /// The tag (template allowed).
    pub tag: String,
    /// The condition.
    pub when: Condition,
}

/// `[[mapping.tags.from_answers]]`: each choice of `answer` becomes a tag.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerTags {
    /// Answer selector (key, label or path).
    pub answer: String,
    /// Text put before each choice, e.g. `service:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// `[[mapping.tasks]]`: a follow-up task.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// Title template, e.g. `Call {{first_name}}`.
    pub title: String,
    /// Body template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Due this long after the submission was received (humantime: `30m`, `1d`, `2h 30m`).
    /// Default `1d`.
    #[serde(default = "one_day")]
    pub due_in: String,
    /// GHL user id to assign the task to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
    /// Only create the task when this holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
}

fn one_day() -> String {
    "1d".to_owned()
}

/// `[mapping.note]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NoteConfig {
    /// Write a note. Default `true`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Note template. Default: every answer as `Label: value` plus the submission id (for
    /// JivoChat: the offline message or chat transcript).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

impl Default for NoteConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            template: None,
        }
    }
}

/// A mapping problem, with the key (relative to `mapping.`) that causes it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("mapping.{key}: {message}")]
pub struct MappingConfigError {
    pub key: String,
    pub message: String,
}

impl MappingConfigError {
    /// An error at `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The default JivoChat events that create or update a contact.
pub const DEFAULT_JIVO_CONTACT_EVENTS: &[&str] =
    &["chat_finished", "offline_message", "client_updated"];

/// JivoChat event names formbridge knows.
const JIVO_EVENTS: &[&str] = &[
    "chat_accepted",
    "chat_updated",
    "chat_finished",
    "chat_assigned",
    "offline_message",
    "client_updated",
    "client_attribute_updated",
    "call_event",
];

fn is_generic_kind(kind: SourceKind) -> bool {
    !matches!(kind, SourceKind::Jotform | SourceKind::Jivochat)
}

impl MappingConfig {
    /// Checks templates, conditions, durations, countries and kind-specific keys; the error's
    /// `key` names the exact key (`tasks[0].title`).
    pub fn validate(
        &self,
        _source: &SourceName,
        kind: SourceKind,
    ) -> Result<(), MappingConfigError> {
        if let Some(c) = &self.default_country {
            country_id(c).map_err(|e| MappingConfigError::new("default_country", e.to_string()))?;
        }
        if !is_generic_kind(kind) {
            for (key, set) in [
                ("submission_id", self.submission_id.is_some()),
                ("strip_html", self.strip_html.is_some()),
            ] {
                if set {
                    return Err(MappingConfigError::new(
                        key,
                        format!(
                            "only used by generic-kind sources; `{}` finds it itself",
                            kind.as_str()
                        ),
                    ));
                }
            }
        }
        if let Some(events) = &self.contact_events {
            if kind != SourceKind::Jivochat {
                return Err(MappingConfigError::new(
                    "contact_events",
                    "only used by jivochat sources",
                ));
            }
            for (i, e) in events.iter().enumerate() {
                if !JIVO_EVENTS.contains(&e.as_str()) {
                    return Err(MappingConfigError::new(
                        format!("contact_events[{i}]"),
                        format!(
                            "unknown JivoChat event `{e}`; known: {}",
                            JIVO_EVENTS.join(", ")
                        ),
                    ));
                }
            }
        }
        let selectors = [
            ("email", &self.fields.email),
            ("phone", &self.fields.phone),
            ("first_name", &self.fields.first_name),
            ("last_name", &self.fields.last_name),
            ("name", &self.fields.name),
            ("company_name", &self.fields.company_name),
            ("address1", &self.fields.address1),
            ("city", &self.fields.city),
            ("state", &self.fields.state),
            ("postal_code", &self.fields.postal_code),
            ("country", &self.fields.country),
            ("website", &self.fields.website),
        ];
        for (name, sel) in selectors {
            if sel.as_ref().is_some_and(|s| s.trim().is_empty()) {
                return Err(MappingConfigError::new(
                    format!("fields.{name}"),
                    "is empty",
                ));
            }
        }
        for (name, value) in self.values.iter() {
            check_template(&format!("values.{name}"), value)?;
        }
        for (i, cf) in self.custom_fields.iter().enumerate() {
            let key = format!("custom_fields[{i}]");
            if cf.id.is_some() == cf.key.is_some() {
                return Err(MappingConfigError::new(
                    key,
                    "set exactly one of `id` or `key`",
                ));
            }
            match (&cf.answer, &cf.value) {
                (Some(_), None) => {}
                (None, Some(v)) => {
                    check_template(&format!("{key}.value"), v)?;
                }
                _ => {
                    return Err(MappingConfigError::new(
                        key,
                        "set exactly one of `answer` or `value`",
                    ))
                }
            }
        }
        for (i, tag) in self.tags.static_tags.iter().enumerate() {
            check_tag(&format!("tags.static[{i}]"), tag)?;
        }
        for (i, rule) in self.tags.when.iter().enumerate() {
            check_tag(&format!("tags.when[{i}].tag"), &rule.tag)?;
            rule.when.compile(&format!("tags.when[{i}].when"))?;
        }
        for (i, rule) in self.tags.from_answers.iter().enumerate() {
            if rule.answer.trim().is_empty() {
                return Err(MappingConfigError::new(
                    format!("tags.from_answers[{i}].answer"),
                    "is empty",
                ));
            }
        }
        for (i, task) in self.tasks.iter().enumerate() {
            let key = |f: &str| format!("tasks[{i}].{f}");
            check_template(&key("title"), &task.title)?;
            if task.title.trim().is_empty() {
                return Err(MappingConfigError::new(key("title"), "is empty"));
            }
            if let Some(body) = &task.body {
                check_template(&key("body"), body)?;
            }
            parse_duration(&task.due_in).map_err(|m| MappingConfigError::new(key("due_in"), m))?;
            if let Some(when) = &task.when {
                when.compile(&key("when"))?;
            }
        }
        if let Some(t) = &self.note.template {
            check_template("note.template", t)?;
        }
        Ok(())
    }
}

impl ContactValues {
    /// The set values by field name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &String)> {
        [
            ("first_name", &self.first_name),
            ("last_name", &self.last_name),
            ("company_name", &self.company_name),
            ("address1", &self.address1),
            ("city", &self.city),
            ("state", &self.state),
            ("postal_code", &self.postal_code),
            ("country", &self.country),
            ("website", &self.website),
            ("timezone", &self.timezone),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    }
}

fn check_template(key: &str, text: &str) -> Result<Template, MappingConfigError> {
    Template::parse(text).map_err(|m| MappingConfigError::new(key, m))
}

fn check_tag(key: &str, tag: &str) -> Result<(), MappingConfigError> {
    if tag.trim().is_empty() {
        return Err(MappingConfigError::new(key, "is empty"));
    }
    check_template(key, tag).map(|_| ())
}

/// Parses a humantime duration (`30m`, `1d`, `2h 30m`) with a message a user can act on.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("`{text}` is not a duration ({e}); write e.g. `30m`, `4h`, `1d`, `2d 4h`")
    })
}
