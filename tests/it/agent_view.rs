//! The JivoChat agent view against the GHL sandbox over real HTTP: a `chat_accepted` for a visitor
//! known in GHL is stored and answered with the contact's link, tags and open tasks (its other
//! identity field and latest note only when configured); a slow GHL, a spent budget, the
//! per-minute cap or the switch off answer the plain `{"result":"ok"}` in time; a burst of events
//! for one visitor costs one look-up; look-ups never take dispatch's share of the budget.
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
async fn by_default_a_visitor_looked_up_by_email_is_shown_without_phone_or_note_text() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let id = seed_known_visitor(&ghl).await;
    let app = agent_view_app(&ghl, &[]).await;

    let (answer, _) = post_chat(&app, &chat_event("chat_accepted", EMAIL)).await;
    assert_eq!(
        answer["contact_info"],
        json!({"name": "Ada Lovelace", "email": EMAIL}),
        "no phone: {answer}"
    );
    assert!(answer["crm_link"].as_str().unwrap().ends_with(&id));
    assert_eq!(row(&answer, "Tags"), Some("vip, jivochat"), "{answer}");
    assert!(
        row(&answer, "Task due 2030-01-02 10:00 UTC").is_some(),
        "{answer}"
    );
    assert_eq!(row(&answer, "Latest note"), None, "{answer}");
    let text = answer.to_string();
    assert!(
        !text.contains("+14155550100") && !text.contains("quote"),
        "{text}"
    );

    // Looked up by phone (no email in the chat): the phone, and no email.
    let mut by_phone = chat_event("chat_accepted", EMAIL);
    by_phone["chat_id"] = json!(8101);
    by_phone["visitor"].as_object_mut().unwrap().remove("email");
    by_phone["visitor"]["phone"] = json!("+14155550100");
    let (answer, _) = post_chat(&app, &by_phone).await;
    assert_eq!(
        answer["contact_info"],
        json!({"name": "Ada Lovelace", "phone": "+14155550100"}),
        "no email: {answer}"
    );
}

#[tokio::test]
async fn a_known_visitor_is_shown_to_the_agent_and_the_delivery_is_stored() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let id = seed_known_visitor(&ghl).await;
    // Two appointments booked through the Calendars API: the cancelled sooner one is not shown.
    let calendar = ghl.sandbox.add_calendar(LOCATION, None);
    let config = GhlClientConfig {
        base_url: ghl.base_url.clone(),
        api_version: ghl_sandbox::API_VERSION.to_owned(),
        request_timeout: Duration::from_secs(5),
    };
    let client = GhlClient::with_static_token(config, LOCATION, SecretString::from(TOKEN)).unwrap();
    for (title, start, status) in [
        ("Site visit", "2030-03-04T09:00:00-05:00", "confirmed"),
        ("Cancelled call", "2030-02-01T09:00:00-05:00", "cancelled"),
    ] {
        let booking = formbridge::ghl::calendars::CreateAppointmentRequest {
            calendar_id: calendar.clone(),
            location_id: LOCATION.to_owned(),
            contact_id: id.clone(),
            start_time: start.to_owned(),
            end_time: start.replace("T09", "T10"),
            title: title.to_owned(),
            description: String::new(),
            assigned_user_id: None,
            appointment_status: status.to_owned(),
            ignore_free_slot_validation: true,
            to_notify: false,
        };
        client.create_appointment(&booking).await.unwrap();
    }
    // The other identity field and the note, configured (a list from the environment is
    // comma-separated).
    let app = agent_view_app(
        &ghl,
        &[("sources.jivochat.agent_view_fields", "other_identity, note")],
    )
    .await;

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
    assert_eq!(
        row(&answer, "Appointment 2030-03-04 14:00 UTC"),
        Some("Site visit"),
        "the next appointment still to happen, in UTC: {answer}"
    );

    // Stored like any delivery (the answer came after the commit).
    assert_eq!(app.total_events().await, 1);
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("formbridge_agent_view_total{outcome=\"shown\"}"),
        "{metrics}"
    );
    // The seeding and the agent view's lookups (duplicate search, tasks, notes).
    crate::spec_check::assert_requests_follow_specs(&ghl.state());
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
    // A budget of 30 requests per minute, so the agent view's share is three: one look-up.
    let app = agent_view_app(
        &ghl,
        &[
            ("ghl.rate_limit.burst", "30"),
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

#[tokio::test]
async fn look_ups_past_the_per_minute_cap_answer_plain_ok_and_are_counted() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    seed_known_visitor(&ghl).await;
    let app = agent_view_app(&ghl, &[("sources.jivochat.agent_view_per_minute", "2")]).await;

    let mut answers = Vec::new();
    for event in chat_updates(4, 6100) {
        answers.push(post_chat(&app, &event).await.0);
    }
    // The first looks up, the second is answered from the cache (it counts too).
    assert!(answers[0]["crm_link"].is_string(), "{}", answers[0]);
    assert!(answers[1]["crm_link"].is_string(), "{}", answers[1]);
    for over in &answers[2..] {
        assert_eq!(over, &json!({"result": "ok"}));
    }
    // Every delivery is stored as usual.
    assert_eq!(app.total_events().await, 4);
    // The recorder is one for the whole test process: other tests count too.
    let metrics = app.metrics_text().await;
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series}: {metrics}"))
    };
    assert!(value("formbridge_agent_view_total{outcome=\"over_cap\"}") >= 2.0);
    assert!(value("formbridge_agent_view_lookups_total{source=\"jivochat\"}") >= 4.0);
}

/// Many look-ups fired while dispatch works: the look-ups take at most their share of the
/// location's burst (10 %), and dispatch spends all the rest, without a 429.
#[tokio::test]
async fn look_ups_take_at_most_their_share_while_dispatch_keeps_the_rest_of_the_budget() {
    const BURST: usize = 20;
    const SHARE: usize = 2;
    // A window longer than the test: every request it makes counts in one window.
    let ghl = sandbox_with(BURST as u32, Duration::from_secs(120)).await;
    let app = app_for(
        &ghl,
        "",
        &[
            ("ghl.rate_limit.burst", "20"),
            ("ghl.rate_limit.window", "120s"),
            ("sources.jivochat.agent_view_per_minute", "1000"),
        ],
    )
    .await;
    // 40 chat events of 40 visitors at once: each a look-up of its own, and each a contact
    // upsert for dispatch, which so wants more than the whole budget.
    let chats: Vec<Value> = (0..40u32)
        .map(|i| {
            let mut event = chat_event("chat_accepted", &format!("visitor{i}@example.com"));
            event["chat_id"] = json!(5_000 + i);
            event
        })
        .collect();
    futures_util::future::join_all(chats.iter().map(|event| post_chat(&app, event))).await;
    // The whole budget is spent: the look-ups' share, and dispatch the rest.
    let spent = wait_for(Duration::from_secs(30), "the budget to be spent", || {
        let requests = ghl.state().requests.len();
        async move { (requests >= BURST).then_some(requests) }
    })
    .await;
    let state = ghl.state();
    let look_ups = state
        .requests
        .iter()
        .filter(|r| {
            r.path == DUPLICATE_SEARCH
                || (r.method == "GET" && (r.path.ends_with("/tasks") || r.path.ends_with("/notes")))
        })
        .count();
    assert_eq!(spent, BURST, "{:?}", state.requests);
    assert!(
        look_ups <= SHARE,
        "look-ups took {look_ups}: {:?}",
        state.requests
    );
    assert!(
        BURST - look_ups >= BURST - SHARE,
        "dispatch made {} requests",
        BURST - look_ups
    );
    assert!(state.requests.iter().all(|r| r.status != 429));
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("formbridge_agent_view_total{outcome=\"share_spent\"}"),
        "{metrics}"
    );
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
    // Never served without authentication.
    let err = load(&[("sources.jivochat.auth", "none")]).unwrap_err();
    assert!(
        err.to_string().contains("sources.jivochat.agent_view"),
        "{err}"
    );
    assert!(load(&[
        ("sources.jivochat.auth", "none"),
        ("sources.jivochat.agent_view", "false"),
    ])
    .is_ok());
    for (key, value) in [
        ("sources.jivochat.agent_view_fields", "other_identity,phone"),
        ("sources.jivochat.agent_view_per_minute", "0"),
    ] {
        let err = load(&[("sources.jivochat.secret", SECRET), (key, value)]).unwrap_err();
        assert!(err.to_string().contains(key), "{err}");
    }
    let err = load(&[("ghl.app_url", "ftp://app.example")]).unwrap_err();
    assert!(err.to_string().contains("ghl.app_url"), "{err}");
    // On by default for JivoChat, and only there; `false` turns it off.
    let on = load(&[("sources.jivochat.secret", SECRET)]).unwrap();
    let name = |n: &str| formbridge::domain::SourceName::parse(n).unwrap();
    assert!(on.sources["jivochat"].agent_view_enabled(&name("jivochat")));
    assert!(!on.sources["jotform"].agent_view_enabled(&name("jotform")));
    let off = load(&[
        ("sources.jivochat.secret", SECRET),
        ("sources.jivochat.agent_view", "false"),
    ])
    .unwrap();
    assert!(!off.sources["jivochat"].agent_view_enabled(&name("jivochat")));
}
