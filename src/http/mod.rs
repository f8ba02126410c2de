//! The HTTP surface: webhook ingress, health, metrics, admin API and page, JSON error bodies and
//! the connection loop that serves them.

pub mod admin;
pub mod admin_backoff;
pub mod admin_cockpit;
pub mod admin_overview;
pub mod admin_page;
pub mod admin_playground;
pub mod admin_state;
pub mod client_addr;
pub mod errors;
pub mod head_limits;
pub mod health;
pub mod hooks;
pub mod log_safe;
pub mod server;
