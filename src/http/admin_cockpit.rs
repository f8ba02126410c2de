//! The admin cockpit's endpoints beside the event API: find a lead (`GET /admin/search`) and
//! cancel an event waiting to be sent (`POST /admin/events/{id}/cancel`). Routed and guarded
//! by the admin token in [`super::admin`]; `formbridge events cancel` shares [`cancel_event`].

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use super::admin_state::{self as admin, AdminState};
use super::errors::{ApiError, RequestId};
use crate::dispatch::lead_keys::keys_of_query;
use crate::domain::EventId;
use crate::store::{Cancelled, EventStatus, EventSummary, LeadIndex, LeadSearch, StoreError};

const SEARCH_PARAMS: &str = "q, status, source, location, from, to, after, limit";

/// The answer of `GET /admin/search`.
#[derive(Debug, Serialize)]
pub struct SearchPage {
    /// How the query was read: the keys looked up (`email:…`, `phone:+…`, `sid:…`).
    pub keys: Vec<String>,
    /// Events per status in the whole filtered set (every page).
    pub counts: BTreeMap<EventStatus, u64>,
    /// This page, newest first.
    pub events: Vec<EventSummary>,
    /// Pass as `after` for the next (older) page; `null` on the last.
    pub next_after: Option<i64>,
}

/// Parses the query of `GET /admin/search`, naming any bad parameter.
fn search_of(query: Option<&str>, countries: &[String]) -> Result<LeadSearch, ApiError> {
    let mut search = LeadSearch::default();
    for (key, value) in admin::query_pairs(query)? {
        let value = value.trim().to_owned();
        if value.is_empty() {
            continue;
        }
        match key.as_str() {
            "q" => {
                for country in countries {
                    for k in keys_of_query(&value, country) {
                        if !search.keys.contains(&k) {
                            search.keys.push(k);
                        }
                    }
                }
            }
            "status" => search.filter.status = Some(admin::parse_status(&value)?),
            "source" => search.filter.source = Some(admin::parse_source(&value)?),
            "location" => search.location = Some(value),
            "from" => search.filter.since = Some(admin::parse_time_param("from", &value)?),
            "to" => search.filter.until = Some(admin::parse_time_param("to", &value)?),
            "after" => {
                search.filter.before_id = Some(value.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "after: `{value}` is not an event id (use next_after of the previous page)"
                    ))
                })?)
            }
            "limit" => {
                search.filter.limit = Some(
                    value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=admin::MAX_PAGE).contains(n))
                        .ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "limit: `{value}` is not a whole number from 1 to {}",
                                admin::MAX_PAGE
                            ))
                        })?,
                )
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter `{other}`; allowed: {SEARCH_PARAMS}"
                )))
            }
        }
    }
    Ok(search)
}

fn index_of(state: &AdminState) -> Result<&Arc<dyn LeadIndex>, ApiError> {
    state
        .lead_index()
        .ok_or_else(|| ApiError::not_found("this server has no lead index"))
}

/// `GET /admin/search?q=&status=&source=&location=&from=&to=&after=&limit=`.
pub async fn search(
    State(state): State<Arc<AdminState>>,
    request_id: RequestId,
    RawQuery(query): RawQuery,
) -> Result<Json<SearchPage>, ApiError> {
    let search = search_of(query.as_deref(), state.countries())?;
    let page = index_of(&state)?
        .find_leads(&search)
        .await
        .map_err(|e| admin::store_failed(&e, &request_id))?;
    let mut events = page.events;
    for event in &mut events {
        if let Some(error) = &mut event.last_error {
            *error = state.redactor().mask(error);
        }
    }
    Ok(Json(SearchPage {
        keys: search.keys.iter().map(|k| k.as_str().to_owned()).collect(),
        counts: page.counts,
        events,
        next_after: page.next_before_id,
    }))
}

/// The reason a cancel records on the event (its `last_error`).
pub fn cancel_reason(by: &str) -> String {
    format!("cancelled by an admin ({by}); replay to send it after all")
}

/// Cancels event `id` (see [`LeadIndex::cancel`]): the status and JSON answer both the API
/// and `formbridge events cancel` give.
pub async fn cancel_event(
    index: &dyn LeadIndex,
    id: EventId,
    by: &str,
) -> Result<(StatusCode, Value), StoreError> {
    Ok(match index.cancel(id, &cancel_reason(by)).await? {
        Cancelled::Cancelled => (
            StatusCode::OK,
            json!({"cancelled": true, "id": id, "status": "dead", "reason": cancel_reason(by)}),
        ),
        Cancelled::Processing => (
            StatusCode::CONFLICT,
            json!({"error": "conflict", "cancelled": false, "id": id, "status": "processing",
                   "detail": "a dispatcher is sending this event right now; cancel again once its attempt ends (it then waits to retry, or is done)"}),
        ),
        Cancelled::Finished(status) => (
            StatusCode::CONFLICT,
            json!({"error": "conflict", "cancelled": false, "id": id, "status": status,
                   "detail": format!("event {id} has already ended ({status}); only a pending or retrying event can be cancelled")}),
        ),
        Cancelled::NotFound => (
            StatusCode::NOT_FOUND,
            json!({"error": "not_found", "cancelled": false, "id": id, "detail": format!("no event {id}")}),
        ),
    })
}

/// `POST /admin/events/{id}/cancel`.
pub async fn cancel(
    State(state): State<Arc<AdminState>>,
    request_id: RequestId,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (status, body) = cancel_event(
        index_of(&state)?.as_ref(),
        EventId(id),
        "POST /admin/events/{id}/cancel",
    )
    .await
    .map_err(|e| admin::store_failed(&e, &request_id))?;
    if status == StatusCode::OK {
        tracing::info!(event_id = id, "event cancelled by an admin");
    }
    Ok((status, Json(body)))
}
