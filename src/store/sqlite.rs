//! The embedded SQLite store: WAL journal, a group-commit writer that fsyncs acknowledged
//! deliveries, and a pool for the rest.
//!
//! Acknowledging a webhook needs its row fsync'd. One fsync per request would cap throughput
//! at the disk's sync rate, so inserts go through a single writer task that drains whatever is
//! queued (up to `store.group_commit_max_batch`), writes it in one transaction, commits once
//! (one fsync), then answers every waiting request.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, QueryBuilder, Row};
use tokio::sync::{mpsc, oneshot};

use super::sqlite_queue;
use super::types::{from_millis, to_millis};
use super::{
    AttemptRecord, Claim, ClaimedEvent, Event, EventFilter, EventId, EventStatus, EventSummary,
    Finish, Ingested, NewEvent, Preparation, QueueStats, StepRecord, Store, StoreError,
};
use crate::settings::StoreSettings;
use time::OffsetDateTime;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

struct InsertJob {
    event: NewEvent,
    reply: oneshot::Sender<Result<Ingested, StoreError>>,
}

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    pool: SqlitePool,
    writer: mpsc::Sender<InsertJob>,
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database at `settings.url`, and starts the
    /// group-commit writer.
    pub async fn open(settings: &StoreSettings) -> Result<Self, StoreError> {
        let url = settings.url.as_str();
        let open_err = |source| StoreError::Open {
            url: url.to_owned(),
            source,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(open_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        if let Some(parent) = Path::new(options.get_filename()).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| open_err(sqlx::Error::Io(e)))?;
            }
        }
        // Pool connections commit without fsync (`synchronous = NORMAL`: safe across a process
        // crash in WAL mode, not across power loss). Their writes are dispatch bookkeeping that
        // is either idempotent to redo or protected by markers; the writes that must survive
        // power loss — acknowledged deliveries (the group-commit writer), `started` step
        // records and rotated OAuth tokens — go through `durably` with `synchronous = FULL`.
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections)
            .connect_with(options.clone().synchronous(SqliteSynchronous::Normal))
            .await
            .map_err(open_err)?;
        MIGRATOR.run(&pool).await?;
        let writer_conn = SqliteConnection::connect_with(&options)
            .await
            .map_err(open_err)?;
        let (tx, rx) = mpsc::channel(settings.group_commit_max_batch * 4);
        tokio::spawn(run_writer(writer_conn, rx, settings.group_commit_max_batch));
        Ok(Self { pool, writer: tx })
    }

    /// The connection pool (for the dispatcher's queries in this module's siblings).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Drains queued inserts into one transaction per batch until every sender is gone.
async fn run_writer(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<InsertJob>,
    max_batch: usize,
) {
    let mut batch = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        metrics::histogram!("formbridge_store_commit_batch_size").record(batch.len() as f64);
        let events: Vec<&NewEvent> = batch.iter().map(|job| &job.event).collect();
        match insert_batch(&mut conn, &events).await {
            Ok(outcomes) => {
                for (job, outcome) in batch.drain(..).zip(outcomes) {
                    // The requester may have gone (client hung up); the row is stored anyway.
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(err) => {
                tracing::error!(error = %err, batch = batch.len(), "group commit failed");
                let message = err.to_string();
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(StoreError::Corrupt {
                        op: "insert_event",
                        detail: message.clone(),
                    }));
                }
            }
        }
    }
}

async fn insert_batch(
    conn: &mut SqliteConnection,
    events: &[&NewEvent],
) -> Result<Vec<Ingested>, StoreError> {
    let mut tx = conn.begin().await.map_err(StoreError::query("begin"))?;
    let mut outcomes = Vec::with_capacity(events.len());
    for event in events {
        let headers = serde_json::to_string(&event.headers).map_err(|e| StoreError::Corrupt {
            op: "insert_event",
            detail: e.to_string(),
        })?;
        let received = to_millis(event.received_at);
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO events (source, dedupe_key, content_type, headers, body, received_at, next_attempt_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6)
             ON CONFLICT (source, dedupe_key) DO NOTHING
             RETURNING id",
        )
        .bind(event.source.as_str())
        .bind(&event.dedupe_key)
        .bind(event.content_type.as_deref())
        .bind(headers)
        .bind(event.body.as_ref())
        .bind(received)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::query("insert_event"))?;
        let outcome = match inserted {
            Some(id) => Ingested::Stored(EventId(id)),
            None => {
                let id: i64 = sqlx::query_scalar(
                    "SELECT id FROM events WHERE source = ?1 AND dedupe_key = ?2",
                )
                .bind(event.source.as_str())
                .bind(&event.dedupe_key)
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::query("find_duplicate"))?;
                Ingested::Duplicate(EventId(id))
            }
        };
        outcomes.push(outcome);
    }
    tx.commit().await.map_err(StoreError::query("commit"))?;
    Ok(outcomes)
}

const SUMMARY_COLUMNS: &str =
    "id, source, dedupe_key, status, attempts, received_at, next_attempt_at, updated_at, last_error";

fn summary_from_row(row: &SqliteRow) -> Result<EventSummary, StoreError> {
    let status: String = row
        .try_get("status")
        .map_err(StoreError::query("read_event"))?;
    let status = status
        .parse::<EventStatus>()
        .map_err(|e| StoreError::Corrupt {
            op: "read_event",
            detail: e.to_string(),
        })?;
    let get_i64 = |col: &str| {
        row.try_get::<i64, _>(col)
            .map_err(StoreError::query("read_event"))
    };
    Ok(EventSummary {
        id: EventId(get_i64("id")?),
        source: row
            .try_get("source")
            .map_err(StoreError::query("read_event"))?,
        dedupe_key: row
            .try_get("dedupe_key")
            .map_err(StoreError::query("read_event"))?,
        status,
        attempts: u32::try_from(get_i64("attempts")?).unwrap_or(u32::MAX),
        received_at: from_millis(get_i64("received_at")?),
        next_attempt_at: from_millis(get_i64("next_attempt_at")?),
        updated_at: from_millis(get_i64("updated_at")?),
        last_error: row
            .try_get("last_error")
            .map_err(StoreError::query("read_event"))?,
    })
}

const EVENT_COLUMNS: &str =
    "id, source, dedupe_key, status, attempts, received_at, next_attempt_at, updated_at, \
     last_error, content_type, headers, body, contact_key, location_id, submission, plan";

fn event_from_row(row: &SqliteRow) -> Result<Event, StoreError> {
    let headers: String = row
        .try_get("headers")
        .map_err(StoreError::query("read_event"))?;
    let body: Vec<u8> = row
        .try_get("body")
        .map_err(StoreError::query("read_event"))?;
    Ok(Event {
        summary: summary_from_row(row)?,
        content_type: row
            .try_get("content_type")
            .map_err(StoreError::query("read_event"))?,
        headers: serde_json::from_str(&headers).map_err(|e| StoreError::Corrupt {
            op: "read_event",
            detail: format!("headers: {e}"),
        })?,
        body: body.into(),
        contact_key: row
            .try_get("contact_key")
            .map_err(StoreError::query("read_event"))?,
        location_id: row
            .try_get("location_id")
            .map_err(StoreError::query("read_event"))?,
        submission: json_column(row, "submission")?,
        plan: json_column(row, "plan")?,
    })
}

fn json_column(row: &SqliteRow, col: &str) -> Result<Option<serde_json::Value>, StoreError> {
    let raw: Option<String> = row.try_get(col).map_err(StoreError::query("read_event"))?;
    raw.map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(|e| StoreError::Corrupt {
            op: "read_event",
            detail: format!("{col}: {e}"),
        })
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_event(&self, event: NewEvent) -> Result<Ingested, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(InsertJob { event, reply })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1 FROM events LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("ping"))?;
        if self.writer.is_closed() {
            return Err(StoreError::WriterGone);
        }
        Ok(())
    }

    async fn status_counts(&self) -> Result<BTreeMap<EventStatus, u64>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM events GROUP BY status")
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::query("status_counts"))?;
        let mut counts: BTreeMap<EventStatus, u64> =
            EventStatus::ALL.into_iter().map(|s| (s, 0)).collect();
        for (status, n) in rows {
            if let Ok(status) = status.parse() {
                counts.insert(status, u64::try_from(n).unwrap_or(0));
            }
        }
        Ok(counts)
    }

    async fn get_event(&self, id: EventId) -> Result<Option<Event>, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1");
        let row = sqlx::query(&sql)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("get_event"))?;
        row.as_ref().map(event_from_row).transpose()
    }

    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventSummary>, StoreError> {
        let mut qb = QueryBuilder::new(format!("SELECT {SUMMARY_COLUMNS} FROM events WHERE 1 = 1"));
        sqlite_queue::push_filter(&mut qb, filter);
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
        sqlite_queue::steps(&self.pool, id).await
    }

    async fn attempts(&self, id: EventId) -> Result<Vec<AttemptRecord>, StoreError> {
        sqlite_queue::attempts(&self.pool, id).await
    }

    async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let by_status = self.status_counts().await?;
        let oldest = sqlite_queue::oldest_unfinished(&self.pool).await?;
        Ok(sqlite_queue::stats(by_status, oldest))
    }

    async fn unprepared(&self, limit: u32) -> Result<Vec<Event>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE status = 'pending' AND plan IS NULL ORDER BY id LIMIT ?1"
        );
        let rows = sqlx::query(&sql)
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
        sqlite_queue::save_preparations(&self.pool, preparations).await
    }

    async fn claim(&self, claim: &Claim) -> Result<Vec<ClaimedEvent>, StoreError> {
        sqlite_queue::claim(&self.pool, claim).await
    }

    async fn record_step(
        &self,
        id: EventId,
        owner: &str,
        step: &StepRecord,
    ) -> Result<bool, StoreError> {
        sqlite_queue::record_step(&self.pool, id, owner, step).await
    }

    async fn renew_lease(
        &self,
        id: EventId,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        sqlite_queue::renew_lease(&self.pool, id, owner, until).await
    }

    async fn finish(&self, id: EventId, owner: &str, finish: &Finish) -> Result<bool, StoreError> {
        sqlite_queue::finish(&self.pool, id, owner, finish).await
    }

    async fn release(
        &self,
        id: EventId,
        owner: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlite_queue::release(&self.pool, id, owner, at).await
    }

    async fn replay(&self, id: EventId, from_scratch: bool) -> Result<bool, StoreError> {
        sqlite_queue::replay(&self.pool, id, from_scratch).await
    }

    async fn replay_matching(
        &self,
        filter: &EventFilter,
        from_scratch: bool,
    ) -> Result<u64, StoreError> {
        sqlite_queue::replay_matching(&self.pool, filter, from_scratch).await
    }
}
