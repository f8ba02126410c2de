//! Dispatch benchmark: how fully formbridge spends GHL's per-location rate budget.
//!
//! In one process: the GHL sandbox (rate limit shaped like GHL's — `burst` requests per location
//! per `window` — but with a shorter window so runs stay short), and formbridge on a temp SQLite
//! file with one `[ghl.locations.locN]` (own token) and one `dripjobs` source routed to it per
//! location. Deliveries are pre-loaded through `POST /hooks/srcN` with dispatch off (so ingest
//! does not compete with dispatch), then formbridge is restarted on the same store with
//! dispatch on, `ghl.rate_limit` equal to the sandbox's limit and the default worker and
//! per-location concurrency. Each lead (email + phone) costs 3 GHL requests: upsert, tags, note.
//!
//! From the sandbox's request log (arrival times), with t0 = the first GHL request: the first
//! window is skipped (start-up burst), the next `--measure-windows` windows are counted per
//! location; a location's figure is its average requests per window, as a share of `burst`.
//! Reported: median and minimum across locations, 429s, events delivered, wall time.
//!
//! Baseline in the same run: a plain client loop (no limiter, 16 connections) firing
//! `GET /contacts/{id}` at the sandbox for one location, so "100 %" is visible (2xx per window
//! = the sandbox's budget) and the sandbox's own answering rate shows it is not the bottleneck.
//!
//! Run: `cargo bench --bench dispatch` (options after `--`: `--window-ms 2000` `--burst 100`
//! `--locations 1,10,100` `--measure-windows 4` `--burst-100 N` (burst for runs with ≥ 100
//! locations; default `--burst`) `--max-secs 120` (deadline per run) `--workers N` (diagnostic
//! `dispatch.workers` override; default: the configured 32) `--set key=value` (diagnostic
//! setting override, repeatable) `--db-dir DIR` (diagnostic: where the temp store lives, e.g.
//! /dev/shm) `--trace` (diagnostic: one location's requests per 100 ms) `--latency-ms N` (the
//! sandbox delays every answer by N ms, like GHL's real round trip; default 0) `--process` (the
//! dispatch phase runs the real `formbridge serve` binary in a child process, so its own CPU
//! time and peak memory are reported apart from the sandbox's and the bench's) `--no-baseline`
//! `--stores sqlite,pg1,pg2` (default all three) `--backlog N` (pre-load N events in all, spread
//! over the locations, instead of just enough for the measured windows: a backlog to drain; with
//! `--process` the children's memory is sampled every second of the drain and judged flat or
//! not, and the drain's time is compared with the budget's).
//!
//! Stores: `sqlite` (a temp file), `pg1` (a fresh PostgreSQL database, one formbridge) and `pg2`
//! (the same with two formbridge instances dispatching from one database — two child processes
//! with `--process`, else two `Application`s in this process — which must keep together within
//! one GHL budget, shared through the database). Every store gets the same pre-load, through
//! one formbridge; the sandbox's log counts every replica's requests per location. The
//! PostgreSQL databases come from the integration tests' helper (`tests/it/pg.rs`).
#![allow(clippy::unwrap_used)]

/// The integration tests' helpers (starting the binary, config folders), shared with benches.
/// The benches' command-line options.
#[path = "support/args.rs"]
mod args;
#[path = "../tests/it/common.rs"]
#[allow(dead_code, clippy::unwrap_used)]
mod common;
/// PostgreSQL test databases, shared with the integration tests.
#[path = "../tests/it/pg.rs"]
#[allow(dead_code, clippy::unwrap_used)]
mod pg;

use args::arg;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use formbridge::app::Application;
use formbridge::settings::{ConfigSource, Settings};
use formbridge::store::{EventStatus, Store};
use ghl_sandbox::{FaultSpec, SandboxConfig, SandboxHandle, API_VERSION};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Windows skipped before measuring (the first one holds the start-up burst).
const SKIP_WINDOWS: u32 = 1;
/// Concurrent connections used to pre-load deliveries and for the baseline loop.
const CLIENT_CONCURRENCY: usize = 16;

struct Opts {
    window: Duration,
    burst: u32,
    burst_100: u32,
    locations: Vec<usize>,
    measure_windows: u32,
    max_secs: u64,
    /// `dispatch.workers` override (diagnostic); `None` keeps the default.
    workers: Option<String>,
    /// Further `key=value` setting overrides (diagnostic), from repeated `--set`.
    set: Vec<(String, String)>,
    baseline: bool,
    /// Delay the sandbox adds before answering each API request.
    latency: Duration,
    /// Where the temp store directory is created (diagnostic, e.g. a tmpfs); default: the
    /// system temp dir.
    db_dir: Option<String>,
    /// Run the dispatch phase as the `formbridge` binary in a child process.
    process: bool,
    /// The stores to run on, in order.
    stores: Vec<StoreKind>,
    /// Events pre-loaded in all (spread evenly over the locations) instead of just enough for
    /// the measured windows: a backlog to drain.
    backlog: Option<usize>,
}

/// Where formbridge keeps its events, and how many replicas dispatch from it.
#[derive(Clone, Copy, PartialEq)]
enum StoreKind {
    Sqlite,
    Postgres { replicas: usize },
}

impl StoreKind {
    fn parse(name: &str) -> Self {
        match name.trim() {
            "sqlite" => Self::Sqlite,
            "pg1" => Self::Postgres { replicas: 1 },
            "pg2" => Self::Postgres { replicas: 2 },
            other => panic!("--stores: unknown store {other} (sqlite, pg1, pg2)"),
        }
    }

    fn label(self) -> String {
        match self {
            Self::Sqlite => "SQLite".to_owned(),
            Self::Postgres { replicas: 1 } => "PostgreSQL, 1 replica".to_owned(),
            Self::Postgres { replicas } => format!("PostgreSQL, {replicas} replicas"),
        }
    }

    fn replicas(self) -> usize {
        match self {
            Self::Sqlite => 1,
            Self::Postgres { replicas } => replicas,
        }
    }
}

fn num<T: std::str::FromStr>(name: &str, default: T) -> T {
    arg(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

impl Opts {
    fn parse() -> Self {
        let burst = num("--burst", 100);
        Self {
            window: Duration::from_millis(num("--window-ms", 2000)),
            burst,
            burst_100: num("--burst-100", burst),
            locations: arg("--locations")
                .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
                .unwrap_or_else(|| vec![1, 10, 100]),
            measure_windows: num("--measure-windows", 4u32).max(1),
            max_secs: num("--max-secs", 120),
            workers: arg("--workers"),
            set: std::env::args()
                .collect::<Vec<_>>()
                .windows(2)
                .filter(|w| w[0] == "--set")
                .filter_map(|w| {
                    w[1].split_once('=')
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                })
                .collect(),
            baseline: !std::env::args().any(|a| a == "--no-baseline"),
            latency: Duration::from_millis(num("--latency-ms", 0)),
            db_dir: arg("--db-dir"),
            process: std::env::args().any(|a| a == "--process"),
            backlog: arg("--backlog").and_then(|v| v.parse().ok()),
            stores: arg("--stores")
                .unwrap_or_else(|| "sqlite,pg1,pg2".to_owned())
                .split(',')
                .map(StoreKind::parse)
                .collect(),
        }
    }
}

/// One line of the table.
struct Row {
    label: String,
    store: String,
    locations: usize,
    window: Duration,
    burst: u32,
    /// Requests per window per location (2xx for the baseline), median and min across
    /// locations (across windows for the baseline).
    median: f64,
    min: f64,
    limited: usize,
    delivered: String,
    wall: Duration,
    notes: Vec<String>,
}

fn location_id(n: usize) -> String {
    format!("benchLoc{n:012}")
}

fn token(n: usize) -> String {
    format!("pit-bench-{n}")
}

fn sandbox_config(locations: usize, burst: u32, window: Duration) -> SandboxConfig {
    SandboxConfig {
        tokens: (0..locations)
            .map(|n| (token(n), vec![location_id(n)]))
            .collect(),
        burst,
        window,
        daily: 10_000_000,
        ..SandboxConfig::default()
    }
}

/// The `bench.toml` layer: the rate limit, one location and one source per location.
fn bench_toml(locations: usize, burst: u32, window: Duration) -> String {
    let mut toml = format!(
        "[ghl.rate_limit]\nburst = {burst}\nwindow = \"{}ms\"\ndaily = 10000000\n",
        window.as_millis()
    );
    for n in 0..locations {
        toml.push_str(&format!(
            "\n[ghl.locations.loc{n}]\nlocation_id = \"{}\"\ntoken = \"{}\"\n\n[sources.src{n}]\nkind = \"dripjobs\"\nauth = \"none\"\nlocation = \"loc{n}\"\n",
            location_id(n),
            token(n)
        ));
    }
    toml
}

/// Settings from a temp config dir holding a copy of `config/default.toml` and `toml` as the
/// `bench` layer, plus `extra` overrides (the process environment is ignored).
fn settings_with_toml(dir: &Path, toml: &str, extra: &[(&str, &str)]) -> Settings {
    let config = dir.join("config");
    std::fs::create_dir_all(&config).expect("create config dir");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml"),
        config.join("default.toml"),
    )
    .expect("copy default.toml");
    std::fs::write(config.join("bench.toml"), toml).expect("write bench.toml");
    let source = ConfigSource::named(config, "bench");
    Settings::load_without_env(&source, extra).expect("settings")
}

/// A formbridge running in this process until `stop` is sent.
struct RunningApp {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn start_app(settings: Settings) -> RunningApp {
    let app = Application::build(settings)
        .await
        .expect("build formbridge");
    let base = format!("http://{}", app.local_addr());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = app
            .run_until(async move {
                let _ = rx.await;
            })
            .await;
    });
    RunningApp { base, stop, task }
}

impl RunningApp {
    async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(40), self.task).await;
    }
}

/// One formbridge of the dispatch phase: in this process, or the real binary in a child process
/// (`--process`), whose CPU time and peak memory /proc reports apart from this process's.
enum Instance {
    InProcess(RunningApp),
    Child {
        child: std::process::Child,
        base: String,
    },
}

impl Instance {
    fn base(&self) -> &str {
        match self {
            Self::InProcess(app) => &app.base,
            Self::Child { base, .. } => base,
        }
    }

    /// The child's CPU time so far and peak resident memory (KiB); `None` in-process.
    fn child_usage(&self) -> Option<(Duration, u64)> {
        let Self::Child { child, .. } = self else {
            return None;
        };
        let peak_kib = common::proc_status(child.id(), "VmHWM:")?;
        Some((
            common::cpu_time_of(&format!("/proc/{}/stat", child.id())),
            peak_kib,
        ))
    }

    /// The child's resident memory now (KiB, `VmRSS`); `None` in-process.
    fn child_rss(&self) -> Option<u64> {
        let Self::Child { child, .. } = self else {
            return None;
        };
        common::proc_status(child.id(), "VmRSS:")
    }

    /// Stops formbridge gracefully (SIGTERM for the child) and waits for it.
    async fn shutdown(self) {
        match self {
            Self::InProcess(app) => app.shutdown().await,
            Self::Child { mut child, .. } => common::terminate(&mut child).await,
        }
    }
}

/// The formbridge replicas of the dispatch phase, all on one store, and that store opened here
/// to watch progress.
struct Dispatcher {
    instances: Vec<Instance>,
    store: Arc<dyn Store>,
}

impl Dispatcher {
    /// Starts `replicas` formbridges with `settings`; `--process` runs `formbridge serve` on the
    /// same config folder (`FORMBRIDGE_ENV=bench`) with `overrides` as `FORMBRIDGE__…`
    /// variables.
    async fn start(
        settings: Settings,
        replicas: usize,
        process: bool,
        config_dir: &Path,
        overrides: &[(String, String)],
    ) -> Self {
        // Opened to watch only: without the SQLite file's lock, which the formbridge it starts
        // takes (one process serves a SQLite file).
        let store = formbridge::store::open_shared(&settings.store)
            .await
            .expect("open the store to watch");
        let mut env = vec![("FORMBRIDGE_ENV".to_owned(), "bench".to_owned())];
        env.extend(overrides.iter().map(|(key, value)| {
            let var = format!("FORMBRIDGE__{}", key.replace('.', "__").to_uppercase());
            (var, value.clone())
        }));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut instances = Vec::new();
        for _ in 0..replicas {
            instances.push(if process {
                let mut cmd = std::process::Command::new(common::formbridge_bin());
                cmd.arg("serve");
                // Its log (info level, as deployed) is drained so it never blocks on a full pipe.
                let (child, base) = common::spawn_listening(cmd, config_dir, &env);
                Instance::Child { child, base }
            } else {
                Instance::InProcess(start_app(settings.clone()).await)
            });
        }
        Self { instances, store }
    }

    fn bases(&self) -> Vec<String> {
        self.instances.iter().map(|i| i.base().to_owned()).collect()
    }

    /// Each child's CPU time so far and peak resident memory (KiB); `None` in-process.
    fn child_usage(&self) -> Option<Vec<(Duration, u64)>> {
        self.instances.iter().map(Instance::child_usage).collect()
    }

    /// Each child's resident memory now (KiB); `None` in-process.
    fn child_rss(&self) -> Option<Vec<u64>> {
        self.instances.iter().map(Instance::child_rss).collect()
    }

    async fn shutdown(self) {
        for instance in self.instances {
            instance.shutdown().await;
        }
    }
}

/// Posts `per_location` DripJobs leads to each `srcN`, round-robin over locations, with
/// `CLIENT_CONCURRENCY` connections. Returns how many were answered 200.
async fn preload(base: &str, locations: usize, per_location: usize, deadline: Instant) -> usize {
    let total = locations * per_location;
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for worker in 0..CLIENT_CONCURRENCY {
        let (client, base) = (client.clone(), base.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            let mut g = worker;
            while g < total && Instant::now() < deadline {
                let (loc, i) = (g % locations, g / locations);
                let body = format!(
                    r#"{{"deal_id":"d{loc}-{i}","customer_name":"Lead{i} Person","customer_email":"l{loc}x{i}@example.com","customer_phone":"928{:07}"}}"#,
                    2_000_000 + g
                );
                let resp = client
                    .post(format!("{base}/hooks/src{loc}"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                if resp.is_ok_and(|r| r.status().is_success()) {
                    ok += 1;
                }
                g += CLIENT_CONCURRENCY;
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap_or(0);
    }
    ok
}

/// Per location, non-429 requests in each window `[t0 + kW, t0 + (k+1)W)`; plus 429s and t0.
struct Windows {
    /// Requests by method and last path segment (`POST upsert`, `POST tags`, `GET notes`, …).
    kinds: BTreeMap<String, usize>,
    counts: BTreeMap<String, Vec<u64>>,
    /// Per location, the longest pause between two of its requests inside the measured windows.
    longest_gap: BTreeMap<String, Duration>,
    limited: usize,
    total: usize,
    span: Duration,
    first: Option<OffsetDateTime>,
}

fn windows(ghl: &SandboxHandle, from_entry: usize, window: Duration, n_windows: u32) -> Windows {
    let state = ghl.state();
    let times: Vec<(OffsetDateTime, &str, u16)> = state
        .requests
        .iter()
        .skip(from_entry)
        .filter_map(|r| {
            let at = OffsetDateTime::parse(&r.at, &Rfc3339).ok()?;
            Some((at, r.location.as_deref()?, r.status))
        })
        .collect();
    if std::env::args().any(|a| a == "--trace") {
        // Diagnostic: the first location's requests per 100 ms from t0.
        let first = times.iter().map(|t| t.0).min();
        if let (Some(t0), Some(loc)) = (first, times.first().map(|t| t.1)) {
            let mut buckets =
                vec![0u32; (window.as_millis() as usize / 100 + 1) * n_windows as usize];
            for (at, _, _) in times.iter().filter(|t| t.1 == loc) {
                let b = ((*at - t0).as_seconds_f64() * 10.0) as usize;
                if let Some(x) = buckets.get_mut(b) {
                    *x += 1;
                }
            }
            println!("trace {loc} per 100 ms: {buckets:?}");
        }
    }
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for r in state.requests.iter().skip(from_entry) {
        let last = r.path.rsplit('/').find(|p| !p.is_empty()).unwrap_or("");
        let last = if last.len() > 12 { "{id}" } else { last };
        *kinds.entry(format!("{} {last}", r.method)).or_default() += 1;
    }
    let t0 = times.iter().map(|t| t.0).min();
    let t1 = times.iter().map(|t| t.0).max();
    let mut counts: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut last_seen: BTreeMap<String, OffsetDateTime> = BTreeMap::new();
    let mut longest_gap: BTreeMap<String, Duration> = BTreeMap::new();
    let mut limited = 0;
    for (at, location, status) in &times {
        if *status == 429 {
            limited += 1;
            continue;
        }
        let Some(t0) = t0 else { continue };
        let since = (*at - t0).as_seconds_f64();
        let k = (since / window.as_secs_f64()) as usize;
        let slot = counts
            .entry((*location).to_owned())
            .or_insert_with(|| vec![0; n_windows as usize]);
        if let Some(c) = slot.get_mut(k) {
            *c += 1;
        }
        if k >= SKIP_WINDOWS as usize && k < n_windows as usize {
            if let Some(prev) = last_seen.insert((*location).to_owned(), *at) {
                let gap = Duration::try_from(*at - prev).unwrap_or_default();
                let longest = longest_gap.entry((*location).to_owned()).or_default();
                *longest = (*longest).max(gap);
            }
        }
    }
    let span = match (t0, t1) {
        (Some(a), Some(b)) => Duration::try_from(b - a).unwrap_or_default(),
        _ => Duration::ZERO,
    };
    Windows {
        kinds,
        counts,
        longest_gap,
        limited,
        total: times.len(),
        span,
        first: t0,
    }
}

/// Mean of `formbridge_ghl_request_seconds` per endpoint from `/metrics` of every replica
/// (process-wide, so in-process it accumulates over the runs of one bench process).
async fn mean_ghl_latency(bases: &[String]) -> String {
    let mut text = String::new();
    for base in bases {
        let Ok(resp) = reqwest::get(format!("{base}/metrics")).await else {
            return "unavailable".to_owned();
        };
        text.push_str(&resp.text().await.unwrap_or_default());
    }
    let mut sums: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("formbridge_ghl_request_seconds_") else {
            continue;
        };
        let (is_sum, rest) = match rest.split_once('{') {
            Some(("sum", r)) => (true, r),
            Some(("count", r)) => (false, r),
            _ => continue,
        };
        let endpoint = rest
            .split("endpoint=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("?")
            .to_owned();
        let value: f64 = rest
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let e = sums.entry(endpoint).or_default();
        if is_sum {
            e.0 += value;
        } else {
            e.1 += value;
        }
    }
    sums.iter()
        .map(|(k, (sum, n))| format!("{k} {:.1} ms", 1000.0 * sum / n.max(1.0)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// User + system CPU time of this process so far (Linux `/proc/self/stat`, 100 ticks/s);
/// zero elsewhere.
/// This process's CPU time (user + system).
fn cpu_time() -> Duration {
    common::cpu_time_of("/proc/self/stat")
}

/// The children's resident memory over the drain: every tenth second's figure, and whether it
/// stayed flat (the peak of the last quarter of the drain within 10 %, at least 1 MiB, of the
/// second quarter's). `None` without samples (in-process runs).
fn rss_over_drain(rss: &[(f64, Vec<u64>)], wall: Duration) -> Option<String> {
    if rss.is_empty() {
        return None;
    }
    let total = |kib: &Vec<u64>| kib.iter().sum::<u64>() as f64 / 1024.0;
    let every_10s: Vec<String> = rss
        .iter()
        .step_by(10)
        .map(|(_, kib)| format!("{:.0}", total(kib)))
        .collect();
    let wall = wall.as_secs_f64();
    let peak = |from: f64, to: f64| {
        rss.iter()
            .filter(|(t, _)| *t >= from * wall && *t <= to * wall)
            .map(|(_, kib)| total(kib))
            .fold(0.0, f64::max)
    };
    let (q2, q4) = (peak(0.25, 0.5), peak(0.75, 1.0));
    let allowed = q2 + (q2 * 0.10).max(1.0);
    Some(format!(
        "formbridge resident memory (MiB, all replicas) every 10 s of the drain: [{}]; peak {:.1} MiB; last quarter's peak {q4:.1} vs second quarter's {q2:.1} MiB: {} (flat up to {allowed:.1} MiB: +10 %, at least +1 MiB)",
        every_10s.join(", "),
        rss.iter().map(|(_, kib)| total(kib)).fold(0.0, f64::max),
        if q4 <= allowed { "flat" } else { "NOT flat" }
    ))
}

fn median_min(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let median = v.get(v.len() / 2).copied().unwrap_or(0.0);
    (median, v.first().copied().unwrap_or(0.0))
}

async fn run_dispatch(locations: usize, burst: u32, store: StoreKind, opts: &Opts) -> Row {
    let window = opts.window;
    let measured = SKIP_WINDOWS + opts.measure_windows;
    // Enough work to keep every location at its budget through the measured windows and one
    // more: 3 requests per lead.
    let per_location = opts.backlog.map_or_else(
        || ((measured + 1) * burst).div_ceil(3) as usize,
        |backlog| backlog.div_ceil(locations),
    );
    let ghl = ghl_sandbox::start(sandbox_config(locations, burst, window))
        .await
        .expect("start sandbox");
    if !opts.latency.is_zero() {
        ghl.sandbox.set_faults(FaultSpec {
            latency_ms: Some(opts.latency.as_millis() as u64),
            ..FaultSpec::default()
        });
    }
    let dir = match &opts.db_dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .expect("tempdir");
    // A fresh PostgreSQL database (dropped at the end of the run), or a SQLite file.
    let pg_db = match store {
        StoreKind::Sqlite => None,
        StoreKind::Postgres { .. } => Some(pg::PgDatabase::create().await),
    };
    let url = match &pg_db {
        Some(db) => db.url.clone(),
        None => format!("sqlite://{}", dir.path().join("bench.db").display()),
    };
    let toml = bench_toml(locations, burst, window);
    let base_url = ghl.base_url.to_string();
    let overrides = |enabled: &str| {
        let mut extra: Vec<(String, String)> = [
            ("server.addr", "127.0.0.1:0"),
            ("store.url", url.as_str()),
            ("ghl.base_url", base_url.as_str()),
            ("dispatch.enabled", enabled),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        if let Some(w) = &opts.workers {
            extra.push(("dispatch.workers".to_owned(), w.clone()));
        }
        extra.extend(opts.set.iter().cloned());
        extra
    };
    let settings_for = |extra: &[(String, String)]| {
        let extra: Vec<(&str, &str)> = extra
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        settings_with_toml(dir.path(), &toml, &extra)
    };
    let deadline = Instant::now() + Duration::from_secs(opts.max_secs);

    // Phase 1: ingest only.
    let settings = settings_for(&overrides("false"));
    let (workers, cap) = (
        settings.dispatch.workers,
        settings.dispatch.per_location_concurrency,
    );
    let app = start_app(settings).await;
    let t = Instant::now();
    let accepted = preload(&app.base, locations, per_location, deadline).await;
    let ingest = t.elapsed();
    app.shutdown().await;

    // Phase 2: dispatch the backlog.
    let extra = overrides("true");
    let app = Dispatcher::start(
        settings_for(&extra),
        store.replicas(),
        opts.process,
        &dir.path().join("config"),
        &extra,
    )
    .await;
    let started = Instant::now();
    let started_utc = OffsetDateTime::now_utc();
    let cpu_before = cpu_time();
    let mut done = 0;
    // Counting a large backlog's statuses costs the machine: look less often.
    let poll = if locations * per_location > 20_000 {
        Duration::from_millis(500)
    } else {
        Duration::from_millis(50)
    };
    // Each child's resident memory (KiB) once a second while it drains.
    let mut rss: Vec<(f64, Vec<u64>)> = Vec::new();
    let mut next_rss = started;
    while Instant::now() < deadline {
        if Instant::now() >= next_rss {
            next_rss += Duration::from_secs(1);
            if let Some(now) = app.child_rss() {
                rss.push((started.elapsed().as_secs_f64(), now));
            }
        }
        let counts = app.store.status_counts().await.expect("status counts");
        done = counts.get(&EventStatus::Done).copied().unwrap_or(0);
        let open: u64 = [
            EventStatus::Pending,
            EventStatus::Processing,
            EventStatus::Retrying,
        ]
        .iter()
        .map(|s| counts.get(s).copied().unwrap_or(0))
        .sum();
        if open == 0 {
            break;
        }
        tokio::time::sleep(poll).await;
    }
    let wall = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_before);
    let child_usage = app.child_usage();
    let ghl_latency = mean_ghl_latency(&app.bases()).await;
    // The log as of the last delivery (or the deadline), before shutdown lets in-flight work end.
    let w = windows(&ghl, 0, window, measured);
    let logged = ghl.state().requests.len();
    let t = Instant::now();
    app.shutdown().await;
    let shutdown = t.elapsed();
    let after_shutdown = ghl.state().requests.len().saturating_sub(logged);
    // Does anything still dispatch once `run_until` has returned?
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after_return = ghl
        .state()
        .requests
        .len()
        .saturating_sub(logged + after_shutdown);
    let per_location_avg: Vec<f64> = (0..locations)
        .map(|n| {
            w.counts.get(&location_id(n)).map_or(0.0, |c| {
                c.iter().skip(SKIP_WINDOWS as usize).sum::<u64>() as f64
                    / f64::from(opts.measure_windows)
            })
        })
        .collect();
    let mut lowest: Vec<(f64, String)> = per_location_avg
        .iter()
        .enumerate()
        .map(|(n, avg)| (*avg, location_id(n)))
        .collect();
    lowest.sort_by(|a, b| a.0.total_cmp(&b.0));
    let lowest: Vec<String> = lowest
        .iter()
        .take(3)
        .map(|(_, loc)| format!("{loc} {:?}", w.counts.get(loc).cloned().unwrap_or_default()))
        .collect();
    let (median, min) = median_min(per_location_avg);
    let gaps: Vec<f64> = w.longest_gap.values().map(Duration::as_secs_f64).collect();
    let gap_max = gaps.iter().copied().fold(0.0, f64::max);
    let (gap_median, _) = median_min(gaps);
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let mut notes = vec![
        format!(
            "{locations} location(s): {accepted}/{} leads pre-loaded in {:.1} s; dispatch: workers = {workers}, per-location concurrency = {cap}",
            locations * per_location,
            ingest.as_secs_f64()
        ),
        format!(
            "{locations} location(s): {} GHL requests over {:.1} s from first to last = {:.0} req/s overall (budget {:.0} req/s); {:.2} requests per delivered event",
            w.total,
            w.span.as_secs_f64(),
            w.total as f64 / w.span.as_secs_f64().max(1e-9),
            locations as f64 * f64::from(burst) / window.as_secs_f64(),
            w.total as f64 / (done.max(1)) as f64
        ),
        format!(
            "{locations} location(s): requests by kind: {}",
            w.kinds
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!(
            "{locations} location(s): longest pause between two requests of one location in the measured windows: median {:.0} ms, max {:.0} ms (window {} ms)",
            gap_median * 1000.0,
            gap_max * 1000.0,
            window.as_millis()
        ),
        format!(
            "{locations} location(s): requests per window of the lowest locations (skipped window first): {}",
            lowest.join("; ")
        ),
        format!(
            "{locations} location(s): mean GHL request time seen by formbridge (formbridge_ghl_request_seconds): {ghl_latency}"
        ),
        match child_usage {
            None => format!(
                "{locations} location(s): this process (formbridge + sandbox) used {:.1} s of CPU in {:.1} s of dispatch = {:.2} of {cores} cores",
                cpu.as_secs_f64(),
                wall.as_secs_f64(),
                cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9),
            ),
            Some(children) => {
                let child_cpu: Duration = children.iter().map(|c| c.0).sum();
                let peaks: Vec<String> = children
                    .iter()
                    .map(|c| format!("{:.1} MiB", c.1 as f64 / 1024.0))
                    .collect();
                format!(
                    "{locations} location(s): formbridge ({} child process(es), info logs) used {:.1} s of CPU in {:.1} s of dispatch = {:.2} of {cores} cores, peak resident memory {}; the sandbox and this bench used {:.1} s of CPU",
                    children.len(),
                    child_cpu.as_secs_f64(),
                    wall.as_secs_f64(),
                    child_cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9),
                    peaks.join(" and "),
                    cpu.as_secs_f64(),
                )
            }
        },
    ];
    notes.push(format!(
        "{locations} location(s): first GHL request {:.1} s after the dispatcher started; shutdown took {:.1} s and sent {after_shutdown} more GHL requests (not counted above), and {after_return} more in the 3 s after it returned",
        w.first
            .map_or(0.0, |f| (f - started_utc).as_seconds_f64()),
        shutdown.as_secs_f64()
    ));
    if let Some(line) = rss_over_drain(&rss, wall) {
        notes.push(format!("{locations} location(s): {line}"));
    }
    let ideal = (locations * per_location * 3) as f64 * window.as_secs_f64()
        / (locations as f64 * f64::from(burst));
    notes.push(format!(
        "{locations} location(s): {done} events delivered in {:.1} s; at exactly the budget (3 requests each, {} per location per {} ms) they take {:.1} s: {:.1} % of the budget over the whole drain",
        wall.as_secs_f64(),
        burst,
        window.as_millis(),
        ideal,
        100.0 * ideal / wall.as_secs_f64().max(1e-9) * done as f64 / ((locations * per_location).max(1)) as f64
    ));
    if done < (locations * per_location) as u64 {
        notes.push(format!(
            "{locations} location(s): stopped at the {} s deadline with {} events not delivered",
            opts.max_secs,
            (locations * per_location) as u64 - done
        ));
    }
    Row {
        label: {
            let mut label = "formbridge dispatch".to_owned();
            if let Some(w) = &opts.workers {
                label.push_str(&format!(", workers={w}"));
            }
            for (k, v) in &opts.set {
                label.push_str(&format!(", {k}={v}"));
            }
            if !opts.latency.is_zero() {
                label.push_str(&format!(", GHL latency {} ms", opts.latency.as_millis()));
            }
            if let Some(d) = &opts.db_dir {
                label.push_str(&format!(", store in {d}"));
            }
            if opts.process {
                label.push_str(", child process");
            }
            label
        },
        store: store.label(),
        locations,
        window,
        burst,
        median,
        min,
        limited: w.limited,
        delivered: format!("{done}/{}", locations * per_location),
        wall,
        notes,
    }
}

/// The sandbox alone: `CLIENT_CONCURRENCY` loops firing `GET /contacts/{id}` for one location
/// with no limiter for `SKIP_WINDOWS + measure_windows` windows.
async fn run_baseline(opts: &Opts) -> Row {
    let (window, burst) = (opts.window, opts.burst);
    let ghl = ghl_sandbox::start(sandbox_config(1, burst, window))
        .await
        .expect("start sandbox");
    let client = reqwest::Client::builder()
        .default_headers(
            [
                (
                    reqwest::header::AUTHORIZATION,
                    format!("Bearer {}", token(0)).parse().expect("header"),
                ),
                (
                    "version".parse().expect("name"),
                    API_VERSION.parse().expect("header"),
                ),
            ]
            .into_iter()
            .collect(),
        )
        .build()
        .expect("client");
    let upsert: serde_json::Value = client
        .post(ghl.base_url.join("contacts/upsert").expect("url"))
        .json(&serde_json::json!({"locationId": location_id(0), "email": "base@example.com"}))
        .send()
        .await
        .expect("seed contact")
        .json()
        .await
        .expect("seed contact body");
    let id = upsert["contact"]["id"]
        .as_str()
        .expect("contact id")
        .to_owned();
    // Let the seed's request leave the window; count only the loop's requests.
    tokio::time::sleep(window).await;
    let from_entry = ghl.state().requests.len();
    let measured = SKIP_WINDOWS + opts.measure_windows;
    let run_for = window * measured;
    let url = ghl.base_url.join(&format!("contacts/{id}")).expect("url");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENT_CONCURRENCY {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while started.elapsed() < run_for {
                if client.get(url.clone()).send().await.is_ok() {
                    n += 1;
                }
            }
            n
        }));
    }
    let mut answered = 0;
    for t in tasks {
        answered += t.await.unwrap_or(0);
    }
    let wall = started.elapsed();
    let w = windows(&ghl, from_entry, window, measured);
    let per_window: Vec<f64> = w
        .counts
        .get(&location_id(0))
        .map(|c| {
            c.iter()
                .skip(SKIP_WINDOWS as usize)
                .map(|n| *n as f64)
                .collect()
        })
        .unwrap_or_default();
    let (median, min) = median_min(per_window);
    Row {
        label: "baseline: sandbox, no limiter".to_owned(),
        store: "—".to_owned(),
        locations: 1,
        window,
        burst,
        median,
        min,
        limited: w.limited,
        delivered: "—".to_owned(),
        wall,
        notes: vec![format!(
            "baseline: the sandbox answered {answered} requests in {:.1} s = {:.0} req/s to {CLIENT_CONCURRENCY} client loops; {} were 429",
            wall.as_secs_f64(),
            answered as f64 / wall.as_secs_f64(),
            w.limited
        )],
    }
}

fn print_row(r: &Row) {
    let budget = f64::from(r.burst);
    println!(
        "| {:<29} | {:<22} | {:>9} | {:>7} | {:>6} | {:>10.1} | {:>8.1} | {:>6.1} % | {:>6.1} % | {:>5} | {:>11} | {:>7.1} s |",
        r.label,
        r.store,
        r.locations,
        format!("{} ms", r.window.as_millis()),
        r.burst,
        r.median,
        r.min,
        100.0 * r.median / budget,
        100.0 * r.min / budget,
        r.limited,
        r.delivered,
        r.wall.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let opts = Opts::parse();
    println!(
        "dispatch benchmark: GHL's rate shape ({} requests per location per window) with the window scaled from GHL's 10 s to {} ms; first {SKIP_WINDOWS} window skipped, {} measured; 3 GHL requests per lead (upsert, tags, note)",
        opts.burst,
        opts.window.as_millis(),
        opts.measure_windows
    );
    if opts.burst_100 != opts.burst {
        println!(
            "burst scaled down to {} per window for runs with 100 or more locations",
            opts.burst_100
        );
    }
    let mut rows = Vec::new();
    if opts.baseline {
        rows.push(run_baseline(&opts).await);
    }
    for &store in &opts.stores {
        for &locations in &opts.locations {
            let burst = if locations >= 100 {
                opts.burst_100
            } else {
                opts.burst
            };
            rows.push(run_dispatch(locations.max(1), burst, store, &opts).await);
        }
    }
    println!();
    println!(
        "| {:<29} | {:<22} | {:>9} | {:>7} | {:>6} | {:>10} | {:>8} | {:>8} | {:>8} | {:>5} | {:>11} | {:>9} |",
        "run", "store", "locations", "window", "budget", "req/window", "min", "share", "min", "429s", "events", "wall"
    );
    println!(
        "|{:-<31}|{:-<24}|{:-<11}|{:-<9}|{:-<8}|{:-<12}|{:-<10}|{:-<10}|{:-<10}|{:-<7}|{:-<13}|{:-<11}|",
        "", "", "", "", "", "", "", "", "", "", "", ""
    );
    for r in &rows {
        print_row(r);
    }
    println!();
    println!("budget = requests per window per location; req/window = achieved, median across locations (baseline: 2xx, median across windows); min = the lowest location (window); share = of the budget; 429s over the whole run; events = delivered/pre-loaded; wall = dispatcher start to last delivery (baseline: loop time)");
    for r in &rows {
        for n in &r.notes {
            if r.store == "—" {
                println!("- {n}");
            } else {
                println!("- {}: {n}", r.store);
            }
        }
    }
}
