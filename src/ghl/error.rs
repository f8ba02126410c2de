//! The one error type of the GHL client, and how GHL's HTTP answers are classified into it.
//!
//! Classification (the dispatcher decides what to do with each class; the client never retries):
//! - 429 → [`GhlError::RateLimited`] with a wait from `Retry-After`, else the `x-ratelimit-*`
//!   headers.
//! - 408, 5xx, timeouts, connection errors, truncated bodies → [`GhlError::Transient`].
//! - 401 → [`GhlError::Unauthorized`] (token invalid/expired, missing scope, missing `Version`).
//! - other 4xx (400, 403, 404, 422 …) → [`GhlError::Permanent`] with GHL's message; on the
//!   duplicate-contact 400, `existing_contact_id` carries `meta.contactId`.
//! - a 2xx whose body does not decode → [`GhlError::Decode`].

use std::time::Duration;

use serde::Deserialize;

use super::rate_limit::RateLimitInfo;

/// Why a GHL call failed.
#[derive(Debug, thiserror::Error)]
pub enum GhlError {
    /// 429: wait `retry_after` before spending this location's budget again.
    #[error("GHL rate limit hit; retry after {retry_after:?}")]
    RateLimited {
        /// From `Retry-After` when present, else derived from the `x-ratelimit-*` headers.
        retry_after: Duration,
        /// The rate-limit headers of the 429 response.
        limits: Box<RateLimitInfo>,
    },
    /// A failure that may succeed later: 408, 5xx, timeout, connection reset, truncated body,
    /// token-store or token-endpoint outage. Note that a request that timed out or lost its
    /// connection may still have been applied by GHL.
    #[error("GHL transient failure (status {status:?}): {message}")]
    Transient {
        /// HTTP status, when an answer arrived.
        status: Option<u16>,
        /// What went wrong.
        message: String,
        /// Rate-limit headers, when an answer arrived.
        limits: Box<RateLimitInfo>,
    },
    /// 401, or no usable credentials: the token, its scope or the `Version` header is wrong.
    /// Retrying will not help until the configuration or the OAuth grant is fixed.
    #[error("GHL refused the credentials: {message}")]
    Unauthorized {
        /// GHL's message (e.g. `Invalid token: access token is invalid`).
        message: String,
        /// Rate-limit headers, when an answer arrived.
        limits: Box<RateLimitInfo>,
    },
    /// Any other 4xx: the request itself is wrong (validation 422, business rule 400, 403 …).
    #[error("GHL rejected the request ({status}): {message}")]
    Permanent {
        /// HTTP status.
        status: u16,
        /// GHL's message; validation messages are joined with `; `.
        message: String,
        /// On `400 This location does not allow duplicated contacts.`: the existing contact.
        existing_contact_id: Option<String>,
        /// GHL's `traceId`, for support requests.
        trace_id: Option<String>,
        /// Rate-limit headers of the response.
        limits: Box<RateLimitInfo>,
    },
    /// A 2xx answer whose body is not what the API documents.
    #[error("cannot decode GHL response ({status}): {message}")]
    Decode {
        /// HTTP status.
        status: u16,
        /// The decoding error.
        message: String,
        /// Rate-limit headers of the response.
        limits: Box<RateLimitInfo>,
    },
}

impl GhlError {
    /// True for the classes worth retrying later ([`GhlError::RateLimited`], [`GhlError::Transient`]).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Transient { .. })
    }

    /// The wait GHL asked for, on a 429.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The rate-limit headers of the failed response (all `None` when no answer arrived).
    pub fn limits(&self) -> &RateLimitInfo {
        match self {
            Self::RateLimited { limits, .. }
            | Self::Transient { limits, .. }
            | Self::Unauthorized { limits, .. }
            | Self::Permanent { limits, .. }
            | Self::Decode { limits, .. } => limits.as_ref(),
        }
    }

    /// The HTTP status, when an answer arrived (401 for every [`GhlError::Unauthorized`]).
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::RateLimited { .. } => Some(429),
            Self::Transient { status, .. } => *status,
            // Also reported for credentials refused locally (none configured, OAuth grant gone).
            Self::Unauthorized { .. } => Some(401),
            Self::Permanent { status, .. } | Self::Decode { status, .. } => Some(*status),
        }
    }

    /// The id of the contact that made a create fail as a duplicate.
    pub fn existing_contact_id(&self) -> Option<&str> {
        match self {
            Self::Permanent {
                existing_contact_id,
                ..
            } => existing_contact_id.as_deref(),
            _ => None,
        }
    }

    /// A short label for metrics and logs: `rate_limited`, `transient`, `unauthorized`,
    /// `permanent` or `decode`.
    pub fn class(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::Transient { .. } => "transient",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Permanent { .. } => "permanent",
            Self::Decode { .. } => "decode",
        }
    }

    pub(crate) fn transient(message: impl Into<String>) -> Self {
        Self::Transient {
            status: None,
            message: message.into(),
            limits: Box::default(),
        }
    }

    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::Unauthorized {
            message: message.into(),
            limits: Box::default(),
        }
    }

    /// Classifies a non-2xx answer from its status, headers and body.
    pub(crate) fn from_response(
        status: u16,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> Self {
        let limits = Box::new(RateLimitInfo::from_headers(headers));
        let parsed = ErrorBody::parse(body);
        let message = parsed
            .as_ref()
            .and_then(ErrorBody::message_text)
            .unwrap_or_else(|| fallback_message(status, body));
        match status {
            429 => Self::RateLimited {
                retry_after: super::rate_limit::parse_retry_after(headers)
                    .unwrap_or_else(|| limits.wait_after_429()),
                limits,
            },
            401 => Self::Unauthorized { message, limits },
            408 | 500..=599 => Self::Transient {
                status: Some(status),
                message,
                limits,
            },
            _ => Self::Permanent {
                status,
                message,
                existing_contact_id: parsed
                    .as_ref()
                    .and_then(|b| b.meta.as_ref())
                    .and_then(|m| m.contact_id.clone()),
                trace_id: parsed.and_then(|b| b.trace_id),
                limits,
            },
        }
    }
}

fn fallback_message(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        format!("HTTP {status} with an empty body")
    } else {
        // Bodies of proxies (Cloudflare HTML pages) can be long; keep the start only.
        text.chars().take(200).collect()
    }
}

/// GHL's (NestJS) error body: `{statusCode, message: string | string[], error?, meta?, traceId?}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ErrorBody {
    /// HTTP status repeated in the body.
    pub status_code: Option<u16>,
    /// One message, or a list of validation messages.
    pub message: Option<MessageText>,
    /// Status text (`Bad Request`) or, on some endpoints, the message itself.
    pub error: Option<serde_json::Value>,
    /// Extra data; on the duplicate-contact 400: `{contactId, contactName, matchingField}`.
    pub meta: Option<ErrorMeta>,
    /// GHL's request id.
    pub trace_id: Option<String>,
    /// OAuth errors use `error_description`.
    #[serde(rename = "error_description")]
    pub error_description: Option<String>,
}

/// `message` as GHL sends it: a string, or an array of strings from validation.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum MessageText {
    /// A single message.
    One(String),
    /// Validation messages.
    Many(Vec<String>),
}

/// `meta` of the duplicate-contact error.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ErrorMeta {
    /// The contact that already holds the email or phone.
    pub contact_id: Option<String>,
    /// Its name.
    pub contact_name: Option<String>,
    /// `email` or `phone`.
    pub matching_field: Option<String>,
}

impl ErrorBody {
    /// Parses a body leniently; `None` when it is not a JSON object.
    pub fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Self>(body).ok()
    }

    /// The human message: `message` (joined when a list), else `error` when it is a string,
    /// else `error_description`.
    pub fn message_text(&self) -> Option<String> {
        match &self.message {
            Some(MessageText::One(s)) if !s.is_empty() => return Some(s.clone()),
            Some(MessageText::Many(v)) if !v.is_empty() => return Some(v.join("; ")),
            _ => {}
        }
        // The unknown-contact 400 is seen with its text in `error` by some consumers.
        if let Some(serde_json::Value::String(s)) = &self.error {
            if !s.is_empty() {
                return Some(match &self.error_description {
                    Some(d) => format!("{s}: {d}"),
                    None => s.clone(),
                });
            }
        }
        self.error_description.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;

    #[test]
    fn classifies_statuses() {
        let h = HeaderMap::new();
        let dup = br#"{"statusCode":400,"message":"This location does not allow duplicated contacts.","meta":{"contactName":"John Doe","contactId":"abc","matchingField":"email"},"traceId":"t"}"#;
        let e = GhlError::from_response(400, &h, dup);
        assert_eq!(e.existing_contact_id(), Some("abc"));
        assert!(!e.is_retryable());
        let v = br#"{"statusCode":422,"message":["property customField should not exist","x"],"error":"Unprocessable Entity"}"#;
        match GhlError::from_response(422, &h, v) {
            GhlError::Permanent { message, .. } => {
                assert_eq!(message, "property customField should not exist; x")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(GhlError::from_response(502, &h, b"<html>").is_retryable());
        assert!(GhlError::from_response(408, &h, b"").is_retryable());
        assert!(matches!(
            GhlError::from_response(401, &h, br#"{"message":"Invalid JWT"}"#),
            GhlError::Unauthorized { .. }
        ));
        assert_eq!(
            GhlError::from_response(429, &h, b"").retry_after(),
            Some(crate::ghl::rate_limit::DEFAULT_RATE_LIMIT_WAIT)
        );
    }
}
