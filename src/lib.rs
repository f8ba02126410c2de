//! formbridge: a durable webhook server that turns form and chat submissions into GoHighLevel
//! contacts, tags, tasks and notes.
//!
//! # Layout
//! - [`settings`]: layered, validated configuration (defaults built into the binary).
//! - [`alerts`]: messages to a chat webhook on dead letters, blocked locations and a late queue.
//! - [`app`]: builds the router, state and workers; serves; shuts down gracefully.
//! - [`telemetry`]: tracing subscriber and Prometheus recorder.
//! - [`agent_view`]: the answer that shows a chat's agent what GHL knows of the visitor
//!   (JivoChat), looked up within a deadline under the shared rate budget.
//! - [`http`]: the HTTP surface — webhook ingress, health, metrics, admin API, error bodies.
//! - [`metrics`]: every exported metric, declared once with its description.
//! - [`masked`]: serde helpers that print secrets as `********`.
//! - [`quoted`]: the start of a long request-given name, for error messages.
//! - [`runtime`]: each configured source compiled once at start (tool, auth, location, mapping).
//! - [`redact`]: masking of secrets in stored bodies, headers and URLs shown to operators.
//! - [`body`]: parsing JSON / urlencoded / multipart bodies, within per-delivery limits.
//! - [`sources`]: source names and kinds, authentication, per-tool normalizers.
//! - [`submission`]: the normalized submission model.
//! - [`domain`]: the ids every room names and the `Plan`, plain data shared by all.
//! - [`mapping`]: mapping config and the pure plan builder.
//! - [`playground`]: a candidate mapping compared with the running one over stored deliveries
//!   (`map --compare`, the admin playground), and the fields of a source's deliveries.
//! - [`store`]: durable deliveries and the dispatch queue on SQLite or PostgreSQL, one trait per
//!   role (ingest, queue, admin reads, token vault; budget slots on a shared store).
//! - [`dispatch`]: workers that claim events and execute their plans against GHL (one function
//!   per step kind), with retries.
//! - [`ghl`]: the GHL API v2 client.
//! - [`files`]: file answers downloaded from the tools' own file hosts only (no SSRF), capped,
//!   hashed and streamed into GHL file custom fields.
//! - [`ghl_access`]: GHL access for every caller (dispatch and the agent view alike): each
//!   location's rate budget and limiter, the OAuth token adapter over the store, the markers.
//! - [`healthcheck`]: `formbridge healthcheck`, the container's health probe.
//! - [`cli`]: operator commands of the binary (`events list|show|replay`, and `sandbox-ghl`
//!   with the `sandbox` feature); [`cli_compare`]: `formbridge map --compare`.
//! - `demo` (only with the `sandbox` feature): `formbridge demo`, the whole job end to end
//!   against the GHL sandbox (deliveries, report and working folder in its submodules).
//!
//! # The GHL sandbox and the `sandbox` feature
//! The faithful GHL fake (in-memory GHL v2 Contacts API over real HTTP, fault injection, the
//! unauthenticated `/_sandbox/*` control routes) is its own workspace crate,
//! `crates/ghl-sandbox/` (`ghl_sandbox`), which knows nothing of formbridge. The tests and
//! benches use it as a dev-dependency. The binary uses it through the `sandbox` cargo feature
//! (on by default), which also compiles the `demo` module with its embedded fixtures and default
//! configuration, and the `demo` and `sandbox-ghl` subcommands. The demo stays in this crate
//! because it runs formbridge's own [`app`]: in the sandbox crate it would make a package cycle.
//! `cargo build --release --no-default-features` builds the server alone: no sandbox code, no
//! `/_sandbox` routes, no `demo` or `sandbox-ghl` command, no compiled-in fixtures.

pub mod agent_view;
pub mod alerts;
pub mod app;
pub mod body;
pub mod cli;
pub mod cli_compare;
#[cfg(feature = "sandbox")]
pub mod demo;
pub mod dispatch;
pub mod domain;
pub mod files;
pub mod ghl;
pub mod ghl_access;
pub mod healthcheck;
pub mod http;
pub mod mapping;
pub mod masked;
pub mod metrics;
#[cfg(test)]
mod module_graph;
pub mod playground;
pub mod quoted;
pub mod redact;
pub mod retention;
pub mod runtime;
pub mod settings;
pub mod sources;
pub mod store;
pub mod submission;
pub mod telemetry;
