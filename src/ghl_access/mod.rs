//! GHL access, in one room for every GHL caller of the process (dispatch and the agent view
//! alike): each location's rate budget and its limiter, the OAuth token adapter over the store,
//! and the idempotency markers formbridge writes on the records it creates.
//!
//! # Why its own module (and not inside `ghl`)
//! It joins the GHL client to the store: the budget spends the store's shared slots
//! ([`crate::store::SharedBudget`]) and the tokens live in the store. Inside `ghl` that would
//! make `ghl` use `store`, while `store` uses `settings`, which re-exports `ghl`'s own settings
//! types: a cycle. Here it sits above both. What the client reads off each answer
//! ([`crate::ghl::RateLimitInfo`], `Retry-After`) stays in `ghl::rate_limit`: the client and
//! its error classes need it, and this room uses it.
//!
//! # Layout
//! - [`budget`]: [`Budgets`], every location's [`Budget`]: this process's limiter beside the
//!   replicas' shared slots.
//! - [`limiter`]: [`LocationLimiter`], the in-process sliding window adapted to GHL's headers.
//! - [`tokens`]: [`StoreTokens`], the client's OAuth token store on the event store, and
//!   [`client`], the client built with it.
//! - [`marker`]: the marker a task or note (and the tag a contact created by name) carries.

pub mod budget;
pub mod limiter;
pub mod marker;
pub mod tokens;

pub use budget::{Budget, BudgetPermit, BudgetWait, Budgets};
pub use limiter::{LimiterSnapshot, LocationLimiter};
pub use tokens::{client, StoreTokens};
