//! For a new form: the fields seen in a source's recent deliveries (answer keys, labels, an
//! example value, how often each is filled) and a suggested `[sources.<name>.mapping.fields]`
//! for the contact fields, so a mapping is written from what the tool really sends.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::sources::detect::{role_for_key, Role};
use crate::submission::{ContactField, Email, Submission};

/// Longest example value shown, in characters.
const EXAMPLE_CHARS: usize = 80;
/// Most distinct labels kept per key.
const MAX_LABELS: usize = 3;

/// One answer key as seen across the deliveries.
#[derive(Debug, Clone, Serialize)]
pub struct FieldSeen {
    /// The tool's key (what `mapping.fields` and `{{answers.<key>}}` name).
    pub key: String,
    /// Its labels (usually one).
    pub labels: Vec<String>,
    /// The answer's type (`text`, `list`, `table`, `files`, `fields`).
    pub kind: String,
    /// In how many deliveries it was present and not blank.
    pub filled: usize,
    /// In how many deliveries it was present at all.
    pub present: usize,
    /// The latest non-blank value, shortened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
    /// The contact field it looks like, from its key, label or values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub looks_like: Option<ContactField>,
}

/// The fields of a source's deliveries.
#[derive(Debug, Clone, Serialize)]
pub struct FieldSurvey {
    pub source: String,
    /// Deliveries read.
    pub deliveries: usize,
    /// Deliveries that could not be read (not counted in `filled`).
    pub unreadable: usize,
    /// Every answer key, most often filled first.
    pub fields: Vec<FieldSeen>,
    /// The answer chosen for each contact field: the most often filled key that looks like it.
    pub suggested: BTreeMap<ContactField, String>,
    /// `suggested` as TOML to paste into the source's mapping.
    pub suggested_toml: String,
}

/// Surveys the submissions (newest first) of `source`; `unreadable` deliveries are counted.
pub fn survey(source: &str, submissions: &[Submission], unreadable: usize) -> FieldSurvey {
    let mut by_key: BTreeMap<String, FieldSeen> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for submission in submissions {
        for answer in &submission.answers {
            let seen = by_key.entry(answer.key.clone()).or_insert_with(|| {
                order.push(answer.key.clone());
                FieldSeen {
                    key: answer.key.clone(),
                    labels: Vec::new(),
                    kind: kind_name(&answer.value).to_owned(),
                    filled: 0,
                    present: 0,
                    example: None,
                    looks_like: None,
                }
            });
            seen.present += 1;
            if !seen.labels.contains(&answer.label) && seen.labels.len() < MAX_LABELS {
                seen.labels.push(answer.label.clone());
            }
            if answer.value.is_blank() {
                continue;
            }
            seen.filled += 1;
            let value = answer.value.display();
            if seen.example.is_none() {
                seen.example = Some(shorten(&value));
            }
            if seen.looks_like.is_none() {
                seen.looks_like = looks_like(&answer.key, &answer.label, &value);
            }
        }
    }
    let mut fields: Vec<FieldSeen> = order
        .into_iter()
        .filter_map(|k| by_key.remove(&k))
        .collect();
    // Most often filled first; ties keep the form's order.
    fields.sort_by_key(|f| std::cmp::Reverse(f.filled));
    let mut suggested = BTreeMap::new();
    for field in &fields {
        if let Some(contact) = field.looks_like {
            if field.filled > 0 {
                suggested
                    .entry(contact)
                    .or_insert_with(|| field.key.clone());
            }
        }
    }
    FieldSurvey {
        source: source.to_owned(),
        deliveries: submissions.len() + unreadable,
        unreadable,
        suggested_toml: suggested_toml(source, &suggested),
        fields,
        suggested,
    }
}

fn kind_name(value: &crate::submission::AnswerValue) -> &'static str {
    use crate::submission::AnswerValue;
    match value {
        AnswerValue::Text(_) => "text",
        AnswerValue::List(_) => "list",
        AnswerValue::Table(_) => "table",
        AnswerValue::Files(_) => "files",
        AnswerValue::Fields(_) => "fields",
    }
}

fn shorten(value: &str) -> String {
    if value.chars().count() <= EXAMPLE_CHARS {
        return value.to_owned();
    }
    let mut out: String = value.chars().take(EXAMPLE_CHARS - 1).collect();
    out.push('…');
    out
}

/// The contact field an answer looks like: its key or label as the normalizers read them, else
/// its value's shape (an email address, a phone number).
fn looks_like(key: &str, label: &str, value: &str) -> Option<ContactField> {
    let by_name = role_for_key(key, &[], &[]).or_else(|| role_for_key(label, &[], &[]));
    if let Some(role) = by_name {
        return contact_field(role);
    }
    let value = value.trim();
    if Email::parse(value).is_ok() {
        return Some(ContactField::Email);
    }
    let digits = value.chars().filter(char::is_ascii_digit).count();
    let phone_chars = value
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    if phone_chars && (7..=15).contains(&digits) {
        return Some(ContactField::Phone);
    }
    None
}

fn contact_field(role: Role) -> Option<ContactField> {
    Some(match role {
        Role::Email => ContactField::Email,
        Role::Phone => ContactField::Phone,
        Role::FirstName => ContactField::FirstName,
        Role::LastName => ContactField::LastName,
        Role::FullName => ContactField::Name,
        Role::Company => ContactField::CompanyName,
        Role::Address1 => ContactField::Address1,
        Role::Address2 => return None,
        Role::City => ContactField::City,
        Role::State => ContactField::State,
        Role::PostalCode => ContactField::PostalCode,
        Role::Country => ContactField::Country,
        Role::Website => ContactField::Website,
    })
}

fn suggested_toml(source: &str, suggested: &BTreeMap<ContactField, String>) -> String {
    let mut out = format!("[sources.{source}.mapping.fields]\n");
    for field in ContactField::ALL {
        if let Some(key) = suggested.get(&field) {
            out.push_str(&format!(
                "{} = {}\n",
                field.as_str(),
                toml::Value::String(key.clone())
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_phone_under_an_unusual_label_is_recognised_by_its_value() {
        assert_eq!(
            looks_like("best_number", "Best number to reach you", "(555) 010-2030"),
            Some(ContactField::Phone)
        );
        assert_eq!(
            looks_like("q4", "Contact", "ann@example.com"),
            Some(ContactField::Email)
        );
        assert_eq!(looks_like("q5_message", "Message", "Call me 2pm"), None);
    }

    #[test]
    fn the_suggestion_is_toml_the_mapping_reads() {
        let suggested = BTreeMap::from([
            (ContactField::Phone, "Best \"number\"".to_owned()),
            (ContactField::Email, "q4".to_owned()),
        ]);
        let text = suggested_toml("powr", &suggested);
        let config = crate::mapping::file::parse("powr", &text).unwrap();
        assert_eq!(config.fields, suggested);
    }
}
