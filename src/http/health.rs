//! Ops endpoints: `/healthz` (process up), `/readyz` (store reachable), `/metrics` (Prometheus).

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

use super::errors::ApiError;
use crate::store::Store;

/// What the ops endpoints read.
pub struct OpsState {
    pub store: Arc<dyn Store>,
    pub metrics: PrometheusHandle,
}

/// `GET /healthz`: the process is up and serving HTTP.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: the store answers a query; 503 with the reason otherwise.
pub async fn readyz(State(state): State<Arc<OpsState>>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => ApiError::unavailable(format!("store not reachable: {e}")).into_response(),
    }
}

/// `GET /metrics`: Prometheus text format; refreshes the `formbridge_events{status}` gauge first.
pub async fn metrics(State(state): State<Arc<OpsState>>) -> Response {
    match state.store.status_counts().await {
        Ok(counts) => {
            for (status, n) in counts {
                metrics::gauge!("formbridge_events", "status" => status.as_str()).set(n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot count events for metrics"),
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
