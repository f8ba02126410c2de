//! New deliveries stored in groups on SQLite: the deliveries that reach the writer together
//! become one multi-row insert per table instead of three statements each.
//!
//! Only the common case takes the group path: a delivery whose key is new, not a tombstone of
//! an event retention deleted, and not repeated within the group. Everything else — a resend,
//! an edit, a key retention swept, a second delivery of one key in the group — is left to the
//! one-by-one path ([`Backend::insert_event`]), which owns those decisions, and runs after the
//! group in the same transaction. So the group path decides nothing the one-by-one path would
//! decide otherwise: it only stores what that path would store as `Stored`.

use std::collections::{HashMap, HashSet};

use sqlx::sqlite::SqliteConnection;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::backend::Backend;
use super::rows::corrupt;
use super::types::{revision_key, to_millis};
use super::{Ingested, NewEvent, StoreError};
use crate::domain::EventId;

/// At most this many deliveries per multi-row statement: 5 parameters each in the events
/// insert, 4 in the deliveries insert, far below SQLite's 32,766.
const GROUP_ROWS: usize = 400;

/// Stores each delivery of `events` that is plainly new, in as few statements as the group
/// allows: `Some(Stored)` for those, `None` for those the one-by-one path must decide
/// ([`insert_one`]). An error ends the whole group: the caller decides whether the batch
/// survives it ([`StoreError::ends_transaction`]) and, if so, sends the group one by one.
pub(super) async fn insert_group(
    conn: &mut SqliteConnection,
    events: &[&NewEvent],
) -> Result<Vec<Option<Ingested>>, StoreError> {
    let mut outcomes = vec![None; events.len()];
    // A key's first delivery in the group may take the group path; a repeat must see it
    // stored first, so it goes one by one (after the group).
    let mut seen = HashSet::with_capacity(events.len());
    let candidates: Vec<usize> = (0..events.len())
        .filter(|&i| seen.insert((events[i].source.as_str(), events[i].dedupe_key.as_str())))
        .collect();
    for chunk in candidates.chunks(GROUP_ROWS) {
        let stored = insert_rows(conn, events, chunk).await?;
        if stored.is_empty() {
            continue;
        }
        insert_deliveries(conn, events, &stored).await?;
        for (i, id) in stored {
            outcomes[i] = Some(Ingested::Stored(id));
        }
    }
    Ok(outcomes)
}

/// One delivery through the one-by-one path: duplicates, edits, swept keys.
pub(super) async fn insert_one(
    conn: &mut SqliteConnection,
    event: &NewEvent,
) -> Result<Ingested, StoreError> {
    Sqlite::insert_event(conn, event).await
}

/// Inserts the event rows of `events[i]` for each `i` in `chunk` whose key is free and not a
/// tombstone, and returns `(i, id)` for those stored.
async fn insert_rows(
    conn: &mut SqliteConnection,
    events: &[&NewEvent],
    chunk: &[usize],
) -> Result<Vec<(usize, EventId)>, StoreError> {
    // The tombstone check is the one-by-one path's, made coarser: any tombstone under the
    // delivery's key or its revision key sends it there.
    let mut query: QueryBuilder<Sqlite> = QueryBuilder::new(
        "INSERT INTO events (source, dedupe_key, content_hash, revision_of, revision,
                             received_at, next_attempt_at, updated_at, prepared)
         SELECT v.column1, v.column2, v.column3, NULL, 1, v.column4, v.column4, v.column4, FALSE
         FROM (",
    );
    query.push_values(chunk, |mut row, &i| {
        let event = events[i];
        let revision = event
            .content_hash
            .as_deref()
            .map(|hash| revision_key(&event.dedupe_key, hash));
        row.push_bind(event.source.as_str())
            .push_bind(event.dedupe_key.as_str())
            .push_bind(event.content_hash.as_deref())
            .push_bind(to_millis(event.received_at))
            .push_bind(revision);
    });
    query.push(
        ") AS v
         WHERE NOT EXISTS (SELECT 1 FROM swept_keys s
                           WHERE s.source = v.column1 AND s.dedupe_key IN (v.column2, v.column5))
         ON CONFLICT (source, dedupe_key) DO NOTHING
         RETURNING id, source, dedupe_key",
    );
    let rows = query
        .build()
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::query("insert_event"))?;
    let mut ids: HashMap<(String, String), i64> = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.try_get(0).map_err(StoreError::query("insert_event"))?;
        let source: String = row.try_get(1).map_err(StoreError::query("insert_event"))?;
        let key: String = row.try_get(2).map_err(StoreError::query("insert_event"))?;
        ids.insert((source, key), id);
    }
    Ok(chunk
        .iter()
        .filter_map(|&i| {
            let event = events[i];
            ids.remove(&(event.source.as_str().to_owned(), event.dedupe_key.clone()))
                .map(|id| (i, EventId(id)))
        })
        .collect())
}

/// Inserts the delivery rows (content type, kept headers, body) of the events just stored.
async fn insert_deliveries(
    conn: &mut SqliteConnection,
    events: &[&NewEvent],
    stored: &[(usize, EventId)],
) -> Result<(), StoreError> {
    let headers = stored
        .iter()
        .map(|&(i, _)| serde_json::to_string(&events[i].headers))
        .collect::<Result<Vec<String>, _>>()
        .map_err(|e| corrupt("insert_event", e))?;
    let mut query: QueryBuilder<Sqlite> =
        QueryBuilder::new("INSERT INTO event_deliveries (event_id, content_type, headers, body) ");
    query.push_values(
        stored.iter().zip(&headers),
        |mut row, (&(i, id), headers)| {
            let event = events[i];
            row.push_bind(id.0)
                .push_bind(event.content_type.as_deref())
                .push_bind(headers.as_str())
                .push_bind(event.body.as_ref());
        },
    );
    query
        .build()
        .execute(&mut *conn)
        .await
        .map_err(StoreError::query("insert_event"))?;
    Ok(())
}
