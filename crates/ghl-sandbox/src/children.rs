//! Sandbox handlers for what hangs off a contact: tasks, notes, tags and appointments.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Map, Value};

use super::contacts::{contact_mut, normalize_tags};
use super::gate::Caller;
use super::users::check_assignee;
use super::validate::{normalize_due_date, validate, Dto};
use super::world::checked_body;
use super::world::{
    error, new_id, now_iso, parse_object, reply, unprocessable, Record, Sandbox, World,
};

/// Which child collection.
#[derive(Clone, Copy)]
enum Kind {
    Task,
    Note,
}

impl Kind {
    fn map(self, world: &mut World) -> &mut std::collections::HashMap<String, Record> {
        match self {
            Kind::Task => &mut world.tasks,
            Kind::Note => &mut world.notes,
        }
    }
    fn label(self) -> &'static str {
        match self {
            Kind::Task => "Task",
            Kind::Note => "Note",
        }
    }
    fn singular(self) -> &'static str {
        match self {
            Kind::Task => "task",
            Kind::Note => "note",
        }
    }
    fn plural(self) -> &'static str {
        match self {
            Kind::Task => "tasks",
            Kind::Note => "notes",
        }
    }
}

fn child_of(world: &World, kind: Kind, contact_id: &str, id: &str) -> bool {
    let map = match kind {
        Kind::Task => &world.tasks,
        Kind::Note => &world.notes,
    };
    map.get(id)
        .is_some_and(|r| r.data.get("contactId").and_then(Value::as_str) == Some(contact_id))
}

fn not_found(kind: Kind, id: &str) -> Response {
    // Reference: GHL answers 400 for unknown ids; the exact task/note text is inferred.
    error(
        StatusCode::BAD_REQUEST,
        format!("{} with id {id} not found", kind.label()),
    )
}

/// Applies a validated task or note body.
fn apply(
    kind: Kind,
    data: &mut Map<String, Value>,
    body: &Map<String, Value>,
) -> Result<(), Response> {
    for (k, v) in body {
        let v = match (kind, k.as_str(), v) {
            (Kind::Task, "dueDate", Value::String(s)) => match normalize_due_date(s) {
                Some(d) => json!(d),
                None => {
                    return Err(unprocessable(vec![
                        "dueDate must be a valid ISO 8601 date string".into(),
                    ]))
                }
            },
            _ => v.clone(),
        };
        data.insert(k.clone(), v);
    }
    if let (Kind::Note, Some(b)) = (kind, data.get("body").and_then(Value::as_str)) {
        let text = strip_html(b);
        data.insert("bodyText".into(), json!(text));
    }
    Ok(())
}

/// The contact checked against the caller (as [`contact_mut`]), and the body's `assignedTo`
/// against the contact's location's users.
fn assignee_checked(
    world: &mut World,
    caller: &Caller,
    contact_id: &str,
    body: &Map<String, Value>,
) -> Result<(), Response> {
    let contact = contact_mut(world, caller, contact_id)?;
    let location = contact
        .data
        .get("locationId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    check_assignee(world, &location, body)
}

fn strip_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

async fn list(sb: Sandbox, caller: Caller, kind: Kind, contact_id: String) -> Response {
    let mut world = sb.world();
    if let Err(r) = contact_mut(&mut world, &caller, &contact_id) {
        return r;
    }
    let items: Vec<Value> = World::sorted(kind.map(&mut world))
        .into_iter()
        .filter(|r| r.data.get("contactId").and_then(Value::as_str) == Some(contact_id.as_str()))
        .map(|r| Value::Object(r.data.clone()))
        .collect();
    reply(StatusCode::OK, json!({ kind.plural(): items }))
}

async fn get_one(
    sb: Sandbox,
    caller: Caller,
    kind: Kind,
    contact_id: String,
    id: String,
) -> Response {
    let mut world = sb.world();
    if let Err(r) = contact_mut(&mut world, &caller, &contact_id) {
        return r;
    }
    if !child_of(&world, kind, &contact_id, &id) {
        return not_found(kind, &id);
    }
    let data = kind
        .map(&mut world)
        .get(&id)
        .map(|r| Value::Object(r.data.clone()));
    reply(StatusCode::OK, json!({ kind.singular(): data }))
}

async fn create(
    sb: Sandbox,
    caller: Caller,
    kind: Kind,
    contact_id: String,
    body: Bytes,
) -> Response {
    let body = match parse_object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let dto = match kind {
        Kind::Task => Dto::CreateTask,
        Kind::Note => Dto::CreateNote,
    };
    let errors = validate(dto, &body);
    if !errors.is_empty() {
        return unprocessable(errors);
    }
    let mut world = sb.world();
    if let Err(r) = assignee_checked(&mut world, &caller, &contact_id, &body) {
        return r;
    }
    let id = new_id();
    let mut data = match kind {
        Kind::Task => json!({"id": id, "contactId": contact_id}),
        Kind::Note => json!({"id": id, "contactId": contact_id, "userId": null,
                             "dateAdded": now_iso(), "pinned": false, "relations": []}),
    }
    .as_object()
    .cloned()
    .unwrap_or_default();
    if let Err(r) = apply(kind, &mut data, &body) {
        return r;
    }
    let view = Value::Object(data.clone());
    let seq = world.next_seq();
    kind.map(&mut world).insert(id, Record { seq, data });
    reply(StatusCode::CREATED, json!({ kind.singular(): view }))
}

async fn update(
    sb: Sandbox,
    caller: Caller,
    kind: Kind,
    dto: Dto,
    contact_id: String,
    id: String,
    body: Bytes,
) -> Response {
    let body = match checked_body(dto, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut world = sb.world();
    if let Err(r) = assignee_checked(&mut world, &caller, &contact_id, &body) {
        return r;
    }
    if !child_of(&world, kind, &contact_id, &id) {
        return not_found(kind, &id);
    }
    let Some(record) = kind.map(&mut world).get_mut(&id) else {
        return not_found(kind, &id);
    };
    if let Err(r) = apply(kind, &mut record.data, &body) {
        return r;
    }
    reply(
        StatusCode::OK,
        json!({ kind.singular(): Value::Object(record.data.clone()) }),
    )
}

async fn delete(
    sb: Sandbox,
    caller: Caller,
    kind: Kind,
    contact_id: String,
    id: String,
) -> Response {
    let mut world = sb.world();
    if let Err(r) = contact_mut(&mut world, &caller, &contact_id) {
        return r;
    }
    if !child_of(&world, kind, &contact_id, &id) {
        return not_found(kind, &id);
    }
    kind.map(&mut world).remove(&id);
    reply(StatusCode::OK, json!({"succeded": true, "succeeded": true}))
}

type Ctx = (State<Sandbox>, Extension<Caller>);

/// `GET /contacts/{contactId}/tasks`.
pub(crate) async fn list_tasks(
    (State(sb), Extension(c)): Ctx,
    Path(cid): Path<String>,
) -> Response {
    list(sb, c, Kind::Task, cid).await
}
/// `GET /contacts/{contactId}/notes`.
pub(crate) async fn list_notes(
    (State(sb), Extension(c)): Ctx,
    Path(cid): Path<String>,
) -> Response {
    list(sb, c, Kind::Note, cid).await
}
/// `GET /contacts/{contactId}/tasks/{taskId}`.
pub(crate) async fn get_task(
    (State(sb), Extension(c)): Ctx,
    Path((cid, id)): Path<(String, String)>,
) -> Response {
    get_one(sb, c, Kind::Task, cid, id).await
}
/// `GET /contacts/{contactId}/notes/{id}`.
pub(crate) async fn get_note(
    (State(sb), Extension(c)): Ctx,
    Path((cid, id)): Path<(String, String)>,
) -> Response {
    get_one(sb, c, Kind::Note, cid, id).await
}
/// `POST /contacts/{contactId}/tasks`.
pub(crate) async fn create_task(
    (State(sb), Extension(c)): Ctx,
    Path(cid): Path<String>,
    body: Bytes,
) -> Response {
    create(sb, c, Kind::Task, cid, body).await
}
/// `POST /contacts/{contactId}/notes`.
pub(crate) async fn create_note(
    (State(sb), Extension(c)): Ctx,
    Path(cid): Path<String>,
    body: Bytes,
) -> Response {
    create(sb, c, Kind::Note, cid, body).await
}
/// `PUT /contacts/{contactId}/tasks/{taskId}`.
pub(crate) async fn update_task(
    (State(sb), Extension(c)): Ctx,
    Path((cid, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    update(sb, c, Kind::Task, Dto::UpdateTask, cid, id, body).await
}
/// `PUT /contacts/{contactId}/tasks/{taskId}/completed`.
pub(crate) async fn complete_task(
    (State(sb), Extension(c)): Ctx,
    Path((cid, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    update(sb, c, Kind::Task, Dto::TaskCompleted, cid, id, body).await
}
/// `PUT /contacts/{contactId}/notes/{id}`.
pub(crate) async fn update_note(
    (State(sb), Extension(c)): Ctx,
    Path((cid, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    update(sb, c, Kind::Note, Dto::UpdateNote, cid, id, body).await
}
/// `DELETE /contacts/{contactId}/tasks/{taskId}`.
pub(crate) async fn delete_task(
    (State(sb), Extension(c)): Ctx,
    Path((cid, id)): Path<(String, String)>,
) -> Response {
    delete(sb, c, Kind::Task, cid, id).await
}
/// `DELETE /contacts/{contactId}/notes/{id}`.
pub(crate) async fn delete_note(
    (State(sb), Extension(c)): Ctx,
    Path((cid, id)): Path<(String, String)>,
) -> Response {
    delete(sb, c, Kind::Note, cid, id).await
}

async fn change_tags(
    sb: Sandbox,
    caller: Caller,
    contact_id: String,
    body: Bytes,
    add: bool,
) -> Response {
    let body = match checked_body(Dto::Tags, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let wanted = normalize_tags(
        body.get("tags")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default(),
    );
    let mut world = sb.world();
    let record = match contact_mut(&mut world, &caller, &contact_id) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mut tags: Vec<String> = record
        .data
        .get("tags")
        .map_or_else(Vec::new, crate::strings);
    let mut delta = Vec::new();
    for t in wanted {
        if add && !tags.contains(&t) {
            tags.push(t.clone());
            delta.push(t);
        } else if !add && tags.contains(&t) {
            tags.retain(|x| x != &t);
            delta.push(t);
        }
    }
    record.data.insert("tags".into(), json!(tags));
    record.data.insert("dateUpdated".into(), json!(now_iso()));
    // The recorded deltas were empty even when tags changed; we report the real delta.
    if add {
        reply(
            StatusCode::CREATED,
            json!({"tags": tags, "tagsAdded": delta}),
        )
    } else {
        reply(StatusCode::OK, json!({"tags": tags, "tagsRemoved": delta}))
    }
}

/// `POST /contacts/{contactId}/tags`.
pub(crate) async fn add_tags(
    (State(sb), Extension(c)): Ctx,
    Path(cid): Path<String>,
    body: Bytes,
) -> Response {
    change_tags(sb, c, cid, body, true).await
}
/// `DELETE /contacts/{contactId}/tags` (JSON body).
pub(crate) async fn remove_tags(
    (State(sb), Extension(c)): Ctx,
    Path(cid): Path<String>,
    body: Bytes,
) -> Response {
    change_tags(sb, c, cid, body, false).await
}

/// `GET /contacts/{contactId}/appointments` (appointments are booked through the Calendars
/// routes or seeded with `POST /_sandbox/appointments`), in `GetEventSchema`'s shape.
pub(crate) async fn appointments(
    (State(sb), Extension(c)): Ctx,
    Path(cid): Path<String>,
) -> Response {
    let mut world = sb.world();
    if let Err(r) = contact_mut(&mut world, &c, &cid) {
        return r;
    }
    let events: Vec<Value> = world
        .appointments
        .iter()
        .filter(|a| a.get("contactId").and_then(Value::as_str) == Some(cid.as_str()))
        .map(super::calendars::listed)
        .collect();
    reply(StatusCode::OK, json!({"events": events}))
}
