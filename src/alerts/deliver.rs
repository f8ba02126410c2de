//! Sending one alert message: a JSON POST to the webhook that Slack, Microsoft Teams and Discord
//! all read, a few tries at most, failures logged and counted.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::group::Message;

/// Discord refuses `content` longer than this.
const DISCORD_MAX_CHARS: usize = 2000;
/// Pause before the second try; doubled for each later one.
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Posts messages to the configured webhook.
pub struct Poster {
    client: reqwest::Client,
    url: SecretString,
    max_attempts: u32,
}

impl Poster {
    pub fn new(client: reqwest::Client, url: SecretString, max_attempts: u32) -> Self {
        Self {
            client,
            url,
            max_attempts,
        }
    }

    /// Sends `message`, trying up to `max_attempts` times; gives up with a logged, counted error.
    pub async fn send(&self, message: &Message) {
        let kind = message.topic.kind();
        let body = payload(&message.text);
        let mut delay = FIRST_RETRY_DELAY;
        for attempt in 1..=self.max_attempts {
            match self.post(&body).await {
                Ok(()) => {
                    metrics::counter!(crate::metrics::ALERTS_SENT, "kind" => kind).increment(1);
                    tracing::info!(kind, "alert sent");
                    return;
                }
                Err(error) if attempt == self.max_attempts => {
                    metrics::counter!(crate::metrics::ALERTS_FAILED, "kind" => kind).increment(1);
                    tracing::warn!(kind, attempts = attempt, %error, "alert not sent; giving up on this message");
                    return;
                }
                Err(error) => {
                    tracing::debug!(kind, attempt, %error, "alert not sent; trying again");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
    }

    async fn post(&self, body: &serde_json::Value) -> Result<(), String> {
        let response = self
            .client
            .post(self.url.expose_secret())
            .json(body)
            .send()
            .await
            // Without the URL: it is a secret.
            .map_err(|e| e.without_url().to_string())?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the webhook answered {status}"))
        }
    }
}

/// `text` for Slack and Teams, `content` for Discord.
fn payload(text: &str) -> serde_json::Value {
    let content: String = if text.chars().count() > DISCORD_MAX_CHARS {
        let mut cut: String = text.chars().take(DISCORD_MAX_CHARS - 1).collect();
        cut.push('…');
        cut
    } else {
        text.to_owned()
    };
    json!({ "text": text, "content": content })
}
