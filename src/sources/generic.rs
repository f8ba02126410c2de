//! The generic adapter: flattens any JSON, urlencoded or multipart body into `path → value`
//! answers and detects contact fields by key names (with a tool's [`Preset`]) and value shape.
//! Each preset (DripJobs, POWR, 123FormBuilder, generic) is a [`Tool`] through it.

use std::collections::HashMap;

use time::OffsetDateTime;

use super::detect::{humanize, normalize_key, role_for_key, Confidence, ContactDraft, Role};
use super::ordered::OVal;
use super::presets::{strip_html, Preset};
use super::tool::{NormalizeError, ReadInput, Tool};
use crate::body::{FormField, ParsedBody};
use crate::submission::{Answer, AnswerValue, Email, Submission};

/// A body as the generic adapter reads it.
#[derive(Debug, Clone)]
pub enum GenericInput {
    /// A JSON document, keys in document order.
    Json(OVal),
    /// Form fields in order.
    Form(Vec<FormField>),
}

/// How to read one source.
#[derive(Debug, Clone)]
pub struct GenericOptions<'a> {
    /// The tool's preset.
    pub preset: &'a Preset,
    /// Configured key or dot path of the submission id (`mapping.submission_id`).
    pub id_path: Option<&'a str>,
    /// The source's `dedupe_field`, a fallback for the submission id.
    pub dedupe_field: Option<&'a str>,
    /// Strip HTML from text values.
    pub strip_html: bool,
}

/// A tool read by the generic adapter with its preset.
impl Tool for Preset {
    fn name(&self) -> &'static str {
        self.name
    }

    fn title(&self) -> &'static str {
        self.title
    }

    fn named_after_source(&self) -> bool {
        self.named_after_source
    }

    fn read(&self, input: &ReadInput<'_>) -> Result<(Submission, ContactDraft), NormalizeError> {
        let body = match input.parsed {
            ParsedBody::Json(v) => GenericInput::Json(
                serde_json::from_slice::<OVal>(input.raw)
                    .unwrap_or_else(|_| OVal::parse(&v.to_string()).unwrap_or(OVal::Null)),
            ),
            ParsedBody::Form(fields) => GenericInput::Form(fields.clone()),
        };
        let opts = GenericOptions {
            preset: self,
            id_path: input.id_path,
            dedupe_field: input.dedupe_field,
            strip_html: input.strip_html.unwrap_or(self.strip_html),
        };
        Ok(read(&body, input.received_at, &opts))
    }

    fn generic_keys(&self) -> bool {
        true
    }

    fn default_references(&self) -> &'static [&'static str] {
        self.references
    }
}

/// Reads a generic body into a submission and contact candidates.
pub fn read(
    input: &GenericInput,
    received_at: OffsetDateTime,
    opts: &GenericOptions<'_>,
) -> (Submission, ContactDraft) {
    let mut sub = Submission::new(received_at);
    let mut answers = Vec::new();
    match input {
        GenericInput::Json(OVal::Object(_) | OVal::Array(_)) => {
            if let GenericInput::Json(v) = input {
                flatten(v, "", &mut answers);
            }
        }
        GenericInput::Json(other) => answers.push(answer("value", text(other.to_text()))),
        GenericInput::Form(fields) => answers = form_answers(fields),
    }
    if opts.strip_html {
        for a in &mut answers {
            match &mut a.value {
                AnswerValue::Text(t) => *t = strip_html(t),
                AnswerValue::List(items) => {
                    for i in items.iter_mut() {
                        *i = strip_html(i);
                    }
                }
                _ => {}
            }
        }
    }
    let index = AnswerIndex::new(&answers);
    sub.submission_id = find_id(&answers, &index, opts);
    sub.extras.event = opts.preset.event_keys.iter().find_map(|k| {
        index
            .by_normalized_key(&answers, k)
            .map(|a| a.value.display())
            .filter(|s| !s.trim().is_empty())
    });
    let mut draft = ContactDraft::default();
    for a in &answers {
        if let Some(utm) = normalize_key(&a.key).strip_prefix("utm") {
            if !utm.is_empty() {
                sub.extras.utm.insert(utm.to_owned(), a.value.display());
            }
        }
        if let Some(role) = role_for_key(&a.key, opts.preset.aliases, opts.preset.not_contact) {
            let value = match &a.value {
                AnswerValue::List(items) if role != Role::Address1 => {
                    items.first().cloned().unwrap_or_default()
                }
                v => v.display(),
            };
            draft.offer(role, Confidence::Key, &a.key, &value);
        }
    }
    if !draft.has(Role::Email) {
        offer_lone_email(&answers, &mut draft);
    }
    sub.answers = answers;
    (sub, draft)
}

/// Offers the only email-looking text value, if there is exactly one.
pub fn offer_lone_email(answers: &[Answer], draft: &mut ContactDraft) {
    let emails: Vec<&Answer> = answers
        .iter()
        .filter(|a| matches!(&a.value, AnswerValue::Text(t) if Email::looks_like(t)))
        .collect();
    if let [only] = emails.as_slice() {
        draft.offer(
            Role::Email,
            Confidence::Shape,
            &only.key,
            &only.value.display(),
        );
    }
}

/// The first answer of each key and of each normalized key, so lookups by key cost one hash
/// instead of a walk over every answer.
struct AnswerIndex {
    by_key: HashMap<String, usize>,
    by_normalized: HashMap<String, usize>,
}

impl AnswerIndex {
    fn new(answers: &[Answer]) -> Self {
        let mut by_key = HashMap::with_capacity(answers.len());
        let mut by_normalized = HashMap::with_capacity(answers.len());
        for (i, a) in answers.iter().enumerate() {
            by_key.entry(a.key.clone()).or_insert(i);
            by_normalized.entry(normalize_key(&a.key)).or_insert(i);
        }
        Self {
            by_key,
            by_normalized,
        }
    }

    /// The first answer whose normalized key equals `key`'s.
    fn by_normalized_key<'a>(&self, answers: &'a [Answer], key: &str) -> Option<&'a Answer> {
        self.by_normalized
            .get(&normalize_key(key))
            .and_then(|&i| answers.get(i))
    }

    /// The first answer with exactly this key, else with the same normalized key.
    fn get<'a>(&self, answers: &'a [Answer], key: &str) -> Option<&'a Answer> {
        self.by_key
            .get(key)
            .and_then(|&i| answers.get(i))
            .or_else(|| self.by_normalized_key(answers, key))
    }
}

fn find_id(answers: &[Answer], index: &AnswerIndex, opts: &GenericOptions<'_>) -> Option<String> {
    let by_key = |k: &str| {
        index
            .get(answers, k)
            .map(|a| a.value.display().trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    if let Some(path) = opts.id_path {
        return by_key(path);
    }
    opts.preset
        .id_keys
        .iter()
        .find_map(|k| by_key(k))
        .or_else(|| opts.dedupe_field.and_then(by_key))
}

fn text(s: String) -> AnswerValue {
    AnswerValue::Text(s)
}

fn answer(key: &str, value: AnswerValue) -> Answer {
    Answer {
        key: key.to_owned(),
        label: label_for(key),
        value: trimmed(value),
    }
}

/// Text and list choices without surrounding whitespace (file names as sent).
fn trimmed(value: AnswerValue) -> AnswerValue {
    match value {
        AnswerValue::Text(t) => AnswerValue::Text(t.trim().to_owned()),
        AnswerValue::List(items) => {
            AnswerValue::List(items.into_iter().map(|i| i.trim().to_owned()).collect())
        }
        other => other,
    }
}

/// Keys that already read like labels (`Your Name`, `E-mail`, `How did you hear about us?`)
/// are kept; code-style keys (`customer_email`, `customer.email`) are humanized.
fn label_for(key: &str) -> String {
    let key = key.trim();
    let label_like = key.contains(' ')
        || (key.starts_with(|c: char| c.is_uppercase()) && !key.contains(['_', '.']));
    if label_like {
        key.to_owned()
    } else {
        humanize(key)
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Flattens JSON into answers: objects by dot path, arrays of scalars as one list answer,
/// other arrays by index.
fn flatten(value: &OVal, path: &str, out: &mut Vec<Answer>) {
    match value {
        OVal::Object(members) => {
            for (k, v) in members {
                flatten(v, &join(path, k), out);
            }
        }
        OVal::Array(items) if items.iter().all(OVal::is_scalar) => {
            let key = if path.is_empty() { "value" } else { path };
            out.push(answer(
                key,
                AnswerValue::List(items.iter().filter_map(OVal::scalar).collect()),
            ));
        }
        OVal::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(v, &join(path, &i.to_string()), out);
            }
        }
        scalar => {
            let key = if path.is_empty() { "value" } else { path };
            out.push(answer(key, text(scalar.scalar().unwrap_or_default())));
        }
    }
}

/// Form fields as answers: repeated names (and `name[]`) become one list, file parts a file
/// list, in the order of first appearance. Linear: an index finds a name's answer, and
/// repeated values are appended in place.
fn form_answers(fields: &[FormField]) -> Vec<Answer> {
    let mut out: Vec<Answer> = Vec::new();
    let mut position: HashMap<&str, usize> = HashMap::new();
    for f in fields {
        let name = f.name.strip_suffix("[]").unwrap_or(&f.name);
        let name = if name.is_empty() { "field" } else { name };
        let is_list = f.name.ends_with("[]");
        let value = match &f.file_name {
            Some(file) => AnswerValue::Files(vec![file.clone()]),
            None if is_list => AnswerValue::List(vec![f.value.clone()]),
            None => AnswerValue::Text(f.value.clone()),
        };
        match position.get(name) {
            // Trimmed as the first value was (found by the fuzz target `generic_flatten`).
            Some(&i) => append(&mut out[i].value, trimmed(value)),
            None => {
                position.insert(name, out.len());
                out.push(answer(name, value));
            }
        }
    }
    out
}

/// Appends a repeated field's value: files to files, anything else to one list.
fn append(existing: &mut AnswerValue, value: AnswerValue) {
    match (existing, value) {
        (AnswerValue::Files(files), AnswerValue::Files(more)) => files.extend(more),
        (AnswerValue::List(items), more) => items.extend(more.into_items()),
        (existing, more) => {
            let mut items = std::mem::replace(existing, AnswerValue::List(Vec::new())).into_items();
            items.extend(more.into_items());
            *existing = AnswerValue::List(items);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::presets::{DRIPJOBS, GENERIC};
    use super::*;

    fn opts(preset: &Preset) -> GenericOptions<'_> {
        GenericOptions {
            preset,
            id_path: None,
            dedupe_field: None,
            strip_html: preset.strip_html,
        }
    }

    #[test]
    fn flattens_json_in_order() {
        let v = OVal::parse(r#"{"b":{"email":"X@Y.io","tags":["a","b"]},"a":[{"n":1}],"id":7}"#)
            .unwrap();
        let (sub, draft) = read(
            &GenericInput::Json(v),
            OffsetDateTime::UNIX_EPOCH,
            &opts(&GENERIC),
        );
        let keys: Vec<_> = sub.answers.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["b.email", "b.tags", "a.0.n", "id"]);
        assert_eq!(sub.submission_id.as_deref(), Some("7"));
        let mut sub = sub;
        draft.finish(&mut sub, "US");
        assert_eq!(sub.contact.email.unwrap().as_str(), "x@y.io");
    }

    #[test]
    fn merges_repeated_form_fields() {
        let f = |n: &str, v: &str| FormField {
            name: n.into(),
            value: v.into(),
            file_name: None,
        };
        let fields = vec![
            f("services[]", " A "),
            f("name", "Jo Bloggs"),
            f("services[]", " B\n"),
            f("city", "Leeds "),
            f("city", " York"),
        ];
        let (sub, _) = read(
            &GenericInput::Form(fields),
            OffsetDateTime::UNIX_EPOCH,
            &opts(&DRIPJOBS),
        );
        // Every value is trimmed, the repeated ones as the first.
        assert_eq!(
            sub.answers[0].value,
            AnswerValue::List(vec!["A".into(), "B".into()])
        );
        assert_eq!(sub.answers[1].label, "Name");
        assert_eq!(
            sub.answers[2].value,
            AnswerValue::List(vec!["Leeds".into(), "York".into()])
        );
    }
}
