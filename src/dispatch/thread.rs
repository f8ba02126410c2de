//! An event's thread: what its earlier revisions and the deliveries sharing its references
//! (its lead, earlier follow-ups) made in GHL — the contact a follow-up acts on, the note and
//! tasks an edit updates in place, the tasks a follow-up completes or moves — and whether the
//! event must wait for one of them first.

use crate::mapping::plan::StepKind;
use crate::store::{EventId, EventStatus, StepStatus, ThreadEvent};

/// The earlier events tied to one event, oldest first (empty for an event tied to none).
#[derive(Debug, Clone, Default)]
pub struct Thread {
    earlier: Vec<ThreadEvent>,
}

/// A task an earlier delivery of the thread created, with the contact it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadTask {
    pub contact_id: String,
    pub task_id: String,
}

impl Thread {
    /// The thread of the earlier events `earlier` (as `Store::thread` returns them).
    pub fn new(earlier: Vec<ThreadEvent>) -> Self {
        Self { earlier }
    }

    /// The earliest earlier event that has not finished (pending, being processed or waiting
    /// for a retry): the event must wait for it, or it could act before its lead exists or
    /// overtake an earlier revision.
    pub fn unfinished(&self) -> Option<EventId> {
        self.earlier
            .iter()
            .find(|e| {
                matches!(
                    e.status,
                    EventStatus::Pending | EventStatus::Processing | EventStatus::Retrying
                )
            })
            .map(|e| e.id)
    }

    /// The contact of the latest earlier event that has one in GHL: the lead's contact (or
    /// the one a later edit of the lead moved to).
    pub fn lead_contact(&self) -> Option<String> {
        self.earlier.iter().rev().find_map(contact_of)
    }

    /// For an edit: the GHL id of the `nth` note or task (by `kind`, in plan order) that the
    /// latest earlier revision of the submission on the same `contact_id` created or updated,
    /// so this revision updates that record instead of creating another.
    pub fn revision_record(&self, kind: StepKind, nth: usize, contact_id: &str) -> Option<String> {
        self.earlier
            .iter()
            .rev()
            .filter(|e| e.same_submission)
            .filter(|e| contact_of(e).as_deref() == Some(contact_id))
            .find_map(|e| {
                let plan = e.plan.as_ref()?;
                let index = plan
                    .steps
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.kind() == kind)
                    .nth(nth)
                    .map(|(i, _)| u32::try_from(i).unwrap_or(u32::MAX))?;
                done_id(e, index, kind)
            })
    }

    /// Every task the thread's earlier deliveries created (or an edit updated), once each, with
    /// its contact: the lead's tasks a follow-up completes or moves.
    pub fn tasks(&self) -> Vec<ThreadTask> {
        let mut tasks: Vec<ThreadTask> = Vec::new();
        for event in &self.earlier {
            let Some(contact_id) = contact_of(event) else {
                continue;
            };
            for step in &event.steps {
                if step.kind != StepKind::CreateTask || step.status != StepStatus::Done {
                    continue;
                }
                let Some(task_id) = step.ghl_id.clone() else {
                    continue;
                };
                let task = ThreadTask {
                    contact_id: contact_id.clone(),
                    task_id,
                };
                if !tasks.contains(&task) {
                    tasks.push(task);
                }
            }
        }
        tasks
    }
}

/// The contact an event's contact step (upsert, create by name, or its lead's) resolved to.
fn contact_of(event: &ThreadEvent) -> Option<String> {
    event.steps.iter().find_map(|s| {
        let makes_contact = matches!(
            s.kind,
            StepKind::UpsertContact | StepKind::CreateContact | StepKind::LeadContact
        );
        (makes_contact && s.status == StepStatus::Done)
            .then(|| s.ghl_id.clone())
            .flatten()
    })
}

/// The GHL id recorded for a finished step at `index` of `kind`.
fn done_id(event: &ThreadEvent, index: u32, kind: StepKind) -> Option<String> {
    event
        .steps
        .iter()
        .find(|s| s.index == index && s.kind == kind && s.status == StepStatus::Done)
        .and_then(|s| s.ghl_id.clone())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use time::OffsetDateTime;

    use super::*;
    use crate::mapping::plan::{ContactFields, Plan, Step};
    use crate::store::StepRecord;

    fn done(index: u32, kind: StepKind, id: &str) -> StepRecord {
        StepRecord {
            index,
            kind,
            status: StepStatus::Done,
            ghl_id: Some(id.to_owned()),
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn lead(id: i64, status: EventStatus, contact: &str, same_submission: bool) -> ThreadEvent {
        let plan = Plan {
            steps: vec![
                Step::UpsertContact {
                    contact: ContactFields::default(),
                },
                Step::CreateTask {
                    title: "Call".to_owned(),
                    body: None,
                    due_at: OffsetDateTime::UNIX_EPOCH,
                    assigned_to: None,
                },
                Step::CreateNote {
                    body: "first".to_owned(),
                },
            ],
            ..Plan::default()
        };
        ThreadEvent {
            id: EventId(id),
            status,
            same_submission,
            plan: Some(plan),
            steps: vec![
                done(0, StepKind::UpsertContact, contact),
                done(1, StepKind::CreateTask, &format!("task-{id}")),
                done(2, StepKind::CreateNote, &format!("note-{id}")),
            ],
        }
    }

    #[test]
    fn an_edit_updates_the_latest_revisions_records_on_the_same_contact() {
        let thread = Thread::new(vec![
            lead(1, EventStatus::Done, "c1", true),
            lead(2, EventStatus::Done, "c1", false),
        ]);
        assert_eq!(
            thread.revision_record(StepKind::CreateNote, 0, "c1"),
            Some("note-1".to_owned()),
            "only revisions of the same submission count, not follow-ups"
        );
        assert_eq!(thread.revision_record(StepKind::CreateNote, 1, "c1"), None);
        assert_eq!(
            thread.revision_record(StepKind::CreateNote, 0, "c2"),
            None,
            "a revision that moved to another contact creates its own note"
        );
        assert_eq!(
            thread.revision_record(StepKind::CreateTask, 0, "c1"),
            Some("task-1".to_owned())
        );
    }

    #[test]
    fn a_follow_up_finds_its_leads_contact_and_tasks_and_waits_for_unfinished_ones() {
        let thread = Thread::new(vec![
            lead(1, EventStatus::Done, "c1", false),
            lead(3, EventStatus::Retrying, "c1", false),
        ]);
        assert_eq!(thread.lead_contact(), Some("c1".to_owned()));
        assert_eq!(thread.unfinished(), Some(EventId(3)));
        let tasks: Vec<String> = thread.tasks().into_iter().map(|t| t.task_id).collect();
        assert_eq!(tasks, ["task-1", "task-3"]);
        assert_eq!(Thread::default().lead_contact(), None);
        assert_eq!(Thread::default().unfinished(), None);
    }
}
