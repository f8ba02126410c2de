//! Sandbox handlers for the Calendars API's appointments (`ghl-calendars-openapi.json`,
//! `Version: 2021-04-15`): book (`POST /calendars/events/appointments`), edit (`PUT …/{eventId}`)
//! and read (`GET …/{eventId}`), on calendars seeded with `POST /_sandbox/calendars`.
//!
//! Choices where GHL's behaviour is not documented: an unknown calendar, contact or event id
//! answers 400 (the spec lists 400 and 401 only) with `<Thing> with id <id> not found`, like the
//! contacts routes; a bad `startTime`/`endTime` or `appointmentStatus` answers 422 like any
//! class-validator failure; an `endTime` left out is the start plus 30 minutes (a calendar's
//! usual slot); times are stored as sent (GHL echoes the offset given). Free-slot validation is
//! not simulated: every booking behaves as with `ignoreFreeSlotValidation: true`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::contacts::{body_location, contact_mut, str_field};
use super::gate::Caller;
use super::validate::{validate, Dto};
use super::world::{error, new_id, now_iso, parse_object, reply, unprocessable, Sandbox, World};

/// The `Version` the Calendars API takes.
pub const CALENDARS_API_VERSION: &str = "2021-04-15";

/// The `Version` header a path takes: the Calendars API's for `/calendars/…`, else the
/// Contacts API's.
pub(crate) fn version_for(path: &str) -> &'static str {
    if path.starts_with("/calendars/") {
        CALENDARS_API_VERSION
    } else {
        super::world::API_VERSION
    }
}

/// `appointmentStatus` values a create or an edit may send.
const STATUSES: &[&str] = &[
    "new",
    "confirmed",
    "cancelled",
    "showed",
    "noshow",
    "invalid",
];

/// `meetingLocationType` values.
const MEETING_TYPES: &[&str] = &[
    "custom", "zoom", "gmeet", "phone", "address", "ms_teams", "google",
];

/// Properties of an appointment as `GET /contacts/{id}/appointments` lists it
/// (`GetEventSchema`); the stored record has more (`description`).
const LISTED: &[&str] = &[
    "id",
    "calendarId",
    "status",
    "title",
    "assignedUserId",
    "notes",
    "startTime",
    "endTime",
    "address",
    "locationId",
    "contactId",
    "groupId",
    "appointmentStatus",
    "users",
    "dateAdded",
    "dateUpdated",
    "assignedResources",
];

/// Properties of `AppointmentSchemaResponse` (a create's or an edit's answer).
const ANSWERED: &[&str] = &[
    "id",
    "calendarId",
    "locationId",
    "contactId",
    "startTime",
    "endTime",
    "title",
    "meetingLocationType",
    "appointmentStatus",
    "assignedUserId",
    "address",
    "isRecurring",
    "rrule",
];

/// An appointment as the contact's listing shows it.
pub(crate) fn listed(record: &Value) -> Value {
    pick(record, LISTED)
}

fn pick(record: &Value, keys: &[&str]) -> Value {
    let mut out = Map::new();
    if let Value::Object(m) = record {
        for key in keys {
            if let Some(v) = m.get(*key) {
                out.insert((*key).to_owned(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// The 400 for an unknown id.
fn not_found(thing: &str, id: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        format!("{thing} with id {id} not found"),
    )
}

/// Checks the values class-validator would: times, status and meeting type.
fn check_values(body: &Map<String, Value>) -> Vec<String> {
    let mut errors = Vec::new();
    for key in ["startTime", "endTime"] {
        if let Some(Value::String(t)) = body.get(key) {
            if OffsetDateTime::parse(t, &Rfc3339).is_err() {
                errors.push(format!("{key} must be a valid ISO 8601 date string"));
            }
        }
    }
    for (key, allowed) in [
        ("appointmentStatus", STATUSES),
        ("meetingLocationType", MEETING_TYPES),
    ] {
        if let Some(Value::String(v)) = body.get(key) {
            if !allowed.contains(&v.as_str()) {
                errors.push(format!(
                    "{key} must be one of the following values: {}",
                    allowed.join(", ")
                ));
            }
        }
    }
    errors
}

/// The calendar `id`, when the caller's location has it.
fn calendar_of(world: &World, caller: &Caller, id: &str) -> Result<String, Response> {
    match world.calendars.get(id) {
        Some(location) if caller.may_use(location) => Ok(location.clone()),
        Some(_) => Err(super::world::forbidden_location()),
        None => Err(not_found("Calendar", id)),
    }
}

fn index_of(world: &World, id: &str) -> Option<usize> {
    world
        .appointments
        .iter()
        .position(|a| a.get("id").and_then(Value::as_str) == Some(id))
}

/// Copies what an edit or a create sends onto the stored record (`description` also shows as
/// the listing's `notes`).
fn apply(record: &mut Map<String, Value>, body: &Map<String, Value>) {
    for (k, v) in body {
        match k.as_str() {
            // Request-only switches, not stored.
            "ignoreFreeSlotValidation"
            | "ignoreDateRange"
            | "toNotify"
            | "overrideLocationConfig" => {}
            "description" => {
                record.insert("description".into(), v.clone());
                record.insert("notes".into(), v.clone());
            }
            _ => {
                record.insert(k.clone(), v.clone());
            }
        }
    }
    record.insert("dateUpdated".into(), json!(now_iso()));
}

/// `POST /calendars/events/appointments`.
pub(crate) async fn create(
    (State(sb), Extension(caller)): (State<Sandbox>, Extension<Caller>),
    body: Bytes,
) -> Response {
    let body = match parse_object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut errors = validate(Dto::CreateAppointment, &body);
    errors.extend(check_values(&body));
    if !errors.is_empty() {
        return unprocessable(errors);
    }
    let location = match body_location(&caller, &body) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let mut world = sb.world();
    let calendar_id = str_field(&body, "calendarId")
        .unwrap_or_default()
        .to_owned();
    match calendar_of(&world, &caller, &calendar_id) {
        Ok(l) if l == location => {}
        Ok(_) => return not_found("Calendar", &calendar_id),
        Err(r) => return r,
    }
    let contact_id = str_field(&body, "contactId").unwrap_or_default().to_owned();
    if let Err(r) = contact_mut(&mut world, &caller, &contact_id) {
        return r;
    }
    let start = str_field(&body, "startTime").unwrap_or_default().to_owned();
    let now = now_iso();
    let mut record = json!({
        "id": new_id(),
        "calendarId": calendar_id,
        "locationId": location,
        "contactId": contact_id,
        "groupId": "",
        "title": "",
        "status": "booked",
        "appointmentStatus": "confirmed",
        "assignedUserId": "",
        "users": [],
        "address": "",
        "meetingLocationType": "default",
        "isRecurring": false,
        "dateAdded": now,
    })
    .as_object()
    .cloned()
    .unwrap_or_default();
    apply(&mut record, &body);
    if !body.contains_key("endTime") {
        let end = OffsetDateTime::parse(&start, &Rfc3339)
            .map(|s| s + time::Duration::minutes(30))
            .ok()
            .and_then(|e| e.format(&Rfc3339).ok())
            .unwrap_or(start);
        record.insert("endTime".into(), json!(end));
    }
    let record = Value::Object(record);
    world.appointments.push(record.clone());
    // The spec answers a create with 200.
    reply(StatusCode::OK, pick(&record, ANSWERED))
}

/// `PUT /calendars/events/appointments/{eventId}`.
pub(crate) async fn update(
    (State(sb), Extension(caller)): (State<Sandbox>, Extension<Caller>),
    Path(event_id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match parse_object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut errors = validate(Dto::UpdateAppointment, &body);
    errors.extend(check_values(&body));
    if !errors.is_empty() {
        return unprocessable(errors);
    }
    let mut world = sb.world();
    let Some(i) = index_of(&world, &event_id) else {
        return not_found("Appointment", &event_id);
    };
    let location = str_field_of(&world.appointments[i], "locationId");
    if !caller.may_use(&location) {
        return super::world::forbidden_location();
    }
    if let Some(calendar_id) = str_field(&body, "calendarId") {
        match calendar_of(&world, &caller, calendar_id) {
            Ok(l) if l == location => {}
            Ok(_) => return not_found("Calendar", calendar_id),
            Err(r) => return r,
        }
    }
    let Some(Value::Object(record)) = world.appointments.get_mut(i) else {
        return not_found("Appointment", &event_id);
    };
    apply(record, &body);
    let answer = pick(&Value::Object(record.clone()), ANSWERED);
    reply(StatusCode::OK, answer)
}

/// `GET /calendars/events/appointments/{eventId}`: `{"event": CalendarEventDTO}`.
pub(crate) async fn get_one(
    (State(sb), Extension(caller)): (State<Sandbox>, Extension<Caller>),
    Path(event_id): Path<String>,
) -> Response {
    let world = sb.world();
    let Some(record) = index_of(&world, &event_id).map(|i| &world.appointments[i]) else {
        return not_found("Appointment", &event_id);
    };
    if !caller.may_use(&str_field_of(record, "locationId")) {
        return super::world::forbidden_location();
    }
    let mut event = record.clone();
    if let Value::Object(m) = &mut event {
        m.remove("status");
        m.remove("meetingLocationType");
    }
    reply(StatusCode::OK, json!({ "event": event }))
}

fn str_field_of(record: &Value, key: &str) -> String {
    record
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}
