//! [`LeadRecords`] on PostgreSQL: one statement each on the shared pool (the upsert is atomic,
//! so two replicas saving the same reference leave one row).

use async_trait::async_trait;

use super::lead_records::{now_secs, LeadOpportunityRow, LeadRecords, SELECT, UPSERT};
use super::{PgStore, StoreError};
use crate::domain::opportunity::LeadOpportunity;
use crate::domain::LocationId;

#[async_trait]
impl LeadRecords for PgStore {
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
        sqlx::query(UPSERT)
            .bind(location.as_str())
            .bind(reference)
            .bind(opportunity.opportunity_id.as_str())
            .bind(opportunity.pipeline_id.as_str())
            .bind(now_secs())
            .execute(self.pool())
            .await
            .map_err(StoreError::query("save_lead_opportunity"))?;
        Ok(())
    }
}
