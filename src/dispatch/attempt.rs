//! One attempt at an event as its steps see it: the [`Executor`] (store, client, budget,
//! lease), each GHL request made under the location's rate budget with the lease kept alive,
//! and the step records written as the work goes.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;

use super::decision::PauseReason;
use super::pipelines::PipelineCache;
use super::retry::RetryPolicy;
use crate::domain::plan::Step;
use crate::ghl::call_log::{self, CallOutcome, GhlCall};
use crate::ghl::{GhlClient, GhlError, GhlResponse};
use crate::ghl_access::{Budget, BudgetPermit, BudgetWait};
use crate::store::{
    ClaimedEvent, Finish, LeadRecords, Queue, StepRecord, StepRequest, StepStatus, StoreError,
};

/// The most requests kept for one step (a paged look-up could make many).
const MAX_STEP_REQUESTS: usize = 20;

/// Why an attempt stopped before the plan was done.
#[derive(Debug)]
pub enum Stop {
    /// Finish the attempt this way.
    Finish(Finish),
    /// Nothing for the location can succeed until a person acts (token, access, setting):
    /// pause the location, requeue without an attempt.
    PauseLocation(PauseReason, String),
    /// The rate budget frees too late to wait: requeue at this time without an attempt.
    Budget(OffsetDateTime),
    /// This worker no longer holds the lease: drop the event, another worker has it.
    LeaseLost,
    /// The store failed; the lease will expire and the event will be retried.
    Store(StoreError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Store(e)
    }
}

/// A step's failure before classification (`execute` turns it into a [`Stop`]).
#[derive(Debug)]
pub(super) enum StepError {
    Ghl(GhlError),
    /// A create got no answer: GHL may still carry it out until `until`, so the step is
    /// looked for (and sent again) only then.
    InDoubt {
        error: GhlError,
        until: OffsetDateTime,
    },
    Budget(tokio::time::Instant),
    Plan(String),
    /// The step needs an earlier delivery of its lead that has not reached GHL yet.
    Wait(String),
    Stop(Stop),
}

/// What one event's execution needs.
pub struct Executor<'a> {
    /// Where step results and leases are kept.
    pub store: &'a dyn Queue,
    /// The process's GHL client.
    pub client: &'a GhlClient,
    /// The event's location's rate budget.
    pub budget: &'a Budget,
    /// When a failed attempt is tried again, and when it gives up.
    pub retry: &'a RetryPolicy,
    /// The longest a request waits for the rate budget before the event is requeued.
    pub max_budget_wait: Duration,
    /// Lease length; the lease is renewed when less than half of it is left.
    pub lease: Duration,
    /// Current end of the lease (unix ms), renewed as the work goes on.
    pub lease_until: AtomicI64,
    /// How long a follow-up or an edit waits for the delivery it refers to
    /// (`dispatch.follow_up_wait`).
    pub follow_up_wait: Duration,
    /// What leads made that later deliveries find again (their opportunities).
    pub leads: &'a dyn LeadRecords,
    /// Each location's pipelines, fetched once.
    pub pipelines: &'a PipelineCache,
    /// Downloads file answers for upload steps (`[files]`); `None` when its client could not
    /// be built (each upload step then records why).
    pub downloader: Option<&'a crate::files::Downloader>,
    /// How long after it was sent a request without an answer may still be carried out by GHL
    /// (`ghl.request_timeout` + `ghl.late_write_window`).
    pub in_doubt_for: Duration,
    /// The GHL requests of the step being run in this attempt, carried by its records.
    pub step_requests: std::sync::Mutex<StepRequests>,
}

/// The GHL requests one step made in this attempt (taken from [`call_log`] as it records).
#[derive(Debug, Default)]
pub struct StepRequests {
    index: Option<u32>,
    list: Vec<StepRequest>,
    /// Whether the step has a stored record in this attempt.
    recorded: bool,
}

/// The record of step `index` sent (or failed) without a known outcome, as of now.
fn started(index: u32, step: &Step, in_doubt_until: Option<OffsetDateTime>) -> StepRecord {
    StepRecord {
        index,
        kind: step.kind(),
        status: StepStatus::Started,
        ghl_id: None,
        detail: None,
        updated_at: OffsetDateTime::now_utc(),
        in_doubt_until,
        requests: Vec::new(),
    }
}

/// A request from the log as a step keeps it.
fn step_request(call: GhlCall) -> StepRequest {
    let (status, failure) = match call.outcome {
        CallOutcome::Status(status) => (Some(status), None),
        CallOutcome::Timeout => (None, Some("timeout".to_owned())),
        CallOutcome::Connection => (None, Some("connection".to_owned())),
    };
    StepRequest {
        request: call.endpoint.to_owned(),
        status,
        failure,
        ms: u64::try_from(call.elapsed.as_millis()).unwrap_or(u64::MAX),
    }
}

impl Executor<'_> {
    /// Records a step's status (and the GHL id it produced) under the event's lease.
    pub(super) async fn record(
        &self,
        event: &ClaimedEvent,
        index: u32,
        step: &Step,
        status: StepStatus,
        ghl_id: Option<String>,
    ) -> Result<(), Stop> {
        self.record_with_detail(event, index, step, status, ghl_id, None)
            .await
    }

    /// Records a step's status, GHL id and what it did (`detail`, kept when a later record of
    /// the same step has none).
    pub(super) async fn record_with_detail(
        &self,
        event: &ClaimedEvent,
        index: u32,
        step: &Step,
        status: StepStatus,
        ghl_id: Option<String>,
        detail: Option<String>,
    ) -> Result<(), Stop> {
        let record = StepRecord {
            index,
            kind: step.kind(),
            status,
            ghl_id,
            detail,
            updated_at: OffsetDateTime::now_utc(),
            in_doubt_until: None,
            requests: Vec::new(),
        };
        self.write_step(event, record).await
    }

    /// Writes a step record carrying the GHL requests the step made so far in this attempt
    /// (in the same statement: no write of its own per request).
    async fn write_step(&self, event: &ClaimedEvent, mut record: StepRecord) -> Result<(), Stop> {
        record.requests = self.requests_of(record.index);
        if self
            .store
            .record_step(event.id, &event.lease, &record)
            .await?
        {
            self.note_recorded(record.index);
            Ok(())
        } else {
            Err(Stop::LeaseLost)
        }
    }

    /// The kept requests of step `index`, emptied first when they were another step's.
    fn kept_for(&self, index: u32) -> std::sync::MutexGuard<'_, StepRequests> {
        let mut kept = self
            .step_requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if kept.index != Some(index) {
            *kept = StepRequests {
                index: Some(index),
                ..StepRequests::default()
            };
        }
        kept
    }

    /// The requests step `index` made in this attempt: those kept, and those logged since.
    fn requests_of(&self, index: u32) -> Vec<StepRequest> {
        let fresh = call_log::take();
        let mut kept = self.kept_for(index);
        kept.list.extend(fresh.into_iter().map(step_request));
        let over = kept.list.len().saturating_sub(MAX_STEP_REQUESTS);
        kept.list.drain(..over);
        kept.list.clone()
    }

    /// Notes that step `index` has a stored record in this attempt.
    fn note_recorded(&self, index: u32) {
        self.kept_for(index).recorded = true;
    }

    /// Whether step `index` has a stored record in this attempt.
    fn is_recorded(&self, index: u32) -> bool {
        self.kept_for(index).recorded
    }

    /// After step `index` failed with GHL's answer (or none): its requests of this attempt
    /// onto its record, when it has one or `keep` (it had one from an earlier attempt, or
    /// the event is dead-lettered). The status stays `started`; `in_doubt_until` is the
    /// failed request's (a create without an answer). Otherwise a step with no record gets
    /// none (a `started` record would make its next attempt look it up first); GHL's answer
    /// is then in the attempt's error. One write per failed attempt, not per request; a store
    /// failure here changes nothing of how the attempt ends.
    pub(super) async fn record_failed_requests(
        &self,
        event: &ClaimedEvent,
        index: u32,
        step: &Step,
        keep: bool,
        in_doubt_until: Option<OffsetDateTime>,
    ) {
        let requests = self.requests_of(index);
        if keep {
            self.note_recorded(index);
        }
        if requests.is_empty() || !self.is_recorded(index) {
            return;
        }
        let record = StepRecord {
            requests,
            ..started(index, step, in_doubt_until)
        };
        if let Err(e) = self
            .store
            .record_step(event.id, &event.lease, &record)
            .await
        {
            tracing::warn!(error = %e, "could not keep the failed step's GHL requests");
        }
    }

    /// Sends a create (a record found again by its marker) under the rate budget. Once the
    /// budget lets it go, the step is recorded `started` and in doubt until GHL can no longer
    /// carry the request out, then the request is sent: after a lost answer or a crash the
    /// next attempt looks for the marker only once a late write can no longer land (a look-up
    /// before would find nothing and create a second record). With an answer the doubt is
    /// lifted. (Any request without an answer keeps its budget slot until then: [`Self::send`].)
    pub(super) async fn create<T, F, Fut>(
        &self,
        event: &ClaimedEvent,
        index: u32,
        step: &Step,
        f: F,
    ) -> Result<T, StepError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<GhlResponse<T>, GhlError>>,
    {
        let permit = self.permit(event).await?;
        let in_doubt_until = OffsetDateTime::now_utc() + self.in_doubt_for;
        let started = started(index, step, Some(in_doubt_until));
        if let Err(stop) = self.write_step(event, started).await {
            permit.complete().await;
            return Err(StepError::Stop(stop));
        }
        match self.send(permit, f).await {
            Ok(resp) => {
                self.budget.observe(&resp.limits);
                Ok(resp.body)
            }
            Err(error) if error.may_still_land() => {
                self.budget.observe(error.limits());
                Err(StepError::InDoubt {
                    error,
                    until: in_doubt_until,
                })
            }
            Err(error) => {
                self.budget.observe(error.limits());
                // GHL answered: nothing of this request is left to land.
                self.record(event, index, step, StepStatus::Started, None)
                    .await
                    .map_err(StepError::Stop)?;
                Err(StepError::Ghl(error))
            }
        }
    }

    /// Waits for the location's rate budget, then makes sure the lease outlives the request.
    async fn permit(&self, event: &ClaimedEvent) -> Result<BudgetPermit, StepError> {
        let permit =
            self.budget
                .acquire(self.max_budget_wait)
                .await
                .map_err(|wait| match wait {
                    BudgetWait::Until(at) => StepError::Budget(at),
                    BudgetWait::Store(e) => StepError::Stop(Stop::Store(e)),
                })?;
        self.keep_lease(event).await.map_err(StepError::Stop)?;
        Ok(permit)
    }

    /// Runs `work` (a step that holds one request open long: a file streamed into GHL) while
    /// renewing the lease every quarter of it; drops the work when the lease is lost.
    pub(super) async fn with_lease_kept<T>(
        &self,
        event: &ClaimedEvent,
        work: impl std::future::Future<Output = Result<T, StepError>>,
    ) -> Result<T, StepError> {
        let renew = async {
            loop {
                tokio::time::sleep(self.lease / 4).await;
                if let Err(stop) = self.keep_lease(event).await {
                    return stop;
                }
            }
        };
        tokio::select! {
            done = work => done,
            stop = renew => Err(StepError::Stop(stop)),
        }
    }

    async fn keep_lease(&self, event: &ClaimedEvent) -> Result<(), Stop> {
        let now = OffsetDateTime::now_utc();
        let until = self.lease_until.load(Ordering::Relaxed);
        let left_ms = until - unix_ms(now);
        if left_ms > i64::try_from(self.lease.as_millis() / 2).unwrap_or(i64::MAX) {
            return Ok(());
        }
        let new_until = now + self.lease;
        if self
            .store
            .renew_lease(event.id, &event.lease, new_until)
            .await?
        {
            self.lease_until
                .store(unix_ms(new_until), Ordering::Relaxed);
            Ok(())
        } else {
            Err(Stop::LeaseLost)
        }
    }

    /// Sends one request under the location's rate budget: its result, or why it was not sent.
    async fn budgeted<R, F, Fut>(
        &self,
        event: &ClaimedEvent,
        f: F,
    ) -> Result<Result<R, GhlError>, StepError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<R, GhlError>>,
    {
        let permit = self.permit(event).await?;
        Ok(self.send(permit, f).await)
    }

    /// Sends one request under `permit`. One that got no answer keeps its slot until GHL can
    /// no longer carry it out: GHL counts a request in its window when it runs, however late.
    async fn send<R, F, Fut>(&self, permit: BudgetPermit, f: F) -> Result<R, GhlError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<R, GhlError>>,
    {
        let lands_by = tokio::time::Instant::now() + self.in_doubt_for;
        let result = f().await;
        match &result {
            Err(e) if e.may_still_land() => permit.complete_at(lands_by).await,
            _ => permit.complete().await,
        }
        result
    }

    /// One GHL call with budget and header bookkeeping.
    pub(super) async fn call<T, F, Fut>(&self, event: &ClaimedEvent, f: F) -> Result<T, StepError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<GhlResponse<T>, GhlError>>,
    {
        match self.budgeted(event, f).await? {
            Ok(resp) => {
                self.budget.observe(&resp.limits);
                Ok(resp.body)
            }
            Err(e) => {
                self.budget.observe(e.limits());
                Err(StepError::Ghl(e))
            }
        }
    }

    /// A marker lookup (one list request) under the rate budget.
    pub(super) async fn find<T, F, Fut>(
        &self,
        event: &ClaimedEvent,
        f: F,
    ) -> Result<Option<T>, StepError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, GhlError>>,
    {
        self.budgeted(event, f).await?.map_err(|e| {
            self.budget.observe(e.limits());
            StepError::Ghl(e)
        })
    }

    /// Changes an existing task or note (an edit's update, a lead's task completed or moved)
    /// under the rate budget: its id, or nothing when someone deleted it in GHL meanwhile (no
    /// failure: a lead's task has nothing left to change, an edit writes its note or task anew).
    pub(super) async fn change_existing<T, F, Fut>(
        &self,
        event: &ClaimedEvent,
        ghl_id: &str,
        request: F,
    ) -> Result<Option<String>, StepError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<GhlResponse<T>, GhlError>>,
    {
        match self.call(event, request).await {
            Ok(_) => Ok(Some(ghl_id.to_owned())),
            Err(StepError::Ghl(e)) if e.names_missing_record() => {
                tracing::info!(ghl_id, "the record is gone from GHL (deleted there)");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// Unix milliseconds, for the lease bookkeeping.
pub fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}
