//! Issue #14's mapping additions against the GHL sandbox over HTTP: contacts created by name,
//! countries as ISO codes, the phone's country per delivery, the kept first `source`, tags
//! removed when their condition stops holding, and task due dates from answers.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use formbridge::store::{EventFilter, EventStatus};
use ghl_sandbox::{FaultSpec, SandboxHandle};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;

use crate::common::{TestApp, SECRET};
use crate::dispatch::{driven_app_for, post_json, sandbox_with};

#[tokio::test]
async fn a_name_only_lead_makes_exactly_one_contact_even_after_a_lost_answer() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let toml = r#"
[sources.dripjobs.mapping]
on_missing_contact = "create_by_name"
"#;
    let app = driven_app_for(&ghl, toml, &[]).await;
    // GHL applies the create, then the answer is lost: the retry must find it, not make another.
    ghl.sandbox.set_faults(FaultSpec {
        drop_after_next: Some(1),
        ..Default::default()
    });
    deliver(
        &app,
        json!({"deal_id": "n-1", "customer_name": "Grace Hopper"}),
    )
    .await;

    let state = ghl.state();
    assert_eq!(state.contacts.len(), 1, "{:#?}", state.contacts);
    let contact = &state.contacts[0];
    assert_eq!(contact["firstName"], "Grace");
    assert_eq!(contact["lastName"], "Hopper");
    let creates = state.requests_to("POST", "/contacts/");
    assert_eq!(creates.len(), 1);
    assert_eq!(creates[0].outcome, "dropped_after");
    let id = contact["id"].as_str().unwrap();
    assert_eq!(state.notes_of(id).len(), 1);
    assert!(state.tags_of(id).contains(&"dripjobs".to_owned()));

    // A form without any name (nor a deal id to follow) still fails with the reason.
    post_json(&app, "dripjobs", &json!({"notes": "hi"})).await;
    app.drain(Duration::from_secs(20)).await;
    assert_eq!(ghl.state().contacts.len(), 1);
    let dead = app.events_in(EventStatus::Dead).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let reason = dead[0].last_error.clone().unwrap_or_default();
    assert!(reason.contains("no usable email or phone"), "{reason}");
    crate::spec_check::assert_requests_follow_specs(&ghl.state());
}

/// Posts one DripJobs delivery and runs the dispatcher until it is done or dead.
async fn deliver(app: &TestApp, body: serde_json::Value) {
    deliver_to(app, "dripjobs", body).await;
}

/// Posts one delivery to `source` and runs the dispatcher until it is done or dead.
async fn deliver_to(app: &TestApp, source: &str, body: serde_json::Value) {
    post_json(app, source, &body).await;
    app.drain(Duration::from_secs(20)).await;
}

/// Posts a body of `content_type` to `source`, then runs the dispatcher until it is done.
async fn deliver_raw(app: &TestApp, source: &str, content_type: &str, body: String) {
    let r = app
        .post_hook(source, Some(SECRET), Some(content_type), body.into_bytes())
        .await;
    assert_eq!(r.status(), 200);
    app.drain(Duration::from_secs(20)).await;
}

/// The submission stored with the newest event of `app`.
async fn latest_submission(app: &TestApp) -> serde_json::Value {
    let events = app
        .store
        .list_events(&EventFilter::default())
        .await
        .unwrap();
    let id = events.first().unwrap().id; // newest first
    let event = app.store.get_event(id).await.unwrap().unwrap();
    event.submission.unwrap()
}

/// Delivers `body` and returns the body of the last contact upsert GHL received (every request
/// sent so far following the official specs).
async fn upsert_for(app: &TestApp, ghl: &SandboxHandle, body: serde_json::Value) -> Value {
    deliver(app, body).await;
    let state = ghl.state();
    crate::spec_check::assert_requests_follow_specs(&state);
    let upserts = state.requests_to("POST", "/contacts/upsert");
    upserts.last().and_then(|r| r.body.clone()).unwrap()
}

#[tokio::test]
async fn countries_are_sent_as_iso_codes_and_unknown_ones_left_out_with_a_problem() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let app = driven_app_for(&ghl, "", &[]).await;
    let us =
        json!({"deal_id": "c-1", "customer_email": "us@example.com", "country": "United States"});
    assert_eq!(upsert_for(&app, &ghl, us).await["country"], "US");
    let state = ghl.state();
    let contact = state.contact_by_email("us@example.com").unwrap();
    assert_eq!(contact["country"], "US");

    let far = json!({"deal_id": "c-2", "customer_email": "far@example.com", "country": "Atlantis"});
    let upsert = upsert_for(&app, &ghl, far).await;
    assert!(upsert.get("country").is_none(), "{upsert}");
    let sub = latest_submission(&app).await;
    let problems = sub["problems"].to_string();
    assert!(problems.contains("country not recognised"), "{problems}");
    let done = app.store.status_counts().await.unwrap()[&EventStatus::Done];
    assert_eq!(done, 2);
}

#[tokio::test]
async fn a_phone_without_country_code_is_read_in_the_visitors_own_country() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let app = driven_app_for(&ghl, "", &[]).await;
    deliver_to(
        &app,
        "jivochat",
        json!({
            "event_name": "offline_message", "offline_message_id": "om-ru", "widget_id": "w1",
            "message": "Перезвоните, пожалуйста",
            "visitor": {"name": "Ivan Petrov", "phone": "(999) 555-0100"},
            "session": {"geoip": {"country": "Russia", "country_code": "RU"}}
        }),
    )
    .await;
    let state = ghl.state();
    let upsert = state.requests_to("POST", "/contacts/upsert")[0]
        .body
        .clone();
    assert_eq!(upsert.unwrap()["phone"], "+79995550100");

    // A Jotform phone field's own country wins over the source's default (US).
    let fields = [
        ("submissionID", "5260000000000000001"),
        (
            "rawRequest",
            r#"{"q3_name":{"first":"Hans","last":"Muster"},"q5_phone":{"full":"030 901820","country":"DE"}}"#,
        ),
    ];
    let body: String = fields
        .iter()
        .map(|(k, v)| format!("--b\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"))
        .collect::<String>()
        + "--b--\r\n";
    deliver_raw(&app, "jotform", "multipart/form-data; boundary=b", body).await;
    let state = ghl.state();
    let upsert = state.requests_to("POST", "/contacts/upsert")[1]
        .body
        .clone();
    assert_eq!(upsert.unwrap()["phone"], "+4930901820");
}

#[tokio::test]
async fn a_returning_contact_keeps_its_first_source_when_asked() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let toml = r#"
[sources.dripjobs.mapping]
keep_first_source = true
[sources.powr.mapping]
keep_first_source = true
"#;
    let app = driven_app_for(&ghl, toml, &[]).await;
    let email = "back@example.com";
    deliver(&app, json!({"deal_id": "s-1", "customer_email": email})).await;
    let first = ghl.state();
    assert_eq!(first.contact_by_email(email).unwrap()["source"], "dripjobs");
    let powr = json!({"submission_id": "p-1", "Email Address": email, "Your Name": "Back Again"});
    deliver_to(&app, "powr", powr).await;
    let state = ghl.state();
    let contact = state.contact_by_email(email).unwrap();
    assert_eq!(contact["source"], "dripjobs", "{contact}");
    assert_eq!(contact["firstName"], "Back");
    // One PUT for the new contact, none for the returning one.
    let id = contact["id"].as_str().unwrap();
    assert_eq!(
        state.requests_to("PUT", &format!("/contacts/{id}")).len(),
        1
    );
    crate::spec_check::assert_requests_follow_specs(&state);
}

#[tokio::test]
async fn a_stage_tag_is_removed_when_its_condition_stops_holding_and_tasks_are_due_from_answers() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let toml = r#"
[[sources.dripjobs.mapping.tags.when]]
tag = "stage:estimate"
when = { field = "answers.stage", equals = "estimate" }
remove_when_false = true

[[sources.dripjobs.mapping.tasks]]
title = "Install for {{first_name}}"
due_from = "install_date"
due_in = "2d"
"#;
    let app = driven_app_for(&ghl, toml, &[]).await;
    let email = "stage@example.com";
    let lead = json!({"deal_id": "t-1", "customer_name": "Sam Stage", "customer_email": email,
        "stage": "estimate", "install_date": "5/14/2026"});
    deliver(&app, lead).await;
    let state = ghl.state();
    let id = state.contact_by_email(email).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(state.tags_of(&id).contains(&"stage:estimate".to_owned()));
    let due = state.tasks_of(&id)[0]["dueDate"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(due.starts_with("2026-05-14T09:00:00"), "{due}");

    // The stage moved on: the tag goes; no install date: the task falls back to `due_in`.
    let won = json!({"deal_id": "t-2", "customer_email": email, "stage": "won"});
    deliver(&app, won).await;
    let state = ghl.state();
    assert!(
        !state.tags_of(&id).contains(&"stage:estimate".to_owned()),
        "{:?}",
        state.tags_of(&id)
    );
    assert_eq!(
        state
            .requests_to("DELETE", &format!("/contacts/{id}/tags"))
            .len(),
        1
    );
    crate::spec_check::assert_requests_follow_specs(&state);
    let fallback = state.tasks_of(&id)[1]["dueDate"]
        .as_str()
        .unwrap()
        .to_owned();
    let fallback = time::OffsetDateTime::parse(&fallback, &Rfc3339).unwrap();
    let hours = (fallback - time::OffsetDateTime::now_utc()).whole_hours();
    assert!((47..=48).contains(&hours), "{fallback}");
}
