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
        "Agent-view answers (JivoChat chat_accepted/chat_updated) by outcome (shown, cached, unknown, no_visitor, no_location, no_budget, timeout, rate_limited, ghl_error).";
    /// Events by status (refreshed on each scrape).
    EVENTS = "formbridge_events", Gauge, ["status"],
        "Stored events by status (pending, processing, retrying, done, dead), read at scrape time.";
    /// Age of the oldest unfinished event.
    QUEUE_OLDEST_PENDING_SECONDS = "formbridge_queue_oldest_pending_seconds", Gauge, [],
        "Age in seconds of the oldest event not yet done or dead (0 when none waits).";
    /// Finished dispatch attempts by outcome.
    DISPATCH = "formbridge_dispatch_total", Counter, ["outcome"],
        "Dispatch attempts by how they ended (done, retry, rate_limited, auth_blocked, dead, nothing_to_do, requeued, ...).";
    /// Retries scheduled, by reason.
    DISPATCH_RETRIES = "formbridge_dispatch_retries_total", Counter, ["reason"],
        "Retries scheduled, by reason.";
    /// Events dead-lettered, by reason.
    DEAD_LETTERS = "formbridge_dead_letters_total", Counter, ["reason"],
        "Events dead-lettered (kept for replay), by reason (ghl, unmappable, over_budget).";
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
    /// Failed accepts.
    HTTP_ACCEPT_ERRORS = "formbridge_http_accept_errors_total", Counter, [],
        "Failed accepts (e.g. out of file descriptors).";
    /// Alert messages posted to the webhook.
    ALERTS_SENT = "formbridge_alerts_sent_total", Counter, ["kind"],
        "Alert messages posted to alerts.webhook_url, by kind (dead_letter, location_blocked, queue_age).";
    /// Alert messages given up on.
    ALERTS_FAILED = "formbridge_alerts_failed_total", Counter, ["kind"],
        "Alert messages not delivered after alerts.max_attempts tries, by kind.";
    /// Alerts dropped because the notifier's queue was full.
    ALERTS_DROPPED = "formbridge_alerts_dropped_total", Counter, ["kind"],
        "Alerts dropped because the alert queue (alerts.queue_capacity) was full, by kind.";
}

/// Registers every metric's description with the installed recorder.
pub fn describe_all() {
    for m in ALL {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.help),
            Kind::Gauge => metrics::describe_gauge!(m.name, m.help),
            Kind::Histogram => metrics::describe_histogram!(m.name, m.help),
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

    #[test]
    fn the_deploy_rules_and_dashboard_use_only_declared_metrics() {
        let declared: BTreeSet<&str> = ALL.iter().map(|m| m.name).collect();
        for file in [
            "deploy/prometheus/alerts.yml",
            "deploy/grafana/dashboards/formbridge.json",
        ] {
            let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
                .unwrap_or_default();
            let used = metric_names_in(&text);
            assert!(!used.is_empty(), "{file} names no metric");
            for name in used {
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .filter(|base| declared.contains(base))
                    .unwrap_or(&name);
                assert!(
                    declared.contains(base),
                    "{file}: `{name}` is not declared here"
                );
            }
        }
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
