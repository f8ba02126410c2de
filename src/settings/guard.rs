//! Closed by default: the refusals that keep public development secrets, placeholders, short
//! tokens and the ops endpoints away from a server other people can reach.
//!
//! - `FORMBRIDGE_ENV=production` ([`refuse_unsafe_production`], at every load): no value of the
//!   committed `config/local.toml`, no placeholder of `.env.example`, an admin token and URL
//!   tokens of at least [`MIN_TOKEN_CHARS`] characters, and `/metrics` and `/admin` off the
//!   public address unless `server.ops_addr` is set or `server.public_ops = true` says so, and
//!   no source with `auth = "none"` unless its `allow_unauthenticated = true` says so.
//! - No `FORMBRIDGE_ENV` at all ([`refuse_public_development_secrets`], before serving): the
//!   development secrets `config/local.toml` brings are accepted on a loopback address only.

use secrecy::ExposeSecret;

use super::embedded::development_values;
use super::{AuthMode, ConfigSource, Settings, SettingsError, ENV_SELECTOR};

/// The `FORMBRIDGE_ENV` under which every production refusal applies.
pub const PRODUCTION: &str = "production";

/// Shortest admin token and URL token (`auth = "token"`) accepted in production: 32 characters
/// (`openssl rand -hex 16` gives 32, `-hex 32` gives 64). A URL token travels in logs of
/// proxies and of the form tool's own settings; it must not be guessable.
pub const MIN_TOKEN_CHARS: usize = 32;

/// Words that mark a value as a placeholder still to be replaced, in any case: `.env.example`'s
/// `change-me` and `pit-change-me`, and the usual spellings of the same promise.
const PLACEHOLDER_WORDS: &[&str] = &[
    "change-me",
    "changeme",
    "change_me",
    "replace-me",
    "replaceme",
    "your-token",
    "your-secret",
    "<secret>",
    "<token>",
    "xxxxxxxx",
];

/// What to do about a refused secret, said the same way in every message.
const GIVE_YOUR_OWN: &str = "give a secret of your own, e.g. `openssl rand -hex 32`";

/// True when `value` is a placeholder: a word of [`PLACEHOLDER_WORDS`], or the `…` that marks a
/// value cut short in the examples (`https://hooks.slack.com/services/…`).
pub fn is_placeholder(value: &str) -> bool {
    let lower = value.trim().to_ascii_lowercase();
    lower.contains('…') || PLACEHOLDER_WORDS.iter().any(|word| lower.contains(word))
}

/// The production refusals; the message names the key and what to do.
pub fn refuse_unsafe_production(settings: &Settings) -> Result<(), SettingsError> {
    let public = development_values();
    for (key, secret) in settings.secrets() {
        let value = secret.expose_secret().trim();
        if public.contains(value) {
            return Err(SettingsError::invalid(
                key,
                format!(
                    "holds a public development secret from config/local.toml, refused with \
                     {ENV_SELECTOR}={PRODUCTION}; {GIVE_YOUR_OWN}"
                ),
            ));
        }
        if is_placeholder(value) {
            return Err(SettingsError::invalid(
                key,
                format!(
                    "is still a placeholder (as in .env.example), refused with \
                     {ENV_SELECTOR}={PRODUCTION}; {GIVE_YOUR_OWN}"
                ),
            ));
        }
    }
    refuse_placeholder_values(settings)?;
    refuse_short_tokens(settings)?;
    refuse_clear_oauth_tokens(settings)?;
    super::access::refuse_unauthenticated_sources(settings)?;
    refuse_public_ops(settings)
}

/// OAuth tokens give lasting access to a location: production keeps them sealed.
fn refuse_clear_oauth_tokens(settings: &Settings) -> Result<(), SettingsError> {
    if settings.ghl.oauth.is_some() && settings.store.token_key.is_none() {
        return Err(SettingsError::invalid(
            "store.token_key",
            format!(
                "is not set, so the GHL OAuth tokens would be stored in clear; with \
                 {ENV_SELECTOR}={PRODUCTION} and [ghl.oauth] set FORMBRIDGE__STORE__TOKEN_KEY \
                 (`openssl rand -hex 32`)"
            ),
        ));
    }
    Ok(())
}

/// Placeholders in the values that are not secrets but came from `.env.example` too: the GHL
/// location ids and the store URL's password (compose builds it from `POSTGRES_PASSWORD`).
fn refuse_placeholder_values(settings: &Settings) -> Result<(), SettingsError> {
    let mut values: Vec<(String, &str)> = Vec::new();
    if let Some(id) = &settings.ghl.location_id {
        values.push(("ghl.location_id".to_owned(), id));
    }
    for (name, location) in &settings.ghl.locations {
        values.push((
            format!("ghl.locations.{name}.location_id"),
            &location.location_id,
        ));
    }
    for (key, value) in values {
        if is_placeholder(value) {
            return Err(SettingsError::invalid(
                key,
                "is still a placeholder (as in .env.example); give the GHL location \
                 (sub-account) id, the id in the sub-account's URL `…/location/<id>/…`",
            ));
        }
    }
    let password = url::Url::parse(&settings.store.url)
        .ok()
        .and_then(|url| url.password().map(str::to_owned));
    if password.is_some_and(|p| is_placeholder(&percent_decoded(&p))) {
        return Err(SettingsError::invalid(
            "store.url",
            format!(
                "the database password is still a placeholder (with docker compose: \
                 POSTGRES_PASSWORD in .env); {GIVE_YOUR_OWN}"
            ),
        ));
    }
    Ok(())
}

/// A URL's password as written by the user (`change%2Dme` is still `change-me`).
fn percent_decoded(text: &str) -> String {
    url::form_urlencoded::parse(format!("p={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| text.to_owned())
}

/// The admin token and every served source's URL token: at least [`MIN_TOKEN_CHARS`]. HMAC
/// keys and Standard Webhooks secrets are the tool's to choose (DripJobs, Svix give theirs), so
/// only their presence is checked, elsewhere.
fn refuse_short_tokens(settings: &Settings) -> Result<(), SettingsError> {
    let mut tokens: Vec<(String, &str)> = Vec::new();
    if let Some(token) = &settings.admin.token {
        tokens.push(("admin.token".to_owned(), token.expose_secret()));
    }
    for (name, source) in &settings.sources {
        if source.auth == AuthMode::Token && source.is_enabled() {
            if let Some(secret) = &source.secret {
                tokens.push((format!("sources.{name}.secret"), secret.expose_secret()));
            }
        }
    }
    for (key, token) in tokens {
        let chars = token.trim().chars().count();
        if chars < MIN_TOKEN_CHARS {
            return Err(SettingsError::invalid(
                key,
                format!(
                    "is {chars} characters; with {ENV_SELECTOR}={PRODUCTION} a token must have \
                     at least {MIN_TOKEN_CHARS}, so it cannot be guessed; {GIVE_YOUR_OWN}"
                ),
            ));
        }
    }
    Ok(())
}

/// `/metrics` and `/admin` stay off the public address: `server.ops_addr` moves them to an
/// address of their own; `server.public_ops = true` keeps them on `server.addr` on purpose.
fn refuse_public_ops(settings: &Settings) -> Result<(), SettingsError> {
    let server = &settings.server;
    if server.ops_addr.is_none() && !server.public_ops {
        return Err(SettingsError::invalid(
            "server.ops_addr",
            format!(
                "is not set, so /metrics and /admin would be served on the public address \
                 server.addr ({}); with {ENV_SELECTOR}={PRODUCTION} set \
                 FORMBRIDGE__SERVER__OPS_ADDR (e.g. 127.0.0.1:9090, or 0.0.0.0:9090 on a \
                 private network) or, to serve them on server.addr deliberately, \
                 FORMBRIDGE__SERVER__PUBLIC_OPS=true",
                server.addr
            ),
        ));
    }
    Ok(())
}

/// With no `FORMBRIDGE_ENV` set, the development secrets of `config/local.toml` are accepted
/// only when the server listens on a loopback address: a checkout started with no environment
/// must not open `local-admin-token` to the network. `FORMBRIDGE_ENV=local` accepts them
/// anywhere (development only, on purpose).
pub fn refuse_public_development_secrets(
    settings: &Settings,
    source: &ConfigSource,
) -> Result<(), SettingsError> {
    if source.env_explicit {
        return Ok(());
    }
    let mut addresses = std::iter::once(settings.server.addr).chain(settings.server.ops_addr);
    let Some(public) = addresses.find(|a| !a.ip().is_loopback()) else {
        return Ok(());
    };
    let known = development_values();
    let Some((key, _)) = settings
        .secrets()
        .into_iter()
        .find(|(_, secret)| known.contains(secret.expose_secret().trim()))
    else {
        return Ok(());
    };
    Err(SettingsError::invalid(
        key,
        format!(
            "holds a public development secret from {dir}/local.toml and {ENV_SELECTOR} is not \
             set, so it is accepted on a loopback address only, not on {public}; set \
             {ENV_SELECTOR}={PRODUCTION} with secrets of your own, or listen on loopback \
             (FORMBRIDGE__SERVER__ADDR=127.0.0.1:8080), or set {ENV_SELECTOR}=local to accept \
             development secrets on every address",
            dir = source.dir.display()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value `.env.example` carries, commented out or not, as `(variable, value)`.
    fn env_example_values() -> Vec<(String, String)> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example");
        let text = std::fs::read_to_string(path).expect("read .env.example");
        text.lines()
            .map(|line| line.trim_start_matches(['#', ' ']))
            .filter_map(|line| line.split_once('='))
            .filter(|(name, value)| {
                name.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                    && !value.trim().is_empty()
            })
            .map(|(name, value)| (name.to_owned(), value.trim().to_owned()))
            .collect()
    }

    /// The GHL sandbox's lines of `.env.example` (commented out): real values for trying the
    /// compose deployment without a GHL account, so not placeholders.
    const SANDBOX_VALUES: &[&str] = &[
        "http://ghl-sandbox:8090",
        "pit-sandbox-token",
        "sbxDemoLocation00001",
    ];

    #[test]
    fn every_value_of_env_example_is_a_placeholder() {
        let values = env_example_values();
        assert!(values.len() >= 6, "{values:?}");
        for (name, value) in values {
            if SANDBOX_VALUES.contains(&value.as_str()) {
                continue;
            }
            assert!(is_placeholder(&value), "{name}={value} is not refused");
        }
    }

    #[test]
    fn real_looking_values_are_not_placeholders() {
        for value in [
            "3f1c9a6e0b7d4e2fa8c5b1d9e7f60a2c",
            "pit-9b2f4c1e-7a3d-4e8b-9c6f-2d1e0a5b7c3f",
            "ve9EIpDC2fIhXHlNfJvE",
        ] {
            assert!(!is_placeholder(value), "{value}");
        }
    }

    #[test]
    fn a_percent_encoded_password_is_read_as_written() {
        assert_eq!(percent_decoded("change%2Dme"), "change-me");
        assert_eq!(percent_decoded("plain"), "plain");
    }
}
