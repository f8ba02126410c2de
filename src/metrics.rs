//! Every metric formbridge exports, declared once: its name, kind, labels and what it says.
//! Code records through these names; [`describe_all`] gives Prometheus the descriptions, and a
//! test holds the README's list to this one.

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One exported metric.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

macro_rules! metrics {
    ($( $(#[$doc:meta])* $ident:ident = $name:literal, $kind:ident, [$($label:literal),*], $help:literal; )*) => {
        $( $(#[$doc])* pub const $ident: &str = $name; )*
        /// Every metric, in the order the README lists them.
        pub const ALL: &[Metric] = &[
            $( Metric { name: $name, kind: Kind::$kind, labels: &[$($label),*], help: $help }, )*
        ];
    };
}

metrics! {
    /// Webhook deliveries by source and outcome.
    WEBHOOKS_RECEIVED = "formbridge_webhooks_received_total", Counter, ["source", "outcome"],
        "Webhook deliveries by source and outcome (accepted, duplicate, unauthorized, too_large, store_error, ...).";
    /// Time to authenticate, check and store one delivery.
    WEBHOOK_INGEST_SECONDS = "formbridge_webhook_ingest_seconds", Histogram, ["source"],
        "Seconds to authenticate, check and durably store one delivery.";
    /// JivoChat agent-view answers by outcome.
    AGENT_VIEW = "formbridge_agent_view_total", Counter, ["outcome"],
        "Agent-view answers (JivoChat chat_accepted/chat_updated) by outcome (shown, cached, unknown, no_visitor, no_location, no_budget, share_spent, over_cap, timeout, rate_limited, ghl_error).";
    /// Agent-view look-ups asked for, by source.
    AGENT_VIEW_LOOKUPS = "formbridge_agent_view_lookups_total", Counter, ["source"],
        "Agent-view look-ups asked for by source: chat events with the agent view on that name a visitor's email or phone (cached answers and those over agent_view_per_minute included). A jump can mean someone holding the webhook URL is looking contacts up.";
    /// Events by status (refreshed on each scrape).
    EVENTS = "formbridge_events", Gauge, ["status"],
        "Stored events by status (pending, processing, retrying, done, dead), read at scrape time.";
    /// How long the event that has waited longest for the dispatcher has been due.
    QUEUE_OLDEST_PENDING_SECONDS = "formbridge_queue_oldest_pending_seconds", Gauge, [],
        "Seconds the longest-waiting event due for dispatch has been due (0 when none): pending or retrying events whose time has come, claimed ones whose lease ran out. Follow-ups waiting for their lead, retries in backoff and events queued behind an earlier event of their contact are not counted.";
    /// Follow-ups and edits waiting for the delivery they refer to.
    QUEUE_WAITING_FOR_LEAD = "formbridge_queue_waiting_for_lead", Gauge, [],
        "Follow-ups and edits waiting for their lead (or earlier revision) to reach GHL; looked at again until dispatch.follow_up_wait, then dead-lettered.";
    /// Age of the oldest follow-up waiting for its lead.
    QUEUE_WAITING_FOR_LEAD_OLDEST_SECONDS = "formbridge_queue_waiting_for_lead_oldest_seconds", Gauge, [],
        "Seconds since the oldest follow-up or edit waiting for its lead was received (0 when none).";
    /// Events waiting for a later attempt.
    QUEUE_RETRYING_BACKOFF = "formbridge_queue_retrying_backoff", Gauge, [],
        "Pending or retrying events not due yet (a retry's backoff, a rate-budget pause), follow-ups waiting for their lead aside.";
    /// Finished dispatch attempts by outcome.
    DISPATCH = "formbridge_dispatch_total", Counter, ["outcome"],
        "Dispatch attempts by how they ended (done, retry, rate_limited, auth_blocked, dead, nothing_to_do, requeued, ...).";
    /// Retries scheduled, by reason.
    DISPATCH_RETRIES = "formbridge_dispatch_retries_total", Counter, ["reason"],
        "Retries scheduled, by reason.";
    /// Events dead-lettered, by reason.
    DEAD_LETTERS = "formbridge_dead_letters_total", Counter, ["reason"],
        "Events dead-lettered (kept for replay), by reason (ghl, unmappable, prepare_timeout).";
    /// Done events deleted by the retention job.
    RETENTION_DELETED = "formbridge_retention_deleted_total", Counter, [],
        "Done events deleted by the retention job (store.retention).";
    /// GHL requests by endpoint and answer.
    GHL_REQUESTS = "formbridge_ghl_requests_total", Counter, ["endpoint", "status"],
        "GHL API requests by endpoint and HTTP status (or timeout, error).";
    /// GHL request latency.
    GHL_REQUEST_SECONDS = "formbridge_ghl_request_seconds", Histogram, ["endpoint"],
        "Seconds per GHL API request.";
    /// GHL's remaining budget per location.
    GHL_RATE_REMAINING = "formbridge_ghl_rate_remaining", Gauge, ["location"],
        "Requests left in the location's current GHL burst window (x-ratelimit-remaining).";
    /// Locations whose dispatch is paused.
    GHL_LOCATION_BLOCKED = "formbridge_ghl_location_blocked", Gauge, ["location"],
        "1 while the location's dispatch is paused (token refused, access denied, configuration fault).";
    /// OAuth token refreshes by outcome.
    GHL_OAUTH_REFRESH = "formbridge_ghl_oauth_refresh_total", Counter, ["outcome"],
        "OAuth token refreshes by outcome (ok, rejected, error).";
    /// Writes per store commit.
    STORE_COMMIT_BATCH_SIZE = "formbridge_store_commit_batch_size", Histogram, [],
        "Writes per store commit (group commit).";
    /// Store commits that failed.
    STORE_COMMIT_FAILURES = "formbridge_store_commit_failures_total", Counter, [],
        "Store commits that failed (a full disk, an I/O error), the writer's recovery probes included.";
    /// Whether the store takes writes.
    STORE_WRITABLE = "formbridge_store_writable", Gauge, [],
        "0 while the store cannot take writes (deliveries are answered 503), else 1.";
    /// Open HTTP connections.
    HTTP_CONNECTIONS = "formbridge_http_connections", Gauge, [],
        "Open HTTP connections.";
    /// Times the connection cap was reached.
    HTTP_CONNECTION_CAP_REACHED = "formbridge_http_connection_cap_reached_total", Counter, [],
        "Times a connection arrived with server.max_connections open.";
    /// Connections closed by the server, by reason.
    HTTP_CONNECTIONS_CLOSED = "formbridge_http_connections_closed_total", Counter, ["reason"],
        "Connections the server closed, by reason (header_timeout, idle_timeout, evicted, shutdown, grace_expired).";
    /// Request bodies cut off at `server.body_read_timeout`.
    HTTP_BODY_TIMEOUTS = "formbridge_http_body_timeouts_total", Counter, [],
        "Request bodies not received whole within server.body_read_timeout of their head (answered 408).";
    /// Request heads refused before any route ran, by reason.
    HTTP_HEADS_REFUSED = "formbridge_http_heads_refused_total", Counter, ["reason"],
        "Requests answered 431 or 414 before any route ran because their head was over a limit, by reason (uri_too_long, too_many_headers, header_too_large, headers_too_large).";
    /// Connections closed at once because their client held its share.
    HTTP_CLIENT_CAP_REACHED = "formbridge_http_client_cap_reached_total", Counter, [],
        "New connections closed at once because their client address (TCP peer; IPv6 by /64) already held server.max_connections_per_client.";
    /// Failed accepts.
    HTTP_ACCEPT_ERRORS = "formbridge_http_accept_errors_total", Counter, [],
        "Failed accepts (e.g. out of file descriptors).";
    /// Admin requests refused 429 after repeated wrong tokens.
    ADMIN_AUTH_THROTTLED = "formbridge_admin_auth_throttled_total", Counter, [],
        "Admin requests answered 429 because their client address sent too many wrong admin tokens (back-off).";
    /// Alert messages posted to the webhook.
    ALERTS_SENT = "formbridge_alerts_sent_total", Counter, ["kind"],
        "Alert messages posted to alerts.webhook_url, by kind (dead_letter, location_blocked, queue_age, agent_view_cap).";
    /// Alert messages given up on.
    ALERTS_FAILED = "formbridge_alerts_failed_total", Counter, ["kind"],
        "Alert messages not delivered after alerts.max_attempts tries, by kind.";
    /// Alerts dropped because the notifier's queue was full.
    ALERTS_DROPPED = "formbridge_alerts_dropped_total", Counter, ["kind"],
        "Alerts dropped because the alert queue (alerts.queue_capacity) was full, by kind.";
}

/// Counter series exported at 0 from the start, by label value: an alert rule's `increase()`
/// sees no increase in a series whose first sample is already 1, so without them the first dead
/// letter (or failed alert message) after a start would alert nobody.
const BORN_AT_ZERO: &[(&str, &str, &[&str])] = &[
    (DEAD_LETTERS, "reason", DEAD_LETTER_REASONS),
    (ALERTS_FAILED, "kind", ALERT_KINDS),
    (ALERTS_DROPPED, "kind", ALERT_KINDS),
];
/// The `reason` labels of [`DEAD_LETTERS`] (dispatch and preparation).
const DEAD_LETTER_REASONS: &[&str] = &["ghl", "unmappable", "prepare_timeout"];
/// The `kind` labels of the alert counters (`alerts`).
const ALERT_KINDS: &[&str] = &[
    "dead_letter",
    "location_blocked",
    "queue_age",
    "agent_view_cap",
];

/// Registers every metric's description with the installed recorder, and starts the counters
/// alert rules watch for a first count at 0 ([`BORN_AT_ZERO`]).
pub fn describe_all() {
    for m in ALL {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.help),
            Kind::Gauge => metrics::describe_gauge!(m.name, m.help),
            Kind::Histogram => metrics::describe_histogram!(m.name, m.help),
        }
    }
    for (name, label, values) in BORN_AT_ZERO {
        for value in *values {
            metrics::counter!(*name, *label => *value).increment(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn metric_names_in(text: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut rest = text;
        while let Some(at) = rest.find("formbridge_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            out.insert(name);
        }
        out
    }

    #[test]
    fn names_are_unique_and_prometheus_shaped() {
        let names: BTreeSet<_> = ALL.iter().map(|m| m.name).collect();
        assert_eq!(names.len(), ALL.len());
        for m in ALL {
            assert!(m.name.starts_with("formbridge_"), "{}", m.name);
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "{}: counters, and only counters, end in _total",
                m.name
            );
        }
    }

    #[test]
    fn the_readme_lists_exactly_these_metrics() {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
                .unwrap_or_default();
        let listed = metric_names_in(&readme);
        let declared: BTreeSet<String> = ALL.iter().map(|m| m.name.to_owned()).collect();
        assert_eq!(listed, declared, "README.md metrics vs src/metrics.rs");
    }

    /// The declared metric a name in a query stands for: itself, or a histogram's series
    /// (`_bucket`, `_sum`, `_count`). Counters are declared with their `_total`, as
    /// Prometheus exposes them.
    fn declared_metric(name: &str) -> Option<&'static Metric> {
        ALL.iter().find(|m| m.name == name).or_else(|| {
            ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
                let base = name.strip_suffix(suffix)?;
                ALL.iter()
                    .find(|m| m.name == base && m.kind == Kind::Histogram)
            })
        })
    }

    /// Every metric name in the files under `dir` whose name ends with `ext`, by file, that
    /// `src/metrics.rs` does not declare.
    fn undeclared_in(dir: &str, ext: &str, must_name_some: bool) -> Vec<String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.to_string_lossy().ends_with(ext))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no {dir}/*{ext}");
        let mut undeclared = Vec::new();
        for path in files {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let used = metric_names_in(&text);
            assert!(
                !must_name_some || !used.is_empty(),
                "{} names no metric",
                path.display()
            );
            for name in used {
                if declared_metric(&name).is_none() {
                    let file = path.strip_prefix(root).unwrap_or(&path).display();
                    undeclared.push(format!("{file}: {name}"));
                }
            }
        }
        undeclared
    }

    /// Every metric the alert rules (and their unit tests) and the Grafana dashboards query is
    /// one formbridge exports: a misspelt name would make a rule that never fires, a rule test
    /// that passes on series nothing exports, or an empty panel.
    #[test]
    fn the_deploy_rules_and_dashboards_use_only_declared_metrics() {
        let mut undeclared = undeclared_in("deploy/prometheus", ".yml", false);
        undeclared.extend(undeclared_in("deploy/grafana/dashboards", ".json", true));
        assert!(
            undeclared.is_empty(),
            "metrics not declared in src/metrics.rs: {undeclared:#?}"
        );
        for must in ["alerts.yml", "alerts.test.yml"] {
            let text = std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("deploy/prometheus")
                    .join(must),
            )
            .unwrap_or_default();
            assert!(!metric_names_in(&text).is_empty(), "{must} names no metric");
        }
    }

    #[test]
    fn a_histogram_series_stands_for_its_histogram_only() {
        assert!(declared_metric("formbridge_ghl_request_seconds_bucket").is_some());
        assert!(declared_metric("formbridge_webhook_ingest_seconds_count").is_some());
        assert!(declared_metric("formbridge_dead_letters_total").is_some());
        assert!(declared_metric("formbridge_dead_letters_total_count").is_none());
        assert!(declared_metric("formbridge_dead_letters").is_none());
        assert!(declared_metric("formbridge_queue_oldest_pending_second").is_none());
    }

    #[test]
    fn no_metric_name_is_spelled_outside_this_module() {
        fn walk(dir: &Path, out: &mut Vec<(String, String)>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && !path.ends_with("src/metrics.rs")
                {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    for name in metric_names_in(&text) {
                        if text.contains(&format!("\"{name}")) {
                            out.push((path.display().to_string(), name));
                        }
                    }
                }
            }
        }
        let mut spelled = Vec::new();
        walk(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut spelled,
        );
        assert!(
            spelled.is_empty(),
            "metric names as string literals outside src/metrics.rs: {spelled:?}"
        );
    }
}
