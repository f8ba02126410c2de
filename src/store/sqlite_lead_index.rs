//! [`LeadIndex`] on SQLite: searches on the read pool; keys and cancels through the writer
//! (a cancel fsync'd: its 200 promises nothing more is sent).

use async_trait::async_trait;

use super::lead_index::{sqlite, Cancelled, LeadIndex, LeadKey, LeadPage, LeadSearch};
use super::sqlite_writer::Durability;
use super::{SqliteStore, StoreError};
use crate::domain::EventId;

#[async_trait]
impl LeadIndex for SqliteStore {
    async fn index_leads(&self, keys: &[(EventId, Vec<LeadKey>)]) -> Result<(), StoreError> {
        if keys.iter().all(|(_, k)| k.is_empty()) {
            return Ok(());
        }
        let keys = keys.to_vec();
        self.writer()
            .write(Durability::Crash, move |conn| {
                Box::pin(async move { sqlite::index_on(conn, &keys).await })
            })
            .await
    }

    async fn find_leads(&self, search: &LeadSearch) -> Result<LeadPage, StoreError> {
        sqlite::find_on(self.pool(), search).await
    }

    async fn cancel(&self, id: EventId, reason: &str) -> Result<Cancelled, StoreError> {
        let reason = reason.to_owned();
        self.writer()
            .write(Durability::Fsync, move |conn| {
                Box::pin(async move { sqlite::cancel_on(conn, id, &reason).await })
            })
            .await
    }
}
