//! Masking of secrets in what operators are shown: stored bodies, headers, URLs and errors in
//! the admin API and `formbridge events show|list`.
//!
//! Form tools echo the webhook URL they post to (Jotform's `webhookURL=…/hooks/jotform?token=…`),
//! so a stored body can hold a source's secret. [`Redactor::mask`] replaces every configured
//! secret (as written, form-encoded and JSON-escaped) and the value of every `token` / `secret`
//! query parameter (also `access_token`, `client_secret` …, plain or percent-encoded) with
//! [`MASK`]. Bodies that are not UTF-8 are shown as base64 and cannot be masked.

use std::sync::LazyLock;

use regex::Regex;
use secrecy::{ExposeSecret, SecretString};

use crate::settings::Settings;

pub use crate::masked::MASK;

/// `?token=…` / `&secret=…` (and names ending in them) in a URL as written.
static QUERY_SECRET: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r#"(?i)([?&][\w.-]*(?:token|secret)=)[^&#\s"'<>\\]+"#).ok());

/// The same inside a percent-encoded URL (`%3Ftoken%3D…`), up to an encoded `&` (`%26`).
static ENCODED_QUERY_SECRET: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)((?:%3F|%26)[\w.-]*(?:token|secret)%3D)(?:[^%&#\s"'<>\\]|%(?:[013-9a-f][0-9a-f]|2[0-57-9a-f]))+"#,
    )
    .ok()
});

/// Masks configured secrets and secret-looking query values in text shown to operators.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Each secret in every form it may be stored in, longest first.
    secrets: Vec<SecretString>,
}

impl Redactor {
    /// Masks every secret of `settings` ([`Settings::secrets`]).
    pub fn from_settings(settings: &Settings) -> Self {
        let secrets = settings.secrets();
        Self::new(secrets.into_iter().map(|(_, secret)| secret))
    }

    /// Masks the given secrets (empty ones are ignored).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a SecretString>) -> Self {
        let mut forms: Vec<String> = Vec::new();
        for secret in secrets {
            let raw = secret.expose_secret().trim();
            if raw.is_empty() {
                continue;
            }
            let form_encoded: String =
                url::form_urlencoded::byte_serialize(raw.as_bytes()).collect();
            let json_escaped = serde_json::to_string(raw)
                .ok()
                .and_then(|s| s.get(1..s.len() - 1).map(str::to_owned));
            forms.push(raw.to_owned());
            forms.push(form_encoded);
            forms.extend(json_escaped);
        }
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
        Self {
            secrets: forms.into_iter().map(SecretString::from).collect(),
        }
    }

    /// `text` with every secret and secret query value replaced by [`MASK`].
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            let secret = secret.expose_secret();
            if out.contains(secret) {
                out = out.replace(secret, MASK);
            }
        }
        for pattern in [&*QUERY_SECRET, &*ENCODED_QUERY_SECRET]
            .into_iter()
            .flatten()
        {
            if pattern.is_match(&out) {
                out = pattern
                    .replace_all(&out, format!("${{1}}{MASK}"))
                    .into_owned();
            }
        }
        out
    }

    /// Masks every string (and object key) inside `value`.
    pub fn mask_json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => *s = self.mask(s),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.mask_json(v)),
            serde_json::Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut v) in entries {
                    self.mask_json(&mut v);
                    map.insert(self.mask(&key), v);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn redactor(secrets: &[&str]) -> Redactor {
        let secrets: Vec<SecretString> = secrets.iter().map(|s| SecretString::from(*s)).collect();
        Redactor::new(&secrets)
    }

    #[test]
    fn configured_secrets_are_masked_in_every_encoding() {
        let r = redactor(&["s3cr3t/with+plus", ""]);
        assert_eq!(r.mask("a s3cr3t/with+plus b"), "a ******** b");
        assert_eq!(r.mask("x=s3cr3t%2Fwith%2Bplus"), "x=********");
        let r = redactor(&["quote\"d"]);
        assert_eq!(r.mask(r#"{"k":"quote\"d"}"#), r#"{"k":"********"}"#);
        assert_eq!(r.mask("nothing here"), "nothing here");
    }

    #[test]
    fn token_and_secret_query_values_are_masked_plain_or_percent_encoded() {
        let r = Redactor::default();
        assert_eq!(
            r.mask("webhookURL=https://x.example/hooks/jotform?token=abc123&x=1"),
            "webhookURL=https://x.example/hooks/jotform?token=********&x=1"
        );
        assert_eq!(
            r.mask("u=https://x/?a=1&Secret=p%40ss&access_token=t"),
            "u=https://x/?a=1&Secret=********&access_token=********"
        );
        assert_eq!(
            r.mask("webhookURL=https%3A%2F%2Fx%2Fhooks%2Fjotform%3Ftoken%3Dab%2Fc%26x%3D1&y=2"),
            "webhookURL=https%3A%2F%2Fx%2Fhooks%2Fjotform%3Ftoken%3D********%26x%3D1&y=2"
        );
        assert_eq!(r.mask("a tokenless=1 text"), "a tokenless=1 text");
    }

    #[test]
    fn json_strings_and_keys_are_masked() {
        let r = redactor(&["k3y-value"]);
        let mut v = serde_json::json!({"a": ["k3y-value", 1], "k3y-value": {"u": "/h?token=z"}});
        r.mask_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a": ["********", 1], "********": {"u": "/h?token=********"}})
        );
    }
}
