//! The keys a prepared event can be found by in the admin's "find a lead": its parsed contact's
//! email and phone, its tool submission id, and every answer value that parses as an email or
//! a phone (so a lead whose phone field the mapping missed is still found by that phone).
//! Computed here, when the event is prepared, never on the ingest path.

use crate::store::LeadKey;
use crate::submission::{Email, Phone, Submission};

/// Values longer than this are not looked at (no email or phone is that long).
const LONGEST: usize = 254;

/// The keys of a normalized submission; phones without `+country` are read as numbers of
/// `default_country` (the source's `mapping.default_country`).
pub fn lead_keys(submission: &Submission, default_country: &str) -> Vec<LeadKey> {
    let mut keys = Vec::new();
    if let Some(email) = &submission.contact.email {
        keys.push(LeadKey::email(email.as_str()));
    }
    if let Some(phone) = &submission.contact.phone {
        keys.push(LeadKey::phone(phone.as_str()));
    }
    if let Some(id) = submission
        .submission_id
        .as_deref()
        .filter(|id| !id.trim().is_empty())
    {
        keys.push(LeadKey::submission_id(id));
    }
    for answer in &submission.answers {
        for value in answer_texts(&answer.value) {
            keys.extend(key_of_value(value, default_country));
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// The key of a value typed by someone looking for a lead: an email, a phone in any format, or
/// else a submission id. A value that could be a phone or a submission id gives both.
pub fn keys_of_query(query: &str, default_country: &str) -> Vec<LeadKey> {
    let query = query.trim();
    if query.is_empty() {
        return Vec::new();
    }
    if query.contains('@') {
        return Email::parse(query)
            .map(|e| vec![LeadKey::email(e.as_str())])
            .unwrap_or_else(|_| vec![LeadKey::email(&query.to_lowercase())]);
    }
    let mut keys: Vec<LeadKey> = key_of_value(query, default_country).into_iter().collect();
    keys.push(LeadKey::submission_id(query));
    keys
}

/// The email or phone key of one answer value, if it is one.
fn key_of_value(value: &str, default_country: &str) -> Option<LeadKey> {
    let value = value.trim();
    if value.is_empty() || value.len() > LONGEST {
        return None;
    }
    if value.contains('@') {
        return Email::parse(value).ok().map(|e| LeadKey::email(e.as_str()));
    }
    // A phone has 7 to 15 digits and little else; anything wordier is not parsed.
    let digits = value.chars().filter(char::is_ascii_digit).count();
    let other = value
        .chars()
        .filter(|c| !c.is_ascii_digit() && !" +-().".contains(*c))
        .count();
    if !(7..=17).contains(&digits) || other > 4 {
        return None;
    }
    Phone::parse(value, default_country)
        .ok()
        .map(|p| LeadKey::phone(p.as_str()))
}

/// The texts of an answer value.
fn answer_texts(value: &crate::submission::AnswerValue) -> Vec<&str> {
    use crate::submission::AnswerValue;
    match value {
        AnswerValue::Text(s) => vec![s.as_str()],
        AnswerValue::List(items) | AnswerValue::Files(items) => {
            items.iter().map(String::as_str).collect()
        }
        AnswerValue::Table(rows) => rows.iter().flatten().map(String::as_str).collect(),
        AnswerValue::Fields(parts) => parts.iter().map(|p| p.value.as_str()).collect(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_phone_in_any_format_is_one_key_and_ids_are_kept() {
        let a = keys_of_query("(415) 555-2671", "US");
        let b = keys_of_query("+1 415 555 2671", "US");
        assert!(a.contains(&LeadKey::phone("+14155552671")));
        assert!(b.contains(&LeadKey::phone("+14155552671")));
        assert_eq!(
            keys_of_query("Jane@Example.COM ", "US"),
            vec![LeadKey::email("jane@example.com")]
        );
        assert_eq!(
            keys_of_query("sub-123", "US"),
            vec![LeadKey::submission_id("sub-123")]
        );
        assert!(keys_of_query("  ", "US").is_empty());
    }
}
