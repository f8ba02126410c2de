//! The admin cockpit's APIs over real HTTP on SQLite and PostgreSQL: find a lead (`GET /admin/search`) by
//! email, phone in any format and submission id, with filters, counts and keyset pages; cancel
//! (`POST /admin/events/{id}/cancel`) against claims; both behind the admin token.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::admin::ids_of as ids;
use crate::common::{add_prepared, TestApp};
use crate::dispatch::{driven_app_for, post_json, sandbox_with, LOCATION};
use formbridge::store::{Claim, EventStatus};
use reqwest::StatusCode;
use serde_json::{json, Value};
use time::OffsetDateTime;

const TOKEN: &str = "cockpit-admin-token";

async fn admin(app: &TestApp, method: &str, path: &str) -> (StatusCode, Value) {
    let resp = app
        .client
        .request(method.parse().unwrap(), format!("{}{path}", app.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

/// Runs `case` on SQLite (the test's own file) and, when `pg`, on a PostgreSQL database of its
/// own (skipped without one, see `crate::pg`).
macro_rules! on_both_stores {
    ($sqlite:ident, $postgres:ident, $case:ident) => {
        #[tokio::test]
        async fn $sqlite() {
            $case(&[]).await;
        }

        #[tokio::test]
        async fn $postgres() {
            let Some(db) = crate::pg::database_or_skip().await else {
                return;
            };
            $case(&[("store.url", db.url.as_str())]).await;
        }
    };
}

on_both_stores!(
    a_lead_is_found_by_email_phone_in_any_format_and_with_filters_counts_and_pages,
    on_postgres_a_lead_is_found_by_email_phone_in_any_format_and_with_filters_counts_and_pages,
    search_case
);
on_both_stores!(
    cancel_ends_a_waiting_event_and_no_dispatcher_can_claim_it_after_the_200,
    on_postgres_cancel_ends_a_waiting_event_and_no_dispatcher_can_claim_it_after_the_200,
    cancel_case
);

on_both_stores!(
    the_detail_shows_each_steps_ghl_requests_with_status_and_latency,
    on_postgres_the_detail_shows_each_steps_ghl_requests_with_status_and_latency,
    step_requests_case
);

/// The `requests` of step `index` in the detail of event `id`.
async fn step_requests(app: &TestApp, id: i64, index: usize) -> (Value, Vec<Value>) {
    let (status, ev) = admin(app, "GET", &format!("/admin/events/{id}")).await;
    assert_eq!(status, 200, "{ev}");
    let requests = ev["steps"][index]["requests"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("step {index} has requests: {ev}"));
    (ev, requests)
}

/// Posts a POWR lead with `email`, dispatches it: its detail and its first step's requests.
async fn dispatched(app: &TestApp, email: &str) -> (Value, Vec<Value>) {
    let id = post_json(app, "powr", &json!({"Email": email, "Name": "A Lead"}))
        .await
        .expect("POWR answers its event id");
    app.drain(Duration::from_secs(20)).await;
    step_requests(app, id, 0).await
}

/// The `create_note` step in the detail of event `id`.
async fn note_step(app: &TestApp, id: i64) -> Value {
    let (_, ev) = admin(app, "GET", &format!("/admin/events/{id}")).await;
    ev["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["kind"] == "create_note"))
        .cloned()
        .unwrap_or_else(|| panic!("a create_note step: {ev}"))
}

async fn step_requests_case(store: &[(&str, &str)]) {
    let (ghl, app) = cockpit_app(store).await;
    // GHL is slow: every request waits 250 ms before it is handled.
    ghl.sandbox.set_faults(ghl_sandbox::FaultSpec {
        latency_ms: Some(250),
        ..ghl_sandbox::FaultSpec::default()
    });
    let (ev, requests) = dispatched(&app, "slow@example.com").await;
    assert_eq!(ev["status"], "done", "{ev}");
    assert_eq!(ev["steps"][0]["kind"], "upsert_contact", "{ev}");
    let upsert = requests
        .iter()
        .find(|r| r["request"] == "POST /contacts/upsert")
        .unwrap_or_else(|| panic!("the upsert is listed: {ev}"));
    assert!(upsert["status"] == 200 || upsert["status"] == 201, "{ev}");
    assert!(upsert["ms"].as_u64().unwrap() >= 250, "its latency: {ev}");
    // Method and path template only: no query, no personal data.
    for r in &requests {
        let shown = r["request"].as_str().unwrap();
        assert!(!shown.contains('?') && !shown.contains('@'), "{shown}");
    }

    // GHL refuses the next upsert (422): the lead is dead-lettered, and its step shows the
    // refused request, its status and latency.
    ghl.sandbox.set_faults(ghl_sandbox::FaultSpec {
        fail_next: Some(1),
        fail_status: Some(422),
        match_path: Some("contacts/upsert".into()),
        ..ghl_sandbox::FaultSpec::default()
    });
    let (ev, requests) = dispatched(&app, "refused@example.com").await;
    assert_eq!(ev["status"], "dead", "{ev}");
    assert_eq!(ev["steps"][0]["status"], "started", "{ev}");
    assert_eq!(requests.len(), 1, "{ev}");
    assert_eq!(requests[0]["request"], "POST /contacts/upsert", "{ev}");
    assert_eq!(requests[0]["status"], 422, "{ev}");
    assert!(requests[0]["ms"].as_u64().is_some(), "{ev}");

    // GHL closes the connection on the note's create: no answer, so the step is in doubt and
    // its request shows the connection failure.
    ghl.sandbox.set_faults(ghl_sandbox::FaultSpec {
        drop_before_next: Some(1),
        match_path: Some("/notes".into()),
        ..ghl_sandbox::FaultSpec::default()
    });
    let lost = post_json(
        &app,
        "powr",
        &json!({"Email": "lost@example.com", "Name": "Lost Answer"}),
    )
    .await
    .expect("POWR answers its event id");
    app.dispatcher.clone().unwrap().run_once().await;
    let note = note_step(&app, lost).await;
    assert_eq!(note["status"], "started", "{note}");
    assert!(note["in_doubt_until"].is_string(), "{note}");
    let sent = note["requests"].as_array().unwrap();
    let last = sent.last().unwrap();
    assert_eq!(last["request"], "POST /contacts/:contactId/notes", "{note}");
    assert_eq!(last["failure"], "connection", "{note}");
    assert!(last.get("status").is_none(), "{note}");
    // Once GHL can no longer carry it out, the retry looks for the note, finds none and
    // creates it: the step lists both requests of that attempt, answered.
    app.drain(Duration::from_secs(20)).await;
    let note = note_step(&app, lost).await;
    assert_eq!(note["status"], "done", "{note}");
    let shown: Vec<(String, Value)> = note["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["request"].as_str().unwrap().to_owned(),
                r["status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            ("GET /contacts/:contactId/notes".to_owned(), json!(200)),
            ("POST /contacts/:contactId/notes".to_owned(), json!(201)),
        ],
        "{note}"
    );
}

/// The admin app on `store` (none: SQLite in the test's folder) in front of a GHL sandbox.
async fn cockpit_app(store: &[(&str, &str)]) -> (ghl_sandbox::SandboxHandle, TestApp) {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let mut extra = vec![("admin.token", TOKEN)];
    extra.extend_from_slice(store);
    let app = driven_app_for(&ghl, "", &extra).await;
    (ghl, app)
}

async fn search_case(store: &[(&str, &str)]) {
    let (_ghl, app) = cockpit_app(store).await;
    let jane = post_json(
        &app,
        "powr",
        &json!({"Email": "Jane.Doe@Example.com", "Name": "Jane Doe", "Phone": "+1 415 555 2671"}),
    )
    .await
    .expect("POWR answers its event id");
    // The DripJobs mapping finds no email or phone in it (dead), yet the phone is an answer.
    let dead = post_json(
        &app,
        "dripjobs",
        &json!({"notes": "no contact fields", "alt": "(415) 555-2672"}),
    )
    .await
    .expect("DripJobs answers its event id");
    let mut others = Vec::new();
    for i in 0..5 {
        others.push(
            post_json(
                &app,
                "powr",
                &json!({"Email": format!("other{i}@example.com"), "Name": "Other"}),
            )
            .await
            .expect("POWR answers its event id"),
        );
    }
    app.drain(Duration::from_secs(20)).await;

    for q in ["jane.doe@example.com", "JANE.DOE@EXAMPLE.COM"] {
        let (status, page) = admin(&app, "GET", &format!("/admin/search?q={q}")).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(ids(&page), vec![jane], "{q}: {page}");
    }
    for q in [
        "%2B14155552672",
        "415-555-2672",
        "(415)%20555%202672",
        "4155552672",
    ] {
        let (_, page) = admin(&app, "GET", &format!("/admin/search?q={q}")).await;
        assert_eq!(ids(&page), vec![dead], "{q}: {page}");
        assert_eq!(page["counts"]["dead"], 1, "{page}");
    }
    let (_, page) = admin(&app, "GET", "/admin/search?q=415.555.2672&status=done").await;
    assert!(ids(&page).is_empty(), "{page}");
    let (_, page) = admin(&app, "GET", "/admin/search?source=powr&status=done&limit=2").await;
    assert_eq!(page["counts"]["done"], 6, "{page}");
    let mut seen = ids(&page);
    let mut after = page["next_after"].as_i64();
    while let Some(a) = after {
        let (_, next) = admin(
            &app,
            "GET",
            &format!("/admin/search?source=powr&status=done&limit=2&after={a}"),
        )
        .await;
        assert_eq!(next["counts"]["done"], 6);
        seen.extend(ids(&next));
        after = next["next_after"].as_i64();
    }
    let mut expected = others.clone();
    expected.push(jane);
    expected.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(seen, expected, "every page once, newest first");

    refused(&app, "/admin/search?bogus=1", "bogus", "/admin/search?q=x").await;
}

/// `bad` answers 400 naming `named`; `guarded` answers 401 without the token.
async fn refused(app: &TestApp, bad: &str, named: &str, guarded: &str) {
    let (status, body) = admin(app, "GET", bad).await;
    assert_eq!(status, 400, "{bad}: {body}");
    assert!(body["detail"].as_str().unwrap().contains(named), "{body}");
    let resp = app
        .client
        .get(format!("{}{guarded}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "{guarded} needs the token");
}

async fn cancel_case(store: &[(&str, &str)]) {
    let (_ghl, app) = cockpit_app(store).await;
    let store = app.store.as_ref();
    let waiting = add_prepared(store, "loc-c", "powr", "k1", "email:a@example.com").await;
    let held = add_prepared(store, "loc-c", "powr", "k2", "email:b@example.com").await;
    // A dispatcher holds `held` (claims take the oldest per contact; both are due).
    let now = OffsetDateTime::now_utc();
    let claim = |lease: &str| Claim {
        lease: lease.into(),
        now,
        lease_until: now + Duration::from_secs(300),
        limit: 1,
        per_location_limit: 10,
        exclude_locations: vec![],
    };
    let first = store.claim(&claim("worker-a")).await.unwrap();
    assert_eq!(first.len(), 1);
    let (held, waiting) = if first[0].id == held {
        (held, waiting)
    } else {
        (waiting, held)
    };

    let (status, body) = admin(&app, "POST", &format!("/admin/events/{}/cancel", waiting.0)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cancelled"], true);
    // Never claimable afterwards.
    assert!(store.claim(&claim("worker-b")).await.unwrap().is_empty());
    let event = store.get_event(waiting).await.unwrap().unwrap();
    assert_eq!(event.summary.status, EventStatus::Dead);
    assert!(event
        .summary
        .last_error
        .unwrap()
        .contains("cancelled by an admin"));
    let attempts = store.attempts(waiting).await.unwrap();
    assert_eq!(attempts.last().unwrap().outcome, "cancelled");

    // The one a dispatcher holds is left alone (it may be sending right now): 409.
    let (status, body) = admin(&app, "POST", &format!("/admin/events/{}/cancel", held.0)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["status"], "processing");
    // An ended one: 409; none: 404; no token: 401.
    let (status, _) = admin(&app, "POST", &format!("/admin/events/{}/cancel", waiting.0)).await;
    assert_eq!(status, 409);
    let (status, _) = admin(&app, "POST", "/admin/events/999999/cancel").await;
    assert_eq!(status, 404);
    let resp = app
        .client
        .post(format!("{}/admin/events/{}/cancel", app.base, held.0))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // Replay brings a cancelled event back.
    assert!(store.replay(waiting, false).await.unwrap());
}

on_both_stores!(
    the_overview_shows_deliveries_per_minute_the_queue_dead_letters_429s_and_a_paused_location,
    on_postgres_the_overview_shows_deliveries_per_minute_the_queue_dead_letters_429s_and_a_paused_location,
    overview_case
);

async fn overview_case(store: &[(&str, &str)]) {
    let (ghl, app) = cockpit_app(store).await;
    let dispatcher = app.dispatcher.clone().unwrap();
    post_json(
        &app,
        "powr",
        &json!({"Email": "one@example.com", "Name": "One"}),
    )
    .await;
    post_json(&app, "dripjobs", &json!({"notes": "no contact fields"})).await;
    app.drain(Duration::from_secs(20)).await;
    // One 429 from GHL: the event waits for its retry, then is done.
    ghl.sandbox.set_faults(ghl_sandbox::FaultSpec {
        rate_limit_next: Some(1),
        retry_after_secs: Some(1),
        ..ghl_sandbox::FaultSpec::default()
    });
    post_json(
        &app,
        "powr",
        &json!({"Email": "two@example.com", "Name": "Two"}),
    )
    .await;
    app.drain(Duration::from_secs(20)).await;

    let (status, view) = admin(&app, "GET", "/admin/overview").await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["hours"], 3);
    let minute_total = |source: &str, status: &str| -> u64 {
        view["per_minute"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["source"] == source && m["status"] == status)
            .map(|m| m["count"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(minute_total("powr", "done"), 2, "{view}");
    assert_eq!(minute_total("dripjobs", "dead"), 1, "{view}");
    assert_eq!(view["dead"][0]["source"], "dripjobs", "{view}");
    assert_eq!(view["dead"][0]["count"], 1, "{view}");
    assert_eq!(view["rate_limited"][0]["source"], "powr", "{view}");
    assert_eq!(view["rate_limited"][0]["location_id"], LOCATION, "{view}");
    assert_eq!(view["rate_limited"][0]["count"], 1, "{view}");
    assert_eq!(view["queue"]["by_status"]["done"], 2, "{view}");
    assert!(view["oldest_due_age_seconds"].is_null(), "{view}");
    assert_eq!(view["dispatch_here"], true);
    let location = &view["locations"][0];
    assert_eq!(location["location_id"], LOCATION, "{view}");
    assert_eq!(location["token"], "ok", "{view}");
    assert_eq!(location["burst"], 100, "{view}");
    assert!(location["ghl_burst_left"].as_u64().is_some(), "{view}");
    assert!(location["last_answer_ago_ms"].as_u64().is_some(), "{view}");

    // GHL revokes the token: the location is paused, its token refused, its lead waits.
    assert!(ghl.sandbox.revoke_token(crate::dispatch::TOKEN));
    post_json(
        &app,
        "powr",
        &json!({"Email": "three@example.com", "Name": "Three"}),
    )
    .await;
    dispatcher.run_once().await;
    let (_, view) = admin(&app, "GET", "/admin/overview?hours=1").await;
    let location = &view["locations"][0];
    assert_eq!(location["token"], "refused", "{view}");
    assert_eq!(location["paused"], "unauthorized", "{view}");
    assert!(location["paused_for_ms"].as_u64().unwrap() > 0, "{view}");
    assert_eq!(view["queue"]["by_status"]["retrying"], 1, "{view}");

    refused(&app, "/admin/overview?hours=25", "hours", "/admin/overview").await;
}
