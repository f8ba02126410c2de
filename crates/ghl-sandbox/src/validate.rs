//! Request-body validation the way GHL's class-validator whitelist does it: unknown properties
//! and wrongly typed values give 422 with an array of messages.

use serde_json::{Map, Value};

/// The type a property must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A string.
    Str,
    /// A string or null.
    NullableStr,
    /// A string that must look like an email (or null).
    Email,
    /// A boolean.
    Bool,
    /// A number.
    Num,
    /// An array of strings.
    StrArray,
    /// An array of anything (search filters, sort, cursor).
    Array,
    /// `DndSettingsSchema`.
    Dnd,
    /// `InboundDndSettingsSchema`.
    InboundDnd,
    /// `[{id|key, field_value}]`.
    CustomFields,
    /// A date of birth string (or null; the spec says object).
    DateOfBirth,
    /// An opportunity status: `open`, `won`, `lost`, `abandoned` or `all` (the spec's enum).
    OpportunityStatus,
}

use Kind::*;

/// Properties shared by `CreateContactDto`, `UpdateContactDto` and `UpsertContactDto`.
const CONTACT_COMMON: &[(&str, Kind)] = &[
    ("firstName", NullableStr),
    ("lastName", NullableStr),
    ("name", NullableStr),
    ("email", Email),
    ("phone", NullableStr),
    ("address1", NullableStr),
    ("city", NullableStr),
    ("state", NullableStr),
    ("postalCode", Str),
    ("website", NullableStr),
    ("timezone", NullableStr),
    ("dnd", Bool),
    ("dndSettings", Dnd),
    ("inboundDndSettings", InboundDnd),
    ("tags", StrArray),
    ("customFields", CustomFields),
    ("source", NullableStr),
    ("dateOfBirth", DateOfBirth),
    ("country", Str),
    ("assignedTo", NullableStr),
];

/// Extra properties of `CreateContactDto` (and upsert). `UpdateContactDto` has none of these:
/// the spec omits `companyName` from it too, and we follow the spec.
const CONTACT_CREATE_EXTRA: &[(&str, Kind)] = &[
    ("locationId", Str),
    ("gender", Str),
    ("companyName", NullableStr),
];

/// The spec's `status` enum of `CreateDto`, `UpdateOpportunityDto` and `UpdateStatusDto`.
const OPPORTUNITY_STATUSES: &[&str] = &["open", "won", "lost", "abandoned", "all"];

/// Which body schema to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dto {
    CreateContact,
    UpsertContact,
    UpdateContact,
    Search,
    CreateTask,
    UpdateTask,
    TaskCompleted,
    CreateNote,
    UpdateNote,
    Tags,
    BulkBusiness,
    /// `CreateDto` of `POST /opportunities/`.
    CreateOpportunity,
    /// `UpdateOpportunityDto` of `PUT /opportunities/{id}`.
    UpdateOpportunity,
    /// `UpdateStatusDto` of `PUT /opportunities/{id}/status`.
    OpportunityStatus,
    /// `AppointmentCreateSchema` (Calendars API).
    CreateAppointment,
    /// `AppointmentEditSchema` (Calendars API).
    UpdateAppointment,
}

/// Properties of `AppointmentEditSchema`; `AppointmentCreateSchema` adds `locationId` and
/// `contactId`.
const APPOINTMENT_COMMON: &[(&str, Kind)] = &[
    ("title", Str),
    ("meetingLocationType", Str),
    ("meetingLocationId", Str),
    ("overrideLocationConfig", Bool),
    ("appointmentStatus", Str),
    ("assignedUserId", Str),
    ("description", Str),
    ("address", Str),
    ("ignoreDateRange", Bool),
    ("toNotify", Bool),
    ("ignoreFreeSlotValidation", Bool),
    ("rrule", Str),
    ("calendarId", Str),
    ("startTime", Str),
    ("endTime", Str),
];

fn schema(dto: Dto) -> (Vec<(&'static str, Kind)>, &'static [&'static str]) {
    let mut props: Vec<(&'static str, Kind)> = Vec::new();
    let required: &'static [&'static str] = match dto {
        Dto::CreateContact | Dto::UpsertContact => {
            props.extend_from_slice(CONTACT_COMMON);
            props.extend_from_slice(CONTACT_CREATE_EXTRA);
            if dto == Dto::UpsertContact {
                props.push(("createNewIfDuplicateAllowed", Bool));
            }
            &["locationId"]
        }
        Dto::UpdateContact => {
            props.extend_from_slice(CONTACT_COMMON);
            &[]
        }
        Dto::Search => {
            // The spec's SearchBodyV2DTO is empty; these come from recorded traffic (§2.7).
            props.extend_from_slice(&[
                ("locationId", Str),
                ("pageLimit", Num),
                ("page", Num),
                ("query", Str),
                ("filters", Array),
                ("sort", Array),
                ("searchAfter", Array),
            ]);
            &["locationId", "pageLimit"]
        }
        Dto::CreateTask | Dto::UpdateTask => {
            props.extend_from_slice(&[
                ("title", Str),
                ("body", Str),
                ("dueDate", Str),
                ("completed", Bool),
                ("assignedTo", Str),
            ]);
            if dto == Dto::CreateTask {
                &["title", "dueDate", "completed"]
            } else {
                &[]
            }
        }
        Dto::TaskCompleted => {
            props.push(("completed", Bool));
            &["completed"]
        }
        Dto::CreateNote | Dto::UpdateNote => {
            props.extend_from_slice(&[
                ("userId", Str),
                ("body", Str),
                ("title", Str),
                ("color", Str),
                ("pinned", Bool),
            ]);
            if dto == Dto::CreateNote {
                &["body"]
            } else {
                &[]
            }
        }
        Dto::Tags => {
            props.push(("tags", StrArray));
            &["tags"]
        }
        Dto::BulkBusiness => {
            props.extend_from_slice(&[
                ("locationId", Str),
                ("ids", StrArray),
                ("businessId", NullableStr),
            ]);
            &["locationId", "ids"]
        }
        Dto::CreateOpportunity | Dto::UpdateOpportunity => {
            props.extend_from_slice(&[
                ("pipelineId", Str),
                ("name", Str),
                ("pipelineStageId", Str),
                ("status", OpportunityStatus),
                ("monetaryValue", Num),
                ("assignedTo", Str),
                ("customFields", Array),
            ]);
            if dto == Dto::CreateOpportunity {
                props.extend_from_slice(&[("locationId", Str), ("contactId", Str)]);
                &["pipelineId", "locationId", "name", "status", "contactId"]
            } else {
                &[]
            }
        }
        Dto::OpportunityStatus => {
            props.extend_from_slice(&[("status", OpportunityStatus), ("lostReasonId", Str)]);
            &["status"]
        }
        Dto::CreateAppointment => {
            props.extend_from_slice(APPOINTMENT_COMMON);
            props.extend_from_slice(&[("locationId", Str), ("contactId", Str)]);
            &["calendarId", "locationId", "contactId", "startTime"]
        }
        Dto::UpdateAppointment => {
            props.extend_from_slice(APPOINTMENT_COMMON);
            &[]
        }
    };
    (props, required)
}

/// Validates `body` against `dto`; an empty vector means valid.
pub(crate) fn validate(dto: Dto, body: &Map<String, Value>) -> Vec<String> {
    let (props, required) = schema(dto);
    let mut errors = Vec::new();
    for key in body.keys() {
        if !props.iter().any(|(p, _)| p == key) {
            errors.push(format!("property {key} should not exist"));
        }
    }
    for (name, kind) in &props {
        match body.get(*name) {
            None | Some(Value::Null) if required.contains(name) => {
                errors.push(format!("{name} should not be empty"));
                errors.push(type_message(name, *kind));
            }
            None => {}
            Some(value) => check(name, *kind, value, &mut errors),
        }
    }
    errors
}

fn type_message(name: &str, kind: Kind) -> String {
    match kind {
        Str | NullableStr | DateOfBirth => format!("{name} must be a string"),
        Email => format!("{name} must be an email"),
        Bool => format!("{name} must be a boolean value"),
        Num => format!("{name} must be a number conforming to the specified constraints"),
        StrArray | Array | CustomFields => format!("{name} must be an array"),
        Dnd | InboundDnd => format!("{name} must be an object"),
        OpportunityStatus => format!(
            "{name} must be one of the following values: {}",
            OPPORTUNITY_STATUSES.join(", ")
        ),
    }
}

fn check(name: &str, kind: Kind, value: &Value, errors: &mut Vec<String>) {
    let ok = match (kind, value) {
        (Str, Value::String(_)) => true,
        (NullableStr | DateOfBirth, Value::String(_) | Value::Null) => true,
        (Email, Value::Null) => true,
        (Email, Value::String(s)) => looks_like_email(s),
        (Bool, Value::Bool(_)) => true,
        (Num, Value::Number(_)) => true,
        (OpportunityStatus, Value::String(s)) => OPPORTUNITY_STATUSES.contains(&s.as_str()),
        (Array, Value::Array(_)) => true,
        (StrArray, Value::Array(items)) => {
            if !items.iter().all(Value::is_string) {
                errors.push(format!("each value in {name} must be a string"));
            }
            true
        }
        (Dnd, Value::Object(map)) => {
            let channels = ["Call", "Email", "SMS", "WhatsApp", "GMB", "FB"];
            let statuses = ["active", "inactive", "permanent"];
            for (channel, setting) in map {
                if !channels.contains(&channel.as_str()) {
                    errors.push(format!("property {name}.{channel} should not exist"));
                    continue;
                }
                check_dnd_setting(
                    &format!("{name}.{channel}"),
                    setting,
                    &statuses,
                    &["status", "message", "code"],
                    errors,
                );
            }
            true
        }
        (InboundDnd, Value::Object(map)) => {
            for (key, setting) in map {
                if key != "all" {
                    errors.push(format!("property {name}.{key} should not exist"));
                    continue;
                }
                check_dnd_setting(
                    &format!("{name}.all"),
                    setting,
                    &["active", "inactive"],
                    &["status", "message"],
                    errors,
                );
            }
            true
        }
        (CustomFields, Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let Value::Object(field) = item else {
                    errors.push(format!("{name}.{i} must be an object"));
                    continue;
                };
                // `field_value` is the 2021-07-28 spelling; v3's `fieldValue` and the `value`
                // seen in the wild are accepted too (reference §2.2).
                for key in field.keys() {
                    if !["id", "key", "field_value", "fieldValue", "value"].contains(&key.as_str())
                    {
                        errors.push(format!("property {name}.{i}.{key} should not exist"));
                    }
                }
                let has_ref = ["id", "key"].iter().any(|k| {
                    field
                        .get(*k)
                        .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()))
                });
                if !has_ref {
                    errors.push(format!("{name}.{i}.id must be a string"));
                }
            }
            true
        }
        _ => false,
    };
    if !ok {
        errors.push(type_message(name, kind));
    }
}

fn check_dnd_setting(
    path: &str,
    setting: &Value,
    statuses: &[&str],
    allowed: &[&str],
    errors: &mut Vec<String>,
) {
    let Value::Object(s) = setting else {
        errors.push(format!("{path} must be an object"));
        return;
    };
    for key in s.keys() {
        if !allowed.contains(&key.as_str()) {
            errors.push(format!("property {path}.{key} should not exist"));
        }
    }
    let status_ok = s
        .get("status")
        .and_then(Value::as_str)
        .is_some_and(|v| statuses.contains(&v));
    if !status_ok {
        errors.push(format!(
            "{path}.status must be one of the following values: {}",
            statuses.join(", ")
        ));
    }
}

fn looks_like_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !s.chars().any(char::is_whitespace)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
}

/// A task `dueDate` normalised to GHL's `…T10:00:00.000Z`, or `None` when not ISO-8601.
pub(crate) fn normalize_due_date(value: &str) -> Option<String> {
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(super::world::iso)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn whitelist_and_types() {
        let e = validate(
            Dto::UpdateContact,
            &obj(json!({"locationId": "x", "customField": [], "dnd": "yes"})),
        );
        assert!(e.contains(&"property locationId should not exist".to_owned()));
        assert!(e.contains(&"property customField should not exist".to_owned()));
        assert!(e.contains(&"dnd must be a boolean value".to_owned()));
        assert!(validate(
            Dto::CreateContact,
            &obj(json!({"locationId": "l", "email": "a@b.co"}))
        )
        .is_empty());
        assert!(!validate(Dto::CreateContact, &obj(json!({"email": "nope"}))).is_empty());
        assert_eq!(
            normalize_due_date("2026-07-20T10:00:00Z").as_deref(),
            Some("2026-07-20T10:00:00.000Z")
        );
    }
}
