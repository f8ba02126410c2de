//! What the dispatcher does with each class of GHL failure: one table, one row per class.

use std::time::Duration;

use crate::ghl::GhlError;

/// The dispatcher's answer to a failed GHL request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again later with backoff, counting an attempt (the retry policy may give up).
    Retry,
    /// GHL asked us to slow down: pause the location's budget for this long and requeue
    /// without counting an attempt.
    WaitForBudget(Duration),
    /// Nothing for this location can succeed until a person acts (a token, an access grant or a
    /// setting): pause the location, requeue without an attempt.
    PauseLocation(PauseReason),
    /// This event cannot succeed as it is: dead-letter it with the reason, for a replay after
    /// the mapping or the data is fixed.
    DeadLetter,
}

/// Why a location's dispatch is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseReason {
    /// 401, or an OAuth grant GHL refuses.
    Unauthorized,
    /// 403: the token has no access to the location or lacks a scope.
    Forbidden,
    /// The configuration cannot make the request (refused before sending).
    Config,
}

impl PauseReason {
    /// What an operator should do, for the log line.
    pub fn remedy(self) -> &'static str {
        match self {
            PauseReason::Unauthorized => {
                "GHL refused the location's token: fix the token (or the OAuth grant) and restart, or wait for the next probe"
            }
            PauseReason::Forbidden => {
                "GHL denied the token access to this location (403): give the Private Integration or OAuth app access to the location and the needed scopes, then restart, or wait for the next probe"
            }
            PauseReason::Config => {
                "the configuration cannot make GHL requests for this location: fix the setting the error names and restart"
            }
        }
    }

    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            PauseReason::Unauthorized => "unauthorized",
            PauseReason::Forbidden => "forbidden",
            PauseReason::Config => "config",
        }
    }
}

/// The table: each class of [`GhlError`] and what the dispatcher does with it.
pub fn decide(error: &GhlError) -> Decision {
    match error {
        GhlError::Config { .. } => Decision::PauseLocation(PauseReason::Config),
        // A body or query serde refuses will be refused again.
        GhlError::Encode { .. } => Decision::DeadLetter,
        // No answer may still have been applied: the retry's marker lookup finds it.
        GhlError::Transport { .. } => Decision::Retry,
        GhlError::RateLimited { retry_after, .. } => Decision::WaitForBudget(*retry_after),
        GhlError::Unauthorized { .. } => Decision::PauseLocation(PauseReason::Unauthorized),
        GhlError::Forbidden { .. } => Decision::PauseLocation(PauseReason::Forbidden),
        GhlError::NotFound { .. } => Decision::DeadLetter,
        GhlError::Validation { .. } => Decision::DeadLetter,
        GhlError::Server { .. } => Decision::Retry,
        GhlError::Rejected { .. } => Decision::DeadLetter,
        // A 2xx we could not read was applied; the retry's marker lookup finds what it made.
        GhlError::Decode { .. } => Decision::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn answer(status: u16) -> GhlError {
        GhlError::from_response(status, &HeaderMap::new(), br#"{"message":"m"}"#)
    }

    #[test]
    fn configuration_faults_pause_the_location() {
        assert_eq!(
            decide(&GhlError::config(
                "ghl.api_version is not a valid header value"
            )),
            Decision::PauseLocation(PauseReason::Config)
        );
    }

    #[test]
    fn requests_that_cannot_be_encoded_are_dead_lettered() {
        assert_eq!(
            decide(&GhlError::encode("query: bad")),
            Decision::DeadLetter
        );
    }

    #[test]
    fn no_answer_is_retried() {
        assert_eq!(
            decide(&GhlError::transport("connection reset")),
            Decision::Retry
        );
    }

    #[test]
    fn a_429_waits_for_the_budget_as_long_as_ghl_says() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("7"));
        let e = GhlError::from_response(429, &headers, b"");
        assert_eq!(decide(&e), Decision::WaitForBudget(Duration::from_secs(7)));
    }

    #[test]
    fn a_401_pauses_the_location() {
        assert_eq!(
            decide(&answer(401)),
            Decision::PauseLocation(PauseReason::Unauthorized)
        );
    }

    #[test]
    fn a_403_pauses_the_location() {
        assert_eq!(
            decide(&answer(403)),
            Decision::PauseLocation(PauseReason::Forbidden)
        );
    }

    #[test]
    fn a_404_is_dead_lettered() {
        assert_eq!(decide(&answer(404)), Decision::DeadLetter);
    }

    #[test]
    fn a_422_is_dead_lettered() {
        assert_eq!(decide(&answer(422)), Decision::DeadLetter);
    }

    #[test]
    fn server_errors_and_408_are_retried() {
        for status in [408, 500, 502, 503, 504] {
            assert_eq!(decide(&answer(status)), Decision::Retry, "{status}");
        }
    }

    #[test]
    fn other_client_errors_are_dead_lettered() {
        for status in [400, 409, 413] {
            assert_eq!(decide(&answer(status)), Decision::DeadLetter, "{status}");
        }
    }

    #[test]
    fn an_unreadable_2xx_is_retried() {
        let e = GhlError::Decode {
            status: 200,
            message: "expected a contact".to_owned(),
            limits: Box::default(),
        };
        assert_eq!(decide(&e), Decision::Retry);
    }
}
