//! The HTTP surface: webhook ingress, health, metrics, admin API, JSON error bodies and the
//! connection loop that serves them.

pub mod admin;
pub mod errors;
pub mod health;
pub mod hooks;
pub mod server;
