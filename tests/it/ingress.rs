//! Webhook ingress over real HTTP with a real SQLite file: fixtures stored, duplicates
//! ignored, every refusal answered with its status and JSON body, and nothing stored for it.
#![allow(clippy::unwrap_used)]

use crate::common::{fixtures, spawn_app, TestApp, SECRET};
use formbridge::body::BodyLimits;
use formbridge::domain::EventId;
use formbridge::sources::auth::{hmac_sha256_hex, standard_webhooks_signature};
use formbridge::store::{EventFilter, EventStatus};
use serde_json::Value;

const SOURCES: [&str; 5] = ["jotform", "powr", "123formbuilder", "jivochat", "dripjobs"];

#[tokio::test]
async fn every_fixture_of_every_source_is_stored_verbatim() {
    let app = spawn_app(&[]).await;
    for source in SOURCES {
        let all = fixtures(source);
        assert!(
            !all.is_empty(),
            "no fixtures for {source} in tests/fixtures/{source}"
        );
        for fx in all {
            let resp = app
                .post_hook(
                    source,
                    Some(SECRET),
                    fx.content_type.as_deref(),
                    fx.body.clone(),
                )
                .await;
            assert_eq!(resp.status(), 200, "{source}/{}", fx.name);
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["result"], "ok", "{source}/{}", fx.name);
            // JivoChat answers exactly {"result":"ok"}; find its event by listing.
            let id = match body.get("event_id") {
                Some(id) => EventId(id.as_i64().unwrap()),
                None => {
                    assert_eq!(body, serde_json::json!({"result": "ok"}));
                    let filter = EventFilter {
                        source: Some(source.to_owned()),
                        limit: Some(1),
                        ..Default::default()
                    };
                    app.store.list_events(&filter).await.unwrap()[0].id
                }
            };
            let event = app
                .store
                .get_event(id)
                .await
                .unwrap()
                .expect("stored event");
            assert_eq!(event.summary.source, source);
            assert_eq!(event.summary.status, EventStatus::Pending);
            assert_eq!(
                event.body.as_ref(),
                fx.body.as_slice(),
                "{source}/{} body kept verbatim",
                fx.name
            );
            assert_eq!(event.content_type, fx.content_type);
        }
    }
}

#[tokio::test]
async fn a_repeated_delivery_is_acknowledged_but_stored_once() {
    let app = spawn_app(&[]).await;
    let fx = fixtures("jotform").remove(0);
    let first: Value = app
        .post_hook(
            "jotform",
            Some(SECRET),
            fx.content_type.as_deref(),
            fx.body.clone(),
        )
        .await
        .json()
        .await
        .unwrap();
    let second: Value = app
        .post_hook(
            "jotform",
            Some(SECRET),
            fx.content_type.as_deref(),
            fx.body.clone(),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["duplicate"], false);
    assert_eq!(second["duplicate"], true);
    assert_eq!(first["event_id"], second["event_id"]);
    assert_eq!(app.total_events().await, 1);
    let event = app
        .store
        .get_event(EventId(first["event_id"].as_i64().unwrap()))
        .await
        .unwrap()
        .unwrap();
    assert!(
        event.summary.dedupe_key.starts_with("submissionID:"),
        "{}",
        event.summary.dedupe_key
    );

    // JivoChat offline messages dedupe on their own id; a JSON resend is a duplicate too.
    let jivo = fixtures("jivochat")
        .into_iter()
        .find(|f| f.name == "offline_message.json")
        .unwrap();
    for _ in 0..3 {
        let r = app
            .post_hook("jivochat", Some(SECRET), None, jivo.body.clone())
            .await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(app.total_events().await, 2);
}

async fn assert_refused(
    app: &TestApp,
    resp: reqwest::Response,
    status: u16,
    code: &str,
    detail_has: &str,
) {
    assert_eq!(resp.status(), status);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains(detail_has),
        "detail `{detail}` should mention `{detail_has}`"
    );
    assert_eq!(
        app.total_events().await,
        0,
        "a refused delivery must store nothing"
    );
}

#[tokio::test]
async fn refusals_have_statuses_and_json_errors_and_store_nothing() {
    let app = spawn_app(&[("server.body_limit_bytes", "2048")]).await;
    let json = Some("application/json");
    let ok_body = br#"{"email":"a@b.co"}"#.to_vec();

    let r = app.post_hook("dripjobs", None, json, ok_body.clone()).await;
    assert_refused(&app, r, 401, "unauthorized", "missing token").await;
    let r = app
        .post_hook("dripjobs", Some("wrong"), json, ok_body.clone())
        .await;
    assert_refused(&app, r, 401, "unauthorized", "wrong token").await;
    let r = app
        .post_hook("nosuch", Some(SECRET), json, ok_body.clone())
        .await;
    assert_refused(&app, r, 404, "not_found", "unknown source").await;
    let r = app
        .post_hook("dripjobs", Some(SECRET), json, b"{not json".to_vec())
        .await;
    assert_refused(&app, r, 400, "bad_request", "not valid application/json").await;
    let r = app
        .post_hook(
            "powr",
            Some(SECRET),
            Some("multipart/form-data; boundary=x"),
            b"no parts here".to_vec(),
        )
        .await;
    assert_refused(&app, r, 400, "bad_request", "multipart").await;
    let r = app
        .post_hook(
            "powr",
            Some(SECRET),
            Some("application/xml"),
            b"<a/>".to_vec(),
        )
        .await;
    assert_refused(&app, r, 415, "unsupported_media_type", "application/xml").await;
    let r = app
        .post_hook("powr", Some(SECRET), json, vec![b' '; 4096])
        .await;
    assert_refused(&app, r, 413, "payload_too_large", "2048 byte limit").await;
    let r = app
        .client
        .put(format!("{}/hooks/powr", app.base))
        .send()
        .await
        .unwrap();
    assert_refused(&app, r, 405, "method_not_allowed", "POST").await;
    let r = app.get("/nothing-here").await;
    assert_refused(&app, r, 404, "not_found", "/hooks/").await;
}

/// The issue-10 bodies: tens of thousands of repeated fields in a small body.
fn repeated_fields(n: usize) -> Vec<u8> {
    let mut body = b"email=lead%40example.com".to_vec();
    for _ in 0..n {
        body.extend_from_slice(b"&a");
    }
    body
}

fn headerless_parts(n: usize) -> Vec<u8> {
    let mut body = Vec::new();
    for _ in 0..n {
        body.extend_from_slice(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n");
    }
    body.extend_from_slice(b"--b--\r\n");
    body
}

fn nested_json(depth: usize) -> Vec<u8> {
    let mut body = "[".repeat(depth);
    body.push_str(&"]".repeat(depth));
    body.into_bytes()
}

#[tokio::test]
async fn bodies_over_the_field_value_and_depth_limits_are_refused_and_store_nothing() {
    let app = spawn_app(&[]).await;
    let form = Some("application/x-www-form-urlencoded");
    let r = app
        .post_hook("powr", Some(SECRET), form, repeated_fields(60_000))
        .await;
    assert_refused(&app, r, 413, "too_many_fields", "server.max_form_fields").await;
    let multipart = Some("multipart/form-data; boundary=b");
    let r = app
        .post_hook(
            "123formbuilder",
            Some(SECRET),
            multipart,
            headerless_parts(1_001),
        )
        .await;
    assert_refused(&app, r, 413, "too_many_fields", "server.max_form_fields").await;
    let json = Some("application/json");
    let many: Vec<u32> = (0..20_000).collect();
    let body = serde_json::to_vec(&serde_json::json!({ "deal_id": "1", "values": many })).unwrap();
    let r = app.post_hook("dripjobs", Some(SECRET), json, body).await;
    assert_refused(&app, r, 413, "too_many_fields", "server.max_json_values").await;
    let r = app
        .post_hook("dripjobs", Some(SECRET), json, nested_json(33))
        .await;
    assert_refused(&app, r, 413, "too_deeply_nested", "server.max_json_depth").await;
    // A JSON key repeated under a long prefix would flatten into far more than the body.
    let long_key = "k".repeat(100_000);
    let body = format!(r#"{{"{long_key}":[{}]}}"#, vec!["1"; 20].join(","));
    let r = app
        .post_hook("dripjobs", Some(SECRET), json, body.into_bytes())
        .await;
    assert_refused(&app, r, 413, "payload_too_large", "server.body_limit_bytes").await;

    // Just within every limit: stored.
    let ok = [
        (form, repeated_fields(999)),
        (multipart, headerless_parts(1_000)),
        (json, nested_json(32)),
    ];
    for (content_type, body) in ok {
        let r = app
            .post_hook("powr", Some(SECRET), content_type, body)
            .await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    assert_eq!(app.total_events().await, 3);
}

#[tokio::test]
async fn the_limits_are_configurable() {
    let app = spawn_app(&[
        ("server.max_form_fields", "3"),
        ("server.max_json_values", "4"),
        ("server.max_json_depth", "2"),
    ])
    .await;
    let form = Some("application/x-www-form-urlencoded");
    let r = app
        .post_hook("powr", Some(SECRET), form, b"a=1&b=2&c=3&d=4".to_vec())
        .await;
    assert_refused(&app, r, 413, "too_many_fields", "more than 3 form fields").await;
    let json = Some("application/json");
    let r = app
        .post_hook("powr", Some(SECRET), json, br#"{"a":1,"b":2}"#.to_vec())
        .await;
    assert_refused(&app, r, 413, "too_many_fields", "more than 4 JSON values").await;
    let r = app
        .post_hook("powr", Some(SECRET), json, b"[[[]]]".to_vec())
        .await;
    assert_refused(&app, r, 413, "too_deeply_nested", "server.max_json_depth").await;
    let r = app
        .post_hook("powr", Some(SECRET), form, b"a=1&b=2&c=3".to_vec())
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.total_events().await, 1);
}

#[tokio::test]
async fn a_body_streamed_past_the_limit_without_content_length_is_refused() {
    let app = spawn_app(&[("server.body_limit_bytes", "1024")]).await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..8).map(|_| Ok(vec![b'a'; 512])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let r = app
        .client
        .post(format!("{}/hooks/powr?token={SECRET}", app.base))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_refused(&app, r, 413, "payload_too_large", "1024").await;
}

#[tokio::test]
async fn token_may_come_in_the_configured_header() {
    let app = spawn_app(&[]).await;
    let body = br#"{"deal_id":"1","customer_email":"x@y.co"}"#.to_vec();
    let r = app
        .client
        .post(format!("{}/hooks/dripjobs", app.base))
        .header("x-webhook-secret", SECRET)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.total_events().await, 1);
}

#[tokio::test]
async fn hmac_signed_source_checks_the_signature() {
    let app = spawn_app(&[
        ("sources.signed.auth", "hmac"),
        ("sources.signed.secret", "hmac-key"),
        ("sources.signed.signature_header", "x-hub-signature-256"),
    ])
    .await;
    let body = br#"{"email":"a@b.co","id":"42"}"#.to_vec();
    let post = |sig: Option<String>| {
        let mut req = app
            .client
            .post(format!("{}/hooks/signed", app.base))
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(sig) = sig {
            req = req.header("x-hub-signature-256", sig);
        }
        req.send()
    };
    let r = post(None).await.unwrap();
    assert_refused(&app, r, 401, "unauthorized", "missing signature header").await;
    let r = post(Some(format!(
        "sha256={}",
        hmac_sha256_hex(b"other-key", &body)
    )))
    .await
    .unwrap();
    assert_refused(&app, r, 401, "unauthorized", "does not match").await;
    let r = post(Some(format!(
        "sha256={}",
        hmac_sha256_hex(b"hmac-key", &body)
    )))
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.total_events().await, 1);
}

#[tokio::test]
async fn standard_webhooks_source_checks_signature_and_timestamp() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let app = spawn_app(&[
        ("sources.std.auth", "standard_webhooks"),
        ("sources.std.secret", secret),
        ("sources.std.dedupe_field", "id"),
    ])
    .await;
    let key = formbridge::sources::auth::decode_standard_webhooks_secret(secret).unwrap();
    let body = br#"{"id":"evt_1","email":"a@b.co"}"#.to_vec();
    let send = |ts: i64, sig: String| {
        app.client
            .post(format!("{}/hooks/std", app.base))
            .header("content-type", "application/json")
            .header("webhook-id", "msg_1")
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(body.clone())
            .send()
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let stale = now - 3600;
    let r = send(
        stale,
        standard_webhooks_signature(&key, "msg_1", stale, &body),
    )
    .await
    .unwrap();
    assert_refused(&app, r, 401, "unauthorized", "webhook-timestamp").await;
    let r = send(
        now,
        standard_webhooks_signature(b"wrong", "msg_1", now, &body),
    )
    .await
    .unwrap();
    assert_refused(&app, r, 401, "unauthorized", "does not match").await;
    let r = send(now, standard_webhooks_signature(&key, "msg_1", now, &body))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let event_id = r.json::<Value>().await.unwrap()["event_id"]
        .as_i64()
        .unwrap();
    let event = app
        .store
        .get_event(EventId(event_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.summary.dedupe_key, "id:evt_1");
}

#[tokio::test]
async fn standard_webhooks_deliveries_are_deduplicated_by_webhook_id_not_body() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let app = spawn_app(&[
        ("sources.std.auth", "standard_webhooks"),
        ("sources.std.secret", secret),
    ])
    .await;
    let key = formbridge::sources::auth::decode_standard_webhooks_secret(secret).unwrap();
    let body = br#"{"email":"same@example.com"}"#.to_vec();
    let send = |id: &'static str| {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        app.client
            .post(format!("{}/hooks/std", app.base))
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", now.to_string())
            .header(
                "webhook-signature",
                standard_webhooks_signature(&key, id, now, &body),
            )
            .body(body.clone())
            .send()
    };
    let mut answers = Vec::new();
    for id in ["msg_a", "msg_b", "msg_a"] {
        let r = send(id).await.unwrap();
        assert_eq!(r.status(), 200);
        answers.push(r.json::<Value>().await.unwrap());
    }
    let duplicates: Vec<bool> = answers
        .iter()
        .map(|a| a["duplicate"].as_bool().unwrap())
        .collect();
    assert_eq!(duplicates, [false, false, true], "{answers:?}");
    assert_eq!(answers[2]["event_id"], answers[0]["event_id"]);
    assert_eq!(app.total_events().await, 2);
    let first = app
        .store
        .get_event(EventId(answers[0]["event_id"].as_i64().unwrap()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.summary.dedupe_key, "webhook-id:msg_a");
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = spawn_app(&[]).await;
    let r = app.get("/healthz").await;
    assert_eq!(r.status(), 200);
    let r = app.get("/readyz").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    let fx = fixtures("jivochat").remove(0);
    app.post_hook(
        "jivochat",
        Some(SECRET),
        fx.content_type.as_deref(),
        fx.body,
    )
    .await;
    app.post_hook("jivochat", Some("nope"), None, b"{}".to_vec())
        .await;
    let text = app.metrics_text().await;
    assert!(
        text.contains(
            r#"formbridge_webhooks_received_total{source="jivochat",outcome="accepted"}"#
        ),
        "{text}"
    );
    assert!(text.contains(
        r#"formbridge_webhooks_received_total{source="jivochat",outcome="unauthorized"}"#
    ));
    assert!(text.contains("formbridge_webhook_ingest_seconds_bucket"));
    assert!(text.contains(r#"formbridge_events{status="pending"}"#));
}

#[tokio::test]
async fn a_source_without_a_secret_is_not_served_and_enabled_without_secret_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("x.db").display());
    let source = formbridge::settings::ConfigSource::named(crate::common::config_dir(), "test");
    let base = [("server.addr", "127.0.0.1:0"), ("store.url", url.as_str())];
    let settings = formbridge::settings::Settings::load_without_env(&source, &base).unwrap();
    assert_eq!(settings.enabled_sources().count(), 0);
    let app = crate::common::spawn_with(settings, dir).await;
    let r = app
        .post_hook("jotform", Some("x"), None, b"{}".to_vec())
        .await;
    assert_refused(
        &app,
        r,
        404,
        "not_found",
        "FORMBRIDGE__SOURCES__JOTFORM__SECRET",
    )
    .await;

    let mut forced = base.to_vec();
    forced.push(("sources.jotform.enabled", "true"));
    let err = formbridge::settings::Settings::load_without_env(&source, &forced).unwrap_err();
    assert!(err.to_string().contains("sources.jotform.secret"), "{err}");
}

#[tokio::test]
async fn jivochat_is_read_as_json_whatever_the_content_type() {
    let app = spawn_app(&[]).await;
    let fx = fixtures("jivochat")
        .into_iter()
        .find(|f| f.name == "offline_message.json")
        .unwrap();
    // curl's default for --data-binary is a urlencoded content type.
    let form = Some("application/x-www-form-urlencoded");
    let r = app
        .post_hook("jivochat", Some(SECRET), form, fx.body.clone())
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .post_hook("jivochat", Some(SECRET), form, b"a=b".to_vec())
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(app.total_events().await, 1);
    // The worker reads the stored delivery the same way.
    let name = formbridge::domain::SourceName::parse("jivochat").unwrap();
    let settings: formbridge::settings::SourceSettings = serde_json::from_str("{}").unwrap();
    let sub = formbridge::sources::normalize(
        &name,
        formbridge::sources::SourceKind::parse("jivochat").unwrap(),
        &settings.read_options(),
        &BodyLimits::UNLIMITED,
        form,
        &bytes::Bytes::from(fx.body),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    assert_eq!(sub.contact.email.unwrap().as_str(), "email@example.com");
}

/// A `Write` into a shared buffer, for capturing the log.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_refused_path_segment_is_logged_escaped_so_it_cannot_forge_a_line() {
    // The pretty format (the default), captured for this test's thread (a current-thread
    // runtime: the server's tasks log here too).
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("formbridge=info,tower_http=info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = spawn_app(&[]).await;
    // Another test's thread may have registered the refusal's callsite while this subscriber
    // was being made, caching it as of no interest to anyone (tracing-core computes a
    // callsite's interest from the dispatchers alive at its first use): recompute every
    // callsite's interest now that this one exists.
    tracing::callsite::rebuild_interest_cache();
    let r = app
        .client
        .post(format!(
            "{}/hooks/a%0A2030-01-01T00:00:00Z%20%20INFO%20forged",
            app.base
        ))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("a\n2030"));
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let refused = log
        .lines()
        .find(|l| l.contains("webhook refused"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{log}"));
    assert!(
        refused.contains(r"a\n2030-01-01T00:00:00Z  INFO forged"),
        "{refused}"
    );
    assert!(
        !log.lines().any(|l| l.starts_with("2030-01-01")),
        "a forged line:\n{log}"
    );
}
