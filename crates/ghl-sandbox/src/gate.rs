//! The sandbox middleware every API request passes: fault injection, bearer token and `Version`
//! checks, the per-location rate window and daily quota, `traceId` in every body, the
//! `x-ratelimit-*` headers on every answer, and the request log. A request the faults make
//! late is carried out in a task of its own, so its client hanging up changes nothing.

use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::world::{error, now_iso, reply, LogEntry, Sandbox, World};

/// Closes this request's connection without an answer when cancelled (set per connection).
#[derive(Clone, Debug)]
pub(crate) struct ConnKill(pub CancellationToken);

/// Who is calling: the token's locations, and the one the request is counted against.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub locations: Vec<String>,
}

impl Caller {
    /// May this token act on `location`?
    pub fn may_use(&self, location: &str) -> bool {
        !location.is_empty() && self.locations.iter().any(|l| l == location)
    }
}

const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// What the counted faults decided for one request.
#[derive(Default)]
struct Decision {
    latency: Option<Duration>,
    drop_before: bool,
    drop_after: bool,
    fail: Option<u16>,
    storm: bool,
    retry_after: Option<u64>,
    /// Carry the request out this late, client or not.
    late: Option<Duration>,
}

fn decide(world: &mut World, path: &str) -> Decision {
    let f = &mut world.faults;
    let mut d = Decision {
        latency: f.latency_ms.map(Duration::from_millis),
        retry_after: f.retry_after_secs,
        ..Decision::default()
    };
    if f.match_path.as_deref().is_some_and(|m| !path.contains(m)) {
        return Decision {
            latency: d.latency,
            ..Decision::default()
        };
    }
    let take = |n: &mut Option<u32>| match n {
        Some(k) if *k > 0 => {
            *k -= 1;
            true
        }
        _ => false,
    };
    d.drop_before = take(&mut f.drop_before_next);
    if !d.drop_before {
        if take(&mut f.fail_next) {
            d.fail = Some(f.fail_status.unwrap_or(500));
        } else if take(&mut f.rate_limit_next) {
            d.storm = true;
        } else if take(&mut f.complete_late_next) {
            d.late = Some(Duration::from_millis(f.complete_late_ms.unwrap_or(1000)));
        } else {
            d.drop_after = take(&mut f.drop_after_next);
        }
    }
    if world.storm.until.is_some_and(|u| Instant::now() < u) {
        d.storm = true;
    }
    d
}

/// The rate-limit state of a location after (maybe) admitting one request.
struct Budget {
    admitted: bool,
    remaining: u64,
    daily_remaining: u64,
    daily_reset: Duration,
}

fn spend(world: &mut World, sb: &Sandbox, location: &str, charge: bool) -> Budget {
    let cfg = &sb.config;
    let now = Instant::now();
    let day = cfg.day;
    let daily = world.daily.entry(location.to_owned()).or_insert((now, 0));
    if now.duration_since(daily.0) >= day {
        *daily = (now, 0);
    }
    let window = world.windows.entry(location.to_owned()).or_default();
    while window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= cfg.window)
    {
        window.pop_front();
    }
    let admitted =
        charge && (window.len() as u64) < u64::from(cfg.burst) && daily.1 < u64::from(cfg.daily);
    if admitted {
        window.push_back(now);
        daily.1 += 1;
    }
    Budget {
        admitted,
        remaining: u64::from(cfg.burst).saturating_sub(window.len() as u64),
        daily_remaining: u64::from(cfg.daily).saturating_sub(daily.1),
        daily_reset: day.saturating_sub(now.duration_since(daily.0)),
    }
}

fn rate_headers(headers: &mut HeaderMap, sb: &Sandbox, b: &Budget) {
    let mut set = |name: &'static str, v: u64| {
        if let Ok(v) = HeaderValue::from_str(&v.to_string()) {
            headers.insert(name, v);
        }
    };
    set("x-ratelimit-limit-daily", u64::from(sb.config.daily));
    set("x-ratelimit-daily-remaining", b.daily_remaining);
    set("x-ratelimit-daily-reset", b.daily_reset.as_millis() as u64);
    set(
        "x-ratelimit-interval-milliseconds",
        sb.config.window.as_millis() as u64,
    );
    set("x-ratelimit-max", u64::from(sb.config.burst));
    set("x-ratelimit-remaining", b.remaining);
}

fn too_many(retry_after: Option<u64>) -> Response {
    // The real 429 body is unconfirmed (reference §3); this placeholder follows NestJS.
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
    if let Some(secs) = retry_after {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
        }
    }
    r
}

fn unauthorized(message: &str) -> Response {
    error(StatusCode::UNAUTHORIZED, message)
}

/// Resolves the token. Order of checks (a choice; GHL's is unrecorded): token first, then
/// `Version`.
fn authenticate(world: &World, headers: &HeaderMap, path: &str) -> Result<Caller, Response> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    let grant = world.access_tokens.get(token).filter(|_| !token.is_empty());
    let Some(grant) = grant else {
        return Err(unauthorized("Invalid token: access token is invalid"));
    };
    if grant.expires_at.is_some_and(|e| Instant::now() >= e) {
        // Wording inferred from the oauth2-server library GHL uses (reference §3).
        return Err(unauthorized("Invalid token: access token has expired"));
    }
    match headers
        .get("version")
        .map(|v| v.to_str().unwrap_or_default())
    {
        None => return Err(unauthorized("version header was not found.")),
        Some(v) if v != super::calendars::version_for(path) => {
            return Err(unauthorized("version header is invalid"))
        }
        Some(_) => {}
    }
    Ok(Caller {
        locations: grant.locations.clone(),
    })
}

/// The location a request is counted against: its `locationId` query parameter when the
/// token may use it, else the token's first location.
fn rate_location(caller: &Caller, query: Option<&str>) -> String {
    let from_query = query.and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "locationId")
            .map(|(_, v)| v.into_owned())
    });
    match from_query {
        Some(l) if caller.may_use(&l) => l,
        _ => caller.locations.first().cloned().unwrap_or_default(),
    }
}

/// Adds `traceId` to a JSON object body.
async fn with_trace_id(response: Response, trace_id: &str) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, BODY_LIMIT).await else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
    };
    let body = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(mut m)) => {
            m.entry("traceId").or_insert_with(|| json!(trace_id));
            let text = serde_json::to_vec(&Value::Object(m)).unwrap_or_default();
            parts.headers.insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
            parts.headers.remove(axum::http::header::CONTENT_LENGTH);
            Body::from(text)
        }
        _ => Body::from(bytes),
    };
    Response::from_parts(parts, body)
}

/// The middleware.
pub(crate) async fn gate(State(sb): State<Sandbox>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if path.starts_with("/_sandbox") {
        return next.run(request).await;
    }
    let trace_id = uuid::Uuid::new_v4().to_string();
    let method = request.method().to_string();
    let query = request.uri().query().map(str::to_owned);
    let kill = request.extensions().get::<ConnKill>().cloned();
    let headers = request.headers().clone();
    // A multipart body (file uploads, up to 50 MB a file) streams through to its handler
    // unbuffered and unlogged; JSON bodies are read here for the log.
    let streamed = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/")
        });
    let (request, logged_body) = if streamed {
        (request, None)
    } else {
        let (parts, body) = request.into_parts();
        let Ok(bytes) = to_bytes(body, BODY_LIMIT).await else {
            return error(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large");
        };
        let logged_body = serde_json::from_slice::<Value>(&bytes).ok();
        (Request::from_parts(parts, Body::from(bytes)), logged_body)
    };
    let mut entry = LogEntry {
        method,
        path: path.clone(),
        query: query.clone(),
        status: 0,
        location: None,
        outcome: "answered".into(),
        at: now_iso(),
        body: logged_body,
        content_type: headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };

    let decision = decide(&mut sb.world(), &path);
    if let Some(latency) = decision.latency {
        tokio::time::sleep(latency).await;
    }
    if decision.drop_before {
        entry.outcome = "dropped_before".into();
        sb.world().log.push(entry);
        return hang_up(kill).await;
    }
    let late = decision.late;
    if late.is_some() {
        entry.outcome = "late".into();
    }
    let work = Work {
        request,
        next,
        headers,
        entry,
        decision,
        trace_id,
        kill,
    };
    let Some(late) = late else {
        return carry_out(sb, work).await;
    };
    // Late work goes on in its own task: were the client to hang up, hyper would drop this
    // future, and GHL does not stop working on a request because its caller left.
    let late_work = tokio::spawn(async move {
        tokio::time::sleep(late).await;
        carry_out(sb, work).await
    });
    late_work
        .await
        .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error"))
}

/// A request past the faults that come before the work, with what answering it needs.
struct Work {
    request: Request,
    next: Next,
    headers: HeaderMap,
    entry: LogEntry,
    decision: Decision,
    trace_id: String,
    kill: Option<ConnKill>,
}

/// Counts the request against its location's window and daily quota and applies it (or
/// answers the injected failure), then answers or hangs up as the faults say, and logs it.
async fn carry_out(sb: Sandbox, work: Work) -> Response {
    let Work {
        request,
        next,
        headers,
        mut entry,
        decision,
        trace_id,
        kill,
    } = work;
    let path = entry.path.clone();
    let query = entry.query.clone();
    let is_oauth = path == "/oauth/token";
    // (response, budget); the budget is None for answers not attributed to a location.
    let (response, budget) = if let Some(status) = decision.fail {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({"statusCode": status.as_u16(), "message": "Internal server error"});
        (reply(status, body), None)
    } else if is_oauth {
        (next.run(request).await, None)
    } else {
        let auth = {
            let world = sb.world();
            authenticate(&world, &headers, &path)
        };
        match auth {
            Err(r) => (r, None),
            Ok(caller) => {
                let location = rate_location(&caller, query.as_deref());
                entry.location = Some(location.clone());
                let budget = spend(&mut sb.world(), &sb, &location, !decision.storm);
                if decision.storm || !budget.admitted {
                    (too_many(decision.retry_after), Some(budget))
                } else {
                    let mut request = request;
                    request.extensions_mut().insert(caller);
                    (next.run(request).await, Some(budget))
                }
            }
        }
    };
    entry.status = response.status().as_u16();
    if decision.drop_after {
        entry.outcome = "dropped_after".into();
        sb.world().log.push(entry);
        return hang_up(kill).await;
    }
    let mut response = with_trace_id(response, &trace_id).await;
    let budget = budget.unwrap_or(Budget {
        admitted: true,
        remaining: u64::from(sb.config.burst),
        daily_remaining: u64::from(sb.config.daily),
        daily_reset: sb.config.day,
    });
    if !is_oauth {
        rate_headers(response.headers_mut(), &sb, &budget);
    }
    sb.world().log.push(entry);
    response
}

/// Closes the connection without answering: cancels the connection and never completes, so
/// no byte of a response can be written.
async fn hang_up(kill: Option<ConnKill>) -> Response {
    match kill {
        Some(k) => {
            k.0.cancel();
            std::future::pending::<()>().await;
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        // Not served by our connection loop (e.g. a router test): a bare 502 is the best we can do.
        None => StatusCode::BAD_GATEWAY.into_response(),
    }
}
