//! Ops endpoints: `/healthz` (process up), `/readyz` (store reachable), `/metrics` (Prometheus).
//!
//! `/healthz` and `/readyz` are unauthenticated (load balancers call them, also on the public
//! address), so they say nothing about the deployment: a store failure answers a generic
//! reason and its detail goes to the log at warn.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

use crate::store::AdminReads;

/// What the ops endpoints read.
pub struct OpsState {
    pub store: Arc<dyn AdminReads>,
    pub metrics: PrometheusHandle,
}

/// `GET /healthz`: the process is up and serving HTTP.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: the store answers a query; otherwise 503
/// `{"status":"unavailable","reason":"store"}`, the store's own error logged at warn.
pub async fn readyz(State(state): State<Arc<OpsState>>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the store does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "reason": "store"})),
            )
                .into_response()
        }
    }
}

/// `GET /metrics`: Prometheus text format; refreshes the queue gauges (`formbridge_events{status}`,
/// `formbridge_queue_*`) first.
pub async fn metrics(State(state): State<Arc<OpsState>>) -> Response {
    match state.store.queue_stats().await {
        Ok(stats) => {
            let now = time::OffsetDateTime::now_utc();
            let age = |t: Option<time::OffsetDateTime>| {
                t.map_or(0.0, |t| (now - t).as_seconds_f64().max(0.0))
            };
            for (status, n) in &stats.by_status {
                metrics::gauge!(crate::metrics::EVENTS, "status" => status.as_str()).set(*n as f64);
            }
            metrics::gauge!(crate::metrics::QUEUE_OLDEST_PENDING_SECONDS)
                .set(age(stats.oldest_due));
            metrics::gauge!(crate::metrics::QUEUE_WAITING_FOR_LEAD)
                .set(stats.waiting_for_lead as f64);
            metrics::gauge!(crate::metrics::QUEUE_WAITING_FOR_LEAD_OLDEST_SECONDS)
                .set(age(stats.oldest_waiting_for_lead));
            metrics::gauge!(crate::metrics::QUEUE_RETRYING_BACKOFF)
                .set(stats.retrying_backoff as f64);
        }
        Err(e) => tracing::warn!(error = %e, "cannot read queue figures for metrics"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
