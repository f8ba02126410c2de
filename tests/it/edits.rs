//! Edited submissions against the GHL sandbox over HTTP: a Jotform delivery that repeats a
//! `submissionID` with other answers is stored as a new revision and updates the contact, its
//! one note and its one task in place; an identical resend of any revision changes nothing.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use formbridge::domain::EventId;
use serde_json::{json, Value};

use crate::common::{TestApp, SECRET};
use crate::dispatch::{driven_app_for, sandbox_with};

const SUBMISSION: &str = "5261234567890123456";
const ADMIN_TOKEN: &str = "edits-admin-token";

/// A Jotform multipart delivery of `SUBMISSION`, with `boundary` (each resend has its own).
fn jotform(boundary: &str, first: &str, message: &str) -> String {
    let raw = json!({
        "q3_name": {"first": first, "last": "Lovelace"},
        "q4_email": "ada@example.com",
        "q6_message": message,
    });
    let fields = [
        ("submissionID", SUBMISSION.to_owned()),
        ("formTitle", "Contact us".to_owned()),
        ("rawRequest", raw.to_string()),
    ];
    fields
        .iter()
        .map(|(k, v)| {
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
        })
        .collect::<String>()
        + &format!("--{boundary}--\r\n")
}

/// Posts a Jotform delivery and returns formbridge's receipt.
async fn post(app: &TestApp, boundary: &str, first: &str, message: &str) -> Value {
    let r = app
        .post_hook(
            "jotform",
            Some(SECRET),
            Some(&format!("multipart/form-data; boundary={boundary}")),
            jotform(boundary, first, message).into_bytes(),
        )
        .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn an_edited_jotform_submission_updates_its_contact_note_and_task_in_place() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let toml = r#"
[[sources.jotform.mapping.tasks]]
title = "Call {{first_name}}"
due_in = "1d"
"#;
    let app = driven_app_for(&ghl, toml, &[("admin.token", ADMIN_TOKEN)]).await;

    let first = post(&app, "one", "Ada", "Please call me on Monday").await;
    assert_eq!(first["duplicate"], false, "{first}");
    app.drain(Duration::from_secs(20)).await;
    let state = ghl.state();
    let contact = state.contact_by_email("ada@example.com").unwrap();
    let contact_id = contact["id"].as_str().unwrap().to_owned();
    assert_eq!(state.notes_of(&contact_id).len(), 1);
    assert_eq!(state.tasks_of(&contact_id).len(), 1);
    let requests_before = state.requests.len();

    // The edit: same submissionID, other answers (and another multipart boundary).
    let edit = post(&app, "two", "Augusta", "Tuesday suits me better").await;
    assert_eq!(edit["duplicate"], false, "{edit}");
    assert_eq!(edit["revision_of"], first["event_id"], "{edit}");
    app.drain(Duration::from_secs(20)).await;

    let state = ghl.state();
    assert_eq!(state.contacts.len(), 1, "{:#?}", state.contacts);
    let contact = state.contact_by_email("ada@example.com").unwrap();
    assert_eq!(contact["firstName"], "Augusta");
    let notes = state.notes_of(&contact_id);
    assert_eq!(
        notes.len(),
        1,
        "the note is updated, not written again: {notes:#?}"
    );
    let note = notes[0]["body"].as_str().unwrap();
    assert!(note.contains("Tuesday suits me better"), "{note}");
    assert!(!note.contains("Monday"), "{note}");
    let tasks = state.tasks_of(&contact_id);
    assert_eq!(
        tasks.len(),
        1,
        "the task is updated, not created again: {tasks:#?}"
    );
    assert_eq!(tasks[0]["title"], "Call Augusta");
    let puts: Vec<&str> = state.requests[requests_before..]
        .iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(
        puts.len(),
        2,
        "one PUT for the note, one for the task: {puts:?}"
    );
    assert!(puts.iter().any(|p| p.contains("/notes/")), "{puts:?}");
    assert!(puts.iter().any(|p| p.contains("/tasks/")), "{puts:?}");

    // The revisions are visible on the events.
    let revision = app
        .store
        .get_event(EventId(edit["event_id"].as_i64().unwrap()))
        .await
        .unwrap()
        .unwrap()
        .summary;
    assert_eq!(revision.revision, 2);
    assert_eq!(
        revision.revision_of.map(|id| id.0),
        first["event_id"].as_i64()
    );
    let detail: Value = app
        .client
        .get(format!("{}/admin/events/{}", app.base, first["event_id"]))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let revisions: Vec<(i64, i64)> = detail["revisions"]
        .as_array()
        .unwrap_or_else(|| panic!("no revisions in {detail}"))
        .iter()
        .map(|r| (r["id"].as_i64().unwrap(), r["revision"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        revisions,
        [
            (first["event_id"].as_i64().unwrap(), 1),
            (edit["event_id"].as_i64().unwrap(), 2)
        ]
    );

    // Identical resends of either revision (even with other boundaries) change nothing.
    let events_before = app.total_events().await;
    let requests_before = ghl.state().requests.len();
    let again = post(&app, "three", "Augusta", "Tuesday suits me better").await;
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["event_id"], edit["event_id"]);
    let old = post(&app, "four", "Ada", "Please call me on Monday").await;
    assert_eq!(old["duplicate"], true, "{old}");
    assert_eq!(old["event_id"], first["event_id"]);
    app.drain(Duration::from_secs(20)).await;
    assert_eq!(app.total_events().await, events_before);
    assert_eq!(ghl.state().requests.len(), requests_before);
    crate::spec_check::assert_requests_follow_specs(&ghl.state());
}

#[tokio::test]
async fn an_edit_whose_note_was_deleted_in_ghl_writes_it_anew() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let app = driven_app_for(&ghl, "", &[]).await;
    post(&app, "one", "Ada", "Please call me on Monday").await;
    app.drain(Duration::from_secs(20)).await;
    let state = ghl.state();
    let contact_id = state.contact_by_email("ada@example.com").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let note_id = state.notes_of(&contact_id)[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Someone deletes the note in GHL.
    let deleted = reqwest::Client::new()
        .delete(
            ghl.base_url
                .join(&format!("contacts/{contact_id}/notes/{note_id}"))
                .unwrap(),
        )
        .bearer_auth(crate::dispatch::TOKEN)
        .header("Version", ghl_sandbox::API_VERSION)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    assert!(ghl.state().notes_of(&contact_id).is_empty());

    post(&app, "two", "Ada", "Tuesday suits me better").await;
    app.drain(Duration::from_secs(20)).await;
    let state = ghl.state();
    let notes = state.notes_of(&contact_id);
    assert_eq!(notes.len(), 1, "{notes:#?}");
    assert!(notes[0]["body"]
        .as_str()
        .unwrap()
        .contains("Tuesday suits me better"));
    assert_eq!(
        app.events_in(formbridge::store::EventStatus::Done)
            .await
            .len(),
        2
    );
    crate::spec_check::assert_requests_follow_specs(&ghl.state());
}
