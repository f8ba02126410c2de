//! `[ghl]` settings: the API, the default and extra locations, the rate budget, OAuth.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// `[ghl]`: the GoHighLevel API v2.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GhlSettings {
    /// API base URL; point it at a GHL sandbox for local tries and tests (`formbridge
    /// sandbox-ghl`, in builds with the default `sandbox` feature; tests use the `ghl-sandbox`
    /// crate).
    pub base_url: url::Url,
    /// The GHL web app, for links to a contact shown to people (the JivoChat agent view):
    /// `https://app.gohighlevel.com`, or an agency's white-label app domain.
    pub app_url: url::Url,
    /// `Version` header sent on every call.
    pub api_version: String,
    /// Private Integration token or location access token of the default location.
    #[serde(default, serialize_with = "crate::masked::secret_opt")]
    pub token: Option<SecretString>,
    /// The default GHL location (sub-account) id.
    #[serde(default)]
    pub location_id: Option<String>,
    /// Timeout of one GHL request.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How much longer than `request_timeout` GHL may still carry out a request that got no
    /// answer (a timeout, a dropped connection, a gateway's 502/504). Until then the request
    /// stays counted against its location's rate budget, and a task, note, contact by name,
    /// opportunity or appointment it may have made is not looked for by its marker (a look-up
    /// before it lands finds nothing and makes a second one).
    #[serde(with = "humantime_serde")]
    pub late_write_window: Duration,
    /// Rate budget per location.
    pub rate_limit: RateLimitSettings,
    /// Extra locations by name, for sources routed with `sources.<name>.location`.
    #[serde(default)]
    pub locations: BTreeMap<String, LocationSettings>,
    /// OAuth (Marketplace app) credentials; when set, tokens come from the store and are
    /// refreshed instead of using `token`.
    #[serde(default)]
    pub oauth: Option<OAuthSettings>,
}

/// `[ghl.rate_limit]`: GHL's documented budget per location.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Requests allowed per window (GHL: 100).
    pub burst: u32,
    /// Length of the burst window (GHL: 10s).
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Requests allowed per day (GHL: 200000).
    pub daily: u32,
}

/// `[ghl.locations.<name>]`: one more GHL sub-account.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LocationSettings {
    /// The GHL location id.
    pub location_id: String,
    /// Its Private Integration or location access token.
    #[serde(serialize_with = "crate::masked::secret")]
    pub token: SecretString,
}

/// `[ghl.oauth]`: OAuth (Marketplace app) credentials, used instead of `ghl.token` when set.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSettings {
    /// The Marketplace app's client id.
    pub client_id: String,
    /// The Marketplace app's client secret.
    #[serde(serialize_with = "crate::masked::secret")]
    pub client_secret: SecretString,
    /// `user_type` sent on refresh: `Location` (sub-account; what `/contacts/*` needs) or `Company`.
    #[serde(default = "default_user_type")]
    pub user_type: String,
    /// Refresh this long before the access token expires.
    #[serde(default = "default_refresh_margin", with = "humantime_serde")]
    pub refresh_margin: Duration,
    /// Token endpoint; defaults to `{ghl.base_url}/oauth/token`.
    #[serde(default)]
    pub token_url: Option<url::Url>,
    /// Refresh token used once, when the token store holds nothing for the location yet.
    #[serde(default, serialize_with = "crate::masked::secret_opt")]
    pub bootstrap_refresh_token: Option<SecretString>,
}

fn default_user_type() -> String {
    "Location".to_owned()
}
fn default_refresh_margin() -> Duration {
    Duration::from_secs(300)
}
impl GhlSettings {
    /// How long after it was sent a request that got no answer may still be carried out by
    /// GHL: `request_timeout` + `late_write_window`.
    pub fn in_doubt_for(&self) -> Duration {
        self.request_timeout.saturating_add(self.late_write_window)
    }
}

impl OAuthSettings {
    /// Settings with the defaults for everything but the client credentials.
    pub fn new(client_id: impl Into<String>, client_secret: SecretString) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret,
            user_type: default_user_type(),
            refresh_margin: default_refresh_margin(),
            token_url: None,
            bootstrap_refresh_token: None,
        }
    }
}
