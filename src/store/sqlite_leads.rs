//! [`LeadRecords`] on SQLite: reads from the pool, writes through the group-commit writer,
//! fsync'd (a lost row would let a replay make a second card).

use async_trait::async_trait;

use super::lead_records::{now_secs, LeadOpportunityRow, LeadRecords, SELECT, UPSERT};
use super::sqlite_writer::Durability;
use super::{SqliteStore, StoreError};
use crate::domain::opportunity::LeadOpportunity;
use crate::domain::LocationId;

#[async_trait]
impl LeadRecords for SqliteStore {
    async fn lead_opportunity(
        &self,
        location: &LocationId,
        reference: &str,
    ) -> Result<Option<LeadOpportunity>, StoreError> {
        let row: Option<LeadOpportunityRow> = sqlx::query_as(SELECT)
            .bind(location.as_str())
            .bind(reference)
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::query("lead_opportunity"))?;
        Ok(row.map(LeadOpportunity::from))
    }

    async fn save_lead_opportunity(
        &self,
        location: &LocationId,
        reference: &str,
        opportunity: &LeadOpportunity,
    ) -> Result<(), StoreError> {
        let (location, reference) = (location.as_str().to_owned(), reference.to_owned());
        let opportunity = opportunity.clone();
        self.writer()
            .write(Durability::Fsync, move |conn| {
                Box::pin(async move {
                    sqlx::query(UPSERT)
                        .bind(location)
                        .bind(reference)
                        .bind(opportunity.opportunity_id)
                        .bind(opportunity.pipeline_id)
                        .bind(now_secs())
                        .execute(&mut *conn)
                        .await
                        .map_err(StoreError::query("save_lead_opportunity"))?;
                    Ok(())
                })
            })
            .await
    }
}
