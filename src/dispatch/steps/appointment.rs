//! The appointment steps: book one per lead and calendar (move the one an earlier delivery of
//! the lead booked, else find it by its marker, else record the step as started and book it),
//! and a follow-up's move or cancel of the lead's appointments.

use time::OffsetDateTime;

use super::{rfc3339, StepAt};
use crate::dispatch::attempt::{Executor, StepError};
use crate::ghl::calendars::{CreateAppointmentRequest, UpdateAppointmentRequest};
use crate::ghl_access::marker::{marker, with_marker};

/// What a booking step sends, as the plan gives it.
pub(super) struct Booking<'a> {
    pub calendar_id: &'a str,
    pub title: &'a str,
    pub notes: Option<&'a str>,
    pub start_at: OffsetDateTime,
    pub end_at: OffsetDateTime,
    pub assigned_user_id: Option<&'a str>,
}

/// Books the appointment at most once: the id of the appointment moved, found or booked.
///
/// The marker is looked up before every booking, not only after a lost answer: a booking is
/// rare, and a second one for the same slot (after a replay from scratch, which forgets the
/// step records) would be a double-booked customer.
pub(super) async fn book(
    executor: &Executor<'_>,
    at: &StepAt<'_>,
    booking: &Booking<'_>,
) -> Result<Option<String>, StepError> {
    let (client, event, location) = (executor.client, at.event, at.location());
    let contact = at.contact()?;
    if let Some(id) = at.thread.earlier_appointment(booking.calendar_id) {
        // The earlier booking's description (with its marker) stays: it is how that
        // delivery finds its appointment again.
        let update = UpdateAppointmentRequest {
            title: Some(booking.title.to_owned()),
            start_time: Some(rfc3339(booking.start_at)),
            end_time: Some(rfc3339(booking.end_at)),
            assigned_user_id: booking.assigned_user_id.map(str::to_owned),
            ignore_free_slot_validation: Some(true),
            ..UpdateAppointmentRequest::default()
        };
        let moved = executor.change_existing(event, &id, || {
            client.update_appointment(location, &id, &update)
        });
        // Deleted in GHL since: booked anew (below).
        if let Some(id) = moved.await? {
            return Ok(Some(id));
        }
    }
    let mark = marker(event.id, at.index);
    let found = executor
        .find(event, || {
            client.find_appointment_with_marker(location, contact, booking.calendar_id, &mark)
        })
        .await?;
    if let Some(id) = found {
        return Ok(Some(id));
    }
    let request = CreateAppointmentRequest {
        calendar_id: booking.calendar_id.to_owned(),
        location_id: location.to_owned(),
        contact_id: contact.to_owned(),
        start_time: rfc3339(booking.start_at),
        end_time: rfc3339(booking.end_at),
        title: booking.title.to_owned(),
        description: with_marker(booking.notes, &mark),
        assigned_user_id: booking.assigned_user_id.map(str::to_owned),
        appointment_status: "confirmed".to_owned(),
        ignore_free_slot_validation: true,
        to_notify: true,
    };
    let booked = executor
        .create(event, at.index, at.step, || {
            client.create_appointment(&request)
        })
        .await?;
    Ok(Some(booked.id))
}

/// What a follow-up does to its lead's appointments.
pub(super) enum LeadChange {
    Move {
        start_at: OffsetDateTime,
        end_at: OffsetDateTime,
    },
    Cancel,
}

/// Moves or cancels every appointment the lead's deliveries booked: the ids changed,
/// comma-separated (one deleted in GHL since is skipped). Both are idempotent `PUT`s.
pub(super) async fn change_lead(
    executor: &Executor<'_>,
    at: &StepAt<'_>,
    change: LeadChange,
) -> Result<Option<String>, StepError> {
    let (client, location) = (executor.client, at.location());
    let update = match change {
        LeadChange::Move { start_at, end_at } => UpdateAppointmentRequest {
            start_time: Some(rfc3339(start_at)),
            end_time: Some(rfc3339(end_at)),
            ignore_free_slot_validation: Some(true),
            ..UpdateAppointmentRequest::default()
        },
        LeadChange::Cancel => UpdateAppointmentRequest {
            appointment_status: Some("cancelled".to_owned()),
            ..UpdateAppointmentRequest::default()
        },
    };
    let mut changed = Vec::new();
    for appointment in at.thread.appointments() {
        let id = appointment.event_id.as_str();
        let done = executor.change_existing(at.event, id, || {
            client.update_appointment(location, id, &update)
        });
        changed.extend(done.await?);
    }
    Ok(Some(changed.join(",")).filter(|ids| !ids.is_empty()))
}
