//! `[alerts]`: messages reach a local webhook receiver (a small axum server on port 0) for dead
//! letters, a blocked location and an agent view at its per-minute cap, grouped into one message
//! with a count, and none arrive while everything is delivered.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use formbridge::app::Application;
use formbridge::store::{EventFilter, EventStatus};
use ghl_sandbox::{FaultSpec, SandboxConfig, SandboxHandle};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::common::{settings_with_toml, wait_for, SECRET};

const TOKEN: &str = "pit-alerts-token";
const LOCATION: &str = "locAlerts00000000001";

/// What the receiver got, and what it answers.
#[derive(Clone)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    /// A webhook receiver on port 0 answering `status` to every POST.
    async fn start(status: StatusCode) -> Self {
        let got = Arc::new(Mutex::new(Vec::new()));
        let router =
            Router::new()
                .route(
                    "/hook",
                    post(
                        move |State(got): State<Arc<Mutex<Vec<Value>>>>,
                              Json(body): Json<Value>| async move {
                            got.lock().unwrap().push(body);
                            status
                        },
                    ),
                )
                .with_state(got.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, got }
    }

    fn messages(&self) -> Vec<Value> {
        self.got.lock().unwrap().clone()
    }
}

/// A running app (dispatch on, against `ghl` with `token`) that alerts to `receiver`.
struct Running {
    base: String,
    store: Arc<dyn formbridge::store::Store>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn start(
        ghl: &SandboxHandle,
        token: &str,
        receiver: &Receiver,
        extra: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let base = ghl.base_url.to_string();
        let mut overrides = vec![
            ("dispatch.enabled", "true"),
            ("ghl.base_url", base.as_str()),
            ("ghl.token", token),
            ("ghl.location_id", LOCATION),
            ("dispatch.poll_interval", "50ms"),
            ("ghl.request_timeout", "2s"),
            ("alerts.webhook_url", receiver.url.as_str()),
            ("alerts.check_interval", "50ms"),
            ("alerts.max_attempts", "2"),
        ];
        overrides.extend_from_slice(extra);
        let settings = settings_with_toml(dir.path(), "", &overrides);
        let app = Application::build(settings).await.unwrap();
        let base = format!("http://{}", app.local_addr());
        let store = app.store();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.run_until(async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            base,
            store,
            stop,
            task,
            _dir: dir,
        }
    }

    /// POSTs a JSON delivery to `/hooks/{source}` with the test token.
    async fn post(&self, source: &str, body: &Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/hooks/{source}?token={SECRET}", self.base))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn post_leads(&self, n: usize, prefix: &str) {
        for i in 0..n {
            let body = serde_json::json!({
                "deal_id": format!("{prefix}-{i}"),
                "customer_name": format!("Lead{i} Person"),
                "customer_email": format!("{prefix}{i}@example.com"),
            });
            assert_eq!(self.post("dripjobs", &body).await.status(), 200);
        }
    }

    async fn wait_for_status(&self, status: EventStatus, n: usize) {
        wait_for(Duration::from_secs(20), "events to settle", || async {
            let events = self
                .store
                .list_events(&EventFilter::default())
                .await
                .unwrap();
            (events.iter().filter(|e| e.status == status).count() == n).then_some(())
        })
        .await;
    }

    /// Stops the app and waits until it has ended, which sends every alert still waiting.
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

async fn sandbox() -> SandboxHandle {
    ghl_sandbox::start(SandboxConfig::single(TOKEN, LOCATION))
        .await
        .unwrap()
}

fn text_of(message: &Value) -> String {
    let text = message["text"].as_str().unwrap().to_owned();
    assert_eq!(
        message["content"].as_str(),
        Some(text.as_str()),
        "Discord's field too"
    );
    assert!(!text.contains(SECRET) && !text.contains(TOKEN), "{text}");
    text
}

#[tokio::test]
async fn no_alert_while_everything_is_delivered() {
    let ghl = sandbox().await;
    let receiver = Receiver::start(StatusCode::OK).await;
    let app = Running::start(&ghl, TOKEN, &receiver, &[("alerts.group_window", "10ms")]).await;
    app.post_leads(3, "fine").await;
    app.wait_for_status(EventStatus::Done, 3).await;
    app.stop().await;
    assert_eq!(receiver.messages(), Vec::<Value>::new());
}

#[tokio::test]
async fn dead_letters_in_one_window_are_one_message_with_their_count() {
    let ghl = sandbox().await;
    ghl.sandbox.set_faults(FaultSpec {
        fail_next: Some(3),
        fail_status: Some(422),
        match_path: Some("/notes".into()),
        ..Default::default()
    });
    let receiver = Receiver::start(StatusCode::OK).await;
    // A window longer than the test: the message is sent when the app stops.
    let app = Running::start(&ghl, TOKEN, &receiver, &[("alerts.group_window", "1h")]).await;
    app.post_leads(3, "dead").await;
    app.wait_for_status(EventStatus::Dead, 3).await;
    assert!(
        receiver.messages().is_empty(),
        "grouped until the window ends"
    );
    app.stop().await;
    let messages = receiver.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let text = text_of(&messages[0]);
    assert!(text.contains("3 event(s) dead-lettered"), "{text}");
    assert!(
        text.contains("create_note failed") && text.contains("422"),
        "{text}"
    );
}

#[tokio::test]
async fn a_blocked_location_is_reported_once_while_it_lasts() {
    let ghl = sandbox().await;
    let receiver = Receiver::start(StatusCode::OK).await;
    let app = Running::start(
        &ghl,
        "pit-revoked",
        &receiver,
        &[
            ("alerts.group_window", "50ms"),
            ("alerts.min_interval", "1h"),
        ],
    )
    .await;
    app.post_leads(2, "blocked").await;
    let messages = wait_for(
        Duration::from_secs(20),
        "the blocked-location alert",
        || async {
            let m = receiver.messages();
            (!m.is_empty()).then_some(m)
        },
    )
    .await;
    let text = text_of(&messages[0]);
    assert!(text.contains(&format!("`{LOCATION}` is blocked")), "{text}");
    assert!(text.contains("token"), "{text}");
    app.stop().await;
    // Rate-limited: whatever else arrived is at most the one message sent at shutdown.
    assert!(receiver.messages().len() <= 2, "{:?}", receiver.messages());
}

#[tokio::test]
async fn a_failing_webhook_is_tried_a_few_times_then_given_up() {
    let ghl = sandbox().await;
    ghl.sandbox.set_faults(FaultSpec {
        fail_next: Some(1),
        fail_status: Some(422),
        match_path: Some("/notes".into()),
        ..Default::default()
    });
    let receiver = Receiver::start(StatusCode::INTERNAL_SERVER_ERROR).await;
    let app = Running::start(&ghl, TOKEN, &receiver, &[("alerts.group_window", "10ms")]).await;
    app.post_leads(1, "refused").await;
    app.wait_for_status(EventStatus::Dead, 1).await;
    wait_for(Duration::from_secs(20), "two tries", || async {
        (receiver.messages().len() == 2).then_some(())
    })
    .await;
    app.stop().await;
    assert_eq!(
        receiver.messages().len(),
        2,
        "alerts.max_attempts = 2, then given up"
    );
}

#[tokio::test]
async fn a_queue_older_than_the_threshold_is_reported() {
    // No GHL credentials: dispatch is off, so a stored delivery waits and grows old.
    let receiver = Receiver::start(StatusCode::OK).await;
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_with_toml(
        dir.path(),
        "",
        &[
            ("alerts.webhook_url", receiver.url.as_str()),
            ("alerts.check_interval", "20ms"),
            ("alerts.max_queue_age", "1ms"),
            ("alerts.group_window", "10ms"),
        ],
    );
    let app = crate::common::spawn_with(settings, dir).await;
    let r = app
        .post_hook(
            "dripjobs",
            Some(SECRET),
            Some("application/json"),
            br#"{"deal_id":"late-1","customer_email":"late@example.com"}"#.to_vec(),
        )
        .await;
    assert_eq!(r.status(), 200);
    let messages = wait_for(Duration::from_secs(20), "the queue-age alert", || async {
        let m = receiver.messages();
        (!m.is_empty()).then_some(m)
    })
    .await;
    let text = text_of(&messages[0]);
    assert!(text.contains("alerts.max_queue_age"), "{text}");
}

#[tokio::test]
async fn an_agent_view_at_its_per_minute_cap_is_reported_once_per_source() {
    let ghl = sandbox().await;
    let receiver = Receiver::start(StatusCode::OK).await;
    let app = Running::start(
        &ghl,
        TOKEN,
        &receiver,
        &[
            ("alerts.group_window", "10ms"),
            ("sources.jivochat.agent_view_per_minute", "2"),
        ],
    )
    .await;
    for i in 0..5 {
        let event = serde_json::json!({
            "event_name": "chat_updated",
            "chat_id": 4200 + i,
            "visitor": {"email": format!("probe{i}@example.com")},
        });
        let answer: Value = app.post("jivochat", &event).await.json().await.unwrap();
        assert_eq!(answer["result"], "ok");
    }
    wait_for(Duration::from_secs(10), "the cap's alert", || {
        let n = receiver.messages().len();
        async move { (n >= 1).then_some(()) }
    })
    .await;
    app.stop().await;
    let messages = receiver.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let text = text_of(&messages[0]);
    assert!(text.contains("agent view of source `jivochat`"), "{text}");
    assert!(text.contains("(1 time(s))"), "one refusal run: {text}");
    assert!(
        text.contains("sources.jivochat.agent_view_per_minute"),
        "{text}"
    );
    assert!(!text.contains("probe"), "no visitor named: {text}");
}
