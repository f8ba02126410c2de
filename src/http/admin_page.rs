//! The admin web page (`GET /admin/ui`): one self-contained HTML file over the admin JSON API.
//!
//! The page holds no data and needs no token: it asks for the admin token, keeps it in the
//! tab's `sessionStorage` and sends it to the JSON API as a bearer token. It loads nothing from
//! anywhere: its one inline `<style>` and one inline `<script>` are allowed by their SHA-256
//! hashes in the `Content-Security-Policy`, computed once from the embedded file (so an edit of
//! the page can never leave a stale hash), and everything else is refused (`default-src
//! 'none'`), but for `fetch` to this origin. The routing and the token guard are in
//! [`super::admin`].

use std::sync::LazyLock;

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The page, embedded in the binary.
pub const HTML: &str = include_str!("admin_page.html");

/// Where the page is served.
pub const PATH: &str = "/admin/ui";

/// The `Content-Security-Policy` of the page.
static CSP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        source_hash(inline(HTML, "script")),
        source_hash(inline(HTML, "style")),
    )
});

/// The text of the first `<tag>…</tag>` of `html` (empty if there is none).
fn inline<'a>(html: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    html.split_once(open.as_str())
        .and_then(|(_, rest)| rest.split_once(close.as_str()))
        .map_or("", |(text, _)| text)
}

/// A CSP source expression allowing exactly `text` as an inline script or style.
fn source_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// `GET /admin/ui`: the page, never cached, never framed.
pub async fn page() -> Response {
    let mut response = HTML.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Ok(csp) = HeaderValue::from_str(&CSP) {
        headers.insert(HeaderName::from_static("content-security-policy"), csp);
    }
    response
}

/// `GET /admin`: to the page.
pub async fn to_page() -> Redirect {
    Redirect::to(PATH)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_hashes_the_one_inline_script_and_style() {
        assert_eq!(HTML.matches("<script").count(), 1);
        assert_eq!(HTML.matches("<style").count(), 1);
        assert!(inline(HTML, "script").contains("/admin/events"));
        assert!(inline(HTML, "style").contains("body"));
        // The hash of a known text (as a browser computes it).
        assert_eq!(
            source_hash("alert(1)"),
            "'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='"
        );
        assert!(CSP.contains("script-src 'sha256-"));
        assert!(!CSP.contains("unsafe"));
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_injects_no_html() {
        // Inline handlers (`onclick=`…) would need 'unsafe-hashes'; HTML from data is never parsed.
        for banned in [
            "http://",
            "https://",
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            " onclick=",
            " onsubmit=",
            " onload=",
            " style=",
        ] {
            assert!(!HTML.contains(banned), "the page contains {banned:?}");
        }
    }
}
