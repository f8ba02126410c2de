//! Alerts without Prometheus: a message to a chat webhook (Slack, Teams, Discord) when events are
//! dead-lettered, a GHL location is blocked, the queue falls behind or a source's agent view
//! reaches its per-minute cap of look-ups.
//!
//! Dispatch reports through an [`AlertSink`]: a `try_send` into a bounded channel, so an alert
//! never slows dispatch (when the channel is full the alert is dropped and counted). The
//! [`Notifier`] task groups what arrives (see `group`), rate-limits it and posts each message a
//! few times at most (see `deliver`). [`watch_queue_age`] raises the queue alert.

pub mod settings;

mod deliver;
mod group;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use deliver::Poster;
use group::Groups;
use settings::AlertSettings;

/// Why alerts could not start.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error("cannot build the alert webhook client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Something an operator should hear about.
#[derive(Debug, Clone)]
pub enum Alert {
    /// An event was dead-lettered.
    DeadLetter {
        event_id: i64,
        source: String,
        error: String,
    },
    /// A location's dispatch is paused until a person acts (token refused, access denied,
    /// configuration fault).
    LocationBlocked { location: String, reason: String },
    /// A location's rate budget is spent for `pause` (daily quota, a long 429).
    LocationPaused { location: String, pause: Duration },
    /// An event due for dispatch has waited longer than the threshold.
    QueueBehind {
        oldest: Duration,
        threshold: Duration,
    },
    /// A source's agent view refused a look-up at its `agent_view_per_minute` cap (raised on
    /// the first refusal after it was under the cap).
    AgentViewCapped { source: String, per_minute: u32 },
}

impl Alert {
    fn kind(&self) -> &'static str {
        match self {
            Alert::DeadLetter { .. } => "dead_letter",
            Alert::LocationBlocked { .. } | Alert::LocationPaused { .. } => "location_blocked",
            Alert::QueueBehind { .. } => "queue_age",
            Alert::AgentViewCapped { .. } => "agent_view_cap",
        }
    }
}

/// Where dispatch reports alerts. Cheap to clone; does nothing when alerts are off.
#[derive(Debug, Clone, Default)]
pub struct AlertSink {
    tx: Option<mpsc::Sender<Alert>>,
    min_location_pause: Duration,
}

impl AlertSink {
    /// A sink that drops everything (alerts off).
    pub fn off() -> Self {
        Self::default()
    }

    /// Hands `alert` to the notifier without waiting; when its queue is full the alert is
    /// dropped and counted (`formbridge_alerts_dropped_total`).
    pub fn emit(&self, alert: Alert) {
        let Some(tx) = &self.tx else {
            return;
        };
        if let Alert::LocationPaused { pause, .. } = &alert {
            if *pause < self.min_location_pause {
                return;
            }
        }
        let kind = alert.kind();
        if tx.try_send(alert).is_err() {
            metrics::counter!(crate::metrics::ALERTS_DROPPED, "kind" => kind).increment(1);
        }
    }

    /// Whether alerts are on.
    pub fn is_on(&self) -> bool {
        self.tx.is_some()
    }
}

/// The task that groups alerts and posts them.
pub struct Notifier {
    rx: mpsc::Receiver<Alert>,
    groups: Groups,
    poster: Poster,
    mask: Arc<dyn Fn(&str) -> String + Send + Sync>,
}

/// The sink and its notifier for `settings`, or an inert sink and no notifier when no
/// webhook URL is set. `mask` hides configured secrets in message texts.
pub fn start(
    settings: &AlertSettings,
    mask: Arc<dyn Fn(&str) -> String + Send + Sync>,
) -> Result<(AlertSink, Option<Notifier>), AlertsError> {
    let Some(url) = settings.webhook_url.clone().filter(|_| settings.enabled()) else {
        return Ok((AlertSink::off(), None));
    };
    let client = reqwest::Client::builder()
        .timeout(settings.request_timeout)
        .build()?;
    let (tx, rx) = mpsc::channel(settings.queue_capacity);
    let sink = AlertSink {
        tx: Some(tx),
        min_location_pause: settings.min_location_pause,
    };
    let notifier = Notifier {
        rx,
        groups: Groups::new(settings.group_window, settings.min_interval),
        poster: Poster::new(client, url, settings.max_attempts),
        mask,
    };
    Ok((sink, Some(notifier)))
}

impl Notifier {
    /// Groups and posts alerts until `stop` is cancelled (or every sink is gone), then posts
    /// what is still waiting once.
    pub async fn run(mut self, stop: CancellationToken) {
        loop {
            let next = self.groups.next_due();
            let due = async move {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                received = self.rx.recv() => match received {
                    Some(alert) => self.groups.add(alert, Instant::now()),
                    None => break,
                },
                () = due => self.send(false).await,
                () = stop.cancelled() => break,
            }
        }
        while let Ok(alert) = self.rx.try_recv() {
            self.groups.add(alert, Instant::now());
        }
        self.send(true).await;
    }

    async fn send(&mut self, all: bool) {
        for mut message in self.groups.take_due(Instant::now(), all) {
            message.text = (self.mask)(&message.text);
            self.poster.send(&message).await;
        }
    }
}

/// Every `alerts.check_interval` until `stop`, asks `oldest` how long the longest-waiting due
/// event has been due and raises [`Alert::QueueBehind`] while it exceeds `alerts.max_queue_age`.
pub async fn watch_queue_age<F, Fut>(
    sink: AlertSink,
    settings: &AlertSettings,
    mut oldest: F,
    stop: CancellationToken,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<Duration>>,
{
    if !sink.is_on() {
        return;
    }
    let threshold = settings.max_queue_age;
    let mut tick = tokio::time::interval(settings.check_interval);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Some(age) = oldest().await.filter(|age| *age > threshold) {
            sink.emit(Alert::QueueBehind {
                oldest: age,
                threshold,
            });
        }
    }
}
