//! The container contract: the (release) binary started as the image starts it — in an empty
//! working folder, no config folder, environment only, the store under a data folder — answers
//! its health checks (also through `formbridge healthcheck`), keeps /metrics on the ops port,
//! stores deliveries, and on SIGTERM during a load stops with exit 0 having lost nothing it
//! acknowledged. (The image runs as a non-root user; these tests run as whatever user CI has.)

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use crate::common::{
    assert_none_lost, exit_of, formbridge_bin, post_until_gone, spawn_until_listening,
    stored_deals, wait_for_acks, Acked, SECRET,
};

/// The environment of the image plus what a deployment sets: production, ports, the store
/// under the data folder, a source secret and an admin token. Nothing else is inherited.
fn container_env(db: &str) -> Vec<(&'static str, String)> {
    vec![
        ("FORMBRIDGE_ENV", "production".into()),
        ("FORMBRIDGE__SERVER__ADDR", "127.0.0.1:0".into()),
        ("FORMBRIDGE__SERVER__OPS_ADDR", "127.0.0.1:0".into()),
        ("FORMBRIDGE__SERVER__SHUTDOWN_GRACE", "10s".into()),
        ("FORMBRIDGE__STORE__URL", db.into()),
        ("FORMBRIDGE__SOURCES__DRIPJOBS__SECRET", SECRET.into()),
        (
            "FORMBRIDGE__ADMIN__TOKEN",
            "container-admin-token-0123456789abcdef".into(),
        ),
        ("FORMBRIDGE__TELEMETRY__LOG_FORMAT", "json".into()),
    ]
}

fn formbridge_in(workdir: &Path, env: &[(&'static str, String)]) -> Command {
    let mut cmd = Command::new(formbridge_bin());
    cmd.env_clear().current_dir(workdir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// `formbridge serve` as the image runs it; returns it with its public and ops base URLs.
fn serve_in(workdir: &Path, env: &[(&'static str, String)]) -> (Child, String, String) {
    let mut cmd = formbridge_in(workdir, env);
    cmd.arg("serve");
    let (child, listening) = spawn_until_listening(cmd);
    let url = |key: &str| format!("http://{}", listening[key].as_str().unwrap());
    (child, url("addr"), url("ops_addr"))
}

fn sigterm(child: &Child) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
}

async fn status_of(url: String) -> u16 {
    reqwest::get(url).await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_binary_runs_from_an_empty_folder_on_env_and_loses_nothing_on_sigterm() {
    let _heavy = crate::common::HEAVY.lock().await;
    let root = tempfile::tempdir().unwrap();
    let workdir = root.path().join("empty");
    std::fs::create_dir(&workdir).unwrap();
    // The data folder does not exist yet: the store creates it (the image's volume at /data).
    let db = format!(
        "sqlite://{}",
        root.path().join("data").join("formbridge.db").display()
    );
    let env = container_env(&db);
    let (mut child, base, ops) = serve_in(&workdir, &env);

    // Health on both ports; /metrics and /admin only on the ops port.
    for url in [&base, &ops] {
        assert_eq!(status_of(format!("{url}/healthz")).await, 200);
        assert_eq!(status_of(format!("{url}/readyz")).await, 200);
    }
    assert_eq!(status_of(format!("{base}/metrics")).await, 404);
    assert_eq!(status_of(format!("{base}/admin/stats")).await, 404);
    assert_eq!(status_of(format!("{ops}/metrics")).await, 200);
    assert_eq!(status_of(format!("{ops}/admin/stats")).await, 401);

    // The image's HEALTHCHECK: `formbridge healthcheck` against the configured address.
    let mut probe_env = env.clone();
    probe_env.push((
        "FORMBRIDGE__SERVER__ADDR",
        base.trim_start_matches("http://").into(),
    ));
    let probe = formbridge_in(&workdir, &probe_env)
        .arg("healthcheck")
        .output()
        .unwrap();
    assert!(probe.status.success(), "{probe:?}");

    // SIGTERM in the middle of a load: exit 0, every acknowledged delivery stored.
    let acked = Acked::default();
    let senders = post_until_gone(&base, 8, &acked);
    wait_for_acks(&acked, 200).await;
    sigterm(&child);
    let status = exit_of(&mut child, Duration::from_secs(30)).await;
    assert!(status.success(), "SIGTERM ends with exit 0: {status:?}");
    for s in senders {
        s.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 200);
    assert_none_lost(&acked, &stored_deals(&db).await);
    assert!(
        std::fs::read_dir(&workdir).unwrap().next().is_none(),
        "nothing is written to the working folder"
    );

    // It starts again on the same data and stops as cleanly.
    let (mut again, base, _) = serve_in(&workdir, &env);
    assert_eq!(status_of(format!("{base}/readyz")).await, 200);
    sigterm(&again);
    let status = exit_of(&mut again, Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn production_refuses_a_development_secret_naming_the_key() {
    let root = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", root.path().join("formbridge.db").display());
    let mut env = container_env(&db);
    env.push((
        "FORMBRIDGE__SOURCES__JOTFORM__SECRET",
        "local-jotform-secret".into(),
    ));
    let out = formbridge_in(root.path(), &env)
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`sources.jotform.secret`"), "{stderr}");
    assert!(
        !stderr.contains("local-jotform-secret"),
        "the secret is not echoed: {stderr}"
    );
}
