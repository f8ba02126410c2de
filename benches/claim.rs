//! Claim benchmark: what one claim costs the store when another location has a backlog it
//! cannot dispatch now.
//!
//! A claim runs on the store's single writer, so its cost is paid by every write behind it
//! (deliveries, step results). One location's trouble must not make claims for the others
//! slower. On a temp SQLite file: `--backlog N` events (default 20,000) of location A are
//! stored, then 2,000 of location B, and B's events are claimed (256 at a time, at most 8 per
//! location, A excluded as the dispatcher excludes a paused location) and finished. Scenarios:
//! - baseline: A has no backlog;
//! - A in an outage: every A event failed and waits an hour for its retry;
//! - A paused: A's events are pending, never claimed (a refused token, a spent daily quota);
//! - A paused long: the same after B was served more events than A holds, so A's backlog has
//!   fallen to the head of the fair order.
//!
//! Run: `cargo bench --bench claim` (options after `--`: `--backlog N` `--claims N`).
#![allow(clippy::unwrap_used)]

/// The integration tests' helpers (seeding prepared events), shared with benches.
#[path = "../tests/it/common.rs"]
#[allow(dead_code, clippy::unwrap_used)]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use formbridge::settings::StoreSettings;
use formbridge::store::{Claim, Finish, SqliteStore, Store};
use time::OffsetDateTime;

/// Concurrent writers used to load the backlog.
const LOADERS: usize = 64;

#[derive(Clone, Copy, PartialEq)]
enum Scenario {
    Baseline,
    Outage,
    Paused,
    PausedLong,
}

impl Scenario {
    fn label(self) -> &'static str {
        match self {
            Scenario::Baseline => "baseline: A has no backlog",
            Scenario::Outage => "A in an outage (retries due in 1 h)",
            Scenario::Paused => "A paused (pending, excluded)",
            Scenario::PausedLong => "A paused long (B served a backlog since)",
        }
    }
}

fn arg(name: &str) -> Option<usize> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

async fn add(store: &SqliteStore, location: &str, tag: &str, i: usize) {
    let contact = format!("email:{tag}{i}@example.com");
    common::add_prepared(store, location, "dripjobs", &format!("{tag}-{i}"), &contact).await;
}

/// Stores and prepares `n` events of `location`, tagged `tag` (unique per call).
async fn add_many(store: &Arc<SqliteStore>, location: &'static str, tag: &'static str, n: usize) {
    let mut loaders = Vec::new();
    for first in 0..LOADERS {
        let store = store.clone();
        loaders.push(tokio::spawn(async move {
            for i in (first..n).step_by(LOADERS) {
                add(&store, location, tag, i).await;
            }
        }));
    }
    for loader in loaders {
        loader.await.unwrap();
    }
}

fn claim(limit: u32, per_location_limit: u32, exclude: &[&str]) -> Claim {
    let now = OffsetDateTime::now_utc();
    Claim {
        lease: "bench".into(),
        now,
        lease_until: now + Duration::from_secs(60),
        limit,
        per_location_limit,
        exclude_locations: exclude.iter().map(|l| (*l).into()).collect(),
    }
}

/// Claim times (ms) of `claims` claims for location B, each finished before the next.
async fn run(scenario: Scenario, backlog: usize, claims: usize) -> Vec<f64> {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&StoreSettings::with_url(format!(
            "sqlite://{}",
            dir.path().join("claim.db").display()
        )))
        .await
        .unwrap(),
    );
    if scenario != Scenario::Baseline {
        add_many(&store, "A", "a", backlog).await;
    }
    if scenario == Scenario::Outage {
        let in_an_hour = OffsetDateTime::now_utc() + Duration::from_secs(3600);
        loop {
            let taken = store.claim(&claim(256, 256, &[])).await.unwrap();
            if taken.is_empty() {
                break;
            }
            for event in taken {
                let retry = Finish::Retry {
                    at: in_an_hour,
                    error: "GHL answered 503".into(),
                    counts_attempt: true,
                    outcome: "retry",
                };
                assert!(store.finish(event.id, &event.lease, &retry).await.unwrap());
            }
        }
    }
    if scenario == Scenario::PausedLong {
        // B is served as many events as A holds, so the virtual time passes A's keys and A's
        // whole backlog sits at the head of the fair order.
        add_many(&store, "B", "b-earlier", backlog + 1).await;
        loop {
            let taken = store.claim(&claim(256, 256, &["A"])).await.unwrap();
            if taken.is_empty() {
                break;
            }
            for event in taken {
                assert!(store
                    .finish(event.id, &event.lease, &Finish::Done)
                    .await
                    .unwrap());
            }
        }
    }
    add_many(&store, "B", "b", 2000).await;
    let mut times = Vec::with_capacity(claims);
    for _ in 0..claims {
        let started = Instant::now();
        let taken = store.claim(&claim(256, 8, &["A"])).await.unwrap();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(!taken.is_empty(), "B has work left");
        for event in taken {
            assert!(store
                .finish(event.id, &event.lease, &Finish::Done)
                .await
                .unwrap());
        }
    }
    times
}

#[tokio::main]
async fn main() {
    let backlog = arg("--backlog").unwrap_or(20_000);
    let claims = arg("--claims").unwrap_or(50);
    println!("claim benchmark: {backlog} events of location A, 2000 of B; {claims} claims of B's events (limit 256, 8 per location, A excluded)");
    println!(
        "| {:<38} | {:>9} | {:>9} | {:>9} |",
        "scenario", "median ms", "p90 ms", "max ms"
    );
    println!("|{:-<40}|{:-<11}|{:-<11}|{:-<11}|", "", "", "", "");
    for scenario in [
        Scenario::Baseline,
        Scenario::Outage,
        Scenario::Paused,
        Scenario::PausedLong,
    ] {
        let mut times = run(scenario, backlog, claims).await;
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        println!(
            "| {:<38} | {:>9.2} | {:>9.2} | {:>9.2} |",
            scenario.label(),
            at(0.5),
            at(0.9),
            at(1.0)
        );
    }
}
