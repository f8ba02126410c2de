//! The GHL rate budget as store data, for backends that several replicas share: request slots
//! per location that every replica takes from, and a location-wide pause.
//!
//! One slot is one request of GHL's burst window. A slot is taken before a request starts
//! (held pessimistically for `hold`: the longest a request may take plus the window, so a
//! replica that dies mid-request leaks the slot for that long at most), and when the request
//! completes it frees one window after the completion — the rule the in-process limiter
//! (`dispatch::limiter`) follows, so no window-long interval ever holds more than `burst`
//! requests, whichever replicas sent them. All times are the database's clock, so replicas
//! whose clocks disagree still agree on the budget.

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;

use crate::domain::LocationId;

/// A slot taken for one request; give it back with [`SharedBudget::complete`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotTicket {
    /// Which slot of the location.
    pub slot: i32,
    /// Proof of this taking: a slot taken again by another replica after this one's hold ran
    /// out is not freed early by this one's late completion.
    pub ticket: i64,
}

/// The answer to a request for a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotGrant {
    /// Send the request now.
    Granted(SlotTicket),
    /// Every slot is in use, or the location is paused: ask again after this long.
    WaitFor(Duration),
}

/// Request slots per GHL location shared by every replica on one database.
#[async_trait]
pub trait SharedBudget: Send + Sync {
    /// Takes one of `burst` slots of `location`, held for `hold` unless completed earlier; or
    /// says how long until one frees (or the location's pause ends).
    async fn take(
        &self,
        location: &LocationId,
        burst: u32,
        hold: Duration,
    ) -> Result<SlotGrant, StoreError>;

    /// The request that took `ticket` has completed: its slot frees `window` from now.
    async fn complete(
        &self,
        location: &LocationId,
        ticket: &SlotTicket,
        window: Duration,
    ) -> Result<(), StoreError>;

    /// No replica sends for `location` for `wait` from now (a 429, a spent daily quota).
    async fn pause(&self, location: &LocationId, wait: Duration) -> Result<(), StoreError>;
}
