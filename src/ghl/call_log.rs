//! The GHL requests made inside a scope (one event's dispatch): each request's method and path
//! template, its answer's status or transport failure, and its latency, kept in a task-local
//! list the dispatcher drains into its step records (no personal data: no query, no body).

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

tokio::task_local! {
    static CALLS: RefCell<Vec<GhlCall>>;
}

/// How one GHL request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// GHL answered with this HTTP status.
    Status(u16),
    /// No answer within `ghl.request_timeout`.
    Timeout,
    /// The connection failed (refused, reset, TLS, or the answer was cut off).
    Connection,
}

/// One GHL request: `endpoint` is its method and path template (`POST /contacts/upsert`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GhlCall {
    pub endpoint: &'static str,
    pub outcome: CallOutcome,
    pub elapsed: Duration,
}

/// Runs `work` with an empty request log of its own (requests made outside any scope are not
/// kept).
pub async fn scope<F: Future>(work: F) -> F::Output {
    CALLS.scope(RefCell::new(Vec::new()), work).await
}

/// The requests made in the current scope since the last `take`, oldest first.
pub fn take() -> Vec<GhlCall> {
    CALLS
        .try_with(|calls| std::mem::take(&mut *calls.borrow_mut()))
        .unwrap_or_default()
}

/// Notes a request in the current scope, if any.
pub(super) fn note(endpoint: &'static str, outcome: CallOutcome, elapsed: Duration) {
    let _ = CALLS.try_with(|calls| {
        calls.borrow_mut().push(GhlCall {
            endpoint,
            outcome,
            elapsed,
        });
    });
}

/// The outcome of a request that got no HTTP answer.
pub(super) fn failure(e: &reqwest::Error) -> CallOutcome {
    if e.is_timeout() {
        CallOutcome::Timeout
    } else {
        CallOutcome::Connection
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_scope_keeps_its_own_requests_and_take_drains_them() {
        note("GET /outside", CallOutcome::Status(200), Duration::ZERO);
        assert!(take().is_empty(), "no scope, nothing kept");
        let (first, second) = scope(async {
            note(
                "POST /contacts/upsert",
                CallOutcome::Status(201),
                Duration::from_millis(7),
            );
            let inner = scope(async {
                note(
                    "POST /notes",
                    CallOutcome::Timeout,
                    Duration::from_millis(9),
                );
                take()
            })
            .await;
            assert_eq!(inner.len(), 1);
            assert_eq!(inner[0].outcome, CallOutcome::Timeout);
            let first = take();
            note(
                "GET /contacts/:contactId",
                CallOutcome::Connection,
                Duration::ZERO,
            );
            (first, take())
        })
        .await;
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].endpoint, "POST /contacts/upsert");
        assert_eq!(first[0].elapsed, Duration::from_millis(7));
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].outcome, CallOutcome::Connection);
    }
}
