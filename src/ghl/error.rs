//! The one error type of the GHL client, and how GHL's HTTP answers are classified into it.
//!
//! Each variant says what happened; the client never retries and never decides. What the
//! dispatcher does with each class sits in one table, `dispatch::decision`.
//! - our configuration cannot make the request (refused before sending) → [`GhlError::Config`]
//! - the request cannot be encoded → [`GhlError::Encode`]
//! - no (complete) answer: connection refused or reset, timeout, cut-off body, token-store or
//!   token-endpoint outage → [`GhlError::Transport`]
//! - 429 → [`GhlError::RateLimited`] with a wait from `Retry-After`, else the `x-ratelimit-*`
//!   headers
//! - 401, or credentials GHL's OAuth endpoint refuses → [`GhlError::Unauthorized`]
//! - 403 → [`GhlError::Forbidden`] (the token has no access to this location or scope)
//! - 404 → [`GhlError::NotFound`]
//! - 422 → [`GhlError::Validation`]
//! - 408 and 5xx → [`GhlError::Server`]
//! - any other 4xx (400 business rules such as the duplicate contact, 409 …) →
//!   [`GhlError::Rejected`]; on the duplicate-contact 400, `existing_contact_id` carries
//!   `meta.contactId`
//! - a 2xx whose body does not decode → [`GhlError::Decode`]

use std::time::Duration;

use serde::Deserialize;

use super::rate_limit::RateLimitInfo;

/// Why a GHL call failed.
#[derive(Debug, thiserror::Error)]
pub enum GhlError {
    /// Refused before sending: the configuration cannot make this request (a `ghl.api_version`
    /// or token that is not a valid header value, a `ghl.base_url` that cannot carry a path, a
    /// location with no credentials). Nothing reached GHL.
    #[error("GHL request not sent, the configuration cannot make it: {message}")]
    Config {
        /// What is wrong, naming the setting.
        message: String,
    },
    /// The request could not be encoded (a query or body serde refuses). Nothing reached GHL.
    #[error("GHL request not sent, it cannot be encoded: {message}")]
    Encode {
        /// The encoding error.
        message: String,
    },
    /// No complete answer: connection refused or reset, timeout, a body cut off, or an outage
    /// of the token store or the OAuth token endpoint. A request that timed out or lost its
    /// connection may still have been applied by GHL.
    #[error("no answer from GHL (status {status:?}): {message}")]
    Transport {
        /// HTTP status, when the head of an answer arrived.
        status: Option<u16>,
        /// What went wrong.
        message: String,
        /// Rate-limit headers, when an answer arrived.
        limits: Box<RateLimitInfo>,
    },
    /// 429: wait `retry_after` before spending this location's budget again.
    #[error("GHL rate limit hit; retry after {retry_after:?}")]
    RateLimited {
        /// From `Retry-After` when present, else derived from the `x-ratelimit-*` headers.
        retry_after: Duration,
        /// The rate-limit headers of the 429 response.
        limits: Box<RateLimitInfo>,
    },
    /// 401, or credentials the OAuth endpoint refuses: the token, its grant or the `Version`
    /// header is wrong. Retrying will not help until the token or the grant is fixed.
    #[error("GHL refused the credentials: {message}")]
    Unauthorized {
        /// GHL's message (e.g. `Invalid token: access token is invalid`).
        message: String,
        /// Rate-limit headers, when an answer arrived.
        limits: Box<RateLimitInfo>,
    },
    /// 403: the token is valid but has no access to this location (or lacks a scope).
    #[error("GHL denied access (403): {message}")]
    Forbidden {
        /// GHL's message.
        message: String,
        /// GHL's `traceId`, for support requests.
        trace_id: Option<String>,
        /// Rate-limit headers of the response.
        limits: Box<RateLimitInfo>,
    },
    /// 404: what the request names (a contact, a task) does not exist.
    #[error("GHL found nothing there (404): {message}")]
    NotFound {
        /// GHL's message.
        message: String,
        /// GHL's `traceId`, for support requests.
        trace_id: Option<String>,
        /// Rate-limit headers of the response.
        limits: Box<RateLimitInfo>,
    },
    /// 422: GHL's validation refused the body (messages joined with `; `).
    #[error("GHL refused the data (422): {message}")]
    Validation {
        /// GHL's validation messages, joined with `; `.
        message: String,
        /// GHL's `traceId`, for support requests.
        trace_id: Option<String>,
        /// Rate-limit headers of the response.
        limits: Box<RateLimitInfo>,
    },
    /// 408 or 5xx: GHL (or a proxy before it) could not answer now.
    #[error("GHL server error ({status}): {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// GHL's message, or the start of the body.
        message: String,
        /// Rate-limit headers of the response.
        limits: Box<RateLimitInfo>,
    },
    /// Any other 4xx: a business rule refused the request (400 duplicate contact, 409 …).
    #[error("GHL rejected the request ({status}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// GHL's message.
        message: String,
        /// On `400 This location does not allow duplicated contacts.`: the existing contact.
        existing_contact_id: Option<String>,
        /// GHL's `traceId`, for support requests.
        trace_id: Option<String>,
        /// Rate-limit headers of the response.
        limits: Box<RateLimitInfo>,
    },
    /// A 2xx answer whose body is not what the API documents (the request was applied).
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
    /// The wait GHL asked for, on a 429.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The rate-limit headers of the failed response (all `None` when no answer arrived).
    pub fn limits(&self) -> &RateLimitInfo {
        static NONE: std::sync::OnceLock<RateLimitInfo> = std::sync::OnceLock::new();
        match self {
            Self::Config { .. } | Self::Encode { .. } => NONE.get_or_init(RateLimitInfo::default),
            Self::Transport { limits, .. }
            | Self::RateLimited { limits, .. }
            | Self::Unauthorized { limits, .. }
            | Self::Forbidden { limits, .. }
            | Self::NotFound { limits, .. }
            | Self::Validation { limits, .. }
            | Self::Server { limits, .. }
            | Self::Rejected { limits, .. }
            | Self::Decode { limits, .. } => limits.as_ref(),
        }
    }

    /// The HTTP status, when an answer arrived (401 also for credentials refused locally).
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Config { .. } | Self::Encode { .. } => None,
            Self::Transport { status, .. } => *status,
            Self::RateLimited { .. } => Some(429),
            Self::Unauthorized { .. } => Some(401),
            Self::Forbidden { .. } => Some(403),
            Self::NotFound { .. } => Some(404),
            Self::Validation { .. } => Some(422),
            Self::Server { status, .. }
            | Self::Rejected { status, .. }
            | Self::Decode { status, .. } => Some(*status),
        }
    }

    /// Whether GHL says the record the request names (a contact, task or note id) does not
    /// exist: a 404, or the `400 "<Thing> with id <id> not found"` GHL answers for unknown
    /// ids (`reference/ghl-api.md`, error table: 400, not 404, for an unknown contact id; the
    /// task and note texts are inferred from it).
    pub fn names_missing_record(&self) -> bool {
        match self {
            Self::NotFound { .. } => true,
            Self::Rejected {
                status: 400,
                message,
                ..
            } => message.contains(" with id ") && message.ends_with("not found"),
            _ => false,
        }
    }

    /// Whether GHL may still carry the request out although no answer said so: no answer
    /// came (a timeout, a dropped connection), or a gateway in front of GHL gave up waiting
    /// for it (502, 504) while the work behind may go on. Any other answer came after GHL was
    /// done with the request.
    pub fn may_still_land(&self) -> bool {
        match self {
            Self::Transport { .. } => true,
            Self::Server { status, .. } => matches!(status, 502 | 504),
            _ => false,
        }
    }

    /// The id of the contact that made a create fail as a duplicate.
    pub fn existing_contact_id(&self) -> Option<&str> {
        match self {
            Self::Rejected {
                existing_contact_id,
                ..
            } => existing_contact_id.as_deref(),
            _ => None,
        }
    }

    /// The class as a short label for metrics and logs (`config`, `encode`, `transport`,
    /// `rate_limited`, `unauthorized`, `forbidden`, `not_found`, `validation`, `server`,
    /// `rejected`, `decode`).
    pub fn class(&self) -> &'static str {
        match self {
            Self::Config { .. } => "config",
            Self::Encode { .. } => "encode",
            Self::Transport { .. } => "transport",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::NotFound { .. } => "not_found",
            Self::Validation { .. } => "validation",
            Self::Server { .. } => "server",
            Self::Rejected { .. } => "rejected",
            Self::Decode { .. } => "decode",
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::Config {
            message: message.into(),
        }
    }

    pub(crate) fn encode(message: impl Into<String>) -> Self {
        Self::Encode {
            message: message.into(),
        }
    }

    pub(crate) fn transport(message: impl Into<String>) -> Self {
        Self::Transport {
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
        let trace_id = parsed.as_ref().and_then(|b| b.trace_id.clone());
        match status {
            429 => Self::RateLimited {
                retry_after: super::rate_limit::parse_retry_after(headers)
                    .unwrap_or_else(|| limits.wait_after_429()),
                limits,
            },
            401 => Self::Unauthorized { message, limits },
            403 => Self::Forbidden {
                message,
                trace_id,
                limits,
            },
            404 => Self::NotFound {
                message,
                trace_id,
                limits,
            },
            422 => Self::Validation {
                message,
                trace_id,
                limits,
            },
            408 | 500..=599 => Self::Server {
                status,
                message,
                limits,
            },
            _ => Self::Rejected {
                status,
                message,
                existing_contact_id: parsed
                    .as_ref()
                    .and_then(|b| b.meta.as_ref())
                    .and_then(|m| m.contact_id.clone()),
                trace_id,
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
        assert_eq!(e.class(), "rejected");
        let v = br#"{"statusCode":422,"message":["property customField should not exist","x"],"error":"Unprocessable Entity"}"#;
        match GhlError::from_response(422, &h, v) {
            GhlError::Validation { message, .. } => {
                assert_eq!(message, "property customField should not exist; x")
            }
            other => panic!("unexpected {other:?}"),
        }
        for (status, class) in [
            (502, "server"),
            (408, "server"),
            (401, "unauthorized"),
            (403, "forbidden"),
            (404, "not_found"),
            (409, "rejected"),
        ] {
            let e = GhlError::from_response(status, &h, br#"{"message":"m"}"#);
            assert_eq!(e.class(), class, "{status}");
            assert_eq!(e.status(), Some(status));
        }
        assert_eq!(
            GhlError::from_response(429, &h, b"").retry_after(),
            Some(crate::ghl::rate_limit::DEFAULT_RATE_LIMIT_WAIT)
        );
    }

    #[test]
    fn an_unknown_id_is_a_missing_record_whether_400_or_404() {
        let h = HeaderMap::new();
        let missing = [
            (
                400,
                &br#"{"statusCode":400,"message":"Contact with id lookup not found"}"#[..],
            ),
            (
                400,
                br#"{"statusCode":400,"message":"Note with id n1 not found"}"#,
            ),
            (404, br#"{"message":"Not Found"}"#),
        ];
        for (status, body) in missing {
            assert!(GhlError::from_response(status, &h, body).names_missing_record());
        }
        let other = [
            (
                400,
                &br#"{"message":"This location does not allow duplicated contacts."}"#[..],
            ),
            (422, br#"{"message":["body should not be empty"]}"#),
            (502, b""),
        ];
        for (status, body) in other {
            assert!(!GhlError::from_response(status, &h, body).names_missing_record());
        }
    }
}
