//! Storage: the event store trait and its SQLite and PostgreSQL implementations.
//!
//! The backend is chosen by the URL scheme of `store.url`. Everything that acknowledges a
//! webhook goes through [`Store::insert_event`], which returns only once the delivery is
//! durable on disk.

mod sqlite;
mod types;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

pub use sqlite::SqliteStore;
pub use types::*;

use crate::settings::StoreSettings;

/// A storage failure, with the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open store `{url}`: {source}")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
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
    #[error("the store's writer has stopped")]
    WriterGone,
    #[error("unsupported store URL `{0}`: use sqlite://path or postgres://…")]
    UnsupportedUrl(String),
}

impl StoreError {
    pub(crate) fn query(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError::Query { op, source }
    }
}

/// The event store. One trait, several backends (SQLite embedded, PostgreSQL for replicas).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Durably records a delivery, or finds the one already stored under its dedupe key.
    /// Returns only after the delivery is committed (fsync'd).
    async fn insert_event(&self, event: NewEvent) -> Result<Ingested, StoreError>;

    /// Answers when the store can serve a query (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Number of events in each status.
    async fn status_counts(&self) -> Result<BTreeMap<EventStatus, u64>, StoreError>;

    /// One event with its raw delivery.
    async fn get_event(&self, id: EventId) -> Result<Option<Event>, StoreError>;

    /// Events matching a filter, newest first, without bodies.
    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventSummary>, StoreError>;
}

/// Opens the store named by `settings.url`, creating and migrating it as needed.
pub async fn open(settings: &StoreSettings) -> Result<Arc<dyn Store>, StoreError> {
    let url = settings.url.as_str();
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(settings).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}
