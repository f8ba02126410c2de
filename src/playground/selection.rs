//! Which stored deliveries a comparison runs over: a source's last N, its dead letters, or
//! events named by id; read from the store's admin reads, at most [`MAX_DELIVERIES`].

use serde::Deserialize;

use crate::domain::EventId;
use crate::store::{AdminReads, Event, EventFilter, EventStatus, StoreError};

/// Most deliveries one comparison or field survey reads.
pub const MAX_DELIVERIES: u32 = 500;
/// Deliveries read when no number is given.
pub const DEFAULT_DELIVERIES: u32 = 50;

/// A set of one source's stored deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// The newest N.
    Last(u32),
    /// The newest N dead letters.
    Dead(u32),
    /// These events (those of other sources are left out).
    Ids(Vec<i64>),
}

/// Why a selection is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectionError {
    #[error("choose between 1 and {MAX_DELIVERIES} deliveries (got {0})")]
    Count(u64),
    #[error("give between 1 and {MAX_DELIVERIES} event ids (got {0})")]
    Ids(usize),
}

impl Selection {
    /// Checks the bounds: 1 to [`MAX_DELIVERIES`] deliveries.
    pub fn checked(self) -> Result<Self, SelectionError> {
        let max = MAX_DELIVERIES as usize;
        match &self {
            Selection::Last(n) | Selection::Dead(n) if *n == 0 || *n > MAX_DELIVERIES => {
                Err(SelectionError::Count(u64::from(*n)))
            }
            Selection::Ids(ids) if ids.is_empty() || ids.len() > max => {
                Err(SelectionError::Ids(ids.len()))
            }
            _ => Ok(self),
        }
    }
}

/// The selected deliveries of `source`, newest first, with their bodies.
pub async fn load(
    store: &dyn AdminReads,
    source: &str,
    selection: &Selection,
) -> Result<Vec<Event>, StoreError> {
    let ids: Vec<EventId> = match selection {
        Selection::Last(n) | Selection::Dead(n) => {
            let filter = EventFilter {
                source: Some(source.to_owned()),
                status: matches!(selection, Selection::Dead(_)).then_some(EventStatus::Dead),
                limit: Some((*n).min(MAX_DELIVERIES)),
                ..EventFilter::default()
            };
            store
                .list_events(&filter)
                .await?
                .into_iter()
                .map(|e| e.id)
                .collect()
        }
        Selection::Ids(ids) => ids
            .iter()
            .take(MAX_DELIVERIES as usize)
            .map(|id| EventId(*id))
            .collect(),
    };
    let mut events = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(event) = store.get_event(id).await? {
            if event.summary.source == source {
                events.push(event);
            }
        }
    }
    Ok(events)
}
