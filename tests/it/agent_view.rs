//! The JivoChat agent view against the GHL sandbox over real HTTP: a `chat_accepted` for a visitor
//! known in GHL is stored and answered with the contact's link, tags, open tasks and latest note;
//! a slow GHL, a spent budget or the switch off answer the plain `{"result":"ok"}` in time; a
//! burst of events for one visitor costs one look-up.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use formbridge::ghl::types::{
    ContactProperties, CreateNoteRequest, CreateTaskRequest, UpsertContactRequest,
};
use formbridge::ghl::{GhlClient, GhlClientConfig};
use ghl_sandbox::{FaultSpec, SandboxHandle};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::common::{wait_for, TestApp, SECRET};
use crate::dispatch::{app_for, sandbox_with, LOCATION, TOKEN};

const EMAIL: &str = "ada@example.com";
const DUPLICATE_SEARCH: &str = "/contacts/search/duplicate";

/// A JivoChat fixture from `tests/fixtures/jivochat/` with the visitor's email set to `email`.
fn chat_event(name: &str, email: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jivochat")
        .join(format!("{name}.json"));
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    event["visitor"]["email"] = json!(email);
    event
}

/// `n` `chat_updated` events of the visitor `EMAIL`, in chats `first_chat`, `first_chat + 1` …
fn chat_updates(n: u32, first_chat: u32) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let mut event = chat_event("chat_updated", EMAIL);
            event["chat_id"] = json!(first_chat + i);
            event
        })
        .collect()
}

/// Creates, through the sandbox's HTTP API, a contact with two tags, an open task, a completed
/// task and two notes (the newer one carrying a formbridge marker); returns its id.
async fn seed_known_visitor(ghl: &SandboxHandle) -> String {
    let config = GhlClientConfig {
        base_url: ghl.base_url.clone(),
        api_version: ghl_sandbox::API_VERSION.to_owned(),
        request_timeout: Duration::from_secs(5),
    };
    let client = GhlClient::with_static_token(config, LOCATION, SecretString::from(TOKEN)).unwrap();
    let contact = client
        .upsert_contact(&UpsertContactRequest {
            location_id: LOCATION.to_owned(),
            contact: ContactProperties {
                first_name: Some("Ada".into()),
                last_name: Some("Lovelace".into()),
                email: Some(EMAIL.into()),
                phone: Some("+14155550100".into()),
                ..ContactProperties::default()
            },
            ..UpsertContactRequest::default()
        })
        .await
        .unwrap()
        .body
        .contact;
    let id = contact.id;
    client
        .add_tags(LOCATION, &id, &["VIP".into(), "Jivochat".into()])
        .await
        .unwrap();
    for (title, due, completed) in [
        ("Call Ada back", "2030-01-02T10:00:00Z", false),
        ("Send the brochure", "2024-01-01T09:00:00Z", true),
    ] {
        client
            .create_task(
                LOCATION,
                &id,
                &CreateTaskRequest {
                    title: title.into(),
                    body: None,
                    due_date: due.into(),
                    completed,
                    assigned_to: None,
                },
            )
            .await
            .unwrap();
    }
    for body in ["First call: no answer", "Wants a quote\n\n[formbridge:7:3]"] {
        let note = CreateNoteRequest {
            body: body.into(),
            ..CreateNoteRequest::default()
        };
        client.create_note(LOCATION, &id, &note).await.unwrap();
    }
    id
}

/// Posts a JivoChat event; returns the answer's body and how long it took.
async fn post_chat(app: &TestApp, event: &Value) -> (Value, Duration) {
    let started = Instant::now();
    let response = app
        .post_hook(
            "jivochat",
            Some(SECRET),
            Some("application/json"),
            event.to_string().into_bytes(),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    (body, started.elapsed())
}

/// GET requests the sandbox received on `path` (the look-ups; seeding only writes).
fn gets(ghl: &SandboxHandle, path: &str) -> usize {
    ghl.state().requests_to("GET", path).len()
}

/// GET requests the sandbox received, on any path.
fn all_gets(ghl: &SandboxHandle) -> usize {
    ghl.state()
        .requests
        .iter()
        .filter(|r| r.method == "GET")
        .count()
}

/// An app on the sandbox with dispatch off, so that every GHL request is the agent view's.
async fn agent_view_app(ghl: &SandboxHandle, extra: &[(&str, &str)]) -> TestApp {
    let mut overrides = vec![("dispatch.enabled", "false")];
    overrides.extend_from_slice(extra);
    app_for(ghl, "", &overrides).await
}

fn row<'a>(answer: &'a Value, title: &str) -> Option<&'a str> {
    answer["custom_data"]
        .as_array()?
        .iter()
        .find(|r| r["title"] == title)
        .and_then(|r| r["content"].as_str())
}

#[tokio::test]
async fn a_known_visitor_is_shown_to_the_agent_and_the_delivery_is_stored() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let id = seed_known_visitor(&ghl).await;
    let app = agent_view_app(&ghl, &[]).await;

    let (answer, took) = post_chat(&app, &chat_event("chat_accepted", EMAIL)).await;
    assert!(took < Duration::from_secs(1), "answered in {took:?}");
    assert_eq!(answer["result"], "ok", "{answer}");
    assert_eq!(
        answer["crm_link"],
        format!("https://app.gohighlevel.com/v2/location/{LOCATION}/contacts/detail/{id}")
    );
    assert_eq!(
        answer["contact_info"],
        json!({"name": "Ada Lovelace", "email": EMAIL, "phone": "+14155550100"})
    );
    assert_eq!(row(&answer, "Tags"), Some("vip, jivochat"), "{answer}");
    let tasks: Vec<(&str, &str)> = answer["custom_data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["title"].as_str().unwrap().starts_with("Task"))
        .map(|r| (r["title"].as_str().unwrap(), r["content"].as_str().unwrap()))
        .collect();
    assert_eq!(
        tasks,
        [("Task due 2030-01-02 10:00 UTC", "Call Ada back")],
        "only the open task, with its due date: {answer}"
    );
    assert_eq!(
        row(&answer, "Latest note"),
        Some("Wants a quote"),
        "{answer}"
    );

    // Stored like any delivery (the answer came after the commit).
    assert_eq!(app.total_events().await, 1);
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("formbridge_agent_view_total{outcome=\"shown\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_slow_ghl_answers_plain_ok_within_the_deadline() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    seed_known_visitor(&ghl).await;
    let deadline = Duration::from_millis(500);
    let app = agent_view_app(&ghl, &[("sources.jivochat.agent_view_timeout", "500ms")]).await;
    // Three times the deadline, within the GHL client's own request timeout (2 s here), so the
    // look-up does reach GHL.
    ghl.sandbox.set_faults(FaultSpec {
        latency_ms: Some(1_500),
        ..FaultSpec::default()
    });

    let (answer, took) = post_chat(&app, &chat_event("chat_accepted", EMAIL)).await;
    assert_eq!(answer, json!({"result": "ok"}));
    assert!(
        took >= deadline - Duration::from_millis(50)
            && took < deadline + Duration::from_millis(400),
        "answered in {took:?}, deadline {deadline:?}"
    );
    assert_eq!(app.total_events().await, 1);
    // The look-up was made (and not waited for): GHL logs it once its latency is over.
    wait_for(Duration::from_secs(10), "the look-up to reach GHL", || {
        let n = gets(&ghl, DUPLICATE_SEARCH);
        async move { (n == 1).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn switched_off_the_answer_is_plain_ok_and_ghl_is_not_asked() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    seed_known_visitor(&ghl).await;
    let app = agent_view_app(&ghl, &[("sources.jivochat.agent_view", "false")]).await;

    for name in ["chat_accepted", "chat_updated"] {
        let (answer, _) = post_chat(&app, &chat_event(name, EMAIL)).await;
        assert_eq!(answer, json!({"result": "ok"}), "{name}");
    }
    assert_eq!(app.total_events().await, 2);
    assert_eq!(all_gets(&ghl), 0, "{:?}", ghl.state().requests);
}

#[tokio::test]
async fn a_burst_of_chat_updated_for_one_visitor_costs_one_look_up() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let id = seed_known_visitor(&ghl).await;
    let app = agent_view_app(&ghl, &[]).await;
    // Slow enough that the concurrent events overlap the first look-up.
    ghl.sandbox.set_faults(FaultSpec {
        latency_ms: Some(150),
        ..FaultSpec::default()
    });

    let (first, _) = post_chat(&app, &chat_event("chat_accepted", EMAIL)).await;
    let link = first["crm_link"].as_str().unwrap().to_owned();
    assert!(link.ends_with(&id), "{first}");
    assert_eq!(gets(&ghl, DUPLICATE_SEARCH), 1);

    // Within the cache's time to live, later events (some at once) ask GHL nothing more.
    let updates = chat_updates(4, 9000);
    let answers = futures_util::future::join_all(updates.iter().map(|e| post_chat(&app, e))).await;
    for (answer, _) in &answers {
        assert_eq!(answer["crm_link"], link.as_str(), "{answer}");
    }
    assert_eq!(gets(&ghl, DUPLICATE_SEARCH), 1);
    assert_eq!(gets(&ghl, &format!("/contacts/{id}/tasks")), 1);
    assert_eq!(gets(&ghl, &format!("/contacts/{id}/notes")), 1);
    assert_eq!(app.total_events().await, 5);
}

#[tokio::test]
async fn concurrent_first_events_share_one_look_up() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    seed_known_visitor(&ghl).await;
    let app = agent_view_app(&ghl, &[]).await;
    ghl.sandbox.set_faults(FaultSpec {
        latency_ms: Some(200),
        ..FaultSpec::default()
    });
    let events = chat_updates(3, 7000);
    let answers = futures_util::future::join_all(events.iter().map(|e| post_chat(&app, e))).await;
    for (answer, _) in &answers {
        assert!(answer["crm_link"].is_string(), "{answer}");
    }
    assert_eq!(gets(&ghl, DUPLICATE_SEARCH), 1);
}

#[tokio::test]
async fn an_unknown_visitor_or_a_spent_budget_answers_plain_ok_without_a_429() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    seed_known_visitor(&ghl).await;
    // A budget of three requests per minute: one look-up's worth.
    let app = agent_view_app(
        &ghl,
        &[
            ("ghl.rate_limit.burst", "3"),
            ("ghl.rate_limit.window", "60s"),
        ],
    )
    .await;

    let (unknown, _) = post_chat(&app, &chat_event("chat_accepted", "nobody@example.com")).await;
    assert_eq!(unknown, json!({"result": "ok"}));
    assert_eq!(gets(&ghl, DUPLICATE_SEARCH), 1);

    // Two of the three slots are left: the contact is found, and the third request (tasks or
    // notes) has no slot, so the card shows what could be read, without waiting.
    let mut known = chat_event("chat_accepted", EMAIL);
    known["chat_id"] = json!(7637);
    let (partial, took) = post_chat(&app, &known).await;
    assert!(partial["crm_link"].is_string(), "{partial}");
    assert!(took < Duration::from_secs(1), "{took:?}");

    // Nothing left: no GHL request at all, the plain acknowledgement at once.
    let before = all_gets(&ghl);
    let (skipped, took) = post_chat(&app, &chat_event("chat_updated", "other@example.com")).await;
    assert_eq!(skipped, json!({"result": "ok"}));
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(all_gets(&ghl), before);
    assert!(
        ghl.state().requests.iter().all(|r| r.status != 429),
        "{:?}",
        ghl.state().requests
    );
    assert_eq!(app.total_events().await, 3);
}

#[test]
fn the_switch_and_the_deadline_are_checked_at_start_naming_the_key() {
    use formbridge::settings::{ConfigSource, Settings};
    let load = |extra: &[(&str, &str)]| {
        let source = ConfigSource::named(crate::common::config_dir(), "test");
        let mut overrides = vec![("sources.jotform.secret", SECRET)];
        overrides.extend_from_slice(extra);
        Settings::load_without_env(&source, &overrides)
    };
    let err = load(&[("sources.jotform.agent_view", "true")]).unwrap_err();
    assert!(
        err.to_string().contains("sources.jotform.agent_view"),
        "{err}"
    );
    let err = load(&[
        ("sources.jivochat.secret", SECRET),
        ("sources.jivochat.agent_view_timeout", "0s"),
    ])
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("sources.jivochat.agent_view_timeout"),
        "{err}"
    );
    let err = load(&[("ghl.app_url", "ftp://app.example")]).unwrap_err();
    assert!(err.to_string().contains("ghl.app_url"), "{err}");
    // On by default for JivoChat, and only there; `false` turns it off.
    let on = load(&[("sources.jivochat.secret", SECRET)]).unwrap();
    let name = |n: &str| formbridge::sources::SourceName::parse(n).unwrap();
    assert!(on.sources["jivochat"].agent_view_enabled(&name("jivochat")));
    assert!(!on.sources["jotform"].agent_view_enabled(&name("jotform")));
    let off = load(&[
        ("sources.jivochat.secret", SECRET),
        ("sources.jivochat.agent_view", "false"),
    ])
    .unwrap();
    assert!(!off.sources["jivochat"].agent_view_enabled(&name("jivochat")));
}
