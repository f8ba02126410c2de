//! The HTTP server over real TCP on port 0: a half-sent request head is closed after the
//! header-read timeout, an idle kept-alive connection after the keep-alive timeout, the
//! connection cap holds with `/healthz` still answered while it is full of half-sent heads, and
//! a graceful shutdown is not held up by idle or half-sent connections.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crate::common::{spawn_app, test_settings, TestApp};
use formbridge::app::Application;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest wait for anything the server should do within a second.
const DEADLINE: Duration = Duration::from_secs(10);

/// A head cut before its blank line: the server waits for the rest.
const HALF_HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: formbridge\r\n";

async fn connect(addr: &str) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

fn addr_of(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (EOF or reset) and returns when that was, or
/// `None` if it is still open after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Instant> {
    let mut buf = [0u8; 1024];
    let read_to_end = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read_to_end).await.ok()
}

/// Sends one complete `GET /healthz` on `stream` and reads its whole (small) answer.
async fn healthz_on(stream: &mut TcpStream) {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: formbridge\r\n\r\n")
        .await
        .unwrap();
    read_answer(stream).await;
}

/// Reads one answer to `GET /healthz` (its body is `{"status":"ok"}`).
async fn read_answer(stream: &mut TcpStream) {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(DEADLINE, async {
        while !String::from_utf8_lossy(&got).contains(r#"{"status":"ok"}"#) {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed before answering: {}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("no answer");
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test]
async fn a_half_sent_or_missing_head_is_closed_after_the_header_timeout() {
    let app = spawn_app(&[("server.header_read_timeout", "300ms")]).await;
    let addr = addr_of(&app);
    let opened = Instant::now();
    let mut half = connect(&addr).await;
    half.write_all(HALF_HEAD).await.unwrap();
    let mut silent = connect(&addr).await;
    for stream in [&mut half, &mut silent] {
        let closed = closed_within(stream, DEADLINE)
            .await
            .expect("still open long after the header timeout");
        assert!(closed - opened >= Duration::from_millis(250));
    }
    // The server still serves.
    let r = app.get("/healthz").await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_kept_alive_connection_idles_for_the_keep_alive_timeout_then_each_head_is_timed() {
    // Keep-alive shorter than the header timeout: an idle connection closes on its own timer.
    let app = spawn_app(&[
        ("server.header_read_timeout", "30s"),
        ("server.keep_alive_timeout", "300ms"),
    ])
    .await;
    let mut conn = connect(&addr_of(&app)).await;
    healthz_on(&mut conn).await;
    let answered = Instant::now();
    let closed = closed_within(&mut conn, DEADLINE)
        .await
        .expect("an idle kept-alive connection was not closed");
    assert!(closed - answered >= Duration::from_millis(250));

    // Keep-alive longer than the header timeout: idling past the header timeout is fine, and
    // the next head, once begun, has the header timeout.
    let app = spawn_app(&[
        ("server.header_read_timeout", "300ms"),
        ("server.keep_alive_timeout", "60s"),
    ])
    .await;
    let mut conn = connect(&addr_of(&app)).await;
    healthz_on(&mut conn).await;
    assert_eq!(
        closed_within(&mut conn, Duration::from_secs(1)).await,
        None,
        "closed while idle within the keep-alive timeout"
    );
    healthz_on(&mut conn).await;
    conn.write_all(HALF_HEAD).await.unwrap();
    let begun = Instant::now();
    let closed = closed_within(&mut conn, DEADLINE)
        .await
        .expect("a half-sent second head was not closed");
    assert!(closed - begun >= Duration::from_millis(250));
}

#[tokio::test]
async fn at_the_connection_cap_the_longest_waiting_head_makes_room_and_healthz_is_answered() {
    let cap = 4;
    let app = spawn_app(&[
        ("server.max_connections", "4"),
        ("server.header_read_timeout", "60s"),
    ])
    .await;
    let addr = addr_of(&app);
    // Fill the cap with half-sent heads, then two more.
    let mut conns = Vec::new();
    for _ in 0..cap + 2 {
        let mut c = connect(&addr).await;
        c.write_all(HALF_HEAD).await.unwrap();
        conns.push(c);
    }
    let health = tokio::time::timeout(
        DEADLINE,
        app.client.get(format!("{}/healthz", app.base)).send(),
    )
    .await
    .expect("/healthz not answered with the cap full of half-sent heads")
    .unwrap();
    assert_eq!(health.status(), 200);
    // The three that waited longest were closed to admit the two and the health check ...
    for (i, c) in conns.iter_mut().take(3).enumerate() {
        assert!(
            closed_within(c, DEADLINE).await.is_some(),
            "connection {i} was not evicted"
        );
    }
    // ... and the newer ones are still served once their heads are complete.
    for c in conns.iter_mut().skip(3) {
        c.write_all(b"\r\n").await.unwrap();
        read_answer(c).await;
    }
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("formbridge_http_connection_cap_reached_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"formbridge_http_connections_closed_total{reason="evicted"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("formbridge_http_connections "),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_graceful_shutdown_is_not_held_up_by_idle_or_half_sent_connections() {
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(
        dir.path(),
        &[
            ("server.shutdown_grace", "60s"),
            ("server.header_read_timeout", "60s"),
        ],
    );
    let app = Application::build(settings).await.unwrap();
    let addr = app.local_addr().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    // Kept alive and idle after one request.
    let mut idle = connect(&addr).await;
    healthz_on(&mut idle).await;
    // Half of a second head after one request.
    let mut second_half = connect(&addr).await;
    healthz_on(&mut second_half).await;
    second_half.write_all(HALF_HEAD).await.unwrap();
    // Half of a first head.
    let mut first_half = connect(&addr).await;
    first_half.write_all(HALF_HEAD).await.unwrap();

    let stopping = Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(DEADLINE, server)
        .await
        .expect("shutdown waited for connections that were not in a request")
        .unwrap()
        .unwrap();
    assert!(stopping.elapsed() < DEADLINE);
    for c in [&mut idle, &mut second_half, &mut first_half] {
        assert!(closed_within(c, DEADLINE).await.is_some());
    }
}
