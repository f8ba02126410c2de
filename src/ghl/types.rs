//! Typed request and response bodies of the GHL Contacts API v2 (`Version: 2021-07-28`).
//!
//! Requests serialize only properties the official spec (`ghl-contacts-openapi.json`) lists for
//! the operation, and skip every `None`, because GHL rejects unknown properties with 422.
//! Responses deserialize leniently: every field optional, unknown fields kept in `extra`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

// ----------------------------------------------------------------------------------------------
// Requests
// ----------------------------------------------------------------------------------------------

/// A custom field value in a request: `{id | key, field_value}`.
///
/// The spec marks `id` required but its descriptions say "pass either `id` or `key`"; we send
/// whichever is set. `field_value` (not v3's `fieldValue`) is the `2021-07-28` spelling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomFieldInput {
    /// Custom field id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Custom field key (e.g. `my_custom_field`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// String, number, array of strings or object, depending on the field type.
    pub field_value: Value,
}

/// One DND channel setting (`DndSettingSchema`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DndSetting {
    /// `active`, `inactive` or `permanent`.
    pub status: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Free code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// Per-channel DND (`DndSettingsSchema`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DndSettings {
    /// Calls.
    #[serde(rename = "Call", default, skip_serializing_if = "Option::is_none")]
    pub call: Option<DndSetting>,
    /// Email.
    #[serde(rename = "Email", default, skip_serializing_if = "Option::is_none")]
    pub email: Option<DndSetting>,
    /// SMS.
    #[serde(rename = "SMS", default, skip_serializing_if = "Option::is_none")]
    pub sms: Option<DndSetting>,
    /// WhatsApp.
    #[serde(rename = "WhatsApp", default, skip_serializing_if = "Option::is_none")]
    pub whatsapp: Option<DndSetting>,
    /// Google Business Messages.
    #[serde(rename = "GMB", default, skip_serializing_if = "Option::is_none")]
    pub gmb: Option<DndSetting>,
    /// Facebook.
    #[serde(rename = "FB", default, skip_serializing_if = "Option::is_none")]
    pub fb: Option<DndSetting>,
}

/// Inbound DND for all channels (`InboundDndSettingSchema`: no `code`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundDndSetting {
    /// `active` or `inactive`.
    pub status: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Inbound DND (`InboundDndSettingsSchema`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundDndSettings {
    /// All channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<InboundDndSetting>,
}

/// The contact properties shared by `CreateContactDto`, `UpdateContactDto` and
/// `UpsertContactDto`. (`companyName` and `gender` are not in `UpdateContactDto`, so they live
/// on the create/upsert types.)
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactProperties {
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Full name (does not count as an identifier on create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Phone, preferably E.164.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
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
    /// Website.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    /// IANA timezone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Do-not-disturb on all channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnd: Option<bool>,
    /// Per-channel DND.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnd_settings: Option<DndSettings>,
    /// Inbound DND.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_dnd_settings: Option<InboundDndSettings>,
    /// **Replaces every tag** of the contact on update and upsert; prefer
    /// [`crate::ghl::GhlClient::add_tags`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Custom field values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_fields: Vec<CustomFieldInput>,
    /// Lead source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Date of birth, e.g. `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_of_birth: Option<String>,
    /// Two-letter country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// User id of the owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
}

/// Body of `POST /contacts/` (`CreateContactDto`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateContactRequest {
    /// The location (required).
    pub location_id: String,
    /// Gender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// Company name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    /// The other properties.
    #[serde(flatten)]
    pub contact: ContactProperties,
}

/// Body of `POST /contacts/upsert` (`UpsertContactDto`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpsertContactRequest {
    /// The location (required).
    pub location_id: String,
    /// Gender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// Company name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    /// Always create when the location allows duplicates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_new_if_duplicate_allowed: Option<bool>,
    /// The other properties; GHL needs `email` or `phone` to match.
    #[serde(flatten)]
    pub contact: ContactProperties,
}

/// Body of `PUT /contacts/:contactId` (`UpdateContactDto`; never carries `locationId`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateContactRequest {
    /// The properties to change.
    #[serde(flatten)]
    pub contact: ContactProperties,
}

/// Query of the deprecated `GET /contacts/`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListContactsQuery {
    /// The location (required).
    pub location_id: String,
    /// Free-text query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Page size (default 20, max 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Cursor: id of the last contact of the previous page (`meta.startAfterId`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_after_id: Option<String>,
    /// Cursor: `meta.startAfter` (ms) of the previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_after: Option<i64>,
}

/// Query of `GET /contacts/search/duplicate`: the contact GHL's duplicate rule matches (by
/// email first, then phone). Unlike `POST /contacts/search` it does not lag writes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DuplicateContactQuery {
    /// The location (required).
    pub location_id: String,
    /// Email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Phone, E.164 (`number` in GHL's API).
    #[serde(rename = "number", skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
}

/// Query of `GET /contacts/business/:businessId`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BusinessContactsQuery {
    /// The location (required).
    pub location_id: String,
    /// Page size (default 25).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Offset (default 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip: Option<u32>,
    /// Free-text query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

/// Body of `POST /contacts/search`.
///
/// The spec leaves `SearchBodyV2DTO` as an empty schema; these properties come from recorded
/// traffic and integrators (reference §2.7). Do not send `page` together with `search_after`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchContactsRequest {
    /// The location (required by GHL, 422 without it).
    pub location_id: String,
    /// Page size (required by GHL; reportedly at most 500).
    pub page_limit: u32,
    /// 1-based page (only for the first 10,000 records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// Free-text query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Filters: `{field, operator, value}` or `{group, filters}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Value>,
    /// Sort: `{field, direction}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sort: Vec<Value>,
    /// Cursor: the `searchAfter` of the last contact of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_after: Option<Vec<Value>>,
}

/// Body of `POST /contacts/:contactId/tasks` (`CreateTaskParams`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateTaskRequest {
    /// Title.
    pub title: String,
    /// Body text (where the dispatcher puts its idempotency marker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// ISO-8601 due date, e.g. `2026-07-20T10:00:00Z`.
    pub due_date: String,
    /// Completed flag.
    pub completed: bool,
    /// User id of the assignee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
}

/// Body of `PUT /contacts/:contactId/tasks/:taskId` (`UpdateTaskBody`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateTaskRequest {
    /// Title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Body text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// ISO-8601 due date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_date: Option<String>,
    /// Completed flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<bool>,
    /// User id of the assignee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
}

/// Body of `PUT /contacts/:contactId/tasks/:taskId/completed` (`UpdateTaskStatusParams`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCompletedRequest {
    /// The new completed flag.
    pub completed: bool,
}

/// Body of `POST /contacts/:contactId/notes` (`NotesDTO`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateNoteRequest {
    /// Note text (where the dispatcher puts its idempotency marker).
    pub body: String,
    /// Author user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Colour, e.g. `#FFAA00`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// Pinned flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<bool>,
}

/// Body of `PUT /contacts/:contactId/notes/:id` (`UpdateNoteDTO`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateNoteRequest {
    /// Note text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Author user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Colour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// Pinned flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<bool>,
}

/// Body of `POST` and `DELETE /contacts/:contactId/tags` (`TagsDTO`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagsRequest {
    /// Tags to add or remove (GHL lower-cases them).
    pub tags: Vec<String>,
}

// ----------------------------------------------------------------------------------------------
// Responses
// ----------------------------------------------------------------------------------------------

/// Reads `null` as the type's default (search results send `null` instead of omitting).
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A custom field value as GHL returns it: `{id, value}` (no `key`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CustomFieldOutput {
    /// Custom field id.
    pub id: Option<String>,
    /// The value (string, number, array or object).
    pub value: Value,
}

/// A contact as GHL returns it (`GetContectByIdSchema` and the observed extras).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Contact {
    /// Contact id (20 characters).
    pub id: String,
    /// Location id.
    pub location_id: Option<String>,
    /// Full name.
    pub name: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Company name.
    pub company_name: Option<String>,
    /// Lead source.
    pub source: Option<String>,
    /// Tags (lower-cased by GHL).
    #[serde(deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
    /// Custom fields.
    #[serde(deserialize_with = "null_as_default")]
    pub custom_fields: Vec<CustomFieldOutput>,
    /// Business id, when the contact belongs to a business.
    pub business_id: Option<String>,
    /// ISO-8601 creation time.
    pub date_added: Option<String>,
    /// ISO-8601 update time.
    pub date_updated: Option<String>,
    /// Every other property GHL sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /contacts/:id` and `POST /contacts/` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContactResponse {
    /// The contact.
    pub contact: Contact,
}

/// `GET /contacts/search/duplicate` answer: the matched contact, or `null`. The spec documents
/// no schema for it; this is the shape the sandbox models (not checked against recorded GHL
/// traffic), read leniently: unknown fields are ignored, a missing `contact` is "no match".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DuplicateContactResponse {
    /// The matching contact, if any.
    pub contact: Option<Contact>,
    /// Which field matched, when one did.
    pub matching_field: Option<String>,
}

/// `POST /contacts/upsert` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpsertContactResponse {
    /// True when the contact was created, false when an existing one was updated.
    pub new: bool,
    /// The contact after the upsert.
    pub contact: Contact,
}

/// `{succeded, succeeded}`: GHL sends the typo and, lately, the correct spelling as well.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Succeeded {
    /// The spec's spelling.
    pub succeded: Option<bool>,
    /// The correct spelling, seen in recorded traffic.
    pub succeeded: Option<bool>,
}

impl Succeeded {
    /// True when either spelling says so.
    pub fn ok(&self) -> bool {
        self.succeded == Some(true) || self.succeeded == Some(true)
    }
}

/// `PUT /contacts/:id` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateContactResponse {
    /// Success flags.
    #[serde(flatten)]
    pub succeeded: Succeeded,
    /// The contact after the update.
    pub contact: Contact,
}

/// Answer of the deletes (contact, task, note).
pub type DeleteResponse = Succeeded;

/// Pagination of the deprecated `GET /contacts/` (`ContactsMetaSchema`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContactsMeta {
    /// Matching contacts.
    pub total: Option<u64>,
    /// URL of the next page.
    pub next_page_url: Option<String>,
    /// Cursor id for the next page.
    pub start_after_id: Option<String>,
    /// Cursor time (ms) for the next page.
    pub start_after: Option<i64>,
    /// Current page.
    pub current_page: Option<u64>,
    /// Next page.
    pub next_page: Option<u64>,
    /// Previous page.
    pub prev_page: Option<u64>,
}

/// `GET /contacts/` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListContactsResponse {
    /// The page of contacts.
    pub contacts: Vec<Contact>,
    /// Pagination.
    pub meta: ContactsMeta,
}

/// `POST /contacts/search` answer. Each contact carries its `searchAfter` cursor in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchContactsResponse {
    /// The page of contacts (flatter shape, nulls instead of omissions).
    pub contacts: Vec<Contact>,
    /// Matching contacts.
    pub total: Option<u64>,
}

impl SearchContactsResponse {
    /// The cursor for the next page: the `searchAfter` of the last contact.
    pub fn next_search_after(&self) -> Option<Vec<Value>> {
        self.contacts
            .last()
            .and_then(|c| c.extra.get("searchAfter"))
            .and_then(|v| v.as_array().cloned())
    }
}

/// `GET /contacts/business/:businessId` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BusinessContactsResponse {
    /// The contacts.
    pub contacts: Vec<Contact>,
    /// How many.
    pub count: Option<u64>,
}

/// A task (`TaskSchema`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Task {
    /// Task id.
    pub id: String,
    /// Title.
    pub title: Option<String>,
    /// Body.
    pub body: Option<String>,
    /// Assignee.
    pub assigned_to: Option<String>,
    /// Due date (`…T10:00:00.000Z`).
    pub due_date: Option<String>,
    /// Completed flag.
    pub completed: Option<bool>,
    /// Contact id.
    pub contact_id: Option<String>,
    /// Every other property GHL sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `{task}` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskResponse {
    /// The task.
    pub task: Task,
}

/// `{tasks}` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TasksResponse {
    /// The contact's tasks.
    pub tasks: Vec<Task>,
}

/// A note (`GetNoteSchema` plus observed `bodyText`, `relations`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Note {
    /// Note id.
    pub id: String,
    /// Body.
    pub body: Option<String>,
    /// Plain-text body.
    pub body_text: Option<String>,
    /// Author (may be null).
    pub user_id: Option<String>,
    /// Creation time.
    pub date_added: Option<String>,
    /// Contact id.
    pub contact_id: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// Colour.
    pub color: Option<String>,
    /// Pinned flag.
    pub pinned: Option<bool>,
    /// Every other property GHL sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `{note}` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NoteResponse {
    /// The note.
    pub note: Note,
}

/// `{notes}` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotesResponse {
    /// The contact's notes.
    pub notes: Vec<Note>,
}

/// Answer of tag add/remove: the full resulting tag list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TagsResponse {
    /// Every tag of the contact after the change.
    pub tags: Vec<String>,
    /// Observed delta (its exact meaning is unverified).
    pub tags_added: Vec<String>,
    /// Observed delta (its exact meaning is unverified).
    pub tags_removed: Vec<String>,
}

/// An appointment (`GetEventSchema`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Appointment {
    /// Event id.
    pub id: String,
    /// Calendar id.
    pub calendar_id: Option<String>,
    /// `booked`, …
    pub status: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// Start (`2021-07-16 11:00:00` in the spec example).
    pub start_time: Option<String>,
    /// End.
    pub end_time: Option<String>,
    /// Contact id.
    pub contact_id: Option<String>,
    /// Appointment status.
    pub appointment_status: Option<String>,
    /// Every other property GHL sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /contacts/:id/appointments` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppointmentsResponse {
    /// The contact's appointments.
    pub events: Vec<Appointment>,
}
