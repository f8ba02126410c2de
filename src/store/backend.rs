//! What both backends run alike, written once: [`Backend`], implemented by the sqlx drivers
//! (`Sqlite`, `Postgres`), holds each backend's spelling of the shared statements and runs them
//! with the Rust around them (look-ups, the insert-or-revision decision, leases' ends, tokens).
//!
//! What truly differs stays in the backends' own files: SQLite's single writer and its
//! in-transaction claims, PostgreSQL's `SKIP LOCKED` claims, CTE inserts and database clock.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;

use secrecy::ExposeSecret;
use sqlx::postgres::{PgQueryResult, PgRow};
use sqlx::sqlite::{SqliteQueryResult, SqliteRow};
use sqlx::{
    Acquire, ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Postgres,
    QueryBuilder, Sqlite, Type,
};
use time::OffsetDateTime;

use super::rows::{
    attempt_from_row, claimed_from_row, corrupt, counts_by_status, event_from_row, push_filter,
    summary_from_row, thread_event_from_row, Columns, SUMMARY_COLUMNS,
};
use super::types::{from_millis, revision_key, to_millis};
use super::{
    AttemptRecord, Claim, ClaimedEvent, Event, EventFilter, EventStatus, EventSummary, Finish,
    Ingested, LeaseToken, NewEvent, QueueStats, StepRecord, StoreError, StoredTokens, ThreadEvent,
    TokenSeal,
};
use crate::domain::EventId;

/// The statements the backends share but for the spelling of their placeholders (`?1`, `$1`).
pub(super) struct Statements {
    /// The event stored under a dedupe key: `(source, dedupe_key)`.
    pub id_by_key: &'static str,
    /// The event retention deleted that a delivery repeats (a tombstone): `(source,
    /// dedupe_key, content_hash, revision_key)`.
    pub swept_key: &'static str,
    /// The first revision of a submission with this content: `(first, content_hash)`.
    pub same_content: &'static str,
    /// The number of a submission's next revision: `(first)`.
    pub next_revision: &'static str,
    /// Records an attempt, numbered after the event's last: `(event_id, at, outcome, error)`.
    pub insert_attempt: &'static str,
    /// Ends an attempt under its lease: `(id, lease, status, next_attempt_at, error,
    /// counts_attempt, now)`.
    pub finish: &'static str,
    /// Gives a lease up without an attempt: `(id, lease, next_attempt_at, now)`.
    pub release: &'static str,
    /// An event's attempts, oldest first: `(event_id)`.
    pub attempts: &'static str,
    /// A location's OAuth tokens: `(location_id)`.
    pub load_tokens: &'static str,
    /// Replaces a location's OAuth tokens: `(location_id, access, refresh, expires_at, now)`.
    pub save_tokens: &'static str,
    /// The queue's ages and counts at `(now)` (see [`QueueStats`]): the oldest open event's
    /// receive time, the oldest due time, how many wait for their lead and the oldest of
    /// their receive times, how many wait for a later attempt.
    pub queue_figures: &'static str,
}

/// [`Statements`] with placeholders spelled `$p1` … `$p7` (positions 1 to 7).
macro_rules! statements {
    ($p1:literal, $p2:literal, $p3:literal, $p4:literal, $p5:literal, $p6:literal, $p7:literal) => {
        $crate::store::backend::Statements {
            id_by_key: concat!(
                "SELECT id FROM events WHERE source = ", $p1, " AND dedupe_key = ", $p2
            ),
            swept_key: concat!(
                "SELECT event_id FROM swept_keys WHERE source = ", $p1, " AND ((dedupe_key = ", $p2,
                " AND (content_hash IS NULL OR CAST(", $p3, " AS TEXT) IS NULL OR content_hash = ",
                $p3, ")) OR dedupe_key = ", $p4, ") LIMIT 1"
            ),
            same_content: concat!(
                "SELECT id FROM events WHERE (id = ", $p1, " OR revision_of = ", $p1,
                ") AND content_hash = ", $p2, "
                 ORDER BY id LIMIT 1"
            ),
            next_revision: concat!(
                "SELECT MAX(revision) + 1 FROM events WHERE id = ", $p1, " OR revision_of = ", $p1
            ),
            insert_attempt: concat!(
                "INSERT INTO event_attempts (event_id, attempt, at, outcome, error)
                 VALUES (", $p1, ", COALESCE((SELECT MAX(attempt) FROM event_attempts WHERE event_id = ",
                $p1, "), 0) + 1, ", $p2, ", ", $p3, ", ", $p4, ")"
            ),
            finish: concat!(
                "UPDATE events SET status = ", $p3, ", next_attempt_at = ", $p4, ", last_error = ",
                $p5, ", attempts = attempts + ", $p6,
                ", lease_owner = NULL, lease_until = NULL, updated_at = ", $p7, ", ",
                $crate::store::park_until_due!($p4, $p7),
                " WHERE id = ", $p1, " AND lease_owner = ", $p2, " AND status = 'processing'"
            ),
            release: concat!(
                "UPDATE events SET status = CASE WHEN attempts = 0 THEN 'pending' ELSE 'retrying' END,
                     next_attempt_at = ", $p3, ", lease_owner = NULL, lease_until = NULL, updated_at = ",
                $p4, ", ",
                $crate::store::park_until_due!($p3, $p4),
                " WHERE id = ", $p1, " AND lease_owner = ", $p2, " AND status = 'processing'"
            ),
            attempts: concat!(
                "SELECT attempt, at, outcome, error FROM event_attempts WHERE event_id = ", $p1,
                " ORDER BY attempt"
            ),
            load_tokens: concat!(
                "SELECT access_token, refresh_token, expires_at FROM oauth_tokens WHERE location_id = ",
                $p1
            ),
            save_tokens: concat!(
                "INSERT INTO oauth_tokens (location_id, access_token, refresh_token, expires_at, updated_at)
                 VALUES (", $p1, ", ", $p2, ", ", $p3, ", ", $p4, ", ", $p5, ")
                 ON CONFLICT (location_id) DO UPDATE SET access_token = excluded.access_token,
                     refresh_token = excluded.refresh_token, expires_at = excluded.expires_at,
                     updated_at = excluded.updated_at"
            ),
            // Per open event: `due_since` (see `QueueStats::oldest_due`; an open earlier event
            // of the same contact holds a due one back and is counted in its stead), and
            // `waiting`, whether its last attempt waited for its lead (only an event with an
            // error recorded looks at its attempts).
            queue_figures: concat!(
                "SELECT MIN(received_at), MIN(due_since),
                     COUNT(CASE WHEN waiting = 1 THEN 1 END),
                     MIN(CASE WHEN waiting = 1 THEN received_at END),
                     COUNT(CASE WHEN status <> 'processing' AND next_attempt_at > ", $p1,
                " AND waiting = 0 THEN 1 END)
                 FROM (SELECT e.status, e.received_at, e.next_attempt_at,
                           CASE WHEN e.status = 'processing' THEN
                                    CASE WHEN e.lease_until < ", $p1, " THEN e.lease_until END
                                WHEN e.next_attempt_at <= ", $p1, " AND NOT EXISTS (
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
                       WHERE e.status IN ('pending', 'processing', 'retrying')) open_events"
            ),
        }
    };
}
pub(super) use statements;

/// The columns of `Statements::queue_figures`, in order.
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
/// alike for both (as `rows::Columns` is).
pub(super) trait Driver: Database<Row: Columns> {
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
{
    /// The statements spelled with this backend's placeholders (see [`statements!`]).
    const SQL: Statements;
    /// One event with its delivery, by id (`rows::event_from_row`'s columns).
    const EVENT_BY_ID: &'static str;
    /// `rows::thread_query!` for this backend.
    const THREAD: &'static str;
    /// Moves the fair clock's virtual time up to a claimed key: `(key)`.
    const ADVANCE_FAIR_CLOCK: &'static str;

    /// Inserts the event row and its delivery; `None` when the key is taken.
    fn insert_row(
        conn: &mut Self::Connection,
        row: &NewRow<'_>,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

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
        let swept: Option<i64> = sqlx::query_scalar(Self::SQL.swept_key)
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
        let same: Option<i64> = sqlx::query_scalar(Self::SQL.same_content)
            .bind(first)
            .bind(hash.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(StoreError::query("find_duplicate"))?;
        if let Some(id) = same {
            return Ok(Ingested::Duplicate(EventId(id)));
        }
        let revision: i64 = sqlx::query_scalar(Self::SQL.next_revision)
            .bind(first)
            .fetch_one(&mut *conn)
            .await
            .map_err(StoreError::query("insert_revision"))?;
        let key = revision_key(&event.dedupe_key, hash);
        row.key = &key;
        row.revision = Some((first, revision));
        match Self::insert_row(conn, &row).await? {
            Some(id) => Ok(Ingested::Revision {
                id: EventId(id),
                of: EventId(first),
            }),
            // The key holds the content's hash, so this content was stored under this tool id
            // already: by another replica a moment ago (two sends of one edit racing), or as a
            // revision whose first event retention has since deleted. A duplicate either way.
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
        sqlx::query_scalar(Self::SQL.id_by_key)
            .bind(event.source.as_str())
            .bind(key)
            .fetch_one(&mut *conn)
            .await
            .map_err(StoreError::query("find_duplicate"))
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
            sqlx::query_as(Self::SQL.queue_figures)
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
        let row = sqlx::query(Self::EVENT_BY_ID)
            .bind(id.0)
            .fetch_optional(pool)
            .await
            .map_err(StoreError::query("get_event"))?;
        row.as_ref().map(event_from_row).transpose()
    }

    /// The rows of a statement that takes one integer (an id, a limit).
    async fn fetch_with(
        pool: &Pool<Self>,
        sql: &'static str,
        param: i64,
        op: &'static str,
    ) -> Result<Vec<Self::Row>, StoreError> {
        sqlx::query(sql)
            .bind(param)
            .fetch_all(pool)
            .await
            .map_err(StoreError::query(op))
    }

    /// Events matching a filter, newest first, without bodies.
    async fn list_events(
        pool: &Pool<Self>,
        filter: &EventFilter,
    ) -> Result<Vec<EventSummary>, StoreError> {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {} FROM events WHERE 1 = 1",
            SUMMARY_COLUMNS.join(", ")
        ));
        push_filter(&mut qb, "", filter);
        qb.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(filter.page_size()));
        let rows = Self::fetch_built(pool, qb)
            .await
            .map_err(StoreError::query("list_events"))?;
        rows.iter().map(summary_from_row).collect()
    }

    /// Attempt history of an event, oldest first.
    async fn attempts(pool: &Pool<Self>, id: EventId) -> Result<Vec<AttemptRecord>, StoreError> {
        let rows = Self::fetch_with(pool, Self::SQL.attempts, id.0, "attempts").await?;
        rows.iter().map(attempt_from_row).collect()
    }

    /// The events tied to `id` (see `Store::thread`), oldest first, with their steps.
    async fn thread(pool: &Pool<Self>, id: EventId) -> Result<Vec<ThreadEvent>, StoreError> {
        let mut conn = pool.acquire().await.map_err(StoreError::query("thread"))?;
        let rows = sqlx::query(Self::THREAD)
            .bind(id.0)
            .fetch_all(&mut *conn)
            .await
            .map_err(StoreError::query("thread"))?;
        let ids: Vec<i64> = rows.iter().map(|r| r.int("id")).collect::<Result<_, _>>()?;
        let mut steps = Self::steps_of(&mut conn, &ids).await?;
        rows.iter()
            .zip(ids)
            .map(|(row, id)| thread_event_from_row(row, steps.remove(&id).unwrap_or_default()))
            .collect()
    }

    /// The end of a claim, in its transaction: the claimed events from the claim's `RETURNING`
    /// rows (see `rows::claimed_from_row`) with their steps, in claim order (`RETURNING` has
    /// none), and the fair clock's virtual time moved to the largest key now in service. Last,
    /// so PostgreSQL holds the clock's row (other replicas' claims wait for it) only until the
    /// commit just after.
    async fn claimed_in_order(
        conn: &mut Self::Connection,
        rows: &[Self::Row],
        claim: &Claim,
    ) -> Result<Vec<ClaimedEvent>, StoreError> {
        let ids = rows
            .iter()
            .map(|row| row.int("id"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut steps = Self::steps_of(conn, &ids).await?;
        let mut claimed = rows
            .iter()
            .map(|row| claimed_from_row(row, claim, &mut steps))
            .collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by_key(|(fair_key, event)| (*fair_key, event.id));
        if let Some((latest, _)) = claimed.last() {
            sqlx::query(Self::ADVANCE_FAIR_CLOCK)
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
        sqlx::query(Self::SQL.insert_attempt)
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
        let updated = sqlx::query(Self::SQL.finish)
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
        sqlx::query(Self::SQL.release)
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
        let row: Option<(String, String, i64)> = sqlx::query_as(Self::SQL.load_tokens)
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
        sqlx::query(Self::SQL.save_tokens)
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
