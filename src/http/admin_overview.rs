//! The admin overview (`GET /admin/overview`): one answer with what the overview view shows —
//! deliveries per minute by source and status, the queue, dead letters and 429s by source and
//! location (from the store, so every replica's), and each GHL location's budget, pause and
//! token (what this process's dispatch knows; `null` where it does not run). Routed and
//! guarded by the admin token in [`super::admin`].

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::Json;
use serde::Serialize;
use time::OffsetDateTime;

use super::admin_state::{self as admin, AdminState};
use super::errors::{ApiError, RequestId};
use crate::dispatch::overview::LocationState;
use crate::store::{MinuteCount, PlaceCount, QueueStats};

/// Hours of per-minute history by default, and at most.
const DEFAULT_HOURS: u32 = 3;
const MAX_HOURS: u32 = 24;

/// The answer of `GET /admin/overview`.
#[derive(Debug, Serialize)]
pub struct Overview {
    #[serde(with = "time::serde::rfc3339")]
    pub now: OffsetDateTime,
    /// Hours of history in `per_minute` and `rate_limited`.
    pub hours: u32,
    /// Deliveries received per minute by source and their status now (every replica's).
    pub per_minute: Vec<MinuteCount>,
    pub queue: QueueStats,
    /// Seconds the longest-waiting due event has been due; `null` when none.
    pub oldest_due_age_seconds: Option<i64>,
    /// Seconds since the oldest follow-up waiting for its lead was received.
    pub oldest_waiting_for_lead_age_seconds: Option<i64>,
    /// Every dead letter by source and location.
    pub dead: Vec<PlaceCount>,
    /// Attempts GHL answered 429 in the last `hours`, by source and location.
    pub rate_limited: Vec<PlaceCount>,
    /// Whether dispatch runs in this process: the locations' state is this process's only.
    pub dispatch_here: bool,
    /// Whether replicas share the rate budget (each replica's counts are then its own share).
    pub budget_shared: bool,
    /// Each location's budget, pause and token as this process knows them; `null` when
    /// dispatch does not run here ("not known on this replica").
    pub locations: Option<Vec<LocationState>>,
}

fn hours_of(query: Option<&str>) -> Result<u32, ApiError> {
    let mut hours = DEFAULT_HOURS;
    for (key, value) in admin::query_pairs(query)? {
        match key.as_str() {
            "hours" => {
                hours = value
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|h| (1..=MAX_HOURS).contains(h))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "hours: `{value}` is not a whole number from 1 to {MAX_HOURS}"
                        ))
                    })?
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter `{other}`; allowed: hours"
                )))
            }
        }
    }
    Ok(hours)
}

/// `GET /admin/overview?hours=N`.
pub async fn overview(
    State(state): State<Arc<AdminState>>,
    request_id: RequestId,
    RawQuery(query): RawQuery,
) -> Result<Json<Overview>, ApiError> {
    let hours = hours_of(query.as_deref())?;
    let sources = state
        .overview_sources()
        .ok_or_else(|| ApiError::not_found("this server has no overview"))?;
    let now = OffsetDateTime::now_utc();
    let since = now - Duration::from_secs(u64::from(hours) * 3600);
    let failed = |e| admin::store_failed(&e, &request_id);
    let (counts, queue) =
        tokio::try_join!(sources.store.overview(since), state.reads().queue_stats())
            .map_err(failed)?;
    let age = |t: Option<OffsetDateTime>| t.map(|t| (now - t).whole_seconds().max(0));
    Ok(Json(Overview {
        now,
        hours,
        per_minute: counts.per_minute,
        oldest_due_age_seconds: age(queue.oldest_due),
        oldest_waiting_for_lead_age_seconds: age(queue.oldest_waiting_for_lead),
        queue,
        dead: counts.dead,
        rate_limited: counts.rate_limited,
        dispatch_here: sources.dispatch.is_some(),
        budget_shared: sources
            .dispatch
            .as_ref()
            .is_some_and(|d| d.budget_is_shared()),
        locations: sources.dispatch.as_ref().map(|d| d.location_states()),
    }))
}
