//! Upgrading a SQLite store made by an earlier release: `tests/fixtures/store/sqlite-0009.db`
//! (see the README there) holds events in every state as release 0009 of the SQLite migrations
//! left them; opened with this code, everything carries over and the open events are claimed
//! and dispatched to the GHL sandbox.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use formbridge::store::EventStatus;
use serde_json::json;

use crate::common::{settings_with_toml, spawn_driven, TestApp};
use crate::dispatch::{post_json, sandbox_with, LOCATION};

/// The fixture's token key (`store.token_key`): its OAuth tokens are sealed with it.
const TOKEN_KEY: &str = "4f1d2b7c9a0e5d3f8b6a1c2e4d7f9a0b3c5e7d9f1a2b4c6d8e0f1a3b5c7d9e1f";
/// The location whose OAuth tokens the fixture holds (not the one dispatch uses).
const OAUTH_LOCATION: &str = "locOauthFixture00001";

/// The DripJobs mapping the fixture was made with (a task per lead).
const MAPPING: &str = r#"
[sources.dripjobs.mapping]
[[sources.dripjobs.mapping.tasks]]
title = "Call {{name}}"
due_in = "1d"
"#;

fn lead(deal: &str, who: &str, price: &str) -> serde_json::Value {
    json!({
        "customer_name": format!("{who} Sample"),
        "customer_email": format!("{}@example.com", who.to_lowercase()),
        "customer_phone": format!("928555{:04}", who.len() * 100 + usize::from(who.as_bytes()[0])),
        "deal_id": deal,
        "price": price,
    })
}

fn fixture() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store/sqlite-0009.db")
}

/// A driven app (see `common::spawn_driven`) on the store file in `dir`, dispatching to `ghl`.
async fn app_on(dir: tempfile::TempDir, ghl: &ghl_sandbox::SandboxHandle) -> TestApp {
    let base = ghl.base_url.to_string();
    let settings = settings_with_toml(
        dir.path(),
        MAPPING,
        &[
            ("dispatch.enabled", "true"),
            ("ghl.base_url", base.as_str()),
            ("ghl.token", crate::dispatch::TOKEN),
            ("ghl.location_id", LOCATION),
            ("store.token_key", TOKEN_KEY),
            ("dispatch.retry.initial_backoff", "50ms"),
            ("dispatch.retry.max_backoff", "300ms"),
        ],
    );
    spawn_driven(settings, dir).await
}

/// What the fixture's events hold, read back through the new store: `(status, prepared, has
/// a plan, fair key, parked key)` per event id, read raw.
async fn raw_state(
    db: &std::path::Path,
) -> Vec<(i64, String, bool, bool, Option<i64>, Option<i64>)> {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let rows = sqlx::query_as(
        "SELECT e.id, e.status, e.prepared, p.plan IS NOT NULL, e.fair_key, e.parked_key
         FROM events e LEFT JOIN event_plans p ON p.event_id = e.id ORDER BY e.id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows
}

#[tokio::test]
async fn a_store_made_by_release_0009_is_carried_over_and_its_open_events_dispatched() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("formbridge.db");
    std::fs::copy(fixture(), &db).unwrap();
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let app = app_on(dir, &ghl).await;
    let store = app.store.clone();

    // Statuses, preparation and fair keys as they were.
    let state = raw_state(&db).await;
    let by_id = |id: i64| state.iter().find(|r| r.0 == id).unwrap().clone();
    assert_eq!(state.len(), 7, "the swept event stays gone: {state:?}");
    for (id, status, prepared, plan) in [
        (2, "done", true, true),
        (4, "done", true, true),
        (5, "dead", true, false),
        // Processing under the old release's lease: given back when the store opened under
        // its file lock (no other process can hold it), due at once with its fair key.
        (6, "pending", true, true),
        (7, "retrying", true, true),
        (8, "pending", true, true),
        (9, "pending", false, false),
    ] {
        let row = by_id(id);
        assert_eq!(
            (row.1.as_str(), row.2, row.3),
            (status, prepared, plan),
            "event {id}"
        );
    }
    assert!(
        by_id(6).4.is_some() && by_id(8).4.is_some(),
        "fair keys kept"
    );
    assert!(
        by_id(7).4.is_none() && by_id(7).5.is_some(),
        "the retry stays parked"
    );

    // Plans, submissions, steps, attempts, revisions and references.
    let done = store
        .get_event(formbridge::domain::EventId(2))
        .await
        .unwrap()
        .unwrap();
    assert!(done.submission.is_some());
    assert!(done.plan.as_ref().unwrap().steps.len() >= 3);
    let steps = store.steps(done.summary.id).await.unwrap();
    assert!(
        !steps.is_empty()
            && steps
                .iter()
                .all(|s| s.status == formbridge::store::StepStatus::Done)
    );
    let attempts = store.attempts(done.summary.id).await.unwrap();
    assert_eq!(attempts.last().unwrap().outcome, "done");
    let dead = store
        .get_event(formbridge::domain::EventId(5))
        .await
        .unwrap()
        .unwrap();
    assert!(dead.summary.last_error.is_some());
    assert_eq!(
        store
            .attempts(dead.summary.id)
            .await
            .unwrap()
            .last()
            .unwrap()
            .outcome,
        "dead"
    );
    let edit = store
        .get_event(formbridge::domain::EventId(4))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(edit.summary.revision_of, Some(done.summary.id));
    let thread = store.thread(edit.summary.id).await.unwrap();
    assert!(thread
        .iter()
        .any(|t| t.id == done.summary.id && t.same_submission && t.plan.is_some()));
    let started = store.steps(formbridge::domain::EventId(6)).await.unwrap();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].status, formbridge::store::StepStatus::Started);
    assert_eq!(
        store
            .attempts(formbridge::domain::EventId(7))
            .await
            .unwrap()[0]
            .outcome,
        "retry"
    );

    // Sealed tokens open with the key; a repeat of the swept delivery is still a duplicate.
    let tokens = store
        .load_oauth_tokens(&OAUTH_LOCATION.into())
        .await
        .unwrap()
        .unwrap();
    use secrecy::ExposeSecret;
    assert_eq!(tokens.refresh_token.expose_secret(), "rt-fixture");
    post_json(&app, "dripjobs", &lead("D0", "Swept", "100")).await;
    assert_eq!(
        app.total_events().await,
        7,
        "the swept delivery is a duplicate"
    );

    // The unprepared event is prepared, and every open one is claimed and dispatched.
    assert_eq!(store.unprepared(10).await.unwrap().len(), 1);
    app.drain(Duration::from_secs(60)).await;
    let counts = store.status_counts().await.unwrap();
    assert_eq!(counts[&EventStatus::Done], 6, "{counts:?}");
    assert_eq!(counts[&EventStatus::Dead], 1, "{counts:?}");
    let notes = ghl.state().notes;
    for who in ["carol", "dave", "erin", "frank"] {
        assert!(
            notes
                .iter()
                .any(|n| n.to_string().contains(&format!("{who}@example.com"))),
            "no note for {who}: {notes:?}"
        );
    }
    // Prepared after the upgrade with the new schema: a plan row and the prepared mark.
    assert!(raw_state(&db).await.iter().all(|r| r.2));
}
