//! Sandbox handlers that write or read one contact: create, upsert (GHL's duplicate rules), get,
//! update, delete; plus the contact helpers the other handlers share.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

use super::gate::Caller;
use super::users::check_assignee;
use super::validate::{validate, Dto};
use super::world::checked_body;
use super::world::{
    error, forbidden_location, new_id, now_iso, parse_object, reply, unprocessable, Record,
    Sandbox, World,
};

/// Plain properties copied from a request onto the stored contact.
const COPIED: &[&str] = &[
    "firstName",
    "lastName",
    "name",
    "email",
    "phone",
    "address1",
    "city",
    "state",
    "postalCode",
    "website",
    "timezone",
    "dnd",
    "inboundDndSettings",
    "source",
    "dateOfBirth",
    "country",
    "companyName",
    "assignedTo",
    "gender",
];

/// Lower-cases, trims and de-duplicates tags, keeping their order.
pub(crate) fn normalize_tags(tags: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in tags.iter().filter_map(Value::as_str) {
        let t = t.trim().to_lowercase();
        if !t.is_empty() && !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

pub(crate) fn str_field<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The contact of `location` holding this email (first) or phone; with its matching field.
pub(crate) fn find_duplicate(
    world: &World,
    location: &str,
    email: Option<&str>,
    phone: Option<&str>,
    exclude: Option<&str>,
) -> Option<(String, &'static str)> {
    let other = |id: &&str| Some(*id) != exclude;
    let index = &world.contact_index;
    email
        .and_then(|e| index.with_email(location, e).find(other))
        .map(|id| (id.to_owned(), "email"))
        .or_else(|| {
            phone
                .and_then(|p| index.with_phone(location, p).find(other))
                .map(|id| (id.to_owned(), "phone"))
        })
}

fn new_contact(world: &mut World, location: &str) -> Record {
    let now = now_iso();
    let id = new_id();
    let data = json!({
        "id": id, "dateAdded": now, "dateUpdated": now, "deleted": false, "tags": [],
        "type": "lead", "customFields": [], "locationId": location, "country": "US",
        "additionalEmails": [], "additionalPhones": [], "followers": [],
        "createdBy": {"source": "INTEGRATION", "channel": "OAUTH", "sourceId": "sandbox", "timestamp": now},
    });
    Record {
        seq: world.next_seq(),
        data: data.as_object().cloned().unwrap_or_default(),
    }
}

/// Applies a validated create/update/upsert body to a stored contact.
fn apply_input(
    world: &mut World,
    location: &str,
    contact: &mut Map<String, Value>,
    input: &Map<String, Value>,
) {
    for key in COPIED {
        match input.get(*key) {
            Some(Value::Null) => {
                contact.remove(*key);
            }
            Some(v) => {
                contact.insert((*key).to_owned(), v.clone());
            }
            None => {}
        }
    }
    for (src, dst) in [
        ("firstName", "firstNameLowerCase"),
        ("lastName", "lastNameLowerCase"),
        ("email", "emailLowerCase"),
    ] {
        match contact.get(src).and_then(Value::as_str) {
            Some(v) => contact.insert(dst.to_owned(), json!(v.to_lowercase())),
            None => contact.remove(dst),
        };
    }
    let full = [
        str_field(contact, "firstName"),
        str_field(contact, "lastName"),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    if full.is_empty() {
        contact.remove("fullNameLowerCase");
    } else {
        contact.insert("fullNameLowerCase".into(), json!(full.to_lowercase()));
    }
    super::dnd::merge(contact, input);
    // `tags` on create, PUT and upsert replaces every tag (spec).
    if let Some(Value::Array(tags)) = input.get("tags") {
        contact.insert("tags".into(), json!(normalize_tags(tags)));
    }
    if let Some(Value::Array(fields)) = input.get("customFields") {
        let mut current: Vec<Value> = contact
            .get("customFields")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for f in fields.iter().filter_map(Value::as_object) {
            let id = match (str_field(f, "id"), str_field(f, "key")) {
                (Some(id), _) => id.to_owned(),
                (None, Some(key)) => world
                    .custom_field_ids
                    .entry((location.to_owned(), key.to_owned()))
                    .or_insert_with(new_id)
                    .clone(),
                (None, None) => continue,
            };
            let value = ["field_value", "fieldValue", "value"]
                .iter()
                .find_map(|k| f.get(*k))
                .cloned()
                .unwrap_or(Value::Null);
            current.retain(|c| c.get("id").and_then(Value::as_str) != Some(id.as_str()));
            current.push(json!({"id": id, "value": value}));
        }
        contact.insert("customFields".into(), Value::Array(current));
    }
    let now = now_iso();
    contact.insert("dateUpdated".into(), json!(now));
    contact.insert(
        "lastUpdatedBy".into(),
        json!({"source": "INTEGRATION", "channel": "OAUTH", "sourceId": "sandbox", "timestamp": now}),
    );
}

/// The stored contact `id`, checked against the caller's locations.
pub(crate) fn contact_mut<'w>(
    world: &'w mut World,
    caller: &Caller,
    id: &str,
) -> Result<&'w mut Record, Response> {
    match world.contacts.get_mut(id) {
        // GHL answers 400 (not 404) for an unknown contact id (reference §3).
        None => Err(error(
            StatusCode::BAD_REQUEST,
            format!("Contact with id {id} not found"),
        )),
        Some(r) if !caller.may_use(str_field(&r.data, "locationId").unwrap_or_default()) => {
            Err(forbidden_location())
        }
        Some(r) => Ok(r),
    }
}

pub(crate) fn body_location(
    caller: &Caller,
    body: &Map<String, Value>,
) -> Result<String, Response> {
    let loc = str_field(body, "locationId").unwrap_or_default();
    if caller.may_use(loc) {
        Ok(loc.to_owned())
    } else {
        Err(forbidden_location())
    }
}

pub(crate) fn query_location(
    caller: &Caller,
    q: &HashMap<String, String>,
) -> Result<String, Response> {
    // A missing locationId behaves like a foreign location (n8n #11353, reference §2.7).
    let loc = q.get("locationId").map(String::as_str).unwrap_or_default();
    if caller.may_use(loc) {
        Ok(loc.to_owned())
    } else {
        Err(forbidden_location())
    }
}

fn duplicate_error(world: &World, id: &str, field: &str) -> Response {
    let name = world
        .contacts
        .get(id)
        .and_then(|r| {
            str_field(&r.data, "name").map(str::to_owned).or_else(|| {
                r.data
                    .get("fullNameLowerCase")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
        })
        .unwrap_or_default();
    reply(
        StatusCode::BAD_REQUEST,
        json!({
            "statusCode": 400,
            "message": "This location does not allow duplicated contacts.",
            "meta": {"contactName": name, "contactId": id, "matchingField": field},
        }),
    )
}

/// `POST /contacts/`.
pub(crate) async fn create(
    State(sb): State<Sandbox>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    let body = match checked_body(Dto::CreateContact, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let location = match body_location(&caller, &body) {
        Ok(l) => l,
        Err(r) => return r,
    };
    if ["email", "phone", "firstName", "lastName"]
        .iter()
        .all(|k| str_field(&body, k).is_none())
    {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Contacts without email, phone, firstName and lastName are not allowed.",
        );
    }
    let mut world = sb.world();
    if let Err(r) = check_assignee(&world, &location, &body) {
        return r;
    }
    let allow_dup = world
        .allow_duplicates
        .get(&location)
        .copied()
        .unwrap_or(false);
    if !allow_dup {
        if let Some((id, field)) = find_duplicate(
            &world,
            &location,
            str_field(&body, "email"),
            str_field(&body, "phone"),
            None,
        ) {
            return duplicate_error(&world, &id, field);
        }
    }
    let mut record = new_contact(&mut world, &location);
    apply_input(&mut world, &location, &mut record.data, &body);
    let view = Value::Object(record.data.clone());
    let id = str_field(&record.data, "id").unwrap_or_default().to_owned();
    world.put_contact(id, record);
    reply(StatusCode::CREATED, json!({ "contact": view }))
}

/// `POST /contacts/upsert`: match by email, then phone (the location's unique identifiers in
/// their default order). When email and phone match different contacts, the email match is
/// updated and the phone is ignored (GHL issue #37).
pub(crate) async fn upsert(
    State(sb): State<Sandbox>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    let mut body = match parse_object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let errors = validate(Dto::UpsertContact, &body);
    if !errors.is_empty() {
        return unprocessable(errors);
    }
    let location = match body_location(&caller, &body) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let email = str_field(&body, "email").map(str::to_owned);
    let phone = str_field(&body, "phone").map(str::to_owned);
    if email.is_none() && phone.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "Pass at least one of number, email query parameter",
        );
    }
    let mut world = sb.world();
    if let Err(r) = check_assignee(&world, &location, &body) {
        return r;
    }
    let allow_dup = world
        .allow_duplicates
        .get(&location)
        .copied()
        .unwrap_or(false);
    let force_new = allow_dup
        && body
            .get("createNewIfDuplicateAllowed")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    let by_email = find_duplicate(&world, &location, email.as_deref(), None, None);
    let by_phone = find_duplicate(&world, &location, None, phone.as_deref(), None);
    let target = if force_new {
        None
    } else {
        by_email.clone().or(by_phone.clone()).map(|(id, _)| id)
    };
    if let (Some((a, _)), Some((b, _))) = (&by_email, &by_phone) {
        if a != b && !force_new {
            body.remove("phone");
        }
    }
    let (is_new, view) = match target {
        Some(id) => {
            let Some(mut record) = world.take_contact(&id) else {
                return error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
            };
            apply_input(&mut world, &location, &mut record.data, &body);
            let view = Value::Object(record.data.clone());
            world.put_contact(id, record);
            (false, view)
        }
        None => {
            let mut record = new_contact(&mut world, &location);
            apply_input(&mut world, &location, &mut record.data, &body);
            let view = Value::Object(record.data.clone());
            let id = str_field(&record.data, "id").unwrap_or_default().to_owned();
            world.put_contact(id, record);
            (true, view)
        }
    };
    reply(
        StatusCode::OK,
        json!({"new": is_new, "succeded": true, "succeeded": true, "contact": view}),
    )
}

/// `GET /contacts/{contactId}`.
pub(crate) async fn get_one(
    State(sb): State<Sandbox>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let mut world = sb.world();
    match contact_mut(&mut world, &caller, &id) {
        Ok(r) => reply(
            StatusCode::OK,
            json!({"contact": Value::Object(r.data.clone())}),
        ),
        Err(r) => r,
    }
}

/// `PUT /contacts/{contactId}`.
pub(crate) async fn update(
    State(sb): State<Sandbox>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match checked_body(Dto::UpdateContact, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut world = sb.world();
    let location = match contact_mut(&mut world, &caller, &id) {
        Ok(r) => str_field(&r.data, "locationId")
            .unwrap_or_default()
            .to_owned(),
        Err(r) => return r,
    };
    if let Err(r) = check_assignee(&world, &location, &body) {
        return r;
    }
    if !world
        .allow_duplicates
        .get(&location)
        .copied()
        .unwrap_or(false)
    {
        if let Some((dup, field)) = find_duplicate(
            &world,
            &location,
            str_field(&body, "email"),
            str_field(&body, "phone"),
            Some(&id),
        ) {
            return duplicate_error(&world, &dup, field);
        }
    }
    let Some(mut record) = world.take_contact(&id) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
    };
    apply_input(&mut world, &location, &mut record.data, &body);
    let view = Value::Object(record.data.clone());
    world.put_contact(id, record);
    reply(
        StatusCode::OK,
        json!({"succeded": true, "succeeded": true, "contact": view}),
    )
}

/// `DELETE /contacts/{contactId}` (its tasks and notes go with it).
pub(crate) async fn delete(
    State(sb): State<Sandbox>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let mut world = sb.world();
    if let Err(r) = contact_mut(&mut world, &caller, &id) {
        return r;
    }
    world.take_contact(&id);
    world
        .tasks
        .retain(|_, t| t.data.get("contactId").and_then(Value::as_str) != Some(id.as_str()));
    world
        .notes
        .retain(|_, n| n.data.get("contactId").and_then(Value::as_str) != Some(id.as_str()));
    reply(StatusCode::OK, json!({"succeded": true, "succeeded": true}))
}
