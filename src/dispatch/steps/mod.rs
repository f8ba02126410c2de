//! One function per plan step kind: what each step sends to GHL and which id it keeps.
//!
//! - `contact`: upsert a contact (keeping its first source), or create one known by name.
//! - `tags`: add or remove the contact's tags.
//! - `task`: create (or, for an edit, update) a task; `note`: the same for a note. Both
//!   write through `marked`: edit it, else find it by its marker, else create it.
//! - `dnd`: the contact's do-not-disturb channels, never lifting one unless told to.
//! - `lead`: a follow-up's contact (its lead's), and the lead's tasks completed or moved.
//! - `call`: a phone call's one call-back task and one note, whichever status writes them.
//! - `opportunity`: the lead's opportunity made once (then updated in place), and a
//!   follow-up's move of it to a stage or status.
//! - `file`: a file answer downloaded and streamed into a file custom field, at most once.
//! - `appointment`: book an appointment once per lead and calendar; move or cancel the lead's.

mod appointment;
mod call;
mod contact;
mod dnd;
mod file;
mod lead;
mod marked;
mod note;
mod opportunity;
mod tags;
mod task;

use time::OffsetDateTime;

use super::attempt::{Executor, StepError};
use super::thread::Thread;
use crate::domain::plan::Step;
use crate::store::ClaimedEvent;
use tags::TagChange;

/// Where a step runs: its event, plan position and what the earlier steps left.
pub struct StepAt<'a> {
    /// The event being worked on.
    pub event: &'a ClaimedEvent,
    /// The deliveries the event refers to (its lead, its earlier revisions).
    pub thread: &'a Thread,
    /// The step's position in the plan.
    pub index: u32,
    /// The step.
    pub step: &'a Step,
    /// The contact an earlier step made or found.
    pub contact_id: Option<&'a str>,
    /// An earlier attempt sent this step and its answer was lost: look before creating.
    pub uncertain: bool,
}

impl StepAt<'_> {
    /// The event's GHL location.
    fn location(&self) -> &str {
        self.event.location_id.as_str()
    }

    /// The contact of an earlier step, which this step acts on.
    fn contact(&self) -> Result<&str, StepError> {
        self.contact_id.ok_or_else(|| {
            StepError::Plan("the plan has no contact step before this one".to_owned())
        })
    }
}

impl Executor<'_> {
    /// Runs one step; returns the GHL id it produced (contact, task or note id).
    pub(super) async fn run_step(&self, at: &StepAt<'_>) -> Result<Option<String>, StepError> {
        match at.step {
            Step::UpsertContact { contact } => contact::upsert(self, at, contact).await,
            Step::CreateContact { contact } => contact::create(self, at, contact).await,
            Step::AddTags { tags } => tags::change(self, at, tags, TagChange::Add).await,
            Step::RemoveTags { tags } => tags::change(self, at, tags, TagChange::Remove).await,
            Step::CreateTask {
                title,
                body,
                due_at,
                assigned_to,
            } => {
                let task = task::TaskStep {
                    title,
                    body: body.as_deref(),
                    due_date: rfc3339(*due_at),
                    assigned_to: assigned_to.as_deref(),
                };
                marked::write(self, at, &task).await
            }
            Step::CreateNote { body } => marked::write(self, at, &note::NoteStep { body }).await,
            Step::LeadContact { reference } => lead::contact(at, reference),
            Step::CompleteLeadTasks => lead::change_tasks(self, at, None).await,
            Step::MoveLeadTasks { due_at } => lead::change_tasks(self, at, Some(*due_at)).await,
            Step::CallTask {
                title,
                body,
                due_at,
            } => {
                let task = call::CallBackTask {
                    title,
                    body: body.as_deref(),
                    due_date: rfc3339(*due_at),
                };
                call::task(self, at, &task).await
            }
            Step::CallNote { body } => call::note(self, at, body).await,
            Step::SetDnd { channels } => dnd::set(self, at, channels).await,
            Step::UpsertOpportunity { opportunity } => {
                opportunity::upsert(self, at, opportunity).await
            }
            Step::MoveLeadOpportunity { change } => opportunity::move_lead(self, at, change).await,
            Step::UploadFile {
                url,
                custom_field_id,
                hosts,
            } => file::upload(self, at, url, custom_field_id, hosts).await,
            Step::BookAppointment {
                calendar_id,
                title,
                notes,
                start_at,
                end_at,
                assigned_user_id,
            } => {
                let booking = appointment::Booking {
                    calendar_id,
                    title,
                    notes: notes.as_deref(),
                    start_at: *start_at,
                    end_at: *end_at,
                    assigned_user_id: assigned_user_id.as_deref(),
                };
                appointment::book(self, at, &booking).await
            }
            Step::MoveLeadAppointments { start_at, end_at } => {
                let change = appointment::LeadChange::Move {
                    start_at: *start_at,
                    end_at: *end_at,
                };
                appointment::change_lead(self, at, change).await
            }
            Step::CancelLeadAppointments => {
                appointment::change_lead(self, at, appointment::LeadChange::Cancel).await
            }
        }
    }
}

/// A due date as GHL takes it.
fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
