//! The GoHighLevel API v2 client.
//!
//! # Why a thin client of our own (and not the `ghl-sdk` crate)
//! We use a dozen Contacts endpoints. The generated `ghl-sdk` brings the whole API surface, its
//! own retries and token refresh, and hides status codes and headers. formbridge needs the
//! opposite: retries and the rate budget belong to the durable dispatcher (a hidden
//! sleep-and-retry would stall a worker and double-spend GHL's 100 req / 10 s budget), every
//! `x-ratelimit-*` header must reach the per-location limiter and our metrics, errors must be
//! classified by what happened (config, encode, transport, 429, 401, 403, 404, 422, 5xx, other
//! 4xx with the duplicate contact's id, undecodable 2xx) with no decision attached, and
//! rotated OAuth refresh tokens must be persisted in *our* store before use. A ~1k-line client
//! over `reqwest` does all that with no extra dependency.
//!
//! # Layout
//! - [`call_log`]: the requests made for one event (endpoint, answer, latency), for its steps.
//! - [`client`]: [`GhlClient`]: connection pool, auth, error classification, metrics.
//! - [`endpoints`]: one typed method per endpoint on [`GhlClient`].
//! - [`calendars`]: the appointment operations of the Calendars API (`Version: 2021-04-15`).
//! - [`types`]: request and response bodies.
//! - [`opportunities`]: the Opportunities API's bodies and methods (pipelines, create, update,
//!   search).
//! - [`upload`]: `POST /forms/upload-custom-files`, a file streamed into a file custom field.
//! - [`error`]: [`GhlError`] and the classification of answers.
//! - [`http`]: the `User-Agent` and failure descriptions shared by every GHL call.
//! - [`rate_limit`]: [`RateLimitInfo`] from the `x-ratelimit-*` headers.
//! - [`oauth`]: [`Credentials`], static tokens, OAuth refresh and [`TokenStore`].
//! - [`settings`]: the `[ghl]` settings types.
//!
//! What spends the rate budget (each location's limiter, the replicas' shared slots) and the
//! OAuth token adapter over the store are in [`crate::ghl_access`], above both this client and
//! the store.
//!
//! The GHL sandbox (a faithful in-memory GHL over real HTTP, with fault injection) is not here:
//! it is the `ghl-sandbox` crate (`crates/ghl-sandbox/`), a dev-dependency of the tests and
//! benches and, behind the default `sandbox` feature, of the binary's `demo` and `sandbox-ghl`.

pub mod calendars;
pub mod call_log;
pub mod client;
pub mod endpoints;
pub mod error;
pub mod http;
pub mod oauth;
pub mod opportunities;
pub mod rate_limit;
pub mod settings;
pub mod types;
pub mod upload;

pub use client::{GhlClient, GhlClientConfig, GhlResponse};
pub use error::GhlError;
pub use oauth::{
    Credentials, InMemoryTokenStore, OAuthCredentials, OAuthTokens, StaticTokens, TokenStore,
    TokenStoreError,
};
pub use rate_limit::RateLimitInfo;
pub use settings::OAuthSettings;
