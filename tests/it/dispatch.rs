//! Dispatch against the GHL sandbox over real HTTP: fixtures become the expected records,
//! outages and 429 storms lose and duplicate nothing, the limiter avoids 429s, dead letters
//! are replayable.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::{
    fixtures, settings_with_toml, spawn_driven, spawn_with, wait_for, TestApp, SECRET,
};
use formbridge::domain::SourceName;
use formbridge::domain::StepKind;
use formbridge::store::{EventFilter, EventStatus, EventSummary, NewEvent};
use ghl_sandbox::{FaultSpec, SandboxConfig, SandboxHandle, SandboxState};
use serde_json::Value;

pub(crate) const TOKEN: &str = "pit-test-token";
pub(crate) const LOCATION: &str = "locTest0000000000001";

/// Mapping used by these tests: the DripJobs default plus one task per submission.
const TASK_TOML: &str = r#"
[[sources.dripjobs.mapping.tasks]]
title = "Call {{first_name}} back"
body = "Lead from DripJobs: {{email}}"
due_in = "1d"
"#;

pub(crate) async fn sandbox_with(burst: u32, window: Duration) -> SandboxHandle {
    let mut config = SandboxConfig::single(TOKEN, LOCATION);
    config.burst = burst;
    config.window = window;
    ghl_sandbox::start(config).await.unwrap()
}

pub(crate) async fn app_for(
    sandbox: &SandboxHandle,
    toml: &str,
    extra: &[(&str, &str)],
) -> TestApp {
    start_app(sandbox, toml, extra, false).await
}

/// An app whose dispatcher the test runs with [`TestApp::drain`] instead of in the background.
pub(crate) async fn driven_app_for(
    sandbox: &SandboxHandle,
    toml: &str,
    extra: &[(&str, &str)],
) -> TestApp {
    start_app(sandbox, toml, extra, true).await
}

async fn start_app(
    sandbox: &SandboxHandle,
    toml: &str,
    extra: &[(&str, &str)],
    driven: bool,
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let base = sandbox.base_url.to_string();
    let mut overrides = dispatching_to(&base);
    overrides.extend_from_slice(&[
        ("dispatch.retry.initial_backoff", "50ms"),
        ("dispatch.retry.max_backoff", "300ms"),
        ("ghl.request_timeout", "2s"),
        // The sandbox's lost answers come after the work (`drop_after_next`): nothing lands
        // late, so a look-up need not wait long (tests/it/ghl_faults.rs covers late writes).
        ("ghl.late_write_window", "500ms"),
    ]);
    overrides.extend_from_slice(extra);
    let settings = settings_with_toml(dir.path(), toml, &overrides);
    if driven {
        spawn_driven(settings, dir).await
    } else {
        spawn_with(settings, dir).await
    }
}

/// Settings that dispatch to the sandbox at `base` (its test token and location), polling often.
fn dispatching_to(base: &str) -> Vec<(&str, &str)> {
    vec![
        ("dispatch.enabled", "true"),
        ("ghl.base_url", base),
        ("ghl.token", TOKEN),
        ("ghl.location_id", LOCATION),
        ("dispatch.poll_interval", "50ms"),
    ]
}

/// Waits until no event is pending, processing or retrying.
pub(crate) async fn settle(app: &TestApp, timeout: Duration) {
    wait_for(timeout, "every event done or dead", || async {
        let c = app.store.status_counts().await.unwrap();
        let open =
            c[&EventStatus::Pending] + c[&EventStatus::Processing] + c[&EventStatus::Retrying];
        (open == 0).then_some(())
    })
    .await;
}

pub(crate) async fn count(app: &TestApp, status: EventStatus) -> u64 {
    app.store.status_counts().await.unwrap()[&status]
}

/// No GHL record was created twice: every marker appears on exactly one task or note, and no
/// two contacts share an email. And every request sent follows the official GHL specs.
fn assert_no_duplicates(state: &SandboxState) {
    crate::spec_check::assert_requests_follow_specs(state);
    let mut seen = BTreeSet::new();
    for record in state.tasks.iter().chain(&state.notes) {
        let body = record["body"].as_str().unwrap_or_default();
        let marker = body
            .rsplit_once("[formbridge:")
            .map(|(_, m)| m.to_owned())
            .expect("marker");
        assert!(
            seen.insert(marker.clone()),
            "duplicate record for marker {marker}"
        );
    }
    let mut emails = BTreeSet::new();
    for c in &state.contacts {
        if let Some(e) = c["email"].as_str() {
            assert!(emails.insert(e.to_owned()), "duplicate contact {e}");
        }
    }
}

/// Waits until the location is paused with its `n` events held back: at least one waits for a
/// retry with an error containing `error`, and the others either too or were never tried (the
/// pause came before they were claimed); none is in flight, done or dead. Returns them.
async fn held_back(app: &TestApp, n: usize, error: &str) -> Vec<EventSummary> {
    wait_for(Duration::from_secs(20), "events held back", || async {
        let events = app
            .store
            .list_events(&EventFilter::default())
            .await
            .unwrap();
        let waiting = events
            .iter()
            .all(|e| matches!(e.status, EventStatus::Retrying | EventStatus::Pending));
        let refused = events.iter().any(|e| {
            e.status == EventStatus::Retrying
                && e.last_error.as_deref().is_some_and(|m| m.contains(error))
        });
        (waiting && refused && events.len() == n).then_some(events)
    })
    .await
}

/// Posts `n` DripJobs leads with distinct emails and phones (phones derived from `prefix`).
async fn post_leads(app: &TestApp, n: usize, prefix: &str) {
    let phone_base: usize = prefix.bytes().map(usize::from).sum::<usize>() * 1000;
    for i in 0..n {
        let body = serde_json::json!({
            "deal_id": format!("{prefix}-{i}"),
            "customer_name": format!("Lead{i} Person"),
            "customer_email": format!("{prefix}{i}@example.com"),
            "customer_phone": format!("928{:07}", phone_base + i),
        });
        post_json(app, "dripjobs", &body).await;
    }
}

/// Posts `n` POWR contact-form leads with distinct emails (`{prefix}{i}@example.com`).
async fn post_powr_leads(app: &TestApp, n: usize, prefix: &str) {
    for i in 0..n {
        let body = serde_json::json!({
            "submission_id": format!("{prefix}-{i}"),
            "Your Name": format!("Form{i} Person"),
            "Email Address": format!("{prefix}{i}@example.com"),
            "Phone Number": format!("(415) 555-01{i:02}"),
        });
        post_json(app, "powr", &body).await;
    }
}

/// POSTs a JSON delivery to `source`; returns its event id where the source's
/// acknowledgement carries one (JivoChat's answers the chat instead).
pub(crate) async fn post_json(app: &TestApp, source: &str, body: &Value) -> Option<i64> {
    let r = app
        .post_hook(
            source,
            Some(SECRET),
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap_or_default();
    v["event_id"].as_i64()
}

fn notes_for<'a>(state: &'a SandboxState, contact_id: &str) -> Vec<&'a Value> {
    state
        .notes
        .iter()
        .filter(|n| n["contactId"] == contact_id)
        .collect()
}

#[tokio::test]
async fn every_fixture_ends_as_the_expected_records() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let app = driven_app_for(&ghl, "", &[]).await;
    let mut posted = 0;
    for source in ["jotform", "powr", "123formbuilder", "jivochat", "dripjobs"] {
        for fx in fixtures(source) {
            let r = app
                .post_hook(source, Some(SECRET), fx.content_type.as_deref(), fx.body)
                .await;
            assert_eq!(r.status(), 200);
            posted += 1;
        }
    }
    app.drain(Duration::from_secs(30)).await;
    let state = ghl.state();
    assert_no_duplicates(&state);

    // Every event that reached GHL is on its contact, tagged with its source, with one note
    // where its plan writes one.
    let done = app
        .store
        .list_events(&EventFilter {
            status: Some(EventStatus::Done),
            limit: Some(500),
            ..Default::default()
        })
        .await
        .unwrap();
    let dead = count(&app, EventStatus::Dead).await;
    assert_eq!(done.len() as u64 + dead, posted);
    for summary in &done {
        let steps = app.store.steps(summary.id).await.unwrap();
        if steps.is_empty() {
            continue; // nothing to do in GHL (e.g. a JivoChat chat_accepted)
        }
        let contact_id = steps[0].ghl_id.clone().unwrap();
        let contact = state
            .contacts
            .iter()
            .find(|c| c["id"] == contact_id.as_str())
            .unwrap();
        let tags: Vec<&str> = contact["tags"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            tags.contains(&summary.source.as_str()),
            "{} tags {tags:?}",
            summary.source
        );
        assert_eq!(contact["source"], summary.source.as_str());
        let marker = format!("[formbridge:{}:", summary.id);
        let notes: Vec<_> = notes_for(&state, &contact_id)
            .into_iter()
            .filter(|n| n["body"].as_str().unwrap().contains(&marker))
            .collect();
        // JivoChat chat events update the contact without a note.
        let wants_note = steps.iter().any(|s| s.kind == StepKind::CreateNote);
        assert_eq!(
            notes.len(),
            usize::from(wants_note),
            "event {} should have {} note",
            summary.id,
            usize::from(wants_note)
        );
    }

    // Spot checks against the fixtures' contents.
    let jivo = state
        .contact_by_email("email@example.com")
        .expect("JivoChat visitor");
    assert_eq!(jivo["firstName"], "John");
    assert_eq!(jivo["lastName"], "Smith");
    assert_eq!(jivo["phone"], "+14084987855");
    let jivo_notes = notes_for(&state, jivo["id"].as_str().unwrap());
    assert!(jivo_notes
        .iter()
        .any(|n| n["body"].as_str().unwrap().contains("Message text")));
    let drip = state
        .contact_by_email("jane.sample@example.com")
        .expect("DripJobs customer");
    assert_eq!(drip["phone"], "+19285550142");
    assert_eq!(drip["firstName"], "Jane");
    // "Appointment set" carries only the deal id: a follow-up on the proposal's contact.
    let drip_notes = notes_for(&state, drip["id"].as_str().unwrap());
    assert_eq!(drip_notes.len(), 2, "{drip_notes:#?}");
    // Deliveries without email or phone are dead letters that say why.
    let dead_events = app.events_in(EventStatus::Dead).await;
    for d in dead_events {
        assert!(d.last_error.unwrap().contains("no usable email or phone"));
    }
    // No 429 and no validation error from the sandbox.
    assert!(
        state.requests.iter().all(|r| r.status < 400),
        "GHL refused a request"
    );
}

#[tokio::test]
async fn an_outage_with_5xx_and_lost_answers_loses_and_duplicates_nothing() {
    // 30 leads × 4 requests pass GHL's 100 per window: a 1 s window keeps the test short.
    let ghl = sandbox_with(100, Duration::from_secs(1)).await;
    ghl.sandbox.set_faults(FaultSpec {
        fail_next: Some(15),
        drop_before_next: Some(5),
        ..Default::default()
    });
    let app = app_for(&ghl, TASK_TOML, &[("ghl.rate_limit.window", "1s")]).await;
    post_leads(&app, 20, "outage").await;
    // Answers lost after GHL applied the write: the worst case for duplicates.
    wait_for(
        Duration::from_secs(10),
        "the first faults to be spent",
        || async {
            let f = ghl.state().faults;
            (f.fail_next.unwrap_or(0) == 0).then_some(())
        },
    )
    .await;
    ghl.sandbox.set_faults(FaultSpec {
        drop_after_next: Some(12),
        ..Default::default()
    });
    post_leads(&app, 10, "later").await;
    settle(&app, Duration::from_secs(60)).await;
    assert_eq!(count(&app, EventStatus::Done).await, 30);
    let state = ghl.state();
    assert_no_duplicates(&state);
    assert_eq!(state.contacts.len(), 30);
    assert_eq!(state.tasks.len(), 30);
    assert_eq!(state.notes.len(), 30);
    assert!(
        state.requests.iter().any(|r| r.outcome == "dropped_after"),
        "faults were exercised"
    );
}

#[tokio::test]
async fn a_429_storm_loses_nothing() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    ghl.sandbox.set_faults(FaultSpec {
        rate_limit_next: Some(25),
        retry_after_secs: Some(1),
        ..Default::default()
    });
    let app = app_for(&ghl, TASK_TOML, &[]).await;
    post_leads(&app, 25, "storm").await;
    settle(&app, Duration::from_secs(60)).await;
    assert_eq!(count(&app, EventStatus::Done).await, 25);
    let state = ghl.state();
    assert_no_duplicates(&state);
    assert_eq!(state.notes.len(), 25);
    assert!(state.requests.iter().filter(|r| r.status == 429).count() >= 25);
    // 429s are waits, not failures: no event used up an attempt on them.
    for e in app
        .store
        .list_events(&EventFilter::default())
        .await
        .unwrap()
    {
        assert_eq!(e.attempts, 1, "event {} attempts", e.id);
    }
}

#[tokio::test]
async fn with_the_limiter_500_events_for_one_location_see_no_429() {
    // GHL's 100 requests per window, with a 1 s window to keep the test short.
    let ghl = sandbox_with(100, Duration::from_secs(1)).await;
    let app = app_for(
        &ghl,
        "",
        &[
            ("ghl.rate_limit.window", "1s"),
            ("dispatch.max_budget_wait", "5s"),
        ],
    )
    .await;
    post_leads(&app, 500, "budget").await;
    settle(&app, Duration::from_secs(120)).await;
    assert_eq!(count(&app, EventStatus::Done).await, 500);
    let state = ghl.state();
    let limited = state.requests.iter().filter(|r| r.status == 429).count();
    assert_eq!(
        limited, 0,
        "the limiter let {limited} requests hit GHL's rate limit"
    );
    assert_eq!(state.notes.len(), 500);
}

#[tokio::test]
async fn a_source_sending_during_another_sources_flood_is_not_stuck_behind_it() {
    // Both sources go to the one configured location, whose budget is small enough that the
    // flood is still queued when the second source's leads arrive.
    let ghl = sandbox_with(20, Duration::from_secs(1)).await;
    let app = app_for(
        &ghl,
        "",
        &[
            ("ghl.rate_limit.burst", "20"),
            ("ghl.rate_limit.window", "1s"),
        ],
    )
    .await;
    post_leads(&app, 60, "flood").await;
    post_powr_leads(&app, 5, "form").await;
    settle(&app, Duration::from_secs(30)).await;
    assert_eq!(count(&app, EventStatus::Done).await, 65);
    // Upserts in the order GHL received them, by the lead's email.
    let state = ghl.state();
    let upserted: Vec<String> = state
        .requests
        .iter()
        .filter(|r| r.path.ends_with("/contacts/upsert") && r.status < 300)
        .filter_map(|r| r.body.as_ref()?["email"].as_str().map(str::to_owned))
        .collect();
    let positions_of = |prefix: &str| -> Vec<usize> {
        (0..upserted.len())
            .filter(|&i| upserted[i].starts_with(prefix))
            .collect()
    };
    let (flood, form) = (positions_of("flood"), positions_of("form"));
    assert_eq!((flood.len(), form.len()), (60, 5), "{upserted:?}");
    let flood_30th_from_last = flood[flood.len() - 30];
    assert!(
        form.iter().all(|&i| i < flood_30th_from_last),
        "the second source waited behind the flood: its upserts at {form:?}, the flood's 30th-from-last at {flood_30th_from_last}"
    );
}

#[tokio::test]
async fn a_permanent_error_dead_letters_and_replay_delivers_once() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    ghl.sandbox.set_faults(FaultSpec {
        fail_next: Some(1),
        fail_status: Some(422),
        match_path: Some("/notes".into()),
        ..Default::default()
    });
    let app = driven_app_for(&ghl, "", &[]).await;
    post_leads(&app, 1, "perm").await;
    app.drain(Duration::from_secs(20)).await;
    let dead = app.events_in(EventStatus::Dead).await;
    assert_eq!(dead.len(), 1);
    let error = dead[0].last_error.clone().unwrap();
    assert!(
        error.contains("create_note failed") && error.contains("422"),
        "{error}"
    );
    assert_eq!(
        ghl.state().contacts.len(),
        1,
        "the contact step had succeeded"
    );

    // Replay: completed steps are skipped, the note is written once.
    assert!(app.store.replay(dead[0].id, false).await.unwrap());
    app.drain(Duration::from_secs(20)).await;
    assert_eq!(count(&app, EventStatus::Done).await, 1);
    let upserts_before = ghl
        .state()
        .requests
        .iter()
        .filter(|r| r.path.ends_with("/upsert"))
        .count();
    assert_eq!(upserts_before, 1, "the upsert was not repeated");
    assert_eq!(ghl.state().notes.len(), 1);

    // Replaying a delivered event does nothing twice.
    assert!(app.store.replay(dead[0].id, false).await.unwrap());
    app.drain(Duration::from_secs(20)).await;
    let state = ghl.state();
    assert_eq!(state.notes.len(), 1);
    assert_eq!(state.contacts.len(), 1);
    assert_no_duplicates(&state);
}

#[tokio::test]
async fn fixing_the_mapping_and_replaying_delivers_a_dead_letter() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let dir = tempfile::tempdir().unwrap();
    let base = ghl.base_url.to_string();
    let overrides = [
        ("dispatch.enabled", "true"),
        ("ghl.base_url", base.as_str()),
        ("ghl.token", TOKEN),
        ("ghl.location_id", LOCATION),
        ("dispatch.poll_interval", "50ms"),
        ("sources.powr.dedupe_field", "ref"),
    ];
    // Two email answers under names detection does not know: it will not guess which is the lead's.
    let body = br#"{"ref":"r-1","your_name":"Ada Lovelace","friend":"bob@example.com","where_to_reach_you":"ada@example.com"}"#;
    {
        let settings = settings_with_toml(dir.path(), "", &overrides);
        let app = spawn_with(settings, tempfile::tempdir().unwrap()).await;
        app.post_hook(
            "powr",
            Some(SECRET),
            Some("application/json"),
            body.to_vec(),
        )
        .await;
        settle(&app, Duration::from_secs(20)).await;
        assert_eq!(count(&app, EventStatus::Dead).await, 1);
        assert!(ghl.state().contacts.is_empty());
    }
    // Same store, mapping fixed.
    let fixed = "[sources.powr.mapping.fields]\nemail = \"where_to_reach_you\"\n";
    let settings = settings_with_toml(dir.path(), fixed, &overrides);
    let app = spawn_with(settings, tempfile::tempdir().unwrap()).await;
    let replayed = app
        .store
        .replay_matching(
            &EventFilter {
                status: Some(EventStatus::Dead),
                ..Default::default()
            },
            false,
        )
        .await
        .unwrap();
    assert_eq!(replayed, 1);
    settle(&app, Duration::from_secs(20)).await;
    assert_eq!(count(&app, EventStatus::Done).await, 1);
    let state = ghl.state();
    assert!(state.contact_by_email("ada@example.com").is_some());
}

#[tokio::test]
async fn a_refused_token_pauses_the_location_without_burning_attempts() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let dir = tempfile::tempdir().unwrap();
    let base = ghl.base_url.to_string();
    let common = [
        ("dispatch.enabled", "true"),
        ("ghl.base_url", base.as_str()),
        ("ghl.location_id", LOCATION),
        ("dispatch.poll_interval", "50ms"),
    ];
    {
        let mut overrides = common.to_vec();
        overrides.push(("ghl.token", "pit-revoked"));
        let settings = settings_with_toml(dir.path(), "", &overrides);
        let app = spawn_with(settings, tempfile::tempdir().unwrap()).await;
        post_leads(&app, 3, "auth").await;
        held_back(&app, 3, "refused the credentials").await;
        let events = app
            .store
            .list_events(&EventFilter::default())
            .await
            .unwrap();
        assert!(
            events.iter().all(|e| e.attempts == 0),
            "a refused token must not use up attempts"
        );
        let metrics = app.metrics_text().await;
        assert!(
            metrics.contains(&format!(
                "formbridge_ghl_location_blocked{{location=\"{LOCATION}\"}} 1"
            )),
            "{metrics}"
        );
        // The location is paused: a few probes at most, not a retry loop.
        assert!(
            ghl.state().requests.len() <= 3,
            "{} requests",
            ghl.state().requests.len()
        );
    }
    // Token fixed and the server restarted on the same store: everything is delivered.
    let mut overrides = common.to_vec();
    overrides.push(("ghl.token", TOKEN));
    let settings = settings_with_toml(dir.path(), "", &overrides);
    let app = spawn_with(settings, tempfile::tempdir().unwrap()).await;
    settle(&app, Duration::from_secs(20)).await;
    assert_eq!(count(&app, EventStatus::Done).await, 3);
    assert_eq!(ghl.state().notes.len(), 3);
}

/// A token GHL accepts but that has no access to the configured location (403) pauses that
/// location like a refused token, instead of dead-lettering every one of its leads.
#[tokio::test]
async fn a_token_without_access_to_its_location_pauses_it_without_dead_letters() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let app = app_for(&ghl, "", &[("ghl.location_id", "noAccessLocation0001")]).await;
    post_leads(&app, 3, "denied").await;
    let events = held_back(&app, 3, "denied access (403)").await;
    assert!(
        events.iter().all(|e| e.attempts == 0),
        "a 403 must not use up attempts: {events:?}"
    );
    assert_eq!(count(&app, EventStatus::Dead).await, 0);
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("formbridge_ghl_location_blocked{location=\"noAccessLocation0001\"} 1"),
        "{metrics}"
    );
    assert!(
        ghl.state().requests.len() <= 3,
        "a paused location is probed, not retried: {} requests",
        ghl.state().requests.len()
    );
}

#[tokio::test]
async fn a_slow_event_keeps_its_lease_and_runs_once() {
    // Five requests of 1.2 s each outlast a 5.5 s lease: only renewal keeps another worker off.
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    ghl.sandbox.set_faults(FaultSpec {
        latency_ms: Some(1200),
        ..Default::default()
    });
    let two_tasks = format!("{TASK_TOML}\n{TASK_TOML}");
    let app = app_for(
        &ghl,
        &two_tasks,
        &[
            ("dispatch.lease", "5500ms"),
            ("dispatch.max_budget_wait", "500ms"),
            ("ghl.request_timeout", "2s"),
        ],
    )
    .await;
    post_leads(&app, 1, "slow").await;
    settle(&app, Duration::from_secs(30)).await;
    assert_eq!(count(&app, EventStatus::Done).await, 1);
    let state = ghl.state();
    let upserts = state
        .requests
        .iter()
        .filter(|r| r.path.ends_with("/upsert"))
        .count();
    assert_eq!(upserts, 1, "the event ran twice");
    // A second worker would have found the note step started and looked for its marker.
    let lookups = state.requests.iter().filter(|r| r.method == "GET").count();
    assert_eq!(lookups, 0, "another worker took the event over mid-flight");
    assert_eq!(state.tasks.len(), 2);
    assert_eq!(state.notes.len(), 1);
}

#[tokio::test]
async fn oauth_tokens_are_bootstrapped_refreshed_and_rotated_in_the_store() {
    let mut config = SandboxConfig::single("unused-static", LOCATION);
    config
        .oauth_clients
        .insert("client-1".into(), "client-secret".into());
    config
        .refresh_tokens
        .insert("rt-bootstrap".into(), LOCATION.into());
    let ghl = ghl_sandbox::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let base = ghl.base_url.to_string();
    let settings = settings_with_toml(
        dir.path(),
        "",
        &[
            ("dispatch.enabled", "true"),
            ("dispatch.poll_interval", "50ms"),
            ("ghl.base_url", base.as_str()),
            ("ghl.location_id", LOCATION),
            ("ghl.oauth.client_id", "client-1"),
            ("ghl.oauth.client_secret", "client-secret"),
            ("ghl.oauth.bootstrap_refresh_token", "rt-bootstrap"),
        ],
    );
    let app = spawn_with(settings, tempfile::tempdir().unwrap()).await;
    post_leads(&app, 5, "oauth").await;
    settle(&app, Duration::from_secs(20)).await;
    assert_eq!(count(&app, EventStatus::Done).await, 5);
    let state = ghl.state();
    assert_eq!(state.refresh_calls, 1, "one refresh for five events");
    assert_eq!(state.notes.len(), 5);
    // The rotated refresh token is the one in the store; the bootstrap one is spent.
    let stored = app
        .store
        .load_oauth_tokens(&LOCATION.into())
        .await
        .unwrap()
        .expect("tokens stored");
    use secrecy::ExposeSecret;
    assert_ne!(stored.refresh_token.expose_secret(), "rt-bootstrap");
    assert_eq!(
        state.refresh_tokens,
        vec![stored.refresh_token.expose_secret().to_owned()]
    );
}

#[tokio::test]
async fn a_location_whose_token_is_refused_does_not_hold_up_another_location() {
    const OTHER_TOKEN: &str = "pit-other-token";
    const OTHER_LOCATION: &str = "locOther000000000002";
    let mut config = SandboxConfig::single(TOKEN, LOCATION);
    config
        .tokens
        .insert(OTHER_TOKEN.to_owned(), vec![OTHER_LOCATION.to_owned()]);
    let ghl = ghl_sandbox::start(config).await.unwrap();
    // DripJobs goes to the default location, whose token GHL refuses; POWR to another one.
    let toml = format!(
        "[ghl.locations.other]\nlocation_id = \"{OTHER_LOCATION}\"\ntoken = \"{OTHER_TOKEN}\"\n\n[sources.powr]\nlocation = \"other\"\n"
    );
    let app = app_for(&ghl, &toml, &[("ghl.token", "pit-revoked")]).await;
    post_leads(&app, 20, "refused").await;
    post_powr_leads(&app, 20, "served").await;
    let delivered = |state: &SandboxState| {
        state
            .notes
            .iter()
            .filter(|n| {
                state
                    .contacts
                    .iter()
                    .any(|c| c["id"] == n["contactId"] && c["locationId"] == OTHER_LOCATION)
            })
            .count()
    };
    wait_for(
        Duration::from_secs(20),
        "every lead of the other location delivered",
        || async { (delivered(&ghl.state()) == 20).then_some(()) },
    )
    .await;
    let refused = app
        .store
        .list_events(&EventFilter {
            source: Some("dripjobs".to_owned()),
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(refused.len(), 20);
    assert!(
        refused.iter().all(|e| e.status != EventStatus::Done
            && e.status != EventStatus::Dead
            && e.attempts == 0),
        "the refused location's leads wait, with no attempt used up: {:?}",
        refused
            .iter()
            .map(|e| (e.status, e.attempts))
            .collect::<Vec<_>>()
    );
    let state = ghl.state();
    let probes = state.requests.iter().filter(|r| r.status == 401).count();
    // Up to one request per event in flight when the first 401 came back: a claim may take a
    // whole cap's worth (8) for a location just under its cap, so fewer than two caps.
    assert!(
        (1..16).contains(&probes),
        "a paused location is probed, not retried in a loop: {probes} refused requests"
    );
    assert!(state
        .contacts
        .iter()
        .all(|c| c["locationId"] == OTHER_LOCATION));
    assert_no_duplicates(&state);
}

/// A urlencoded body of `n` repeated fields (`a&a&…`, issue 10): tiny, but it used to take
/// quadratic time to normalize.
fn repeated_fields(n: usize) -> Vec<u8> {
    let mut body = b"a".to_vec();
    for _ in 1..n {
        body.extend_from_slice(b"&a");
    }
    body
}

/// Waits until the sandbox holds a contact with `email`.
async fn wait_for_contact(ghl: &SandboxHandle, email: &str, timeout: Duration) {
    wait_for(timeout, &format!("the contact {email} in GHL"), || async {
        ghl.state().contact_by_email(email).map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn an_ordinary_lead_after_a_pathological_body_within_the_limits_is_delivered_promptly() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    // Limits raised so a body of 120,000 repeated fields (240 KB) is accepted.
    let app = app_for(&ghl, "", &[("server.max_form_fields", "1000000")]).await;
    let r = app
        .post_hook(
            "powr",
            Some(SECRET),
            Some("application/x-www-form-urlencoded"),
            repeated_fields(120_000),
        )
        .await;
    assert_eq!(r.status(), 200);
    post_leads(&app, 1, "prompt").await;
    // It used to take minutes; normalization is now linear (well under a second here).
    wait_for_contact(&ghl, "prompt0@example.com", Duration::from_secs(20)).await;
}

#[tokio::test]
async fn a_delivery_stored_before_the_limits_is_dead_lettered_naming_the_limit_and_others_go_on() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let app = app_for(&ghl, "", &[]).await;
    // As if stored by a version without limits (or before the limit was lowered): the
    // ingress would refuse it now.
    let stored = app
        .store
        .insert_event(NewEvent {
            source: SourceName::parse("powr").unwrap(),
            dedupe_key: "sha256:pre-limits".to_owned(),
            content_hash: None,
            content_type: Some("application/x-www-form-urlencoded".to_owned()),
            headers: Vec::new(),
            body: repeated_fields(60_000).into(),
            received_at: time::OffsetDateTime::now_utc(),
        })
        .await
        .unwrap()
        .id();
    post_leads(&app, 1, "after").await;
    wait_for_contact(&ghl, "after0@example.com", Duration::from_secs(20)).await;
    let event = app.store.get_event(stored).await.unwrap().unwrap().summary;
    assert_eq!(event.status, EventStatus::Dead);
    let reason = event.last_error.unwrap_or_default();
    assert!(
        reason.contains("more than 1000 form fields") && reason.contains("server.max_form_fields"),
        "{reason}"
    );
}

/// Typeform through the tool seam: a delivery signed as Typeform signs
/// (`Typeform-Signature: sha256=<base64 HMAC>`, the default auth of `[sources.typeform]`) is
/// stored, deduplicated on its `event_id` and ends in GHL as a contact with its tag and note;
/// a bad or missing signature is refused with 401 and nothing is stored.
#[tokio::test]
async fn a_signed_typeform_delivery_ends_as_a_contact_and_a_bad_signature_is_refused() {
    use formbridge::sources::auth::hmac_sha256_base64;
    const TYPEFORM_SECRET: &str = "typeform-webhook-secret";
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let app = app_for(&ghl, "", &[("sources.typeform.secret", TYPEFORM_SECRET)]).await;
    let fx = fixtures("typeform")
        .into_iter()
        .find(|f| f.name == "form_response_lead-form-utm.ASSEMBLED.json")
        .unwrap();
    let post = |signature: Option<String>| {
        let mut req = app
            .client
            .post(format!("{}/hooks/typeform", app.base))
            .header("content-type", fx.content_type.as_deref().unwrap())
            .body(fx.body.clone());
        if let Some(sig) = signature {
            req = req.header("Typeform-Signature", sig);
        }
        req.send()
    };

    let wrong = format!("sha256={}", hmac_sha256_base64(b"not-the-secret", &fx.body));
    for bad in [None, Some(wrong)] {
        let r = post(bad).await.unwrap();
        assert_eq!(r.status(), 401);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized", "{body}");
    }
    assert_eq!(
        app.total_events().await,
        0,
        "a refused delivery is not stored"
    );

    let signed = format!(
        "sha256={}",
        hmac_sha256_base64(TYPEFORM_SECRET.as_bytes(), &fx.body)
    );
    let first: Value = post(Some(signed.clone()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["duplicate"], false, "{first}");
    // Typeform retries with the same event_id: a duplicate, stored once.
    let again: Value = post(Some(signed)).await.unwrap().json().await.unwrap();
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["event_id"], first["event_id"]);
    assert_eq!(app.total_events().await, 1);

    settle(&app, Duration::from_secs(20)).await;
    assert_eq!(count(&app, EventStatus::Done).await, 1);
    let state = ghl.state();
    let contact = state
        .contact_by_email("sam.rivera@example.com")
        .expect("Typeform respondent");
    assert_eq!(contact["firstName"], "Sam");
    assert_eq!(contact["lastName"], "Rivera");
    assert_eq!(contact["phone"], "+15125550163");
    assert_eq!(contact["source"], "typeform");
    assert!(contact["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "typeform"));
    let notes = notes_for(&state, contact["id"].as_str().unwrap());
    assert_eq!(notes.len(), 1);
    let note = notes[0]["body"].as_str().unwrap();
    assert!(
        note.starts_with(
            "Typeform submission 9v2r8c4wq1k7ztj5x0b3m6n8a4d2e7f1 (Free quote request)\n\n"
        ),
        "{note}"
    );
    assert!(
        note.contains("\nMay we text you about your quote?: Yes\n"),
        "{note}"
    );
    assert!(state.requests.iter().all(|r| r.status < 400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_whose_grace_runs_out_releases_the_unfinished_event_at_once() {
    use formbridge::app::Application;
    use std::time::Instant;

    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    // GHL answers in 5 s: far past the stop's grace of 300 ms.
    ghl.sandbox.set_faults(FaultSpec {
        latency_ms: Some(5_000),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let base = ghl.base_url.to_string();
    let mut overrides = dispatching_to(&base);
    overrides.extend_from_slice(&[
        ("ghl.request_timeout", "10s"),
        ("server.shutdown_grace", "300ms"),
    ]);
    let settings = settings_with_toml(dir.path(), "", &overrides);
    let app = Application::build(settings).await.unwrap();
    let store = app.store();
    let url = format!("http://{}/hooks/dripjobs?token={SECRET}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let lead = serde_json::json!({"deal_id": "slow-1", "customer_email": "slow@example.com"});
    let resp = reqwest::Client::new()
        .post(&url)
        .json(&lead)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    wait_for(Duration::from_secs(10), "the event under way", || async {
        let c = store.status_counts().await.unwrap();
        (c[&EventStatus::Processing] == 1).then_some(())
    })
    .await;

    let asked = Instant::now();
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "the stop waited {:?} for a GHL answer due in 5 s",
        asked.elapsed()
    );
    let events = store.list_events(&EventFilter::default()).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].status,
        EventStatus::Pending,
        "released for another worker, not left under a lease"
    );
    assert!(events[0].next_attempt_at <= time::OffsetDateTime::now_utc());
}
