//! OAuth tokens locked for one refresh in PostgreSQL: a transaction holding an advisory lock
//! per location (it works before the location has a row, on the bootstrap refresh too), so one
//! replica refreshes at a time and the others, once they get the lock, read the rotated pair.

use async_trait::async_trait;
use secrecy::ExposeSecret;
use sqlx::{PgPool, Postgres, Transaction};

use super::tokens::OAuthTokensLock;
use super::types::{from_millis, to_millis};
use super::{LocationId, StoreError, StoredTokens};

/// The lock: an open transaction that holds the location's advisory lock until it ends.
pub(super) struct PgTokensLock {
    tx: Transaction<'static, Postgres>,
    location_id: LocationId,
    tokens: Option<StoredTokens>,
}

/// The stored tokens of a location.
pub(super) async fn load<'c>(
    db: impl sqlx::PgExecutor<'c>,
    location_id: &LocationId,
) -> Result<Option<StoredTokens>, StoreError> {
    let row: Option<(String, String, i64)> = sqlx::query_as(
        "SELECT access_token, refresh_token, expires_at FROM oauth_tokens WHERE location_id = $1",
    )
    .bind(location_id.as_str())
    .fetch_optional(db)
    .await
    .map_err(StoreError::query("load_oauth_tokens"))?;
    Ok(row.map(|(access, refresh, expires_at)| StoredTokens {
        access_token: access.into(),
        refresh_token: refresh.into(),
        expires_at: from_millis(expires_at),
    }))
}

/// Replaces the stored tokens of a location.
pub(super) async fn save<'c>(
    db: impl sqlx::PgExecutor<'c>,
    location_id: &LocationId,
    tokens: &StoredTokens,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO oauth_tokens (location_id, access_token, refresh_token, expires_at, updated_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (location_id) DO UPDATE SET access_token = excluded.access_token,
             refresh_token = excluded.refresh_token, expires_at = excluded.expires_at,
             updated_at = excluded.updated_at",
    )
    .bind(location_id.as_str())
    .bind(tokens.access_token.expose_secret())
    .bind(tokens.refresh_token.expose_secret())
    .bind(to_millis(tokens.expires_at))
    .bind(to_millis(time::OffsetDateTime::now_utc()))
    .execute(db)
    .await
    .map(drop)
    .map_err(StoreError::query("save_oauth_tokens"))
}

/// Takes the location's token lock (waiting while another replica refreshes) and reads its
/// tokens under it.
pub(super) async fn lock(
    pool: &PgPool,
    location_id: &LocationId,
) -> Result<PgTokensLock, StoreError> {
    let mut tx = pool.begin().await.map_err(StoreError::query("begin"))?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('formbridge.oauth:' || $1, 0))")
        .bind(location_id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("lock_oauth_tokens"))?;
    let tokens = load(&mut *tx, location_id).await?;
    Ok(PgTokensLock {
        tx,
        location_id: location_id.clone(),
        tokens,
    })
}

#[async_trait]
impl OAuthTokensLock for PgTokensLock {
    fn tokens(&self) -> Option<&StoredTokens> {
        self.tokens.as_ref()
    }

    async fn save(mut self: Box<Self>, tokens: &StoredTokens) -> Result<(), StoreError> {
        save(&mut *self.tx, &self.location_id, tokens).await?;
        self.tx.commit().await.map_err(StoreError::query("commit"))
    }
}
