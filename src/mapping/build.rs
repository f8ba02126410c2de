//! The pure plan builder: a [`Submission`] and the source's [`MappingConfig`] → a [`Plan`]
//! (upsert contact → add tags → create tasks → create notes).

use std::collections::HashSet;

use super::condition::CompiledCondition;
use super::config::{
    parse_duration, MappingConfig, MappingConfigError, MissingContact, DEFAULT_JIVO_CONTACT_EVENTS,
};
use super::plan::{ContactFields, CustomFieldValue, Plan, Step};
use super::template::Template;
use super::vars::{answer_lines, transcript_text, Vars};
use crate::settings::SourceSettings;
use crate::sources::{SourceKind, SourceName};
use crate::submission::{AnswerValue, Submission};

/// Why a submission cannot become a plan. The event is dead-lettered with this reason and can
/// be replayed after the mapping is fixed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MappingError {
    /// No email and no phone: GHL's contact upsert needs one of them.
    #[error("no contact in this submission: no usable email or phone was found (GHL's contact upsert needs one){problems}; select the answers with mapping.fields.email / mapping.fields.phone, or set mapping.on_missing_contact = \"skip\" to ignore such submissions")]
    NoContact {
        /// Parse problems that may explain it (`; problems: …`), or empty.
        problems: String,
    },
    /// The mapping config is invalid.
    #[error("invalid mapping config: {0}")]
    Config(#[from] MappingConfigError),
}

/// The tool's display name for notes.
pub fn tool_title(kind: SourceKind, source: &SourceName) -> String {
    match kind {
        SourceKind::Jotform => "Jotform".to_owned(),
        SourceKind::Jivochat => "JivoChat".to_owned(),
        SourceKind::Dripjobs => "DripJobs".to_owned(),
        SourceKind::Powr => "POWR".to_owned(),
        SourceKind::Formbuilder123 => "123FormBuilder".to_owned(),
        SourceKind::Generic => source.to_string(),
    }
}

/// The tool's name used as the default GHL `source`: the kind, or the source's name for
/// `generic` sources.
pub fn tool_name(kind: SourceKind, source: &SourceName) -> String {
    match kind {
        SourceKind::Generic => source.to_string(),
        other => other.as_str().to_owned(),
    }
}

/// Builds the plan for one submission. Pure: no I/O; due dates count from
/// `submission.received_at`.
pub fn build_plan(
    source: &SourceName,
    kind: SourceKind,
    settings: &SourceSettings,
    submission: &Submission,
) -> Result<Plan, MappingError> {
    let cfg = &settings.mapping;
    if kind == SourceKind::Jivochat {
        let event = submission.extras.event.as_deref().unwrap_or_default();
        let wanted = match &cfg.contact_events {
            Some(events) => events.iter().any(|e| e == event),
            None => DEFAULT_JIVO_CONTACT_EVENTS.contains(&event),
        };
        if !wanted {
            return Ok(Plan::default());
        }
    }
    if submission.is_test && cfg.skip_test_submissions {
        return Ok(Plan::default());
    }
    let tool = tool_name(kind, source);
    let vars = Vars {
        submission,
        source: source.as_str(),
        tool: &tool,
    };
    let contact = contact_fields(cfg, &vars, &tool)?;
    // GHL's `POST /contacts/upsert` matches on email or phone and refuses a body with neither
    // (GoHighLevel/highlevel-api-docs#37, #59), so a name alone cannot be upserted.
    if contact.email.is_none() && contact.phone.is_none() {
        return match cfg.on_missing_contact {
            MissingContact::Skip => Ok(Plan::default()),
            MissingContact::Error => Err(MappingError::NoContact {
                problems: problems_hint(submission),
            }),
        };
    }
    let mut steps = vec![Step::UpsertContact { contact }];
    let tags = tags(cfg, &vars, source)?;
    if !tags.is_empty() {
        steps.push(Step::AddTags { tags });
    }
    for (i, task) in cfg.tasks.iter().enumerate() {
        let key = |f: &str| format!("tasks[{i}].{f}");
        if let Some(when) = &task.when {
            if !when.compile(&key("when"))?.holds(&vars) {
                continue;
            }
        }
        let due =
            parse_duration(&task.due_in).map_err(|m| MappingConfigError::new(key("due_in"), m))?;
        let due = time::Duration::try_from(due)
            .ok()
            .and_then(|d| submission.received_at.checked_add(d))
            .ok_or_else(|| MappingConfigError::new(key("due_in"), "too far in the future"))?;
        let body = match &task.body {
            Some(b) => Some(render(&key("body"), b, &vars)?).filter(|b| !b.trim().is_empty()),
            None => None,
        };
        steps.push(Step::CreateTask {
            title: render(&key("title"), &task.title, &vars)?.trim().to_owned(),
            body,
            due_at: due,
            assigned_to: task.assigned_to.clone().filter(|a| !a.trim().is_empty()),
        });
    }
    if cfg.note.enabled {
        let body = match &cfg.note.template {
            Some(t) => render("note.template", t, &vars)?,
            None => default_note(kind, source, submission),
        };
        if !body.trim().is_empty() {
            steps.push(Step::CreateNote { body });
        }
    }
    Ok(Plan { steps })
}

fn render(key: &str, text: &str, vars: &Vars<'_>) -> Result<String, MappingConfigError> {
    Ok(Template::parse(text)
        .map_err(|m| MappingConfigError::new(key, m))?
        .render(vars))
}

fn problems_hint(sub: &Submission) -> String {
    if sub.problems.is_empty() {
        return String::new();
    }
    let list = sub
        .problems
        .iter()
        .map(|p| format!("{}: {}", p.key, p.message))
        .collect::<Vec<_>>()
        .join("; ");
    format!(" (problems: {list})")
}

fn contact_fields(
    cfg: &MappingConfig,
    vars: &Vars<'_>,
    tool: &str,
) -> Result<ContactFields, MappingConfigError> {
    let c = &vars.submission.contact;
    let mut out = ContactFields {
        first_name: c.first_name.clone(),
        last_name: c.last_name.clone(),
        name: None,
        email: c.email.as_ref().map(|e| e.to_string()),
        phone: c.phone.as_ref().map(|p| p.to_string()),
        company_name: c.company.clone(),
        address1: c.address.street(),
        city: c.address.city.clone(),
        state: c.address.state.clone(),
        postal_code: c.address.postal_code.clone(),
        country: c.address.country.clone(),
        website: c.website.clone(),
        timezone: None,
        source: Some(cfg.source.clone().unwrap_or_else(|| tool.to_owned())),
        custom_fields: Vec::new(),
    };
    if out.first_name.is_none() && out.last_name.is_none() {
        out.name = c.full_name.clone();
    }
    for (field, template) in cfg.values.iter() {
        let value = render(&format!("values.{field}"), template, vars)?;
        let value = Some(value.trim().to_owned()).filter(|v| !v.is_empty());
        if value.is_none() {
            continue;
        }
        let slot = match field {
            "first_name" => &mut out.first_name,
            "last_name" => &mut out.last_name,
            "company_name" => &mut out.company_name,
            "address1" => &mut out.address1,
            "city" => &mut out.city,
            "state" => &mut out.state,
            "postal_code" => &mut out.postal_code,
            "country" => &mut out.country,
            "website" => &mut out.website,
            _ => &mut out.timezone,
        };
        *slot = value;
    }
    for (i, rule) in cfg.custom_fields.iter().enumerate() {
        let value = match (&rule.answer, &rule.value) {
            (Some(sel), _) => match vars.submission.answer(sel).map(|a| &a.value) {
                Some(v) if v.is_blank() => None,
                Some(AnswerValue::List(items)) => Some(serde_json::Value::from(items.clone())),
                Some(v) => Some(serde_json::Value::String(v.display())),
                None => None,
            },
            (None, Some(t)) => {
                let text = render(&format!("custom_fields[{i}].value"), t, vars)?;
                Some(serde_json::Value::String(text))
                    .filter(|v| v.as_str().is_some_and(|s| !s.trim().is_empty()))
            }
            (None, None) => {
                return Err(MappingConfigError::new(
                    format!("custom_fields[{i}]"),
                    "set exactly one of `answer` or `value`",
                ))
            }
        };
        if let Some(value) = value {
            out.custom_fields.push(CustomFieldValue {
                id: rule.id.clone(),
                key: rule.key.clone(),
                value,
            });
        }
    }
    Ok(out)
}

fn tags(
    cfg: &MappingConfig,
    vars: &Vars<'_>,
    source: &SourceName,
) -> Result<Vec<String>, MappingConfigError> {
    let t = &cfg.tags;
    let mut raw: Vec<String> = Vec::new();
    if t.source_tag {
        raw.push(source.to_string());
    }
    if vars.submission.is_test {
        raw.push("test".to_owned());
    }
    for (i, tag) in t.static_tags.iter().enumerate() {
        raw.push(render(&format!("tags.static[{i}]"), tag, vars)?);
    }
    for (i, rule) in t.when.iter().enumerate() {
        let cond: CompiledCondition = rule.when.compile(&format!("tags.when[{i}].when"))?;
        if cond.holds(vars) {
            raw.push(render(&format!("tags.when[{i}].tag"), &rule.tag, vars)?);
        }
    }
    for rule in &t.from_answers {
        if let Some(answer) = vars.submission.answer(&rule.answer) {
            for item in answer.value.items() {
                raw.push(format!(
                    "{}{}",
                    rule.prefix.as_deref().unwrap_or_default(),
                    item.trim()
                ));
            }
        }
    }
    let mut tags: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for tag in raw {
        // GHL stores tags lower-cased.
        let tag = tag
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        if !tag.is_empty() && seen.insert(tag.clone()) {
            tags.push(tag);
        }
    }
    Ok(tags)
}

/// The default note: JivoChat transcript or offline message; otherwise a header with the tool's
/// submission id followed by every answer as a `Label: value` line.
pub fn default_note(kind: SourceKind, source: &SourceName, sub: &Submission) -> String {
    let title = tool_title(kind, source);
    let id = sub.submission_id.as_deref();
    let mut out = String::new();
    let transcript = transcript_text(sub);
    if kind == SourceKind::Jivochat && (!transcript.is_empty() || sub.extras.message.is_some()) {
        let what = if transcript.is_empty() {
            "offline message"
        } else {
            "chat"
        };
        out.push_str(&format!("{title} {what}"));
        if let Some(id) = id {
            out.push_str(&format!(" (id {id})"));
        }
        out.push_str("\n\n");
        if transcript.is_empty() {
            out.push_str(sub.extras.message.as_deref().unwrap_or_default());
        } else {
            out.push_str(&transcript);
        }
        let details: Vec<String> = sub
            .answers
            .iter()
            .filter(|a| a.key != "message" && !a.value.is_blank())
            .map(|a| format!("{}: {}", a.label, a.value.display()))
            .collect();
        if !details.is_empty() {
            out.push_str("\n\n");
            out.push_str(&details.join("\n"));
        }
        if !sub.extras.utm.is_empty() {
            let utm: Vec<String> = sub
                .extras
                .utm
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out.push_str(&format!("\nUTM: {}", utm.join(", ")));
        }
        return out;
    }
    match id {
        Some(id) => out.push_str(&format!("{title} submission {id}")),
        None => out.push_str(&format!("{title} submission")),
    }
    if let Some(form) = &sub.extras.form_title {
        out.push_str(&format!(" ({form})"));
    }
    if sub.is_test {
        out.push_str(" [test submission]");
    }
    let lines = answer_lines(sub);
    if !lines.is_empty() {
        out.push_str("\n\n");
        out.push_str(&lines);
    }
    if !sub.problems.is_empty() {
        out.push_str("\n\nNot understood:");
        for p in &sub.problems {
            out.push_str(&format!("\n- {}: {}", p.key, p.message));
        }
    }
    out
}
