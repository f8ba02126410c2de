//! The agent view's own limits, apart from dispatch's: a cap on look-ups per source and minute
//! ([`PerMinute`]), and the share of each location's GHL burst its requests may take
//! ([`lookup_share`]), so that dispatch always keeps the rest of the budget.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The agent view's GHL requests take at most this percentage of a location's
/// `ghl.rate_limit.burst` per window (at least one request); dispatch keeps the rest.
pub const LOOKUP_SHARE_PERCENT: u32 = 10;

/// The window of [`PerMinute`].
const MINUTE: Duration = Duration::from_secs(60);

/// The agent view's requests per `ghl.rate_limit.window` for a location whose burst is `burst`:
/// [`LOOKUP_SHARE_PERCENT`] of it, at least one.
pub fn lookup_share(burst: u32) -> u32 {
    let share = u64::from(burst) * u64::from(LOOKUP_SHARE_PERCENT) / 100;
    u32::try_from(share).unwrap_or(u32::MAX).max(1)
}

/// Whether a look-up may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Under the cap: go ahead (counted).
    Yes,
    /// Over the cap: answer the plain acknowledgement. `first` for the first refusal since
    /// the source was last under its cap (the one to alert about).
    No { first: bool },
}

/// At most `cap` look-ups in any 60 seconds (a sliding window over the admitted ones).
#[derive(Debug)]
pub struct PerMinute {
    cap: usize,
    state: Mutex<CapState>,
}

#[derive(Debug, Default)]
struct CapState {
    /// When each look-up of the last minute was admitted, oldest first.
    admitted: VecDeque<Instant>,
    /// Whether the last call was refused.
    capped: bool,
}

impl PerMinute {
    /// A cap of `cap` look-ups per minute (at least one).
    pub fn new(cap: u32) -> Self {
        Self {
            cap: usize::try_from(cap.max(1)).unwrap_or(usize::MAX),
            state: Mutex::default(),
        }
    }

    /// Admits one look-up at `now`, or says it is over the cap.
    pub fn admit(&self, now: Instant) -> Admit {
        // The state holds plain values; a panicked holder cannot leave it inconsistent.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while state
            .admitted
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= MINUTE)
        {
            state.admitted.pop_front();
        }
        if state.admitted.len() < self.cap {
            state.admitted.push_back(now);
            state.capped = false;
            Admit::Yes
        } else {
            let first = !state.capped;
            state.capped = true;
            Admit::No { first }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_is_a_tenth_of_the_burst_and_at_least_one() {
        assert_eq!(lookup_share(100), 10);
        assert_eq!(lookup_share(30), 3);
        assert_eq!(lookup_share(5), 1);
        assert_eq!(lookup_share(u32::MAX), 429_496_729);
    }

    #[tokio::test(start_paused = true)]
    async fn the_cap_holds_over_any_minute_and_says_which_refusal_is_first() {
        let cap = PerMinute::new(3);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(cap.admit(start), Admit::Yes);
        }
        assert_eq!(cap.admit(start), Admit::No { first: true });
        assert_eq!(
            cap.admit(start + Duration::from_secs(59)),
            Admit::No { first: false }
        );
        // A minute after the first three, room again; the next refusal is a first again.
        let later = start + MINUTE;
        for _ in 0..3 {
            assert_eq!(cap.admit(later), Admit::Yes);
        }
        assert_eq!(cap.admit(later), Admit::No { first: true });
    }
}
