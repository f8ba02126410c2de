//! Follow-ups by reference against the GHL sandbox over HTTP: DripJobs stage changes that carry
//! only the `deal_id` act on the contact and the task their lead made — moved to the install
//! date, completed, tags moved — even when they arrive before the lead; one for a deal that
//! never arrives waits `dispatch.follow_up_wait` and is then dead-lettered with the reason.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use formbridge::store::EventStatus;
use serde_json::{json, Value};

use crate::common::TestApp;
use crate::dispatch::{driven_app_for, post_json, sandbox_with};

/// A DripJobs source with a lead task and two follow-up rules keyed on the `stage` the Zaps
/// send.
const MAPPING: &str = r#"
[sources.dripjobs.mapping]
[[sources.dripjobs.mapping.tags.when]]
tag = "proposal-accepted"
when = { field = "answers.price", present = true }

[[sources.dripjobs.mapping.tasks]]
title = "Schedule install for {{name}}"
due_in = "1d"

[[sources.dripjobs.mapping.follow_ups]]
when = { field = "event", equals = "appointment_set" }
tags = ["appointment-set"]
lead_tasks = "move"
due_from = "install_date"

[[sources.dripjobs.mapping.follow_ups]]
when = { field = "event", equals = "project_completed" }
tags = ["project-completed"]
remove_tags = ["proposal-accepted", "appointment-set"]
lead_tasks = "complete"
[[sources.dripjobs.mapping.follow_ups.tasks]]
title = "Ask for a review (deal {{answers.deal_id}})"
due_in = "3d"
"#;

const EMAIL: &str = "jane.sample@example.com";

fn lead(deal: &str) -> Value {
    json!({
        "customer_name": "Jane Sample",
        "customer_email": EMAIL,
        "customer_phone": "9285550142",
        "deal_id": deal,
        "package": "Flake Garage Floor",
        "price": "4500.00",
    })
}

/// Posts a delivery and runs the dispatcher until nothing is open.
async fn deliver(app: &TestApp, body: Value) {
    post_json(app, "dripjobs", &body).await;
    app.drain(Duration::from_secs(30)).await;
}

#[tokio::test]
async fn stage_changes_move_and_complete_the_leads_task_and_move_its_tags() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let app = driven_app_for(&ghl, MAPPING, &[]).await;

    deliver(&app, lead("1234567")).await;
    let state = ghl.state();
    let contact_id = state.contact_by_email(EMAIL).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(state.tasks_of(&contact_id).len(), 1);
    assert!(state
        .tags_of(&contact_id)
        .contains(&"proposal-accepted".to_owned()));

    // "Appointment set": only the deal id and the install date.
    deliver(
        &app,
        json!({"deal_id": "1234567", "install_date": "5/14/2026", "stage": "appointment_set"}),
    )
    .await;
    let state = ghl.state();
    let tasks = state.tasks_of(&contact_id);
    assert_eq!(tasks.len(), 1, "{tasks:#?}");
    assert!(
        tasks[0]["dueDate"]
            .as_str()
            .unwrap()
            .starts_with("2026-05-14T09:00:00"),
        "{}",
        tasks[0]
    );
    assert!(state
        .tags_of(&contact_id)
        .contains(&"appointment-set".to_owned()));

    // "Project completed": the task is completed and the stage tags move.
    deliver(
        &app,
        json!({"deal_id": "1234567", "stage": "project_completed"}),
    )
    .await;
    let state = ghl.state();
    assert_eq!(state.contacts.len(), 1, "no second contact");
    let tasks = state.tasks_of(&contact_id);
    assert_eq!(
        tasks.len(),
        2,
        "the lead's task and the review task: {tasks:#?}"
    );
    assert_eq!(tasks[0]["completed"], true, "{}", tasks[0]);
    assert_eq!(tasks[1]["title"], "Ask for a review (deal 1234567)");
    assert_eq!(tasks[1]["completed"], false, "{}", tasks[1]);
    let tags = state.tags_of(&contact_id);
    assert!(tags.contains(&"project-completed".to_owned()), "{tags:?}");
    assert!(!tags.contains(&"proposal-accepted".to_owned()), "{tags:?}");
    assert!(!tags.contains(&"appointment-set".to_owned()), "{tags:?}");
    assert_eq!(
        state.notes_of(&contact_id).len(),
        3,
        "the lead's note and one per follow-up"
    );
    let counts = app.store.status_counts().await.unwrap();
    assert_eq!(counts[&EventStatus::Done], 3, "{counts:?}");
    crate::spec_check::assert_requests_follow_specs(&ghl.state());
}

#[tokio::test]
async fn a_follow_up_before_its_lead_waits_for_it_and_one_without_a_lead_is_dead_lettered() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let app = driven_app_for(&ghl, MAPPING, &[("dispatch.follow_up_wait", "2s")]).await;

    // The completion arrives first; the lead a moment later (a Zap race).
    post_json(
        &app,
        "dripjobs",
        &json!({"deal_id": "777", "stage": "project_completed"}),
    )
    .await;
    app.dispatcher.as_ref().unwrap().run_once().await;
    let waiting = app.events_in(EventStatus::Retrying).await;
    assert_eq!(waiting.len(), 1, "the follow-up waits: {waiting:?}");
    assert!(ghl.state().contacts.is_empty());
    deliver(&app, lead("777")).await;
    let state = ghl.state();
    let contact_id = state.contact_by_email(EMAIL).unwrap()["id"]
        .as_str()
        .unwrap();
    let tasks = state.tasks_of(contact_id);
    assert_eq!(
        tasks.len(),
        2,
        "the lead's task and the review task: {tasks:#?}"
    );
    let lead_task = tasks
        .iter()
        .find(|t| t["title"] == "Schedule install for Jane Sample")
        .unwrap();
    assert_eq!(lead_task["completed"], true, "{lead_task}");
    assert!(state
        .tags_of(contact_id)
        .contains(&"project-completed".to_owned()));

    // A deal nobody sent: it waits its 2 s, then is a dead letter that says why.
    post_json(
        &app,
        "dripjobs",
        &json!({"deal_id": "404404", "stage": "project_completed"}),
    )
    .await;
    app.drain(Duration::from_secs(30)).await;
    let dead = app.events_in(EventStatus::Dead).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let reason = dead[0].last_error.clone().unwrap_or_default();
    assert!(reason.contains("deal_id:404404"), "{reason}");
    assert!(reason.contains("dispatch.follow_up_wait"), "{reason}");
    assert_eq!(ghl.state().contacts.len(), 1, "nothing was made for it");
}

#[tokio::test]
async fn a_follow_up_whose_leads_made_no_contact_is_dead_lettered_at_once() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    // JivoChat skips an anonymous chat by default (jivochat_events.rs); a mapping that says
    // "error" makes every delivery without email or phone a follow-up of its chat.
    let app = driven_app_for(
        &ghl,
        "[sources.jivochat.mapping]\non_missing_contact = \"error\"\n",
        &[],
    )
    .await;
    // An anonymous chat: accepted (plans nothing: no email or phone), then finished, still
    // anonymous. The finished chat follows its chat's earlier events, which made no contact:
    // waiting a day for them cannot help.
    let visitor = json!({"name": "Guest", "number": 77});
    post_json(
        &app,
        "jivochat",
        &json!({"event_name": "chat_accepted", "chat_id": 9001, "client_id": 77, "visitor": visitor}),
    )
    .await;
    app.drain(Duration::from_secs(20)).await;
    post_json(
        &app,
        "jivochat",
        &json!({"event_name": "chat_finished", "chat_id": 9001, "client_id": 77, "visitor": visitor,
                "chat": {"messages": [{"type": "visitor", "message": "just looking"}]}}),
    )
    .await;
    app.drain(Duration::from_secs(20)).await;
    let dead = app.events_in(EventStatus::Dead).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let reason = dead[0].last_error.clone().unwrap_or_default();
    assert!(reason.contains("finished without a contact"), "{reason}");
    assert!(reason.contains("jivochat/chat_id:9001"), "{reason}");
    assert!(ghl.state().contacts.is_empty());
}
