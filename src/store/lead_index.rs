//! The lead index role: the keys each event can be found by (email, E.164 phone, the tool's
//! submission id), written when it is prepared; the admin's "find a lead" search over them and
//! the events (filters, counts per status, keyset pages); and an admin's cancel of an event
//! that waits to be sent. Statements are shared by both backends (`$N` placeholders), run by
//! generic functions here; `sqlite_lead_index.rs` and `postgres_lead_index.rs` only say where.

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::{Database, FromRow, Pool, QueryBuilder};
use time::OffsetDateTime;

use super::backend::{Backend, Driver};
use super::rows::{push_filter, SummaryRow, SUMMARY_COLUMNS};
use super::types::to_millis;
use super::{EventFilter, EventStatus, EventSummary, StoreError};
use crate::domain::EventId;

/// One key an event is found by, as stored: `email:…` (lower-cased), `phone:+…` (E.164) or
/// `sid:…` (the tool's submission id). Callers normalize before they build one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeadKey(String);

impl LeadKey {
    /// The key of a normalized (lower-cased) email address.
    pub fn email(email: &str) -> Self {
        Self(format!("email:{email}"))
    }
    /// The key of a phone number in E.164.
    pub fn phone(e164: &str) -> Self {
        Self(format!("phone:{e164}"))
    }
    /// The key of the tool's own submission id.
    pub fn submission_id(id: &str) -> Self {
        Self(format!("sid:{}", id.trim()))
    }
    /// As stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A "find a lead" query: events carrying any of `keys` (every event when empty) that match
/// `filter` (status, source, received time; `before_id` pages), of `location` when given.
#[derive(Debug, Clone, Default)]
pub struct LeadSearch {
    pub keys: Vec<LeadKey>,
    pub filter: EventFilter,
    pub location: Option<String>,
}

/// One page of a search, with the counts per status of the whole filtered set.
#[derive(Debug, Clone)]
pub struct LeadPage {
    pub counts: BTreeMap<EventStatus, u64>,
    pub events: Vec<EventSummary>,
    /// Pass as `before_id` for the next page; `None` on the last.
    pub next_before_id: Option<i64>,
}

/// What an admin's cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// The event was pending or retrying: it is now dead with the cancel as its reason, and
    /// no dispatcher can claim it (replay brings it back).
    Cancelled,
    /// A dispatcher holds it right now (it may be sending a request): nothing was changed.
    Processing,
    /// It had already ended in this status: nothing was changed.
    Finished(EventStatus),
    NotFound,
}

/// The attempt outcome recorded for a cancel.
pub const CANCELLED_OUTCOME: &str = "cancelled";

/// The lead index and the admin's cancel.
#[async_trait]
pub trait LeadIndex: Send + Sync + 'static {
    /// Records the keys each event can be found by (kept when already there).
    async fn index_leads(&self, keys: &[(EventId, Vec<LeadKey>)]) -> Result<(), StoreError>;

    /// One page of the events a search finds, newest first, with counts per status.
    async fn find_leads(&self, search: &LeadSearch) -> Result<LeadPage, StoreError>;

    /// Ends a pending or retrying event as dead with `reason`, atomically against a claim:
    /// once this returns [`Cancelled::Cancelled`] no dispatcher holds it nor can claim it, so
    /// nothing more is sent for it. An event being processed is left alone.
    async fn cancel(&self, id: EventId, reason: &str) -> Result<Cancelled, StoreError>;
}

/// Indexes keys of events, many in one statement: the start, before its `VALUES` of
/// `(lead_key, event_id)` rows.
const INSERT_KEYS: &str = "WITH k (lead_key, event_id) AS (";

/// The end of [`INSERT_KEYS`], after its `VALUES`: only for events still stored (retention may
/// have deleted one meanwhile).
const INSERT_KEYS_END: &str = ") INSERT INTO event_lead_keys (lead_key, event_id)
     SELECT lead_key, event_id FROM k WHERE EXISTS (SELECT 1 FROM events e WHERE e.id = k.event_id)
     ON CONFLICT DO NOTHING";

/// At most this many keys per statement (two parameters each).
const KEYS_PER_STATEMENT: usize = 1000;

/// Cancels an event waiting to be sent: `(id, reason, now)`. The status condition makes it
/// atomic against a claim (which takes only pending and retrying events).
const CANCEL: &str = "UPDATE events SET status = 'dead', last_error = $2, updated_at = $3,
         next_attempt_at = $3, lease_owner = NULL, lease_until = NULL,
         fair_key = NULL, parked_key = NULL
     WHERE id = $1 AND status IN ('pending', 'retrying')";

/// The functions of one backend (`$db`): written once, compiled per driver.
macro_rules! lead_index_on {
    ($db:ty) => {
        /// Writes `keys` on `conn`.
        pub(in crate::store) async fn index_on(
            conn: &mut <$db as Database>::Connection,
            keys: &[(EventId, Vec<LeadKey>)],
        ) -> Result<(), StoreError> {
            let rows: Vec<(&str, i64)> = keys
                .iter()
                .flat_map(|(id, event_keys)| event_keys.iter().map(|key| (key.as_str(), id.0)))
                .collect();
            for chunk in rows.chunks(KEYS_PER_STATEMENT) {
                let mut query = QueryBuilder::<$db>::new(INSERT_KEYS);
                query.push_values(chunk, |mut row, (key, id)| {
                    row.push_bind(*key).push_bind(*id);
                });
                query.push(INSERT_KEYS_END);
                query
                    .build()
                    .execute(&mut *conn)
                    .await
                    .map_err(StoreError::query("index_leads"))?;
            }
            Ok(())
        }

        /// Cancels on `conn` (in one transaction with its attempt record).
        pub(in crate::store) async fn cancel_on(
            conn: &mut <$db as Database>::Connection,
            id: EventId,
            reason: &str,
        ) -> Result<Cancelled, StoreError> {
            use sqlx::Connection as _;
            let now = to_millis(OffsetDateTime::now_utc());
            let mut tx = conn.begin().await.map_err(StoreError::query("begin"))?;
            let updated = sqlx::query(CANCEL)
                .bind(id.0)
                .bind(reason)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query("cancel"))?;
            if <$db as Driver>::rows_affected(&updated) == 1 {
                <$db as Backend>::insert_attempt(&mut tx, id, now, CANCELLED_OUTCOME, Some(reason)).await?;
                tx.commit().await.map_err(StoreError::query("commit"))?;
                return Ok(Cancelled::Cancelled);
            }
            let status: Option<String> = sqlx::query_scalar("SELECT status FROM events WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::query("cancel"))?;
            tx.commit().await.map_err(StoreError::query("commit"))?;
            Ok(match status.map(|s| s.parse::<EventStatus>()) {
                None => Cancelled::NotFound,
                Some(Ok(EventStatus::Processing)) => Cancelled::Processing,
                Some(Ok(status)) => Cancelled::Finished(status),
                Some(Err(e)) => {
                    return Err(StoreError::Corrupt {
                        op: "cancel",
                        detail: e.to_string(),
                    })
                }
            })
        }

        /// `FROM … WHERE …` of a search: through the key index when it has keys (one seek each),
        /// else over the events.
        fn push_from<'a>(qb: &mut QueryBuilder<'a, $db>, search: &'a LeadSearch) {
            if search.keys.is_empty() {
                qb.push(" FROM events e WHERE 1 = 1");
            } else {
                qb.push(" FROM events e WHERE e.id IN (SELECT event_id FROM event_lead_keys WHERE lead_key IN (");
                let mut keys = qb.separated(", ");
                for key in &search.keys {
                    keys.push_bind(key.as_str().to_owned());
                }
                qb.push("))");
            }
            push_filter(qb, "e.", &search.filter);
            if let Some(location) = &search.location {
                qb.push(" AND e.location_id = ").push_bind(location.clone());
            }
        }

        /// Runs a search on the pool.
        pub(in crate::store) async fn find_on(
            pool: &Pool<$db>,
            search: &LeadSearch,
        ) -> Result<LeadPage, StoreError> {
            let limit = search.filter.page_size();
            let columns = SUMMARY_COLUMNS
                .split(", ")
                .map(|c| format!("e.{}", c.trim()))
                .collect::<Vec<_>>()
                .join(", ");
            let mut qb = QueryBuilder::new(format!("SELECT {columns}"));
            push_from(&mut qb, search);
            qb.push(" ORDER BY e.id DESC LIMIT ").push_bind(i64::from(limit) + 1);
            let rows = <$db as Driver>::fetch_built(pool, qb)
                .await
                .map_err(StoreError::query("find_leads"))?;
            let mut events = rows
                .iter()
                .map(|row| SummaryRow::from_row(row).map_err(StoreError::query("find_leads")))
                .map(|row| row.and_then(EventSummary::try_from))
                .collect::<Result<Vec<_>, _>>()?;
            let next_before_id = if events.len() > limit as usize {
                events.truncate(limit as usize);
                events.last().map(|e| e.id.0)
            } else {
                None
            };

            // Counts of the whole filtered set: without the page's cursor.
            let mut whole = search.clone();
            whole.filter.before_id = None;
            let mut qb = QueryBuilder::new("SELECT e.status, COUNT(*)");
            push_from(&mut qb, &whole);
            qb.push(" GROUP BY e.status");
            let rows = <$db as Driver>::fetch_built(pool, qb)
                .await
                .map_err(StoreError::query("find_leads"))?;
            let mut counts = BTreeMap::new();
            for row in &rows {
                let (status, count): (String, i64) =
                    FromRow::from_row(row).map_err(StoreError::query("find_leads"))?;
                let status = status.parse::<EventStatus>().map_err(|e| StoreError::Corrupt {
                    op: "find_leads",
                    detail: e.to_string(),
                })?;
                counts.insert(status, u64::try_from(count).unwrap_or(0));
            }
            Ok(LeadPage {
                counts,
                events,
                next_before_id,
            })
        }
    };
}

/// On SQLite (the connection is the writer's).
pub(super) mod sqlite {
    use super::*;
    lead_index_on!(sqlx::Sqlite);
}

/// On PostgreSQL.
pub(super) mod postgres {
    use super::*;
    lead_index_on!(sqlx::Postgres);
}
