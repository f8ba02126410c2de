//! A full disk, for real: the server process keeps its SQLite store on a 2 MiB tmpfs of its own
//! (a private mount namespace made with `unshare`, so no mount is left behind) — smaller than
//! SQLite's default auto-checkpoint (1000 pages, ~4 MB) — and dispatches to the GHL sandbox.
//! The test fills that file system through `/proc/<pid>/root`, posts deliveries, frees the
//! space and posts more, all without a restart. Every 200 must be in the store and reach GHL
//! (also while the disk is still full: the reserve file given back leaves room for dispatch),
//! every refusal a 503 with `Retry-After`, `/readyz` must say so while the store cannot take
//! deliveries, the server must take them again by itself, and the write-ahead log must stay
//! within `store.wal_limit_bytes`. Skipped (`common::skip`) where `unshare` cannot make that
//! namespace.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::common::{
    config_dir, dispatching_env, formbridge_bin, note, skip, spawn_listening, wait_for, SECRET,
};
use ghl_sandbox::{FaultSpec, SandboxHandle};

pub(crate) const ADMIN: &str = "full-disk-admin-token";
const TOKEN: &str = "pit-full-disk";
const LOCATION: &str = "locFullDisk000000001";
/// `store.wal_limit_bytes` and `store.reserve_bytes` as `config/default.toml` sets them.
const WAL_LIMIT: u64 = 1024 * 1024;
const RESERVE: u64 = 512 * 1024;

/// The server in its own mount namespace, with a tmpfs of `size` at `mount_point`.
struct ServerOnTmpfs {
    child: Child,
    base: String,
    /// The tmpfs as this process sees it (through the server's root).
    tmpfs: PathBuf,
}

impl Drop for ServerOnTmpfs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command that runs the command added to it in a mount namespace of its own, with a tmpfs
/// of `size` at `mount_point` (an existing folder).
fn on_own_tmpfs(mount_point: &Path, size: &str) -> Command {
    let mut cmd = Command::new("unshare");
    // A user namespace as well, so this works without root; as root it changes nothing.
    cmd.args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o "size=$1" tmpfs "$0" && shift && exec "$@""#)
        .arg(mount_point)
        .arg(size);
    cmd
}

/// Why this machine cannot run [`on_own_tmpfs`] (no `unshare`, no user namespaces, no right to
/// mount), if it cannot: tried once, for real, in a temporary folder.
fn own_tmpfs_unavailable() -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let tried = on_own_tmpfs(dir.path(), "1m").arg("true").output();
    match tried {
        Err(e) => Some(format!("cannot run unshare: {e}")),
        Ok(out) if !out.status.success() => Some(format!(
            "unshare with a tmpfs failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => None,
    }
}

fn start_on_tmpfs(mount_point: &Path, size: &str, ghl: &SandboxHandle) -> ServerOnTmpfs {
    std::fs::create_dir_all(mount_point).unwrap();
    let mut cmd = on_own_tmpfs(mount_point, size);
    cmd.arg(formbridge_bin()).arg("serve");
    let db = format!("sqlite://{}", mount_point.join("fb.db").display());
    // Dispatch runs against the GHL sandbox, so that its claims, steps and finishes write
    // beside the deliveries, as on a real server, and every acknowledged one must get there.
    let mut env = dispatching_env(&db, ghl.base_url.as_str(), TOKEN, LOCATION);
    env.push(("FORMBRIDGE__ADMIN__TOKEN".into(), ADMIN.into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (child, base) = spawn_listening(cmd, &config_dir(), &env);
    let tmpfs = PathBuf::from(format!("/proc/{}/root", child.id())).join(
        mount_point
            .strip_prefix("/")
            .expect("an absolute mount point"),
    );
    ServerOnTmpfs { child, base, tmpfs }
}

/// Fills the file system holding `path` with one file, until it refuses more.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    let mut written = 0usize;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n,
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling the tmpfs: {e}"),
        }
    }
    // Whatever a partial page still takes, byte by byte.
    while file.write(&[0u8]).is_ok_and(|n| n == 1) {
        written += 1;
    }
    assert!(written > 0, "the tmpfs was already full");
}

/// A DripJobs delivery of about 2 KB with its own deal id.
pub(crate) fn delivery(deal: &str) -> serde_json::Value {
    let notes = 2_000;
    serde_json::json!({
        "deal_id": deal,
        "customer_email": format!("{deal}@example.com"),
        "customer_name": "Full Disk",
        "notes": "n".repeat(notes),
    })
}

/// Posts one delivery; returns the event id of a 200, or `None` for a 503 (with its
/// `Retry-After` checked). Any other answer fails the test.
pub(crate) async fn post(client: &reqwest::Client, base: &str, deal: &str) -> Option<i64> {
    let resp = client
        .post(format!("{base}/hooks/dripjobs?token={SECRET}"))
        .json(&delivery(deal))
        .send()
        .await
        .unwrap();
    match resp.status().as_u16() {
        200 => {
            let body: serde_json::Value = resp.json().await.unwrap();
            Some(body["event_id"].as_i64().unwrap())
        }
        503 => {
            assert!(
                resp.headers().contains_key("retry-after"),
                "a 503 without Retry-After"
            );
            None
        }
        other => panic!("deal {deal}: answered {other}: {:?}", resp.text().await),
    }
}

pub(crate) async fn admin_get(client: &reqwest::Client, url: &str) -> serde_json::Value {
    let resp = client.get(url).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET {url}");
    resp.json().await.unwrap()
}

/// The status of `/readyz`; a 503 must give only the generic reason (the store's own error
/// is for the log, not for whoever can reach the health check).
pub(crate) async fn readyz(client: &reqwest::Client, base: &str) -> u16 {
    let resp = client.get(format!("{base}/readyz")).send().await.unwrap();
    let status = resp.status().as_u16();
    if status == 503 {
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(
            body,
            serde_json::json!({"status": "unavailable", "reason": "store"})
        );
    }
    status
}

async fn metric(client: &reqwest::Client, base: &str, name: &str) -> f64 {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Waits until every delivery of `acknowledged` (deal → event id) is `done` and its contact is
/// in the sandbox.
pub(crate) async fn wait_dispatched(
    client: &reqwest::Client,
    base: &str,
    ghl: &SandboxHandle,
    acknowledged: &BTreeMap<String, i64>,
    what: &str,
) {
    wait_for(Duration::from_secs(60), what, || async {
        for id in acknowledged.values() {
            let event = admin_get(client, &format!("{base}/admin/events/{id}")).await;
            if event["status"] != "done" {
                return None;
            }
        }
        let emails: std::collections::BTreeSet<String> = ghl
            .state()
            .contacts
            .iter()
            .filter_map(|c| c["email"].as_str().map(str::to_owned))
            .collect();
        acknowledged
            .keys()
            .all(|deal| emails.contains(&format!("{deal}@example.com")))
            .then_some(())
    })
    .await;
}

/// Fails unless each delivery of `acknowledged` made one contact with one note in GHL.
pub(crate) fn assert_each_once(ghl: &SandboxHandle, acknowledged: &BTreeMap<String, i64>) {
    let state = ghl.state();
    for deal in acknowledged.keys() {
        let email = format!("{deal}@example.com");
        let contacts = state
            .contacts
            .iter()
            .filter(|c| c["emailLowerCase"] == email.as_str())
            .count();
        let contact = state.contact_by_email(&email).unwrap();
        let notes = state.notes_of(contact["id"].as_str().unwrap()).len();
        assert_eq!(
            (contacts, notes),
            (1, 1),
            "{deal}: contacts and notes in GHL"
        );
    }
}

fn signal(child: &Child, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
}

fn size_of(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_acknowledges_only_what_it_stored_dispatches_all_of_it_and_recovers_when_space_is_freed(
) {
    if let Some(why) = own_tmpfs_unavailable() {
        skip(&format!(
            "no tmpfs of its own ({why}); it needs util-linux's unshare and a user namespace \
             allowed to mount (unprivileged user namespaces, when not root)"
        ));
        return;
    }
    let mut config = ghl_sandbox::SandboxConfig::single(TOKEN, LOCATION);
    config.window = Duration::from_secs(1);
    let ghl = ghl_sandbox::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = start_on_tmpfs(&dir.path().join("store"), "2m", &ghl);
    let client = reqwest::Client::new();
    let base = server.base.as_str();
    assert_eq!(readyz(&client, base).await, 200);
    let (wal, reserve) = (
        server.tmpfs.join("fb.db-wal"),
        server.tmpfs.join("fb.db.reserve"),
    );
    assert_eq!(size_of(&reserve), RESERVE, "the reserve is made at start");

    // Deliveries acknowledged before the disk fills, held back by GHL answering 429 (which
    // costs no attempt): the disk will be full before any of them is dispatched.
    ghl.sandbox.set_faults(FaultSpec {
        rate_limit_for_ms: Some(600_000),
        retry_after_secs: Some(1),
        ..FaultSpec::default()
    });
    let mut acknowledged: BTreeMap<String, i64> = BTreeMap::new();
    for n in 0..8 {
        let deal = format!("before-{n}");
        let id = post(&client, base, &deal).await.unwrap();
        acknowledged.insert(deal, id);
    }
    // Each prepared and tried once: what is left for them is dispatch's bookkeeping, which the
    // reserve makes room for.
    wait_for(Duration::from_secs(30), "a first try of each", || async {
        let bodies: Vec<String> = ghl
            .state()
            .requests
            .iter()
            .filter_map(|r| r.body.as_ref().map(|b| b.to_string()))
            .collect();
        acknowledged
            .keys()
            .all(|deal| {
                bodies
                    .iter()
                    .any(|b| b.contains(&format!("{deal}@example.com")))
            })
            .then_some(())
    })
    .await;

    // The server is stopped while the disk fills: a filler that kept writing would take the
    // room the reserve gives back too (the reserve is room for formbridge after whatever
    // filled the disk has stopped).
    let filler = server.tmpfs.join("filler");
    signal(&server.child, rustix::process::Signal::STOP);
    fill(&filler);
    signal(&server.child, rustix::process::Signal::CONT);

    // The disk is full: each delivery is stored (200) or refused (503), never acknowledged
    // and lost. Some go in while SQLite still has room in its files.
    let mut refused = 0;
    let mut unready_seen = false;
    for n in 0..300 {
        if refused >= 10 {
            break;
        }
        let deal = format!("full-{n}");
        match post(&client, base, &deal).await {
            Some(id) => {
                acknowledged.insert(deal, id);
            }
            None => {
                refused += 1;
                // Right after a refused write the store says it cannot write.
                unready_seen |= readyz(&client, base).await == 503;
            }
        }
    }
    assert!(refused > 0, "the full disk refused nothing");
    assert!(
        unready_seen,
        "/readyz never answered 503 while writes failed"
    );
    assert!(metric(&client, base, "formbridge_store_commit_failures_total").await >= 1.0);

    // Still full: the reserve is given back, and what was acknowledged is dispatched in the
    // room it left once GHL answers, while new deliveries are refused and /readyz says not
    // ready.
    assert!(!reserve.exists(), "the reserve was not given back");
    for id in acknowledged.values() {
        let event = admin_get(&client, &format!("{base}/admin/events/{id}")).await;
        assert_ne!(
            event["status"], "done",
            "event {id} dispatched before GHL answered"
        );
    }
    ghl.sandbox.set_faults(FaultSpec {
        rate_limit_for_ms: Some(0),
        ..FaultSpec::default()
    });
    wait_dispatched(
        &client,
        base,
        &ghl,
        &acknowledged,
        "every acknowledged delivery dispatched on the full disk",
    )
    .await;
    assert_eq!(post(&client, base, "while-full").await, None);
    assert_eq!(readyz(&client, base).await, 503);
    let full_wal = size_of(&wal);

    // Space comes back: the store recovers with no restart and no delivery needed.
    std::fs::remove_file(&filler).unwrap();
    wait_for(
        Duration::from_secs(30),
        "/readyz to answer 200 again",
        || {
            let client = client.clone();
            async move { (readyz(&client, base).await == 200).then_some(()) }
        },
    )
    .await;
    assert_eq!(size_of(&reserve), RESERVE, "the reserve is made again");
    for n in 0..10 {
        let deal = format!("freed-{n}");
        let id = post(&client, base, &deal)
            .await
            .unwrap_or_else(|| panic!("{deal} refused after space was freed"));
        acknowledged.insert(deal, id);
    }
    wait_dispatched(
        &client,
        base,
        &ghl,
        &acknowledged,
        "every acknowledged delivery dispatched",
    )
    .await;

    assert_each_once(&ghl, &acknowledged);

    // Every acknowledged delivery is in the store with its body; nothing else is.
    for (deal, id) in &acknowledged {
        let event = admin_get(&client, &format!("{base}/admin/events/{id}")).await;
        let body: serde_json::Value =
            serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["deal_id"], deal.as_str(), "event {id}");
    }
    let listed = admin_get(
        &client,
        &format!("{base}/admin/events?source=dripjobs&limit=500"),
    )
    .await;
    assert_eq!(
        listed["events"].as_array().unwrap().len(),
        acknowledged.len(),
        "stored events other than the acknowledged ones"
    );
    let (db_len, wal_len) = (size_of(&server.tmpfs.join("fb.db")), size_of(&wal));
    note(&format!(
        "full disk: {} acknowledged ({refused} refused while full), all dispatched; \
         fb.db {db_len} B, fb.db-wal {full_wal} B while full and {wal_len} B at the end",
        acknowledged.len()
    ));
    assert!(
        wal_len <= WAL_LIMIT && full_wal <= WAL_LIMIT,
        "the write-ahead log outgrew store.wal_limit_bytes ({WAL_LIMIT}): {full_wal} B while full, {wal_len} B at the end"
    );
}

#[test]
fn the_wal_limit_and_the_reserve_size_are_checked_naming_their_keys() {
    use formbridge::settings::{ConfigSource, Settings};
    let load = |extra: &[(&str, &str)]| {
        Settings::load_without_env(&ConfigSource::named(config_dir(), "test"), extra)
            .map(|s| (s.store.wal_limit_bytes, s.store.reserve_bytes))
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        load(&[]),
        Ok((WAL_LIMIT, RESERVE)),
        "the documented defaults"
    );
    assert_eq!(
        load(&[("store.reserve_bytes", "0")]),
        Ok((WAL_LIMIT, 0)),
        "no reserve"
    );
    for (key, value) in [
        ("store.wal_limit_bytes", "4096"),
        ("store.reserve_bytes", "4096"),
        // Less than half the write-ahead log's limit.
        ("store.reserve_bytes", "262144"),
    ] {
        let err = load(&[(key, value)]).unwrap_err();
        assert!(err.contains(key), "{key} = {value}: {err}");
    }
}
