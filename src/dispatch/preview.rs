//! `formbridge map`: normalize a saved delivery and build its plan without touching GHL, as
//! pretty JSON.

use std::fmt;
use std::path::Path;

use bytes::Bytes;
use serde::Serialize;
use time::OffsetDateTime;

use crate::body::BodyLimits;
use crate::domain::plan::Plan;
use crate::mapping::build_plan;
use crate::runtime::SourceRuntime;
use crate::sources::{normalize, NormalizeError, SourceKind};
use crate::submission::Submission;

/// What a delivery turns into: the normalized submission and its plan (or why there is none).
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    /// The source name.
    pub source: String,
    /// The normalizer used.
    pub kind: SourceKind,
    /// The normalized submission.
    pub submission: Submission,
    /// The plan, when the mapping succeeds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// The contact key the dispatcher would serialize on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_key: Option<String>,
    /// Why the mapping failed (the event would be dead-lettered with this reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapping_error: Option<String>,
}

/// Why no preview could be made.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// The delivery cannot be normalized.
    #[error(transparent)]
    Normalize(#[from] NormalizeError),
}

impl Preview {
    /// Pretty-printed JSON.
    pub fn to_pretty_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

impl fmt::Display for Preview {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_pretty_json())
    }
}

/// Normalizes `body` as `source` reads it (refused over `limits`, as the server would) and
/// builds its plan with the source's compiled mapping. A mapping error is reported in
/// [`Preview::mapping_error`] so the submission can still be inspected.
pub fn preview(
    source: &SourceRuntime,
    limits: &BodyLimits,
    content_type: Option<&str>,
    body: &Bytes,
    received_at: OffsetDateTime,
) -> Result<Preview, PreviewError> {
    let submission = normalize(
        &source.name,
        source.kind,
        &source.read_options(),
        limits,
        content_type,
        body,
        received_at,
    )?;
    let (plan, mapping_error) = match build_plan(&source.mapping, &submission) {
        Ok(plan) => (Some(plan), None),
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(Preview {
        source: source.name.to_string(),
        kind: source.kind,
        contact_key: plan.as_ref().and_then(Plan::contact_key),
        submission,
        plan,
        mapping_error,
    })
}

/// The content type of a saved delivery when `--content-type` is not given: the first line of
/// a sibling `<file>.meta` (`Content-Type: …`, as in the fixtures), else sniffed from the body
/// (`--boundary` → multipart with that boundary, `{`/`[` → JSON, else urlencoded).
pub fn content_type_for_file(path: &Path, body: &[u8]) -> Option<String> {
    let stem = path.with_extension("");
    for meta in [path.with_extension("meta"), stem.with_extension("meta")] {
        if let Ok(text) = std::fs::read_to_string(&meta) {
            if let Some(ct) = text
                .lines()
                .next()
                .and_then(|l| l.split_once(':'))
                .filter(|(k, _)| k.trim().eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| v.trim().to_owned())
            {
                return Some(ct);
            }
        }
    }
    sniff_content_type(body)
}

/// Guesses a content type from the body alone.
pub fn sniff_content_type(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
    let trimmed = text.trim_start();
    if let Some(rest) = trimmed.strip_prefix("--") {
        let boundary = rest.lines().next().unwrap_or_default().trim();
        if !boundary.is_empty() {
            return Some(format!("multipart/form-data; boundary={boundary}"));
        }
    }
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return Some("application/json".to_owned());
    }
    if trimmed.contains('=') {
        return Some("application/x-www-form-urlencoded".to_owned());
    }
    None
}
