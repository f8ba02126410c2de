//! The `Plan`: the ordered GHL actions one submission turns into, as data the dispatcher executes.
//!
//! A plan is built purely (no I/O) from a submission and the source's mapping config, stored with
//! the event as JSON, and executed step by step; each step's result is recorded so a retry
//! resumes after the last completed step.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::dnd::DndChanges;
use super::opportunity::{OpportunityFields, OpportunityMove};
use crate::domain::call::CallFacts;
use crate::submission::ContactField;

/// What to do in GHL for one submission, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Plan {
    /// Steps in execution order: upsert contact, add tags, create tasks, create notes.
    pub steps: Vec<Step>,
    /// What ties this submission to earlier and later deliveries of the same lead, from
    /// `mapping.references` (DripJobs `deal_id`, JivoChat `chat_id` and `client_id`):
    /// `<tool>/<key>:<value>`, e.g. `dripjobs/deal_id:1234567`. A follow-up finds its lead's
    /// contact and tasks through them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
    /// Set by the preparer on an edited submission (a delivery that repeats an earlier one's
    /// tool id with other content): the first revision's event id. Its note and tasks are
    /// updated in place rather than created again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_of: Option<i64>,
    /// Why the plan has no steps (an event that makes no contact, a test submission, a chat
    /// without email or phone skipped by `mapping.on_missing_contact = "skip"`): recorded with
    /// the event, which is done. `None` for a plan with steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nothing_to_do: Option<String>,
    /// For a delivery that reports a phone call's status change (JivoChat `call_event`): the
    /// call and its status. Its [`Step::CallTask`] and [`Step::CallNote`] act on the one task
    /// and note of the call, whatever status made them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<CallFacts>,
    /// The GHL user id that owns this lead (`mapping.assign_to`, resolved for this
    /// submission): the contact's `assignedTo` on upsert and create, and the default assignee
    /// of its tasks (a task rule's own `assigned_to` wins). Steps that assign something
    /// (appointments, opportunities) default to it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// One GHL action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
// A plan holds a handful of steps, built once per event: boxing the contact is not worth the
// churn for the dispatcher that matches on it.
#[allow(clippy::large_enum_variant)]
pub enum Step {
    /// `POST /contacts/upsert` with these fields; later steps use the resulting contact id.
    UpsertContact { contact: ContactFields },
    /// `POST /contacts/`: create a contact known only by name (no email or phone to upsert
    /// on); once per submission, found again by its marker tag after a lost answer.
    CreateContact { contact: ContactFields },
    /// `POST /contacts/{id}/tags`.
    AddTags { tags: Vec<String> },
    /// `DELETE /contacts/{id}/tags`: tags whose condition no longer holds.
    RemoveTags { tags: Vec<String> },
    /// `POST /contacts/{id}/tasks`.
    CreateTask {
        title: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
        #[serde(with = "time::serde::rfc3339")]
        due_at: OffsetDateTime,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assigned_to: Option<String>,
    },
    /// `POST /contacts/{id}/notes`.
    CreateNote { body: String },
    /// A follow-up's contact: the one made for the latest lead sharing one of
    /// [`Plan::references`] (`reference`, the first, names it in messages). Waits (bounded by
    /// `dispatch.follow_up_wait`) while no lead has reached GHL yet.
    LeadContact { reference: String },
    /// `PUT /contacts/{id}/tasks/{taskId}/completed` for every task the lead's deliveries
    /// created.
    CompleteLeadTasks,
    /// `PUT /contacts/{id}/tasks/{taskId}` moving every task the lead's deliveries created to
    /// a new due date.
    MoveLeadTasks {
        #[serde(with = "time::serde::rfc3339")]
        due_at: OffsetDateTime,
    },
    /// The call-back task of the plan's call ([`Plan::call`]), one per call: created (with
    /// this title, body and due date) by the first status after which the call needs a
    /// call-back, completed by the first after which it happened, otherwise left alone.
    CallTask {
        title: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
        #[serde(with = "time::serde::rfc3339")]
        due_at: OffsetDateTime,
    },
    /// The note of the plan's call, one per call, showing the furthest status its deliveries
    /// reached (this body, or a later status's).
    CallNote { body: String },
    /// `GET /contacts/{id}`, then `PUT /contacts/{id}` with the `dndSettings` (and `dnd`)
    /// that change (`[[mapping.dnd]]`): never lifts a DND unless the rule says `lift`.
    SetDnd { channels: DndChanges },
    /// The lead's opportunity (`[[mapping.opportunities]]`): `POST /opportunities/` once per
    /// location and reference (kept in the store), else `PUT /opportunities/{id}` updating its
    /// name, value and owner in place.
    UpsertOpportunity { opportunity: OpportunityFields },
    /// `PUT /opportunities/{id}` moving the lead's opportunity to a stage and/or status.
    MoveLeadOpportunity { change: OpportunityMove },
    /// `POST /forms/upload-custom-files`: a file answer's download streamed into a GHL file
    /// custom field (`[[mapping.files]]`). Refused or failed downloads leave the link in the
    /// note, with the reason recorded on the step.
    UploadFile {
        /// The file's URL, from the answer.
        url: String,
        /// The GHL file custom field's id.
        custom_field_id: String,
        /// Hosts the URL (and every redirect) may point to: the tool's file servers and
        /// `mapping.file_hosts`, beside `[files].hosts`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        hosts: Vec<String>,
    },
    /// `POST /calendars/events/appointments`: one appointment per lead and calendar. An
    /// earlier delivery of the thread that booked one on this calendar has it moved (`PUT
    /// /calendars/events/appointments/{eventId}`) instead; its marker (in the description) is
    /// looked up before every booking.
    BookAppointment {
        calendar_id: String,
        title: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        notes: Option<String>,
        /// With the offset it was read in (a New York slot keeps its `-04:00`).
        #[serde(with = "time::serde::rfc3339")]
        start_at: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        end_at: OffsetDateTime,
        /// The GHL user the appointment is assigned to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assigned_user_id: Option<String>,
    },
    /// `PUT /calendars/events/appointments/{eventId}` moving every appointment the lead's
    /// deliveries booked.
    MoveLeadAppointments {
        #[serde(with = "time::serde::rfc3339")]
        start_at: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        end_at: OffsetDateTime,
    },
    /// `PUT /calendars/events/appointments/{eventId}` with `appointmentStatus: "cancelled"`
    /// for every appointment the lead's deliveries booked.
    CancelLeadAppointments,
}

impl Step {
    /// Which kind of GHL action this is.
    pub fn kind(&self) -> StepKind {
        match self {
            Step::UpsertContact { .. } => StepKind::UpsertContact,
            Step::CreateContact { .. } => StepKind::CreateContact,
            Step::AddTags { .. } => StepKind::AddTags,
            Step::RemoveTags { .. } => StepKind::RemoveTags,
            Step::CreateTask { .. } => StepKind::CreateTask,
            Step::CreateNote { .. } => StepKind::CreateNote,
            Step::LeadContact { .. } => StepKind::LeadContact,
            Step::CompleteLeadTasks => StepKind::CompleteLeadTasks,
            Step::MoveLeadTasks { .. } => StepKind::MoveLeadTasks,
            Step::CallTask { .. } => StepKind::CallTask,
            Step::CallNote { .. } => StepKind::CallNote,
            Step::SetDnd { .. } => StepKind::SetDnd,
            Step::UpsertOpportunity { .. } => StepKind::UpsertOpportunity,
            Step::MoveLeadOpportunity { .. } => StepKind::MoveLeadOpportunity,
            Step::UploadFile { .. } => StepKind::UploadFile,
            Step::BookAppointment { .. } => StepKind::BookAppointment,
            Step::MoveLeadAppointments { .. } => StepKind::MoveLeadAppointments,
            Step::CancelLeadAppointments => StepKind::CancelLeadAppointments,
        }
    }

    /// Whether this step acts on a lead made by an earlier delivery (its contact or tasks):
    /// the mark of a follow-up.
    pub fn acts_on_lead(&self) -> bool {
        matches!(
            self,
            Step::LeadContact { .. }
                | Step::CompleteLeadTasks
                | Step::MoveLeadTasks { .. }
                | Step::MoveLeadOpportunity { .. }
                | Step::MoveLeadAppointments { .. }
                | Step::CancelLeadAppointments
        )
    }

    /// Whether this step yields the contact the later steps act on.
    pub fn makes_contact(&self) -> bool {
        matches!(
            self,
            Step::UpsertContact { .. } | Step::CreateContact { .. } | Step::LeadContact { .. }
        )
    }
}

/// The kind of a [`Step`], as recorded with its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    UpsertContact,
    CreateContact,
    AddTags,
    RemoveTags,
    CreateTask,
    CreateNote,
    LeadContact,
    CompleteLeadTasks,
    MoveLeadTasks,
    CallTask,
    CallNote,
    SetDnd,
    UpsertOpportunity,
    MoveLeadOpportunity,
    UploadFile,
    BookAppointment,
    MoveLeadAppointments,
    CancelLeadAppointments,
}

impl StepKind {
    /// Every kind.
    pub const ALL: [StepKind; 18] = [
        StepKind::UpsertContact,
        StepKind::CreateContact,
        StepKind::AddTags,
        StepKind::RemoveTags,
        StepKind::CreateTask,
        StepKind::CreateNote,
        StepKind::LeadContact,
        StepKind::CompleteLeadTasks,
        StepKind::MoveLeadTasks,
        StepKind::CallTask,
        StepKind::CallNote,
        StepKind::SetDnd,
        StepKind::UpsertOpportunity,
        StepKind::MoveLeadOpportunity,
        StepKind::UploadFile,
        StepKind::BookAppointment,
        StepKind::MoveLeadAppointments,
        StepKind::CancelLeadAppointments,
    ];

    /// Short name for logs, metrics, the store and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::UpsertContact => "upsert_contact",
            StepKind::CreateContact => "create_contact",
            StepKind::AddTags => "add_tags",
            StepKind::RemoveTags => "remove_tags",
            StepKind::CreateTask => "create_task",
            StepKind::CreateNote => "create_note",
            StepKind::LeadContact => "lead_contact",
            StepKind::CompleteLeadTasks => "complete_lead_tasks",
            StepKind::MoveLeadTasks => "move_lead_tasks",
            StepKind::CallTask => "call_task",
            StepKind::CallNote => "call_note",
            StepKind::SetDnd => "set_dnd",
            StepKind::UpsertOpportunity => "upsert_opportunity",
            StepKind::MoveLeadOpportunity => "move_lead_opportunity",
            StepKind::UploadFile => "upload_file",
            StepKind::BookAppointment => "book_appointment",
            StepKind::MoveLeadAppointments => "move_lead_appointments",
            StepKind::CancelLeadAppointments => "cancel_lead_appointments",
        }
    }
}

impl std::fmt::Display for StepKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A step kind name that is not one of [`StepKind::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown step kind `{0}`")]
pub struct UnknownStepKind(pub String);

impl std::str::FromStr for StepKind {
    type Err = UnknownStepKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StepKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownStepKind(s.to_owned()))
    }
}

/// Contact fields sent to GHL. Stored with the plan as a JSON object keyed by field name
/// (`first_name`, `email`, …, `source`, `custom_fields`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ContactFields {
    /// The contact's fields by name: email validated and lower-cased, phone in E.164.
    #[serde(flatten)]
    pub values: BTreeMap<ContactField, String>,
    /// GHL `source` (default: the tool's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_fields: Vec<CustomFieldValue>,
    /// Set `source` only on a contact the upsert creates, keeping a returning contact's first
    /// source (`mapping.keep_first_source`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_first_source: bool,
}

/// A GHL custom field value, addressed by id or by key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomFieldValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub value: serde_json::Value,
}

impl Plan {
    /// The key that serializes work on one contact: email, else phone, else `None`
    /// (the dispatcher then falls back to the delivery id).
    pub fn contact_key(&self) -> Option<String> {
        self.steps.iter().find_map(|s| match s {
            Step::UpsertContact { contact } => contact
                .get(ContactField::Email)
                .map(|e| format!("email:{e}"))
                .or_else(|| {
                    contact
                        .get(ContactField::Phone)
                        .map(|p| format!("phone:{p}"))
                }),
            _ => None,
        })
    }
}

impl ContactFields {
    /// One field's value.
    pub fn get(&self, field: ContactField) -> Option<&str> {
        self.values.get(&field).map(String::as_str)
    }

    /// Sets one field, or clears it with `None`.
    pub fn set(&mut self, field: ContactField, value: Option<String>) {
        match value {
            Some(v) => self.values.insert(field, v),
            None => self.values.remove(&field),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plans are stored as JSON; one written before the contact fields became a map (every
    /// field its own key, as now) still reads, and is written back the same.
    #[test]
    fn a_stored_plan_reads_and_writes_back_unchanged() {
        let stored = serde_json::json!({"steps": [{"kind": "upsert_contact", "contact": {
            "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com",
            "phone": "+15550100001", "company_name": "Acme", "timezone": "UTC",
            "source": "jotform",
            "custom_fields": [{"key": "budget", "value": "5000"}]
        }}]});
        let plan: Plan = serde_json::from_value(stored.clone()).unwrap();
        let Step::UpsertContact { contact } = &plan.steps[0] else {
            panic!("not an upsert: {plan:?}")
        };
        assert_eq!(contact.get(ContactField::Email), Some("ada@example.com"));
        assert_eq!(contact.get(ContactField::CompanyName), Some("Acme"));
        assert_eq!(contact.source.as_deref(), Some("jotform"));
        assert_eq!(contact.custom_fields.len(), 1);
        assert_eq!(serde_json::to_value(&plan).unwrap(), stored);
        assert_eq!(plan.contact_key().as_deref(), Some("email:ada@example.com"));
    }
}
