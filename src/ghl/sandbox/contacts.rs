//! Sandbox handlers for contact records: create, upsert (GHL's duplicate rules), get, update,
//! delete, the deprecated list, search, duplicate lookup and business membership.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

use super::gate::Caller;
use super::validate::{validate, Dto};
use super::world::{
    error, forbidden_location, millis, new_id, now_iso, parse_object, reply, unprocessable, Record,
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
    "dndSettings",
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

/// Digits of a phone number, for matching `+1 555-010-0001` with `+15550100001`.
fn phone_key(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

fn str_field<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
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
    let candidates: Vec<&Record> = World::sorted(&world.contacts)
        .into_iter()
        .filter(|r| str_field(&r.data, "locationId") == Some(location))
        .filter(|r| str_field(&r.data, "id") != exclude)
        .collect();
    if let Some(email) = email {
        let email = email.to_lowercase();
        if let Some(r) = candidates
            .iter()
            .find(|r| str_field(&r.data, "emailLowerCase") == Some(email.as_str()))
        {
            return str_field(&r.data, "id").map(|id| (id.to_owned(), "email"));
        }
    }
    if let Some(phone) = phone.map(phone_key).filter(|p| !p.is_empty()) {
        if let Some(r) = candidates
            .iter()
            .find(|r| str_field(&r.data, "phone").map(phone_key) == Some(phone.clone()))
        {
            return str_field(&r.data, "id").map(|id| (id.to_owned(), "phone"));
        }
    }
    None
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

fn body_location(caller: &Caller, body: &Map<String, Value>) -> Result<String, Response> {
    let loc = str_field(body, "locationId").unwrap_or_default();
    if caller.may_use(loc) {
        Ok(loc.to_owned())
    } else {
        Err(forbidden_location())
    }
}

fn query_location(caller: &Caller, q: &HashMap<String, String>) -> Result<String, Response> {
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
    let body = match parse_object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let errors = validate(Dto::CreateContact, &body);
    if !errors.is_empty() {
        return unprocessable(errors);
    }
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
    world.contacts.insert(id, record);
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
            let Some(mut record) = world.contacts.remove(&id) else {
                return error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
            };
            apply_input(&mut world, &location, &mut record.data, &body);
            let view = Value::Object(record.data.clone());
            world.contacts.insert(id, record);
            (false, view)
        }
        None => {
            let mut record = new_contact(&mut world, &location);
            apply_input(&mut world, &location, &mut record.data, &body);
            let view = Value::Object(record.data.clone());
            let id = str_field(&record.data, "id").unwrap_or_default().to_owned();
            world.contacts.insert(id, record);
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
    let body = match parse_object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let errors = validate(Dto::UpdateContact, &body);
    if !errors.is_empty() {
        return unprocessable(errors);
    }
    let mut world = sb.world();
    let location = match contact_mut(&mut world, &caller, &id) {
        Ok(r) => str_field(&r.data, "locationId")
            .unwrap_or_default()
            .to_owned(),
        Err(r) => return r,
    };
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
    let Some(mut record) = world.contacts.remove(&id) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
    };
    apply_input(&mut world, &location, &mut record.data, &body);
    let view = Value::Object(record.data.clone());
    world.contacts.insert(id, record);
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
    world.contacts.remove(&id);
    world
        .tasks
        .retain(|_, t| t.data.get("contactId").and_then(Value::as_str) != Some(id.as_str()));
    world
        .notes
        .retain(|_, n| n.data.get("contactId").and_then(Value::as_str) != Some(id.as_str()));
    reply(StatusCode::OK, json!({"succeded": true, "succeeded": true}))
}

fn matches_query(c: &Map<String, Value>, q: Option<&str>) -> bool {
    let Some(q) = q.map(str::to_lowercase).filter(|q| !q.is_empty()) else {
        return true;
    };
    [
        "fullNameLowerCase",
        "emailLowerCase",
        "phone",
        "companyName",
        "name",
    ]
    .iter()
    .filter_map(|k| c.get(*k).and_then(Value::as_str))
    .any(|v| v.to_lowercase().contains(&q))
}

fn location_contacts<'w>(world: &'w World, location: &str) -> Vec<&'w Map<String, Value>> {
    World::sorted(&world.contacts)
        .into_iter()
        .map(|r| &r.data)
        .filter(|c| str_field(c, "locationId") == Some(location))
        .collect()
}

/// Deprecated `GET /contacts/?locationId=&query=&limit=&startAfterId=&startAfter=`.
pub(crate) async fn list(
    State(sb): State<Sandbox>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let location = match query_location(&caller, &q) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 20,
        Some(Ok(l)) if (1..=100).contains(&l) => l,
        Some(_) => return unprocessable(vec!["limit must not be greater than 100".into()]),
    };
    let world = sb.world();
    let all: Vec<&Map<String, Value>> = location_contacts(&world, &location)
        .into_iter()
        .filter(|c| matches_query(c, q.get("query").map(String::as_str)))
        .collect();
    let start = match q.get("startAfterId") {
        Some(after) => all
            .iter()
            .position(|c| str_field(c, "id") == Some(after.as_str()))
            .map_or(all.len(), |p| p + 1),
        None => 0,
    };
    let page: Vec<Value> = all
        .iter()
        .skip(start)
        .take(limit)
        .map(|c| Value::Object((*c).clone()))
        .collect();
    let last = page.last();
    let last_id = last
        .and_then(|c| c.get("id"))
        .cloned()
        .unwrap_or(Value::Null);
    let last_ms = last
        .and_then(|c| c.get("dateAdded"))
        .and_then(Value::as_str)
        .map(millis);
    let current = start / limit + 1;
    let has_next = start + page.len() < all.len();
    reply(
        StatusCode::OK,
        json!({
            "contacts": page,
            "meta": {
                "total": all.len(),
                "nextPageUrl": if has_next {
                    json!(format!("/contacts/?locationId={location}&startAfter={}&startAfterId={}", last_ms.unwrap_or(0), last_id.as_str().unwrap_or_default()))
                } else { Value::Null },
                "startAfterId": last_id,
                "startAfter": last_ms,
                "currentPage": current,
                "nextPage": if has_next { json!(current + 1) } else { Value::Null },
                "prevPage": if current > 1 { json!(current - 1) } else { Value::Null },
            }
        }),
    )
}

/// The flatter, null-filled shape of search results (reference §2.7).
fn search_view(c: &Map<String, Value>) -> Value {
    let get = |k: &str| c.get(k).cloned().unwrap_or(Value::Null);
    let date_added = c
        .get("dateAdded")
        .and_then(Value::as_str)
        .unwrap_or_default();
    json!({
        "id": get("id"), "locationId": get("locationId"), "contactName": get("fullNameLowerCase"),
        "firstName": get("firstName"), "lastName": get("lastName"), "companyName": get("companyName"),
        "businessName": Value::Null, "email": get("email"), "phone": get("phone"), "phoneLabel": Value::Null,
        "address": get("address1"), "city": get("city"), "state": get("state"), "postalCode": get("postalCode"),
        "country": get("country"), "website": get("website"), "timezone": get("timezone"),
        "dnd": c.get("dnd").cloned().unwrap_or(json!(false)), "dndSettings": c.get("dndSettings").cloned().unwrap_or(json!({})),
        "source": get("source"), "type": get("type"), "assignedTo": get("assignedTo"), "businessId": get("businessId"),
        "tags": get("tags"), "customFields": get("customFields"), "followers": get("followers"),
        "additionalEmails": get("additionalEmails"), "additionalPhones": get("additionalPhones"),
        "dateAdded": get("dateAdded"), "dateUpdated": get("dateUpdated"), "dateOfBirth": get("dateOfBirth"),
        "opportunities": [],
        "searchAfter": [millis(date_added), get("id")],
    })
}

const SEARCH_FIELDS: &[&str] = &[
    "id",
    "email",
    "phone",
    "firstName",
    "lastName",
    "companyName",
    "source",
    "tags",
    "city",
    "state",
    "country",
    "postalCode",
    "assignedTo",
    "businessId",
    "dnd",
    "type",
    "dateAdded",
    "dateUpdated",
];

fn filter_matches(c: &Map<String, Value>, f: &Value) -> Result<bool, String> {
    if let Some(group) = f.get("filters").and_then(Value::as_array) {
        let or = f.get("group").and_then(Value::as_str) == Some("OR");
        let mut results = Vec::new();
        for sub in group {
            results.push(filter_matches(c, sub)?);
        }
        return Ok(if or {
            results.iter().any(|r| *r)
        } else {
            results.iter().all(|r| *r)
        });
    }
    let field = f.get("field").and_then(Value::as_str).unwrap_or_default();
    if !SEARCH_FIELDS.contains(&field) {
        return Err(format!("Invalid field {field}"));
    }
    let actual = c.get(field);
    let wanted = f.get("value");
    let text = |v: Option<&Value>| {
        v.map(|v| match v {
            Value::String(s) => s.to_lowercase(),
            other => other.to_string().to_lowercase(),
        })
    };
    let contains = || match (actual, text(wanted)) {
        (Some(Value::Array(items)), Some(w)) => {
            items.iter().any(|i| text(Some(i)) == Some(w.clone()))
        }
        (Some(v), Some(w)) => text(Some(v)).is_some_and(|a| a.contains(&w)),
        _ => false,
    };
    let eq = || match (actual, text(wanted)) {
        (Some(Value::Array(items)), Some(w)) => {
            items.iter().any(|i| text(Some(i)) == Some(w.clone()))
        }
        (Some(v), Some(w)) => text(Some(v)) == Some(w),
        _ => false,
    };
    let exists = actual.is_some_and(|v| !v.is_null() && v.as_str() != Some(""));
    match f.get("operator").and_then(Value::as_str).unwrap_or("eq") {
        "eq" => Ok(eq()),
        "not_eq" => Ok(!eq()),
        "contains" => Ok(contains()),
        "not_contains" => Ok(!contains()),
        "exists" => Ok(exists),
        "not_exists" => Ok(!exists),
        other => Err(format!("Invalid operator {other}")),
    }
}

/// `POST /contacts/search`. The index is *not* eventually consistent here: writes are visible
/// at once (real GHL lags up to about a minute).
pub(crate) async fn search(
    State(sb): State<Sandbox>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    let body = match parse_object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let errors = validate(Dto::Search, &body);
    if !errors.is_empty() {
        return unprocessable(errors);
    }
    let location = match body_location(&caller, &body) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let page_limit = body.get("pageLimit").and_then(Value::as_u64).unwrap_or(20) as usize;
    let page = body.get("page").and_then(Value::as_u64).unwrap_or(1).max(1) as usize;
    let filters = body
        .get("filters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let world = sb.world();
    let mut hits = Vec::new();
    for c in location_contacts(&world, &location) {
        if !matches_query(c, str_field(&body, "query")) {
            continue;
        }
        let mut keep = true;
        for f in &filters {
            match filter_matches(c, f) {
                Ok(true) => {}
                Ok(false) => keep = false,
                Err(message) => return error(StatusCode::BAD_REQUEST, message),
            }
        }
        if keep {
            hits.push(search_view(c));
        }
    }
    let total = hits.len();
    let skip = match body.get("searchAfter").and_then(Value::as_array) {
        Some(cursor) => hits
            .iter()
            .position(|h| h.get("searchAfter").and_then(Value::as_array) == Some(cursor))
            .map_or(total, |p| p + 1),
        None => (page - 1) * page_limit,
    };
    let contacts: Vec<Value> = hits.into_iter().skip(skip).take(page_limit).collect();
    reply(
        StatusCode::OK,
        json!({"contacts": contacts, "total": total}),
    )
}

/// `GET /contacts/search/duplicate?locationId=&email=&number=`.
pub(crate) async fn duplicate(
    State(sb): State<Sandbox>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let location = match query_location(&caller, &q) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let email = q.get("email").map(String::as_str).filter(|s| !s.is_empty());
    let number = q
        .get("number")
        .map(String::as_str)
        .filter(|s| !s.is_empty());
    if email.is_none() && number.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "Pass at least one of number, email query parameter",
        );
    }
    let world = sb.world();
    let found = find_duplicate(&world, &location, email, number, None)
        .and_then(|(id, _)| world.contacts.get(&id))
        .map(|r| Value::Object(r.data.clone()));
    reply(
        StatusCode::OK,
        json!({"contact": found, "matchingField": if found.is_some() { json!("contactId") } else { Value::Null }}),
    )
}

/// `GET /contacts/business/{businessId}?locationId=&limit=&skip=&query=`.
pub(crate) async fn by_business(
    State(sb): State<Sandbox>,
    Extension(caller): Extension<Caller>,
    Path(business_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let location = match query_location(&caller, &q) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let number = |k: &str, default: usize| -> Result<usize, Response> {
        match q.get(k) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| unprocessable(vec![format!("{k} must be a number string")])),
        }
    };
    let (limit, skip) = match (number("limit", 25), number("skip", 0)) {
        (Ok(l), Ok(s)) => (l, s),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let world = sb.world();
    let hits: Vec<Value> = location_contacts(&world, &location)
        .into_iter()
        .filter(|c| str_field(c, "businessId") == Some(business_id.as_str()))
        .filter(|c| matches_query(c, q.get("query").map(String::as_str)))
        .map(|c| Value::Object(c.clone()))
        .collect();
    let count = hits.len();
    let contacts: Vec<Value> = hits.into_iter().skip(skip).take(limit).collect();
    reply(
        StatusCode::OK,
        json!({"contacts": contacts, "count": count}),
    )
}

/// `POST /contacts/bulk/business`: `{locationId, ids, businessId | null}`.
pub(crate) async fn bulk_business(
    State(sb): State<Sandbox>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    let body = match parse_object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let errors = validate(Dto::BulkBusiness, &body);
    if !errors.is_empty() {
        return unprocessable(errors);
    }
    let location = match body_location(&caller, &body) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let business = body.get("businessId").cloned().unwrap_or(Value::Null);
    let ids: Vec<String> = body
        .get("ids")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mut world = sb.world();
    let mut done = Vec::new();
    for id in &ids {
        if let Some(r) = world.contacts.get_mut(id) {
            if str_field(&r.data, "locationId") == Some(location.as_str()) {
                if business.is_null() {
                    r.data.remove("businessId");
                } else {
                    r.data.insert("businessId".into(), business.clone());
                }
                done.push(id.clone());
            }
        }
    }
    reply(StatusCode::OK, json!({"success": true, "ids": done}))
}
