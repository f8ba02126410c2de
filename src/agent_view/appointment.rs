//! The next appointment a card shows: the soonest of the contact's appointments
//! (`GET /contacts/:id/appointments`) that starts from now on and is not cancelled.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::ghl::types::Appointment;
use crate::sources::CardAppointment;

/// Statuses of appointments that will not take place.
const NOT_HAPPENING: &[&str] = &["cancelled", "invalid", "noshow"];

/// The soonest appointment starting at `now` or later that is still to happen.
pub fn next(appointments: &[Appointment], now: OffsetDateTime) -> Option<CardAppointment> {
    appointments
        .iter()
        .filter(|a| {
            !a.appointment_status
                .as_deref()
                .is_some_and(|s| NOT_HAPPENING.contains(&s))
        })
        .filter_map(|a| {
            let start = a.start_time.as_deref().and_then(parse_start)?;
            // formbridge's marker is in the description, never in the title.
            let title = a
                .title
                .as_deref()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "Appointment".to_owned());
            Some(CardAppointment { title, start })
        })
        .filter(|a| a.start >= now)
        .min_by_key(|a| a.start)
}

/// RFC 3339, else the listing's `2021-07-16 11:00:00` (as in `GetEventSchema`'s example; read
/// as UTC, since it names no zone).
fn parse_start(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok().or_else(|| {
        PrimitiveDateTime::parse(
            text,
            format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
        )
        .ok()
        .map(PrimitiveDateTime::assume_utc)
    })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn appointment(title: &str, start: &str, status: &str) -> Appointment {
        Appointment {
            id: title.to_owned(),
            title: Some(title.to_owned()),
            start_time: Some(start.to_owned()),
            appointment_status: Some(status.to_owned()),
            ..Appointment::default()
        }
    }

    #[test]
    fn the_soonest_appointment_still_to_come() {
        let now = datetime!(2026-05-10 12:00 UTC);
        let list = [
            appointment("past", "2026-05-01T10:00:00Z", "confirmed"),
            appointment("cancelled", "2026-05-11T10:00:00Z", "cancelled"),
            appointment("later", "2026-05-20 10:00:00", "booked"),
            appointment("soon", "2026-05-14T08:00:00-07:00", "confirmed"),
        ];
        let next = next(&list, now).unwrap();
        assert_eq!(next.title, "soon");
        assert_eq!(next.start, datetime!(2026-05-14 15:00 UTC));
        assert_eq!(super::next(&list[..2], now), None);
    }
}
