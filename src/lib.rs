//! formbridge: a durable webhook server that turns form and chat submissions into GoHighLevel
//! contacts, tags, tasks and notes.
//!
//! # Layout
//! - [`settings`]: layered, validated configuration.
//! - [`app`]: builds the router, state and workers; serves; shuts down gracefully.
//! - [`telemetry`]: tracing subscriber and Prometheus recorder.
//! - [`http`]: the HTTP surface — webhook ingress, health, metrics, admin API, error bodies.
//! - [`masked`]: serde helpers that print secrets as `********`.
//! - [`redact`]: masking of secrets in stored bodies, headers and URLs shown to operators.
//! - [`body`]: parsing JSON / urlencoded / multipart bodies, within per-delivery limits.
//! - [`sources`]: source names and kinds, authentication, per-tool normalizers.
//! - [`submission`]: the normalized submission model.
//! - [`mapping`]: mapping config and the pure plan builder.
//! - [`store`]: the storage trait and its SQLite (and later PostgreSQL) implementations.
//! - [`dispatch`]: workers that execute plans against GHL with retries and rate limits.
//! - [`ghl`]: the GHL API v2 client and the in-process GHL sandbox.
//! - [`cli`]: operator commands of the binary (`events list|show|replay`, `sandbox-ghl`).
//! - [`demo`]: `formbridge demo`, the whole job end to end against the built-in GHL sandbox
//!   (deliveries, report and working folder in its submodules).

pub mod app;
pub mod body;
pub mod cli;
pub mod demo;
pub mod dispatch;
pub mod ghl;
pub mod http;
pub mod mapping;
pub mod masked;
pub mod redact;
pub mod settings;
pub mod sources;
pub mod store;
pub mod submission;
pub mod telemetry;
