//! The difference between two plans of one delivery, field by field: each plan flattened into
//! named values (`contact.phone`, `tags.vip`, `tasks[0].title`, `notes[0]` …) and compared.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::domain::plan::{Plan, Step};

/// How one named value differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Only the candidate's plan has it.
    Added,
    /// Only the running plan has it.
    Removed,
    /// Both have it, with other values.
    Changed,
}

/// One difference between the running plan and the candidate's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// The part of the plan (`contact`, `tags`, `tasks`, `notes`, `opportunity`, …).
    pub section: String,
    /// The value's name within the plan (`contact.phone`, `tasks[0].due_at`).
    pub path: String,
    pub change: Change,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate: Option<Value>,
}

/// Every difference from `running` to `candidate`, in path order.
pub fn diff(running: &Plan, candidate: &Plan) -> Vec<Difference> {
    let before = flatten(running);
    let after = flatten(candidate);
    let mut out = Vec::new();
    for (path, old) in &before {
        match after.get(path) {
            None => out.push(difference(path, Change::Removed, Some(old), None)),
            Some(new) if new != old => {
                out.push(difference(path, Change::Changed, Some(old), Some(new)))
            }
            Some(_) => {}
        }
    }
    for (path, new) in &after {
        if !before.contains_key(path) {
            out.push(difference(path, Change::Added, None, Some(new)));
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn difference(path: &str, change: Change, old: Option<&Value>, new: Option<&Value>) -> Difference {
    let end = path.find(['.', '[']).unwrap_or(path.len());
    Difference {
        section: path[..end].to_owned(),
        path: path.to_owned(),
        change,
        running: old.cloned(),
        candidate: new.cloned(),
    }
}

/// A plan as named values. Tags are a set (`tags.<tag>` = `add` | `remove`); a list of steps of
/// one kind is numbered in plan order (`tasks[1].title`).
pub fn flatten(plan: &Plan) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut next = |name: &str| {
        let n = counts.entry(name.to_owned()).or_insert(0);
        *n += 1;
        format!("{name}[{}]", *n - 1)
    };
    for step in &plan.steps {
        match step {
            Step::UpsertContact { contact } | Step::CreateContact { contact } => {
                if matches!(step, Step::CreateContact { .. }) {
                    out.insert("contact.created_by_name".to_owned(), Value::Bool(true));
                }
                for (field, value) in &contact.values {
                    out.insert(format!("contact.{field}"), Value::String(value.clone()));
                }
                if let Some(source) = &contact.source {
                    out.insert("contact.source".to_owned(), Value::String(source.clone()));
                }
                if contact.keep_first_source {
                    out.insert("contact.keep_first_source".to_owned(), Value::Bool(true));
                }
                for field in &contact.custom_fields {
                    let name = field.key.as_deref().or(field.id.as_deref()).unwrap_or("?");
                    out.insert(format!("contact.custom_fields.{name}"), field.value.clone());
                }
            }
            Step::AddTags { tags } => {
                for tag in tags {
                    out.insert(format!("tags.{tag}"), Value::String("add".to_owned()));
                }
            }
            Step::RemoveTags { tags } => {
                for tag in tags {
                    out.insert(format!("tags.{tag}"), Value::String("remove".to_owned()));
                }
            }
            Step::CreateNote { body } => {
                out.insert(next("notes"), Value::String(body.clone()));
            }
            Step::CreateTask { .. } => fields(&mut out, &next("tasks"), step),
            Step::UpsertOpportunity { .. } | Step::MoveLeadOpportunity { .. } => {
                fields(&mut out, &next("opportunity"), step)
            }
            Step::BookAppointment { .. }
            | Step::MoveLeadAppointments { .. }
            | Step::CancelLeadAppointments => fields(&mut out, &next("appointment"), step),
            other => {
                let name = serde_json::to_value(other.kind())
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "step".to_owned());
                fields(&mut out, &next(&name), step);
            }
        }
    }
    if let Some(owner) = &plan.owner {
        out.insert("owner".to_owned(), Value::String(owner.clone()));
    }
    if let Some(why) = &plan.nothing_to_do {
        out.insert("nothing_to_do".to_owned(), Value::String(why.clone()));
    }
    for reference in &plan.references {
        out.insert(format!("references.{reference}"), Value::Bool(true));
    }
    out
}

/// The step's own fields under `prefix` (`prefix.title`); the step's kind is kept when the
/// prefix does not say it (`opportunity[0].kind`).
fn fields(out: &mut BTreeMap<String, Value>, prefix: &str, step: &Step) {
    match serde_json::to_value(step) {
        Ok(Value::Object(map)) => {
            for (key, value) in map {
                if key == "kind" && prefix.starts_with("tasks") {
                    continue;
                }
                out.insert(format!("{prefix}.{key}"), value);
            }
        }
        Ok(other) => {
            out.insert(prefix.to_owned(), other);
        }
        Err(e) => {
            out.insert(prefix.to_owned(), Value::String(e.to_string()));
        }
    }
}
