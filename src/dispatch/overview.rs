//! The read-only snapshot of what this process's dispatch knows of each GHL location for the
//! admin overview: budget left (burst window, day), pause, token state. Only what the process
//! knows: fields are `None` where it has not learnt them (no answer from GHL yet).

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;

use super::{decision::PauseReason, lock, Dispatcher};
use crate::domain::LocationId;

/// The token of a location as dispatch sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenState {
    /// No refusal seen (GHL took its requests, or none was sent yet).
    Ok,
    /// GHL refused it (401, or an OAuth grant it refuses): dispatch is paused.
    Refused,
    /// An OAuth token is being fetched or refreshed right now.
    Refreshing,
}

/// One location's state in this process.
#[derive(Debug, Clone, Serialize)]
pub struct LocationState {
    pub location_id: LocationId,
    pub token: TokenState,
    /// Why dispatch holds the location back now: `unauthorized`, `forbidden`, `config` (a
    /// refused token, access or configuration, until `paused_for_ms` passes or a restart), or
    /// `rate_limit` (a 429, a spent window or daily quota); `None` when it is not paused.
    pub paused: Option<&'static str>,
    /// How long it stays paused from now.
    pub paused_for_ms: Option<u64>,
    /// Requests per burst window (`ghl.rate_limit.burst`).
    pub burst: Option<u64>,
    pub window_ms: Option<u64>,
    /// Requests this process may still start in the burst window now (its own count).
    pub burst_left: Option<u64>,
    /// What GHL said on its last answer: requests left in its burst window, in the day, the
    /// day's quota; and how long ago that answer came. `None` before any answer.
    pub ghl_burst_left: Option<u64>,
    pub ghl_day_left: Option<u64>,
    pub ghl_day_max: Option<u64>,
    pub last_answer_ago_ms: Option<u64>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Dispatcher {
    /// Every location configured, used or paused in this process, sorted by id.
    pub fn location_states(&self) -> Vec<LocationState> {
        let now = tokio::time::Instant::now();
        let blocked: Vec<(LocationId, (tokio::time::Instant, PauseReason))> = lock(&self.blocked)
            .iter()
            .filter(|(_, (until, _))| *until > now)
            .map(|(l, b)| (l.clone(), *b))
            .collect();
        let budgets = self.budgets.snapshot();
        let ghl = &self.settings.ghl;
        let mut ids: BTreeSet<LocationId> = ghl
            .location_id
            .iter()
            .map(|l| LocationId::from(l.as_str()))
            .chain(
                ghl.locations
                    .values()
                    .map(|l| LocationId::from(l.location_id.as_str())),
            )
            .collect();
        ids.extend(budgets.iter().map(|(l, _)| l.clone()));
        ids.extend(blocked.iter().map(|(l, _)| l.clone()));
        ids.into_iter()
            .map(|location_id| {
                let block = blocked.iter().find(|(l, _)| *l == location_id).map(|b| b.1);
                let limiter = budgets
                    .iter()
                    .find(|(l, _)| *l == location_id)
                    .map(|(_, s)| s);
                let token = match block {
                    Some((_, PauseReason::Unauthorized)) => TokenState::Refused,
                    _ if self.client.token_refreshing(location_id.as_str()) => {
                        TokenState::Refreshing
                    }
                    _ => TokenState::Ok,
                };
                let (paused, paused_for) = match (block, limiter.and_then(|s| s.paused_for)) {
                    (Some((until, reason)), _) => (
                        Some(reason.label()),
                        Some(until.saturating_duration_since(now)),
                    ),
                    (None, Some(wait)) if !wait.is_zero() => (Some("rate_limit"), Some(wait)),
                    _ => (None, None),
                };
                let last = limiter.and_then(|s| s.last_seen.as_ref());
                LocationState {
                    token,
                    paused,
                    paused_for_ms: paused_for.map(ms),
                    burst: limiter.map(|s| s.burst as u64),
                    window_ms: limiter.map(|s| ms(s.window)),
                    burst_left: limiter.map(|s| s.burst.saturating_sub(s.used) as u64),
                    ghl_burst_left: last.and_then(|(info, _)| info.remaining),
                    ghl_day_left: last.and_then(|(info, _)| info.daily_remaining),
                    ghl_day_max: last.and_then(|(info, _)| info.daily_max),
                    last_answer_ago_ms: last.map(|(_, ago)| ms(*ago)),
                    location_id,
                }
            })
            .collect()
    }

    /// Whether the replicas share the rate budget through the store (this process's counts
    /// are then its own share only).
    pub fn budget_is_shared(&self) -> bool {
        self.budgets.is_shared()
    }
}
