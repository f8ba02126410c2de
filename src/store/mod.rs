//! Storage: the event store trait and its SQLite and PostgreSQL implementations.
//!
//! The backend is chosen by the URL scheme of `store.url`. Everything that acknowledges a
//! webhook goes through [`Store::insert_event`], which returns only once the delivery is
//! durable on disk.

/// `SET` clauses that park an event waiting for a later attempt: when `$at` (its new
/// `next_attempt_at`) is after `$now`, its fair key moves to `parked_key`, out of the index
/// claims walk, until a claim finds it due and gives the key back (see `claim`); an event due
/// at once keeps its key. `$at` and `$now` are placeholders (`"?4"`, `"$4"`); right-hand sides
/// read the row as it was before the update. Only claimed (`processing`) events are parked,
/// and those always hold their key in `fair_key`. Shared by both backends' queues.
macro_rules! park_until_due {
    ($at:literal, $now:literal) => {
        concat!(
            "fair_key = CASE WHEN ",
            $at,
            " > ",
            $now,
            " THEN NULL ELSE fair_key END, ",
            "parked_key = CASE WHEN ",
            $at,
            " > ",
            $now,
            " THEN fair_key ELSE NULL END"
        )
    };
}
pub(crate) use park_until_due;

mod postgres;
mod postgres_queue;
mod rows;
mod sqlite;
mod sqlite_queue;
mod sqlite_tokens;
mod sqlite_writer;
mod types;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use types::*;

use crate::settings::StoreSettings;

/// A storage failure, with the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open store `{}`: {source}", crate::masked::url_password(.url))]
    Open {
        /// The store URL, its password masked.
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "cannot reach PostgreSQL at {host}:{port} ({source}): is the server running, and are \
         the host and port in store.url right?"
    )]
    PgUnreachable {
        host: String,
        port: u16,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "PostgreSQL at {host}:{port} refused user `{user}` (authentication failed): check the \
         user and password in store.url and the server's pg_hba.conf"
    )]
    PgAuth {
        user: String,
        host: String,
        port: u16,
    },
    #[error(
        "database `{database}` does not exist on PostgreSQL at {host}:{port}: create it \
         (`createdb {database}`) or fix the database name in store.url"
    )]
    PgNoDatabase {
        database: String,
        host: String,
        port: u16,
    },
    #[error("store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("store query failed ({op}): {source}")]
    Query {
        op: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("stored data is corrupt ({op}): {detail}")]
    Corrupt { op: &'static str, detail: String },
    #[error("store commit failed, nothing of this write was saved: {0}")]
    Commit(String),
    #[error("the store's writer has stopped")]
    WriterGone,
    #[error("the store cannot take writes: {0}")]
    NotWritable(String),
    #[error("unsupported store URL {0}")]
    UnsupportedUrl(String),
}

impl StoreError {
    pub(crate) fn query(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError::Query { op, source }
    }

    /// Whether this failure may have ended (rolled back) the transaction it happened in, so
    /// nothing else may run in that transaction nor its connection be trusted. SQLite rolls
    /// back by itself on SQLITE_FULL, SQLITE_IOERR, SQLITE_BUSY and SQLITE_NOMEM
    /// (<https://www.sqlite.org/lang_transaction.html>); a broken or corrupt database and a
    /// lost connection end it too. A constraint violation or bad data does not.
    pub(crate) fn ends_transaction(&self) -> bool {
        const BUSY: i64 = 5;
        const NOMEM: i64 = 7;
        const READONLY: i64 = 8;
        const IOERR: i64 = 10;
        const CORRUPT: i64 = 11;
        const FULL: i64 = 13;
        const CANTOPEN: i64 = 14;
        const NOTADB: i64 = 26;
        match self {
            StoreError::Query { source, .. } => match source {
                sqlx::Error::Database(db) => db
                    .code()
                    .and_then(|code| code.parse::<i64>().ok())
                    .is_none_or(|code| {
                        matches!(
                            code & 0xff,
                            BUSY | NOMEM | READONLY | IOERR | CORRUPT | FULL | CANTOPEN | NOTADB
                        )
                    }),
                sqlx::Error::RowNotFound
                | sqlx::Error::ColumnNotFound(_)
                | sqlx::Error::ColumnDecode { .. }
                | sqlx::Error::ColumnIndexOutOfBounds { .. }
                | sqlx::Error::TypeNotFound { .. }
                | sqlx::Error::Decode(_)
                | sqlx::Error::Encode(_) => false,
                _ => true,
            },
            StoreError::Corrupt { .. } => false,
            _ => true,
        }
    }
}

/// The event store. One trait, several backends (SQLite embedded, PostgreSQL for replicas).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Durably records a delivery, or finds the one already stored under its dedupe key.
    /// Returns only after the delivery is committed (fsync'd).
    async fn insert_event(&self, event: NewEvent) -> Result<Ingested, StoreError>;

    /// The OAuth tokens stored for a location, if any.
    async fn load_oauth_tokens(
        &self,
        location_id: &str,
    ) -> Result<Option<StoredTokens>, StoreError>;

    /// Replaces a location's OAuth tokens; durable (fsync'd) when it returns, as the rotated
    /// refresh token is the only one GHL still accepts.
    async fn save_oauth_tokens(
        &self,
        location_id: &str,
        tokens: &StoredTokens,
    ) -> Result<(), StoreError>;

    /// Answers when the store can serve a query and take writes (for `/readyz`): an error
    /// while its last write could not commit (a full disk) and none has since.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Number of events in each status.
    async fn status_counts(&self) -> Result<BTreeMap<EventStatus, u64>, StoreError>;

    /// One event with its raw delivery.
    async fn get_event(&self, id: EventId) -> Result<Option<Event>, StoreError>;

    /// Events matching a filter, newest first, without bodies.
    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventSummary>, StoreError>;

    /// Recorded step results of an event, in plan order.
    async fn steps(&self, id: EventId) -> Result<Vec<StepRecord>, StoreError>;

    /// Attempt history of an event, oldest first.
    async fn attempts(&self, id: EventId) -> Result<Vec<AttemptRecord>, StoreError>;

    /// Status counts and the age of the oldest unfinished event.
    async fn queue_stats(&self) -> Result<QueueStats, StoreError>;

    /// Pending events not yet prepared (no plan), oldest first.
    async fn unprepared(&self, limit: u32) -> Result<Vec<Event>, StoreError>;

    /// Stores what the preparer made of each event (plan, nothing to do, or dead).
    async fn save_preparations(
        &self,
        preparations: &[(EventId, Preparation)],
    ) -> Result<(), StoreError>;

    /// Claims due, prepared events under a lease, in fair order between the sources of each
    /// location (arrival order when one source sends): at most one unfinished event per contact
    /// key is handed out, the oldest first; an expired lease is taken over.
    async fn claim(&self, claim: &Claim) -> Result<Vec<ClaimedEvent>, StoreError>;

    /// Records a step result, if `owner` still holds the event's lease (returns false if not).
    async fn record_step(
        &self,
        id: EventId,
        owner: &str,
        step: &StepRecord,
    ) -> Result<bool, StoreError>;

    /// Extends the lease `owner` holds on a processing event (returns false if it was lost).
    async fn renew_lease(
        &self,
        id: EventId,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Ends an attempt, if `owner` still holds the lease (returns false if not).
    async fn finish(&self, id: EventId, owner: &str, finish: &Finish) -> Result<bool, StoreError>;

    /// Gives up a lease without an attempt (shutdown, or the location became unavailable).
    async fn release(&self, id: EventId, owner: &str, at: OffsetDateTime)
        -> Result<(), StoreError>;

    /// Deletes up to `batch` done events finished (last updated) before `before`, with their
    /// deliveries, steps and attempts; never a dead or unfinished one. Returns how many.
    async fn delete_finished_before(
        &self,
        before: OffsetDateTime,
        batch: u32,
    ) -> Result<u64, StoreError> {
        // Until the SQLite store has its own (another change); PostgreSQL overrides it.
        let _ = (before, batch);
        Ok(0)
    }

    /// Re-prepares an event with the current config and queues it now. Completed steps are
    /// kept (and skipped) unless `from_scratch`. Returns false if there is no such event or it
    /// is being processed.
    async fn replay(&self, id: EventId, from_scratch: bool) -> Result<bool, StoreError>;

    /// [`Store::replay`] for every event matching the filter (not processing); returns how many.
    async fn replay_matching(
        &self,
        filter: &EventFilter,
        from_scratch: bool,
    ) -> Result<u64, StoreError>;
}

/// Opens the store named by `settings.url`, creating and migrating it as needed.
pub async fn open(settings: &StoreSettings) -> Result<Arc<dyn Store>, StoreError> {
    let url = settings.url.as_str();
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(settings).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(PgStore::open(settings).await?))
    } else {
        Err(StoreError::UnsupportedUrl(
            "scheme: use sqlite://path or postgres://user:password@host/database".to_owned(),
        ))
    }
}
