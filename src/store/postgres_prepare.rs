//! PostgreSQL prepare leases: which replica prepares which new deliveries, for how long, and
//! how a lease ends (saved, handed back after a failure, or run out after a replica died).
//!
//! Claims never pass the oldest unprepared event (`postgres_queue::claim`), so a lease nobody
//! works on holds every replica's claims back once they reach it. The lease is therefore short
//! ([`PREPARE_LEASE_MS`]) and renewed by its holder while it prepares (a batch of slow events
//! may take longer): a replica that dies mid-preparation holds the others back for one short
//! lease at most, and a batch whose save failed is handed back at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::postgres_queue::DB_NOW_MS;
use super::StoreError;

/// How long a prepare lease lasts past its last renewal, on the database's clock. A batch takes
/// milliseconds; its holder renews it every [`RENEW_EVERY`] until it saves. Should a holder
/// stall past it anyway, another replica takes the batch over, and the first save stands (the
/// other is refused): the cost is work done twice.
pub(super) const PREPARE_LEASE_MS: i64 = 1_000;

/// How often a holder renews its prepare lease (under a third of it: two renewals may be late).
const RENEW_EVERY: Duration = Duration::from_millis(300);

/// At most this many events of batches whose lease ran out are taken over at once (see
/// [`PrepareLeases::take`]).
const TAKEOVER_BATCH: i64 = 32;

/// The longest a holder renews one batch: far past any real batch (`dispatch.prepare_timeout`
/// bounds each event), so a batch abandoned without a save (a caller that gave up waiting)
/// cannot hold claims back for longer.
const MAX_HOLD: Duration = Duration::from_secs(300);

/// The prepare leases this store holds, each renewed by a task until its batch is saved or
/// handed back, or the store is dropped (as a replica's death stops them).
pub(super) struct PrepareLeases {
    pool: PgPool,
    /// Stops every renewal when the store goes.
    all: CancellationToken,
    held: Mutex<HashMap<u64, Held>>,
    next: Mutex<u64>,
}

/// One batch's lease and the task renewing it.
struct Held {
    ids: Arc<Vec<i64>>,
    stop: CancellationToken,
    renewing: JoinHandle<()>,
}

impl PrepareLeases {
    pub(super) fn new(pool: PgPool) -> Self {
        Self {
            pool,
            all: CancellationToken::new(),
            held: Mutex::default(),
            next: Mutex::new(0),
        }
    }

    /// Leases up to `limit` of the oldest pending events not prepared yet and not under another
    /// replica's lease to this store, and returns their ids, oldest first; renews the lease
    /// until [`Self::end`] is called with any of them.
    pub(super) async fn take(&self, limit: u32) -> Result<Vec<i64>, StoreError> {
        // A batch whose lease ran out (its replica died, or failed to hand it back) holds every
        // claim back: when the oldest events to prepare are such, only they are taken (up to
        // TAKEOVER_BATCH), so they are saved within milliseconds rather than with a full batch.
        let ids: Vec<i64> = sqlx::query_scalar(&format!(
            "WITH oldest AS (
                 SELECT id, prepare_until FROM events
                 WHERE status = 'pending' AND NOT prepared
                   AND (prepare_until IS NULL OR prepare_until < {DB_NOW_MS})
                 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED),
             first AS (SELECT prepare_until IS NOT NULL AS takeover FROM oldest ORDER BY id LIMIT 1),
             picked AS (
                 SELECT id FROM oldest WHERE NOT (SELECT takeover FROM first)
                 UNION ALL
                 SELECT id FROM (SELECT id FROM oldest WHERE prepare_until IS NOT NULL
                                 ORDER BY id LIMIT $3) expired
                 WHERE (SELECT takeover FROM first))
             UPDATE events SET prepare_until = {DB_NOW_MS} + $2
             FROM picked WHERE events.id = picked.id
             RETURNING events.id"
        ))
        .bind(i64::from(limit))
        .bind(PREPARE_LEASE_MS)
        .bind(TAKEOVER_BATCH)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("unprepared"))?;
        if ids.is_empty() {
            return Ok(ids);
        }
        let ids = Arc::new(ids);
        let stop = self.all.child_token();
        let renewing = tokio::spawn(renew(self.pool.clone(), ids.clone(), stop.clone()));
        let key = {
            let mut next = lock(&self.next);
            *next += 1;
            *next
        };
        let mut held = lock(&self.held);
        // Batches whose renewal ended by itself (nothing left to prepare, or given up).
        held.retain(|_, h| !h.renewing.is_finished());
        held.insert(
            key,
            Held {
                ids: ids.clone(),
                stop,
                renewing,
            },
        );
        Ok(ids.to_vec())
    }

    /// Stops renewing the leases of every batch holding one of `ids` (they are about to be
    /// saved), once any renewal under way has ended, so it never waits on the save's locks.
    /// Returns `ids` and the other events of those batches.
    pub(super) async fn end(&self, ids: &[i64]) -> Vec<i64> {
        let ended: Vec<Held> = {
            let mut held = lock(&self.held);
            let keys: Vec<u64> = held
                .iter()
                .filter(|(_, h)| h.ids.iter().any(|id| ids.contains(id)))
                .map(|(k, _)| *k)
                .collect();
            keys.iter().filter_map(|k| held.remove(k)).collect()
        };
        let mut batch = ids.to_vec();
        for held in ended {
            held.stop.cancel();
            let _ = held.renewing.await;
            batch.extend(held.ids.iter().filter(|id| !ids.contains(id)));
        }
        batch
    }

    /// Hands the lease of those of `ids` (and of the rest of their batches) still unprepared
    /// back, so any replica takes them at once: after a failed save, or the part of a batch
    /// its save left out.
    pub(super) async fn release(&self, ids: &[i64]) -> Result<(), StoreError> {
        let ids = self.end(ids).await;
        sqlx::query(
            "UPDATE events SET prepare_until = NULL
             WHERE id = ANY($1) AND status = 'pending' AND NOT prepared
               AND prepare_until IS NOT NULL",
        )
        .bind(&ids)
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(StoreError::query("release_prepare_lease"))
    }
}

impl Drop for PrepareLeases {
    fn drop(&mut self) {
        self.all.cancel();
    }
}

/// Renews the lease of `ids` every [`RENEW_EVERY`] until `stop`, [`MAX_HOLD`], or none of them
/// is left to prepare. Rows another transaction holds (a save under way) are skipped, never
/// waited for.
async fn renew(pool: PgPool, ids: Arc<Vec<i64>>, stop: CancellationToken) {
    let give_up = tokio::time::Instant::now() + MAX_HOLD;
    let sql = format!(
        "UPDATE events SET prepare_until = {DB_NOW_MS} + $2
         WHERE id IN (SELECT id FROM events
                      WHERE id = ANY($1) AND status = 'pending' AND NOT prepared
                      FOR UPDATE SKIP LOCKED)"
    );
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RENEW_EVERY) => {}
        }
        if tokio::time::Instant::now() >= give_up {
            tracing::warn!(
                first = ids.first().copied().unwrap_or_default(),
                "a batch of new deliveries was not saved in {MAX_HOLD:?}; its prepare lease is no \
                 longer renewed"
            );
            return;
        }
        let renewed = sqlx::query(&sql)
            .bind(ids.as_slice())
            .bind(PREPARE_LEASE_MS)
            .execute(&pool)
            .await;
        match renewed {
            Ok(done) if done.rows_affected() == 0 => return,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot renew a prepare lease"),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
