//! The idempotency markers formbridge writes on the GHL records it creates: the dispatcher
//! looks them up after an unknown outcome, the agent view hides them from the agent.

use crate::domain::EventId;

/// The marker a task or note carries: event id and step index, looked up after an unknown outcome.
pub fn marker(event: EventId, step: u32) -> String {
    format!("[formbridge:{event}:{step}]")
}

/// The marker a phone call's one task (`record` = `task`) or one note (`note`) carries,
/// whichever of its status deliveries wrote it: `[formbridge:call:<source>:<call id>:<record>]`
/// (characters other than letters, digits and `:-_.` in the key become `_`, so the marker
/// stays one bracketed word).
pub fn call_marker(call_key: &str, record: &str) -> String {
    let key: String = call_key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("[formbridge:call:{key}:{record}]")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_calls_task_and_note_have_markers_of_their_own() {
        assert_eq!(
            call_marker("jivochat:4398", "task"),
            "[formbridge:call:jivochat:4398:task]"
        );
        assert_eq!(
            call_marker("jivochat:a]b c", "note"),
            "[formbridge:call:jivochat:a_b_c:note]"
        );
    }
}
