//! The follow-up steps, which act on what an earlier delivery (the lead) made: its contact,
//! and its tasks completed or moved to a new due date.

use time::OffsetDateTime;

use super::{rfc3339, StepAt};
use crate::dispatch::attempt::{Executor, StepError};
use crate::ghl::types::UpdateTaskRequest;

/// The contact the latest lead sharing `reference` made: waits while no lead has reached GHL,
/// and fails the plan when every lead finished without a contact.
pub(super) fn contact(at: &StepAt<'_>, reference: &str) -> Result<Option<String>, StepError> {
    if let Some(id) = at.thread.lead_contact() {
        return Ok(Some(id));
    }
    let finished = at.thread.finished_leads();
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

/// Completes every task the lead's deliveries created or, with `move_to`, moves each to that
/// due date: the ids changed, comma-separated (a task deleted in GHL since is skipped).
pub(super) async fn change_tasks(
    executor: &Executor<'_>,
    at: &StepAt<'_>,
    move_to: Option<OffsetDateTime>,
) -> Result<Option<String>, StepError> {
    let (client, location) = (executor.client, at.location());
    let update = move_to.map(|due_at| UpdateTaskRequest {
        due_date: Some(rfc3339(due_at)),
        ..UpdateTaskRequest::default()
    });
    let mut changed = Vec::new();
    for task in at.thread.tasks() {
        let (contact, task_id) = (task.contact_id.as_str(), task.task_id.as_str());
        let done = executor.change_existing(at.event, task_id, || async {
            match &update {
                Some(update) => client.update_task(location, contact, task_id, update).await,
                None => client.complete_task(location, contact, task_id, true).await,
            }
        });
        changed.extend(done.await?);
    }
    Ok(Some(changed.join(",")).filter(|ids| !ids.is_empty()))
}
