//! Upgrading a SQLite store made by an earlier release: `make_fixture` writes
//! `tests/fixtures/store/sqlite-0009.db` (see the README there), events in every state as
//! SQLite migrations 0001-0009 leave them; the upgrade test comes with migration 0010.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use formbridge::store::EventStatus;
use serde_json::json;

use crate::common::{settings_with_toml, spawn_driven, TestApp};
use crate::dispatch::{post_json, sandbox_with, LOCATION};

/// The fixture's token key (`store.token_key`): its OAuth tokens are sealed with it.
const TOKEN_KEY: &str = "4f1d2b7c9a0e5d3f8b6a1c2e4d7f9a0b3c5e7d9f1a2b4c6d8e0f1a3b5c7d9e1f";
/// The location whose OAuth tokens the fixture holds (not the one dispatch uses).
const OAUTH_LOCATION: &str = "locOauthFixture00001";

/// A DripJobs source with a task per lead and `deal_id` as reference, as the fixture was made.
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

/// Makes the fixture with the code of the commit it is run at (see the README beside it):
/// `cargo test --test it store_upgrade::make_fixture -- --ignored`.
#[tokio::test]
#[ignore = "writes tests/fixtures/store/sqlite-0009.db"]
async fn make_fixture() {
    use formbridge::store::{Claim, Finish, StepRecord, StepStatus, StoredTokens};
    use time::OffsetDateTime;

    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("formbridge.db");
    let app = app_on(dir, &ghl).await;
    let store = app.store.clone();

    // 1: done, then swept by retention (its dedupe key stays as a tombstone).
    post_json(&app, "dripjobs", &lead("D0", "Swept", "100")).await;
    app.drain(Duration::from_secs(30)).await;
    assert_eq!(
        store
            .delete_finished_before(OffsetDateTime::now_utc() + time::Duration::seconds(1), 1)
            .await
            .unwrap(),
        1
    );
    // 2: done with its steps and attempts; 4: an edit of it (a revision: the tool's id again,
    // other content), done. (The insert that found the tool's id taken used up id 3.)
    for (price, hash) in [("4500", "h1"), ("4700", "h2")] {
        let body = lead("D1", "Jane", price).to_string();
        let stored = store
            .insert_event(formbridge::store::NewEvent {
                source: formbridge::sources::SourceName::parse("dripjobs").unwrap(),
                dedupe_key: "dripjobs:D1".to_owned(),
                content_hash: Some(hash.to_owned()),
                content_type: Some("application/json".to_owned()),
                headers: vec![("content-type".to_owned(), "application/json".to_owned())],
                body: body.into_bytes().into(),
                received_at: OffsetDateTime::now_utc(),
            })
            .await
            .unwrap();
        app.drain(Duration::from_secs(30)).await;
        if hash == "h2" {
            assert!(matches!(
                stored,
                formbridge::store::Ingested::Revision { .. }
            ));
        }
    }
    // 5: dead (a body that is no form).
    post_json(&app, "dripjobs", &json!(["not", "a", "form"])).await;
    app.drain(Duration::from_secs(30)).await;

    // 6, 7, 8: prepared by the real preparer, not dispatched.
    for (deal, who) in [("D3", "Carol"), ("D4", "Dave"), ("D5", "Erin")] {
        post_json(&app, "dripjobs", &lead(deal, who, "900")).await;
    }
    let settings = settings_with_toml(
        tempfile::tempdir().unwrap().path(),
        MAPPING,
        &[("ghl.location_id", LOCATION)],
    );
    let runtimes = formbridge::runtime::SourceRuntimes::compile(&settings).unwrap();
    let preparer = formbridge::dispatch::prepare::Preparer::new(
        &settings,
        Arc::new(runtimes),
        formbridge::alerts::AlertSink::off(),
    );
    assert_eq!(preparer.run_once(store.as_ref(), 10).await.unwrap(), 3);
    let claim = |lease: &str| {
        let now = OffsetDateTime::now_utc();
        Claim {
            lease: lease.into(),
            now,
            lease_until: now + time::Duration::seconds(1),
            limit: 1,
            per_location_limit: 1,
            exclude_locations: vec![],
        }
    };
    // 6: processing under a lease (run out by the time the fixture is opened), one step
    // started.
    let processing = store.claim(&claim("fixture-a")).await.unwrap();
    assert_eq!(processing[0].id.0, 6);
    let started = StepRecord {
        index: 0,
        kind: formbridge::mapping::StepKind::UpsertContact,
        status: StepStatus::Started,
        ghl_id: None,
        updated_at: OffsetDateTime::now_utc(),
    };
    assert!(store
        .record_step(processing[0].id, &"fixture-a".into(), &started)
        .await
        .unwrap());
    // 7: retrying, parked until its retry is due (a few seconds on).
    let retrying = store.claim(&claim("fixture-b")).await.unwrap();
    assert_eq!(retrying[0].id.0, 7);
    let retry = Finish::Retry {
        at: OffsetDateTime::now_utc() + time::Duration::seconds(3),
        error: "GHL answered 503".to_owned(),
        counts_attempt: true,
        outcome: "retry",
    };
    assert!(store
        .finish(retrying[0].id, &"fixture-b".into(), &retry)
        .await
        .unwrap());
    // 9: pending, not prepared yet.
    post_json(&app, "dripjobs", &lead("D6", "Frank", "900")).await;
    // Sealed OAuth tokens of another location.
    let tokens = StoredTokens {
        access_token: "at-fixture".to_owned().into(),
        refresh_token: "rt-fixture".to_owned().into(),
        expires_at: OffsetDateTime::from_unix_timestamp(2_000_000_000).unwrap(),
    };
    store
        .save_oauth_tokens(&OAUTH_LOCATION.into(), &tokens)
        .await
        .unwrap();
    let counts = store.status_counts().await.unwrap();
    assert_eq!(counts[&EventStatus::Done], 2, "{counts:?}");
    assert_eq!(counts[&EventStatus::Dead], 1, "{counts:?}");
    // A copy of the file as it stands (the app, whose folder goes with it, still holds it).
    let out = fixture();
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&out);
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let references: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM event_references")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(references > 0, "the plans carry their deal ids");
    sqlx::query(&format!("VACUUM INTO '{}'", out.display()))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    drop(store);
    drop(app);
}
