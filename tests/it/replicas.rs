//! Three `formbridge serve` processes on one PostgreSQL database and one GHL sandbox, one of
//! them SIGKILLed and restarted mid-run: every acknowledged delivery reaches GHL exactly once,
//! each contact's deliveries in the order they were acknowledged, with no 429, and together
//! the replicas spend at least 95 % of the location's rate budget while the backlog lasts —
//! at least 90 % when, besides, a replica dies holding a batch of new deliveries it was
//! preparing (a prepare lease nobody saves).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{
    config_dir_with, dispatching_env, start_process, wait_for, DRIPJOBS_TASK_MAPPING, SECRET,
};
use crate::fleet::kill;
use crate::pg::PgDatabase;
use ghl_sandbox::SandboxConfig;

const TOKEN: &str = "pit-replicas-token";
const LOCATION: &str = "locReplicas000000001";
/// Contacts, and deliveries per contact (sent one after another, each once acknowledged).
const CONTACTS: usize = 1000;
const PER_CONTACT: usize = 3;
const LEADS: usize = CONTACTS * PER_CONTACT;
/// The sandbox's (and formbridge's) rate budget: BURST requests per WINDOW.
/// (GHL's is 100 per 10 s; a shorter window keeps the test short. What a slot loses per use —
/// the request's own latency — weighs more in a short window, so the window is 2 s, not 1 s;
/// 200 requests/s leave the three processes, PostgreSQL and the sandbox room on two cores.)
const BURST: u32 = 400;
const WINDOW: Duration = Duration::from_secs(2);

fn lead(contact: usize, seq: usize) -> serde_json::Value {
    serde_json::json!({
        "deal_id": deal(contact, seq),
        "customer_name": format!("Rep{contact} Lead"),
        "customer_email": format!("rep{contact}@example.com"),
        "customer_phone": format!("+1415556{contact:04}"),
    })
}

fn deal(contact: usize, seq: usize) -> String {
    format!("rep-{contact}-{seq}")
}

/// The replicas' base URLs; a killed one's slot is empty until it is restarted.
type Replicas = crate::fleet::Live;

/// Sends every contact's deliveries in order, each to the next live replica, until all are
/// acknowledged; a delivery a replica did not acknowledge (it was killed) goes to another.
async fn send_all(replicas: Replicas, acked: Arc<Mutex<Vec<String>>>) {
    let client = reqwest::Client::new();
    let contacts = Arc::new(Mutex::new((0..CONTACTS).collect::<Vec<_>>()));
    let mut senders = Vec::new();
    for sender in 0..24 {
        let (client, replicas, contacts, acked) = (
            client.clone(),
            replicas.clone(),
            contacts.clone(),
            acked.clone(),
        );
        senders.push(tokio::spawn(async move {
            let mut turn = sender;
            loop {
                let next = contacts.lock().unwrap().pop();
                let Some(contact) = next else { break };
                for seq in 0..PER_CONTACT {
                    loop {
                        turn += 1;
                        let base = {
                            let live = replicas.lock().unwrap();
                            live[turn % live.len()].clone()
                        };
                        let Some(base) = base else { continue };
                        let sent = client
                            .post(format!("{base}/hooks/dripjobs?token={SECRET}"))
                            .json(&lead(contact, seq))
                            .send()
                            .await;
                        if sent.is_ok_and(|r| r.status() == 200) {
                            acked.lock().unwrap().push(deal(contact, seq));
                            break;
                        }
                    }
                }
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
}

fn millis(iso: &str) -> i128 {
    let t =
        time::OffsetDateTime::parse(iso, &time::format_description::well_known::Rfc3339).unwrap();
    t.unix_timestamp_nanos() / 1_000_000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_on_postgres_deliver_everything_once_in_order_within_one_budget() {
    let _heavy = crate::common::HEAVY.lock().await;
    let Some(db) = crate::pg::database_or_skip().await else {
        return;
    };
    let share = three_replicas(&db, Disturbance::KillAtAThird).await;
    assert!(share >= 0.95, "budget share {:.1} % < 95 %", share * 100.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_mid_preparation_holds_the_others_back_for_one_short_lease_at_most() {
    let _heavy = crate::common::HEAVY.lock().await;
    let Some(db) = crate::pg::database_or_skip().await else {
        return;
    };
    let share = three_replicas(&db, Disturbance::DieWhilePreparing).await;
    assert!(share >= 0.90, "budget share {:.1} % < 90 %", share * 100.0);
}

/// What goes wrong during a three-replica run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Disturbance {
    /// Replica 1 is SIGKILLed once a third of the notes are in GHL, then restarted.
    KillAtAThird,
    /// As soon as deliveries arrive, a fourth store takes a prepare lease on the oldest
    /// unprepared ones and goes without saving it (what a replica killed mid-preparation
    /// leaves); and replica 1 is SIGKILLed while deliveries still arrive, then restarted.
    DieWhilePreparing,
}

/// Takes a prepare lease on the oldest unprepared deliveries, as soon as there are any, through
/// a store of its own that then goes (its lease is no longer renewed, as when its replica is
/// killed); returns the events it held.
async fn abandon_a_prepare_lease(db: &PgDatabase) -> Vec<formbridge::domain::EventId> {
    let settings = formbridge::settings::StoreSettings::with_url(db.url.clone());
    let store = formbridge::store::PgStore::open(&settings).await.unwrap();
    let held = wait_for(Duration::from_secs(60), "a batch to prepare", || async {
        let batch = formbridge::store::Queue::unprepared(&store, 8)
            .await
            .unwrap();
        (!batch.is_empty()).then(|| batch.iter().map(|e| e.summary.id).collect::<Vec<_>>())
    })
    .await;
    drop(store);
    held
}

/// Runs three replicas over LEADS deliveries with `disturbance`, checks every delivery reached
/// GHL once, in order per contact, with no 429, and returns the share of the rate budget spent
/// while the backlog lasted.
async fn three_replicas(db: &PgDatabase, disturbance: Disturbance) -> f64 {
    let mut config = SandboxConfig::single(TOKEN, LOCATION);
    config.burst = BURST;
    config.window = WINDOW;
    let ghl = ghl_sandbox::start(config).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = config_dir_with(dir.path(), DRIPJOBS_TASK_MAPPING);
    let mut env = dispatching_env(&db.url, ghl.base_url.as_str(), TOKEN, LOCATION);
    env.push((
        "FORMBRIDGE__GHL__RATE_LIMIT__BURST".to_owned(),
        BURST.to_string(),
    ));
    env.push((
        "FORMBRIDGE__GHL__RATE_LIMIT__WINDOW".to_owned(),
        format!("{}ms", WINDOW.as_millis()),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut children = Vec::new();
    let mut bases = Vec::new();
    for _ in 0..3 {
        let (child, base) = start_process(&config, &env);
        children.push(child);
        bases.push(Some(base));
    }
    let replicas: Replicas = Arc::new(Mutex::new(bases));
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let sending = tokio::spawn({
        let (replicas, acked) = (replicas.clone(), acked.clone());
        async move {
            send_all(replicas, acked).await;
            // From here on every delivery is stored: the backlog is whatever is not yet in GHL.
            time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000
        }
    });

    let restart_replica_1 = |children: &mut Vec<Child>| {
        replicas.lock().unwrap()[1] = None;
        kill(&mut children[1]);
        let (child, base) = start_process(&config, &env);
        children[1] = child;
        replicas.lock().unwrap()[1] = Some(base);
    };
    if disturbance == Disturbance::DieWhilePreparing {
        let abandoned = abandon_a_prepare_lease(db).await;
        let abandoned_at = std::time::Instant::now();
        // Another replica prepares the abandoned batch once its lease runs out.
        let url = db.url.clone();
        let taken_over = tokio::spawn(async move {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            let ids: Vec<i64> = abandoned.iter().map(|id| id.0).collect();
            wait_for(
                Duration::from_secs(30),
                "the abandoned batch prepared",
                || async {
                    let left: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM events WHERE id = ANY($1) AND NOT prepared",
                    )
                    .bind(&ids)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                    (left == 0).then_some(())
                },
            )
            .await;
            pool.close().await;
            (ids, abandoned_at.elapsed())
        });
        // While deliveries still arrive: SIGKILL one replica (it may be preparing, or hold
        // claims), and restart it.
        wait_for(
            Duration::from_secs(120),
            "a sixth of the deliveries stored",
            || async { (acked.lock().unwrap().len() >= LEADS / 6).then_some(()) },
        )
        .await;
        assert!(
            !sending.is_finished(),
            "every delivery was stored before the kill"
        );
        restart_replica_1(&mut children);
        let (ids, after) = taken_over.await.unwrap();
        println!(
            "abandoned prepare lease on events {ids:?}: prepared by another replica {} ms later",
            after.as_millis()
        );
    } else {
        // Mid-run, once a third of the notes are in GHL: SIGKILL one replica, then restart it.
        wait_for(Duration::from_secs(120), "a third of the notes", || async {
            (ghl.sandbox.note_count() >= LEADS / 3).then_some(())
        })
        .await;
        restart_replica_1(&mut children);
    }

    let all_stored_at = sending.await.unwrap();
    // When the last delivery is prepared (for the printout: claims never pass the oldest
    // unprepared event).
    no_event_left(db, "prepared", "NOT prepared", Duration::from_secs(120)).await;
    let all_prepared_at = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    wait_for(Duration::from_secs(180), "every note in GHL", || async {
        (ghl.sandbox.note_count() >= LEADS).then_some(())
    })
    .await;
    // Every event done in the store: nothing more will be sent.
    no_event_left(db, "done", "status <> 'done'", Duration::from_secs(60)).await;
    for child in &mut children {
        kill(child);
    }

    let state = ghl.state();
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), LEADS, "every delivery acknowledged once");
    assert_eq!(state.contacts.len(), CONTACTS, "one contact per person");
    assert_eq!(state.tasks.len(), LEADS, "one task per delivery");
    assert_eq!(state.notes.len(), LEADS, "one note per delivery");
    let rate_limited = state.requests.iter().filter(|r| r.status == 429).count();
    assert_eq!(
        rate_limited, 0,
        "no request was refused for the rate budget"
    );

    // Each delivery's note, and each contact's notes in the order they were acknowledged.
    let mut notes_of: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let deal_in = regex::Regex::new(r"rep-(\d+)-(\d+)").unwrap();
    for request in &state.requests {
        if request.method != "POST" || !request.path.ends_with("/notes") || request.status >= 300 {
            continue;
        }
        let body = request.body.as_ref().unwrap()["body"]
            .as_str()
            .unwrap()
            .to_owned();
        let found = deal_in
            .captures(&body)
            .unwrap_or_else(|| panic!("a note without its deal id: {body}"));
        let (contact, seq): (usize, usize) = (found[1].parse().unwrap(), found[2].parse().unwrap());
        assert!(
            seen.insert((contact, seq)),
            "a second note for {}",
            deal(contact, seq)
        );
        notes_of
            .entry(format!("rep{contact}"))
            .or_default()
            .push(seq);
    }
    for (contact, seqs) in &notes_of {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{contact}'s deliveries reached GHL out of order: {seqs:?}"
        );
    }

    // The budget, while the backlog lasted: from the moment every delivery was stored (all
    // were waiting or under way) — or from the first request, when dispatch had not begun by
    // then — to the last request, against BURST per WINDOW. Before that the backlog is still
    // forming while the same two cores take the deliveries in. (With deliveries stored in
    // groups, all 3,000 are usually stored before the first request; the share then judges
    // how dispatch spends the budget, not how soon it starts, which other tests time.)
    let times: Vec<i128> = state.requests.iter().map(|r| millis(&r.at)).collect();
    let last = *times.iter().max().unwrap();
    let first = *times.iter().min().unwrap();
    let from = all_stored_at.max(first);
    let during: Vec<i128> = times.iter().copied().filter(|t| *t >= from).collect();
    let span_ms = (last - from).max(1) as f64;
    let capacity = f64::from(BURST) * span_ms / WINDOW.as_millis() as f64;
    let share = during.len() as f64 / capacity;
    let mut per_window = vec![0usize; (span_ms as usize) / WINDOW.as_millis() as usize + 1];
    for t in &during {
        per_window[((t - from) / WINDOW.as_millis() as i128) as usize] += 1;
    }
    println!(
        "{} of {} requests after every delivery was stored (the first request {} ms after \
         the last was stored), in {:.1} s: {:.1} % of {BURST} per {WINDOW:?}; per window: \
         {per_window:?}; every event prepared {} ms after the last was stored",
        during.len(),
        times.len(),
        first - all_stored_at,
        span_ms / 1000.0,
        share * 100.0,
        all_prepared_at - all_stored_at
    );
    share
}

/// `n` replicas' stores on one PostgreSQL database.
/// Waits until no event of the database matches `condition` (every event `what`).
async fn no_event_left(db: &PgDatabase, what: &str, condition: &str, timeout: Duration) {
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let count = format!("SELECT COUNT(*) FROM events WHERE {condition}");
    wait_for(timeout, &format!("every event {what}"), || async {
        let left: i64 = sqlx::query_scalar(&count).fetch_one(&pool).await.unwrap();
        (left == 0).then_some(())
    })
    .await;
    pool.close().await;
}

async fn replica_stores(db: &PgDatabase, n: usize) -> Vec<Arc<dyn formbridge::store::Store>> {
    let mut stores = Vec::new();
    for _ in 0..n {
        let settings = formbridge::settings::StoreSettings::with_url(db.url.clone());
        stores.push(formbridge::store::open(&settings).await.unwrap());
    }
    stores
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_refresh_an_expiring_oauth_token_once_and_all_use_the_rotated_pair() {
    use crate::ghl_oauth::{client, sandbox_with, tokens, LOC};
    use formbridge::ghl::oauth::TokenStore;
    use formbridge::ghl_access::StoreTokens;
    use secrecy::ExposeSecret;

    let Some(db) = crate::pg::database_or_skip().await else {
        return;
    };
    let ghl = sandbox_with("at-old", "rt-1").await;
    // A slow token endpoint: the replicas' refreshes would overlap without a shared lock.
    ghl.sandbox.set_faults(ghl_sandbox::FaultSpec {
        latency_ms: Some(300),
        ..Default::default()
    });
    let stores = replica_stores(&db, 3).await;
    // Expires in 5 s with a 60 s margin: every replica sees it as due for a refresh.
    StoreTokens(stores[0].clone())
        .save(LOC, &tokens("at-old", "rt-1", time::Duration::seconds(5)))
        .await
        .unwrap();
    let mut calls = Vec::new();
    for (r, store) in stores.iter().enumerate() {
        // Each replica has its own client, credentials and in-process single flight.
        let client = client(
            &ghl,
            Arc::new(StoreTokens(store.clone())),
            Duration::from_secs(60),
        );
        for i in 0..5 {
            let c = client.clone();
            calls.push(tokio::spawn(async move {
                c.list_tasks(LOC, &format!("noContactReplica{r}n{i}")).await
            }));
        }
    }
    for call in calls {
        // The contact does not exist: a 400 proves the request was authorised.
        let err = call.await.unwrap().unwrap_err();
        assert!(
            matches!(err, formbridge::ghl::GhlError::Rejected { status: 400, .. }),
            "{err:?}"
        );
    }
    let state = ghl.state();
    assert_eq!(state.refresh_calls, 1, "one refresh for three replicas");
    let stored = stores[2]
        .load_oauth_tokens(&LOC.into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.refresh_token.expose_secret(),
        state.refresh_tokens[0]
    );
}

#[tokio::test]
async fn the_shared_budget_holds_slots_across_replicas_frees_them_a_window_after_completion_and_pauses_all(
) {
    use formbridge::store::SlotGrant;

    let Some(db) = crate::pg::database_or_skip().await else {
        return;
    };
    let stores = replica_stores(&db, 2).await;
    let budgets: Vec<_> = stores.iter().map(|s| s.shared_budget().unwrap()).collect();
    let location = "locBudget".into();
    let hold = Duration::from_secs(30);
    let mut tickets = Vec::new();
    for i in 0..4 {
        match budgets[i % 2].take(&location, 4, hold).await.unwrap() {
            SlotGrant::Granted(ticket) => tickets.push(ticket),
            SlotGrant::WaitFor(wait) => panic!("slot {i} refused for {wait:?}"),
        }
    }
    // Four slots are held, whichever replica asks.
    for budget in &budgets {
        match budget.take(&location, 4, hold).await.unwrap() {
            SlotGrant::WaitFor(wait) => assert!(wait > Duration::from_secs(25), "{wait:?}"),
            SlotGrant::Granted(_) => panic!("a fifth slot in the window"),
        }
    }
    // A completion frees its slot one window later; a stale ticket frees nothing.
    let mut stale = tickets[1].clone();
    stale.ticket += 1;
    budgets[0]
        .complete(&location, &stale, Duration::ZERO)
        .await
        .unwrap();
    assert!(matches!(
        budgets[1].take(&location, 4, hold).await.unwrap(),
        SlotGrant::WaitFor(_)
    ));
    budgets[1]
        .complete(&location, &tickets[0], Duration::from_millis(300))
        .await
        .unwrap();
    match budgets[0].take(&location, 4, hold).await.unwrap() {
        SlotGrant::WaitFor(wait) => assert!(wait <= Duration::from_millis(300), "{wait:?}"),
        SlotGrant::Granted(_) => panic!("freed before its window ended"),
    }
    let granted = wait_for(Duration::from_secs(5), "the freed slot", || async {
        match budgets[0].take(&location, 4, hold).await.unwrap() {
            SlotGrant::Granted(ticket) => Some(ticket),
            SlotGrant::WaitFor(_) => None,
        }
    })
    .await;
    assert_eq!(granted.slot, tickets[0].slot);

    // A pause (a 429) seen by one replica holds the other too, even with slots free.
    let other = "locPaused".into();
    budgets[0]
        .pause(&other, Duration::from_secs(20))
        .await
        .unwrap();
    match budgets[1].take(&other, 4, hold).await.unwrap() {
        SlotGrant::WaitFor(wait) => assert!(wait > Duration::from_secs(15), "{wait:?}"),
        SlotGrant::Granted(_) => panic!("a paused location gave a slot"),
    }
}
