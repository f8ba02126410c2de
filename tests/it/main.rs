//! The integration tests: one binary (one link, one process, every test run in parallel),
//! a module per area, and the shared helpers in [`common`]. Real HTTP on port 0, real SQLite
//! files, the GHL sandbox over HTTP, and the real binary where a process must die.
//! `TEST_LOG=1 cargo test` prints the servers' tracing output.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
mod common;

mod admin;
mod agent_view;
mod alerts;
mod allow_from;
mod appointments;
mod check_config;
mod closed_by_default;
mod cockpit;
mod connections;
mod container;
mod crash_loop;
mod crash_recovery;
#[cfg(feature = "sandbox")]
mod demo;
mod dispatch;
mod dispatch_crash;
mod edits;
mod file_uploads;
mod fleet;
mod follow_ups;
mod full_disk;
mod ghl_client;
mod ghl_faults;
mod ghl_metrics;
mod ghl_oauth;
mod ghl_sandbox;
mod ghl_schema;
mod hostile_http;
mod ingress;
mod jivochat_calls;
mod jivochat_events;
mod mapping_config;
mod mapping_extras;
mod opportunities;
mod owner_consent;
mod parser_props;
mod pg;
mod pg_tls;
mod playground;
mod read_only_store;
mod replicas;
mod retention;
mod soak;
mod soak_deliveries;
#[allow(dead_code)]
mod soak_plot;
#[allow(dead_code)]
mod soak_report;
mod soak_run;
mod sources_fixtures;
mod sources_linear;
mod sources_props;
mod spec_check;
mod store_contract;
mod store_upgrade;
mod tokens_at_rest;
