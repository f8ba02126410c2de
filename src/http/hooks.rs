//! Webhook ingress (`POST /hooks/{source}`): authenticate, bound the size, check the body
//! parses, commit the raw delivery durably, then answer 200 (for a chat tool's agent view,
//! with what GHL knows of the visitor: [`crate::agent_view`], once the delivery is stored).
//!
//! Nothing here interprets answers: normalization runs in the dispatcher on the stored bytes,
//! so a mapping fix can be replayed over old deliveries.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde_json::json;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::Notify;

use super::client_addr::{self, ClientAddress};
use super::errors::ApiError;
use super::log_safe::Escaped;
use super::server::BodyReadTimeout;
use crate::agent_view::AgentView;
use crate::body::{self, BodyError, BodyLimits, ParsedBody};
use crate::domain::SourceName;
use crate::quoted::Quoted;
use crate::runtime::{SourceRuntime, SourceRuntimes};
use crate::settings::Settings;
use crate::sources::auth::Authenticator;
use crate::sources::SourceKind;
use crate::store::{Ingest, Ingested, NewEvent};

/// Request headers worth keeping with a delivery (never credentials or signatures).
const KEPT_HEADERS: &[&str] = &[
    "user-agent",
    "x-forwarded-for",
    "x-real-ip",
    "x-request-id",
    "webhook-id",
    "webhook-timestamp",
    "content-length",
];

/// The start of a dedupe key that is the body's hash (the sender has no id of its own).
const BODY_HASH_PREFIX: &str = "sha256:";

/// What a sender is told to wait before retrying a delivery the store could not take.
const STORE_RETRY_AFTER_SECONDS: u32 = 30;

/// One served source: its compiled runtime and the authentication it is served with.
pub struct ServedSource {
    pub runtime: Arc<SourceRuntime>,
    pub auth: Authenticator,
}

/// What the ingress needs to do its job.
pub struct IngressState {
    pub store: Arc<dyn Ingest>,
    pub sources: HashMap<String, ServedSource>,
    /// Configured but not served (disabled, or no secret yet), for a helpful 404.
    pub not_served: Vec<String>,
    pub body_limit: usize,
    /// Fields, values and nesting one delivery may have.
    pub body_limits: BodyLimits,
    /// Wakes the dispatcher when a new delivery is stored.
    pub wake: Arc<Notify>,
    /// Answers chat deliveries with the agent view; `None` without GHL credentials.
    pub agent_view: Option<Arc<AgentView>>,
    /// How a request's client address is found, for `sources.<name>.allow_from`.
    pub client_address: ClientAddress,
}

impl IngressState {
    /// Serves every enabled source of `runtimes`; `agent_view` answers their chat deliveries
    /// that show an agent the visitor (when the source's `agent_view` is on).
    pub fn new(
        settings: &Settings,
        runtimes: &SourceRuntimes,
        store: Arc<dyn Ingest>,
        wake: Arc<Notify>,
        agent_view: Option<Arc<AgentView>>,
    ) -> Result<Self, String> {
        let mut sources = HashMap::new();
        let mut not_served = Vec::new();
        for runtime in runtimes.iter() {
            match &runtime.auth {
                Some(auth) => {
                    let served = ServedSource {
                        runtime: runtime.clone(),
                        auth: auth.clone(),
                    };
                    sources.insert(runtime.name.as_str().to_owned(), served);
                }
                None => not_served.push(runtime.name.as_str().to_owned()),
            }
            if runtime.auth.is_some() && runtime.agent_view() {
                match (&agent_view, &runtime.location_id) {
                    (None, _) => {
                        tracing::info!(source = %runtime.name, "agent view off: no GHL credentials; chat events are answered {{\"result\":\"ok\"}}")
                    }
                    (Some(_), None) => {
                        tracing::info!(source = %runtime.name, "agent view off: the source has no GHL location")
                    }
                    (Some(_), Some(_)) => {}
                }
            }
        }
        Ok(Self {
            store,
            sources,
            not_served,
            body_limit: settings.server.body_limit_bytes,
            body_limits: settings.server.body_limits(),
            wake,
            agent_view,
            client_address: ClientAddress::from_settings(&settings.server),
        })
    }
}

/// Why a delivery was refused, with the metrics label of the outcome.
struct Refusal {
    outcome: &'static str,
    error: ApiError,
}

impl Refusal {
    fn new(outcome: &'static str, error: ApiError) -> Self {
        Self { outcome, error }
    }
}

/// `POST /hooks/{source}`.
pub async fn receive(
    State(state): State<Arc<IngressState>>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let peer = peer.map(|Extension(ConnectInfo(addr))| addr);
    let started = Instant::now();
    let source = path.map(|Path(source)| source);
    let label = match &source {
        Ok(source) if state.sources.contains_key(source) => source.clone(),
        _ => "unknown".to_owned(),
    };
    let result = match &source {
        Ok(source) => ingest(&state, source, query.as_deref(), peer, &headers, body).await,
        Err(rejection) => Err(Refusal::new("bad_request", unreadable_path(rejection))),
    };
    let outcome = match &result {
        Ok(stored) => match stored.ingested {
            Ingested::Stored(_) => "accepted",
            Ingested::Duplicate(_) => "duplicate",
            Ingested::Revision { .. } => "revision",
        },
        Err(refusal) => refusal.outcome,
    };
    metrics::counter!(crate::metrics::WEBHOOKS_RECEIVED, "source" => label.clone(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!(crate::metrics::WEBHOOK_INGEST_SECONDS, "source" => label.clone())
        .record(started.elapsed().as_secs_f64());
    match result {
        Ok(stored) => {
            // Stored (or a duplicate of a stored one): the answer may now show the agent the
            // visitor, within the source's deadline from `started`; else the acknowledgement.
            let view = match &state.agent_view {
                Some(view) => {
                    let arrived = tokio::time::Instant::from_std(started);
                    view.answer(&stored.runtime, stored.parsed, stored.body, arrived)
                        .await
                }
                None => None,
            };
            match view {
                Some(answer) => Json(answer).into_response(),
                None => accepted_response(stored.runtime.kind, stored.ingested),
            }
        }
        Err(refusal) => {
            // The detail may quote the request's own path segment: escaped, so it cannot forge
            // a log line.
            tracing::info!(source = %label, outcome = refusal.outcome, detail = %Escaped(&refusal.error.detail), "webhook refused");
            refusal.error.into_response()
        }
    }
}

/// A delivery committed to the store (or found there already), with its parsed body.
struct Stored {
    runtime: Arc<SourceRuntime>,
    ingested: Ingested,
    parsed: ParsedBody,
    body: Bytes,
}

/// `GET`/`HEAD /hooks/{source}`: lets a tool check the URL before sending (some probe first).
pub async fn probe(
    State(state): State<Arc<IngressState>>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    match path {
        Ok(Path(source)) if state.sources.contains_key(&source) => Json(
            json!({"status": "ok", "source": source, "detail": "deliver submissions with POST"}),
        )
        .into_response(),
        Ok(Path(source)) => state.unknown_source(&source).into_response(),
        Err(rejection) => unreadable_path(&rejection).into_response(),
    }
}

/// The answer to a `/hooks/{source}` path whose source segment cannot be read as text.
fn unreadable_path(rejection: &PathRejection) -> ApiError {
    match rejection {
        PathRejection::FailedToDeserializePathParams(e)
            if matches!(e.kind(), ErrorKind::InvalidUtf8InPathParam { .. }) =>
        {
            ApiError::bad_request(
                "the source name in the path is not UTF-8 once percent-decoded; source names are lower-case ASCII letters, digits, '-' or '_'",
            )
        }
        other => ApiError::bad_request(format!("cannot read the path: {}", other.body_text())),
    }
}

impl IngressState {
    fn unknown_source(&self, source: &str) -> ApiError {
        if SourceName::parse(source).is_err() {
            let lower = source.to_ascii_lowercase();
            if self.sources.contains_key(&lower) {
                return ApiError::not_found(format!(
                    "unknown source `{}`: source names are lower case; did you mean `{lower}`?",
                    Quoted(source)
                ));
            }
            return ApiError::not_found(format!(
                "`{}` is not a source name: names are 1-64 lower-case ASCII letters, digits, '-' or '_'",
                Quoted(source)
            ));
        }
        if self.not_served.iter().any(|n| n == source) {
            ApiError::not_found(format!(
                "source `{source}` is not enabled: give it a secret (FORMBRIDGE__SOURCES__{}__SECRET) or set enabled = true",
                source.to_uppercase()
            ))
        } else {
            ApiError::not_found(format!(
                "unknown source `{source}`; configure [sources.{source}] to accept it"
            ))
        }
    }
}

async fn ingest(
    state: &IngressState,
    source: &str,
    query: Option<&str>,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Stored, Refusal> {
    let served = state
        .sources
        .get(source)
        .ok_or_else(|| Refusal::new("unknown_source", state.unknown_source(source)))?;
    let runtime = served.runtime.as_ref();
    let client = state.client_address.resolve(peer, headers);
    if !client_addr::allowed(&runtime.allow_from, client) {
        return Err(Refusal::new(
            "forbidden",
            ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this client address may not deliver to `{source}` (sources.{source}.allow_from); nothing was stored"),
            ),
        ));
    }
    let token = query_token(query);
    let verify = |body: &[u8]| {
        served
            .auth
            .verify(headers, token.as_deref(), body, OffsetDateTime::now_utc())
            .map_err(|e| Refusal::new("unauthorized", ApiError::unauthorized(e.to_string())))
    };
    // A URL or header token does not depend on the body: check it before reading one, so a
    // sender without it is refused at once instead of holding a connection while it trickles.
    // HMAC and Standard Webhooks sign the body; for them the body timeout and the connection
    // caps bound what a slow sender can hold.
    let body_free = matches!(
        served.auth,
        Authenticator::None | Authenticator::Token { .. }
    );
    if body_free {
        verify(&[])?;
    }
    let content_type = declared_content_type(headers)?;
    let bytes = read_bounded(headers, body, state.body_limit).await?;
    if !body_free {
        verify(&bytes)?;
    }
    let parsed = body::parse(
        runtime.kind.body_content_type(content_type.as_deref()),
        &bytes,
        &state.body_limits,
    )
    .map_err(|e| match e {
        BodyError::UnsupportedType(_) => Refusal::new(
            "unsupported_type",
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                e.to_string(),
            ),
        ),
        BodyError::Malformed { .. } => {
            Refusal::new("bad_request", ApiError::bad_request(e.to_string()))
        }
        BodyError::OverLimit(over) => Refusal::new(
            "over_limit",
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                over.limit.code(),
                format!("{over}; nothing was stored"),
            ),
        ),
    })?;
    let dedupe_key = dedupe_key(served, &parsed, &bytes, headers);
    // A key of the sender's own lets an edit (same id, other content) be told from a resend;
    // a key that is the body's hash already covers the content.
    let content_hash = (!dedupe_key.starts_with(BODY_HASH_PREFIX)).then(|| parsed.content_hash());
    let event = NewEvent {
        source: runtime.name.clone(),
        dedupe_key,
        content_hash,
        content_type,
        headers: kept_headers(headers),
        body: bytes.clone(),
        received_at: OffsetDateTime::now_utc(),
    };
    let ingested = state.store.insert_event(event).await.map_err(|e| {
        tracing::error!(source = %runtime.name, error = %e, "could not store delivery");
        Refusal::new(
            "store_error",
            ApiError::unavailable(
                "the delivery could not be stored; nothing was kept, please retry",
            )
            .retry_after(STORE_RETRY_AFTER_SECONDS),
        )
    })?;
    match ingested {
        // One line per new delivery would be the busiest line in the log (and, measured, about
        // a tenth of the CPU each delivery costs): at info, a new delivery shows when dispatch
        // ends it ("event delivered to GHL", or why not), in the metrics and in the admin API.
        Ingested::Stored(id) => {
            tracing::debug!(source = %runtime.name, event_id = %id, "delivery stored")
        }
        Ingested::Duplicate(id) => {
            tracing::info!(source = %runtime.name, event_id = %id, "duplicate delivery ignored")
        }
        Ingested::Revision { id, of } => {
            tracing::info!(source = %runtime.name, event_id = %id, revision_of = %of, "edited submission stored as a new revision")
        }
    }
    Ok(Stored {
        runtime: served.runtime.clone(),
        ingested,
        parsed,
        body: bytes,
    })
}

/// The `Content-Type` header, refused when it is not ASCII text (which must not pass for no
/// header at all, which is read as JSON).
fn declared_content_type(headers: &HeaderMap) -> Result<Option<String>, Refusal> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| {
        Refusal::new(
            "unsupported_type",
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the Content-Type header is not ASCII text; send application/json, application/x-www-form-urlencoded or multipart/form-data; nothing was stored",
            ),
        )
    })?;
    Ok(Some(text.to_owned()))
}

/// Reads the body, refusing it as soon as it passes `limit` bytes.
async fn read_bounded(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Refusal> {
    let too_large = || {
        Refusal::new(
            "too_large",
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("body is larger than the {limit} byte limit (server.body_limit_bytes)"),
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let mut buf = BytesMut::with_capacity(declared.map_or(8 * 1024, |l| l as usize));
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            let e = e.into_inner();
            match BodyReadTimeout::find(e.as_ref()) {
                Some(timeout) => Refusal::new(
                    "body_timeout",
                    ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "body_timeout",
                        format!("{timeout}; nothing was stored, send the whole body at once"),
                    ),
                ),
                None => Refusal::new(
                    "bad_request",
                    ApiError::bad_request(format!("could not read the request body: {e}")),
                ),
            }
        })?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The secret a sender put in a webhook URL's query string (`?token=…`, or `?secret=…` as some
/// guides write it), percent-decoded; `None` when there is none or the query does not parse.
/// Public so the fuzz targets exercise the ingress's own parser of untrusted input.
pub fn query_token(query: Option<&str>) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query?).ok()?;
    // `token` is the documented name; `secret` is accepted because some guides use it.
    pairs
        .iter()
        .find(|(k, _)| k == "token")
        .or_else(|| pairs.iter().find(|(k, _)| k == "secret"))
        .map(|(_, v)| v.clone())
}

fn kept_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            headers
                .get(*name)
                .and_then(|v| v.to_str().ok())
                .map(|v| ((*name).to_owned(), v.to_owned()))
        })
        .collect()
}

/// The key that makes a repeated delivery a duplicate: the sender's own id where it has one
/// (a configured `dedupe_field`, else the signed `webhook-id` of Standard Webhooks, else the
/// tool's own), else a SHA-256 of the body.
fn dedupe_key(
    served: &ServedSource,
    parsed: &ParsedBody,
    body: &[u8],
    headers: &HeaderMap,
) -> String {
    let own_id = match served.runtime.dedupe_field() {
        Some(field) => parsed.field(field).map(|v| format!("{field}:{v}")),
        None if matches!(served.auth, Authenticator::StandardWebhooks { .. }) => headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .map(|id| format!("webhook-id:{id}")),
        None => served.runtime.kind.delivery_id(parsed, headers),
    };
    own_id
        .filter(|id| !id.ends_with(':'))
        .unwrap_or_else(|| format!("{BODY_HASH_PREFIX}{}", hex::encode(Sha256::digest(body))))
}

/// The tool's acknowledgement of a stored (or duplicate) delivery.
fn accepted_response(kind: SourceKind, ingested: Ingested) -> Response {
    let duplicate = matches!(ingested, Ingested::Duplicate(_));
    let mut receipt = json!({"result": "ok", "event_id": ingested.id(), "duplicate": duplicate});
    if let Ingested::Revision { of, .. } = ingested {
        receipt["revision_of"] = json!(of);
    }
    Json(kind.acknowledgement(receipt)).into_response()
}
