//! A faithful in-memory GHL v2 Contacts API over real HTTP, with fault injection and inspection.
//!
//! Faithful, not convenient: 401 without a valid bearer token or without `Version: 2021-07-28`
//! (GHL's bodies), 403 for a foreign or missing `locationId`, 422 for unknown properties
//! (`property X should not exist`) and wrong types, 400 for unknown contact ids and for
//! duplicates on `POST /contacts/` (with `meta.contactId`), upsert matching by email then phone,
//! lower-cased de-duplicated tags, `tags` on PUT/upsert replacing all tags, a `traceId` in every
//! JSON body, opportunities in pipelines (`/opportunities/*`, see `opportunities.rs`), the six `x-ratelimit-*` headers on every API answer, a per-location burst window
//! and daily quota answering 429, and `/oauth/token` rotating refresh tokens.
//!
//! `POST /forms/upload-custom-files` (Forms API) stores streamed files on a contact's File
//! Upload custom field (name, size, type and SHA-256 in the field's value); see `uploads`.
//!
//! Not simulated: the search index lag of real GHL (writes are visible to search at once), scopes,
//! company tokens, followers/campaigns/workflows (404 like any unknown route).
//!
//! Test control (no auth): `GET /_sandbox/state`, `POST /_sandbox/reset`,
//! `POST|DELETE /_sandbox/faults` ([`FaultSpec`]), `POST /_sandbox/tokens`,
//! `DELETE /_sandbox/tokens/{token}` (revoke: 401 from then on), `POST /_sandbox/refresh-tokens`, `POST /_sandbox/locations/{id}/settings`,
//! `POST /_sandbox/appointments`, `POST /_sandbox/users` (users of a location, which then judge
//! `assignedTo`; `GET /users/?locationId=` and `GET /users/{userId}` read them),
//! `POST /_sandbox/pipelines`, `POST /_sandbox/calendars`. Dropped connections:
//! `drop_before_next` closes the connection
//! before the request is applied, `drop_after_next` after it was applied; neither answers.
//! Late work: `complete_late_next` carries requests out `complete_late_ms` late, counted in the
//! rate window then, whether or not the client waited. A short day: [`SandboxConfig::day`].
//!
//! A crate of its own, knowing nothing of formbridge: formbridge's tests and benches use it as a
//! dev-dependency, and formbridge's binary only with its default `sandbox` feature (for
//! `formbridge demo` and `formbridge sandbox-ghl`), so a `--no-default-features` build carries
//! none of this code and none of the unauthenticated `/_sandbox/*` routes.

// Handlers short-circuit with ready axum `Response`s as their error; boxing them would only add
// noise to a test fake.
#![allow(clippy::result_large_err)]

mod calendars;
mod children;
mod contacts;
mod control;
mod dnd;
mod gate;
mod opportunities;
mod queries;
mod uploads;
mod users;
mod validate;
mod world;

use std::future::Future;
use std::net::SocketAddr;

use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub use calendars::CALENDARS_API_VERSION;
pub use control::SandboxState;
pub use opportunities::{default_pipelines, PipelineSeed, PipelinesSeed, StageSeed};
pub use world::{
    FaultSpec, LogEntry, Sandbox, SandboxConfig, API_VERSION, DEMO_LOCATION, DEMO_TOKEN,
};

/// Express-style 404 for unknown routes: `Cannot GET /x`.
async fn not_found(method: Method, uri: Uri) -> Response {
    world::error(
        StatusCode::NOT_FOUND,
        format!("Cannot {method} {}", uri.path()),
    )
}

/// The sandbox's routes.
pub fn router(sandbox: Sandbox) -> Router {
    use children as ch;
    let api = Router::new()
        .route("/contacts/", get(queries::list).post(contacts::create))
        .route("/contacts", get(queries::list).post(contacts::create))
        .route("/contacts/upsert", post(contacts::upsert))
        .route("/contacts/search", post(queries::search))
        .route("/contacts/search/duplicate", get(queries::duplicate))
        .route(
            "/contacts/business/{business_id}",
            get(queries::by_business),
        )
        .route("/contacts/bulk/business", post(queries::bulk_business))
        .route(
            "/contacts/{contact_id}",
            get(contacts::get_one)
                .put(contacts::update)
                .delete(contacts::delete),
        )
        .route(
            "/contacts/{contact_id}/tasks",
            get(ch::list_tasks).post(ch::create_task),
        )
        .route(
            "/contacts/{contact_id}/tasks/{task_id}",
            get(ch::get_task)
                .put(ch::update_task)
                .delete(ch::delete_task),
        )
        .route(
            "/contacts/{contact_id}/tasks/{task_id}/completed",
            put(ch::complete_task),
        )
        .route(
            "/contacts/{contact_id}/notes",
            get(ch::list_notes).post(ch::create_note),
        )
        .route(
            "/contacts/{contact_id}/notes/{id}",
            get(ch::get_note)
                .put(ch::update_note)
                .delete(ch::delete_note),
        )
        .route(
            "/contacts/{contact_id}/tags",
            post(ch::add_tags).delete(ch::remove_tags),
        )
        .route("/contacts/{contact_id}/appointments", get(ch::appointments))
        .route("/users/", get(users::by_location))
        .route("/users/{user_id}", get(users::get_one))
        .route("/opportunities/pipelines", get(opportunities::pipelines))
        .route("/opportunities/search", get(opportunities::search))
        .route("/opportunities/", post(opportunities::create))
        .route("/opportunities", post(opportunities::create))
        .route(
            "/opportunities/{id}",
            get(opportunities::get_one).put(opportunities::update),
        )
        .route(
            "/opportunities/{id}/status",
            put(opportunities::update_status),
        )
        .route(
            "/forms/upload-custom-files",
            post(uploads::upload_custom_files),
        )
        .route("/calendars/events/appointments", post(calendars::create))
        .route(
            "/calendars/events/appointments/{event_id}",
            get(calendars::get_one).put(calendars::update),
        )
        .route("/oauth/token", post(control::oauth_token))
        .route("/_sandbox/state", get(control::get_state))
        .route("/_sandbox/reset", post(control::reset))
        .route(
            "/_sandbox/faults",
            post(control::set_faults).delete(control::clear_faults),
        )
        .route("/_sandbox/tokens", post(control::add_token))
        .route(
            "/_sandbox/tokens/{token}",
            axum::routing::delete(control::revoke_token),
        )
        .route("/_sandbox/refresh-tokens", post(control::add_refresh_token))
        .route(
            "/_sandbox/locations/{id}/settings",
            post(control::location_settings),
        )
        .route("/_sandbox/appointments", post(control::add_appointment))
        .route("/_sandbox/users", post(users::seed))
        .route("/_sandbox/pipelines", post(opportunities::seed))
        .route("/_sandbox/calendars", post(control::add_calendar))
        .fallback(not_found);
    api.layer(axum::middleware::from_fn_with_state(
        sandbox.clone(),
        gate::gate,
    ))
    .with_state(sandbox)
}

/// Serves a sandbox with `config` on `listener` until `shutdown` completes (for the CLI's
/// `formbridge sandbox-ghl --addr`).
pub async fn serve_sandbox(
    listener: TcpListener,
    config: SandboxConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    serve(listener, Sandbox::new(config), shutdown).await
}

/// Serves `sandbox` on `listener` until `shutdown` completes. Each connection is HTTP/1.1 and
/// can be closed without an answer by the fault injector.
pub async fn serve(
    listener: TcpListener,
    sandbox: Sandbox,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let app = router(sandbox);
    let stop = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "sandbox accept failed");
                // Out of file descriptors and the like: back off instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let app = app.clone();
        let conn_stop = stop.child_token();
        tokio::spawn(async move {
            let kill = CancellationToken::new();
            let kill_for_requests = kill.clone();
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut()
                        .insert(gate::ConnKill(kill_for_requests.clone()));
                    app.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                biased;
                () = kill.cancelled() => {}
                () = conn_stop.cancelled() => {}
                result = conn => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "sandbox connection ended with an error");
                    }
                }
            }
        });
    }
    stop.cancel();
    Ok(())
}

/// A sandbox running in this process (for tests). Stops when dropped.
#[derive(Debug)]
pub struct SandboxHandle {
    /// `http://127.0.0.1:<port>/`.
    pub base_url: url::Url,
    /// The bound address.
    pub addr: SocketAddr,
    /// Direct access to the state, faults and seeding (no HTTP needed).
    pub sandbox: Sandbox,
    stop: CancellationToken,
}

impl SandboxHandle {
    /// A snapshot of the sandbox state.
    pub fn state(&self) -> SandboxState {
        self.sandbox.state()
    }

    /// Stops serving (also done on drop).
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Starts a sandbox on `127.0.0.1:0`.
pub async fn start(config: SandboxConfig) -> std::io::Result<SandboxHandle> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let base_url = url::Url::parse(&format!("http://{addr}/"))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let sandbox = Sandbox::new(config);
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let served = sandbox.clone();
    tokio::spawn(async move {
        if let Err(e) = serve(listener, served, stopped.cancelled_owned()).await {
            tracing::warn!(error = %e, "sandbox stopped");
        }
    });
    Ok(SandboxHandle {
        base_url,
        addr,
        sandbox,
        stop,
    })
}

/// The strings of a JSON array (other items skipped); empty when `value` is not an array.
pub fn strings(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(serde_json::Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
