//! The variables templates and conditions can read from a submission (`first_name`,
//! `answers.<key>`, `utm.source`, …).

use crate::submission::Submission;

/// Plain variable names.
pub const KNOWN_VARIABLES: &[&str] = &[
    "first_name",
    "last_name",
    "name",
    "email",
    "phone",
    "company_name",
    "address1",
    "city",
    "state",
    "postal_code",
    "country",
    "website",
    "submission_id",
    "source",
    "tool",
    "received_at",
    "form_id",
    "form_title",
    "event",
    "is_test",
    "page_url",
    "page_title",
    "message",
    "transcript",
    "answers",
];

/// Prefixes followed by a name: `answers.<key or label>`, `utm.<name>`, `geo.<part>`,
/// `extras.<name>`.
pub const KNOWN_PREFIXES: &[&str] = &["answers.", "utm.", "geo.", "extras."];

const GEO_PARTS: &[&str] = &["country", "country_code", "region", "city"];

/// Whether `name` is a variable templates may use.
pub fn is_known_variable(name: &str) -> bool {
    if KNOWN_VARIABLES.contains(&name) {
        return true;
    }
    if let Some(part) = name.strip_prefix("geo.") {
        return GEO_PARTS.contains(&part);
    }
    KNOWN_PREFIXES.iter().any(|p| {
        name.strip_prefix(p)
            .is_some_and(|rest| !rest.trim().is_empty())
    })
}

/// A submission seen as template variables.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    /// The submission.
    pub submission: &'a Submission,
    /// The source's name (`/hooks/{source}`).
    pub source: &'a str,
    /// The tool's name (`jotform`).
    pub tool: &'a str,
}

impl Vars<'_> {
    /// The variable as one line of text, or `None` when unknown or missing.
    pub fn text(&self, name: &str) -> Option<String> {
        let sub = self.submission;
        let c = &sub.contact;
        let s = |v: &Option<String>| v.clone();
        match name {
            "first_name" => s(&c.first_name),
            "last_name" => s(&c.last_name),
            "name" => s(&c.full_name),
            "email" => c.email.as_ref().map(|e| e.to_string()),
            "phone" => c.phone.as_ref().map(|p| p.to_string()),
            "company_name" => s(&c.company),
            "address1" => c.address.street(),
            "city" => s(&c.address.city),
            "state" => s(&c.address.state),
            "postal_code" => s(&c.address.postal_code),
            "country" => s(&c.address.country),
            "website" => s(&c.website),
            "submission_id" => s(&sub.submission_id),
            "source" => Some(self.source.to_owned()),
            "tool" => Some(self.tool.to_owned()),
            "received_at" => sub
                .received_at
                .format(&time::format_description::well_known::Rfc3339)
                .ok(),
            "form_id" => s(&sub.extras.form_id),
            "form_title" => s(&sub.extras.form_title),
            "event" => s(&sub.extras.event),
            "is_test" => Some(sub.is_test.to_string()),
            "page_url" => sub.extras.page.as_ref().map(|p| p.url.clone()),
            "page_title" => sub.extras.page.as_ref().and_then(|p| p.title.clone()),
            "message" => s(&sub.extras.message),
            "transcript" => {
                let t = sub.transcript_text();
                (!t.is_empty()).then_some(t)
            }
            "answers" => Some(answer_lines(sub)),
            _ => {
                if let Some(sel) = name.strip_prefix("answers.") {
                    sub.answer(sel).map(|a| a.value.display())
                } else if let Some(k) = name.strip_prefix("utm.") {
                    sub.extras.utm.get(k).cloned()
                } else if let Some(k) = name.strip_prefix("extras.") {
                    sub.extras.other.get(k).cloned()
                } else if let Some(k) = name.strip_prefix("geo.") {
                    let g = sub.extras.geo.as_ref()?;
                    match k {
                        "country" => g.country.clone(),
                        "country_code" => g.country_code.clone(),
                        "region" => g.region.clone(),
                        "city" => g.city.clone(),
                        _ => None,
                    }
                } else {
                    None
                }
            }
        }
    }

    /// The variable's individual values (list choices one by one), for conditions.
    pub fn items(&self, name: &str) -> Vec<String> {
        if let Some(sel) = name.strip_prefix("answers.") {
            return self
                .submission
                .answer(sel)
                .map(|a| a.value.items())
                .unwrap_or_default();
        }
        self.text(name).into_iter().collect()
    }
}

/// Every non-blank answer as a `Label: value` line, in form order.
pub fn answer_lines(sub: &Submission) -> String {
    sub.answers
        .iter()
        .filter(|a| !a.value.is_blank())
        .map(|a| format!("{}: {}", a.label, a.value.display()))
        .collect::<Vec<_>>()
        .join("\n")
}
