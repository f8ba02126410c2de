//! Opportunities against the GHL sandbox over HTTP: a DripJobs deal makes one card in the
//! pipeline, its stage deliveries move it ("proposal accepted" → Accepted, "project completed"
//! → won), an edit of the lead updates its name and value in place, pipelines and stages named
//! in the mapping are resolved through one `GET /opportunities/pipelines`, an unknown stage is
//! a dead letter naming the key, and neither replays nor a lost answer make a second card.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use formbridge::store::{EventFilter, EventStatus, EventSummary};
use ghl_sandbox::{FaultSpec, SandboxHandle, SandboxState};
use serde_json::{json, Value};

use crate::common::TestApp;
use crate::dispatch::{driven_app_for, post_json, sandbox_with, LOCATION, TOKEN};

/// A DripJobs source whose deals are cards of the sandbox's default "Sales Pipeline".
const MAPPING: &str = r#"
[[sources.dripjobs.mapping.opportunities]]
pipeline = "Sales Pipeline"
stage = "New Lead"
name = "{{name}}: {{answers.package}}"
monetary_value = "{{answers.price}}"

[[sources.dripjobs.mapping.follow_ups]]
when = { field = "event", equals = "proposal_accepted" }
opportunity = { stage = "Accepted" }

[[sources.dripjobs.mapping.follow_ups]]
when = { field = "event", equals = "project_completed" }
opportunity = { status = "won" }
"#;

const EMAIL: &str = "jane.sample@example.com";
const DEAL: &str = "1234567";

fn lead(email: &str, deal: &str, package: &str, price: &str) -> Value {
    json!({
        "customer_name": "Jane Sample",
        "customer_email": email,
        // One phone per deal: GHL's upsert matches on the phone when the email is new.
        "customer_phone": format!("928555{}", &deal[..4]),
        "deal_id": deal,
        "package": package,
        "price": price,
    })
}

fn stage(deal: &str, stage: &str) -> Value {
    json!({"deal_id": deal, "stage": stage})
}

/// Posts a delivery and runs the dispatcher until nothing is open.
async fn deliver(app: &TestApp, body: Value) {
    post_json(app, "dripjobs", &body).await;
    app.drain(Duration::from_secs(30)).await;
}

fn contact_id(state: &SandboxState, email: &str) -> String {
    state.contact_by_email(email).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The contact's only card.
fn only_card(state: &SandboxState, contact: &str) -> Value {
    let cards = state.opportunities_of(contact);
    assert_eq!(cards.len(), 1, "one card for the lead: {cards:#?}");
    cards[0].clone()
}

fn requests(state: &SandboxState, method: &str, path: &str) -> usize {
    state.requests_to(method, path).len()
}

async fn events(app: &TestApp) -> Vec<EventSummary> {
    let mut all = app
        .store
        .list_events(&EventFilter {
            limit: Some(100),
            ..EventFilter::default()
        })
        .await
        .unwrap();
    all.sort_by_key(|e| e.id);
    all
}

/// What a card says, without its timestamps.
fn card_facts(card: &Value) -> Value {
    json!({
        "id": card["id"], "name": card["name"], "monetaryValue": card["monetaryValue"],
        "pipelineId": card["pipelineId"], "pipelineStageId": card["pipelineStageId"],
        "status": card["status"], "contactId": card["contactId"],
    })
}

#[tokio::test]
async fn a_deal_is_one_card_its_stages_move_and_its_edits_update() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let app = driven_app_for(&ghl, MAPPING, &[]).await;

    deliver(&app, lead(EMAIL, DEAL, "Flake Garage Floor", "$4,500.00")).await;
    let state = ghl.state();
    let contact = contact_id(&state, EMAIL);
    let card = only_card(&state, &contact);
    assert_eq!(card["pipelineId"], "sbxSalesPipeline0001");
    assert_eq!(card["pipelineStageId"], "sbx-stage-1", "New Lead");
    assert_eq!(card["status"], "open");
    assert_eq!(card["name"], "Jane Sample: Flake Garage Floor");
    assert_eq!(card["monetaryValue"], 4500.0);
    let id = card["id"].clone();

    deliver(&app, stage(DEAL, "proposal_accepted")).await;
    let card = only_card(&ghl.state(), &contact);
    assert_eq!(card["id"], id);
    assert_eq!(card["pipelineStageId"], "sbx-stage-3", "Accepted");
    assert_eq!(card["status"], "open");

    // The customer changes the package: an edit of the lead (same deal id, other content).
    deliver(&app, lead(EMAIL, DEAL, "Metallic Epoxy Floor", "5200")).await;
    let card = only_card(&ghl.state(), &contact);
    assert_eq!(card["id"], id, "updated in place");
    assert_eq!(card["name"], "Jane Sample: Metallic Epoxy Floor");
    assert_eq!(card["monetaryValue"], 5200.0);
    assert_eq!(
        card["pipelineStageId"], "sbx-stage-3",
        "an edit leaves the stage to the follow-ups"
    );

    deliver(&app, stage(DEAL, "project_completed")).await;
    let state = ghl.state();
    let card = only_card(&state, &contact);
    assert_eq!(card["status"], "won");
    assert_eq!(card["pipelineStageId"], "sbx-stage-3");

    // Names were resolved through one pipelines request; one card was ever created.
    assert_eq!(requests(&state, "GET", "/opportunities/pipelines"), 1);
    assert_eq!(requests(&state, "POST", "/opportunities/"), 1);
    let all = events(&app).await;
    assert_eq!(all.len(), 4);
    assert!(
        all.iter().all(|e| e.status == EventStatus::Done),
        "{all:#?}"
    );

    // A replay from scratch of each event, in order, changes nothing.
    let before = card_facts(&card);
    let creates = requests(&state, "POST", "/opportunities/");
    for event in &all {
        assert!(app.store.replay(event.id, true).await.unwrap());
        app.drain(Duration::from_secs(30)).await;
        let state = ghl.state();
        assert_eq!(state.opportunities.len(), 1, "after replaying {}", event.id);
        assert_eq!(requests(&state, "POST", "/opportunities/"), creates);
    }
    let state = ghl.state();
    assert_eq!(card_facts(&only_card(&state, &contact)), before);
    assert_eq!(requests(&state, "GET", "/opportunities/pipelines"), 1);
    let all = events(&app).await;
    assert!(
        all.iter().all(|e| e.status == EventStatus::Done),
        "{all:#?}"
    );
    crate::spec_check::assert_requests_follow_specs(&ghl.state());
}

#[tokio::test]
async fn a_lost_answer_to_the_create_still_leaves_one_card() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let app = driven_app_for(&ghl, MAPPING, &[]).await;
    // A first deal fetches the pipelines, so the next request to an opportunities path is the
    // second deal's create.
    deliver(&app, lead("first@example.com", "1111111", "Garage", "1000")).await;
    ghl.sandbox.set_faults(FaultSpec {
        drop_after_next: Some(1),
        match_path: Some("/opportunities/".into()),
        ..FaultSpec::default()
    });
    deliver(&app, lead(EMAIL, DEAL, "Flake Garage Floor", "4500")).await;

    let state = ghl.state();
    let creates = state.requests_to("POST", "/opportunities/");
    assert_eq!(creates.len(), 2, "one create per deal: {creates:#?}");
    assert_eq!(
        creates[1].outcome, "dropped_after",
        "the create was applied, its answer lost"
    );
    assert_eq!(
        requests(&state, "GET", "/opportunities/search"),
        1,
        "the retry looked for the card before creating it again"
    );
    let card = only_card(&state, &contact_id(&state, EMAIL));
    assert_eq!(card["monetaryValue"], 4500.0);
    assert_eq!(state.opportunities.len(), 2);
    let all = events(&app).await;
    assert!(
        all.iter().all(|e| e.status == EventStatus::Done),
        "{all:#?}"
    );

    // The follow-up finds the adopted card through the store.
    deliver(&app, stage(DEAL, "proposal_accepted")).await;
    let state = ghl.state();
    assert_eq!(
        only_card(&state, &contact_id(&state, EMAIL))["pipelineStageId"],
        "sbx-stage-3"
    );
    crate::spec_check::assert_requests_follow_specs(&ghl.state());
}

/// Seeds the location's pipelines through the sandbox's control route.
async fn seed_roofing(ghl: &SandboxHandle) {
    seed_roofing_stages(ghl, "roof").await;
}

/// Seeds a "Roofing" pipeline whose stage ids start with `prefix`.
async fn seed_roofing_stages(ghl: &SandboxHandle, prefix: &str) {
    let seed = json!({"locationId": LOCATION, "pipelines": [
        {"id": "roofPipeline00000001", "name": "Roofing", "stages": [
            {"id": format!("{prefix}-inspection"), "name": "Inspection"},
            {"id": format!("{prefix}-quote"), "name": "Quote"},
            {"id": format!("{prefix}-signed"), "name": "Signed"}]}]});
    let r = reqwest::Client::new()
        .post(ghl.base_url.join("/_sandbox/pipelines").unwrap())
        .json(&seed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_stage_named_by_an_answer_resolves_and_an_unknown_one_is_a_dead_letter_naming_the_key() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    seed_roofing(&ghl).await;
    let mapping = r#"
[[sources.dripjobs.mapping.opportunities]]
pipeline = "roofing"
stage = "Quote"

[[sources.dripjobs.mapping.follow_ups]]
when = { field = "event", equals = "proposal_accepted" }
opportunity = { stage = "{{answers.board_stage}}" }
"#;
    let app = driven_app_for(&ghl, mapping, &[]).await;
    deliver(&app, lead(EMAIL, DEAL, "Roof", "9000")).await;
    let state = ghl.state();
    let contact = contact_id(&state, EMAIL);
    let card = only_card(&state, &contact);
    assert_eq!(card["pipelineId"], "roofPipeline00000001");
    assert_eq!(card["pipelineStageId"], "roof-quote");
    assert_eq!(card["name"], "Jane Sample", "the default name");

    // The stage named by an answer of the follow-up.
    let mut accepted = stage(DEAL, "proposal_accepted");
    accepted["board_stage"] = json!("Signed");
    deliver(&app, accepted).await;
    assert_eq!(
        only_card(&ghl.state(), &contact)["pipelineStageId"],
        "roof-signed"
    );

    // A stage GHL does not have: a dead letter that names the key and GHL's stages, after
    // one fresh look at the pipelines (the cached list may be stale).
    let mut typo = stage(DEAL, "proposal_accepted");
    typo["board_stage"] = json!("Signd");
    typo["note"] = json!("typo");
    deliver(&app, typo).await;
    let all = events(&app).await;
    let dead: Vec<&EventSummary> = all
        .iter()
        .filter(|e| e.status == EventStatus::Dead)
        .collect();
    assert_eq!(dead.len(), 1, "{all:#?}");
    let error = dead[0].last_error.as_deref().unwrap();
    assert!(
        error.contains("sources.dripjobs.mapping.follow_ups[0].opportunity.stage"),
        "{error}"
    );
    assert!(error.contains("\"Signd\""), "{error}");
    assert!(error.contains("Inspection, Quote, Signed"), "{error}");
    let state = ghl.state();
    assert_eq!(requests(&state, "GET", "/opportunities/pipelines"), 2);
    assert_eq!(
        only_card(&state, &contact)["pipelineStageId"],
        "roof-signed",
        "unchanged"
    );
}

/// A stage replaced in GHL after its pipeline was cached: GHL refuses the old id, formbridge
/// fetches the pipelines again and creates the card in the stage of that name.
#[tokio::test]
async fn a_stage_replaced_in_ghl_is_resolved_again_when_ghl_refuses_its_old_id() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    seed_roofing(&ghl).await;
    let mapping = r#"
[[sources.dripjobs.mapping.opportunities]]
pipeline = "Roofing"
stage = "Quote"
"#;
    let app = driven_app_for(&ghl, mapping, &[]).await;
    deliver(&app, lead("first@example.com", "1111111", "Roof", "9000")).await;
    seed_roofing_stages(&ghl, "rebuilt").await;
    deliver(&app, lead(EMAIL, DEAL, "Roof", "7000")).await;

    let state = ghl.state();
    let card = only_card(&state, &contact_id(&state, EMAIL));
    assert_eq!(card["pipelineStageId"], "rebuilt-quote");
    let creates = state.requests_to("POST", "/opportunities/");
    let statuses: Vec<u16> = creates.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [201, 400, 201]);
    assert_eq!(requests(&state, "GET", "/opportunities/pipelines"), 2);
    let all = events(&app).await;
    assert!(
        all.iter().all(|e| e.status == EventStatus::Done),
        "{all:#?}"
    );
}

/// The sandbox's Opportunities API answers like GHL's spec: unknown properties 422, unknown
/// ids and stages 400, a foreign location 403, the pipelines and search shapes.
#[tokio::test]
async fn the_sandbox_opportunities_api_follows_the_spec() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str| {
        http.request(method, ghl.base_url.join(path).unwrap())
            .bearer_auth(TOKEN)
            .header("Version", "2021-07-28")
    };
    let r = call(reqwest::Method::POST, "/contacts/upsert")
        .json(&json!({"locationId": LOCATION, "email": EMAIL}))
        .send()
        .await
        .unwrap();
    let contact: Value = r.json().await.unwrap();
    let contact = contact["contact"]["id"].as_str().unwrap().to_owned();

    let r = call(
        reqwest::Method::GET,
        &format!("/opportunities/pipelines?locationId={LOCATION}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let stages: Vec<&str> = body["pipelines"][0]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        [
            "New Lead",
            "Proposal Sent",
            "Accepted",
            "Scheduled",
            "Completed"
        ]
    );
    let r = call(
        reqwest::Method::GET,
        "/opportunities/pipelines?locationId=someoneElses00000001",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 403);

    let create = |extra: Value| {
        let mut body = json!({"pipelineId": "sbxSalesPipeline0001", "locationId": LOCATION,
                              "name": "Deal", "status": "open", "contactId": contact});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        call(reqwest::Method::POST, "/opportunities/").json(&body)
    };
    let r = create(json!({"colour": "red"})).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["message"][0], "property colour should not exist");
    let r = create(json!({"status": "pending"})).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let r = create(json!({"pipelineStageId": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = create(json!({"monetaryValue": 220})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let card: Value = r.json().await.unwrap();
    let id = card["opportunity"]["id"].as_str().unwrap().to_owned();
    assert_eq!(card["opportunity"]["pipelineStageId"], "sbx-stage-1");
    let r = create(json!({})).send().await.unwrap();
    assert_eq!(
        r.status(),
        400,
        "a second open card for the contact in the pipeline"
    );

    let r = call(reqwest::Method::PUT, &format!("/opportunities/{id}/status"))
        .json(&json!({"status": "won"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["succeded"], true);
    let r = call(reqwest::Method::PUT, &format!("/opportunities/{id}"))
        .json(&json!({"pipelineStageId": "sbx-stage-5", "name": "Deal won"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = call(reqwest::Method::PUT, &format!("/opportunities/{id}"))
        .json(&json!({"stage": "Completed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = call(reqwest::Method::GET, &format!("/opportunities/{id}"))
        .send()
        .await
        .unwrap();
    let card: Value = r.json().await.unwrap();
    assert_eq!(card["opportunity"]["status"], "won");
    assert_eq!(card["opportunity"]["pipelineStageId"], "sbx-stage-5");
    let r = call(reqwest::Method::GET, "/opportunities/nosuchcard000000000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let r = call(
        reqwest::Method::GET,
        &format!(
            "/opportunities/search?location_id={LOCATION}&contact_id={contact}&pipeline_id=sbxSalesPipeline0001"
        ),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let found: Value = r.json().await.unwrap();
    assert_eq!(found["meta"]["total"], 1);
    assert_eq!(found["opportunities"][0]["id"], id.as_str());
    let r = call(
        reqwest::Method::GET,
        &format!("/opportunities/search?location_id={LOCATION}&contact_id=someoneelse"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["meta"]["total"], 0);
}

/// `formbridge map` shows the opportunity steps as the mapping writes them (names, not ids: no
/// GHL call is made), and a bad rule is refused at start naming its key.
#[tokio::test]
async fn the_map_preview_shows_the_opportunity_steps() {
    use bytes::Bytes;
    use formbridge::body::BodyLimits;
    use formbridge::dispatch::preview::preview;
    use formbridge::domain::SourceName;
    use formbridge::runtime::SourceRuntime;
    use formbridge::settings::SourceSettings;

    let name = SourceName::parse("dripjobs").unwrap();
    let settings = |mapping: Value| -> SourceSettings {
        serde_json::from_value(json!({ "mapping": mapping })).unwrap()
    };
    let mapping = json!({
        "opportunities": [{"pipeline": "Sales Pipeline", "stage": "New Lead",
                           "name": "{{name}}: {{answers.package}}",
                           "monetary_value": "{{answers.price}}"}],
        "follow_ups": [{"when": {"field": "event", "equals": "proposal_accepted"},
                        "opportunity": {"stage": "Accepted"}}],
    });
    let runtime = SourceRuntime::compile(name.clone(), &settings(mapping), None).unwrap();
    let at = time::OffsetDateTime::now_utc();
    let limits = BodyLimits::UNLIMITED;
    let body = Bytes::from(lead(EMAIL, DEAL, "Flake Garage Floor", "$4,500.00").to_string());
    let plan = preview(&runtime, &limits, Some("application/json"), &body, at)
        .unwrap()
        .plan
        .unwrap();
    let steps = serde_json::to_value(&plan.steps).unwrap();
    let card = steps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "upsert_opportunity")
        .unwrap();
    assert_eq!(
        card["opportunity"],
        json!({"rule": "opportunities[0]", "pipeline": {"name": "Sales Pipeline"},
               "stage": {"name": "New Lead"}, "name": "Jane Sample: Flake Garage Floor",
               "monetary_value": 4500.0, "status": "open"})
    );
    let body = Bytes::from(stage(DEAL, "proposal_accepted").to_string());
    let plan = preview(&runtime, &limits, Some("application/json"), &body, at)
        .unwrap()
        .plan
        .unwrap();
    let kinds: Vec<&str> = plan.steps.iter().map(|s| s.kind().as_str()).collect();
    assert!(kinds.contains(&"move_lead_opportunity"), "{kinds:?}");

    let bad = settings(json!({"opportunities": [{"stage": "New Lead"}]}));
    let err = SourceRuntime::compile(name, &bad, None).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("sources.dripjobs.mapping.opportunities[0].pipeline: is missing"),
        "{err}"
    );
}
