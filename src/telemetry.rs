//! Telemetry: the tracing subscriber (pretty or JSON) and the Prometheus metrics recorder.
