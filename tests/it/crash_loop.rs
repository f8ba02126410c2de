//! The crash loop: formbridge SIGKILLed round after round under mixed load and restarted — one
//! process on SQLite, or three replicas on PostgreSQL with a random one killed each round while
//! the others keep working. Senders post leads of three tools (DripJobs and POWR as JSON,
//! 123FormBuilder urlencoded), re-send some deliveries as tools do (exact duplicates), edit some
//! (the same submission id with another message), and send again whatever was not answered 200.
//! Each lead maps to one contact, one task and one note; now and then GHL applies a request and
//! its answer is lost. At the end every acknowledged lead must be in GHL exactly once, with its
//! last acknowledged edit: the test prints acknowledged, delivered, lost and duplicated counts
//! and fails unless lost and duplicated are 0 (and nothing is dead-lettered).
//!
//! The suite runs a short pass (six rounds, 150 leads); the full run (figures in BENCHMARKS.md,
//! "Crash loop (#23)"): `cargo build --release --bin formbridge &&
//! FORMBRIDGE_TEST_BIN=target/release/formbridge FORMBRIDGE_CRASH_LOOP_ROUNDS=50
//! FORMBRIDGE_CRASH_LOOP_LEADS=1500 cargo test --test it crash_loop -- --nocapture
//! --test-threads=1`; `FORMBRIDGE_CRASH_LOOP_SEED` repeats a run's choices.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ghl_sandbox::{FaultSpec, SandboxConfig, SandboxHandle};
use rand::{Rng, SeedableRng};

use crate::common::{config_dir_with, dispatching_env, note, wait_for, SECRET};
use crate::fleet::{Fleet, Live, ServeCommand};

const TOKEN: &str = "pit-crash-loop";
const LOCATION: &str = "locCrashLoop00000001";
/// The rate budget of the sandbox and of formbridge: BURST requests per second.
const BURST: u32 = 300;
/// Concurrent senders.
const SENDERS: usize = 8;

/// Every tool's leads get a task besides the default contact, tag and note; each tool's
/// submission id is its `dedupe_field`, so that a delivery with another message is an edit.
const MAPPING: &str = r#"
[sources.dripjobs]
dedupe_field = "deal_id"
[sources.powr]
secret = "test-secret-of-formbridge-tests-0001"
dedupe_field = "submission_id"
[sources.123formbuilder]
secret = "test-secret-of-formbridge-tests-0001"
dedupe_field = "entryId"

[[sources.dripjobs.mapping.tasks]]
title = "Call {{first_name}}"
due_in = "2h"
[[sources.powr.mapping.tasks]]
title = "Call {{first_name}}"
due_in = "2h"
[[sources.123formbuilder.mapping.tasks]]
title = "Call {{first_name}}"
due_in = "2h"
"#;

/// Rounds (SIGKILLs) and leads of a run: `FORMBRIDGE_CRASH_LOOP_ROUNDS` and
/// `FORMBRIDGE_CRASH_LOOP_LEADS`, else the suite's short pass.
fn size(rounds: usize, leads: usize) -> (usize, usize) {
    let var = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
            })
            .unwrap_or(default)
    };
    (
        var("FORMBRIDGE_CRASH_LOOP_ROUNDS", rounds),
        var("FORMBRIDGE_CRASH_LOOP_LEADS", leads),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Tool {
    DripJobs,
    Powr,
    FormBuilder123,
}

/// One lead: the `n`th of the run, of tool `n % 3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Lead(usize);

impl Lead {
    fn tool(self) -> Tool {
        [Tool::DripJobs, Tool::Powr, Tool::FormBuilder123][self.0 % 3]
    }

    fn id(self) -> String {
        format!("cl-{}", self.0)
    }

    fn email(self) -> String {
        format!("cl{}@example.com", self.0)
    }

    /// What revision `rev` (0 the original, then edits) says in its message; the note must
    /// show the last acknowledged one.
    fn message(self, rev: u32) -> String {
        format!("message rev{rev} of {}", self.id())
    }

    /// Revision `rev` of the lead: its source, content type and body.
    fn delivery(self, rev: u32) -> (&'static str, &'static str, Vec<u8>) {
        let (id, email, message) = (self.id(), self.email(), self.message(rev));
        let first = format!("Crash{}", self.0);
        match self.tool() {
            Tool::DripJobs => (
                "dripjobs",
                "application/json",
                serde_json::to_vec(&serde_json::json!({
                    "deal_id": id,
                    "customer_name": format!("{first} Loop"),
                    "customer_email": email,
                    "notes": message,
                }))
                .unwrap(),
            ),
            Tool::Powr => (
                "powr",
                "application/json",
                serde_json::to_vec(&serde_json::json!({
                    "submission_id": id,
                    "form_name": "Contact Us",
                    "Your Name": format!("{first} Loop"),
                    "Email Address": email,
                    "Message": message,
                }))
                .unwrap(),
            ),
            Tool::FormBuilder123 => (
                "123formbuilder",
                "application/x-www-form-urlencoded",
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("entryId", &id)
                    .append_pair("formId", "6123456")
                    .append_pair("Full Name", &format!("{first} Loop"))
                    .append_pair("E-mail", &email)
                    .append_pair("Comments", &message)
                    .finish()
                    .into_bytes(),
            ),
        }
    }
}

/// What a lead's sender posts, in order: each revision (0, then edits), some sent twice.
fn plan(rng: &mut impl Rng) -> Vec<u32> {
    let edits = match rng.random_range(0..10) {
        0..=6 => 0,
        7 | 8 => 1,
        _ => 2,
    };
    let mut posts = Vec::new();
    for rev in 0..=edits {
        posts.push(rev);
        if rng.random_bool(0.2) {
            posts.push(rev); // an exact re-send
        }
    }
    posts
}

/// What the senders saw.
#[derive(Debug, Default)]
struct Tally {
    /// Deliveries answered 200.
    acknowledged: usize,
    /// Of those, answered as duplicates (a re-send, or a retry of one stored before the kill).
    duplicates: usize,
    /// Acknowledged edits (revisions after the first).
    edits: usize,
    /// Posts not answered 200 (the server was killed or down), each sent again.
    unanswered: usize,
    /// Each acknowledged lead's last acknowledged revision.
    last_rev: BTreeMap<Lead, u32>,
}

type Shared<T> = Arc<Mutex<T>>;

/// Posts `body` to a live server (taking turns) until one answers 200; returns its receipt.
async fn post_until_acknowledged(
    client: &reqwest::Client,
    live: &Live,
    turn: &mut usize,
    (source, content_type, body): &(&'static str, &'static str, Vec<u8>),
    tally: &Shared<Tally>,
) -> serde_json::Value {
    loop {
        let base = wait_for(Duration::from_secs(60), "a live server", || {
            let live = live.lock().unwrap();
            let bases: Vec<&String> = live.iter().flatten().collect();
            let base = (!bases.is_empty()).then(|| bases[*turn % bases.len()].clone());
            async move { base }
        })
        .await;
        *turn += 1;
        let sent = client
            .post(format!("{base}/hooks/{source}?token={SECRET}"))
            .header("content-type", *content_type)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status() == 200 => return r.json().await.unwrap_or_default(),
            Ok(r) if r.status() != 503 => {
                panic!("{source} answered {}: {:?}", r.status(), r.text().await)
            }
            _ => tally.lock().unwrap().unanswered += 1,
        }
    }
}

/// `SENDERS` tasks send every lead's plan until all of it is acknowledged.
fn send_all(
    live: Live,
    plans: Vec<(Lead, Vec<u32>)>,
    tally: Shared<Tally>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let queue: Shared<Vec<(Lead, Vec<u32>)>> =
        Arc::new(Mutex::new(plans.into_iter().rev().collect()));
    (0..SENDERS)
        .map(|sender| {
            let (client, live, queue, tally) =
                (client.clone(), live.clone(), queue.clone(), tally.clone());
            tokio::spawn(async move {
                let mut turn = sender;
                loop {
                    let next = queue.lock().unwrap().pop();
                    let Some((lead, posts)) = next else { break };
                    for rev in posts {
                        let delivery = lead.delivery(rev);
                        let receipt =
                            post_until_acknowledged(&client, &live, &mut turn, &delivery, &tally)
                                .await;
                        let mut tally = tally.lock().unwrap();
                        tally.acknowledged += 1;
                        if receipt["duplicate"] == true {
                            tally.duplicates += 1;
                        }
                        if rev > 0 && receipt["duplicate"] == false {
                            tally.edits += 1;
                        }
                        tally.last_rev.insert(lead, rev);
                    }
                }
            })
        })
        .collect()
}

/// The number of events in each status, from a server's `/metrics`.
async fn event_counts(base: &str) -> Option<BTreeMap<String, u64>> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let counts = text
        .lines()
        .filter_map(|l| l.strip_prefix("formbridge_events{status=\""))
        .filter_map(|l| {
            let (status, n) = l.split_once("\"} ")?;
            Some((status.to_owned(), n.trim().parse::<f64>().ok()? as u64))
        })
        .collect();
    Some(counts)
}

/// What GHL holds for the acknowledged leads.
#[derive(Debug, Default)]
struct Outcome {
    acknowledged: usize,
    /// One contact, one task and one note showing the last acknowledged revision.
    delivered: usize,
    /// Acknowledged and missing from GHL: no contact, task or note.
    lost: Vec<Lead>,
    /// In GHL, but the note does not show the last acknowledged edit.
    stale: Vec<Lead>,
    /// A second contact, task or note.
    duplicated: Vec<Lead>,
}

fn outcome(ghl: &SandboxHandle, last_rev: &BTreeMap<Lead, u32>) -> Outcome {
    let state = ghl.state();
    let mut out = Outcome {
        acknowledged: last_rev.len(),
        ..Outcome::default()
    };
    let mut contacts_by_email: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
    for c in &state.contacts {
        if let Some(email) = c["emailLowerCase"].as_str() {
            contacts_by_email
                .entry(email.to_owned())
                .or_default()
                .push(c);
        }
    }
    for (lead, rev) in last_rev {
        let contacts = contacts_by_email
            .get(&lead.email())
            .cloned()
            .unwrap_or_default();
        let Some(contact) = contacts.first() else {
            out.lost.push(*lead);
            continue;
        };
        let id = contact["id"].as_str().unwrap();
        let (notes, tasks) = (state.notes_of(id), state.tasks_of(id));
        if contacts.len() > 1 || notes.len() > 1 || tasks.len() > 1 {
            out.duplicated.push(*lead);
        }
        if notes.is_empty() || tasks.is_empty() {
            out.lost.push(*lead);
        } else if !notes[0]["body"]
            .as_str()
            .unwrap_or("")
            .contains(&lead.message(*rev))
        {
            out.stale.push(*lead);
        } else if contacts.len() == 1 && notes.len() == 1 && tasks.len() == 1 {
            out.delivered += 1;
        }
    }
    out
}

/// Runs the crash loop on `store_url` with `replicas` servers and checks its outcome.
async fn crash_loop(label: &str, store_url: &str, replicas: usize, rounds: usize, leads: usize) {
    let started = Instant::now();
    let seed: u64 = std::env::var("FORMBRIDGE_CRASH_LOOP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    note(&format!(
        "crash loop ({label}): seed {seed} (FORMBRIDGE_CRASH_LOOP_SEED)"
    ));
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let mut config = SandboxConfig::single(TOKEN, LOCATION);
    config.burst = BURST;
    config.window = Duration::from_secs(1);
    let ghl = ghl_sandbox::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut command = ServeCommand {
        config: config_dir_with(dir.path(), MAPPING),
        env: dispatching_env(store_url, ghl.base_url.as_str(), TOKEN, LOCATION),
    };
    command.set("FORMBRIDGE__GHL__RATE_LIMIT__BURST", &BURST.to_string());
    let mut fleet = Fleet::start(command, replicas);

    let plans: Vec<(Lead, Vec<u32>)> = (0..leads).map(|n| (Lead(n), plan(&mut rng))).collect();
    let tally: Shared<Tally> = Arc::default();
    let senders = send_all(fleet.live(), plans, tally.clone());

    // Each round: let the work move on by a random amount (deliveries acknowledged plus notes
    // written; about 2.7 per lead in all, so the kills spread over ingest and dispatch), then
    // SIGKILL a random server and start it again at once.
    let progress = || tally.lock().unwrap().acknowledged + ghl.sandbox.note_count();
    let mut kills = 0;
    for _ in 0..rounds {
        let target = progress() + rng.random_range(1..=(5 * leads / rounds.max(1)).max(2));
        let settled =
            || senders.iter().all(|s| s.is_finished()) && ghl.sandbox.note_count() >= leads;
        wait_for(Duration::from_secs(120), "progress between kills", || {
            let ready = progress() >= target || settled();
            async move { ready.then_some(()) }
        })
        .await;
        // Now and then GHL applies a request and its answer is lost.
        if rng.random_bool(0.5) {
            ghl.sandbox.set_faults(FaultSpec {
                drop_after_next: Some(rng.random_range(1..=3)),
                ..FaultSpec::default()
            });
        }
        let victim = rng.random_range(0..fleet.len());
        fleet.kill(victim);
        kills += 1;
        fleet.restart(victim);
    }
    for s in senders {
        s.await.unwrap();
    }

    // The last servers finish the work: every note in GHL and no event open in the store.
    let deadline =
        Instant::now() + Duration::from_secs(120) + Duration::from_millis(100 * leads as u64);
    let mut counts = BTreeMap::new();
    while Instant::now() < deadline {
        if let Some(base) = fleet.any_base() {
            counts = event_counts(&base).await.unwrap_or_default();
        }
        let open: u64 = ["pending", "processing", "retrying"]
            .iter()
            .map(|s| counts.get(*s).copied().unwrap_or(0))
            .sum();
        if open == 0 && ghl.sandbox.note_count() >= leads {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fleet.kill_all();

    let tally = std::mem::take(&mut *tally.lock().unwrap());
    let out = outcome(&ghl, &tally.last_rev);
    let state = ghl.state();
    let lost_answers = state
        .requests
        .iter()
        .filter(|r| r.outcome == "dropped_after")
        .count();
    let rate_limited = state.requests.iter().filter(|r| r.status == 429).count();
    let dead = counts.get("dead").copied().unwrap_or(0);
    note(&format!(
        "crash loop ({label}): {rounds} rounds, {kills} SIGKILLs, {leads} leads; {} deliveries \
         acknowledged ({} answered as duplicates, {} edits), {} posts unanswered and sent again; \
         GHL: {} requests, {lost_answers} answers lost after the write, {rate_limited} × 429; \
         events {counts:?}; acknowledged {} leads, delivered {}, lost {}, stale edits {}, \
         duplicated {}; {:.1} s",
        tally.acknowledged,
        tally.duplicates,
        tally.edits,
        tally.unanswered,
        state.requests.len(),
        out.acknowledged,
        out.delivered,
        out.lost.len(),
        out.stale.len(),
        out.duplicated.len(),
        started.elapsed().as_secs_f64()
    ));
    assert_eq!(
        out.acknowledged, leads,
        "every lead acknowledged in the end"
    );
    assert!(out.lost.is_empty(), "lost: {:?}", out.lost);
    assert!(
        out.stale.is_empty(),
        "last edit missing in GHL: {:?}",
        out.stale
    );
    assert!(
        out.duplicated.is_empty(),
        "duplicated: {:?}",
        out.duplicated
    );
    assert_eq!(dead, 0, "dead-lettered events: {counts:?}");
    assert_eq!(out.delivered, leads);
    let kept: BTreeSet<_> = tally.last_rev.keys().collect();
    assert_eq!(kept.len(), leads);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_loop_on_sqlite_loses_and_duplicates_nothing() {
    let _heavy = crate::common::HEAVY.lock().await;
    let (rounds, leads) = size(6, 150);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("loop.db").display());
    crash_loop("SQLite, one process", &url, 1, rounds, leads).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_loop_on_three_postgres_replicas_loses_and_duplicates_nothing() {
    let _heavy = crate::common::HEAVY.lock().await;
    let Some(db) = crate::pg::database_or_skip().await else {
        return;
    };
    let (rounds, leads) = size(6, 150);
    crash_loop("PostgreSQL, three replicas", &db.url, 3, rounds, leads).await;
}
