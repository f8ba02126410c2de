//! The normalized submission model every source is turned into.
//!
//! Types parse at the edge: a [`Submission`] holds a validated [`Email`], an E.164 [`Phone`],
//! trimmed names and typed [`AnswerValue`]s, so the mapping never re-checks them. Values that
//! could not be parsed stay as answers and are listed in [`Submission::problems`].

mod contact;
mod country;
mod field;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use contact::{
    clean_text, country_id, split_full_name, Email, InvalidEmail, InvalidPhone, Phone,
};
pub use country::country_code;
pub use field::ContactField;

/// One delivery, normalized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    /// The tool's own id of this submission (Jotform `submissionID`, Jivo `offline_message_id`
    /// or `chat_id`, a configured field for generic sources). Always a string: Jotform ids
    /// exceed 2^53.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submission_id: Option<String>,
    /// When formbridge received the delivery (due dates are computed from it).
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// A test submission (Jotform `preview=true`).
    #[serde(default)]
    pub is_test: bool,
    /// Contact details found in the submission.
    pub contact: Contact,
    /// Every answer, in form order (contact answers included).
    pub answers: Vec<Answer>,
    /// Values that could not be parsed (they are still in `answers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
    /// Source-specific context: form title, chat transcript, page, UTM, geo.
    pub extras: Extras,
}

/// Contact details, parsed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Contact {
    /// First (given) name, trimmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last (family) name, trimmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// The full name as given (or first + last joined).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_name: Option<String>,
    /// Validated, lower-cased email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
    /// Phone in E.164.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<Phone>,
    /// Company name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    /// Postal address.
    #[serde(default, skip_serializing_if = "Address::is_empty")]
    pub address: Address,
    /// Website.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
}

impl Contact {
    /// Sets the full name and, where not yet known, first and last name split from it.
    pub fn set_full_name(&mut self, full: &str) {
        let Some(full) = clean_text(full) else { return };
        let (first, last) = split_full_name(&full);
        if self.first_name.is_none() && self.last_name.is_none() {
            self.first_name = first;
            self.last_name = last;
        }
        self.full_name = Some(full);
    }

    /// Sets first and last name (trimmed) and the joined full name.
    pub fn set_name_parts(&mut self, first: Option<&str>, last: Option<&str>) {
        self.first_name = first.and_then(clean_text);
        self.last_name = last.and_then(clean_text);
        let joined = [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        self.full_name = clean_text(&joined);
    }

    /// Whether any name part is known.
    pub fn has_name(&self) -> bool {
        self.first_name.is_some() || self.last_name.is_some() || self.full_name.is_some()
    }
}

/// A postal address; every part optional.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Address {
    /// Street line 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line1: Option<String>,
    /// Street line 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// State or province.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Postal / ZIP code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// Country as an ISO 3166-1 alpha-2 code (`US`); a country not recognised is left out
    /// and noted in [`Submission::problems`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

impl Address {
    /// No part is set.
    pub fn is_empty(&self) -> bool {
        self == &Address::default()
    }

    /// `line1` and `line2` joined for GHL's single `address1` field.
    pub fn street(&self) -> Option<String> {
        match (&self.line1, &self.line2) {
            (Some(a), Some(b)) => Some(format!("{a}, {b}")),
            (Some(a), None) => Some(a.clone()),
            (None, Some(b)) => Some(b.clone()),
            (None, None) => None,
        }
    }
}

/// One answer of the form, as asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The tool's key (`q3_studentsName`, a dot path `customer.email`, `visitor.name`).
    pub key: String,
    /// A readable label (`Students Name`).
    pub label: String,
    /// The typed value.
    pub value: AnswerValue,
}

/// A typed answer value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum AnswerValue {
    /// Plain text (also numbers, dates rendered as `YYYY-MM-DD`, times).
    Text(String),
    /// Several choices (checkboxes, multi-select).
    List(Vec<String>),
    /// A matrix / input table, row by row.
    Table(Vec<Vec<String>>),
    /// Uploaded files, as URLs (or names when no URL is known).
    Files(Vec<String>),
    /// Named parts (address, product line, widget object), in the order given.
    Fields(Vec<NamedValue>),
}

/// One named part of a [`AnswerValue::Fields`] answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedValue {
    /// The part's name.
    pub name: String,
    /// Its value as text.
    pub value: String,
}

impl AnswerValue {
    /// The value on one line, for notes and templates.
    pub fn display(&self) -> String {
        match self {
            AnswerValue::Text(s) => s.clone(),
            AnswerValue::List(items) | AnswerValue::Files(items) => items.join(", "),
            AnswerValue::Table(rows) => rows
                .iter()
                .map(|r| r.join(" | "))
                .collect::<Vec<_>>()
                .join("; "),
            AnswerValue::Fields(parts) => parts
                .iter()
                .map(|p| format!("{}: {}", p.name, p.value))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// The individual values: list items, files, table cells, part values, or the text.
    pub fn items(&self) -> Vec<String> {
        match self {
            AnswerValue::Text(s) => vec![s.clone()],
            AnswerValue::List(items) | AnswerValue::Files(items) => items.clone(),
            AnswerValue::Table(rows) => rows.iter().flatten().cloned().collect(),
            AnswerValue::Fields(parts) => parts.iter().map(|p| p.value.clone()).collect(),
        }
    }

    /// Like [`AnswerValue::items`], without copying.
    pub fn into_items(self) -> Vec<String> {
        match self {
            AnswerValue::Text(s) => vec![s],
            AnswerValue::List(items) | AnswerValue::Files(items) => items,
            AnswerValue::Table(rows) => rows.into_iter().flatten().collect(),
            AnswerValue::Fields(parts) => parts.into_iter().map(|p| p.value).collect(),
        }
    }

    /// Nothing was answered.
    pub fn is_blank(&self) -> bool {
        self.items().iter().all(|s| s.trim().is_empty())
    }
}

/// A value that could not be parsed into its type; the answer is kept as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// The answer key (or config key) concerned.
    pub key: String,
    /// What was wrong, without repeating personal data.
    pub message: String,
}

/// Source-specific context.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Extras {
    /// Event name (JivoChat `event_name`, or a generic source's `event`/`trigger` field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Form id (Jotform `formID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form_id: Option<String>,
    /// Form title (Jotform `formTitle`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form_title: Option<String>,
    /// The page the visitor was on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<Page>,
    /// UTM parameters by name without the `utm_` prefix (`source`, `campaign`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub utm: BTreeMap<String, String>,
    /// IP geolocation (JivoChat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<Geo>,
    /// An offline message left by the visitor (JivoChat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The chat transcript (JivoChat `chat_finished`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transcript: Vec<ChatMessage>,
    /// Other named context values (Jotform `enterprise_server`, Jivo `widget_id`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub other: BTreeMap<String, String>,
}

/// A web page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    /// The page URL.
    pub url: String,
    /// Its title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// IP-based location.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Geo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// When it was sent.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub at: Option<OffsetDateTime>,
    /// `visitor`, `agent` or what the tool said.
    pub from: String,
    /// The text.
    pub text: String,
}

impl Submission {
    /// The chat transcript, one `[time] from: text` line per message.
    pub fn transcript_text(&self) -> String {
        let hm =
            time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
        self.extras
            .transcript
            .iter()
            .map(|m| {
                let at =
                    m.at.and_then(|t| t.to_offset(time::UtcOffset::UTC).format(&hm).ok())
                        .map(|t| format!("[{t}] "))
                        .unwrap_or_default();
                format!("{at}{}: {}", m.from, m.text)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// An empty submission received at `received_at`.
    pub fn new(received_at: OffsetDateTime) -> Self {
        Self {
            submission_id: None,
            received_at,
            is_test: false,
            contact: Contact::default(),
            answers: Vec::new(),
            problems: Vec::new(),
            extras: Extras::default(),
        }
    }

    /// The answer with this key, else the first one with this label (case-insensitive).
    pub fn answer(&self, selector: &str) -> Option<&Answer> {
        self.answers.iter().find(|a| a.key == selector).or_else(|| {
            self.answers
                .iter()
                .find(|a| a.label.eq_ignore_ascii_case(selector.trim()))
        })
    }

    /// Records a problem.
    pub fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }
}
