//! Kill the real server process with SIGKILL right after it acknowledged deliveries, restart it
//! on the same SQLite file, and find every acknowledged delivery stored.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{config_dir, SECRET};
use formbridge::settings::StoreSettings;
use formbridge::store::{EventFilter, EventQueries, SqliteStore};

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
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("crash.db").display());
    let (mut child, base) = start_server(&db);
    let client = reqwest::Client::new();
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();

    // Eight senders post distinct deliveries as fast as they can; once 300 are acknowledged,
    // the server is killed while the others are still in flight.
    let mut senders = Vec::new();
    for sender in 0..8 {
        let (client, base, acked) = (client.clone(), base.clone(), acked.clone());
        senders.push(tokio::spawn(async move {
            for n in 0.. {
                let deal = format!("deal-{sender}-{n}");
                let body = serde_json::json!({"deal_id": deal, "customer_email": format!("{deal}@example.com")});
                let resp = client
                    .post(format!("{base}/hooks/dripjobs?token={SECRET}"))
                    .json(&body)
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status() == 200 => {
                        acked.lock().unwrap().insert(deal);
                    }
                    _ => break, // the server is gone
                }
            }
        }));
    }
    crate::common::wait_for(Duration::from_secs(60), "300 acknowledgements", || {
        let n = acked.lock().unwrap().len();
        async move { (n >= 300).then_some(()) }
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for s in senders {
        s.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 300);

    // Restart on the same file: it must come up ready.
    let (mut restarted, base) = start_server(&db);
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    // Every acknowledged deal is in the store.
    let store = SqliteStore::open(&StoreSettings::with_url(db.clone()))
        .await
        .unwrap();
    let mut stored = BTreeSet::new();
    let mut filter = EventFilter {
        limit: Some(500),
        ..Default::default()
    };
    loop {
        let page = store.list_events(&filter).await.unwrap();
        let Some(last) = page.last() else { break };
        filter.before_id = Some(last.id.0);
        for summary in &page {
            let event = store.get_event(summary.id).await.unwrap().unwrap();
            let body: serde_json::Value = serde_json::from_slice(&event.body).unwrap();
            stored.insert(body["deal_id"].as_str().unwrap().to_owned());
        }
    }
    let missing: Vec<_> = acked.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged deliveries lost: {missing:?}",
        missing.len()
    );
    restarted.kill().unwrap();
    restarted.wait().unwrap();
}
