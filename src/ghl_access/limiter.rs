//! Per-location GHL rate budget: a sliding window over request completions, adapted to the
//! `x-ratelimit-*` headers GHL returns and paused on 429s.
//!
//! A slot is taken when a request starts and its window starts when the request completes, so
//! no `window`-long interval can hold more than `burst` requests as GHL counts them, whatever
//! the network latency: the budget is spent fully without provoking a 429. A request that got
//! no answer completes only when GHL can no longer carry it out (`ghl.late_write_window`): GHL
//! counts it when it runs, however late.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::ghl::RateLimitInfo;

/// How long a location pauses when its daily quota is spent and GHL did not say when it resets.
pub const DAILY_RESET_FALLBACK: Duration = Duration::from_secs(3600);

/// The rate budget of one GHL location.
#[derive(Debug)]
pub struct LocationLimiter {
    burst: usize,
    window: Duration,
    /// Whether GHL's `remaining` header, when lower than this limiter's own count, marks the
    /// difference used (another app spending the budget). Off when replicas share a budget:
    /// their requests are in GHL's count but not in this process's, and the shared slots
    /// already account for them.
    count_others: bool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Completion times of requests inside the window, oldest first.
    completed: VecDeque<Instant>,
    /// Requests started and not finished.
    in_flight: usize,
    /// No request before this time (429, spent window or daily quota).
    paused_until: Option<Instant>,
    /// GHL's rate-limit headers of the last answer, and when it came (the admin overview).
    last_seen: Option<(RateLimitInfo, Instant)>,
}

/// What a limiter knows now, for the admin overview: read-only.
#[derive(Debug, Clone)]
pub struct LimiterSnapshot {
    /// Requests per burst window (`ghl.rate_limit.burst`).
    pub burst: usize,
    /// The burst window.
    pub window: Duration,
    /// Requests of this process in the window now: in flight or completed within it.
    pub used: usize,
    /// How long the location stays paused from now, when it is.
    pub paused_for: Option<Duration>,
    /// GHL's headers on the last answer and how long ago it came; `None` before any answer.
    pub last_seen: Option<(RateLimitInfo, Duration)>,
}

/// Held while a request is in flight; dropping it starts the slot's window (now, or at the
/// time [`Permit::complete_at`] gave).
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<LocationLimiter>,
    completes_at: Option<Instant>,
}

impl Permit {
    /// The request may still run in GHL until `at` (it got no answer): its slot's window
    /// starts then, not now.
    pub fn complete_at(mut self, at: Instant) {
        self.completes_at = Some(at);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let at = self
            .completes_at
            .map_or_else(Instant::now, |at| at.max(Instant::now()));
        let mut state = self.limiter.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        // Oldest first, also with a completion set in the future.
        let position = state.completed.partition_point(|t| *t <= at);
        state.completed.insert(position, at);
    }
}

impl LocationLimiter {
    /// A budget of `burst` requests per `window`.
    pub fn new(burst: u32, window: Duration) -> Arc<Self> {
        Self::build(burst, window, true)
    }

    /// This process's share of a budget several replicas spend together (see `count_others`).
    pub fn beside_replicas(burst: u32, window: Duration) -> Arc<Self> {
        Self::build(burst, window, false)
    }

    fn build(burst: u32, window: Duration, count_others: bool) -> Arc<Self> {
        Arc::new(Self {
            burst: burst.max(1) as usize,
            window,
            count_others,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the counters inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a request slot, waiting for one at most `max_wait`. On `Err`, the budget frees at
    /// the returned instant, too late to wait for: the caller should requeue its work.
    pub async fn acquire(self: &Arc<Self>, max_wait: Duration) -> Result<Permit, Instant> {
        loop {
            let now = Instant::now();
            let ready_at = {
                let mut state = self.lock();
                self.prune(&mut state, now);
                match state.paused_until {
                    Some(until) if until > now => until,
                    _ if state.in_flight + state.completed.len() < self.burst => {
                        state.in_flight += 1;
                        return Ok(Permit {
                            limiter: Arc::clone(self),
                            completes_at: None,
                        });
                    }
                    // Full: the oldest completion leaves the window first; with every slot in
                    // flight, check again shortly.
                    _ => state
                        .completed
                        .front()
                        .map_or(now + Duration::from_millis(5), |t| *t + self.window),
                }
            };
            if ready_at.saturating_duration_since(now) > max_wait {
                return Err(ready_at);
            }
            tokio::time::sleep_until(ready_at).await;
        }
    }

    fn prune(&self, state: &mut State, now: Instant) {
        while state
            .completed
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            state.completed.pop_front();
        }
        if state.paused_until.is_some_and(|t| t <= now) {
            state.paused_until = None;
        }
    }

    /// Adapts to the headers of a GHL answer: when GHL reports fewer requests left than this
    /// limiter thinks (another app spends the same budget), the difference is marked used;
    /// a spent window or daily quota pauses the location until it frees.
    pub fn observe(&self, limits: &RateLimitInfo) {
        let now = Instant::now();
        let mut state = self.lock();
        self.prune(&mut state, now);
        state.last_seen = Some((limits.clone(), now));
        if let Some(daily) = limits.daily_remaining {
            if daily == 0 {
                // Undocumented reset header when present; else try again in an hour.
                let wait = limits.daily_reset.unwrap_or(DAILY_RESET_FALLBACK);
                Self::pause_locked(&mut state, now + wait);
            }
        }
        let Some(remaining) = limits.remaining.filter(|_| self.count_others) else {
            return;
        };
        // GHL's count includes what this limiter has sent; only a shortfall beyond that (another
        // app spending the same budget) is marked used here. The request that spends the last
        // slot sees `remaining: 0` with nothing missing, and the sliding window frees that slot
        // on time — pausing a whole interval from now would waste part of the budget.
        let remaining = usize::try_from(remaining).unwrap_or(usize::MAX);
        let used = state.in_flight + state.completed.len();
        let free_here = self.burst.saturating_sub(used);
        if remaining < free_here {
            for _ in 0..(free_here - remaining) {
                state.completed.push_back(now);
            }
        }
    }

    /// Stops spending this location's budget until `until` (after a 429).
    pub fn pause_until(&self, until: Instant) {
        let mut state = self.lock();
        Self::pause_locked(&mut state, until);
    }

    fn pause_locked(state: &mut State, until: Instant) {
        if state.paused_until.is_none_or(|t| t < until) {
            state.paused_until = Some(until);
        }
    }

    /// What this limiter knows now (the admin overview).
    pub fn snapshot(&self) -> LimiterSnapshot {
        let now = Instant::now();
        let mut state = self.lock();
        self.prune(&mut state, now);
        LimiterSnapshot {
            burst: self.burst,
            window: self.window,
            used: state.in_flight + state.completed.len(),
            paused_for: state.paused_until.map(|t| t.saturating_duration_since(now)),
            last_seen: state
                .last_seen
                .as_ref()
                .map(|(info, at)| (info.clone(), now.saturating_duration_since(*at))),
        }
    }

    /// When the location is paused, until when.
    pub fn paused_until(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut state = self.lock();
        self.prune(&mut state, now);
        state.paused_until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_burst_per_window() {
        let limiter = LocationLimiter::new(5, Duration::from_secs(10));
        let start = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..12 {
            let permit = limiter.acquire(Duration::from_secs(60)).await.unwrap();
            starts.push(start.elapsed());
            drop(permit);
        }
        // 5 at once, then 5 when the first window ends, then 2 more after another.
        assert_eq!(starts[4], Duration::ZERO);
        assert!(starts[5] >= Duration::from_secs(10));
        assert!(starts[10] >= Duration::from_secs(20));
        for (i, t) in starts.iter().enumerate() {
            let in_window = starts
                .iter()
                .filter(|s| **s >= *t && **s < *t + Duration::from_secs(10))
                .count();
            assert!(
                in_window <= 5,
                "window starting at request {i} holds {in_window}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_without_an_answer_holds_its_slot_until_it_can_no_longer_land() {
        let limiter = LocationLimiter::new(2, Duration::from_secs(10));
        let start = Instant::now();
        let lost = limiter.acquire(Duration::ZERO).await.unwrap();
        lost.complete_at(start + Duration::from_secs(30));
        drop(limiter.acquire(Duration::ZERO).await.unwrap());
        // The answered one frees at 10 s; the lost one only 10 s after it may have run.
        let free_at = limiter.acquire(Duration::ZERO).await.unwrap_err();
        assert_eq!(free_at, start + Duration::from_secs(10));
        tokio::time::sleep_until(free_at).await;
        let _third = limiter.acquire(Duration::ZERO).await.unwrap();
        let free_at = limiter.acquire(Duration::ZERO).await.unwrap_err();
        assert_eq!(free_at, start + Duration::from_secs(40));
    }

    #[tokio::test(start_paused = true)]
    async fn too_long_a_wait_is_refused_with_the_free_time() {
        let limiter = LocationLimiter::new(1, Duration::from_secs(10));
        drop(limiter.acquire(Duration::ZERO).await.unwrap());
        let err = limiter.acquire(Duration::from_secs(1)).await.unwrap_err();
        assert!(err >= Instant::now() + Duration::from_secs(9));
    }

    #[tokio::test(start_paused = true)]
    async fn headers_reduce_the_budget_and_zero_remaining_pauses() {
        let limiter = LocationLimiter::new(100, Duration::from_secs(10));
        limiter.observe(&RateLimitInfo {
            remaining: Some(2),
            ..Default::default()
        });
        let _a = limiter.acquire(Duration::ZERO).await.unwrap();
        let _b = limiter.acquire(Duration::ZERO).await.unwrap();
        assert!(limiter.acquire(Duration::ZERO).await.is_err());

        // Another app spent the whole window: nothing is free until this window's slots age out.
        let other = LocationLimiter::new(100, Duration::from_secs(10));
        other.observe(&RateLimitInfo {
            remaining: Some(0),
            ..Default::default()
        });
        assert!(other.acquire(Duration::from_secs(5)).await.is_err());
        assert!(other.acquire(Duration::from_secs(11)).await.is_ok());

        // Our own last slot reported as `remaining: 0` does not pause the location.
        let own = LocationLimiter::new(1, Duration::from_secs(10));
        let permit = own.acquire(Duration::ZERO).await.unwrap();
        own.observe(&RateLimitInfo {
            remaining: Some(0),
            interval: Some(Duration::from_secs(10)),
            ..Default::default()
        });
        drop(permit);
        assert!(own.paused_until().is_none());
    }
}
