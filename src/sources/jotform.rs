//! Jotform (and Jotform Enterprise) normalizer: envelope fields by name, answers from the
//! `rawRequest` JSON document (`q{N}_{slug}` keys), each Jotform encoding decoded to a typed
//! answer, contact roles from value shapes and slugs.

use std::collections::{BTreeMap, HashMap};

use axum::http::HeaderMap;
use time::OffsetDateTime;

use super::detect::{humanize, role_for_key, Confidence, ContactDraft, Role};
use super::generic::offer_lone_email;
use super::jotform_values::{decode, list_of, Decoded, Shape};
use super::ordered::OVal;
use super::tool::{NormalizeError, ReadInput, Tool};
use crate::body::ParsedBody;
use crate::submission::{Answer, AnswerValue, Page, Submission};

const TOOL: &str = "Jotform";

/// Jotform and Jotform Enterprise: a multipart envelope with a `rawRequest` JSON document.
pub struct Jotform;

impl Tool for Jotform {
    fn name(&self) -> &'static str {
        "jotform"
    }

    fn title(&self) -> &'static str {
        TOOL
    }

    fn delivery_id(&self, parsed: &ParsedBody, _headers: &HeaderMap) -> Option<String> {
        parsed
            .field("submissionID")
            .map(|v| format!("submissionID:{v}"))
    }

    fn read(&self, input: &ReadInput<'_>) -> Result<(Submission, ContactDraft), NormalizeError> {
        read(input.parsed, input.received_at)
    }

    /// Upload answers link to `https://www.jotform.com/uploads/<user>/<form>/<submission>/<name>`
    /// (every capture in tests/fixtures/jotform); the EU and HIPAA data centres serve theirs from
    /// their own subdomains, and `files.jotform.com` is where upload links are served from
    /// (redirect targets). Only the `www` host is seen in captures; the others are Jotform's own
    /// domains, listed so those accounts work without configuration. A Jotform Enterprise
    /// domain is added with `mapping.file_hosts`.
    fn file_hosts(&self) -> &'static [&'static str] {
        &[
            "www.jotform.com",
            "files.jotform.com",
            "eu.jotform.com",
            "eu-files.jotform.com",
            "hipaa.jotform.com",
            "hipaa-files.jotform.com",
        ]
    }
}

/// Most bytes scanned to find labels in `pretty` (its length × the answers looked up): each
/// lookup searches the whole text, so past this the labels come from the keys instead.
const PRETTY_SCAN_BUDGET: usize = 32 << 20;

/// rawRequest keys that are metadata, not answers.
const METADATA: &[&str] = &[
    "slug",
    "path",
    "jsExecutionTracker",
    "submitSource",
    "buildDate",
    "submitDate",
    "uploadServerUrl",
    "eventObserver",
    "event_id",
    "timeToSubmit",
    "validatedNewRequiredFieldIDs",
    "temp_upload",
    "file_server",
    "preview",
    "payment_total_checksum",
    "enterprise_server",
    "simple_spc",
    "embeddedForm",
    "formID",
    "submissionID",
    "ip",
];

/// Reads a Jotform delivery.
pub fn read(
    body: &ParsedBody,
    received_at: OffsetDateTime,
) -> Result<(Submission, ContactDraft), NormalizeError> {
    let field = |name: &str| body.field(name).filter(|v| !v.trim().is_empty());
    let raw = match body {
        ParsedBody::Json(v) => match v.get("rawRequest") {
            Some(serde_json::Value::String(s)) => parse_raw(s)?,
            Some(obj @ serde_json::Value::Object(_)) => parse_raw(&obj.to_string())?,
            _ => return Err(missing_raw()),
        },
        ParsedBody::Form(_) => parse_raw(&field("rawRequest").ok_or_else(missing_raw)?)?,
    };
    let OVal::Object(members) = &raw else {
        return Err(NormalizeError::BadJson {
            tool: TOOL,
            field: "rawRequest",
            reason: "not a JSON object".to_owned(),
        });
    };

    let mut sub = Submission::new(received_at);
    sub.submission_id = field("submissionID");
    sub.extras.form_id = field("formID");
    sub.extras.form_title = field("formTitle");
    sub.is_test = raw.str_at("preview").is_some_and(|p| p == "true");
    for key in ["enterprise_server", "event_id"] {
        if let Some(v) = raw.str_at(key).filter(|v| !v.is_empty()) {
            sub.extras.other.insert(key.to_owned(), v);
        }
    }
    if let Some(user) = field("username") {
        sub.extras.other.insert("username".to_owned(), user);
    }
    let pretty = field("pretty")
        .filter(|p| p.len().saturating_mul(members.len()) <= PRETTY_SCAN_BUDGET)
        .unwrap_or_default();

    // Upload questions: temp_upload.q9_filesRelated → bare key "filesRelated" holds the URLs.
    let mut upload_keys: BTreeMap<String, String> = BTreeMap::new();
    if let Some(OVal::Object(uploads)) = raw.get("temp_upload") {
        for (qkey, _) in uploads {
            if let Some((_, slug)) = split_qkey(qkey) {
                upload_keys.insert(slug.to_owned(), qkey.clone());
            }
        }
    }

    let mut draft = ContactDraft::default();
    // Where each answer key is in `sub.answers`.
    let mut positions: HashMap<String, usize> = HashMap::new();
    for (key, value) in members {
        if METADATA.contains(&key.as_str()) {
            continue;
        }
        if let Some((qid, slug)) = split_qkey(key) {
            let slug_base = slug
                .strip_suffix(qid)
                .filter(|s| !s.is_empty())
                .unwrap_or(slug);
            let decoded = decode(value, upload_keys.contains_key(slug));
            let label = pretty_label(&pretty, slug_base, &decoded.pretty)
                .unwrap_or_else(|| humanize(slug_base));
            offer_roles(&mut draft, key, slug_base, &decoded);
            positions.entry(key.clone()).or_insert(sub.answers.len());
            sub.answers.push(Answer {
                key: key.clone(),
                label,
                value: decoded.value,
            });
        } else if let Some(qkey) = upload_keys.get(key.as_str()) {
            // Bare upload key: the URLs of question `qkey`.
            let files = AnswerValue::Files(list_of(value));
            match positions.get(qkey).and_then(|&i| sub.answers.get_mut(i)) {
                Some(a) => a.value = files,
                None => {
                    positions.insert(qkey.clone(), sub.answers.len());
                    sub.answers.push(Answer {
                        key: qkey.clone(),
                        label: humanize(key),
                        value: files,
                    });
                }
            }
        } else if let OVal::Array(items) = value {
            // A bare-name array without temp_upload: uploaded file URLs.
            if items.iter().all(OVal::is_scalar) {
                positions.entry(key.clone()).or_insert(sub.answers.len());
                sub.answers.push(Answer {
                    key: key.clone(),
                    label: humanize(key),
                    value: AnswerValue::Files(list_of(value)),
                });
            }
        }
    }
    // Upload questions seen only in temp_upload (no URL array): keep the file names.
    if let Some(OVal::Object(uploads)) = raw.get("temp_upload") {
        for (qkey, names) in uploads {
            if positions.contains_key(qkey) {
                continue;
            }
            let files = list_of(names)
                .into_iter()
                .map(|n| n.split('#').next().unwrap_or_default().to_owned())
                .collect();
            let slug = split_qkey(qkey).map(|(_, s)| s).unwrap_or(qkey);
            positions.insert(qkey.clone(), sub.answers.len());
            sub.answers.push(Answer {
                key: qkey.clone(),
                label: humanize(slug),
                value: AnswerValue::Files(files),
            });
        }
    }
    if let Some(url) = field("referer").or_else(|| raw.str_at("referer")) {
        sub.extras.page = Some(Page { url, title: None });
    }
    if !draft.has(Role::Email) {
        offer_lone_email(&sub.answers, &mut draft);
    }
    Ok((sub, draft))
}

fn missing_raw() -> NormalizeError {
    NormalizeError::MissingField {
        tool: TOOL,
        field: "rawRequest",
    }
}

fn parse_raw(text: &str) -> Result<OVal, NormalizeError> {
    OVal::parse(text).map_err(|e| NormalizeError::BadJson {
        tool: TOOL,
        field: "rawRequest",
        reason: e.to_string(),
    })
}

/// `q3_studentsName` → ("3", "studentsName").
fn split_qkey(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix('q')?;
    let (n, slug) = rest.split_once('_')?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !slug.is_empty())
        .then_some((n, slug))
}

fn offer_roles(draft: &mut ContactDraft, key: &str, slug: &str, d: &Decoded) {
    match &d.shape {
        Shape::Name { first, last } => {
            draft.offer(Role::FirstName, Confidence::Key, key, first);
            draft.offer(Role::LastName, Confidence::Key, key, last);
        }
        Shape::Phone(full, country) => {
            draft.offer(Role::Phone, Confidence::Key, key, full);
            if let Some(c) = country {
                draft.phone_country(c);
            }
        }
        Shape::Address(parts) => {
            for (role, value) in parts {
                draft.offer(*role, Confidence::Key, key, value);
            }
        }
        Shape::None => {
            if let (Some(role), AnswerValue::Text(t)) = (role_for_key(slug, &[], &[]), &d.value) {
                draft.offer(role, Confidence::Key, key, t);
            }
        }
    }
}

/// The label `pretty` gives this answer, used only when it is unambiguous: the value occurs
/// exactly once as `:value` ending a `Label:value` pair, and the label found starts with the
/// words of the slug.
fn pretty_label(pretty: &str, slug: &str, value: &Option<String>) -> Option<String> {
    let value = value.as_deref().filter(|v| !v.trim().is_empty())?;
    let needle = format!(":{value}");
    let hits: Vec<usize> = pretty
        .match_indices(&needle)
        .map(|(i, _)| i)
        .filter(|i| {
            let end = i + needle.len();
            end == pretty.len() || pretty[end..].starts_with(", ")
        })
        .collect();
    let [colon] = hits.as_slice() else {
        return None;
    };
    let before = &pretty[..*colon];
    let start = before.rfind(", ").map(|i| i + 2).unwrap_or(0);
    let label = before[start..].trim();
    let norm = |s: &str| super::detect::normalize_key(s);
    let ok = !label.is_empty() && !label.contains(':') && norm(label).starts_with(&norm(slug));
    ok.then(|| label.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qkeys() {
        assert_eq!(split_qkey("q3_studentsName"), Some(("3", "studentsName")));
        assert_eq!(split_qkey("q22_coachName22"), Some(("22", "coachName22")));
        assert_eq!(split_qkey("quiz_x"), None);
        assert_eq!(split_qkey("filesRelated"), None);
    }

    #[test]
    fn pretty_labels_only_when_unambiguous() {
        let p = "How often do you use the application?:Daily, Score:9, Other:9";
        assert_eq!(
            pretty_label(p, "howOften", &Some("Daily".into())).as_deref(),
            Some("How often do you use the application?")
        );
        assert_eq!(pretty_label(p, "score", &Some("9".into())), None);
        let p = "Key1 with colon: and comma, end:Value1 with colon: and comma, end, X:y";
        assert_eq!(
            pretty_label(
                p,
                "nameHehe",
                &Some("Value1 with colon: and comma, end".into())
            ),
            None
        );
    }
}
