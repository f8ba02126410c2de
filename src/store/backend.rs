//! What both backends run alike, written once: one schema, so one set of statements (`$N`
//! placeholders, which sqlx's SQLite driver binds by number as PostgreSQL does), read with the
//! `FromRow` structs of `rows`, and [`Backend`], implemented by the sqlx drivers (`Sqlite`,
//! `Postgres`), which runs them with the Rust around them (look-ups, the insert-or-revision
//! decision, leases' ends, tokens).
//!
//! What truly differs stays in the backends' own files: SQLite's single writer and its
//! in-transaction claims, PostgreSQL's `SKIP LOCKED` claims, prepare leases, CTE inserts and
//! database clock.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;

use secrecy::ExposeSecret;
use sqlx::postgres::{PgQueryResult, PgRow};
use sqlx::sqlite::{SqliteQueryResult, SqliteRow};
use sqlx::{
    Acquire, ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Pool,
    Postgres, QueryBuilder, Sqlite, Type,
};
use time::OffsetDateTime;

use super::rows::{
    corrupt, counts_by_status, push_filter, AttemptRow, ClaimedRow, EventRow, StepRow, SummaryRow,
    ThreadRow, SUMMARY_COLUMNS,
};
use super::types::{from_millis, revision_key, to_millis, NOTHING_TO_DO};
use super::{
    AttemptRecord, Claim, ClaimedEvent, Event, EventFilter, EventStatus, EventSummary, Finish,
    Ingested, LeaseToken, NewEvent, Preparation, QueueStats, StepRecord, StoreError, StoredTokens,
    ThreadEvent, TokenSeal,
};
use crate::domain::{ContactKey, EventId, LocationId};

/// An event with its delivery and preparation, under the names `rows::EventRow` reads (`e` is
/// the event). JSON columns are read as text (PostgreSQL keeps them as `jsonb`).
macro_rules! event_select {
    () => {
        "SELECT e.id, e.source, e.dedupe_key, e.status, e.attempts, e.received_at,
             e.next_attempt_at, e.updated_at, e.last_error, e.revision, e.revision_of,
             d.content_type, CAST(d.headers AS TEXT) AS headers, d.body, e.contact_key,
             e.location_id, CAST(p.submission AS TEXT) AS submission, CAST(p.plan AS TEXT) AS plan
         FROM events e
         JOIN event_deliveries d ON d.event_id = e.id
         LEFT JOIN event_plans p ON p.event_id = e.id"
    };
}
pub(super) use event_select;

/// One event with its delivery, by id: `(id)`.
const EVENT_BY_ID: &str = concat!(event_select!(), " WHERE e.id = $1");

/// Pending events not prepared yet, oldest first: `(limit)`.
pub(super) const UNPREPARED: &str = concat!(
    event_select!(),
    " WHERE e.status = 'pending' AND NOT e.prepared ORDER BY e.id LIMIT $1"
);

/// The columns a claim returns (`rows::ClaimedRow`), for a `RETURNING` clause on `events`.
pub(super) const CLAIMED_COLUMNS: &str = "events.id, events.source, events.attempts, \
     events.received_at, events.location_id, events.fair_key, \
     (SELECT CAST(plan AS TEXT) FROM event_plans WHERE event_id = events.id) AS plan";

/// The event stored under a dedupe key: `(source, dedupe_key)`.
const ID_BY_KEY: &str = "SELECT id FROM events WHERE source = $1 AND dedupe_key = $2";

/// The event retention deleted that a delivery repeats (a tombstone): `(source, dedupe_key,
/// content_hash, revision_key)`.
const SWEPT_KEY: &str = "SELECT event_id FROM swept_keys WHERE source = $1
     AND ((dedupe_key = $2 AND (content_hash IS NULL OR CAST($3 AS TEXT) IS NULL
                                OR content_hash = $3))
          OR dedupe_key = $4)
     LIMIT 1";

/// The first revision of a submission, when it has this content: `(first, content_hash)`.
/// A later revision with this content is found by its key instead (the key holds the
/// content's hash), so an edit never walks the submission's other revisions.
const FIRST_WITH_CONTENT: &str = "SELECT id FROM events WHERE id = $1 AND content_hash = $2";

/// The number of a submission's next revision: `(first)`. The first revision is number 1;
/// the highest later one is read off the `(revision_of, revision)` index, so the cost does not
/// grow with the number of revisions.
const NEXT_REVISION: &str = "SELECT COALESCE(
         (SELECT revision FROM events WHERE revision_of = $1 ORDER BY revision DESC LIMIT 1),
         1) + 1";

/// Records an attempt, numbered after the event's last: `(event_id, at, outcome, error)`.
const INSERT_ATTEMPT: &str = "INSERT INTO event_attempts (event_id, attempt, at, outcome, error)
     VALUES ($1, COALESCE((SELECT MAX(attempt) FROM event_attempts WHERE event_id = $1), 0) + 1,
             $2, $3, $4)";

/// Ends an attempt under its lease: `(id, lease, status, next_attempt_at, error,
/// counts_attempt, now)`.
///
/// An event waiting for a later attempt (`next_attempt_at` after now) is parked: its fair key
/// moves to `parked_key`, out of the index claims walk, until a claim finds it due and gives
/// the key back; an event due at once keeps its key. (Right-hand sides read the row as it was
/// before the update; a claimed event always holds its key in `fair_key`.)
const FINISH: &str = "UPDATE events SET status = $3, next_attempt_at = $4, last_error = $5,
         attempts = attempts + $6, lease_owner = NULL, lease_until = NULL, updated_at = $7,
         fair_key = CASE WHEN $4 > $7 THEN NULL ELSE fair_key END,
         parked_key = CASE WHEN $4 > $7 THEN fair_key ELSE NULL END
     WHERE id = $1 AND lease_owner = $2 AND status = 'processing'";

/// Gives a lease up without an attempt: `(id, lease, next_attempt_at, now)`; parks the event
/// as [`FINISH`] does.
const RELEASE: &str = "UPDATE events
     SET status = CASE WHEN attempts = 0 THEN 'pending' ELSE 'retrying' END,
         next_attempt_at = $3, lease_owner = NULL, lease_until = NULL, updated_at = $4,
         fair_key = CASE WHEN $3 > $4 THEN NULL ELSE fair_key END,
         parked_key = CASE WHEN $3 > $4 THEN fair_key ELSE NULL END
     WHERE id = $1 AND lease_owner = $2 AND status = 'processing'";

/// An event's attempts, oldest first: `(event_id)`.
const ATTEMPTS: &str =
    "SELECT attempt, at, outcome, error FROM event_attempts WHERE event_id = $1 ORDER BY attempt";

/// An event's recorded steps, in plan order: `(event_id)`.
const STEPS: &str =
    "SELECT event_id, step_index, kind, status, ghl_id, detail, updated_at, in_doubt_until, requests
     FROM event_steps WHERE event_id = $1 ORDER BY step_index";

/// A location's OAuth tokens: `(location_id)`.
const LOAD_TOKENS: &str =
    "SELECT access_token, refresh_token, expires_at FROM oauth_tokens WHERE location_id = $1";

/// Replaces a location's OAuth tokens: `(location_id, access, refresh, expires_at, now)`.
const SAVE_TOKENS: &str = "INSERT INTO oauth_tokens
         (location_id, access_token, refresh_token, expires_at, updated_at)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (location_id) DO UPDATE SET access_token = excluded.access_token,
         refresh_token = excluded.refresh_token, expires_at = excluded.expires_at,
         updated_at = excluded.updated_at";

/// Moves the fair clock's virtual time up to a claimed key: `(key)`.
const ADVANCE_FAIR_CLOCK: &str = "UPDATE fair_clock SET vtime = $1 WHERE id = 1 AND vtime < $1";

/// The events tied to one (`Store::thread`): `(id)`. The earlier revisions of the same
/// submission, and every other prepared event (earlier or later) sharing one of its references;
/// three index look-ups (the first revision by id, later revisions by `revision_of`, shared
/// references by `event_references`) joined by UNION: one OR over them would scan every event.
const THREAD: &str =
    "WITH m AS (SELECT id, COALESCE(revision_of, id) AS first FROM events WHERE id = $1),
     tied AS (
         SELECT e.id FROM events e, m WHERE e.id = m.first AND e.id < m.id
         UNION SELECT e.id FROM events e, m WHERE e.revision_of = m.first AND e.id < m.id
         UNION SELECT o.event_id FROM event_references mine
               JOIN event_references o ON o.reference = mine.reference
               WHERE mine.event_id = $1 AND o.event_id <> $1)
     SELECT e.id, e.status, CAST(p.plan AS TEXT) AS plan,
            CAST(CASE WHEN e.id = m.first OR e.revision_of = m.first THEN 1 ELSE 0 END
                 AS BIGINT) AS same_submission
     FROM m, tied JOIN events e ON e.id = tied.id LEFT JOIN event_plans p ON p.event_id = e.id
     ORDER BY e.id";

/// The queue's ages and counts at `(now)` (see [`QueueStats`]): the oldest open event's
/// receive time, the oldest due time, how many wait for their lead and the oldest of their
/// receive times, how many wait for a later attempt.
///
/// Per open event: `due_since` (see `QueueStats::oldest_due`; an open earlier event of the
/// same contact holds a due one back and is counted in its stead), and `waiting`, whether its
/// last attempt waited for its lead (only an event with an error recorded looks at its
/// attempts).
const QUEUE_FIGURES: &str = "SELECT MIN(received_at), MIN(due_since),
         COUNT(CASE WHEN waiting = 1 THEN 1 END),
         MIN(CASE WHEN waiting = 1 THEN received_at END),
         COUNT(CASE WHEN status <> 'processing' AND next_attempt_at > $1 AND waiting = 0
                    THEN 1 END)
     FROM (SELECT e.status, e.received_at, e.next_attempt_at,
               CASE WHEN e.status = 'processing' THEN
                        CASE WHEN e.lease_until < $1 THEN e.lease_until END
                    WHEN e.next_attempt_at <= $1 AND NOT EXISTS (
                        SELECT 1 FROM events p
                        WHERE p.contact_key = e.contact_key AND p.id < e.id
                          AND p.status IN ('pending', 'processing', 'retrying'))
                    THEN e.next_attempt_at
               END AS due_since,
               CASE WHEN e.status <> 'processing' AND e.last_error IS NOT NULL
                         AND (SELECT a.outcome FROM event_attempts a
                              WHERE a.event_id = e.id
                              ORDER BY a.attempt DESC LIMIT 1) = 'waiting_for_lead'
                    THEN 1 ELSE 0 END AS waiting
           FROM events e
           WHERE e.status IN ('pending', 'processing', 'retrying')) open_events";

/// Ends an event at its preparation, done with nothing to do in GHL: `(id, now)`.
const PREPARED_DONE: &str = "UPDATE events SET status = 'done', last_error = NULL, updated_at = $2,
         prepared = TRUE, prepare_until = NULL
     WHERE id = $1";

/// Ends an event at its preparation, dead-lettered: `(id, error, now)`.
const PREPARED_DEAD: &str = "UPDATE events SET status = 'dead', last_error = $2, updated_at = $3,
         prepared = TRUE, prepare_until = NULL
     WHERE id = $1";

/// The columns of [`QUEUE_FIGURES`], in order.
type QueueFigures = (Option<i64>, Option<i64>, i64, Option<i64>, i64);

/// A delivery's event row as `Backend::insert_row` writes it: under `key`, as revision
/// `(of, n)` when given, with the delivery's headers as JSON text.
pub(super) struct NewRow<'a> {
    pub event: &'a NewEvent,
    pub headers: &'a str,
    pub key: &'a str,
    pub revision: Option<(i64, i64)>,
}

/// What the shared code needs of a driver that sqlx offers per driver only, implemented
/// alike for both.
pub(super) trait Driver: Database {
    /// How many rows a statement changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// Runs a built query. Not generic code: running a borrowed builder needs its arguments'
    /// lifetime to shrink, which each driver's own (covariant) arguments type allows and the
    /// generic `Database::Arguments<'q>` does not.
    fn fetch_built<'q>(
        pool: &'q Pool<Self>,
        query: QueryBuilder<'q, Self>,
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'q;
}

macro_rules! impl_driver {
    ($db:ty, $result:ty, $row:ty) => {
        impl Driver for $db {
            fn rows_affected(result: &$result) -> u64 {
                result.rows_affected()
            }

            async fn fetch_built<'q>(
                pool: &'q Pool<Self>,
                mut query: QueryBuilder<'q, Self>,
            ) -> Result<Vec<$row>, sqlx::Error> {
                query.build().fetch_all(pool).await
            }
        }
    };
}
impl_driver!(Sqlite, SqliteQueryResult, SqliteRow);
impl_driver!(Postgres, PgQueryResult, PgRow);

/// The sqlx driver of a backend: its SQL where the backends' differ, and the queries and
/// decisions both run alike (the provided methods). The `where` clause is what those need of
/// the driver, said once.
pub(super) trait Backend: Driver
where
    for<'c> &'c mut Self::Connection: Executor<'c, Database = Self>,
    for<'q> Self::Arguments<'q>: IntoArguments<'q, Self>,
    usize: ColumnIndex<Self::Row>,
    for<'q> i64: Encode<'q, Self> + Decode<'q, Self> + Type<Self>,
    for<'q> String: Encode<'q, Self> + Decode<'q, Self> + Type<Self>,
    for<'q> &'q str: Encode<'q, Self> + Type<Self>,
    for<'q> Option<&'q str>: Encode<'q, Self> + Type<Self>,
    for<'r> SummaryRow: FromRow<'r, Self::Row>,
    for<'r> EventRow: FromRow<'r, Self::Row>,
    for<'r> ThreadRow: FromRow<'r, Self::Row>,
    for<'r> AttemptRow: FromRow<'r, Self::Row>,
    for<'r> ClaimedRow: FromRow<'r, Self::Row>,
    for<'r> StepRow: FromRow<'r, Self::Row>,
{
    /// Inserts the event row and its delivery; `None` when the key is taken.
    fn insert_row(
        conn: &mut Self::Connection,
        row: &NewRow<'_>,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// Saves an event's preparation (`submission`, `plan`, JSON text) as its `event_plans` row,
    /// the mark of a prepared event, if it is still pending and has none yet (another replica
    /// may have prepared it meanwhile): `(id, submission, plan)`. PostgreSQL keeps JSON as
    /// `jsonb`, so the statement differs by its casts.
    const INSERT_PLAN: &'static str;

    /// Gives a prepared event its contact key, location and fair key (start-time fair queuing,
    /// see `sqlite_queue`), and marks it prepared.
    fn queue_ready(
        conn: &mut Self::Connection,
        id: EventId,
        contact_key: &ContactKey,
        location_id: &LocationId,
        now: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records what ties a prepared event to others (`Plan::references`), for its location.
    fn insert_references(
        conn: &mut Self::Connection,
        id: EventId,
        location_id: &LocationId,
        references: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The recorded steps of several events (one query), by event id.
    fn steps_of(
        conn: &mut Self::Connection,
        ids: &[i64],
    ) -> impl Future<Output = Result<HashMap<i64, Vec<StepRecord>>, StoreError>> + Send;

    /// Inserts one delivery, or finds the one already stored under its dedupe key; a delivery
    /// that repeats a stored key with content no revision of it had is stored as a new
    /// revision (see [`revision_key`]).
    async fn insert_event(
        conn: &mut Self::Connection,
        event: &NewEvent,
    ) -> Result<Ingested, StoreError> {
        let headers =
            serde_json::to_string(&event.headers).map_err(|e| corrupt("insert_event", e))?;
        let mut row = NewRow {
            event,
            headers: &headers,
            key: &event.dedupe_key,
            revision: None,
        };
        // A delivery of an event retention deleted is still a duplicate (not an edit: other
        // content under the same tool id is stored anew).
        let revision = event
            .content_hash
            .as_ref()
            .map(|hash| revision_key(&event.dedupe_key, hash));
        let swept: Option<i64> = sqlx::query_scalar(SWEPT_KEY)
            .bind(event.source.as_str())
            .bind(&event.dedupe_key)
            .bind(event.content_hash.as_deref())
            .bind(revision.as_deref().unwrap_or_default())
            .fetch_optional(&mut *conn)
            .await
            .map_err(StoreError::query("find_swept_duplicate"))?;
        if let Some(id) = swept {
            return Ok(Ingested::Duplicate(EventId(id)));
        }
        if let Some(id) = Self::insert_row(conn, &row).await? {
            return Ok(Ingested::Stored(EventId(id)));
        }
        let first = Self::id_by_key(conn, event, &event.dedupe_key).await?;
        let Some(hash) = &event.content_hash else {
            return Ok(Ingested::Duplicate(EventId(first)));
        };
        let same: Option<i64> = sqlx::query_scalar(FIRST_WITH_CONTENT)
            .bind(first)
            .bind(hash.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(StoreError::query("find_duplicate"))?;
        if let Some(id) = same {
            return Ok(Ingested::Duplicate(EventId(id)));
        }
        let key = revision_key(&event.dedupe_key, hash);
        let revision: i64 = sqlx::query_scalar(NEXT_REVISION)
            .bind(first)
            .fetch_one(&mut *conn)
            .await
            .map_err(StoreError::query("insert_revision"))?;
        row.key = &key;
        row.revision = Some((first, revision));
        match Self::insert_row(conn, &row).await? {
            Some(id) => Ok(Ingested::Revision {
                id: EventId(id),
                of: EventId(first),
            }),
            // The key holds the content's hash, so this content was stored under this tool id
            // already: as a later revision (an identical resend of an edit), by another
            // replica a moment ago (two sends of one edit racing), or as a revision whose first
            // event retention has since deleted. A duplicate either way.
            // (The revision number is only for people; two different edits racing may get
            // the same one.)
            None => Ok(Ingested::Duplicate(EventId(
                Self::id_by_key(conn, event, &key).await?,
            ))),
        }
    }

    /// The id of the event stored under `key` from the event's source.
    async fn id_by_key(
        conn: &mut Self::Connection,
        event: &NewEvent,
        key: &str,
    ) -> Result<i64, StoreError> {
        sqlx::query_scalar(ID_BY_KEY)
            .bind(event.source.as_str())
            .bind(key)
            .fetch_one(&mut *conn)
            .await
            .map_err(StoreError::query("find_duplicate"))
    }

    /// Saves one event's preparation in the caller's transaction (see
    /// `Store::save_preparations`): its plan row, only for an event still pending and not
    /// prepared yet (the first save stands), then its place in the queue, or its end (done with
    /// nothing to do, or dead) with that attempt recorded.
    async fn save_preparation(
        conn: &mut Self::Connection,
        id: EventId,
        prep: &Preparation,
        now: i64,
    ) -> Result<(), StoreError> {
        let json = |v: &serde_json::Value| v.to_string();
        let (submission, plan) = match prep {
            Preparation::Ready {
                submission, plan, ..
            } => {
                let plan =
                    serde_json::to_string(plan).map_err(|e| corrupt("save_preparation", e))?;
                (Some(json(submission)), Some(plan))
            }
            Preparation::NothingToDo { submission, .. } => {
                (Some(json(submission)), Some(r#"{"steps":[]}"#.to_owned()))
            }
            Preparation::Failed { submission, .. } => (submission.as_ref().map(json), None),
        };
        let saved = sqlx::query(Self::INSERT_PLAN)
            .bind(id.0)
            .bind(submission.as_deref())
            .bind(plan.as_deref())
            .execute(&mut *conn)
            .await
            .map_err(StoreError::query("save_preparation"))?;
        if Self::rows_affected(&saved) == 0 {
            return Ok(());
        }
        match prep {
            Preparation::Ready {
                contact_key,
                location_id,
                plan,
                ..
            } => {
                Self::queue_ready(conn, id, contact_key, location_id, now).await?;
                Self::insert_references(conn, id, location_id, &plan.references).await
            }
            Preparation::NothingToDo {
                references,
                location_id,
                reason,
                ..
            } => {
                if let Some(location_id) = location_id {
                    Self::insert_references(conn, id, location_id, references).await?;
                }
                sqlx::query(PREPARED_DONE)
                    .bind(id.0)
                    .bind(now)
                    .execute(&mut *conn)
                    .await
                    .map_err(StoreError::query("save_preparation"))?;
                Self::insert_attempt(conn, id, now, NOTHING_TO_DO, Some(reason)).await
            }
            Preparation::Failed { error, .. } => {
                sqlx::query(PREPARED_DEAD)
                    .bind(id.0)
                    .bind(error.as_str())
                    .bind(now)
                    .execute(&mut *conn)
                    .await
                    .map_err(StoreError::query("save_preparation"))?;
                Self::insert_attempt(conn, id, now, "dead", Some(error)).await
            }
        }
    }

    /// Number of events in each status.
    async fn status_counts(pool: &Pool<Self>) -> Result<BTreeMap<EventStatus, u64>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM events GROUP BY status")
                .fetch_all(pool)
                .await
                .map_err(StoreError::query("status_counts"))?;
        Ok(counts_by_status(rows))
    }

    /// Status counts, and the queue's ages and counts now (see [`QueueStats`]).
    async fn queue_stats(pool: &Pool<Self>) -> Result<QueueStats, StoreError> {
        let by_status = Self::status_counts(pool).await?;
        let (oldest, due, waiting, oldest_waiting, later): QueueFigures =
            sqlx::query_as(QUEUE_FIGURES)
                .bind(to_millis(OffsetDateTime::now_utc()))
                .fetch_one(pool)
                .await
                .map_err(StoreError::query("queue_stats"))?;
        let count = |n: i64| u64::try_from(n).unwrap_or_default();
        Ok(QueueStats {
            by_status,
            oldest_unfinished: oldest.map(from_millis),
            oldest_due: due.map(from_millis),
            waiting_for_lead: count(waiting),
            oldest_waiting_for_lead: oldest_waiting.map(from_millis),
            retrying_backoff: count(later),
        })
    }

    /// One event with its raw delivery.
    async fn get_event(pool: &Pool<Self>, id: EventId) -> Result<Option<Event>, StoreError> {
        let row: Option<EventRow> = sqlx::query_as(EVENT_BY_ID)
            .bind(id.0)
            .fetch_optional(pool)
            .await
            .map_err(StoreError::query("get_event"))?;
        row.map(Event::try_from).transpose()
    }

    /// Events matching a filter, newest first, without bodies.
    async fn list_events(
        pool: &Pool<Self>,
        filter: &EventFilter,
    ) -> Result<Vec<EventSummary>, StoreError> {
        let mut qb = QueryBuilder::new(format!("SELECT {SUMMARY_COLUMNS} FROM events WHERE 1 = 1"));
        push_filter(&mut qb, "", filter);
        qb.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(filter.page_size()));
        let rows = Self::fetch_built(pool, qb)
            .await
            .map_err(StoreError::query("list_events"))?;
        rows.iter()
            .map(|row| SummaryRow::from_row(row).map_err(StoreError::query("list_events")))
            .map(|row| row.and_then(EventSummary::try_from))
            .collect()
    }

    /// Recorded step results of an event, in plan order.
    async fn steps(pool: &Pool<Self>, id: EventId) -> Result<Vec<StepRecord>, StoreError> {
        let rows: Vec<StepRow> = sqlx::query_as(STEPS)
            .bind(id.0)
            .fetch_all(pool)
            .await
            .map_err(StoreError::query("steps"))?;
        rows.into_iter().map(StepRecord::try_from).collect()
    }

    /// Attempt history of an event, oldest first.
    async fn attempts(pool: &Pool<Self>, id: EventId) -> Result<Vec<AttemptRecord>, StoreError> {
        let rows: Vec<AttemptRow> = sqlx::query_as(ATTEMPTS)
            .bind(id.0)
            .fetch_all(pool)
            .await
            .map_err(StoreError::query("attempts"))?;
        Ok(rows.into_iter().map(AttemptRecord::from).collect())
    }

    /// The events tied to `id` (see `Store::thread`), oldest first, with their steps.
    async fn thread(pool: &Pool<Self>, id: EventId) -> Result<Vec<ThreadEvent>, StoreError> {
        let mut conn = pool.acquire().await.map_err(StoreError::query("thread"))?;
        let rows: Vec<ThreadRow> = sqlx::query_as(THREAD)
            .bind(id.0)
            .fetch_all(&mut *conn)
            .await
            .map_err(StoreError::query("thread"))?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let mut steps = Self::steps_of(&mut conn, &ids).await?;
        rows.into_iter()
            .map(|row| {
                let steps = steps.remove(&row.id).unwrap_or_default();
                row.with_steps(steps)
            })
            .collect()
    }

    /// The end of a claim, in its transaction: the claimed events from the claim's `RETURNING`
    /// rows (see `rows::ClaimedRow`) with their steps, in claim order (`RETURNING` has
    /// none), and the fair clock's virtual time moved to the largest key now in service. Last,
    /// so PostgreSQL holds the clock's row (other replicas' claims wait for it) only until the
    /// commit just after.
    async fn claimed_in_order(
        conn: &mut Self::Connection,
        rows: &[Self::Row],
        claim: &Claim,
    ) -> Result<Vec<ClaimedEvent>, StoreError> {
        let rows = rows
            .iter()
            .map(ClaimedRow::from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::query("claim"))?;
        let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
        let mut steps = Self::steps_of(conn, &ids).await?;
        let mut claimed = rows
            .into_iter()
            .map(|row| row.claimed(claim, &mut steps))
            .collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by_key(|(fair_key, event)| (*fair_key, event.id));
        if let Some((latest, _)) = claimed.last() {
            sqlx::query(ADVANCE_FAIR_CLOCK)
                .bind(*latest)
                .execute(&mut *conn)
                .await
                .map_err(StoreError::query("claim"))?;
        }
        Ok(claimed.into_iter().map(|(_, event)| event).collect())
    }

    /// Records an attempt of `id`, numbered after its last.
    async fn insert_attempt(
        conn: &mut Self::Connection,
        id: EventId,
        at: i64,
        outcome: &str,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(INSERT_ATTEMPT)
            .bind(id.0)
            .bind(at)
            .bind(outcome)
            .bind(error)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::query("insert_attempt"))?;
        Ok(())
    }

    /// Ends an attempt, if `lease` still holds the event (false if not), and records it.
    async fn finish<'c>(
        db: impl Acquire<'c, Database = Self> + Send,
        id: EventId,
        lease: &LeaseToken,
        finish: &Finish,
    ) -> Result<bool, StoreError> {
        let now = to_millis(OffsetDateTime::now_utc());
        let columns = finish.columns(now);
        let mut tx = db.begin().await.map_err(StoreError::query("begin"))?;
        let updated = sqlx::query(FINISH)
            .bind(id.0)
            .bind(lease.as_str())
            .bind(columns.status.as_str())
            .bind(columns.next_attempt_at)
            .bind(columns.error)
            .bind(i64::from(columns.counts_attempt))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("finish"))?;
        if Self::rows_affected(&updated) == 0 {
            return Ok(false);
        }
        Self::insert_attempt(&mut tx, id, now, columns.outcome, columns.error).await?;
        tx.commit().await.map_err(StoreError::query("commit"))?;
        Ok(true)
    }

    /// Gives up a lease without an attempt: the event waits until `at`.
    async fn release<'c>(
        db: impl Executor<'c, Database = Self>,
        id: EventId,
        lease: &LeaseToken,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query(RELEASE)
            .bind(id.0)
            .bind(lease.as_str())
            .bind(to_millis(at))
            .bind(to_millis(OffsetDateTime::now_utc()))
            .execute(db)
            .await
            .map_err(StoreError::query("release"))?;
        Ok(())
    }

    /// The OAuth tokens stored for a location, opened with `seal`.
    async fn load_tokens<'c>(
        db: impl Executor<'c, Database = Self>,
        seal: &TokenSeal,
        location_id: &str,
    ) -> Result<Option<StoredTokens>, StoreError> {
        let row: Option<(String, String, i64)> = sqlx::query_as(LOAD_TOKENS)
            .bind(location_id)
            .fetch_optional(db)
            .await
            .map_err(StoreError::query("load_oauth_tokens"))?;
        row.map(|(access, refresh, expires_at)| {
            Ok(StoredTokens {
                access_token: seal.open(location_id, "access_token", &access)?,
                refresh_token: seal.open(location_id, "refresh_token", &refresh)?,
                expires_at: from_millis(expires_at),
            })
        })
        .transpose()
    }

    /// Replaces a location's OAuth tokens, sealed with `seal`.
    async fn save_tokens<'c>(
        db: impl Executor<'c, Database = Self>,
        seal: &TokenSeal,
        location_id: &str,
        tokens: &StoredTokens,
    ) -> Result<(), StoreError> {
        let access = seal.seal(
            location_id,
            "access_token",
            tokens.access_token.expose_secret(),
        )?;
        let refresh = seal.seal(
            location_id,
            "refresh_token",
            tokens.refresh_token.expose_secret(),
        )?;
        sqlx::query(SAVE_TOKENS)
            .bind(location_id)
            .bind(access)
            .bind(refresh)
            .bind(to_millis(tokens.expires_at))
            .bind(to_millis(OffsetDateTime::now_utc()))
            .execute(db)
            .await
            .map(drop)
            .map_err(StoreError::query("save_oauth_tokens"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use sqlx::Connection;

    /// SQLite's plan for each look-up a delivery makes: every table it reads is searched by
    /// an index on all the columns the statement fixes, never scanned, so a delivery (an edit
    /// above all) costs the same with ten events, revisions or tombstones as with millions.
    #[tokio::test]
    async fn a_deliverys_look_ups_search_indexes_on_sqlite() {
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut conn)
            .await
            .unwrap();
        let expected = [
            (super::SWEPT_KEY, "(source=? AND dedupe_key=?)"),
            (super::ID_BY_KEY, "(source=? AND dedupe_key=?)"),
            (super::FIRST_WITH_CONTENT, "(rowid=?)"),
            (super::NEXT_REVISION, "events_revisions (revision_of=?)"),
        ];
        for (statement, index) in expected {
            let plan: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(&format!("EXPLAIN QUERY PLAN {statement}"))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
            let details: Vec<&str> = plan.iter().map(|row| row.3.as_str()).collect();
            assert!(
                details
                    .iter()
                    .all(|d| !d.starts_with("SCAN") || d.ends_with("CONSTANT ROW")),
                "{statement}: {details:?}"
            );
            assert!(
                details.iter().any(|d| d.contains(index)),
                "{statement}: {details:?}"
            );
        }
    }

    /// The shared statements rely on sqlx's SQLite driver binding `$N` by its number (as
    /// PostgreSQL does), not by the order placeholders appear in, and one `$N` used twice being
    /// one argument.
    #[tokio::test]
    async fn sqlite_binds_dollar_placeholders_by_number() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        let row: (String, String, String, i64) = sqlx::query_as("SELECT $2, $1, $2, $3")
            .bind("first")
            .bind("second")
            .bind(3_i64)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(
            row,
            ("second".into(), "first".into(), "second".into(), 3),
            "bound by number"
        );
    }
}
