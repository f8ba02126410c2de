//! Property: preparing a delivery (normalize + plan + encode, as the preparer does) takes time
//! linear in its body, for every source and for the body shapes that used to be quadratic
//! (repeated names, headerless parts, Jotform uploads and `pretty`, JivoChat transcripts,
//! HTML entities, tags from a long list), so no body up to the size limit can stall dispatch.
//!
//! Wall-clock bounds are flaky on a loaded machine, so the property compares a body with its
//! 4× longer version: linear work takes about 4× as long, quadratic 16×. Times are the
//! thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`: other processes' load does not count), each size
//! keeps the fastest of several runs (load only ever adds time), the bound (10×) leaves 2×
//! headroom over linear (4-5× measured), and the larger runs are abandoned once they cannot
//! meet the bound, so a quadratic normalizer fails in seconds instead of minutes.
#![allow(clippy::unwrap_used)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use formbridge::body::BodyLimits;
use formbridge::domain::SourceName;
use formbridge::mapping::{build_plan, CompiledMapping, MappingError};
use formbridge::settings::SourceSettings;
use formbridge::sources::{normalize, SourceKind};
use proptest::prelude::*;
use time::macros::datetime;

/// Units (fields, parts, answers, messages …) in the smaller body of a pair.
const UNITS: usize = 4_000;
/// How much longer the larger body is.
const SCALE: u32 = 4;
/// Largest accepted time ratio between the larger and the smaller body (linear: 4, quadratic: 16).
const MAX_RATIO: u32 = 10;
/// Runs per size; the fastest counts.
const RUNS: usize = 3;
/// How much longer than its CPU-time bound a run may take on the wall clock (a loaded machine).
const WALL_SLACK: u32 = 10;

/// A body shape that grows with a number of units.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// `a=…&a=…&…`: one name repeated (generic urlencoded), its values also tags.
    RepeatedName,
    /// `a[]=…&a[]=…`: an explicit list.
    ListName,
    /// Distinct names.
    DistinctNames,
    /// Multipart parts without a Content-Disposition (all named `field`).
    HeaderlessParts,
    /// Multipart file parts of one name.
    FileParts,
    /// A JSON array of objects (DripJobs).
    JsonObjects,
    /// Jotform uploads: `temp_upload` entries and their bare URL keys.
    JotformUploads,
    /// Jotform answers with a `pretty` text listing each of them.
    JotformPretty,
    /// A JivoChat transcript whose messages name their agents.
    JivoTranscript,
    /// One DripJobs answer (its HTML is stripped) made of `&` characters.
    HtmlEntities,
}

const SHAPES: [Shape; 10] = [
    Shape::RepeatedName,
    Shape::ListName,
    Shape::DistinctNames,
    Shape::HeaderlessParts,
    Shape::FileParts,
    Shape::JsonObjects,
    Shape::JotformUploads,
    Shape::JotformPretty,
    Shape::JivoTranscript,
    Shape::HtmlEntities,
];

/// One delivery to prepare.
#[derive(Debug, Clone)]
struct Delivery {
    kind: SourceKind,
    settings: SourceSettings,
    content_type: &'static str,
    body: Bytes,
}

const MULTIPART: &str = "multipart/form-data; boundary=XyZ";
const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

fn part(headers: &str, value: &str) -> String {
    format!("--XyZ\r\n{headers}\r\n\r\n{value}\r\n")
}

fn named(name: &str) -> String {
    format!("Content-Disposition: form-data; name=\"{name}\"")
}

fn jotform(raw_request: &serde_json::Value, pretty: &str) -> String {
    let mut body = part(&named("submissionID"), "5");
    body.push_str(&part(&named("pretty"), pretty));
    body.push_str(&part(&named("rawRequest"), &raw_request.to_string()));
    body.push_str("--XyZ--\r\n");
    body
}

/// The body of `shape` with `n` units; `name` and `value` vary the units' text.
fn delivery(shape: Shape, n: usize, name: &str, value: &str) -> Delivery {
    let plain = |kind, content_type, body: String| Delivery {
        kind,
        settings: serde_json::from_str("{}").unwrap(),
        content_type,
        body: Bytes::from(body),
    };
    let lead = "email=lead%40example.com";
    match shape {
        Shape::RepeatedName => {
            let mut body = lead.to_owned();
            for i in 0..n {
                body.push_str(&format!("&{name}={value}{i}"));
            }
            let rules =
                serde_json::json!({"mapping": {"tags": {"from_answers": [{"answer": name}]}}});
            Delivery {
                settings: serde_json::from_value(rules).unwrap(),
                ..plain(SourceKind::generic(), FORM, body)
            }
        }
        Shape::ListName => {
            let mut body = lead.to_owned();
            for _ in 0..n {
                body.push_str(&format!("&{name}%5B%5D={value}"));
            }
            plain(SourceKind::parse("dripjobs").unwrap(), FORM, body)
        }
        Shape::DistinctNames => {
            let mut body = lead.to_owned();
            for i in 0..n {
                body.push_str(&format!("&{name}{i}={value}"));
            }
            plain(SourceKind::parse("123formbuilder").unwrap(), FORM, body)
        }
        Shape::HeaderlessParts => {
            let mut body = part(&named("email"), "lead@example.com");
            for _ in 0..n {
                body.push_str(&part("Content-Type: text/plain", value));
            }
            body.push_str("--XyZ--\r\n");
            plain(SourceKind::generic(), MULTIPART, body)
        }
        Shape::FileParts => {
            let mut body = part(&named("email"), "lead@example.com");
            for i in 0..n {
                let headers = format!(
                    "{}; filename=\"{value}{i}.txt\"",
                    named(&format!("{name}[]"))
                );
                body.push_str(&part(&headers, "x"));
            }
            body.push_str("--XyZ--\r\n");
            plain(SourceKind::parse("powr").unwrap(), MULTIPART, body)
        }
        Shape::JsonObjects => {
            let items: Vec<_> = (0..n)
                .map(|i| serde_json::json!({name: value, "email": format!("l{i}@example.com")}))
                .collect();
            let body = serde_json::json!({"deal_id": "7", "items": items});
            plain(
                SourceKind::parse("dripjobs").unwrap(),
                JSON,
                body.to_string(),
            )
        }
        Shape::JotformUploads => {
            let mut raw = serde_json::Map::new();
            let mut uploads = serde_json::Map::new();
            raw.insert("q1_email".into(), "lead@example.com".into());
            for i in 0..n {
                uploads.insert(format!("q{}_{name}{i}", i + 2), serde_json::json!([value]));
            }
            raw.insert("temp_upload".into(), uploads.into());
            for i in 0..n {
                let url = format!("https://files.example.com/{value}{i}");
                raw.insert(format!("{name}{i}"), serde_json::json!([url]));
            }
            let body = jotform(&serde_json::Value::Object(raw), "");
            plain(SourceKind::parse("jotform").unwrap(), MULTIPART, body)
        }
        Shape::JotformPretty => {
            let mut raw = serde_json::Map::new();
            let mut pretty = Vec::new();
            raw.insert("q1_email".into(), "lead@example.com".into());
            for i in 0..n {
                let answer = format!("{value}{i}");
                pretty.push(format!("{name} {i}:{answer}"));
                raw.insert(format!("q{}_{name}{i}", i + 2), answer.into());
            }
            let body = jotform(&serde_json::Value::Object(raw), &pretty.join(", "));
            plain(SourceKind::parse("jotform").unwrap(), MULTIPART, body)
        }
        Shape::JivoTranscript => {
            let agents: Vec<_> = (0..n)
                .map(|i| serde_json::json!({"id": i, "name": format!("{name}{i}")}))
                .collect();
            let messages: Vec<_> = (0..n)
                .map(|i| {
                    serde_json::json!({"message": format!("{value}."), "type": "agent", "agent_id": n - 1 - i, "timestamp": 1_700_000_000 + i})
                })
                .collect();
            let body = serde_json::json!({
                "event_name": "chat_finished",
                "chat_id": 1,
                "visitor": {"email": "lead@example.com"},
                "agents": agents,
                "chat": {"messages": messages},
            });
            plain(
                SourceKind::parse("jivochat").unwrap(),
                JSON,
                body.to_string(),
            )
        }
        Shape::HtmlEntities => {
            let body = format!("{lead}&{name}={}x", "%26".repeat(n * 4));
            plain(SourceKind::parse("dripjobs").unwrap(), FORM, body)
        }
    }
}

/// What the preparer does with a delivery, minus the store.
fn prepare(d: &Delivery) {
    let source = SourceName::parse("props").unwrap();
    let sub = normalize(
        &source,
        d.kind,
        &d.settings.read_options(),
        &BodyLimits::UNLIMITED,
        Some(d.content_type),
        &d.body,
        datetime!(2025-01-01 00:00 UTC),
    )
    .unwrap();
    let mapping = CompiledMapping::compile(&d.settings.mapping, &source, d.kind).unwrap();
    match build_plan(&mapping, &sub) {
        Ok(plan) => {
            serde_json::to_value(&plan).unwrap();
        }
        Err(MappingError::NoContact { .. }) => {}
    }
    serde_json::to_value(&sub).unwrap();
}

/// CPU time this thread has run (other processes' load does not count), where the OS tells it.
#[cfg(unix)]
fn thread_cpu_time() -> Option<Duration> {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    let secs = u64::try_from(t.tv_sec).ok()?;
    let nanos = u32::try_from(t.tv_nsec).ok()?;
    Some(Duration::new(secs, nanos))
}

#[cfg(not(unix))]
fn thread_cpu_time() -> Option<Duration> {
    None
}

/// The CPU time (else the wall-clock time) preparing `d` takes.
fn timed(d: &Delivery) -> Duration {
    let (started, cpu_before) = (Instant::now(), thread_cpu_time());
    prepare(d);
    match (cpu_before, thread_cpu_time()) {
        (Some(before), Some(after)) => after.saturating_sub(before),
        _ => started.elapsed(),
    }
}

/// Times `small` then `large`, [`RUNS`] times each, on one thread (so both sizes see the same
/// warmed-up allocator), and checks that the fastest `large` run is within [`MAX_RATIO`] times
/// the fastest `small` one. The runs of `large` are abandoned (the thread ends with the test
/// process) once they cannot meet the bound any more.
fn check_linear(small: Delivery, large: Delivery) -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        prepare(&small); // warm up (lazy statics, allocator)
        for d in std::iter::repeat_n(&small, RUNS).chain(std::iter::repeat_n(&large, RUNS)) {
            if tx.send((d.body.len(), timed(d))).is_err() {
                return;
            }
        }
    });
    let mut fastest_small = Duration::MAX;
    let mut small_len = 0;
    for _ in 0..RUNS {
        let (len, t) = rx
            .recv()
            .map_err(|_| "the preparation panicked".to_owned())?;
        small_len = len;
        fastest_small = fastest_small.min(t);
    }
    // Never below 1 ms, so timer granularity cannot make the bound absurd.
    let bound = fastest_small.max(Duration::from_millis(1)) * MAX_RATIO;
    // Every run of `large` may take up to the bound in CPU time; a quadratic one takes longer
    // each. The wait is wall-clock time, so it leaves room for a machine busy with other work
    // (the thread may get a tenth of a core) before a run is given up as too slow.
    let deadline = Instant::now() + bound * RUNS as u32 * WALL_SLACK;
    let mut fastest_large = None;
    for _ in 0..RUNS {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((_, t)) if t <= bound => return Ok(()),
            Ok((_, t)) => fastest_large = Some(t),
            Err(mpsc::RecvTimeoutError::Timeout) => break,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err("the preparation panicked".to_owned())
            }
        }
    }
    Err(format!(
        "{small_len} bytes took {fastest_small:?}; {SCALE}x as many must take under {bound:?} ({MAX_RATIO}x), but {}",
        match fastest_large {
            Some(t) => format!("the fastest run took {t:?}"),
            None => format!("no run finished in {:?}", bound * RUNS as u32),
        }
    ))
}

proptest! {
    // Shrinking or saving a slow case would not help: the inputs only vary the text.
    #![proptest_config(ProptestConfig {
        cases: 2,
        max_shrink_iters: 0,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn preparation_time_is_linear_in_the_body(name in "[a-z]{1,6}", value in "[a-z0-9]{1,8}") {
        let _heavy = crate::common::HEAVY.blocking_lock();
        for shape in SHAPES {
            let small = delivery(shape, UNITS, &name, &value);
            let large = delivery(shape, UNITS * SCALE as usize, &name, &value);
            let verdict = check_linear(small, large);
            prop_assert!(verdict.is_ok(), "{:?}: {}", shape, verdict.unwrap_err());
        }
    }
}

/// Every shape at the default body limit (1 MiB), under the default limits, is refused or
/// prepared well within the default `dispatch.prepare_timeout` (5 s).
#[test]
fn every_shape_at_the_body_limit_is_refused_or_prepared_quickly() {
    let limits = BodyLimits {
        max_form_fields: 1000,
        max_json_values: 20_000,
        max_json_depth: 32,
        max_json_path_bytes: 1 << 20,
    };
    let source = SourceName::parse("props").unwrap();
    for shape in SHAPES {
        // Nearly the largest body of this shape that fits the size limit.
        let unit = delivery(shape, 101, "ab", "cd").body.len()
            - delivery(shape, 100, "ab", "cd").body.len();
        let mut n = (1 << 20) / unit.max(1);
        let d = loop {
            let d = delivery(shape, n, "ab", "cd");
            if d.body.len() <= 1 << 20 {
                break d;
            }
            n = n * (1 << 20) / d.body.len() * 19 / 20;
        };
        let started = Instant::now();
        let result = normalize(
            &source,
            d.kind,
            &d.settings.read_options(),
            &limits,
            Some(d.content_type),
            &d.body,
            datetime!(2025-01-01 00:00 UTC),
        );
        if let Ok(sub) = result {
            let mapping = CompiledMapping::compile(&d.settings.mapping, &source, d.kind).unwrap();
            let _ = build_plan(&mapping, &sub);
        }
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "{shape:?}: {took:?}");
    }
}
