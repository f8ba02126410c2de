//! Typed settings: layered loading (the built-in defaults → default.toml → {env}.toml →
//! `FORMBRIDGE__*`; then `mappings/<source>.toml` replaces a source's mapping) and validation.
//!
//! Every key is documented in `config/default.toml`, which is also built into the binary, so
//! no config folder is needed. [`Settings::load`] refuses a bad config with
//! a [`SettingsError`] that names the key and what is allowed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

mod access;
mod embedded;
mod guard;
mod mapping_files;

pub use access::{parse_client_address, parse_net, AGENT_VIEW_FIELDS, NOTE, OTHER_IDENTITY};
pub use embedded::DEFAULT_TOML;
pub use guard::{is_placeholder, MIN_TOKEN_CHARS, PRODUCTION};
pub use mapping_files::MAPPINGS_DIR;

pub use crate::alerts::settings::AlertSettings;
use crate::body::BodyLimits;
use crate::domain::SourceName;
pub use crate::ghl::settings::{GhlSettings, LocationSettings, RateLimitSettings};
use crate::mapping::config::MappingConfig;
use crate::sources::auth::{decode_standard_webhooks_secret, Authenticator, SignatureEncoding};
use crate::sources::{ReadOptions, SourceKind};

/// Prefix of the environment variables that override config files (`FORMBRIDGE__SERVER__ADDR`).
pub const ENV_PREFIX: &str = "FORMBRIDGE";
/// Environment variable naming the environment file to layer over `default.toml`.
pub const ENV_SELECTOR: &str = "FORMBRIDGE_ENV";
/// Largest `server.max_json_depth`: serde_json refuses documents nested deeper than 128.
const MAX_JSON_DEPTH: usize = 128;
/// Largest `ghl.late_write_window`: a step whose answer was lost waits this long past the
/// timeout before it is looked for; longer would only hold its contact's later events back.
const MAX_LATE_WRITE_WINDOW: Duration = Duration::from_secs(3600);

/// Largest accepted `server.max_connections` (each connection holds an open file).
pub const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;

/// Why the configuration was refused. Each message names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

impl SettingsError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The whole effective configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub store: StoreSettings,
    pub ghl: GhlSettings,
    pub admin: AdminSettings,
    pub telemetry: TelemetrySettings,
    pub dispatch: DispatchSettings,
    /// Alerts posted to a chat webhook (Slack, Teams, Discord); off unless `webhook_url` is set.
    pub alerts: AlertSettings,
    /// Webhook sources by URL name (`/hooks/{name}`).
    #[serde(default)]
    pub sources: BTreeMap<String, SourceSettings>,
    /// `[files]`: limits on downloading file answers for `[[mapping.files]]`.
    #[serde(default)]
    pub files: crate::files::FileSettings,
}

/// `[server]`: the HTTP listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// Internal address for ops: when set, `/metrics` and `/admin` are served there only (not on
    /// `addr`); `/hooks` and the health checks stay on `addr`.
    #[serde(default)]
    pub ops_addr: Option<SocketAddr>,
    /// Serve `/metrics` and `/admin` on `addr` when `ops_addr` is unset, also in production
    /// (which otherwise refuses to start so): a deliberate choice, e.g. behind a proxy that
    /// keeps those paths private.
    #[serde(default)]
    pub public_ops: bool,
    /// Largest accepted webhook body in bytes; larger bodies get 413.
    pub body_limit_bytes: usize,
    /// Most fields one urlencoded delivery, or parts one multipart delivery, may have; more
    /// get 413 (`too_many_fields`).
    pub max_form_fields: usize,
    /// Most values plus object keys one JSON delivery may hold; more get 413
    /// (`too_many_fields`).
    pub max_json_values: usize,
    /// Deepest nesting of arrays and objects in a JSON delivery (1-128); deeper gets 413
    /// (`too_deeply_nested`).
    pub max_json_depth: usize,
    /// Longest time one request may take before it is answered 408/503.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long a graceful shutdown waits for in-flight work.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Longest wait for a complete request head: from accepting a connection, or from the first
    /// byte of a later request on a kept-alive one. A slower client is disconnected.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// How long a kept-alive connection may sit idle between a response and the next request.
    #[serde(with = "humantime_serde")]
    pub keep_alive_timeout: Duration,
    /// Most connections served at once. At the cap, the connection that has waited longest
    /// without sending a complete request (head and body) is closed to admit the new one.
    pub max_connections: usize,
    /// The header a reverse proxy writes the client's address into (`x-forwarded-for`,
    /// `x-real-ip`), believed only on connections from `trusted_proxies`. Unset: no header is
    /// believed and the client is the TCP peer. Used by `sources.<name>.allow_from`.
    #[serde(default)]
    pub trusted_proxy_header: Option<String>,
    /// The proxies (CIDRs or addresses) whose `trusted_proxy_header` is believed.
    #[serde(default, deserialize_with = "access::string_or_list")]
    pub trusted_proxies: Vec<String>,
    /// Most connections one client address (the TCP peer; IPv6 by /64) may hold; a new one over
    /// it is closed at once. At or above `max_connections` it limits nothing (behind a proxy).
    pub max_connections_per_client: usize,
    /// Longest time a request body may take to arrive whole after its head; a slower one is
    /// answered 408 and its connection closed.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
}

impl ServerSettings {
    /// The shape limits of one delivery, applied at ingress and again when a stored delivery
    /// is prepared (so deliveries stored before a limit existed are refused too).
    pub fn body_limits(&self) -> BodyLimits {
        BodyLimits {
            max_form_fields: self.max_form_fields,
            max_json_values: self.max_json_values,
            max_json_depth: self.max_json_depth,
            max_json_path_bytes: self.body_limit_bytes,
        }
    }
}

/// `[store]`: where deliveries and their progress are kept.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// `sqlite://path/to/file.db` (embedded default) or `postgres://…`.
    #[serde(serialize_with = "crate::masked::url")]
    pub url: String,
    /// SQLite: connections for reads; every write goes through the store's one writer.
    pub max_connections: u32,
    /// SQLite: most writes committed together in one transaction (group commit).
    pub group_commit_max_batch: usize,
    /// PostgreSQL: connections this process keeps to the database (reads and writes).
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    /// PostgreSQL: longest a statement may run before the server cancels it (set on every
    /// connection), so a stuck query fails instead of holding a connection and its locks.
    #[serde(default = "default_statement_timeout", with = "humantime_serde")]
    pub statement_timeout: Duration,
    /// Done events older than this are deleted (in batches, every 10 minutes); `0s` keeps
    /// them forever. Dead letters are kept whatever their age.
    #[serde(with = "humantime_serde", default = "default_retention")]
    pub retention: Duration,
    /// Key that seals the GHL OAuth tokens kept in the store (ChaCha20-Poly1305): 32 random
    /// bytes as 64 hex characters (`openssl rand -hex 32`). Unset: tokens are kept in clear,
    /// which production refuses when OAuth is configured.
    #[serde(default, serialize_with = "crate::masked::secret_opt")]
    pub token_key: Option<SecretString>,
    /// Earlier token keys, comma-separated, still accepted for reading: rotate by moving the
    /// old key here and a new one into `token_key`; each location's tokens are sealed anew
    /// with it at their next refresh.
    #[serde(default, serialize_with = "crate::masked::secret_opt")]
    pub old_token_keys: Option<SecretString>,
    /// SQLite: the write-ahead log (`<file>-wal`) is checkpointed into the database once it
    /// holds a quarter of this many bytes (`wal_autocheckpoint`), and its file cut back to this
    /// size after a checkpoint (`journal_size_limit`), so it stays small on a small volume.
    #[serde(default = "default_wal_limit_bytes")]
    pub wal_limit_bytes: u64,
    /// SQLite: bytes kept in `<file>.reserve` beside the database and given back when the disk
    /// fills, so the store can still checkpoint and dispatch what it acknowledged; deliveries
    /// are refused (503) until the reserve can be made again. `0`: no reserve; otherwise at
    /// least half of `wal_limit_bytes` (twice what a checkpoint may add to the database).
    #[serde(default = "default_reserve_bytes")]
    pub reserve_bytes: u64,
}

/// A token key: 32 bytes.
pub type TokenKey = [u8; 32];

impl StoreSettings {
    /// The store at `url` with the documented defaults of every other key (tests and tools).
    pub fn with_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 8,
            group_commit_max_batch: 256,
            pool_size: default_pool_size(),
            statement_timeout: default_statement_timeout(),
            retention: default_retention(),
            token_key: None,
            old_token_keys: None,
            wal_limit_bytes: default_wal_limit_bytes(),
            reserve_bytes: default_reserve_bytes(),
        }
    }

    /// The token keys: `token_key` (sealing and reading) and `old_token_keys` (reading), or
    /// the error naming the key that is not 64 hex characters.
    pub fn token_keys(&self) -> Result<(Option<TokenKey>, Vec<TokenKey>), SettingsError> {
        fn parse(key: &str, text: &str) -> Result<TokenKey, SettingsError> {
            let bytes = hex::decode(text.trim()).ok();
            bytes
                .and_then(|b| TokenKey::try_from(b.as_slice()).ok())
                .ok_or_else(|| {
                    SettingsError::invalid(
                        key,
                        "must be 32 bytes as 64 hex characters: make one with \
                         `openssl rand -hex 32`",
                    )
                })
        }
        let current = self
            .token_key
            .as_ref()
            .map(|k| parse("store.token_key", k.expose_secret()))
            .transpose()?;
        let old = self
            .old_token_keys
            .as_ref()
            .map(|keys| {
                keys.expose_secret()
                    .split(',')
                    .filter(|k| !k.trim().is_empty())
                    .map(|k| parse("store.old_token_keys", k))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        Ok((current, old))
    }
}

fn default_retention() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}

/// Smallest `store.wal_limit_bytes`: 32 pages of 4 KiB.
pub const MIN_WAL_LIMIT_BYTES: u64 = 128 * 1024;
/// Largest `store.wal_limit_bytes` and `store.reserve_bytes`.
pub const MAX_STORE_FILE_BYTES: u64 = 1 << 30;

fn default_wal_limit_bytes() -> u64 {
    1024 * 1024
}
fn default_reserve_bytes() -> u64 {
    512 * 1024
}

/// `[admin]`: the `/admin` API.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Bearer token for `/admin/*`; when unset the admin API answers 404.
    #[serde(default, serialize_with = "crate::masked::secret_opt")]
    pub token: Option<SecretString>,
}

/// `[telemetry]`: logs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// `pretty` for people, `json` for log shippers.
    pub log_format: LogFormat,
    /// A `tracing` filter such as `info` or `formbridge=debug,tower_http=info`.
    pub log_filter: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// `[dispatch]`: the workers that deliver stored events to GHL.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchSettings {
    /// Run the dispatcher inside `serve`.
    pub enabled: bool,
    /// Events processed concurrently.
    pub workers: usize,
    /// How long a claimed event stays owned by a worker before another may take it over.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// How often idle workers look for due events.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Events of one GHL location processed at once (so one location cannot take every worker).
    pub per_location_concurrency: usize,
    /// Longest wait for a location's rate budget before the event is requeued instead.
    #[serde(with = "humantime_serde")]
    pub max_budget_wait: Duration,
    /// After GHL refuses a location's token (401), how long its dispatch stops before one
    /// event probes again. Attempts are not counted meanwhile.
    #[serde(with = "humantime_serde")]
    pub auth_block: Duration,
    /// Longest time preparing one delivery (normalize + plan) may take; an event that needs
    /// longer is dead-lettered so it cannot hold up the others.
    #[serde(with = "humantime_serde")]
    pub prepare_timeout: Duration,
    /// How long a follow-up (or an edit) waits for the delivery it refers to — its lead, an
    /// earlier revision — to reach GHL before it is dead-lettered with that reason.
    #[serde(with = "humantime_serde")]
    pub follow_up_wait: Duration,
    /// Retry schedule.
    pub retry: RetrySettings,
}

/// `[dispatch.retry]`: exponential backoff with full jitter.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    /// First backoff.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Largest backoff.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Attempts before an event is dead-lettered.
    pub max_attempts: u32,
    /// Age after which a still-failing event is dead-lettered.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
}

/// How a source proves a delivery is genuine.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// A shared secret in the URL (`?token=`) or in the header named by `token_header`.
    Token,
    /// HMAC-SHA256 of the raw body in a header.
    Hmac,
    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    StandardWebhooks,
    /// No authentication (must be chosen explicitly).
    None,
}

/// `[sources.<name>]`: one webhook source.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSettings {
    /// Serve this source. Unset means "when it has a secret (or `auth = \"none\"`)"; `true`
    /// without a secret refuses to start; a source not served answers 404.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Which tool reads its deliveries (a registered tool's name); defaults to the tool of the
    /// same name, else `generic`.
    #[serde(default)]
    pub kind: Option<SourceKind>,
    /// How deliveries are authenticated.
    #[serde(default = "default_auth")]
    pub auth: AuthMode,
    /// The shared secret (token, HMAC key or Standard Webhooks `whsec_…` secret).
    #[serde(default, serialize_with = "crate::masked::secret_opt")]
    pub secret: Option<SecretString>,
    /// With `auth = "token"`: a header that may carry the token instead of `?token=`.
    #[serde(default)]
    pub token_header: Option<String>,
    /// With `auth = "hmac"`: the signature header.
    #[serde(default = "default_signature_header")]
    pub signature_header: String,
    /// With `auth = "hmac"`: `hex` or `base64`.
    #[serde(default = "default_signature_encoding")]
    pub signature_encoding: SignatureEncoding,
    /// With `auth = "standard_webhooks"`: accepted clock skew of `webhook-timestamp`.
    #[serde(default = "default_timestamp_tolerance", with = "humantime_serde")]
    pub timestamp_tolerance: Duration,
    /// Dot path (JSON) or field name (forms) of the sender's own delivery id, for deduplication.
    #[serde(default)]
    pub dedupe_field: Option<String>,
    /// Name of a `[ghl.locations.<name>]` entry; defaults to the `[ghl]` location.
    #[serde(default)]
    pub location: Option<String>,
    /// Field mapping: how submissions become GHL records.
    #[serde(default)]
    pub mapping: MappingConfig,
    /// The agent view (tools that have one, i.e. JivoChat): answer the deliveries the tool shows
    /// its agent (`chat_accepted`, `chat_updated`) with what GHL knows of the visitor. Unset: on
    /// for such tools; `true` for a tool without one refuses to start.
    #[serde(default)]
    pub agent_view: Option<bool>,
    /// The agent view's answer deadline, from the delivery's arrival: a look-up not done by then
    /// answers the plain acknowledgement.
    #[serde(default = "default_agent_view_timeout", with = "humantime_serde")]
    pub agent_view_timeout: Duration,
    /// What the agent view shows beyond name, link, tags and open tasks: `other_identity` (the
    /// phone when the visitor was looked up by email, the email when by phone) and `note` (the
    /// latest note's text). Empty by default: a holder of the URL learns no more than that.
    #[serde(default, deserialize_with = "access::string_or_list")]
    pub agent_view_fields: Vec<String>,
    /// Most agent-view look-ups of this source per minute (cached answers included); past it the
    /// answer is the plain acknowledgement, counted, and `[alerts]` says so.
    #[serde(default = "default_agent_view_per_minute")]
    pub agent_view_per_minute: u32,
    /// The client addresses (CIDRs or addresses) this source accepts deliveries from; empty:
    /// any. Another address gets 403 and nothing is stored. The client is the TCP peer, or what
    /// `server.trusted_proxy_header` says on a connection from `server.trusted_proxies`.
    #[serde(default, deserialize_with = "access::string_or_list")]
    pub allow_from: Vec<String>,
    /// With `FORMBRIDGE_ENV=production`, `auth = "none"` refuses to start unless this is `true`:
    /// anyone who finds the URL can store deliveries and create contacts.
    #[serde(default)]
    pub allow_unauthenticated: bool,
}

fn default_auth() -> AuthMode {
    AuthMode::Token
}
fn default_signature_header() -> String {
    "x-signature".to_owned()
}
fn default_signature_encoding() -> SignatureEncoding {
    SignatureEncoding::Hex
}
fn default_timestamp_tolerance() -> Duration {
    Duration::from_secs(300)
}

/// 1.5 s: JivoChat documents no time limit for webhook answers; its Bot API allows 3 s. Half
/// of that leaves room for the network both ways and for Jivo's side, and still gives GHL (a
/// few hundred milliseconds per request) time for the three look-up requests.
pub const DEFAULT_AGENT_VIEW_TIMEOUT: Duration = Duration::from_millis(1500);

fn default_agent_view_timeout() -> Duration {
    DEFAULT_AGENT_VIEW_TIMEOUT
}

/// 30 look-ups per minute: a busy chat desk's new chats and updates (a burst for one visitor
/// is one look-up, cached), far below what harvesting contacts would need.
pub const DEFAULT_AGENT_VIEW_PER_MINUTE: u32 = 30;

fn default_agent_view_per_minute() -> u32 {
    DEFAULT_AGENT_VIEW_PER_MINUTE
}

fn default_pool_size() -> u32 {
    16
}
fn default_statement_timeout() -> Duration {
    Duration::from_secs(30)
}

impl SourceSettings {
    /// Whether a non-empty secret is configured.
    pub fn has_secret(&self) -> bool {
        self.secret
            .as_ref()
            .is_some_and(|s| !s.expose_secret().trim().is_empty())
    }

    /// Whether this source is served: explicitly enabled, or (when `enabled` is unset) it has
    /// a secret or explicitly needs none.
    pub fn is_enabled(&self) -> bool {
        self.enabled
            .unwrap_or_else(|| self.has_secret() || self.auth == AuthMode::None)
    }

    /// Whether this source answers with the agent view: its tool has one and `agent_view` is
    /// not `false`.
    pub fn agent_view_enabled(&self, name: &SourceName) -> bool {
        self.kind_for(name).has_agent_view() && self.agent_view.unwrap_or(true)
    }

    /// Whether `agent_view_fields` lists `field` (`other_identity`, `note`).
    pub fn agent_view_shows(&self, field: &str) -> bool {
        self.agent_view_fields.iter().any(|f| f == field)
    }

    /// The tool of this source, resolving the default from its name.
    pub fn kind_for(&self, name: &SourceName) -> SourceKind {
        self.kind.unwrap_or_else(|| SourceKind::default_for(name))
    }

    /// The source's authentication rule (an error says what is missing or malformed).
    pub fn authenticator(&self) -> Result<Authenticator, String> {
        let secret = || {
            self.secret
                .clone()
                .ok_or_else(|| "no secret configured".to_owned())
        };
        Ok(match self.auth {
            AuthMode::None => Authenticator::None,
            AuthMode::Token => Authenticator::Token {
                secret: secret()?,
                header: self.token_header.as_ref().map(|h| h.to_ascii_lowercase()),
            },
            AuthMode::Hmac => Authenticator::Hmac {
                key: secret()?,
                header: self.signature_header.to_ascii_lowercase(),
                encoding: self.signature_encoding,
            },
            AuthMode::StandardWebhooks => Authenticator::StandardWebhooks {
                key: decode_standard_webhooks_secret(secret()?.expose_secret())?,
                tolerance_secs: self.timestamp_tolerance.as_secs(),
            },
        })
    }

    /// How its deliveries are read: the generic keys of `mapping`, its `dedupe_field` and the
    /// `mapping.fields` selectors.
    pub fn read_options(&self) -> ReadOptions<'_> {
        ReadOptions {
            default_country: self.mapping.default_country.as_deref(),
            submission_id: self.mapping.submission_id.as_deref(),
            dedupe_field: self.dedupe_field.as_deref(),
            strip_html: self.mapping.strip_html,
            fields: &self.mapping.fields,
        }
    }
}

/// Where configuration files live and which environment file to layer.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    /// Folder that may hold `default.toml` (layered over the built-in defaults) and
    /// `{env}.toml`; neither is required.
    pub dir: PathBuf,
    /// Environment name (`FORMBRIDGE_ENV`), e.g. `local` or `production`.
    pub env: String,
    /// Whether `env` was given (`FORMBRIDGE_ENV` set) rather than taken by default: the
    /// development secrets of the default `local` are then accepted on a loopback address only
    /// ([`Settings::refuse_public_development_secrets`]).
    pub env_explicit: bool,
}

impl ConfigSource {
    /// `config/` in the working directory and `FORMBRIDGE_ENV` (default `local`).
    pub fn from_process_env(dir: Option<PathBuf>) -> Self {
        let given = std::env::var(ENV_SELECTOR)
            .ok()
            .filter(|env| !env.trim().is_empty());
        Self {
            dir: dir.unwrap_or_else(|| PathBuf::from("config")),
            env_explicit: given.is_some(),
            env: given.unwrap_or_else(|| "local".to_owned()),
        }
    }

    /// A named environment (tests, benches, the demo): `env` given explicitly.
    pub fn named(dir: impl Into<PathBuf>, env: &str) -> Self {
        Self {
            dir: dir.into(),
            env: env.to_owned(),
            env_explicit: true,
        }
    }
}

impl Settings {
    /// Loads the built-in `config/default.toml`, then `default.toml` and `{env}.toml` of the
    /// config folder if present, then `FORMBRIDGE__*` variables, then
    /// `overrides` (key, value) pairs — used by tests and the CLI — and validates the result.
    pub fn load(source: &ConfigSource, overrides: &[(&str, &str)]) -> Result<Self, SettingsError> {
        Self::load_from(source, overrides, true)
    }

    /// Like [`Settings::load`] but ignores the process environment (for hermetic tests).
    pub fn load_without_env(
        source: &ConfigSource,
        overrides: &[(&str, &str)],
    ) -> Result<Self, SettingsError> {
        Self::load_from(source, overrides, false)
    }

    fn load_from(
        source: &ConfigSource,
        overrides: &[(&str, &str)],
        with_env: bool,
    ) -> Result<Self, SettingsError> {
        // The defaults built into the binary, then a `default.toml` on disk (if any) over them.
        let default_file = source.dir.join("default.toml");
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(
                embedded::DEFAULT_TOML,
                config::FileFormat::Toml,
            ))
            .add_source(config::File::from(default_file).required(false))
            .add_source(config::File::from(env_file(&source.dir, &source.env)).required(false));
        if with_env {
            builder = builder.add_source(
                config::Environment::with_prefix(ENV_PREFIX)
                    .prefix_separator("__")
                    .separator("__"),
            );
        }
        for (key, value) in overrides {
            builder = builder.set_override(*key, *value)?;
        }
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        // `mappings/<source>.toml` replaces that source's mapping (the playground's files).
        mapping_files::apply(&source.dir, &mut settings)?;
        settings.validate()?;
        if source.env == guard::PRODUCTION {
            guard::refuse_unsafe_production(&settings)?;
        }
        Ok(settings)
    }

    /// Refuses to serve the development secrets of `config/local.toml` on an address other
    /// machines can reach when `FORMBRIDGE_ENV` was not set (`serve` and `check-config` ask).
    pub fn refuse_public_development_secrets(
        &self,
        source: &ConfigSource,
    ) -> Result<(), SettingsError> {
        guard::refuse_public_development_secrets(self, source)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.server.body_limit_bytes == 0 {
            return Err(SettingsError::invalid(
                "server.body_limit_bytes",
                "must be greater than 0",
            ));
        }
        self.validate_server_limits()?;
        self.files
            .validate()
            .map_err(|e| SettingsError::invalid(format!("files.{}", e.key), e.message))?;
        self.validate_trusted_proxies()?;
        self.validate_required_values()?;
        self.store.token_keys()?;
        for (key, value) in [
            ("server.max_form_fields", self.server.max_form_fields),
            ("server.max_json_values", self.server.max_json_values),
        ] {
            if value == 0 {
                return Err(SettingsError::invalid(key, "must be at least 1"));
            }
        }
        if !(1..=MAX_JSON_DEPTH).contains(&self.server.max_json_depth) {
            return Err(SettingsError::invalid(
                "server.max_json_depth",
                format!(
                    "must be between 1 and {MAX_JSON_DEPTH} (the deepest JSON the parser reads)"
                ),
            ));
        }
        if self.dispatch.prepare_timeout.is_zero() {
            return Err(SettingsError::invalid(
                "dispatch.prepare_timeout",
                "must be greater than 0",
            ));
        }
        let scheme = self.store.url.split(':').next().unwrap_or_default();
        if !matches!(scheme, "sqlite" | "postgres" | "postgresql") {
            return Err(SettingsError::invalid(
                "store.url",
                format!("unsupported scheme `{scheme}`; use sqlite://path or postgres://…"),
            ));
        }
        if self.store.max_connections == 0 {
            return Err(SettingsError::invalid(
                "store.max_connections",
                "must be at least 1",
            ));
        }
        if self.store.group_commit_max_batch == 0 {
            return Err(SettingsError::invalid(
                "store.group_commit_max_batch",
                "must be at least 1",
            ));
        }
        self.validate_store_files()?;
        if self.store.pool_size == 0 {
            return Err(SettingsError::invalid(
                "store.pool_size",
                "must be at least 1",
            ));
        }
        if self.store.statement_timeout < Duration::from_millis(1) {
            return Err(SettingsError::invalid(
                "store.statement_timeout",
                "must be at least 1ms (PostgreSQL counts it in milliseconds; 0 would mean no limit)",
            ));
        }
        if !matches!(self.ghl.base_url.scheme(), "http" | "https") {
            return Err(SettingsError::invalid(
                "ghl.base_url",
                "must be an http(s) URL",
            ));
        }
        if !matches!(self.ghl.app_url.scheme(), "http" | "https") {
            return Err(SettingsError::invalid(
                "ghl.app_url",
                "must be an http(s) URL such as https://app.gohighlevel.com",
            ));
        }
        if self.ghl.request_timeout.is_zero() {
            return Err(SettingsError::invalid(
                "ghl.request_timeout",
                "must be greater than 0",
            ));
        }
        if self.ghl.late_write_window > MAX_LATE_WRITE_WINDOW {
            return Err(SettingsError::invalid(
                "ghl.late_write_window",
                "must be at most 1h: it is how much longer than ghl.request_timeout GHL may \
                 still carry out a request that got no answer, and each such step waits it out",
            ));
        }
        if self.ghl.rate_limit.burst == 0 || self.ghl.rate_limit.window.is_zero() {
            return Err(SettingsError::invalid(
                "ghl.rate_limit",
                "burst and window must be greater than 0",
            ));
        }
        if self.dispatch.workers == 0 {
            return Err(SettingsError::invalid(
                "dispatch.workers",
                "must be at least 1",
            ));
        }
        if self.dispatch.per_location_concurrency == 0 {
            return Err(SettingsError::invalid(
                "dispatch.per_location_concurrency",
                "must be at least 1",
            ));
        }
        // Before each GHL request the lease is renewed when half of it is gone, so half a lease
        // must outlast one wait for the budget plus one request.
        if self.dispatch.lease <= (self.dispatch.max_budget_wait + self.ghl.request_timeout) * 2 {
            return Err(SettingsError::invalid(
                "dispatch.lease",
                "must be more than twice (dispatch.max_budget_wait + ghl.request_timeout)",
            ));
        }
        if self.dispatch.retry.max_attempts == 0 {
            return Err(SettingsError::invalid(
                "dispatch.retry.max_attempts",
                "must be at least 1",
            ));
        }
        if self.dispatch.retry.initial_backoff > self.dispatch.retry.max_backoff {
            return Err(SettingsError::invalid(
                "dispatch.retry.initial_backoff",
                "must not exceed dispatch.retry.max_backoff",
            ));
        }
        for (name, source) in &self.sources {
            self.validate_source(name, source)?;
        }
        self.alerts
            .validate()
            .map_err(|e| SettingsError::invalid(format!("alerts.{}", e.key), e.message))?;
        Ok(())
    }

    /// The connection limits of `[server]`: each timeout and the cap must be positive.
    /// `store.wal_limit_bytes` and `store.reserve_bytes`: sizes of the files beside an SQLite
    /// database.
    fn validate_store_files(&self) -> Result<(), SettingsError> {
        let store = &self.store;
        if !(MIN_WAL_LIMIT_BYTES..=MAX_STORE_FILE_BYTES).contains(&store.wal_limit_bytes) {
            return Err(SettingsError::invalid(
                "store.wal_limit_bytes",
                format!("must be from {MIN_WAL_LIMIT_BYTES} (128 KiB) to {MAX_STORE_FILE_BYTES} (1 GiB)"),
            ));
        }
        let least = store.wal_limit_bytes / 2;
        if store.reserve_bytes != 0
            && !(least..=MAX_STORE_FILE_BYTES).contains(&store.reserve_bytes)
        {
            return Err(SettingsError::invalid(
                "store.reserve_bytes",
                format!(
                    "must be 0 (no reserve) or from half of store.wal_limit_bytes ({least}: a \
                     checkpoint on a full disk may need a quarter of it, dispatch the rest) to \
                     {MAX_STORE_FILE_BYTES} (1 GiB)"
                ),
            ));
        }
        Ok(())
    }

    fn validate_server_limits(&self) -> Result<(), SettingsError> {
        let server = &self.server;
        for (key, value) in [
            ("server.header_read_timeout", server.header_read_timeout),
            ("server.keep_alive_timeout", server.keep_alive_timeout),
            ("server.body_read_timeout", server.body_read_timeout),
        ] {
            if value.is_zero() {
                return Err(SettingsError::invalid(key, "must be greater than 0"));
            }
        }
        if !(1..=MAX_CONNECTIONS_LIMIT).contains(&server.max_connections) {
            return Err(SettingsError::invalid(
                "server.max_connections",
                format!("must be from 1 to {MAX_CONNECTIONS_LIMIT} (and below `ulimit -n`)"),
            ));
        }
        if !(1..=MAX_CONNECTIONS_LIMIT).contains(&server.max_connections_per_client) {
            return Err(SettingsError::invalid(
                "server.max_connections_per_client",
                format!("must be from 1 to {MAX_CONNECTIONS_LIMIT} (at or above server.max_connections it limits nothing)"),
            ));
        }
        if server.body_read_timeout > server.request_timeout {
            return Err(SettingsError::invalid(
                "server.body_read_timeout",
                format!(
                    "must not exceed server.request_timeout ({}): the request would time out first",
                    humantime::format_duration(server.request_timeout)
                ),
            ));
        }
        Ok(())
    }

    /// Values that are accepted by type but would make every delivery fail later: an empty GHL
    /// location id (GHL answers 422, so every event is dead-lettered) and a log filter that
    /// does not parse.
    fn validate_required_values(&self) -> Result<(), SettingsError> {
        let empty_location =
            "must not be empty: give the GHL location (sub-account) id, or leave the key unset";
        if self
            .ghl
            .location_id
            .as_ref()
            .is_some_and(|id| id.trim().is_empty())
        {
            return Err(SettingsError::invalid("ghl.location_id", empty_location));
        }
        for (name, location) in &self.ghl.locations {
            if location.location_id.trim().is_empty() {
                return Err(SettingsError::invalid(
                    format!("ghl.locations.{name}.location_id"),
                    empty_location,
                ));
            }
        }
        tracing_subscriber::EnvFilter::try_new(&self.telemetry.log_filter).map_err(|e| {
            SettingsError::invalid(
                "telemetry.log_filter",
                format!("`{}` is not a tracing filter such as `info` or `formbridge=debug,tower_http=info`: {e}", self.telemetry.log_filter),
            )
        })?;
        Ok(())
    }

    fn validate_source(&self, name: &str, source: &SourceSettings) -> Result<(), SettingsError> {
        let key = |field: &str| format!("sources.{name}.{field}");
        let source_name = SourceName::parse(name)
            .map_err(|e| SettingsError::invalid(format!("sources.{name}"), e.to_string()))?;
        if !source.is_enabled() {
            // Not served (disabled, or waiting for a secret): nothing more to check.
            return Ok(());
        }
        let has_secret = source.has_secret();
        match source.auth {
            AuthMode::None => {}
            _ if !has_secret => {
                return Err(SettingsError::invalid(
                    key("secret"),
                    format!(
                        "source `{name}` has auth = \"{}\" but no secret; set FORMBRIDGE__SOURCES__{}__SECRET, or auth = \"none\" to accept unauthenticated posts",
                        auth_name(source.auth),
                        name.to_uppercase()
                    ),
                ))
            }
            AuthMode::StandardWebhooks => {
                if let Some(secret) = &source.secret {
                    decode_standard_webhooks_secret(secret.expose_secret())
                        .map_err(|e| SettingsError::invalid(key("secret"), e))?;
                }
            }
            AuthMode::Hmac => {
                if http_header_name(&source.signature_header).is_none() {
                    return Err(SettingsError::invalid(key("signature_header"), "not a valid HTTP header name"));
                }
            }
            AuthMode::Token => {
                if let Some(h) = &source.token_header {
                    if http_header_name(h).is_none() {
                        return Err(SettingsError::invalid(key("token_header"), "not a valid HTTP header name"));
                    }
                }
            }
        }
        self.validate_agent_view(name, &source_name, source)?;
        if let Some(location) = &source.location {
            if !self.ghl.locations.contains_key(location) {
                return Err(SettingsError::invalid(
                    key("location"),
                    format!("no [ghl.locations.{location}] is configured"),
                ));
            }
        }
        crate::mapping::CompiledMapping::compile(
            &source.mapping,
            &source_name,
            source.kind_for(&source_name),
        )
        .map_err(|e| SettingsError::invalid(key(&format!("mapping.{}", e.key)), e.message))?;
        Ok(())
    }

    /// `agent_view` only for a tool that has one and never with `auth = "none"`; its deadline
    /// above zero and below `server.request_timeout`; its fields, cap and `allow_from` valid.
    fn validate_agent_view(
        &self,
        name: &str,
        source_name: &SourceName,
        source: &SourceSettings,
    ) -> Result<(), SettingsError> {
        let kind = source.kind_for(source_name);
        if source.agent_view == Some(true) && !kind.has_agent_view() {
            return Err(SettingsError::invalid(
                format!("sources.{name}.agent_view"),
                format!(
                    "the `{}` tool has no agent view (only chat tools whose answer is shown to an agent, such as jivochat); remove the key",
                    kind.as_str()
                ),
            ));
        }
        self.validate_source_access(name, source, source.agent_view_enabled(source_name))?;
        let timeout = source.agent_view_timeout;
        if timeout.is_zero() || timeout >= self.server.request_timeout {
            return Err(SettingsError::invalid(
                format!("sources.{name}.agent_view_timeout"),
                format!(
                    "must be above 0 and below server.request_timeout ({}); JivoChat's own limit is undocumented, its Bot API allows 3s",
                    humantime::format_duration(self.server.request_timeout)
                ),
            ));
        }
        Ok(())
    }

    /// The enabled sources, parsed, in name order.
    pub fn enabled_sources(&self) -> impl Iterator<Item = (SourceName, &SourceSettings)> {
        self.sources
            .iter()
            .filter(|(_, s)| s.is_enabled())
            .filter_map(|(name, s)| SourceName::parse(name).ok().map(|n| (n, s)))
    }

    /// Every configured secret with its config key: source secrets, the admin token, GHL tokens
    /// and OAuth credentials, the alert webhook URL.
    pub fn secrets(&self) -> Vec<(String, &SecretString)> {
        let mut out: Vec<(String, &SecretString)> = Vec::new();
        for (name, source) in &self.sources {
            out.extend(
                source
                    .secret
                    .as_ref()
                    .map(|s| (format!("sources.{name}.secret"), s)),
            );
        }
        out.extend(
            self.admin
                .token
                .as_ref()
                .map(|s| ("admin.token".to_owned(), s)),
        );
        out.extend(self.ghl.token.as_ref().map(|s| ("ghl.token".to_owned(), s)));
        for (name, location) in &self.ghl.locations {
            out.push((format!("ghl.locations.{name}.token"), &location.token));
        }
        if let Some(oauth) = &self.ghl.oauth {
            out.push(("ghl.oauth.client_secret".to_owned(), &oauth.client_secret));
            out.extend(
                oauth
                    .bootstrap_refresh_token
                    .as_ref()
                    .map(|s| ("ghl.oauth.bootstrap_refresh_token".to_owned(), s)),
            );
        }
        out.extend(
            self.alerts
                .webhook_url
                .as_ref()
                .map(|s| ("alerts.webhook_url".to_owned(), s)),
        );
        out.extend(
            self.store
                .token_key
                .as_ref()
                .map(|s| ("store.token_key".to_owned(), s)),
        );
        out.extend(
            self.store
                .old_token_keys
                .as_ref()
                .map(|s| ("store.old_token_keys".to_owned(), s)),
        );
        out
    }

    /// The settings as TOML-like JSON with every secret masked, for `check-config`.
    pub fn to_masked_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

fn auth_name(mode: AuthMode) -> &'static str {
    match mode {
        AuthMode::Token => "token",
        AuthMode::Hmac => "hmac",
        AuthMode::StandardWebhooks => "standard_webhooks",
        AuthMode::None => "none",
    }
}

fn http_header_name(name: &str) -> Option<axum::http::HeaderName> {
    axum::http::HeaderName::from_bytes(name.as_bytes()).ok()
}

fn env_file(dir: &Path, env: &str) -> PathBuf {
    dir.join(format!("{env}.toml"))
}
