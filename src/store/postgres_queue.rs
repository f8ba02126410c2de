//! PostgreSQL queries of the dispatch queue, for several replicas on one database: preparing
//! (fair keys), claiming under leases with `FOR UPDATE SKIP LOCKED`, step results and lease
//! renewals on the database's clock, replay, and retention. What a saved preparation writes,
//! finishing and releasing an attempt are the statements both backends share (`backend`).
//!
//! The queue's rules are the SQLite store's (see `sqlite_queue`): fair order by `(fair_key,
//! id)`, parked retries, the claim's floor when locations are left out, at most one open event
//! per contact in arrival order. What differs is who else is writing:
//!
//! - **Claims** lock their candidates with `FOR UPDATE SKIP LOCKED`, so two replicas claiming
//!   at once take disjoint events without waiting for each other.
//! - **Leases run on the database's clock.** A claim's lease ends at the database's now plus
//!   the lease the dispatcher asked for, and expiry is judged by the same clock, so a replica
//!   whose clock runs ahead cannot see another's live lease as expired and take it over.
//! - **Fencing:** each claim writes its own lease token to `lease_owner`; every later write of
//!   that attempt (step, renewal, finish, release) requires `lease_owner = token AND status =
//!   'processing'`, so a replica whose lease was taken over changes nothing. Recording a step
//!   also requires the lease to be live (`lease_until > now`): a replica whose lease ran out
//!   cannot mark another GHL request as started while a new owner may be sending it.
//! - **Preparation** goes in disjoint batches: each replica leases its own batch of the oldest
//!   unprepared events (a short lease renewed while it prepares, see `postgres_prepare`), and
//!   claims never pass the oldest unprepared event, so a later batch prepared first cannot
//!   overtake an earlier delivery of the same contact. A preparation is saved only for an event
//!   still pending and not yet prepared, so a replica slower than its lease, whose batch another
//!   replica took over, saves nothing twice. A batch's save takes the flows' locks in one order
//!   (see `lock_order`) and runs again at once on a deadlock or serialization failure.

use std::collections::HashMap;

use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Postgres, QueryBuilder};
use time::OffsetDateTime;

use super::backend::Backend;
use super::backend::CLAIMED_COLUMNS;
use super::rows::{push_filter, steps_by_event, StepRow};
use super::types::{stored_reference, to_millis};
use super::{Claim, ClaimedEvent, EventFilter, LeaseToken, Preparation, StepRecord, StoreError};
use crate::domain::{ContactKey, EventId, LocationId};

/// The database's clock in unix milliseconds (the time of the statement, not of its
/// transaction's start).
pub(super) const DB_NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// A claim looks at up to this many times `limit` claimable events (as the SQLite store does).
const CLAIM_SCAN_FACTOR: u32 = 4;

/// The recorded steps of several events (one query), by event id.
pub(super) async fn steps_of<'e>(
    conn: impl sqlx::PgExecutor<'e>,
    ids: &[i64],
) -> Result<HashMap<i64, Vec<StepRecord>>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<StepRow> = sqlx::query_as(
        "SELECT event_id, step_index, kind, status, ghl_id, detail, updated_at, in_doubt_until, requests FROM event_steps
         WHERE event_id = ANY($1) ORDER BY event_id, step_index",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
    .map_err(StoreError::query("steps"))?;
    steps_by_event(rows)
}

/// How many times a preparation's transaction is run again, at once, when PostgreSQL ended it
/// for a deadlock or a serialization failure (another replica's save or a replay crossing it).
const SAVE_RETRIES: u32 = 4;

/// SQLSTATEs of a transaction PostgreSQL ended so that it can simply be run again.
const DEADLOCK_DETECTED: &str = "40P01";
const SERIALIZATION_FAILURE: &str = "40001";

/// Whether `e` is a deadlock or serialization failure (the transaction may run again as is).
fn is_retryable(e: &StoreError) -> bool {
    match e {
        StoreError::Query {
            source: sqlx::Error::Database(db),
            ..
        } => matches!(
            db.code().as_deref(),
            Some(DEADLOCK_DETECTED | SERIALIZATION_FAILURE)
        ),
        _ => false,
    }
}

/// Saves a batch's preparations in one transaction, run again at once on a deadlock or
/// serialization failure. On failure the caller hands the batch's prepare lease back
/// (`postgres_prepare::PrepareLeases::release`).
pub(super) async fn save_preparations(
    pool: &PgPool,
    preparations: &[(EventId, Preparation)],
) -> Result<(), StoreError> {
    let mut retries = 0;
    loop {
        match save_once(pool, preparations).await {
            Ok(()) => return Ok(()),
            Err(e) if retries < SAVE_RETRIES && is_retryable(&e) => {
                retries += 1;
                tracing::debug!(error = %e, retries, "preparations: transaction run again");
            }
            Err(e) => {
                return Err(e);
            }
        }
    }
}

/// The order a batch's preparations are saved in: ready events by flow `(location, source)`,
/// then id (so fair keys within a flow stay in arrival order), then the others by id. Every
/// replica takes the flows' row locks (`fair_flows`) in this one order, so two batches touching
/// the same flows cannot deadlock.
fn lock_order<'p>(
    preparations: &'p [(EventId, Preparation)],
    sources: &HashMap<i64, String>,
) -> Vec<&'p (EventId, Preparation)> {
    let mut ordered: Vec<&(EventId, Preparation)> = preparations.iter().collect();
    ordered.sort_by_cached_key(|(id, prep)| match prep {
        Preparation::Ready { location_id, .. } => (
            0,
            location_id.as_str().to_owned(),
            sources.get(&id.0).cloned().unwrap_or_default(),
            id.0,
        ),
        _ => (1, String::new(), String::new(), id.0),
    });
    ordered
}

async fn save_once(
    pool: &PgPool,
    preparations: &[(EventId, Preparation)],
) -> Result<(), StoreError> {
    let now = to_millis(OffsetDateTime::now_utc());
    let ids: Vec<i64> = preparations.iter().map(|(id, _)| id.0).collect();
    let mut tx = pool.begin().await.map_err(StoreError::query("begin"))?;
    let sources: HashMap<i64, String> =
        sqlx::query_as::<_, (i64, String)>("SELECT id, source FROM events WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::query("save_preparation"))?
            .into_iter()
            .collect();
    for (id, prep) in lock_order(preparations, &sources) {
        Postgres::save_preparation(&mut tx, *id, prep, now).await?;
    }
    tx.commit().await.map_err(StoreError::query("commit"))
}

/// Records what ties a prepared event to others (`Plan::references`), for its location.
pub(super) async fn insert_references(
    conn: &mut PgConnection,
    id: EventId,
    location_id: &LocationId,
    references: &[String],
) -> Result<(), StoreError> {
    if references.is_empty() {
        return Ok(());
    }
    let references: Vec<String> = references
        .iter()
        .map(|r| stored_reference(location_id.as_str(), r))
        .collect();
    sqlx::query(
        "INSERT INTO event_references (reference, event_id)
         SELECT r, $2 FROM UNNEST($1::text[]) AS r ON CONFLICT DO NOTHING",
    )
    .bind(&references)
    .bind(id.0)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::query("save_preparation"))?;
    Ok(())
}

/// Gives a prepared event its fair key (start-time fair queuing, see `sqlite_queue::save_ready`):
/// max(virtual time, last key of its flow) + 1. The flow's row is updated first and its new key
/// read back, so replicas preparing events of one flow at once get distinct keys in turn.
pub(super) async fn queue_ready(
    conn: &mut PgConnection,
    id: EventId,
    contact_key: &ContactKey,
    location_id: &LocationId,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "WITH flow AS (
             INSERT INTO fair_flows (location_id, source, last_key)
             SELECT $2, source, (SELECT vtime FROM fair_clock WHERE id = 1) + 1
             FROM events WHERE id = $1
             ON CONFLICT (location_id, source) DO UPDATE
                 SET last_key = GREATEST(fair_flows.last_key,
                                         (SELECT vtime FROM fair_clock WHERE id = 1)) + 1
             RETURNING last_key)
         UPDATE events SET contact_key = $3, location_id = $2, updated_at = $4,
             fair_key = (SELECT last_key FROM flow), prepared = true, prepare_until = NULL
         WHERE id = $1",
    )
    .bind(id.0)
    .bind(location_id.as_str())
    .bind(contact_key.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::query("save_preparation"))?;
    Ok(())
}

/// The length of the lease the caller asked for (`until` - its own now), in milliseconds; the
/// database adds it to its own clock.
fn lease_ms(from: OffsetDateTime, until: OffsetDateTime) -> i64 {
    i64::try_from((until - from).whole_milliseconds()).unwrap_or(i64::MAX)
}

pub(super) async fn claim(pool: &PgPool, claim: &Claim) -> Result<Vec<ClaimedEvent>, StoreError> {
    let lease = lease_ms(claim.now, claim.lease_until);
    // Parked events that are due go back into the fair order, with their old keys. Its own
    // short transaction: rows another replica is unparking are skipped, not waited for.
    sqlx::query(&format!(
        "UPDATE events SET fair_key = parked_key, parked_key = NULL
         WHERE id IN (SELECT id FROM events WHERE parked_key IS NOT NULL
                          AND next_attempt_at <= {DB_NOW_MS}
                      FOR UPDATE SKIP LOCKED)"
    ))
    .execute(pool)
    .await
    .map_err(StoreError::query("unpark"))?;

    let mut tx = pool.begin().await.map_err(StoreError::query("begin"))?;
    let now: i64 = sqlx::query_scalar(&format!("SELECT {DB_NOW_MS}"))
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::query("claim"))?;
    // The oldest event not prepared yet (one index seek): nothing newer is handed out, as it
    // may be that event's contact's later delivery (its contact key is not known until it is
    // prepared). Replicas prepare disjoint batches, so a later batch can be ready first.
    let barrier: Option<i64> =
        sqlx::query_scalar("SELECT MIN(id) FROM events WHERE status = 'pending' AND NOT prepared")
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::query("claim_barrier"))?;
    let excluded: Vec<&str> = claim
        .exclude_locations
        .iter()
        .map(LocationId::as_str)
        .collect();
    let floor = if excluded.is_empty() {
        None
    } else {
        // The smallest fair key of an open event of any location not left out (one index seek
        // per location; see `sqlite_queue::first_key_outside`).
        let floor: Option<i64> = sqlx::query_scalar(
            "SELECT MIN((SELECT e.fair_key FROM events e
                         WHERE e.location_id = f.location_id
                           AND e.status IN ('pending', 'processing', 'retrying')
                           AND e.fair_key IS NOT NULL
                         ORDER BY e.fair_key LIMIT 1))
             FROM (SELECT DISTINCT location_id FROM fair_flows
                   WHERE location_id <> ALL($1)) f",
        )
        .bind(&excluded)
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::query("claim_floor"))?;
        match floor {
            Some(floor) => Some(floor),
            None => return Ok(Vec::new()), // no other location has an open event
        }
    };
    // Candidates: the first `scan` claimable events in fair order, locked, skipping those
    // another replica's claim holds; then at most `per_location_limit` of each location among
    // them, `limit` in all. The contact rule reads committed state: an event of the contact
    // another replica is claiming right now is still open (pending, or processing under a live
    // lease), so it blocks the later events of that contact either way.
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
        "WITH candidates AS (
             SELECT e.id, e.fair_key, e.location_id FROM events e
             WHERE e.status IN ('pending', 'processing', 'retrying') AND e.fair_key IS NOT NULL
               AND e.location_id IS NOT NULL
               AND ((e.status IN ('pending', 'retrying') AND e.next_attempt_at <= ",
    );
    qb.push_bind(now)
        .push(") OR (e.status = 'processing' AND e.lease_until < ")
        .push_bind(now)
        .push("))");
    if let Some(barrier) = barrier {
        qb.push(" AND e.id < ").push_bind(barrier);
    }
    if let Some(floor) = floor {
        qb.push(" AND e.fair_key >= ").push_bind(floor);
        qb.push(" AND e.location_id <> ALL(")
            .push_bind(&excluded)
            .push(")");
    }
    qb.push(
        " AND NOT EXISTS (SELECT 1 FROM events p
             WHERE p.contact_key = e.contact_key AND p.id <> e.id
               AND p.status IN ('pending', 'processing', 'retrying')
               AND (p.id < e.id OR (p.status = 'processing' AND p.lease_until >= ",
    )
    .push_bind(now)
    .push(
        ")))
             ORDER BY e.fair_key, e.id LIMIT ",
    )
    .push_bind(i64::from(claim.limit.saturating_mul(CLAIM_SCAN_FACTOR)))
    .push(
        " FOR UPDATE OF e SKIP LOCKED),
         picked AS (
             SELECT id FROM (
                 SELECT id, fair_key,
                     ROW_NUMBER() OVER (PARTITION BY location_id ORDER BY fair_key, id) AS nth
                 FROM candidates) ranked
             WHERE nth <= ",
    )
    .push_bind(i64::from(claim.per_location_limit.max(1)))
    .push(" ORDER BY fair_key, id LIMIT ")
    .push_bind(i64::from(claim.limit))
    .push(
        ")
         UPDATE events SET status = 'processing', lease_owner = ",
    )
    .push_bind(claim.lease.as_str())
    .push(", lease_until = ")
    .push_bind(now.saturating_add(lease))
    .push(", updated_at = ")
    .push_bind(now)
    .push(" FROM picked WHERE events.id = picked.id RETURNING ")
    .push(CLAIMED_COLUMNS);
    let rows = qb
        .build()
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::query("claim"))?;
    let claimed = Postgres::claimed_in_order(&mut tx, &rows, claim).await?;
    tx.commit().await.map_err(StoreError::query("commit"))?;
    Ok(claimed)
}

pub(super) async fn record_step(
    pool: &PgPool,
    id: EventId,
    lease: &LeaseToken,
    step: &StepRecord,
) -> Result<bool, StoreError> {
    let done = sqlx::query(&format!(
        "INSERT INTO event_steps (event_id, step_index, kind, status, ghl_id, updated_at, detail,
             in_doubt_until, requests)
         SELECT $1, $2, $3, $4, $5, $6, $8, $9, $10 FROM events
         WHERE id = $1 AND lease_owner = $7 AND status = 'processing' AND lease_until > {DB_NOW_MS}
         ON CONFLICT (event_id, step_index) DO UPDATE SET kind = excluded.kind,
             status = excluded.status, ghl_id = COALESCE(excluded.ghl_id, event_steps.ghl_id),
             updated_at = excluded.updated_at,
             detail = COALESCE(excluded.detail, event_steps.detail),
             in_doubt_until = excluded.in_doubt_until,
             requests = COALESCE(excluded.requests, event_steps.requests)"
    ))
    .bind(id.0)
    .bind(i64::from(step.index))
    .bind(step.kind.as_str())
    .bind(step.status.as_str())
    .bind(step.ghl_id.as_deref())
    .bind(to_millis(step.updated_at))
    .bind(lease.as_str())
    .bind(step.detail.as_deref())
    .bind(step.in_doubt_until.map(to_millis))
    .bind(super::rows::requests_column(&step.requests)?)
    .execute(pool)
    .await
    .map_err(StoreError::query("record_step"))?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn renew_lease(
    pool: &PgPool,
    id: EventId,
    lease: &LeaseToken,
    until: OffsetDateTime,
) -> Result<bool, StoreError> {
    let length = lease_ms(OffsetDateTime::now_utc(), until);
    let renewed = sqlx::query(&format!(
        "UPDATE events SET lease_until = {DB_NOW_MS} + $3
         WHERE id = $1 AND lease_owner = $2 AND status = 'processing'"
    ))
    .bind(id.0)
    .bind(lease.as_str())
    .bind(length)
    .execute(pool)
    .await
    .map_err(StoreError::query("renew_lease"))?;
    Ok(renewed.rows_affected() == 1)
}

/// Resets events to be prepared again: `id` alone when given, else every event matching
/// `filter`; never one being processed. Their plan and fair key go (once prepared again they
/// are queued as if they arrived now); when `from_scratch`, their steps are marked `started`
/// (each runs again, looking for its marker first). Returns how many were reset.
pub(super) async fn replay(
    pool: &PgPool,
    id: Option<EventId>,
    filter: &EventFilter,
    from_scratch: bool,
) -> Result<u64, StoreError> {
    let now = to_millis(OffsetDateTime::now_utc());
    // The rows are locked first: a claim taking one of them meanwhile makes it `processing`,
    // and the re-check after the lock leaves it out.
    let mut qb: QueryBuilder<Postgres> =
        QueryBuilder::new("WITH picked AS (SELECT id FROM events WHERE status <> 'processing'");
    if let Some(id) = id {
        qb.push(" AND id = ").push_bind(id.0);
    }
    push_filter(&mut qb, "", filter);
    // From scratch, every step runs again as one whose answer was lost: a task, note or
    // contact by name is looked for by its marker before it is created again.
    qb.push(
        " ORDER BY id FOR UPDATE), steps AS (UPDATE event_steps SET status = 'started', ghl_id = NULL WHERE ",
    )
    .push_bind(from_scratch)
        .push(
            " AND event_id IN (SELECT id FROM picked)),
             plans AS (DELETE FROM event_plans WHERE event_id IN (SELECT id FROM picked)),
             refs AS (DELETE FROM event_references WHERE event_id IN (SELECT id FROM picked)),
             attempts AS (
                 INSERT INTO event_attempts (event_id, attempt, at, outcome)
                 SELECT id, COALESCE((SELECT MAX(a.attempt) FROM event_attempts a
                                      WHERE a.event_id = picked.id), 0) + 1, ",
        )
        .push_bind(now)
        .push(", ")
        .push_bind(if from_scratch {
            "replay_from_scratch"
        } else {
            "replay"
        })
        .push(
            " FROM picked)
             UPDATE events SET status = 'pending', contact_key = NULL, location_id = NULL,
                 fair_key = NULL, parked_key = NULL, prepared = false, prepare_until = NULL,
                 attempts = 0, next_attempt_at = ",
        )
        .push_bind(now)
        .push(", lease_owner = NULL, lease_until = NULL, last_error = NULL, updated_at = ")
        .push_bind(now)
        .push(" FROM picked WHERE events.id = picked.id");
    let mut tx = pool.begin().await.map_err(StoreError::query("begin"))?;
    let reset = qb
        .build()
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("replay"))?;
    tx.commit().await.map_err(StoreError::query("commit"))?;
    Ok(reset.rows_affected())
}

/// Deletes up to `batch` done events last updated (finished) before `before`, oldest first,
/// with their deliveries, plans, steps and attempts (cascade). Dead events stay for replay;
/// open ones are never touched. Rows another transaction holds are skipped.
pub(super) async fn delete_finished_before(
    pool: &PgPool,
    before: OffsetDateTime,
    batch: u32,
) -> Result<u64, StoreError> {
    // Each deleted event leaves its dedupe key behind (a tombstone), in the same statement.
    let now = OffsetDateTime::now_utc();
    let deleted: i64 = sqlx::query_scalar(
        "WITH gone AS (
             DELETE FROM events WHERE id IN (
                 SELECT id FROM events WHERE status = 'done' AND updated_at < $1
                 ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)
             RETURNING source, dedupe_key, content_hash, id),
         kept AS (
             INSERT INTO swept_keys (source, dedupe_key, content_hash, event_id, swept_at)
             SELECT source, dedupe_key, content_hash, id, $3 FROM gone
             ON CONFLICT (source, dedupe_key) DO UPDATE SET content_hash = excluded.content_hash,
                 event_id = excluded.event_id, swept_at = excluded.swept_at)
         SELECT COUNT(*) FROM gone",
    )
    .bind(to_millis(before))
    .bind(i64::from(batch.max(1)))
    .bind(to_millis(now))
    .fetch_one(pool)
    .await
    .map_err(StoreError::query("delete_finished_before"))?;
    sqlx::query("DELETE FROM swept_keys WHERE swept_at < $1")
        .bind(to_millis(now - super::SWEPT_KEYS_KEPT))
        .execute(pool)
        .await
        .map_err(StoreError::query("forget_swept_keys"))?;
    Ok(u64::try_from(deleted).unwrap_or_default())
}
