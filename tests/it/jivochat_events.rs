//! JivoChat events against the GHL sandbox over HTTP: every event with the visitor's contact
//! data updates the contact; a `call_event` writes a call note and, for a callback request or
//! a missed call, a follow-up task.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{config_dir, dispatching_env, start_process, wait_for, TestApp, SECRET};
use crate::dispatch::{driven_app_for, post_json, sandbox_with, LOCATION, TOKEN};

/// A JivoChat fixture from `tests/fixtures/jivochat/`.
fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jivochat")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn deliver(app: &TestApp, body: &Value) {
    post_json(app, "jivochat", body).await;
    app.drain(Duration::from_secs(20)).await;
}

#[tokio::test]
async fn a_call_event_leaves_a_note_and_a_task_and_chat_events_update_the_contact() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let app = driven_app_for(&ghl, "", &[]).await;
    deliver(&app, &fixture("call_event")).await;
    let state = ghl.state();
    let contact = state.contact_by_email("email@example.com").unwrap();
    let id = contact["id"].as_str().unwrap();
    let notes = state.notes_of(id);
    assert_eq!(notes.len(), 1);
    let note = notes[0]["body"].as_str().unwrap();
    for part in [
        "Type: callback",
        "Status: end",
        "Phone: +14084987855",
        "Recording: http://example.com/record.mp3",
    ] {
        assert!(note.contains(part), "{note}");
    }
    let tasks = state.tasks_of(id);
    assert_eq!(tasks.len(), 1);
    assert!(tasks[0]["title"]
        .as_str()
        .unwrap()
        .contains("Callback requested"));

    // chat_accepted with new visitor details updates the contact, without a note or task.
    let mut accepted = fixture("chat_accepted");
    accepted["visitor"]["name"] = json!("Johnny Smith");
    accepted["visitor"]["email"] = json!("email@example.com");
    deliver(&app, &accepted).await;
    let state = ghl.state();
    let contact = state.contact_by_email("email@example.com").unwrap();
    assert_eq!(contact["firstName"], "Johnny");
    assert_eq!(state.notes_of(id).len(), 1);
    assert_eq!(state.tasks_of(id).len(), 1);

    // An event without contact data plans nothing and is done, not dead-lettered.
    let mut anonymous = fixture("chat_updated");
    anonymous["visitor"] = json!({"name": "Someone"});
    deliver(&app, &anonymous).await;
    let counts = app.store.status_counts().await.unwrap();
    assert_eq!(
        counts[&formbridge::store::EventStatus::Dead],
        0,
        "{counts:?}"
    );
    crate::spec_check::assert_requests_follow_specs(&ghl.state());
}

/// An anonymous visitor's chat (no email, no phone) is no dead letter: with the built-in
/// mapping (JivoChat defaults to `on_missing_contact = "skip"`) it is done with nothing to do,
/// its reason recorded and shown by the admin API, and no dead-letter metric rises. Run on a
/// real server process, so its `/metrics` counts only this test's deliveries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_chat_is_skipped_with_its_reason_not_dead_lettered() {
    const ADMIN: &str = "admin-token-for-the-anonymous-chat-test";
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("chats.db").display());
    let mut env = dispatching_env(&db, ghl.base_url.as_str(), TOKEN, LOCATION);
    env.push((
        "FORMBRIDGE__SOURCES__JIVOCHAT__SECRET".into(),
        SECRET.into(),
    ));
    env.push(("FORMBRIDGE__ADMIN__TOKEN".into(), ADMIN.into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (mut child, base) = start_process(&config_dir(), &env);
    let client = reqwest::Client::new();

    // Accepted, then finished, the visitor leaving only a name.
    let visitor = json!({"name": "Guest", "number": 78});
    for body in [
        json!({"event_name": "chat_accepted", "chat_id": 9101, "client_id": 78, "visitor": visitor}),
        json!({"event_name": "chat_finished", "chat_id": 9101, "client_id": 78, "visitor": visitor,
               "chat": {"messages": [{"type": "visitor", "message": "just looking"}]}}),
    ] {
        let r = client
            .post(format!("{base}/hooks/jivochat?token={SECRET}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let admin = |path: String| {
        let request = client.get(format!("{base}{path}")).bearer_auth(ADMIN);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let done = wait_for(Duration::from_secs(20), "both chat events done", || async {
        let page = admin("/admin/events?status=done".to_owned()).await;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        (events.len() == 2).then_some(events)
    })
    .await;
    let stats = admin("/admin/stats".to_owned()).await;
    assert_eq!(stats["total"], 2, "nothing else, nothing dead: {stats}");

    // The finished chat's one attempt says why nothing was done.
    let finished = done.iter().filter_map(|e| e["id"].as_i64()).max().unwrap();
    let event = admin(format!("/admin/events/{finished}")).await;
    let attempt = &event["attempt_history"][0];
    assert_eq!(attempt["outcome"], "nothing_to_do", "{event:#}");
    let reason = attempt["error"].as_str().unwrap_or_default();
    for part in [
        "no usable email or phone",
        "on_missing_contact",
        "chat tools",
    ] {
        assert!(reason.contains(part), "{reason}");
    }
    assert!(ghl.state().contacts.is_empty(), "no contact was made");

    // Metrics: no dead letter; both counted as nothing to do.
    let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap();
    let metrics = metrics.text().await.unwrap();
    let dead_letters: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("formbridge_dead_letters_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(dead_letters, 0.0, "{metrics}");
    // Exported at 0 from the start, so the first dead letter would show as an increase.
    assert!(
        metrics.contains("formbridge_dead_letters_total{reason=\"unmappable\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("formbridge_dispatch_total{outcome=\"nothing_to_do\"} 2"),
        "{metrics}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
