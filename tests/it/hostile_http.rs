//! Hostile HTTP over raw TCP (so no client library tidies the request): oversized and
//! contradictory framing, header floods, invalid UTF-8 wherever it can hide, multipart abuse,
//! content-type lies, path tricks in source names and replayed signatures. Each attack gets its
//! 4xx with a JSON error naming the problem, stores nothing, and an ordinary signed delivery is
//! stored right after it. (Slow heads and slow bodies are in `connections.rs`; field, value and
//! depth limits in `ingress.rs`.)
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::common::{spawn_app, TestApp, SECRET};
use formbridge::sources::auth::{
    decode_standard_webhooks_secret, hmac_sha256_hex, standard_webhooks_signature,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest wait for an answer the server should give at once.
const DEADLINE: Duration = Duration::from_secs(10);

/// The HMAC key of the `signed` source.
const HMAC_KEY: &str = "hostile-hmac-key";

/// The secret of the `std` (Standard Webhooks) source.
const STD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// An app with the built-in sources plus `signed` (HMAC) and `std` (Standard Webhooks), and a
/// 64 KiB body limit (so oversize bodies stay cheap to send).
async fn hostile_app() -> TestApp {
    hostile_app_with(&[]).await
}

/// [`hostile_app`] with `extra` settings.
async fn hostile_app_with(extra: &[(&str, &str)]) -> TestApp {
    let mut settings = vec![
        ("server.body_limit_bytes", "65536"),
        ("sources.signed.auth", "hmac"),
        ("sources.signed.secret", HMAC_KEY),
        ("sources.signed.signature_header", "x-hub-signature-256"),
        ("sources.std.auth", "standard_webhooks"),
        ("sources.std.secret", STD_SECRET),
    ];
    settings.extend_from_slice(extra);
    spawn_app(&settings).await
}

/// What the server answered on one raw connection.
#[derive(Debug)]
struct RawAnswer {
    status: u16,
    /// Header names in lower case.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawAnswer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "answer {} is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// How a raw exchange ended.
#[derive(Debug)]
enum Exchange {
    Answered(RawAnswer),
    /// Closed or reset before a whole answer arrived.
    Closed,
}

fn addr_of(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Writes `request` as it is on a new connection and reads one answer (its head and
/// `content-length` bytes of body). A server that answers before reading all of a large request
/// may reset the connection; that ends as [`Exchange::Closed`].
async fn exchange(app: &TestApp, request: &[u8]) -> Exchange {
    let stream = TcpStream::connect(addr_of(app)).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let request = request.to_vec();
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(&request).await;
        writer
    });
    let read = tokio::time::timeout(DEADLINE, async {
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            if let Some(answer) = parse_answer(&got) {
                return Exchange::Answered(answer);
            }
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return Exchange::Closed,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("no answer and no close within the deadline");
    writing.abort();
    read
}

/// One whole answer at the start of `got`, if it has arrived.
fn parse_answer(got: &[u8]) -> Option<RawAnswer> {
    let end = got.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&got[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.get(9..12)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let body = got.get(end + 4..end + 4 + length)?.to_vec();
    Some(RawAnswer {
        status,
        headers,
        body,
    })
}

/// A raw `POST {path}` with `headers` (each a whole `Name: value` line without CRLF) and `body`
/// (its `Content-Length` added).
fn post(path: &str, headers: &[&[u8]], body: &[u8]) -> Vec<u8> {
    let mut request = format!("POST {path} HTTP/1.1\r\nHost: formbridge\r\n").into_bytes();
    for header in headers {
        request.extend_from_slice(header);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    request.extend_from_slice(body);
    request
}

/// The path of a built-in source with its URL token.
fn hook(source: &str) -> String {
    format!("/hooks/{source}?token={SECRET}")
}

/// One request expected to be refused: what it is, its `Content-Type` line, its body, and the
/// status, error code and a word of the detail it is answered with.
type Case<B> = (
    &'static str,
    &'static [u8],
    B,
    u16,
    &'static str,
    &'static str,
);

const JSON: &[u8] = b"Content-Type: application/json";
const FORM: &[u8] = b"Content-Type: application/x-www-form-urlencoded";

/// Asserts `exchange` answered `status` with the JSON error `code` whose detail mentions
/// `detail_has`, and that the store still holds `stored` events.
async fn assert_refused(
    app: &TestApp,
    what: &str,
    exchange: Exchange,
    status: u16,
    code: &str,
    detail_has: &str,
    stored: u64,
) {
    let Exchange::Answered(answer) = exchange else {
        panic!("{what}: closed without an answer");
    };
    assert_eq!(answer.status, status, "{what}: {answer:?}");
    let content_type = answer.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{what}: content-type `{content_type}`"
    );
    let body = answer.json();
    assert_eq!(body["error"], code, "{what}: {body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains(detail_has),
        "{what}: detail `{detail}` should mention `{detail_has}`"
    );
    assert_eq!(app.total_events().await, stored, "{what} stored something");
}

/// Asserts a head the HTTP parser itself refuses: `status` with an empty body (the request
/// never reached formbridge's code, so there is no JSON to give), or a reset when the server
/// closed with the rest of the request unread; either way nothing stored.
async fn assert_refused_by_the_parser(
    app: &TestApp,
    what: &str,
    exchange: Exchange,
    status: u16,
    stored: u64,
) {
    if let Exchange::Answered(answer) = &exchange {
        assert_eq!(answer.status, status, "{what}: {answer:?}");
        assert_eq!(answer.header("connection"), Some("close"), "{what}");
    }
    assert_eq!(app.total_events().await, stored, "{what} stored something");
}

/// An ordinary HMAC-signed delivery on a new connection, sent after an attack: answered 200
/// and stored.
async fn ordinary_delivery_is_stored(app: &TestApp, id: &str) {
    let before = app.total_events().await;
    let body = format!(r#"{{"id":"{id}","email":"{id}@example.com"}}"#).into_bytes();
    let signature = format!(
        "X-Hub-Signature-256: sha256={}",
        hmac_sha256_hex(HMAC_KEY.as_bytes(), &body)
    );
    let delivery = post("/hooks/signed", &[JSON, signature.as_bytes()], &body);
    let Exchange::Answered(answer) = exchange(app, &delivery).await else {
        panic!("after the attack: closed without an answer");
    };
    assert_eq!(answer.status, 200, "after the attack: {answer:?}");
    assert_eq!(answer.json()["duplicate"], false, "after the attack");
    assert_eq!(app.total_events().await, before + 1, "after the attack");
}

#[tokio::test]
async fn oversized_and_contradictory_framing_is_refused_before_the_body_is_read() {
    let app = hostile_app().await;
    let powr = hook("powr");
    let head = |framing: &str| {
        format!("POST {powr} HTTP/1.1\r\nHost: formbridge\r\nContent-Type: application/json\r\n{framing}\r\n")
            .into_bytes()
    };
    // A terabyte announced, nothing sent: refused on the announcement (an answer at all shows
    // the server did not wait for the body).
    let terabyte = head("Content-Length: 1000000000000\r\n");
    // A chunk that announces 2^64-1 bytes and sends one byte past the limit.
    let mut huge_chunk = head("Transfer-Encoding: chunked\r\n");
    huge_chunk.extend_from_slice(b"ffffffffffffffff\r\n");
    huge_chunk.extend_from_slice(&[b' '; 65_537]);
    // A chunk size that overflows 64 bits.
    let mut overflow = head("Transfer-Encoding: chunked\r\n");
    overflow.extend_from_slice(b"1ffffffffffffffff\r\nx\r\n0\r\n\r\n");
    let refused = [
        (
            "a huge Content-Length",
            terabyte,
            413,
            "payload_too_large",
            "65536 byte limit",
        ),
        (
            "a huge chunk",
            huge_chunk,
            413,
            "payload_too_large",
            "65536 byte limit",
        ),
        (
            "a chunk size over 64 bits",
            overflow,
            400,
            "bad_request",
            "request body",
        ),
    ];
    for (what, request, status, code, detail) in refused {
        let r = exchange(&app, &request).await;
        assert_refused(&app, what, r, status, code, detail, 0).await;
    }
    // Lengths the parser cannot believe: over 64 bits, two different ones, a negative one.
    for (what, lengths) in [
        (
            "Content-Length over 64 bits",
            "Content-Length: 99999999999999999999999\r\n",
        ),
        (
            "two Content-Lengths",
            "Content-Length: 2\r\nContent-Length: 3\r\n",
        ),
        ("negative Content-Length", "Content-Length: -1\r\n"),
    ] {
        let mut request = head(lengths);
        request.extend_from_slice(b"{}");
        let r = exchange(&app, &request).await;
        assert_refused_by_the_parser(&app, what, r, 400, 0).await;
    }
    ordinary_delivery_is_stored(&app, "after-framing").await;
}

#[tokio::test]
async fn a_half_sent_head_is_answered_408_and_a_silent_connection_is_closed() {
    let app = hostile_app_with(&[("server.header_read_timeout", "300ms")]).await;
    let half = format!(
        "POST {} HTTP/1.1\r\nHost: formbridge\r\nContent-Type: app",
        hook("powr")
    );
    let r = exchange(&app, half.as_bytes()).await;
    assert_refused(
        &app,
        "half a head",
        r,
        408,
        "header_timeout",
        "server.header_read_timeout",
        0,
    )
    .await;
    // Nothing sent, nothing asked: closed without an answer.
    let mut silent = TcpStream::connect(addr_of(&app)).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(DEADLINE, silent.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "a silent connection got {read:?}"
    );
    ordinary_delivery_is_stored(&app, "after-slow-heads").await;
}

#[tokio::test]
async fn header_floods_and_huge_uris_are_answered_431_and_414() {
    let app = hostile_app().await;
    let body = br#"{"email":"flood@example.com"}"#;
    let lines =
        |n: usize, line: &dyn Fn(usize) -> String| -> Vec<String> { (0..n).map(line).collect() };
    let powr = hook("powr");
    let json = String::from_utf8_lossy(JSON).into_owned();
    let with_json = |mut headers: Vec<String>| {
        headers.insert(0, json.clone());
        headers
    };
    // (what, path, headers, status, code, a word of the detail)
    let refused = [
        (
            "80 headers",
            powr.clone(),
            with_json(lines(80, &|i| format!("X-Flood-{i}: {i}"))),
            431,
            "too_many_headers",
            "at most 64",
        ),
        (
            "a 20 KB header",
            powr.clone(),
            with_json(vec![format!("User-Agent: {}", "a".repeat(20_000))]),
            431,
            "header_too_large",
            "user-agent",
        ),
        (
            "48 KB of headers, each under the per-header cap",
            powr.clone(),
            with_json(lines(12, &|i| format!("X-Large-{i}: {}", "b".repeat(4000)))),
            431,
            "headers_too_large",
            "32768",
        ),
        (
            "a 10 KB URI",
            format!("{powr}&pad={}", "c".repeat(10_000)),
            with_json(Vec::new()),
            414,
            "uri_too_long",
            "8192",
        ),
    ];
    for (what, path, headers, status, code, detail) in refused {
        let headers: Vec<&[u8]> = headers.iter().map(|h| h.as_bytes()).collect();
        let r = exchange(&app, &post(&path, &headers, body)).await;
        assert_refused(&app, what, r, status, code, detail, 0).await;
    }
    // Past the parser's own caps (100 headers, a 64 KiB head): answered without a body, closed.
    let past_the_parser = [
        (
            "150 headers",
            powr.clone(),
            lines(150, &|i| format!("X-Flood-{i}: {i}")),
            431,
        ),
        (
            "a 100 KB head",
            powr.clone(),
            vec![format!("X-Giant: {}", "d".repeat(100_000))],
            431,
        ),
        (
            "a 100 KB URI",
            format!("{powr}&pad={}", "e".repeat(100_000)),
            with_json(Vec::new()),
            414,
        ),
    ];
    for (what, path, headers, status) in past_the_parser {
        let headers: Vec<&[u8]> = headers.iter().map(|h| h.as_bytes()).collect();
        let r = exchange(&app, &post(&path, &headers, body)).await;
        assert_refused_by_the_parser(&app, what, r, status, 0).await;
    }
    // A GET with a flood is refused the same way (not only webhooks).
    let get = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "f".repeat(10_000)
    );
    let r = exchange(&app, get.as_bytes()).await;
    assert_refused(
        &app,
        "a /healthz flood",
        r,
        431,
        "header_too_large",
        "x-big",
        0,
    )
    .await;
    ordinary_delivery_is_stored(&app, "after-floods").await;
    let metrics = app.metrics_text().await;
    for reason in [
        "too_many_headers",
        "header_too_large",
        "headers_too_large",
        "uri_too_long",
    ] {
        let series = format!(r#"formbridge_http_heads_refused_total{{reason="{reason}"}}"#);
        assert!(metrics.contains(&series), "{series} missing:\n{metrics}");
    }
}

#[tokio::test]
async fn invalid_utf8_is_refused_in_bodies_field_names_headers_and_paths() {
    let app = hostile_app().await;
    let json_cases: [(&str, &[u8]); 2] = [
        (
            "a raw 0xFF in a JSON string",
            b"{\"email\":\"a\xffb@example.com\"}",
        ),
        ("a raw 0xE9 in a JSON key", b"{\"pr\xe9nom\":\"Ana\"}"),
    ];
    for (what, body) in json_cases {
        let r = exchange(&app, &post(&hook("powr"), &[JSON], body)).await;
        assert_refused(&app, what, r, 400, "bad_request", "UTF-8", 0).await;
    }
    let form_cases: [(&str, &[u8], &str); 4] = [
        (
            "a raw 0xFF in a form value",
            b"email=a\xff@example.com",
            "UTF-8",
        ),
        (
            "a percent-encoded 0xFF in a form value",
            b"first=Ana&email=a%FF%40example.com",
            "`email`",
        ),
        (
            "a percent-encoded 0xE9 in a field name",
            b"pr%E9nom=Ana",
            "UTF-8",
        ),
        ("a truncated UTF-8 sequence", b"name=Jos%C3", "`name`"),
    ];
    for (what, body, detail) in form_cases {
        let r = exchange(&app, &post(&hook("powr"), &[FORM], body)).await;
        assert_refused(&app, what, r, 400, "bad_request", detail, 0).await;
    }
    let multipart: &[u8] = b"Content-Type: multipart/form-data; boundary=b";
    let value =
        b"--b\r\nContent-Disposition: form-data; name=\"city\"\r\n\r\nM\xfcnchen\r\n--b--\r\n";
    let r = exchange(&app, &post(&hook("123formbuilder"), &[multipart], value)).await;
    assert_refused(
        &app,
        "a latin-1 multipart value",
        r,
        400,
        "bad_request",
        "`city`",
        0,
    )
    .await;
    let name = b"--b\r\nContent-Disposition: form-data; name=\"stra\xdfe\"\r\n\r\nx\r\n--b--\r\n";
    let r = exchange(&app, &post(&hook("123formbuilder"), &[multipart], name)).await;
    assert_refused(
        &app,
        "a latin-1 multipart field name",
        r,
        400,
        "bad_request",
        "UTF-8",
        0,
    )
    .await;
    // A file part's bytes are not text: binary is fine there.
    let file = b"--b\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\nf@example.com\r\n--b\r\nContent-Disposition: form-data; name=\"cv\"; filename=\"cv.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n\xff\xfe\x00\x01\r\n--b--\r\n";
    let Exchange::Answered(ok) =
        exchange(&app, &post(&hook("123formbuilder"), &[multipart], file)).await
    else {
        panic!("a binary file part: closed");
    };
    assert_eq!(ok.status, 200, "a binary file part: {ok:?}");
    let stored = 1;

    // Headers: a Content-Type that is not text is not taken for "no Content-Type" (JSON).
    let r = exchange(
        &app,
        &post(
            &hook("powr"),
            &[b"Content-Type: application/json\xff"],
            b"{}",
        ),
    )
    .await;
    assert_refused(
        &app,
        "a 0xFF in Content-Type",
        r,
        415,
        "unsupported_media_type",
        "Content-Type",
        stored,
    )
    .await;
    let body = br#"{"id":"utf8","email":"h@example.com"}"#;
    let r = exchange(
        &app,
        &post(
            "/hooks/signed",
            &[JSON, b"X-Hub-Signature-256: sha256=\xff\xfe"],
            body,
        ),
    )
    .await;
    assert_refused(
        &app,
        "a 0xFF in the signature header",
        r,
        401,
        "unauthorized",
        "not valid",
        stored,
    )
    .await;
    let r = exchange(
        &app,
        &post("/hooks/dripjobs", &[JSON, b"X-Webhook-Secret: \xff"], body),
    )
    .await;
    assert_refused(
        &app,
        "a 0xFF in the token header",
        r,
        401,
        "unauthorized",
        "wrong token",
        stored,
    )
    .await;

    // The path: a percent-encoded sequence that is not UTF-8, raw bytes that are not UTF-8
    // (the parser refuses them) and raw UTF-8 (read as a name that cannot be a source's).
    let r = exchange(
        &app,
        &post(&format!("/hooks/jot%FFform?token={SECRET}"), &[JSON], body),
    )
    .await;
    assert_refused(
        &app,
        "%FF in the source name",
        r,
        400,
        "bad_request",
        "UTF-8",
        stored,
    )
    .await;
    let mut raw = post(&format!("/hooks/jotXform?token={SECRET}"), &[JSON], body);
    let at = raw.iter().position(|b| *b == b'X').unwrap();
    raw[at] = 0xff;
    let r = exchange(&app, &raw).await;
    assert_refused_by_the_parser(&app, "a raw 0xFF in the path", r, 400, stored).await;
    let r = exchange(&app, &post("/hooks/jot\u{f6}form", &[JSON], body)).await;
    assert_refused(
        &app,
        "raw UTF-8 in the path",
        r,
        404,
        "not_found",
        "not a source name",
        stored,
    )
    .await;
    ordinary_delivery_is_stored(&app, "after-utf8").await;
}

#[tokio::test]
async fn multipart_abuse_is_refused() {
    let app = hostile_app().await;
    let path = hook("123formbuilder");
    let cases: [Case<Vec<u8>>; 6] = [
        (
            "no boundary",
            b"Content-Type: multipart/form-data",
            b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--b--\r\n".to_vec(),
            400,
            "bad_request",
            "boundary",
        ),
        (
            "an empty boundary",
            b"Content-Type: multipart/form-data; boundary=",
            b"--\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n----\r\n".to_vec(),
            400,
            "bad_request",
            "boundary parameter is empty",
        ),
        (
            "a boundary that never ends",
            b"Content-Type: multipart/form-data; boundary=b",
            {
                let mut body =
                    b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n".to_vec();
                body.extend_from_slice(&[b'x'; 50_000]);
                body
            },
            400,
            "bad_request",
            "multipart",
        ),
        (
            "a 20 KB part header",
            b"Content-Type: multipart/form-data; boundary=b",
            format!(
                "--b\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\nx\r\n--b--\r\n",
                "n".repeat(20_000)
            )
            .into_bytes(),
            400,
            "bad_request",
            "8192",
        ),
        (
            "a part with 40 headers",
            b"Content-Type: multipart/form-data; boundary=b",
            {
                let mut body = b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n".to_vec();
                for i in 0..40 {
                    body.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
                }
                body.extend_from_slice(b"\r\nx\r\n--b--\r\n");
                body
            },
            400,
            "bad_request",
            "multipart",
        ),
        (
            "3000 parts",
            b"Content-Type: multipart/form-data; boundary=b",
            {
                let mut body = Vec::new();
                for _ in 0..3000 {
                    body.extend_from_slice(b"--b\r\nX: y\r\n\r\n\r\n");
                }
                body.extend_from_slice(b"--b--\r\n");
                body
            },
            413,
            "too_many_fields",
            "server.max_form_fields",
        ),
    ];
    for (what, content_type, body, status, code, detail) in cases {
        let r = exchange(&app, &post(&path, &[content_type], &body)).await;
        assert_refused(&app, what, r, status, code, detail, 0).await;
    }
    ordinary_delivery_is_stored(&app, "after-multipart").await;
}

#[tokio::test]
async fn content_type_lies_are_refused() {
    let app = hostile_app().await;
    let path = hook("powr");
    let json_body = br#"{"email":"liar@example.com","name":"Li"}"#;
    let multipart_body =
        b"--b\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\nliar@example.com\r\n--b--\r\n";
    let multipart: &[u8] = b"Content-Type: multipart/form-data; boundary=b";
    let cases: [Case<&[u8]>; 6] = [
        (
            "JSON sent as multipart",
            multipart,
            json_body,
            400,
            "bad_request",
            "multipart",
        ),
        (
            "multipart sent as JSON",
            JSON,
            multipart_body,
            400,
            "bad_request",
            "application/json",
        ),
        (
            "JSON sent as urlencoded",
            FORM,
            json_body,
            400,
            "bad_request",
            "looks like JSON",
        ),
        (
            "urlencoded sent as JSON",
            JSON,
            b"email=liar%40example.com",
            400,
            "bad_request",
            "application/json",
        ),
        (
            "latin-1 declared as UTF-8",
            b"Content-Type: application/json; charset=utf-8",
            b"{\"name\":\"Jos\xe9\"}",
            400,
            "bad_request",
            "UTF-8",
        ),
        (
            "latin-1 declared as latin-1",
            b"Content-Type: application/json; charset=iso-8859-1",
            b"{\"name\":\"Jos\xe9\"}",
            400,
            "bad_request",
            "charset=iso-8859-1",
        ),
    ];
    for (what, content_type, body, status, code, detail) in cases {
        let r = exchange(&app, &post(&path, &[content_type], body)).await;
        assert_refused(&app, what, r, status, code, detail, 0).await;
    }
    let r = exchange(
        &app,
        &post(&path, &[b"Content-Type: text/html"], b"<p>hi</p>"),
    )
    .await;
    assert_refused(
        &app,
        "HTML",
        r,
        415,
        "unsupported_media_type",
        "text/html",
        0,
    )
    .await;
    let r = exchange(
        &app,
        &post(
            &path,
            &[b"Content-Type: multipart/mixed; boundary=b"],
            multipart_body,
        ),
    )
    .await;
    assert_refused(
        &app,
        "multipart/mixed",
        r,
        415,
        "unsupported_media_type",
        "multipart/mixed",
        0,
    )
    .await;
    ordinary_delivery_is_stored(&app, "after-lies").await;
}

#[tokio::test]
async fn path_tricks_in_source_names_reach_no_source() {
    let app = hostile_app().await;
    let body = br#"{"email":"path@example.com"}"#;
    let long = "a".repeat(5_000);
    // (path before the query, what the detail says)
    let cases = [
        ("/hooks/..".to_owned(), "not a source name"),
        ("/hooks/%2e%2e".to_owned(), "not a source name"),
        ("/hooks/..%2Fadmin".to_owned(), "not a source name"),
        (
            "/hooks/jotform%2F..%2F..%2Fadmin".to_owned(),
            "not a source name",
        ),
        ("/hooks/jotform%2fpowr".to_owned(), "not a source name"),
        ("/hooks/jotform%00".to_owned(), "not a source name"),
        ("/hooks/%00".to_owned(), "not a source name"),
        ("/hooks/jotform%20".to_owned(), "not a source name"),
        ("/hooks/jotform%0A".to_owned(), "not a source name"),
        (format!("/hooks/{long}"), "not a source name"),
        // A Cyrillic `о` and a fullwidth `ｊ`.
        ("/hooks/j%D0%BEtform".to_owned(), "not a source name"),
        ("/hooks/%EF%BD%8Aotform".to_owned(), "not a source name"),
        ("/hooks/JOTFORM".to_owned(), "did you mean `jotform`"),
        ("/hooks/Jotform".to_owned(), "did you mean `jotform`"),
        ("/hooks/jotform/".to_owned(), "no such endpoint"),
        ("/hooks/../hooks/jotform".to_owned(), "no such endpoint"),
        ("/hooks//jotform".to_owned(), "no such endpoint"),
        ("/admin/../hooks/jotform".to_owned(), "admin API"),
        ("/hooks/jotform/../powr".to_owned(), "no such endpoint"),
    ];
    for (path, detail) in &cases {
        let r = exchange(
            &app,
            &post(&format!("{path}?token={SECRET}"), &[JSON], body),
        )
        .await;
        let Exchange::Answered(answer) = &r else {
            panic!("{path}: closed without an answer");
        };
        // The answer quotes at most a short piece of the name.
        assert!(
            answer.body.len() < 400,
            "{path}: {} bytes",
            answer.body.len()
        );
        assert_refused(&app, path, r, 404, "not_found", detail, 0).await;
    }
    ordinary_delivery_is_stored(&app, "after-paths").await;
}

#[tokio::test]
async fn replayed_signatures_are_refused_and_an_exact_replay_stores_nothing_new() {
    let app = hostile_app().await;
    let key = decode_standard_webhooks_secret(STD_SECRET).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let body = br#"{"email":"replay@example.com","amount":10}"#;
    let other = br#"{"email":"replay@example.com","amount":10000}"#;
    let std_post = |id: &str, ts: i64, signature: &str, body: &[u8]| {
        let id = format!("webhook-id: {id}");
        let ts = format!("webhook-timestamp: {ts}");
        let signature = format!("webhook-signature: {signature}");
        post(
            "/hooks/std",
            &[JSON, id.as_bytes(), ts.as_bytes(), signature.as_bytes()],
            body,
        )
    };
    let signature = standard_webhooks_signature(&key, "msg_1", now, body);
    let Exchange::Answered(first) = exchange(&app, &std_post("msg_1", now, &signature, body)).await
    else {
        panic!("the original delivery: closed");
    };
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.json()["duplicate"], false);
    // The same request again, within the tolerance: acknowledged as the duplicate it is.
    let Exchange::Answered(again) = exchange(&app, &std_post("msg_1", now, &signature, body)).await
    else {
        panic!("the exact replay: closed");
    };
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.json()["duplicate"], true);
    assert_eq!(app.total_events().await, 1);
    // The captured id, timestamp and signature over another body.
    let r = exchange(&app, &std_post("msg_1", now, &signature, other)).await;
    assert_refused(
        &app,
        "same webhook-id, another body",
        r,
        401,
        "unauthorized",
        "does not match",
        1,
    )
    .await;
    // The captured signature with a fresh timestamp (to pass the tolerance).
    let r = exchange(&app, &std_post("msg_1", now + 60, &signature, body)).await;
    assert_refused(
        &app,
        "a fresh timestamp on an old signature",
        r,
        401,
        "unauthorized",
        "does not match",
        1,
    )
    .await;
    // The captured signature under another webhook-id (to pass deduplication).
    let r = exchange(&app, &std_post("msg_2", now, &signature, body)).await;
    assert_refused(
        &app,
        "another webhook-id on an old signature",
        r,
        401,
        "unauthorized",
        "does not match",
        1,
    )
    .await;
    // A validly signed delivery replayed outside the 5 minute tolerance, past or future (by
    // more than the seconds this test may take, so its own running time cannot bring one in).
    for ts in [now - 400, now - 86_400, now + 400] {
        let old = standard_webhooks_signature(&key, "msg_3", ts, body);
        let r = exchange(&app, &std_post("msg_3", ts, &old, body)).await;
        assert_refused(
            &app,
            "outside the tolerance",
            r,
            401,
            "unauthorized",
            "webhook-timestamp",
            1,
        )
        .await;
    }
    // HMAC: the signature of one body sent with another.
    let signed = format!(
        "X-Hub-Signature-256: sha256={}",
        hmac_sha256_hex(HMAC_KEY.as_bytes(), body)
    );
    let r = exchange(
        &app,
        &post("/hooks/signed", &[JSON, signed.as_bytes()], other),
    )
    .await;
    assert_refused(
        &app,
        "an HMAC of another body",
        r,
        401,
        "unauthorized",
        "does not match",
        1,
    )
    .await;
    // ... and an exact HMAC replay is a duplicate (its body's hash), stored once.
    for duplicate in [false, true] {
        let Exchange::Answered(answer) = exchange(
            &app,
            &post("/hooks/signed", &[JSON, signed.as_bytes()], body),
        )
        .await
        else {
            panic!("HMAC delivery: closed");
        };
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.json()["duplicate"], duplicate);
    }
    assert_eq!(app.total_events().await, 2);
    ordinary_delivery_is_stored(&app, "after-replays").await;
}

#[tokio::test]
async fn nesting_far_past_the_depth_limit_is_refused_without_recursion() {
    let app = hostile_app().await;
    // 30,000 levels (60 KB): the depth walk stops at the limit, the parser never recurses that
    // deep.
    let arrays = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
    for (what, body) in [("arrays", arrays), ("objects", objects)] {
        let r = exchange(&app, &post(&hook("powr"), &[JSON], body.as_bytes())).await;
        assert_refused(
            &app,
            what,
            r,
            413,
            "too_deeply_nested",
            "server.max_json_depth",
            0,
        )
        .await;
    }
    // Brackets in urlencoded names are not parsed into nesting: one flat field, stored.
    let name = format!("a{}", "[b]".repeat(10_000));
    let body = format!("email=n%40example.com&{name}=1");
    let Exchange::Answered(answer) =
        exchange(&app, &post(&hook("powr"), &[FORM], body.as_bytes())).await
    else {
        panic!("bracketed name: closed");
    };
    assert_eq!(answer.status, 200, "{answer:?}");
    let parsed = formbridge::body::parse(
        Some("application/x-www-form-urlencoded"),
        &bytes::Bytes::from(body),
        &formbridge::body::BodyLimits::UNLIMITED,
    )
    .unwrap();
    let formbridge::body::ParsedBody::Form(fields) = parsed else {
        panic!("not a form");
    };
    assert_eq!(fields.len(), 2);
    assert_eq!(fields[1].name, name);
    ordinary_delivery_is_stored(&app, "after-nesting").await;
}
