//! Step records stored in groups on SQLite: the records that reach the writer together become
//! one multi-row upsert instead of one statement each.
//!
//! Dispatch writes a record before and after its GHL requests: most of the writer's jobs
//! while it dispatches. Each statement is a round trip to SQLite's connection thread, so a
//! batch of a hundred records spent most of its time in hand-offs, and every worker waiting
//! on it waited that long. The group statement decides exactly what the one-by-one statement
//! ([`sqlite_queue::record_step`]) decides for each record: it is written only while the
//! record's lease holds the event and has not run out, and a record of a step already stored
//! updates it the same way.

use std::collections::HashSet;

use sqlx::sqlite::SqliteConnection;
use sqlx::{QueryBuilder, Row, Sqlite};
use time::OffsetDateTime;

use super::rows::requests_column;
use super::sqlite_queue;
use super::types::to_millis;
use super::{LeaseToken, StepRecord, StoreError};
use crate::domain::EventId;

/// At most this many records per statement: 11 parameters each, far below SQLite's 32,766.
const GROUP_ROWS: usize = 400;

/// One step record waiting in the writer's batch.
pub(super) struct StepWrite<'a> {
    pub id: EventId,
    pub lease: &'a LeaseToken,
    pub step: &'a StepRecord,
}

/// Writes each record of `records` whose lease still holds its event, in as few statements
/// as the group allows: `Some(written)` for each record the group decided, `None` for a
/// second record of one step in the group, which the one-by-one path writes after it (in
/// order). An error ends the whole group: the caller decides whether the batch survives it
/// ([`StoreError::ends_transaction`]) and, if so, writes the records one by one.
pub(super) async fn record_group(
    conn: &mut SqliteConnection,
    records: &[StepWrite<'_>],
) -> Result<Vec<Option<bool>>, StoreError> {
    let mut outcomes = vec![None; records.len()];
    let mut seen = HashSet::with_capacity(records.len());
    let candidates: Vec<usize> = (0..records.len())
        .filter(|&i| seen.insert((records[i].id, records[i].step.index)))
        .collect();
    // One clock for the group: a lease that ran out before it is out for all of its records.
    let now = to_millis(OffsetDateTime::now_utc());
    for chunk in candidates.chunks(GROUP_ROWS) {
        let written = upsert_rows(conn, records, chunk, now).await?;
        for &i in chunk {
            let key = (records[i].id.0, i64::from(records[i].step.index));
            outcomes[i] = Some(written.contains(&key));
        }
    }
    Ok(outcomes)
}

/// One record through the one-by-one path.
pub(super) async fn record_one(
    conn: &mut SqliteConnection,
    record: &StepWrite<'_>,
) -> Result<bool, StoreError> {
    sqlite_queue::record_step(conn, record.id, record.lease, record.step).await
}

/// Upserts the records `records[i]` for each `i` in `chunk` (no two of one step) whose lease
/// holds, and returns the `(event id, step index)` of those written.
async fn upsert_rows(
    conn: &mut SqliteConnection,
    records: &[StepWrite<'_>],
    chunk: &[usize],
    now: i64,
) -> Result<HashSet<(i64, i64)>, StoreError> {
    let requests = chunk
        .iter()
        .map(|&i| requests_column(&records[i].step.requests))
        .collect::<Result<Vec<_>, _>>()?;
    let mut query: QueryBuilder<Sqlite> = QueryBuilder::new(
        "INSERT INTO event_steps (event_id, step_index, kind, status, ghl_id, updated_at, detail,
                                  in_doubt_until, requests)
         SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7,
                v.column8, v.column10
         FROM (",
    );
    query.push_values(chunk.iter().zip(requests), |mut row, (&i, requests)| {
        let StepWrite { id, lease, step } = &records[i];
        row.push_bind(id.0)
            .push_bind(i64::from(step.index))
            .push_bind(step.kind.as_str())
            .push_bind(step.status.as_str())
            .push_bind(step.ghl_id.as_deref())
            .push_bind(to_millis(step.updated_at))
            .push_bind(step.detail.as_deref())
            .push_bind(step.in_doubt_until.map(to_millis))
            .push_bind(lease.as_str())
            .push_bind(requests);
    });
    query.push(
        ") AS v
         WHERE EXISTS (SELECT 1 FROM events e WHERE e.id = v.column1 AND e.lease_owner = v.column9
                       AND e.status = 'processing' AND e.lease_until > ",
    );
    query.push_bind(now);
    query.push(
        ")
         ON CONFLICT (event_id, step_index) DO UPDATE SET kind = excluded.kind,
             status = excluded.status, ghl_id = COALESCE(excluded.ghl_id, event_steps.ghl_id),
             updated_at = excluded.updated_at,
             detail = COALESCE(excluded.detail, event_steps.detail),
             in_doubt_until = excluded.in_doubt_until,
             requests = COALESCE(excluded.requests, event_steps.requests)
         RETURNING event_id, step_index",
    );
    let rows = query
        .build()
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::query("record_step"))?;
    let mut written = HashSet::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.try_get(0).map_err(StoreError::query("record_step"))?;
        let index: i64 = row.try_get(1).map_err(StoreError::query("record_step"))?;
        written.insert((id, index));
    }
    Ok(written)
}
