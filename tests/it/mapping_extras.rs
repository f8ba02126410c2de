//! Issue #14's mapping additions against the GHL sandbox over HTTP: contacts created by name,
//! countries as ISO codes, the phone's country per delivery, the kept first `source`, tags
//! removed when their condition stops holding, and task due dates from answers.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ghl_sandbox::FaultSpec;
use serde_json::json;

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
    post_json(
        &app,
        "dripjobs",
        &json!({"deal_id": "n-1", "customer_name": "Grace Hopper"}),
    )
    .await;
    app.drain(Duration::from_secs(20)).await;

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

    // A form without any name still fails with the reason.
    post_json(&app, "dripjobs", &json!({"deal_id": "n-2", "notes": "hi"})).await;
    app.drain(Duration::from_secs(20)).await;
    assert_eq!(ghl.state().contacts.len(), 1);
}
