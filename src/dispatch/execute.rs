//! Plan execution: run one claimed event's steps (each kind's function in [`super::steps`]),
//! record each result as soon as GHL answers, and turn the first failure into a retry, a pause
//! or a dead letter.
//!
//! Effectively-once: the upsert and tag steps are idempotent in GHL; a task or note step is
//! recorded as `started` before it is sent and carries a marker with the event id and step
//! index, so after a crash or a lost answer the marker is looked up on the contact before
//! anything is created again. A contact created by name (no email or phone to upsert on)
//! carries a marker tag instead, looked up the same way. An appointment carries the marker in
//! its description, looked up before every booking.
//!
//! A look-up only helps once GHL can no longer carry out the request whose answer was lost: a
//! GHL that works on it late (after `ghl.request_timeout`) writes it after the look-up found
//! nothing, beside the second one. So a step sent without an answer is in doubt until
//! `ghl.late_write_window` past the timeout (recorded before sending, so a crash keeps it),
//! and its event waits in the queue until then: no worker sleeps on it, other contacts and
//! locations go on.

use std::time::Duration;

use time::OffsetDateTime;

use super::attempt::{Executor, StepError, Stop};
use super::decision::{decide, Decision};
use super::owner_hint;
use super::steps::StepAt;
use super::thread::Thread;
use crate::domain::plan::Step;
use crate::store::{ClaimedEvent, Finish, StepStatus};

/// The retry outcome of an event waiting for its lead (or an earlier revision): a metric label.
pub const WAITING_FOR_LEAD: &str = "waiting_for_lead";
/// The retry outcome of an event waiting until a request GHL did not answer can no longer be
/// carried out, before it looks for what it made: a metric label.
pub const ANSWER_IN_DOUBT: &str = "answer_in_doubt";

impl Executor<'_> {
    /// Runs the event's remaining steps. `Ok` means every step is done.
    pub async fn run(&self, event: &ClaimedEvent) -> Result<(), Stop> {
        let plan = &event.plan;
        // Only an edit (it updates what its earlier revision made), a follow-up (it acts on
        // its lead) and a phone call's status (what its other statuses said) need their
        // thread; a lead's references are for the follow-ups to find it.
        let follow_up = plan.steps.iter().any(Step::acts_on_lead);
        // A booking looks for the appointment an earlier delivery of its lead booked.
        let books = !plan.references.is_empty()
            && plan
                .steps
                .iter()
                .any(|s| matches!(s, Step::BookAppointment { .. }));
        let thread = if follow_up || books || plan.revision_of.is_some() || plan.call.is_some() {
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
            if let Some(until) = recorded.and_then(|s| s.in_doubt_until) {
                if uncertain && until > OffsetDateTime::now_utc() {
                    return Err(in_doubt(step, index, until));
                }
            }
            let at = StepAt {
                event,
                thread: &thread,
                index,
                step,
                contact_id: contact_id.as_deref(),
                uncertain,
            };
            let ghl_id = match self.run_step(&at).await {
                Ok(ghl_id) => ghl_id,
                Err(e) => {
                    let in_doubt = match &e {
                        StepError::InDoubt { until, .. } => Some(*until),
                        _ => None,
                    };
                    let answered = matches!(e, StepError::Ghl(_) | StepError::InDoubt { .. });
                    let stop = self.classify(event, step, e);
                    // A 429 keeps no record: it is GHL's budget, not the step's answer.
                    let rate_limited = matches!(
                        &stop,
                        Stop::Finish(Finish::Retry {
                            outcome: "rate_limited",
                            ..
                        })
                    );
                    // A dead-lettered step gets a record even without one: only a replay
                    // runs it again (a create then looks for its marker first, one look-up).
                    let dead = matches!(&stop, Stop::Finish(Finish::Dead { .. }));
                    if answered && !rate_limited {
                        let keep = recorded.is_some() || dead;
                        self.record_failed_requests(event, index, step, keep, in_doubt)
                            .await;
                    }
                    return Err(stop);
                }
            };
            if step.makes_contact() {
                contact_id.clone_from(&ghl_id);
            }
            self.record(event, index, step, StepStatus::Done, ghl_id)
                .await?;
        }
        Ok(())
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
            StepError::InDoubt { error, until } => {
                // Tried again once the request can no longer land, and not before its backoff.
                return match self.classify(event, step, StepError::Ghl(error)) {
                    Stop::Finish(Finish::Retry {
                        at,
                        error,
                        counts_attempt,
                        outcome,
                    }) => Stop::Finish(Finish::Retry {
                        at: at.max(until),
                        error,
                        counts_attempt,
                        outcome,
                    }),
                    other => other,
                };
            }
        };
        let what = format!(
            "{} failed: {e}{}",
            step.kind(),
            owner_hint::hint(&event.plan, step, &e)
        );
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

/// Ends an attempt that reached a step whose earlier request got no answer and may still be
/// carried out by GHL until `until`: due again then, no attempt counted (one was, when the
/// answer was lost).
fn in_doubt(step: &Step, index: u32, until: OffsetDateTime) -> Stop {
    let shown = until
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    Stop::Finish(Finish::Retry {
        at: until,
        error: format!(
            "step {index} ({}) was sent and got no answer; GHL may still carry it out until {shown} (ghl.late_write_window), then it is looked for before being sent again",
            step.kind()
        ),
        counts_attempt: false,
        outcome: ANSWER_IN_DOUBT,
    })
}

/// How long ago an event was received.
pub fn age(received_at: OffsetDateTime) -> std::time::Duration {
    (OffsetDateTime::now_utc() - received_at)
        .try_into()
        .unwrap_or_default()
}
