//! Names `mapping.assign_to` in a dead letter's reason when GHL refuses a request that assigned
//! the lead (or its task) to a user: GHL is the only judge of a user id, at dispatch, since
//! formbridge makes no GHL call at start.

use crate::domain::plan::{Plan, Step};
use crate::ghl::GhlError;

/// `; …` naming the user the refused request assigned and the key it came from, or empty when
/// the step assigned no one or GHL's refusal cannot be about a user id.
pub(super) fn hint(plan: &Plan, step: &Step, error: &GhlError) -> String {
    if !matches!(
        error,
        GhlError::Validation { .. } | GhlError::Rejected { .. } | GhlError::NotFound { .. }
    ) {
        return String::new();
    }
    let user = match step {
        Step::UpsertContact { .. } | Step::CreateContact { .. } => plan.owner.as_deref(),
        Step::CreateTask { assigned_to, .. } => assigned_to.as_deref(),
        _ => None,
    };
    let Some(user) = user else {
        return String::new();
    };
    let key = if plan.owner.as_deref() == Some(user) {
        "mapping.assign_to"
    } else {
        "the task rule's assigned_to"
    };
    format!("; it assigned GHL user `{user}` ({key}): if that id is no user of this location, fix {key} and replay the event")
}
