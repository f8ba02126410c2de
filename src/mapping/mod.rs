//! Mapping: per-source config turns a normalized `Submission` into a `Plan` of GHL steps.
//!
//! - [`config`]: the `[sources.<name>.mapping]` model, as written.
//! - [`compile`]: [`CompiledMapping`], the config checked and compiled once at start.
//! - [`error`]: [`MappingConfigError`], naming the key at fault.
//! - [`build`]: the pure plan builder and the default note; [`due`]: due dates from answers.
//! - [`local_time`]: `mapping.time_zone` and `mapping.default_due_time`; `appointment_rules`:
//!   `[[mapping.appointments]]` and a follow-up's `appointment` setting.
//! - `follow_up`: references and follow-up rules (a delivery tied to an earlier lead).
//! - [`template`], [`condition`], [`vars`]: `{{variable}}` templates and `when` conditions.

mod appointment_rules;
pub mod build;
pub mod compile;
pub mod condition;
pub mod config;
pub mod due;
pub mod error;
mod follow_up;
pub mod local_time;
mod task_rules;
pub mod template;
pub mod vars;

pub use build::{build_plan, MappingError};
pub use compile::CompiledMapping;
pub use error::MappingConfigError;
