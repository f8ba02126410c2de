//! Hostile-HTTP benchmark: a steady, open-loop stream of ordinary HMAC-signed deliveries (default
//! 200/s, ~1 KB JSON) to a `formbridge serve` process (the release binary, SQLite, dispatch
//! off), first with no attack (the baseline, same run), then during each attack in turn:
//! - `slowloris`: 200 connections sending a request head one header per second;
//! - `slow-bodies`: 200 connections with a URL token sending their body a byte per 200 ms;
//! - `header-flood`: 4 loops of 80 headers, a 20 KB header, a 100 KB head, a 10 KB URI;
//! - `oversize`: 4 loops of a 1 GB Content-Length and a chunked body past the 1 MiB limit;
//! - `many-parts`: 4 loops of a 1 MiB multipart body of 20,000 parts;
//! - `deep-json`: 4 loops of 1 MiB of `[`;
//! - `malformed`: 4 loops of invalid UTF-8, path tricks, content-type lies and replayed or
//!   wrong signatures.
//!
//! Attackers connect from 127.0.0.2-9, the ordinary senders from 127.0.0.1 and 127.0.0.10-12
//! (the server's per-client cap counts each address apart). Each phase lets its attack run `--ramp` seconds before the
//! stream is measured for `--seconds`. Latency is from each delivery's scheduled send time to
//! its answer. The server's CPU time (utime + stime) and its peak RSS (sampled every 100 ms)
//! are read from /proc, so they are the server's alone; the load generator shares the cores.
//! `µs/attack` is the server's CPU beyond the baseline phase's, divided by the attack requests
//! answered (or slow connections ended) while the stream was measured.
//!
//! Run: `cargo bench --bench hostile` (options: `-- --seconds N --rate R --ramp S
//! --attacks slowloris,header-flood,...`).

/// The integration tests' helpers (the binary's path, starting a server process).
#[path = "../tests/it/common.rs"]
#[allow(dead_code, clippy::unwrap_used)]
mod common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use formbridge::sources::auth::hmac_sha256_hex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

/// The URL token of the `dripjobs` source.
const TOKEN: &str = "bench-token";
/// The HMAC key of the `signed` source the ordinary stream delivers to.
const HMAC_KEY: &str = "bench-hmac-key";
/// Longest wait for one answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// The `--name value` options of the command line.
struct Options(BTreeMap<String, String>);

impl Options {
    fn from_args() -> Self {
        let args: Vec<String> = std::env::args().collect();
        let pairs = args
            .windows(2)
            .filter_map(|w| Some((w[0].strip_prefix("--")?.to_owned(), w[1].clone())));
        Self(pairs.collect())
    }

    /// Option `name` parsed, or `default` when absent or unreadable.
    fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        self.0
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attack {
    Slowloris,
    SlowBodies,
    HeaderFlood,
    Oversize,
    ManyParts,
    DeepJson,
    Malformed,
}

impl Attack {
    const ALL: [Attack; 7] = [
        Attack::Slowloris,
        Attack::SlowBodies,
        Attack::HeaderFlood,
        Attack::Oversize,
        Attack::ManyParts,
        Attack::DeepJson,
        Attack::Malformed,
    ];

    fn name(self) -> &'static str {
        match self {
            Attack::Slowloris => "slowloris",
            Attack::SlowBodies => "slow-bodies",
            Attack::HeaderFlood => "header-flood",
            Attack::Oversize => "oversize",
            Attack::ManyParts => "many-parts",
            Attack::DeepJson => "deep-json",
            Attack::Malformed => "malformed",
        }
    }

    /// How many attackers run at once.
    fn attackers(self) -> usize {
        match self {
            Attack::Slowloris | Attack::SlowBodies => 200,
            _ => 4,
        }
    }
}

/// What the attackers got back, by answer (`431`, `closed`, ...).
#[derive(Default)]
struct Tally(Mutex<BTreeMap<String, u64>>);

impl Tally {
    fn add(&self, outcome: impl Into<String>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(outcome.into()).or_default() += 1;
    }

    fn total(&self) -> u64 {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.values().sum()
    }

    fn summary(&self) -> (u64, String) {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let total = map.values().sum();
        let text = map
            .iter()
            .map(|(k, v)| format!("{k}×{v}"))
            .collect::<Vec<_>>()
            .join(" ");
        (total, text)
    }
}

async fn connect_from(ip: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind((ip, 0).into())?;
    socket.connect(to).await
}

/// The status of the answer `reader` gives (`closed` if none came), read within the timeout.
async fn status_of<R: AsyncRead + Unpin>(reader: &mut R) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(ANSWER_TIMEOUT, async {
        while got.len() < 12 {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    match (read, got.get(9..12)) {
        (Ok(()), Some(status)) => String::from_utf8_lossy(status).into_owned(),
        (Ok(()), None) => "closed".to_owned(),
        (Err(_), _) => "no-answer".to_owned(),
    }
}

/// Sends `request` on a new connection from `ip` and returns the answer's status, reading while
/// it writes (the server may answer before the request is all sent).
async fn one_shot(ip: Ipv4Addr, to: SocketAddr, request: &[u8]) -> String {
    let Ok(stream) = connect_from(ip, to).await else {
        return "connect-failed".to_owned();
    };
    let (mut reader, mut writer) = stream.into_split();
    let request = request.to_vec();
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(&request).await;
        writer
    });
    let status = status_of(&mut reader).await;
    writing.abort();
    status
}

fn request(path: &str, headers: &[String], body: &[u8]) -> Vec<u8> {
    let mut out = format!("POST {path} HTTP/1.1\r\nHost: formbridge\r\n").into_bytes();
    for h in headers {
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// The requests one looping attack cycles through.
fn attack_requests(attack: Attack) -> Vec<Vec<u8>> {
    let hook = format!("/hooks/dripjobs?token={TOKEN}");
    let json = "Content-Type: application/json".to_owned();
    let small = br#"{"deal_id":"x","customer_email":"a@example.com"}"#;
    match attack {
        Attack::HeaderFlood => {
            let mut many = vec![json.clone()];
            many.extend((0..80).map(|i| format!("X-Flood-{i}: {i}")));
            let huge = vec![json.clone(), format!("User-Agent: {}", "a".repeat(20_000))];
            let giant = vec![format!("X-Giant: {}", "g".repeat(100_000))];
            let long_uri = format!("{hook}&pad={}", "u".repeat(10_000));
            vec![
                request(&hook, &many, small),
                request(&hook, &huge, small),
                request(&hook, &giant, small),
                request(&long_uri, std::slice::from_ref(&json), small),
            ]
        }
        Attack::Oversize => {
            let declared = format!(
                "POST {hook} HTTP/1.1\r\nHost: formbridge\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
            );
            let mut chunked = format!(
                "POST {hook} HTTP/1.1\r\nHost: formbridge\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            .into_bytes();
            for _ in 0..24 {
                chunked.extend_from_slice(format!("{:x}\r\n", 65_536).as_bytes());
                chunked.extend_from_slice(&[b' '; 65_536]);
                chunked.extend_from_slice(b"\r\n");
            }
            chunked.extend_from_slice(b"0\r\n\r\n");
            vec![declared.into_bytes(), chunked]
        }
        Attack::ManyParts => {
            let mut body = Vec::new();
            while body.len() < 1_000_000 {
                body.extend_from_slice(
                    b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n",
                );
            }
            body.extend_from_slice(b"--b--\r\n");
            let ct = "Content-Type: multipart/form-data; boundary=b".to_owned();
            vec![request(&hook, &[ct], &body)]
        }
        Attack::DeepJson => vec![request(&hook, &[json], &vec![b'['; 1_000_000])],
        Attack::Malformed => {
            let form = "Content-Type: application/x-www-form-urlencoded".to_owned();
            let wrong = format!(
                "X-Hub-Signature-256: sha256={}",
                hmac_sha256_hex(b"wrong", small)
            );
            let replayed = format!(
                "X-Hub-Signature-256: sha256={}",
                hmac_sha256_hex(HMAC_KEY.as_bytes(), b"{\"other\":\"body\"}")
            );
            vec![
                request(
                    &hook,
                    std::slice::from_ref(&json),
                    b"{\"name\":\"Jos\xe9\"}",
                ),
                request(&hook, std::slice::from_ref(&form), b"name=Jos%E9"),
                request(&hook, std::slice::from_ref(&form), small),
                request(
                    &format!("/hooks/jot%FFform?token={TOKEN}"),
                    std::slice::from_ref(&json),
                    small,
                ),
                request(
                    &format!("/hooks/..%2Fadmin?token={TOKEN}"),
                    std::slice::from_ref(&json),
                    small,
                ),
                request("/hooks/signed", &[json.clone(), wrong], small),
                request("/hooks/signed", &[json, replayed], small),
            ]
        }
        Attack::Slowloris | Attack::SlowBodies => Vec::new(),
    }
}

/// One attacker: loops its requests (or holds its slow connection, reconnecting when closed)
/// until `stop`.
async fn attacker(
    attack: Attack,
    n: usize,
    to: SocketAddr,
    requests: Arc<Vec<Vec<u8>>>,
    tally: Arc<Tally>,
    stop: CancellationToken,
) {
    // 127.0.0.2-9: 25 of the 200 slow connections per address, under the per-client cap.
    let ip = Ipv4Addr::new(127, 0, 0, 2 + (n % 8) as u8);
    let mut i = n;
    while !stop.is_cancelled() {
        let outcome = match attack {
            Attack::Slowloris => slow(ip, to, false, &stop).await,
            Attack::SlowBodies => slow(ip, to, true, &stop).await,
            _ => {
                let request = &requests[i % requests.len()];
                i += 1;
                tokio::select! {
                    status = one_shot(ip, to, request) => status,
                    () = stop.cancelled() => return,
                }
            }
        };
        tally.add(outcome);
    }
}

/// Opens a connection from `ip` and sends a request slowly: its head one header a second, or
/// (`body`) a whole head and then its body a byte every 200 ms. Returns how it ended.
async fn slow(ip: Ipv4Addr, to: SocketAddr, body: bool, stop: &CancellationToken) -> String {
    let Ok(mut stream) = connect_from(ip, to).await else {
        // Refused at the per-client or connection cap: try again shortly.
        tokio::time::sleep(Duration::from_millis(50)).await;
        return "connect-failed".to_owned();
    };
    let head = if body {
        format!("POST /hooks/dripjobs?token={TOKEN} HTTP/1.1\r\nHost: formbridge\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{")
    } else {
        format!("POST /hooks/dripjobs?token={TOKEN} HTTP/1.1\r\nHost: formbridge\r\n")
    };
    if stream.write_all(head.as_bytes()).await.is_err() {
        return "closed".to_owned();
    }
    let (every, piece): (u64, &[u8]) = if body {
        (200, b" ")
    } else {
        (1000, b"X-Slow: 1\r\n")
    };
    let mut tick = tokio::time::interval(Duration::from_millis(every));
    tick.tick().await;
    let mut buf = [0u8; 1024];
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => return match read {
                Ok(n) if n >= 12 => String::from_utf8_lossy(&buf[9..12]).into_owned(),
                _ => "closed".to_owned(),
            },
            _ = tick.tick() => {
                if stream.write_all(piece).await.is_err() {
                    return "closed".to_owned();
                }
            }
            () = stop.cancelled() => return "held-to-end".to_owned(),
        }
    }
}

/// The ordinary stream's figures.
struct Stream {
    sent: usize,
    ok: usize,
    failed: BTreeMap<String, u64>,
    latencies: Vec<Duration>,
}

impl Stream {
    fn pct(&self, p: f64) -> Duration {
        let n = self.latencies.len();
        if n == 0 {
            return Duration::ZERO;
        }
        self.latencies[((n as f64 * p) as usize).min(n - 1)]
    }
}

/// Sends `rate` deliveries a second for `seconds`, open loop; latency from each scheduled time.
async fn ordinary_stream(base: &str, label: &str, rate: u32, seconds: u64) -> Stream {
    // Four senders (127.0.0.1, .10, .11, .12), as several form tools would be: one address
    // alone would meet the per-client cap (64) whenever the machine stalls the answers.
    let clients: Vec<reqwest::Client> = [1u8, 10, 11, 12]
        .into_iter()
        .map(|last| {
            reqwest::Client::builder()
                .local_address(std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
                .pool_max_idle_per_host(64)
                .build()
                .unwrap_or_default()
        })
        .collect();
    let url = format!("{base}/hooks/signed");
    let total = rate as u64 * seconds;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    let mut tasks = Vec::with_capacity(total as usize);
    let padding = "p".repeat(900);
    for n in 0..total {
        let scheduled = tick.tick().await;
        let body = format!(
            r#"{{"id":"{label}-{n}","email":"ordinary{n}@example.com","first_name":"Ordinary","message":"{padding}"}}"#
        );
        let signature = format!(
            "sha256={}",
            hmac_sha256_hex(HMAC_KEY.as_bytes(), body.as_bytes())
        );
        let (client, url) = (clients[n as usize % clients.len()].clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let answer = client
                .post(url)
                .header("content-type", "application/json")
                .header("x-hub-signature-256", signature)
                .body(body)
                .timeout(ANSWER_TIMEOUT)
                .send()
                .await;
            let outcome = match answer {
                Ok(r) => r.status().as_u16().to_string(),
                Err(e) if e.is_timeout() => "timeout".to_owned(),
                Err(_) => "error".to_owned(),
            };
            (outcome, scheduled.elapsed())
        }));
    }
    let mut stream = Stream {
        sent: tasks.len(),
        ok: 0,
        failed: BTreeMap::new(),
        latencies: Vec::with_capacity(tasks.len()),
    };
    for task in tasks {
        let Ok((outcome, latency)) = task.await else {
            continue;
        };
        if outcome == "200" {
            stream.ok += 1;
        } else {
            *stream.failed.entry(outcome).or_default() += 1;
        }
        stream.latencies.push(latency);
    }
    stream.latencies.sort();
    stream
}

/// The server process's CPU time so far (user + system), from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    Duration::from_secs_f64((ticks(11) + ticks(12)) as f64 / clock_ticks_per_second())
}

/// The unit of /proc's CPU times (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The server's `formbridge_http_client_cap_reached_total` (connections closed at once because
/// their address held `server.max_connections_per_client`), from its /metrics.
async fn client_cap_closes(base: &str) -> u64 {
    let text = match reqwest::get(format!("{base}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    text.lines()
        .find_map(|l| l.strip_prefix("formbridge_http_client_cap_reached_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// The server process's resident memory now, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

struct Row {
    label: &'static str,
    attack_total: u64,
    /// Attack requests answered (or slow connections ended) while the stream was measured.
    attack_in_window: u64,
    attack_outcomes: String,
    /// Connections the per-client cap closed at once during the phase.
    client_cap_closes: u64,
    stream: Stream,
    cpu: Duration,
    seconds: u64,
    peak_rss: f64,
}

fn print_header() {
    println!(
        "| {:<13} | {:>7} | {:>7} | {:>8} | {:>8} | {:>8} | {:>6} | {:>6} | {:>8} | {:>9} | {:>10} | attack answers (whole phase)",
        "attack", "sent", "200", "p50 ms", "p99 ms", "max ms", "p99 ×", "CPU %", "RSS MiB", "attacks/s", "µs/attack",
    );
    println!(
        "|{:-<15}|{:-<9}|{:-<9}|{:-<10}|{:-<10}|{:-<10}|{:-<8}|{:-<8}|{:-<10}|{:-<11}|{:-<12}|{:-<16}",
        "", "", "", "", "", "", "", "", "", "", "", ""
    );
}

/// One phase's line; `baseline` is the no-attack phase (its p99 and CPU).
fn print_row(row: &Row, baseline: Option<&Row>) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let baseline_p99 = baseline.map_or(Duration::ZERO, |b| b.stream.pct(0.99));
    let per_second = row.attack_in_window as f64 / row.seconds as f64;
    // The server's CPU beyond the baseline's, per attack request.
    let extra_cpu = row.cpu.as_secs_f64() - baseline.map_or(0.0, |b| b.cpu.as_secs_f64());
    let per_attack = if row.attack_in_window > 0 {
        format!(
            "{:.0}",
            1e6 * extra_cpu.max(0.0) / row.attack_in_window as f64
        )
    } else {
        "-".to_owned()
    };
    let p99 = row.stream.pct(0.99);
    let ratio = if baseline_p99.is_zero() {
        1.0
    } else {
        p99.as_secs_f64() / baseline_p99.as_secs_f64()
    };
    let mut answers = format!("{} ({})", row.attack_total, row.attack_outcomes);
    if !row.stream.failed.is_empty() {
        answers.push_str(&format!("; ordinary not 200: {:?}", row.stream.failed));
    }
    if row.client_cap_closes > 0 {
        answers.push_str(&format!(
            "; closed at the per-client cap: {}",
            row.client_cap_closes
        ));
    }
    println!(
        "| {:<13} | {:>7} | {:>7} | {:>8.2} | {:>8.2} | {:>8.2} | {:>6.1} | {:>6.0} | {:>8.1} | {:>9.0} | {:>10} | {}",
        row.label,
        row.stream.sent,
        row.stream.ok,
        ms(row.stream.pct(0.50)),
        ms(p99),
        ms(row.stream.latencies.last().copied().unwrap_or_default()),
        ratio,
        100.0 * row.cpu.as_secs_f64() / row.seconds as f64,
        row.peak_rss,
        per_second,
        per_attack,
        answers
    );
}

#[tokio::main]
async fn main() {
    let options = Options::from_args();
    let seconds: u64 = options.get("seconds", 10);
    let rate: u32 = options.get("rate", 200);
    let ramp: u64 = options.get("ramp", 2);
    let chosen: String = options.get("attacks", String::new());
    let attacks: Vec<Attack> = if chosen.is_empty() {
        Attack::ALL.to_vec()
    } else {
        chosen
            .split(',')
            .map(|name| {
                Attack::ALL
                    .into_iter()
                    .find(|a| a.name() == name.trim())
                    .unwrap_or_else(|| panic!("--attacks: unknown attack {name}"))
            })
            .collect()
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite://{}", dir.path().join("hostile.db").display());
    let env = [
        ("FORMBRIDGE__STORE__URL", store.as_str()),
        ("FORMBRIDGE__DISPATCH__ENABLED", "false"),
        ("FORMBRIDGE__SOURCES__DRIPJOBS__SECRET", TOKEN),
        ("FORMBRIDGE__SOURCES__SIGNED__AUTH", "hmac"),
        ("FORMBRIDGE__SOURCES__SIGNED__SECRET", HMAC_KEY),
        (
            "FORMBRIDGE__SOURCES__SIGNED__SIGNATURE_HEADER",
            "x-hub-signature-256",
        ),
        ("FORMBRIDGE__SOURCES__SIGNED__DEDUPE_FIELD", "id"),
    ];
    let (mut child, base) = common::start_process(&common::config_dir(), &env);
    let pid = child.id();
    let to: SocketAddr = base
        .trim_start_matches("http://")
        .parse()
        .expect("server address");

    println!(
        "hostile HTTP benchmark: {} (SQLite, fsync, dispatch off), {rate} ordinary signed deliveries/s (~1 KB JSON, open loop) for {seconds} s per phase after a {ramp} s ramp",
        common::formbridge_bin().display(),
    );
    // Warm up the store and the client's pool.
    ordinary_stream(&base, "warm-up", rate, 2).await;
    print_header();
    let mut phases: Vec<Option<Attack>> = vec![None];
    phases.extend(attacks.iter().copied().map(Some));
    let mut baseline: Option<Row> = None;
    let mut worst: Vec<String> = Vec::new();
    for attack in phases {
        let stop = CancellationToken::new();
        let tally = Arc::new(Tally::default());
        let cap_closes_before = client_cap_closes(&base).await;
        let mut attackers = Vec::new();
        if let Some(attack) = attack {
            let requests = Arc::new(attack_requests(attack));
            for n in 0..attack.attackers() {
                attackers.push(tokio::spawn(attacker(
                    attack,
                    n,
                    to,
                    requests.clone(),
                    tally.clone(),
                    stop.clone(),
                )));
            }
            tokio::time::sleep(Duration::from_secs(ramp)).await;
        }
        let label = attack.map_or("none", Attack::name);
        let sampling = CancellationToken::new();
        let peak = {
            let sampling = sampling.clone();
            tokio::spawn(async move {
                let mut peak = 0.0f64;
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                while !sampling.is_cancelled() {
                    tick.tick().await;
                    peak = peak.max(rss_mib(pid));
                }
                peak
            })
        };
        let cpu_before = cpu_time(pid);
        let attacks_before = tally.total();
        let stream = ordinary_stream(&base, label, rate, seconds).await;
        let cpu = cpu_time(pid).saturating_sub(cpu_before);
        let attack_in_window = tally.total() - attacks_before;
        sampling.cancel();
        let peak_rss = peak.await.unwrap_or_default();
        stop.cancel();
        for a in attackers {
            let _ = tokio::time::timeout(Duration::from_secs(5), a).await;
        }
        let (attack_total, attack_outcomes) = tally.summary();
        let client_cap_closes = client_cap_closes(&base).await - cap_closes_before;
        let row = Row {
            label,
            attack_total,
            attack_in_window,
            attack_outcomes,
            client_cap_closes,
            stream,
            cpu,
            seconds,
            peak_rss,
        };
        print_row(&row, baseline.as_ref());
        let baseline_p99 = baseline
            .as_ref()
            .map_or(row.stream.pct(0.99), |b| b.stream.pct(0.99));
        if row.stream.ok < row.stream.sent || row.stream.pct(0.99) > baseline_p99 * 5 {
            worst.push(label.to_owned());
        }
        if attack.is_none() {
            baseline = Some(row);
        }
    }
    println!();
    if worst.is_empty() {
        println!("every attack: all ordinary deliveries stored, p99 within 5× the baseline");
    } else {
        println!("over 5× the baseline p99, or an ordinary delivery not stored: {worst:?}");
    }
    let _ = child.kill();
    let _ = child.wait();
}
