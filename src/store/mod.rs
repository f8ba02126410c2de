//! Storage: durable deliveries and the dispatch queue, one trait per role (ingest, queue, admin
//! reads, token vault, lead records, lead index, overview reads; budget slots), on SQLite or
//! PostgreSQL.
//!
//! The backend is chosen by the URL scheme of `store.url`. Everything that acknowledges a
//! webhook goes through [`Ingest::insert_event`], which returns only once the delivery is
//! durable on disk.
//!
//! Both backends share one schema (`migrations/sqlite`, `migrations/postgres`: the same event
//! tables; SQLite adds its writer's probe, PostgreSQL the replicas' rate budget) and one set of
//! statements (`backend`, read with the `FromRow` structs of `rows`).

mod backend;
mod budget;
mod lead_index;
mod lead_records;
mod overview;
mod postgres;
mod postgres_budget;
mod postgres_ingest;
mod postgres_lead_index;
mod postgres_leads;
mod postgres_prepare;
mod postgres_queue;
mod postgres_read_only;
mod postgres_tokens;
mod rows;
mod sqlite;
mod sqlite_file;
mod sqlite_ingest;
mod sqlite_lead_index;
mod sqlite_leads;
mod sqlite_queue;
mod sqlite_steps;
mod sqlite_tokens;
mod sqlite_writer;
mod token_seal;
mod tokens;
mod types;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

pub use budget::{SharedBudget, SlotGrant, SlotTicket};
pub use lead_index::{Cancelled, LeadIndex, LeadKey, LeadPage, LeadSearch, CANCELLED_OUTCOME};
pub use lead_records::LeadRecords;
pub use overview::{MinuteCount, OverviewReads, PlaceCount, StoreOverview};
pub use postgres::PgStore;
pub use postgres_budget::PgBudget;
pub use sqlite::SqliteStore;
pub use token_seal::TokenSeal;
pub use tokens::OAuthTokensLock;
pub use types::*;

use crate::domain::{EventId, LocationId};
use crate::settings::StoreSettings;

/// How long the dedupe key of an event retention deleted is remembered (its tombstone): a year,
/// so a delivery replayed within it is still a duplicate.
pub const SWEPT_KEYS_KEPT: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

/// The seal of a store's OAuth tokens, from `store.token_key` and `store.old_token_keys`.
fn token_seal(settings: &StoreSettings) -> Result<TokenSeal, StoreError> {
    let (current, old) = settings
        .token_keys()
        .map_err(|e| StoreError::TokenKey(e.to_string()))?;
    Ok(TokenSeal::new(current, &old))
}

/// A storage failure, with the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the GHL OAuth tokens of location {location_id} cannot be used: {message}")]
    TokenSeal {
        location_id: String,
        message: String,
    },
    #[error("{0}")]
    TokenKey(String),
    #[error("cannot open store `{}`: {source}", crate::masked::url_password(.url))]
    Open {
        /// The store URL, its password masked.
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "TLS with PostgreSQL at {host}:{port} failed ({source}): with sslmode=verify-ca or \
         verify-full, give the CA that signed the server's certificate as \
         sslrootcert=/path/to/ca.pem in store.url (verify-full also needs the host name the \
         certificate names); sslmode=require needs the server's `ssl = on`"
    )]
    PgTls {
        host: String,
        port: u16,
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
        move |source| {
            postgres_read_only::note(&source);
            StoreError::Query { op, source }
        }
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

/// Admin reads: what the admin API, health checks and metrics read; queries that change
/// nothing.
#[async_trait]
pub trait AdminReads: Send + Sync + 'static {
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
}

/// Ingest: where the webhook ingress puts a delivery before it acknowledges it.
#[async_trait]
pub trait Ingest: Send + Sync + 'static {
    /// Durably records a delivery, or finds the one already stored under its dedupe key.
    /// Returns only after the delivery is committed (fsync'd).
    async fn insert_event(&self, event: NewEvent) -> Result<Ingested, StoreError>;
}

/// The token vault: a location's GHL OAuth tokens, sealed at rest.
#[async_trait]
pub trait TokenVault: Send + Sync + 'static {
    /// The OAuth tokens stored for a location, if any.
    async fn load_oauth_tokens(
        &self,
        location_id: &LocationId,
    ) -> Result<Option<StoredTokens>, StoreError>;

    /// Replaces a location's OAuth tokens; durable (fsync'd) when it returns, as the rotated
    /// refresh token is the only one GHL still accepts.
    async fn save_oauth_tokens(
        &self,
        location_id: &LocationId,
        tokens: &StoredTokens,
    ) -> Result<(), StoreError>;

    /// Locks a location's OAuth tokens for one refresh against every process sharing this
    /// store, and reads them under the lock. The default is for a store one process uses.
    async fn lock_oauth_tokens(
        &self,
        location_id: &LocationId,
    ) -> Result<Box<dyn OAuthTokensLock + '_>, StoreError> {
        let tokens = self.load_oauth_tokens(location_id).await?;
        Ok(Box::new(tokens::UnsharedTokensLock {
            store: self,
            location_id: location_id.clone(),
            tokens,
        }))
    }
}

/// The dispatch queue: preparing new deliveries, claiming them under leases, recording each
/// step and ending each attempt under its lease; replay and retention.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Pending events not yet prepared (no plan), oldest first. A store shared by replicas
    /// hands each replica its own batch (under a prepare lease), and its claims never pass the
    /// oldest unprepared event.
    async fn unprepared(&self, limit: u32) -> Result<Vec<Event>, StoreError>;

    /// Stores what the preparer made of each event (plan, nothing to do, or dead). An event
    /// that is no longer pending or was prepared meanwhile (by another replica) is left as is.
    async fn save_preparations(
        &self,
        preparations: &[(EventId, Preparation)],
    ) -> Result<(), StoreError>;

    /// Claims due, prepared events under a lease, in fair order between the sources of each
    /// location (arrival order when one source sends): at most one unfinished event per contact
    /// key is handed out, the oldest first; an expired lease is taken over.
    async fn claim(&self, claim: &Claim) -> Result<Vec<ClaimedEvent>, StoreError>;

    /// The events tied to `id`, oldest first: earlier revisions of its submission, and the
    /// prepared deliveries, earlier or later, sharing one of its references (its lead, other
    /// follow-ups), each with its plan and recorded steps. An edit updates what its first
    /// revision made; a follow-up acts on its lead's contact and tasks, even when the lead
    /// arrived after it.
    async fn thread(&self, id: EventId) -> Result<Vec<ThreadEvent>, StoreError>;

    /// Records a step result, if `lease` still holds the event and has not run out (returns
    /// false if not: the caller must stop, and send nothing more for the event).
    async fn record_step(
        &self,
        id: EventId,
        lease: &LeaseToken,
        step: &StepRecord,
    ) -> Result<bool, StoreError>;

    /// Extends the lease on a processing event (returns false if it was lost).
    async fn renew_lease(
        &self,
        id: EventId,
        lease: &LeaseToken,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Ends an attempt, if `lease` still holds the event (returns false if not).
    async fn finish(
        &self,
        id: EventId,
        lease: &LeaseToken,
        finish: &Finish,
    ) -> Result<bool, StoreError>;

    /// Gives up a lease without an attempt (shutdown, or the location became unavailable).
    async fn release(
        &self,
        id: EventId,
        lease: &LeaseToken,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Re-prepares an event with the current config and queues it now. Completed steps are
    /// kept (and skipped) unless `from_scratch`: then every step is marked `started`, so each
    /// runs again and a task, note or contact by name is looked for by its marker before it is
    /// created again (nothing is made twice). Returns false if there is no such event or it is
    /// being processed.
    async fn replay(&self, id: EventId, from_scratch: bool) -> Result<bool, StoreError>;

    /// [`Queue::replay`] for every event matching the filter (not processing); returns how many.
    async fn replay_matching(
        &self,
        filter: &EventFilter,
        from_scratch: bool,
    ) -> Result<u64, StoreError>;

    /// Retention: deletes up to `batch` done events last updated before `before`, with their
    /// delivery, plan, steps and attempts; returns how many. Each leaves its dedupe key behind
    /// for [`SWEPT_KEYS_KEPT`], so a repeat of its delivery is still a duplicate. Dead letters
    /// and unfinished events are never deleted.
    async fn delete_finished_before(
        &self,
        before: OffsetDateTime,
        batch: u32,
    ) -> Result<u64, StoreError>;
}

/// The whole store as opened from `store.url`: every role, and the GHL budget slots of a store
/// replicas share. One trait per role, several backends (SQLite embedded, PostgreSQL for
/// replicas); each caller holds only the role it uses (`Arc<dyn Store>` coerces to
/// `Arc<dyn Ingest>`, …), and `tests/it/store_contract.rs` holds every backend to the same
/// contract.
pub trait Store:
    Ingest + Queue + AdminReads + TokenVault + LeadRecords + LeadIndex + OverviewReads
{
    /// The GHL rate budget this store shares between the replicas using it; `None` for a store
    /// only one process uses (each process then keeps its budget in memory).
    fn shared_budget(&self) -> Option<Arc<dyn SharedBudget>> {
        None
    }
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

/// [`open`] for operator commands that may run beside the server on its SQLite file: no lock
/// taken, no lease given back, no reserve kept ([`SqliteStore::open_shared`]).
pub async fn open_shared(settings: &StoreSettings) -> Result<Arc<dyn Store>, StoreError> {
    if settings.url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open_shared(settings).await?))
    } else {
        open(settings).await
    }
}

#[cfg(test)]
mod status_names {
    //! The status names written in SQL are the ones `EventStatus` and `StepStatus` know: a typo
    //! in a query (`'retried'`) would otherwise match nothing, silently.
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use super::{EventStatus, StepStatus};

    /// Every file that holds store SQL: the backends' sources and their migrations.
    fn sql_files() -> Vec<std::path::PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for dir in ["src/store", "migrations/sqlite", "migrations/postgres"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "rs" || e == "sql") {
                    files.push(path);
                }
            }
        }
        files
    }

    #[test]
    fn every_status_literal_in_store_sql_is_a_known_status() {
        let known: Vec<&str> = EventStatus::ALL
            .iter()
            .map(|s| s.as_str())
            .chain([StepStatus::Started.as_str(), StepStatus::Done.as_str()])
            .collect();
        let quoted = regex::Regex::new(r"'([a-z_]+)'").unwrap();
        let mut checked = 0;
        for file in sql_files() {
            let text = std::fs::read_to_string(&file).unwrap();
            for line in text.lines().filter(|l| l.contains("status")) {
                for word in quoted
                    .captures_iter(line)
                    .map(|c| c.get(1).unwrap().as_str())
                {
                    assert!(
                        known.contains(&word),
                        "{}: `{word}` is not a status name: {line}",
                        file.display()
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 20, "found only {checked} status literals");
    }

    #[test]
    fn the_events_table_allows_exactly_the_event_statuses() {
        let check = regex::Regex::new(r"status\s+IN\s*\(([^)]*)\)\)").unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for first in [
            "migrations/sqlite/0001_events.sql",
            "migrations/postgres/0001_init.sql",
        ] {
            let Ok(sql) = std::fs::read_to_string(root.join(first)) else {
                continue; // a backend not built yet
            };
            let list = check.captures(&sql).unwrap().get(1).unwrap().as_str();
            let names: Vec<&str> = list
                .split(',')
                .map(|n| n.trim().trim_matches('\''))
                .collect();
            let all: Vec<&str> = EventStatus::ALL.iter().map(|s| s.as_str()).collect();
            assert_eq!(names, all, "{first}: the CHECK constraint on events.status");
        }
    }
}
