//! A phone call's steps: its one call-back task and its one note, found by the call's marker
//! whichever of its status deliveries wrote them, so the statuses of a call (in any order,
//! repeated, replayed from scratch, after a lost answer) never write a second one.
//!
//! The task follows what the call's statuses that reached GHL say together with this one
//! ([`CallProgress`], the same in any order): created by the first after which the call needs
//! a call-back, completed by the first after which it happened, otherwise left as it is (never
//! reopened, never edited: someone may be working on it). The note shows the furthest status
//! the call's deliveries reached, so a status arriving late (`agent_connected` after `end`)
//! leaves it as it is; a note already showing what it should is not written again.

use super::StepAt;
use crate::dispatch::attempt::{Executor, StepError};
use crate::domain::call::{CallFacts, CallOutcome, CallProgress};
use crate::domain::plan::Step;
use crate::domain::EventId;
use crate::ghl::types::{CreateNoteRequest, CreateTaskRequest, UpdateNoteRequest};
use crate::ghl_access::marker::{call_marker, with_marker};

/// The call-back task as this status's plan gives it (used only if this status creates it).
pub(super) struct CallBackTask<'a> {
    pub title: &'a str,
    pub body: Option<&'a str>,
    /// RFC 3339, as GHL takes it.
    pub due_date: String,
}

/// The call's call-back task, created, completed or left alone as the call's progress says:
/// its id, or none while the call has none.
pub(super) async fn task(
    executor: &Executor<'_>,
    at: &StepAt<'_>,
    task: &CallBackTask<'_>,
) -> Result<Option<String>, StepError> {
    let call = call_of(at)?;
    let outcome = progress(at, call).outcome();
    if outcome == CallOutcome::UnderWay {
        return Ok(None);
    }
    let (client, location, contact) = (executor.client, at.location(), at.contact()?);
    let mark = call_marker(&call.key, "task");
    let found = executor
        .find(at.event, || {
            client.find_task_with_marker(location, contact, &mark)
        })
        .await?;
    match (outcome, found) {
        (CallOutcome::Happened, Some(open)) if open.completed != Some(true) => {
            let id = open.id;
            executor
                .change_existing(at.event, &id, || {
                    client.complete_task(location, contact, &id, true)
                })
                .await
        }
        // Already completed (by an earlier status, or by hand), or the call-back still to do.
        (_, Some(existing)) => Ok(Some(existing.id)),
        (CallOutcome::CallBack, None) => {
            let request = CreateTaskRequest {
                title: task.title.to_owned(),
                body: Some(with_marker(task.body, &mark)),
                due_date: task.due_date.clone(),
                completed: false,
                assigned_to: None,
            };
            let created = executor
                .create(at.event, at.index, at.step, || {
                    client.create_task(location, contact, &request)
                })
                .await?;
            Ok(Some(created.task.id))
        }
        // The call happened without ever needing a call-back: no task.
        (CallOutcome::Happened | CallOutcome::UnderWay, None) => Ok(None),
    }
}

/// The call's note, showing its furthest status: its id.
pub(super) async fn note(
    executor: &Executor<'_>,
    at: &StepAt<'_>,
    body: &str,
) -> Result<Option<String>, StepError> {
    let call = call_of(at)?;
    let (client, location, contact) = (executor.client, at.location(), at.contact()?);
    let mark = call_marker(&call.key, "note");
    let text = with_marker(Some(furthest_note(at, call, body)), &mark);
    let found = executor
        .find(at.event, || {
            client.find_note_with_marker(location, contact, &mark)
        })
        .await?;
    if let Some(existing) = found {
        if existing.body.as_deref() == Some(text.as_str()) {
            return Ok(Some(existing.id));
        }
        let update = UpdateNoteRequest {
            body: Some(text.clone()),
            ..UpdateNoteRequest::default()
        };
        let id = existing.id;
        let updated = executor.change_existing(at.event, &id, || {
            client.update_note(location, contact, &id, &update)
        });
        // Deleted in GHL since: written anew (below).
        if let Some(id) = updated.await? {
            return Ok(Some(id));
        }
    }
    let request = CreateNoteRequest {
        body: text,
        user_id: None,
        title: None,
        color: None,
        pinned: None,
    };
    let created = executor
        .create(at.event, at.index, at.step, || {
            client.create_note(location, contact, &request)
        })
        .await?;
    Ok(Some(created.note.id))
}

/// The plan's call, which every call step needs.
fn call_of<'a>(at: &StepAt<'a>) -> Result<&'a CallFacts, StepError> {
    at.event.plan.call.as_ref().ok_or_else(|| {
        StepError::Plan(
            "a call step in a plan without its call; replay the event to prepare it again"
                .to_owned(),
        )
    })
}

/// The plans of the call's other statuses that reached GHL, with their event ids.
fn other_statuses<'a>(
    at: &StepAt<'a>,
    call: &'a CallFacts,
) -> impl Iterator<Item = (&'a CallFacts, EventId, &'a [Step])> + 'a {
    at.thread.done_revisions().filter_map(move |e| {
        let plan = e.plan.as_ref()?;
        let other = plan.call.as_ref().filter(|c| c.key == call.key)?;
        Some((other, e.id, plan.steps.as_slice()))
    })
}

/// What this status and the call's others that reached GHL say together.
fn progress(at: &StepAt<'_>, call: &CallFacts) -> CallProgress {
    other_statuses(at, call)
        .map(|(other, _, _)| CallProgress::of(other))
        .fold(CallProgress::of(call), CallProgress::merge)
}

/// The note of the call's furthest status: this one's `body`, or that of another status
/// further along that reached GHL (of equal statuses, the latest delivery's, which may add
/// the recording link).
fn furthest_note<'a>(at: &StepAt<'a>, call: &'a CallFacts, body: &'a str) -> &'a str {
    let others = other_statuses(at, call).filter_map(|(other, id, steps)| {
        let note = steps.iter().find_map(|s| match s {
            Step::CallNote { body } => Some(body.as_str()),
            _ => None,
        })?;
        Some((other.status, id, note))
    });
    others
        .chain(std::iter::once((call.status, at.event.id, body)))
        .max_by_key(|(status, id, _)| (*status, *id))
        .map_or(body, |(_, _, note)| note)
}
