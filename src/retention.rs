//! Retention: a background job that deletes done events older than `store.retention`, in
//! bounded batches, so the store does not grow forever. Dead letters are kept until they are
//! replayed (and done) or deleted by hand.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::store::Queue;

/// Events deleted per store transaction: small enough that no write waits long behind one.
pub const BATCH: u32 = 500;
/// How often the job looks for expired events.
pub const INTERVAL: Duration = Duration::from_secs(600);

/// Deletes every done event last updated before `now - retention`, batch by batch; returns how
/// many. Stops early (with what it deleted so far) when the store fails or `stop` is cancelled.
pub async fn sweep(
    store: &dyn Queue,
    retention: Duration,
    stop: &CancellationToken,
) -> Result<u64, crate::store::StoreError> {
    let before = OffsetDateTime::now_utc() - retention;
    let mut total = 0;
    while !stop.is_cancelled() {
        let deleted = store.delete_finished_before(before, BATCH).await?;
        total += deleted;
        metrics::counter!(crate::metrics::RETENTION_DELETED).increment(deleted);
        if deleted < u64::from(BATCH) {
            break;
        }
        // Let other writers in between batches.
        tokio::task::yield_now().await;
    }
    Ok(total)
}

/// Runs [`sweep`] at start and every [`INTERVAL`] until `stop` is cancelled. With several
/// replicas each runs it; a batch deletes rows no claim can hold (done events), so they only
/// share the work.
pub async fn run(store: Arc<dyn Queue>, retention: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match sweep(store.as_ref(), retention, &stop).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, ?retention, "retention: done events deleted"),
            Err(e) => {
                tracing::warn!(error = %e, "retention: cannot delete old events; will try again")
            }
        }
    }
}
