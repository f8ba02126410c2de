//! The HTTP surface: webhook ingress, health, metrics, admin API and JSON error bodies.

pub mod admin;
pub mod errors;
pub mod health;
pub mod hooks;
