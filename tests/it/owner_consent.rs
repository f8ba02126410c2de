//! The owner and consent of a lead against the GHL sandbox over HTTP: `mapping.assign_to`
//! assigns the contact and its tasks to a GHL user (a rule by answer choosing), a user GHL does
//! not know dead-letters the event naming the key, and `[[mapping.dnd]]` turns an opt-out
//! answer and Jotform's consent widget into DND channels without ever lifting an opt-out GHL
//! already has (unless `lift = true`). Replays from scratch change nothing.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use formbridge::store::EventStatus;
use ghl_sandbox::{SandboxHandle, SandboxState};
use serde_json::{json, Value};

use crate::common::{TestApp, SECRET};
use crate::dispatch::{driven_app_for, sandbox_with, LOCATION, TOKEN};

const ALICE: &str = "usrAlice000000000001";
const BOB: &str = "usrBob00000000000002";
const CAROL: &str = "usrCarol000000000003";
const EMAIL: &str = "ada@example.com";
/// Jotform's consent widget as it arrives (`q6_typeA`, a JSON document sent as a string; from
/// `tests/fixtures/jotform/enterprise_consent-widget.ASSEMBLED.multipart`).
const CONSENT_WIDGET: &str = r#"{"widgetName":"consent","policyTypes":["privacy"],"customPolicies":[{"type":"participation","url":"www.redbull.com"}],"newsletters":[],"snippets":[],"country":"INT","lang":"en","formAlias":"rb_the_cans_are_out_there_2021","source":"HQ_The-Cans-Are-Out-There-HQ-Placeholder-for-Jotform_03_21","lucidId":"L1184-1"}"#;

/// The worked example of `docs/sources.md`: an opt-out checkbox sets SMS DND, the consent
/// widget's privacy consent records SMS and Email consent (lifting only with `lift`).
fn dnd_toml(lift: bool) -> String {
    format!(
        r#"
[[sources.jotform.mapping.dnd]]
when = {{ field = "answers.q8_contactMe", contains = "no text messages" }}
channels = ["SMS"]
status = "active"

[[sources.jotform.mapping.dnd]]
when = {{ field = "answers.q6_typeA", contains = "privacy" }}
channels = ["sms", "Email"]
status = "inactive"
lift = {lift}
"#
    )
}

/// A Jotform multipart delivery with these rawRequest `answers` (name and email added).
fn jotform(submission: &str, answers: Value) -> (String, Vec<u8>) {
    let mut raw = json!({"q3_name": {"first": "Ada", "last": "Lovelace"}, "q4_email": EMAIL});
    for (k, v) in answers.as_object().unwrap() {
        raw[k] = v.clone();
    }
    let boundary = format!("b{submission}");
    let body = [
        ("submissionID", submission.to_owned()),
        ("formTitle", "Quote request".to_owned()),
        ("rawRequest", raw.to_string()),
    ]
    .iter()
    .map(|(k, v)| {
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
    })
    .collect::<String>()
        + &format!("--{boundary}--\r\n");
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

async fn post(app: &TestApp, submission: &str, answers: Value) {
    let (content_type, body) = jotform(submission, answers);
    let r = app
        .post_hook("jotform", Some(SECRET), Some(&content_type), body)
        .await;
    assert_eq!(r.status(), 200);
}

fn seed_users(ghl: &SandboxHandle) {
    for (id, first) in [(ALICE, "Alice"), (BOB, "Bob"), (CAROL, "Carol")] {
        ghl.sandbox.add_user(
            LOCATION,
            json!({"id": id, "firstName": first, "lastName": "Staff"}),
        );
    }
}

fn contact_of<'a>(state: &'a SandboxState, email: &str) -> &'a Value {
    state
        .contact_by_email(email)
        .unwrap_or_else(|| panic!("no contact {email}: {:#?}", state.contacts))
}

/// What a replay must not change: every contact's owner, DND and tags, every task and note.
fn records(state: &SandboxState) -> Value {
    let contacts: Vec<Value> = state
        .contacts
        .iter()
        .map(|c| {
            json!([
                c["id"],
                c["assignedTo"],
                c["dnd"],
                c["dndSettings"],
                c["tags"]
            ])
        })
        .collect();
    json!({"contacts": contacts, "tasks": state.tasks, "notes": state.notes})
}

/// Replays every event from scratch and runs them again.
async fn replay_all_from_scratch(app: &TestApp) {
    for event in app.events_in(EventStatus::Done).await {
        assert!(app.store.replay(event.id, true).await.unwrap());
    }
    app.drain(Duration::from_secs(20)).await;
    assert!(app.events_in(EventStatus::Dead).await.is_empty());
}

#[tokio::test]
async fn the_owner_a_rule_by_answer_picks_gets_the_contact_and_its_tasks() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    seed_users(&ghl);
    let toml = format!(
        r#"
[[sources.jotform.mapping.assign_to]]
when = {{ field = "answers.q7_service", equals = "roofing" }}
user_id = "{BOB}"

[[sources.jotform.mapping.assign_to]]
user_id = "{ALICE}"

[[sources.jotform.mapping.tasks]]
title = "Call {{{{first_name}}}}"

[[sources.jotform.mapping.tasks]]
title = "Send the quote"
assigned_to = "{CAROL}"
"#
    );
    let app = driven_app_for(&ghl, &toml, &[]).await;
    post(
        &app,
        "5300000000000000001",
        json!({"q7_service": "Gutters"}),
    )
    .await;
    app.drain(Duration::from_secs(20)).await;

    let state = ghl.state();
    let contact = contact_of(&state, EMAIL);
    assert_eq!(
        contact["assignedTo"], ALICE,
        "the fallback rule: {contact:#}"
    );
    let upserts = state.requests_to("POST", "/contacts/upsert");
    assert_eq!(upserts[0].body.as_ref().unwrap()["assignedTo"], ALICE);
    let id = contact["id"].as_str().unwrap();
    let owners: Vec<(&str, &str)> = state
        .tasks_of(id)
        .iter()
        .map(|t| {
            (
                t["title"].as_str().unwrap(),
                t["assignedTo"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        owners,
        [("Call Ada", ALICE), ("Send the quote", CAROL)],
        "the owner by default, a task rule's own assigned_to wins"
    );

    // Another lead answering "Roofing" goes to Bob, with its task.
    post(
        &app,
        "5300000000000000002",
        json!({"q4_email": "grace@example.com", "q7_service": "Roofing"}),
    )
    .await;
    app.drain(Duration::from_secs(20)).await;
    let state = ghl.state();
    let grace = contact_of(&state, "grace@example.com");
    assert_eq!(grace["assignedTo"], BOB, "{grace:#}");
    let task = state.tasks_of(grace["id"].as_str().unwrap())[0].clone();
    assert_eq!(
        (task["title"].as_str(), task["assignedTo"].as_str()),
        (Some("Call Ada"), Some(BOB))
    );
    // The plan says who owns the lead, for the steps that assign (the `map` preview shows it).
    let event = app.events_in(EventStatus::Done).await[0].id;
    let plan = app
        .store
        .get_event(event)
        .await
        .unwrap()
        .unwrap()
        .plan
        .unwrap();
    assert_eq!(plan.owner.as_deref(), Some(BOB));

    let before = records(&ghl.state());
    replay_all_from_scratch(&app).await;
    assert_eq!(
        records(&ghl.state()),
        before,
        "a replay from scratch changes nothing"
    );
    crate::spec_check::assert_requests_follow_specs(&ghl.state());
}

#[tokio::test]
async fn a_user_ghl_does_not_know_dead_letters_the_event_naming_mapping_assign_to() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    seed_users(&ghl);
    let app = driven_app_for(
        &ghl,
        "[sources.jotform.mapping]\nassign_to = \"usrNobody00000000009\"\n",
        &[],
    )
    .await;
    post(&app, "5300000000000000003", json!({})).await;
    app.drain(Duration::from_secs(20)).await;
    let dead = app.events_in(EventStatus::Dead).await;
    assert_eq!(dead.len(), 1);
    let error = dead[0].last_error.as_deref().unwrap();
    assert!(
        error.contains("mapping.assign_to") && error.contains("usrNobody00000000009"),
        "{error}"
    );
    assert!(ghl.state().contacts.is_empty());
}

#[tokio::test]
async fn an_opt_out_sets_dnd_and_a_later_consent_does_not_lift_it() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let app = driven_app_for(&ghl, &dnd_toml(false), &[]).await;
    post(
        &app,
        "5300000000000000011",
        json!({"q8_contactMe": ["Email", "No text messages"]}),
    )
    .await;
    app.drain(Duration::from_secs(20)).await;
    let state = ghl.state();
    assert_eq!(
        contact_of(&state, EMAIL)["dndSettings"],
        json!({"SMS": {"status": "active"}})
    );

    // Consent given later (the consent widget): recorded on Email, SMS stays opted out.
    post(
        &app,
        "5300000000000000012",
        json!({"q6_typeA": CONSENT_WIDGET}),
    )
    .await;
    app.drain(Duration::from_secs(20)).await;
    let state = ghl.state();
    assert_eq!(
        contact_of(&state, EMAIL)["dndSettings"],
        json!({"SMS": {"status": "active"}, "Email": {"status": "inactive"}})
    );
    assert_eq!(state.contacts.len(), 1);

    let before = records(&ghl.state());
    let requests = ghl.state().requests.len();
    replay_all_from_scratch(&app).await;
    let state = ghl.state();
    assert_eq!(
        records(&state),
        before,
        "a replay from scratch changes nothing"
    );
    let contact_puts = state.requests[requests..]
        .iter()
        .filter(|r| r.method == "PUT" && !r.path.contains("/tasks") && !r.path.contains("/notes"))
        .count();
    assert_eq!(contact_puts, 0, "no DND left to write");
    crate::spec_check::assert_requests_follow_specs(&ghl.state());
}

#[tokio::test]
async fn with_lift_a_consent_lifts_an_opt_out_but_never_a_permanent_one() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let app = driven_app_for(&ghl, &dnd_toml(true), &[]).await;
    post(
        &app,
        "5300000000000000021",
        json!({"q8_contactMe": ["No text messages"]}),
    )
    .await;
    app.drain(Duration::from_secs(20)).await;
    let id = contact_of(&ghl.state(), EMAIL)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The contact replied STOP to an email campaign: GHL's own permanent DND.
    let put = reqwest::Client::new()
        .put(ghl.base_url.join(&format!("contacts/{id}")).unwrap())
        .bearer_auth(TOKEN)
        .header("Version", ghl_sandbox::API_VERSION)
        .json(&json!({"dndSettings": {"Email": {"status": "permanent"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    assert_eq!(
        contact_of(&ghl.state(), EMAIL)["dndSettings"],
        json!({"SMS": {"status": "active"}, "Email": {"status": "permanent"}}),
        "the sandbox merges dndSettings per channel"
    );

    post(
        &app,
        "5300000000000000022",
        json!({"q6_typeA": CONSENT_WIDGET}),
    )
    .await;
    app.drain(Duration::from_secs(20)).await;
    let state = ghl.state();
    assert_eq!(
        contact_of(&state, EMAIL)["dndSettings"],
        json!({"SMS": {"status": "inactive"}, "Email": {"status": "permanent"}})
    );
    let last_put = state.requests_to("PUT", &format!("/contacts/{id}"));
    assert_eq!(
        last_put.last().unwrap().body.as_ref().unwrap(),
        &json!({"dndSettings": {"SMS": {"status": "inactive"}}}),
        "only the channel that changes is sent"
    );
    crate::spec_check::assert_requests_follow_specs(&ghl.state());
}

/// `formbridge map` on the consent-widget fixture shows the owner and the DND step.
#[tokio::test]
async fn the_map_preview_of_the_consent_widget_fixture_shows_the_owner_and_dnd() {
    use formbridge::body::BodyLimits;
    use formbridge::dispatch::preview::{content_type_for_file, preview};
    use formbridge::domain::SourceName;
    use formbridge::runtime::SourceRuntime;
    use formbridge::settings::SourceSettings;

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jotform/enterprise_consent-widget.ASSEMBLED.multipart");
    let body = std::fs::read(&path).unwrap();
    let content_type = content_type_for_file(&path, &body);
    let settings: SourceSettings = serde_json::from_value(json!({"mapping": {
        "assign_to": ALICE,
        "dnd": [{"when": {"field": "answers.q6_typeA", "contains": "privacy"},
                 "channels": ["SMS", "Email"], "status": "inactive"}],
    }}))
    .unwrap();
    let runtime =
        SourceRuntime::compile(SourceName::parse("jotform").unwrap(), &settings, None).unwrap();
    let p = preview(
        &runtime,
        &BodyLimits::UNLIMITED,
        content_type.as_deref(),
        &bytes::Bytes::from(body),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let shown: Value = serde_json::from_str(&p.to_pretty_json()).unwrap();
    assert_eq!(shown["plan"]["owner"], ALICE, "{shown:#}");
    let last = shown["plan"]["steps"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last,
        json!({"kind": "set_dnd", "channels": {"SMS": "inactive", "Email": "inactive"}})
    );
}

/// The sandbox's users answer in the Users API's shapes (`tests/fixtures/ghl/ghl-users-openapi.json`).
#[tokio::test]
async fn the_sandbox_users_answer_as_the_users_spec_says() {
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/ghl/ghl-users-openapi.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let properties = spec["components"]["schemas"]["UserSchema"]["properties"]
        .as_object()
        .unwrap();
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    seed_users(&ghl);
    let client = reqwest::Client::new();
    let get = |path: String| {
        client
            .get(ghl.base_url.join(&path).unwrap())
            .bearer_auth(TOKEN)
            .header("Version", ghl_sandbox::API_VERSION)
            .send()
    };
    let listed: Value = get(format!("users/?locationId={LOCATION}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let users = listed["users"].as_array().unwrap();
    assert_eq!(users.len(), 3, "{listed:#}");
    for user in users {
        for key in user.as_object().unwrap().keys() {
            assert!(properties.contains_key(key), "`{key}` is not in UserSchema");
        }
    }
    let one = get(format!("users/{BOB}")).await.unwrap();
    assert_eq!(one.status(), 200);
    assert_eq!(one.json::<Value>().await.unwrap()["name"], "Bob Staff");
    assert_eq!(
        get("users/usrNobody00000000009".to_owned())
            .await
            .unwrap()
            .status(),
        400
    );
    let foreign = get("users/?locationId=someOtherLocation000".to_owned())
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
}
