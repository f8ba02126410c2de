//! Ingest benchmark: what one acknowledged delivery costs `formbridge serve`, against a plain
//! axum handler that answers 200 without storing, measured in the same run with the same load
//! generator. Each server is its own process, so its CPU time (`/proc/<pid>/stat`) and memory
//! (`/proc/<pid>/status`) are its own and not the load generator's:
//! - `plain`: this bench binary re-run as a one-route axum server (`--plain-server`);
//! - `sqlite`: the release `formbridge serve` on a real SQLite file (WAL, each delivery
//!   fsync'd before its 200), dispatch off, logging at `info` as it ships;
//! - `pg`: the same on a fresh PostgreSQL database (`FORMBRIDGE_TEST_PG_URL`, else the local
//!   server), dropped at the end.
//!
//! Each server goes through three phases, every delivery a unique ~1.1 KB JivoChat
//! `offline_message` over keep-alive HTTP/1.1 connections:
//! 1. **saturate**: `--connections` connections send back to back for `--secs`; printed: 200s
//!    per second and **CPU µs per acknowledged delivery** (the figure that travels: the load
//!    generator shares the machine's cores, so throughput depends on it, CPU per delivery
//!    much less);
//! 2. **rate**: an open-loop load of `--rate` requests per second for `--secs` (each request has
//!    its due time, and its latency counts from then, so a stalled server is not hidden by a
//!    waiting client); printed: p50, p99, p99.9 and the worst;
//! 3. **memory**: RSS idle (listening, before any request), the peak over the run, and the RSS
//!    with `--pending` deliveries stored (the store is topped up to that count first).
//!
//! Run: `cargo bench --bench ingest` (options: `-- --secs 10 --connections 64 --rate 3000
//! --pending 100000 --servers plain,sqlite,pg`, and `--edits` to send every delivery as one more
//! revision of one submission). The formbridge binary is `FORMBRIDGE_TEST_BIN`
//! when set, else the one cargo builds for the bench (the release profile).

/// The benches' command-line options.
#[path = "support/args.rs"]
mod args;
/// The integration tests' helpers: the server process, PostgreSQL databases.
#[path = "../tests/it/common.rs"]
#[allow(dead_code, clippy::unwrap_used)]
mod common;
/// The delivery every request sends.
#[path = "support/jivochat_delivery.rs"]
mod jivochat_delivery;
/// PostgreSQL test databases, shared with the integration tests.
#[path = "../tests/it/pg.rs"]
#[allow(dead_code, clippy::unwrap_used)]
mod pg;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The JivoChat source's token in the bench's servers.
const TOKEN: &str = "bench-ingest-token-0123456789abcdef";

fn num(name: &str, default: u64) -> u64 {
    args::arg(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A server under test: its process and the URL deliveries go to.
struct Server {
    label: &'static str,
    child: Child,
    url: String,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) the process `pid` has used.
fn cpu_seconds(pid: u32) -> f64 {
    common::cpu_time_of(&format!("/proc/{pid}/stat")).as_secs_f64()
}

/// A `/proc/<pid>/status` figure in MB (`VmRSS`, `VmHWM`).
fn memory_mb(pid: u32, key: &str) -> f64 {
    common::proc_status(pid, &format!("{key}:")).map_or(0.0, |kb| kb as f64 / 1024.0)
}

/// One keep-alive HTTP/1.1 connection that posts and reads whole answers.
struct Connection {
    stream: TcpStream,
    host: String,
    path: String,
    buf: Vec<u8>,
}

impl Connection {
    async fn open(url: &str) -> Connection {
        let rest = url.strip_prefix("http://").expect("an http:// URL");
        let (host, path) = rest.split_once('/').expect("a path");
        let stream = TcpStream::connect(host).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Connection {
            stream,
            host: host.to_owned(),
            path: format!("/{path}"),
            buf: Vec::with_capacity(4096),
        }
    }

    /// Posts `body`; the answer's status, or `None` when the connection failed.
    async fn post(&mut self, body: &str) -> Option<u16> {
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.path,
            self.host,
            body.len()
        );
        self.stream.write_all(request.as_bytes()).await.ok()?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            let n = self.stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
            let Some(head_end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = std::str::from_utf8(&self.buf[..head_end]).ok()?;
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if self.buf.len() >= head_end + 4 + length {
                return head.get(9..12)?.parse().ok();
            }
        }
    }
}

/// Unique delivery numbers across every phase and server.
static NEXT_DELIVERY: AtomicU64 = AtomicU64::new(1);

fn next_body(template: &str) -> String {
    jivochat_delivery::body(template, NEXT_DELIVERY.fetch_add(1, Ordering::Relaxed))
}

/// Saturating load: `connections` connections post back to back for `secs` (or until `until`
/// deliveries were acknowledged); returns the 200s.
async fn saturate(
    url: &str,
    template: &Arc<String>,
    connections: u64,
    secs: f64,
    until: u64,
) -> u64 {
    let acked = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (url, template, acked) = (url.to_owned(), template.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::open(&url).await;
            while Instant::now() < deadline && acked.load(Ordering::Relaxed) < until {
                match conn.post(&next_body(&template)).await {
                    Some(200) => {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(_) => {}
                    None => conn = Connection::open(&url).await,
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    acked.load(Ordering::Relaxed)
}

/// Latencies of an open-loop load, sorted.
struct Latencies {
    sorted: Vec<Duration>,
    sent: u64,
    /// How many requests got each answer, by status (`None`: the connection closed or failed
    /// first).
    answers: std::collections::BTreeMap<Option<u16>, u64>,
}

impl Latencies {
    /// The requests answered 200.
    fn ok(&self) -> u64 {
        self.answers.get(&Some(200)).copied().unwrap_or(0)
    }

    fn pct(&self, p: f64) -> f64 {
        let i = ((self.sorted.len() as f64 * p) as usize).min(self.sorted.len().saturating_sub(1));
        self.sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }
}

/// Open-loop load: request `i` is due at `start + i / rate`, sent on connection `i % conns`
/// (a connection behind schedule sends at once), its latency counted from its due time.
async fn at_rate(url: &str, template: &Arc<String>, rate: u64, secs: f64, conns: u64) -> Latencies {
    let total = (rate as f64 * secs) as u64;
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::new();
    for k in 0..conns {
        let (url, template) = (url.to_owned(), template.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::open(&url).await;
            let mut latencies = Vec::new();
            let mut answers = std::collections::BTreeMap::new();
            let mut i = k;
            while i < total {
                let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
                tokio::time::sleep_until(due).await;
                let status = conn.post(&next_body(&template)).await;
                latencies.push(due.elapsed());
                *answers.entry(status).or_insert(0) += 1;
                if status.is_none() {
                    conn = Connection::open(&url).await;
                }
                i += conns;
            }
            (latencies, answers)
        }));
    }
    let mut all = Latencies {
        sorted: Vec::with_capacity(total as usize),
        sent: total,
        answers: std::collections::BTreeMap::new(),
    };
    for t in tasks {
        if let Ok((l, answers)) = t.await {
            all.sorted.extend(l);
            for (status, n) in answers {
                *all.answers.entry(status).or_insert(0) += n;
            }
        }
    }
    all.sorted.sort();
    all
}

/// This binary as the plain baseline: one route answering 200, no storage.
fn plain_server() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let app = axum::Router::new().route(
            "/hooks/{source}",
            axum::routing::post(|_body: axum::body::Bytes| async { r#"{"result":"ok"}"# }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("listening {}", listener.local_addr().expect("addr"));
        axum::serve(listener, app).await.expect("serve");
    });
}

fn start_plain() -> Server {
    use std::io::BufRead;
    let mut child = Command::new(std::env::current_exe().expect("this binary"))
        .arg("--plain-server")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the plain server");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the plain server's address");
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .expect("listening line");
    Server {
        label: "plain axum handler (no storage)",
        child,
        url: format!("http://{addr}/hooks/jivochat"),
    }
}

fn start_formbridge(label: &'static str, store_url: &str) -> Server {
    let (child, base) = common::start_process(
        &common::config_dir(),
        &[
            ("FORMBRIDGE__STORE__URL", store_url),
            ("FORMBRIDGE__DISPATCH__ENABLED", "false"),
            ("FORMBRIDGE__SOURCES__JIVOCHAT__SECRET", TOKEN),
            // Every connection comes from this one address, as from a proxy: the per-client
            // cap (64) would close a phase's new connections while the server has not yet
            // seen the last phase's ones close.
            ("FORMBRIDGE__SERVER__MAX_CONNECTIONS_PER_CLIENT", "1024"),
        ],
    );
    Server {
        label,
        child,
        url: format!("{base}/hooks/jivochat?token={TOKEN}"),
    }
}

/// What one server did in the three phases.
struct Figures {
    label: &'static str,
    per_second: f64,
    cpu_us: f64,
    latencies: Latencies,
    idle_mb: f64,
    pending_mb: f64,
    pending: u64,
    peak_mb: f64,
}

async fn measure(server: &Server, template: &Arc<String>, opts: &Options) -> Figures {
    let pid = server.pid();
    // Idle: started and listening, nothing received yet.
    let idle_mb = memory_mb(pid, "VmRSS");
    // Warm-up: connections, caches, the first pages of the store.
    saturate(&server.url, template, opts.connections, 1.0, u64::MAX).await;
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    let acked = saturate(&server.url, template, opts.connections, opts.secs, u64::MAX).await;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu_before;
    let latencies = at_rate(
        &server.url,
        template,
        opts.rate,
        opts.secs,
        opts.connections,
    )
    .await;
    // Top the store up to `pending` deliveries (none is dispatched: dispatch is off).
    let sent_so_far = acked + latencies.ok();
    let more = opts.pending.saturating_sub(sent_so_far);
    let topped = if more > 0 && !server.label.starts_with("plain") {
        saturate(&server.url, template, opts.connections, 3600.0, more).await
    } else {
        0
    };
    Figures {
        label: server.label,
        per_second: acked as f64 / elapsed,
        cpu_us: cpu / acked.max(1) as f64 * 1e6,
        latencies,
        idle_mb,
        pending_mb: memory_mb(pid, "VmRSS"),
        pending: sent_so_far + topped,
        peak_mb: memory_mb(pid, "VmHWM"),
    }
}

struct Options {
    secs: f64,
    connections: u64,
    rate: u64,
    pending: u64,
}

fn main() {
    if std::env::args().any(|a| a == "--plain-server") {
        plain_server();
        return;
    }
    let opts = Options {
        secs: num("--secs", 10) as f64,
        connections: num("--connections", 64),
        rate: num("--rate", 3000),
        pending: num("--pending", 100_000),
    };
    let servers = args::arg("--servers").unwrap_or_else(|| "plain,sqlite,pg".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let edits = std::env::args().any(|a| a == "--edits");
        let template = Arc::new(jivochat_delivery::body_template(edits));
        assert!(
            !edits || !template.contains(r#""offline_message_id":{N}"#),
            "the fixture's message id is where --edits expects it"
        );
        println!(
            "ingest benchmark: {} s saturating over {} connections, {} s at {} req/s open-loop, \
             then {} deliveries stored; JSON body {} B",
            opts.secs,
            opts.connections,
            opts.secs,
            opts.rate,
            opts.pending,
            next_body(&template).len()
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let mut measured = Vec::new();
        let mut databases = Vec::new();
        for name in servers.split(',').map(str::trim) {
            let server = match name {
                "plain" => start_plain(),
                "sqlite" => {
                    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
                    start_formbridge("formbridge, SQLite (fsync)", &url)
                }
                "pg" => {
                    let db = pg::PgDatabase::create().await;
                    let server = start_formbridge("formbridge, PostgreSQL", &db.url);
                    databases.push(db);
                    server
                }
                other => panic!("--servers: unknown server {other} (plain, sqlite, pg)"),
            };
            let figures = measure(&server, &template, &opts).await;
            drop(server);
            measured.push(figures);
        }
        print_table(&measured, &opts);
        drop(databases);
    });
}

fn print_table(measured: &[Figures], opts: &Options) {
    println!(
        "| {:<32} | {:>8} | {:>10} | {:>7} | {:>7} | {:>8} | {:>8} | {:>7} | {:>7} | {:>13} |",
        "server",
        "200/s",
        "CPU µs/200",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "idle MB",
        "peak MB",
        "MB at pending"
    );
    println!(
        "|{:-<34}|{:-<10}|{:-<12}|{:-<9}|{:-<9}|{:-<10}|{:-<10}|{:-<9}|{:-<9}|{:-<15}|",
        "", "", "", "", "", "", "", "", "", ""
    );
    for f in measured {
        let l = &f.latencies;
        // The plain handler stores nothing: no figure with deliveries pending.
        let at_pending = if f.label.starts_with("plain") {
            "—".to_owned()
        } else {
            format!("{:.1} ({}k)", f.pending_mb, f.pending / 1000)
        };
        println!(
            "| {:<32} | {:>8.0} | {:>10.1} | {:>7.2} | {:>7.2} | {:>8.2} | {:>8.2} | {:>7.1} | {:>7.1} | {:>13} |",
            f.label,
            f.per_second,
            f.cpu_us,
            l.pct(0.50),
            l.pct(0.99),
            l.pct(0.999),
            l.pct(1.0),
            f.idle_mb,
            f.peak_mb,
            at_pending
        );
        if l.ok() < l.sent {
            let others: Vec<String> = l
                .answers
                .iter()
                .filter_map(|(status, n)| match status {
                    Some(200) => None,
                    Some(code) => Some(format!("{n} × {code}")),
                    None => Some(format!("{n} × connection closed or failed")),
                })
                .collect();
            println!(
                "  {}: {} of {} open-loop requests not answered 200 ({})",
                f.label,
                l.sent - l.ok(),
                l.sent,
                others.join(", ")
            );
        }
    }
    if let Some(plain) = measured.iter().find(|f| f.label.starts_with("plain")) {
        for f in measured.iter().filter(|f| !f.label.starts_with("plain")) {
            println!(
                "{}: {:.0} % of the plain handler's rate, {:.1}x its CPU per request",
                f.label,
                100.0 * f.per_second / plain.per_second,
                f.cpu_us / plain.cpu_us
            );
        }
    }
    println!(
        "(rate phase: {} req/s offered for {} s)",
        opts.rate, opts.secs
    );
}
