//! Kill the real server process with SIGKILL right after it acknowledged deliveries, restart it
//! on the same SQLite file, and find every acknowledged delivery stored; kill it in the middle
//! of GHL requests and find the restarted server dispatching its predecessor's events at once,
//! not after their leases run out; and find a second server on a file in use refused.
#![allow(clippy::unwrap_used)]

use std::process::Child;
use std::time::{Duration, Instant};

use crate::common::{
    assert_none_lost, config_dir, dispatching_env, post_until_gone, start_process, stored_deals,
    wait_for, wait_for_acks, Acked, SECRET,
};
use ghl_sandbox::FaultSpec;

fn start_server(db: &str) -> (Child, String) {
    crate::common::start_process(
        &config_dir(),
        &[
            ("FORMBRIDGE__STORE__URL", db),
            ("FORMBRIDGE__DISPATCH__ENABLED", "false"),
            ("FORMBRIDGE__SOURCES__DRIPJOBS__SECRET", SECRET),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_delivery_survives_sigkill() {
    let _heavy = crate::common::HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("crash.db").display());
    let (mut child, base) = start_server(&db);
    let acked = Acked::default();
    // Eight senders post distinct deliveries as fast as they can; once 300 are acknowledged,
    // the server is killed while the others are still in flight.
    let senders = post_until_gone(&base, 8, &acked);
    wait_for_acks(&acked, 300).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for s in senders {
        s.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 300);

    // Restart on the same file: it must come up ready.
    let (mut restarted, base) = start_server(&db);
    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);

    // Every acknowledged deal is in the store (read once the server is gone: one process per
    // SQLite file).
    restarted.kill().unwrap();
    restarted.wait().unwrap();
    assert_none_lost(&acked, &stored_deals(&db).await);
}

const TOKEN: &str = "pit-lease-token";
const LOCATION: &str = "locLease000000000001";
const ADMIN: &str = "lease-admin-token";
/// The dispatch lease of this test: far longer than a restart may take to dispatch again.
const LEASE: Duration = Duration::from_secs(60);

/// The status of event `id`, through the admin API.
async fn status(client: &reqwest::Client, base: &str, id: i64) -> String {
    let event: serde_json::Value = client
        .get(format!("{base}/admin/events/{id}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    event["status"].as_str().unwrap().to_owned()
}

/// Waits until every event of `ids` has `want` as its status.
async fn wait_status(client: &reqwest::Client, base: &str, ids: &[i64], want: &str) {
    wait_for(LEASE, &format!("every event {want}"), || async {
        for id in ids {
            if status(client, base, *id).await != want {
                return None;
            }
        }
        Some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_dispatches_its_predecessors_leased_events_at_once_and_a_second_server_is_refused(
) {
    let _heavy = crate::common::HEAVY.lock().await;
    let mut config = ghl_sandbox::SandboxConfig::single(TOKEN, LOCATION);
    config.window = Duration::from_secs(1);
    let ghl = ghl_sandbox::start(config).await.unwrap();
    // GHL holds every request: the events stay `processing` under their leases.
    ghl.sandbox.set_faults(FaultSpec {
        latency_ms: Some(120_000),
        ..FaultSpec::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lease.db");
    let url = format!("sqlite://{}", db.display());
    let lease = format!("{}s", LEASE.as_secs());
    let mut env = dispatching_env(&url, ghl.base_url.as_str(), TOKEN, LOCATION);
    for (key, value) in [
        ("FORMBRIDGE__ADMIN__TOKEN", ADMIN),
        ("FORMBRIDGE__DISPATCH__LEASE", lease.as_str()),
        ("FORMBRIDGE__GHL__REQUEST_TIMEOUT", "25s"),
    ] {
        env.retain(|(k, _)| k != key);
        env.push((key.to_owned(), value.to_owned()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (mut first, base) = start_process(&config_dir(), &env);
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for n in 0..3 {
        let resp = client
            .post(format!("{base}/hooks/dripjobs?token={SECRET}"))
            .json(&serde_json::json!({
                "deal_id": format!("lease-{n}"),
                "customer_email": format!("lease{n}@example.com"),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.json().await.unwrap();
        ids.push(body["event_id"].as_i64().unwrap());
    }
    wait_status(&client, &base, &ids, "processing").await;

    // A second server on the file in use is refused, naming the file and the key; the events
    // commands still read it.
    let formbridge = |args: &[&str]| {
        std::process::Command::new(crate::common::formbridge_bin())
            .args(args)
            .env("FORMBRIDGE_CONFIG_DIR", config_dir())
            .env("FORMBRIDGE_ENV", "test")
            .env("FORMBRIDGE__SERVER__ADDR", "127.0.0.1:0")
            .env("FORMBRIDGE__STORE__URL", &url)
            .env("FORMBRIDGE__SOURCES__DRIPJOBS__SECRET", SECRET)
            .output()
            .unwrap()
    };
    let second = formbridge(&["serve"]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success(),
        "a second server started: {stderr}"
    );
    assert!(stderr.contains("lease.db.lock"), "{stderr}");
    assert!(stderr.contains("store.url"), "{stderr}");
    let list = formbridge(&["events", "list", "--json"]);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert_eq!(
        status(&client, &base, ids[0]).await,
        "processing",
        "events list released nothing"
    );

    // Killed in the middle of the requests, restarted with GHL answering again: the leases
    // (60 s) are given back at start and the events are dispatched well within them.
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    ghl.sandbox.set_faults(FaultSpec {
        latency_ms: Some(0),
        ..FaultSpec::default()
    });
    let restarted_at = Instant::now();
    let (mut restarted, base) = start_process(&config_dir(), &env);
    wait_status(&client, &base, &ids, "done").await;
    let took = restarted_at.elapsed();
    crate::common::note(&format!(
        "lease release: {} events leased for {}s by a killed server dispatched {:.1}s after the restart",
        ids.len(),
        LEASE.as_secs(),
        took.as_secs_f64()
    ));
    assert!(
        took < LEASE / 4,
        "the restart waited for its predecessor's leases: {took:?}"
    );
    let contacts = ghl.state().contacts.len();
    assert_eq!(contacts, ids.len(), "one contact per delivery");
    restarted.kill().unwrap();
    restarted.wait().unwrap();
}
