//! The dispatch queue on a real SQLite file: leases, takeover after expiry, fencing,
//! per-contact ordering, and fair shares between the sources of a location.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use formbridge::settings::StoreSettings;
use formbridge::store::{Claim, EventId, Finish, Preparation, SqliteStore, Store};
use time::OffsetDateTime;

async fn store() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir.path().join("q.db")).await;
    (store, dir)
}

/// Opens (creating or migrating) the store at `db`.
async fn open_store(db: &std::path::Path) -> SqliteStore {
    SqliteStore::open(&StoreSettings::with_url(format!(
        "sqlite://{}",
        db.display()
    )))
    .await
    .unwrap()
}

async fn add(store: &SqliteStore, key: &str, contact: &str) -> EventId {
    add_from(store, "dripjobs", key, contact).await
}

/// Stores and prepares one event of `source` for location `loc`.
async fn add_from(store: &SqliteStore, source: &str, key: &str, contact: &str) -> EventId {
    add_at(store, "loc", source, key, contact).await
}

async fn add_at(
    store: &SqliteStore,
    location: &str,
    source: &str,
    key: &str,
    contact: &str,
) -> EventId {
    crate::common::add_prepared(store, location, source, key, contact).await
}

async fn claimed_ids(store: &SqliteStore) -> Vec<EventId> {
    store
        .claim(&claim("w", Duration::from_secs(30)))
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect()
}

fn claim(owner: &str, lease: Duration) -> Claim {
    let now = OffsetDateTime::now_utc();
    Claim {
        lease: owner.into(),
        now,
        lease_until: now + lease,
        limit: 10,
        per_location_limit: 10,
        exclude_locations: vec![],
    }
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_the_old_owner_is_fenced_off() {
    let (store, _dir) = store().await;
    let id = add(&store, "a", "email:a@x.co").await;
    let first = store
        .claim(&claim("w1", Duration::from_millis(200)))
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        store
            .claim(&claim("w2", Duration::from_secs(5)))
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    // A claim made after the lease ran out (the clock is a parameter of the claim).
    let mut later = claim("w2", Duration::from_secs(5));
    later.now += Duration::from_millis(250);
    let taken = store.claim(&later).await.unwrap();
    assert_eq!(taken.len(), 1, "an expired lease is taken over");
    assert!(
        !store.finish(id, &"w1".into(), &Finish::Done).await.unwrap(),
        "the old owner is fenced off"
    );
    assert!(!store
        .renew_lease(id, &"w1".into(), OffsetDateTime::now_utc())
        .await
        .unwrap());
    assert!(store.finish(id, &"w2".into(), &Finish::Done).await.unwrap());
}

#[tokio::test]
async fn one_contact_at_a_time_in_arrival_order() {
    let (store, _dir) = store().await;
    let a1 = add(&store, "1", "email:a@x.co").await;
    let b1 = add(&store, "2", "email:b@x.co").await;
    let a2 = add(&store, "3", "email:a@x.co").await;
    let got = claimed_ids(&store).await;
    assert_eq!(
        got,
        vec![a1, b1],
        "the second event of a@ waits for the first"
    );
    // A retry of the first keeps the second waiting.
    let later = OffsetDateTime::now_utc() + Duration::from_secs(3600);
    store
        .finish(
            a1,
            &"w".into(),
            &Finish::Retry {
                at: later,
                error: "503".into(),
                counts_attempt: true,
                outcome: "retry",
            },
        )
        .await
        .unwrap();
    assert!(store
        .claim(&claim("w", Duration::from_secs(30)))
        .await
        .unwrap()
        .is_empty());
    // Once it is dead (or done), the next one goes.
    store.replay(a1, false).await.unwrap();
    let dead = Preparation::Failed {
        submission: None,
        error: "test".into(),
    };
    store.save_preparations(&[(a1, dead)]).await.unwrap();
    let got = claimed_ids(&store).await;
    assert_eq!(got, vec![a2]);
}

/// Adds `n` events of `source`, each with its own contact.
async fn add_many(store: &SqliteStore, source: &str, tag: &str, n: usize) -> Vec<EventId> {
    add_many_at(store, "loc", source, tag, 0..n).await
}

/// Events `{tag}-{i}` for each `i` in `range`, each of its own contact.
async fn add_many_at(
    store: &SqliteStore,
    location: &str,
    source: &str,
    tag: &str,
    range: std::ops::Range<usize>,
) -> Vec<EventId> {
    let mut ids = Vec::with_capacity(range.len());
    for i in range {
        let key = format!("{tag}-{i}");
        ids.push(add_at(store, location, source, &key, &format!("email:{key}@x.co")).await);
    }
    ids
}

async fn drain(store: &SqliteStore, limit: u32) -> Vec<EventId> {
    let mut order = Vec::new();
    loop {
        let mut next = claim("w", Duration::from_secs(30));
        next.limit = limit;
        let claimed = store.claim(&next).await.unwrap();
        if claimed.is_empty() {
            return order;
        }
        for event in claimed {
            assert!(store
                .finish(event.id, &"w".into(), &Finish::Done)
                .await
                .unwrap());
            order.push(event.id);
        }
    }
}

/// Positions of `ids` in `order`.
fn positions(order: &[EventId], ids: &[EventId]) -> Vec<usize> {
    ids.iter()
        .map(|id| order.iter().position(|o| o == id).unwrap())
        .collect()
}

#[tokio::test]
async fn with_one_source_claims_follow_arrival_order() {
    let (store, _dir) = store().await;
    let ids = add_many(&store, "dripjobs", "a", 20).await;
    assert_eq!(drain(&store, 2).await, ids);
}

#[tokio::test]
async fn a_source_arriving_behind_a_backlog_gets_every_other_slot() {
    let (store, _dir) = store().await;
    let flood = add_many(&store, "dripjobs", "a", 50).await;
    let late = add_many(&store, "jotform", "b", 5).await;
    let order = drain(&store, 2).await;
    assert_eq!(order.len(), 55, "every event is claimed once");
    let at = positions(&order, &late);
    assert!(
        at.iter().all(|&p| p < 12),
        "the late source's events should interleave with the backlog's head, got positions {at:?}"
    );
    // The backlog itself keeps its arrival order.
    let flood_order: Vec<_> = order
        .iter()
        .filter(|id| flood.contains(id))
        .copied()
        .collect();
    assert_eq!(flood_order, flood);
}

#[tokio::test]
async fn an_idle_source_does_not_jump_ahead_with_its_old_keys() {
    let (store, _dir) = store().await;
    add_many(&store, "jotform", "b-old", 1).await;
    add_many(&store, "dripjobs", "a1", 50).await;
    assert_eq!(drain(&store, 10).await.len(), 51);
    // A floods again; B, idle since its first event, sends three.
    let flood = add_many(&store, "dripjobs", "a2", 50).await;
    let late = add_many(&store, "jotform", "b-new", 3).await;
    let order = drain(&store, 2).await;
    let at = positions(&order, &late);
    assert_eq!(order[0], flood[0], "the backlog's head goes first");
    assert!(
        at.windows(2).all(|w| w[1] > w[0] + 1) && at.iter().all(|&p| p < 10),
        "the idle source should take turns from the head on, not go first: positions {at:?}"
    );
}

#[tokio::test]
async fn a_contact_runs_in_arrival_order_even_when_fair_order_disagrees() {
    let (store, _dir) = store().await;
    add_many(&store, "dripjobs", "a", 9).await;
    let first = add_from(&store, "dripjobs", "a-shared", "email:shared@x.co").await;
    // Fair order puts this one second, ahead of `first`; the contact's order says after it.
    let second = add_from(&store, "jotform", "b-shared", "email:shared@x.co").await;
    let mut all = claim("w", Duration::from_secs(30));
    all.limit = 20;
    let claimed: Vec<_> = store
        .claim(&all)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert!(claimed.contains(&first));
    assert!(
        !claimed.contains(&second),
        "the contact's later event waits for its earlier one"
    );
    assert!(claimed_ids(&store).await.is_empty());
    assert!(store
        .finish(first, &"w".into(), &Finish::Done)
        .await
        .unwrap());
    assert_eq!(claimed_ids(&store).await, vec![second]);
}

#[tokio::test]
async fn a_replayed_event_is_queued_again_with_a_fresh_place() {
    let (store, _dir) = store().await;
    let old = add(&store, "old", "email:old@x.co").await;
    assert_eq!(drain(&store, 10).await, vec![old]);
    let newer = add_many(&store, "dripjobs", "a", 3).await;
    assert!(store.replay(old, false).await.unwrap());
    let replayed = Preparation::Ready {
        submission: serde_json::json!({}),
        plan: formbridge::mapping::Plan::default(),
        contact_key: "email:old@x.co".into(),
        location_id: "loc".into(),
    };
    store.save_preparations(&[(old, replayed)]).await.unwrap();
    let mut expected = newer;
    expected.push(old);
    assert_eq!(
        drain(&store, 2).await,
        expected,
        "replayed as if it arrived now"
    );
}

/// A store `q.db` in `dir` with only the migrations `names` applied, as an earlier release
/// left it: a pool on it, and its path.
async fn store_migrated_to(
    dir: &std::path::Path,
    names: &[&str],
) -> (sqlx::SqlitePool, std::path::PathBuf) {
    let previous = dir.join("previous-migrations");
    std::fs::create_dir(&previous).unwrap();
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for name in names {
        std::fs::copy(migrations.join(name), previous.join(name)).unwrap();
    }
    let db = dir.join("q.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", db.display()))
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(previous.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    (pool, db)
}

#[tokio::test]
async fn an_upgrade_keeps_a_prepared_backlog_in_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    // A store as the previous release left it: migrations 0001-0002, three prepared events.
    let (pool, db) = store_migrated_to(
        dir.path(),
        &["0001_events.sql", "0002_open_events_index.sql"],
    )
    .await;
    for i in 1..=3 {
        sqlx::query(
            "INSERT INTO events (source, dedupe_key, headers, body, received_at, next_attempt_at,
                 updated_at, contact_key, location_id, submission, plan)
             VALUES ('dripjobs', ?1, '[]', x'7b7d', 0, 0, 0, ?2, 'loc', '{}', '{\"steps\":[]}')",
        )
        .bind(format!("old-{i}"))
        .bind(format!("email:old{i}@x.co"))
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    let store = open_store(&db).await;
    let late = add_from(&store, "jotform", "new", "email:new@x.co").await;
    let order = drain(&store, 1).await;
    assert_eq!(
        order,
        vec![EventId(1), late, EventId(2), EventId(3)],
        "the old backlog is claimable, in arrival order, and a new source takes turns with it from the head"
    );
}

#[tokio::test]
async fn a_location_served_early_rejoins_at_the_head_not_behind_another_backlog() {
    let (store, _dir) = store().await;
    add_many_at(&store, "busy", "dripjobs", "b", 0..20).await;
    let first = add_many_at(&store, "quick", "dripjobs", "q", 0..3).await;
    // Two at a time until the quick location's first three are done.
    let mut done = Vec::new();
    while !first.iter().all(|id| done.contains(id)) {
        let mut next = claim("w", Duration::from_secs(30));
        next.limit = 2;
        for event in store.claim(&next).await.unwrap() {
            assert!(store
                .finish(event.id, &"w".into(), &Finish::Done)
                .await
                .unwrap());
            done.push(event.id);
        }
    }
    let later = add_many_at(&store, "quick", "dripjobs", "q", 3..6).await;
    let rest = drain(&store, 2).await;
    let at = positions(&rest, &later);
    assert!(
        at.iter().all(|p| *p < 8),
        "the quick location's new leads take turns with the busy backlog, not wait behind it: {at:?} in {} claims",
        rest.len()
    );
}

/// The fair keys of event `id` as stored: (`fair_key`, `parked_key`).
async fn keys_of(db: &std::path::Path, id: EventId) -> (Option<i64>, Option<i64>) {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let keys = sqlx::query_as("SELECT fair_key, parked_key FROM events WHERE id = ?1")
        .bind(id.0)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    keys
}

#[tokio::test]
async fn an_event_waiting_for_a_retry_is_out_of_the_claims_way_and_keeps_its_place() {
    let (store, dir) = store().await;
    let db = dir.path().join("q.db");
    let ids = add_many(&store, "dripjobs", "a", 3).await;
    let mut first = claim("w", Duration::from_secs(30));
    first.limit = 1;
    let taken = store.claim(&first).await.unwrap();
    assert_eq!(taken.len(), 1);
    let (key, _) = keys_of(&db, ids[0]).await;
    let retry_at = OffsetDateTime::now_utc() + Duration::from_secs(60);
    let retry = Finish::Retry {
        at: retry_at,
        error: "GHL answered 503".into(),
        counts_attempt: true,
        outcome: "retry",
    };
    assert!(store.finish(ids[0], &"w".into(), &retry).await.unwrap());
    assert_eq!(
        keys_of(&db, ids[0]).await,
        (None, key),
        "parked: out of the index claims walk, its key kept aside"
    );
    // Not due: the next claim takes the second event only.
    let mut now = claim("w", Duration::from_secs(30));
    now.limit = 1;
    let second = store.claim(&now).await.unwrap();
    assert_eq!(
        second.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![ids[1]]
    );
    assert!(store
        .finish(ids[1], &"w".into(), &Finish::Done)
        .await
        .unwrap());
    // Once due it is back at the head, ahead of the later third event.
    let mut later = claim("w", Duration::from_secs(30));
    later.now = retry_at + Duration::from_millis(1);
    later.lease_until = later.now + Duration::from_secs(30);
    let due = store.claim(&later).await.unwrap();
    assert_eq!(
        due.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![ids[0], ids[2]],
        "the retried event keeps its place"
    );
    assert_eq!(
        keys_of(&db, ids[0]).await,
        (key, None),
        "given its key back"
    );
}

#[tokio::test]
async fn an_upgrade_parks_the_events_already_waiting_for_a_retry() {
    let dir = tempfile::tempdir().unwrap();
    let (pool, db) = store_migrated_to(
        dir.path(),
        &[
            "0001_events.sql",
            "0002_open_events_index.sql",
            "0003_fair_share.sql",
        ],
    )
    .await;
    let in_an_hour =
        (OffsetDateTime::now_utc() + Duration::from_secs(3600)).unix_timestamp() * 1000;
    // (status, next attempt, fair key): waiting for a retry; due; pending and due.
    for (i, (status, next, key)) in [
        ("retrying", in_an_hour, 7),
        ("retrying", 0, 8),
        ("pending", 0, 9),
    ]
    .into_iter()
    .enumerate()
    {
        sqlx::query(
            "INSERT INTO events (source, dedupe_key, headers, body, received_at, next_attempt_at,
                 updated_at, contact_key, location_id, submission, plan, status, fair_key)
             VALUES ('dripjobs', ?1, '[]', x'7b7d', 0, ?2, 0, ?3, 'loc', '{}', '{\"steps\":[]}', ?4, ?5)",
        )
        .bind(format!("old-{i}"))
        .bind(next)
        .bind(format!("email:old{i}@x.co"))
        .bind(status)
        .bind(key)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
    let store = open_store(&db).await;
    assert_eq!(
        keys_of(&db, EventId(1)).await,
        (None, Some(7)),
        "waiting: parked"
    );
    assert_eq!(
        keys_of(&db, EventId(2)).await,
        (Some(8), None),
        "due: stays"
    );
    assert_eq!(
        keys_of(&db, EventId(3)).await,
        (Some(9), None),
        "pending: stays"
    );
    assert_eq!(drain(&store, 10).await, vec![EventId(2), EventId(3)]);
}

#[tokio::test]
async fn a_claim_that_leaves_a_location_out_skips_its_backlog_and_keeps_fair_order() {
    let (store, _dir) = store().await;
    let held = add_many_at(&store, "held", "dripjobs", "h", 0..5).await;
    add_many_at(&store, "fast", "dripjobs", "f", 0..10).await;
    let leave_out = |locations: &[&str]| {
        let mut c = claim("w", Duration::from_secs(30));
        c.exclude_locations = locations.iter().map(|l| (*l).into()).collect();
        c
    };
    // The others are served past the held location's keys: its backlog is now at the head.
    loop {
        let taken = store.claim(&leave_out(&["held"])).await.unwrap();
        if taken.is_empty() {
            break;
        }
        for event in taken {
            assert!(store
                .finish(event.id, &"w".into(), &Finish::Done)
                .await
                .unwrap());
        }
    }
    let slow = add_at(&store, "slow", "dripjobs", "s-0", "email:s0@x.co").await;
    let fast = add_at(&store, "fast", "dripjobs", "f-10", "email:f10@x.co").await;
    let taken: Vec<EventId> = store
        .claim(&leave_out(&["held"]))
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(
        taken,
        vec![slow, fast],
        "the others, in fair order; none held"
    );
    assert!(
        store
            .claim(&leave_out(&["held", "slow", "fast"]))
            .await
            .unwrap()
            .is_empty(),
        "every location with work left out: nothing"
    );
    let released: Vec<EventId> = store
        .claim(&claim("w", Duration::from_secs(30)))
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(released, held, "once let in, the held backlog goes first");
}
