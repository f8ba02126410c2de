//! The lead records role: what a lead made in GHL that later deliveries must find again without
//! a look-up in GHL — its opportunity, per location and reference. Both backends run the same
//! statements (`$N` placeholders, which sqlx's SQLite driver binds by number), each in its own
//! file (`sqlite_leads.rs`, `postgres_leads.rs`).

use super::StoreError;
use crate::domain::opportunity::LeadOpportunity;
use crate::domain::LocationId;
use async_trait::async_trait;

/// Lead records: the opportunity of each (location, reference).
#[async_trait]
pub trait LeadRecords: Send + Sync + 'static {
    /// The opportunity a lead with `reference` made in `location`, if any.
    async fn lead_opportunity(
        &self,
        location: &LocationId,
        reference: &str,
    ) -> Result<Option<LeadOpportunity>, StoreError>;

    /// Remembers (or replaces: the card was deleted in GHL and made anew) the opportunity of
    /// `reference` in `location`; durable when it returns.
    async fn save_lead_opportunity(
        &self,
        location: &LocationId,
        reference: &str,
        opportunity: &LeadOpportunity,
    ) -> Result<(), StoreError>;
}

pub(super) const SELECT: &str = "SELECT opportunity_id, pipeline_id FROM lead_opportunities \
                      WHERE location_id = $1 AND reference = $2";

pub(super) const UPSERT: &str = "INSERT INTO lead_opportunities \
                      (location_id, reference, opportunity_id, pipeline_id, updated_at) \
                      VALUES ($1, $2, $3, $4, $5) \
                      ON CONFLICT (location_id, reference) DO UPDATE SET \
                      opportunity_id = excluded.opportunity_id, \
                      pipeline_id = excluded.pipeline_id, updated_at = excluded.updated_at";

/// The row [`SELECT`] reads.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct LeadOpportunityRow {
    pub opportunity_id: String,
    pub pipeline_id: String,
}

impl From<LeadOpportunityRow> for LeadOpportunity {
    fn from(row: LeadOpportunityRow) -> Self {
        Self {
            opportunity_id: row.opportunity_id,
            pipeline_id: row.pipeline_id,
        }
    }
}

/// Now, as `updated_at` is written (unix seconds).
pub(super) fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
