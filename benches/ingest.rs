//! Ingest benchmark: accepted webhooks/s and p50/p99 latency of `POST /hooks/{source}`, against
//! a plain axum handler that answers 200 without storing, measured in the same run with the
//! same load generator, on each store:
//! - `sqlite`: a real SQLite file (WAL, `synchronous = FULL`, group commit);
//! - `pg1`: PostgreSQL, one formbridge;
//! - `pg2`: PostgreSQL, two formbridge instances (two `Application`s in this process) on the
//!   same database, the load split between them round-robin (request `n` goes to instance
//!   `n % 2`).
//!
//! The PostgreSQL databases are fresh ones from the integration tests' helper (`tests/it/pg.rs`:
//! `FORMBRIDGE_TEST_PG_URL`, else the local server or a private cluster), dropped at the end.
//!
//! Run: `cargo bench --bench ingest` (options: `-- --requests N --concurrency C --stores
//! sqlite,pg1,pg2`, the default being all three).

/// The integration tests' helpers, which `pg` uses.
#[path = "../tests/it/common.rs"]
#[allow(dead_code, clippy::unwrap_used)]
mod common;
/// PostgreSQL test databases, shared with the integration tests.
#[path = "../tests/it/pg.rs"]
#[allow(dead_code, clippy::unwrap_used)]
mod pg;

use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use formbridge::app::Application;
use formbridge::settings::{ConfigSource, Settings};

struct Figures {
    label: String,
    requests: usize,
    ok: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Sends `requests` webhooks over `concurrency` connections; request `n` goes to
/// `urls[n % urls.len()]`.
async fn load(label: &str, urls: &[String], requests: usize, concurrency: usize) -> Figures {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap_or_default();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (client, urls) = (client.clone(), urls.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut ok = 0;
            let mut n = worker;
            while n < requests {
                let body = format!(
                    r#"{{"deal_id":"bench-{n}","customer_name":"Bench User","customer_email":"bench{n}@example.com","customer_phone":"9285550142"}}"#
                );
                let t = Instant::now();
                let resp = client
                    .post(&urls[n % urls.len()])
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                latencies.push(t.elapsed());
                if resp.is_ok_and(|r| r.status().is_success()) {
                    ok += 1;
                }
                n += concurrency;
            }
            (ok, latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(requests);
    let mut ok = 0;
    for t in tasks {
        if let Ok((n, l)) = t.await {
            ok += n;
            latencies.extend(l);
        }
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Figures {
        label: label.to_owned(),
        requests,
        ok,
        elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

fn print(f: &Figures) {
    println!(
        "| {:<36} | {:>8} | {:>8} | {:>10.0} | {:>8.2} | {:>8.2} |",
        f.label,
        f.requests,
        f.ok,
        f.ok as f64 / f.elapsed.as_secs_f64(),
        f.p50.as_secs_f64() * 1000.0,
        f.p99.as_secs_f64() * 1000.0
    );
}

/// Starts formbridge (dispatch off) on the store at `store_url`; returns its hook URL.
async fn start_formbridge(store_url: &str) -> String {
    let source = ConfigSource::named(
        std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/config")),
        "bench",
    );
    let settings = Settings::load_without_env(
        &source,
        &[
            ("server.addr", "127.0.0.1:0"),
            ("store.url", store_url),
            ("dispatch.enabled", "false"),
            ("sources.dripjobs.secret", "bench"),
        ],
    )
    .expect("settings");
    let app = Application::build(settings).await.expect("app");
    let addr = app.local_addr();
    tokio::spawn(app.run_until(std::future::pending()));
    format!("http://{addr}/hooks/dripjobs?token=bench")
}

fn throughput(f: &Figures) -> f64 {
    f.ok as f64 / f.elapsed.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let requests = arg("--requests", 20_000);
    let concurrency = arg("--concurrency", 64);
    let args: Vec<String> = std::env::args().collect();
    let stores: Vec<String> = args
        .iter()
        .position(|a| a == "--stores")
        .and_then(|i| args.get(i + 1))
        .map_or("sqlite,pg1,pg2", String::as_str)
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect();

    // Baseline: a plain axum handler that answers 200 without storing.
    let baseline = Router::new().route("/hooks/{source}", post(|| async { r#"{"result":"ok"}"# }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let baseline_addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, baseline).await });

    println!("ingest benchmark: {requests} requests, {concurrency} concurrent connections, JSON body ~150 B");
    println!(
        "| {:<36} | {:>8} | {:>8} | {:>10} | {:>8} | {:>8} |",
        "server", "requests", "200s", "req/s", "p50 ms", "p99 ms"
    );
    println!(
        "|{:-<38}|{:-<10}|{:-<10}|{:-<12}|{:-<10}|{:-<10}|",
        "", "", "", "", "", ""
    );
    let baseline_urls = [format!("http://{baseline_addr}/hooks/x")];
    load("warm-up", &baseline_urls, 1_000, concurrency).await;
    let base = load(
        "baseline (axum, no storage)",
        &baseline_urls,
        requests,
        concurrency,
    )
    .await;
    print(&base);
    let mut measured = Vec::new();
    // Kept until the end: the SQLite file's folder and the PostgreSQL databases.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut databases = Vec::new();
    for store in &stores {
        let (label, urls) = match store.as_str() {
            // A real SQLite file (WAL, synchronous=FULL, group commit).
            "sqlite" => {
                let url = format!("sqlite://{}", dir.path().join("bench.db").display());
                (
                    "formbridge (SQLite, fsync)",
                    vec![start_formbridge(&url).await],
                )
            }
            "pg1" | "pg2" => {
                let db = pg::PgDatabase::create().await;
                let instances = if store == "pg1" { 1 } else { 2 };
                let mut urls = Vec::new();
                for _ in 0..instances {
                    urls.push(start_formbridge(&db.url).await);
                }
                databases.push(db);
                let label = if instances == 1 {
                    "formbridge (PostgreSQL, 1 replica)"
                } else {
                    "formbridge (PostgreSQL, 2 replicas)"
                };
                (label, urls)
            }
            other => panic!("--stores: unknown store {other} (sqlite, pg1, pg2)"),
        };
        load("warm-up", &urls, 1_000, concurrency).await;
        let figures = load(label, &urls, requests, concurrency).await;
        print(&figures);
        measured.push(figures);
    }
    println!();
    for f in &measured {
        println!(
            "{} reaches {:.0}% of the baseline's throughput",
            f.label,
            100.0 * throughput(f) / throughput(&base)
        );
    }
    drop(databases);
}
