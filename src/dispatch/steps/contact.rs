//! The contact steps: upsert the contact on its email or phone (keeping the source it first
//! came from), or create one known only by name, carrying a marker tag to find it again.

use super::StepAt;
use crate::dispatch::attempt::{Executor, StepError};
use crate::dispatch::requests::{create_request, upsert_request};
use crate::domain::plan::ContactFields;
use crate::ghl::types::{ContactProperties, UpdateContactRequest};
use crate::ghl_access::marker::marker_tag;

/// Upserts the contact: its id. A new contact whose mapping keeps the first source gets it in
/// a second request (the upsert would overwrite it on every later delivery).
pub(super) async fn upsert(
    executor: &Executor<'_>,
    at: &StepAt<'_>,
    contact: &ContactFields,
) -> Result<Option<String>, StepError> {
    let (client, event, location) = (executor.client, at.event, at.location());
    let mut request = upsert_request(location, contact);
    // `mapping.assign_to`: the lead's owner (spec: `assignedTo`, a user id).
    request.contact.assigned_to.clone_from(&at.event.plan.owner);
    let first_source = if contact.keep_first_source {
        request.contact.source.take()
    } else {
        None
    };
    match executor
        .call(event, || client.upsert_contact(&request))
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
            executor
                .call(event, || client.update_contact(location, &id, &update))
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

/// Creates a contact known by name (nothing to upsert on), found again by its marker tag when
/// an earlier attempt's answer was lost: its id.
pub(super) async fn create(
    executor: &Executor<'_>,
    at: &StepAt<'_>,
    contact: &ContactFields,
) -> Result<Option<String>, StepError> {
    let (client, event, location) = (executor.client, at.event, at.location());
    let tag = marker_tag(event.id, at.index);
    if at.uncertain {
        let found = executor
            .find(event, || client.find_contact_with_tag(location, &tag))
            .await?;
        if let Some(id) = found {
            return Ok(Some(id));
        }
    }
    let mut request = create_request(location, contact, &tag);
    request.contact.assigned_to.clone_from(&at.event.plan.owner);
    let created = executor
        .create(event, at.index, at.step, || client.create_contact(&request))
        .await?;
    Ok(Some(created.contact.id))
}
