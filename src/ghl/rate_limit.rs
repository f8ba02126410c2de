//! Reading GHL's `x-ratelimit-*` response headers and turning a 429 into a wait time.

use std::time::Duration;

use reqwest::header::HeaderMap;

/// `x-ratelimit-remaining`: requests left in the current burst window.
pub const HEADER_REMAINING: &str = "x-ratelimit-remaining";
/// `x-ratelimit-max`: requests allowed per burst window.
pub const HEADER_MAX: &str = "x-ratelimit-max";
/// `x-ratelimit-interval-milliseconds`: length of the burst window.
pub const HEADER_INTERVAL: &str = "x-ratelimit-interval-milliseconds";
/// `x-ratelimit-daily-remaining`: requests left today.
pub const HEADER_DAILY_REMAINING: &str = "x-ratelimit-daily-remaining";
/// `x-ratelimit-limit-daily`: requests allowed per day.
pub const HEADER_DAILY_MAX: &str = "x-ratelimit-limit-daily";
/// `x-ratelimit-daily-reset`: milliseconds until the daily quota resets (observed, undocumented).
pub const HEADER_DAILY_RESET: &str = "x-ratelimit-daily-reset";

/// Wait used after a 429 that carries neither `Retry-After` nor an interval header: GHL's
/// documented burst window.
pub const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(10);

/// The rate-limit state GHL reported on one response. Every field is optional because GHL (or a
/// proxy in front of it) does not always send the headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimitInfo {
    /// Requests left in the current burst window.
    pub remaining: Option<u64>,
    /// Requests allowed per burst window.
    pub max: Option<u64>,
    /// Length of the burst window.
    pub interval: Option<Duration>,
    /// Requests left today.
    pub daily_remaining: Option<u64>,
    /// Requests allowed per day.
    pub daily_max: Option<u64>,
    /// Time until the daily quota resets (`x-ratelimit-daily-reset`, undocumented).
    pub daily_reset: Option<Duration>,
}

impl RateLimitInfo {
    /// Parses the headers of one response; missing or malformed headers give `None` fields.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let num = |name: &str| -> Option<u64> {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        Self {
            remaining: num(HEADER_REMAINING),
            max: num(HEADER_MAX),
            interval: num(HEADER_INTERVAL).map(Duration::from_millis),
            daily_remaining: num(HEADER_DAILY_REMAINING),
            daily_max: num(HEADER_DAILY_MAX),
            daily_reset: num(HEADER_DAILY_RESET).map(Duration::from_millis),
        }
    }

    /// True when any rate-limit header was present.
    pub fn is_known(&self) -> bool {
        self.remaining.is_some()
            || self.max.is_some()
            || self.interval.is_some()
            || self.daily_remaining.is_some()
            || self.daily_max.is_some()
    }

    /// How long to wait after a 429, when the response had no `Retry-After`.
    ///
    /// The reference (§4) says: back off on `Retry-After`; otherwise wait the interval when
    /// `remaining` is 0. We also wait for the daily reset when the daily quota is spent, and use
    /// the interval (or GHL's documented 10 s window) when the headers say nothing clearer.
    pub fn wait_after_429(&self) -> Duration {
        if self.daily_remaining == Some(0) {
            if let Some(reset) = self.daily_reset {
                return reset;
            }
        }
        self.interval.unwrap_or(DEFAULT_RATE_LIMIT_WAIT)
    }
}

/// Parses a `Retry-After` value given in seconds. HTTP-date values are not used by GHL as far as
/// anyone has recorded, so they are ignored (the caller falls back to the rate-limit headers).
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap_or(reqwest::header::ACCEPT),
                HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")),
            );
        }
        h
    }

    #[test]
    fn parses_observed_headers() {
        let h = headers(&[
            ("x-ratelimit-limit-daily", "200000"),
            ("x-ratelimit-daily-remaining", "199905"),
            ("x-ratelimit-daily-reset", "83653000"),
            ("x-ratelimit-interval-milliseconds", "10000"),
            ("x-ratelimit-max", "100"),
            ("x-ratelimit-remaining", "89"),
        ]);
        let info = RateLimitInfo::from_headers(&h);
        assert_eq!(info.remaining, Some(89));
        assert_eq!(info.max, Some(100));
        assert_eq!(info.interval, Some(Duration::from_secs(10)));
        assert_eq!(info.daily_remaining, Some(199_905));
        assert_eq!(info.daily_max, Some(200_000));
        assert_eq!(info.daily_reset, Some(Duration::from_millis(83_653_000)));
        assert_eq!(info.wait_after_429(), Duration::from_secs(10));
    }

    #[test]
    fn daily_exhaustion_waits_for_reset_and_retry_after_wins() {
        let h = headers(&[
            ("x-ratelimit-daily-remaining", "0"),
            ("x-ratelimit-daily-reset", "5000"),
            ("retry-after", "3"),
        ]);
        let info = RateLimitInfo::from_headers(&h);
        assert_eq!(info.wait_after_429(), Duration::from_secs(5));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(3)));
        assert_eq!(
            RateLimitInfo::default().wait_after_429(),
            DEFAULT_RATE_LIMIT_WAIT
        );
    }
}
