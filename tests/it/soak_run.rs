//! The soak run: `formbridge serve` in its own process, dispatch on, against the in-process GHL
//! sandbox at GHL's real budget (100 requests per location per 10 s), fed mixed deliveries at a
//! fixed rate (open loop); the process sampled from /proc and /metrics; at the end the sandbox
//! checked for every acknowledged delivery (lost, duplicated) and for 429s.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ghl_sandbox::{FaultSpec, SandboxConfig, SandboxState};

use crate::common;
use crate::soak_deliveries::{delivery, kind_of, source_name};

/// What to run.
#[derive(Clone, Debug)]
pub struct SoakOptions {
    /// Deliveries per second, spread evenly (open loop: a slow answer does not slow the sender).
    pub rate: f64,
    /// How long deliveries are sent.
    pub duration: Duration,
    /// Time between two samples.
    pub sample_every: Duration,
    /// Sources, one GHL location (and token) each; their tools cycle through the five kinds.
    pub sources: usize,
    /// Delay the sandbox adds to every GHL answer (GHL's own round trip).
    pub ghl_latency: Duration,
    /// Longest wait, once sending stops, for the queue to empty.
    pub drain_limit: Duration,
    /// Where the store's directory is made (default: the system temp dir).
    pub store_dir: Option<PathBuf>,
}

/// One sample of the formbridge process and its queue.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// Seconds since sending began.
    pub at: f64,
    pub rss_kib: u64,
    pub fds: u64,
    pub threads: u64,
    /// User + system CPU time of the process so far.
    pub cpu_secs: f64,
    pub db_bytes: u64,
    pub wal_bytes: u64,
    /// Events pending, processing or retrying (`formbridge_events`).
    pub open_events: u64,
    pub done: u64,
    pub dead: u64,
    /// Deliveries answered 200 so far.
    pub acked: u64,
    /// GHL requests formbridge made (`formbridge_ghl_requests_total`), and those answered 429.
    pub ghl_requests: u64,
    pub ghl_429: u64,
}

/// What one soak run saw.
#[derive(Debug, Default)]
pub struct SoakOutcome {
    pub samples: Vec<Sample>,
    /// When sending stopped (seconds since it began).
    pub load_secs: f64,
    pub sent: u64,
    pub acked: u64,
    /// Deliveries not answered 200, by status or error.
    pub not_acked: BTreeMap<String, u64>,
    /// Answer times of the acknowledged deliveries (µs), sorted.
    pub latencies_us: Vec<u64>,
    /// Whether every event reached done or dead before `drain_limit`; how long that took.
    pub drained: bool,
    pub drain_secs: f64,
    /// Events in the store at the end, by status (from `/metrics`).
    pub events: BTreeMap<String, u64>,
    /// Acknowledged deliveries with no contact or no note in GHL (the first few emails).
    pub lost: u64,
    pub lost_examples: Vec<String>,
    /// Extra contacts or notes for acknowledged deliveries.
    pub duplicated: u64,
    /// GHL requests the sandbox logged, and how many it answered 429.
    pub sandbox_requests: u64,
    pub sandbox_429: u64,
}

/// The store file of a run in `dir`.
fn db_path(dir: &Path) -> PathBuf {
    dir.join("soak.db")
}

fn location_id(index: usize) -> String {
    format!("soakLoc{index:013}")
}

fn token(index: usize) -> String {
    format!("pit-soak-{index}")
}

/// The config layer: one location with its token and one source of the cycling kind per index.
fn soak_toml(sources: usize) -> String {
    let mut toml = String::new();
    for i in 0..sources {
        let name = source_name(i);
        toml.push_str(&format!(
            "[ghl.locations.{name}]\nlocation_id = \"{}\"\ntoken = \"{}\"\n\n[sources.{name}]\nkind = \"{}\"\nauth = \"token\"\nsecret = \"{}\"\nlocation = \"{name}\"\n\n",
            location_id(i),
            token(i),
            kind_of(i),
            common::SECRET,
        ));
    }
    toml
}

/// Runs one soak: starts the sandbox and formbridge, sends, samples, drains, checks.
pub async fn run(opts: &SoakOptions) -> SoakOutcome {
    let dir = match &opts.store_dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .expect("temp dir");
    let ghl = ghl_sandbox::start(SandboxConfig {
        tokens: (0..opts.sources)
            .map(|i| (token(i), vec![location_id(i)]))
            .collect(),
        ..SandboxConfig::default()
    })
    .await
    .expect("start the GHL sandbox");
    if !opts.ghl_latency.is_zero() {
        ghl.sandbox.set_faults(FaultSpec {
            latency_ms: Some(opts.ghl_latency.as_millis() as u64),
            ..FaultSpec::default()
        });
    }
    let config = common::config_dir_with(dir.path(), &soak_toml(opts.sources));
    let store_url = format!("sqlite://{}", db_path(dir.path()).display());
    let ghl_base = ghl.base_url.to_string();
    let env = [
        ("FORMBRIDGE__STORE__URL", store_url.as_str()),
        ("FORMBRIDGE__GHL__BASE_URL", ghl_base.as_str()),
        ("FORMBRIDGE__DISPATCH__ENABLED", "true"),
    ];
    let (mut child, base) = common::start_process(&config, &env);
    let pid = child.id();

    // A delivery unanswered after 30 s counts as not acknowledged; it never stalls the run.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client");
    let sender = Sender::start(client.clone(), base.clone(), opts.clone());
    let mut outcome = SoakOutcome::default();
    let probe = Probe {
        pid,
        db: db_path(dir.path()),
        metrics_url: format!("{base}/metrics"),
        client,
    };
    let started = sender.started;
    let mut next_sample = Instant::now();
    // Sample while sending, then while draining, until the queue is empty or the limit passes.
    let mut load_end: Option<Instant> = None;
    loop {
        tokio::time::sleep_until(next_sample.into()).await;
        next_sample += opts.sample_every;
        let sample = probe.sample(started, sender.acked()).await;
        let open = sample.open_events;
        outcome.samples.push(sample);
        if load_end.is_none() && sender.is_finished() {
            load_end = Some(Instant::now());
        }
        if let Some(end) = load_end {
            if open == 0 && sender.answered_all() {
                outcome.drained = true;
                outcome.drain_secs = end.elapsed().as_secs_f64();
                break;
            }
            if end.elapsed() > opts.drain_limit {
                outcome.drain_secs = end.elapsed().as_secs_f64();
                break;
            }
        }
    }
    let load = sender.finish().await;
    outcome.load_secs = load_end.map_or(0.0, |end| (end - started).as_secs_f64());
    outcome.sent = load.sent;
    outcome.acked = load.acked.len() as u64;
    outcome.not_acked = load.not_acked;
    outcome.latencies_us = load.latencies_us;
    outcome.latencies_us.sort_unstable();
    outcome.events = probe.event_counts().await;

    common::terminate(&mut child).await;
    let state = ghl.state();
    ghl.stop();
    check_in_ghl(&state, &load.acked, &mut outcome);
    outcome
}

/// Counts, from the sandbox's records, acknowledged deliveries without a contact or a note
/// (lost) and extra contacts or notes (duplicated), and the 429s it answered.
fn check_in_ghl(state: &SandboxState, acked: &[String], outcome: &mut SoakOutcome) {
    let text =
        |v: &serde_json::Value, k: &str| v.get(k).and_then(|s| s.as_str()).map(str::to_owned);
    let mut contacts: HashMap<String, Vec<String>> = HashMap::new();
    for c in &state.contacts {
        if let (Some(email), Some(id)) = (text(c, "emailLowerCase"), text(c, "id")) {
            contacts.entry(email).or_default().push(id);
        }
    }
    let mut notes: HashMap<String, u64> = HashMap::new();
    for n in &state.notes {
        if let Some(contact) = text(n, "contactId") {
            *notes.entry(contact).or_default() += 1;
        }
    }
    for email in acked {
        let ids = contacts.get(email).map(Vec::as_slice).unwrap_or_default();
        let note_count: u64 = ids
            .iter()
            .map(|id| notes.get(id).copied().unwrap_or(0))
            .sum();
        if ids.is_empty() || note_count == 0 {
            outcome.lost += 1;
            if outcome.lost_examples.len() < 5 {
                outcome.lost_examples.push(email.clone());
            }
            continue;
        }
        outcome.duplicated += (ids.len() as u64 - 1) + (note_count - 1);
    }
    outcome.sandbox_requests = state.requests.len() as u64;
    outcome.sandbox_429 = state.requests.iter().filter(|r| r.status == 429).count() as u64;
}

/// Reads the formbridge process's figures.
struct Probe {
    pid: u32,
    db: PathBuf,
    metrics_url: String,
    client: reqwest::Client,
}

impl Probe {
    async fn sample(&self, started: Instant, acked: u64) -> Sample {
        let proc_dir = format!("/proc/{}", self.pid);
        let field = |name: &str| common::proc_status(self.pid, name).unwrap_or(0);
        let fds = std::fs::read_dir(format!("{proc_dir}/fd")).map_or(0, |d| d.count() as u64);
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let mut wal = self.db.clone().into_os_string();
        wal.push("-wal");
        let metrics = self.metrics_text().await;
        let events = event_counts(&metrics);
        let count = |s: &str| events.get(s).copied().unwrap_or(0);
        Sample {
            at: started.elapsed().as_secs_f64(),
            rss_kib: field("VmRSS:"),
            fds,
            threads: field("Threads:"),
            cpu_secs: common::cpu_time_of(&format!("{proc_dir}/stat")).as_secs_f64(),
            db_bytes: size(&self.db),
            wal_bytes: size(Path::new(&wal)),
            open_events: count("pending") + count("processing") + count("retrying"),
            done: count("done"),
            dead: count("dead"),
            acked,
            ghl_requests: sum_of(&metrics, "formbridge_ghl_requests_total{", None),
            ghl_429: sum_of(
                &metrics,
                "formbridge_ghl_requests_total{",
                Some("status=\"429\""),
            ),
        }
    }

    async fn metrics_text(&self) -> String {
        match self.client.get(&self.metrics_url).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    async fn event_counts(&self) -> BTreeMap<String, u64> {
        event_counts(&self.metrics_text().await)
    }
}

/// `formbridge_events{status="…"} n` lines as a map.
fn event_counts(metrics: &str) -> BTreeMap<String, u64> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("formbridge_events{status=\""))
        .filter_map(|rest| {
            let (status, value) = rest.split_once("\"}")?;
            Some((status.to_owned(), value.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

/// The sum of the samples whose line starts with `prefix` (and contains `label`, if given).
fn sum_of(metrics: &str, prefix: &str, label: Option<&str>) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix) && label.is_none_or(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Most deliveries awaiting their answer at once; past it the sender waits (and says so).
const MAX_IN_FLIGHT: usize = 512;

/// What the sender recorded.
#[derive(Default)]
struct Load {
    sent: u64,
    acked: Vec<String>,
    not_acked: BTreeMap<String, u64>,
    latencies_us: Vec<u64>,
}

/// Sends delivery `n` at `started + n / rate`, each in its own task.
struct Sender {
    started: Instant,
    load: Arc<Mutex<Load>>,
    in_flight: Arc<tokio::sync::Semaphore>,
    task: tokio::task::JoinHandle<u64>,
}

impl Sender {
    fn start(client: reqwest::Client, base: String, opts: SoakOptions) -> Self {
        let started = Instant::now();
        let load = Arc::new(Mutex::new(Load::default()));
        let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
        let (load2, in_flight2) = (load.clone(), in_flight.clone());
        let task = tokio::spawn(async move {
            let interval = Duration::from_secs_f64(1.0 / opts.rate);
            let mut n = 0u64;
            while started.elapsed() < opts.duration {
                tokio::time::sleep_until((started + interval.mul_f64(n as f64)).into()).await;
                let Ok(permit) = in_flight2.clone().acquire_owned().await else {
                    break;
                };
                let d = delivery(n, opts.sources);
                let url = format!("{base}/hooks/{}?token={}", d.source, common::SECRET);
                let request = client
                    .post(url)
                    .header("content-type", d.content_type)
                    .body(d.body);
                let load = load2.clone();
                tokio::spawn(async move {
                    let t = Instant::now();
                    let answer = request.send().await;
                    let took = t.elapsed().as_micros() as u64;
                    let mut load = load.lock().expect("load lock");
                    match answer {
                        Ok(r) if r.status() == 200 => {
                            load.acked.push(d.email);
                            load.latencies_us.push(took);
                        }
                        Ok(r) => *load.not_acked.entry(r.status().to_string()).or_default() += 1,
                        Err(e) => *load.not_acked.entry(format!("error: {e}")).or_default() += 1,
                    }
                    drop(permit);
                });
                n += 1;
            }
            n
        });
        Self {
            started,
            load,
            in_flight,
            task,
        }
    }

    fn acked(&self) -> u64 {
        self.load.lock().expect("load lock").acked.len() as u64
    }

    fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Whether no delivery awaits its answer.
    fn answered_all(&self) -> bool {
        self.in_flight.available_permits() == MAX_IN_FLIGHT
    }

    async fn finish(self) -> Load {
        let sent = self.task.await.unwrap_or(0);
        // Every answer in (or its permit dropped): all permits back.
        let _all = self
            .in_flight
            .acquire_many(MAX_IN_FLIGHT as u32)
            .await
            .expect("semaphore open");
        let mut load = std::mem::take(&mut *self.load.lock().expect("load lock"));
        load.sent = sent;
        load
    }
}
