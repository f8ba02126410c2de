//! The GHL client's OAuth [`TokenStore`] on top of the event store, so a rotated refresh token
//! is kept where the events are (and `store` needs to know nothing of GHL).

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::LocationId;
use crate::ghl::oauth::TokenLock;
use crate::ghl::settings::GhlSettings;
use crate::ghl::{GhlClient, GhlError, OAuthTokens, TokenStore, TokenStoreError};
use crate::store::{OAuthTokensLock, StoredTokens, TokenVault};

/// The GHL client of `[ghl]`, its OAuth tokens kept in `store`. Build it once per process and
/// share it: each client refreshes OAuth tokens on its own.
pub fn client(ghl: &GhlSettings, store: Arc<dyn TokenVault>) -> Result<GhlClient, GhlError> {
    GhlClient::from_settings(ghl, Arc::new(StoreTokens(store)))
}

/// Keeps each location's OAuth tokens in the event store.
pub struct StoreTokens(pub Arc<dyn TokenVault>);

#[async_trait]
impl TokenStore for StoreTokens {
    async fn load(&self, location_id: &str) -> Result<Option<OAuthTokens>, TokenStoreError> {
        let stored = self
            .0
            .load_oauth_tokens(&LocationId::from(location_id))
            .await
            .map_err(TokenStoreError::from_source)?;
        Ok(stored.map(from_stored))
    }

    async fn save(&self, location_id: &str, tokens: &OAuthTokens) -> Result<(), TokenStoreError> {
        self.0
            .save_oauth_tokens(&LocationId::from(location_id), &to_stored(tokens))
            .await
            .map_err(TokenStoreError::from_source)
    }

    async fn lock(&self, location_id: &str) -> Result<Box<dyn TokenLock + '_>, TokenStoreError> {
        let inner = self
            .0
            .lock_oauth_tokens(&LocationId::from(location_id))
            .await
            .map_err(TokenStoreError::from_source)?;
        let tokens = inner.tokens().cloned().map(from_stored);
        Ok(Box::new(StoreTokenLock { inner, tokens }))
    }
}

/// The store's token lock as the GHL client sees it.
struct StoreTokenLock<'a> {
    inner: Box<dyn OAuthTokensLock + 'a>,
    tokens: Option<OAuthTokens>,
}

#[async_trait]
impl TokenLock for StoreTokenLock<'_> {
    fn tokens(&self) -> Option<&OAuthTokens> {
        self.tokens.as_ref()
    }

    async fn save(self: Box<Self>, tokens: &OAuthTokens) -> Result<(), TokenStoreError> {
        self.inner
            .save(&to_stored(tokens))
            .await
            .map_err(TokenStoreError::from_source)
    }
}

fn from_stored(t: StoredTokens) -> OAuthTokens {
    OAuthTokens {
        access_token: t.access_token,
        refresh_token: t.refresh_token,
        expires_at: t.expires_at,
        scope: None,
        user_type: None,
    }
}

fn to_stored(tokens: &OAuthTokens) -> StoredTokens {
    StoredTokens {
        access_token: tokens.access_token.clone(),
        refresh_token: tokens.refresh_token.clone(),
        expires_at: tokens.expires_at,
    }
}
