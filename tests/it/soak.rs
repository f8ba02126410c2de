//! The soak run's short pass: a minute of mixed deliveries at 50/s to `formbridge serve` (its own
//! process) dispatching to the GHL sandbox at GHL's real budget; every acknowledged delivery
//! must reach GHL exactly once with no 429. Memory and descriptors are judged over the hour of
//! `cargo bench --bench soak` (a minute is mostly warm-up); here they are printed only.

use std::time::Duration;

use crate::common::{self, HEAVY};
use crate::soak_report::{figures, verdict};
use crate::soak_run::{run, SoakOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_of_mixed_deliveries_reaches_ghl_once_each_without_429s() {
    let _heavy = HEAVY.lock().await;
    let opts = SoakOptions {
        rate: 50.0,
        duration: Duration::from_secs(60),
        sample_every: Duration::from_secs(2),
        sources: 25,
        ghl_latency: Duration::from_millis(100),
        drain_limit: Duration::from_secs(120),
        store_dir: None,
    };
    let outcome = run(&opts).await;
    for line in figures(&outcome) {
        common::note(&line);
    }
    let verdict = verdict(&outcome);
    for (ok, line) in verdict.resources.iter().chain(&verdict.deliveries) {
        common::note(&format!("{} {line}", if *ok { "PASS" } else { "FAIL" }));
    }
    assert!(outcome.acked > 2_500, "{} acknowledged", outcome.acked);
    let failures = verdict.delivery_failures();
    assert!(failures.is_empty(), "{failures:#?}");
}
