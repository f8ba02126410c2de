#![allow(clippy::unwrap_used)]
//! `formbridge demo --json` as a newcomer runs it: the built binary, the repository's config,
//! and the report's claims checked against what the sandbox GHL ended up holding.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longer than the demo's own 30 s settle deadline.
const TIMEOUT: Duration = Duration::from_secs(90);

/// Runs `formbridge demo --json` and returns its exit code, stdout and stderr.
fn run_demo() -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_formbridge"))
        .args(["demo", "--json"])
        .env(
            "FORMBRIDGE_CONFIG_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config"),
        )
        .env("FORMBRIDGE_ENV", "test")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("formbridge demo did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status.code(), out.join().unwrap(), err.join().unwrap())
}

fn deliveries<'a>(report: &'a Value, source: &str, fixture_prefix: &str) -> Vec<&'a Value> {
    report["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| {
            d["source"] == source && d["fixture"].as_str().unwrap().starts_with(fixture_prefix)
        })
        .collect()
}

fn contact<'a>(report: &'a Value, email: &str) -> &'a Value {
    let found: Vec<&Value> = report["ghl"]["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["email"] == email)
        .collect();
    assert_eq!(found.len(), 1, "one GHL contact with {email}: {found:?}");
    found[0]
}

#[test]
fn demo_runs_every_delivery_through_to_the_sandbox() {
    let (code, stdout, stderr) = run_demo();
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("stdout is not the JSON report ({e}):\n{stdout}\nstderr:\n{stderr}")
    });
    assert_eq!(
        code,
        Some(0),
        "problems: {}\nstderr:\n{stderr}",
        report["problems"]
    );
    assert_eq!(report["ok"], true);
    assert_eq!(report["problems"], serde_json::json!([]));

    // Every genuine delivery was acknowledged with 200 and stored once.
    let all = report["deliveries"].as_array().unwrap();
    assert_eq!(all.len(), 12);
    let stored: Vec<&Value> = all.iter().filter(|d| d["expect"] == "stored").collect();
    assert_eq!(stored.len(), 10);
    for d in &stored {
        assert_eq!(d["http_status"], 200, "{d}");
        assert_eq!(d["answer"]["result"], "ok", "{d}");
        assert_eq!(d["stored"], true, "{d}");
    }
    assert_eq!(report["events_stored"], 10);
    let mut ids: Vec<i64> = stored
        .iter()
        .map(|d| d["event_id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 10, "one event per delivery");

    // Final statuses: every delivery with an email or phone is done; the feedback form, which
    // has neither, is dead with that reason.
    for d in &stored {
        if d["email"].is_string() || d["phone"].is_string() {
            assert_eq!(d["status"], "done", "{d}");
        }
    }
    // DripJobs "appointment set" carries only the deal id: done, on its proposal's contact.
    let appointment = deliveries(&report, "dripjobs", "zapier_appointment-set");
    assert_eq!(appointment.len(), 1);
    assert_eq!(appointment[0]["status"], "done", "{}", appointment[0]);
    assert_eq!(appointment[0]["follows"], "dripjobs/deal_id:1234567");
    let feedback = deliveries(&report, "jotform", "2024-12-30_feedback");
    assert_eq!(feedback.len(), 1);
    assert_eq!(feedback[0]["status"], "dead");
    assert!(
        feedback[0]["error"]
            .as_str()
            .unwrap()
            .contains("no usable email or phone"),
        "{}",
        feedback[0]
    );

    // The resent Jotform delivery: acknowledged, recognised, not stored again.
    let consent = deliveries(&report, "jotform", "enterprise_consent-widget");
    assert_eq!(consent.len(), 2);
    let (first, resent) = (consent[0], consent[1]);
    assert_eq!(resent["expect"], "duplicate");
    assert_eq!(resent["http_status"], 200);
    assert_eq!(resent["answer"]["duplicate"], true);
    assert_eq!(resent["stored"], false);
    assert_eq!(resent["event_id"], first["event_id"]);
    assert_eq!(first["answer"]["duplicate"], false);

    // JivoChat gets exactly the answer its docs expect.
    for d in deliveries(&report, "jivochat", "") {
        assert_eq!(d["answer"], serde_json::json!({"result": "ok"}));
    }

    // The wrong token: 401, nothing stored.
    let refused: Vec<&Value> = all.iter().filter(|d| d["expect"] == "refused").collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["http_status"], 401);
    assert_eq!(refused[0]["stored"], false);
    assert!(refused[0]["event_id"].is_null());

    // The sandbox GHL holds one contact per person, tagged with its source.
    let expected = [
        ("jane.doe@example.com", "jotform"),
        ("email@example.com", "jivochat"),
        ("thomas@gmail.com", "jivochat"),
        ("jane.sample@example.com", "dripjobs"),
        ("maria.garcia@example.org", "powr"),
        ("li.wei@example.net", "123formbuilder"),
        ("ana.silva@example.com", "123formbuilder"),
        ("sam.rivera@example.com", "typeform"),
    ];
    assert_eq!(
        report["ghl"]["contacts"].as_array().unwrap().len(),
        expected.len()
    );
    for (email, tag) in expected {
        let c = contact(&report, email);
        let tags: Vec<&str> = c["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert!(tags.contains(&tag), "{email} tagged {tag}: {tags:?}");
    }
    assert_eq!(
        contact(&report, "maria.garcia@example.org")["phone"],
        "+14155550199"
    );

    // One note per done delivery (the resend added none; the follow-up's is on its lead's
    // contact), and the demo's example task.
    let notes = report["ghl"]["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 9);
    let on_jane = notes
        .iter()
        .filter(|n| n["contact"] == "jane.sample@example.com")
        .count();
    assert_eq!(on_jane, 2, "the proposal's note and the appointment's");
    assert!(notes
        .iter()
        .any(|n| n["contact"] == "sam.rivera@example.com"
            && n["text"]
                .as_str()
                .unwrap()
                .starts_with("Typeform submission")));
    assert!(notes.iter().any(|n| n["contact"] == "jane.doe@example.com"
        && n["text"]
            .as_str()
            .unwrap()
            .starts_with("Jotform submission")));
    let tasks = report["ghl"]["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["contact"], "jane.sample@example.com");

    // The metrics excerpt counts what happened.
    let metrics: Vec<&str> = report["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let line = |prefix: &str| metrics.iter().find(|m| m.starts_with(prefix)).copied();
    assert_eq!(
        line(r#"formbridge_webhooks_received_total{source="jotform",outcome="duplicate"}"#),
        Some(r#"formbridge_webhooks_received_total{source="jotform",outcome="duplicate"} 1"#)
    );
    assert_eq!(
        line(r#"formbridge_webhooks_received_total{source="powr",outcome="unauthorized"}"#),
        Some(r#"formbridge_webhooks_received_total{source="powr",outcome="unauthorized"} 1"#)
    );
    assert_eq!(
        line(r#"formbridge_dispatch_total{outcome="done"}"#),
        Some(r#"formbridge_dispatch_total{outcome="done"} 9"#)
    );

    // The temporary store is gone.
    assert_eq!(report["store"]["kept"], false);
    let db = report["store"]["url"]
        .as_str()
        .unwrap()
        .strip_prefix("sqlite://")
        .unwrap();
    assert!(!Path::new(db).exists(), "{db} removed");
    assert!(
        !Path::new(db).parent().unwrap().exists(),
        "demo folder removed"
    );
}

#[test]
fn demo_keeps_the_store_when_asked_and_refuses_to_reuse_it() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("kept");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_formbridge"))
            .args(["demo", "--json", "--keep"])
            .arg(&keep)
            .env(
                "FORMBRIDGE_CONFIG_DIR",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("config"),
            )
            .env("FORMBRIDGE_ENV", "test")
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let report: Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(report["store"]["kept"], true);
    let inspect = report["store"]["inspect"].as_str().unwrap();
    assert!(
        inspect.starts_with("FORMBRIDGE__STORE__URL=sqlite://"),
        "{inspect}"
    );
    assert!(inspect.ends_with(" events list"), "{inspect}");
    assert!(keep.join("formbridge.db").exists());

    // `events list` on the kept store shows the eight events.
    let url = report["store"]["url"].as_str().unwrap();
    let list = Command::new(env!("CARGO_BIN_EXE_formbridge"))
        .args(["events", "list", "--json"])
        .env(
            "FORMBRIDGE_CONFIG_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config"),
        )
        .env("FORMBRIDGE_ENV", "test")
        .env("FORMBRIDGE__STORE__URL", url)
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let events: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(events["events"].as_array().unwrap().len(), 10);

    // A second run into the same folder would mix two demos: refused.
    let second = run();
    assert_eq!(second.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&second.stderr).contains("already exists"));
}
