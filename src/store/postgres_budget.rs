//! The shared GHL rate budget ([`SharedBudget`]) in PostgreSQL: one row per request slot,
//! taken with `FOR UPDATE SKIP LOCKED` so replicas never wait on each other's takings.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgPool;

use super::budget::{SharedBudget, SlotGrant, SlotTicket};
use super::StoreError;
use crate::domain::LocationId;

/// Every replica's budget times are on the database clock.
use super::postgres_queue::DB_NOW_MS as NOW_MS;

/// Shortest wait suggested when every free slot is momentarily locked by another replica.
const CONTENDED_WAIT: Duration = Duration::from_millis(5);

/// [`SharedBudget`] on a PostgreSQL pool.
pub struct PgBudget {
    pool: PgPool,
    /// (location, burst) whose slot rows this process has made sure exist.
    provisioned: Mutex<HashSet<(LocationId, u32)>>,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl PgBudget {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            provisioned: Mutex::default(),
        }
    }

    /// Creates the location's `burst` slot rows if missing (once per process and location).
    async fn provision(&self, location: &LocationId, burst: u32) -> Result<(), StoreError> {
        let key = (location.clone(), burst);
        let known = self
            .provisioned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key);
        if known {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO ghl_budget_slots (location_id, slot)
             SELECT $1, n FROM generate_series(0, $2 - 1) AS n
             ON CONFLICT (location_id, slot) DO NOTHING",
        )
        .bind(location.as_str())
        .bind(i32::try_from(burst).unwrap_or(i32::MAX))
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("budget_provision"))?;
        self.provisioned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key);
        Ok(())
    }
}

#[async_trait]
impl SharedBudget for PgBudget {
    async fn take(
        &self,
        location: &LocationId,
        burst: u32,
        hold: Duration,
    ) -> Result<SlotGrant, StoreError> {
        self.provision(location, burst).await?;
        let ticket: i64 = rand::random();
        let burst = i32::try_from(burst).unwrap_or(i32::MAX);
        // The slot free longest, unless the location is paused; a slot another replica is
        // taking right now is skipped, not waited for.
        let taken: Option<i32> = sqlx::query_scalar(&format!(
            "WITH pick AS (
                 SELECT slot FROM ghl_budget_slots
                 WHERE location_id = $1 AND slot < $2 AND free_at <= {NOW_MS}
                   AND NOT EXISTS (SELECT 1 FROM ghl_budget_pauses p
                                   WHERE p.location_id = $1 AND p.paused_until > {NOW_MS})
                 ORDER BY free_at LIMIT 1
                 FOR UPDATE SKIP LOCKED)
             UPDATE ghl_budget_slots s SET free_at = {NOW_MS} + $3, ticket = $4
             FROM pick WHERE s.location_id = $1 AND s.slot = pick.slot
             RETURNING s.slot"
        ))
        .bind(location.as_str())
        .bind(burst)
        .bind(millis(hold))
        .bind(ticket)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query("budget_take"))?;
        if let Some(slot) = taken {
            return Ok(SlotGrant::Granted(SlotTicket { slot, ticket }));
        }
        let wait_ms: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT GREATEST(
                 (SELECT MIN(free_at) FROM ghl_budget_slots WHERE location_id = $1 AND slot < $2),
                 (SELECT MAX(paused_until) FROM ghl_budget_pauses WHERE location_id = $1)
             ) - {NOW_MS}"
        ))
        .bind(location.as_str())
        .bind(burst)
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::query("budget_wait"))?;
        let wait = Duration::from_millis(u64::try_from(wait_ms.unwrap_or(0)).unwrap_or(0));
        Ok(SlotGrant::WaitFor(wait.max(CONTENDED_WAIT)))
    }

    async fn complete(
        &self,
        location: &LocationId,
        ticket: &SlotTicket,
        window: Duration,
    ) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "UPDATE ghl_budget_slots SET free_at = {NOW_MS} + $4
             WHERE location_id = $1 AND slot = $2 AND ticket = $3"
        ))
        .bind(location.as_str())
        .bind(ticket.slot)
        .bind(ticket.ticket)
        .bind(millis(window))
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("budget_complete"))?;
        Ok(())
    }

    async fn pause(&self, location: &LocationId, wait: Duration) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO ghl_budget_pauses (location_id, paused_until) VALUES ($1, {NOW_MS} + $2)
             ON CONFLICT (location_id) DO UPDATE
             SET paused_until = GREATEST(ghl_budget_pauses.paused_until, excluded.paused_until)"
        ))
        .bind(location.as_str())
        .bind(millis(wait))
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("budget_pause"))?;
        Ok(())
    }
}
