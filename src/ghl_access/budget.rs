//! A location's GHL rate budget as every GHL caller spends it: this process's limiter and, when
//! the store is shared by several replicas, the slots every replica takes from
//! ([`crate::store::SharedBudget`]), so that together they stay within GHL's window. [`Budgets`]
//! holds every location's, one registry for all of this process's GHL requests (dispatch and
//! the JivoChat agent view's look-ups).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::limiter::{LimiterSnapshot, LocationLimiter, Permit, DAILY_RESET_FALLBACK};
use crate::domain::LocationId;
use crate::ghl::settings::GhlSettings;
use crate::ghl::RateLimitInfo;
use crate::store::{SharedBudget, SlotGrant, SlotTicket, StoreError};

/// Every GHL location's rate budget in this process: one limiter per location, created on first
/// use, shared by everything that calls GHL so that together they spend one budget.
pub struct Budgets {
    burst: u32,
    window: Duration,
    /// How long a shared slot stays taken when its request never reports back: as long as GHL
    /// may carry the request out (`ghl.request_timeout` + `ghl.late_write_window`), plus a
    /// window.
    hold: Duration,
    shared: Option<Arc<dyn SharedBudget>>,
    limiters: Mutex<HashMap<LocationId, Arc<LocationLimiter>>>,
}

impl Budgets {
    /// The budgets of `[ghl.rate_limit]`, beside the replicas' shared slots when the store has
    /// them (`Store::shared_budget`).
    pub fn new(ghl: &GhlSettings, shared: Option<Arc<dyn SharedBudget>>) -> Self {
        Self {
            burst: ghl.rate_limit.burst,
            window: ghl.rate_limit.window,
            hold: ghl.in_doubt_for() + ghl.rate_limit.window,
            shared,
            limiters: Mutex::default(),
        }
    }

    /// The location's budget: this process's limiter, and the replicas' shared slots when the
    /// store has them.
    pub fn budget(&self, location: &LocationId) -> Budget {
        let local = self
            .limiters()
            .entry(location.clone())
            .or_insert_with(|| match self.shared {
                Some(_) => LocationLimiter::beside_replicas(self.burst, self.window),
                None => LocationLimiter::new(self.burst, self.window),
            })
            .clone();
        Budget {
            local,
            shared: self.shared.clone().map(|budget| SharedSlots {
                budget,
                location: location.clone(),
                burst: self.burst,
                window: self.window,
                hold: self.hold,
            }),
        }
    }

    /// The locations paused (a 429, a spent window or daily quota) for longer than `max_wait`
    /// from `now`.
    pub fn paused_longer_than(&self, now: Instant, max_wait: Duration) -> Vec<LocationId> {
        self.limiters()
            .iter()
            .filter(|(_, limiter)| {
                limiter
                    .paused_until()
                    .is_some_and(|until| until.saturating_duration_since(now) > max_wait)
            })
            .map(|(location, _)| location.clone())
            .collect()
    }

    /// Every location this process has a limiter for, with what it knows now (the admin
    /// overview), sorted by location.
    pub fn snapshot(&self) -> Vec<(LocationId, LimiterSnapshot)> {
        let limiters: Vec<_> = self
            .limiters()
            .iter()
            .map(|(location, limiter)| (location.clone(), limiter.clone()))
            .collect();
        let mut all: Vec<_> = limiters
            .into_iter()
            .map(|(location, limiter)| (location, limiter.snapshot()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Whether the replicas share this budget through the store (what this process knows of
    /// the window is then only its own share).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    fn limiters(&self) -> std::sync::MutexGuard<'_, HashMap<LocationId, Arc<LocationLimiter>>> {
        // The map only holds limiters; a panicked holder cannot leave it inconsistent.
        self.limiters.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The shared half of a budget: one location's slots in the store.
#[derive(Clone)]
pub struct SharedSlots {
    /// The store's slots, shared by every replica.
    pub budget: Arc<dyn SharedBudget>,
    /// Whose slots.
    pub location: LocationId,
    /// Requests per window (the same `ghl.rate_limit.burst` every replica is configured with).
    pub burst: u32,
    /// GHL's burst window.
    pub window: Duration,
    /// How long a slot stays taken when its request never reports back (a replica died
    /// mid-request): as long as GHL may carry the request out, plus one window.
    pub hold: Duration,
}

/// Why no request may start now.
#[derive(Debug)]
pub enum BudgetWait {
    /// The budget frees at this instant, later than the caller may wait.
    Until(Instant),
    /// The shared budget could not be read.
    Store(StoreError),
}

/// One location's budget for one event's requests.
pub struct Budget {
    /// This process's limiter of the location.
    pub local: Arc<LocationLimiter>,
    /// The replicas' shared slots, when the store has them.
    pub shared: Option<SharedSlots>,
}

/// Held while a request is in flight; [`BudgetPermit::complete`] when it has answered.
pub struct BudgetPermit {
    local: Permit,
    shared: Option<(SharedSlots, SlotTicket)>,
}

impl BudgetPermit {
    /// The request has completed: the slots' windows start now.
    pub async fn complete(self) {
        self.complete_at(Instant::now()).await;
    }

    /// The request got no answer and GHL may still carry it out until `at`: the slots'
    /// windows start then, since GHL counts the request when it runs.
    pub async fn complete_at(self, at: Instant) {
        self.local.complete_at(at);
        if let Some((slots, ticket)) = self.shared {
            let window = slots.window + at.saturating_duration_since(Instant::now());
            if let Err(e) = slots
                .budget
                .complete(&slots.location, &ticket, window)
                .await
            {
                // The slot stays taken until its hold runs out: budget lost for a while,
                // never overspent.
                tracing::warn!(error = %e, location_id = %slots.location, "cannot free a shared rate-budget slot");
            }
        }
    }
}

impl Budget {
    /// Waits (at most `max_wait` in all) for this process's limiter, then for a shared slot.
    pub async fn acquire(&self, max_wait: Duration) -> Result<BudgetPermit, BudgetWait> {
        let deadline = Instant::now() + max_wait;
        let local = self
            .local
            .acquire(max_wait)
            .await
            .map_err(BudgetWait::Until)?;
        let Some(slots) = &self.shared else {
            return Ok(BudgetPermit {
                local,
                shared: None,
            });
        };
        loop {
            match slots
                .budget
                .take(&slots.location, slots.burst, slots.hold)
                .await
                .map_err(BudgetWait::Store)?
            {
                SlotGrant::Granted(ticket) => {
                    return Ok(BudgetPermit {
                        local,
                        shared: Some((slots.clone(), ticket)),
                    })
                }
                SlotGrant::WaitFor(wait) => {
                    let at = Instant::now() + wait;
                    if at > deadline {
                        // Nothing frees sooner for any worker of this process either.
                        self.local.pause_until(at);
                        return Err(BudgetWait::Until(at));
                    }
                    tokio::time::sleep_until(at).await;
                }
            }
        }
    }

    /// Adapts to the rate-limit headers of a GHL answer; a spent daily quota pauses the
    /// location for every replica.
    pub fn observe(&self, limits: &RateLimitInfo) {
        self.local.observe(limits);
        if limits.daily_remaining == Some(0) {
            self.pause_shared(limits.daily_reset.unwrap_or(DAILY_RESET_FALLBACK));
        }
    }

    /// No request for this location for `wait` (after a 429), in every replica.
    pub fn pause_for(&self, wait: Duration) {
        self.local.pause_until(Instant::now() + wait);
        self.pause_shared(wait);
    }

    fn pause_shared(&self, wait: Duration) {
        let Some(slots) = self.shared.clone() else {
            return;
        };
        // Off the request path: the other replicas learn of it on their next slot.
        tokio::spawn(async move {
            if let Err(e) = slots.budget.pause(&slots.location, wait).await {
                tracing::warn!(error = %e, location_id = %slots.location, "cannot share a rate-limit pause with the other replicas");
            }
        });
    }
}
