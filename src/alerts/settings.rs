//! `[alerts]` settings: where alert messages go, how they are grouped and rate-limited, and the
//! thresholds that raise them; checked at start, naming the key.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Why `[alerts]` was refused; names the key.
#[derive(Debug, thiserror::Error)]
#[error("alerts.{key}: {message}")]
pub struct AlertConfigError {
    pub key: &'static str,
    pub message: String,
}

/// `[alerts]`: messages to a chat webhook (Slack, Microsoft Teams, Discord) when events are
/// dead-lettered, a GHL location is blocked or the queue falls behind. Off without `webhook_url`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    /// Incoming-webhook URL the messages are POSTed to (a secret: it carries its own token).
    #[serde(default, serialize_with = "crate::masked::secret_opt")]
    pub webhook_url: Option<SecretString>,
    /// Alerts of one kind arriving within this window after the first are sent as one message
    /// with a count.
    #[serde(with = "humantime_serde")]
    pub group_window: Duration,
    /// At most one message per kind (and per location) this often; what arrives meanwhile is
    /// counted into the next one.
    #[serde(with = "humantime_serde")]
    pub min_interval: Duration,
    /// Alert when an event due for dispatch has waited longer than this (not a follow-up
    /// waiting for its lead, not a retry in backoff).
    #[serde(with = "humantime_serde")]
    pub max_queue_age: Duration,
    /// How often the queue's oldest event is checked.
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
    /// A location paused by GHL's rate budget (daily quota spent, long 429) alerts when the
    /// pause is at least this long.
    #[serde(with = "humantime_serde")]
    pub min_location_pause: Duration,
    /// Timeout of one POST to the webhook.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Tries per message before it is dropped (logged and counted).
    pub max_attempts: u32,
    /// Alerts waiting to be grouped and sent; more are dropped (counted), never slowing dispatch.
    pub queue_capacity: usize,
}

impl AlertSettings {
    /// Checks the URL and that every duration and count is positive.
    pub fn validate(&self) -> Result<(), AlertConfigError> {
        let invalid = |key, message: &str| AlertConfigError {
            key,
            message: message.to_owned(),
        };
        if let Some(url) = &self.webhook_url {
            let parsed = url::Url::parse(url.expose_secret().trim());
            if !parsed.is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host()) {
                return Err(invalid(
                    "webhook_url",
                    "must be an http(s) URL such as https://hooks.slack.com/services/…",
                ));
            }
        }
        for (key, value) in [
            ("group_window", self.group_window),
            ("min_interval", self.min_interval),
            ("max_queue_age", self.max_queue_age),
            ("check_interval", self.check_interval),
            ("request_timeout", self.request_timeout),
        ] {
            if value.is_zero() {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        if self.max_attempts == 0 {
            return Err(invalid("max_attempts", "must be at least 1"));
        }
        if self.queue_capacity == 0 {
            return Err(invalid("queue_capacity", "must be at least 1"));
        }
        Ok(())
    }

    /// Whether alerts are on (a webhook URL is set).
    pub fn enabled(&self) -> bool {
        self.webhook_url
            .as_ref()
            .is_some_and(|u| !u.expose_secret().trim().is_empty())
    }
}
