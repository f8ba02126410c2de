//! Dispatch: workers that claim stored events and execute their plans against GHL.
//!
//! One loop prepares new deliveries (normalize + plan, in arrival order), claims due events
//! under a lease — in fair order between flows, one per (location, source) (one source's or
//! location's flood does not make others' leads wait behind it; see `store::sqlite_queue`), at
//! most a cap's worth per location per claim, at most one per contact
//! at a time and in arrival order for that contact, none for a location that is paused, blocked
//! or at its concurrency cap — and runs each claimed event in its own task. Each GHL location
//! has its own rate limiter, so one location's trouble never slows another.
//!
//! # Layout
//! - [`prepare`]: normalize each new delivery and build its plan; [`preview`]: the same
//!   without GHL (`formbridge map`).
//! - [`execute`]: run one event's plan, turn its first failure into how the attempt ends.
//! - [`steps`]: one function per step kind (what each sends); [`requests`]: the contact bodies.
//! - [`attempt`]: the [`Executor`] and its requests under the rate budget and the lease.
//! - [`thread`]: what an event's lead and earlier revisions made; [`decision`]: what each GHL
//!   failure class means; [`retry`]: the backoff policy.
//! - [`lead_keys`]: what a prepared event is found by; [`overview`]: the read-only snapshot of
//!   each location's budget, pause and token for the admin overview.
//!
//! The rate budget and the token adapter are not here: [`crate::ghl_access`] holds them for
//! every GHL caller of the process.

pub mod attempt;
pub mod decision;
pub mod execute;
pub mod lead_keys;
pub mod overview;
mod owner_hint;
pub mod pipelines;
pub mod prepare;
pub mod preview;
pub mod requests;
pub mod retry;
pub mod steps;
pub mod thread;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::alerts::{Alert, AlertSink};
use crate::domain::{EventId, LocationId};
use crate::ghl::{GhlClient, GhlError};
use crate::ghl_access::{Budget, Budgets};
use crate::runtime::SourceRuntimes;
use crate::settings::Settings;
use crate::store::{
    Claim, ClaimedEvent, Finish, LeadRecords, LeaseToken, Queue, Store, TokenVault,
};
use attempt::{Executor, Stop};
use pipelines::PipelineCache;
use prepare::Preparer;
use retry::RetryPolicy;

/// Events prepared per store round trip.
const PREPARE_BATCH: u32 = 256;
/// Events claimed per store round trip, at most.
const MAX_CLAIM: usize = 256;

/// Why the dispatcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("cannot build the GHL client: {0}")]
    Client(#[from] GhlError),
}

/// The dispatcher of one process.
pub struct Dispatcher {
    store: Arc<dyn Queue>,
    /// What leads made in GHL that later deliveries find again (their opportunities).
    leads: Arc<dyn LeadRecords>,
    /// Each location's pipelines, fetched once.
    pipelines: PipelineCache,
    client: GhlClient,
    settings: Arc<Settings>,
    preparer: Preparer,
    retry: RetryPolicy,
    /// This process's name in leases; each claim adds a sequence number, so two claims of the
    /// same event (after a lease ran out) are fenced from each other even in one process.
    owner: String,
    claims: AtomicU64,
    wake: Arc<Notify>,
    /// Every location's rate budget, shared with the other GHL callers of this process.
    budgets: Arc<Budgets>,
    /// Locations whose token GHL refused (or access, or the configuration), until when.
    blocked: Mutex<HashMap<LocationId, (Instant, decision::PauseReason)>>,
    in_flight: Mutex<HashMap<LocationId, usize>>,
    /// Where dead letters and blocked locations are reported.
    alerts: AlertSink,
    /// The leases of the events being worked on now, so a stop that cannot wait for them
    /// gives them back at once ([`Dispatcher::release_held`]).
    held: Mutex<HashMap<EventId, LeaseToken>>,
    /// Downloads file answers for upload steps (`[files]`).
    downloader: Option<crate::files::Downloader>,
}

impl Dispatcher {
    /// A dispatcher over `store`, waking early whenever `wake` is notified (new delivery, replay),
    /// reporting dead letters and blocked locations to `alerts`.
    pub fn new(
        settings: Arc<Settings>,
        runtimes: Arc<SourceRuntimes>,
        store: Arc<dyn Store>,
        wake: Arc<Notify>,
        alerts: AlertSink,
    ) -> Result<Self, DispatchError> {
        let client = ghl_client(&settings, store.clone())?;
        let budgets = Arc::new(Budgets::new(&settings.ghl, store.shared_budget()));
        Ok(Self::with_ghl(
            settings, runtimes, store, wake, alerts, client, budgets,
        ))
    }

    /// Like [`Dispatcher::new`], with a GHL client and rate budgets shared with the rest of
    /// the process (one OAuth refresher, one budget per location).
    pub fn with_ghl(
        settings: Arc<Settings>,
        runtimes: Arc<SourceRuntimes>,
        store: Arc<dyn Store>,
        wake: Arc<Notify>,
        alerts: AlertSink,
        client: GhlClient,
        budgets: Arc<Budgets>,
    ) -> Self {
        let owner = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
        let downloader = crate::files::Downloader::new(settings.files.clone())
            .map_err(|e| tracing::error!(error = %e, "cannot build the file download client; upload steps will record it"))
            .ok();
        Self {
            downloader,
            preparer: Preparer::new(&settings, runtimes, alerts.clone()).indexing(store.clone()),
            retry: RetryPolicy::from_settings(&settings.dispatch.retry),
            leads: store.clone(),
            pipelines: PipelineCache::default(),
            store,
            client,
            settings,
            owner,
            claims: AtomicU64::new(0),
            wake,
            budgets,
            blocked: Mutex::default(),
            in_flight: Mutex::default(),
            held: Mutex::default(),
            alerts,
        }
    }

    /// The location's budget (see [`Budgets::budget`]).
    fn budget(&self, location: &LocationId) -> Budget {
        self.budgets.budget(location)
    }

    /// Runs until `shutdown` is cancelled, then lets in-flight events finish.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let workers = Arc::new(Semaphore::new(self.settings.dispatch.workers));
        let mut tasks = JoinSet::new();
        tracing::info!(owner = %self.owner, workers = self.settings.dispatch.workers, "dispatcher started");
        warn_if_workers_are_few(&self.settings);
        while !shutdown.is_cancelled() {
            let more_to_prepare = self.prepare_batch().await;
            let claimed = self.claim_and_spawn(&workers, &mut tasks, &shutdown).await;
            while tasks.try_join_next().is_some() {}
            if more_to_prepare || (claimed > 0 && workers.available_permits() > 0) {
                continue; // more may be due right away
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.settings.dispatch.poll_interval) => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        tracing::info!(
            in_flight = tasks.len(),
            "dispatcher stopping: finishing in-flight events"
        );
        while tasks.join_next().await.is_some() {}
    }

    /// One pass, for tests and tools that drive dispatch themselves instead of [`Self::run`]:
    /// prepares every new delivery, claims every event due now (that its location may take)
    /// and runs them to completion. Returns how many events it ran.
    pub async fn run_once(self: &Arc<Self>) -> usize {
        while self.prepare_batch().await {}
        let workers = Arc::new(Semaphore::new(self.settings.dispatch.workers));
        let mut tasks = JoinSet::new();
        let ran = self
            .claim_and_spawn(&workers, &mut tasks, &CancellationToken::new())
            .await;
        while tasks.join_next().await.is_some() {}
        ran
    }

    /// Prepares one batch of new deliveries; returns whether more may be waiting. One batch per
    /// turn keeps claims flowing while a backlog is prepared; claims only see prepared events,
    /// and preparation goes in arrival order, so every event older than a claimable one is
    /// prepared too (per-contact ordering holds).
    async fn prepare_batch(&self) -> bool {
        match self
            .preparer
            .run_once(self.store.as_ref(), PREPARE_BATCH)
            .await
        {
            Ok(n) => n == PREPARE_BATCH as usize,
            Err(e) => {
                tracing::error!(error = %e, "cannot prepare events");
                false
            }
        }
    }

    /// Locations not to claim for now: at their concurrency cap, blocked on their token, or
    /// paused longer than a budget wait.
    fn claim_window(&self) -> Vec<LocationId> {
        let now = Instant::now();
        let cap = self.settings.dispatch.per_location_concurrency;
        let max_wait = self.settings.dispatch.max_budget_wait;
        let mut excluded = Vec::new();
        for (location, n) in lock(&self.in_flight).iter() {
            if *n >= cap {
                excluded.push(location.clone());
            }
        }
        lock(&self.blocked).retain(|location, (until, _)| {
            let still = *until > now;
            if !still {
                metrics::gauge!(crate::metrics::GHL_LOCATION_BLOCKED, "location" => location.to_string())
                    .set(0.0);
            }
            still
        });
        excluded.extend(lock(&self.blocked).keys().cloned());
        excluded.extend(self.budgets.paused_longer_than(now, max_wait));
        excluded.sort();
        excluded.dedup();
        excluded
    }

    async fn claim_and_spawn(
        self: &Arc<Self>,
        workers: &Arc<Semaphore>,
        tasks: &mut JoinSet<()>,
        shutdown: &CancellationToken,
    ) -> usize {
        let mut total = 0;
        loop {
            let free = workers.available_permits();
            if shutdown.is_cancelled() {
                return total;
            }
            let exclude_locations = self.claim_window();
            // Locations at their cap are excluded; any other gets at most a cap's worth per
            // claim, so a location can pass its cap by less than one cap.
            let limit = free.min(MAX_CLAIM);
            if limit == 0 {
                return total;
            }
            let now = OffsetDateTime::now_utc();
            let lease = LeaseToken::new(format!(
                "{}#{}",
                self.owner,
                self.claims.fetch_add(1, Ordering::Relaxed)
            ));
            let claim = Claim {
                lease,
                now,
                lease_until: now + self.settings.dispatch.lease,
                limit: u32::try_from(limit).unwrap_or(u32::MAX),
                per_location_limit: u32::try_from(self.settings.dispatch.per_location_concurrency)
                    .unwrap_or(u32::MAX),
                exclude_locations,
            };
            let events = match self.store.claim(&claim).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::error!(error = %e, "cannot claim events");
                    return total;
                }
            };
            let got = events.len();
            for event in events {
                let Ok(permit) = workers.clone().try_acquire_owned() else {
                    // Cannot happen (limit <= free); give the lease back rather than hold it.
                    let _ = self.store.release(event.id, &event.lease, now).await;
                    continue;
                };
                *lock(&self.in_flight)
                    .entry(event.location_id.clone())
                    .or_default() += 1;
                lock(&self.held).insert(event.id, event.lease.clone());
                tasks.spawn(self.clone().process(event, permit));
            }
            total += got;
            if got < limit {
                return total;
            }
        }
    }

    async fn process(self: Arc<Self>, event: ClaimedEvent, _permit: OwnedSemaphorePermit) {
        let span = tracing::info_span!("dispatch", event_id = %event.id, source = %event.source, location_id = %event.location_id);
        let budget = self.budget(&event.location_id);
        let executor = Executor {
            store: self.store.as_ref(),
            client: &self.client,
            budget: &budget,
            retry: &self.retry,
            max_budget_wait: self.settings.dispatch.max_budget_wait,
            lease: self.settings.dispatch.lease,
            lease_until: AtomicI64::new(attempt::unix_ms(event.lease_until)),
            follow_up_wait: self.settings.dispatch.follow_up_wait,
            leads: self.leads.as_ref(),
            pipelines: &self.pipelines,
            downloader: self.downloader.as_ref(),
            in_doubt_for: self.settings.ghl.in_doubt_for(),
            step_requests: std::sync::Mutex::default(),
        };
        // The attempt's GHL requests are logged in a scope of their own, for its step records.
        let run = crate::ghl::call_log::scope(executor.run(&event));
        let outcome = tracing::Instrument::instrument(run, span.clone()).await;
        let finish = match outcome {
            Ok(()) => Some(Finish::Done),
            Err(Stop::Finish(f)) => Some(f),
            Err(Stop::PauseLocation(reason, error)) => {
                let block = self.settings.dispatch.auth_block;
                lock(&self.blocked)
                    .insert(event.location_id.clone(), (Instant::now() + block, reason));
                metrics::gauge!(crate::metrics::GHL_LOCATION_BLOCKED, "location" => event.location_id.to_string()).set(1.0);
                tracing::error!(parent: &span, %error, ?block, reason = reason.label(), "location's dispatch paused: {}", reason.remedy());
                self.alerts.emit(Alert::LocationBlocked {
                    location: event.location_id.to_string(),
                    reason: format!("{}; {error}", reason.remedy()),
                });
                // Due again at once: the in-memory block holds the location back, so a restart
                // with a fixed token resumes immediately. No attempt is counted.
                Some(Finish::Retry {
                    at: OffsetDateTime::now_utc(),
                    error,
                    counts_attempt: false,
                    outcome: match reason {
                        decision::PauseReason::Unauthorized => "auth_blocked",
                        decision::PauseReason::Forbidden => "forbidden_blocked",
                        decision::PauseReason::Config => "config_blocked",
                    },
                })
            }
            Err(Stop::Budget(at)) => {
                metrics::counter!(crate::metrics::DISPATCH, "outcome" => "requeued").increment(1);
                let pause = (at - OffsetDateTime::now_utc())
                    .try_into()
                    .unwrap_or_default();
                self.alerts.emit(Alert::LocationPaused {
                    location: event.location_id.to_string(),
                    pause,
                });
                if let Err(e) = self.store.release(event.id, &event.lease, at).await {
                    tracing::error!(parent: &span, error = %e, "cannot requeue event");
                }
                None
            }
            Err(Stop::LeaseLost) => {
                tracing::warn!(parent: &span, "lease lost: another worker took the event over");
                None
            }
            Err(Stop::Store(e)) => {
                tracing::error!(parent: &span, error = %e, "store failed during dispatch; the lease will expire and the event will be retried");
                None
            }
        };
        if let Some(finish) = finish {
            self.finish(&event, &finish, &span).await;
        }
        if let Some(n) = lock(&self.in_flight).get_mut(&event.location_id) {
            *n = n.saturating_sub(1);
        }
        lock(&self.held).remove(&event.id);
        self.wake.notify_one();
    }

    /// Gives back the lease of every event still being worked on, due now: for a stop whose
    /// grace ran out, after its tasks were cancelled, so another replica (or this one,
    /// restarted) takes them at once instead of after the lease. A step sent but not recorded
    /// is recorded `started`, so the next attempt looks for it in GHL before sending again.
    pub async fn release_held(&self) -> usize {
        let held: Vec<(EventId, LeaseToken)> = lock(&self.held).drain().collect();
        let now = OffsetDateTime::now_utc();
        let mut released = 0;
        for (id, lease) in held {
            match self.store.release(id, &lease, now).await {
                Ok(()) => released += 1,
                Err(e) => {
                    tracing::warn!(event_id = %id, error = %e, "cannot release an event at stop; its lease will expire")
                }
            }
        }
        released
    }

    async fn finish(&self, event: &ClaimedEvent, finish: &Finish, span: &tracing::Span) {
        let outcome = match finish {
            Finish::Done => "done",
            Finish::Retry { outcome, .. } => outcome,
            Finish::Dead { .. } => "dead",
        };
        match self.store.finish(event.id, &event.lease, finish).await {
            Ok(true) => {
                metrics::counter!(crate::metrics::DISPATCH, "outcome" => outcome).increment(1);
                match finish {
                    Finish::Done => tracing::info!(parent: span, "event delivered to GHL"),
                    Finish::Retry { error, at, .. } => {
                        metrics::counter!(crate::metrics::DISPATCH_RETRIES, "reason" => outcome)
                            .increment(1);
                        if outcome == execute::WAITING_FOR_LEAD {
                            // Normal for a follow-up a moment ahead of its lead.
                            tracing::info!(parent: span, %error, retry_at = %at, "event waits for its lead");
                        } else {
                            tracing::warn!(parent: span, %error, retry_at = %at, "event will be retried");
                        }
                    }
                    Finish::Dead { error } => {
                        metrics::counter!(crate::metrics::DEAD_LETTERS, "reason" => "ghl")
                            .increment(1);
                        tracing::error!(parent: span, %error, "event dead-lettered");
                        self.alerts.emit(Alert::DeadLetter {
                            event_id: event.id.0,
                            source: event.source.clone(),
                            error: error.clone(),
                        });
                    }
                }
            }
            Ok(false) => {
                tracing::warn!(parent: span, "lease lost before the attempt could be recorded")
            }
            Err(e) => {
                tracing::error!(parent: span, error = %e, "cannot record the attempt; the lease will expire and the event will be retried")
            }
        }
    }
}

/// The GHL client of `[ghl]`, its OAuth tokens kept in `store`. Build it once per process and
/// share it ([`Dispatcher::with_ghl`]): each client refreshes OAuth tokens on its own.
pub fn ghl_client(
    settings: &Settings,
    tokens: Arc<dyn TokenVault>,
) -> Result<GhlClient, DispatchError> {
    Ok(crate::ghl_access::client(&settings.ghl, tokens)?)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // These maps hold plain counters and times; a panicked holder cannot corrupt them.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Workers each GHL location needs to spend its budget: 10 requests/s × ~0.26 s per request
/// (GHL's answer and the store's writes, measured at 250 locations) × 1.5 headroom — the rule
/// `config/default.toml` gives for `dispatch.workers`.
const WORKERS_PER_LOCATION: usize = 4;

/// Warns at start when `dispatch.workers` is below what the configured locations need to
/// spend their budgets: too few workers is not an error (events still go, only slower), but
/// an operator adding locations should hear which key to raise.
fn warn_if_workers_are_few(settings: &Settings) {
    let locations = settings.ghl.locations.len() + usize::from(settings.ghl.location_id.is_some());
    let needed = locations * WORKERS_PER_LOCATION;
    if settings.dispatch.workers < needed {
        tracing::warn!(
            workers = settings.dispatch.workers,
            locations,
            "dispatch.workers is below what {locations} GHL locations need to spend their rate budgets (about {needed}: locations × 10 requests/s × GHL's response time × 1.5); events still go, but slower than GHL allows"
        );
    }
}
