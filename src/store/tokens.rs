//! OAuth tokens locked for one refresh: the store-side half of the GHL client's single flight,
//! which backends shared by replicas make hold across processes.

use async_trait::async_trait;

use super::{StoreError, StoredTokens, TokenVault};

use crate::domain::LocationId;

/// A location's OAuth tokens locked for one refresh; dropping it without saving releases the
/// lock and changes nothing.
#[async_trait]
pub trait OAuthTokensLock: Send {
    /// The tokens as stored when the lock was taken.
    fn tokens(&self) -> Option<&StoredTokens>;
    /// Saves the rotated pair (durable when it returns), then releases the lock.
    async fn save(self: Box<Self>, tokens: &StoredTokens) -> Result<(), StoreError>;
}

/// The lock of a store only one process uses: a read, and a save through the store (the
/// process's own single flight is the only lock needed).
pub(super) struct UnsharedTokensLock<'a, S: ?Sized> {
    pub store: &'a S,
    pub location_id: LocationId,
    pub tokens: Option<StoredTokens>,
}

#[async_trait]
impl<S: TokenVault + ?Sized> OAuthTokensLock for UnsharedTokensLock<'_, S> {
    fn tokens(&self) -> Option<&StoredTokens> {
        self.tokens.as_ref()
    }

    async fn save(self: Box<Self>, tokens: &StoredTokens) -> Result<(), StoreError> {
        self.store
            .save_oauth_tokens(&self.location_id, tokens)
            .await
    }
}
