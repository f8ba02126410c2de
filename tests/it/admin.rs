//! The operator surface over real HTTP and a real SQLite file: the `/admin` API (auth, list
//! with filters and pagination, show, replay one and many, stats, dispatcher wake-up) and the
//! `formbridge events …` and `formbridge sandbox-ghl` commands of the built binary.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use crate::common::{fixtures, spawn_app, test_settings, TestApp, SECRET};
use formbridge::domain::{ContactKey, EventId};
use formbridge::domain::{Plan, Step, StepKind};
use formbridge::store::{
    self, Claim, EventFilter, EventStatus, Finish, NewEvent, Preparation, StepRecord, StepStatus,
    Store,
};
use reqwest::StatusCode;
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::sync::Notify;

const TOKEN: &str = "admin-test-token";

async fn spawn_admin() -> TestApp {
    spawn_app(&[("admin.token", TOKEN)]).await
}

/// Sends an admin request with the right token; returns the status and the JSON body.
async fn admin(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let url = format!("{}{path}", app.base);
    let mut req = app
        .client
        .request(method.parse().unwrap(), url)
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

async fn get(app: &TestApp, path: &str) -> (StatusCode, Value) {
    admin(app, "GET", path, None).await
}

/// The raw text of an admin `GET`.
async fn get_text(app: &TestApp, path: &str) -> String {
    let url = format!("{}{path}", app.base);
    let resp = app.client.get(url).bearer_auth(TOKEN).send().await.unwrap();
    resp.text().await.unwrap()
}

/// POSTs a distinct POWR-style JSON lead and returns its event id.
async fn post_lead(app: &TestApp, i: usize) -> EventId {
    let body = json!({"Email": format!("lead{i}@example.com"), "Name": format!("Lead {i}")});
    post_powr(app, &body).await
}

/// POSTs a POWR JSON delivery and returns its event id.
pub async fn post_powr(app: &TestApp, body: &Value) -> EventId {
    let resp = app
        .post_hook(
            "powr",
            Some(SECRET),
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    EventId(v["event_id"].as_i64().unwrap())
}

/// POSTs every Jotform fixture; returns their event ids in order.
async fn post_jotform(app: &TestApp) -> Vec<EventId> {
    let mut ids = Vec::new();
    for fx in fixtures("jotform") {
        let resp = app
            .post_hook("jotform", Some(SECRET), fx.content_type.as_deref(), fx.body)
            .await;
        assert_eq!(resp.status(), 200, "{}", fx.name);
        let v: Value = resp.json().await.unwrap();
        ids.push(EventId(v["event_id"].as_i64().unwrap()));
    }
    ids
}

/// Dead-letters a pending event the way the preparer does.
pub async fn make_dead(store: &dyn Store, id: EventId, error: &str) {
    store
        .save_preparations(&[(
            id,
            Preparation::Failed {
                submission: None,
                error: error.to_owned(),
            },
        )])
        .await
        .unwrap();
}

/// Prepares an event and claims it for `owner` (it is then `processing`).
async fn prepare_and_claim(store: &dyn Store, id: EventId, owner: &str) {
    let plan = Plan {
        steps: vec![
            Step::UpsertContact {
                contact: Default::default(),
            },
            Step::CreateNote {
                body: "a note".to_owned(),
            },
        ],
        ..Plan::default()
    };
    store
        .save_preparations(&[(
            id,
            Preparation::Ready {
                submission: json!({"answers": []}),
                plan,
                contact_key: ContactKey::new(format!("email:lead{}@example.com", id.0)),
                location_id: "loc-1".into(),
            },
        )])
        .await
        .unwrap();
    let now = OffsetDateTime::now_utc();
    let claimed = store
        .claim(&Claim {
            lease: owner.into(),
            now,
            lease_until: now + Duration::from_secs(300),
            limit: 10,
            per_location_limit: 10,
            exclude_locations: Vec::new(),
        })
        .await
        .unwrap();
    assert!(claimed.iter().any(|c| c.id == id), "claimed {id}");
}

/// An event with one completed step and one failed attempt, left `retrying`.
async fn make_retrying_with_a_step(store: &dyn Store, id: EventId) {
    prepare_and_claim(store, id, "worker-a").await;
    let step = StepRecord {
        index: 0,
        kind: StepKind::UpsertContact,
        status: StepStatus::Done,
        ghl_id: Some("contact-1".to_owned()),
        detail: None,
        updated_at: OffsetDateTime::now_utc(),
        in_doubt_until: None,
        requests: Vec::new(),
    };
    assert!(store
        .record_step(id, &"worker-a".into(), &step)
        .await
        .unwrap());
    let finish = Finish::Retry {
        at: OffsetDateTime::now_utc() + Duration::from_secs(3600),
        error: "GHL answered 503 Service Unavailable".to_owned(),
        counts_attempt: true,
        outcome: "retry",
    };
    assert!(store.finish(id, &"worker-a".into(), &finish).await.unwrap());
}

pub(crate) fn ids_of(page: &Value) -> Vec<i64> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn admin_api_is_404_when_disabled_and_401_without_the_right_token() {
    let off = spawn_app(&[]).await;
    for path in [
        "/admin/events",
        "/admin/stats",
        "/admin/events/1",
        "/admin/nope",
    ] {
        let resp = off
            .client
            .get(format!("{}{path}", off.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "not_found");
        assert_eq!(
            body["detail"],
            "the admin API is disabled: set FORMBRIDGE__ADMIN__TOKEN"
        );
    }
    let resp = off
        .client
        .post(format!("{}/admin/replay", off.base))
        .json(&json!({"all": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    let app = spawn_admin().await;
    let url = format!("{}/admin/events", app.base);
    let missing = app.client.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert!(missing.headers().contains_key("www-authenticate"));
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    for auth in [
        "Bearer wrong-token",
        &format!("Bearer {TOKEN}x"),
        &format!("Basic {TOKEN}"),
        TOKEN,
    ] {
        let resp = app
            .client
            .get(&url)
            .header("authorization", auth)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{auth}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized");
        assert!(!body.to_string().contains(TOKEN), "token echoed: {body}");
    }
    // Unknown admin paths are guarded too, so they reveal nothing without the token.
    let unknown = app.get("/admin/secrets").await;
    assert_eq!(unknown.status(), 401);

    let (status, body) = get(&app, "/admin/events").await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"events": [], "next_before_id": null}));
    let (status, body) = get(&app, "/admin/secrets").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "not_found");
    let (status, body) = admin(&app, "GET", "/admin/replay", None).await;
    assert_eq!(status, 405);
    assert_eq!(body["error"], "method_not_allowed");
}

#[tokio::test]
async fn events_are_listed_newest_first_with_filters_and_keyset_pages() {
    let app = spawn_admin().await;
    let jot = post_jotform(&app).await;
    let mut powr = Vec::new();
    for i in 0..7 {
        powr.push(post_lead(&app, i).await);
    }
    make_dead(app.store.as_ref(), jot[1], "mapping: no email or phone").await;
    let total = jot.len() + powr.len();

    // Everything, newest first.
    let (status, page) = get(&app, "/admin/events").await;
    assert_eq!(status, 200);
    let all = ids_of(&page);
    assert_eq!(all.len(), total);
    assert!(all.windows(2).all(|w| w[0] > w[1]), "{all:?}");
    assert_eq!(page["next_before_id"], Value::Null);
    // Each entry is the store's summary of the event, as the store lists it.
    let first = &page["events"][0];
    let listed = app
        .store
        .list_events(&EventFilter::default())
        .await
        .unwrap();
    assert_eq!(*first, serde_json::to_value(&listed[0]).unwrap());
    assert!(first.get("body").is_none(), "lists carry no bodies");

    // Pages of 4 walk the whole list exactly once; the last full page says there is no more.
    let mut walked: Vec<i64> = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let path = match before {
            Some(b) => format!("/admin/events?limit=4&before_id={b}"),
            None => "/admin/events?limit=4".to_owned(),
        };
        let (status, page) = get(&app, &path).await;
        assert_eq!(status, 200);
        let ids = ids_of(&page);
        assert!(ids.len() <= 4);
        walked.extend(&ids);
        match page["next_before_id"].as_i64() {
            Some(next) => {
                assert_eq!(Some(&next), ids.last());
                before = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(walked, all);
    let (_, exact) = get(
        &app,
        &format!("/admin/events?limit=2&before_id={}", all[total - 3]),
    )
    .await;
    assert_eq!(ids_of(&exact), all[total - 2..].to_vec());
    assert_eq!(exact["next_before_id"], Value::Null, "no older page exists");

    // Filters.
    let (_, dead) = get(&app, "/admin/events?status=dead").await;
    assert_eq!(ids_of(&dead), vec![jot[1].0]);
    assert_eq!(
        dead["events"][0]["last_error"],
        "mapping: no email or phone"
    );
    let (_, by_source) = get(&app, "/admin/events?source=powr").await;
    let mut expected: Vec<i64> = powr.iter().map(|id| id.0).collect();
    expected.reverse();
    assert_eq!(ids_of(&by_source), expected);
    let (_, both) = get(&app, "/admin/events?source=jotform&status=pending").await;
    assert_eq!(ids_of(&both).len(), jot.len() - 1);
    let (_, future) = get(&app, "/admin/events?since=2999-01-01T00:00:00Z").await;
    assert!(ids_of(&future).is_empty());
    let (_, past) = get(&app, "/admin/events?until=2999-01-01T00:00:00%2B02:00").await;
    assert_eq!(ids_of(&past).len(), total);
    let (_, unix) = get(&app, "/admin/events?since=0&limit=500").await;
    assert_eq!(ids_of(&unix).len(), total);

    // Bad values name the parameter and what is allowed.
    for (query, needle) in [
        ("status=lost", "status"),
        ("since=yesterday", "since"),
        ("until=2025-13-01", "until"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("before_id=abc", "before_id"),
        ("source=Not%20A%20Source", "source"),
        ("sauce=powr", "sauce"),
    ] {
        let (status, body) = get(&app, &format!("/admin/events?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["error"], "bad_request");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(needle), "{query}: {detail}");
    }
    let (_, body) = get(&app, "/admin/events?status=lost").await;
    assert!(body["detail"].as_str().unwrap().contains("dead"), "{body}");
}

#[tokio::test]
async fn an_event_is_shown_with_its_body_steps_and_attempts() {
    let app = spawn_admin().await;
    let id = post_lead(&app, 1).await;
    make_retrying_with_a_step(app.store.as_ref(), id).await;

    let (status, ev) = get(&app, &format!("/admin/events/{}", id.0)).await;
    assert_eq!(status, 200);
    assert_eq!(ev["id"], id.0);
    assert_eq!(ev["source"], "powr");
    assert_eq!(ev["status"], "retrying");
    assert_eq!(ev["attempts"], 1);
    assert_eq!(ev["last_error"], "GHL answered 503 Service Unavailable");
    assert_eq!(ev["content_type"], "application/json");
    assert_eq!(ev["body_encoding"], "utf8");
    let body: Value = serde_json::from_str(ev["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["Email"], "lead1@example.com");
    assert!(ev["headers"].is_array());
    assert_eq!(ev["location_id"], "loc-1");
    assert_eq!(ev["contact_key"], format!("email:lead{}@example.com", id.0));
    assert_eq!(ev["plan"]["steps"][1]["kind"], "create_note");
    assert!(ev["submission"].is_object());
    let steps = ev["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["kind"], "upsert_contact");
    assert_eq!(steps[0]["status"], "done");
    assert_eq!(steps[0]["ghl_id"], "contact-1");
    let history = ev["attempt_history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["attempt"], 1);
    assert_eq!(history[0]["outcome"], "retry");
    assert_eq!(history[0]["error"], "GHL answered 503 Service Unavailable");
    // `attempts` stays the count (as in lists); the raw JSON has each key once.
    let raw = get_text(&app, &format!("/admin/events/{}", id.0)).await;
    assert_eq!(raw.matches("\"attempts\":").count(), 1, "{raw}");

    // A body that is not UTF-8 comes back as base64.
    let raw = vec![0xff, 0xfe, 0x00, b'a'];
    let stored = app
        .store
        .insert_event(NewEvent {
            source: formbridge::domain::SourceName::parse("powr").unwrap(),
            dedupe_key: "binary-1".to_owned(),
            content_hash: None,
            content_type: Some("application/octet-stream".to_owned()),
            headers: Vec::new(),
            body: raw.into(),
            received_at: OffsetDateTime::now_utc(),
        })
        .await
        .unwrap()
        .id();
    let (status, ev) = get(&app, &format!("/admin/events/{}", stored.0)).await;
    assert_eq!(status, 200);
    assert_eq!(ev["body_encoding"], "base64");
    assert_eq!(ev["body"], "//4AYQ==");

    let (status, body) = get(&app, "/admin/events/999999").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "not_found");
    assert!(body["detail"].as_str().unwrap().contains("999999"));
    let (status, body) = get(&app, "/admin/events/abc").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "bad_request");
}

#[tokio::test]
async fn shown_events_mask_every_configured_secret_and_token_query_values() {
    let ghl_token = "pit-ghl-secret-123";
    let app = spawn_app(&[("admin.token", TOKEN), ("ghl.token", ghl_token)]).await;
    // Jotform echoes the URL it posts to, token included.
    let echoed = format!("https://formbridge.example/hooks/jotform?token={SECRET}&x=1");
    let note =
        format!("pasted {ghl_token} and {TOKEN}; see https://other.example/?secret=other-value");
    let body = serde_urlencoded::to_string([
        ("formID", "1"),
        ("submissionID", "5551"),
        ("webhookURL", echoed.as_str()),
        ("pretty", note.as_str()),
    ])
    .unwrap();
    let resp = app
        .post_hook(
            "jotform",
            Some(SECRET),
            Some("application/x-www-form-urlencoded"),
            body.into_bytes(),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let id = resp.json::<Value>().await.unwrap()["event_id"]
        .as_i64()
        .unwrap();
    let leaks = [SECRET, ghl_token, TOKEN, "other-value"];

    let raw = get_text(&app, &format!("/admin/events/{id}")).await;
    let shown: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(shown["id"], id);
    let shown_body = shown["body"].as_str().unwrap();
    assert!(shown_body.contains("submissionID=5551"), "{shown_body}");
    assert!(
        shown_body.contains("jotform%3Ftoken%3D********%26x%3D1"),
        "{shown_body}"
    );
    for leak in leaks {
        assert!(!raw.contains(leak), "{leak} shown by the admin API: {raw}");
    }

    // `events show` masks the same way, with the secrets its own configuration knows.
    let (code, out, err) = run_cli_with(
        &app.store_url(),
        &["events", "show", &id.to_string()],
        &[
            ("FORMBRIDGE__SOURCES__JOTFORM__SECRET", SECRET),
            ("FORMBRIDGE__GHL__TOKEN", ghl_token),
            ("FORMBRIDGE__ADMIN__TOKEN", TOKEN),
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("submissionID=5551"), "{out}");
    for leak in leaks {
        assert!(!out.contains(leak), "{leak} shown by events show: {out}");
    }
    // Without the secrets configured, token query values are still masked.
    let (_, out, _) = run_cli(&app.store_url(), &["events", "show", &id.to_string()]).await;
    assert!(!out.contains(&format!("token%3D{SECRET}")), "{out}");
    assert!(!out.contains("other-value"), "{out}");
}

#[tokio::test]
async fn a_store_failure_answers_a_generic_500_naming_the_request_id() {
    use sqlx::Connection as _;
    let app = spawn_admin().await;
    post_lead(&app, 1).await;
    let mut db = sqlx::SqliteConnection::connect(&app.store_url())
        .await
        .unwrap();
    sqlx::query("ALTER TABLE events RENAME TO events_moved")
        .execute(&mut db)
        .await
        .unwrap();
    let resp = app
        .client
        .get(format!("{}/admin/events", app.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "store_error");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains(&request_id), "{detail}");
    for leak in ["no such table", "events", "code:", "sqlite"] {
        assert!(!detail.to_lowercase().contains(leak), "{detail}");
    }
}

#[tokio::test]
async fn replaying_one_event_requeues_it_keeping_done_steps_unless_from_scratch() {
    let app = spawn_admin().await;
    let store = app.store.as_ref();
    let id = post_lead(&app, 1).await;
    make_retrying_with_a_step(store, id).await;

    let (status, body) = admin(
        &app,
        "POST",
        &format!("/admin/events/{}/replay", id.0),
        None,
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(body["replayed"], true);
    assert_eq!(body["event_id"], id.0);
    let ev = store.get_event(id).await.unwrap().unwrap();
    assert_eq!(ev.summary.status, EventStatus::Pending);
    assert!(ev.plan.is_none(), "plan cleared for re-preparation");
    assert!(ev.summary.last_error.is_none());
    assert!(ev.summary.next_attempt_at <= OffsetDateTime::now_utc());
    assert_eq!(store.steps(id).await.unwrap().len(), 1, "done step kept");
    let history = store.attempts(id).await.unwrap();
    assert_eq!(history.last().unwrap().outcome, "replay");

    // from_scratch runs every step again, each looked for by its marker first (`started`).
    make_retrying_with_a_step(store, id).await;
    let path = format!("/admin/events/{}/replay?from_scratch=true", id.0);
    let (status, _) = admin(&app, "POST", &path, None).await;
    assert_eq!(status, 202);
    let steps = store.steps(id).await.unwrap();
    assert!(
        steps
            .iter()
            .all(|s| s.status == StepStatus::Started && s.ghl_id.is_none()),
        "steps to run again, looking first: {steps:?}"
    );
    assert_eq!(
        store.get_event(id).await.unwrap().unwrap().summary.status,
        EventStatus::Pending
    );

    // An event being processed is a conflict; an unknown one is 404; a bad flag is 400.
    prepare_and_claim(store, id, "worker-b").await;
    let (status, body) = admin(
        &app,
        "POST",
        &format!("/admin/events/{}/replay", id.0),
        None,
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(body["error"], "conflict");
    assert_eq!(
        store.get_event(id).await.unwrap().unwrap().summary.status,
        EventStatus::Processing
    );
    let (status, body) = admin(&app, "POST", "/admin/events/999999/replay", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "not_found");
    let path = format!("/admin/events/{}/replay?from_scratch=maybe", id.0);
    let (status, body) = admin(&app, "POST", &path, None).await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("from_scratch"));
}

#[tokio::test]
async fn bulk_replay_takes_a_filter_and_refuses_an_empty_one() {
    let app = spawn_admin().await;
    let store = app.store.as_ref();
    let jot = post_jotform(&app).await;
    let powr = [post_lead(&app, 1).await, post_lead(&app, 2).await];
    make_dead(store, jot[0], "bad mapping").await;
    make_dead(store, jot[2], "bad mapping").await;
    make_dead(store, powr[0], "bad mapping").await;

    for body in [
        json!({}),
        json!({"from_scratch": true}),
        json!({"all": false}),
    ] {
        let (status, resp) = admin(&app, "POST", "/admin/replay", Some(body.clone())).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            resp["detail"].as_str().unwrap().contains("\"all\": true"),
            "{resp}"
        );
    }
    let resp = app
        .client
        .post(format!("{}/admin/replay", app.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "no body is an empty filter");
    for (body, needle) in [
        (json!({"status": "gone"}), "status"),
        (json!({"since": "last week"}), "since"),
        (json!({"stauts": "dead"}), "stauts"),
    ] {
        let (status, resp) = admin(&app, "POST", "/admin/replay", Some(body.clone())).await;
        assert_eq!(status, 400, "{body}");
        assert!(resp["detail"].as_str().unwrap().contains(needle), "{resp}");
    }
    assert_eq!(
        store.status_counts().await.unwrap()[&EventStatus::Dead],
        3,
        "refusals replayed nothing"
    );

    let filter = json!({"status": "dead", "source": "jotform"});
    let (status, resp) = admin(&app, "POST", "/admin/replay", Some(filter)).await;
    assert_eq!(status, 200);
    assert_eq!(resp["replayed"], 2);
    for id in [jot[0], jot[2]] {
        let ev = store.get_event(id).await.unwrap().unwrap();
        assert_eq!(ev.summary.status, EventStatus::Pending);
    }
    let still = store.get_event(powr[0]).await.unwrap().unwrap();
    assert_eq!(
        still.summary.status,
        EventStatus::Dead,
        "other source untouched"
    );

    let (_, resp) = admin(
        &app,
        "POST",
        "/admin/replay",
        Some(json!({"since": "2999-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(resp["replayed"], 0);
    let (status, resp) = admin(&app, "POST", "/admin/replay", Some(json!({"all": true}))).await;
    assert_eq!(status, 200);
    assert_eq!(resp["replayed"], (jot.len() + powr.len()) as u64);
    assert_eq!(
        store.status_counts().await.unwrap()[&EventStatus::Pending],
        (jot.len() + powr.len()) as u64
    );
}

#[tokio::test]
async fn stats_count_events_by_status_and_age_the_oldest_unfinished() {
    let app = spawn_admin().await;
    let (status, empty) = get(&app, "/admin/stats").await;
    assert_eq!(status, 200);
    assert_eq!(empty["total"], 0);
    assert_eq!(empty["oldest_unfinished"], Value::Null);
    assert_eq!(empty["oldest_unfinished_age_seconds"], Value::Null);

    let a = post_lead(&app, 1).await;
    post_lead(&app, 2).await;
    post_lead(&app, 3).await;
    make_dead(app.store.as_ref(), a, "bad").await;
    let (status, stats) = get(&app, "/admin/stats").await;
    assert_eq!(status, 200);
    assert_eq!(stats["total"], 3);
    assert_eq!(
        stats["by_status"],
        json!({"pending": 2, "processing": 0, "done": 0, "retrying": 0, "dead": 1})
    );
    let oldest = stats["oldest_unfinished"].as_str().unwrap();
    assert!(
        formbridge::http::admin::parse_time(oldest).is_ok(),
        "{oldest}"
    );
    let age = stats["oldest_unfinished_age_seconds"].as_i64().unwrap();
    assert!((0..60).contains(&age), "{age}");
}

#[tokio::test]
async fn a_replay_wakes_the_dispatcher() {
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(dir.path(), &[("admin.token", TOKEN)]);
    let store = store::open(&settings.store).await.unwrap();
    let wake = Arc::new(Notify::new());
    let runtimes = formbridge::runtime::SourceRuntimes::compile(&settings).unwrap();
    let router =
        formbridge::app::build_router(&settings, &runtimes, store.clone(), wake.clone(), None)
            .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{base}/hooks/powr?token={SECRET}"))
        .header("content-type", "application/json")
        .body(r#"{"Email":"wake@example.com"}"#)
        .send()
        .await
        .unwrap();
    let id = resp.json::<Value>().await.unwrap()["event_id"]
        .as_i64()
        .unwrap();

    let woken = wake.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    let resp = client
        .post(format!("{base}/admin/events/{id}/replay"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    tokio::time::timeout(Duration::from_secs(5), woken)
        .await
        .expect("replay notified the dispatcher");

    let woken = wake.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    let resp = client
        .post(format!("{base}/admin/replay"))
        .bearer_auth(TOKEN)
        .json(&json!({"source": "powr"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    tokio::time::timeout(Duration::from_secs(5), woken)
        .await
        .expect("bulk replay notified the dispatcher");
}

// ---------------------------------------------------------------------------------------------
// The binary

/// Runs `formbridge <args>` on `store_url` with the test config; returns (exit code, stdout, stderr).
async fn run_cli(store_url: &str, args: &[&str]) -> (i32, String, String) {
    run_cli_with(store_url, args, &[]).await
}

/// [`run_cli`] with more environment variables.
async fn run_cli_with(
    store_url: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_formbridge"))
        .args(args)
        .env_clear()
        .env("FORMBRIDGE_CONFIG_DIR", crate::common::config_dir())
        .env("FORMBRIDGE_ENV", "test")
        .env("FORMBRIDGE__STORE__URL", store_url)
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn events_cli_lists_shows_and_replays_on_the_store_file() {
    let app = spawn_admin().await;
    let store = app.store.as_ref();
    let url = app.store_url();
    let jot = post_jotform(&app).await;
    let lead = post_lead(&app, 1).await;
    make_dead(
        store,
        jot[0],
        "mapping: the form has no email or phone field, so no contact can be matched or created",
    )
    .await;
    make_retrying_with_a_step(store, lead).await;
    let total = jot.len() + 1;

    // list --json: same shape as the admin API.
    let (code, out, err) = run_cli(&url, &["events", "list", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let page: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ids_of(&page).len(), total);
    assert_eq!(page["next_before_id"], Value::Null);
    let (code, out, _) = run_cli(&url, &["events", "list", "--status", "dead", "--json"]).await;
    assert_eq!(code, 0);
    let page: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ids_of(&page), vec![jot[0].0]);
    let (_, out, _) = run_cli(&url, &["events", "list", "--source", "powr", "--json"]).await;
    assert_eq!(ids_of(&serde_json::from_str(&out).unwrap()), vec![lead.0]);
    let (_, out, _) = run_cli(&url, &["events", "list", "--limit", "2", "--json"]).await;
    let page: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ids_of(&page).len(), 2);
    assert!(page["next_before_id"].is_i64());

    // The table: a header, one line per event, long errors cut.
    let (code, out, _) = run_cli(&url, &["events", "list"]).await;
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("ID"), "{out}");
    for col in ["SOURCE", "STATUS", "ATTEMPTS", "RECEIVED", "LAST ERROR"] {
        assert!(lines[0].contains(col), "{out}");
    }
    assert_eq!(lines.len(), 1 + total, "{out}");
    let dead_line = lines.iter().find(|l| l.contains("dead")).unwrap();
    assert!(
        dead_line.contains("mapping: the form has no email"),
        "{dead_line}"
    );
    assert!(dead_line.ends_with('…'), "{dead_line}");
    assert!(!dead_line.contains("matched or created"), "{dead_line}");
    let (_, out, _) = run_cli(&url, &["events", "list", "--limit", "2"]).await;
    assert!(out.contains("--before-id"), "{out}");

    // show: the admin API's shape.
    let (code, out, err) = run_cli(&url, &["events", "show", &lead.0.to_string()]).await;
    assert_eq!(code, 0, "{err}");
    let ev: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ev["id"], lead.0);
    assert_eq!(ev["status"], "retrying");
    assert_eq!(ev["steps"][0]["ghl_id"], "contact-1");
    assert_eq!(ev["attempt_history"][0]["outcome"], "retry");
    assert!(ev["body"].as_str().unwrap().contains("lead1@example.com"));
    let (code, _, err) = run_cli(&url, &["events", "show", "999999"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("999999"), "{err}");

    // replay by id.
    let (code, out, err) = run_cli(&url, &["events", "replay", &lead.0.to_string()]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("replayed event {}", lead.0)), "{out}");
    let ev = store.get_event(lead).await.unwrap().unwrap();
    assert_eq!(ev.summary.status, EventStatus::Pending);
    assert!(ev.plan.is_none());
    assert_eq!(store.steps(lead).await.unwrap().len(), 1, "done step kept");
    let (code, _, _) = run_cli(
        &url,
        &["events", "replay", &lead.0.to_string(), "--from-scratch"],
    )
    .await;
    assert_eq!(code, 0);
    let steps = store.steps(lead).await.unwrap();
    assert!(
        steps.iter().all(|s| s.status == StepStatus::Started),
        "every step runs again, looking for its marker first: {steps:?}"
    );
    let (code, _, err) = run_cli(&url, &["events", "replay", "999999"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("999999"), "{err}");

    // replay by filter; no filter needs --all; ids and filters do not mix.
    let (code, _, err) = run_cli(&url, &["events", "replay"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("--all"), "{err}");
    let (code, _, _) = run_cli(&url, &["events", "replay", "1", "--status", "dead"]).await;
    assert_eq!(code, 2);
    let (code, out, _) = run_cli(
        &url,
        &["events", "replay", "--status", "dead", "--source", "powr"],
    )
    .await;
    assert_eq!(code, 1, "nothing dead from powr: {out}");
    let (code, out, _) = run_cli(&url, &["events", "replay", "--status", "dead"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("replayed 1 event"), "{out}");
    assert_eq!(
        store
            .get_event(jot[0])
            .await
            .unwrap()
            .unwrap()
            .summary
            .status,
        EventStatus::Pending
    );
    let (code, out, _) = run_cli(&url, &["events", "replay", "--all"]).await;
    assert_eq!(code, 0);
    assert!(out.contains(&format!("replayed {total} event")), "{out}");

    // Usage and configuration errors exit 2.
    let (code, _, _) = run_cli(&url, &["events", "list", "--status", "lost"]).await;
    assert_eq!(code, 2);
    let (code, _, err) = run_cli("ftp://nowhere", &["events", "list"]).await;
    assert_eq!(code, 2, "{err}");
    let filter = EventFilter::default();
    assert_eq!(app.store.list_events(&filter).await.unwrap().len(), total);
}

// `formbridge sandbox-ghl` exists only with the `sandbox` feature.
#[cfg(feature = "sandbox")]
#[tokio::test]
async fn sandbox_ghl_serves_the_fake_ghl_and_prints_how_to_use_it() {
    use std::process::Stdio;

    use crate::common::wait_for;
    use tokio::io::{AsyncBufReadExt, BufReader};

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_formbridge"))
        .args(["sandbox-ghl", "--addr", "127.0.0.1:0"])
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let base = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("sandbox printed its URL");
            printed.push(line.clone());
            if let Some(url) = line.strip_prefix("GHL sandbox listening on ") {
                return url.to_owned();
            }
        }
    })
    .await
    .unwrap();
    for _ in 0..2 {
        printed.push(lines.next_line().await.unwrap().unwrap());
    }
    let printed = printed.join("\n");
    assert!(printed.contains(ghl_sandbox::DEMO_TOKEN), "{printed}");
    assert!(printed.contains(ghl_sandbox::DEMO_LOCATION), "{printed}");

    let client = reqwest::Client::new();
    let resp = wait_for(Duration::from_secs(10), "the sandbox to answer", || {
        let client = client.clone();
        let url = format!("{base}contacts/{}", "missing");
        async move { client.get(url).send().await.ok() }
    })
    .await;
    assert_eq!(resp.status(), 401, "the fake GHL wants a token");
    let resp = client
        .get(format!("{base}_sandbox/state"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

#[tokio::test]
async fn the_admin_page_is_served_without_the_token_with_a_strict_policy() {
    let app = spawn_admin().await;
    let resp = app.get("/admin/ui").await;
    assert_eq!(resp.status(), 200);
    let headers = resp.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let csp = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing: {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    let html = resp.text().await.unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("<style") && !html.contains("<script>"));
    // Its files are served without the token too, with the same policy and headers.
    let mut page = html.clone();
    for (file, content_type) in [
        ("core.js", "text/javascript; charset=utf-8"),
        ("events.js", "text/javascript; charset=utf-8"),
        ("leads.js", "text/javascript; charset=utf-8"),
        ("overview.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
    ] {
        assert!(html.contains(&format!("\"/admin/ui/{file}\"")), "{file}");
        let resp = app.get(&format!("/admin/ui/{file}")).await;
        assert_eq!(resp.status(), 200, "{file}");
        assert_eq!(resp.headers()["content-type"], content_type);
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
        assert_eq!(resp.headers()["cache-control"], "no-store");
        assert_eq!(resp.headers()["content-security-policy"], csp);
        page.push_str(&resp.text().await.unwrap());
    }
    assert_eq!(app.get("/admin/ui/nothing.js").await.status(), 404);
    let html = page;
    // The page calls only endpoints that exist, with the bearer token, and loads nothing else.
    for used in [
        "\"/admin/events\"",
        "\"/admin/stats\"",
        "\"/admin/overview\"",
        "\"/admin/search?\"",
        "\"/admin/replay\"",
        "\"/replay\"",
        "from_scratch=true",
        "\"Bearer \"",
        "sessionStorage",
    ] {
        assert!(html.contains(used), "the page lacks {used}");
    }
    // Nothing from the internet: the one outside address is the GHL contact link of the event
    // detail, which the user follows (a link, not something the page loads).
    // The SVG namespace the overview's chart is made in is a name, not an address either.
    let html = html
        .replace("\"https://app.gohighlevel.com/v2/location/\"", "")
        .replace("\"http://www.w3.org/2000/svg\"", "");
    assert!(!html.contains("http://") && !html.contains("https://"));

    // `GET /admin` leads to it; HEAD works; the page holds no data, so no token is needed, but
    // other methods on it are guarded like the API.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_redirects
        .get(format!("{}/admin", app.base))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_redirection(), "{}", resp.status());
    assert_eq!(resp.headers()["location"], "/admin/ui");
    for (method, expected) in [(reqwest::Method::HEAD, 200), (reqwest::Method::POST, 401)] {
        let url = format!("{}/admin/ui", app.base);
        let resp = app
            .client
            .request(method.clone(), url)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), expected, "{method} without a token");
    }
    let (status, body) = admin(&app, "POST", "/admin", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "not_found");
    let (status, body) = admin(&app, "POST", "/admin/ui", None).await;
    assert_eq!(status, 405);
    assert_eq!(body["error"], "method_not_allowed");

    // With no admin token configured the page is off like the API.
    let off = spawn_app(&[]).await;
    for path in ["/admin/ui", "/admin"] {
        let resp = off.get(path).await;
        assert_eq!(resp.status(), 404, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["detail"],
            "the admin API is disabled: set FORMBRIDGE__ADMIN__TOKEN"
        );
    }
}

#[tokio::test]
async fn wrong_admin_tokens_lock_out_their_address_only() {
    use formbridge::http::admin_backoff::{FIRST_LOCKOUT, MAX_FAILURES};
    let app = spawn_admin().await;
    let url = format!("{}/admin/stats", app.base);
    let from = |last: u8| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, last]))
            .build()
            .unwrap()
    };
    let attacker = from(1);
    let operator = from(2);
    for n in 0..MAX_FAILURES {
        let resp = attacker
            .get(&url)
            .bearer_auth(format!("guess-{n}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "guess {n}");
    }
    // Locked out: even the right token is refused 429 from this address, with Retry-After.
    for token in ["guess-again", TOKEN] {
        let resp = attacker.get(&url).bearer_auth(token).send().await.unwrap();
        assert_eq!(resp.status(), 429);
        let retry_after: u64 = resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (1..=FIRST_LOCKOUT.as_secs() + 1).contains(&retry_after),
            "{retry_after}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "too_many_attempts");
    }
    // Another address with the right token is not affected.
    let resp = operator.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("formbridge_admin_auth_throttled_total "),
        "{metrics}"
    );
}
