//! Mapping: per-source config turns a normalized `Submission` into a `Plan` of GHL steps.

pub mod config;
pub mod plan;
