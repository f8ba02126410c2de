//! [`LeadIndex`] on PostgreSQL: each call on a connection of the shared pool.

use async_trait::async_trait;

use super::lead_index::{postgres, Cancelled, LeadIndex, LeadKey, LeadPage, LeadSearch};
use super::{PgStore, StoreError};
use crate::domain::EventId;

#[async_trait]
impl LeadIndex for PgStore {
    async fn index_leads(&self, keys: &[(EventId, Vec<LeadKey>)]) -> Result<(), StoreError> {
        if keys.iter().all(|(_, k)| k.is_empty()) {
            return Ok(());
        }
        let mut conn = self
            .pool()
            .acquire()
            .await
            .map_err(StoreError::query("index_leads"))?;
        postgres::index_on(&mut conn, keys).await
    }

    async fn find_leads(&self, search: &LeadSearch) -> Result<LeadPage, StoreError> {
        postgres::find_on(self.pool(), search).await
    }

    async fn cancel(&self, id: EventId, reason: &str) -> Result<Cancelled, StoreError> {
        let mut conn = self
            .pool()
            .acquire()
            .await
            .map_err(StoreError::query("cancel"))?;
        postgres::cancel_on(&mut conn, id, reason).await
    }
}
