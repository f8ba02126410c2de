//! Typeform, the tool: its `form_response` webhook (answers keyed by field `ref`, labelled with
//! the definition's titles, typed by answer type; hidden fields; `token` as submission id and
//! `event_id` for deduplication). Signed with `Typeform-Signature: sha256=<base64 HMAC>`, the
//! HMAC auth of `[sources.typeform]` in `config/default.toml`.

use std::collections::HashMap;

use axum::http::HeaderMap;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::detect::{humanize, normalize_key, role_for_key, Confidence, ContactDraft, Role};
use super::tool::{json_text as text, NormalizeError, ReadInput, Tool};
use crate::body::ParsedBody;
use crate::submission::{Answer, AnswerValue, NamedValue, Submission};

const TOOL: &str = "Typeform";

/// Typeform webhooks (`event_type = "form_response"`, JSON).
pub struct Typeform;

impl Tool for Typeform {
    fn name(&self) -> &'static str {
        "typeform"
    }

    fn title(&self) -> &'static str {
        TOOL
    }

    /// `event_id`: one per delivery, the same on Typeform's retries.
    fn delivery_id(&self, parsed: &ParsedBody, _headers: &HeaderMap) -> Option<String> {
        parsed.field("event_id").map(|id| format!("event_id:{id}"))
    }

    fn read(&self, input: &ReadInput<'_>) -> Result<(Submission, ContactDraft), NormalizeError> {
        read(input.parsed, input.received_at)
    }
}

/// What the form definition says about one field.
struct FieldInfo<'a> {
    title: Option<&'a str>,
    field_type: Option<&'a str>,
}

/// Reads a `form_response` delivery.
pub fn read(
    body: &ParsedBody,
    received_at: OffsetDateTime,
) -> Result<(Submission, ContactDraft), NormalizeError> {
    let ParsedBody::Json(root) = body else {
        return Err(NormalizeError::ExpectedJson { tool: TOOL });
    };
    let Value::Object(root) = root else {
        return Err(NormalizeError::NotAnObject { tool: TOOL });
    };
    let response = root.get("form_response").and_then(Value::as_object).ok_or(
        NormalizeError::MissingField {
            tool: TOOL,
            field: "form_response",
        },
    )?;
    let mut sub = Submission::new(received_at);
    sub.submission_id = text(response.get("token"));
    sub.extras.event = text(root.get("event_type"));
    sub.extras.form_id = text(response.get("form_id"));
    let definition = response.get("definition").and_then(Value::as_object);
    sub.extras.form_title = definition.and_then(|d| text(d.get("title")));
    for (name, value) in [
        ("event_id", root.get("event_id")),
        ("landed_at", response.get("landed_at")),
        ("submitted_at", response.get("submitted_at")),
        (
            "score",
            response.get("calculated").and_then(|c| c.get("score")),
        ),
    ] {
        if let Some(v) = text(value) {
            sub.extras.other.insert(name.to_owned(), v);
        }
    }

    let fields = field_infos(definition);
    let mut draft = ContactDraft::default();
    if let Some(Value::Array(answers)) = response.get("answers") {
        for a in answers {
            if let Some(answer) = read_answer(a, &fields, &mut draft) {
                sub.answers.push(answer);
            }
        }
    }
    if let Some(Value::Object(hidden)) = response.get("hidden") {
        read_hidden(hidden, &mut sub, &mut draft);
    }
    Ok((sub, draft))
}

/// The definition's fields by id.
fn field_infos(definition: Option<&Map<String, Value>>) -> HashMap<&str, FieldInfo<'_>> {
    let mut out = HashMap::new();
    if let Some(Value::Array(fields)) = definition.and_then(|d| d.get("fields")) {
        for f in fields {
            if let Some(id) = f.get("id").and_then(Value::as_str) {
                out.entry(id).or_insert(FieldInfo {
                    title: f.get("title").and_then(Value::as_str),
                    field_type: f.get("type").and_then(Value::as_str),
                });
            }
        }
    }
    out
}

/// One answer: keyed by its field's `ref` (else id), labelled with the field's title, its value
/// typed by the answer's `type`; offered as a contact field by type, ref or title.
fn read_answer(
    a: &Value,
    fields: &HashMap<&str, FieldInfo<'_>>,
    draft: &mut ContactDraft,
) -> Option<Answer> {
    let answer_type = a.get("type").and_then(Value::as_str)?;
    let field = a.get("field");
    let id = field.and_then(|f| f.get("id")).and_then(Value::as_str);
    let key = field
        .and_then(|f| f.get("ref"))
        .and_then(Value::as_str)
        .or(id)?
        .to_owned();
    let info = id.and_then(|id| fields.get(id));
    let label = info
        .and_then(|i| i.title)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| humanize(&key));
    let value = typed_value(answer_type, a.get(answer_type)?)?;

    let shown = value.display();
    match answer_type {
        "email" => draft.offer(Role::Email, Confidence::Key, &key, &shown),
        "phone_number" => draft.offer(Role::Phone, Confidence::Key, &key, &shown),
        "text" => {
            if let Some(role) = role_for_key(&key, &[], &[]) {
                draft.offer(role, Confidence::Key, &key, &shown);
            } else if let Some(role) = role_for_title(&label) {
                draft.offer(role, Confidence::Shape, &key, &shown);
            }
        }
        _ => {}
    }
    // A field typed `email` or `phone_number` in the definition but answered as text.
    if answer_type == "text" {
        match info.and_then(|i| i.field_type) {
            Some("email") => draft.offer(Role::Email, Confidence::Key, &key, &shown),
            Some("phone_number") => draft.offer(Role::Phone, Confidence::Key, &key, &shown),
            _ => {}
        }
    }
    Some(Answer { key, label, value })
}

/// The value under the answer's `type` key: choices → a list, a payment → its parts, a file →
/// its URL, a boolean → `Yes`/`No`, other scalars as text.
fn typed_value(answer_type: &str, v: &Value) -> Option<AnswerValue> {
    Some(match (answer_type, v) {
        ("choice", Value::Object(c)) => {
            AnswerValue::Text(text(c.get("label")).or_else(|| text(c.get("other")))?)
        }
        ("choices", Value::Object(c)) => {
            let mut items: Vec<String> = match c.get("labels") {
                Some(Value::Array(labels)) => labels.iter().filter_map(|l| text(Some(l))).collect(),
                _ => Vec::new(),
            };
            items.extend(text(c.get("other")));
            AnswerValue::List(items)
        }
        ("payment", Value::Object(p)) => AnswerValue::Fields(
            ["amount", "last4", "name"]
                .iter()
                .filter_map(|name| {
                    Some(NamedValue {
                        name: (*name).to_owned(),
                        value: text(p.get(*name))?,
                    })
                })
                .collect(),
        ),
        ("file_url", v) => AnswerValue::Files(vec![text(Some(v))?]),
        ("boolean", Value::Bool(b)) => AnswerValue::Text(if *b { "Yes" } else { "No" }.to_owned()),
        (_, v) => AnswerValue::Text(text(Some(v))?),
    })
}

/// Hidden fields are answers (`hidden.<name>`); `utm_*` ones are also the submission's UTM.
fn read_hidden(hidden: &Map<String, Value>, sub: &mut Submission, draft: &mut ContactDraft) {
    for (name, value) in hidden {
        let Some(value) = text(Some(value)) else {
            continue;
        };
        if let Some(utm) = normalize_key(name).strip_prefix("utm") {
            if !utm.is_empty() {
                sub.extras.utm.insert(utm.to_owned(), value.clone());
            }
        }
        let key = format!("hidden.{name}");
        if let Some(role) = role_for_key(name, &[], &[]) {
            draft.offer(role, Confidence::Shape, &key, &value);
        }
        sub.answers.push(Answer {
            key,
            label: humanize(name),
            value: AnswerValue::Text(value),
        });
    }
}

/// The contact field a question's title asks for ("What is your first name?" → first name).
fn role_for_title(title: &str) -> Option<Role> {
    let lower = title.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric() && c != '-')
        .filter(|w| !w.is_empty())
        .collect();
    let has = |w: &str| words.contains(&w);
    let has_pair = |a: &str, b: &str| words.windows(2).any(|p| p[0] == a && p[1] == b);
    Some(if has("email") || has("e-mail") {
        Role::Email
    } else if has("phone") || has("mobile") || has("telephone") {
        Role::Phone
    } else if has_pair("first", "name") || has("firstname") {
        Role::FirstName
    } else if has_pair("last", "name") || has("surname") || has("lastname") {
        Role::LastName
    } else if has("company") || has("organization") || has("organisation") {
        Role::Company
    } else if has("name") {
        Role::FullName
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_name_contact_fields() {
        assert_eq!(
            role_for_title("What is your first name?"),
            Some(Role::FirstName)
        );
        assert_eq!(role_for_title("And your last name?"), Some(Role::LastName));
        assert_eq!(role_for_title("Your name"), Some(Role::FullName));
        assert_eq!(role_for_title("Your E-mail, please"), Some(Role::Email));
        assert_eq!(role_for_title("Which company?"), Some(Role::Company));
        assert_eq!(role_for_title("Tell us about your city"), None);
        // "surname" names the last name; "nameless" is not a name.
        assert_eq!(role_for_title("Surname"), Some(Role::LastName));
        assert_eq!(role_for_title("A nameless question"), None);
    }

    #[test]
    fn values_are_typed_by_answer_type() {
        let v = |t: &str, json: &str| typed_value(t, &serde_json::from_str(json).unwrap());
        assert_eq!(
            v(
                "choices",
                r#"{"labels":["London","Sydney"],"other":"Oslo"}"#
            ),
            Some(AnswerValue::List(vec![
                "London".into(),
                "Sydney".into(),
                "Oslo".into()
            ]))
        );
        assert_eq!(
            v("choice", r#"{"label":"Barcelona"}"#),
            Some(AnswerValue::Text("Barcelona".into()))
        );
        assert_eq!(
            v("choice", r#"{"other":"Lisbon"}"#),
            Some(AnswerValue::Text("Lisbon".into()))
        );
        assert_eq!(v("boolean", "false"), Some(AnswerValue::Text("No".into())));
        assert_eq!(v("number", "42"), Some(AnswerValue::Text("42".into())));
        assert_eq!(
            v(
                "payment",
                r#"{"amount":"2.00","last4":"4242","name":"John Smith","success":true}"#
            )
            .map(|p| p.display()),
            Some("amount: 2.00, last4: 4242, name: John Smith".into())
        );
        assert_eq!(v("text", r#""  ""#), None);
    }
}
