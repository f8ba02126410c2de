//! A full disk, for real: the server process keeps its SQLite store on a 2 MiB tmpfs of its own
//! (a private mount namespace made with `unshare`, so no mount is left behind), the test fills
//! that file system through `/proc/<pid>/root`, posts deliveries, frees the space and posts
//! more. Every 200 must be in the store, every refusal a 503 with `Retry-After`, `/readyz`
//! must say so while writes fail, and the server must take deliveries again by itself. Skipped
//! (`common::skip`) where `unshare` cannot make that namespace.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::common::{config_dir, formbridge_bin, skip, spawn_listening, wait_for, SECRET};

const ADMIN: &str = "full-disk-admin-token";

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

fn start_on_tmpfs(mount_point: &Path, size: &str) -> ServerOnTmpfs {
    std::fs::create_dir_all(mount_point).unwrap();
    let mut cmd = on_own_tmpfs(mount_point, size);
    cmd.arg(formbridge_bin()).arg("serve");
    let db = format!("sqlite://{}", mount_point.join("fb.db").display());
    let (child, base) = spawn_listening(
        cmd,
        &config_dir(),
        &[
            ("FORMBRIDGE__STORE__URL", &db),
            ("FORMBRIDGE__SOURCES__DRIPJOBS__SECRET", SECRET),
            ("FORMBRIDGE__ADMIN__TOKEN", ADMIN),
            // Dispatch runs (against a GHL that refuses connections) so that its claims and
            // retries write beside the deliveries, as on a real server.
            ("FORMBRIDGE__GHL__BASE_URL", "http://127.0.0.1:9"),
            ("FORMBRIDGE__GHL__TOKEN", "pit-full-disk"),
            ("FORMBRIDGE__GHL__LOCATION_ID", "loc-full-disk"),
        ],
    );
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

/// A DripJobs delivery of about 20 KB with its own deal id.
fn delivery(deal: &str) -> serde_json::Value {
    serde_json::json!({
        "deal_id": deal,
        "customer_email": format!("{deal}@example.com"),
        "customer_name": "Full Disk",
        "notes": "n".repeat(20_000),
    })
}

/// Posts one delivery; returns the event id of a 200, or `None` for a 503 (with its
/// `Retry-After` checked). Any other answer fails the test.
async fn post(client: &reqwest::Client, base: &str, deal: &str) -> Option<i64> {
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

async fn admin_get(client: &reqwest::Client, url: &str) -> serde_json::Value {
    let resp = client.get(url).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET {url}");
    resp.json().await.unwrap()
}

/// The status of `/readyz`; a 503 must give only the generic reason (the store's own error
/// is for the log, not for whoever can reach the health check).
async fn readyz(client: &reqwest::Client, base: &str) -> u16 {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_acknowledges_only_what_it_stored_and_recovers_when_space_is_freed() {
    if let Some(why) = own_tmpfs_unavailable() {
        skip(&format!(
            "no tmpfs of its own ({why}); it needs util-linux's unshare and a user namespace \
             allowed to mount (unprivileged user namespaces, when not root)"
        ));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start_on_tmpfs(&dir.path().join("store"), "2m");
    let client = reqwest::Client::new();
    let base = server.base.as_str();
    assert_eq!(readyz(&client, base).await, 200);

    let filler = server.tmpfs.join("filler");
    fill(&filler);

    // The disk is full: each delivery is stored (200) or refused (503), never acknowledged
    // and lost. Some go in while SQLite still has room in its files.
    let mut acknowledged: BTreeMap<String, i64> = BTreeMap::new();
    let mut refused = 0;
    let mut unready_seen = false;
    for n in 0..40 {
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
    for n in 0..10 {
        let deal = format!("freed-{n}");
        let id = post(&client, base, &deal)
            .await
            .unwrap_or_else(|| panic!("{deal} refused after space was freed"));
        acknowledged.insert(deal, id);
    }

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
}
