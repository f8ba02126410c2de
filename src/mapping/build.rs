//! The pure plan builder: a [`Submission`] and the source's [`CompiledMapping`] → a [`Plan`]
//! (upsert contact → add tags → create tasks → create notes; a follow-up acts on its lead's
//! contact and tasks instead).

use std::collections::HashSet;

use super::appointment_rules::appointment_steps;
use super::compile::{CompiledMapping, CustomFieldSource, NoteRule};
use super::config::MissingContact;
use super::consent::dnd_step;
use super::due::due_at;
use super::follow_up::{self, CompiledFollowUp};
use super::local_time::LocalTime;
use super::opportunity_rules;
use super::owner::assign_owner;
use super::task_rules::CompiledTask;
use super::vars::{answer_lines, Vars};
use crate::domain::call::CallFacts;
use crate::domain::plan::{ContactFields, CustomFieldValue, Plan, Step};
use crate::domain::SourceName;
use crate::sources::SourceKind;
use crate::submission::{AnswerValue, ContactField, Submission};

/// Why a submission cannot become a plan. The event is dead-lettered with this reason and can
/// be replayed after the mapping is fixed. (A compiled mapping never fails on configuration.)
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MappingError {
    /// No email and no phone: GHL's contact upsert needs one of them.
    #[error("no contact in this submission: no usable email or phone was found (GHL's contact upsert needs one){problems}; select the answers with mapping.fields.email / mapping.fields.phone, or set mapping.on_missing_contact = \"skip\" to ignore such submissions (\"create_by_name\" creates contacts known only by name)")]
    NoContact {
        /// Parse problems that may explain it (`; problems: …`), or empty.
        problems: String,
    },
}

/// Builds the plan for one submission. Pure: no I/O; due dates count from
/// `submission.received_at`.
///
/// A delivery with a reference (`mapping.references`) is a follow-up of an earlier lead when a
/// `[[mapping.follow_ups]]` rule holds, or when it has no email or phone (a lead is expected;
/// not with `on_missing_contact = "skip"`, nor for a named delivery with `"create_by_name"`,
/// which is a lead itself); see `follow_up_steps`. Any other delivery is a
/// lead: contact, tags, tasks, note. Every plan with steps records the delivery's references,
/// so later follow-ups find it.
pub fn build_plan(
    mapping: &CompiledMapping,
    submission: &Submission,
) -> Result<Plan, MappingError> {
    let mut if_present = false;
    let event = submission.extras.event.as_deref().unwrap_or_default();
    if let Some(events) = &mapping.contact_events {
        if_present = mapping.contact_if_present.iter().any(|e| e == event);
        if !if_present && !events.iter().any(|e| e == event) {
            return Ok(nothing_to_do(format!(
                "event `{event}` makes or updates no contact (mapping.contact_events)"
            )));
        }
    }
    if submission.is_test && mapping.skip_test_submissions {
        return Ok(nothing_to_do(
            "a test submission, skipped (mapping.skip_test_submissions)".to_owned(),
        ));
    }
    let vars = Vars {
        submission,
        source: mapping.source.as_str(),
        tool: &mapping.tool,
    };
    let contact = contact_fields(mapping, &vars);
    // GHL's `POST /contacts/upsert` matches on email or phone and refuses a body with neither
    // (GoHighLevel/highlevel-api-docs#37, #59), so a name alone cannot be upserted.
    let reachable =
        contact.get(ContactField::Email).is_some() || contact.get(ContactField::Phone).is_some();
    let references = follow_up::references(&mapping.references, &mapping.tool, submission);
    let rule = follow_up::matching(&mapping.follow_ups, &vars);
    // Without email or phone a delivery follows its lead even when no rule names it, unless
    // the mapping skips such deliveries (then only a rule makes it a follow-up). An event that
    // updates a contact only when it carries one (JivoChat `chat_accepted`) never waits for a
    // lead: without email or phone it plans nothing, as before.
    // A delivery known only by name that may create its contact by name is a lead itself.
    let named = contact.get(ContactField::FirstName).is_some()
        || contact.get(ContactField::LastName).is_some();
    let unreachable_follows = !reachable
        && match mapping.on_missing_contact {
            MissingContact::Skip => false,
            MissingContact::CreateByName => !named,
            MissingContact::Error => true,
        };
    let follow_up = (reachable || !if_present) && (rule.is_some() || unreachable_follows);
    let mut steps = match references.first() {
        Some(lead) if follow_up => {
            let first = if reachable {
                Step::UpsertContact { contact }
            } else {
                Step::LeadContact {
                    reference: lead.clone(),
                }
            };
            follow_up_steps(mapping, &vars, first, rule)
        }
        _ => lead_steps(mapping, &vars, contact, reachable, if_present)?,
    };
    let owner = mapping.owner.resolve(&vars);
    if !steps.is_empty() {
        assign_owner(&mut steps, owner.as_deref());
        // Last, so adding `[[mapping.dnd]]` later moves no earlier step of a replayed event.
        steps.extend(dnd_step(&mapping.dnd, &vars));
    }
    if steps.is_empty() {
        // Nothing to do in GHL, but its references are kept: a later follow-up of the same
        // chat or deal then knows its lead came and made no contact (rather than waiting).
        // A lead plans no step only without email or phone: an event that updates a contact
        // only when it carries one, or a mapping that skips such submissions.
        let why = if if_present {
            format!("event `{event}` carries no email or phone: no contact to update")
        } else {
            format!(
                "no usable email or phone{}: skipped (mapping.on_missing_contact = \"skip\"{}; \"error\" dead-letters such submissions instead)",
                problems_hint(submission),
                if mapping.kind.is_chat() { ", the default for chat tools" } else { "" }
            )
        };
        return Ok(Plan {
            references,
            ..nothing_to_do(why)
        });
    }
    Ok(Plan {
        steps,
        references,
        call: call_facts(mapping, submission),
        owner,
        ..Plan::default()
    })
}

/// The phone call this delivery reports a status of, when its tool follows calls
/// (`Tool::call`): keyed by source and call id.
fn call_facts(mapping: &CompiledMapping, submission: &Submission) -> Option<CallFacts> {
    let call = mapping.kind.call(submission)?;
    Some(CallFacts {
        key: format!("{}:{}", mapping.source, call.id),
        kind: call.kind,
        status: call.status,
    })
}

/// A lead's steps: upsert (or create by name) the contact, add and remove tags, create tasks,
/// write the note. Empty when the submission is to be skipped.
fn lead_steps(
    mapping: &CompiledMapping,
    vars: &Vars<'_>,
    contact: ContactFields,
    reachable: bool,
    if_present: bool,
) -> Result<Vec<Step>, MappingError> {
    let submission = vars.submission;
    // `POST /contacts/` takes a first or last name alone (only `name` alone is refused).
    let named = contact.get(ContactField::FirstName).is_some()
        || contact.get(ContactField::LastName).is_some();
    let first = match (reachable, mapping.on_missing_contact) {
        (true, _) => Step::UpsertContact { contact },
        (false, MissingContact::CreateByName) if named => Step::CreateContact { contact },
        (false, _) if if_present => return Ok(Vec::new()),
        (false, MissingContact::Skip) => return Ok(Vec::new()),
        (false, _) => {
            return Err(MappingError::NoContact {
                problems: problems_hint(submission),
            })
        }
    };
    let mut steps = vec![first];
    let tags = tags(mapping, vars);
    let removed = removed_tags(mapping, vars, &tags);
    push_tag_steps(&mut steps, tags, removed);
    steps.extend(opportunity_rules::lead_step(&mapping.opportunities, vars));
    steps.extend(task_steps(&mapping.tasks, vars, &mapping.local));
    steps.extend(tool_task(mapping, submission));
    steps.extend(appointment_steps(
        &mapping.appointments,
        vars,
        &mapping.local,
    ));
    steps.extend(note_step(mapping, submission, note(mapping, vars)));
    // After the note: a slow or refused download holds up none of the lead's other records.
    steps.extend(mapping.files.steps(submission));
    Ok(steps)
}

/// A follow-up's steps: `first` (its own contact, or its lead's), the source tag and the
/// rule's tags, the rule's removed tags, the rule's step on the lead's tasks, the rule's own
/// new tasks, the tool's task (JivoChat: a callback is new work), and the rule's note (default:
/// the mapping's note). The mapping's own tags and tasks belong to leads. Without a rule: the source tag and the note.
fn follow_up_steps(
    mapping: &CompiledMapping,
    vars: &Vars<'_>,
    first: Step,
    rule: Option<&CompiledFollowUp>,
) -> Vec<Step> {
    let mut steps = vec![first];
    let mut raw = base_tags(mapping, vars);
    let mut removed = Vec::new();
    if let Some(rule) = rule {
        raw.extend(rule.tags.iter().map(|t| t.render(vars)));
        removed.extend(rule.remove_tags.iter().map(|t| t.render(vars)));
    }
    let tags = clean_tags(raw);
    let removed = clean_tags(removed)
        .into_iter()
        .filter(|t| !tags.contains(t))
        .collect();
    push_tag_steps(&mut steps, tags, removed);
    let local = &mapping.local;
    steps.extend(rule.and_then(|r| r.lead_task_step(vars.submission, local)));
    steps.extend(
        rule.and_then(|r| r.opportunity.as_ref())
            .and_then(|o| o.step(vars)),
    );
    if let Some(rule) = rule {
        steps.extend(task_steps(&rule.tasks, vars, local));
    }
    steps.extend(tool_task(mapping, vars.submission));
    // The mapping's appointments are booked by whichever delivery carries their start (a
    // DripJobs "Appointment Set" is a follow-up); a booking of the same lead and calendar
    // moves the earlier one instead of booking another.
    steps.extend(appointment_steps(&mapping.appointments, vars, local));
    steps.extend(rule.and_then(|r| r.lead_appointment_step(vars.submission, local)));
    let note = match rule.and_then(|r| r.note.as_ref()) {
        Some(template) => Some(template.render(vars)),
        None => note(mapping, vars),
    };
    steps.extend(note_step(mapping, vars.submission, note));
    steps
}

fn push_tag_steps(steps: &mut Vec<Step>, tags: Vec<String>, removed: Vec<String>) {
    if !tags.is_empty() {
        steps.push(Step::AddTags { tags });
    }
    if !removed.is_empty() {
        steps.push(Step::RemoveTags { tags: removed });
    }
}

/// The tasks of `rules` whose `when` holds, rendered for this delivery.
fn task_steps<'a>(
    rules: &'a [CompiledTask],
    vars: &'a Vars<'_>,
    local: &'a LocalTime,
) -> impl Iterator<Item = Step> + 'a {
    rules
        .iter()
        .filter(|task| task.when.as_ref().is_none_or(|when| when.holds(vars)))
        .map(|task| Step::CreateTask {
            title: task.title.render(vars).trim().to_owned(),
            body: task
                .body
                .as_ref()
                .map(|b| b.render(vars))
                .filter(|b| !b.trim().is_empty()),
            due_at: due_at(
                vars.submission,
                task.due_from.as_deref(),
                task.due_in,
                local,
            ),
            assigned_to: task.assigned_to.clone(),
        })
}

/// The task the tool asks for on this delivery, unless `mapping.skip_tool_tasks`: for a
/// phone call's status, the call's call-back task (created only once the call needs it).
fn tool_task(mapping: &CompiledMapping, submission: &Submission) -> Option<Step> {
    if !mapping.tool_tasks {
        return None;
    }
    if let Some(call) = mapping.kind.call(submission) {
        return Some(Step::CallTask {
            title: call.task.title,
            body: call.task.body,
            due_at: submission.received_at.saturating_add(call.task.due_in),
        });
    }
    let task = mapping.kind.default_task(submission)?;
    Some(Step::CreateTask {
        title: task.title,
        body: task.body,
        due_at: submission.received_at.saturating_add(task.due_in),
        assigned_to: None,
    })
}

/// The mapping's note for this delivery (`mapping.note`), unless off.
fn note(mapping: &CompiledMapping, vars: &Vars<'_>) -> Option<String> {
    match &mapping.note {
        NoteRule::Off => None,
        NoteRule::Default => Some(default_note(mapping.kind, &mapping.source, vars.submission)),
        NoteRule::Template(t) => Some(t.render(vars)),
    }
}

/// The note step, unless the note is blank: for a phone call's status, the call's one note.
fn note_step(
    mapping: &CompiledMapping,
    submission: &Submission,
    body: Option<String>,
) -> Option<Step> {
    let body = body.filter(|b| !b.trim().is_empty())?;
    Some(match mapping.kind.call(submission) {
        Some(_) => Step::CallNote { body },
        None => Step::CreateNote { body },
    })
}

/// An empty plan, and why.
fn nothing_to_do(why: String) -> Plan {
    Plan {
        nothing_to_do: Some(why),
        ..Plan::default()
    }
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

fn contact_fields(mapping: &CompiledMapping, vars: &Vars<'_>) -> ContactFields {
    let c = &vars.submission.contact;
    let mut out = ContactFields {
        source: Some(mapping.contact_source.clone()),
        keep_first_source: mapping.keep_first_source,
        ..ContactFields::default()
    };
    let from_submission = [
        (ContactField::FirstName, c.first_name.clone()),
        (ContactField::LastName, c.last_name.clone()),
        (ContactField::Email, c.email.as_ref().map(|e| e.to_string())),
        (ContactField::Phone, c.phone.as_ref().map(|p| p.to_string())),
        (ContactField::CompanyName, c.company.clone()),
        (ContactField::Address1, c.address.street()),
        (ContactField::City, c.address.city.clone()),
        (ContactField::State, c.address.state.clone()),
        (ContactField::PostalCode, c.address.postal_code.clone()),
        (ContactField::Country, c.address.country.clone()),
        (ContactField::Website, c.website.clone()),
    ];
    for (field, value) in from_submission {
        out.set(field, value);
    }
    if c.first_name.is_none() && c.last_name.is_none() {
        out.set(ContactField::Name, c.full_name.clone());
    }
    for (field, template) in &mapping.values {
        let value = template.render(vars);
        let value = value.trim();
        if !value.is_empty() {
            out.set(*field, Some(value.to_owned()));
        }
    }
    for rule in &mapping.custom_fields {
        let value = match &rule.value {
            CustomFieldSource::Answer(sel) => match vars.submission.answer(sel).map(|a| &a.value) {
                Some(v) if v.is_blank() => None,
                Some(AnswerValue::List(items)) => Some(serde_json::Value::from(items.clone())),
                Some(v) => Some(serde_json::Value::String(v.display())),
                None => None,
            },
            CustomFieldSource::Template(t) => {
                let text = t.render(vars);
                (!text.trim().is_empty()).then_some(serde_json::Value::String(text))
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
    out
}

/// Tags whose `remove_when_false` condition does not hold, unless another rule adds them.
fn removed_tags(mapping: &CompiledMapping, vars: &Vars<'_>, added: &[String]) -> Vec<String> {
    let raw = mapping
        .tags
        .remove_when_false
        .iter()
        .filter(|(when, _)| !when.holds(vars))
        .map(|(_, tag)| tag.render(vars));
    clean_tags(raw)
        .into_iter()
        .filter(|t| !added.contains(t))
        .collect()
}

/// The source's tag (`tags.source_tag`) and `test` on a test submission, uncleaned.
fn base_tags(mapping: &CompiledMapping, vars: &Vars<'_>) -> Vec<String> {
    let mut raw: Vec<String> = Vec::new();
    raw.extend(mapping.tags.source_tag.clone());
    if vars.submission.is_test {
        raw.push("test".to_owned());
    }
    raw
}

fn tags(mapping: &CompiledMapping, vars: &Vars<'_>) -> Vec<String> {
    let t = &mapping.tags;
    let mut raw = base_tags(mapping, vars);
    raw.extend(t.static_tags.iter().map(|tag| tag.render(vars)));
    for (when, tag) in &t.when {
        if when.holds(vars) {
            raw.push(tag.render(vars));
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
    clean_tags(raw)
}

/// Trimmed, lower-cased (GHL stores tags so), de-duplicated, in order.
fn clean_tags(raw: impl IntoIterator<Item = String>) -> Vec<String> {
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
    tags
}

/// The default note: the tool's own (JivoChat: the transcript or offline message), else a
/// header with the tool's submission id followed by every answer as a `Label: value` line.
pub fn default_note(kind: SourceKind, source: &SourceName, sub: &Submission) -> String {
    let title = kind.tool_title(source);
    if let Some(note) = kind.default_note(&title, sub) {
        return note;
    }
    let id = sub.submission_id.as_deref();
    let mut out = String::new();
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
