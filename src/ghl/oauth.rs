//! Credentials for GHL calls: static tokens, and OAuth tokens refreshed single-flight and
//! persisted through a [`TokenStore`] before use.
//!
//! Refresh rules (reference §1.2): access tokens live about a day; a refresh returns a **new**
//! refresh token and invalidates the old one, so the new pair is saved to the store *before* the
//! new access token is used. One refresh runs at a time per location (a `tokio::sync::Mutex` per
//! location, re-checked after acquiring), so many concurrent callers cause one token call. GHL is
//! quoted as granting a 30 s grace to concurrent refreshes with the same refresh token; we do not
//! rely on it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use time::OffsetDateTime;

use super::error::GhlError;
use super::rate_limit::RateLimitInfo;
use super::settings::OAuthSettings;

/// One location's OAuth token pair. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct OAuthTokens {
    /// Bearer token for API calls.
    pub access_token: SecretString,
    /// Single-use refresh token (rotated on every refresh).
    pub refresh_token: SecretString,
    /// When the access token stops working.
    pub expires_at: OffsetDateTime,
    /// Granted scopes, space-separated.
    pub scope: Option<String>,
    /// `Location` or `Company`.
    pub user_type: Option<String>,
}

/// A token store failure.
#[derive(Debug, thiserror::Error)]
#[error("token store: {message}")]
pub struct TokenStoreError {
    /// What failed.
    pub message: String,
    /// The underlying error.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl TokenStoreError {
    /// An error with a message only.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// Wraps an underlying error.
    pub fn from_source(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            message: source.to_string(),
            source: Some(Box::new(source)),
        }
    }
}

/// Durable storage of OAuth tokens per location (implemented on the SQL store by the app).
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// The stored tokens of a location, if any.
    async fn load(&self, location_id: &str) -> Result<Option<OAuthTokens>, TokenStoreError>;
    /// Replaces the stored tokens of a location; must be durable when it returns.
    async fn save(&self, location_id: &str, tokens: &OAuthTokens) -> Result<(), TokenStoreError>;

    /// Locks the location's tokens for one refresh against every other process that shares
    /// this store (replicas on one database), and reads them as they are now. The default,
    /// for a store one process uses, locks nothing more than that process's own single flight.
    async fn lock(&self, location_id: &str) -> Result<Box<dyn TokenLock + '_>, TokenStoreError> {
        let tokens = self.load(location_id).await?;
        Ok(Box::new(UnsharedLock {
            store: self,
            location_id: location_id.to_owned(),
            tokens,
        }))
    }
}

/// A location's tokens locked for one refresh; dropping it without saving releases the lock
/// and changes nothing.
#[async_trait]
pub trait TokenLock: Send {
    /// The tokens as stored when the lock was taken (another replica may have rotated them
    /// since this process last read them).
    fn tokens(&self) -> Option<&OAuthTokens>;
    /// Saves the rotated pair (durable when it returns), then releases the lock.
    async fn save(self: Box<Self>, tokens: &OAuthTokens) -> Result<(), TokenStoreError>;
}

/// [`TokenStore::lock`]'s default: a read, and a save through the store.
struct UnsharedLock<'a, S: ?Sized> {
    store: &'a S,
    location_id: String,
    tokens: Option<OAuthTokens>,
}

#[async_trait]
impl<S: TokenStore + ?Sized> TokenLock for UnsharedLock<'_, S> {
    fn tokens(&self) -> Option<&OAuthTokens> {
        self.tokens.as_ref()
    }

    async fn save(self: Box<Self>, tokens: &OAuthTokens) -> Result<(), TokenStoreError> {
        self.store.save(&self.location_id, tokens).await
    }
}

/// A [`TokenStore`] in memory, for tests and demos.
#[derive(Debug, Default)]
pub struct InMemoryTokenStore {
    tokens: std::sync::Mutex<HashMap<String, OAuthTokens>>,
    saves: std::sync::atomic::AtomicU64,
}

impl InMemoryTokenStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `tokens` for `location_id`.
    pub fn with(location_id: &str, tokens: OAuthTokens) -> Self {
        let store = Self::default();
        if let Ok(mut map) = store.tokens.lock() {
            map.insert(location_id.to_owned(), tokens);
        }
        store
    }

    /// The current tokens of a location.
    pub fn get(&self, location_id: &str) -> Option<OAuthTokens> {
        self.tokens
            .lock()
            .ok()
            .and_then(|m| m.get(location_id).cloned())
    }

    /// How many times [`TokenStore::save`] was called.
    pub fn save_count(&self) -> u64 {
        self.saves.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl TokenStore for InMemoryTokenStore {
    async fn load(&self, location_id: &str) -> Result<Option<OAuthTokens>, TokenStoreError> {
        Ok(self.get(location_id))
    }

    async fn save(&self, location_id: &str, tokens: &OAuthTokens) -> Result<(), TokenStoreError> {
        let mut map = self
            .tokens
            .lock()
            .map_err(|_| TokenStoreError::new("in-memory token store poisoned"))?;
        map.insert(location_id.to_owned(), tokens.clone());
        self.saves.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

/// Where the client gets the bearer token for a location.
#[async_trait]
pub trait Credentials: Send + Sync {
    /// The access token to use now for `location_id`.
    async fn access_token(&self, location_id: &str) -> Result<SecretString, GhlError>;

    /// Called once when GHL answered 401 to `rejected`: returns a different token to retry with
    /// (after a forced refresh), or `None` when nothing better exists (static tokens).
    async fn after_unauthorized(
        &self,
        location_id: &str,
        rejected: &SecretString,
    ) -> Result<Option<SecretString>, GhlError>;

    /// Whether a token for `location_id` is being fetched or refreshed right now (the admin
    /// overview's "refreshing"); static tokens never are.
    fn refreshing(&self, _location_id: &str) -> bool {
        false
    }
}

/// Static tokens (Private Integration or location tokens) by location id.
#[derive(Debug, Default, Clone)]
pub struct StaticTokens {
    by_location: HashMap<String, SecretString>,
}

impl StaticTokens {
    /// No tokens yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// One location's token.
    pub fn single(location_id: impl Into<String>, token: SecretString) -> Self {
        Self::new().with(location_id, token)
    }

    /// Adds a location's token.
    pub fn with(mut self, location_id: impl Into<String>, token: SecretString) -> Self {
        self.by_location.insert(location_id.into(), token);
        self
    }

    /// Tokens from `[ghl]` (`token` + `location_id`) and `[ghl.locations.*]`.
    pub fn from_settings(settings: &super::settings::GhlSettings) -> Self {
        let mut tokens = Self::new();
        if let (Some(token), Some(location)) = (&settings.token, &settings.location_id) {
            tokens = tokens.with(location.clone(), token.clone());
        }
        for loc in settings.locations.values() {
            tokens = tokens.with(loc.location_id.clone(), loc.token.clone());
        }
        tokens
    }
}

#[async_trait]
impl Credentials for StaticTokens {
    async fn access_token(&self, location_id: &str) -> Result<SecretString, GhlError> {
        self.by_location.get(location_id).cloned().ok_or_else(|| {
            GhlError::config(format!(
                "no GHL token configured for location {location_id} (ghl.token with ghl.location_id, or [ghl.locations.*])"
            ))
        })
    }

    async fn after_unauthorized(
        &self,
        _location_id: &str,
        _rejected: &SecretString,
    ) -> Result<Option<SecretString>, GhlError> {
        Ok(None)
    }
}

/// The OAuth token pair as `/oauth/token` returns it with `Version: 2021-07-28` (snake case).
#[derive(Debug, Deserialize)]
struct TokenEndpointResponse {
    access_token: String,
    refresh_token: String,
    expires_in: u64,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default, rename = "userType")]
    user_type: Option<String>,
}

struct Cached {
    tokens: OAuthTokens,
    /// False when a refreshed pair could not be saved yet; it is saved before any use.
    persisted: bool,
}

/// OAuth credentials: loads tokens from a [`TokenStore`], refreshes them single-flight shortly
/// before expiry (or once after a 401), and persists each rotated pair before using it.
pub struct OAuthCredentials {
    settings: OAuthSettings,
    token_url: url::Url,
    api_version: String,
    store: Arc<dyn TokenStore>,
    http: reqwest::Client,
    slots: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Cached>>>>>,
}

impl std::fmt::Debug for OAuthCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthCredentials")
            .field("client_id", &self.settings.client_id)
            .field("token_url", &self.token_url.as_str())
            .finish_non_exhaustive()
    }
}

impl OAuthCredentials {
    /// OAuth credentials for the API at `base_url` (token endpoint `{base_url}/oauth/token`
    /// unless the settings name another), sending `api_version` as the `Version` header.
    pub fn new(
        settings: OAuthSettings,
        base_url: &url::Url,
        api_version: &str,
        timeout: Duration,
        store: Arc<dyn TokenStore>,
    ) -> Result<Self, GhlError> {
        let token_url = match &settings.token_url {
            Some(u) => u.clone(),
            None => base_url.join("/oauth/token").map_err(|e| {
                GhlError::config(format!("ghl.base_url cannot make the token URL: {e}"))
            })?,
        };
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(super::http::USER_AGENT)
            .build()
            .map_err(|e| GhlError::config(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            settings,
            token_url,
            api_version: api_version.to_owned(),
            store,
            http,
            slots: std::sync::Mutex::new(HashMap::new()),
        })
    }

    fn slot(&self, location_id: &str) -> Arc<tokio::sync::Mutex<Option<Cached>>> {
        let mut slots = match self.slots.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        slots.entry(location_id.to_owned()).or_default().clone()
    }

    /// The token to use; refreshes when it expires within the margin, or when `rejected` is
    /// still the current token (after a 401).
    async fn current(
        &self,
        location_id: &str,
        rejected: Option<&SecretString>,
    ) -> Result<SecretString, GhlError> {
        let slot = self.slot(location_id);
        // Holding the per-location lock across the refresh makes it single-flight; callers that
        // waited re-check the (by then fresh) token below and do not refresh again.
        let mut guard = slot.lock().await;
        if guard.is_none() {
            let loaded = self
                .store
                .load(location_id)
                .await
                .map_err(|e| GhlError::transport(e.to_string()))?;
            *guard = match loaded {
                Some(tokens) => Some(Cached {
                    tokens,
                    persisted: true,
                }),
                None => self
                    .settings
                    .bootstrap_refresh_token
                    .clone()
                    .map(|rt| Cached {
                        tokens: OAuthTokens {
                            access_token: SecretString::from(""),
                            refresh_token: rt,
                            expires_at: OffsetDateTime::UNIX_EPOCH,
                            scope: None,
                            user_type: None,
                        },
                        persisted: true,
                    }),
            };
        }
        let Some(cached) = guard.as_mut() else {
            return Err(GhlError::unauthorized(format!(
                "no OAuth tokens stored for location {location_id}; authorize the app first"
            )));
        };
        let margin =
            time::Duration::try_from(self.settings.refresh_margin).unwrap_or(time::Duration::ZERO);
        let usable = |tokens: &OAuthTokens| {
            tokens.expires_at - margin > OffsetDateTime::now_utc()
                && rejected.is_none_or(|r| r.expose_secret() != tokens.access_token.expose_secret())
        };
        if cached.persisted && !usable(&cached.tokens) {
            // One refresh at a time across every process sharing the store: the lock is held
            // until the rotated pair is saved, and the pair is read again under it.
            let lock = self
                .store
                .lock(location_id)
                .await
                .map_err(|e| GhlError::transport(e.to_string()))?;
            if let Some(latest) = lock.tokens() {
                if usable(latest) {
                    // Another replica refreshed while this one waited: use its pair.
                    cached.tokens = latest.clone();
                    return Ok(cached.tokens.access_token.clone());
                }
                // Its refresh token is the only one GHL still accepts.
                cached.tokens = latest.clone();
            }
            let fresh = self.refresh(&cached.tokens.refresh_token).await?;
            cached.tokens = fresh;
            cached.persisted = false;
            if lock.save(&cached.tokens).await.is_ok() {
                cached.persisted = true;
                tracing::info!(location_id, "GHL OAuth tokens refreshed and persisted");
            }
        }
        if !cached.persisted {
            self.store
                .save(location_id, &cached.tokens)
                .await
                .map_err(|e| GhlError::transport(format!("cannot persist rotated tokens: {e}")))?;
            cached.persisted = true;
            tracing::info!(location_id, "GHL OAuth tokens refreshed and persisted");
        }
        Ok(cached.tokens.access_token.clone())
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<OAuthTokens, GhlError> {
        let form = [
            ("client_id", self.settings.client_id.as_str()),
            ("client_secret", self.settings.client_secret.expose_secret()),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
            ("user_type", self.settings.user_type.as_str()),
        ];
        let sent = self
            .http
            .post(self.token_url.clone())
            .header("Version", &self.api_version)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                metrics::counter!(crate::metrics::GHL_OAUTH_REFRESH, "outcome" => "error")
                    .increment(1);
                return Err(GhlError::transport(format!(
                    "OAuth token endpoint unreachable: {}",
                    super::http::describe_reqwest_error(&e)
                )));
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| GhlError::transport(format!("OAuth token response cut off: {e}")))?;
        let outcome = if (200..300).contains(&status) {
            "ok"
        } else {
            "rejected"
        };
        metrics::counter!(crate::metrics::GHL_OAUTH_REFRESH, "outcome" => outcome).increment(1);
        if !(200..300).contains(&status) {
            let refused = GhlError::from_response(status, &headers, &body);
            // invalid_grant (400) and other client errors need a new authorization; a 429 or
            // a 5xx is an outage of the token endpoint and keeps its own class.
            return Err(match refused {
                GhlError::Rejected {
                    message, limits, ..
                }
                | GhlError::Validation {
                    message, limits, ..
                }
                | GhlError::NotFound {
                    message, limits, ..
                }
                | GhlError::Forbidden {
                    message, limits, ..
                } => GhlError::Unauthorized {
                    message: format!("OAuth refresh refused ({status}): {message}"),
                    limits,
                },
                other => other,
            });
        }
        let parsed: TokenEndpointResponse =
            serde_json::from_slice(&body).map_err(|e| GhlError::Decode {
                status,
                message: format!("OAuth token response: {e}"),
                limits: Box::new(RateLimitInfo::from_headers(&headers)),
            })?;
        let lifetime = time::Duration::seconds(i64::try_from(parsed.expires_in).unwrap_or(0));
        Ok(OAuthTokens {
            access_token: SecretString::from(parsed.access_token),
            refresh_token: SecretString::from(parsed.refresh_token),
            expires_at: OffsetDateTime::now_utc() + lifetime,
            scope: parsed.scope,
            user_type: parsed.user_type,
        })
    }
}

#[async_trait]
impl Credentials for OAuthCredentials {
    fn refreshing(&self, location_id: &str) -> bool {
        // The slot is held while its token is loaded or refreshed (single flight).
        let slots = match self.slots.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        slots
            .get(location_id)
            .is_some_and(|slot| slot.try_lock().is_err())
    }

    async fn access_token(&self, location_id: &str) -> Result<SecretString, GhlError> {
        self.current(location_id, None).await
    }

    async fn after_unauthorized(
        &self,
        location_id: &str,
        rejected: &SecretString,
    ) -> Result<Option<SecretString>, GhlError> {
        let token = self.current(location_id, Some(rejected)).await?;
        if token.expose_secret() == rejected.expose_secret() {
            return Ok(None);
        }
        Ok(Some(token))
    }
}
