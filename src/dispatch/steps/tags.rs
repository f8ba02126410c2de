//! The tag steps: add or remove tags on the step's contact (idempotent in GHL).

use super::StepAt;
use crate::dispatch::attempt::{Executor, StepError};

/// What a tag step does with its tags.
#[derive(Debug, Clone, Copy)]
pub(super) enum TagChange {
    Add,
    Remove,
}

/// Adds `tags` to the step's contact, or removes them from it.
pub(super) async fn change(
    executor: &Executor<'_>,
    at: &StepAt<'_>,
    tags: &[String],
    change: TagChange,
) -> Result<Option<String>, StepError> {
    let (client, location, contact) = (executor.client, at.location(), at.contact()?);
    executor
        .call(at.event, || async {
            match change {
                TagChange::Add => client.add_tags(location, contact, tags).await,
                TagChange::Remove => client.remove_tags(location, contact, tags).await,
            }
        })
        .await?;
    Ok(None)
}
