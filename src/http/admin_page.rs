//! The admin web page (`GET /admin/ui` and its files under `/admin/ui/…`) over the admin JSON API.
//!
//! The page holds no data and needs no token: it asks for the admin token, keeps it in the
//! tab's `sessionStorage` and sends it to the JSON API as a bearer token. Its files
//! (`src/http/admin_ui/`: the shell `index.html`, `style.css`, `core.js` and one script per
//! view) are embedded in the binary and served from this origin; the `Content-Security-Policy`
//! allows scripts and styles from this origin only (no inline code, no eval) and refuses
//! everything else (`default-src 'none'`) but `fetch` to this origin. How a view plugs in is
//! written at the top of `core.js`. The routing and the token guard are in [`super::admin`].

use axum::extract::Path;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};

use super::errors::ApiError;

/// One embedded file of the page.
pub struct Asset {
    /// Its name under `/admin/ui/`.
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// An [`Asset`] of `src/http/admin_ui/` by its file name.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_str!(concat!("admin_ui/", $name)),
        }
    };
}

/// Every file of the page; `index.html` is the shell served at [`PATH`].
pub const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("style.css", CSS),
    asset!("core.js", JS),
    asset!("overview.js", JS),
    asset!("events.js", JS),
    asset!("leads.js", JS),
    asset!("playground.js", JS),
    asset!("fields.js", JS),
];

/// Where the page is served.
pub const PATH: &str = "/admin/ui";

/// The `Content-Security-Policy` of the page and its files.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The embedded file named `name`.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

fn serve(asset: &'static Asset) -> Response {
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
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
    headers.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CSP),
    );
    response
}

/// `GET /admin/ui`: the shell, never cached, never framed.
pub async fn page() -> Response {
    match asset("index.html") {
        Some(index) => serve(index),
        None => ApiError::not_found("the admin page has no index.html").into_response(),
    }
}

/// `GET /admin/ui/{file}`: one file of the page (404 for any other name).
pub async fn file(Path(name): Path<String>) -> Response {
    match asset(&name) {
        Some(found) => serve(found),
        None => ApiError::not_found(format!("the admin page has no file {name:?}")).into_response(),
    }
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
    fn the_shell_loads_every_script_and_style_from_this_origin_only() {
        let index = asset("index.html").unwrap().body;
        for a in ASSETS.iter().filter(|a| a.name != "index.html") {
            let reference = format!("\"/admin/ui/{}\"", a.name);
            assert!(
                index.contains(&reference),
                "index.html does not load {}",
                a.name
            );
        }
        assert_eq!(index.matches("<script").count(), ASSETS.len() - 2);
        assert_eq!(index.matches("<script src=").count(), ASSETS.len() - 2);
        assert!(!index.contains("<style"));
        assert!(!CSP.contains("unsafe"));
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_injects_no_html() {
        // Inline handlers (`onclick=`…) and style attributes are refused by the policy; HTML
        // from data is never parsed; nothing is evaluated.
        for a in ASSETS {
            // The SVG namespace (the overview's chart) is a name, never fetched.
            let body = a.body.replace("\"http://www.w3.org/2000/svg\"", "");
            for banned in [
                "http://",
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
                " onclick=",
                " onsubmit=",
                " onload=",
                " style=",
            ] {
                assert!(!body.contains(banned), "{} contains {banned:?}", a.name);
            }
            // The only https:// allowed is the link to a contact in GHL's app.
            for (i, _) in a.body.match_indices("https://") {
                assert!(
                    a.body[i..].starts_with("https://app.gohighlevel.com/"),
                    "{} loads from elsewhere",
                    a.name
                );
            }
        }
    }
}
