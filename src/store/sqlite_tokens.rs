//! GHL OAuth tokens kept in SQLite, so a rotated refresh token survives restarts.

use secrecy::{ExposeSecret, SecretString};

use super::sqlite_writer::Durability;
use super::types::{from_millis, to_millis, StoredTokens};
use super::{SqliteStore, StoreError};

impl SqliteStore {
    pub(super) async fn load_tokens(
        &self,
        location_id: &str,
    ) -> Result<Option<StoredTokens>, StoreError> {
        let row: Option<(String, String, i64)> = sqlx::query_as(
            "SELECT access_token, refresh_token, expires_at FROM oauth_tokens WHERE location_id = ?1",
        )
        .bind(location_id)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::query("load_oauth_tokens"))?;
        Ok(row.map(|(access, refresh, expires_at)| StoredTokens {
            access_token: SecretString::from(access),
            refresh_token: SecretString::from(refresh),
            expires_at: from_millis(expires_at),
        }))
    }

    pub(super) async fn save_tokens(
        &self,
        location_id: &str,
        tokens: &StoredTokens,
    ) -> Result<(), StoreError> {
        let (location_id, tokens) = (location_id.to_owned(), tokens.clone());
        // The rotated refresh token is the only one GHL still accepts: fsync it.
        self.writer()
            .write(Durability::Fsync, move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO oauth_tokens (location_id, access_token, refresh_token, expires_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (location_id) DO UPDATE SET access_token = excluded.access_token,
                             refresh_token = excluded.refresh_token, expires_at = excluded.expires_at,
                             updated_at = excluded.updated_at",
                    )
                    .bind(&location_id)
                    .bind(tokens.access_token.expose_secret())
                    .bind(tokens.refresh_token.expose_secret())
                    .bind(to_millis(tokens.expires_at))
                    .bind(to_millis(time::OffsetDateTime::now_utc()))
                    .execute(&mut *conn)
                    .await
                    .map(drop)
                    .map_err(StoreError::query("save_oauth_tokens"))
                })
            })
            .await
    }
}
