//! The mapping playground: try a changed mapping on stored deliveries before deploying it.
//! Nothing is sent to GHL and the running configuration is not changed.
//!
//! - [`candidate`]: the edited TOML read and compiled as `check-config` would, every problem
//!   with its key.
//! - [`selection`]: which stored deliveries (last N, dead letters, ids), bounded.
//! - [`compare`]: each delivery's plan under the running mapping and the candidate, the
//!   verdict, and the dead letters the candidate would fix.
//! - [`plan_diff`]: two plans compared field by field.
//! - [`fields`]: for a new form, the answer keys seen and a suggested contact mapping.
//! - [`report`]: a comparison as text (`formbridge map --compare`).

pub mod candidate;
pub mod compare;
pub mod fields;
pub mod plan_diff;
pub mod report;
pub mod selection;

pub use candidate::{check, Candidate};
pub use compare::{compare, Comparison};
pub use selection::{load, Selection};
