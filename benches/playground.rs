//! Mapping playground benchmark: the data of the playground and the fields view on a store of
//! 100,000 events, answered over real HTTP by a running formbridge (SQLite).
//!
//! `--events N` (default 100,000) POWR deliveries are stored (1 in 100 dead-lettered, a third
//! of them with their phone under an unusual key, the rest good leads), then each request is
//! timed `--runs R` times (default 20; median and slowest printed):
//! - baseline: `GET /admin/events?source=powr&limit=50` (what the events page asks);
//! - `POST /admin/playground/powr/compare` over the last 50 and the last 200 deliveries, and
//!   over the 50 newest dead letters, with a candidate that adds a field, a tag and a task;
//! - `GET /admin/playground/powr/fields?last=50` and `?last=200`.
//!
//! Goal: each under 100 ms. Run: `cargo bench --bench playground` (options after `--`).
#![allow(clippy::unwrap_used)]

#[path = "support/args.rs"]
mod args;
#[path = "../tests/it/common.rs"]
#[allow(dead_code, clippy::unwrap_used)]
mod common;
#[path = "../tests/it/pg.rs"]
#[allow(dead_code, clippy::unwrap_used)]
mod pg;

use std::sync::Arc;
use std::time::{Duration, Instant};

use args::arg;
use formbridge::domain::SourceName;
use formbridge::store::{NewEvent, Preparation, Store};
use serde_json::{json, Value};
use time::OffsetDateTime;

const TOKEN: &str = "playground-bench-token";
/// Concurrent writers loading the store (the SQLite writer commits them in groups).
const LOADERS: usize = 64;

fn lead(i: usize) -> Value {
    if i % 3 == 0 {
        json!({"Name": format!("Lead {i}"), "Best number": format!("(415) 555-{:04}", i % 10_000),
               "Message": "Please call me back about the quote"})
    } else {
        json!({"Email": format!("lead{i}@example.com"), "Name": format!("Lead {i}"),
               "Phone": format!("415-555-{:04}", i % 10_000), "Company": "Example Ltd",
               "Message": "Please send the brochure"})
    }
}

async fn load(store: Arc<dyn Store>, events: usize) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..LOADERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut dead = Vec::new();
            for i in (w..events).step_by(LOADERS) {
                let id = store
                    .insert_event(NewEvent {
                        source: SourceName::parse("powr").unwrap(),
                        dedupe_key: format!("bench-{i}"),
                        content_hash: None,
                        content_type: Some("application/json".to_owned()),
                        headers: Vec::new(),
                        body: lead(i).to_string().into_bytes().into(),
                        received_at: OffsetDateTime::now_utc(),
                    })
                    .await
                    .unwrap()
                    .id();
                if i % 100 == 0 {
                    dead.push((
                        id,
                        Preparation::Failed {
                            submission: None,
                            error: "no contact in this submission".to_owned(),
                        },
                    ));
                }
            }
            store.save_preparations(&dead).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "loaded {events} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

struct Timing {
    median: Duration,
    slowest: Duration,
}

async fn time(
    client: &reqwest::Client,
    runs: usize,
    request: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
) -> (Timing, Value) {
    let mut times = Vec::with_capacity(runs);
    let mut last = Value::Null;
    for _ in 0..runs {
        let started = Instant::now();
        let resp = request(client).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        last = resp.json().await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    (
        Timing {
            median: times[times.len() / 2],
            slowest: times[times.len() - 1],
        },
        last,
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let events: usize = arg("--events")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let runs: usize = arg("--runs").and_then(|v| v.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let settings = common::test_settings(dir.path(), &[("admin.token", TOKEN)]);
    let app = common::spawn_with(settings, dir).await;
    load(app.store.clone(), events).await;

    let client = reqwest::Client::new();
    let base = app.base.clone();
    let mapping = client
        .get(format!("{base}/admin/playground/powr/mapping"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["toml"]
        .as_str()
        .unwrap()
        .to_owned();
    let candidate = format!(
        "{mapping}\n[sources.powr.mapping.fields]\nphone = \"Best number\"\n\n\
         [[sources.powr.mapping.tasks]]\ntitle = \"Call {{{{first_name}}}}\"\ndue_in = \"2h\"\n"
    );

    println!("\n{events} events in the store; {runs} runs each (median / slowest), over HTTP:");
    let mut rows: Vec<(String, Timing, String)> = Vec::new();
    let (t, v) = time(&client, runs, |c| {
        c.get(format!("{base}/admin/events?source=powr&limit=50"))
    })
    .await;
    rows.push((
        "baseline: GET /admin/events?source=powr&limit=50".into(),
        t,
        format!("{} events", v["events"].as_array().unwrap().len()),
    ));
    for (label, body) in [
        (
            "compare, last 50",
            json!({"mapping": candidate, "last": 50}),
        ),
        (
            "compare, last 200",
            json!({"mapping": candidate, "last": 200}),
        ),
        (
            "compare, 50 newest dead letters",
            json!({"mapping": candidate, "last": 50, "dead": true}),
        ),
    ] {
        let (t, v) = time(&client, runs, |c| {
            c.post(format!("{base}/admin/playground/powr/compare"))
                .json(&body)
        })
        .await;
        assert!(v["problems"].as_array().unwrap().is_empty(), "{v}");
        let c = &v["counts"];
        rows.push((
            label.into(),
            t,
            format!(
                "{} deliveries: {} changed, {} fixed, {} would fix",
                v["deliveries"].as_array().unwrap().len(),
                c["changed"],
                c["fixes"],
                v["would_fix"].as_array().unwrap().len()
            ),
        ));
    }
    for last in [50, 200] {
        let (t, v) = time(&client, runs, |c| {
            c.get(format!("{base}/admin/playground/powr/fields?last={last}"))
        })
        .await;
        rows.push((
            format!("fields, last {last}"),
            t,
            format!("{} keys", v["fields"].as_array().unwrap().len()),
        ));
    }
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let mut over = false;
    for (label, t, what) in &rows {
        over |= t.median > Duration::from_millis(100);
        println!(
            "  {label:<width$}  {:>7.1} ms / {:>7.1} ms   ({what})",
            ms(t.median),
            ms(t.slowest)
        );
    }
    println!(
        "goal: each median under 100 ms: {}",
        if over { "MISSED" } else { "met" }
    );
}
