//! SIGKILL the real server at random points while it ingests and dispatches a few hundred
//! events to the GHL sandbox, restart it each time on the same SQLite file, and check that
//! every acknowledged delivery reached GHL exactly once: one contact, one task, one note.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{config_dir_with, dispatching_env, wait_for, DRIPJOBS_TASK_MAPPING, SECRET};
use crate::fleet::ServeCommand;
use ghl_sandbox::{FaultSpec, SandboxConfig, SandboxHandle};
use rand::{Rng, SeedableRng};

const TOKEN: &str = "pit-crash-token";
const LOCATION: &str = "locCrash000000000001";
const LEADS: usize = 300;

fn lead(i: usize) -> serde_json::Value {
    serde_json::json!({
        "deal_id": format!("crash-{i}"),
        "customer_name": format!("Crash{i} Lead"),
        "customer_email": format!("crash{i}@example.com"),
        "customer_phone": format!("+1415555{i:04}"),
    })
}

/// Posts leads `ids` with 8 concurrent senders until done or the server dies; returns the
/// ones acknowledged with 200.
async fn send(base: String, ids: Vec<usize>, acked: Arc<Mutex<BTreeSet<usize>>>) {
    let client = reqwest::Client::new();
    let queue = Arc::new(Mutex::new(ids));
    let mut senders = Vec::new();
    for _ in 0..8 {
        let (client, base, queue, acked) =
            (client.clone(), base.clone(), queue.clone(), acked.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let Some(i) = queue.lock().unwrap().pop() else {
                    break;
                };
                let resp = client
                    .post(format!("{base}/hooks/dripjobs?token={SECRET}"))
                    .json(&lead(i))
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status() == 200 => {
                        acked.lock().unwrap().insert(i);
                    }
                    _ => break,
                }
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
}

fn kill(mut child: Child) {
    crate::fleet::kill(&mut child);
}

fn notes(ghl: &SandboxHandle) -> usize {
    ghl.state().notes.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_dispatch_loses_and_duplicates_nothing() {
    let _heavy = crate::common::HEAVY.lock().await;
    let seed: u64 = rand::rng().random();
    println!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let mut config = SandboxConfig::single(TOKEN, LOCATION);
    config.window = Duration::from_secs(1);
    let ghl = ghl_sandbox::start(config).await.unwrap();
    // Some answers are lost after GHL applied the write, as on a flaky network.
    ghl.sandbox.set_faults(FaultSpec {
        drop_after_next: Some(20),
        match_path: Some("/notes".into()),
        ..Default::default()
    });

    let dir = tempfile::tempdir().unwrap();
    let server = ServeCommand {
        config: config_dir_with(dir.path(), DRIPJOBS_TASK_MAPPING),
        env: dispatching_env(
            &format!("sqlite://{}", dir.path().join("crash.db").display()),
            ghl.base_url.as_str(),
            TOKEN,
            LOCATION,
        ),
    };
    let acked: Arc<Mutex<BTreeSet<usize>>> = Arc::default();

    // Round 1: killed while deliveries are still arriving.
    let (child, base) = server.start();
    let sending = tokio::spawn(send(base, (0..LEADS / 2).collect(), acked.clone()));
    let cut = rng.random_range(20..120);
    wait_for(Duration::from_secs(30), "first acknowledgements", || {
        let n = acked.lock().unwrap().len();
        async move { (n >= cut).then_some(()) }
    })
    .await;
    kill(child);
    sending.await.unwrap();

    // Round 2: the rest arrive (unacknowledged ones are sent again, as a sender would), and the
    // server is killed in the middle of dispatching.
    let (child, base) = server.start();
    let missing: Vec<usize> = (0..LEADS)
        .filter(|i| !acked.lock().unwrap().contains(i))
        .collect();
    send(base, missing, acked.clone()).await;
    let cut = rng.random_range(30..200);
    wait_for(Duration::from_secs(60), "some notes in GHL", || async {
        (notes(&ghl) >= cut).then_some(())
    })
    .await;
    kill(child);

    // Round 3: killed again a little later.
    let (child, _) = server.start();
    let before = notes(&ghl);
    let cut = before + rng.random_range(5..40);
    wait_for(Duration::from_secs(60), "more notes in GHL", || async {
        (notes(&ghl) >= cut.min(LEADS)).then_some(())
    })
    .await;
    kill(child);

    // Final run: everything acknowledged ends in GHL exactly once.
    let (child, _) = server.start();
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), LEADS, "every lead was acknowledged in the end");
    wait_for(Duration::from_secs(120), "every lead in GHL", || async {
        (notes(&ghl) >= LEADS).then_some(())
    })
    .await;
    // Let any straggler finish, then compare.
    wait_for(Duration::from_secs(30), "tasks for every lead", || async {
        (ghl.state().tasks.len() >= LEADS).then_some(())
    })
    .await;
    kill(child);

    let state = ghl.state();
    assert!(
        state.requests.iter().any(|r| r.outcome == "dropped_after"),
        "lost answers were exercised"
    );
    assert_eq!(state.contacts.len(), LEADS, "one contact per lead");
    assert_eq!(state.tasks.len(), LEADS, "one task per lead");
    assert_eq!(state.notes.len(), LEADS, "one note per lead");
    for i in acked {
        let email = format!("crash{i}@example.com");
        let contact = state
            .contact_by_email(&email)
            .unwrap_or_else(|| panic!("no contact for lead {i}"));
        let id = contact["id"].as_str().unwrap();
        let n = state.notes.iter().filter(|n| n["contactId"] == id).count();
        let t = state.tasks.iter().filter(|t| t["contactId"] == id).count();
        assert_eq!((n, t), (1, 1), "lead {i}: {n} notes, {t} tasks");
    }
}
