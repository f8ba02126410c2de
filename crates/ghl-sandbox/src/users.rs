//! The location's users (the Users API's `UserSchema`): seeded by tests with
//! `POST /_sandbox/users`, read with `GET /users/?locationId=` and `GET /users/{userId}`, and
//! the judge of `assignedTo` on contacts and tasks.
//!
//! Behaviour chosen where the specs say nothing: an `assignedTo` naming no user of the
//! location is refused with 400 `{"statusCode":400,"message":"…"}` (a NestJS
//! `BadRequestException`, as GHL answers other unknown ids); a location with no seeded user
//! accepts any id, so tests that do not care about owners need not seed any.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use serde_json::{json, Map, Value};

use super::contacts::query_location;
use super::gate::Caller;
use super::world::{error, new_id, reply, Sandbox, World};

/// The locations a stored user belongs to (`roles.locationIds`).
fn locations_of(user: &Value) -> Vec<&str> {
    user.pointer("/roles/locationIds")
        .and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn users_of<'w>(world: &'w World, location: &str) -> impl Iterator<Item = &'w Value> + 'w {
    let location = location.to_owned();
    world
        .users
        .iter()
        .filter(move |u| locations_of(u).contains(&location.as_str()))
}

/// Refuses a body whose `assignedTo` names no user of `location` (when it has users).
pub(crate) fn check_assignee(
    world: &World,
    location: &str,
    body: &Map<String, Value>,
) -> Result<(), Response> {
    let Some(id) = body.get("assignedTo").and_then(Value::as_str) else {
        return Ok(());
    };
    let mut users = users_of(world, location).peekable();
    if users.peek().is_none() || users.any(|u| u.get("id").and_then(Value::as_str) == Some(id)) {
        return Ok(());
    }
    Err(error(
        StatusCode::BAD_REQUEST,
        format!("assignedTo: user {id} not found in location {location}"),
    ))
}

impl Sandbox {
    /// Adds a user of `location` (`UserSchema` shape, role `user`); returns its id. `user` may
    /// carry `id`, `firstName`, `lastName`, `email`.
    pub fn add_user(&self, location: &str, user: Value) -> String {
        let mut user = match user {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let id = user
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(new_id);
        let name = ["firstName", "lastName"]
            .iter()
            .filter_map(|k| user.get(*k).and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        user.insert("id".into(), json!(id));
        user.entry("name").or_insert(json!(name));
        user.insert(
            "roles".into(),
            json!({"type": "account", "role": "user", "locationIds": [location],
                   "restrictSubAccount": false}),
        );
        user.insert("deleted".into(), json!(false));
        self.world().users.push(Value::Object(user));
        id
    }
}

/// `GET /users/?locationId=`: `{users: [UserSchema]}`.
pub(crate) async fn by_location(
    State(sb): State<Sandbox>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let location = match query_location(&caller, &q) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let world = sb.world();
    let users: Vec<Value> = users_of(&world, &location).cloned().collect();
    reply(StatusCode::OK, json!({ "users": users }))
}

/// `GET /users/{userId}`: the user (`UserSuccessfulResponseDto`, flat), if the token may use
/// one of its locations.
pub(crate) async fn get_one(
    State(sb): State<Sandbox>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let world = sb.world();
    let found = world.users.iter().find(|u| {
        u.get("id").and_then(Value::as_str) == Some(id.as_str())
            && locations_of(u).iter().any(|l| caller.may_use(l))
    });
    match found {
        Some(user) => reply(StatusCode::OK, user.clone()),
        None => error(
            StatusCode::BAD_REQUEST,
            format!("User with id {id} not found"),
        ),
    }
}

/// `POST /_sandbox/users` with `{locationId, id?, firstName?, lastName?, email?}`: `{id}`.
pub(crate) async fn seed(State(sb): State<Sandbox>, Json(body): Json<Value>) -> Response {
    let location = body
        .get("locationId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if location.is_empty() {
        return error(StatusCode::BAD_REQUEST, "locationId is required");
    }
    let mut user = body;
    if let Value::Object(m) = &mut user {
        m.remove("locationId");
    }
    let id = sb.add_user(&location, user);
    reply(StatusCode::CREATED, json!({ "id": id }))
}
