//! Mapping: per-source config turns a normalized `Submission` into a `Plan` of GHL steps.
//!
//! - [`config`]: the `[sources.<name>.mapping]` model, as written.
//! - [`compile`]: [`CompiledMapping`], the config checked and compiled once at start.
//! - [`error`]: [`MappingConfigError`], naming the key at fault.
//! - [`file`]: a mapping file (`mappings/<source>.toml`, the playground's candidate) read with
//!   the full key of every problem, and a mapping written back as such text.
//! - [`build`]: the pure plan builder and the default note; [`due`]: due dates from answers.
//! - `owner`: `mapping.assign_to`, the lead's GHL user; `consent`: `[[mapping.dnd]]`, consent
//!   and opt-out answers as GHL do-not-disturb.
//! - `files`: `[[mapping.files]]`, file answers uploaded into GHL file custom fields.
//! - [`local_time`]: `mapping.time_zone` and `mapping.default_due_time`; `appointment_rules`:
//!   `[[mapping.appointments]]` and a follow-up's `appointment` setting.
//! - `follow_up`: references and follow-up rules (a delivery tied to an earlier lead).
//! - `opportunity_rules`: `[[mapping.opportunities]]` and a follow-up's `opportunity`.
//! - [`template`], [`condition`], [`vars`]: `{{variable}}` templates and `when` conditions.

mod appointment_rules;
pub mod build;
pub mod compile;
pub mod condition;
pub mod config;
mod consent;
pub mod due;
pub mod error;
pub mod file;
mod files;
mod follow_up;
pub mod local_time;
mod opportunity_rules;
mod owner;
mod task_rules;
pub mod template;
pub mod vars;

pub use build::{build_plan, MappingError};
pub use compile::CompiledMapping;
pub use error::MappingConfigError;
