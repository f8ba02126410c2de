//! The Calendars API operations formbridge uses (appointments: book, move or cancel, read) and
//! their bodies, as `ghl-calendars-openapi.json` describes them (`Version: 2021-04-15`), plus
//! the marker lookup that keeps a booking from being made twice.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::client::{GhlClient, GhlResponse};
use super::error::GhlError;

/// The `Version` header the Calendars API's appointment operations take.
pub const CALENDARS_API_VERSION: &str = "2021-04-15";

/// `POST /calendars/events/appointments` body (`AppointmentCreateSchema`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateAppointmentRequest {
    pub calendar_id: String,
    pub location_id: String,
    pub contact_id: String,
    /// RFC 3339 with an offset.
    pub start_time: String,
    pub end_time: String,
    pub title: String,
    /// The appointment's description: the notes, and formbridge's marker.
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_user_id: Option<String>,
    /// `confirmed`: the customer chose the time in the form or the job tool.
    pub appointment_status: String,
    /// `true`: the time was agreed elsewhere, so GHL's free-slot and booking-window checks
    /// (which would refuse a time outside the calendar's availability) are skipped.
    pub ignore_free_slot_validation: bool,
    /// `true`: the calendar's automations (confirmations, reminders) run as for any booking.
    pub to_notify: bool,
}

/// `PUT /calendars/events/appointments/{eventId}` body (`AppointmentEditSchema`, every property
/// optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateAppointmentRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appointment_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_free_slot_validation: Option<bool>,
}

/// An appointment as a create or an edit answers it (`AppointmentSchemaResponse`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AppointmentAnswer {
    pub id: String,
    pub calendar_id: Option<String>,
    pub contact_id: Option<String>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub appointment_status: Option<String>,
    /// Every other property GHL sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /calendars/events/appointments/{eventId}` answer
/// (`GetCalendarEventSuccessfulResponseDTO`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct CalendarEventResponse {
    pub event: CalendarEvent,
}

/// `CalendarEventDTO`, the properties formbridge reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CalendarEvent {
    pub id: String,
    pub calendar_id: Option<String>,
    pub contact_id: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub notes: Option<String>,
    pub appointment_status: Option<String>,
    /// The spec types it `object`; GHL sends an ISO 8601 string.
    pub start_time: Option<Value>,
    pub end_time: Option<Value>,
}

impl GhlClient {
    /// `POST /calendars/events/appointments`.
    pub async fn create_appointment(
        &self,
        request: &CreateAppointmentRequest,
    ) -> Result<GhlResponse<AppointmentAnswer>, GhlError> {
        let p = self
            .prepare_json(
                Method::POST,
                "POST /calendars/events/appointments",
                &["calendars", "events", "appointments"],
                None,
                Some(request),
            )?
            .with_version(CALENDARS_API_VERSION);
        self.execute(&request.location_id, p).await
    }

    /// `PUT /calendars/events/appointments/:eventId`.
    pub async fn update_appointment(
        &self,
        location_id: &str,
        event_id: &str,
        request: &UpdateAppointmentRequest,
    ) -> Result<GhlResponse<AppointmentAnswer>, GhlError> {
        let p = self
            .prepare_json(
                Method::PUT,
                "PUT /calendars/events/appointments/:eventId",
                &["calendars", "events", "appointments", event_id],
                None,
                Some(request),
            )?
            .with_version(CALENDARS_API_VERSION);
        self.execute(location_id, p).await
    }

    /// `GET /calendars/events/appointments/:eventId`.
    pub async fn get_appointment(
        &self,
        location_id: &str,
        event_id: &str,
    ) -> Result<GhlResponse<CalendarEventResponse>, GhlError> {
        let p = self
            .prepare(
                Method::GET,
                "GET /calendars/events/appointments/:eventId",
                &["calendars", "events", "appointments", event_id],
            )?
            .with_version(CALENDARS_API_VERSION);
        self.execute(location_id, p).await
    }

    /// The id of the contact's appointment on `calendar_id` whose description carries `marker`:
    /// the contact's appointments (`GET /contacts/:contactId/appointments`), then each one on
    /// that calendar read in full, since the listing's `GetEventSchema` has no description.
    pub async fn find_appointment_with_marker(
        &self,
        location_id: &str,
        contact_id: &str,
        calendar_id: &str,
        marker: &str,
    ) -> Result<Option<String>, GhlError> {
        let listed = self.contact_appointments(location_id, contact_id).await?;
        for event in listed.body.events {
            if event.calendar_id.as_deref() != Some(calendar_id) {
                continue;
            }
            let full = self
                .get_appointment(location_id, &event.id)
                .await?
                .body
                .event;
            let carries =
                |text: &Option<String>| text.as_deref().is_some_and(|t| t.contains(marker));
            if carries(&full.description) || carries(&full.notes) {
                return Ok(Some(event.id));
            }
        }
        Ok(None)
    }
}
