//! The GHL client's OAuth [`TokenStore`] on top of the event store, so a rotated refresh token
//! is kept where the events are (and `store` needs to know nothing of GHL).

use std::sync::Arc;

use async_trait::async_trait;

use crate::ghl::{OAuthTokens, TokenStore, TokenStoreError};
use crate::store::{LocationId, Store, StoredTokens};

/// Keeps each location's OAuth tokens in the event store.
pub struct StoreTokens(pub Arc<dyn Store>);

#[async_trait]
impl TokenStore for StoreTokens {
    async fn load(&self, location_id: &str) -> Result<Option<OAuthTokens>, TokenStoreError> {
        let stored = self
            .0
            .load_oauth_tokens(&LocationId::from(location_id))
            .await
            .map_err(TokenStoreError::from_source)?;
        Ok(stored.map(|t| OAuthTokens {
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            expires_at: t.expires_at,
            scope: None,
            user_type: None,
        }))
    }

    async fn save(&self, location_id: &str, tokens: &OAuthTokens) -> Result<(), TokenStoreError> {
        let stored = StoredTokens {
            access_token: tokens.access_token.clone(),
            refresh_token: tokens.refresh_token.clone(),
            expires_at: tokens.expires_at,
        };
        self.0
            .save_oauth_tokens(&LocationId::from(location_id), &stored)
            .await
            .map_err(TokenStoreError::from_source)
    }
}
