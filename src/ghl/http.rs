//! What every GHL HTTP call shares, the API client's and the OAuth token endpoint's: the
//! `User-Agent`, and how a failed request is described.

/// `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("formbridge/", env!("CARGO_PKG_VERSION"));

/// A reqwest error with its source chain (e.g. "connection closed before message completed"),
/// without the URL (it can carry ids; never tokens).
pub(crate) fn describe_reqwest_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "response body cut off"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
