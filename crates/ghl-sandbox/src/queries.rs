//! Sandbox handlers that read many contacts: the deprecated list, search, duplicate lookup, and
//! business membership.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

use super::contacts::{body_location, find_duplicate, query_location, str_field};
use super::gate::Caller;
use super::validate::Dto;
use super::world::checked_body;
use super::world::{error, millis, reply, unprocessable, Sandbox, World};

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
    let body = match checked_body(Dto::Search, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
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
    let body = match checked_body(Dto::BulkBusiness, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let location = match body_location(&caller, &body) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let business = body.get("businessId").cloned().unwrap_or(Value::Null);
    let ids: Vec<String> = body.get("ids").map_or_else(Vec::new, crate::strings);
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
