//! The `Plan`: the ordered GHL actions one submission turns into, as data the dispatcher executes.
//!
//! A plan is built purely (no I/O) from a submission and the source's mapping config, stored with
//! the event as JSON, and executed step by step; each step's result is recorded so a retry
//! resumes after the last completed step.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::submission::ContactField;

/// What to do in GHL for one submission, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Plan {
    /// Steps in execution order: upsert contact, add tags, create tasks, create notes.
    pub steps: Vec<Step>,
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
    /// `POST /contacts/{id}/tags`.
    AddTags { tags: Vec<String> },
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
}

impl Step {
    /// Short name for logs, metrics and the admin API.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::UpsertContact { .. } => "upsert_contact",
            Step::AddTags { .. } => "add_tags",
            Step::CreateTask { .. } => "create_task",
            Step::CreateNote { .. } => "create_note",
        }
    }
}

/// Contact fields sent to GHL (names follow GHL's upsert body, in snake case here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ContactFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Validated, lower-cased email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// E.164 phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// GHL `source` (default: the tool's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_fields: Vec<CustomFieldValue>,
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
                .email
                .as_ref()
                .map(|e| format!("email:{e}"))
                .or_else(|| contact.phone.as_ref().map(|p| format!("phone:{p}"))),
            _ => None,
        })
    }
}

impl ContactFields {
    /// The slot of one contact field (the plan's copy of GHL's contact properties).
    pub fn slot(&mut self, field: ContactField) -> &mut Option<String> {
        match field {
            ContactField::Email => &mut self.email,
            ContactField::Phone => &mut self.phone,
            ContactField::FirstName => &mut self.first_name,
            ContactField::LastName => &mut self.last_name,
            ContactField::Name => &mut self.name,
            ContactField::CompanyName => &mut self.company_name,
            ContactField::Address1 => &mut self.address1,
            ContactField::City => &mut self.city,
            ContactField::State => &mut self.state,
            ContactField::PostalCode => &mut self.postal_code,
            ContactField::Country => &mut self.country,
            ContactField::Website => &mut self.website,
            ContactField::Timezone => &mut self.timezone,
        }
    }
}
