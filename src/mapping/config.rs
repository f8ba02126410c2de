//! The mapping config model (`[sources.<name>.mapping]`), as written; `compile` checks it
//! and turns it into what plans are built from.
//!
//! Every field is optional: an empty mapping is the default mapping (contact with email, phone
//! and name, the source's tag, one note with every answer). See `docs/sources.md`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::condition::Condition;
pub use crate::domain::opportunity::OpportunityStatus;
use crate::sources::SourceKind;
use crate::submission::ContactField;

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
    /// Keep a returning contact's first GHL `source`: the upsert sends no `source`, and a
    /// contact it creates gets it with `PUT /contacts/:id`. Default `false` (every submission
    /// overwrites it).
    #[serde(default)]
    pub keep_first_source: bool,
    /// Generic-kind sources (generic, dripjobs, powr, 123formbuilder): field name or dot path of
    /// the tool's submission id. Default: the preset's id keys, then `dedupe_field`, then
    /// `submission_id`/`entry_id`/`id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submission_id: Option<String>,
    /// Generic-kind sources: turn HTML-wrapped text (`<p>…</p>`) into plain text. Default: on
    /// for DripJobs, off otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_html: Option<bool>,
    /// Tools with events only (JivoChat): the events that create or update a contact; other
    /// events plan nothing. Default: the tool's (JivoChat `["chat_finished",
    /// "offline_message", "client_updated"]`, plus every other event that carries the visitor's
    /// email or phone). Set, it lists every event that does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_events: Option<Vec<String>>,
    /// Leave out the follow-up tasks the tool asks for by default (JivoChat: a `call_event`
    /// that is a callback request or a missed call gets a call-back task due in 30 minutes).
    /// Default `false`.
    #[serde(default)]
    pub skip_tool_tasks: bool,
    /// What to do when a submission has no usable email or phone (GHL's upsert needs one):
    /// `error` (the event is dead-lettered with a reason and can be replayed after a mapping
    /// fix), `skip` (the event is done with nothing to do, the reason recorded) or
    /// `create_by_name` (a contact is created from the first/last name, once per submission).
    /// Default: `skip` for chat tools (JivoChat: an anonymous visitor's chat), `error` for
    /// forms. A submission with a reference is instead a follow-up of its lead — with `skip`,
    /// only when a `follow_ups` rule matches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_missing_contact: Option<MissingContact>,
    /// Skip test submissions (Jotform `preview=true`) with an empty plan. Default `false`.
    #[serde(default)]
    pub skip_test_submissions: bool,
    /// Where contact fields come from: an answer key (`q4_email`), a label (`E-mail`) or, for
    /// generic sources, a dot path (`customer.email`). Overrides detection.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: FieldSelectors,
    /// Fixed contact values (templates allowed, e.g. `"{{answers.q9_company}} Ltd"`); they win
    /// over answers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
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
    /// What ties a delivery to earlier and later deliveries of the same lead: answer
    /// selectors (key, label or dot path), or names of the submission's extras (JivoChat
    /// `chat_id`); each non-blank value becomes a reference `<tool>/<selector>:<value>` of the
    /// plan. Default: the tool's (DripJobs `["deal_id"]`, JivoChat `["chat_id",
    /// "client_id"]`, none for others); `[]` turns references, and so follow-ups, off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<Vec<String>>,
    /// `[[mapping.follow_ups]]`: what a follow-up (a delivery tied by a reference to an
    /// earlier lead) does instead of the lead's tags, tasks and note; the first rule whose
    /// `when` holds applies. A delivery with a reference but no email or phone is a follow-up
    /// even when no rule matches (source tag and note only), unless `on_missing_contact =
    /// "skip"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub follow_ups: Vec<FollowUpConfig>,
    /// `mapping.assign_to`: the GHL user who owns the lead — the contact's `assignedTo` and the
    /// default assignee of its tasks (a task rule's own `assigned_to` wins). Either one user id
    /// (`assign_to = "…"`) or `[[mapping.assign_to]]` rules `{ when = …, user_id = "…" }`, the
    /// first that holds choosing (a rule without `when` holds for every submission). Default:
    /// none (GHL leaves the contact unassigned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assign_to: Option<AssignTo>,
    /// `[[mapping.dnd]]`: consent and opt-out answers as GHL do-not-disturb channels. Every rule
    /// whose `when` holds applies; on one channel an opt-out (`active`) wins over consent.
    /// Default: none (the contact's DND is never touched).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dnd: Vec<DndRuleConfig>,
    /// `[[mapping.opportunities]]`: the lead's opportunity in a GHL pipeline; the first rule
    /// whose `when` holds makes it, once per lead and reference (a replay or an edit updates
    /// it in place). None by default: a pipeline is the agency's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub opportunities: Vec<OpportunityConfig>,
    /// `[[mapping.files]]`: file answers streamed into GHL file custom fields
    /// (`POST /forms/upload-custom-files`), after the note. None by default; `[files]` sets the
    /// download limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileRule>,
    /// More hosts `[[mapping.files]]` may download from, beside the tool's own file servers
    /// (Jotform: `www.jotform.com`, `files.jotform.com`, the EU and HIPAA ones), e.g. a Jotform
    /// Enterprise domain (`forms.example.com`). https only, public addresses only. Default none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub file_hosts: Vec<String>,
    /// The IANA time zone (`America/New_York`) of every date an answer gives without a UTC
    /// offset: task due dates, appointment starts, follow-up moves. Default `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// The local time of day (`HH:MM`, in `time_zone`) a date without a time lands at. Default
    /// `"09:00"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_due_time: Option<String>,
    /// `[[mapping.appointments]]`: appointments booked in a GHL calendar (none by default). One
    /// per lead and calendar: a later delivery of the same lead (a revision, a follow-up) moves
    /// it instead of booking another.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub appointments: Vec<AppointmentConfig>,
}

/// `mapping.assign_to`: one GHL user id, or rules choosing one by the answers.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(
    untagged,
    expecting = "a GHL user id (`assign_to = \"…\"`), or `[[mapping.assign_to]]` rules with `user_id` and an optional `when` (no other keys)"
)]
pub enum AssignTo {
    /// Every lead goes to this user.
    User(String),
    /// The first rule whose `when` holds names the user.
    Rules(Vec<AssignRule>),
}

/// `[[mapping.assign_to]]`: `user_id` owns the lead when `when` holds.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AssignRule {
    /// The condition; without it the rule holds for every submission (a fallback, last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
    /// The GHL user id (Settings → My Staff, or `GET /users/?locationId=…`).
    pub user_id: String,
}

/// `[[mapping.dnd]]`: when `when` holds, set these DND `channels` to `status`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DndRuleConfig {
    /// The condition, e.g. `{ field = "answers.q8_contactMe", contains = "no sms" }`.
    pub when: Condition,
    /// GHL channels: `SMS`, `Email`, `WhatsApp`, `GMB`, `FB`, `Call` (any case), or `All`
    /// (the contact's `dnd` flag, every channel).
    pub channels: Vec<String>,
    /// `active` (opted out: do not disturb) or `inactive` (consent given). Default `active`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// With `status = "inactive"`: lift a DND GHL already has `active` on the channel. Default
    /// `false`: consent is recorded only where GHL has no DND, so a consent given never undoes
    /// an opt-out. A `permanent` DND (GHL's own) is never lifted.
    #[serde(default)]
    pub lift: bool,
}

/// `[[mapping.opportunities]]`: one opportunity rule. Set `pipeline` (its name in GHL) or
/// `pipeline_id`, and optionally `stage` (a name, templates allowed) or `stage_id`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OpportunityConfig {
    /// The pipeline's name in GHL (resolved once per location through
    /// `GET /opportunities/pipelines`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    /// The pipeline's GHL id, instead of `pipeline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<String>,
    /// The stage's name (template allowed, e.g. `{{answers.stage}}`). Default: the pipeline's
    /// first stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The stage's GHL id, instead of `stage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_id: Option<String>,
    /// The opportunity's name (template). Default `{{name}}`, else the email or phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its monetary value (template, e.g. `{{answers.price}}`); `$`, `,` and spaces are
    /// dropped, and a value that is then not a number is left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monetary_value: Option<String>,
    /// Its status when created: `open` (default), `won`, `lost` or `abandoned`.
    #[serde(default)]
    pub status: OpportunityStatus,
    /// The GHL user id it is assigned to (template). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
    /// Only make the opportunity when this holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
}

/// `[[mapping.appointments]]`: one appointment in a GHL calendar.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppointmentConfig {
    /// The GHL calendar id.
    pub calendar_id: String,
    /// An answer (key, label or path) holding the start: a Jotform appointment slot (with its
    /// time zone), a date and time, a US `M/D/YYYY` date (DripJobs `install_date`) or RFC 3339.
    /// Without a date in it, no appointment is booked.
    pub start_from: String,
    /// An answer holding the time of day (`14:30`, `2:30 PM`), for a `start_from` answer that is
    /// a date alone. Default: none (`mapping.default_due_time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time_from: Option<String>,
    /// How long the appointment lasts (humantime: `30m`, `1h 30m`). Default: the slot's own
    /// length (a Jotform appointment's `60 min`), else `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// An answer holding the end instead (read like `start_from`); `duration` is the fallback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_from: Option<String>,
    /// Title template. Default `Appointment with {{name}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Notes template (the appointment's description). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// The GHL user id the appointment is assigned to (template). Default: none (the calendar's
    /// own assignment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_user_id: Option<String>,
    /// Only book it when this holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
}

/// `follow_ups[].opportunity`: what a follow-up changes on its lead's opportunity (a stage of
/// the same pipeline, a status, or both).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FollowUpOpportunityConfig {
    /// The new stage's name (template allowed, e.g. `{{answers.stage}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The new stage's GHL id, instead of `stage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_id: Option<String>,
    /// The new status: `open`, `won`, `lost` or `abandoned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<OpportunityStatus>,
}

/// `[[mapping.files]]`: where uploaded files go in GHL.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileRule {
    /// The id of the GHL custom field of type File Upload (GHL's upload names the field by id,
    /// not key: Settings → Custom Fields, or `GET /locations/:id/customFields`). Required.
    pub custom_field_id: String,
    /// The answer (key, label or path) holding the file links. Default: every file-upload
    /// answer of the submission (Jotform's upload questions). A text answer is split into the
    /// `http(s)://` links it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

/// `follow_ups[].appointment`: what a follow-up does to the appointments its lead's deliveries
/// booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadAppointment {
    /// Move them to the start in `appointment_from`.
    Move,
    /// Cancel them (`appointmentStatus: "cancelled"`).
    Cancel,
}

/// `[[mapping.follow_ups]]`: one follow-up rule.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FollowUpConfig {
    /// The rule applies when this holds (e.g. `{ field = "event", equals = "project_completed" }`);
    /// without it, to every delivery that has a reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
    /// Tags added to the lead's contact, after the source tag (templates allowed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Tags removed from the lead's contact (templates allowed), unless also added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_tags: Vec<String>,
    /// What happens to the tasks the lead's deliveries created. Default `keep`.
    #[serde(default)]
    pub lead_tasks: LeadTasks,
    /// With `lead_tasks = "move"`: an answer (key, label or path) holding the new due date,
    /// read like `tasks[].due_from` (`YYYY-MM-DD`, US `M/D/YYYY`, RFC 3339, …; a date alone is
    /// due 09:00 UTC); `due_in` is the fallback when it is blank or not a date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_from: Option<String>,
    /// With `lead_tasks = "move"`: the new due date this long after the delivery was received
    /// (humantime: `30m`, `1d`), when `due_from` is unset or gives no date. Default `1d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_in: Option<String>,
    /// The note template. Default: the note the mapping writes for any delivery
    /// (`mapping.note`); `""` writes none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// New tasks for this stage on the lead's contact (e.g. "Ask {{name}} for a review" when
    /// the project is completed), written like `[[mapping.tasks]]`. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskConfig>,
    /// What this stage changes on the lead's opportunity (`[[mapping.opportunities]]`), e.g.
    /// `{ stage = "Accepted" }` or `{ status = "won" }`. Default: nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opportunity: Option<FollowUpOpportunityConfig>,
    /// What happens to the appointments the lead's deliveries booked
    /// (`[[mapping.appointments]]`): `move` or `cancel`. Default: they stay as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment: Option<LeadAppointment>,
    /// With `appointment = "move"`: the answer holding the new start (read like
    /// `appointments[].start_from`); without a date in it, nothing moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment_from: Option<String>,
    /// With `appointment = "move"`: an answer holding the time of day, for an
    /// `appointment_from` answer that is a date alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment_time_from: Option<String>,
    /// With `appointment = "move"`: how long the moved appointment lasts. Default: the slot's
    /// own length, else `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment_duration: Option<String>,
}

/// `follow_ups[].lead_tasks`: what a follow-up does to the tasks its lead's deliveries created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadTasks {
    /// Leave them as they are.
    #[default]
    Keep,
    /// Mark them completed.
    Complete,
    /// Move them to a new due date (`due_from`, else `due_in`).
    Move,
}

/// What to do with a submission that has no email and no phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingContact {
    /// Fail with a mapping error: the event is dead-lettered and can be replayed. The default
    /// for forms.
    Error,
    /// Plan nothing; the event is done, with the reason. The default for chat tools.
    Skip,
    /// With a first or last name, create the contact from the name (`POST /contacts/`, once
    /// per submission); without any name, fail as `error` does.
    CreateByName,
}

impl MissingContact {
    /// The default for a tool: `skip` for a chat, whose visitors often leave no details,
    /// `error` for a form, which should have asked for them.
    pub fn default_for(kind: SourceKind) -> Self {
        if kind.is_chat() {
            Self::Skip
        } else {
            Self::Error
        }
    }
}

/// `mapping.fields`: the answer (key, label or dot path) each contact field comes from; it wins
/// over detection. Any field but `timezone`.
pub type FieldSelectors = BTreeMap<ContactField, String>;

/// `mapping.values`: fixed contact values (templates); they win over answers. Any field but
/// `email`, `phone` and `name`.
pub type ContactValues = BTreeMap<ContactField, String>;

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
    /// Remove the tag (`DELETE /contacts/:id/tags`) when the condition does not hold, e.g. a
    /// stage tag once the stage has moved on. Default `false`.
    #[serde(default)]
    pub remove_when_false: bool,
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
    /// An answer (key, label or path) holding the due date: a date, an appointment slot, a
    /// US `M/D/YYYY` date (DripJobs `install_date`) or RFC 3339; `due_in` is the fallback when
    /// it is blank or not a date. A date without a time is due at 09:00 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_from: Option<String>,
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
