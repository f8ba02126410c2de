//! `sources.<name>.allow_from` over real HTTP: a delivery from outside the list gets 403 with a
//! JSON error and is not stored; the client address a proxy header names is believed only on a
//! connection from `server.trusted_proxies` (the test's connections come from 127.0.0.1).
#![allow(clippy::unwrap_used)]

use serde_json::Value;

use crate::common::{spawn_app, TestApp, SECRET};

const FORM: &str = "submissionID=9100&formID=1&email=ada%40example.com";

/// POSTs a Jotform delivery, with `x-forwarded-for: forwarded` when given.
async fn post(app: &TestApp, forwarded: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .post(format!("{}/hooks/jotform?token={SECRET}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(FORM);
    if let Some(value) = forwarded {
        request = request.header("x-forwarded-for", value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_delivery_from_outside_the_list_is_refused_403_and_not_stored() {
    let app = spawn_app(&[("sources.jotform.allow_from", "10.0.0.0/8")]).await;
    // Without a trusted proxy, the header is not believed: the client is 127.0.0.1.
    let refused = post(&app, Some("10.1.2.3")).await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "forbidden", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("sources.jotform.allow_from"),
        "{body}"
    );
    assert_eq!(app.total_events().await, 0);
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(
            "formbridge_webhooks_received_total{source=\"jotform\",outcome=\"forbidden\"}"
        ),
        "{metrics}"
    );

    // A source without a list is not affected.
    let other = app
        .post_hook(
            "123formbuilder",
            Some(SECRET),
            Some("application/x-www-form-urlencoded"),
            b"email=ada%40example.com".to_vec(),
        )
        .await;
    assert_eq!(other.status(), 200);
}

#[tokio::test]
async fn the_proxy_header_is_honoured_only_from_a_trusted_proxy() {
    let behind_proxy = spawn_app(&[
        ("sources.jotform.allow_from", "10.0.0.0/8, 127.0.0.1"),
        ("server.trusted_proxy_header", "x-forwarded-for"),
        ("server.trusted_proxies", "127.0.0.0/8"),
    ])
    .await;
    // From the trusted proxy: the right-most address it appended is the client.
    assert_eq!(post(&behind_proxy, Some("10.1.2.3")).await.status(), 200);
    // A client writing its own first entry does not get past the list.
    assert_eq!(
        post(&behind_proxy, Some("10.9.9.9, 203.0.113.5"))
            .await
            .status(),
        403
    );
    assert_eq!(behind_proxy.total_events().await, 1);

    // The same header from a proxy that is not trusted: the peer (127.0.0.1) is the client.
    let untrusted = spawn_app(&[
        ("sources.jotform.allow_from", "10.0.0.0/8"),
        ("server.trusted_proxy_header", "x-forwarded-for"),
        ("server.trusted_proxies", "192.0.2.0/24"),
    ])
    .await;
    assert_eq!(post(&untrusted, Some("10.1.2.3")).await.status(), 403);
    assert_eq!(untrusted.total_events().await, 0);
}

#[test]
fn the_lists_and_the_proxy_settings_are_checked_at_start_naming_the_key() {
    use formbridge::settings::{ConfigSource, Settings};
    let load = |extra: &[(&str, &str)]| {
        let source = ConfigSource::named(crate::common::config_dir(), "test");
        let mut overrides = vec![("sources.jotform.secret", SECRET)];
        overrides.extend_from_slice(extra);
        Settings::load_without_env(&source, &overrides)
    };
    for (extra, key) in [
        (
            vec![("sources.jotform.allow_from", "10.0.0.0/33")],
            "sources.jotform.allow_from",
        ),
        (
            vec![("server.trusted_proxy_header", "x-forwarded-for")],
            "server.trusted_proxies",
        ),
        (
            vec![("server.trusted_proxies", "10.0.0.1")],
            "server.trusted_proxy_header",
        ),
        (
            vec![
                ("server.trusted_proxies", "10.0.0.1"),
                ("server.trusted_proxy_header", "bad header"),
            ],
            "server.trusted_proxy_header",
        ),
    ] {
        let err = load(&extra).unwrap_err();
        assert!(err.to_string().contains(key), "{extra:?}: {err}");
    }
}
