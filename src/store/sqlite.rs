//! The embedded SQLite store: WAL journal, one group-commit writer for every write (see
//! `sqlite_writer`), and a pool of connections for reads.
//!
//! Acknowledging a webhook needs its row fsync'd. One fsync per request would cap throughput
//! at the disk's sync rate, so writes go through a single writer task that drains whatever is
//! queued (up to `store.group_commit_max_batch`), runs it in one transaction, commits once
//! (one fsync when any of them needs it), then answers every waiting caller.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use super::backend::{Backend, NewRow, UNPREPARED};
use super::rows::{steps_by_event, EventRow, StepRow};
use super::sqlite_file::{self, FileLock, Reserve};
use super::sqlite_queue;
use super::sqlite_writer::{Durability, Writer};
use super::types::to_millis;
use super::{
    AdminReads, AttemptRecord, Claim, ClaimedEvent, Event, EventFilter, EventStatus, EventSummary,
    Finish, Ingest, Ingested, LeaseToken, NewEvent, Preparation, Queue, QueueStats, StepRecord,
    StepStatus, Store, StoreError, StoredTokens, ThreadEvent, TokenSeal, TokenVault,
};
use crate::domain::{ContactKey, EventId, LocationId};
use crate::settings::StoreSettings;
use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Connection, QueryBuilder, Sqlite};
use time::OffsetDateTime;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    /// Reads only; every write goes through `writer`.
    pool: SqlitePool,
    writer: Writer,
    /// Seals the OAuth tokens (`store.token_key`).
    seal: Arc<TokenSeal>,
    /// One serving process per file (see `sqlite_file`); `None` when opened shared.
    _lock: Option<FileLock>,
}

/// Creates the database file readable by its owner only (`0600`), and its folder (`0700`) when
/// missing, whatever the process umask: the store holds personal data and OAuth tokens. SQLite
/// gives its `-wal` and `-shm` files the database file's mode. An existing file or folder keeps
/// its mode (a volume prepared by its owner).
fn create_private(file: &Path) -> std::io::Result<()> {
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            let mut folder = std::fs::DirBuilder::new();
            folder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut folder, 0o700);
            folder.create(parent)?;
        }
    }
    if file.as_os_str().is_empty() || file.to_str() == Some(":memory:") || file.exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(file) {
        Ok(_) => Ok(()),
        // Created meanwhile by another opener: its own mode stands.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database at `settings.url` for the process
    /// that serves it: takes the file's lock (refusing when another process holds it), gives
    /// back its predecessor's leases, makes the reserve file, and starts the group-commit
    /// writer.
    pub async fn open(settings: &StoreSettings) -> Result<Self, StoreError> {
        Self::open_as(settings, true).await
    }

    /// [`SqliteStore::open`] for an operator command beside a running server: no lock, no
    /// lease released, no reserve (see `sqlite_file`).
    pub async fn open_shared(settings: &StoreSettings) -> Result<Self, StoreError> {
        Self::open_as(settings, false).await
    }

    async fn open_as(settings: &StoreSettings, serving: bool) -> Result<Self, StoreError> {
        let url = settings.url.as_str();
        let open_err = |source| StoreError::Open {
            url: url.to_owned(),
            source,
        };
        let seal = super::token_seal(settings)?;
        let options = SqliteConnectOptions::from_str(url)
            .map_err(open_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let options = sqlite_file::bound_wal(options, settings);
        let file = Path::new(options.get_filename()).to_owned();
        if serving {
            sqlite_file::check_writable(url, &file)?;
        }
        create_private(&file).map_err(|e| open_err(sqlx::Error::Io(e)))?;
        let lock = if serving {
            FileLock::acquire(url, &file).await?
        } else {
            None
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections)
            .connect_with(options.clone())
            .await
            .map_err(open_err)?;
        MIGRATOR.run(&pool).await?;
        let mut writer_conn = SqliteConnection::connect_with(&options)
            .await
            .map_err(open_err)?;
        let mut reserve = None;
        if lock.is_some() {
            sqlite_file::release_leases(&mut writer_conn).await?;
            reserve = Reserve::beside(&file, settings.reserve_bytes);
            if let Some(reserve) = reserve.as_mut() {
                if let Err(e) = reserve.make(0).await {
                    tracing::warn!(error = %e, file = %reserve.path().display(), "no room for the reserve file: deliveries are refused until there is");
                }
            }
        }
        let writer = Writer::start(
            options,
            writer_conn,
            settings.group_commit_max_batch,
            reserve,
        )
        .map_err(|e| open_err(sqlx::Error::Io(e)))?;
        Ok(Self {
            pool,
            writer,
            seal: Arc::new(seal),
            _lock: lock,
        })
    }

    /// The read pool (for this module's siblings).
    pub(super) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The seal of the OAuth tokens (shared with writes that run on the writer task).
    pub(super) fn token_seal(&self) -> &Arc<TokenSeal> {
        &self.seal
    }

    /// The writer every write goes through.
    pub(super) fn writer(&self) -> &Writer {
        &self.writer
    }
}

impl Backend for Sqlite {
    const INSERT_PLAN: &'static str = "INSERT INTO event_plans (event_id, submission, plan)
         SELECT id, $2, $3 FROM events WHERE id = $1 AND status = 'pending'
         ON CONFLICT (event_id) DO NOTHING";

    async fn queue_ready(
        conn: &mut SqliteConnection,
        id: EventId,
        contact_key: &ContactKey,
        location_id: &LocationId,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlite_queue::queue_ready(conn, id, contact_key, location_id, now).await
    }

    async fn insert_references(
        conn: &mut SqliteConnection,
        id: EventId,
        location_id: &LocationId,
        references: &[String],
    ) -> Result<(), StoreError> {
        sqlite_queue::insert_references(conn, id, location_id, references).await
    }

    async fn insert_row(
        conn: &mut SqliteConnection,
        row: &NewRow<'_>,
    ) -> Result<Option<i64>, StoreError> {
        let (event, revision) = (row.event, row.revision);
        let received = to_millis(event.received_at);
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO events (source, dedupe_key, content_hash, revision_of, revision, received_at,
                                 next_attempt_at, updated_at, prepared)
             VALUES ($1, $2, $3, $4, $5, $6, $6, $6, FALSE)
             ON CONFLICT (source, dedupe_key) DO NOTHING
             RETURNING id",
        )
        .bind(event.source.as_str())
        .bind(row.key)
        .bind(event.content_hash.as_deref())
        .bind(revision.map(|(of, _)| of))
        .bind(revision.map_or(1, |(_, n)| n))
        .bind(received)
        .fetch_optional(&mut *conn)
        .await
        .map_err(StoreError::query("insert_event"))?;
        let Some(id) = inserted else {
            return Ok(None);
        };
        sqlx::query(
            "INSERT INTO event_deliveries (event_id, content_type, headers, body)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(event.content_type.as_deref())
        .bind(row.headers)
        .bind(event.body.as_ref())
        .execute(&mut *conn)
        .await
        .map_err(StoreError::query("insert_event"))?;
        Ok(Some(id))
    }

    async fn steps_of(
        conn: &mut SqliteConnection,
        ids: &[i64],
    ) -> Result<HashMap<i64, Vec<StepRecord>>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT event_id, step_index, kind, status, ghl_id, detail, updated_at, in_doubt_until, requests FROM event_steps WHERE event_id IN (",
        );
        let mut sep = qb.separated(", ");
        for id in ids {
            sep.push_bind(*id);
        }
        qb.push(") ORDER BY event_id, step_index");
        let rows: Vec<StepRow> = qb
            .build_query_as()
            .fetch_all(&mut *conn)
            .await
            .map_err(StoreError::query("steps"))?;
        steps_by_event(rows)
    }
}

#[async_trait]
impl AdminReads for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1 FROM events LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("ping"))?;
        self.writer.check_writable()
    }

    async fn status_counts(&self) -> Result<BTreeMap<EventStatus, u64>, StoreError> {
        Sqlite::status_counts(&self.pool).await
    }

    async fn get_event(&self, id: EventId) -> Result<Option<Event>, StoreError> {
        Sqlite::get_event(&self.pool, id).await
    }

    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventSummary>, StoreError> {
        Sqlite::list_events(&self.pool, filter).await
    }

    async fn steps(&self, id: EventId) -> Result<Vec<StepRecord>, StoreError> {
        Sqlite::steps(&self.pool, id).await
    }

    async fn attempts(&self, id: EventId) -> Result<Vec<AttemptRecord>, StoreError> {
        Sqlite::attempts(&self.pool, id).await
    }

    async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        Sqlite::queue_stats(&self.pool).await
    }
}

#[async_trait]
impl Ingest for SqliteStore {
    async fn insert_event(&self, event: NewEvent) -> Result<Ingested, StoreError> {
        self.writer.insert_delivery(event).await
    }
}

#[async_trait]
impl TokenVault for SqliteStore {
    async fn load_oauth_tokens(
        &self,
        location_id: &LocationId,
    ) -> Result<Option<StoredTokens>, StoreError> {
        self.load_tokens(location_id.as_str()).await
    }

    async fn save_oauth_tokens(
        &self,
        location_id: &LocationId,
        tokens: &StoredTokens,
    ) -> Result<(), StoreError> {
        self.save_tokens(location_id.as_str(), tokens).await
    }
}

#[async_trait]
impl Queue for SqliteStore {
    async fn unprepared(&self, limit: u32) -> Result<Vec<Event>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(UNPREPARED)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("unprepared"))?;
        rows.into_iter().map(Event::try_from).collect()
    }

    async fn save_preparations(
        &self,
        preparations: &[(EventId, Preparation)],
    ) -> Result<(), StoreError> {
        let preparations = preparations.to_vec();
        self.writer
            .write(Durability::Crash, move |conn| {
                Box::pin(async move { sqlite_queue::save_preparations(conn, &preparations).await })
            })
            .await
    }

    async fn claim(&self, claim: &Claim) -> Result<Vec<ClaimedEvent>, StoreError> {
        let claim = claim.clone();
        self.writer
            .write(Durability::Crash, move |conn| {
                Box::pin(async move { sqlite_queue::claim(conn, &claim).await })
            })
            .await
    }

    async fn thread(&self, id: EventId) -> Result<Vec<ThreadEvent>, StoreError> {
        Sqlite::thread(&self.pool, id).await
    }

    async fn record_step(
        &self,
        id: EventId,
        lease: &LeaseToken,
        step: &StepRecord,
    ) -> Result<bool, StoreError> {
        // A `started` record must survive power loss: after it, GHL may hold the task or note,
        // and only this record makes the next attempt look for the marker instead of creating
        // again.
        let durability = match step.status {
            StepStatus::Started => Durability::Fsync,
            StepStatus::Done => Durability::Crash,
        };
        self.writer
            .record_step(id, lease.clone(), step.clone(), durability)
            .await
    }

    async fn renew_lease(
        &self,
        id: EventId,
        lease: &LeaseToken,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let lease = lease.clone();
        self.writer
            .write(Durability::Crash, move |conn| {
                Box::pin(async move { sqlite_queue::renew_lease(conn, id, &lease, until).await })
            })
            .await
    }

    async fn finish(
        &self,
        id: EventId,
        lease: &LeaseToken,
        finish: &Finish,
    ) -> Result<bool, StoreError> {
        let (lease, finish) = (lease.clone(), finish.clone());
        self.writer
            .write(Durability::Crash, move |conn| {
                Box::pin(async move { Sqlite::finish(conn, id, &lease, &finish).await })
            })
            .await
    }

    async fn release(
        &self,
        id: EventId,
        lease: &LeaseToken,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let lease = lease.clone();
        self.writer
            .write(Durability::Crash, move |conn| {
                Box::pin(async move { Sqlite::release(conn, id, &lease, at).await })
            })
            .await
    }

    async fn replay(&self, id: EventId, from_scratch: bool) -> Result<bool, StoreError> {
        self.writer
            .write(Durability::Crash, move |conn| {
                Box::pin(async move { sqlite_queue::replay(conn, id, from_scratch).await })
            })
            .await
    }

    async fn replay_matching(
        &self,
        filter: &EventFilter,
        from_scratch: bool,
    ) -> Result<u64, StoreError> {
        let filter = filter.clone();
        self.writer
            .write(Durability::Crash, move |conn| {
                Box::pin(
                    async move { sqlite_queue::replay_matching(conn, &filter, from_scratch).await },
                )
            })
            .await
    }

    async fn delete_finished_before(
        &self,
        before: OffsetDateTime,
        batch: u32,
    ) -> Result<u64, StoreError> {
        self.writer
            .write(Durability::Crash, move |conn| {
                Box::pin(
                    async move { sqlite_queue::delete_finished_before(conn, before, batch).await },
                )
            })
            .await
    }
}

impl Store for SqliteStore {}
