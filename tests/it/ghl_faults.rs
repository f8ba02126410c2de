//! GHL faults against the sandbox (issue #23). For each fault — latency spikes, 5xx bursts,
//! connections dropped before and after the work, answers lost to a write GHL carries out
//! after formbridge's timeout, 429 storms, a revoked token, the daily quota running out — a mix
//! of leads (DripJobs and POWR, each with a task and a note) is sent while it lasts, and every
//! acknowledged lead ends in GHL exactly once (one contact, one task, one note: the sandbox's
//! state is checked) or dead-lettered with its reason, with nothing left pending once the
//! fault clears. Each case prints its figures: acknowledged, delivered, dead-lettered (with
//! reasons), duplicated, 429s received.
//!
//! `FORMBRIDGE_FAULT_LEADS` (default 12) sets how many leads each fault sees, for the longer
//! run recorded in `BENCHMARKS.md` ("GHL faults (#23)").
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::common::{
    config_dir_with, dispatching_env, note, settings_with_toml, spawn_with, start_process,
    wait_for, TestApp, DRIPJOBS_TASK_MAPPING, SECRET,
};
use formbridge::store::{EventFilter, EventStatus};
use ghl_sandbox::{FaultSpec, SandboxConfig, SandboxHandle, SandboxState};
use serde_json::{json, Value};

const TOKEN: &str = "pit-faults-token";
const NEW_TOKEN: &str = "pit-faults-token-replaced";
const LOCATION: &str = "locFaults00000000001";

/// A task for every lead of both sources (the default mapping adds the contact and the note).
const MAPPING: &str = r#"
[[sources.dripjobs.mapping.tasks]]
title = "Call {{first_name}} back"
body = "DripJobs lead {{email}}"
due_in = "1d"

[[sources.powr.mapping.tasks]]
title = "Answer {{first_name}}"
body = "POWR form from {{email}}"
due_in = "1d"
"#;

/// Requests per 1 s window, in the sandbox and in formbridge's budget alike: tight enough
/// that a request counted wrongly shows as a 429.
const BURST: u32 = 20;

/// Leads per fault: `FORMBRIDGE_FAULT_LEADS`, default 12.
fn leads_per_fault() -> usize {
    std::env::var("FORMBRIDGE_FAULT_LEADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

/// One lead: its source, its email, its body.
struct Lead {
    source: &'static str,
    email: String,
    body: Value,
}

/// Lead `i` of a case named `case`: even ones from DripJobs, odd ones from POWR.
fn lead(case: &str, i: usize) -> Lead {
    let email = format!("{case}{i}@example.com");
    let phone = format!("+1415555{i:04}");
    if i % 2 == 0 {
        Lead {
            source: "dripjobs",
            body: json!({
                "deal_id": format!("{case}-{i}"),
                "customer_name": format!("Lead{i} Person"),
                "customer_email": email,
                "customer_phone": phone,
            }),
            email,
        }
    } else {
        Lead {
            source: "powr",
            body: json!({
                "submission_id": format!("{case}-{i}"),
                "Your Name": format!("Form{i} Person"),
                "Email Address": email,
                "Phone Number": phone,
            }),
            email,
        }
    }
}

fn sandbox_config(token: &str) -> SandboxConfig {
    let mut config = SandboxConfig::single(token, LOCATION);
    config.burst = BURST;
    config.window = Duration::from_secs(1);
    config
}

/// formbridge dispatching to `ghl` with `token`: 1 s timeout, 2 s late-write window, a 1 s
/// rate window of `BURST`, short backoffs, then `extra`. Its store lives in `dir`, so a
/// second app on the same `dir` is the same server restarted.
async fn app_on(ghl: &SandboxHandle, dir: &Path, token: &str, extra: &[(&str, &str)]) -> TestApp {
    let base = ghl.base_url.to_string();
    let burst = BURST.to_string();
    let mut overrides = vec![
        ("dispatch.enabled", "true"),
        ("ghl.base_url", base.as_str()),
        ("ghl.token", token),
        ("ghl.location_id", LOCATION),
        ("dispatch.poll_interval", "50ms"),
        ("dispatch.retry.initial_backoff", "50ms"),
        ("dispatch.retry.max_backoff", "500ms"),
        ("dispatch.auth_block", "1s"),
        ("ghl.request_timeout", "1s"),
        ("ghl.late_write_window", "2s"),
        ("ghl.rate_limit.window", "1s"),
        ("ghl.rate_limit.burst", burst.as_str()),
    ];
    overrides.extend_from_slice(extra);
    let settings = settings_with_toml(dir, MAPPING, &overrides);
    spawn_with(settings, tempfile::tempdir().unwrap()).await
}

/// Posts `leads`; returns how many were acknowledged (every one must be: GHL's faults never
/// reach ingress).
async fn post(app: &TestApp, leads: &[Lead]) -> usize {
    let mut acknowledged = 0;
    for lead in leads {
        let r = app
            .post_hook(
                lead.source,
                Some(SECRET),
                Some("application/json"),
                lead.body.to_string().into_bytes(),
            )
            .await;
        assert_eq!(r.status(), 200, "{} lead {}", lead.source, lead.email);
        acknowledged += 1;
    }
    acknowledged
}

/// Waits until no event is pending, processing or retrying.
async fn settle(app: &TestApp, timeout: Duration) {
    wait_for(timeout, "every event done or dead", || async {
        let c = app.store.status_counts().await.unwrap();
        let open =
            c[&EventStatus::Pending] + c[&EventStatus::Processing] + c[&EventStatus::Retrying];
        (open == 0).then_some(())
    })
    .await;
}

/// Time enough for `leads` to settle after a fault: a minute for the fault's own waits on a
/// loaded machine, and their four or so requests each at `BURST` a second, twice over.
fn settle_time(leads: usize) -> Duration {
    Duration::from_secs(60 + 8 * leads as u64 / u64::from(BURST))
}

/// What one fault did to its leads.
#[derive(Debug, Default)]
struct Figures {
    acknowledged: usize,
    /// Leads with exactly one contact, one task and one note.
    delivered: usize,
    /// Dead letters: dedupe key → reason.
    dead: BTreeMap<String, String>,
    /// Records beyond one contact, one task and one note per lead.
    duplicated: usize,
    /// Leads acknowledged but neither delivered nor dead-lettered.
    missing: usize,
    /// 429s GHL answered.
    rate_limited: usize,
}

impl Figures {
    fn print(&self, fault: &str) {
        let reasons: Vec<&String> = self.dead.values().collect();
        note(&format!(
            "GHL faults | {fault:<20} | acknowledged {:>4} | delivered {:>4} | dead-lettered {:>3} {reasons:?} | duplicated {} | 429s {}",
            self.acknowledged,
            self.delivered,
            self.dead.len(),
            self.duplicated,
            self.rate_limited
        ));
    }

    /// The campaign's promise: exactly once or dead-lettered with a reason, nothing twice.
    fn assert_exactly_once(&self, fault: &str) {
        assert_eq!(self.duplicated, 0, "{fault}: duplicates {self:?}");
        assert_eq!(self.missing, 0, "{fault}: leads lost {self:?}");
        assert_eq!(
            self.delivered + self.dead.len(),
            self.acknowledged,
            "{fault}: {self:?}"
        );
        assert!(
            self.dead.values().all(|reason| !reason.is_empty()),
            "{fault}: a dead letter without its reason {self:?}"
        );
    }
}

/// Counts what `leads` made in GHL and what the store dead-lettered; fails if anything is
/// still open.
async fn figures(
    app: &TestApp,
    ghl: &SandboxHandle,
    leads: &[Lead],
    acknowledged: usize,
) -> Figures {
    let counts = app.store.status_counts().await.unwrap();
    for open in [
        EventStatus::Pending,
        EventStatus::Processing,
        EventStatus::Retrying,
    ] {
        assert_eq!(counts[&open], 0, "events left {open:?}: {counts:?}");
    }
    let dead_events = app
        .store
        .list_events(&EventFilter {
            status: Some(EventStatus::Dead),
            limit: Some(500),
            ..EventFilter::default()
        })
        .await
        .unwrap();
    let dead: BTreeMap<String, String> = dead_events
        .into_iter()
        .map(|e| (e.dedupe_key, e.last_error.unwrap_or_default()))
        .collect();
    let state = ghl.state();
    let mut figures = Figures {
        acknowledged,
        dead,
        rate_limited: state.requests.iter().filter(|r| r.status == 429).count(),
        ..Figures::default()
    };
    let mut made = 0;
    for lead in leads {
        let contacts = contacts_with(&state, &lead.email);
        let (tasks, notes) = contacts.iter().fold((0, 0), |(t, n), id| {
            (t + state.tasks_of(id).len(), n + state.notes_of(id).len())
        });
        made += contacts.len() + tasks + notes;
        figures.duplicated += [contacts.len(), tasks, notes]
            .iter()
            .map(|n| n.saturating_sub(1))
            .sum::<usize>();
        if (contacts.len(), tasks, notes) == (1, 1, 1) {
            figures.delivered += 1;
        }
    }
    // A dead-lettered lead may have made part of its records.
    figures.missing = acknowledged.saturating_sub(figures.delivered + figures.dead.len());
    // Every record in GHL belongs to one of the leads.
    assert_eq!(
        made,
        state.contacts.len() + state.tasks.len() + state.notes.len(),
        "records in GHL that belong to no lead"
    );
    figures
}

/// The ids of the contacts with `email`.
fn contacts_with(state: &SandboxState, email: &str) -> Vec<String> {
    state
        .contacts
        .iter()
        .filter(|c| c["emailLowerCase"].as_str() == Some(email))
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect()
}

/// Sends `leads` while `fault` is armed, waits until `until_spent` (given the sandbox's state
/// and how many attempts have failed) says it has run its course, clears every fault,
/// settles, and checks and prints the figures.
async fn campaign(
    case: &str,
    ghl: &SandboxHandle,
    fault: FaultSpec,
    extra: &[(&str, &str)],
    until_spent: impl Fn(&SandboxState, usize) -> bool,
) -> Figures {
    let n = leads_per_fault();
    let leads: Vec<Lead> = (0..n).map(|i| lead(case, i)).collect();
    let dir = tempfile::tempdir().unwrap();
    let app = app_on(ghl, dir.path(), TOKEN, extra).await;
    ghl.sandbox.set_faults(fault);
    let acknowledged = post(&app, &leads).await;
    wait_for(settle_time(n), "the fault to run its course", || async {
        until_spent(&ghl.state(), failed_attempts(&app).await).then_some(())
    })
    .await;
    ghl.sandbox.clear_faults();
    settle(&app, settle_time(n)).await;
    let figures = figures(&app, ghl, &leads, acknowledged).await;
    figures.print(case);
    figures.assert_exactly_once(case);
    figures
}

/// How many attempts have failed, over every event (every page of the store's list).
async fn failed_attempts(app: &TestApp) -> usize {
    let mut filter = EventFilter {
        limit: Some(500),
        ..EventFilter::default()
    };
    let mut failed = 0;
    loop {
        let page = app.store.list_events(&filter).await.unwrap();
        let Some(last) = page.last() else {
            return failed;
        };
        filter.before_id = Some(last.id.0);
        failed += page.iter().map(|e| e.attempts as usize).sum::<usize>();
    }
}

/// Requests that met the fault `outcome` (`late`, `dropped_after`, …), or were answered
/// `status`.
fn met(state: &SandboxState, outcome: &str) -> usize {
    state
        .requests
        .iter()
        .filter(|r| r.outcome == outcome)
        .count()
}

fn answered(state: &SandboxState, status: u16) -> usize {
    state.requests.iter().filter(|r| r.status == status).count()
}

#[tokio::test]
async fn latency_spikes_past_the_timeout_lose_and_duplicate_nothing() {
    let ghl = ghl_sandbox::start(sandbox_config(TOKEN)).await.unwrap();
    // Every request takes 1.5 s, past formbridge's 1 s timeout, until the spike is over.
    let spike = FaultSpec {
        latency_ms: Some(1500),
        ..FaultSpec::default()
    };
    let figures = campaign("latency", &ghl, spike, &[], |_, failed| {
        // Over once as many attempts as half the leads have timed out.
        failed >= leads_per_fault() / 2
    })
    .await;
    assert_eq!(figures.rate_limited, 0, "avoidable 429s");
}

#[tokio::test]
async fn a_burst_of_5xx_loses_and_duplicates_nothing() {
    let ghl = ghl_sandbox::start(sandbox_config(TOKEN)).await.unwrap();
    let n = u32::try_from(leads_per_fault()).unwrap();
    // 500s, then a gateway's 502s (its request may still have run behind it).
    let burst = FaultSpec {
        fail_next: Some(n * 2),
        fail_status: Some(500),
        ..FaultSpec::default()
    };
    let figures = campaign("fivexx", &ghl, burst, &[], |state, _| {
        state.faults.fail_next == Some(0)
    })
    .await;
    assert_eq!(figures.rate_limited, 0, "avoidable 429s");
    let ghl = ghl_sandbox::start(sandbox_config(TOKEN)).await.unwrap();
    let gateway = FaultSpec {
        fail_next: Some(n),
        fail_status: Some(502),
        ..FaultSpec::default()
    };
    let figures = campaign("gateway", &ghl, gateway, &[], |state, _| {
        state.faults.fail_next == Some(0)
    })
    .await;
    assert_eq!(figures.rate_limited, 0, "avoidable 429s");
    assert!(answered(&ghl.state(), 502) > 0, "the 502s were exercised");
}

#[tokio::test]
async fn connections_dropped_before_the_work_lose_and_duplicate_nothing() {
    let ghl = ghl_sandbox::start(sandbox_config(TOKEN)).await.unwrap();
    let n = u32::try_from(leads_per_fault()).unwrap();
    let drops = FaultSpec {
        drop_before_next: Some(n * 2),
        ..FaultSpec::default()
    };
    let figures = campaign("dropbefore", &ghl, drops, &[], |state, _| {
        state.faults.drop_before_next == Some(0)
    })
    .await;
    assert_eq!(figures.rate_limited, 0, "avoidable 429s");
}

#[tokio::test]
async fn connections_dropped_after_the_work_lose_and_duplicate_nothing() {
    let ghl = ghl_sandbox::start(sandbox_config(TOKEN)).await.unwrap();
    let n = u32::try_from(leads_per_fault()).unwrap();
    let drops = FaultSpec {
        drop_after_next: Some(n * 2),
        ..FaultSpec::default()
    };
    let figures = campaign("dropafter", &ghl, drops, &[], |state, _| {
        state.faults.drop_after_next == Some(0)
    })
    .await;
    assert!(met(&ghl.state(), "dropped_after") > 0);
    assert_eq!(figures.rate_limited, 0, "avoidable 429s");
}

#[tokio::test]
async fn answers_lost_to_writes_ghl_carries_out_late_lose_and_duplicate_nothing() {
    let ghl = ghl_sandbox::start(sandbox_config(TOKEN)).await.unwrap();
    let n = u32::try_from(leads_per_fault()).unwrap();
    // Carried out 1.5 s after arrival, half a second after formbridge gave up on them.
    let late = FaultSpec {
        complete_late_next: Some(n * 2),
        complete_late_ms: Some(1500),
        ..FaultSpec::default()
    };
    let figures = campaign("late", &ghl, late, &[], |state, _| {
        state.faults.complete_late_next == Some(0) && met(state, "late") >= 2 * leads_per_fault()
    })
    .await;
    assert_eq!(figures.rate_limited, 0, "avoidable 429s");
}

#[tokio::test]
async fn a_429_storm_loses_and_duplicates_nothing() {
    let ghl = ghl_sandbox::start(sandbox_config(TOKEN)).await.unwrap();
    let storm = FaultSpec {
        rate_limit_for_ms: Some(1500),
        retry_after_secs: Some(1),
        ..FaultSpec::default()
    };
    let figures = campaign("storm", &ghl, storm, &[], |state, _| {
        answered(state, 429) > 0
    })
    .await;
    assert!(figures.rate_limited > 0, "the storm was exercised");
}

#[tokio::test]
async fn a_daily_quota_running_out_loses_and_duplicates_nothing() {
    // A "day" of 3 s whose quota is spent about halfway through the leads.
    let n = leads_per_fault();
    let mut config = sandbox_config(TOKEN);
    config.daily = u32::try_from(n * 2).unwrap();
    config.day = Duration::from_secs(3);
    let ghl = ghl_sandbox::start(config).await.unwrap();
    campaign("quota", &ghl, FaultSpec::default(), &[], |state, _| {
        state.requests.len() > n * 2
    })
    .await;
}

#[tokio::test]
async fn a_revoked_token_holds_leads_back_until_it_is_replaced_then_delivers_them_once() {
    let ghl = ghl_sandbox::start(sandbox_config(TOKEN)).await.unwrap();
    let n = leads_per_fault();
    let leads: Vec<Lead> = (0..n).map(|i| lead("revoked", i)).collect();
    let (before, during) = leads.split_at(n / 2);
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged = 0;
    {
        let app = app_on(&ghl, dir.path(), TOKEN, &[]).await;
        acknowledged += post(&app, before).await;
        settle(&app, settle_time(n)).await;
        // The Private Integration's token is revoked in GHL: 401 from now on.
        assert!(ghl.sandbox.revoke_token(TOKEN));
        acknowledged += post(&app, during).await;
        wait_for(
            settle_time(n),
            "the location held back on its token",
            || async {
                let waiting = app.events_in(EventStatus::Retrying).await;
                let refused = waiting.iter().any(|e| {
                    e.last_error
                        .as_deref()
                        .is_some_and(|m| m.contains("refused the credentials"))
                });
                (refused && app.events_in(EventStatus::Dead).await.is_empty()).then_some(())
            },
        )
        .await;
    }
    // A new token is made in GHL and configured; the server restarts on the same store.
    ghl.sandbox.add_token(NEW_TOKEN, &[LOCATION], None);
    let app = app_on(&ghl, dir.path(), NEW_TOKEN, &[]).await;
    settle(&app, settle_time(n)).await;
    // Anything dead-lettered meanwhile is replayed, as an operator would.
    for dead in app.events_in(EventStatus::Dead).await {
        assert!(app.store.replay(dead.id, false).await.unwrap());
    }
    settle(&app, settle_time(n)).await;
    let figures = figures(&app, &ghl, &leads, acknowledged).await;
    figures.print("revoked token");
    figures.assert_exactly_once("revoked token");
    assert_eq!(
        figures.delivered, n,
        "every lead delivered after the replacement"
    );
    assert!(
        answered(&ghl.state(), 401) > 0,
        "the revocation was exercised"
    );
}

// ---------------------------------------------------------------------------------------------
// A write GHL carries out after formbridge's timeout (the duplicate note of issue #23)
// ---------------------------------------------------------------------------------------------

/// Leads whose note GHL writes 2.5 s after the request arrived, 1.5 s after formbridge's 1 s
/// timeout gave up on it, with `late_write_window` configured: the figures.
async fn late_notes(case: &str, late_write_window: &str, burst: u32) -> (Figures, SandboxState) {
    let mut config = SandboxConfig::single(TOKEN, LOCATION);
    config.burst = burst;
    config.window = Duration::from_secs(2);
    let ghl = ghl_sandbox::start(config).await.unwrap();
    ghl.sandbox.set_faults(FaultSpec {
        complete_late_next: Some(3),
        complete_late_ms: Some(2500),
        match_path: Some("/notes".into()),
        ..FaultSpec::default()
    });
    let leads: Vec<Lead> = (0..10).map(|i| lead(case, i)).collect();
    let dir = tempfile::tempdir().unwrap();
    let burst = burst.to_string();
    let app = app_on(
        &ghl,
        dir.path(),
        TOKEN,
        &[
            ("ghl.late_write_window", late_write_window),
            ("ghl.rate_limit.window", "2s"),
            ("ghl.rate_limit.burst", burst.as_str()),
        ],
    )
    .await;
    let acknowledged = post(&app, &leads).await;
    settle(&app, Duration::from_secs(60)).await;
    // Every late note has landed before the records are counted.
    wait_for(Duration::from_secs(10), "the late notes", || {
        let landed = met(&ghl.state(), "late");
        async move { (landed == 3).then_some(()) }
    })
    .await;
    let figures = figures(&app, &ghl, &leads, acknowledged).await;
    figures.print(case);
    (figures, ghl.state())
}

#[tokio::test]
async fn a_note_ghl_writes_after_the_timeout_is_found_by_the_retry_not_written_twice() {
    let (figures, state) = late_notes("landslow", "3s", 100).await;
    figures.assert_exactly_once("late note");
    assert_eq!(figures.delivered, 10);
    // Each timed-out note was looked for once it could no longer land, and found.
    let creates = state
        .requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/notes"))
        .count();
    assert_eq!(creates, 10, "one create per note, the 3 late ones included");
}

/// The same faults without a late-write window (formbridge before #23 looked at once after the
/// timeout): the look-up runs before the late note lands and a second note is written. What
/// the test above would see without the fix.
#[tokio::test]
async fn without_a_late_write_window_a_note_written_after_the_timeout_is_written_twice() {
    let (figures, _) = late_notes("landtwice", "0s", 100).await;
    assert!(
        figures.duplicated > 0,
        "the late write should have made a duplicate: {figures:?}"
    );
}

/// The same without a late-write window on the tight budget (formbridge before #23 freed a
/// timed-out request's slot one window after the timeout): GHL counts the late notes when
/// they run, after formbridge has spent their slots again, and answers 429. What the budget
/// test above would see without the fix.
#[tokio::test]
async fn without_a_late_write_window_late_writes_overspend_the_budget() {
    let (_, state) = late_notes("landover", "0s", 6).await;
    assert!(
        answered(&state, 429) > 0,
        "the late writes should have overspent GHL's window"
    );
}

#[tokio::test]
async fn requests_ghl_carries_out_after_the_timeout_count_against_the_budget_no_429() {
    // A budget of 6 per 2 s: the 3 late notes, counted by GHL when they run, fill half of it.
    let (figures, state) = late_notes("landbudget", "3s", 6).await;
    figures.assert_exactly_once("late notes, tight budget");
    assert_eq!(
        answered(&state, 429),
        0,
        "a request that timed out still counts in GHL's window until it may have run"
    );
}

/// formbridge killed while GHL holds a note request it will carry out late, and restarted at
/// once: the step sent before the crash is still in doubt after the restart, so its look-up
/// waits for the late note and finds it. Exactly one note.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_while_a_late_write_is_pending_still_ends_with_one_note() {
    let ghl = ghl_sandbox::start(SandboxConfig::single(TOKEN, LOCATION))
        .await
        .unwrap();
    ghl.sandbox.set_faults(FaultSpec {
        complete_late_next: Some(1),
        complete_late_ms: Some(2500),
        match_path: Some("/notes".into()),
        ..FaultSpec::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let config = config_dir_with(dir.path(), DRIPJOBS_TASK_MAPPING);
    let db = format!("sqlite://{}", dir.path().join("crash.db").display());
    let mut env = dispatching_env(&db, ghl.base_url.as_str(), TOKEN, LOCATION);
    env.retain(|(k, _)| k != "FORMBRIDGE__GHL__LATE_WRITE_WINDOW");
    env.push(("FORMBRIDGE__GHL__LATE_WRITE_WINDOW".into(), "3s".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    let (mut child, base) = start_process(&config, &env);
    let body = json!({"deal_id": "crash-late", "customer_email": "crashlate@example.com"});
    let r = reqwest::Client::new()
        .post(format!("{base}/hooks/dripjobs?token={SECRET}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_for(
        Duration::from_secs(20),
        "the note request held by GHL",
        || {
            let held = ghl.state().faults.complete_late_next == Some(0);
            async move { held.then_some(()) }
        },
    )
    .await;
    child.kill().unwrap(); // SIGKILL, the note request still in GHL's hands
    child.wait().unwrap();

    let (mut child, _) = start_process(&config, &env);
    // The late note lands, the restarted server looks for it (after the window) and finds it.
    wait_for(
        Duration::from_secs(30),
        "the late note and the look-up",
        || {
            let state = ghl.state();
            let landed = met(&state, "late") == 1;
            let looked = state
                .requests
                .iter()
                .any(|r| r.method == "GET" && r.path.ends_with("/notes"));
            async move { (landed && looked).then_some(()) }
        },
    )
    .await;
    wait_for(Duration::from_secs(30), "the event done", || async {
        done_in(&db).await.then_some(())
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let state = ghl.state();
    assert_eq!(state.notes.len(), 1, "exactly one note: {:?}", state.notes);
    assert_eq!(state.tasks.len(), 1);
}

/// Whether the one event of the SQLite store at `db` is done (read through the admin reads,
/// which need no lock on the file).
async fn done_in(db: &str) -> bool {
    use formbridge::settings::StoreSettings;
    use formbridge::store::{AdminReads, SqliteStore};
    let Ok(store) = SqliteStore::open_shared(&StoreSettings::with_url(db)).await else {
        return false;
    };
    let counts = store.status_counts().await.unwrap();
    counts[&EventStatus::Done] == 1
}

/// A lead whose note is in doubt waits in the queue, not in a worker: with one worker and a
/// 30 s late-write window, a second lead is delivered while the first still waits.
#[tokio::test]
async fn a_lead_waiting_out_a_late_write_holds_no_worker_back() {
    let ghl = ghl_sandbox::start(sandbox_config(TOKEN)).await.unwrap();
    ghl.sandbox.set_faults(FaultSpec {
        complete_late_next: Some(1),
        complete_late_ms: Some(1500),
        match_path: Some("/notes".into()),
        ..FaultSpec::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let app = app_on(
        &ghl,
        dir.path(),
        TOKEN,
        &[("dispatch.workers", "1"), ("ghl.late_write_window", "30s")],
    )
    .await;
    let (waiting, other) = (lead("held", 0), lead("free", 1));
    post(&app, std::slice::from_ref(&waiting)).await;
    wait_for(
        Duration::from_secs(20),
        "the first lead's note in doubt",
        || async {
            let retrying = app.events_in(EventStatus::Retrying).await;
            let in_doubt = retrying.iter().any(|e| e.attempts == 1);
            in_doubt.then_some(())
        },
    )
    .await;
    post(&app, std::slice::from_ref(&other)).await;
    wait_for(
        Duration::from_secs(20),
        "the second lead in GHL",
        || async {
            let state = ghl.state();
            let delivered = contacts_with(&state, &other.email)
                .first()
                .is_some_and(|id| state.notes_of(id).len() == 1 && state.tasks_of(id).len() == 1);
            delivered.then_some(())
        },
    )
    .await;
    let first = app.events_in(EventStatus::Retrying).await;
    assert_eq!(first.len(), 1, "the first lead still waits out its window");
}
