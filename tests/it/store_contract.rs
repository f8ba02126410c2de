//! The Store contract, written once against `&dyn Store` and run on both backends (a real
//! SQLite file, and a fresh PostgreSQL database per test): leases, takeover after expiry,
//! fencing, per-contact ordering, fair shares between the sources of a location. Then what only
//! one backend has: SQLite's upgrades of an existing file, and PostgreSQL's replicas (several
//! handles on one database).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use formbridge::domain::EventId;
use formbridge::settings::StoreSettings;
use formbridge::store::{
    AdminReads, Claim, Finish, Ingest, PgStore, Preparation, Queue, SqliteStore, Store,
};
use time::OffsetDateTime;

use crate::pg::PgDatabase;

/// A store of one backend and what keeps it alive (its file's folder, or its database).
pub struct Backend {
    pub store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    pg: Option<PgDatabase>,
}

impl Backend {
    pub async fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir.path().join("q.db")).await;
        Backend {
            store: Arc::new(store),
            _dir: Some(dir),
            pg: None,
        }
    }

    /// A fresh PostgreSQL database, or `None` when the test is skipped for want of one
    /// ([`crate::pg::database_or_skip`]).
    pub async fn postgres() -> Option<Backend> {
        let db = crate::pg::database_or_skip().await?;
        let store = open_pg(&db.url).await;
        Some(Backend {
            store: Arc::new(store),
            _dir: None,
            pg: Some(db),
        })
    }

    /// Another handle on the same PostgreSQL database: a second replica with its own pool.
    pub async fn replica(&self) -> Arc<dyn Store> {
        let db = self.pg.as_ref().expect("replicas share a PostgreSQL store");
        Arc::new(open_pg(&db.url).await)
    }
}

fn settings(url: String) -> StoreSettings {
    StoreSettings {
        max_connections: 4,
        group_commit_max_batch: 16,
        pool_size: 4,
        ..StoreSettings::with_url(url)
    }
}

/// Opens (creating or migrating) the store at `db`.
async fn open_store(db: &std::path::Path) -> SqliteStore {
    SqliteStore::open(&settings(format!("sqlite://{}", db.display())))
        .await
        .unwrap()
}

async fn open_pg(url: &str) -> PgStore {
    PgStore::open(&settings(url.to_owned())).await.unwrap()
}

/// A contract test: `async fn $name(store: &dyn Store)` run on SQLite (`$name::sqlite`) and
/// on PostgreSQL (`$name::postgres`).
macro_rules! contract_test {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let backend = super::Backend::sqlite().await;
                super::$name(&*backend.store).await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(backend) = super::Backend::postgres().await else {
                    return;
                };
                super::$name(&*backend.store).await;
            }
        }
    };
}

async fn add(store: &dyn Store, key: &str, contact: &str) -> EventId {
    add_from(store, "dripjobs", key, contact).await
}

/// Stores and prepares one event of `source` for location `loc`.
async fn add_from(store: &dyn Store, source: &str, key: &str, contact: &str) -> EventId {
    add_at(store, "loc", source, key, contact).await
}

async fn add_at(
    store: &dyn Store,
    location: &str,
    source: &str,
    key: &str,
    contact: &str,
) -> EventId {
    crate::common::add_prepared(store, location, source, key, contact).await
}

async fn claimed_ids(store: &dyn Store) -> Vec<EventId> {
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

contract_test!(a_new_delivery_waits_to_be_prepared_then_is_claimed_once);
async fn a_new_delivery_waits_to_be_prepared_then_is_claimed_once(store: &dyn Store) {
    let id = store.insert_event(delivery("new", "x")).await.unwrap().id();
    let waiting = store.unprepared(10).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].summary.id, id);
    assert!(waiting[0].plan.is_none());
    assert!(claimed_ids(store).await.is_empty(), "not prepared yet");
    let ready = Preparation::Ready {
        submission: serde_json::json!({"email": "new@x.co"}),
        plan: formbridge::domain::Plan::default(),
        contact_key: "email:new@x.co".into(),
        location_id: "loc".into(),
    };
    store.save_preparations(&[(id, ready)]).await.unwrap();
    assert!(store.unprepared(10).await.unwrap().is_empty());
    let event = store.get_event(id).await.unwrap().unwrap();
    assert_eq!(
        event.submission,
        Some(serde_json::json!({"email": "new@x.co"}))
    );
    assert!(event.plan.is_some());
    assert_eq!(claimed_ids(store).await, vec![id]);
    assert!(claimed_ids(store).await.is_empty(), "claimed once");
}

contract_test!(an_expired_lease_is_taken_over_and_the_old_owner_is_fenced_off);
async fn an_expired_lease_is_taken_over_and_the_old_owner_is_fenced_off(store: &dyn Store) {
    let id = add(store, "a", "email:a@x.co").await;
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
    // A claim made after the lease ran out (PostgreSQL judges leases by its own clock).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let taken = store
        .claim(&claim("w2", Duration::from_secs(5)))
        .await
        .unwrap();
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

contract_test!(one_contact_at_a_time_in_arrival_order);
async fn one_contact_at_a_time_in_arrival_order(store: &dyn Store) {
    let a1 = add(store, "1", "email:a@x.co").await;
    let b1 = add(store, "2", "email:b@x.co").await;
    let a2 = add(store, "3", "email:a@x.co").await;
    let got = claimed_ids(store).await;
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
    let got = claimed_ids(store).await;
    assert_eq!(got, vec![a2]);
}

/// Adds `n` events of `source`, each with its own contact.
async fn add_many(store: &dyn Store, source: &str, tag: &str, n: usize) -> Vec<EventId> {
    add_many_at(store, "loc", source, tag, 0..n).await
}

/// Events `{tag}-{i}` for each `i` in `range`, each of its own contact.
async fn add_many_at(
    store: &dyn Store,
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

async fn drain(store: &dyn Store, limit: u32) -> Vec<EventId> {
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

contract_test!(with_one_source_claims_follow_arrival_order);
async fn with_one_source_claims_follow_arrival_order(store: &dyn Store) {
    let ids = add_many(store, "dripjobs", "a", 20).await;
    assert_eq!(drain(store, 2).await, ids);
}

contract_test!(a_source_arriving_behind_a_backlog_gets_every_other_slot);
async fn a_source_arriving_behind_a_backlog_gets_every_other_slot(store: &dyn Store) {
    let flood = add_many(store, "dripjobs", "a", 50).await;
    let late = add_many(store, "jotform", "b", 5).await;
    let order = drain(store, 2).await;
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

contract_test!(an_idle_source_does_not_jump_ahead_with_its_old_keys);
async fn an_idle_source_does_not_jump_ahead_with_its_old_keys(store: &dyn Store) {
    add_many(store, "jotform", "b-old", 1).await;
    add_many(store, "dripjobs", "a1", 50).await;
    assert_eq!(drain(store, 10).await.len(), 51);
    // A floods again; B, idle since its first event, sends three.
    let flood = add_many(store, "dripjobs", "a2", 50).await;
    let late = add_many(store, "jotform", "b-new", 3).await;
    let order = drain(store, 2).await;
    let at = positions(&order, &late);
    assert_eq!(order[0], flood[0], "the backlog's head goes first");
    assert!(
        at.windows(2).all(|w| w[1] > w[0] + 1) && at.iter().all(|&p| p < 10),
        "the idle source should take turns from the head on, not go first: positions {at:?}"
    );
}

contract_test!(a_contact_runs_in_arrival_order_even_when_fair_order_disagrees);
async fn a_contact_runs_in_arrival_order_even_when_fair_order_disagrees(store: &dyn Store) {
    add_many(store, "dripjobs", "a", 9).await;
    let first = add_from(store, "dripjobs", "a-shared", "email:shared@x.co").await;
    // Fair order puts this one second, ahead of `first`; the contact's order says after it.
    let second = add_from(store, "jotform", "b-shared", "email:shared@x.co").await;
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
    assert!(claimed_ids(store).await.is_empty());
    assert!(store
        .finish(first, &"w".into(), &Finish::Done)
        .await
        .unwrap());
    assert_eq!(claimed_ids(store).await, vec![second]);
}

contract_test!(a_replayed_event_is_queued_again_with_a_fresh_place);
async fn a_replayed_event_is_queued_again_with_a_fresh_place(store: &dyn Store) {
    let old = add(store, "old", "email:old@x.co").await;
    assert_eq!(drain(store, 10).await, vec![old]);
    let newer = add_many(store, "dripjobs", "a", 3).await;
    assert!(store.replay(old, false).await.unwrap());
    let replayed = Preparation::Ready {
        submission: serde_json::json!({}),
        plan: formbridge::domain::Plan::default(),
        contact_key: "email:old@x.co".into(),
        location_id: "loc".into(),
    };
    store.save_preparations(&[(old, replayed)]).await.unwrap();
    let mut expected = newer;
    expected.push(old);
    assert_eq!(
        drain(store, 2).await,
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

    let store = &open_store(&db).await;
    // The deliveries moved to their own table (0007) with their bodies.
    let kept = store.get_event(EventId(2)).await.unwrap().unwrap();
    assert_eq!(&kept.body[..], b"{}");
    assert!(kept.headers.is_empty());
    let late = add_from(store, "jotform", "new", "email:new@x.co").await;
    let order = drain(store, 1).await;
    assert_eq!(
        order,
        vec![EventId(1), late, EventId(2), EventId(3)],
        "the old backlog is claimable, in arrival order, and a new source takes turns with it from the head"
    );
}

contract_test!(a_location_served_early_rejoins_at_the_head_not_behind_another_backlog);
async fn a_location_served_early_rejoins_at_the_head_not_behind_another_backlog(store: &dyn Store) {
    add_many_at(store, "busy", "dripjobs", "b", 0..20).await;
    let first = add_many_at(store, "quick", "dripjobs", "q", 0..3).await;
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
    let later = add_many_at(store, "quick", "dripjobs", "q", 3..6).await;
    let rest = drain(store, 2).await;
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
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let store = &open_store(&db).await;
    let ids = add_many(store, "dripjobs", "a", 3).await;
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
    let store = &open_store(&db).await;
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
    assert_eq!(drain(store, 10).await, vec![EventId(2), EventId(3)]);
}

contract_test!(a_claim_that_leaves_a_location_out_skips_its_backlog_and_keeps_fair_order);
async fn a_claim_that_leaves_a_location_out_skips_its_backlog_and_keeps_fair_order(
    store: &dyn Store,
) {
    let held = add_many_at(store, "held", "dripjobs", "h", 0..5).await;
    add_many_at(store, "fast", "dripjobs", "f", 0..10).await;
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
    let slow = add_at(store, "slow", "dripjobs", "s-0", "email:s0@x.co").await;
    let fast = add_at(store, "fast", "dripjobs", "f-10", "email:f10@x.co").await;
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

fn started(index: u32) -> formbridge::store::StepRecord {
    formbridge::store::StepRecord {
        index,
        kind: formbridge::domain::StepKind::CreateNote,
        status: formbridge::store::StepStatus::Started,
        ghl_id: None,
        detail: None,
        updated_at: OffsetDateTime::now_utc(),
        in_doubt_until: None,
        requests: Vec::new(),
    }
}

/// Claims the store's one due event for `worker`, under a 30 s lease.
async fn claim_one(store: &dyn Store, worker: &str) {
    let taken = store
        .claim(&claim(worker, Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
}

contract_test!(a_step_in_doubt_keeps_its_deadline_until_ghl_answers);
async fn a_step_in_doubt_keeps_its_deadline_until_ghl_answers(store: &dyn Store) {
    let id = add(store, "doubt", "email:d@x.co").await;
    claim_one(store, "w1").await;
    // Millisecond precision, as stored.
    let until = OffsetDateTime::from_unix_timestamp_nanos(1_900_000_000_123 * 1_000_000).unwrap();
    let sent = formbridge::store::StepRecord {
        in_doubt_until: Some(until),
        ..started(0)
    };
    assert!(store.record_step(id, &"w1".into(), &sent).await.unwrap());
    assert_eq!(
        store.steps(id).await.unwrap()[0].in_doubt_until,
        Some(until)
    );
    // GHL answered (an error): still started, no longer in doubt.
    assert!(store
        .record_step(id, &"w1".into(), &started(0))
        .await
        .unwrap());
    let steps = store.steps(id).await.unwrap();
    assert_eq!(steps[0].in_doubt_until, None);
    assert_eq!(steps[0].status, formbridge::store::StepStatus::Started);
}

contract_test!(a_step_keeps_its_ghl_requests_until_a_record_brings_new_ones);
async fn a_step_keeps_its_ghl_requests_until_a_record_brings_new_ones(store: &dyn Store) {
    use formbridge::store::StepRequest;
    let id = add(store, "requests", "email:r@x.co").await;
    claim_one(store, "w1").await;
    let lookup = StepRequest {
        request: "GET /contacts/".into(),
        status: Some(200),
        failure: None,
        ms: 12,
    };
    let lost = StepRequest {
        request: "POST /notes".into(),
        status: None,
        failure: Some("timeout".into()),
        ms: 2_001,
    };
    let sent = formbridge::store::StepRecord {
        requests: vec![lookup.clone(), lost.clone()],
        ..started(0)
    };
    assert!(store.record_step(id, &"w1".into(), &sent).await.unwrap());
    assert_eq!(store.steps(id).await.unwrap()[0].requests, sent.requests);
    // A record without requests (the next attempt's `started`) keeps the last ones.
    assert!(store
        .record_step(id, &"w1".into(), &started(0))
        .await
        .unwrap());
    assert_eq!(store.steps(id).await.unwrap()[0].requests, sent.requests);
    let answered = StepRequest {
        status: Some(422),
        failure: None,
        ms: 30,
        ..lost
    };
    let again = formbridge::store::StepRecord {
        requests: vec![answered.clone()],
        ..started(0)
    };
    assert!(store.record_step(id, &"w1".into(), &again).await.unwrap());
    let steps = store.steps(id).await.unwrap();
    assert_eq!(steps[0].requests, vec![answered]);
    // The admin detail's JSON carries them as stored.
    let json = serde_json::to_value(&steps[0]).unwrap();
    assert_eq!(json["requests"][0]["request"], "POST /notes");
    assert_eq!(json["requests"][0]["status"], 422);
    assert_eq!(json["requests"][0]["ms"], 30);
}

contract_test!(a_step_is_not_recorded_once_the_lease_ran_out);
async fn a_step_is_not_recorded_once_the_lease_ran_out(store: &dyn Store) {
    let id = add(store, "a", "email:a@x.co").await;
    let taken = store
        .claim(&claim("w1", Duration::from_millis(300)))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert!(store
        .record_step(id, &"w1".into(), &started(0))
        .await
        .unwrap());
    assert!(
        !store
            .record_step(id, &"w2".into(), &started(1))
            .await
            .unwrap(),
        "only the lease's holder records steps"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !store
            .record_step(id, &"w1".into(), &started(1))
            .await
            .unwrap(),
        "a lease that ran out starts no more steps, even before anyone takes it over"
    );
    assert_eq!(store.steps(id).await.unwrap().len(), 1);
}

contract_test!(a_replay_from_scratch_runs_every_step_again_looking_for_it_first);
async fn a_replay_from_scratch_runs_every_step_again_looking_for_it_first(store: &dyn Store) {
    use formbridge::store::StepStatus;
    let id = add(store, "scratch", "email:s@x.co").await;
    claim_one(store, "w1").await;
    let done = formbridge::store::StepRecord {
        status: StepStatus::Done,
        ghl_id: Some("note-1".to_owned()),
        ..started(0)
    };
    assert!(store.record_step(id, &"w1".into(), &done).await.unwrap());
    assert!(store.finish(id, &"w1".into(), &Finish::Done).await.unwrap());
    assert!(store.replay(id, false).await.unwrap());
    assert_eq!(store.steps(id).await.unwrap()[0].status, StepStatus::Done);
    // From scratch: the step runs again as one whose answer was lost (its marker looked for
    // before anything is created), not as a new one.
    assert!(store.replay(id, true).await.unwrap());
    let steps = store.steps(id).await.unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(
        (steps[0].status, steps[0].ghl_id.as_deref()),
        (StepStatus::Started, None)
    );
}

// ---- PostgreSQL: several replicas on one database ----

/// Two replicas (two pools on one database) claiming at once: every event is handed out once,
/// and a contact's events never run at the same time nor out of arrival order.
#[tokio::test]
async fn replicas_claim_disjoint_events_one_contact_at_a_time() {
    use std::collections::{HashMap, HashSet};
    use std::sync::Mutex;
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let replicas = [backend.store.clone(), backend.replica().await];
    // 12 contacts with 4 events each, interleaved, over two sources.
    let mut order_of: HashMap<EventId, (usize, usize)> = HashMap::new();
    for round in 0..4 {
        for contact in 0..12 {
            let source = if contact % 2 == 0 {
                "dripjobs"
            } else {
                "jotform"
            };
            let key = format!("c{contact}-{round}");
            let id = add_from(
                &*replicas[0],
                source,
                &key,
                &format!("email:c{contact}@x.co"),
            )
            .await;
            order_of.insert(id, (contact, round));
        }
    }
    let order_of = Arc::new(order_of);
    // The contacts in flight, and each contact's next expected round.
    let in_flight = Arc::new(Mutex::new(HashSet::<usize>::new()));
    let next_round = Arc::new(Mutex::new(HashMap::<usize, usize>::new()));
    let mut workers = Vec::new();
    for (n, store) in replicas.iter().cycle().take(4).enumerate() {
        let (store, order_of) = (store.clone(), order_of.clone());
        let (in_flight, next_round) = (in_flight.clone(), next_round.clone());
        workers.push(tokio::spawn(async move {
            let owner = format!("replica-{n}");
            let mut mine = Vec::new();
            let mut idle = 0;
            while idle < 20 {
                let mut c = claim(&owner, Duration::from_secs(30));
                c.limit = 3;
                let taken = store.claim(&c).await.unwrap();
                if taken.is_empty() {
                    idle += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                idle = 0;
                for event in &taken {
                    let (contact, round) = order_of[&event.id];
                    assert!(
                        in_flight.lock().unwrap().insert(contact),
                        "contact {contact} claimed twice at once"
                    );
                    let mut next = next_round.lock().unwrap();
                    let expected = next.entry(contact).or_insert(0);
                    assert_eq!(*expected, round, "contact {contact} out of arrival order");
                    *expected += 1;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                for event in taken {
                    // Out of the in-flight set before the finish commits: once it has, another
                    // replica may claim the contact's next event.
                    in_flight.lock().unwrap().remove(&order_of[&event.id].0);
                    assert!(store
                        .finish(event.id, &event.lease, &Finish::Done)
                        .await
                        .unwrap());
                    mine.push(event.id);
                }
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 48, "every event claimed and finished once");
    assert_eq!(distinct.len(), 48);
}

/// Replica B takes over a lease that ran out; replica A, still working, is fenced off.
#[tokio::test]
async fn a_lease_taken_over_by_another_replica_fences_the_first() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let (a, b) = (backend.store.clone(), backend.replica().await);
    let id = add(&*a, "a", "email:a@x.co").await;
    let first = a
        .claim(&claim("a#1", Duration::from_millis(300)))
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert!(b
        .claim(&claim("b#1", Duration::from_secs(30)))
        .await
        .unwrap()
        .is_empty());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let taken = b
        .claim(&claim("b#2", Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(taken.iter().map(|c| c.id).collect::<Vec<_>>(), vec![id]);
    assert!(!a.record_step(id, &"a#1".into(), &started(0)).await.unwrap());
    assert!(!a
        .renew_lease(
            id,
            &"a#1".into(),
            OffsetDateTime::now_utc() + Duration::from_secs(30)
        )
        .await
        .unwrap());
    assert!(!a.finish(id, &"a#1".into(), &Finish::Done).await.unwrap());
    a.release(id, &"a#1".into(), OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert!(b.record_step(id, &"b#2".into(), &started(0)).await.unwrap());
    assert!(b.finish(id, &"b#2".into(), &Finish::Done).await.unwrap());
    let event = a.get_event(id).await.unwrap().unwrap();
    assert_eq!(event.summary.status, formbridge::store::EventStatus::Done);
    assert_eq!(
        a.attempts(id).await.unwrap().len(),
        1,
        "one attempt recorded: B's"
    );
}

/// The same delivery stored through two replicas at once is one event.
#[tokio::test]
async fn the_same_delivery_through_two_replicas_at_once_is_one_event() {
    use formbridge::store::{Ingested, NewEvent};
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let replicas = [backend.store.clone(), backend.replica().await];
    let delivery = NewEvent {
        source: formbridge::domain::SourceName::parse("jotform").unwrap(),
        dedupe_key: "sub-1".to_owned(),
        content_hash: None,
        content_type: Some("application/json".into()),
        headers: vec![("x-test".into(), "1".into())],
        body: bytes::Bytes::from_static(b"{\"a\":1}"),
        received_at: OffsetDateTime::now_utc(),
    };
    let inserts: Vec<_> = (0..16)
        .map(|i| {
            let (store, delivery) = (replicas[i % 2].clone(), delivery.clone());
            tokio::spawn(async move { store.insert_event(delivery).await.unwrap() })
        })
        .collect();
    let mut results = Vec::new();
    for insert in inserts {
        results.push(insert.await.unwrap());
    }
    let stored = results
        .iter()
        .filter(|r| matches!(r, Ingested::Stored(_)))
        .count();
    assert_eq!(stored, 1, "exactly one insert stores it: {results:?}");
    let id = results[0].id();
    assert!(results.iter().all(|r| r.id() == id));
    let event = replicas[1].get_event(id).await.unwrap().unwrap();
    assert_eq!(event.body.as_ref(), b"{\"a\":1}");
    assert_eq!(event.headers, vec![("x-test".to_owned(), "1".to_owned())]);
    assert_eq!(
        replicas[0]
            .list_events(&Default::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

/// An event is handed to one replica to prepare; should two prepare it all the same (a
/// replica slower than its prepare lease), the first preparation saved stands.
#[tokio::test]
async fn an_event_prepared_by_two_replicas_keeps_the_first_preparation() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let (a, b) = (backend.store.clone(), backend.replica().await);
    let id = crate::common::add_prepared(&*a, "loc", "dripjobs", "x", "email:x@x.co").await;
    assert!(a.replay(id, false).await.unwrap());
    let seen_a = a.unprepared(10).await.unwrap();
    let seen_b = b.unprepared(10).await.unwrap();
    assert_eq!(seen_a.len(), 1);
    assert!(seen_b.is_empty(), "leased to the first replica");
    let ready = |location: &str| Preparation::Ready {
        submission: serde_json::json!({}),
        plan: formbridge::domain::Plan::default(),
        contact_key: "email:x@x.co".into(),
        location_id: location.into(),
    };
    a.save_preparations(&[(id, ready("first"))]).await.unwrap();
    b.save_preparations(&[(id, ready("second"))]).await.unwrap();
    let event = b.get_event(id).await.unwrap().unwrap();
    assert_eq!(event.location_id, Some("first".into()));
    assert!(a.unprepared(10).await.unwrap().is_empty());
    assert_eq!(claimed_ids(&*b).await, vec![id], "queued once");
}

/// Retention deletes done events finished before the cut-off, a batch at a time, and nothing
/// else (dead ones stay for replay, open ones are untouched).
#[tokio::test]
async fn retention_deletes_only_old_done_events_in_bounded_batches() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let store = &*backend.store;
    let done = add_many(store, "dripjobs", "done", 5).await;
    assert_eq!(drain(store, 10).await, done);
    let dead = add(store, "dead", "email:dead@x.co").await;
    let taken = store
        .claim(&claim("w", Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    let dead_end = Finish::Dead {
        error: "400".into(),
    };
    assert!(store.finish(dead, &"w".into(), &dead_end).await.unwrap());
    let pending = add(store, "pending", "email:pending@x.co").await;
    let cutoff = OffsetDateTime::now_utc() + Duration::from_secs(1);
    assert_eq!(
        store
            .delete_finished_before(OffsetDateTime::UNIX_EPOCH, 10)
            .await
            .unwrap(),
        0,
        "none that old"
    );
    assert_eq!(store.delete_finished_before(cutoff, 2).await.unwrap(), 2);
    assert_eq!(store.delete_finished_before(cutoff, 2).await.unwrap(), 2);
    assert_eq!(store.delete_finished_before(cutoff, 2).await.unwrap(), 1);
    assert_eq!(store.delete_finished_before(cutoff, 2).await.unwrap(), 0);
    for id in &done {
        assert!(store.get_event(*id).await.unwrap().is_none());
        assert!(
            store.attempts(*id).await.unwrap().is_empty(),
            "attempts go with it"
        );
    }
    let pg = open_pg(&backend.pg.as_ref().unwrap().url).await;
    // Left: both events' deliveries and plans, and the dead one's attempt.
    for (table, rows) in [
        ("event_deliveries", 2),
        ("event_plans", 2),
        ("event_attempts", 1),
    ] {
        let left: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(pg.pool())
            .await
            .unwrap();
        assert_eq!(
            left, rows,
            "{table}: only the dead and pending events' rows are left"
        );
    }
    assert!(
        store.get_event(dead).await.unwrap().is_some(),
        "dead events stay"
    );
    assert!(
        store.get_event(pending).await.unwrap().is_some(),
        "open events stay"
    );
}

/// A PostgreSQL store that cannot be opened says what to fix, and never shows the password.
#[tokio::test]
async fn opening_postgres_names_the_problem_and_hides_the_password() {
    let Some(db) = crate::pg::database_or_skip().await else {
        return;
    };
    let server = url::Url::parse(&db.url).unwrap();
    let with = |edit: &dyn Fn(&mut url::Url)| {
        let mut url = server.clone();
        url.set_password(Some("s3cret-pw")).unwrap();
        edit(&mut url);
        settings(url.into())
    };
    let cases: [(&str, StoreSettings); 3] = [
        (
            "does not exist",
            with(&|u| u.set_path("formbridge_no_such_database")),
        ),
        (
            "authentication failed",
            with(&|u| u.set_username("formbridge_no_such_role").unwrap()),
        ),
        (
            "cannot reach PostgreSQL",
            with(&|u| u.set_port(Some(1)).unwrap()),
        ),
    ];
    for (expected, settings) in cases {
        let err = match formbridge::store::open(&settings).await {
            Ok(_) => panic!("opened {expected}"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(expected), "{expected}: {err}");
        assert!(err.contains("store.url"), "names the key: {err}");
        assert!(!err.contains("s3cret-pw"), "password shown: {err}");
    }
}

/// A delivery of `key` with content `hash`, as the ingress stores it.
fn delivery(key: &str, hash: &str) -> formbridge::store::NewEvent {
    formbridge::store::NewEvent {
        source: formbridge::domain::SourceName::parse("jotform").unwrap(),
        dedupe_key: key.to_owned(),
        content_hash: Some(hash.to_owned()),
        content_type: Some("application/json".into()),
        headers: vec![],
        body: bytes::Bytes::from(format!("{{\"content\":\"{hash}\"}}")),
        received_at: OffsetDateTime::now_utc(),
    }
}

contract_test!(an_edit_is_a_new_revision_and_a_resend_of_any_revision_a_duplicate);
async fn an_edit_is_a_new_revision_and_a_resend_of_any_revision_a_duplicate(store: &dyn Store) {
    use formbridge::store::Ingested;
    let first = store.insert_event(delivery("sub-1", "a")).await.unwrap();
    let Ingested::Stored(first) = first else {
        panic!("{first:?}")
    };
    let edit = store.insert_event(delivery("sub-1", "b")).await.unwrap();
    assert_eq!(
        edit,
        Ingested::Revision {
            id: edit.id(),
            of: first
        }
    );
    assert_eq!(
        store.insert_event(delivery("sub-1", "b")).await.unwrap(),
        Ingested::Duplicate(edit.id())
    );
    assert_eq!(
        store.insert_event(delivery("sub-1", "a")).await.unwrap(),
        Ingested::Duplicate(first)
    );
    let third = store.insert_event(delivery("sub-1", "c")).await.unwrap();
    assert!(
        matches!(third, Ingested::Revision { of, .. } if of == first),
        "{third:?}"
    );
    // Another submission's id is its own.
    assert!(matches!(
        store.insert_event(delivery("sub-2", "a")).await.unwrap(),
        Ingested::Stored(_)
    ));

    let summary = store.get_event(third.id()).await.unwrap().unwrap().summary;
    assert_eq!((summary.revision, summary.revision_of), (3, Some(first)));
    let summary = store.get_event(first).await.unwrap().unwrap().summary;
    assert_eq!((summary.revision, summary.revision_of), (1, None));
}

contract_test!(a_thread_holds_earlier_revisions_and_deliveries_sharing_a_reference);
async fn a_thread_holds_earlier_revisions_and_deliveries_sharing_a_reference(store: &dyn Store) {
    use formbridge::domain::Plan;
    let prepare = |id: EventId, references: &[&str]| {
        let plan = Plan {
            references: references.iter().map(|r| (*r).to_owned()).collect(),
            ..Plan::default()
        };
        (
            id,
            Preparation::Ready {
                submission: serde_json::json!({}),
                plan,
                contact_key: format!("c{}", id.0).as_str().into(),
                location_id: "loc".into(),
            },
        )
    };
    let lead = store
        .insert_event(delivery("lead", "a"))
        .await
        .unwrap()
        .id();
    let edit = store
        .insert_event(delivery("lead", "b"))
        .await
        .unwrap()
        .id();
    let other = store
        .insert_event(delivery("other", "a"))
        .await
        .unwrap()
        .id();
    let follow_up = store
        .insert_event(delivery("follow", "a"))
        .await
        .unwrap()
        .id();
    store
        .save_preparations(&[
            prepare(lead, &["dripjobs/deal_id:1"]),
            prepare(edit, &[]),
            prepare(other, &["dripjobs/deal_id:2"]),
            prepare(follow_up, &["dripjobs/deal_id:1"]),
        ])
        .await
        .unwrap();

    let thread = store.thread(follow_up).await.unwrap();
    let ids: Vec<(EventId, bool)> = thread.iter().map(|e| (e.id, e.same_submission)).collect();
    assert_eq!(ids, [(lead, false)], "only the delivery sharing deal 1");
    assert!(thread[0].plan.is_some());
    let thread = store.thread(edit).await.unwrap();
    let ids: Vec<(EventId, bool)> = thread.iter().map(|e| (e.id, e.same_submission)).collect();
    assert_eq!(ids, [(lead, true)], "the earlier revision");
    let thread = store.thread(lead).await.unwrap();
    let ids: Vec<(EventId, bool)> = thread.iter().map(|e| (e.id, e.same_submission)).collect();
    assert_eq!(
        ids,
        [(follow_up, false)],
        "a later delivery sharing a reference, not a later revision"
    );

    // A replay forgets the references until the event is prepared again.
    assert!(store.replay(lead, false).await.unwrap());
    assert!(store.thread(follow_up).await.unwrap().is_empty());
}

#[tokio::test]
async fn replicas_prepare_disjoint_batches_and_claims_wait_for_the_oldest_unprepared_event() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let (one, two) = (backend.store.clone(), backend.replica().await);
    let mut ids = Vec::new();
    for key in ["d1", "d2", "d3", "d4"] {
        ids.push(one.insert_event(delivery(key, "x")).await.unwrap().id());
    }
    let ready = |id: EventId| {
        (
            id,
            Preparation::Ready {
                submission: serde_json::json!({}),
                plan: formbridge::domain::Plan::default(),
                contact_key: format!("c{}", id.0).as_str().into(),
                location_id: "loc".into(),
            },
        )
    };
    let ids_of = |events: Vec<formbridge::store::Event>| -> Vec<EventId> {
        events.iter().map(|e| e.summary.id).collect()
    };

    // Each replica takes its own batch of the oldest unprepared events.
    let first = ids_of(one.unprepared(2).await.unwrap());
    let second = ids_of(two.unprepared(10).await.unwrap());
    assert_eq!(first, ids[..2]);
    assert_eq!(second, ids[2..]);
    assert!(one.unprepared(10).await.unwrap().is_empty(), "all leased");

    // The later batch is saved first: nothing newer than the oldest unprepared event is
    // claimed (it may be the same contact's earlier delivery).
    let later: Vec<_> = second.iter().map(|id| ready(*id)).collect();
    two.save_preparations(&later).await.unwrap();
    assert!(claimed_ids(&*two).await.is_empty());
    let earlier: Vec<_> = first.iter().map(|id| ready(*id)).collect();
    one.save_preparations(&earlier).await.unwrap();
    let mut claimed = claimed_ids(&*one).await;
    claimed.sort();
    assert_eq!(claimed, ids);
    assert!(one.unprepared(10).await.unwrap().is_empty());

    // A replayed event is unprepared again, and holds the newer ones back until prepared.
    for id in &ids {
        assert!(one.finish(*id, &"w".into(), &Finish::Done).await.unwrap());
    }
    assert!(one.replay(ids[0], false).await.unwrap());
    assert_eq!(ids_of(two.unprepared(10).await.unwrap()), [ids[0]]);
}

/// The prepare lease of the given events, by the database's clock (unix milliseconds).
async fn prepare_until(db: &PgDatabase, ids: &[EventId]) -> Vec<Option<i64>> {
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
    let until =
        sqlx::query_scalar("SELECT prepare_until FROM events WHERE id = ANY($1) ORDER BY id")
            .bind(&ids)
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    until
}

/// A replica renews the prepare lease of the batch it holds while it prepares (a batch may
/// outlast one short lease); a replica that goes (killed mid-preparation) holds the others
/// back for one short lease at most, not a minute.
#[tokio::test]
async fn a_prepare_lease_is_renewed_while_held_and_ends_soon_after_its_replica() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let (one, two) = (backend.replica().await, backend.replica().await);
    let mut ids = Vec::new();
    for key in ["r1", "r2"] {
        ids.push(two.insert_event(delivery(key, "x")).await.unwrap().id());
    }
    let held: Vec<EventId> = one
        .unprepared(10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.summary.id)
        .collect();
    assert_eq!(held, ids);
    let db = backend.pg.as_ref().unwrap();
    let first = prepare_until(db, &ids).await;
    let renewed = crate::common::wait_for(Duration::from_secs(5), "a renewal", || async {
        let now = prepare_until(db, &ids).await;
        (now.iter().zip(&first).all(|(n, f)| n > f)).then_some(now)
    })
    .await;
    assert!(renewed.iter().all(Option::is_some));
    assert!(two.unprepared(10).await.unwrap().is_empty(), "still held");

    drop(one);
    let gone = std::time::Instant::now();
    let taken =
        crate::common::wait_for(Duration::from_secs(10), "the batch taken over", || async {
            let batch = two.unprepared(10).await.unwrap();
            (!batch.is_empty()).then(|| batch.iter().map(|e| e.summary.id).collect::<Vec<_>>())
        })
        .await;
    assert_eq!(taken, ids);
    assert!(
        gone.elapsed() < Duration::from_secs(5),
        "taken over after {:?}",
        gone.elapsed()
    );
}

/// A batch whose save fails is handed back at once: no replica's claims wait for its lease.
#[tokio::test]
async fn a_batch_whose_save_failed_is_handed_back_at_once() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let (one, two) = (backend.store.clone(), backend.replica().await);
    let mut ids = Vec::new();
    for key in ["f1", "f2"] {
        ids.push(one.insert_event(delivery(key, "x")).await.unwrap().id());
    }
    assert_eq!(one.unprepared(10).await.unwrap().len(), 2);
    // PostgreSQL refuses a NUL character in text: the save fails as a whole.
    let failed = Preparation::Failed {
        submission: None,
        error: "bad\0byte".to_owned(),
    };
    one.save_preparations(&[(ids[0], failed)])
        .await
        .unwrap_err();
    let again: Vec<EventId> = two
        .unprepared(10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.summary.id)
        .collect();
    assert_eq!(again, ids, "handed back at once");
}

/// Two replicas saving batches whose events take turns between two flows (location, source),
/// each batch starting with a different flow, do not deadlock: every save takes the flows'
/// locks in one order.
#[tokio::test]
async fn replicas_saving_batches_over_the_same_flows_in_opposite_orders_do_not_deadlock() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let (one, two) = (backend.store.clone(), backend.replica().await);
    let ready = |id: EventId| {
        (
            id,
            Preparation::Ready {
                submission: serde_json::json!({}),
                plan: formbridge::domain::Plan::default(),
                contact_key: format!("c{}", id.0).as_str().into(),
                location_id: "loc".into(),
            },
        )
    };
    const PER_BATCH: u32 = 40;
    for round in 0..10 {
        // Batch one: jotform, dripjobs, jotform, …; batch two: dripjobs, jotform, ….
        for i in 0..2 * PER_BATCH {
            let source = if (i + i / PER_BATCH) % 2 == 0 {
                "jotform"
            } else {
                "dripjobs"
            };
            let mut event = delivery(&format!("dl-{round}-{i}"), "x");
            event.source = formbridge::domain::SourceName::parse(source).unwrap();
            one.insert_event(event).await.unwrap();
        }
        let first: Vec<_> = one
            .unprepared(PER_BATCH)
            .await
            .unwrap()
            .iter()
            .map(|e| ready(e.summary.id))
            .collect();
        let second: Vec<_> = two
            .unprepared(PER_BATCH)
            .await
            .unwrap()
            .iter()
            .map(|e| ready(e.summary.id))
            .collect();
        assert_eq!(first.len() + second.len(), 2 * PER_BATCH as usize);
        let (a, b) = tokio::join!(
            one.save_preparations(&first),
            two.save_preparations(&second)
        );
        a.unwrap();
        b.unwrap();
    }
    assert!(one.unprepared(10).await.unwrap().is_empty());
}

/// `t` is within two seconds of `expected` (PostgreSQL's leases run on its own clock).
fn near(t: Option<OffsetDateTime>, expected: OffsetDateTime) -> bool {
    t.is_some_and(|t| (t - expected).abs() < time::Duration::seconds(2))
}

contract_test!(the_queue_age_counts_only_events_due_for_dispatch);
/// `formbridge_queue_oldest_pending_seconds` and the queue-age alert read `oldest_due`: a
/// follow-up waiting for its lead, a retry in backoff and an event queued behind its
/// contact's waiting follow-up are not due; a pending event is, from its arrival, and a claimed
/// one whose lease ran out, from the lease's end. Those not due have counts of their own.
async fn the_queue_age_counts_only_events_due_for_dispatch(store: &dyn Store) {
    use formbridge::dispatch::execute::WAITING_FOR_LEAD;
    let empty = store.queue_stats().await.unwrap();
    assert_eq!(empty.oldest_due, None);
    assert_eq!((empty.waiting_for_lead, empty.retrying_backoff), (0, 0));

    // A DripJobs follow-up waiting for its lead (looked at again in 5 min), and an event
    // waiting out a retry's backoff after a GHL 503.
    let follow_up = add(store, "follow-up", "loc/ref:deal-1").await;
    let retry = add(store, "retry", "loc/email:r@x.co").await;
    let claimed = claimed_ids(store).await;
    assert_eq!(claimed, vec![follow_up, retry]);
    let later = |minutes: i64, outcome: &'static str, counts_attempt: bool| Finish::Retry {
        at: OffsetDateTime::now_utc() + time::Duration::minutes(minutes),
        error: format!("{outcome}: not yet"),
        counts_attempt,
        outcome,
    };
    assert!(store
        .finish(follow_up, &"w".into(), &later(5, WAITING_FOR_LEAD, false))
        .await
        .unwrap());
    assert!(store
        .finish(retry, &"w".into(), &later(10, "retry", true))
        .await
        .unwrap());
    // The deal's next delivery, due since it came, waits behind the follow-up.
    let behind = add(store, "behind", "loc/ref:deal-1").await;
    let stats = store.queue_stats().await.unwrap();
    assert_eq!(stats.oldest_due, None, "nothing is due: {stats:?}");
    assert_eq!(stats.waiting_for_lead, 1, "{stats:?}");
    let received = |id| async move {
        store
            .get_event(id)
            .await
            .unwrap()
            .unwrap()
            .summary
            .received_at
    };
    assert!(
        near(stats.oldest_waiting_for_lead, received(follow_up).await),
        "{stats:?}"
    );
    assert_eq!(stats.retrying_backoff, 1, "{stats:?}");
    assert!(near(stats.oldest_unfinished, received(follow_up).await));
    assert!(claimed_ids(store).await.is_empty(), "and none is claimable");

    // A delivery due since it arrived is counted from then.
    let due = add(store, "due", "loc/email:d@x.co").await;
    let stats = store.queue_stats().await.unwrap();
    assert!(near(stats.oldest_due, received(due).await), "{stats:?}");
    assert_eq!((stats.waiting_for_lead, stats.retrying_backoff), (1, 1));

    // Claimed, it is being dispatched: no longer waiting. Its lease running out, it waits again
    // for a dispatcher to take it over, counted from the lease's end.
    let lease = store
        .claim(&claim("w", Duration::from_millis(200)))
        .await
        .unwrap();
    assert_eq!(lease.iter().map(|c| c.id).collect::<Vec<_>>(), vec![due]);
    assert_eq!(store.queue_stats().await.unwrap().oldest_due, None);
    let lease_end = OffsetDateTime::now_utc() + Duration::from_millis(200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stats = store.queue_stats().await.unwrap();
    assert!(near(stats.oldest_due, lease_end), "{stats:?}");

    // Taken over and done: nothing is due again; the deal's delivery still waits behind the
    // follow-up, which still waits for its lead.
    let taken = store
        .claim(&claim("w2", Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(taken.iter().map(|c| c.id).collect::<Vec<_>>(), vec![due]);
    assert!(store
        .finish(due, &"w2".into(), &Finish::Done)
        .await
        .unwrap());
    let stats = store.queue_stats().await.unwrap();
    assert_eq!(stats.oldest_due, None, "{stats:?}");
    assert_eq!((stats.waiting_for_lead, stats.retrying_backoff), (1, 1));
    assert_eq!(
        store
            .get_event(behind)
            .await
            .unwrap()
            .unwrap()
            .summary
            .status,
        formbridge::store::EventStatus::Pending
    );
}

/// Stores, dispatches and finishes one event, then lets retention delete it (leaving its
/// tombstone); returns it and the retention cutoff used.
async fn add_and_sweep(store: &dyn Store, key: &str, contact: &str) -> (EventId, OffsetDateTime) {
    let swept = add(store, key, contact).await;
    assert_eq!(claimed_ids(store).await, vec![swept]);
    assert!(store
        .finish(swept, &"w".into(), &Finish::Done)
        .await
        .unwrap());
    let cutoff = OffsetDateTime::now_utc() + Duration::from_secs(1);
    assert_eq!(store.delete_finished_before(cutoff, 10).await.unwrap(), 1);
    (swept, cutoff)
}

contract_test!(a_delivery_of_an_event_retention_deleted_is_still_a_duplicate);
async fn a_delivery_of_an_event_retention_deleted_is_still_a_duplicate(store: &dyn Store) {
    use formbridge::store::Ingested;
    let (swept, cutoff) = add_and_sweep(store, "swept-1", "email:swept@x.co").await;
    assert!(store.get_event(swept).await.unwrap().is_none());
    // The same delivery again (a resend, or a captured one replayed): a duplicate of the swept
    // event, nothing stored.
    let again = formbridge::store::NewEvent {
        source: formbridge::domain::SourceName::parse("dripjobs").unwrap(),
        content_hash: None,
        ..delivery("swept-1", "-")
    };
    assert_eq!(
        store.insert_event(again.clone()).await.unwrap(),
        Ingested::Duplicate(swept)
    );
    assert!(claimed_ids(store).await.is_empty(), "nothing to dispatch");
    // The key is the source's own: another source's delivery with it is stored.
    let other = formbridge::store::NewEvent {
        source: formbridge::domain::SourceName::parse("powr").unwrap(),
        ..again
    };
    assert!(matches!(
        store.insert_event(other).await.unwrap(),
        Ingested::Stored(_)
    ));
    // A swept submission's resend with the content it had is a duplicate; with other content
    // (an edit made after the sweep) it is stored anew.
    let first = store.insert_event(delivery("sub-9", "a")).await.unwrap();
    let edit = store.insert_event(delivery("sub-9", "b")).await.unwrap();
    for id in [first.id(), edit.id()] {
        finish_nothing_to_do(store, id).await;
    }
    assert_eq!(store.delete_finished_before(cutoff, 10).await.unwrap(), 2);
    assert_eq!(
        store.insert_event(delivery("sub-9", "a")).await.unwrap(),
        Ingested::Duplicate(first.id())
    );
    assert_eq!(
        store.insert_event(delivery("sub-9", "b")).await.unwrap(),
        Ingested::Duplicate(edit.id())
    );
    assert!(matches!(
        store.insert_event(delivery("sub-9", "c")).await.unwrap(),
        Ingested::Stored(_)
    ));
}

/// Ends a stored delivery as done with nothing to do (as a chat event that makes no contact).
async fn finish_nothing_to_do(store: &dyn Store, id: EventId) {
    let done = formbridge::store::Preparation::NothingToDo {
        submission: serde_json::json!({}),
        references: vec![],
        location_id: None,
        reason: "test".into(),
    };
    store.save_preparations(&[(id, done)]).await.unwrap();
}

contract_test!(a_leads_opportunity_is_kept_per_location_and_reference);
/// Lead records: a lead's opportunity is found again by its location and reference only, and
/// saving it again (the card was made anew) replaces it rather than adding a second row.
async fn a_leads_opportunity_is_kept_per_location_and_reference(store: &dyn Store) {
    use formbridge::domain::opportunity::LeadOpportunity;
    use formbridge::domain::LocationId;

    let (here, there) = (LocationId::from("locHere"), LocationId::from("locThere"));
    let deal = "dripjobs/deal_id:1234567";
    assert_eq!(store.lead_opportunity(&here, deal).await.unwrap(), None);
    let card = LeadOpportunity {
        opportunity_id: "opp1".into(),
        pipeline_id: "pipe1".into(),
    };
    store
        .save_lead_opportunity(&here, deal, &card)
        .await
        .unwrap();
    assert_eq!(
        store.lead_opportunity(&here, deal).await.unwrap(),
        Some(card.clone())
    );
    assert_eq!(store.lead_opportunity(&there, deal).await.unwrap(), None);
    assert_eq!(
        store
            .lead_opportunity(&here, "dripjobs/deal_id:7654321")
            .await
            .unwrap(),
        None
    );
    let anew = LeadOpportunity {
        opportunity_id: "opp2".into(),
        pipeline_id: "pipe2".into(),
    };
    store
        .save_lead_opportunity(&here, deal, &anew)
        .await
        .unwrap();
    assert_eq!(
        store.lead_opportunity(&here, deal).await.unwrap(),
        Some(anew)
    );
}

contract_test!(deliveries_arriving_together_are_each_stored_with_their_own_body);
/// Many deliveries at once (on SQLite they reach the writer together and are stored as a
/// group): new keys are each stored once with their own body and headers, a key sent twice at
/// once is one event, an edit of a stored submission is its revision, a resend of a stored
/// one a duplicate, and a resend of an event retention deleted stays a duplicate.
async fn deliveries_arriving_together_are_each_stored_with_their_own_body(store: &dyn Store) {
    use formbridge::store::Ingested;
    let (swept, _) = add_and_sweep(store, "swept-2", "email:swept2@x.co").await;
    let earlier = store.insert_event(delivery("earlier", "a")).await.unwrap();

    let with_header = |key: &str, hash: &str| formbridge::store::NewEvent {
        headers: vec![("x-test".into(), format!("header of {key}/{hash}"))],
        ..delivery(key, hash)
    };
    let mut sent = Vec::new();
    for i in 0..150 {
        sent.push(with_header(&format!("new-{i}"), &format!("h{i}")));
    }
    // A key twice in the same burst, the same content.
    sent.push(with_header("twice", "t"));
    sent.push(with_header("twice", "t"));
    // An edit and a resend of a submission stored earlier.
    sent.push(with_header("earlier", "b"));
    sent.push(with_header("earlier", "a"));
    // A resend of the event retention deleted.
    sent.push(formbridge::store::NewEvent {
        source: formbridge::domain::SourceName::parse("dripjobs").unwrap(),
        content_hash: None,
        ..delivery("swept-2", "-")
    });
    let outcomes =
        futures_util::future::join_all(sent.iter().cloned().map(|e| store.insert_event(e))).await;
    let outcomes: Vec<Ingested> = outcomes.into_iter().map(Result::unwrap).collect();

    for (event, outcome) in sent.iter().zip(&outcomes).take(150) {
        let Ingested::Stored(id) = outcome else {
            panic!("{} was {outcome:?}", event.dedupe_key)
        };
        let stored = store.get_event(*id).await.unwrap().unwrap();
        assert_eq!(stored.body, event.body, "{}", event.dedupe_key);
        assert_eq!(stored.headers, event.headers, "{}", event.dedupe_key);
        assert_eq!(stored.summary.revision, 1);
    }
    let stored_ids: std::collections::HashSet<_> = outcomes[..150].iter().map(|o| o.id()).collect();
    assert_eq!(stored_ids.len(), 150, "every new delivery is its own event");

    let (a, b) = (outcomes[150], outcomes[151]);
    assert_eq!(a.id(), b.id(), "one key sent twice at once is one event");
    let mut kinds = [a, b].map(|o| matches!(o, Ingested::Stored(_)));
    kinds.sort_unstable();
    assert_eq!(kinds, [false, true], "{a:?} {b:?}");

    assert_eq!(
        outcomes[152],
        Ingested::Revision {
            id: outcomes[152].id(),
            of: earlier.id()
        }
    );
    let edit = store.get_event(outcomes[152].id()).await.unwrap().unwrap();
    assert_eq!(edit.body, sent[152].body);
    assert_eq!(outcomes[153], Ingested::Duplicate(earlier.id()));
    assert_eq!(outcomes[154], Ingested::Duplicate(swept));
}

contract_test!(step_records_arriving_together_are_each_written_under_their_own_lease);
/// Many step records at once (on SQLite they reach the writer together and are written as a
/// group): each is written only under the lease that holds its event, a record of a step
/// already stored keeps the id and detail it does not repeat, and two records of one step in
/// the same burst end as the later one.
async fn step_records_arriving_together_are_each_written_under_their_own_lease(store: &dyn Store) {
    use formbridge::store::{StepRecord, StepStatus};
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(add(store, &format!("burst-{i}"), &format!("email:b{i}@x.co")).await);
    }
    let mut held = claimed_ids(store).await;
    held.sort_unstable();
    assert_eq!(held, ids, "the worker `w` holds all ten");
    let request = |path: &str, status: u16| formbridge::store::StepRequest {
        request: format!("POST {path}"),
        status: Some(status),
        failure: None,
        ms: 120,
    };
    let kept = StepRecord {
        status: StepStatus::Done,
        ghl_id: Some("contact-1".to_owned()),
        detail: Some("kept".to_owned()),
        requests: vec![request("/contacts/upsert", 200)],
        ..started(2)
    };
    for &id in &ids {
        assert!(store.record_step(id, &"w".into(), &kept).await.unwrap());
    }

    // (event, lease, record, expected answer)
    let mut burst: Vec<(EventId, &str, StepRecord, bool)> = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        burst.push((id, "w", started(0), true));
        // Every other record under a lease that does not hold the event.
        let lease = if i % 2 == 0 { "w" } else { "intruder" };
        let with_request = StepRecord {
            requests: vec![request("/contacts/:contactId/notes", 201)],
            ..started(1)
        };
        burst.push((id, lease, with_request, i % 2 == 0));
        // Step 2 again, without its id and detail.
        let again = StepRecord {
            status: StepStatus::Done,
            ..started(2)
        };
        burst.push((id, "w", again, true));
    }
    // A second record of the first event's step 0 in the same burst: it ends as this one.
    let done = StepRecord {
        status: StepStatus::Done,
        ghl_id: Some("note-0".to_owned()),
        ..started(0)
    };
    burst.push((ids[0], "w", done, true));
    let leases: Vec<formbridge::store::LeaseToken> = burst
        .iter()
        .map(|(_, lease, _, _)| (*lease).into())
        .collect();
    let answers = futures_util::future::join_all(
        burst
            .iter()
            .zip(&leases)
            .map(|((id, _, record, _), lease)| store.record_step(*id, lease, record)),
    )
    .await;
    for ((id, lease, record, expected), answer) in burst.iter().zip(answers) {
        assert_eq!(
            answer.unwrap(),
            *expected,
            "event {id:?}, lease {lease}, step {}",
            record.index
        );
    }

    for (i, &id) in ids.iter().enumerate() {
        let steps = store.steps(id).await.unwrap();
        let indexes: Vec<u32> = steps.iter().map(|s| s.index).collect();
        let expected: &[u32] = if i % 2 == 0 { &[0, 1, 2] } else { &[0, 2] };
        assert_eq!(
            indexes, expected,
            "event {i}: the intruder's record was not written"
        );
        let step2 = steps.iter().find(|s| s.index == 2).unwrap();
        assert_eq!(step2.status, StepStatus::Done);
        assert_eq!(step2.ghl_id.as_deref(), Some("contact-1"), "event {i}");
        assert_eq!(step2.detail.as_deref(), Some("kept"), "event {i}");
        assert_eq!(
            step2.requests,
            [request("/contacts/upsert", 200)],
            "event {i}"
        );
        if let Some(step1) = steps.iter().find(|s| s.index == 1) {
            assert_eq!(step1.requests, [request("/contacts/:contactId/notes", 201)]);
        }
        let step0 = &steps[0];
        if i == 0 {
            assert_eq!(step0.status, StepStatus::Done);
            assert_eq!(step0.ghl_id.as_deref(), Some("note-0"));
        } else {
            assert_eq!(step0.status, StepStatus::Started, "event {i}");
            assert_eq!(step0.ghl_id, None);
        }
    }
}

/// Two replicas storing the same new deliveries at once (a sender retrying on a second replica
/// while the first still stores): each delivery is one event, stored by one of them, and
/// PostgreSQL saw no deadlock — each replica's groups insert their keys in one order.
#[tokio::test]
async fn replicas_storing_the_same_deliveries_at_once_store_each_once_without_deadlock() {
    const ROUNDS: i64 = 20;
    use formbridge::store::Ingested;
    use futures_util::future::join_all;
    let Some(db) = crate::pg::database_or_skip().await else {
        return;
    };
    let replicas = [open_pg(&db.url).await, open_pg(&db.url).await];
    let deadlocks = || async {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let count: i64 = sqlx::query_scalar(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        count
    };
    let deadlocks_before = deadlocks().await;

    // Rounds of 100: each a chance for the two replicas' groups to overlap.
    for round in 0..ROUNDS {
        let sent: Vec<_> = (0..100)
            .map(|i| delivery(&format!("both-{round}-{i}"), &format!("h{i}")))
            .collect();
        let forward = join_all(sent.iter().cloned().map(|e| replicas[0].insert_event(e)));
        let backward = join_all(
            sent.iter()
                .rev()
                .cloned()
                .map(|e| replicas[1].insert_event(e)),
        );
        let (forward, backward) = tokio::join!(forward, backward);
        for (i, (a, b)) in forward
            .into_iter()
            .zip(backward.into_iter().rev())
            .enumerate()
        {
            let (a, b) = (a.unwrap(), b.unwrap());
            assert_eq!(a.id(), b.id(), "{}: one event", sent[i].dedupe_key);
            let mut stored = [a, b].map(|o| matches!(o, Ingested::Stored(_)));
            stored.sort_unstable();
            assert_eq!(stored, [false, true], "{}: {a:?} {b:?}", sent[i].dedupe_key);
        }
    }
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(events, ROUNDS * 100, "one event per delivery");
    // A backend reports its deadlocks to the statistics by the time it exits: close the
    // replicas' connections and wait for their backends to be gone before reading the count.
    for replica in &replicas {
        replica.pool().close().await;
    }
    let gone = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let left: Vec<(i32, Option<String>, Option<String>)> = sqlx::query_as(
                "SELECT pid, state, query FROM pg_stat_activity
                 WHERE datname = current_database() AND application_name = 'formbridge'",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            if left.is_empty() {
                return;
            }
            println!("replica backends still connected: {left:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    pool.close().await;
    match gone {
        Ok(()) => assert_eq!(
            deadlocks().await - deadlocks_before,
            0,
            "PostgreSQL detected a deadlock between the replicas' inserts"
        ),
        // Seen once under a full CI run: a closed pool's backend outlived 30 s. The count
        // could then miss a deadlock not reported yet, so it is not read; the checks above
        // (each delivery stored once, by one replica) stand.
        Err(_) => println!("the replicas' backends outlived 30 s; the deadlock count is not read"),
    }
}
