//! What the fuzz targets share: the server's own body limits, the input layout (a
//! `Content-Type` line, then the body), the sources as the server compiles them, and the
//! fixtures' submissions as plan inputs.

use std::sync::OnceLock;

use bytes::Bytes;
use formbridge::body::BodyLimits;
use formbridge::domain::SourceName;
use formbridge::mapping::{build_plan, CompiledMapping, MappingError};
use formbridge::settings::{ConfigSource, Settings, SourceSettings};
use formbridge::sources::{normalize, SourceKind};
use formbridge::submission::Submission;
use time::OffsetDateTime;

/// When every fuzzed delivery was received (a fixed time: a run is reproducible).
pub const RECEIVED_AT: OffsetDateTime = OffsetDateTime::UNIX_EPOCH;

/// The server's body limits as `config/default.toml` sets them (the ingress and the preparer
/// both parse with these).
pub fn server_limits() -> BodyLimits {
    static LIMITS: OnceLock<BodyLimits> = OnceLock::new();
    *LIMITS.get_or_init(|| {
        // No config folder: the defaults built into the binary alone.
        let source = ConfigSource::named("/nonexistent-formbridge-fuzz-config", "fuzz");
        Settings::load_without_env(&source, &[])
            .map(|s| s.server.body_limits())
            .unwrap_or_else(|e| panic!("the built-in configuration must load: {e}"))
    })
}

/// Splits a fuzz input into its `Content-Type` (the first line; an empty or non-UTF-8 line is
/// no header) and the body after it. An input without a newline is a body with no header.
pub fn content_type_and_body(data: &[u8]) -> (Option<&str>, Bytes) {
    match data.iter().position(|b| *b == b'\n') {
        Some(end) => {
            let header = std::str::from_utf8(&data[..end])
                .ok()
                .map(|h| h.trim_end_matches('\r'))
                .filter(|h| !h.is_empty());
            (header, Bytes::copy_from_slice(&data[end + 1..]))
        }
        None => (None, Bytes::copy_from_slice(data)),
    }
}

/// Builds everything the targets share before the first input, so that no input is charged
/// with one-time work: the limits, the default sources, the fixtures' submissions (which load
/// the phone number metadata, 1.7–3 s on first use in the fuzz build).
pub fn warm_up() {
    let _ = server_limits();
    let _ = default_sources();
    let _ = fixture_submissions();
}

/// A source of this kind named after it, with no settings (the default mapping).
pub struct DefaultSource {
    pub name: SourceName,
    pub kind: SourceKind,
    pub settings: SourceSettings,
    pub mapping: CompiledMapping,
}

/// One default source per registered tool, compiled once.
pub fn default_sources() -> &'static [DefaultSource] {
    static SOURCES: OnceLock<Vec<DefaultSource>> = OnceLock::new();
    SOURCES.get_or_init(|| {
        SourceKind::all()
            .map(|kind| {
                let name = SourceName::parse(kind.as_str())
                    .unwrap_or_else(|e| panic!("a tool's name is a source name: {e}"));
                let settings: SourceSettings = serde_json::from_str("{}")
                    .unwrap_or_else(|e| panic!("empty source settings must load: {e}"));
                let mapping = CompiledMapping::compile(&settings.mapping, &name, kind)
                    .unwrap_or_else(|e| panic!("the default mapping must compile: {e}"));
                DefaultSource {
                    name,
                    kind,
                    settings,
                    mapping,
                }
            })
            .collect()
    })
}

/// Builds the plan of `submission` and checks what every plan promises: it serializes, and its
/// contact key can be read. Only a submission without email or phone may be refused.
pub fn check_plan(mapping: &CompiledMapping, submission: &Submission) {
    match build_plan(mapping, submission) {
        Ok(plan) => {
            let _ = plan.contact_key();
            if let Err(e) = serde_json::to_string(&plan) {
                panic!("a plan must serialize: {e}");
            }
        }
        Err(MappingError::NoContact { .. }) => {}
    }
    if let Err(e) = serde_json::to_string(submission) {
        panic!("a submission must serialize: {e}");
    }
}

/// The submissions of the fixtures in tests/fixtures (one per delivery, read by its tool):
/// inputs for the mapping targets, whose own input is the configuration.
pub fn fixture_submissions() -> &'static [Submission] {
    static SUBMISSIONS: OnceLock<Vec<Submission>> = OnceLock::new();
    SUBMISSIONS.get_or_init(|| {
        FIXTURES
            .iter()
            .map(|(kind, content_type, body)| {
                let source = default_sources()
                    .iter()
                    .find(|s| s.kind.as_str() == *kind)
                    .unwrap_or_else(|| panic!("no tool `{kind}`"));
                normalize(
                    &source.name,
                    source.kind,
                    &source.settings.read_options(),
                    &server_limits(),
                    Some(content_type),
                    &Bytes::from_static(body),
                    RECEIVED_AT,
                )
                .unwrap_or_else(|e| panic!("fixture of {kind} must normalize: {e}"))
            })
            .collect()
    })
}

/// (tool, Content-Type, body) of a few fixtures, one or more per tool.
const FIXTURES: &[(&str, &str, &[u8])] = &[
    (
        "jotform",
        "multipart/form-data; boundary=------------------------14248c4431cd1012",
        include_bytes!("../../tests/fixtures/jotform/2022-04-19_date-and-matrix.multipart"),
    ),
    (
        "jivochat",
        "application/json",
        include_bytes!("../../tests/fixtures/jivochat/offline_message.json"),
    ),
    (
        "jivochat",
        "application/json",
        include_bytes!("../../tests/fixtures/jivochat/call_event.json"),
    ),
    (
        "dripjobs",
        "application/json",
        include_bytes!("../../tests/fixtures/dripjobs/zapier_proposal-accepted.ASSEMBLED.json"),
    ),
    (
        "powr",
        "application/json",
        include_bytes!("../../tests/fixtures/powr/zapier_contact-form.SYNTHETIC.json"),
    ),
    (
        "123formbuilder",
        "application/x-www-form-urlencoded",
        include_bytes!("../../tests/fixtures/123formbuilder/webhook_contact.SYNTHETIC.urlencoded"),
    ),
    (
        "typeform",
        "application/json",
        include_bytes!("../../tests/fixtures/typeform/form_response_lead-form-utm.ASSEMBLED.json"),
    ),
];
