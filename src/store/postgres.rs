//! The PostgreSQL store: a connection pool shared by every task of a replica, several replicas
//! on one database (claims and fencing in `postgres_queue`).
//!
//! Every write is its own transaction on the pool; PostgreSQL's commit (with the default
//! `synchronous_commit = on`) is durable, so an acknowledged delivery survives a crash of the
//! database server too.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Postgres};
use time::OffsetDateTime;

use super::backend::{event_select, Backend, NewRow};
use super::postgres_ingest::GroupedIngest;
use super::postgres_prepare::PrepareLeases;
use super::postgres_queue as queue;
use super::postgres_read_only;
use super::postgres_tokens;
use super::rows::EventRow;
use super::types::to_millis;
use super::{
    AdminReads, AttemptRecord, Claim, ClaimedEvent, Event, EventFilter, EventStatus, EventSummary,
    Finish, Ingest, Ingested, LeaseToken, NewEvent, OAuthTokensLock, PgBudget, Preparation, Queue,
    QueueStats, SharedBudget, StepRecord, Store, StoreError, StoredTokens, ThreadEvent, TokenSeal,
    TokenVault,
};
use crate::domain::{ContactKey, EventId, LocationId};
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

/// Events by id, oldest first (the events of a prepare lease: `postgres_queue::lease_unprepared`).
const EVENTS_BY_IDS: &str = concat!(event_select!(), " WHERE e.id = ANY($1) ORDER BY e.id");

impl Backend for Postgres {
    const INSERT_PLAN: &'static str = "INSERT INTO event_plans (event_id, submission, plan)
         SELECT id, CAST($2 AS jsonb), CAST($3 AS jsonb) FROM events
         WHERE id = $1 AND status = 'pending'
         ON CONFLICT (event_id) DO NOTHING";

    async fn queue_ready(
        conn: &mut PgConnection,
        id: EventId,
        contact_key: &ContactKey,
        location_id: &LocationId,
        now: i64,
    ) -> Result<(), StoreError> {
        queue::queue_ready(conn, id, contact_key, location_id, now).await
    }

    async fn insert_references(
        conn: &mut PgConnection,
        id: EventId,
        location_id: &LocationId,
        references: &[String],
    ) -> Result<(), StoreError> {
        queue::insert_references(conn, id, location_id, references).await
    }

    /// Inserts the event row and its delivery under `key` (as revision `(of, n)` when given), in
    /// one statement; `None` when the key is taken. The dedupe constraint decides: a concurrent
    /// insert of the same key (another replica) waits for this one's commit and inserts nothing.
    async fn insert_row(
        conn: &mut PgConnection,
        row: &NewRow<'_>,
    ) -> Result<Option<i64>, StoreError> {
        let (event, revision) = (row.event, row.revision);
        sqlx::query_scalar(
            "WITH new AS (
                 INSERT INTO events (source, dedupe_key, content_hash, revision_of, revision,
                                     received_at, next_attempt_at, updated_at, prepared)
                 VALUES ($1, $2, $7, $8, $9, $3, $3, $3, false)
                 ON CONFLICT (source, dedupe_key) DO NOTHING
                 RETURNING id),
             delivery AS (
                 INSERT INTO event_deliveries (event_id, content_type, headers, body)
                 SELECT id, $4, $5::jsonb, $6 FROM new)
             SELECT id FROM new",
        )
        .bind(event.source.as_str())
        .bind(row.key)
        .bind(to_millis(event.received_at))
        .bind(event.content_type.as_deref())
        .bind(row.headers)
        .bind(event.body.as_ref())
        .bind(event.content_hash.as_deref())
        .bind(revision.map(|(of, _)| of))
        .bind(revision.map_or(1, |(_, n)| n))
        .fetch_optional(conn)
        .await
        .map_err(StoreError::query("insert_event"))
    }

    async fn steps_of(
        conn: &mut PgConnection,
        ids: &[i64],
    ) -> Result<HashMap<i64, Vec<StepRecord>>, StoreError> {
        queue::steps_of(conn, ids).await
    }
}

/// PostgreSQL-backed [`Store`]; several processes may share one database.
pub struct PgStore {
    pool: PgPool,
    /// The GHL rate budget every replica on this database spends together.
    budget: Arc<PgBudget>,
    /// Seals the OAuth tokens (`store.token_key`).
    seal: Arc<TokenSeal>,
    /// The prepare leases this replica holds, renewed while it prepares.
    prepare_leases: PrepareLeases,
    /// New deliveries, stored in groups.
    ingest: GroupedIngest,
}

impl PgStore {
    /// Connects to the database at `settings.url` and applies the migrations it lacks.
    pub async fn open(settings: &StoreSettings) -> Result<Self, StoreError> {
        let seal = super::token_seal(settings)?;
        let masked = crate::masked::url_password(&settings.url);
        let timeout_ms = settings.statement_timeout.as_millis().to_string();
        let options = PgConnectOptions::from_str(&settings.url)
            .map_err(|source| StoreError::Open {
                url: masked.clone(),
                source,
            })?
            .application_name("formbridge")
            // No JIT: every statement here is small, and PostgreSQL compiles one whose estimate
            // passes `jit_above_cost` (100,000) in 25+ ms, which on the queue figures of 7,000
            // open events (an overestimated cost, 20 ms of work) tripled the overview's time
            // (BENCHMARKS.md, "Cockpit"). A startup parameter: no round trip.
            .options([("statement_timeout", timeout_ms.as_str()), ("jit", "off")])
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
            .before_acquire(postgres_read_only::fit_to_write)
            .connect_lazy_with(options);
        let budget = Arc::new(PgBudget::new(pool.clone()));
        Ok(Self {
            prepare_leases: PrepareLeases::new(pool.clone()),
            ingest: GroupedIngest::start(pool.clone(), ingest_groups(settings.pool_size)),
            pool,
            budget,
            seal: Arc::new(seal),
        })
    }

    /// The pool (for this module's siblings and tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// How many groups of new deliveries may be stored at once: a quarter of the pool (at least
/// one), so ingest never holds the connections dispatch and the admin API need, and a burst
/// forms a few large groups rather than many small ones.
fn ingest_groups(pool_size: u32) -> usize {
    (pool_size as usize / 4).max(1)
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
        // rustls' refusals reach sqlx as I/O errors: "invalid peer certificate: UnknownIssuer".
        _ if matches!(e, sqlx::Error::Tls(_)) || e.to_string().contains("peer certificate") => {
            StoreError::PgTls {
                host,
                port,
                source: e,
            }
        }
        _ if matches!(e, sqlx::Error::Io(_)) => StoreError::PgUnreachable {
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
impl AdminReads for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        postgres_read_only::check_writable(&self.pool).await
    }

    async fn status_counts(&self) -> Result<BTreeMap<EventStatus, u64>, StoreError> {
        Postgres::status_counts(&self.pool).await
    }

    async fn get_event(&self, id: EventId) -> Result<Option<Event>, StoreError> {
        Postgres::get_event(&self.pool, id).await
    }

    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventSummary>, StoreError> {
        Postgres::list_events(&self.pool, filter).await
    }

    async fn steps(&self, id: EventId) -> Result<Vec<StepRecord>, StoreError> {
        Postgres::steps(&self.pool, id).await
    }

    async fn attempts(&self, id: EventId) -> Result<Vec<AttemptRecord>, StoreError> {
        Postgres::attempts(&self.pool, id).await
    }

    async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        Postgres::queue_stats(&self.pool).await
    }
}

#[async_trait]
impl Ingest for PgStore {
    async fn insert_event(&self, event: NewEvent) -> Result<Ingested, StoreError> {
        self.ingest.insert(event).await
    }
}

#[async_trait]
impl TokenVault for PgStore {
    async fn load_oauth_tokens(
        &self,
        location_id: &LocationId,
    ) -> Result<Option<StoredTokens>, StoreError> {
        postgres_tokens::load(&self.pool, &self.seal, location_id).await
    }

    async fn save_oauth_tokens(
        &self,
        location_id: &LocationId,
        tokens: &StoredTokens,
    ) -> Result<(), StoreError> {
        postgres_tokens::save(&self.pool, &self.seal, location_id, tokens).await
    }

    async fn lock_oauth_tokens(
        &self,
        location_id: &LocationId,
    ) -> Result<Box<dyn OAuthTokensLock + '_>, StoreError> {
        Ok(Box::new(
            postgres_tokens::lock(&self.pool, &self.seal, location_id).await?,
        ))
    }
}

#[async_trait]
impl Queue for PgStore {
    async fn unprepared(&self, limit: u32) -> Result<Vec<Event>, StoreError> {
        let ids = self.prepare_leases.take(limit).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let read = sqlx::query_as::<_, EventRow>(EVENTS_BY_IDS)
            .bind(&ids)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("unprepared"))
            .and_then(|rows| rows.into_iter().map(Event::try_from).collect());
        if read.is_err() {
            // Nobody will prepare this batch: hand it back rather than hold claims back.
            if let Err(e) = self.prepare_leases.release(&ids).await {
                tracing::warn!(error = %e, "cannot hand back a prepare lease");
            }
        }
        read
    }

    async fn save_preparations(
        &self,
        preparations: &[(EventId, Preparation)],
    ) -> Result<(), StoreError> {
        let ids: Vec<i64> = preparations.iter().map(|(id, _)| id.0).collect();
        let batch = self.prepare_leases.end(&ids).await;
        let saved = queue::save_preparations(&self.pool, preparations).await;
        // On failure the events stay unprepared, and what the save left out of its batch was
        // not prepared either: any replica may take them at once.
        let unsaved: Vec<i64> = match &saved {
            Ok(()) => batch.into_iter().filter(|id| !ids.contains(id)).collect(),
            Err(_) => batch,
        };
        if !unsaved.is_empty() {
            if let Err(e) = self.prepare_leases.release(&unsaved).await {
                tracing::warn!(error = %e, "cannot hand back a prepare lease");
            }
        }
        saved
    }

    async fn claim(&self, claim: &Claim) -> Result<Vec<ClaimedEvent>, StoreError> {
        queue::claim(&self.pool, claim).await
    }

    async fn thread(&self, id: EventId) -> Result<Vec<ThreadEvent>, StoreError> {
        Postgres::thread(&self.pool, id).await
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
        Postgres::finish(&self.pool, id, lease, finish).await
    }

    async fn release(
        &self,
        id: EventId,
        lease: &LeaseToken,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        Postgres::release(&self.pool, id, lease, at).await
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
}

impl Store for PgStore {
    fn shared_budget(&self) -> Option<Arc<dyn SharedBudget>> {
        Some(self.budget.clone())
    }
}
