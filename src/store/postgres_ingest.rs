//! New deliveries stored in groups on PostgreSQL: the deliveries that arrive together become
//! one statement (events and their bodies, in one key order on every replica) instead of two
//! round trips and a commit each.
//!
//! Like SQLite's group path ([`super::sqlite_ingest`]), the group only stores what is plainly
//! new: a key not taken, not a tombstone of an event retention deleted, and not repeated within
//! the group. Everything else — a resend, an edit, a swept key, a key another replica holds —
//! goes through the one-by-one path ([`Backend::insert_event`]) once the group's statement
//! is committed, so that path sees the group's rows and decides as it always did.
//!
//! Deadlocks: a group inserts several keys in one transaction, and two replicas may insert
//! overlapping keys at once (a sender retrying on another replica). Each group inserts its rows
//! ordered by `(source, dedupe_key)`, so any two groups take the keys' index entries in one
//! order and neither can wait on the other in a cycle; the one-by-one path takes one key per
//! transaction. Should a group's statement still fail for any reason, nothing of it was
//! written (one statement, one transaction), and its deliveries go the one-by-one path.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::postgres::PgPool;
use sqlx::Postgres;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::backend::Backend;
use super::rows::corrupt;
use super::types::{revision_key, to_millis};
use super::{Ingested, NewEvent, StoreError};
use crate::domain::EventId;

/// Deliveries waiting for a group: past this, a delivery's request waits to be queued.
const QUEUED: usize = 4096;
/// At most this many deliveries in one group's statement.
const GROUP_ROWS: usize = 500;

/// The events and their deliveries of a group, from one array per column. Rows whose key is
/// taken (`ON CONFLICT`) or swept are left out; `RETURNING` names those stored.
const INSERT_GROUP: &str = "
WITH v AS (
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[],
                         $6::text[], $7::text[], $8::bytea[])
        AS v(source, dedupe_key, content_hash, received_at, revision_key,
             content_type, headers, body)
),
new AS (
    INSERT INTO events (source, dedupe_key, content_hash, revision_of, revision,
                        received_at, next_attempt_at, updated_at, prepared)
    SELECT v.source, v.dedupe_key, v.content_hash, NULL, 1,
           v.received_at, v.received_at, v.received_at, false
    FROM v
    WHERE NOT EXISTS (SELECT 1 FROM swept_keys s
                      WHERE s.source = v.source
                        AND s.dedupe_key IN (v.dedupe_key, v.revision_key))
    ORDER BY v.source, v.dedupe_key
    ON CONFLICT (source, dedupe_key) DO NOTHING
    RETURNING id, source, dedupe_key
),
delivered AS (
    INSERT INTO event_deliveries (event_id, content_type, headers, body)
    SELECT new.id, v.content_type, v.headers::jsonb, v.body
    FROM new JOIN v ON v.source = new.source AND v.dedupe_key = new.dedupe_key
)
SELECT id, source, dedupe_key FROM new";

/// A delivery waiting for its group, and where its outcome goes.
struct Waiting {
    event: NewEvent,
    answer: oneshot::Sender<Result<Ingested, StoreError>>,
}

/// The queue of deliveries to store; a task takes what has gathered as one group, up to
/// `groups` groups at once, each on a connection of the pool.
pub(super) struct GroupedIngest {
    queue: mpsc::Sender<Waiting>,
}

impl GroupedIngest {
    /// Starts the task that forms groups; it ends when this handle is dropped. At most
    /// `groups` groups are stored at once: while they are, new deliveries gather, so the
    /// groups grow with the load instead of the connections in use.
    pub(super) fn start(pool: PgPool, groups: usize) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUED);
        tokio::spawn(form_groups(pool, waiting, groups.max(1)));
        Self { queue }
    }

    /// Stores `event` (see [`super::Ingest::insert_event`]) with whatever arrives with it;
    /// returns once its group is committed.
    pub(super) async fn insert(&self, event: NewEvent) -> Result<Ingested, StoreError> {
        let (answer, outcome) = oneshot::channel();
        self.queue
            .send(Waiting { event, answer })
            .await
            .map_err(|_| StoreError::NotWritable("the store is shutting down".to_owned()))?;
        outcome
            .await
            .map_err(|_| StoreError::NotWritable("the store is shutting down".to_owned()))?
    }
}

async fn form_groups(pool: PgPool, mut waiting: mpsc::Receiver<Waiting>, groups: usize) {
    let slots = Arc::new(Semaphore::new(groups));
    loop {
        // A slot first: while every slot is busy the deliveries gather in the queue.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut group = Vec::new();
        if waiting.recv_many(&mut group, GROUP_ROWS).await == 0 {
            return;
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            store_group(&pool, group).await;
            drop(slot);
        });
    }
}

/// Stores a group and answers each of its deliveries: those the group stored at once, then
/// the rest one by one.
async fn store_group(pool: &PgPool, group: Vec<Waiting>) {
    metrics::histogram!(crate::metrics::STORE_COMMIT_BATCH_SIZE).record(group.len() as f64);
    let events: Vec<&NewEvent> = group.iter().map(|w| &w.event).collect();
    let outcomes = match insert_group(pool, &events).await {
        Ok(outcomes) => outcomes,
        Err(e) => {
            // Nothing of the group was written: each delivery goes the one-by-one path,
            // which gives it its own outcome (its own error when the database is down).
            tracing::warn!(error = %e, deliveries = group.len(), "storing a group of deliveries failed; storing them one by one");
            vec![None; group.len()]
        }
    };
    drop(events);
    let mut left = Vec::new();
    for (waiting, outcome) in group.into_iter().zip(outcomes) {
        match outcome {
            // The request may have gone (its client hung up): the delivery is stored
            // regardless.
            Some(stored) => drop(waiting.answer.send(Ok(stored))),
            None => left.push(waiting),
        }
    }
    let mut conn = None;
    for waiting in left {
        let outcome = insert_one(pool, &mut conn, &waiting.event).await;
        drop(waiting.answer.send(outcome));
    }
}

/// One delivery through the one-by-one path, on a connection kept for the group's rest.
async fn insert_one(
    pool: &PgPool,
    conn: &mut Option<sqlx::pool::PoolConnection<Postgres>>,
    event: &NewEvent,
) -> Result<Ingested, StoreError> {
    if let Some(conn) = conn {
        return Postgres::insert_event(conn, event).await;
    }
    let acquired = pool
        .acquire()
        .await
        .map_err(StoreError::query("insert_event"))?;
    Postgres::insert_event(conn.insert(acquired), event).await
}

/// Stores each delivery of `events` that is plainly new, in one statement: `Some(Stored)`
/// for those, `None` for those the one-by-one path must decide.
async fn insert_group(
    pool: &PgPool,
    events: &[&NewEvent],
) -> Result<Vec<Option<Ingested>>, StoreError> {
    let mut outcomes = vec![None; events.len()];
    // A key's first delivery in the group may take the group path; a repeat must see it
    // stored first, so it goes one by one (after the group).
    let mut first_of: HashMap<(&str, &str), usize> = HashMap::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        first_of
            .entry((event.source.as_str(), event.dedupe_key.as_str()))
            .or_insert(i);
    }
    let rows = first_of.len();
    let mut columns = Columns::with_capacity(rows);
    for &i in first_of.values() {
        columns.push(events[i])?;
    }
    let stored: Vec<(i64, String, String)> = sqlx::query_as(INSERT_GROUP)
        .bind(columns.source)
        .bind(columns.dedupe_key)
        .bind(columns.content_hash)
        .bind(columns.received_at)
        .bind(columns.revision_key)
        .bind(columns.content_type)
        .bind(columns.headers)
        .bind(columns.body)
        .fetch_all(pool)
        .await
        .map_err(StoreError::query("insert_event"))?;
    for (id, source, key) in stored {
        if let Some(&i) = first_of.get(&(source.as_str(), key.as_str())) {
            outcomes[i] = Some(Ingested::Stored(EventId(id)));
        }
    }
    Ok(outcomes)
}

/// The group's rows as one array per column, for `UNNEST`.
struct Columns<'a> {
    source: Vec<&'a str>,
    dedupe_key: Vec<&'a str>,
    content_hash: Vec<Option<&'a str>>,
    received_at: Vec<i64>,
    revision_key: Vec<Option<String>>,
    content_type: Vec<Option<&'a str>>,
    headers: Vec<String>,
    body: Vec<&'a [u8]>,
}

impl<'a> Columns<'a> {
    fn with_capacity(n: usize) -> Self {
        Self {
            source: Vec::with_capacity(n),
            dedupe_key: Vec::with_capacity(n),
            content_hash: Vec::with_capacity(n),
            received_at: Vec::with_capacity(n),
            revision_key: Vec::with_capacity(n),
            content_type: Vec::with_capacity(n),
            headers: Vec::with_capacity(n),
            body: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, event: &'a NewEvent) -> Result<(), StoreError> {
        self.source.push(event.source.as_str());
        self.dedupe_key.push(&event.dedupe_key);
        self.content_hash.push(event.content_hash.as_deref());
        self.received_at.push(to_millis(event.received_at));
        self.revision_key.push(
            event
                .content_hash
                .as_deref()
                .map(|hash| revision_key(&event.dedupe_key, hash)),
        );
        self.content_type.push(event.content_type.as_deref());
        self.headers
            .push(serde_json::to_string(&event.headers).map_err(|e| corrupt("insert_event", e))?);
        self.body.push(event.body.as_ref());
        Ok(())
    }
}
