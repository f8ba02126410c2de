//! The soak run's verdict (memory, file descriptors and threads flat; every acknowledged
//! delivery done, none lost or duplicated, no 429), its figures, and its samples as CSV.

use std::fmt::Write as _;
use std::path::Path;

use crate::soak_run::{Sample, SoakOutcome};

/// How much higher the last quarter's peak may be than the second quarter's and still count
/// as flat: `relative` of it, but at least `absolute` (in the figure's own unit).
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub relative: f64,
    pub absolute: f64,
}

/// RSS: 10 % (at least 1 MiB). Warm-up (SQLite's page cache, the allocator's arenas, the
/// connection pools) happens in the first quarter, so a process that keeps growing shows it
/// here.
pub const RSS_TOLERANCE: Tolerance = Tolerance {
    relative: 0.10,
    absolute: 1024.0,
};
/// File descriptors and threads: 10 %, at least 5 (connections come and go with the load).
pub const COUNT_TOLERANCE: Tolerance = Tolerance {
    relative: 0.10,
    absolute: 5.0,
};

/// One figure's peaks in the second and the last quarter of the sending time.
#[derive(Debug)]
pub struct Flatness {
    pub q2_max: f64,
    pub q4_max: f64,
    pub allowed: f64,
}

impl Flatness {
    pub fn flat(&self) -> bool {
        self.q4_max <= self.allowed
    }
}

/// The peaks of `value` over the samples in `[L/4, L/2)` and `[3L/4, L]` of the sending time
/// `L`, and the highest last-quarter peak still called flat.
pub fn flatness(
    samples: &[Sample],
    load_secs: f64,
    value: fn(&Sample) -> f64,
    tolerance: Tolerance,
) -> Flatness {
    let peak = |from: f64, to: f64| {
        samples
            .iter()
            .filter(|s| s.at >= from && s.at <= to)
            .map(value)
            .fold(0.0, f64::max)
    };
    let q2_max = peak(load_secs / 4.0, load_secs / 2.0);
    let q4_max = peak(load_secs * 3.0 / 4.0, load_secs);
    let allowed = q2_max + (q2_max * tolerance.relative).max(tolerance.absolute);
    Flatness {
        q2_max,
        q4_max,
        allowed,
    }
}

/// The checks of a soak run, each passed or not with its figures: the process's resources
/// (judged over a long run only) and the deliveries (judged on any run).
pub struct Verdict {
    pub resources: Vec<(bool, String)>,
    pub deliveries: Vec<(bool, String)>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.resources
            .iter()
            .chain(&self.deliveries)
            .all(|(ok, _)| *ok)
    }

    /// The failed delivery checks' lines.
    pub fn delivery_failures(&self) -> Vec<&str> {
        self.deliveries
            .iter()
            .filter(|(ok, _)| !ok)
            .map(|(_, line)| line.as_str())
            .collect()
    }

    pub fn print(&self) {
        for (ok, line) in self.resources.iter().chain(&self.deliveries) {
            println!("{} {line}", if *ok { "PASS" } else { "FAIL" });
        }
        println!("verdict: {}", if self.passed() { "PASS" } else { "FAIL" });
    }
}

fn rss(s: &Sample) -> f64 {
    s.rss_kib as f64
}

fn fds(s: &Sample) -> f64 {
    s.fds as f64
}

fn threads(s: &Sample) -> f64 {
    s.threads as f64
}

/// Judges a soak run.
pub fn verdict(o: &SoakOutcome) -> Verdict {
    let mut resources = Vec::new();
    let mut flat = |name: &str, unit: &str, scale: f64, value: fn(&Sample) -> f64, t: Tolerance| {
        let f = flatness(&o.samples, o.load_secs, value, t);
        resources.push((
            f.flat(),
            format!(
                "{name} flat: peak {:.1}{unit} in the last quarter vs {:.1}{unit} in the second (flat up to {:.1}{unit}: +{:.0} %, at least +{:.0}{unit})",
                f.q4_max / scale,
                f.q2_max / scale,
                f.allowed / scale,
                t.relative * 100.0,
                t.absolute / scale
            ),
        ));
    };
    flat("memory (RSS)", " MiB", 1024.0, rss, RSS_TOLERANCE);
    flat("open file descriptors", "", 1.0, fds, COUNT_TOLERANCE);
    flat("threads", "", 1.0, threads, COUNT_TOLERANCE);
    let mut checks = Vec::new();
    let count = |s: &str| o.events.get(s).copied().unwrap_or(0);
    let open = count("pending") + count("processing") + count("retrying");
    checks.push((
        o.not_acked.is_empty(),
        format!(
            "every delivery acknowledged: {} of {} sent answered 200{}",
            o.acked,
            o.sent,
            if o.not_acked.is_empty() {
                String::new()
            } else {
                format!("; others: {:?}", o.not_acked)
            }
        ),
    ));
    checks.push((
        o.drained && open == 0 && count("dead") == 0 && count("done") >= o.acked,
        format!(
            "every acknowledged delivery done: {} done, {open} open, {} dead, {} acknowledged; queue {} {:.0} s after sending stopped",
            count("done"),
            count("dead"),
            o.acked,
            if o.drained { "empty" } else { "NOT empty" },
            o.drain_secs
        ),
    ));
    checks.push((
        o.lost == 0,
        format!(
            "0 lost: {} acknowledged deliveries without their contact and note in GHL {:?}",
            o.lost, o.lost_examples
        ),
    ));
    checks.push((
        o.duplicated == 0,
        format!(
            "0 duplicated: {} extra contacts or notes in GHL",
            o.duplicated
        ),
    ));
    let formbridge_429 = o.samples.last().map_or(0, |s| s.ghl_429);
    checks.push((
        o.sandbox_429 == 0 && formbridge_429 == 0,
        format!(
            "0 429s: the sandbox answered {} of {} GHL requests with 429 (formbridge counted {formbridge_429})",
            o.sandbox_429, o.sandbox_requests
        ),
    ));
    Verdict {
        resources,
        deliveries: checks,
    }
}

/// The run's figures, one per line: rate, answer times, memory, files, CPU.
pub fn figures(o: &SoakOutcome) -> Vec<String> {
    let pct = |p: f64| {
        let v = &o.latencies_us;
        let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len().max(1)) - 1;
        v.get(i).map_or(0.0, |us| *us as f64 / 1000.0)
    };
    let at_end_of_load = o
        .samples
        .iter()
        .rev()
        .find(|s| s.at <= o.load_secs)
        .or(o.samples.last());
    let last = o.samples.last();
    let first = o.samples.first();
    let mib = |kib: u64| kib as f64 / 1024.0;
    let max = |f: fn(&Sample) -> u64| o.samples.iter().map(f).max().unwrap_or(0);
    let mut lines = vec![
        format!(
            "sent {} deliveries in {:.0} s = {:.1}/s; answered 200: {}; answer time p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms",
            o.sent,
            o.load_secs,
            o.sent as f64 / o.load_secs.max(1e-9),
            o.acked,
            pct(0.5),
            pct(0.99),
            pct(0.999),
            o.latencies_us.last().map_or(0.0, |us| *us as f64 / 1000.0)
        ),
        format!(
            "RSS: first sample {:.1} MiB, peak {:.1} MiB, last {:.1} MiB; open fds peak {}, threads peak {}",
            first.map_or(0.0, |s| mib(s.rss_kib)),
            mib(max(|s| s.rss_kib)),
            last.map_or(0.0, |s| mib(s.rss_kib)),
            max(|s| s.fds),
            max(|s| s.threads)
        ),
        format!(
            "store: database {:.1} MiB at the end, WAL peak {:.1} MiB; open events peak {}",
            last.map_or(0.0, |s| s.db_bytes as f64 / 1048576.0),
            max(|s| s.wal_bytes) as f64 / 1048576.0,
            max(|s| s.open_events)
        ),
        format!(
            "GHL: {} requests ({:.2} per acknowledged delivery), {} answered 429",
            o.sandbox_requests,
            o.sandbox_requests as f64 / (o.acked.max(1)) as f64,
            o.sandbox_429
        ),
    ];
    if let Some(s) = at_end_of_load {
        lines.push(format!(
            "formbridge CPU while sending: {:.1} s in {:.0} s = {:.1} % of one core, {:.0} µs per acknowledged delivery (ingest and dispatch, incl. /metrics scrapes)",
            s.cpu_secs,
            s.at,
            100.0 * s.cpu_secs / s.at.max(1e-9),
            1e6 * s.cpu_secs / (s.acked.max(1)) as f64
        ));
    }
    lines
}

/// Writes the samples as CSV (one header line, one line per sample).
pub fn write_csv(samples: &[Sample], path: &Path) -> std::io::Result<()> {
    let mut csv = String::from(
        "t_s,rss_kib,fds,threads,cpu_s,db_bytes,wal_bytes,open_events,done,dead,acked,ghl_requests,ghl_429\n",
    );
    for s in samples {
        let _ = writeln!(
            csv,
            "{:.1},{},{},{},{:.2},{},{},{},{},{},{},{},{}",
            s.at,
            s.rss_kib,
            s.fds,
            s.threads,
            s.cpu_secs,
            s.db_bytes,
            s.wal_bytes,
            s.open_events,
            s.done,
            s.dead,
            s.acked,
            s.ghl_requests,
            s.ghl_429
        );
    }
    std::fs::write(path, csv)
}

/// Reads samples back from a CSV that [`write_csv`] wrote.
pub fn read_csv(path: &Path) -> std::io::Result<Vec<Sample>> {
    let text = std::fs::read_to_string(path)?;
    let bad = |line: &str| std::io::Error::other(format!("not a soak CSV line: {line}"));
    text.lines()
        .skip(1)
        .map(|line| {
            let v: Vec<f64> = line
                .split(',')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|_| bad(line))?;
            let [at, rss_kib, fds, threads, cpu_secs, db, wal, open, done, dead, acked, ghl, ghl_429] =
                v[..]
            else {
                return Err(bad(line));
            };
            Ok(Sample {
                at,
                rss_kib: rss_kib as u64,
                fds: fds as u64,
                threads: threads as u64,
                cpu_secs,
                db_bytes: db as u64,
                wal_bytes: wal as u64,
                open_events: open as u64,
                done: done as u64,
                dead: dead as u64,
                acked: acked as u64,
                ghl_requests: ghl as u64,
                ghl_429: ghl_429 as u64,
            })
        })
        .collect()
}
