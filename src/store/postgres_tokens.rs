//! OAuth tokens locked for one refresh in PostgreSQL: a transaction holding an advisory lock
//! per location (it works before the location has a row, on the bootstrap refresh too), so one
//! replica refreshes at a time and the others, once they get the lock, read the rotated pair.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{PgPool, Postgres, Transaction};

use super::backend::Backend;
use super::tokens::OAuthTokensLock;
use super::{StoreError, StoredTokens, TokenSeal};
use crate::domain::LocationId;

/// The lock: an open transaction that holds the location's advisory lock until it ends.
pub(super) struct PgTokensLock {
    tx: Transaction<'static, Postgres>,
    seal: Arc<TokenSeal>,
    location_id: LocationId,
    tokens: Option<StoredTokens>,
}

/// The stored tokens of a location.
pub(super) async fn load<'c>(
    db: impl sqlx::PgExecutor<'c>,
    seal: &TokenSeal,
    location_id: &LocationId,
) -> Result<Option<StoredTokens>, StoreError> {
    Postgres::load_tokens(db, seal, location_id.as_str()).await
}

/// Replaces the stored tokens of a location.
pub(super) async fn save<'c>(
    db: impl sqlx::PgExecutor<'c>,
    seal: &TokenSeal,
    location_id: &LocationId,
    tokens: &StoredTokens,
) -> Result<(), StoreError> {
    Postgres::save_tokens(db, seal, location_id.as_str(), tokens).await
}

/// Takes the location's token lock (waiting while another replica refreshes) and reads its
/// tokens under it.
pub(super) async fn lock(
    pool: &PgPool,
    seal: &Arc<TokenSeal>,
    location_id: &LocationId,
) -> Result<PgTokensLock, StoreError> {
    let mut tx = pool.begin().await.map_err(StoreError::query("begin"))?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('formbridge.oauth:' || $1, 0))")
        .bind(location_id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("lock_oauth_tokens"))?;
    let tokens = load(&mut *tx, seal, location_id).await?;
    Ok(PgTokensLock {
        tx,
        seal: Arc::clone(seal),
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
        save(&mut *self.tx, &self.seal, &self.location_id, tokens).await?;
        self.tx.commit().await.map_err(StoreError::query("commit"))
    }
}
