//! What every admin handler shares ([`super::admin`], [`super::admin_cockpit`],
//! [`super::admin_overview`]): the [`AdminState`] and the parsing of query parameters and
//! store failures into API errors.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::Notify;

use super::admin_backoff::AdminBackoff;
use super::admin_playground::PlaygroundApi;
use super::errors::{ApiError, RequestId};
use crate::dispatch::Dispatcher;
use crate::domain::SourceName;
use crate::redact::Redactor;
use crate::store::{AdminReads, EventStatus, LeadIndex, OverviewReads, Queue, StoreError};

/// Largest page of `GET /admin/events`.
pub const MAX_PAGE: u32 = 500;

/// What the overview reads ([`super::admin_overview`]): the store's counts and, where dispatch
/// runs in this process, its per-location state.
#[derive(Clone)]
pub struct OverviewSources {
    pub store: Arc<dyn OverviewReads>,
    pub dispatch: Option<Arc<Dispatcher>>,
}

/// What the admin handlers need: the store's reads and its queue (for replays), the token digest, the dispatcher's wake-up and the
/// masking of secrets in what is shown.
pub struct AdminState {
    pub(super) store: Arc<dyn AdminReads>,
    /// Replays go to the queue.
    pub(super) queue: Arc<dyn Queue>,
    /// SHA-256 of the configured token; `None` disables the API.
    pub(super) token_digest: Option<[u8; 32]>,
    /// Notified after a replay so the dispatcher looks for work at once.
    pub(super) wake: Option<Arc<Notify>>,
    pub(super) redactor: Redactor,
    /// Lockouts after repeated wrong tokens, per client address.
    pub(super) backoff: AdminBackoff,
    /// "Find a lead" and cancel ([`super::admin_cockpit`]); those answer 404 without it.
    lead_index: Option<Arc<dyn LeadIndex>>,
    /// The sources' default countries, for a phone typed without `+country` in a search.
    countries: Vec<String>,
    /// The overview's reads ([`super::admin_overview`]); it answers 404 without them.
    overview: Option<OverviewSources>,
    /// The mapping playground's routes ([`super::admin_playground`]), when given.
    playground: Option<Arc<PlaygroundApi>>,
}

impl AdminState {
    /// Admin state over the store's reads and queue. An unset (or blank) `token` disables the
    /// API.
    pub fn new(
        store: Arc<dyn AdminReads>,
        queue: Arc<dyn Queue>,
        token: Option<&SecretString>,
        wake: Option<Arc<Notify>>,
        redactor: Redactor,
    ) -> Self {
        let token_digest = token
            .map(|t| t.expose_secret().trim())
            .filter(|t| !t.is_empty())
            .map(digest);
        Self {
            store,
            queue,
            token_digest,
            wake,
            redactor,
            backoff: AdminBackoff::default(),
            lead_index: None,
            countries: vec!["US".to_owned()],
            overview: None,
            playground: None,
        }
    }

    /// Serves the mapping playground's routes too.
    pub fn with_playground(mut self, playground: PlaygroundApi) -> Self {
        self.playground = Some(Arc::new(playground));
        self
    }

    pub(super) fn playground(&self) -> Option<&Arc<PlaygroundApi>> {
        self.playground.as_ref()
    }

    /// With "find a lead" and cancel over `index`; a phone typed without `+country` is read
    /// as a number of each of `countries` (the sources' `mapping.default_country`; US if none).
    pub fn with_lead_index(mut self, index: Arc<dyn LeadIndex>, countries: Vec<String>) -> Self {
        self.lead_index = Some(index);
        if !countries.is_empty() {
            self.countries = countries;
        }
        self
    }

    /// With the overview over `sources`.
    pub fn with_overview(mut self, sources: OverviewSources) -> Self {
        self.overview = Some(sources);
        self
    }

    pub(super) fn overview_sources(&self) -> Option<&OverviewSources> {
        self.overview.as_ref()
    }

    pub(super) fn reads(&self) -> &Arc<dyn AdminReads> {
        &self.store
    }

    pub(super) fn lead_index(&self) -> Option<&Arc<dyn LeadIndex>> {
        self.lead_index.as_ref()
    }

    pub(super) fn countries(&self) -> &[String] {
        &self.countries
    }

    pub(super) fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    pub(super) fn wake_dispatcher(&self) {
        if let Some(wake) = &self.wake {
            wake.notify_one();
        }
    }
}

/// The SHA-256 digest tokens are compared by.
pub(super) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Logs a store failure with the request id and answers a 500 that shows only that id.
pub(super) fn store_failed(e: &StoreError, request_id: &RequestId) -> ApiError {
    tracing::error!(%request_id, error = %e, "admin store query failed");
    ApiError::internal("store_error", request_id)
}

/// Parses a time given as RFC 3339 (`2025-01-31T09:00:00Z`) or unix seconds.
pub fn parse_time(raw: &str) -> Result<OffsetDateTime, String> {
    let raw = raw.trim();
    if let Ok(secs) = raw.parse::<i64>() {
        return OffsetDateTime::from_unix_timestamp(secs)
            .map_err(|e| format!("`{raw}` is out of range: {e}"));
    }
    OffsetDateTime::parse(raw, &Rfc3339).map_err(|e| {
        format!("`{raw}` is not an RFC 3339 time like 2025-01-31T09:00:00Z (or unix seconds): {e}")
    })
}

pub(super) fn parse_status(raw: &str) -> Result<EventStatus, ApiError> {
    raw.parse::<EventStatus>()
        .map_err(|e| ApiError::bad_request(format!("status: {e}")))
}

pub(super) fn parse_source(raw: &str) -> Result<String, ApiError> {
    SourceName::parse(raw)
        .map(|s| s.as_str().to_owned())
        .map_err(|_| {
            ApiError::bad_request(format!(
                "source: `{raw}` is not a source name (lower-case letters, digits, `-` and `_`)"
            ))
        })
}

pub(super) fn parse_time_param(name: &str, raw: &str) -> Result<OffsetDateTime, ApiError> {
    parse_time(raw).map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
}

pub(super) fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str(query.unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("the query string does not parse: {e}")))
}
