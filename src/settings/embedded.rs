//! The configuration built into the binary: `config/default.toml` (the base layer, so the
//! binary runs from any folder with environment variables only) and the public development
//! secrets of `config/local.toml`, which `FORMBRIDGE_ENV=production` refuses.

use std::collections::BTreeSet;

use secrecy::ExposeSecret;

use super::{Settings, SettingsError};

/// `config/default.toml` as it was when the binary was built: every key with its default.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// `config/local.toml` as committed: public development secrets.
const LOCAL_TOML: &str = include_str!("../../config/local.toml");

/// The `FORMBRIDGE_ENV` under which development secrets are refused.
pub const PRODUCTION: &str = "production";

/// Every string value of `config/local.toml` (its secrets and tokens).
fn development_values() -> BTreeSet<String> {
    let parsed = config::Config::builder()
        .add_source(config::File::from_str(LOCAL_TOML, config::FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize::<serde_json::Value>());
    let mut out = BTreeSet::new();
    let mut stack: Vec<serde_json::Value> = parsed.into_iter().collect();
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::String(s) if !s.trim().is_empty() => {
                out.insert(s);
            }
            serde_json::Value::Object(map) => stack.extend(map.into_iter().map(|(_, v)| v)),
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    out
}

/// Refuses a production configuration holding any value of the committed `config/local.toml`,
/// naming the key.
pub fn refuse_development_secrets(settings: &Settings) -> Result<(), SettingsError> {
    let public = development_values();
    for (key, secret) in settings.secrets() {
        if public.contains(secret.expose_secret().trim()) {
            return Err(SettingsError::invalid(
                key,
                "holds a public development secret from config/local.toml, refused with \
                 FORMBRIDGE_ENV=production; give a secret of your own (e.g. `openssl rand -hex 32`)",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_local_secrets_are_known() {
        let values = development_values();
        assert!(values.contains("local-jotform-secret"), "{values:?}");
        assert!(values.contains("local-admin-token"), "{values:?}");
    }
}
