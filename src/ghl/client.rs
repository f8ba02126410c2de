//! The GHL API v2 HTTP client: one pooled `reqwest::Client`, typed calls for the Contacts
//! surface, error classification, rate-limit headers and metrics. It never retries and never
//! sleeps; the dispatcher owns retries and the rate budget. The typed endpoint methods live in
//! [`super::endpoints`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::GhlError;
use super::http::{describe_reqwest_error, USER_AGENT};
use super::oauth::{Credentials, OAuthCredentials, StaticTokens, TokenStore};
use super::rate_limit::RateLimitInfo;

/// A successful answer: the decoded body plus what the response headers said.
#[derive(Debug, Clone)]
pub struct GhlResponse<T> {
    /// The decoded body.
    pub body: T,
    /// The `x-ratelimit-*` headers of the response.
    pub limits: RateLimitInfo,
    /// The HTTP status (any 2xx is accepted; the spec says 201 for creates).
    pub status: u16,
    /// GHL's `traceId`.
    pub trace_id: Option<String>,
}

/// Where and how the client talks to GHL.
#[derive(Debug, Clone)]
pub struct GhlClientConfig {
    /// API base URL (`https://services.leadconnectorhq.com` or a sandbox).
    pub base_url: url::Url,
    /// `Version` header value (`2021-07-28`).
    pub api_version: String,
    /// Timeout of one request, connection included.
    pub request_timeout: Duration,
}

impl GhlClientConfig {
    /// The config in `[ghl]`.
    pub fn from_settings(settings: &super::settings::GhlSettings) -> Self {
        Self {
            base_url: settings.base_url.clone(),
            api_version: settings.api_version.clone(),
            request_timeout: settings.request_timeout,
        }
    }
}

/// The GHL client. Cheap to clone; every clone shares one connection pool and one credential
/// source. Each call names the location whose token it uses.
#[derive(Clone)]
pub struct GhlClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: GhlClientConfig,
    credentials: Arc<dyn Credentials>,
}

impl std::fmt::Debug for GhlClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GhlClient")
            .field("base_url", &self.inner.config.base_url.as_str())
            .field("api_version", &self.inner.config.api_version)
            .finish_non_exhaustive()
    }
}

/// A request before its token is attached.
pub(super) struct Prepared {
    method: Method,
    endpoint: &'static str,
    url: url::Url,
    body: Option<Vec<u8>>,
    /// A `Version` header other than `ghl.api_version` (the Calendars API's `2021-04-15`).
    version: Option<&'static str>,
}

impl Prepared {
    /// Sends `version` as the `Version` header instead of `ghl.api_version`.
    pub(super) fn with_version(mut self, version: &'static str) -> Self {
        self.version = Some(version);
        self
    }
}

/// A raw answer.
struct Raw {
    status: u16,
    headers: HeaderMap,
    body: bytes::Bytes,
}

impl GhlClient {
    /// A client using `credentials` for the bearer tokens.
    pub fn new(
        config: GhlClientConfig,
        credentials: Arc<dyn Credentials>,
    ) -> Result<Self, GhlError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let version = HeaderValue::from_str(&config.api_version)
            .map_err(|_| GhlError::config("ghl.api_version is not a valid header value"))?;
        headers.insert("Version", version);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(USER_AGENT)
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .build()
            .map_err(|e| GhlError::config(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                config,
                credentials,
            }),
        })
    }

    /// A client from `[ghl]`: OAuth (tokens in `token_store`) when `ghl.oauth` is set, else the
    /// static tokens of `[ghl]` and `[ghl.locations.*]`.
    pub fn from_settings(
        settings: &super::settings::GhlSettings,
        token_store: Arc<dyn TokenStore>,
    ) -> Result<Self, GhlError> {
        let config = GhlClientConfig::from_settings(settings);
        let credentials: Arc<dyn Credentials> = match &settings.oauth {
            Some(oauth) => Arc::new(OAuthCredentials::new(
                oauth.clone(),
                &settings.base_url,
                &settings.api_version,
                settings.request_timeout,
                token_store,
            )?),
            None => Arc::new(StaticTokens::from_settings(settings)),
        };
        Self::new(config, credentials)
    }

    /// A client with one static token for one location.
    pub fn with_static_token(
        config: GhlClientConfig,
        location_id: &str,
        token: SecretString,
    ) -> Result<Self, GhlError> {
        Self::new(config, Arc::new(StaticTokens::single(location_id, token)))
    }

    /// Whether the location's token is being fetched or refreshed right now (OAuth only).
    pub fn token_refreshing(&self, location_id: &str) -> bool {
        self.inner.credentials.refreshing(location_id)
    }
}

impl GhlClient {
    // ------------------------------------------------------------------------------------------
    // Plumbing
    // ------------------------------------------------------------------------------------------

    fn url(&self, segments: &[&str]) -> Result<url::Url, GhlError> {
        let mut url = self.inner.config.base_url.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|_| GhlError::config("ghl.base_url cannot carry a path"))?;
            path.pop_if_empty();
            // Each segment is percent-encoded, so an id can never change the route.
            path.extend(segments);
        }
        Ok(url)
    }

    pub(super) fn prepare(
        &self,
        method: Method,
        endpoint: &'static str,
        segments: &[&str],
    ) -> Result<Prepared, GhlError> {
        self.prepare_json::<()>(method, endpoint, segments, None, None)
    }

    pub(super) fn prepare_json<B: Serialize>(
        &self,
        method: Method,
        endpoint: &'static str,
        segments: &[&str],
        query: Option<String>,
        body: Option<&B>,
    ) -> Result<Prepared, GhlError> {
        let mut url = self.url(segments)?;
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            url.set_query(Some(&q));
        }
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| GhlError::encode(format!("request body: {e}")))?;
        Ok(Prepared {
            method,
            endpoint,
            url,
            body,
            version: None,
        })
    }

    pub(super) async fn execute<T: DeserializeOwned>(
        &self,
        location_id: &str,
        prepared: Prepared,
    ) -> Result<GhlResponse<T>, GhlError> {
        let credentials = &self.inner.credentials;
        let token = credentials.access_token(location_id).await?;
        let mut raw = self.send_once(location_id, &prepared, &token).await?;
        if raw.status == 401 {
            // One forced refresh (OAuth) and one more attempt; static tokens return None.
            if let Some(fresh) = credentials.after_unauthorized(location_id, &token).await? {
                raw = self.send_once(location_id, &prepared, &fresh).await?;
            }
        }
        finish(raw)
    }

    async fn send_once(
        &self,
        location_id: &str,
        p: &Prepared,
        token: &SecretString,
    ) -> Result<Raw, GhlError> {
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| GhlError::config("the GHL token is not a valid header value"))?;
        auth.set_sensitive(true);
        let mut request = self
            .inner
            .http
            .request(p.method.clone(), p.url.clone())
            .header(AUTHORIZATION, auth);
        if let Some(version) = p.version {
            request = request.header("Version", version);
        }
        if let Some(body) = &p.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let started = Instant::now();
        let outcome = read_raw(request).await;
        let took = started.elapsed();
        note_call(p.endpoint, &outcome, took);
        let elapsed = took.as_secs_f64();
        metrics::histogram!(crate::metrics::GHL_REQUEST_SECONDS, "endpoint" => p.endpoint)
            .record(elapsed);
        match outcome {
            Ok(raw) => {
                metrics::counter!(
                    crate::metrics::GHL_REQUESTS,
                    "endpoint" => p.endpoint,
                    "status" => raw.status.to_string()
                )
                .increment(1);
                let limits = RateLimitInfo::from_headers(&raw.headers);
                if let Some(remaining) = limits.remaining {
                    metrics::gauge!(crate::metrics::GHL_RATE_REMAINING, "location" => location_id.to_owned())
                        .set(remaining as f64);
                }
                tracing::debug!(
                    endpoint = p.endpoint,
                    status = raw.status,
                    location_id,
                    rate_remaining = limits.remaining,
                    elapsed_ms = (elapsed * 1000.0) as u64,
                    "GHL call"
                );
                Ok(raw)
            }
            Err(e) => {
                let label = if e.is_timeout() { "timeout" } else { "error" };
                metrics::counter!(
                    crate::metrics::GHL_REQUESTS,
                    "endpoint" => p.endpoint,
                    "status" => label
                )
                .increment(1);
                let message = describe_reqwest_error(&e);
                tracing::debug!(endpoint = p.endpoint, location_id, error = %message, "GHL call failed");
                Err(GhlError::Transport {
                    status: e.status().map(|s| s.as_u16()),
                    message,
                    limits: Box::default(),
                })
            }
        }
    }
}

fn finish<T: DeserializeOwned>(raw: Raw) -> Result<GhlResponse<T>, GhlError> {
    if !(200..300).contains(&raw.status) {
        return Err(GhlError::from_response(raw.status, &raw.headers, &raw.body));
    }
    let limits = RateLimitInfo::from_headers(&raw.headers);
    let decode_error = |message: String| GhlError::Decode {
        status: raw.status,
        message,
        limits: Box::new(limits.clone()),
    };
    let value: serde_json::Value = if raw.body.is_empty() {
        serde_json::Value::Object(serde_json::Map::new())
    } else {
        serde_json::from_slice(&raw.body).map_err(|e| decode_error(e.to_string()))?
    };
    let trace_id = value
        .get("traceId")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let body = serde_json::from_value(value).map_err(|e| decode_error(e.to_string()))?;
    Ok(GhlResponse {
        body,
        limits,
        status: raw.status,
        trace_id,
    })
}

pub(super) fn encode_query<Q: Serialize>(query: &Q) -> Result<String, GhlError> {
    // serde_urlencoded percent-encodes `+` and `@` (needed for phone and email lookups).
    serde_urlencoded::to_string(query).map_err(|e| GhlError::encode(format!("query: {e}")))
}

impl GhlClient {
    // ------------------------------------------------------------------------------------------
    // Streamed request bodies (file uploads, `super::upload`)
    // ------------------------------------------------------------------------------------------

    /// A request to `segments?query` with the location's token, for a body that is streamed
    /// and so cannot be sent twice: no second try after a 401 (the dispatcher's retry
    /// refreshes the token and streams again). `timeout` replaces `ghl.request_timeout`.
    pub(super) async fn streamed_request(
        &self,
        location_id: &str,
        method: Method,
        segments: &[&str],
        query: String,
        timeout: Duration,
    ) -> Result<reqwest::RequestBuilder, GhlError> {
        let mut url = self.url(segments)?;
        url.set_query(Some(&query));
        let token = self.inner.credentials.access_token(location_id).await?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| GhlError::config("the GHL token is not a valid header value"))?;
        auth.set_sensitive(true);
        Ok(self
            .inner
            .http
            .request(method, url)
            .header(AUTHORIZATION, auth)
            .timeout(timeout))
    }

    /// Sends a [`Self::streamed_request`] and reads GHL's answer as every other call's.
    pub(super) async fn send_streamed<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<GhlResponse<T>, GhlError> {
        let started = Instant::now();
        let outcome = read_raw(request).await;
        note_call(endpoint, &outcome, started.elapsed());
        match outcome {
            Ok(raw) => {
                metrics::counter!(
                    crate::metrics::GHL_REQUESTS,
                    "endpoint" => endpoint,
                    "status" => raw.status.to_string()
                )
                .increment(1);
                finish(raw)
            }
            Err(e) => {
                metrics::counter!(
                    crate::metrics::GHL_REQUESTS,
                    "endpoint" => endpoint,
                    "status" => "error"
                )
                .increment(1);
                Err(GhlError::Transport {
                    status: e.status().map(|s| s.as_u16()),
                    message: describe_reqwest_error(&e),
                    limits: Box::default(),
                })
            }
        }
    }
}

/// Notes a request in the dispatch's request log ([`super::call_log`]).
fn note_call(endpoint: &'static str, outcome: &Result<Raw, reqwest::Error>, took: Duration) {
    let outcome = match outcome {
        Ok(raw) => super::call_log::CallOutcome::Status(raw.status),
        Err(e) => super::call_log::failure(e),
    };
    super::call_log::note(endpoint, outcome, took);
}

/// Sends `request` and reads GHL's whole answer: status, headers and body.
async fn read_raw(request: reqwest::RequestBuilder) -> Result<Raw, reqwest::Error> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await?;
    Ok(Raw {
        status,
        headers,
        body,
    })
}
