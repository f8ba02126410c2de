//! The HTTP surface: webhook ingress, health, metrics, admin API and JSON error bodies.
