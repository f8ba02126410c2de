//! Entry point of normalization: a stored raw delivery → a [`Submission`], read by the source's tool,
//! with `mapping.fields` selectors and phone/email parsing applied.

use std::collections::BTreeMap;

use bytes::Bytes;
use time::OffsetDateTime;

use super::detect::{Confidence, ContactDraft, Role};
use super::registry::SourceKind;
use super::tool::{NormalizeError, ReadInput};
use crate::body::{self, BodyLimits, ParsedBody};
use crate::domain::SourceName;
use crate::submission::{country_id, ContactField, Submission};

/// How one source's deliveries are read, from its settings.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions<'a> {
    /// Country for phone numbers without `+country` (default `US`).
    pub default_country: Option<&'a str>,
    /// Generic tools: key or dot path of the submission id.
    pub submission_id: Option<&'a str>,
    /// The source's `dedupe_field`, a fallback for the submission id.
    pub dedupe_field: Option<&'a str>,
    /// Generic tools: strip HTML from text values (default per tool).
    pub strip_html: Option<bool>,
    /// `mapping.fields`: the answer each contact field comes from.
    pub fields: &'a BTreeMap<ContactField, String>,
}

/// Normalizes one stored delivery of `source` (read as `kind`) received at `received_at`,
/// refusing a body over `limits`. CPU-bound and linear in the body: async callers run it on a
/// blocking thread.
pub fn normalize(
    source: &SourceName,
    kind: SourceKind,
    options: &ReadOptions<'_>,
    limits: &BodyLimits,
    content_type: Option<&str>,
    body: &Bytes,
    received_at: OffsetDateTime,
) -> Result<Submission, NormalizeError> {
    let parsed = body::parse(kind.body_content_type(content_type), body, limits)?;
    normalize_parsed(source, kind, options, &parsed, body, received_at)
}

/// Like [`normalize`] for a body already parsed by [`body::parse`]; `raw` is the same body's
/// bytes (JSON is re-read from them to keep key order).
pub fn normalize_parsed(
    _source: &SourceName,
    kind: SourceKind,
    options: &ReadOptions<'_>,
    parsed: &ParsedBody,
    raw: &Bytes,
    received_at: OffsetDateTime,
) -> Result<Submission, NormalizeError> {
    let country = options.default_country.unwrap_or("US");
    country_id(country).map_err(|e| NormalizeError::BadCountry(e.to_string()))?;
    let (mut sub, mut draft) = kind.read(&ReadInput {
        parsed,
        raw,
        received_at,
        id_path: options.submission_id,
        dedupe_field: options.dedupe_field,
        strip_html: options.strip_html,
    })?;
    apply_selectors(&mut sub, &mut draft, options.fields);
    draft.finish(&mut sub, country);
    Ok(sub)
}

/// `mapping.fields`: the selected answers win over detection; a selector that matches no
/// answer is reported as a problem.
fn apply_selectors(
    sub: &mut Submission,
    draft: &mut ContactDraft,
    fields: &BTreeMap<ContactField, String>,
) {
    let mut missing = Vec::new();
    for (field, selector) in fields {
        let Some(role) = role_of(*field) else {
            continue;
        };
        match sub.answer(selector) {
            Some(a) => {
                let value = a.value.display();
                draft.offer(role, Confidence::Configured, &a.key.clone(), &value);
            }
            None => missing.push((*field, selector.clone())),
        }
    }
    for (field, selector) in missing {
        sub.problem(
            format!("mapping.fields.{field}"),
            format!("no answer has the key, label or path `{selector}`"),
        );
    }
}

/// The detection role a selected contact field fills (none for the time zone).
fn role_of(field: ContactField) -> Option<Role> {
    Some(match field {
        ContactField::Email => Role::Email,
        ContactField::Phone => Role::Phone,
        ContactField::FirstName => Role::FirstName,
        ContactField::LastName => Role::LastName,
        ContactField::Name => Role::FullName,
        ContactField::CompanyName => Role::Company,
        ContactField::Address1 => Role::Address1,
        ContactField::City => Role::City,
        ContactField::State => Role::State,
        ContactField::PostalCode => Role::PostalCode,
        ContactField::Country => Role::Country,
        ContactField::Website => Role::Website,
        ContactField::Timezone => return None,
    })
}
