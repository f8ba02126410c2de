//! An event's thread: what its earlier revisions and the deliveries sharing its references
//! (its lead, earlier follow-ups) made in GHL — the contact a follow-up acts on, the note and
//! tasks an edit updates in place, the tasks a follow-up completes or moves — and whether the
//! event must wait for one of them first.

use crate::domain::plan::{Step, StepKind};
use crate::domain::EventId;
use crate::store::{EventStatus, StepStatus, ThreadEvent};

/// The events tied to one event (empty for an event tied to none), and who it is.
#[derive(Debug, Clone, Default)]
pub struct Thread {
    /// The event this thread is of.
    me: Option<EventId>,
    /// Whether that event is a follow-up (acts on its lead's contact or tasks).
    follow_up: bool,
    /// The tied events, oldest first.
    others: Vec<ThreadEvent>,
}

/// A task a delivery of the thread created, with the contact it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadTask {
    pub contact_id: String,
    pub task_id: String,
}

/// An appointment a delivery of the thread booked, with its calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadAppointment {
    pub calendar_id: String,
    /// GHL's appointment (event) id.
    pub event_id: String,
}

impl Thread {
    /// The thread of event `me` (a follow-up when `follow_up`), given the events `Store::thread`
    /// returns for it.
    pub fn new(me: EventId, follow_up: bool, others: Vec<ThreadEvent>) -> Self {
        Self {
            me: Some(me),
            follow_up,
            others,
        }
    }

    /// The event this one must wait for, if any: an earlier revision of its submission not
    /// finished yet (an edit never overtakes what it edits), and for a follow-up, a lead of its
    /// thread not finished yet, earlier or later (a follow-up acts on what the lead made). A
    /// lead never waits for follow-ups, and follow-ups not for each other (they share a
    /// contact key, which already keeps them in order), so nothing waits in a circle.
    pub fn blocking(&self) -> Option<EventId> {
        self.others
            .iter()
            .filter(|e| {
                (e.same_submission && self.is_earlier(e)) || (self.follow_up && !is_follow_up(e))
            })
            .find(|e| {
                matches!(
                    e.status,
                    EventStatus::Pending | EventStatus::Processing | EventStatus::Retrying
                )
            })
            .map(|e| e.id)
    }

    /// The lead's contact: the latest lead of the thread that has a contact in GHL, else the
    /// one another follow-up acted on.
    pub fn lead_contact(&self) -> Option<String> {
        let leads = self.others.iter().rev().filter(|e| !is_follow_up(e));
        let follow_ups = self.others.iter().rev().filter(|e| is_follow_up(e));
        leads.chain(follow_ups).find_map(contact_of)
    }

    /// The thread's leads that have finished (delivered or dead-lettered): when the lead's
    /// contact is unknown and these are all there are, waiting longer cannot help.
    pub fn finished_leads(&self) -> Vec<EventId> {
        self.others
            .iter()
            .filter(|e| !is_follow_up(e))
            .filter(|e| matches!(e.status, EventStatus::Done | EventStatus::Dead))
            .map(|e| e.id)
            .collect()
    }

    /// For an edit: the GHL id of the `nth` note or task (by `kind`, in plan order) that the
    /// latest earlier revision of the submission on the same `contact_id` created or updated,
    /// so this revision updates that record instead of creating another.
    pub fn revision_record(&self, kind: StepKind, nth: usize, contact_id: &str) -> Option<String> {
        self.others
            .iter()
            .rev()
            .filter(|e| e.same_submission && self.is_earlier(e))
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

    /// Every task the thread's leads created (or an edit of them updated), once each, with its
    /// contact: the lead's tasks a follow-up completes or moves.
    pub fn tasks(&self) -> Vec<ThreadTask> {
        let mut tasks: Vec<ThreadTask> = Vec::new();
        for event in self.others.iter().filter(|e| !is_follow_up(e)) {
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

    /// The other revisions of the event's submission that reached GHL (done), earlier or later
    /// (a later one is here when it shares one of the event's references), oldest first: what
    /// a phone call's other statuses said.
    pub fn done_revisions(&self) -> impl Iterator<Item = &ThreadEvent> {
        self.others
            .iter()
            .filter(|e| e.same_submission && e.status == EventStatus::Done)
    }

    /// Every appointment the thread's other deliveries booked (leads and follow-ups alike: a
    /// DripJobs "Appointment Set" books as a follow-up), once each, with its calendar, oldest
    /// first: the appointments a follow-up moves or cancels.
    pub fn appointments(&self) -> Vec<ThreadAppointment> {
        let mut out: Vec<ThreadAppointment> = Vec::new();
        for event in &self.others {
            for appointment in booked(event) {
                if !out.contains(&appointment) {
                    out.push(appointment);
                }
            }
        }
        out
    }

    /// The appointment on `calendar_id` the latest earlier delivery of the thread booked (or
    /// moved in place of booking): a later booking of the same lead moves it instead of
    /// booking a second one.
    pub fn earlier_appointment(&self, calendar_id: &str) -> Option<String> {
        self.others
            .iter()
            .rev()
            .filter(|e| self.is_earlier(e))
            .flat_map(booked)
            .find(|a| a.calendar_id == calendar_id)
            .map(|a| a.event_id)
    }

    fn is_earlier(&self, event: &ThreadEvent) -> bool {
        self.me.is_some_and(|me| event.id < me)
    }
}

/// The appointments an event's booking steps made (done, with their id), in plan order.
fn booked(event: &ThreadEvent) -> Vec<ThreadAppointment> {
    let Some(plan) = &event.plan else {
        return Vec::new();
    };
    event
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::BookAppointment && s.status == StepStatus::Done)
        .filter_map(|s| {
            let step = plan.steps.get(usize::try_from(s.index).ok()?)?;
            let Step::BookAppointment { calendar_id, .. } = step else {
                return None;
            };
            Some(ThreadAppointment {
                calendar_id: calendar_id.clone(),
                event_id: s.ghl_id.clone()?,
            })
        })
        .collect()
}

/// Whether an event's plan acts on a lead (its contact or tasks) rather than being one; an
/// event not prepared yet counts as a lead.
fn is_follow_up(event: &ThreadEvent) -> bool {
    event
        .plan
        .as_ref()
        .is_some_and(|plan| plan.steps.iter().any(|s| s.acts_on_lead()))
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
    use crate::domain::plan::{ContactFields, Plan, Step};
    use crate::store::StepRecord;

    fn done(index: u32, kind: StepKind, id: &str) -> StepRecord {
        StepRecord {
            index,
            kind,
            status: StepStatus::Done,
            ghl_id: Some(id.to_owned()),
            detail: None,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            in_doubt_until: None,
            requests: Vec::new(),
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
        let thread = Thread::new(
            EventId(3),
            false,
            vec![
                lead(1, EventStatus::Done, "c1", true),
                lead(2, EventStatus::Done, "c1", false),
                lead(4, EventStatus::Done, "c1", true),
            ],
        );
        assert_eq!(
            thread.revision_record(StepKind::CreateNote, 0, "c1"),
            Some("note-1".to_owned()),
            "only earlier revisions of the same submission count"
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
    fn done_revisions_are_the_submissions_other_finished_revisions_earlier_or_later() {
        let thread = Thread::new(
            EventId(3),
            false,
            vec![
                lead(1, EventStatus::Done, "c1", true),
                lead(2, EventStatus::Done, "c1", false),
                lead(4, EventStatus::Retrying, "c1", true),
                lead(5, EventStatus::Done, "c1", true),
            ],
        );
        let ids: Vec<EventId> = thread.done_revisions().map(|e| e.id).collect();
        assert_eq!(ids, [EventId(1), EventId(5)]);
    }

    #[test]
    fn a_follow_up_finds_its_leads_contact_and_tasks_and_waits_for_unfinished_leads() {
        let mut follow_up = lead(2, EventStatus::Retrying, "c1", false);
        follow_up.plan = Some(Plan {
            steps: vec![
                Step::LeadContact {
                    reference: "dripjobs/deal_id:1".to_owned(),
                },
                Step::CompleteLeadTasks,
            ],
            ..Plan::default()
        });
        let others = vec![
            lead(1, EventStatus::Done, "c1", false),
            follow_up,
            lead(4, EventStatus::Retrying, "c1", false),
        ];
        let thread = Thread::new(EventId(3), true, others.clone());
        assert_eq!(thread.lead_contact(), Some("c1".to_owned()));
        assert_eq!(
            thread.blocking(),
            Some(EventId(4)),
            "a later lead, not the other follow-up"
        );
        let tasks: Vec<String> = thread.tasks().into_iter().map(|t| t.task_id).collect();
        assert_eq!(tasks, ["task-1", "task-4"], "the leads' tasks only");
        // A lead waits for neither.
        assert_eq!(Thread::new(EventId(3), false, others).blocking(), None);
        assert_eq!(thread.finished_leads(), [EventId(1)]);
        assert_eq!(Thread::default().lead_contact(), None);
        assert_eq!(Thread::default().blocking(), None);
    }
}
