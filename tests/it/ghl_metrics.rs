#![allow(clippy::unwrap_used)]
//! The client's metrics: request counter and latency histogram labelled with route templates
//! (never ids), and the per-location remaining-budget gauge.

use std::time::Duration;

use formbridge::ghl::types::{ContactProperties, UpsertContactRequest};
use formbridge::ghl::{GhlClient, GhlClientConfig};
use ghl_sandbox::SandboxConfig;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;
use secrecy::SecretString;

const LOC: &str = "locMetricsTest000001";

#[test]
fn requests_are_counted_per_route_template() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let h = ghl_sandbox::start(SandboxConfig::single("pit-m", LOC))
                .await
                .unwrap();
            let client = GhlClient::with_static_token(
                GhlClientConfig {
                    base_url: h.base_url.clone(),
                    api_version: "2021-07-28".into(),
                    request_timeout: Duration::from_secs(5),
                },
                LOC,
                SecretString::from("pit-m"),
            )
            .unwrap();
            let id = client
                .upsert_contact(&UpsertContactRequest {
                    location_id: LOC.into(),
                    contact: ContactProperties {
                        email: Some("m@example.com".into()),
                        ..ContactProperties::default()
                    },
                    ..UpsertContactRequest::default()
                })
                .await
                .unwrap()
                .body
                .contact
                .id;
            client.get_contact(LOC, &id).await.unwrap();
            client
                .get_contact(LOC, "unknownContact000001")
                .await
                .unwrap_err();
        });
    });

    let snapshot = snapshotter.snapshot().into_vec();
    let find = |kind: MetricKind, name: &str, labels: &[(&str, &str)]| {
        snapshot.iter().find_map(|(key, _, _, value)| {
            let k = key.key();
            let matches = key.kind() == kind
                && k.name() == name
                && labels
                    .iter()
                    .all(|(lk, lv)| k.labels().any(|l| l.key() == *lk && l.value() == *lv));
            matches.then_some(value)
        })
    };
    let counter = |endpoint: &str, status: &str| {
        find(
            MetricKind::Counter,
            "formbridge_ghl_requests_total",
            &[("endpoint", endpoint), ("status", status)],
        )
    };
    assert!(matches!(
        counter("POST /contacts/upsert", "200"),
        Some(DebugValue::Counter(1))
    ));
    assert!(matches!(
        counter("GET /contacts/:contactId", "200"),
        Some(DebugValue::Counter(1))
    ));
    assert!(matches!(
        counter("GET /contacts/:contactId", "400"),
        Some(DebugValue::Counter(1))
    ));
    match find(
        MetricKind::Histogram,
        "formbridge_ghl_request_seconds",
        &[("endpoint", "GET /contacts/:contactId")],
    ) {
        Some(DebugValue::Histogram(v)) => assert_eq!(v.len(), 2),
        other => panic!("{other:?}"),
    }
    match find(
        MetricKind::Gauge,
        "formbridge_ghl_rate_remaining",
        &[("location", LOC)],
    ) {
        Some(DebugValue::Gauge(v)) => assert_eq!(v.into_inner(), 97.0),
        other => panic!("{other:?}"),
    }
    // No label value anywhere carries an id.
    for (key, _, _, _) in &snapshot {
        for label in key.key().labels() {
            assert!(!label.value().contains("unknownContact"), "{label:?}");
        }
    }
}
