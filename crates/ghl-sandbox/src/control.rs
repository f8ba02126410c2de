//! The sandbox's own endpoints: `/oauth/token` (rotating refresh tokens), and the test control
//! surface under `/_sandbox/` (state, reset, faults, seeding), with its typed views.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::world::{error, new_id, reply, FaultSpec, Grant, LogEntry, Sandbox, World};

/// Everything the sandbox holds, as `GET /_sandbox/state` returns it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SandboxState {
    /// Contacts in creation order, in GHL's shape (tags included).
    pub contacts: Vec<Value>,
    /// Tasks in creation order.
    pub tasks: Vec<Value>,
    /// Notes in creation order.
    pub notes: Vec<Value>,
    /// Opportunities in creation order.
    pub opportunities: Vec<Value>,
    /// Every API request, oldest first.
    pub requests: Vec<LogEntry>,
    /// Calls to `/oauth/token` with `grant_type=refresh_token` (successful or not).
    pub refresh_calls: u64,
    /// The currently valid refresh tokens.
    pub refresh_tokens: Vec<String>,
    /// The faults still armed.
    pub faults: FaultSpec,
    /// Appointments in booking order, as stored (`CalendarEventDTO`'s properties, with
    /// `description`).
    #[serde(default)]
    pub appointments: Vec<Value>,
}

impl SandboxState {
    /// Reads the state of a sandbox over HTTP (for tests that run it out of process).
    pub async fn fetch(base_url: &url::Url) -> Result<Self, reqwest::Error> {
        let url = base_url
            .join("/_sandbox/state")
            .unwrap_or_else(|_| base_url.clone());
        reqwest::get(url).await?.error_for_status()?.json().await
    }

    /// The contact with this email (case-insensitive).
    pub fn contact_by_email(&self, email: &str) -> Option<&Value> {
        let email = email.to_lowercase();
        self.contacts
            .iter()
            .find(|c| c.get("emailLowerCase").and_then(Value::as_str) == Some(email.as_str()))
    }

    /// The tags of a contact.
    pub fn tags_of(&self, contact_id: &str) -> Vec<String> {
        self.contacts
            .iter()
            .find(|c| c.get("id").and_then(Value::as_str) == Some(contact_id))
            .and_then(|c| c.get("tags"))
            .map_or_else(Vec::new, crate::strings)
    }

    /// The tasks of a contact.
    pub fn tasks_of(&self, contact_id: &str) -> Vec<&Value> {
        of_contact(&self.tasks, contact_id)
    }

    /// The notes of a contact.
    pub fn notes_of(&self, contact_id: &str) -> Vec<&Value> {
        of_contact(&self.notes, contact_id)
    }

    /// The opportunities of a contact.
    pub fn opportunities_of(&self, contact_id: &str) -> Vec<&Value> {
        of_contact(&self.opportunities, contact_id)
    }

    /// The files on a contact's File Upload custom field, as `POST /forms/upload-custom-files`
    /// stored them: each `{meta: {originalname, mimetype, size, sha256, uuid, …}, url}`.
    pub fn files_of(&self, contact_id: &str, custom_field_id: &str) -> Vec<Value> {
        self.contacts
            .iter()
            .find(|c| c.get("id").and_then(Value::as_str) == Some(contact_id))
            .and_then(|c| c.get("customFields"))
            .and_then(Value::as_array)
            .and_then(|fields| {
                fields
                    .iter()
                    .find(|f| f.get("id").and_then(Value::as_str) == Some(custom_field_id))
            })
            .and_then(|f| f.get("value"))
            .and_then(Value::as_object)
            .map(|files| files.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The appointments of a contact.
    pub fn appointments_of(&self, contact_id: &str) -> Vec<&Value> {
        of_contact(&self.appointments, contact_id)
    }

    /// Requests whose method and path match (path compared exactly).
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<&LogEntry> {
        self.requests
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .collect()
    }
}

fn of_contact<'a>(items: &'a [Value], contact_id: &str) -> Vec<&'a Value> {
    items
        .iter()
        .filter(|i| i.get("contactId").and_then(Value::as_str) == Some(contact_id))
        .collect()
}

impl Sandbox {
    /// A snapshot of the state.
    pub fn state(&self) -> SandboxState {
        let world = self.world();
        let values = |m: &HashMap<String, super::world::Record>| {
            World::sorted(m)
                .into_iter()
                .map(|r| Value::Object(r.data.clone()))
                .collect::<Vec<_>>()
        };
        let mut refresh_tokens: Vec<String> = world.refresh_tokens.keys().cloned().collect();
        refresh_tokens.sort();
        SandboxState {
            contacts: values(&world.contacts),
            tasks: values(&world.tasks),
            notes: values(&world.notes),
            opportunities: values(&world.opportunities),
            requests: world.log.clone(),
            refresh_calls: world.refresh_calls,
            refresh_tokens,
            faults: world.faults.clone(),
            appointments: world.appointments.clone(),
        }
    }

    /// How many notes exist: a cheap progress probe for tests that poll (no snapshot copied).
    pub fn note_count(&self) -> usize {
        self.world().notes.len()
    }

    /// Sets faults: fields given in `spec` replace the armed ones.
    pub fn set_faults(&self, spec: FaultSpec) {
        let mut world = self.world();
        if let Some(ms) = spec.rate_limit_for_ms {
            world.storm.until = Some(Instant::now() + Duration::from_millis(ms));
        }
        let f = &mut world.faults;
        macro_rules! merge {
            ($($field:ident),*) => { $( if spec.$field.is_some() { f.$field = spec.$field.clone(); } )* };
        }
        merge!(
            latency_ms,
            fail_next,
            fail_status,
            drop_before_next,
            drop_after_next,
            rate_limit_next,
            rate_limit_for_ms,
            retry_after_secs,
            complete_late_next,
            complete_late_ms,
            match_path
        );
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        let mut world = self.world();
        world.faults = FaultSpec::default();
        world.storm.until = None;
    }

    /// Accepts another access token for `locations`, optionally expiring after `ttl`.
    pub fn add_token(&self, token: &str, locations: &[&str], ttl: Option<Duration>) {
        self.world().access_tokens.insert(
            token.to_owned(),
            Grant {
                locations: locations.iter().map(|l| (*l).to_owned()).collect(),
                expires_at: ttl.map(|t| Instant::now() + t),
            },
        );
    }

    /// Revokes an access token: every request with it is answered 401 from now on (as when the
    /// Private Integration is deleted or its token rotated in GHL), until it is added again.
    /// Whether the token was known.
    pub fn revoke_token(&self, token: &str) -> bool {
        self.world().access_tokens.remove(token).is_some()
    }

    /// Makes `refresh_token` valid for `location`.
    pub fn add_refresh_token(&self, refresh_token: &str, location: &str) {
        self.world()
            .refresh_tokens
            .insert(refresh_token.to_owned(), location.to_owned());
    }

    /// Turns a location's "Allow Duplicate Contact" setting on or off.
    pub fn set_allow_duplicates(&self, location: &str, allow: bool) {
        self.world()
            .allow_duplicates
            .insert(location.to_owned(), allow);
    }

    /// Adds a calendar of `location` (its id, or a new one); returns its id.
    pub fn add_calendar(&self, location: &str, id: Option<&str>) -> String {
        let id = id.map_or_else(new_id, str::to_owned);
        self.world()
            .calendars
            .insert(id.clone(), location.to_owned());
        id
    }

    /// Adds an appointment (`GetEventSchema` shape; must carry `contactId`); returns its id.
    pub fn add_appointment(&self, mut event: Value) -> String {
        let id = event
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(new_id);
        if let Value::Object(m) = &mut event {
            m.insert("id".into(), json!(id));
        }
        self.world().appointments.push(event);
        id
    }
}

/// `GET /_sandbox/state`.
pub(crate) async fn get_state(State(sb): State<Sandbox>) -> Json<SandboxState> {
    Json(sb.state())
}

/// `POST /_sandbox/reset`.
pub(crate) async fn reset(State(sb): State<Sandbox>) -> StatusCode {
    sb.reset();
    StatusCode::NO_CONTENT
}

/// `POST /_sandbox/faults` with a [`FaultSpec`].
pub(crate) async fn set_faults(
    State(sb): State<Sandbox>,
    Json(spec): Json<FaultSpec>,
) -> StatusCode {
    sb.set_faults(spec);
    StatusCode::NO_CONTENT
}

/// `DELETE /_sandbox/faults`.
pub(crate) async fn clear_faults(State(sb): State<Sandbox>) -> StatusCode {
    sb.clear_faults();
    StatusCode::NO_CONTENT
}

/// Body of `POST /_sandbox/tokens`.
#[derive(Debug, Deserialize)]
pub(crate) struct NewToken {
    token: String,
    locations: Vec<String>,
    #[serde(default)]
    expires_in_ms: Option<u64>,
}

/// `POST /_sandbox/tokens`: accept another access token.
pub(crate) async fn add_token(State(sb): State<Sandbox>, Json(t): Json<NewToken>) -> StatusCode {
    let locations: Vec<&str> = t.locations.iter().map(String::as_str).collect();
    sb.add_token(
        &t.token,
        &locations,
        t.expires_in_ms.map(Duration::from_millis),
    );
    StatusCode::NO_CONTENT
}

/// `DELETE /_sandbox/tokens/{token}`: revoke an access token (204, or 404 when unknown).
pub(crate) async fn revoke_token(
    State(sb): State<Sandbox>,
    Path(token): Path<String>,
) -> StatusCode {
    if sb.revoke_token(&token) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

/// Body of `POST /_sandbox/refresh-tokens`.
#[derive(Debug, Deserialize)]
pub(crate) struct NewRefreshToken {
    refresh_token: String,
    location: String,
}

/// `POST /_sandbox/refresh-tokens`: make a refresh token valid.
pub(crate) async fn add_refresh_token(
    State(sb): State<Sandbox>,
    Json(t): Json<NewRefreshToken>,
) -> StatusCode {
    sb.add_refresh_token(&t.refresh_token, &t.location);
    StatusCode::NO_CONTENT
}

/// Body of `POST /_sandbox/locations/{id}/settings`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LocationSettings {
    allow_duplicate_contact: bool,
}

/// `POST /_sandbox/locations/{id}/settings`.
pub(crate) async fn location_settings(
    State(sb): State<Sandbox>,
    Path(id): Path<String>,
    Json(s): Json<LocationSettings>,
) -> StatusCode {
    sb.set_allow_duplicates(&id, s.allow_duplicate_contact);
    StatusCode::NO_CONTENT
}

/// `POST /_sandbox/appointments`: seed an appointment.
pub(crate) async fn add_appointment(
    State(sb): State<Sandbox>,
    Json(event): Json<Value>,
) -> Response {
    let id = sb.add_appointment(event);
    reply(StatusCode::CREATED, json!({"id": id}))
}

/// Body of `POST /_sandbox/calendars`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NewCalendar {
    location_id: String,
    #[serde(default)]
    id: Option<String>,
}

/// `POST /_sandbox/calendars`: add a calendar to a location; answers its id.
pub(crate) async fn add_calendar(
    State(sb): State<Sandbox>,
    Json(c): Json<NewCalendar>,
) -> Response {
    let id = sb.add_calendar(&c.location_id, c.id.as_deref());
    reply(StatusCode::CREATED, json!({"id": id}))
}

fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    reply(
        status,
        json!({"error": code, "error_description": description}),
    )
}

/// `POST /oauth/token` (form-encoded). Only `grant_type=refresh_token` is implemented. Each
/// refresh rotates the refresh token: the old one is invalid at once (no 30 s grace; GHL's
/// grace is only third-party-documented and the client must not need it).
pub(crate) async fn oauth_token(State(sb): State<Sandbox>, body: Bytes) -> Response {
    let form: HashMap<String, String> = match serde_urlencoded::from_bytes(&body) {
        Ok(f) => f,
        Err(_) => return error(StatusCode::BAD_REQUEST, "Bad Request"),
    };
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let mut missing = Vec::new();
    for k in ["client_id", "client_secret", "grant_type"] {
        if field(k).is_empty() {
            missing.push(format!("{k} should not be empty"));
        }
    }
    if !missing.is_empty() {
        return error(StatusCode::UNPROCESSABLE_ENTITY, missing);
    }
    let mut world = sb.world();
    if field("grant_type") == "refresh_token" {
        world.refresh_calls += 1;
    }
    if sb
        .config
        .oauth_clients
        .get(field("client_id"))
        .map(String::as_str)
        != Some(field("client_secret"))
    {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        );
    }
    if field("grant_type") != "refresh_token" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Only refresh_token is supported by the sandbox",
        );
    }
    let Some(location) = world.refresh_tokens.remove(field("refresh_token")) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid grant: refresh token is invalid",
        );
    };
    let access = format!("sbx-at-{}", new_id());
    let refresh = format!("sbx-rt-{}", new_id());
    let ttl = sb.config.access_token_ttl;
    world
        .refresh_tokens
        .insert(refresh.clone(), location.clone());
    world.access_tokens.insert(
        access.clone(),
        Grant {
            locations: vec![location.clone()],
            expires_at: Some(Instant::now() + ttl),
        },
    );
    let user_type = if field("user_type").is_empty() {
        "Location"
    } else {
        field("user_type")
    };
    reply(
        StatusCode::OK,
        json!({
            "access_token": access, "token_type": "Bearer", "expires_in": ttl.as_secs(),
            "refresh_token": refresh, "scope": "contacts.readonly contacts.write",
            "userType": user_type, "locationId": location, "companyId": "sbxCompany0000000001",
            "userId": "sbxUser000000000001", "isBulkInstallation": false,
        }),
    )
}
