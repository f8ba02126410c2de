//! The domain's plain data that several rooms share: the ids they name and the [`Plan`] a
//! submission turns into. It depends on nothing but `submission`; `store` and `ghl` use it
//! instead of `mapping` or `sources`.

pub mod call;
pub mod dnd;
pub mod ids;
pub mod opportunity;
pub mod plan;

pub use ids::{ContactKey, EventId, InvalidSourceName, LocationId, SourceName};
pub use plan::{Plan, Step, StepKind};
