#![allow(clippy::unwrap_used)]
//! The sandbox's business rules, checked with raw HTTP (no formbridge client involved).

use std::time::{Duration, Instant};

use ghl_sandbox::{FaultSpec, SandboxConfig, SandboxHandle, SandboxState};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const LOC: &str = "locSandboxTest000001";
const OTHER: &str = "locSandboxOther00001";
const TOKEN: &str = "pit-sandbox-test";
const OTHER_TOKEN: &str = "pit-sandbox-other";

fn config() -> SandboxConfig {
    SandboxConfig {
        tokens: [
            (TOKEN.to_owned(), vec![LOC.to_owned()]),
            (OTHER_TOKEN.to_owned(), vec![OTHER.to_owned()]),
        ]
        .into(),
        ..SandboxConfig::default()
    }
}

struct Api {
    h: SandboxHandle,
    http: reqwest::Client,
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Api {
    async fn new(cfg: SandboxConfig) -> Self {
        Self {
            h: ghl_sandbox::start(cfg).await.unwrap(),
            http: reqwest::Client::new(),
        }
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        version: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut rb = self
            .http
            .request(method, self.h.base_url.join(path).unwrap());
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(v) = version {
            rb = rb.header("Version", v);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let body = r.json().await.unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.raw(method, path, Some(TOKEN), Some("2021-07-28"), body)
            .await
    }

    async fn upsert(&self, body: Value) -> Answer {
        self.call(Method::POST, "/contacts/upsert", Some(body))
            .await
    }
}

fn message(a: &Answer) -> String {
    match &a.body["message"] {
        Value::String(s) => s.clone(),
        Value::Array(v) => v
            .iter()
            .map(|m| m.as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("|"),
        _ => String::new(),
    }
}

#[tokio::test]
async fn auth_and_version_header_are_required_with_ghl_bodies() {
    let api = Api::new(config()).await;
    let a = api
        .raw(Method::GET, "/contacts/abc", None, Some("2021-07-28"), None)
        .await;
    assert_eq!(a.status, 401);
    assert_eq!(a.body["statusCode"], 401);
    assert_eq!(a.body["message"], "Invalid token: access token is invalid");
    assert_eq!(a.body["error"], "Unauthorized");
    assert!(a.body["traceId"].is_string());

    let a = api
        .raw(Method::GET, "/contacts/abc", Some(TOKEN), None, None)
        .await;
    assert_eq!(a.status, 401);
    assert_eq!(a.body["message"], "version header was not found.");
    let a = api
        .raw(
            Method::GET,
            "/contacts/abc",
            Some(TOKEN),
            Some("2023-02-21"),
            None,
        )
        .await;
    assert_eq!(a.status, 401);
    assert_eq!(a.body["message"], "version header is invalid");

    // Expired tokens.
    api.h
        .sandbox
        .add_token("pit-expired", &[LOC], Some(Duration::ZERO));
    let a = api
        .raw(
            Method::GET,
            "/contacts/abc",
            Some("pit-expired"),
            Some("2021-07-28"),
            None,
        )
        .await;
    assert_eq!(a.status, 401);
    assert_eq!(a.body["message"], "Invalid token: access token has expired");
}

#[tokio::test]
async fn every_answer_has_trace_id_and_rate_limit_headers() {
    let api = Api::new(config()).await;
    let answers = vec![
        api.upsert(json!({"locationId": LOC, "email": "a@example.com"}))
            .await,
        api.call(Method::GET, "/contacts/unknownContact000001", None)
            .await,
        api.call(Method::GET, "/nope", None).await,
        api.raw(Method::GET, "/contacts/x", None, None, None).await,
    ];
    for a in &answers {
        assert!(
            a.body["traceId"].as_str().is_some_and(|t| t.len() == 36),
            "{:?}",
            a.body
        );
        for h in [
            "x-ratelimit-limit-daily",
            "x-ratelimit-daily-remaining",
            "x-ratelimit-interval-milliseconds",
            "x-ratelimit-max",
            "x-ratelimit-remaining",
            "x-ratelimit-daily-reset",
        ] {
            assert!(a.headers.contains_key(h), "{h} missing on {}", a.status);
        }
        assert!(a.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
    }
    assert_eq!(answers[2].status, 404);
    assert_eq!(answers[2].body["message"], "Cannot GET /nope");
}

#[tokio::test]
async fn location_id_is_required_and_checked() {
    let api = Api::new(config()).await;
    let a = api.upsert(json!({"email": "a@example.com"})).await;
    assert_eq!(a.status, 422);
    assert!(message(&a).contains("locationId should not be empty"));
    let a = api
        .upsert(json!({"locationId": OTHER, "email": "a@example.com"}))
        .await;
    assert_eq!(a.status, 403);
    assert_eq!(
        a.body["message"],
        "The token does not have access to this location."
    );
    let a = api.call(Method::GET, "/contacts/?limit=5", None).await;
    assert_eq!(a.status, 403);
    let a = api
        .call(Method::GET, &format!("/contacts/?locationId={LOC}"), None)
        .await;
    assert_eq!(a.status, 200);
    // A contact of another location is not reachable with this token.
    let theirs = api
        .raw(
            Method::POST,
            "/contacts/upsert",
            Some(OTHER_TOKEN),
            Some("2021-07-28"),
            Some(json!({"locationId": OTHER, "email": "b@example.com"})),
        )
        .await;
    let id = theirs.body["contact"]["id"].as_str().unwrap();
    let a = api
        .call(Method::GET, &format!("/contacts/{id}"), None)
        .await;
    assert_eq!(a.status, 403);
}

#[tokio::test]
async fn unknown_properties_and_bad_values_are_422() {
    let api = Api::new(config()).await;
    let a = api
        .upsert(json!({"locationId": LOC, "email": "a@example.com", "customField": []}))
        .await;
    assert_eq!(a.status, 422);
    assert_eq!(
        a.body["message"],
        json!(["property customField should not exist"])
    );
    assert_eq!(a.body["error"], "Unprocessable Entity");

    let a = api
        .upsert(json!({"locationId": LOC, "email": "not-an-email"}))
        .await;
    assert_eq!(a.status, 422);
    assert_eq!(a.body["message"], json!(["email must be an email"]));

    let id = api
        .upsert(json!({"locationId": LOC, "email": "a@example.com"}))
        .await
        .body["contact"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // PUT never takes locationId.
    let a = api
        .call(
            Method::PUT,
            &format!("/contacts/{id}"),
            Some(json!({"locationId": LOC, "firstName": "A"})),
        )
        .await;
    assert_eq!(a.status, 422);
    assert_eq!(
        a.body["message"],
        json!(["property locationId should not exist"])
    );

    let a = api
        .call(
            Method::POST,
            &format!("/contacts/{id}/tasks"),
            Some(json!({"title": "t", "dueDate": "tomorrow", "completed": false})),
        )
        .await;
    assert_eq!(a.status, 422);
    let a = api
        .call(
            Method::POST,
            &format!("/contacts/{id}/tasks"),
            Some(json!({"title": "t"})),
        )
        .await;
    assert_eq!(a.status, 422);
    assert!(message(&a).contains("dueDate should not be empty"));
    assert!(message(&a).contains("completed must be a boolean value"));

    // Create needs email, phone, firstName or lastName; `name` alone does not count.
    let a = api
        .call(
            Method::POST,
            "/contacts/",
            Some(json!({"locationId": LOC, "name": "Only Name"})),
        )
        .await;
    assert_eq!(a.status, 422);
    assert_eq!(
        a.body["message"],
        "Contacts without email, phone, firstName and lastName are not allowed."
    );
}

#[tokio::test]
async fn upsert_matches_email_then_phone() {
    let api = Api::new(config()).await;
    let a = api
        .upsert(json!({"locationId": LOC, "email": "ada@example.com", "firstName": "Ada"}))
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["new"], true);
    assert_eq!(a.body["succeded"], true);
    assert_eq!(a.body["succeeded"], true);
    let ada = a.body["contact"]["id"].as_str().unwrap().to_owned();
    assert_eq!(a.body["contact"]["emailLowerCase"], "ada@example.com");
    assert_eq!(a.body["contact"]["firstNameLowerCase"], "ada");

    let b = api
        .upsert(json!({"locationId": LOC, "phone": "+15550100002", "firstName": "Bob"}))
        .await;
    let bob = b.body["contact"]["id"].as_str().unwrap().to_owned();

    // Same email, different case: updates Ada.
    let a = api
        .upsert(json!({"locationId": LOC, "email": "ADA@example.com", "lastName": "L"}))
        .await;
    assert_eq!(a.body["new"], false);
    assert_eq!(a.body["contact"]["id"], ada.as_str());
    // Phone only, formatted differently: updates Bob.
    let b2 = api
        .upsert(json!({"locationId": LOC, "phone": "+1 555-010-0002", "lastName": "B"}))
        .await;
    assert_eq!(b2.body["new"], false);
    assert_eq!(b2.body["contact"]["id"], bob.as_str());
    // Email matches Ada and phone matches Bob: Ada is updated, the phone ignored (GHL #37).
    let both = api
        .upsert(json!({"locationId": LOC, "email": "ada@example.com", "phone": "+15550100002"}))
        .await;
    assert_eq!(both.body["contact"]["id"], ada.as_str());
    assert!(both.body["contact"].get("phone").is_none());
    // No email, no phone: 400.
    let none = api
        .upsert(json!({"locationId": LOC, "firstName": "Nobody"}))
        .await;
    assert_eq!(none.status, 400);
    assert_eq!(
        none.body["message"],
        "Pass at least one of number, email query parameter"
    );
    assert_eq!(api.h.state().contacts.len(), 2);

    // With duplicates allowed and createNewIfDuplicateAllowed, upsert always creates.
    api.h.sandbox.set_allow_duplicates(LOC, true);
    let c = api
        .upsert(json!({"locationId": LOC, "email": "ada@example.com", "createNewIfDuplicateAllowed": true}))
        .await;
    assert_eq!(c.body["new"], true);
    assert_eq!(api.h.state().contacts.len(), 3);
}

#[tokio::test]
async fn create_refuses_duplicates_with_the_existing_id() {
    let api = Api::new(config()).await;
    let first = api
        .call(
            Method::POST,
            "/contacts/",
            Some(json!({"locationId": LOC, "email": "dup@example.com", "phone": "+15550100009", "firstName": "John", "lastName": "Doe"})),
        )
        .await;
    assert_eq!(first.status, 201);
    let id = first.body["contact"]["id"].as_str().unwrap().to_owned();
    let dup = api
        .call(
            Method::POST,
            "/contacts/",
            Some(json!({"locationId": LOC, "email": "DUP@example.com"})),
        )
        .await;
    assert_eq!(dup.status, 400);
    assert_eq!(
        dup.body["message"],
        "This location does not allow duplicated contacts."
    );
    assert_eq!(dup.body["meta"]["contactId"], id.as_str());
    assert_eq!(dup.body["meta"]["matchingField"], "email");
    let dup = api
        .call(
            Method::POST,
            "/contacts/",
            Some(json!({"locationId": LOC, "phone": "+15550100009"})),
        )
        .await;
    assert_eq!(dup.body["meta"]["matchingField"], "phone");
    api.h.sandbox.set_allow_duplicates(LOC, true);
    let ok = api
        .call(
            Method::POST,
            "/contacts/",
            Some(json!({"locationId": LOC, "email": "dup@example.com"})),
        )
        .await;
    assert_eq!(ok.status, 201);
}

#[tokio::test]
async fn unknown_ids_are_400() {
    let api = Api::new(config()).await;
    let a = api
        .call(Method::GET, "/contacts/lookup?email=a@example.com", None)
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["message"], "Contact with id lookup not found");
    let id = api
        .upsert(json!({"locationId": LOC, "email": "a@example.com"}))
        .await
        .body["contact"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = api
        .call(
            Method::GET,
            &format!("/contacts/{id}/tasks/noSuchTask000000001"),
            None,
        )
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.body["message"],
        "Task with id noSuchTask000000001 not found"
    );
}

#[tokio::test]
async fn tags_are_lowercased_deduplicated_and_put_replaces_them() {
    let api = Api::new(config()).await;
    let a = api
        .upsert(
            json!({"locationId": LOC, "email": "t@example.com", "tags": ["VIP", " vip", "Lead"]}),
        )
        .await;
    assert_eq!(a.body["contact"]["tags"], json!(["vip", "lead"]));
    let id = a.body["contact"]["id"].as_str().unwrap().to_owned();
    let t = api
        .call(
            Method::POST,
            &format!("/contacts/{id}/tags"),
            Some(json!({"tags": ["LEAD", "Hot"]})),
        )
        .await;
    assert_eq!(t.status, 201);
    assert_eq!(t.body["tags"], json!(["vip", "lead", "hot"]));
    let p = api
        .call(
            Method::PUT,
            &format!("/contacts/{id}"),
            Some(json!({"tags": ["Only"]})),
        )
        .await;
    assert_eq!(p.status, 200);
    assert_eq!(p.body["contact"]["tags"], json!(["only"]));
    let r = api
        .call(
            Method::DELETE,
            &format!("/contacts/{id}/tags"),
            Some(json!({"tags": ["ONLY"]})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["tags"], json!([]));
    assert!(api.h.state().tags_of(&id).is_empty());
}

#[tokio::test]
async fn burst_window_and_daily_quota_answer_429_per_location() {
    let cfg = SandboxConfig {
        burst: 3,
        window: Duration::from_millis(400),
        ..config()
    };
    let api = Api::new(cfg).await;
    let path = format!("/contacts/?locationId={LOC}");
    for expected_remaining in ["2", "1", "0"] {
        let a = api.call(Method::GET, &path, None).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.headers["x-ratelimit-remaining"], expected_remaining);
        assert_eq!(a.headers["x-ratelimit-max"], "3");
        assert_eq!(a.headers["x-ratelimit-interval-milliseconds"], "400");
    }
    let a = api.call(Method::GET, &path, None).await;
    assert_eq!(a.status, 429);
    assert_eq!(a.body["statusCode"], 429);
    // Another location has its own window.
    let b = api
        .raw(
            Method::GET,
            &format!("/contacts/?locationId={OTHER}"),
            Some(OTHER_TOKEN),
            Some("2021-07-28"),
            None,
        )
        .await;
    assert_eq!(b.status, 200);
    // The window slides: wait (with a deadline) until the location is admitted again.
    let start = Instant::now();
    loop {
        let a = api.call(Method::GET, &path, None).await;
        if a.status == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "window never reopened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let cfg = SandboxConfig {
        daily: 2,
        ..config()
    };
    let api = Api::new(cfg).await;
    api.call(Method::GET, &path, None).await;
    let a = api.call(Method::GET, &path, None).await;
    assert_eq!(a.headers["x-ratelimit-daily-remaining"], "0");
    assert_eq!(a.headers["x-ratelimit-limit-daily"], "2");
    let a = api.call(Method::GET, &path, None).await;
    assert_eq!(a.status, 429);
}

#[tokio::test]
async fn oauth_token_endpoint_rotates_refresh_tokens() {
    let cfg = SandboxConfig {
        oauth_clients: [("cid".to_owned(), "secret".to_owned())].into(),
        refresh_tokens: [("rt-1".to_owned(), LOC.to_owned())].into(),
        ..config()
    };
    let api = Api::new(cfg).await;
    let url = api.h.base_url.join("/oauth/token").unwrap();
    let form = |rt: &str| {
        vec![
            ("client_id", "cid".to_owned()),
            ("client_secret", "secret".to_owned()),
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", rt.to_owned()),
            ("user_type", "Location".to_owned()),
        ]
    };
    let r: Value = api
        .http
        .post(url.clone())
        .form(&form("rt-1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["token_type"], "Bearer");
    assert_eq!(r["expires_in"], 86_399);
    assert_eq!(r["locationId"], LOC);
    let new_rt = r["refresh_token"].as_str().unwrap().to_owned();
    let access = r["access_token"].as_str().unwrap().to_owned();
    // The old refresh token is dead at once.
    let again = api
        .http
        .post(url.clone())
        .form(&form("rt-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 400);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    // Wrong client secret.
    let mut bad = form(&new_rt);
    bad[1].1 = "nope".into();
    let r = api.http.post(url.clone()).form(&bad).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // The new access token works on the API.
    let a = api
        .raw(
            Method::GET,
            &format!("/contacts/?locationId={LOC}"),
            Some(&access),
            Some("2021-07-28"),
            None,
        )
        .await;
    assert_eq!(a.status, 200);
    let state = api.h.state();
    assert_eq!(state.refresh_calls, 3);
    assert_eq!(state.refresh_tokens, vec![new_rt]);
}

#[tokio::test]
async fn faults_set_over_http() {
    let api = Api::new(config()).await;
    let faults = api.h.base_url.join("/_sandbox/faults").unwrap();
    let set = |spec: Value| {
        let http = api.http.clone();
        let faults = faults.clone();
        async move {
            let r = http.post(faults).json(&spec).send().await.unwrap();
            assert_eq!(r.status(), 204);
        }
    };
    let body = json!({"locationId": LOC, "email": "f@example.com"});
    let upsert = || {
        api.http
            .post(api.h.base_url.join("/contacts/upsert").unwrap())
            .bearer_auth(TOKEN)
            .header("Version", "2021-07-28")
            .json(&body)
            .send()
    };

    set(json!({"fail_next": 2})).await;
    assert_eq!(upsert().await.unwrap().status(), 500);
    assert_eq!(upsert().await.unwrap().status(), 500);

    set(json!({"drop_before_next": 1})).await;
    assert!(upsert().await.is_err());
    assert!(api.h.state().contacts.is_empty());

    set(json!({"drop_after_next": 1})).await;
    assert!(upsert().await.is_err());
    assert_eq!(api.h.state().contacts.len(), 1);

    set(json!({"rate_limit_next": 1, "retry_after_secs": 3})).await;
    let r = upsert().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "3");

    set(json!({"rate_limit_for_ms": 60_000})).await;
    assert_eq!(upsert().await.unwrap().status(), 429);
    assert_eq!(upsert().await.unwrap().status(), 429);
    let r = api.http.delete(faults.clone()).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(upsert().await.unwrap().status(), 200);

    // Faults can target one route.
    set(json!({"fail_next": 1, "match_path": "/notes"})).await;
    assert_eq!(upsert().await.unwrap().status(), 200);
    assert_eq!(api.h.state().faults.fail_next, Some(1));

    // Latency applies to every request.
    set(json!({"latency_ms": 150, "fail_next": 0})).await;
    let t = Instant::now();
    assert_eq!(upsert().await.unwrap().status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(150));

    // The log records each request with its outcome.
    let state = SandboxState::fetch(&api.h.base_url).await.unwrap();
    let outcomes: Vec<(u16, String)> = state
        .requests_to("POST", "/contacts/upsert")
        .iter()
        .map(|r| (r.status, r.outcome.clone()))
        .collect();
    assert_eq!(outcomes[0], (500, "answered".into()));
    assert_eq!(outcomes[2], (0, "dropped_before".into()));
    assert_eq!(outcomes[3].1, "dropped_after");
    assert_eq!(state.requests[0].location.as_deref(), None); // failed before auth
    assert_eq!(
        state.requests.last().unwrap().location.as_deref(),
        Some(LOC)
    );

    // Reset over HTTP.
    let r = api
        .http
        .post(api.h.base_url.join("/_sandbox/reset").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let state = SandboxState::fetch(&api.h.base_url).await.unwrap();
    assert!(state.contacts.is_empty() && state.requests.is_empty());
}

/// `complete_late_next`: the request is carried out `complete_late_ms` after it arrived, and
/// counted in its location's window then, even though its client gave up before; a client
/// that waits gets the answer.
#[tokio::test]
async fn a_request_carried_out_late_is_applied_and_counted_after_its_client_gave_up() {
    let api = Api::new(SandboxConfig {
        burst: 1,
        window: Duration::from_secs(30),
        ..config()
    })
    .await;
    api.h.sandbox.set_faults(FaultSpec {
        complete_late_next: Some(2),
        complete_late_ms: Some(400),
        ..FaultSpec::default()
    });
    let upsert = |email: &'static str, timeout: Duration| {
        api.http
            .post(api.h.base_url.join("/contacts/upsert").unwrap())
            .bearer_auth(TOKEN)
            .header("Version", "2021-07-28")
            .json(&json!({"locationId": LOC, "email": email}))
            .timeout(timeout)
            .send()
    };
    let gave_up = upsert("late@example.com", Duration::from_millis(100)).await;
    assert!(gave_up.unwrap_err().is_timeout());
    assert!(
        api.h.state().contacts.is_empty(),
        "not applied before its delay"
    );
    crate::common::wait_for(Duration::from_secs(10), "the late write", || {
        let landed = api.h.state().contacts.len() == 1;
        async move { landed.then_some(()) }
    })
    .await;
    let state = api.h.state();
    assert_eq!(state.requests[0].outcome, "late");
    assert_eq!(state.requests[0].status, 200);
    // It spent the window's one request when it ran: the next one, late too, is refused.
    let waited = upsert("next@example.com", Duration::from_secs(10)).await;
    assert_eq!(waited.unwrap().status(), 429);
}

/// `DELETE /_sandbox/tokens/{token}`: 401 from then on, until the token is added again.
#[tokio::test]
async fn a_revoked_token_is_refused_until_added_again() {
    let api = Api::new(config()).await;
    let revoke = |token: &str| {
        api.http
            .delete(
                api.h
                    .base_url
                    .join(&format!("/_sandbox/tokens/{token}"))
                    .unwrap(),
            )
            .send()
    };
    assert_eq!(revoke(TOKEN).await.unwrap().status(), 204);
    assert_eq!(revoke(TOKEN).await.unwrap().status(), 404);
    let a = api
        .upsert(json!({"locationId": LOC, "email": "r@example.com"}))
        .await;
    assert_eq!(a.status, 401);
    api.h.sandbox.add_token(TOKEN, &[LOC], None);
    let a = api
        .upsert(json!({"locationId": LOC, "email": "r@example.com"}))
        .await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn inspection_lists_contacts_tasks_notes_and_requests() {
    let api = Api::new(config()).await;
    let id = api
        .upsert(json!({"locationId": LOC, "email": "i@example.com", "tags": ["x"]}))
        .await
        .body["contact"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.call(
        Method::POST,
        &format!("/contacts/{id}/tasks"),
        Some(json!({"title": "t", "dueDate": "2026-07-20T10:00:00Z", "completed": false})),
    )
    .await;
    let n = api
        .call(
            Method::POST,
            &format!("/contacts/{id}/notes"),
            Some(json!({"body": "<p>Hello</p>"})),
        )
        .await;
    assert_eq!(n.body["note"]["bodyText"], "Hello");
    assert_eq!(n.body["note"]["relations"], json!([]));
    let s = SandboxState::fetch(&api.h.base_url).await.unwrap();
    assert_eq!(
        s.contact_by_email("I@example.com").unwrap()["id"],
        id.as_str()
    );
    assert_eq!(s.tags_of(&id), vec!["x"]);
    assert_eq!(s.tasks_of(&id).len(), 1);
    assert_eq!(s.notes_of(&id).len(), 1);
    assert_eq!(s.requests.len(), 3);
    assert_eq!(s.requests[1].body.as_ref().unwrap()["title"], "t");
}

#[tokio::test]
async fn serve_sandbox_stops_on_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(ghl_sandbox::serve_sandbox(
        listener,
        SandboxConfig::default(),
        async {
            let _ = rx.await;
        },
    ));
    let r = reqwest::Client::new()
        .get(format!(
            "http://{addr}/contacts/?locationId={}",
            ghl_sandbox::DEMO_LOCATION
        ))
        .bearer_auth(ghl_sandbox::DEMO_TOKEN)
        .header("Version", ghl_sandbox::API_VERSION)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
