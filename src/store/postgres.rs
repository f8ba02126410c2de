//! The PostgreSQL store: a connection pool shared by every task of a replica, several replicas
//! on one database (claims and fencing in `postgres_queue`).
//!
//! Every write is its own transaction on the pool; PostgreSQL's commit (with the default
//! `synchronous_commit = on`) is durable, so an acknowledged delivery survives a crash of the
//! database server too.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, QueryBuilder, Row};
use time::OffsetDateTime;

use super::postgres_queue as queue;
use super::postgres_tokens;
use super::rows::{counts_by_status, event_from_row, summary_from_row, SUMMARY_COLUMNS};
use super::types::from_millis;
use super::{
    AttemptRecord, Claim, ClaimedEvent, Event, EventFilter, EventId, EventQueries, EventStatus,
    EventSummary, Finish, Ingested, LeaseToken, LocationId, NewEvent, OAuthTokensLock, PgBudget,
    Preparation, QueueStats, SharedBudget, StepRecord, Store, StoreError, StoredTokens,
    ThreadEvent,
};
use crate::settings::StoreSettings;

/// Migrations applied at start. sqlx's PostgreSQL migrator takes a session advisory lock
/// (`pg_advisory_lock`, keyed by the database name; sqlx-postgres 0.8 `migrate.rs`, `lock`)
/// before it creates its table or reads which migrations ran, and releases it after the last
/// one, so replicas starting together apply each migration once, one after another.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// PostgreSQL error codes (SQLSTATE) a user can act on when the store cannot be opened.
const INVALID_PASSWORD: &str = "28P01";
const INVALID_AUTHORIZATION: &str = "28000";
const INVALID_CATALOG_NAME: &str = "3D000";

/// An event with its delivery and plan, under the column names `rows::event_from_row` reads.
pub(super) const EVENT_SELECT: &str =
    "SELECT e.id, e.source, e.dedupe_key, e.status, e.attempts, e.received_at, e.next_attempt_at,
            e.updated_at, e.last_error, e.revision, e.revision_of, d.content_type, d.headers::text AS headers, d.body,
            e.contact_key, e.location_id, p.submission::text AS submission, p.plan::text AS plan
     FROM events e
     JOIN event_deliveries d ON d.event_id = e.id
     LEFT JOIN event_plans p ON p.event_id = e.id";

/// PostgreSQL-backed [`Store`]; several processes may share one database.
pub struct PgStore {
    pool: PgPool,
    /// The GHL rate budget every replica on this database spends together.
    budget: Arc<PgBudget>,
}

impl PgStore {
    /// Connects to the database at `settings.url` and applies the migrations it lacks.
    pub async fn open(settings: &StoreSettings) -> Result<Self, StoreError> {
        let masked = crate::masked::url_password(&settings.url);
        let timeout_ms = settings.statement_timeout.as_millis().to_string();
        let options = PgConnectOptions::from_str(&settings.url)
            .map_err(|source| StoreError::Open {
                url: masked.clone(),
                source,
            })?
            .application_name("formbridge")
            .options([("statement_timeout", timeout_ms.as_str())])
            .log_statements(tracing::log::LevelFilter::Trace);
        // One connection first, for an error that says what is wrong (the pool would retry
        // until its timeout and then only say it timed out), and to migrate.
        let mut conn = PgConnection::connect_with(&options)
            .await
            .map_err(|e| connect_error(&options, &masked, e))?;
        MIGRATOR.run(&mut conn).await?;
        // Closing is a courtesy to the server; the migrations are committed either way.
        let _ = conn.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(settings.pool_size)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options);
        let budget = Arc::new(PgBudget::new(pool.clone()));
        Ok(Self { pool, budget })
    }

    /// The pool (for this module's siblings and tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// The error of a failed first connection, naming what the user has to fix.
fn connect_error(options: &PgConnectOptions, masked_url: &str, e: sqlx::Error) -> StoreError {
    let host = options.get_host().to_owned();
    let port = options.get_port();
    let code = match &e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    };
    match code.as_deref() {
        Some(INVALID_PASSWORD | INVALID_AUTHORIZATION) => StoreError::PgAuth {
            user: options.get_username().to_owned(),
            host,
            port,
        },
        Some(INVALID_CATALOG_NAME) => StoreError::PgNoDatabase {
            database: options.get_database().unwrap_or_default().to_owned(),
            host,
            port,
        },
        _ if matches!(e, sqlx::Error::Io(_) | sqlx::Error::Tls(_)) => StoreError::PgUnreachable {
            host,
            port,
            source: e,
        },
        _ => StoreError::Open {
            url: masked_url.to_owned(),
            source: e,
        },
    }
}

#[async_trait]
impl EventQueries for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(StoreError::query("ping"))
    }

    async fn status_counts(&self) -> Result<BTreeMap<EventStatus, u64>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM events GROUP BY status")
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::query("status_counts"))?;
        Ok(counts_by_status(rows))
    }

    async fn get_event(&self, id: EventId) -> Result<Option<Event>, StoreError> {
        let row = sqlx::query(&format!("{EVENT_SELECT} WHERE e.id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("get_event"))?;
        row.as_ref().map(event_from_row).transpose()
    }

    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventSummary>, StoreError> {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {} FROM events WHERE TRUE",
            SUMMARY_COLUMNS.join(", ")
        ));
        super::rows::push_filter(&mut qb, "", filter);
        qb.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(filter.page_size()));
        let rows = qb
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("list_events"))?;
        rows.iter().map(summary_from_row).collect()
    }

    async fn steps(&self, id: EventId) -> Result<Vec<StepRecord>, StoreError> {
        let mut steps = queue::steps_of(&self.pool, &[id.0]).await?;
        Ok(steps.remove(&id.0).unwrap_or_default())
    }

    async fn attempts(&self, id: EventId) -> Result<Vec<AttemptRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT attempt, at, outcome, error FROM event_attempts WHERE event_id = $1 ORDER BY attempt",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("attempts"))?;
        rows.iter()
            .map(|row| {
                let q = StoreError::query("attempts");
                Ok(AttemptRecord {
                    attempt: u32::try_from(row.try_get::<i64, _>("attempt").map_err(q)?)
                        .unwrap_or(0),
                    at: from_millis(row.try_get("at").map_err(StoreError::query("attempts"))?),
                    outcome: row
                        .try_get("outcome")
                        .map_err(StoreError::query("attempts"))?,
                    error: row
                        .try_get("error")
                        .map_err(StoreError::query("attempts"))?,
                })
            })
            .collect()
    }

    async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let by_status = self.status_counts().await?;
        let oldest: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(received_at) FROM events WHERE status IN ('pending', 'processing', 'retrying')",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::query("queue_stats"))?;
        Ok(QueueStats {
            by_status,
            oldest_unfinished: oldest.map(from_millis),
        })
    }
}

#[async_trait]
impl Store for PgStore {
    async fn insert_event(&self, event: NewEvent) -> Result<Ingested, StoreError> {
        queue::insert_event(&self.pool, &event).await
    }

    async fn load_oauth_tokens(
        &self,
        location_id: &LocationId,
    ) -> Result<Option<StoredTokens>, StoreError> {
        postgres_tokens::load(&self.pool, location_id).await
    }

    async fn save_oauth_tokens(
        &self,
        location_id: &LocationId,
        tokens: &StoredTokens,
    ) -> Result<(), StoreError> {
        postgres_tokens::save(&self.pool, location_id, tokens).await
    }

    async fn lock_oauth_tokens(
        &self,
        location_id: &LocationId,
    ) -> Result<Box<dyn OAuthTokensLock + '_>, StoreError> {
        Ok(Box::new(
            postgres_tokens::lock(&self.pool, location_id).await?,
        ))
    }

    async fn unprepared(&self, limit: u32) -> Result<Vec<Event>, StoreError> {
        // Every replica prepares the oldest unprepared events, so several may prepare the same
        // ones (the first save stands). Disjoint batches would spare that work, but a replica
        // could then queue a later batch while an earlier one is still unprepared, and an
        // unprepared event has no contact key yet to hold its contact's later events back:
        // each contact's arrival order rests on every event older than a prepared one being
        // prepared too.
        let rows = sqlx::query(&format!(
            "{EVENT_SELECT} WHERE e.status = 'pending' AND p.event_id IS NULL ORDER BY e.id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("unprepared"))?;
        rows.iter().map(event_from_row).collect()
    }

    async fn save_preparations(
        &self,
        preparations: &[(EventId, Preparation)],
    ) -> Result<(), StoreError> {
        queue::save_preparations(&self.pool, preparations).await
    }

    async fn claim(&self, claim: &Claim) -> Result<Vec<ClaimedEvent>, StoreError> {
        queue::claim(&self.pool, claim).await
    }

    async fn thread(&self, id: EventId) -> Result<Vec<ThreadEvent>, StoreError> {
        queue::thread(&self.pool, id).await
    }

    async fn record_step(
        &self,
        id: EventId,
        lease: &LeaseToken,
        step: &StepRecord,
    ) -> Result<bool, StoreError> {
        queue::record_step(&self.pool, id, lease, step).await
    }

    async fn renew_lease(
        &self,
        id: EventId,
        lease: &LeaseToken,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        queue::renew_lease(&self.pool, id, lease, until).await
    }

    async fn finish(
        &self,
        id: EventId,
        lease: &LeaseToken,
        finish: &Finish,
    ) -> Result<bool, StoreError> {
        queue::finish(&self.pool, id, lease, finish).await
    }

    async fn release(
        &self,
        id: EventId,
        lease: &LeaseToken,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        queue::release(&self.pool, id, lease, at).await
    }

    async fn replay(&self, id: EventId, from_scratch: bool) -> Result<bool, StoreError> {
        let filter = EventFilter::default();
        Ok(queue::replay(&self.pool, Some(id), &filter, from_scratch).await? == 1)
    }

    async fn replay_matching(
        &self,
        filter: &EventFilter,
        from_scratch: bool,
    ) -> Result<u64, StoreError> {
        queue::replay(&self.pool, None, filter, from_scratch).await
    }

    async fn delete_finished_before(
        &self,
        before: OffsetDateTime,
        batch: u32,
    ) -> Result<u64, StoreError> {
        queue::delete_finished_before(&self.pool, before, batch).await
    }

    fn shared_budget(&self) -> Option<Arc<dyn SharedBudget>> {
        Some(self.budget.clone())
    }
}
