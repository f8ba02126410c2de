//! Retry policy as data: exponential backoff with full jitter, a cap, and limits on attempts
//! and age after which an event is dead-lettered.

use std::time::Duration;

use rand::Rng;

use crate::settings::RetrySettings;

/// When to try a failed event again, and when to give up.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    initial: Duration,
    max: Duration,
    max_attempts: u32,
    max_age: Duration,
}

impl RetryPolicy {
    pub fn from_settings(settings: &RetrySettings) -> Self {
        Self {
            initial: settings.initial_backoff,
            max: settings.max_backoff,
            max_attempts: settings.max_attempts,
            max_age: settings.max_age,
        }
    }

    /// The largest backoff before attempt number `attempt` (1-based): `initial · 2^(attempt-1)`,
    /// capped.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(31));
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// A backoff drawn uniformly from `[ceiling/10, ceiling]` ("full jitter", with a floor so a
    /// failing GHL is not hit again at once).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let floor = ceiling / 10;
        if ceiling <= floor {
            return ceiling;
        }
        rand::rng().random_range(floor..=ceiling)
    }

    /// Whether an event that has now failed `attempts` times, and was received `age` ago, should
    /// be given up.
    pub fn exhausted(&self, attempts: u32, age: Duration) -> bool {
        attempts >= self.max_attempts || age >= self.max_age
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(60),
            max_attempts: 5,
            max_age: Duration::from_secs(3600),
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = policy();
        assert_eq!(p.ceiling(1), Duration::from_secs(2));
        assert_eq!(p.ceiling(3), Duration::from_secs(8));
        assert_eq!(p.ceiling(40), Duration::from_secs(60));
        for attempt in 1..10 {
            let b = p.backoff(attempt);
            assert!(b <= p.ceiling(attempt) && b >= p.ceiling(attempt) / 10);
        }
    }

    #[test]
    fn gives_up_on_attempts_or_age() {
        let p = policy();
        assert!(!p.exhausted(4, Duration::from_secs(10)));
        assert!(p.exhausted(5, Duration::from_secs(10)));
        assert!(p.exhausted(1, Duration::from_secs(3600)));
    }
}
