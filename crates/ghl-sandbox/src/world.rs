//! The sandbox's in-memory world: configuration, stored records, tokens, rate windows, faults,
//! request log, and the small helpers every handler uses (ids, timestamps, GHL error bodies).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::validate::{validate, Dto};

/// Token accepted by the default sandbox configuration.
pub const DEMO_TOKEN: &str = "pit-sandbox-token";
/// Location of [`DEMO_TOKEN`] in the default configuration (20 characters, like GHL ids).
pub const DEMO_LOCATION: &str = "sbxDemoLocation00001";
/// The only `Version` header value the Contacts API accepts.
pub const API_VERSION: &str = "2021-07-28";

/// How the sandbox behaves. `Default` gives GHL's documented limits and one demo token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxConfig {
    /// Accepted access tokens and the locations each may use (the first is its own location).
    pub tokens: BTreeMap<String, Vec<String>>,
    /// Locations whose "Allow Duplicate Contact" setting is on (GHL's default is off).
    pub allow_duplicate_locations: Vec<String>,
    /// Requests per location per window before 429 (GHL: 100).
    pub burst: u32,
    /// The burst window (GHL: 10 s).
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Requests per location per day before 429 (GHL: 200,000).
    pub daily: u32,
    /// How long the daily quota lasts before it resets (GHL: a day). Shorter in tests of a
    /// quota that runs out and comes back.
    #[serde(with = "humantime_serde")]
    pub day: Duration,
    /// OAuth clients: client id → client secret.
    pub oauth_clients: BTreeMap<String, String>,
    /// Valid refresh tokens → their location.
    pub refresh_tokens: BTreeMap<String, String>,
    /// Lifetime of access tokens minted by `/oauth/token` (GHL: 86399 s).
    #[serde(with = "humantime_serde")]
    pub access_token_ttl: Duration,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            tokens: BTreeMap::from([(DEMO_TOKEN.to_owned(), vec![DEMO_LOCATION.to_owned()])]),
            allow_duplicate_locations: Vec::new(),
            burst: 100,
            window: Duration::from_secs(10),
            daily: 200_000,
            day: Duration::from_secs(86_400),
            oauth_clients: BTreeMap::new(),
            refresh_tokens: BTreeMap::new(),
            access_token_ttl: Duration::from_secs(86_399),
        }
    }
}

impl SandboxConfig {
    /// One token for one location, GHL's limits.
    pub fn single(token: &str, location_id: &str) -> Self {
        Self {
            tokens: BTreeMap::from([(token.to_owned(), vec![location_id.to_owned()])]),
            ..Self::default()
        }
    }
}

/// Faults to inject, set with `POST /_sandbox/faults` (fields given replace the current ones).
/// Counted faults apply to API requests (not `/_sandbox/*`) whose path contains `match_path`
/// when it is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultSpec {
    /// Delay added before every API request is handled.
    pub latency_ms: Option<u64>,
    /// Answer the next N requests with `fail_status` (default 500) without applying them.
    pub fail_next: Option<u32>,
    /// Status used by `fail_next`.
    pub fail_status: Option<u16>,
    /// Close the connection without answering, *before* applying, for the next N requests.
    pub drop_before_next: Option<u32>,
    /// Apply the next N requests, then close the connection without answering (what makes
    /// duplicates in real life: the client cannot know the write happened).
    pub drop_after_next: Option<u32>,
    /// Answer 429 to the next N requests.
    pub rate_limit_next: Option<u32>,
    /// Answer 429 to every request for this long from now.
    pub rate_limit_for_ms: Option<u64>,
    /// `Retry-After` seconds on injected 429s (GHL's own 429s send none, as far as recorded).
    pub retry_after_secs: Option<u64>,
    /// Carry out the next N requests late: each waits `complete_late_ms`, then is counted
    /// against its location's rate window and applied, whether or not its client is still
    /// connected (a client that timed out meanwhile never learns of it). What a stalled GHL or
    /// a proxy that holds a request before passing it on does.
    pub complete_late_next: Option<u32>,
    /// How late `complete_late_next` requests are carried out (default 1000 ms).
    pub complete_late_ms: Option<u64>,
    /// Only requests whose path contains this count against (and suffer) the faults.
    pub match_path: Option<String>,
}

/// One line of the request log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Query string, if any.
    pub query: Option<String>,
    /// Status answered; 0 when the connection was dropped.
    pub status: u16,
    /// The location the request was counted against.
    pub location: Option<String>,
    /// `answered`, `dropped_before`, `dropped_after`, or `late` (carried out `complete_late_ms`
    /// after it arrived; answered if its client still waited).
    pub outcome: String,
    /// When it arrived (RFC 3339).
    pub at: String,
    /// The JSON request body, if any.
    pub body: Option<Value>,
    /// The request's `Content-Type` header, if any (`multipart/form-data; boundary=…` for file
    /// uploads, whose bodies are not logged), so a reader knows why `body` is empty.
    #[serde(default)]
    pub content_type: Option<String>,
}

/// An access token grant.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub locations: Vec<String>,
    pub expires_at: Option<Instant>,
}

/// A stored record in insertion order.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub seq: u64,
    pub data: Map<String, Value>,
}

#[derive(Debug, Default)]
pub(crate) struct Storm {
    pub until: Option<Instant>,
}

/// Contacts of one location sharing a lookup value, by insertion order: `seq → id`.
type Holders = BTreeMap<u64, String>;
/// `(location, value)`: a lower-case email or a phone's digits.
type LookupKey = (String, String);

/// Lookup of contacts by `(location, lower-case email)` and `(location, phone digits)`, so
/// duplicate checks cost the same with ten or a million stored contacts.
#[derive(Debug, Default)]
pub(crate) struct ContactIndex {
    by_email: HashMap<LookupKey, Holders>,
    by_phone: HashMap<LookupKey, Holders>,
}

impl ContactIndex {
    fn keys(record: &Record) -> (Option<LookupKey>, Option<LookupKey>) {
        let field = |k: &str| record.data.get(k).and_then(Value::as_str);
        let Some(location) = field("locationId") else {
            return (None, None);
        };
        let email = field("emailLowerCase")
            .filter(|e| !e.is_empty())
            .map(|e| (location.to_owned(), e.to_owned()));
        let phone = field("phone")
            .map(phone_digits)
            .filter(|p| !p.is_empty())
            .map(|p| (location.to_owned(), p));
        (email, phone)
    }

    fn add(&mut self, id: &str, record: &Record) {
        let (email, phone) = Self::keys(record);
        for (map, key) in [(&mut self.by_email, email), (&mut self.by_phone, phone)] {
            if let Some(key) = key {
                map.entry(key)
                    .or_default()
                    .insert(record.seq, id.to_owned());
            }
        }
    }

    fn remove(&mut self, record: &Record) {
        let (email, phone) = Self::keys(record);
        for (map, key) in [(&mut self.by_email, email), (&mut self.by_phone, phone)] {
            if let Some(key) = key {
                if let Some(holders) = map.get_mut(&key) {
                    holders.remove(&record.seq);
                    if holders.is_empty() {
                        map.remove(&key);
                    }
                }
            }
        }
    }

    /// Contacts of `location` with this email (any case), oldest first.
    pub fn with_email<'a>(&'a self, location: &str, email: &str) -> impl Iterator<Item = &'a str> {
        Self::holders(&self.by_email, location, email.to_lowercase())
    }

    /// Contacts of `location` whose phone has these digits, oldest first.
    pub fn with_phone<'a>(&'a self, location: &str, phone: &str) -> impl Iterator<Item = &'a str> {
        Self::holders(&self.by_phone, location, phone_digits(phone))
    }

    fn holders<'a>(
        map: &'a HashMap<LookupKey, Holders>,
        location: &str,
        value: String,
    ) -> impl Iterator<Item = &'a str> {
        map.get(&(location.to_owned(), value))
            .into_iter()
            .flat_map(|h| h.values().map(String::as_str))
    }
}

/// Digits of a phone number, for matching `+1 555-010-0001` with `+15550100001`.
pub(crate) fn phone_digits(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

/// Everything mutable.
#[derive(Debug, Default)]
pub(crate) struct World {
    /// Read freely; write only through [`World::put_contact`] and [`World::take_contact`],
    /// which keep `contact_index` in step.
    pub contacts: HashMap<String, Record>,
    pub contact_index: ContactIndex,
    pub tasks: HashMap<String, Record>,
    pub notes: HashMap<String, Record>,
    pub appointments: Vec<Value>,
    /// Users (`UserSchema`), each with its `roles.locationIds`.
    pub users: Vec<Value>,
    /// Each location's pipelines in GHL's shape (the default ones until seeded).
    pub pipelines: HashMap<String, Vec<Value>>,
    pub opportunities: HashMap<String, Record>,
    /// Calendars (`POST /_sandbox/calendars`): id → location id.
    pub calendars: HashMap<String, String>,
    pub custom_field_ids: HashMap<(String, String), String>,
    pub access_tokens: HashMap<String, Grant>,
    pub refresh_tokens: HashMap<String, String>,
    pub refresh_calls: u64,
    pub windows: HashMap<String, VecDeque<Instant>>,
    pub daily: HashMap<String, (Instant, u64)>,
    pub allow_duplicates: HashMap<String, bool>,
    pub faults: FaultSpec,
    pub storm: Storm,
    pub log: Vec<LogEntry>,
    pub seq: u64,
}

impl World {
    pub fn new(config: &SandboxConfig) -> Self {
        let mut world = World::default();
        for (token, locations) in &config.tokens {
            world.access_tokens.insert(
                token.clone(),
                Grant {
                    locations: locations.clone(),
                    expires_at: None,
                },
            );
        }
        world.refresh_tokens = config.refresh_tokens.clone().into_iter().collect();
        for loc in &config.allow_duplicate_locations {
            world.allow_duplicates.insert(loc.clone(), true);
        }
        world
    }

    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Stores (or replaces) a contact and indexes its email and phone.
    pub fn put_contact(&mut self, id: String, record: Record) {
        if let Some(old) = self.contacts.remove(&id) {
            self.contact_index.remove(&old);
        }
        self.contact_index.add(&id, &record);
        self.contacts.insert(id, record);
    }

    /// Removes a contact (and its index entries), handing it back.
    pub fn take_contact(&mut self, id: &str) -> Option<Record> {
        let record = self.contacts.remove(id)?;
        self.contact_index.remove(&record);
        Some(record)
    }

    /// Records in insertion order.
    pub fn sorted(map: &HashMap<String, Record>) -> Vec<&Record> {
        let mut v: Vec<&Record> = map.values().collect();
        v.sort_by_key(|r| r.seq);
        v
    }
}

/// The sandbox: immutable config plus the shared world. Cheap to clone (axum state).
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub(crate) config: Arc<SandboxConfig>,
    pub(crate) world: Arc<Mutex<World>>,
}

impl Sandbox {
    /// A sandbox with an empty world.
    pub fn new(config: SandboxConfig) -> Self {
        let world = World::new(&config);
        Self {
            config: Arc::new(config),
            world: Arc::new(Mutex::new(world)),
        }
    }

    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock leaves consistent-enough test data; keep serving.
        match self.world.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Forgets every record, token change, counter, fault and log line.
    pub fn reset(&self) {
        *self.world() = World::new(&self.config);
    }
}

/// A 20-character id like GHL's Firestore ids.
pub(crate) fn new_id() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 20)
}

/// Now as GHL writes it: `2026-07-17T10:26:20.635Z`.
pub(crate) fn now_iso() -> String {
    iso(time::OffsetDateTime::now_utc())
}

pub(crate) fn iso(t: time::OffsetDateTime) -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}

/// Milliseconds since the epoch of an ISO timestamp (0 when unparsable).
pub(crate) fn millis(iso_text: &str) -> i64 {
    time::OffsetDateTime::parse(iso_text, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .unwrap_or(0)
}

/// A JSON answer.
pub(crate) fn reply(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// A NestJS-shaped error: `{statusCode, message, error}`.
pub(crate) fn error(status: StatusCode, message: impl Into<Value>) -> Response {
    reply(
        status,
        json!({
            "statusCode": status.as_u16(),
            "message": message.into(),
            "error": status.canonical_reason().unwrap_or("Error"),
        }),
    )
}

/// 422 with class-validator messages.
pub(crate) fn unprocessable(messages: Vec<String>) -> Response {
    error(StatusCode::UNPROCESSABLE_ENTITY, messages)
}

/// 403 for a location the token may not use.
pub(crate) fn forbidden_location() -> Response {
    error(
        StatusCode::FORBIDDEN,
        "The token does not have access to this location.",
    )
}

/// Parses a JSON object body and checks it against `dto`, as GHL does: the object, or GHL's
/// 400 (not an object) or 422 (validation messages) answer.
pub(crate) fn checked_body(dto: Dto, body: &[u8]) -> Result<Map<String, Value>, Response> {
    let body = parse_object(body)?;
    let errors = validate(dto, &body);
    if errors.is_empty() {
        Ok(body)
    } else {
        Err(unprocessable(errors))
    }
}

/// Parses a JSON object body (an empty body is an empty object).
pub(crate) fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(error(StatusCode::BAD_REQUEST, "Bad Request")),
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("Unexpected token in JSON: {e}"),
        )),
    }
}
