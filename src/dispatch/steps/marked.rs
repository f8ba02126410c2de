//! How a task or note step writes its record at most once: edit it (a revision updates what
//! its earlier revision made), else find it by its marker (an earlier attempt's answer was
//! lost), else record the step as started and create it.

use std::future::Future;

use super::StepAt;
use crate::dispatch::attempt::{Executor, StepError};
use crate::dispatch::thread::Thread;
use crate::ghl::{GhlClient, GhlError, GhlResponse};
use crate::ghl_access::marker::marker;
use crate::store::ClaimedEvent;

/// The record a step writes on a contact, and the marker it carries.
pub(super) struct On<'a> {
    pub client: &'a GhlClient,
    pub location: &'a str,
    pub contact: &'a str,
    /// The event's and step's marker, in the record's body.
    pub mark: &'a str,
}

/// A kind of record a step writes on the contact and marks (a task, a note): what it sends.
pub(super) trait MarkedRecord {
    /// GHL's answer to an update or a create.
    type Answer;

    /// The id of the record in GHL's answer.
    fn id_of(answer: Self::Answer) -> String;

    /// Updates the record `id` to what this step writes.
    fn update(
        &self,
        on: &On<'_>,
        id: &str,
    ) -> impl Future<Output = Result<GhlResponse<Self::Answer>, GhlError>>;

    /// The id of the contact's record carrying `on.mark`, if any.
    fn find(&self, on: &On<'_>) -> impl Future<Output = Result<Option<String>, GhlError>>;

    /// Creates the record.
    fn create(
        &self,
        on: &On<'_>,
    ) -> impl Future<Output = Result<GhlResponse<Self::Answer>, GhlError>>;
}

/// Writes `record` for the step `at` on the contact: the id of the record edited, found or
/// created.
pub(super) async fn write<R: MarkedRecord>(
    executor: &Executor<'_>,
    at: &StepAt<'_>,
    record: &R,
) -> Result<Option<String>, StepError> {
    let event = at.event;
    let contact = at.contact()?;
    let mark = marker(event.id, at.index);
    let on = On {
        client: executor.client,
        location: at.location(),
        contact,
        mark: &mark,
    };
    if let Some(id) = edited_record(event, at.thread, at.index, contact) {
        let updated = executor.change_existing(event, &id, || record.update(&on, &id));
        // Deleted in GHL since: the edit writes it anew (below).
        if let Some(id) = updated.await? {
            return Ok(Some(id));
        }
    }
    if at.uncertain {
        if let Some(id) = executor.find(event, || record.find(&on)).await? {
            return Ok(Some(id));
        }
    }
    let created = executor
        .create(event, at.index, at.step, || record.create(&on))
        .await?;
    Ok(Some(R::id_of(created)))
}

/// For an edit (a later revision of a submission): the id of the record the same step of an
/// earlier revision made on `contact`, to update in place.
fn edited_record(
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
