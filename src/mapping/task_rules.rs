//! Task rules (`[[mapping.tasks]]` and a follow-up rule's `tasks`), checked and compiled once
//! at start; the plan builder renders them per delivery.

use super::condition::CompiledCondition;
use super::config::TaskConfig;
use super::due::parse_due_in;
use super::error::MappingConfigError;
use super::template::{at_key, Template};

/// One task rule, ready to render.
#[derive(Debug, Clone)]
pub(super) struct CompiledTask {
    pub(super) title: Template,
    pub(super) body: Option<Template>,
    pub(super) due_in: time::Duration,
    /// The answer holding the due date (`due_in` is the fallback).
    pub(super) due_from: Option<String>,
    pub(super) assigned_to: Option<String>,
    pub(super) when: Option<CompiledCondition>,
}

/// Checks and compiles task rules found at `at` (`tasks`, `follow_ups[0].tasks`).
pub(super) fn compile_tasks(
    tasks: &[TaskConfig],
    at: &str,
) -> Result<Vec<CompiledTask>, MappingConfigError> {
    let mut out = Vec::new();
    for (i, task) in tasks.iter().enumerate() {
        let key = |f: &str| format!("{at}[{i}].{f}");
        if task.title.trim().is_empty() {
            return Err(MappingConfigError::new(key("title"), "is empty"));
        }
        let due_in =
            parse_due_in(&task.due_in).map_err(|m| MappingConfigError::new(key("due_in"), m))?;
        out.push(CompiledTask {
            title: at_key(&key("title"), &task.title)?,
            body: task
                .body
                .as_ref()
                .map(|b| at_key(&key("body"), b))
                .transpose()?,
            due_in,
            due_from: task.due_from.clone().filter(|a| !a.trim().is_empty()),
            assigned_to: task.assigned_to.clone().filter(|a| !a.trim().is_empty()),
            when: task
                .when
                .as_ref()
                .map(|w| w.compile(&key("when")))
                .transpose()?,
        });
    }
    Ok(out)
}
