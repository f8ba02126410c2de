//! The admin overview's reads (`GET /admin/overview`), on both backends with one set of
//! statements: deliveries per minute by source and status over the last hours, dead letters by
//! source and location, and the 429s GHL answered by source and location. Each reads an index
//! (`events_received`, and the partial `events_dead` and `event_attempts_rate_limited`).

use async_trait::async_trait;
use serde::Serialize;
use sqlx::Pool;
use time::OffsetDateTime;

use super::types::to_millis;
use super::{PgStore, SqliteStore, StoreError};

/// Deliveries received per minute since a time: `(since ms)` → `(source, status, minute, n)`,
/// `minute` in unix minutes.
const PER_MINUTE: &str = "SELECT source, status, received_at / 60000 AS minute, COUNT(*)
     FROM events WHERE received_at >= $1
     GROUP BY source, status, received_at / 60000";

/// Dead letters by source and location: `()` → `(source, location, n)`.
const DEAD: &str = "SELECT source, location_id, COUNT(*) FROM events WHERE status = 'dead'
     GROUP BY source, location_id";

/// Attempts GHL refused with a 429 since a time: `(since ms)` → `(source, location, n)`.
const RATE_LIMITED: &str = "SELECT e.source, e.location_id, COUNT(*)
     FROM event_attempts a JOIN events e ON e.id = a.event_id
     WHERE a.outcome = 'rate_limited' AND a.at >= $1
     GROUP BY e.source, e.location_id";

/// Deliveries of one source received in one minute that are now in one status.
#[derive(Debug, Clone, Serialize)]
pub struct MinuteCount {
    /// Start of the minute, unix seconds.
    pub minute: i64,
    pub source: String,
    pub status: String,
    pub count: u64,
}

/// A count of one source and location (`None`: not prepared yet, or no location).
#[derive(Debug, Clone, Serialize)]
pub struct PlaceCount {
    pub source: String,
    pub location_id: Option<String>,
    pub count: u64,
}

/// What the store holds for the overview.
#[derive(Debug, Clone, Serialize)]
pub struct StoreOverview {
    pub per_minute: Vec<MinuteCount>,
    pub dead: Vec<PlaceCount>,
    pub rate_limited: Vec<PlaceCount>,
}

/// The overview's reads.
#[async_trait]
pub trait OverviewReads: Send + Sync + 'static {
    /// Per-minute deliveries and 429s since `since`; every dead letter.
    async fn overview(&self, since: OffsetDateTime) -> Result<StoreOverview, StoreError>;
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Runs the three reads on `pool` (`$db`).
macro_rules! overview_on {
    ($db:ty, $pool:expr, $since:expr) => {{
        let pool: &Pool<$db> = $pool;
        let since = to_millis($since);
        let minutes: Vec<(String, String, i64, i64)> = sqlx::query_as(PER_MINUTE)
            .bind(since)
            .fetch_all(pool)
            .await
            .map_err(StoreError::query("overview"))?;
        let places = |rows: Vec<(String, Option<String>, i64)>| {
            rows.into_iter()
                .map(|(source, location_id, n)| PlaceCount {
                    source,
                    location_id,
                    count: count(n),
                })
                .collect::<Vec<_>>()
        };
        let dead: Vec<(String, Option<String>, i64)> = sqlx::query_as(DEAD)
            .fetch_all(pool)
            .await
            .map_err(StoreError::query("overview"))?;
        let limited: Vec<(String, Option<String>, i64)> = sqlx::query_as(RATE_LIMITED)
            .bind(since)
            .fetch_all(pool)
            .await
            .map_err(StoreError::query("overview"))?;
        let mut per_minute: Vec<MinuteCount> = minutes
            .into_iter()
            .map(|(source, status, minute, n)| MinuteCount {
                minute: minute * 60,
                source,
                status,
                count: count(n),
            })
            .collect();
        per_minute.sort_by(|a, b| {
            (a.minute, &a.source, &a.status).cmp(&(b.minute, &b.source, &b.status))
        });
        Ok::<_, StoreError>(StoreOverview {
            per_minute,
            dead: places(dead),
            rate_limited: places(limited),
        })
    }};
}

#[async_trait]
impl OverviewReads for SqliteStore {
    async fn overview(&self, since: OffsetDateTime) -> Result<StoreOverview, StoreError> {
        overview_on!(sqlx::Sqlite, self.pool(), since)
    }
}

#[async_trait]
impl OverviewReads for PgStore {
    async fn overview(&self, since: OffsetDateTime) -> Result<StoreOverview, StoreError> {
        overview_on!(sqlx::Postgres, self.pool(), since)
    }
}
