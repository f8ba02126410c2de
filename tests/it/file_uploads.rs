//! File uploads (`[[mapping.files]]`) against the GHL sandbox over real HTTP, the files served
//! by a local file host on port 0 (listed in `files.private_hosts`): a Jotform upload answer
//! ends in the contact's File Upload field with the same bytes; a file over the cap, of a
//! wrong type, on a host not allowed or redirected elsewhere stays a link in the note with its
//! reason on the event; a lost answer and a replay from scratch upload nothing twice; a file
//! larger than any buffer streams through.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use formbridge::domain::EventId;
use formbridge::store::{EventFilter, EventStatus};
use ghl_sandbox::{FaultSpec, SandboxHandle};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::common::{settings_with_toml, spawn_driven, TestApp, SECRET};
use crate::dispatch::{driven_app_for, sandbox_with, LOCATION, TOKEN};

const FIELD: &str = "fileField0000000001";
const EMAIL: &str = "ada.files@example.com";
const ADMIN: &str = "admin-token-of-the-file-upload-tests-01";
const CHUNK: usize = 64 * 1024;

/// The mapping and limits: every Jotform upload answer into `FIELD`, files up to 1 MiB, the
/// local file host allowed.
fn config(max_bytes: u64) -> String {
    format!(
        r#"
[files]
max_bytes = {max_bytes}
private_hosts = ["127.0.0.1"]
download_attempts = 2

[[sources.jotform.mapping.files]]
custom_field_id = "{FIELD}"
"#
    )
}

/// Chunk `i` of a served file: 64 KiB of one byte value.
fn chunk(i: usize) -> Bytes {
    Bytes::from(vec![u8::try_from(i % 251).unwrap(); CHUNK])
}

fn sha256_of_chunks(n: usize) -> String {
    let mut h = Sha256::new();
    for i in 0..n {
        h.update(chunk(i));
    }
    hex::encode(h.finalize())
}

/// A small "PDF".
fn cv() -> Vec<u8> {
    b"%PDF-1.4 Ada Lovelace, curriculum vitae\n".repeat(500)
}

/// The file host: `/files/cv.pdf` (a small PDF), `/files/big.pdf` (2 MiB, with its length),
/// `/files/unsized.pdf` (2 MiB streamed without a length), `/files/page.html` (a web page),
/// `/go/elsewhere` (a redirect to another host), and `/files/huge.pdf` (`huge_chunks` chunks,
/// never more than `lag` bytes ahead of what has reached GHL through the counting proxy).
async fn file_host(huge_chunks: usize, reached_ghl: watch::Receiver<u64>, lag: u64) -> SocketAddr {
    let big = || {
        let mut v = Vec::new();
        for i in 0..32 {
            v.extend_from_slice(&chunk(i));
        }
        v
    };
    let app = Router::new()
        .route(
            "/files/cv.pdf",
            get(|| async { ([(header::CONTENT_TYPE, "application/pdf")], cv()) }),
        )
        .route(
            "/files/big.pdf",
            get(move || async move { ([(header::CONTENT_TYPE, "application/pdf")], big()) }),
        )
        .route(
            "/files/unsized.pdf",
            get(|| async {
                let stream =
                    futures_util::stream::iter((0..32).map(|i| Ok::<_, Infallible>(chunk(i))));
                (
                    [(header::CONTENT_TYPE, "application/pdf")],
                    Body::from_stream(stream),
                )
            }),
        )
        .route(
            "/files/page.html",
            get(|| async { ([(header::CONTENT_TYPE, "text/html")], "<html></html>") }),
        )
        .route(
            "/go/elsewhere",
            get(|| async {
                Response::builder()
                    .status(StatusCode::FOUND)
                    .header(header::LOCATION, "https://files.elsewhere.example/cv.pdf")
                    .body(Body::empty())
                    .unwrap()
            }),
        )
        .route(
            "/files/huge.pdf",
            get(move || {
                let reached = reached_ghl.clone();
                async move { huge(huge_chunks, reached, lag).into_response() }
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// `n` chunks, each sent only once what reached GHL is at most `lag` bytes behind it: a
/// formbridge that held the file before uploading it would never let it pass `lag`, and the
/// download breaks off (20 s, or `files.timeout` before).
fn huge(n: usize, reached: watch::Receiver<u64>, lag: u64) -> impl IntoResponse {
    let stream =
        futures_util::stream::unfold((0usize, reached), move |(i, mut reached)| async move {
            if i == n {
                return None;
            }
            let sent = (i * CHUNK) as u64;
            let caught_up = tokio::time::timeout(
                Duration::from_secs(20),
                reached.wait_for(|r| *r + lag >= sent),
            )
            .await
            .is_ok_and(|r| r.is_ok());
            if !caught_up {
                let e = std::io::Error::other(format!(
                    "{sent} bytes sent but only {} reached GHL: the file is held, not streamed",
                    *reached.borrow()
                ));
                return Some((Err(e), (n, reached)));
            }
            Some((Ok(chunk(i)), (i + 1, reached)))
        });
    (
        [(header::CONTENT_TYPE, "application/pdf")],
        Body::from_stream(stream),
    )
}

/// A TCP proxy to the sandbox counting the bytes sent to it (`reached`).
async fn counting_proxy(sandbox: SocketAddr, reached: watch::Sender<u64>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let reached = Arc::new(reached);
    tokio::spawn(async move {
        loop {
            let (client, _) = listener.accept().await.unwrap();
            let reached = reached.clone();
            tokio::spawn(async move {
                let server = TcpStream::connect(sandbox).await.unwrap();
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let upstream = async {
                    let mut buf = vec![0u8; CHUNK];
                    loop {
                        let n = client_read.read(&mut buf).await.unwrap_or(0);
                        if n == 0 || server_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        reached.send_modify(|r| *r += n as u64);
                    }
                    let _ = server_write.shutdown().await;
                };
                let downstream = async {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                    let _ = client_write.shutdown().await;
                };
                tokio::join!(upstream, downstream);
            });
        }
    });
    addr
}

/// A Jotform delivery (urlencoded, as Jotform's webhooks can post) whose upload question
/// `resume` holds `links`.
async fn post_jotform(app: &TestApp, submission_id: &str, links: &[String]) {
    let names: Vec<String> = links
        .iter()
        .map(|l| format!("{}#jotformfs-test#uuid", l.rsplit('/').next().unwrap()))
        .collect();
    let raw = json!({
        "slug": "submit/2436",
        "q3_email": EMAIL,
        "q4_name": {"first": "Ada", "last": "Lovelace"},
        "temp_upload": {"q9_resume": names},
        "resume": links,
        "event_id": format!("1735599791882_2436_{submission_id}"),
    });
    let body = serde_urlencoded::to_string([
        ("formID", "2436"),
        ("formTitle", "Job application"),
        ("submissionID", submission_id),
        ("pretty", "E-mail:ada.files@example.com"),
        ("rawRequest", &raw.to_string()),
    ])
    .unwrap();
    let r = app
        .post_hook(
            "jotform",
            Some(SECRET),
            Some("application/x-www-form-urlencoded"),
            body.into_bytes(),
        )
        .await;
    assert_eq!(r.status(), 200);
}

async fn only_event(app: &TestApp) -> EventId {
    let events = app
        .store
        .list_events(&EventFilter::default())
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    events[0].id
}

/// The event as the admin API shows it.
async fn admin_event(app: &TestApp, id: EventId) -> Value {
    let r = app
        .client
        .get(format!("{}/admin/events/{}", app.base, id.0))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// The `detail` of each upload step, in plan order.
fn upload_details(event: &Value) -> Vec<String> {
    event["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "upload_file")
        .map(|s| s["detail"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn contact_id(ghl: &SandboxHandle) -> String {
    ghl.state().contact_by_email(EMAIL).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_jotform_upload_lands_in_the_file_field_and_refused_files_stay_links_with_their_reason() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let (_tx, rx) = watch::channel(0);
    let host = file_host(0, rx, 0).await;
    let app = driven_app_for(&ghl, &config(1024 * 1024), &[("admin.token", ADMIN)]).await;
    let local = |path: &str| format!("http://{host}{path}");
    let links = vec![
        local("/files/cv.pdf"),
        local("/files/big.pdf"),
        local("/files/unsized.pdf"),
        local("/files/page.html"),
        "https://files.elsewhere.example/cv.pdf".to_owned(),
        local("/go/elsewhere"),
    ];
    post_jotform(&app, "6114090137116205381", &links).await;
    app.drain(Duration::from_secs(60)).await;

    let id = only_event(&app).await;
    let event = admin_event(&app, id).await;
    assert_eq!(event["status"], "done", "{event:#}");
    let contact = contact_id(&ghl);
    let state = ghl.state();
    // The one acceptable file is in the field, byte for byte.
    let files = state.files_of(&contact, FIELD);
    assert_eq!(files.len(), 1, "{files:#?}");
    let meta = &files[0]["meta"];
    let expected = hex::encode(Sha256::digest(cv()));
    assert_eq!(meta["sha256"], expected.as_str());
    assert_eq!(meta["size"], cv().len());
    assert_eq!(meta["originalname"], "cv.pdf");
    assert_eq!(meta["mimetype"], "application/pdf");
    // GHL's own view of the contact shows it too.
    let seen: Value = reqwest::Client::new()
        .get(ghl.base_url.join(&format!("contacts/{contact}")).unwrap())
        .bearer_auth(TOKEN)
        .header("Version", "2021-07-28")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let field = seen["contact"]["customFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == FIELD)
        .unwrap();
    assert_eq!(field["value"].as_object().unwrap().len(), 1, "{field:#}");

    // Each file's outcome is on the event: the checksum of the upload, the reason of each
    // refusal.
    let details = upload_details(&event);
    assert_eq!(details.len(), 6, "{details:#?}");
    assert!(
        details[0].contains(&format!("sha256 {expected}")),
        "{}",
        details[0]
    );
    assert!(
        details[1].contains("too big") && details[1].contains("files.max_bytes"),
        "{}",
        details[1]
    );
    assert!(
        details[2].contains("too big") && details[2].contains("arrived"),
        "{}",
        details[2]
    );
    assert!(details[3].contains("text/html"), "{}", details[3]);
    assert!(
        details[4].contains("files.elsewhere.example is not one of"),
        "{}",
        details[4]
    );
    assert!(
        details[5].contains("redirected elsewhere"),
        "{}",
        details[5]
    );
    for refused in &details[1..] {
        assert!(refused.contains("the link stays in the note"), "{refused}");
    }
    // Every link, refused or not, is in the note.
    let notes = state.notes_of(&contact);
    assert_eq!(notes.len(), 1);
    let body = notes[0]["body"].as_str().unwrap();
    for link in &links {
        assert!(
            body.contains(link.as_str()),
            "{link} not in the note: {body}"
        );
    }
    // One upload succeeded; of the refused files only the one found too big while streaming
    // was begun, and GHL kept nothing of it.
    let uploads = state.requests_to("POST", "/forms/upload-custom-files");
    assert_eq!(
        uploads.iter().filter(|r| r.status == 200).count(),
        1,
        "{uploads:#?}"
    );
    assert!(uploads.len() <= 2, "{uploads:#?}");
    crate::spec_check::assert_requests_follow_specs(&ghl.state());
}

#[tokio::test]
async fn a_lost_answer_and_a_replay_from_scratch_upload_nothing_twice() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let (_tx, rx) = watch::channel(0);
    let host = file_host(0, rx, 0).await;
    let app = driven_app_for(&ghl, &config(1024 * 1024), &[("admin.token", ADMIN)]).await;
    // GHL stores the first upload but its answer is lost.
    ghl.sandbox.set_faults(FaultSpec {
        drop_after_next: Some(1),
        match_path: Some("/forms/upload-custom-files".to_owned()),
        ..FaultSpec::default()
    });
    post_jotform(
        &app,
        "6114090137116205999",
        &[format!("http://{host}/files/cv.pdf")],
    )
    .await;
    app.drain(Duration::from_secs(60)).await;
    let id = only_event(&app).await;
    let contact = contact_id(&ghl);
    let uploads = |ghl: &SandboxHandle| {
        ghl.state()
            .requests_to("POST", "/forms/upload-custom-files")
            .len()
    };
    assert_eq!(ghl.state().files_of(&contact, FIELD).len(), 1);
    assert_eq!(
        uploads(&ghl),
        1,
        "the retry found the file and sent nothing"
    );
    let details = upload_details(&admin_event(&app, id).await);
    assert!(
        details[0].contains("already in custom field"),
        "{details:?}"
    );

    // A replay from scratch forgets every step result; the file is still found.
    assert!(app.store.replay(id, true).await.unwrap());
    app.drain(Duration::from_secs(60)).await;
    let counts = app.store.status_counts().await.unwrap();
    assert_eq!(counts[&EventStatus::Done], 1, "{counts:?}");
    let state = ghl.state();
    assert_eq!(state.files_of(&contact, FIELD).len(), 1);
    assert_eq!(uploads(&ghl), 1, "no second upload");
    assert_eq!(state.contacts.len(), 1);
    crate::spec_check::assert_requests_follow_specs(&ghl.state());
}

#[tokio::test]
async fn a_large_file_streams_through_without_being_held() {
    // 45 MiB (under GHL's 50 MB) under a 100 MiB cap; the file host never runs more than
    // 16 MiB ahead of what reached GHL.
    let chunks = 720;
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let (tx, rx) = watch::channel(0);
    let proxy = counting_proxy(ghl.addr, tx).await;
    let host = file_host(chunks, rx, 16 * 1024 * 1024).await;
    let dir = tempfile::tempdir().unwrap();
    let base = format!("http://{proxy}/");
    let toml = config(100 * 1024 * 1024);
    let settings = settings_with_toml(
        dir.path(),
        &toml,
        &[
            ("dispatch.enabled", "true"),
            ("ghl.base_url", &base),
            ("ghl.token", TOKEN),
            ("ghl.location_id", LOCATION),
        ],
    );
    let app = spawn_driven(settings, dir).await;
    post_jotform(
        &app,
        "6114090137116205777",
        &[format!("http://{host}/files/huge.pdf")],
    )
    .await;
    app.drain(Duration::from_secs(120)).await;
    let contact = contact_id(&ghl);
    let files = ghl.state().files_of(&contact, FIELD);
    assert_eq!(files.len(), 1, "{:#?}", upload_details_of(&app).await);
    assert_eq!(files[0]["meta"]["size"], chunks * CHUNK);
    assert_eq!(
        files[0]["meta"]["sha256"],
        sha256_of_chunks(chunks).as_str()
    );
}

/// The upload steps' details, read from the store (no admin API in this app).
async fn upload_details_of(app: &TestApp) -> Vec<Option<String>> {
    let id = only_event(app).await;
    app.store
        .steps(id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.detail)
        .collect()
}

#[tokio::test]
async fn the_sandbox_upload_endpoint_validates_like_the_spec_says() {
    let ghl = sandbox_with(100, Duration::from_secs(10)).await;
    let http = reqwest::Client::new();
    let contact: Value = http
        .post(ghl.base_url.join("contacts/upsert").unwrap())
        .bearer_auth(TOKEN)
        .header("Version", "2021-07-28")
        .json(&json!({"locationId": LOCATION, "email": EMAIL}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let contact = contact["contact"]["id"].as_str().unwrap().to_owned();
    let upload = |query: String, form: reqwest::multipart::Form| {
        let url = ghl
            .base_url
            .join(&format!("forms/upload-custom-files{query}"))
            .unwrap();
        http.post(url)
            .bearer_auth(TOKEN)
            .header("Version", "2021-07-28")
            .multipart(form)
            .send()
    };
    let file = |part: &str, name: &str| {
        reqwest::multipart::Form::new().part(
            part.to_owned(),
            reqwest::multipart::Part::bytes(cv())
                .file_name(name.to_owned())
                .mime_str("application/pdf")
                .unwrap(),
        )
    };
    let good = format!("?contactId={contact}&locationId={LOCATION}");
    let part = format!("{FIELD}_1b4e28ba-2fa1-11d2-883f-0016d3cca427");

    let missing = upload(format!("?locationId={LOCATION}"), file(&part, "cv.pdf"))
        .await
        .unwrap();
    assert_eq!(missing.status(), 422);
    let unknown = upload(
        format!("?contactId=nope0000000000000000&locationId={LOCATION}"),
        file(&part, "cv.pdf"),
    )
    .await
    .unwrap();
    assert_eq!(unknown.status(), 400);
    let foreign = upload(
        format!("?contactId={contact}&locationId=otherLocation0000001"),
        file(&part, "cv.pdf"),
    )
    .await
    .unwrap();
    assert_eq!(foreign.status(), 403);
    let unnamed = upload(good.clone(), file("justafield", "cv.pdf"))
        .await
        .unwrap();
    assert_eq!(unnamed.status(), 422);
    let exe = upload(good.clone(), file(&part, "setup.exe"))
        .await
        .unwrap();
    assert_eq!(exe.status(), 422);
    let text = upload(
        good.clone(),
        reqwest::multipart::Form::new().text("color", "blue"),
    )
    .await
    .unwrap();
    assert_eq!(text.status(), 422);
    let json_body = http
        .post(
            ghl.base_url
                .join(&format!("forms/upload-custom-files{good}"))
                .unwrap(),
        )
        .bearer_auth(TOKEN)
        .header("Version", "2021-07-28")
        .json(&json!({"file": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), 400);
    assert_eq!(
        ghl.state().files_of(&contact, FIELD).len(),
        0,
        "nothing stored"
    );

    let ok = upload(good, file(&part, "cv.pdf")).await.unwrap();
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["contact"]["id"], contact.as_str());
    let files = ghl.state().files_of(&contact, FIELD);
    assert_eq!(files.len(), 1);
    assert_eq!(
        files[0]["meta"]["uuid"],
        "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
    );
    assert_eq!(files[0]["meta"]["size"], cv().len());
    assert_eq!(
        files[0]["meta"]["sha256"],
        hex::encode(Sha256::digest(cv())).as_str()
    );
}
