//! GHL OAuth tokens kept in SQLite, so a rotated refresh token survives restarts.

use sqlx::Sqlite;

use super::backend::Backend;
use super::sqlite_writer::Durability;
use super::types::StoredTokens;
use super::{SqliteStore, StoreError};

impl SqliteStore {
    pub(super) async fn load_tokens(
        &self,
        location_id: &str,
    ) -> Result<Option<StoredTokens>, StoreError> {
        Sqlite::load_tokens(self.pool(), self.token_seal(), location_id).await
    }

    pub(super) async fn save_tokens(
        &self,
        location_id: &str,
        tokens: &StoredTokens,
    ) -> Result<(), StoreError> {
        let (location_id, tokens) = (location_id.to_owned(), tokens.clone());
        let seal = std::sync::Arc::clone(self.token_seal());
        // The rotated refresh token is the only one GHL still accepts: fsync it.
        self.writer()
            .write(Durability::Fsync, move |conn| {
                Box::pin(
                    async move { Sqlite::save_tokens(conn, &seal, &location_id, &tokens).await },
                )
            })
            .await
    }
}
