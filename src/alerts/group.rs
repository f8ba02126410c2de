//! Grouping and rate limiting of alerts: alerts of one kind (and location) become one message
//! with a count, sent `group_window` after the first and at most once per `min_interval`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use tokio::time::Instant;

use super::Alert;

/// Example lines kept per message.
const MAX_EXAMPLES: usize = 3;
/// Longest example line, in characters.
const MAX_EXAMPLE_CHARS: usize = 300;

/// What a group of alerts is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Topic {
    DeadLetters,
    LocationBlocked(String),
    QueueBehind,
    AgentViewCapped(String),
}

impl Topic {
    /// The `kind` label of the alert metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Topic::DeadLetters => "dead_letter",
            Topic::LocationBlocked(_) => "location_blocked",
            Topic::QueueBehind => "queue_age",
            Topic::AgentViewCapped(_) => "agent_view_cap",
        }
    }
}

/// One message ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: Topic,
    pub text: String,
}

#[derive(Debug)]
struct Group {
    first_at: Instant,
    count: u64,
    examples: Vec<String>,
    /// The latest detail (queue age), replacing earlier ones.
    latest: String,
}

/// Alerts waiting to be sent, by topic, and when each topic was last sent.
#[derive(Debug)]
pub struct Groups {
    window: Duration,
    min_interval: Duration,
    open: BTreeMap<Topic, Group>,
    last_sent: BTreeMap<Topic, Instant>,
}

impl Groups {
    pub fn new(window: Duration, min_interval: Duration) -> Self {
        Self {
            window,
            min_interval,
            open: BTreeMap::new(),
            last_sent: BTreeMap::new(),
        }
    }

    /// Adds one alert to its topic's group.
    pub fn add(&mut self, alert: Alert, now: Instant) {
        let (topic, line) = describe(alert);
        let group = self.open.entry(topic).or_insert_with(|| Group {
            first_at: now,
            count: 0,
            examples: Vec::new(),
            latest: String::new(),
        });
        group.count += 1;
        if group.examples.len() < MAX_EXAMPLES {
            group.examples.push(cut(&line));
        }
        group.latest = line;
    }

    fn due_at(&self, topic: &Topic, group: &Group) -> Instant {
        let grouped = group.first_at + self.window;
        match self.last_sent.get(topic) {
            Some(sent) => grouped.max(*sent + self.min_interval),
            None => grouped,
        }
    }

    /// When the next message is due, if any alert waits.
    pub fn next_due(&self) -> Option<Instant> {
        self.open.iter().map(|(t, g)| self.due_at(t, g)).min()
    }

    /// The messages due at `now` (every waiting one with `all`), marked sent.
    pub fn take_due(&mut self, now: Instant, all: bool) -> Vec<Message> {
        let due: Vec<Topic> = self
            .open
            .iter()
            .filter(|(t, g)| all || self.due_at(t, g) <= now)
            .map(|(t, _)| t.clone())
            .collect();
        let mut out = Vec::with_capacity(due.len());
        for topic in due {
            if let Some(group) = self.open.remove(&topic) {
                self.last_sent.insert(topic.clone(), now);
                out.push(Message {
                    text: render(&topic, &group),
                    topic,
                });
            }
        }
        out
    }
}

/// The topic of an alert and its one-line detail.
fn describe(alert: Alert) -> (Topic, String) {
    match alert {
        Alert::DeadLetter {
            event_id,
            source,
            error,
        } => (
            Topic::DeadLetters,
            format!("event {event_id} ({source}): {error}"),
        ),
        Alert::LocationBlocked { location, reason } => (Topic::LocationBlocked(location), reason),
        Alert::LocationPaused { location, pause } => (
            Topic::LocationBlocked(location),
            format!(
                "GHL rate budget spent (daily quota or a long 429): paused for {}",
                humantime::format_duration(round(pause))
            ),
        ),
        Alert::AgentViewCapped { source, per_minute } => (
            Topic::AgentViewCapped(source.clone()),
            format!(
                "cap of {per_minute} look-ups per minute reached (sources.{source}.agent_view_per_minute)"
            ),
        ),
        Alert::QueueBehind { oldest, threshold } => (
            Topic::QueueBehind,
            format!(
                "an event due for dispatch has waited {} (alerts.max_queue_age = {}): dispatch is behind or stopped (follow-ups waiting for their lead and retries in backoff are not counted)",
                humantime::format_duration(round(oldest)),
                humantime::format_duration(threshold)
            ),
        ),
    }
}

fn render(topic: &Topic, group: &Group) -> String {
    let mut text = match topic {
        Topic::DeadLetters => format!(
            "formbridge: {} event(s) dead-lettered. Inspect with `formbridge events list --status dead`, replay after the fix.",
            group.count
        ),
        Topic::LocationBlocked(location) => format!(
            "formbridge: GHL location `{location}` is blocked ({} time(s)); its events wait.",
            group.count
        ),
        Topic::QueueBehind => return format!("formbridge: {}", group.latest),
        Topic::AgentViewCapped(source) => format!(
            "formbridge: the JivoChat agent view of source `{source}` reached its cap of look-ups per minute ({} time(s)); further chat events were answered without a contact card. A busy chat desk, or someone holding the webhook URL looking contacts up: check formbridge_agent_view_lookups_total and the senders, and rotate sources.{source}.secret if the URL leaked.",
            group.count
        ),
    };
    for line in &group.examples {
        let _ = write!(text, "\n- {line}");
    }
    if group.count > group.examples.len() as u64 {
        let _ = write!(
            text,
            "\n- … and {} more",
            group.count - group.examples.len() as u64
        );
    }
    text
}

fn round(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}

fn cut(line: &str) -> String {
    if line.chars().count() <= MAX_EXAMPLE_CHARS {
        return line.to_owned();
    }
    let mut out: String = line.chars().take(MAX_EXAMPLE_CHARS - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead(id: i64) -> Alert {
        Alert::DeadLetter {
            event_id: id,
            source: "jotform".into(),
            error: "upsert failed: 422".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn dead_letters_in_one_window_make_one_message_with_a_count() {
        let mut groups = Groups::new(Duration::from_secs(60), Duration::from_secs(300));
        let start = Instant::now();
        for id in 1..=5 {
            groups.add(dead(id), start);
        }
        assert!(groups.take_due(start, false).is_empty());
        assert_eq!(groups.next_due(), Some(start + Duration::from_secs(60)));
        let sent = groups.take_due(start + Duration::from_secs(60), false);
        assert_eq!(sent.len(), 1);
        assert!(
            sent[0].text.contains("5 event(s) dead-lettered"),
            "{}",
            sent[0].text
        );
        assert!(sent[0].text.contains("and 2 more"), "{}", sent[0].text);
        // The next dead letter waits for the rate limit, not only the window.
        groups.add(dead(6), start + Duration::from_secs(61));
        assert_eq!(groups.next_due(), Some(start + Duration::from_secs(360)));
    }

    #[tokio::test(start_paused = true)]
    async fn agent_view_caps_are_grouped_by_source() {
        let mut groups = Groups::new(Duration::from_secs(60), Duration::from_secs(600));
        let now = Instant::now();
        for source in ["jivochat", "jivochat", "jivo-eu"] {
            groups.add(
                Alert::AgentViewCapped {
                    source: source.into(),
                    per_minute: 30,
                },
                now,
            );
        }
        let sent = groups.take_due(now + Duration::from_secs(60), false);
        assert_eq!(sent.len(), 2);
        let text = &sent[1].text;
        assert_eq!(sent[1].topic.kind(), "agent_view_cap");
        assert!(text.contains("source `jivochat`"), "{text}");
        assert!(text.contains("(2 time(s))"), "{text}");
        assert!(
            text.contains("sources.jivochat.agent_view_per_minute"),
            "{text}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn locations_are_grouped_apart() {
        let mut groups = Groups::new(Duration::from_secs(1), Duration::from_secs(1));
        let now = Instant::now();
        for location in ["a", "b", "a"] {
            groups.add(
                Alert::LocationBlocked {
                    location: location.into(),
                    reason: "token refused".into(),
                },
                now,
            );
        }
        let sent = groups.take_due(now, true);
        assert_eq!(sent.len(), 2);
        assert!(
            sent[0].text.contains("`a` is blocked (2 time(s))"),
            "{}",
            sent[0].text
        );
    }
}
