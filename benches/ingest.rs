//! Ingest benchmark: accepted webhooks/s and p50/p99 latency of `POST /hooks/{source}` on a
//! real SQLite file, against a plain axum handler that answers 200 without storing, measured
//! in the same run with the same load generator.
//!
//! Run: `cargo bench --bench ingest` (options: `-- --requests N --concurrency C`).

use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use formbridge::app::Application;
use formbridge::settings::{ConfigSource, Settings};

struct Figures {
    label: &'static str,
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

async fn load(label: &'static str, url: String, requests: usize, concurrency: usize) -> Figures {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap_or_default();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (client, url) = (client.clone(), url.clone());
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
                    .post(&url)
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
        label,
        requests,
        ok,
        elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

fn print(f: &Figures) {
    println!(
        "| {:<28} | {:>8} | {:>8} | {:>10.0} | {:>8.2} | {:>8.2} |",
        f.label,
        f.requests,
        f.ok,
        f.ok as f64 / f.elapsed.as_secs_f64(),
        f.p50.as_secs_f64() * 1000.0,
        f.p99.as_secs_f64() * 1000.0
    );
}

#[tokio::main]
async fn main() {
    let requests = arg("--requests", 20_000);
    let concurrency = arg("--concurrency", 64);

    // Baseline: a plain axum handler that answers 200 without storing.
    let baseline = Router::new().route("/hooks/{source}", post(|| async { r#"{"result":"ok"}"# }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let baseline_addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, baseline).await });

    // formbridge with a real SQLite file (WAL, synchronous=FULL, group commit).
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let source = ConfigSource {
        dir: std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/config")),
        env: "bench".to_owned(),
    };
    let settings = Settings::load_without_env(
        &source,
        &[
            ("server.addr", "127.0.0.1:0"),
            ("store.url", &url),
            ("dispatch.enabled", "false"),
            ("sources.dripjobs.secret", "bench"),
        ],
    )
    .expect("settings");
    let app = Application::build(settings).await.expect("app");
    let addr = app.local_addr();
    tokio::spawn(app.run_until(std::future::pending()));

    println!("ingest benchmark: {requests} requests, {concurrency} concurrent connections, JSON body ~150 B");
    println!(
        "| {:<28} | {:>8} | {:>8} | {:>10} | {:>8} | {:>8} |",
        "server", "requests", "200s", "req/s", "p50 ms", "p99 ms"
    );
    println!(
        "|{:-<30}|{:-<10}|{:-<10}|{:-<12}|{:-<10}|{:-<10}|",
        "", "", "", "", "", ""
    );
    // Warm up both, then measure.
    load(
        "warm-up",
        format!("http://{baseline_addr}/hooks/x"),
        1_000,
        concurrency,
    )
    .await;
    load(
        "warm-up",
        format!("http://{addr}/hooks/dripjobs?token=bench"),
        1_000,
        concurrency,
    )
    .await;
    let base = load(
        "baseline (axum, no storage)",
        format!("http://{baseline_addr}/hooks/x"),
        requests,
        concurrency,
    )
    .await;
    print(&base);
    let fb = load(
        "formbridge (SQLite, fsync)",
        format!("http://{addr}/hooks/dripjobs?token=bench"),
        requests,
        concurrency,
    )
    .await;
    print(&fb);
    println!(
        "\nformbridge reaches {:.0}% of the baseline's throughput",
        100.0 * (fb.ok as f64 / fb.elapsed.as_secs_f64())
            / (base.ok as f64 / base.elapsed.as_secs_f64())
    );
}
