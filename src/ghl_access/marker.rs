//! The idempotency markers formbridge writes on the GHL records it creates: the dispatcher
//! looks them up after an unknown outcome, the agent view hides them from the agent.

use crate::domain::EventId;

/// The marker a task or note carries: event id and step index, looked up after an unknown outcome.
pub fn marker(event: EventId, step: u32) -> String {
    format!("[formbridge:{event}:{step}]")
}

/// The marker tag a contact created by name carries (GHL lower-cases tags; this already is).
pub fn marker_tag(event: EventId, step: u32) -> String {
    format!("formbridge:{event}:{step}")
}

/// `body` with `mark` appended on its own paragraph (or `mark` alone for an empty body).
pub fn with_marker(body: Option<&str>, mark: &str) -> String {
    match body {
        Some(b) if !b.is_empty() => format!("{b}\n\n{mark}"),
        _ => mark.to_owned(),
    }
}
