//! Kill the real server process with SIGKILL right after it acknowledged deliveries, restart it
//! on the same SQLite file, and find every acknowledged delivery stored.
#![allow(clippy::unwrap_used)]

use std::process::Child;

use crate::common::{
    assert_none_lost, config_dir, post_until_gone, stored_deals, wait_for_acks, Acked, SECRET,
};

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

    // Every acknowledged deal is in the store.
    assert_none_lost(&acked, &stored_deals(&db).await);
    restarted.kill().unwrap();
    restarted.wait().unwrap();
}
