//! The tool seam: [`Tool`], everything formbridge knows about one form or chat tool (its names,
//! how its deliveries are read, deduplicated, acknowledged and turned into a default note, its
//! plan rules, and how it shows a [`CrmCard`] to a chat agent). Each tool implements it in its
//! own file; `registry` lists them.

use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::Value;
use time::OffsetDateTime;

use super::detect::ContactDraft;
use crate::body::{BodyError, ParsedBody};
use crate::domain::call::{CallKind, CallStatus};
use crate::submission::Submission;

/// Why a stored delivery could not be normalized. Each message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum NormalizeError {
    /// The body does not parse as its content type.
    #[error("the stored body cannot be read: {0}")]
    Body(#[from] BodyError),
    /// A field the tool always sends is missing.
    #[error("{tool} delivery has no `{field}` field; is this source's `kind` right, and does the sender really post {tool} webhooks?")]
    MissingField {
        tool: &'static str,
        field: &'static str,
    },
    /// A field that holds JSON does not parse.
    #[error("{tool} field `{field}` is not valid JSON: {reason}")]
    BadJson {
        tool: &'static str,
        field: &'static str,
        reason: String,
    },
    /// The tool posts JSON but this delivery is a form.
    #[error("{tool} posts JSON, but this delivery is a form post; is this source's `kind` right?")]
    ExpectedJson { tool: &'static str },
    /// The JSON document is not an object.
    #[error("{tool} delivery is not a JSON object")]
    NotAnObject { tool: &'static str },
    /// `mapping.default_country` is not a country code.
    #[error("mapping.default_country: {0}")]
    BadCountry(String),
}

/// One stored delivery, as a tool reads it.
#[derive(Debug, Clone, Copy)]
pub struct ReadInput<'a> {
    /// The body, parsed as [`Tool::body_content_type`].
    pub parsed: &'a ParsedBody,
    /// The same body's bytes (JSON is re-read from them to keep key order).
    pub raw: &'a Bytes,
    /// When formbridge received it.
    pub received_at: OffsetDateTime,
    /// `mapping.submission_id`: where the submission id is (tools with [`Tool::generic_keys`]).
    pub id_path: Option<&'a str>,
    /// The source's `dedupe_field`, a fallback for the submission id.
    pub dedupe_field: Option<&'a str>,
    /// `mapping.strip_html`, when set (tools with [`Tool::generic_keys`]).
    pub strip_html: Option<bool>,
}

/// A tool's event names: the ones it sends, and those that make or update a contact when the
/// mapping names none (`mapping.contact_events`); other events plan nothing.
#[derive(Debug, Clone, Copy)]
pub struct EventRules {
    /// Every event name the tool sends.
    pub known: &'static [&'static str],
    /// The events that make or update a contact by default.
    pub contact_by_default: &'static [&'static str],
    /// Events that update the contact by default when they carry an email or phone, and plan
    /// nothing (instead of failing) when they carry none.
    pub contact_if_present: &'static [&'static str],
}

/// A follow-up task the tool asks for by default (`mapping.tool_tasks`).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolTask {
    /// The task's title.
    pub title: String,
    /// Its body.
    pub body: Option<String>,
    /// Due this long after the delivery was received.
    pub due_in: time::Duration,
}

/// A phone call's status change a delivery reports ([`Tool::call`]): every status of one call
/// is a revision of one delivery, and its plan acts on the call's one task and note.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The call's id at the tool (JivoChat: its `chat_id`).
    pub id: String,
    /// What this status says.
    pub kind: CallKind,
    pub status: CallStatus,
    /// The call-back task, should the call need one (`mapping.skip_tool_tasks` leaves it out).
    pub task: ToolTask,
}

/// What the CRM knows of the person a chat is with, for a tool that shows it to its agent in
/// the answer to a delivery ([`Tool::agent_view_answer`]). Plain data: filled from GHL by
/// `crate::agent_view`, already cleaned (no formbridge markers, the note trimmed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrmCard {
    /// The contact's page in the CRM.
    pub link: String,
    /// The contact's name.
    pub name: Option<String>,
    /// The contact's email.
    pub email: Option<String>,
    /// The contact's phone.
    pub phone: Option<String>,
    /// The contact's tags.
    pub tags: Vec<String>,
    /// Open (not completed) tasks, soonest due first (those without a due date last).
    pub open_tasks: Vec<OpenTask>,
    /// Open tasks left out of `open_tasks` (it is kept short).
    pub more_open_tasks: usize,
    /// The latest note, shortened.
    pub latest_note: Option<String>,
    /// The contact's next appointment (not cancelled, starting from now on), if any.
    pub next_appointment: Option<CardAppointment>,
}

/// An appointment on a [`CrmCard`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardAppointment {
    /// Its title.
    pub title: String,
    /// When it starts.
    pub start: OffsetDateTime,
}

/// An open task on a [`CrmCard`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTask {
    /// Its title.
    pub title: String,
    /// When it is due, if it has a due date.
    pub due: Option<OffsetDateTime>,
}

/// One form or chat tool. A simple tool implements [`Tool::name`], [`Tool::title`] and
/// [`Tool::read`]; the other methods have defaults that fit most tools.
pub trait Tool: Send + Sync {
    /// Its name in config (`kind = "jotform"`), and of its built-in source (`/hooks/jotform`).
    fn name(&self) -> &'static str;

    /// Its display title, in notes (`Jotform`).
    fn title(&self) -> &'static str;

    /// Whether a source is named after this tool (the generic adapter, whose GHL `source`, tag
    /// and note title are the source's own name) instead of the tool naming itself.
    fn named_after_source(&self) -> bool {
        false
    }

    /// The content type to read a delivery as, given the declared one. Default: as declared.
    fn body_content_type<'a>(&self, declared: Option<&'a str>) -> Option<&'a str> {
        declared
    }

    /// The tool's own id of this delivery for deduplication (`name:value`), read from the
    /// parsed body and the request headers. Default: none (the body's hash is used).
    fn delivery_id(&self, _parsed: &ParsedBody, _headers: &HeaderMap) -> Option<String> {
        None
    }

    /// Reads a delivery into a submission and its contact candidates.
    fn read(&self, input: &ReadInput<'_>) -> Result<(Submission, ContactDraft), NormalizeError>;

    /// The body of the 200 answered once a delivery is stored, given formbridge's own
    /// `receipt` (`{"result":"ok","event_id":…,"duplicate":…}`). Default: the receipt.
    fn acknowledgement(&self, receipt: Value) -> Value {
        receipt
    }

    /// The default note when the tool has its own (`title` is the tool's title for this
    /// source); `None` for the common note (every answer as a `Label: value` line), an empty
    /// text for no note.
    fn default_note(&self, _title: &str, _submission: &Submission) -> Option<String> {
        None
    }

    /// A follow-up task the tool asks for on this delivery by default (JivoChat: a callback
    /// request or a missed call). Default: none.
    fn default_task(&self, _submission: &Submission) -> Option<ToolTask> {
        None
    }

    /// The phone call this delivery reports a status of, if any (JivoChat `call_event`): its
    /// plan then writes the call's one note and call-back task instead of the tool's task and
    /// a note per delivery. Default: none.
    fn call(&self, _submission: &Submission) -> Option<ToolCall> {
        None
    }

    /// Its event names, when only some events make or update contacts. Default: none (every
    /// delivery does).
    fn events(&self) -> Option<EventRules> {
        None
    }

    /// Whether the tool is a chat, whose visitors often leave no email or phone: such a delivery
    /// is then skipped by default (done with nothing to do) instead of dead-lettered as a
    /// form's is (`mapping.on_missing_contact`). Default: no.
    fn is_chat(&self) -> bool {
        false
    }

    /// The hosts of the tool's own file servers, where its file-upload answers link to: the
    /// only hosts (with `mapping.file_hosts`) `[[mapping.files]]` downloads from. Default: none.
    fn file_hosts(&self) -> &'static [&'static str] {
        &[]
    }

    /// Whether the generic adapter's keys `mapping.submission_id` and `mapping.strip_html`
    /// apply (the tool does not find its id and clean its text itself).
    fn generic_keys(&self) -> bool {
        false
    }

    /// Whether the tool shows its agent what the CRM knows of a visitor when the answer to some
    /// deliveries carries it (JivoChat's `chat_accepted` / `chat_updated`): the agent view,
    /// `sources.<name>.agent_view`. Default: no.
    fn has_agent_view(&self) -> bool {
        false
    }

    /// Whether the answer to this delivery is shown to the agent, so a CRM look-up is worth
    /// its cost. Default: never.
    fn agent_view_wanted(&self, _parsed: &ParsedBody) -> bool {
        false
    }

    /// The answer that shows `card` to the agent; `None` answers [`Tool::acknowledgement`].
    /// Default: none.
    fn agent_view_answer(&self, _card: &CrmCard) -> Option<Value> {
        None
    }

    /// What ties a delivery to earlier and later deliveries of the same lead when the mapping
    /// sets no `mapping.references`: answer selectors or names of the submission's extras
    /// (DripJobs `deal_id`, JivoChat `chat_id` and `client_id`). Default: none.
    fn default_references(&self) -> &'static [&'static str] {
        &[]
    }
}

/// A JSON scalar as text, for tools that read JSON: trimmed non-empty strings, numbers and
/// booleans; `None` for anything else.
pub fn json_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
