//! The admin API of the mapping playground (behind the admin token, merged into
//! [`super::admin`]'s router): a source's running mapping as TOML, a candidate compared with it
//! over stored deliveries, and the fields of a source's recent deliveries. Reads only: nothing
//! is sent to GHL and the running configuration is not changed.
//!
//! Bounded work: at most [`MAX_DELIVERIES`] deliveries per request, a body of at most
//! [`MAX_BODY_BYTES`]; the plans are built off the async workers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::errors::{ApiError, RequestId};
use crate::body::BodyLimits;
use crate::mapping::file;
use crate::playground::compare::submission_of;
use crate::playground::fields::survey;
use crate::playground::selection::{DEFAULT_DELIVERIES, MAX_DELIVERIES};
use crate::playground::{self, Selection};
use crate::quoted::Quoted;
use crate::redact::Redactor;
use crate::runtime::{SourceRuntime, SourceRuntimes};
use crate::settings::MAPPINGS_DIR;
use crate::store::{AdminReads, Event};

/// Largest request body of `POST /admin/playground/{source}/compare` (the candidate's TOML
/// and the selection).
pub const MAX_BODY_BYTES: usize = 128 * 1024;

/// What the playground reads: the store, every source as running, the body limits its
/// deliveries are read under, and the masking of secrets in what is shown (as the events).
pub struct PlaygroundApi {
    store: Arc<dyn AdminReads>,
    runtimes: SourceRuntimes,
    limits: BodyLimits,
    redactor: Arc<Redactor>,
}

impl PlaygroundApi {
    pub fn new(
        store: Arc<dyn AdminReads>,
        runtimes: SourceRuntimes,
        limits: BodyLimits,
        redactor: Redactor,
    ) -> Self {
        Self {
            store,
            runtimes,
            limits,
            redactor: Arc::new(redactor),
        }
    }

    fn source(&self, name: &str) -> Result<Arc<SourceRuntime>, ApiError> {
        self.runtimes.get(name).cloned().ok_or_else(|| {
            ApiError::not_found(format!(
                "no source `{}` is configured; GET /admin/playground/sources lists them",
                Quoted(name)
            ))
        })
    }

    async fn events(
        &self,
        source: &str,
        selection: Selection,
        request_id: &RequestId,
    ) -> Result<Vec<Event>, ApiError> {
        let selection = selection
            .checked()
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        playground::load(self.store.as_ref(), source, &selection)
            .await
            .map_err(|e| {
                tracing::error!(%request_id, error = %e, "playground store query failed");
                ApiError::internal("store_error", request_id)
            })
    }
}

/// The playground's routes, for the admin router to merge before its token guard.
pub fn routes<S: Clone + Send + Sync + 'static>(api: Arc<PlaygroundApi>) -> Router<S> {
    Router::new()
        .route("/admin/playground/sources", get(sources))
        .route("/admin/playground/{source}/mapping", get(mapping))
        .route(
            "/admin/playground/{source}/compare",
            post(compare).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route("/admin/playground/{source}/fields", get(fields))
        .with_state(api)
}

#[derive(Serialize)]
struct SourceItem {
    name: String,
    kind: String,
    served: bool,
}

async fn sources(State(api): State<Arc<PlaygroundApi>>) -> Json<serde_json::Value> {
    let list: Vec<SourceItem> = api
        .runtimes
        .iter()
        .map(|s| SourceItem {
            name: s.name.to_string(),
            kind: s.kind.as_str().to_owned(),
            served: s.auth.is_some(),
        })
        .collect();
    Json(serde_json::json!({ "sources": list }))
}

/// The running mapping, as the text of its mapping file, and where that file goes.
#[derive(Serialize)]
struct RunningMapping {
    source: String,
    toml: String,
    /// The file name to save an edited mapping as, inside the config folder.
    deploy_path: String,
}

async fn mapping(
    State(api): State<Arc<PlaygroundApi>>,
    Path(name): Path<String>,
    request_id: RequestId,
) -> Result<Json<RunningMapping>, ApiError> {
    let source = api.source(&name)?;
    let toml = file::to_text(&name, source.mapping_config()).map_err(|e| {
        tracing::error!(%request_id, error = %e, "cannot write the running mapping as TOML");
        ApiError::internal("mapping_to_toml", &request_id)
    })?;
    Ok(Json(RunningMapping {
        deploy_path: format!("{MAPPINGS_DIR}/{name}.toml"),
        source: name,
        toml,
    }))
}

/// `POST …/compare`: `{"mapping": "<toml>", "last": 50}`, or `"dead": true` (the newest
/// `last` dead letters), or `"ids": [1, 2]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompareRequest {
    mapping: String,
    #[serde(default)]
    last: Option<u32>,
    #[serde(default)]
    dead: bool,
    #[serde(default)]
    ids: Option<Vec<i64>>,
}

impl CompareRequest {
    fn selection(&self) -> Selection {
        let last = self.last.unwrap_or(DEFAULT_DELIVERIES);
        match &self.ids {
            Some(ids) => Selection::Ids(ids.clone()),
            None if self.dead => Selection::Dead(last),
            None => Selection::Last(last),
        }
    }
}

async fn compare(
    State(api): State<Arc<PlaygroundApi>>,
    Path(name): Path<String>,
    request_id: RequestId,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let source = api.source(&name)?;
    let body = body.map_err(|e| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body must be at most {MAX_BODY_BYTES} bytes: {e}"),
        )
    })?;
    let request: CompareRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be a JSON object {{\"mapping\": \"<TOML>\", and \"last\": N (1-{MAX_DELIVERIES}), \"dead\": true or \"ids\": [..]}}: {e}"
        ))
    })?;
    let events = api.events(&name, request.selection(), &request_id).await?;
    let limits = api.limits;
    off_workers(&api, &request_id, move || {
        let candidate = playground::check(&source, &request.mapping);
        playground::compare(&source, &limits, &candidate, &events)
    })
    .await
}

async fn fields(
    State(api): State<Arc<PlaygroundApi>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    request_id: RequestId,
) -> Result<Json<serde_json::Value>, ApiError> {
    let source = api.source(&name)?;
    let mut last = DEFAULT_DELIVERIES;
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("the query string does not parse: {e}")))?;
    for (key, value) in pairs {
        match key.as_str() {
            "last" => {
                last = value.parse().map_err(|_| {
                    ApiError::bad_request(format!(
                        "last: `{}` is not a number of deliveries (1-{MAX_DELIVERIES})",
                        Quoted(&value)
                    ))
                })?
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter `{}`; use last",
                    Quoted(other)
                )))
            }
        }
    }
    let events = api
        .events(&name, Selection::Last(last), &request_id)
        .await?;
    let limits = api.limits;
    off_workers(&api, &request_id, move || {
        let mut submissions = Vec::with_capacity(events.len());
        let mut unreadable = 0;
        for event in &events {
            match submission_of(&source, &limits, event) {
                Ok(s) => submissions.push(s),
                Err(_) => unreadable += 1,
            }
        }
        survey(source.name.as_str(), &submissions, unreadable)
    })
    .await
}

/// Runs CPU-bound work (reading deliveries, building plans) on a blocking thread, off the
/// async workers, and answers its result as JSON.
async fn off_workers<T: Serialize + Send + 'static>(
    api: &PlaygroundApi,
    request_id: &RequestId,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<Json<serde_json::Value>, ApiError> {
    let redactor = api.redactor.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let mut value = serde_json::to_value(work())?;
        // Secrets in answers, plans and errors are masked as in the events.
        redactor.mask_json(&mut value);
        Ok::<_, serde_json::Error>(value)
    })
    .await;
    match answer {
        Ok(Ok(value)) => Ok(Json(value)),
        Ok(Err(e)) => {
            tracing::error!(%request_id, error = %e, "playground answer not serializable");
            Err(ApiError::internal("playground_failed", request_id))
        }
        Err(e) => {
            tracing::error!(%request_id, error = %e, "playground work failed");
            Err(ApiError::internal("playground_failed", request_id))
        }
    }
}
