//! Appointments in a GHL calendar and the mapping's time zone, against the GHL sandbox over
//! HTTP: a DripJobs job books one appointment when it is set and moves that same one when it
//! is rescheduled; a Jotform appointment slot in New York books the slot at its instant; a
//! `mapping.time_zone` puts a date-only due date at 09:00 local; a replay from scratch of any
//! of these deliveries changes no appointment; the sandbox's calendar routes check bodies like
//! GHL.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use formbridge::domain::StepKind;
use formbridge::store::{EventFilter, EventStatus};
use ghl_sandbox::{FaultSpec, SandboxHandle, SandboxState, CALENDARS_API_VERSION};
use serde_json::{json, Value};

use crate::common::{TestApp, SECRET};
use crate::dispatch::{driven_app_for, post_json, sandbox_with, LOCATION, TOKEN};

const CALENDAR: &str = "calInstall0000000001";

/// The shipped DripJobs example mapping (its follow-up rules), with an appointment booked when
/// the job's appointment is set and a follow-up that moves it when it is rescheduled.
fn dripjobs_mapping() -> String {
    let example = include_str!("../../config/sources/dripjobs.toml");
    // The test's own auth: `?token=` with the test secret.
    let example = example
        .replace("auth = \"token\"\n", "")
        .replace("token_header = \"x-webhook-secret\"\n", "")
        .replace(
            "[sources.dripjobs.mapping]\n",
            "[sources.dripjobs.mapping]\ntime_zone = \"America/Phoenix\"\n",
        );
    format!(
        r#"{example}
[[sources.dripjobs.mapping.appointments]]
calendar_id = "{CALENDAR}"
start_from = "install_date"
start_time_from = "install_time"
duration = "4h"
title = "Install for deal {{{{answers.deal_id}}}}"
notes = "Booked from DripJobs"
when = {{ field = "event", equals = "appointment_set" }}

[[sources.dripjobs.mapping.follow_ups]]
when = {{ field = "event", equals = "appointment_rescheduled" }}
tags = ["appointment-set"]
lead_tasks = "move"
due_from = "install_date"
appointment = "move"
appointment_from = "install_date"
appointment_time_from = "install_time"
appointment_duration = "4h"
"#
    )
}

/// A sandbox with the test calendar, seeded over HTTP like an out-of-process test would.
async fn sandbox_with_calendar() -> SandboxHandle {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let r = reqwest::Client::new()
        .post(ghl.base_url.join("/_sandbox/calendars").unwrap())
        .json(&json!({"locationId": LOCATION, "id": CALENDAR}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    ghl
}

/// The fixture of a DripJobs Zap (`tests/fixtures/dripjobs/zapier_<name>.ASSEMBLED.json`).
fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/dripjobs/zapier_{name}.ASSEMBLED.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `base` with `fields` added.
fn with(mut base: Value, fields: Value) -> Value {
    if let (Value::Object(b), Value::Object(f)) = (&mut base, fields) {
        b.extend(f);
    }
    base
}

async fn deliver(app: &TestApp, source: &str, body: &Value) {
    post_json(app, source, body).await;
    app.drain(Duration::from_secs(30)).await;
}

/// Each appointment's id, contact, calendar, times, status and title.
fn appointments(state: &SandboxState) -> Vec<Value> {
    state
        .appointments
        .iter()
        .map(|a| {
            json!({
                "id": a["id"], "contactId": a["contactId"], "calendarId": a["calendarId"],
                "startTime": a["startTime"], "endTime": a["endTime"],
                "appointmentStatus": a["appointmentStatus"], "title": a["title"],
            })
        })
        .collect()
}

/// The ids of every record, by kind: what a replay must never add to.
fn record_ids(state: &SandboxState) -> Value {
    let ids = |records: &[Value]| records.iter().map(|r| r["id"].clone()).collect::<Vec<_>>();
    json!({
        "contacts": ids(&state.contacts), "tasks": ids(&state.tasks), "notes": ids(&state.notes),
        "appointments": ids(&state.appointments), "opportunities": ids(&state.opportunities),
    })
}

/// Everything a replay could change: contacts (with tags), tasks, notes and appointments.
fn records(state: &SandboxState) -> Value {
    json!({
        "contacts": state.contacts.iter().map(|c| json!({"id": c["id"], "tags": c["tags"]})).collect::<Vec<_>>(),
        "tasks": state.tasks.iter().map(|t| json!({"id": t["id"], "dueDate": t["dueDate"], "completed": t["completed"], "title": t["title"]})).collect::<Vec<_>>(),
        "notes": state.notes.iter().map(|n| n["id"].clone()).collect::<Vec<_>>(),
        "appointments": appointments(state),
        "opportunities": state.opportunities.iter().map(|o| json!({"id": o["id"], "status": o["status"], "stage": o["pipelineStageId"], "name": o["name"]})).collect::<Vec<_>>(),
    })
}

/// Replays every event, one at a time: a plain replay changes nothing in the sandbox; a replay
/// from scratch runs every step again, and each finds what it made (by its marker, the store or
/// the thread), so no contact, task, note, appointment or card is made twice.
async fn replay_each(app: &TestApp, ghl: &SandboxHandle) {
    let events = app
        .store
        .list_events(&EventFilter {
            limit: Some(100),
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert!(!events.is_empty());
    for event in events {
        for from_scratch in [false, true] {
            let current = ghl.state();
            assert!(app.store.replay(event.id, from_scratch).await.unwrap());
            app.drain(Duration::from_secs(30)).await;
            let after = ghl.state();
            if from_scratch {
                // From scratch runs the event's steps again: an older follow-up re-applies its
                // own changes (its tags, its task move), but nothing is made a second time.
                assert_eq!(
                    record_ids(&after),
                    record_ids(&current),
                    "replaying event {} from scratch made or lost a record",
                    event.id
                );
            } else {
                assert_eq!(
                    records(&after),
                    records(&current),
                    "replaying event {} changed the sandbox",
                    event.id
                );
            }
            let status = app.store.get_event(event.id).await.unwrap().unwrap();
            assert_eq!(
                status.summary.status,
                EventStatus::Done,
                "{:?}",
                status.summary
            );
        }
    }
    crate::spec_check::assert_requests_follow_specs(&ghl.state());
}

/// The whole lead of issue #22 in one run: a DripJobs deal's lead makes its card in the
/// Accepted stage, "appointment set" books the install, a reschedule moves it, "project
/// completed" marks the card won; one appointment and one card throughout, and replaying every
/// delivery (plainly and from scratch) changes nothing.
#[tokio::test]
async fn a_dripjobs_deal_keeps_one_appointment_and_one_card_from_lead_to_completion() {
    let ghl = sandbox_with_calendar().await;
    let mapping = dripjobs_mapping().replace(
        "lead_tasks = \"complete\"\n",
        "lead_tasks = \"complete\"\nopportunity = { status = \"won\" }\n",
    ) + r#"
[[sources.dripjobs.mapping.opportunities]]
pipeline = "Sales Pipeline"
stage = "Accepted"
name = "{{name}}: deal {{answers.deal_id}}"
"#;
    assert!(mapping.contains("opportunity = { status = \"won\" }"));
    let app = driven_app_for(&ghl, &mapping, &[]).await;

    deliver(&app, "dripjobs", &fixture("proposal-accepted")).await;
    let set = with(
        fixture("appointment-set"),
        json!({"stage": "appointment_set", "install_time": "8:00 AM"}),
    );
    deliver(&app, "dripjobs", &set).await;
    let reschedule = json!({
        "deal_id": "1234567", "stage": "appointment_rescheduled",
        "install_date": "5/21/2026", "install_time": "1:30 PM",
    });
    deliver(&app, "dripjobs", &reschedule).await;

    let state = ghl.state();
    let contact_id = state.contact_by_email("jane.sample@example.com").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(state.appointments.len(), 1, "{:#?}", state.appointments);
    assert_eq!(state.appointments[0]["contactId"], contact_id.as_str());
    assert_eq!(
        state.appointments[0]["startTime"],
        "2026-05-21T13:30:00-07:00"
    );
    let cards = state.opportunities_of(&contact_id);
    assert_eq!(cards.len(), 1, "{cards:#?}");
    // The sandbox's default "Sales Pipeline": New Lead, Proposal Sent, Accepted, …
    assert_eq!(cards[0]["pipelineStageId"], "sbx-stage-3", "Accepted");
    assert_eq!(cards[0]["status"], "open");
    assert_eq!(cards[0]["name"], "Jane Sample: deal 1234567");

    deliver(
        &app,
        "dripjobs",
        &json!({"deal_id": "1234567", "stage": "project_completed"}),
    )
    .await;
    let state = ghl.state();
    assert_eq!(state.opportunities.len(), 1);
    assert_eq!(state.opportunities[0]["status"], "won");
    assert_eq!(state.opportunities[0]["pipelineStageId"], "sbx-stage-3");
    assert_eq!(state.appointments.len(), 1);

    replay_each(&app, &ghl).await;
    let state = ghl.state();
    assert_eq!(state.opportunities.len(), 1);
    assert_eq!(state.appointments.len(), 1);
}

#[tokio::test]
async fn a_dripjobs_job_keeps_one_appointment_through_a_reschedule() {
    let ghl = sandbox_with_calendar().await;
    let app = driven_app_for(&ghl, &dripjobs_mapping(), &[]).await;

    // The lead (Proposal Accepted): no install date yet, so no appointment.
    let lead = fixture("proposal-accepted");
    deliver(&app, "dripjobs", &lead).await;
    let state = ghl.state();
    let contact_id = state.contact_by_email("jane.sample@example.com").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(state.appointments.is_empty());

    // Appointment Set: the fixture's deal and install date, at 8:00 (Phoenix, UTC-7 all year).
    let set = with(
        fixture("appointment-set"),
        json!({"stage": "appointment_set", "install_time": "8:00 AM"}),
    );
    deliver(&app, "dripjobs", &set).await;
    let state = ghl.state();
    let booked = state.appointments_of(&contact_id);
    assert_eq!(booked.len(), 1, "{booked:#?}");
    let appointment = booked[0].clone();
    assert_eq!(appointment["calendarId"], CALENDAR);
    assert_eq!(appointment["locationId"], LOCATION);
    assert_eq!(appointment["startTime"], "2026-05-14T08:00:00-07:00");
    assert_eq!(appointment["endTime"], "2026-05-14T12:00:00-07:00");
    assert_eq!(appointment["title"], "Install for deal 1234567");
    assert_eq!(appointment["appointmentStatus"], "confirmed");
    let description = appointment["description"].as_str().unwrap();
    assert!(
        description.starts_with("Booked from DripJobs"),
        "{description}"
    );
    assert!(description.contains("[formbridge:"), "{description}");
    // The lead's task moved to the install date too, 09:00 in Phoenix.
    let tasks = state.tasks_of(&contact_id);
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["dueDate"], "2026-05-14T16:00:00.000Z");

    // Rescheduled: the same appointment moves; none is added.
    let reschedule = json!({
        "deal_id": "1234567", "stage": "appointment_rescheduled",
        "install_date": "5/21/2026", "install_time": "1:30 PM",
    });
    deliver(&app, "dripjobs", &reschedule).await;
    let state = ghl.state();
    assert_eq!(state.appointments.len(), 1, "{:#?}", state.appointments);
    let moved = &state.appointments[0];
    assert_eq!(moved["id"], appointment["id"], "the same appointment moved");
    assert_eq!(moved["startTime"], "2026-05-21T13:30:00-07:00");
    assert_eq!(moved["endTime"], "2026-05-21T17:30:00-07:00");
    assert_eq!(
        state
            .requests_to("POST", "/calendars/events/appointments")
            .len(),
        1,
        "booked once"
    );

    replay_each(&app, &ghl).await;
    assert_eq!(ghl.state().appointments.len(), 1);
}

#[tokio::test]
async fn a_cancelled_job_cancels_its_appointment() {
    let ghl = sandbox_with_calendar().await;
    let mapping = format!(
        "{}\n[[sources.dripjobs.mapping.follow_ups]]\nwhen = {{ field = \"event\", equals = \"job_cancelled\" }}\nappointment = \"cancel\"\n",
        dripjobs_mapping()
    );
    let app = driven_app_for(&ghl, &mapping, &[]).await;
    deliver(&app, "dripjobs", &fixture("proposal-accepted")).await;
    let set = with(
        fixture("appointment-set"),
        json!({"stage": "appointment_set"}),
    );
    deliver(&app, "dripjobs", &set).await;
    let state = ghl.state();
    assert_eq!(state.appointments.len(), 1);
    // A date alone starts at the default 09:00, Phoenix time.
    assert_eq!(
        state.appointments[0]["startTime"],
        "2026-05-14T09:00:00-07:00"
    );
    // A second "Appointment Set" for the job (its Zap fired again) moves the same one.
    let again = with(set.clone(), json!({"install_date": "5/28/2026"}));
    deliver(&app, "dripjobs", &again).await;
    let state = ghl.state();
    assert_eq!(state.appointments.len(), 1, "{:#?}", state.appointments);
    assert_eq!(
        state.appointments[0]["startTime"],
        "2026-05-28T09:00:00-07:00"
    );
    deliver(
        &app,
        "dripjobs",
        &json!({"deal_id": "1234567", "stage": "job_cancelled"}),
    )
    .await;
    let state = ghl.state();
    assert_eq!(state.appointments.len(), 1);
    assert_eq!(state.appointments[0]["appointmentStatus"], "cancelled");
}

/// A Jotform delivery with an appointment field (the slot and its zone, as Jotform sends it).
fn jotform_with_slot(boundary: &str) -> String {
    let raw = json!({
        "q3_name": {"first": "Ada", "last": "Lovelace"},
        "q4_email": "ada@example.com",
        "q7_appointment": {
            "date": "2026-07-20 16:00",
            "duration": "45",
            "timezone": "America/New_York (GMT-04:00)"
        },
    });
    let fields = [
        ("submissionID", "5261234567890123999".to_owned()),
        ("formTitle", "Book a visit".to_owned()),
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

#[tokio::test]
async fn a_jotform_slot_in_new_york_is_booked_at_its_instant() {
    let ghl = sandbox_with_calendar().await;
    // The mapping's own zone is another one: the slot's zone wins.
    let mapping = format!(
        r#"
[sources.jotform.mapping]
time_zone = "Europe/Berlin"

[[sources.jotform.mapping.appointments]]
calendar_id = "{CALENDAR}"
start_from = "q7_appointment"
assigned_user_id = "user0000000000000001"
"#
    );
    let app = driven_app_for(&ghl, &mapping, &[]).await;
    let boundary = "----slotboundary1";
    let r = app
        .post_hook(
            "jotform",
            Some(SECRET),
            Some(&format!("multipart/form-data; boundary={boundary}")),
            jotform_with_slot(boundary).into_bytes(),
        )
        .await;
    assert_eq!(r.status(), 200);
    app.drain(Duration::from_secs(30)).await;
    let state = ghl.state();
    let contact_id = state.contact_by_email("ada@example.com").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let booked = state.appointments_of(&contact_id);
    assert_eq!(booked.len(), 1, "{booked:#?}");
    // 16:00 in New York in July is 20:00 UTC; the slot's 45 minutes set the end.
    assert_eq!(booked[0]["startTime"], "2026-07-20T16:00:00-04:00");
    assert_eq!(booked[0]["endTime"], "2026-07-20T16:45:00-04:00");
    let start = time::OffsetDateTime::parse(
        booked[0]["startTime"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(start, time::macros::datetime!(2026-07-20 20:00 UTC));
    assert_eq!(booked[0]["title"], "Appointment with Ada Lovelace");
    assert_eq!(booked[0]["assignedUserId"], "user0000000000000001");
    // The Calendars API was called with its own Version, and the listing shows the booking.
    let create = &state.requests_to("POST", "/calendars/events/appointments")[0];
    assert_eq!(create.status, 200);
    let body = create.body.as_ref().unwrap();
    assert_eq!(body["ignoreFreeSlotValidation"], true);
    assert_eq!(body["contactId"], contact_id.as_str());
    let listing = reqwest::Client::new()
        .get(
            ghl.base_url
                .join(&format!("/contacts/{contact_id}/appointments"))
                .unwrap(),
        )
        .bearer_auth(TOKEN)
        .header("Version", "2021-07-28")
        .send()
        .await
        .unwrap();
    assert_eq!(listing.status(), 200);
    let listing: Value = listing.json().await.unwrap();
    assert_eq!(listing["events"][0]["id"], booked[0]["id"]);
    assert!(listing["events"][0].get("description").is_none());

    replay_each(&app, &ghl).await;
}

/// A booking GHL applied but whose answer was lost is found by its marker on the retry, not
/// booked again.
#[tokio::test]
async fn a_booking_whose_answer_was_lost_is_found_not_repeated() {
    let ghl = sandbox_with_calendar().await;
    let mapping = format!(
        r#"
[[sources.jotform.mapping.appointments]]
calendar_id = "{CALENDAR}"
start_from = "q7_appointment"
"#
    );
    let app = driven_app_for(&ghl, &mapping, &[]).await;
    ghl.sandbox.set_faults(FaultSpec {
        drop_after_next: Some(1),
        match_path: Some("/calendars/events/appointments".to_owned()),
        ..FaultSpec::default()
    });
    let boundary = "----slotboundary2";
    let r = app
        .post_hook(
            "jotform",
            Some(SECRET),
            Some(&format!("multipart/form-data; boundary={boundary}")),
            jotform_with_slot(boundary).into_bytes(),
        )
        .await;
    assert_eq!(r.status(), 200);
    app.drain(Duration::from_secs(30)).await;
    let state = ghl.state();
    let posts = state.requests_to("POST", "/calendars/events/appointments");
    assert_eq!(posts.len(), 1, "{posts:#?}");
    assert_eq!(
        posts[0].outcome, "dropped_after",
        "the fault hit the booking"
    );
    assert_eq!(state.appointments.len(), 1, "{:#?}", state.appointments);
    let event = app
        .store
        .list_events(&EventFilter::default())
        .await
        .unwrap()[0]
        .id;
    let steps = app.store.steps(event).await.unwrap();
    let booked = steps
        .iter()
        .find(|s| s.kind == StepKind::BookAppointment)
        .unwrap();
    assert_eq!(
        booked.ghl_id.as_ref(),
        state.appointments[0]["id"]
            .as_str()
            .map(str::to_owned)
            .as_ref()
    );
}

#[tokio::test]
async fn a_date_only_due_date_lands_at_nine_in_the_mappings_zone() {
    let ghl = sandbox_with_calendar().await;
    let mapping = r#"
[sources.dripjobs.mapping]
time_zone = "America/New_York"

[[sources.dripjobs.mapping.tasks]]
title = "Install for {{name}}"
due_from = "install_date"
"#;
    let app = driven_app_for(&ghl, mapping, &[]).await;
    let lead = with(
        fixture("proposal-accepted"),
        json!({"install_date": "11/20/2026"}),
    );
    deliver(&app, "dripjobs", &lead).await;
    let state = ghl.state();
    let contact_id = state.contact_by_email("jane.sample@example.com").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let tasks = state.tasks_of(&contact_id);
    assert_eq!(tasks.len(), 1);
    // 09:00 in New York on 20 November (EST, UTC-5).
    assert_eq!(tasks[0]["dueDate"], "2026-11-20T14:00:00.000Z");
    replay_each(&app, &ghl).await;
}

/// The sandbox's calendar routes answer like GHL's: the Calendars `Version`, the whitelist,
/// required properties, known calendars and ids.
#[tokio::test]
async fn the_sandbox_checks_appointment_requests_like_ghl() {
    let ghl = sandbox_with_calendar().await;
    let http = reqwest::Client::new();
    let url = |path: &str| ghl.base_url.join(path).unwrap();
    let contact: Value = http
        .post(url("/contacts/upsert"))
        .bearer_auth(TOKEN)
        .header("Version", "2021-07-28")
        .json(&json!({"locationId": LOCATION, "email": "cal@example.com"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let contact_id = contact["contact"]["id"].as_str().unwrap().to_owned();
    let send = |method: reqwest::Method, path: String, version: &str, body: Option<Value>| {
        let mut r = http
            .request(method, url(&path))
            .bearer_auth(TOKEN)
            .header("Version", version);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send()
    };
    let good = json!({
        "calendarId": CALENDAR, "locationId": LOCATION, "contactId": contact_id,
        "startTime": "2026-07-20T16:00:00-04:00", "endTime": "2026-07-20T17:00:00-04:00",
        "title": "Visit", "ignoreFreeSlotValidation": true, "toNotify": false,
    });
    let path = "/calendars/events/appointments".to_owned();
    // The Contacts API's Version is not the Calendars API's.
    let r = send(
        reqwest::Method::POST,
        path.clone(),
        "2021-07-28",
        Some(good.clone()),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    let mut unknown = good.clone();
    unknown["notes"] = json!("x");
    let r = send(
        reqwest::Method::POST,
        path.clone(),
        CALENDARS_API_VERSION,
        Some(unknown),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(body["message"]
        .as_array()
        .unwrap()
        .contains(&json!("property notes should not exist")));
    let r = send(
        reqwest::Method::POST,
        path.clone(),
        CALENDARS_API_VERSION,
        Some(json!({"calendarId": CALENDAR, "locationId": LOCATION, "contactId": contact_id, "startTime": "tomorrow"})),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 422);
    let r = send(
        reqwest::Method::POST,
        path.clone(),
        CALENDARS_API_VERSION,
        Some(json!({"locationId": LOCATION, "contactId": contact_id})),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 422, "calendarId and startTime are required");
    let mut other_calendar = good.clone();
    other_calendar["calendarId"] = json!("calNope");
    let r = send(
        reqwest::Method::POST,
        path.clone(),
        CALENDARS_API_VERSION,
        Some(other_calendar),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let r = send(
        reqwest::Method::POST,
        path.clone(),
        CALENDARS_API_VERSION,
        Some(good),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["contactId"], contact_id.as_str());
    assert!(created.get("description").is_none());
    // Edit: the cancel; an unknown property; an unknown id.
    let one = format!("/calendars/events/appointments/{id}");
    let r = send(
        reqwest::Method::PUT,
        one.clone(),
        CALENDARS_API_VERSION,
        Some(json!({"appointmentStatus": "cancelled"})),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let r = send(
        reqwest::Method::PUT,
        one.clone(),
        CALENDARS_API_VERSION,
        Some(json!({"contactId": "x"})),
    )
    .await
    .unwrap();
    assert_eq!(
        r.status(),
        422,
        "an edit cannot move the appointment to another contact"
    );
    let r = send(
        reqwest::Method::PUT,
        "/calendars/events/appointments/nope".to_owned(),
        CALENDARS_API_VERSION,
        Some(json!({"title": "x"})),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let r = send(reqwest::Method::GET, one, CALENDARS_API_VERSION, None)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let read: Value = r.json().await.unwrap();
    assert_eq!(read["event"]["appointmentStatus"], "cancelled");
    assert_eq!(read["event"]["title"], "Visit");
    let r = send(
        reqwest::Method::GET,
        "/calendars/events/appointments/nope".to_owned(),
        CALENDARS_API_VERSION,
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
}
