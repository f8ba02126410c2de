//! JivoChat calls against the GHL sandbox over HTTP: the `call_event`s of one call (one
//! `chat_id`) are revisions of one delivery, leaving one note that shows the call's furthest
//! status and at most one call-back task, created when the call needs one and completed when
//! it happened; a redelivery or an admin replay from scratch of any status changes nothing.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use formbridge::domain::EventId;
use formbridge::store::{EventFilter, EventStatus, EventSummary};
use ghl_sandbox::{SandboxHandle, SandboxState};
use serde_json::{json, Value};

use crate::common::{TestApp, SECRET};
use crate::dispatch::{driven_app_for, sandbox_with, LOCATION, TOKEN};

const ADMIN_TOKEN: &str = "calls-admin-token";
const EMAIL: &str = "email@example.com";

/// The docs' `call_event` with this call's `type` and `status` (the recording link comes with
/// `end`, as JivoChat sends it).
fn call_event(kind: &str, status: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jivochat/call_event.json");
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    event["call"] = json!({"type": kind, "phone": "+14084987855", "status": status});
    if status == "end" {
        event["call"]["record_url"] = json!("http://example.com/record.mp3");
    }
    event
}

/// Posts a delivery; JivoChat is answered `{"result":"ok"}` whatever happened.
async fn post(app: &TestApp, body: &Value) {
    let r = app
        .post_hook(
            "jivochat",
            Some(SECRET),
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"result": "ok"}));
}

/// Posts a delivery that is new (stored as an event), dispatches it, and returns its event id.
async fn deliver(app: &TestApp, body: &Value) -> i64 {
    let before = app.total_events().await;
    post(app, body).await;
    assert_eq!(app.total_events().await, before + 1, "not stored: {body}");
    let newest = app
        .store
        .list_events(&EventFilter {
            limit: Some(1),
            ..EventFilter::default()
        })
        .await
        .unwrap();
    app.drain(Duration::from_secs(20)).await;
    newest[0].id.0
}

/// The event `id`'s summary.
async fn summary(app: &TestApp, id: i64) -> EventSummary {
    app.store
        .get_event(EventId(id))
        .await
        .unwrap()
        .unwrap()
        .summary
}

/// The visitor's contact id.
fn contact(state: &SandboxState) -> String {
    state.contact_by_email(EMAIL).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The one note's body, and the tasks, of the visitor.
fn note_and_tasks(ghl: &SandboxHandle) -> (String, Vec<Value>) {
    let state = ghl.state();
    let id = contact(&state);
    let notes = state.notes_of(&id);
    assert_eq!(notes.len(), 1, "one note per call: {notes:#?}");
    let note = notes[0]["body"].as_str().unwrap().to_owned();
    let tasks = state.tasks_of(&id).into_iter().cloned().collect();
    (note, tasks)
}

/// The requests since `from` that create or change a record in GHL (every POST, PUT and
/// DELETE but the contact upsert and its tags, which change nothing already there).
fn writes_since(state: &SandboxState, from: usize) -> Vec<String> {
    state.requests[from..]
        .iter()
        .filter(|r| r.method != "GET")
        .filter(|r| r.path != "/contacts/upsert" && !r.path.ends_with("/tags"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// Sends every delivery again (each a duplicate), then replays each event from scratch: GHL's
/// notes and tasks stay exactly as they were, and nothing is created or changed.
async fn redelivery_and_replays_change_nothing(
    app: &TestApp,
    ghl: &SandboxHandle,
    deliveries: &[(i64, Value)],
) {
    let before = ghl.state();
    let events_before = app.total_events().await;
    for (_, body) in deliveries {
        post(app, body).await;
    }
    app.drain(Duration::from_secs(20)).await;
    assert_eq!(
        app.total_events().await,
        events_before,
        "a redelivery is a duplicate"
    );
    assert_eq!(
        ghl.state().requests.len(),
        before.requests.len(),
        "a redelivery sends nothing to GHL"
    );

    for (id, _) in deliveries {
        let replayed = app
            .client
            .post(format!(
                "{}/admin/events/{id}/replay?from_scratch=true",
                app.base
            ))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(replayed.status(), 202, "replay of event {id}");
        app.drain(Duration::from_secs(20)).await;
        let after = ghl.state();
        let writes = writes_since(&after, before.requests.len());
        assert!(
            writes.is_empty(),
            "replaying event {id} wrote to GHL: {writes:?}"
        );
        assert_eq!(after.notes, before.notes, "replay of event {id}");
        assert_eq!(after.tasks, before.tasks, "replay of event {id}");
    }
    assert_eq!(
        app.events_in(EventStatus::Done).await.len(),
        deliveries.len()
    );
    crate::spec_check::assert_requests_follow_specs(&ghl.state());
}

async fn app_for(ghl: &SandboxHandle, toml: &str) -> TestApp {
    driven_app_for(ghl, toml, &[("admin.token", ADMIN_TOKEN)]).await
}

#[tokio::test]
async fn a_callback_that_happened_leaves_one_note_and_one_completed_task() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let app = app_for(&ghl, "").await;
    let mut deliveries = Vec::new();

    // The request: a call-back to do.
    let start = call_event("callback", "start");
    deliveries.push((deliver(&app, &start).await, start));
    let (note, tasks) = note_and_tasks(&ghl);
    assert!(note.contains("Status: start"), "{note}");
    assert_eq!(tasks.len(), 1, "{tasks:#?}");
    assert!(tasks[0]["title"]
        .as_str()
        .unwrap()
        .starts_with("Callback requested: call John Smith back"));
    assert_eq!(tasks[0]["completed"], false);

    // Calling: the same note shows each status, the task stays open.
    for status in ["agent_connected", "client_connected"] {
        let body = call_event("callback", status);
        let id = deliver(&app, &body).await;
        let revision = summary(&app, id).await;
        assert_eq!(revision.revision_of.map(|e| e.0), Some(deliveries[0].0));
        deliveries.push((id, body));
        let (note, tasks) = note_and_tasks(&ghl);
        assert!(note.contains(&format!("Status: {status}")), "{note}");
        assert_eq!(tasks.len(), 1, "{tasks:#?}");
        assert_eq!(tasks[0]["completed"], false, "{status}");
    }

    // The end of a connected call: the call happened, its task is completed.
    let end = call_event("callback", "end");
    deliveries.push((deliver(&app, &end).await, end));
    let (note, tasks) = note_and_tasks(&ghl);
    assert!(note.contains("Status: end"), "{note}");
    assert!(
        note.contains("Recording: http://example.com/record.mp3"),
        "{note}"
    );
    assert!(!note.contains("connected"), "{note}");
    assert_eq!(tasks.len(), 1, "{tasks:#?}");
    assert_eq!(tasks[0]["completed"], true, "{tasks:#?}");

    // A status arriving late (JivoChat retried it with another agent's details) neither
    // reopens the task nor takes the note back.
    let requests_before = ghl.state().requests.len();
    let mut late = call_event("callback", "agent_connected");
    late["agent"]["name"] = json!("Agent Smith");
    deliveries.push((deliver(&app, &late).await, late));
    let (late_note, late_tasks) = note_and_tasks(&ghl);
    assert_eq!(late_note, note);
    assert_eq!(late_tasks, tasks);
    let writes = writes_since(&ghl.state(), requests_before);
    assert!(writes.is_empty(), "a late status wrote to GHL: {writes:?}");

    redelivery_and_replays_change_nothing(&app, &ghl, &deliveries).await;
}

#[tokio::test]
async fn a_missed_call_leaves_one_note_and_one_open_call_back_task() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let app = app_for(&ghl, "").await;
    let mut deliveries = Vec::new();

    // An incoming call under way asks for nothing yet.
    let start = call_event("incoming", "start");
    deliveries.push((deliver(&app, &start).await, start));
    let (note, tasks) = note_and_tasks(&ghl);
    assert!(note.contains("Status: start"), "{note}");
    assert!(tasks.is_empty(), "{tasks:#?}");

    // Nobody answered.
    let mut error = call_event("incoming", "error");
    error["call"]["reason"] = json!("no_answer");
    deliveries.push((deliver(&app, &error).await, error));
    let (note, tasks) = note_and_tasks(&ghl);
    assert!(note.contains("Status: error"), "{note}");
    assert!(note.contains("Reason: no_answer"), "{note}");
    assert_eq!(tasks.len(), 1, "{tasks:#?}");
    assert!(tasks[0]["title"]
        .as_str()
        .unwrap()
        .starts_with("Missed call: call John Smith back"));
    assert_eq!(tasks[0]["completed"], false);

    redelivery_and_replays_change_nothing(&app, &ghl, &deliveries).await;
}

#[tokio::test]
async fn a_callback_that_ends_unconnected_keeps_its_task_until_a_late_status_shows_it_happened() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let app = app_for(&ghl, "").await;
    let mut deliveries = Vec::new();
    for status in ["start", "agent_connected", "end"] {
        let body = call_event("callback", status);
        deliveries.push((deliver(&app, &body).await, body));
    }
    // The visitor never answered: one note, the call-back still to do.
    let (note, tasks) = note_and_tasks(&ghl);
    assert!(note.contains("Status: end"), "{note}");
    assert_eq!(tasks.len(), 1, "{tasks:#?}");
    assert_eq!(tasks[0]["completed"], false);
    redelivery_and_replays_change_nothing(&app, &ghl, &deliveries).await;

    // `client_connected` was only late: the call happened after all, the task is completed
    // and the note still shows the end.
    let body = call_event("callback", "client_connected");
    deliveries.push((deliver(&app, &body).await, body));
    let (late_note, tasks) = note_and_tasks(&ghl);
    assert_eq!(late_note, note);
    assert_eq!(tasks.len(), 1, "{tasks:#?}");
    assert_eq!(tasks[0]["completed"], true);
    redelivery_and_replays_change_nothing(&app, &ghl, &deliveries).await;
}

#[tokio::test]
async fn skip_tool_tasks_leaves_a_call_its_note_only() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let toml = "[sources.jivochat.mapping]\nskip_tool_tasks = true\n";
    let app = app_for(&ghl, toml).await;
    for (kind, status) in [
        ("callback", "start"),
        ("callback", "end"),
        ("incoming", "error"),
    ] {
        let mut body = call_event(kind, status);
        if kind == "incoming" {
            body["chat_id"] = json!(4399); // another call
        }
        deliver(&app, &body).await;
    }
    let state = ghl.state();
    let id = contact(&state);
    assert_eq!(state.notes_of(&id).len(), 2, "one note per call");
    assert!(state.tasks_of(&id).is_empty(), "{:#?}", state.tasks);
}

/// A request to the sandbox as GHL's API takes it.
async fn ghl_post(ghl: &SandboxHandle, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(ghl.base_url.join(path).unwrap())
        .bearer_auth(TOKEN)
        .header("Version", ghl_sandbox::API_VERSION)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

/// An earlier attempt created the call's task and note and their answers were lost (or its
/// steps' records were forgotten): the next status finds them by the call's marker and
/// creates neither again.
#[tokio::test]
async fn a_calls_task_and_note_already_in_ghl_are_found_not_created_again() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let app = app_for(&ghl, "").await;
    let upserted = ghl_post(
        &ghl,
        "contacts/upsert",
        json!({"locationId": LOCATION, "email": EMAIL, "phone": "+14084987855"}),
    )
    .await;
    let contact_id = upserted["contact"]["id"].as_str().unwrap().to_owned();
    ghl_post(
        &ghl,
        &format!("contacts/{contact_id}/tasks"),
        json!({"title": "Callback requested: call John Smith back",
               "body": "Type: callback\n\n[formbridge:call:jivochat:4398:task]",
               "dueDate": "2026-01-01T10:00:00Z", "completed": false}),
    )
    .await;
    ghl_post(
        &ghl,
        &format!("contacts/{contact_id}/notes"),
        json!({"body": "JivoChat call (chat 4398)\n\n[formbridge:call:jivochat:4398:note]"}),
    )
    .await;
    let before = ghl.state().requests.len();

    deliver(&app, &call_event("callback", "client_connected")).await;
    let state = ghl.state();
    let created: Vec<String> = writes_since(&state, before)
        .into_iter()
        .filter(|w| w.starts_with("POST"))
        .collect();
    assert!(created.is_empty(), "created again: {created:?}");
    let (note, tasks) = note_and_tasks(&ghl);
    assert!(note.contains("Status: client_connected"), "{note}");
    assert_eq!(tasks.len(), 1, "{tasks:#?}");
    assert_eq!(tasks[0]["completed"], false);

    deliver(&app, &call_event("callback", "end")).await;
    let (_, tasks) = note_and_tasks(&ghl);
    assert_eq!(tasks.len(), 1, "{tasks:#?}");
    assert_eq!(tasks[0]["completed"], true, "the call happened");
}
