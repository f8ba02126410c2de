//! Plan execution: run one claimed event's steps through the GHL client, record each result as
//! soon as GHL answers, and turn the first failure into a retry, a pause or a dead letter.
//!
//! Effectively-once: the upsert and tag steps are idempotent in GHL; a task or note step is
//! recorded as `started` before it is sent and carries a marker with the event id and step
//! index, so after a crash or a lost answer the marker is looked up on the contact before
//! anything is created again. A contact created by name (no email or phone to upsert on)
//! carries a marker tag instead, looked up the same way.

use std::sync::atomic::{AtomicI64, Ordering};

use std::time::Duration;

use time::OffsetDateTime;

use super::budget::{Budget, BudgetPermit, BudgetWait};
use super::decision::{decide, Decision, PauseReason};
use super::requests::{create_request, upsert_request};
use super::retry::RetryPolicy;
use super::thread::Thread;
use crate::domain::plan::Step;
use crate::domain::EventId;
use crate::ghl::types::{
    ContactProperties, CreateNoteRequest, CreateTaskRequest, UpdateContactRequest,
    UpdateNoteRequest, UpdateTaskRequest,
};
use crate::ghl::{GhlClient, GhlError, RateLimitInfo};
use crate::store::{ClaimedEvent, Finish, StepRecord, StepStatus, Store, StoreError};

/// The retry outcome of an event waiting for its lead (or an earlier revision): a metric label.
pub const WAITING_FOR_LEAD: &str = "waiting_for_lead";

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

/// What one event's execution needs.
pub struct Executor<'a> {
    pub store: &'a dyn Store,
    pub client: &'a GhlClient,
    pub budget: &'a Budget,
    pub retry: &'a RetryPolicy,
    pub max_budget_wait: Duration,
    /// Lease length; the lease is renewed when less than half of it is left.
    pub lease: Duration,
    /// Current end of the lease (unix ms), renewed as the work goes on.
    pub lease_until: AtomicI64,
    /// How long a follow-up or an edit waits for the delivery it refers to
    /// (`dispatch.follow_up_wait`).
    pub follow_up_wait: Duration,
}

impl Executor<'_> {
    /// Runs the event's remaining steps. `Ok` means every step is done.
    pub async fn run(&self, event: &ClaimedEvent) -> Result<(), Stop> {
        let plan = &event.plan;
        // Only an edit (it updates what its earlier revision made) and a follow-up (it acts on
        // its lead) need their thread; a lead's references are for the follow-ups to find it.
        let follow_up = plan.steps.iter().any(Step::acts_on_lead);
        let thread = if follow_up || plan.revision_of.is_some() {
            Thread::new(event.id, follow_up, self.store.thread(event.id).await?)
        } else {
            Thread::default()
        };
        if let Some(first) = thread.blocking() {
            return Err(self.wait(
                event,
                format!("waiting for event {first} (the lead, or an earlier revision) to reach GHL first"),
            ));
        }
        let mut contact_id: Option<String> = None;
        for (index, step) in plan.steps.iter().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            let recorded = event
                .steps
                .iter()
                .find(|s| s.index == index && s.kind == step.kind());
            if let Some(done) = recorded.filter(|s| s.status == StepStatus::Done) {
                if step.makes_contact() {
                    contact_id.clone_from(&done.ghl_id);
                }
                continue;
            }
            let uncertain = recorded.is_some_and(|s| s.status == StepStatus::Started);
            let ghl_id = self
                .run_step(
                    event,
                    &thread,
                    index,
                    step,
                    contact_id.as_deref(),
                    uncertain,
                )
                .await
                .map_err(|e| self.classify(event, step, e))?;
            if step.makes_contact() {
                contact_id.clone_from(&ghl_id);
            }
            self.record(event, index, step, StepStatus::Done, ghl_id)
                .await?;
        }
        Ok(())
    }

    async fn record(
        &self,
        event: &ClaimedEvent,
        index: u32,
        step: &Step,
        status: StepStatus,
        ghl_id: Option<String>,
    ) -> Result<(), Stop> {
        let record = StepRecord {
            index,
            kind: step.kind(),
            status,
            ghl_id,
            updated_at: OffsetDateTime::now_utc(),
        };
        if self
            .store
            .record_step(event.id, &event.lease, &record)
            .await?
        {
            Ok(())
        } else {
            Err(Stop::LeaseLost)
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

    fn observe(&self, limits: &RateLimitInfo) {
        self.budget.observe(limits);
    }

    /// One GHL call with budget and header bookkeeping.
    async fn call<T, F, Fut>(&self, event: &ClaimedEvent, f: F) -> Result<T, StepError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<crate::ghl::GhlResponse<T>, GhlError>>,
    {
        let permit = self.permit(event).await?;
        let result = f().await;
        permit.complete().await;
        match result {
            Ok(resp) => {
                self.observe(&resp.limits);
                Ok(resp.body)
            }
            Err(e) => {
                self.observe(e.limits());
                Err(StepError::Ghl(e))
            }
        }
    }

    /// Runs one step; returns the GHL id it produced (contact, task or note id).
    async fn run_step(
        &self,
        event: &ClaimedEvent,
        thread: &Thread,
        index: u32,
        step: &Step,
        contact_id: Option<&str>,
        uncertain: bool,
    ) -> Result<Option<String>, StepError> {
        let location = event.location_id.as_str();
        let need_contact = || {
            contact_id.ok_or_else(|| {
                StepError::Plan("the plan has no contact step before this one".to_owned())
            })
        };
        match step {
            Step::UpsertContact { contact } => {
                let mut request = upsert_request(location, contact);
                let first_source = if contact.keep_first_source {
                    request.contact.source.take()
                } else {
                    None
                };
                match self
                    .call(event, || self.client.upsert_contact(&request))
                    .await
                {
                    Ok(body) if body.new && first_source.is_some() => {
                        let update = UpdateContactRequest {
                            contact: ContactProperties {
                                source: first_source,
                                ..ContactProperties::default()
                            },
                        };
                        let id = body.contact.id;
                        self.call(event, || self.client.update_contact(location, &id, &update))
                            .await?;
                        Ok(Some(id))
                    }
                    Ok(body) => Ok(Some(body.contact.id)),
                    // A location that refuses duplicates names the contact that exists.
                    Err(StepError::Ghl(e)) if e.existing_contact_id().is_some() => {
                        Ok(e.existing_contact_id().map(str::to_owned))
                    }
                    Err(e) => Err(e),
                }
            }
            Step::CreateContact { contact } => {
                let tag = marker_tag(event.id, index);
                if uncertain {
                    let found = self
                        .find(event, || self.client.find_contact_with_tag(location, &tag))
                        .await?;
                    if let Some(id) = found {
                        return Ok(Some(id));
                    }
                }
                self.record_started(event, index, step).await?;
                let request = create_request(location, contact, &tag);
                let created = self
                    .call(event, || self.client.create_contact(&request))
                    .await?;
                Ok(Some(created.contact.id))
            }
            Step::AddTags { tags } => {
                let contact = need_contact()?;
                self.call(event, || self.client.add_tags(location, contact, tags))
                    .await?;
                Ok(None)
            }
            Step::RemoveTags { tags } => {
                let contact = need_contact()?;
                self.call(event, || self.client.remove_tags(location, contact, tags))
                    .await?;
                Ok(None)
            }
            Step::CreateTask {
                title,
                body,
                due_at,
                assigned_to,
            } => {
                let contact = need_contact()?;
                let mark = marker(event.id, index);
                let due_date = rfc3339(*due_at);
                if let Some(task_id) = self.edited_record(event, thread, index, contact) {
                    let update = UpdateTaskRequest {
                        title: Some(title.clone()),
                        body: Some(with_marker(body.as_deref(), &mark)),
                        due_date: Some(due_date.clone()),
                        completed: None,
                        assigned_to: assigned_to.clone(),
                    };
                    let updated = self.change_existing(event, &task_id, || {
                        self.client
                            .update_task(location, contact, &task_id, &update)
                    });
                    // Deleted in GHL since: the edit writes it anew (below).
                    if let Some(id) = updated.await? {
                        return Ok(Some(id));
                    }
                }
                if uncertain {
                    let found = self
                        .find(event, || {
                            self.client.find_task_with_marker(location, contact, &mark)
                        })
                        .await?;
                    if let Some(task) = found {
                        return Ok(Some(task.id));
                    }
                }
                self.record_started(event, index, step).await?;
                let request = CreateTaskRequest {
                    title: title.clone(),
                    body: Some(with_marker(body.as_deref(), &mark)),
                    due_date,
                    completed: false,
                    assigned_to: assigned_to.clone(),
                };
                let task = self
                    .call(event, || {
                        self.client.create_task(location, contact, &request)
                    })
                    .await?;
                Ok(Some(task.task.id))
            }
            Step::CreateNote { body } => {
                let contact = need_contact()?;
                let mark = marker(event.id, index);
                if let Some(note_id) = self.edited_record(event, thread, index, contact) {
                    let update = UpdateNoteRequest {
                        body: Some(with_marker(Some(body), &mark)),
                        ..UpdateNoteRequest::default()
                    };
                    let updated = self.change_existing(event, &note_id, || {
                        self.client
                            .update_note(location, contact, &note_id, &update)
                    });
                    // Deleted in GHL since: the edit writes it anew (below).
                    if let Some(id) = updated.await? {
                        return Ok(Some(id));
                    }
                }
                if uncertain {
                    let found = self
                        .find(event, || {
                            self.client.find_note_with_marker(location, contact, &mark)
                        })
                        .await?;
                    if let Some(note) = found {
                        return Ok(Some(note.id));
                    }
                }
                self.record_started(event, index, step).await?;
                let request = CreateNoteRequest {
                    body: with_marker(Some(body), &mark),
                    user_id: None,
                    title: None,
                    color: None,
                    pinned: None,
                };
                let note = self
                    .call(event, || {
                        self.client.create_note(location, contact, &request)
                    })
                    .await?;
                Ok(Some(note.note.id))
            }
            Step::LeadContact { reference } => {
                if let Some(id) = thread.lead_contact() {
                    return Ok(Some(id));
                }
                let finished = thread.finished_leads();
                if finished.is_empty() {
                    return Err(StepError::Wait(format!(
                        "no delivery with {reference} has reached GHL: the follow-up waits for its lead"
                    )));
                }
                let events: Vec<String> = finished.iter().map(ToString::to_string).collect();
                Err(StepError::Plan(format!(
                    "no contact to act on: the deliveries sharing its reference {reference} (event {}) finished without a contact in GHL; if one is a dead letter, replay it, then this event",
                    events.join(", ")
                )))
            }
            Step::CompleteLeadTasks | Step::MoveLeadTasks { .. } => {
                let update = match step {
                    Step::MoveLeadTasks { due_at } => Some(UpdateTaskRequest {
                        due_date: Some(rfc3339(*due_at)),
                        ..UpdateTaskRequest::default()
                    }),
                    _ => None,
                };
                let mut changed = Vec::new();
                for task in thread.tasks() {
                    let (contact, task_id) = (task.contact_id.as_str(), task.task_id.as_str());
                    let done = self.change_existing(event, task_id, || async {
                        match &update {
                            Some(update) => {
                                self.client
                                    .update_task(location, contact, task_id, update)
                                    .await
                            }
                            None => {
                                self.client
                                    .complete_task(location, contact, task_id, true)
                                    .await
                            }
                        }
                    });
                    changed.extend(done.await?);
                }
                Ok(Some(changed.join(",")).filter(|ids| !ids.is_empty()))
            }
        }
    }

    /// For an edit (a later revision of a submission): the id of the record the same step of
    /// an earlier revision made on `contact`, to update in place.
    fn edited_record(
        &self,
        event: &ClaimedEvent,
        thread: &Thread,
        index: u32,
        contact: &str,
    ) -> Option<String> {
        event.plan.revision_of?;
        let step = event.plan.steps.get(usize::try_from(index).ok()?)?;
        let kind = step.kind();
        let nth = event.plan.steps[..usize::try_from(index).ok()?]
            .iter()
            .filter(|s| s.kind() == kind)
            .count();
        thread.revision_record(kind, nth, contact)
    }

    /// Changes an existing task or note (an edit's update, a lead's task completed or moved)
    /// under the rate budget: its id, or nothing when someone deleted it in GHL meanwhile (no
    /// failure: a lead's task has nothing left to change, an edit writes its note or task anew).
    async fn change_existing<T, F, Fut>(
        &self,
        event: &ClaimedEvent,
        ghl_id: &str,
        request: F,
    ) -> Result<Option<String>, StepError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<crate::ghl::GhlResponse<T>, GhlError>>,
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

    /// Ends an attempt that must wait for an earlier delivery of its lead: due again soon (no
    /// attempt counted), or dead-lettered once it has waited `dispatch.follow_up_wait`.
    fn wait(&self, event: &ClaimedEvent, why: String) -> Stop {
        let waited = age(event.received_at);
        if waited >= self.follow_up_wait {
            return Stop::Finish(Finish::Dead {
                error: format!(
                    "{why}; gave up after waiting {} (dispatch.follow_up_wait). Replay this event once its lead is in GHL",
                    humantime::format_duration(self.follow_up_wait)
                ),
            });
        }
        // Re-checked after a quarter of the time waited so far: soon for a lead that is a
        // moment behind, rarely for one that is days late.
        let pause = (waited / 4).clamp(Duration::from_millis(500), Duration::from_secs(300));
        Stop::Finish(Finish::Retry {
            at: OffsetDateTime::now_utc() + pause,
            error: why,
            counts_attempt: false,
            outcome: WAITING_FOR_LEAD,
        })
    }

    /// A marker lookup (one list request) under the rate budget.
    async fn find<T, F, Fut>(&self, event: &ClaimedEvent, f: F) -> Result<Option<T>, StepError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, GhlError>>,
    {
        let permit = self.permit(event).await?;
        let result = f().await;
        permit.complete().await;
        result.map_err(|e| {
            self.observe(e.limits());
            StepError::Ghl(e)
        })
    }

    async fn record_started(
        &self,
        event: &ClaimedEvent,
        index: u32,
        step: &Step,
    ) -> Result<(), StepError> {
        self.record(event, index, step, StepStatus::Started, None)
            .await
            .map_err(StepError::Stop)
    }

    /// Turns a step failure into how the attempt ends.
    fn classify(&self, event: &ClaimedEvent, step: &Step, error: StepError) -> Stop {
        let now = OffsetDateTime::now_utc();
        let e = match error {
            StepError::Stop(stop) => return stop,
            StepError::Budget(at) => {
                let wait = at.saturating_duration_since(tokio::time::Instant::now());
                return Stop::Budget(now + wait);
            }
            StepError::Plan(message) => return Stop::Finish(Finish::Dead { error: message }),
            StepError::Wait(why) => return self.wait(event, why),
            StepError::Ghl(e) => e,
        };
        let what = format!("{} failed: {e}", step.kind());
        match decide(&e) {
            Decision::WaitForBudget(retry_after) => {
                self.budget.pause_for(retry_after);
                Stop::Finish(Finish::Retry {
                    at: now + retry_after,
                    error: what,
                    counts_attempt: false,
                    outcome: "rate_limited",
                })
            }
            Decision::PauseLocation(reason) => Stop::PauseLocation(reason, what),
            Decision::DeadLetter => Stop::Finish(Finish::Dead { error: what }),
            Decision::Retry => {
                let attempts = event.attempts + 1;
                if self.retry.exhausted(attempts, age(event.received_at)) {
                    Stop::Finish(Finish::Dead {
                        error: format!("{what} (gave up after {attempts} attempts)"),
                    })
                } else {
                    Stop::Finish(Finish::Retry {
                        at: now + self.retry.backoff(attempts),
                        error: what,
                        counts_attempt: true,
                        outcome: "retry",
                    })
                }
            }
        }
    }
}

/// A step's failure before classification.
#[derive(Debug)]
enum StepError {
    Ghl(GhlError),
    Budget(tokio::time::Instant),
    Plan(String),
    /// The step needs an earlier delivery of its lead that has not reached GHL yet.
    Wait(String),
    Stop(Stop),
}

fn with_marker(body: Option<&str>, mark: &str) -> String {
    match body {
        Some(b) if !b.is_empty() => format!("{b}\n\n{mark}"),
        _ => mark.to_owned(),
    }
}

/// A due date as GHL takes it.
fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Unix milliseconds, for the lease bookkeeping.
pub fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The marker a task or note carries: event id and step index, looked up after an unknown outcome.
pub fn marker(event: EventId, step: u32) -> String {
    format!("[formbridge:{event}:{step}]")
}

/// The marker tag a contact created by name carries (GHL lower-cases tags; this already is).
pub fn marker_tag(event: EventId, step: u32) -> String {
    format!("formbridge:{event}:{step}")
}

/// How long ago an event was received.
pub fn age(received_at: OffsetDateTime) -> std::time::Duration {
    (OffsetDateTime::now_utc() - received_at)
        .try_into()
        .unwrap_or_default()
}
