//! A back-off on wrong admin tokens: after [`MAX_FAILURES`] wrong bearer tokens from one client
//! address within [`FAILURE_WINDOW`], every admin request from it is answered 429 with
//! `Retry-After` for a lockout that doubles with each repeat (from [`FIRST_LOCKOUT`] up to
//! [`MAX_LOCKOUT`]); a correct token clears the address's record.
//!
//! The address is the TCP peer's ([`ClientKey`]: IPv6 by /64), so other clients are never
//! affected. At most [`MAX_TRACKED`] addresses are remembered: when full, forgotten records go
//! first, then the one seen longest ago.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::server::ClientKey;

/// Wrong tokens from one address within [`FAILURE_WINDOW`] that start a lockout.
pub const MAX_FAILURES: u32 = 5;
/// The window [`MAX_FAILURES`] are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// The first lockout; each further one from the same address doubles it.
pub const FIRST_LOCKOUT: Duration = Duration::from_secs(10);
/// The longest lockout.
pub const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// An address quiet this long (and not locked out) starts again from nothing.
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// Most addresses remembered at once.
pub const MAX_TRACKED: usize = 10_000;

/// What is remembered of one address.
#[derive(Debug, Clone, Copy)]
struct Record {
    /// Wrong tokens in the current window.
    failures: u32,
    window_start: Instant,
    /// Lockouts so far (the next one lasts `FIRST_LOCKOUT × 2^lockouts`).
    lockouts: u32,
    blocked_until: Option<Instant>,
    last_seen: Instant,
}

impl Record {
    fn forgotten(&self, now: Instant) -> bool {
        let blocked = self.blocked_until.is_some_and(|until| until > now);
        !blocked && now.saturating_duration_since(self.last_seen) >= FORGET_AFTER
    }
}

/// The failed-token records of every address, bounded to `capacity` addresses.
pub struct AdminBackoff {
    records: Mutex<HashMap<ClientKey, Record>>,
    capacity: usize,
}

impl Default for AdminBackoff {
    fn default() -> Self {
        Self::with_capacity(MAX_TRACKED)
    }
}

impl AdminBackoff {
    /// A back-off remembering at most `capacity` addresses (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            records: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn records(&self) -> MutexGuard<'_, HashMap<ClientKey, Record>> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How much longer `client` is locked out, if it is.
    pub fn locked_out(&self, client: ClientKey, now: Instant) -> Option<Duration> {
        let until = self.records().get(&client)?.blocked_until?;
        (until > now).then(|| until - now)
    }

    /// Records a wrong token from `client`; the lockout it starts, if it starts one.
    pub fn failed(&self, client: ClientKey, now: Instant) -> Option<Duration> {
        let mut records = self.records();
        if !records.contains_key(&client) && records.len() >= self.capacity {
            make_room(&mut records, now);
        }
        let record = records.entry(client).or_insert(Record {
            failures: 0,
            window_start: now,
            lockouts: 0,
            blocked_until: None,
            last_seen: now,
        });
        if record.forgotten(now) {
            record.lockouts = 0;
        }
        record.last_seen = now;
        if now.saturating_duration_since(record.window_start) > FAILURE_WINDOW {
            record.failures = 0;
            record.window_start = now;
        }
        record.failures += 1;
        if record.failures < MAX_FAILURES {
            return None;
        }
        let lockout = FIRST_LOCKOUT
            .saturating_mul(1u32.checked_shl(record.lockouts).unwrap_or(u32::MAX))
            .min(MAX_LOCKOUT);
        record.lockouts = record.lockouts.saturating_add(1);
        record.failures = 0;
        record.window_start = now;
        record.blocked_until = Some(now + lockout);
        Some(lockout)
    }

    /// A correct token from `client`: its record is cleared.
    pub fn succeeded(&self, client: ClientKey) {
        self.records().remove(&client);
    }

    /// Addresses remembered now.
    pub fn tracked(&self) -> usize {
        self.records().len()
    }
}

/// Frees one place: drops forgotten records, else the one seen longest ago that is not locked
/// out (so fresh addresses cannot push a locked-out one out), else the one seen longest ago.
fn make_room(records: &mut HashMap<ClientKey, Record>, now: Instant) {
    let before = records.len();
    records.retain(|_, r| !r.forgotten(now));
    if records.len() < before {
        return;
    }
    let locked = |r: &Record| r.blocked_until.is_some_and(|until| until > now);
    let oldest = records
        .iter()
        .min_by_key(|(_, r)| (locked(r), r.last_seen))
        .map(|(key, _)| *key);
    if let Some(key) = oldest {
        records.remove(&key);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn client(n: u8) -> ClientKey {
        ClientKey::of(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)))
    }

    #[tokio::test(start_paused = true)]
    async fn lockouts_start_after_the_limit_double_and_are_capped() {
        let backoff = AdminBackoff::default();
        let a = client(1);
        for _ in 1..MAX_FAILURES {
            assert_eq!(backoff.failed(a, Instant::now()), None);
        }
        assert_eq!(backoff.failed(a, Instant::now()), Some(FIRST_LOCKOUT));
        assert_eq!(backoff.locked_out(a, Instant::now()), Some(FIRST_LOCKOUT));
        assert_eq!(backoff.locked_out(client(2), Instant::now()), None);
        let mut expected = FIRST_LOCKOUT;
        for _ in 0..10 {
            tokio::time::advance(expected).await;
            assert_eq!(backoff.locked_out(a, Instant::now()), None);
            for _ in 1..MAX_FAILURES {
                backoff.failed(a, Instant::now());
            }
            expected = (expected * 2).min(MAX_LOCKOUT);
            assert_eq!(backoff.failed(a, Instant::now()), Some(expected));
        }
        assert_eq!(expected, MAX_LOCKOUT);
        backoff.succeeded(a);
        assert_eq!(backoff.locked_out(a, Instant::now()), None);
        assert_eq!(backoff.tracked(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_outside_the_window_do_not_add_up() {
        let backoff = AdminBackoff::default();
        for _ in 0..3 * MAX_FAILURES {
            assert_eq!(backoff.failed(client(1), Instant::now()), None);
            tokio::time::advance(FAILURE_WINDOW / (MAX_FAILURES - 1) + Duration::from_secs(1))
                .await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_bounded_and_locked_out_addresses_outlast_stale_ones() {
        let backoff = AdminBackoff::with_capacity(3);
        let locked = client(1);
        for _ in 0..MAX_FAILURES {
            backoff.failed(locked, Instant::now());
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        for n in 2..=50 {
            backoff.failed(client(n), Instant::now());
            tokio::time::advance(Duration::from_millis(10)).await;
            assert!(backoff.tracked() <= 3);
        }
        assert_eq!(backoff.tracked(), 3);
        assert!(
            backoff.locked_out(locked, Instant::now()).is_some(),
            "new addresses pushed out a locked-out one"
        );
        // Records of quiet addresses are forgotten first.
        tokio::time::advance(FORGET_AFTER).await;
        backoff.failed(client(99), Instant::now());
        assert_eq!(backoff.tracked(), 1);
    }
}
