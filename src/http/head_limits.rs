//! Limits on a request head (URI length, header count and sizes), checked before any route
//! runs, so a header flood is answered 431 (or 414) with a JSON error instead of being stored
//! with a delivery, echoed into an answer or logged.
//!
//! hyper's parser has its own, larger caps: [`PARSER_BUFFER_BYTES`] for a whole head and 100
//! headers. A head past those never becomes a request; hyper answers it 431 (or 400 for a head
//! it cannot parse) with an empty body and closes the connection. The limits here sit below
//! those caps so that every head the parser takes gets a JSON answer naming what to fix. They
//! follow nginx's defaults (an 8 KiB header line, 32 KiB of headers), far above what a form tool
//! sends.

use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::errors::ApiError;

/// Most headers a request may have.
pub const MAX_HEADERS: usize = 64;

/// Most bytes of one header (name and value).
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

/// Most bytes of all headers together (names and values).
pub const MAX_HEADERS_BYTES: usize = 32 * 1024;

/// Most bytes of the request target (path and query).
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// hyper's read buffer per connection (`http1::Builder::max_buf_size`): the largest head it
/// parses at all, and what a connection holding a half-sent head can make the server keep.
pub const PARSER_BUFFER_BYTES: usize = 64 * 1024;

/// A head over one of the limits: its answer and the metrics label of the reason.
#[derive(Debug)]
pub struct HeadRefusal {
    pub reason: &'static str,
    pub error: ApiError,
}

impl HeadRefusal {
    fn new(status: StatusCode, reason: &'static str, detail: String) -> Self {
        Self {
            reason,
            error: ApiError::new(status, reason, detail),
        }
    }
}

impl IntoResponse for HeadRefusal {
    /// The JSON error, with the connection closed after it (a flooding client does not keep it);
    /// counted in `formbridge_http_heads_refused_total`.
    fn into_response(self) -> Response {
        metrics::counter!(crate::metrics::HTTP_HEADS_REFUSED, "reason" => self.reason).increment(1);
        // Per request, so at debug: a flood must not flood the log.
        tracing::debug!(reason = self.reason, "request head refused");
        let mut response = self.error.into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }
}

/// Checks `request`'s head against the limits.
pub fn check<B>(request: &Request<B>) -> Result<(), HeadRefusal> {
    check_uri(request.uri())?;
    check_headers(request.headers())
}

fn check_uri(uri: &Uri) -> Result<(), HeadRefusal> {
    let len = uri.path_and_query().map_or(0, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    if len > MAX_URI_BYTES {
        return Err(HeadRefusal::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request URI is {len} bytes; at most {MAX_URI_BYTES} are accepted (a webhook URL needs a source name and a token)"),
        ));
    }
    Ok(())
}

fn check_headers(headers: &HeaderMap) -> Result<(), HeadRefusal> {
    let count = headers.len();
    if count > MAX_HEADERS {
        return Err(HeadRefusal::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "too_many_headers",
            format!("the request has {count} headers; at most {MAX_HEADERS} are accepted"),
        ));
    }
    let mut total = 0usize;
    for (name, value) in headers {
        let len = name.as_str().len() + value.len();
        if len > MAX_HEADER_BYTES {
            return Err(HeadRefusal::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "header_too_large",
                format!("header `{name}` is {len} bytes; at most {MAX_HEADER_BYTES} are accepted per header"),
            ));
        }
        total += len;
    }
    if total > MAX_HEADERS_BYTES {
        return Err(HeadRefusal::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "the headers add up to {total} bytes; at most {MAX_HEADERS_BYTES} are accepted"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn request(uri: &str, headers: &[(&str, String)]) -> Request<()> {
        let mut builder = Request::builder().uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        builder.body(()).unwrap()
    }

    fn reason(request: &Request<()>) -> Option<&'static str> {
        check(request).err().map(|r| r.reason)
    }

    #[test]
    fn each_limit_is_inclusive() {
        let at = |n: usize| "a".repeat(n);
        assert_eq!(
            reason(&request(&format!("/{}", at(MAX_URI_BYTES - 1)), &[])),
            None
        );
        assert_eq!(
            reason(&request(&format!("/{}", at(MAX_URI_BYTES)), &[])),
            Some("uri_too_long")
        );
        let many: Vec<(&str, String)> = (0..MAX_HEADERS).map(|_| ("x-a", at(1))).collect();
        assert_eq!(reason(&request("/", &many)), None);
        let more: Vec<(&str, String)> = (0..=MAX_HEADERS).map(|_| ("x-a", at(1))).collect();
        assert_eq!(reason(&request("/", &more)), Some("too_many_headers"));
        let one = |n: usize| request("/", &[("x-b", at(n - 3))]);
        assert_eq!(reason(&one(MAX_HEADER_BYTES)), None);
        assert_eq!(reason(&one(MAX_HEADER_BYTES + 1)), Some("header_too_large"));
        let quarter = MAX_HEADERS_BYTES / 4 - 3;
        let four: Vec<(&str, String)> = (0..4).map(|_| ("x-c", at(quarter))).collect();
        assert_eq!(reason(&request("/", &four)), None);
        let five: Vec<(&str, String)> = (0..5).map(|_| ("x-c", at(quarter))).collect();
        assert_eq!(reason(&request("/", &five)), Some("headers_too_large"));
    }
}
