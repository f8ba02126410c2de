//! SQLite queries of the dispatch queue: preparing (which gives each event its fair key),
//! claiming under leases in fair order, step results, lease renewals, replay and retention.
//! What a saved preparation writes, finishing and releasing an attempt are statements both
//! backends share (`backend`).
//!
//! Claims take events in `(fair_key, id)` order: start-time fair queuing between flows, one
//! flow per (GHL location, source) (see `queue_ready`), so a bulk import from one source does
//! not make another source's leads — or another location's — wait behind all of it. The key
//! is computed once per event when it is prepared, so a claim only walks an index, as cheaply
//! as arrival order did. An event waiting for a later retry is parked out of that index (see
//! `backend::FINISH`), and a claim that leaves locations out starts at the first key of the
//! others (see `first_key_outside`), so a location's outage or long pause with thousands of
//! waiting events does not make every claim walk past them.

use sqlx::sqlite::SqliteConnection;
use sqlx::Connection;
use sqlx::{QueryBuilder, Sqlite};
use time::OffsetDateTime;

use super::backend::{Backend, CLAIMED_COLUMNS};
use super::rows::push_filter;
use super::types::{stored_reference, to_millis};
use super::{Claim, ClaimedEvent, EventFilter, LeaseToken, Preparation, StepRecord, StoreError};
use crate::domain::{ContactKey, EventId, LocationId};

pub(super) async fn save_preparations(
    conn: &mut SqliteConnection,
    preparations: &[(EventId, Preparation)],
) -> Result<(), StoreError> {
    let now = to_millis(OffsetDateTime::now_utc());
    let mut tx = conn.begin().await.map_err(StoreError::query("begin"))?;
    for (id, prep) in preparations {
        Sqlite::save_preparation(&mut tx, *id, prep, now).await?;
    }
    tx.commit().await.map_err(StoreError::query("commit"))?;
    Ok(())
}

/// Gives a prepared event its place in the queue.
///
/// Start-time fair queuing: each (location, source) is a flow, each event costs one unit, and an
/// event's key is max(V, last key of its flow) + 1, where V, the virtual time, is the largest
/// key claimed so far (`fair_clock`). Claims go in key order, so backlogged flows take turns:
/// a source that starts sending behind another's backlog — or a location behind another
/// location's — gets every other slot from the head on instead of the end of the line, an
/// idle flow rejoins at the head (not ahead of it with stale small keys), and with one flow the
/// order stays arrival order.
pub(super) async fn queue_ready(
    conn: &mut SqliteConnection,
    id: EventId,
    contact_key: &ContactKey,
    location_id: &LocationId,
    now: i64,
) -> Result<(), StoreError> {
    let keyed: Option<(String, i64)> = sqlx::query_as(
        "UPDATE events SET contact_key = $2, location_id = $3, updated_at = $4,
             prepared = TRUE, prepare_until = NULL,
             fair_key = 1 + MAX(
                 (SELECT vtime FROM fair_clock WHERE id = 1),
                 COALESCE((SELECT f.last_key FROM fair_flows f
                           WHERE f.location_id = $3 AND f.source = events.source), 0))
         WHERE id = $1
         RETURNING source, fair_key",
    )
    .bind(id.0)
    .bind(contact_key.as_str())
    .bind(location_id.as_str())
    .bind(now)
    .fetch_optional(&mut *conn)
    .await
    .map_err(StoreError::query("save_preparation"))?;
    let Some((source, fair_key)) = keyed else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO fair_flows (location_id, source, last_key) VALUES ($1, $2, $3)
         ON CONFLICT (location_id, source) DO UPDATE SET last_key = excluded.last_key",
    )
    .bind(location_id.as_str())
    .bind(source)
    .bind(fair_key)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::query("save_preparation"))?;
    Ok(())
}

/// Records what ties a prepared event to others (`Plan::references`), for its location.
pub(super) async fn insert_references(
    conn: &mut SqliteConnection,
    id: EventId,
    location_id: &LocationId,
    references: &[String],
) -> Result<(), StoreError> {
    for reference in references {
        sqlx::query(
            "INSERT INTO event_references (reference, event_id) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
        )
        .bind(stored_reference(location_id.as_str(), reference))
        .bind(id.0)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::query("save_preparation"))?;
    }
    Ok(())
}

/// The smallest fair key of an open event of any location not in `excluded`, one index seek
/// per location (`events_open_location`); `None` when they have no open event.
///
/// A location left out of claims for long (a refused token, a spent daily quota) keeps its
/// waiting events at the head of the fair order once the others have been served past them;
/// starting the walk here keeps the claim from stepping over all of them each time.
async fn first_key_outside(
    conn: &mut SqliteConnection,
    excluded: &[LocationId],
) -> Result<Option<i64>, StoreError> {
    let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
        "SELECT MIN((SELECT e.fair_key FROM events e INDEXED BY events_open_location
                     WHERE e.location_id = f.location_id
                       AND e.status IN ('pending', 'processing', 'retrying') AND e.fair_key IS NOT NULL
                     ORDER BY e.fair_key LIMIT 1))
         FROM (SELECT DISTINCT location_id FROM fair_flows WHERE location_id NOT IN (",
    );
    let mut sep = qb.separated(", ");
    for location in excluded {
        sep.push_bind(location.as_str());
    }
    qb.push(")) f");
    qb.build_query_scalar()
        .fetch_one(&mut *conn)
        .await
        .map_err(StoreError::query("claim_floor"))
}

/// A claim looks at up to this many times `limit` claimable events.
const CLAIM_SCAN_FACTOR: u32 = 4;

pub(super) async fn claim(
    conn: &mut SqliteConnection,
    claim: &Claim,
) -> Result<Vec<ClaimedEvent>, StoreError> {
    let now = to_millis(claim.now);
    // The claim, its steps and the clock move together or not at all.
    let mut tx = conn.begin().await.map_err(StoreError::query("begin"))?;
    // Parked events that are due go back into the fair order, with their old keys.
    sqlx::query(
        "UPDATE events SET fair_key = parked_key, parked_key = NULL
         WHERE parked_key IS NOT NULL AND next_attempt_at <= $1",
    )
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::query("unpark"))?;
    let floor = if claim.exclude_locations.is_empty() {
        None
    } else {
        match first_key_outside(&mut tx, &claim.exclude_locations).await? {
            Some(floor) => Some(floor),
            None => {
                // No other location has an open event: nothing to claim.
                tx.commit().await.map_err(StoreError::query("commit"))?;
                return Ok(Vec::new());
            }
        }
    };
    let mut qb: QueryBuilder<Sqlite> =
        QueryBuilder::new("UPDATE events SET status = 'processing', lease_owner = ");
    qb.push_bind(claim.lease.as_str())
        .push(", lease_until = ")
        .push_bind(to_millis(claim.lease_until))
        .push(", updated_at = ")
        .push_bind(now)
        // The first `scan` claimable events in fair order, then at most `per_location_limit`
        // of each location among them, in that order. Bounding the scan keeps the claim's cost
        // independent of the backlog; a location held back here is excluded by the dispatcher
        // once at its cap, so the next claim reaches further.
        .push(
            " WHERE id IN (SELECT id FROM (
                 SELECT id, fair_key,
                     ROW_NUMBER() OVER (PARTITION BY location_id ORDER BY fair_key, id) AS nth
                 FROM (SELECT e.id, e.fair_key, e.location_id FROM events e INDEXED BY events_open_fair
               WHERE e.status IN ('pending', 'processing', 'retrying') AND e.fair_key IS NOT NULL
                 AND e.location_id IS NOT NULL
                 AND ((e.status IN ('pending', 'retrying') AND e.next_attempt_at <= ",
        )
        .push_bind(now)
        .push(") OR (e.status = 'processing' AND e.lease_until < ")
        .push_bind(now)
        .push("))");
    if let Some(floor) = floor {
        qb.push(" AND e.fair_key >= ").push_bind(floor);
    }
    if !claim.exclude_locations.is_empty() {
        qb.push(" AND e.location_id NOT IN (");
        let mut sep = qb.separated(", ");
        for loc in &claim.exclude_locations {
            sep.push_bind(loc.as_str());
        }
        qb.push(")");
    }
    // Fair order between the sources of a location (see `queue_ready`), but one contact at a
    // time in arrival order, whatever the keys: an earlier unfinished event with the same
    // contact key, or a later one currently held under a live lease, blocks this one.
    qb.push(
        " AND NOT EXISTS (SELECT 1 FROM events p
             WHERE p.contact_key = e.contact_key AND p.id <> e.id
               AND p.status IN ('pending', 'processing', 'retrying')
               AND (p.id < e.id OR (p.status = 'processing' AND p.lease_until >= ",
    )
    .push_bind(now)
    .push("))) ORDER BY e.fair_key, e.id LIMIT ")
    .push_bind(i64::from(claim.limit.saturating_mul(CLAIM_SCAN_FACTOR)))
    .push(")) WHERE nth <= ")
    .push_bind(i64::from(claim.per_location_limit.max(1)))
    .push(" ORDER BY fair_key, id LIMIT ")
    .push_bind(i64::from(claim.limit))
    .push(") RETURNING ")
    .push(CLAIMED_COLUMNS);
    let rows = qb
        .build()
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::query("claim"))?;
    let claimed = Sqlite::claimed_in_order(&mut tx, &rows, claim).await?;
    tx.commit().await.map_err(StoreError::query("commit"))?;
    Ok(claimed)
}

pub(super) async fn record_step(
    conn: &mut SqliteConnection,
    id: EventId,
    lease: &LeaseToken,
    step: &StepRecord,
) -> Result<bool, StoreError> {
    // A lease that ran out may be taken over any moment: its holder may not start another GHL
    // request for the event (a `started` record comes before each request).
    let done = sqlx::query(
        "INSERT INTO event_steps (event_id, step_index, kind, status, ghl_id, updated_at, detail,
             in_doubt_until, requests)
         SELECT $1, $2, $3, $4, $5, $6, $9, $10, $11 WHERE EXISTS (SELECT 1 FROM events WHERE id = $1 AND lease_owner = $7
             AND status = 'processing' AND lease_until > $8)
         ON CONFLICT (event_id, step_index) DO UPDATE SET kind = excluded.kind, status = excluded.status,
             ghl_id = COALESCE(excluded.ghl_id, event_steps.ghl_id), updated_at = excluded.updated_at,
             detail = COALESCE(excluded.detail, event_steps.detail),
             in_doubt_until = excluded.in_doubt_until,
             requests = COALESCE(excluded.requests, event_steps.requests)",
    )
    .bind(id.0)
    .bind(i64::from(step.index))
    .bind(step.kind.as_str())
    .bind(step.status.as_str())
    .bind(step.ghl_id.as_deref())
    .bind(to_millis(step.updated_at))
    .bind(lease.as_str())
    .bind(to_millis(OffsetDateTime::now_utc()))
    .bind(step.detail.as_deref())
    .bind(step.in_doubt_until.map(to_millis))
    .bind(super::rows::requests_column(&step.requests)?);
    let done = done
        .execute(&mut *conn)
        .await
        .map_err(StoreError::query("record_step"))?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn renew_lease(
    conn: &mut SqliteConnection,
    id: EventId,
    lease: &LeaseToken,
    until: OffsetDateTime,
) -> Result<bool, StoreError> {
    let renewed = sqlx::query(
        "UPDATE events SET lease_until = $3 WHERE id = $1 AND lease_owner = $2 AND status = 'processing'",
    )
    .bind(id.0)
    .bind(lease.as_str())
    .bind(to_millis(until))
    .execute(&mut *conn)
    .await
    .map_err(StoreError::query("renew_lease"))?;
    Ok(renewed.rows_affected() == 1)
}

/// Resets events to be prepared again. `where_sql` selects them (never ones under a live lease).
/// Their fair key is cleared too: once prepared again they are queued as if they arrived now.
/// From scratch, their steps are marked `started`: each runs again, looking for its marker first.
async fn reset_for_replay(
    conn: &mut SqliteConnection,
    mut select: QueryBuilder<'_, Sqlite>,
    from_scratch: bool,
) -> Result<u64, StoreError> {
    let now = to_millis(OffsetDateTime::now_utc());
    let mut tx = conn.begin().await.map_err(StoreError::query("begin"))?;
    let ids: Vec<i64> = select
        .build_query_scalar()
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::query("replay"))?;
    for id in &ids {
        for table in ["event_references", "event_plans"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE event_id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query("replay"))?;
        }
        if from_scratch {
            // Every step runs again, each as one whose answer was lost: a task, note or
            // contact by name is looked for by its marker before it is created again.
            sqlx::query(
                "UPDATE event_steps SET status = 'started', ghl_id = NULL WHERE event_id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("replay"))?;
        }
        sqlx::query(
            "UPDATE events SET status = 'pending', contact_key = NULL, location_id = NULL,
                 fair_key = NULL, parked_key = NULL, prepared = FALSE, prepare_until = NULL,
                 attempts = 0, next_attempt_at = $2, lease_owner = NULL, lease_until = NULL,
                 last_error = NULL, updated_at = $2
             WHERE id = $1",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("replay"))?;
        Sqlite::insert_attempt(
            &mut tx,
            EventId(*id),
            now,
            if from_scratch {
                "replay_from_scratch"
            } else {
                "replay"
            },
            None,
        )
        .await?;
    }
    tx.commit().await.map_err(StoreError::query("commit"))?;
    Ok(ids.len() as u64)
}

pub(super) async fn replay(
    conn: &mut SqliteConnection,
    id: EventId,
    from_scratch: bool,
) -> Result<bool, StoreError> {
    let mut qb = QueryBuilder::new("SELECT id FROM events WHERE status <> 'processing' AND id = ");
    qb.push_bind(id.0);
    Ok(reset_for_replay(conn, qb, from_scratch).await? == 1)
}

pub(super) async fn replay_matching(
    conn: &mut SqliteConnection,
    filter: &EventFilter,
    from_scratch: bool,
) -> Result<u64, StoreError> {
    let mut qb = QueryBuilder::new("SELECT id FROM events WHERE status <> 'processing'");
    push_filter(&mut qb, "", filter);
    qb.push(" ORDER BY id");
    reset_for_replay(conn, qb, from_scratch).await
}

pub(super) async fn delete_finished_before(
    conn: &mut SqliteConnection,
    before: OffsetDateTime,
    batch: u32,
) -> Result<u64, StoreError> {
    // Steps and attempts go with their event (ON DELETE CASCADE). The oldest first, a bounded
    // batch per transaction, so the writer is never held for long. Each deleted event leaves
    // its dedupe key behind (a tombstone), written first in the same transaction.
    const BATCH_IDS: &str =
        "SELECT id FROM events WHERE status = 'done' AND updated_at < $1 ORDER BY id LIMIT $2";
    let now = OffsetDateTime::now_utc();
    sqlx::query(&format!(
        "INSERT OR REPLACE INTO swept_keys (source, dedupe_key, content_hash, event_id, swept_at)
         SELECT source, dedupe_key, content_hash, id, $3 FROM events WHERE id IN ({BATCH_IDS})"
    ))
    .bind(to_millis(before))
    .bind(i64::from(batch.max(1)))
    .bind(to_millis(now))
    .execute(&mut *conn)
    .await
    .map_err(StoreError::query("keep_swept_keys"))?;
    let deleted = sqlx::query(&format!("DELETE FROM events WHERE id IN ({BATCH_IDS})"))
        .bind(to_millis(before))
        .bind(i64::from(batch.max(1)))
        .execute(&mut *conn)
        .await
        .map_err(StoreError::query("delete_finished"))?;
    sqlx::query("DELETE FROM swept_keys WHERE swept_at < $1")
        .bind(to_millis(now - super::SWEPT_KEYS_KEPT))
        .execute(&mut *conn)
        .await
        .map_err(StoreError::query("forget_swept_keys"))?;
    Ok(deleted.rows_affected())
}
