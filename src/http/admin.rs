//! Admin API (`/admin/*`, behind the admin bearer token): list and inspect events with their
//! steps and attempts, replay one or many, and read queue stats; and the web page over it
//! (`GET /admin/ui`, [`super::admin_page`]), which holds no data and so needs no token.
//!
//! With no `admin.token` configured every `/admin/*` path answers 404, the page included, so an
//! unconfigured server exposes nothing. The token is compared in constant time (as SHA-256
//! digests, so not even its length leaks) and never logged. Repeated wrong tokens from one
//! client address lock it out for a while ([`super::admin_backoff`]): 429 with `Retry-After`.
//!
//! [`list_page`], [`event_detail`] and [`parse_time`] are shared with the `formbridge events`
//! CLI so both print the same shapes, with secrets masked by the same [`Redactor`].
//!
//! A store failure answers a generic 500 naming the request id; the cause is logged with it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::admin_cockpit;
use super::admin_overview;
use super::admin_page;
use super::admin_playground;
use super::admin_state::{
    digest, parse_source, parse_status, parse_time_param, query_pairs, store_failed,
};
pub use super::admin_state::{parse_time, AdminState, OverviewSources, MAX_PAGE};
use super::errors::{self, ApiError, RequestId};
use super::log_safe::Escaped;
use super::server::ClientKey;
use crate::domain::EventId;
use crate::redact::Redactor;
use crate::store::{
    AdminReads, AttemptRecord, Event, EventFilter, EventSummary, QueueStats, StepRecord, StoreError,
};

/// Detail of the 404 every `/admin/*` path answers while no admin token is configured.
pub const DISABLED_DETAIL: &str = "the admin API is disabled: set FORMBRIDGE__ADMIN__TOKEN";

/// The `/admin/*` routes with their bearer-token guard, and the page (`GET /admin/ui`, and
/// `GET /admin` redirecting to it) without it.
pub fn router(state: Arc<AdminState>) -> Router {
    let mut api = Router::new();
    if let Some(playground) = state.playground().cloned() {
        api = api.merge(admin_playground::routes(playground));
    }
    let api = api
        .route("/admin/events", get(list))
        .route("/admin/events/{id}", get(show))
        .route("/admin/events/{id}/replay", post(replay_one))
        .route("/admin/events/{id}/cancel", post(admin_cockpit::cancel))
        .route("/admin/search", get(admin_cockpit::search))
        .route("/admin/overview", get(admin_overview::overview))
        .route("/admin/replay", post(replay_bulk))
        .route("/admin/stats", get(stats))
        .route("/admin/", any(unknown))
        .route("/admin/{*rest}", any(unknown))
        .method_not_allowed_fallback(errors::method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state.clone());
    let page = Router::new()
        .route(admin_page::PATH, get(admin_page::page))
        .route("/admin/ui/{file}", get(admin_page::file))
        .route("/admin", get(admin_page::to_page).fallback(unknown))
        .method_not_allowed_fallback(errors::method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state,
            require_token_but_to_read,
        ));
    api.merge(page)
}

/// The page's guard: `GET` and `HEAD` pass while the API is enabled (the page holds no data),
/// anything else needs the token as the API does (404 while the API is disabled).
async fn require_token_but_to_read(
    State(state): State<Arc<AdminState>>,
    req: Request,
    next: Next,
) -> Response {
    let reading = req.method() == Method::GET || req.method() == Method::HEAD;
    if reading && state.token_digest.is_some() {
        return next.run(req).await;
    }
    require_token(State(state), req, next).await
}

/// Refuses requests without the admin bearer token (404 while the API is disabled).
async fn require_token(State(state): State<Arc<AdminState>>, req: Request, next: Next) -> Response {
    let Some(expected) = &state.token_digest else {
        return ApiError::not_found(DISABLED_DETAIL).into_response();
    };
    // The TCP peer, set by the server for every connection (absent only when the router is
    // called without one, e.g. in-process).
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| ClientKey::of(peer.ip()));
    let now = tokio::time::Instant::now();
    if let Some(wait) = client.and_then(|c| state.backoff.locked_out(c, now)) {
        metrics::counter!(crate::metrics::ADMIN_AUTH_THROTTLED).increment(1);
        let seconds = u32::try_from(wait.as_secs().saturating_add(1)).unwrap_or(u32::MAX);
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many wrong admin tokens from this address; retry in {seconds}s"),
        )
        .retry_after(seconds)
        .into_response();
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let refusal = match presented {
        Some(token) if bool::from(digest(token).ct_eq(expected)) => {
            if let Some(client) = client {
                state.backoff.succeeded(client);
            }
            return next.run(req).await;
        }
        Some(_) => {
            let lockout = client.and_then(|c| state.backoff.failed(c, now).map(|l| (c, l)));
            if let Some((client, lockout)) = lockout {
                tracing::warn!(%client, ?lockout, "admin API: too many wrong tokens from one address; its admin requests are refused 429 for the lockout");
            }
            "wrong admin token"
        }
        None => "missing admin token: send `Authorization: Bearer <admin.token>`",
    };
    tracing::info!(path = %Escaped(req.uri().path()), "admin request refused: {refusal}");
    let mut response = ApiError::unauthorized(refusal).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"formbridge-admin\""),
    );
    response
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

async fn unknown() -> ApiError {
    ApiError::not_found(
        "no such admin endpoint; see GET /admin/events, GET /admin/events/{id}, \
         POST /admin/events/{id}/replay, POST /admin/events/{id}/cancel, POST /admin/replay, \
         GET /admin/stats, GET /admin/search, GET /admin/overview, \
         and the page GET /admin/ui",
    )
}

// ---------------------------------------------------------------------------------------------
// Listing

/// One page of events, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct EventPage {
    /// The events of this page, newest first, without bodies.
    pub events: Vec<EventSummary>,
    /// Pass as `before_id` for the next (older) page; `null` on the last page.
    pub next_before_id: Option<EventId>,
}

/// Lists one page of events matching `filter`, and whether an older page exists; secrets in
/// `last_error` are masked by `redactor`.
pub async fn list_page(
    store: &dyn AdminReads,
    filter: &EventFilter,
    redactor: &Redactor,
) -> Result<EventPage, StoreError> {
    let mut events = store.list_events(filter).await?;
    for event in &mut events {
        if let Some(error) = &mut event.last_error {
            *error = redactor.mask(error);
        }
    }
    let next_before_id = match events.last() {
        Some(last) if events.len() >= filter.page_size() as usize => {
            let probe = EventFilter {
                before_id: Some(last.id.0),
                limit: Some(1),
                ..filter.clone()
            };
            (!store.list_events(&probe).await?.is_empty()).then_some(last.id)
        }
        _ => None,
    };
    Ok(EventPage {
        events,
        next_before_id,
    })
}

const LIST_PARAMS: &str = "status, source, since, until, before_id, submission, limit";

/// Parses the query of `GET /admin/events` into a filter, naming any bad parameter.
fn list_filter(query: Option<&str>) -> Result<EventFilter, ApiError> {
    let mut filter = EventFilter::default();
    for (key, value) in query_pairs(query)? {
        if value.is_empty() {
            continue;
        }
        match key.as_str() {
            "status" => filter.status = Some(parse_status(&value)?),
            "source" => filter.source = Some(parse_source(&value)?),
            "since" => filter.since = Some(parse_time_param("since", &value)?),
            "until" => filter.until = Some(parse_time_param("until", &value)?),
            "before_id" => {
                filter.before_id = Some(value.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "before_id: `{value}` is not an event id (use next_before_id of the previous page)"
                    ))
                })?)
            }
            "submission" => {
                filter.submission = Some(value.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "submission: `{value}` is not an event id (the event of the submission's first revision)"
                    ))
                })?)
            }
            "limit" => {
                filter.limit = Some(
                    value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE).contains(n))
                        .ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "limit: `{value}` is not a whole number from 1 to {MAX_PAGE}"
                            ))
                        })?,
                )
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter `{other}`; allowed: {LIST_PARAMS}"
                )))
            }
        }
    }
    Ok(filter)
}

/// `GET /admin/events?status=&source=&since=&until=&before_id=&limit=`.
async fn list(
    State(state): State<Arc<AdminState>>,
    request_id: RequestId,
    RawQuery(query): RawQuery,
) -> Result<Json<EventPage>, ApiError> {
    let filter = list_filter(query.as_deref())?;
    list_page(state.store.as_ref(), &filter, &state.redactor)
        .await
        .map(Json)
        .map_err(|e| store_failed(&e, &request_id))
}

// ---------------------------------------------------------------------------------------------
// One event

/// An event as the admin API and `formbridge events show` present it.
#[derive(Debug, Clone, Serialize)]
pub struct EventDetail {
    /// Summary fields, content type, headers, contact key, location, submission and plan.
    #[serde(flatten)]
    pub event: Event,
    /// The raw body: UTF-8 text when it is valid UTF-8, else base64.
    pub body: String,
    /// `utf8` or `base64`.
    pub body_encoding: &'static str,
    /// Recorded GHL step results, in plan order.
    pub steps: Vec<StepRecord>,
    /// Every attempt, oldest first (`attempts` is the summary's count, as in lists).
    pub attempt_history: Vec<AttemptRecord>,
    /// Every revision of the submission, oldest first, when it was edited (empty if not).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<EventSummary>,
}

/// Loads an event with its body, steps and attempts, as JSON with every secret masked by
/// `redactor` (body, headers, submission, plan, errors); `None` if there is no such event.
pub async fn event_detail(
    store: &dyn AdminReads,
    id: EventId,
    redactor: &Redactor,
) -> Result<Option<serde_json::Value>, StoreError> {
    let Some(event) = store.get_event(id).await? else {
        return Ok(None);
    };
    let steps = store.steps(id).await?;
    let attempt_history = store.attempts(id).await?;
    let first = event.summary.revision_of.unwrap_or(id);
    let mut revisions = store
        .list_events(&EventFilter {
            submission: Some(first.0),
            limit: Some(MAX_PAGE),
            ..EventFilter::default()
        })
        .await?;
    revisions.reverse(); // oldest first
    if revisions.len() < 2 {
        revisions.clear();
    }
    let (body, body_encoding) = match std::str::from_utf8(&event.body) {
        Ok(text) => (text.to_owned(), "utf8"),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(&event.body),
            "base64",
        ),
    };
    let detail = EventDetail {
        event,
        body,
        body_encoding,
        steps,
        attempt_history,
        revisions,
    };
    // Plain data with string keys: serializing cannot fail.
    let mut shown = serde_json::to_value(&detail).unwrap_or_default();
    redactor.mask_json(&mut shown);
    Ok(Some(shown))
}

fn parse_id(raw: &str) -> Result<EventId, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(EventId)
        .ok_or_else(|| ApiError::bad_request(format!("`{raw}` is not an event id")))
}

fn no_such_event(id: EventId) -> ApiError {
    ApiError::not_found(format!("no event with id {id}"))
}

/// `GET /admin/events/{id}`.
async fn show(
    State(state): State<Arc<AdminState>>,
    request_id: RequestId,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    event_detail(state.store.as_ref(), id, &state.redactor)
        .await
        .map_err(|e| store_failed(&e, &request_id))?
        .map(Json)
        .ok_or_else(|| no_such_event(id))
}

// ---------------------------------------------------------------------------------------------
// Replay

fn parse_bool(name: &str, raw: &str) -> Result<bool, ApiError> {
    match raw {
        "" | "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "{name}: `{raw}` is not a boolean; use true or false"
        ))),
    }
}

/// `POST /admin/events/{id}/replay[?from_scratch=true]`.
async fn replay_one(
    State(state): State<Arc<AdminState>>,
    request_id: RequestId,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let mut from_scratch = false;
    for (key, value) in query_pairs(query.as_deref())? {
        match key.as_str() {
            "from_scratch" => from_scratch = parse_bool("from_scratch", &value)?,
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter `{other}`; allowed: from_scratch"
                )))
            }
        }
    }
    if state
        .queue
        .replay(id, from_scratch)
        .await
        .map_err(|e| store_failed(&e, &request_id))?
    {
        tracing::info!(event_id = %id, from_scratch, "event replayed by admin");
        state.wake_dispatcher();
        let body = json!({"replayed": true, "event_id": id, "from_scratch": from_scratch});
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    match state
        .store
        .get_event(id)
        .await
        .map_err(|e| store_failed(&e, &request_id))?
    {
        None => Err(no_such_event(id)),
        Some(_) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "event {id} is being processed right now; replay it once this attempt has ended"
            ),
        )),
    }
}

/// Body of `POST /admin/replay`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkReplay {
    status: Option<String>,
    source: Option<String>,
    since: Option<String>,
    until: Option<String>,
    #[serde(default)]
    from_scratch: bool,
    /// Required to replay with an empty filter (every event).
    #[serde(default)]
    all: bool,
}

/// `POST /admin/replay` with a JSON filter `{status, source, since, until, from_scratch, all}`.
async fn replay_bulk(
    State(state): State<Arc<AdminState>>,
    request_id: RequestId,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let request: BulkReplay = if body.iter().all(u8::is_ascii_whitespace) {
        BulkReplay::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body must be a JSON object with any of status, source, since, until, \
                 from_scratch, all: {e}"
            ))
        })?
    };
    let filter = EventFilter {
        status: request.status.as_deref().map(parse_status).transpose()?,
        source: request.source.as_deref().map(parse_source).transpose()?,
        since: request
            .since
            .as_deref()
            .map(|t| parse_time_param("since", t))
            .transpose()?,
        until: request
            .until
            .as_deref()
            .map(|t| parse_time_param("until", t))
            .transpose()?,
        ..EventFilter::default()
    };
    let empty = filter.status.is_none()
        && filter.source.is_none()
        && filter.since.is_none()
        && filter.until.is_none();
    if empty && !request.all {
        return Err(ApiError::bad_request(
            "refusing to replay every event: give a filter (status, source, since, until) \
             or send \"all\": true",
        ));
    }
    let replayed = state
        .queue
        .replay_matching(&filter, request.from_scratch)
        .await
        .map_err(|e| store_failed(&e, &request_id))?;
    tracing::info!(
        replayed,
        status = ?filter.status,
        source = ?filter.source,
        from_scratch = request.from_scratch,
        "events replayed by admin"
    );
    if replayed > 0 {
        state.wake_dispatcher();
    }
    Ok(Json(
        json!({"replayed": replayed, "from_scratch": request.from_scratch}),
    ))
}

// ---------------------------------------------------------------------------------------------
// Stats

/// Body of `GET /admin/stats`.
#[derive(Debug, Serialize)]
struct StatsBody {
    #[serde(flatten)]
    stats: QueueStats,
    total: u64,
    /// Seconds since the oldest unfinished event was received.
    oldest_unfinished_age_seconds: Option<i64>,
}

/// `GET /admin/stats`.
async fn stats(
    State(state): State<Arc<AdminState>>,
    request_id: RequestId,
) -> Result<Json<StatsBody>, ApiError> {
    let stats = state
        .store
        .queue_stats()
        .await
        .map_err(|e| store_failed(&e, &request_id))?;
    let total = stats.by_status.values().sum();
    let oldest_unfinished_age_seconds = stats
        .oldest_unfinished
        .map(|t| (OffsetDateTime::now_utc() - t).whole_seconds().max(0));
    Ok(Json(StatsBody {
        stats,
        total,
        oldest_unfinished_age_seconds,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::EventStatus;

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("abc"), None);
    }

    #[test]
    fn list_filters_name_the_bad_parameter() {
        let ok = list_filter(Some(
            "status=dead&source=jotform&limit=10&since=2025-01-01T00:00:00Z",
        ))
        .unwrap();
        assert_eq!(ok.status, Some(EventStatus::Dead));
        assert_eq!(ok.limit, Some(10));
        for (query, name) in [
            ("status=gone", "status"),
            ("limit=0", "limit"),
            ("limit=501", "limit"),
            ("since=yesterday", "since"),
            ("before_id=x", "before_id"),
            ("colour=red", "colour"),
        ] {
            let err = list_filter(Some(query)).err().map(|e| e.detail);
            assert!(
                err.as_deref().is_some_and(|d| d.contains(name)),
                "{query}: {err:?}"
            );
        }
    }

    #[test]
    fn times_are_rfc3339_or_unix_seconds() {
        assert_eq!(
            parse_time("1700000000").map(|t| t.unix_timestamp()),
            Ok(1_700_000_000)
        );
        assert!(parse_time("2025-01-31T09:00:00+01:00").is_ok());
        assert!(parse_time("31/01/2025").is_err());
    }
}
