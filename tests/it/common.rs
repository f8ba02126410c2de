//! Test harness: start formbridge on port 0 with a fresh SQLite file, and read fixtures.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use formbridge::app::Application;
use formbridge::settings::{ConfigSource, Settings};
use formbridge::store::Store;
use tempfile::TempDir;

/// Held by the tests that load the machine (several server processes, or a timing measure), so
/// that no two of them run at once: on two cores they would measure each other's load. Async
/// tests `HEAVY.lock().await`; plain ones `HEAVY.blocking_lock()`.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Secret of every built-in source in tests.
pub const SECRET: &str = "test-secret-of-formbridge-tests-0001";

/// A running formbridge with its own store file.
pub struct TestApp {
    pub base: String,
    pub store: Arc<dyn Store>,
    pub client: reqwest::Client,
    pub dir: TempDir,
    /// The dispatcher, when the test drives it ([`spawn_driven`], [`TestApp::drain`]).
    pub dispatcher: Option<Arc<formbridge::dispatch::Dispatcher>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

/// Settings for tests: port 0, a store file in `dir`, every built-in source with `SECRET`,
/// plus `extra` overrides. The process environment is ignored.
pub fn test_settings(dir: &Path, extra: &[(&str, &str)]) -> Settings {
    load_settings(config_dir(), dir, extra)
}

/// Loads `default.toml` (+ `test.toml`) from `config` with the test overrides: port 0, a store
/// file in `dir`, dispatch off, every built-in source with `SECRET`, then `extra`.
fn load_settings(config: PathBuf, dir: &Path, extra: &[(&str, &str)]) -> Settings {
    let url = format!("sqlite://{}", dir.join("formbridge.db").display());
    let mut overrides: Vec<(&str, &str)> = vec![
        ("server.addr", "127.0.0.1:0"),
        ("store.url", url.as_str()),
        ("dispatch.enabled", "false"),
        ("sources.jotform.secret", SECRET),
        ("sources.powr.secret", SECRET),
        ("sources.123formbuilder.secret", SECRET),
        ("sources.jivochat.secret", SECRET),
        ("sources.dripjobs.secret", SECRET),
    ];
    overrides.extend_from_slice(extra);
    let source = ConfigSource::named(config, "test");
    Settings::load_without_env(&source, &overrides).unwrap()
}

/// Settings whose `test.toml` layer is `toml` (written to a temp config dir beside a copy of
/// `config/default.toml`), then `test_settings`' overrides and `extra`.
pub fn settings_with_toml(dir: &Path, toml: &str, extra: &[(&str, &str)]) -> Settings {
    load_settings(config_dir_with(dir, toml), dir, extra)
}

/// A config folder in `dir`: a copy of `config/default.toml` and `toml` as `test.toml`.
pub fn config_dir_with(dir: &Path, toml: &str) -> PathBuf {
    let config = dir.join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::copy(
        config_dir().join("default.toml"),
        config.join("default.toml"),
    )
    .unwrap();
    std::fs::write(config.join("test.toml"), toml).unwrap();
    config
}

/// The `formbridge` binary that process tests run: `FORMBRIDGE_TEST_BIN` when set (CI points
/// it at the release binary it just built, the one that ships), else the one cargo built for
/// this test run.
pub fn formbridge_bin() -> PathBuf {
    std::env::var_os("FORMBRIDGE_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_formbridge")))
}

/// DripJobs mapping for process tests: the default contact, tags and note, plus one task.
pub const DRIPJOBS_TASK_MAPPING: &str = r#"
[[sources.dripjobs.mapping.tasks]]
title = "Call {{first_name}}"
body = "New DripJobs lead {{email}}"
due_in = "2h"
"#;

/// The environment of a `formbridge serve` process that dispatches the DripJobs source to the
/// GHL sandbox at `ghl_base` on a 1 s rate window, with short leases, polls and backoffs so
/// that process tests (SIGKILL, replicas) recover quickly.
pub fn dispatching_env(
    store_url: &str,
    ghl_base: &str,
    token: &str,
    location: &str,
) -> Vec<(String, String)> {
    [
        ("FORMBRIDGE__STORE__URL", store_url),
        ("FORMBRIDGE__SOURCES__DRIPJOBS__SECRET", SECRET),
        ("FORMBRIDGE__GHL__BASE_URL", ghl_base),
        ("FORMBRIDGE__GHL__TOKEN", token),
        ("FORMBRIDGE__GHL__LOCATION_ID", location),
        ("FORMBRIDGE__GHL__REQUEST_TIMEOUT", "1s"),
        // The sandbox's lost answers come after the work: nothing lands late.
        ("FORMBRIDGE__GHL__LATE_WRITE_WINDOW", "1s"),
        ("FORMBRIDGE__GHL__RATE_LIMIT__WINDOW", "1s"),
        ("FORMBRIDGE__DISPATCH__ENABLED", "true"),
        ("FORMBRIDGE__DISPATCH__POLL_INTERVAL", "50ms"),
        ("FORMBRIDGE__DISPATCH__LEASE", "4s"),
        ("FORMBRIDGE__DISPATCH__MAX_BUDGET_WAIT", "500ms"),
        ("FORMBRIDGE__DISPATCH__RETRY__INITIAL_BACKOFF", "50ms"),
        ("FORMBRIDGE__DISPATCH__RETRY__MAX_BACKOFF", "500ms"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Runs `formbridge serve` as a child process with `FORMBRIDGE_ENV=test`, the config folder
/// `config` and the given `FORMBRIDGE__…` variables (port 0), and returns it with its base URL
/// (read from its JSON "listening" log line).
pub fn start_process(config: &Path, env: &[(&str, &str)]) -> (std::process::Child, String) {
    let mut cmd = std::process::Command::new(formbridge_bin());
    cmd.arg("serve");
    spawn_listening(cmd, config, env)
}

/// Spawns `cmd` (which runs `formbridge serve`, perhaps through a wrapper) with the test
/// environment of [`start_process`], and waits for its "listening" line.
pub fn spawn_listening(
    mut cmd: std::process::Command,
    config: &Path,
    env: &[(&str, &str)],
) -> (std::process::Child, String) {
    cmd.env("FORMBRIDGE_CONFIG_DIR", config)
        .env("FORMBRIDGE_ENV", "test")
        .env("FORMBRIDGE__SERVER__ADDR", "127.0.0.1:0")
        .env("FORMBRIDGE__TELEMETRY__LOG_FORMAT", "json")
        .env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (child, listening) = spawn_until_listening(cmd);
    let addr = listening["addr"].as_str().unwrap().to_owned();
    (child, format!("http://{addr}"))
}

/// Spawns `cmd` (a `formbridge serve` logging JSON on stdout) and returns it with its
/// "formbridge listening" log line (`addr`, and `ops_addr` when an ops port is set).
pub fn spawn_until_listening(
    mut cmd: std::process::Command,
) -> (std::process::Child, serde_json::Value) {
    use std::io::{BufRead, BufReader};
    cmd.stdout(std::process::Stdio::piped())
        .stderr(if test_log() {
            std::process::Stdio::inherit()
        } else {
            std::process::Stdio::null()
        });
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let listening = loop {
        let line = lines
            .next()
            .expect("server exited before listening (TEST_LOG=1 shows its log)")
            .unwrap();
        if test_log() {
            eprintln!("[formbridge] {line}");
        }
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            if v["message"] == "formbridge listening" {
                break v;
            }
        }
    };
    // Keep draining stdout (the server's log) so it never blocks on a full pipe; show it with
    // TEST_LOG.
    let show = test_log();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if show {
                eprintln!("[formbridge] {line}");
            }
        }
    });
    (child, listening)
}

/// Stops a `formbridge serve` child gracefully: SIGTERM, then waits for it to leave (SIGKILL
/// after 40 s).
pub async fn terminate(child: &mut std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(40);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A figure of `/proc/<pid>/status`: `VmRSS:` or `VmHWM:` (KiB), `Threads:`; `None` when the
/// process is gone.
pub fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// User + system CPU time from a `/proc/<pid>/stat` file (100 ticks per second); zero when it
/// cannot be read.
pub fn cpu_time_of(stat_path: &str) -> Duration {
    let (user, system) = cpu_times_of(stat_path);
    user + system
}

/// User and system CPU time, apart, from a `/proc/<pid>/stat` file (100 ticks per second);
/// zero when it cannot be read.
pub fn cpu_times_of(stat_path: &str) -> (Duration, Duration) {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let mut ticks = rest
        .split_whitespace()
        .skip(11)
        .map(|v| Duration::from_millis(v.parse::<u64>().unwrap_or(0) * 10));
    (
        ticks.next().unwrap_or_default(),
        ticks.next().unwrap_or_default(),
    )
}

/// Waits (at most `timeout`) for `child` to exit and returns its status.
pub async fn exit_of(
    child: &mut std::process::Child,
    timeout: Duration,
) -> std::process::ExitStatus {
    wait_for(timeout, "the process to exit", || {
        let status = child.try_wait().unwrap();
        async move { status }
    })
    .await
}

/// Acknowledged deliveries (their `deal_id`s) of [`post_until_gone`].
pub type Acked = Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>;

/// `senders` tasks post distinct DripJobs deliveries to `base` as fast as they can, each until
/// one is not acknowledged (the server stopping or gone); every `200` lands in `acked`.
pub fn post_until_gone(
    base: &str,
    senders: usize,
    acked: &Acked,
) -> Vec<tokio::task::JoinHandle<()>> {
    let client = reqwest::Client::new();
    (0..senders)
        .map(|sender| {
            let (client, base, acked) = (client.clone(), base.to_owned(), acked.clone());
            tokio::spawn(async move {
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
                        _ => break,
                    }
                }
            })
        })
        .collect()
}

/// Waits until `acked` holds at least `n` deliveries.
pub async fn wait_for_acks(acked: &Acked, n: usize) {
    wait_for(Duration::from_secs(60), "acknowledgements", || {
        let got = acked.lock().unwrap().len();
        async move { (got >= n).then_some(()) }
    })
    .await;
}

/// The `deal_id` of every delivery stored in the SQLite store at `db` (opened anew).
pub async fn stored_deals(db: &str) -> std::collections::BTreeSet<String> {
    use formbridge::settings::StoreSettings;
    use formbridge::store::{AdminReads, EventFilter, SqliteStore};
    let store = SqliteStore::open(&StoreSettings::with_url(db))
        .await
        .unwrap();
    let mut stored = std::collections::BTreeSet::new();
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
    stored
}

/// Fails naming every acknowledged delivery missing from `stored`.
pub fn assert_none_lost(
    acked: &std::collections::BTreeSet<String>,
    stored: &std::collections::BTreeSet<String>,
) {
    let missing: Vec<_> = acked.difference(stored).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged deliveries lost: {missing:?}",
        missing.len()
    );
}

/// Whether `TEST_LOG` asks for the servers' tracing output (`TEST_LOG=1 cargo test`).
pub fn test_log() -> bool {
    env_flag("TEST_LOG")
}

/// Whether the variable `name` is set to something other than empty or `0`.
fn env_flag(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Prints `line` on stderr past the test harness's capture: shown for a passing test too.
pub fn note(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Skips the running test, which this machine cannot run: `why` says what is missing and how
/// to run it. One `SKIPPED <test>: <why>` line ([`note`]); the caller then returns. With
/// `FORMBRIDGE_TEST_NO_SKIP` set (CI sets it) the test fails instead: nothing passes by being
/// skipped.
pub fn skip(why: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    assert!(
        !env_flag("FORMBRIDGE_TEST_NO_SKIP"),
        "{test} cannot run here and FORMBRIDGE_TEST_NO_SKIP forbids skipping it: {why}"
    );
    note(&format!("SKIPPED {test}: {why}"));
}

/// With `TEST_LOG` set, prints this process's tracing output (in-process apps) at debug level,
/// or at the level `RUST_LOG` names.
pub fn init_test_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if test_log() {
        ONCE.call_once(|| {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("formbridge=debug,info"));
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        });
    }
}

/// Starts the app in this process.
pub async fn spawn_app(extra: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(dir.path(), extra);
    spawn_with(settings, dir).await
}

pub async fn spawn_with(settings: Settings, dir: TempDir) -> TestApp {
    start(settings, dir, false).await
}

/// Like [`spawn_with`], but the dispatcher does not run by itself: the test runs it with
/// [`TestApp::drain`].
pub async fn spawn_driven(settings: Settings, dir: TempDir) -> TestApp {
    start(settings, dir, true).await
}

async fn start(settings: Settings, dir: TempDir, driven: bool) -> TestApp {
    init_test_log();
    let mut app = Application::build(settings).await.unwrap();
    let dispatcher = if driven {
        let dispatcher = app.take_dispatcher();
        assert!(
            dispatcher.is_some(),
            "a driven app needs dispatch.enabled and GHL credentials"
        );
        dispatcher
    } else {
        None
    };
    let base = format!("http://{}", app.local_addr());
    let store = app.store();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        base,
        store,
        client: reqwest::Client::new(),
        dir,
        dispatcher,
        shutdown: Some(tx),
    }
}

impl TestApp {
    /// Runs the dispatcher of a [`spawn_driven`] app until no event is pending, processing or
    /// retrying. Each pass runs every due event to completion; when the rest wait for a later
    /// retry, it waits until the earliest of them is due. Panics after `timeout`.
    pub async fn drain(&self, timeout: Duration) {
        use formbridge::store::{EventFilter, EventStatus};
        let dispatcher = self.dispatcher.as_ref().expect("drain needs spawn_driven");
        let deadline = Instant::now() + timeout;
        loop {
            let ran = dispatcher.run_once().await;
            let counts = self.store.status_counts().await.unwrap();
            let open = [
                EventStatus::Pending,
                EventStatus::Processing,
                EventStatus::Retrying,
            ]
            .iter()
            .map(|s| counts[s])
            .sum::<u64>();
            if open == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "events still open after {timeout:?}: {counts:?}"
            );
            if ran == 0 {
                let waiting = EventFilter {
                    status: Some(EventStatus::Retrying),
                    limit: Some(500),
                    ..EventFilter::default()
                };
                let events = self.store.list_events(&waiting).await.unwrap();
                let next = events.iter().map(|e| e.next_attempt_at).min();
                let wait = next
                    .map(|at| (at - time::OffsetDateTime::now_utc()).max(time::Duration::ZERO))
                    .and_then(|d| Duration::try_from(d).ok())
                    .unwrap_or(Duration::from_millis(10));
                let until = (Instant::now() + wait).min(deadline);
                tokio::time::sleep_until(until.into()).await;
            }
        }
    }
}

/// A recorded delivery: its content type and exact body bytes.
pub struct Fixture {
    pub name: String,
    pub source: String,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// Every fixture under `tests/fixtures/<source>/` (a body file with a `.meta` beside it whose
/// first line is `Content-Type: …`).
pub fn fixtures(source: &str) -> Vec<Fixture> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(source);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.unwrap().path();
        if !path.is_file() || path.extension().is_some_and(|e| e == "meta" || e == "md") {
            continue;
        }
        let meta = path.with_extension("meta");
        let Ok(meta) = std::fs::read_to_string(&meta) else {
            continue;
        };
        let content_type = meta
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("Content-Type:"))
            .map(|v| v.trim().to_owned());
        out.push(Fixture {
            name: path.file_name().unwrap().to_string_lossy().into_owned(),
            source: source.to_owned(),
            content_type,
            body: std::fs::read(&path).unwrap(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Polls `check` until it returns `Some`, or panics after `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl TestApp {
    /// POSTs a body to `/hooks/{source}?token=…`.
    pub async fn post_hook(
        &self,
        source: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut url = format!("{}/hooks/{source}", self.base);
        if let Some(t) = token {
            url.push_str(&format!("?token={t}"));
        }
        let mut req = self.client.post(url).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.send().await.unwrap()
    }

    /// `GET {path}` on this app (no credentials).
    pub async fn get(&self, path: &str) -> reqwest::Response {
        let url = format!("{}{path}", self.base);
        self.client.get(url).send().await.unwrap()
    }

    /// The events in `status`, newest first.
    pub async fn events_in(
        &self,
        status: formbridge::store::EventStatus,
    ) -> Vec<formbridge::store::EventSummary> {
        let filter = formbridge::store::EventFilter {
            status: Some(status),
            ..Default::default()
        };
        self.store.list_events(&filter).await.unwrap()
    }

    /// The Prometheus text of `GET /metrics`.
    pub async fn metrics_text(&self) -> String {
        let resp = self.client.get(format!("{}/metrics", self.base)).send();
        resp.await.unwrap().text().await.unwrap()
    }

    pub async fn total_events(&self) -> u64 {
        self.store.status_counts().await.unwrap().values().sum()
    }
}

impl TestApp {
    /// The `sqlite://…` URL of this app's store file (for running the binary on it).
    pub fn store_url(&self) -> String {
        format!(
            "sqlite://{}",
            self.dir.path().join("formbridge.db").display()
        )
    }
}

/// Stores one delivery of `source` (an empty JSON body under dedupe key `key`) and prepares it
/// as ready for `location` with contact key `contact` and an empty plan: queue work without
/// going through ingress and mapping.
pub async fn add_prepared(
    store: &dyn Store,
    location: &str,
    source: &str,
    key: &str,
    contact: &str,
) -> formbridge::domain::EventId {
    use formbridge::store::{NewEvent, Preparation};
    let id = store
        .insert_event(NewEvent {
            source: formbridge::domain::SourceName::parse(source).unwrap(),
            dedupe_key: key.to_owned(),
            content_hash: None,
            content_type: Some("application/json".into()),
            headers: vec![],
            body: bytes::Bytes::from_static(b"{}"),
            received_at: time::OffsetDateTime::now_utc(),
        })
        .await
        .unwrap()
        .id();
    let prep = Preparation::Ready {
        submission: serde_json::json!({}),
        plan: formbridge::domain::Plan::default(),
        contact_key: contact.into(),
        location_id: location.into(),
    };
    store.save_preparations(&[(id, prep)]).await.unwrap();
    id
}
