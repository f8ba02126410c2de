//! A store that stops taking writes while the server runs. Each delivery is then stored and
//! answered 200, or refused with 503 and `Retry-After`; `/readyz` says not ready; dispatch loses
//! and duplicates nothing.
//!
//! - **PostgreSQL**: the database made read-only (`default_transaction_read_only` on the
//!   database, every session ended, as an operator or a provider's full-disk guard does), then
//!   writable again *without* ending the sessions opened meanwhile (which stay read-only for
//!   their life): the server recovers by itself, no restart.
//! - **SQLite**: the volume an ext4 image in a mount namespace of the server's own, turned
//!   read-only by the kernel under the running server (a file-system error with
//!   `errors=remount-ro`; `mount -o remount,ro` is refused with EBUSY while SQLite holds its
//!   files open for writing, so a volume goes read-only under a running server only this way).
//!   Such a volume stays read-only until it is unmounted and checked, so recovery is a restart
//!   on the repaired volume, which then dispatches everything acknowledged, once. Skipped
//!   (`common::skip`) where loop devices cannot be used (not root).
//! - **SQLite, file or folder made read-only** (`chmod`, the server running as a user the modes
//!   bind): the files SQLite holds open still take writes, so deliveries are still stored and
//!   acknowledged; the next start refuses, naming the folder or the file and what to fix.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use ghl_sandbox::{FaultSpec, SandboxConfig, SandboxHandle};
use sqlx::Connection;

use crate::common::{
    config_dir, dispatching_env, formbridge_bin, note, skip, spawn_listening, wait_for,
};
use crate::fleet::{Fleet, ServeCommand};
use crate::full_disk::{admin_get, assert_each_once, post, readyz, wait_dispatched, ADMIN};

const TOKEN: &str = "pit-read-only";
const LOCATION: &str = "locReadOnly000000001";

/// Sets `default_transaction_read_only` of database `name` through `admin` (a session of its
/// own, opened while the database took writes).
async fn set_read_only(admin: &mut sqlx::PgConnection, name: &str, on: bool) {
    let sql = if on {
        format!("ALTER DATABASE \"{name}\" SET default_transaction_read_only = on")
    } else {
        format!("ALTER DATABASE \"{name}\" RESET default_transaction_read_only")
    };
    sqlx::query(&sql).execute(&mut *admin).await.unwrap();
}

/// Ends every other session on database `name`: the server's pool opens new ones.
async fn end_sessions(admin: &mut sqlx::PgConnection, name: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = $1 AND pid <> pg_backend_pid()) AS ended",
    )
    .bind(name)
    .fetch_one(&mut *admin)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_postgres_database_gets_503s_and_the_server_recovers_by_itself() {
    let Some(db) = crate::pg::database_or_skip().await else {
        return;
    };
    let name = url::Url::parse(&db.url).unwrap().path()[1..].to_owned();
    let mut config = SandboxConfig::single(TOKEN, LOCATION);
    config.window = Duration::from_secs(1);
    let ghl = ghl_sandbox::start(config).await.unwrap();
    let mut command = ServeCommand {
        config: config_dir(),
        env: dispatching_env(&db.url, ghl.base_url.as_str(), TOKEN, LOCATION),
    };
    command.set("FORMBRIDGE__ADMIN__TOKEN", ADMIN);
    let fleet = Fleet::start(command, 1);
    let base = fleet.any_base().unwrap();
    let client = reqwest::Client::new();
    assert_eq!(readyz(&client, &base).await, 200);

    // Deliveries acknowledged before, held back by GHL answering 429 (no attempt spent): they
    // are still to dispatch when the database turns read-only.
    ghl.sandbox.set_faults(FaultSpec {
        rate_limit_for_ms: Some(600_000),
        retry_after_secs: Some(1),
        ..FaultSpec::default()
    });
    let mut acknowledged: BTreeMap<String, i64> = BTreeMap::new();
    for n in 0..8 {
        let deal = format!("before-{n}");
        acknowledged.insert(deal.clone(), post(&client, &base, &deal).await.unwrap());
    }

    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
    set_read_only(&mut admin, &name, true).await;
    let ended = end_sessions(&mut admin, &name).await;
    ghl.sandbox.set_faults(FaultSpec {
        rate_limit_for_ms: Some(0),
        ..FaultSpec::default()
    });

    // Read-only: each delivery stored (200) or refused (503 with Retry-After), never
    // acknowledged and lost; /readyz says not ready.
    let mut refused = 0;
    for n in 0..20 {
        let deal = format!("read-only-{n}");
        match post(&client, &base, &deal).await {
            Some(id) => {
                acknowledged.insert(deal, id);
            }
            None => refused += 1,
        }
    }
    assert!(refused > 0, "the read-only database refused nothing");
    wait_for(Duration::from_secs(10), "/readyz to say not ready", || {
        let (client, base) = (client.clone(), base.clone());
        async move { (readyz(&client, &base).await == 503).then_some(()) }
    })
    .await;
    let notes_while_read_only = ghl.sandbox.note_count();

    // Writable again, the server's read-only sessions left as they are: it recovers by itself.
    set_read_only(&mut admin, &name, false).await;
    let recovered_at = std::time::Instant::now();
    wait_for(
        Duration::from_secs(30),
        "/readyz to answer 200 again",
        || {
            let (client, base) = (client.clone(), base.clone());
            async move { (readyz(&client, &base).await == 200).then_some(()) }
        },
    )
    .await;
    let ready_after = recovered_at.elapsed();
    for n in 0..10 {
        let deal = format!("writable-{n}");
        let id = post(&client, &base, &deal)
            .await
            .unwrap_or_else(|| panic!("{deal} refused once the database took writes again"));
        acknowledged.insert(deal, id);
    }
    wait_dispatched(
        &client,
        &base,
        &ghl,
        &acknowledged,
        "every acknowledged delivery dispatched",
    )
    .await;
    assert_each_once(&ghl, &acknowledged);

    // The store holds exactly the acknowledged deliveries.
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(stored as usize, acknowledged.len(), "stored events");
    note(&format!(
        "read-only PostgreSQL: {} acknowledged, {refused} refused while read-only ({ended} \
         sessions ended), {notes_while_read_only} notes in GHL while read-only; ready again \
         {:.1} s after the database took writes, all dispatched once",
        acknowledged.len(),
        ready_after.as_secs_f64()
    ));
}

/// A command that runs the command added to it in a mount namespace of its own, with the ext4
/// image `image` mounted (through a loop device, detached when the namespace ends) at
/// `mount_point`, `errors=remount-ro`: the kernel turns it read-only on a file-system error.
fn on_own_ext4(image: &Path, mount_point: &Path) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "sh", "-c"])
        .arg(
            r#"dev=$(losetup --find --show "$1") || exit 1
mount -o errors=remount-ro "$dev" "$0" || { losetup -d "$dev"; exit 1; }
losetup -d "$dev"; shift; exec "$@""#,
        )
        .arg(mount_point)
        .arg(image);
    cmd
}

/// A fresh ext4 image of `size` at `image` (`mkfs.ext4`).
fn make_ext4(image: &Path, size: u64) -> Result<(), String> {
    std::fs::File::create(image)
        .and_then(|f| f.set_len(size))
        .map_err(|e| format!("cannot make {}: {e}", image.display()))?;
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(image)
        .output()
        .map_err(|e| format!("cannot run mkfs.ext4 (e2fsprogs): {e}"))?;
    out.status
        .success()
        .then_some(())
        .ok_or_else(|| format!("mkfs.ext4 failed: {}", String::from_utf8_lossy(&out.stderr)))
}

/// Why this machine cannot mount an ext4 image in a namespace of its own (loop devices and
/// mounting need root), if it cannot: tried once, for real.
fn own_ext4_unavailable() -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("probe.img");
    if let Err(why) = make_ext4(&image, 4 << 20) {
        return Some(why);
    }
    let mount_point = dir.path().join("m");
    std::fs::create_dir(&mount_point).unwrap();
    match on_own_ext4(&image, &mount_point).arg("true").output() {
        Err(e) => Some(format!("cannot run unshare: {e}")),
        Ok(out) if !out.status.success() => Some(format!(
            "mounting an ext4 image through a loop device failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// The server on the image, in its own mount namespace; killed (and the namespace with it) on
/// drop.
struct ServerOnExt4 {
    child: Child,
    base: String,
    /// The loop device's name (`loop3`), for `/sys/fs/ext4/<name>/`.
    device: String,
}

impl Drop for ServerOnExt4 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_on_ext4(image: &Path, mount_point: &Path, ghl: &SandboxHandle) -> ServerOnExt4 {
    let mut cmd = on_own_ext4(image, mount_point);
    cmd.arg(formbridge_bin()).arg("serve");
    let db = format!("sqlite://{}", mount_point.join("fb.db").display());
    let mut env = dispatching_env(&db, ghl.base_url.as_str(), TOKEN, LOCATION);
    env.push(("FORMBRIDGE__ADMIN__TOKEN".into(), ADMIN.into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (child, base) = spawn_listening(cmd, &config_dir(), &env);
    let mounts = std::fs::read_to_string(format!("/proc/{}/mounts", child.id())).unwrap();
    let device = mounts
        .lines()
        .find_map(|l| {
            let mut fields = l.split(' ');
            let (source, target) = (fields.next()?, fields.next()?);
            (Path::new(target) == mount_point)
                .then(|| source.trim_start_matches("/dev/").to_owned())
        })
        .expect("the image is mounted in the server's namespace");
    ServerOnExt4 {
        child,
        base,
        device,
    }
}

/// Whether loop device `name` still has a backing file (its mount not yet released).
fn loop_in_use(name: &str) -> bool {
    Path::new(&format!("/sys/block/{name}/loop/backing_file")).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqlite_volume_the_kernel_turns_read_only_gets_503s_loses_nothing_and_serves_again_after_repair(
) {
    let _heavy = crate::common::HEAVY.lock().await;
    if let Some(why) = own_ext4_unavailable() {
        skip(&format!(
            "no ext4 image of its own ({why}); it needs root, loop devices, util-linux's \
             unshare and losetup, and e2fsprogs"
        ));
        return;
    }
    let mut config = SandboxConfig::single(TOKEN, LOCATION);
    config.window = Duration::from_secs(1);
    let ghl = ghl_sandbox::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (image, mount_point) = (dir.path().join("store.img"), dir.path().join("store"));
    make_ext4(&image, 16 << 20).unwrap();
    std::fs::create_dir(&mount_point).unwrap();
    let server = start_on_ext4(&image, &mount_point, &ghl);
    let client = reqwest::Client::new();
    let base = server.base.clone();
    assert_eq!(readyz(&client, &base).await, 200);

    // Deliveries acknowledged before, held back by GHL answering 429.
    ghl.sandbox.set_faults(FaultSpec {
        rate_limit_for_ms: Some(600_000),
        retry_after_secs: Some(1),
        ..FaultSpec::default()
    });
    let mut acknowledged: BTreeMap<String, i64> = BTreeMap::new();
    for n in 0..8 {
        let deal = format!("before-{n}");
        acknowledged.insert(deal.clone(), post(&client, &base, &deal).await.unwrap());
    }

    // A file-system error: the kernel turns the volume read-only under the running server
    // (writes then fail with EIO, new files with EROFS), as ext4 does with errors=remount-ro.
    std::fs::write(
        format!("/sys/fs/ext4/{}/trigger_fs_error", server.device),
        "formbridge read-only test",
    )
    .unwrap();
    ghl.sandbox.set_faults(FaultSpec {
        rate_limit_for_ms: Some(0),
        ..FaultSpec::default()
    });
    let mut refused = 0;
    for n in 0..20 {
        let deal = format!("read-only-{n}");
        match post(&client, &base, &deal).await {
            Some(id) => {
                acknowledged.insert(deal, id);
            }
            None => refused += 1,
        }
    }
    assert!(refused > 0, "the read-only volume refused nothing");
    wait_for(Duration::from_secs(10), "/readyz to say not ready", || {
        let (client, base) = (client.clone(), base.clone());
        async move { (readyz(&client, &base).await == 503).then_some(()) }
    })
    .await;
    let notes_while_read_only = ghl.sandbox.note_count();

    // Such a volume stays read-only until it is unmounted and checked: the server is stopped
    // (the namespace, the mount and the loop device go with it), the file system repaired,
    // and the server started again on it.
    let device = server.device.clone();
    drop(server);
    wait_for(Duration::from_secs(10), "the loop device released", || {
        let free = !loop_in_use(&device);
        async move { free.then_some(()) }
    })
    .await;
    let fsck = Command::new("e2fsck")
        .arg("-fy")
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        matches!(fsck.status.code(), Some(0 | 1)),
        "e2fsck: {}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    let server = start_on_ext4(&image, &mount_point, &ghl);
    let base = server.base.clone();
    assert_eq!(readyz(&client, &base).await, 200);
    for n in 0..5 {
        let deal = format!("repaired-{n}");
        acknowledged.insert(deal.clone(), post(&client, &base, &deal).await.unwrap());
    }
    wait_dispatched(
        &client,
        &base,
        &ghl,
        &acknowledged,
        "every acknowledged delivery dispatched",
    )
    .await;
    assert_each_once(&ghl, &acknowledged);
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
    note(&format!(
        "read-only SQLite volume: {} acknowledged, {refused} refused while read-only, \
         {notes_while_read_only} notes in GHL while read-only; all dispatched once after the \
         repair and restart",
        acknowledged.len()
    ));
}

/// `formbridge serve` as a user whom file modes bind: `nobody` when the tests run as root (root
/// writes whatever the modes say), else the tests' own user.
fn serve_unprivileged() -> Command {
    let mut cmd = if rustix::process::getuid().is_root() {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
        cmd.arg(formbridge_bin());
        cmd
    } else {
        Command::new(formbridge_bin())
    };
    cmd.arg("serve");
    cmd
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqlite_file_or_folder_made_read_only_keeps_every_acknowledged_delivery_and_a_start_names_what_to_fix(
) {
    let dir = tempfile::tempdir().unwrap();
    set_mode(dir.path(), 0o755);
    let folder = dir.path().join("store");
    std::fs::create_dir(&folder).unwrap();
    if rustix::process::getuid().is_root() {
        std::os::unix::fs::chown(&folder, Some(65534), Some(65534)).unwrap();
    }
    let db = folder.join("fb.db");
    let url = format!("sqlite://{}", db.display());
    let env = [
        ("FORMBRIDGE__STORE__URL", url.as_str()),
        ("FORMBRIDGE__ADMIN__TOKEN", ADMIN),
        (
            "FORMBRIDGE__SOURCES__DRIPJOBS__SECRET",
            crate::common::SECRET,
        ),
    ];
    let client = reqwest::Client::new();
    let (mut child, base) = spawn_listening(serve_unprivileged(), &config_dir(), &env);
    let first = post(&client, &base, "writable").await.unwrap();

    // Made read-only under the running server: SQLite's files are open already, so deliveries
    // are still stored, and acknowledged only then.
    set_mode(&db, 0o444);
    set_mode(&folder, 0o555);
    let second = post(&client, &base, "made-read-only")
        .await
        .expect("stored through the files SQLite holds open");
    crate::fleet::kill(&mut child);

    // A start refuses, naming the folder, then the file, and what to fix.
    let refused_naming = |what: String| {
        let mut cmd = serve_unprivileged();
        cmd.env("FORMBRIDGE_CONFIG_DIR", config_dir())
            .env("FORMBRIDGE_ENV", "test")
            .env("FORMBRIDGE__SERVER__ADDR", "127.0.0.1:0");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started on a read-only store");
        assert!(
            stderr.contains(&what) && stderr.contains("write access"),
            "{stderr}"
        );
    };
    refused_naming(format!("the folder {}", folder.display()));
    set_mode(&folder, 0o755);
    refused_naming(format!("the SQLite file {}", db.display()));

    // Writable again: it starts, with both deliveries.
    set_mode(&db, 0o600);
    let (mut child, base) = spawn_listening(serve_unprivileged(), &config_dir(), &env);
    for (id, deal) in [(first, "writable"), (second, "made-read-only")] {
        let event = admin_get(&client, &format!("{base}/admin/events/{id}")).await;
        let body: serde_json::Value =
            serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["deal_id"], deal);
    }
    crate::fleet::kill(&mut child);
}
