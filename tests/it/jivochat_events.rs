//! JivoChat events against the GHL sandbox over HTTP: every event with the visitor's contact
//! data updates the contact; a `call_event` writes a call note and, for a callback request or
//! a missed call, a follow-up task.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::TestApp;
use crate::dispatch::{driven_app_for, post_json, sandbox_with};

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
}
