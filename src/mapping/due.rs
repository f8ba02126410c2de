//! Due dates and appointment starts: read from answers (`YYYY-MM-DD`, `YYYY-MM-DD HH:MM` — a
//! Jotform appointment slot, with its IANA zone or `GMT±HH:MM` offset when given —, US
//! `M/D/YYYY` such as DripJobs `install_date`, and RFC 3339), else an offset (`due_in`) from the
//! time the delivery was received. A date or time without an offset is read in the mapping's
//! [`LocalTime`] (`mapping.time_zone`, a date alone at `mapping.default_due_time`).

use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::local_time::{clock, in_zone, zone, LocalTime};
use crate::submission::Submission;

/// The longest `due_in` accepted (ten years), so a due date can always be computed.
const MAX_DUE_IN: time::Duration = time::Duration::days(3650);

/// Parses a humantime duration (`30m`, `1d`, `2h 30m`) with a message a user can act on.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("`{text}` is not a duration ({e}); write e.g. `30m`, `4h`, `1d`, `2d 4h`")
    })
}

/// Parses a `due_in` offset: a duration of at most ten years.
pub fn parse_due_in(text: &str) -> Result<time::Duration, String> {
    let due_in = parse_duration(text)?;
    time::Duration::try_from(due_in)
        .ok()
        .filter(|d| *d <= MAX_DUE_IN)
        .ok_or_else(|| "is more than ten years".to_owned())
}

/// When something is due: the date in the `due_from` answer when it holds one, else `due_in`
/// (at most ten years, see [`parse_due_in`]) after the delivery was received — so a replay
/// computes the same date.
pub fn due_at(
    sub: &Submission,
    due_from: Option<&str>,
    due_in: time::Duration,
    local: &LocalTime,
) -> OffsetDateTime {
    due_from
        .and_then(|sel| sub.answer(sel))
        .and_then(|a| parse_due(&a.value.display(), local))
        .unwrap_or_else(|| sub.received_at.saturating_add(due_in))
}

/// A moment read from an answer: when it starts, and how long it lasts when the answer says
/// (a Jotform appointment slot's `60 min`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    pub at: OffsetDateTime,
    pub length: Option<time::Duration>,
}

/// The start in the `from` answer, its time of day from the `time_from` answer when `from`
/// holds a date alone; `None` when `from` holds no date.
pub fn moment_at(
    sub: &Submission,
    from: &str,
    time_from: Option<&str>,
    local: &LocalTime,
) -> Option<Moment> {
    let text = sub.answer(from)?.value.display();
    let time = time_from
        .and_then(|sel| sub.answer(sel))
        .and_then(|a| clock(&a.value.display()));
    parse_moment(&text, time, local)
}

/// Reads a due date from an answer's text; `None` when it is not one of the known forms.
pub fn parse_due(text: &str, local: &LocalTime) -> Option<OffsetDateTime> {
    parse_moment(text, None, local).map(|m| m.at)
}

/// Reads a moment from an answer's text; a date alone lands at `time_of_day`, else at the
/// mapping's day start.
pub fn parse_moment(text: &str, time_of_day: Option<Time>, local: &LocalTime) -> Option<Moment> {
    let text = text.trim();
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(Moment { at, length: None });
    }
    let (head, rest) = text.split_once(' ').unwrap_or((text, ""));
    let date = iso_date(head).or_else(|| us_date(head))?;
    let time = rest
        .split_whitespace()
        .next()
        .and_then(clock_24)
        .or(time_of_day)
        .unwrap_or(local.day_start());
    let at = match (named_zone(rest), gmt_offset(rest)) {
        (Some(zone), _) => in_zone(&zone, date, time)?,
        (None, Some(offset)) => PrimitiveDateTime::new(date, time).assume_offset(offset),
        (None, None) => local.at(date, time)?,
    };
    Some(Moment {
        at,
        length: slot_minutes(rest),
    })
}

fn numbers(text: &str, sep: char) -> Option<Vec<i32>> {
    text.split(sep).map(|p| p.parse::<i32>().ok()).collect()
}

fn ymd(year: i32, month: i32, day: i32) -> Option<Date> {
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    Date::from_calendar_date(year, month, u8::try_from(day).ok()?).ok()
}

fn iso_date(text: &str) -> Option<Date> {
    match numbers(text, '-')?.as_slice() {
        [y, m, d] if *y > 999 => ymd(*y, *m, *d),
        _ => None,
    }
}

fn us_date(text: &str) -> Option<Date> {
    match numbers(text, '/')?.as_slice() {
        [m, d, y] if *y > 999 => ymd(*y, *m, *d),
        _ => None,
    }
}

/// The `HH:MM` right after a slot's date.
fn clock_24(text: &str) -> Option<Time> {
    let (h, m) = text.split_once(':')?;
    Time::from_hms(h.parse().ok()?, m.get(..2)?.parse().ok()?, 0).ok()
}

/// An IANA zone name in a slot's text (`America/New_York` in Jotform's
/// `(60 min, America/New_York (GMT-04:00))`): it knows the offset on the slot's own date.
fn named_zone(text: &str) -> Option<jiff::tz::TimeZone> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ','))
        .filter(|word| word.contains('/'))
        .find_map(zone)
}

/// A slot's length, `60 min`.
fn slot_minutes(text: &str) -> Option<time::Duration> {
    let (before, _) = text.split_once(" min")?;
    let minutes: i64 = before
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    (minutes > 0).then(|| time::Duration::minutes(minutes))
}

/// `GMT-04:00` anywhere in the text (Jotform's appointment time zone).
fn gmt_offset(text: &str) -> Option<UtcOffset> {
    let (_, after) = text.split_once("GMT")?;
    let sign = match after.chars().next()? {
        '+' => 1,
        '-' => -1,
        _ => return None,
    };
    let (h, m) = after.get(1..6)?.split_once(':')?;
    UtcOffset::from_hms(
        sign * h.parse::<i8>().ok()?,
        sign * m.parse::<i8>().ok()?,
        0,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn due_dates_from_answers() {
        let utc = LocalTime::default();
        assert_eq!(
            parse_due("2026-05-14", &utc),
            Some(datetime!(2026-05-14 09:00 UTC))
        );
        assert_eq!(
            parse_due("5/14/2026", &utc),
            Some(datetime!(2026-05-14 09:00 UTC))
        );
        assert_eq!(
            parse_due(
                "2022-04-25 16:00 (60 min, America/New_York (GMT-04:00))",
                &utc
            ),
            Some(datetime!(2022-04-25 16:00 -4))
        );
        assert_eq!(
            parse_due("2026-01-02T03:04:05Z", &utc),
            Some(datetime!(2026-01-02 03:04:05 UTC))
        );
        for bad in ["", "soon", "13/40/2026", "2026-02-30", "14.05.2026"] {
            assert_eq!(parse_due(bad, &utc), None, "{bad}");
        }
    }

    #[test]
    fn dates_without_an_offset_are_local() {
        let ny = LocalTime::compile(Some("America/New_York"), Some("08:30")).unwrap();
        assert_eq!(
            parse_due("5/14/2026", &ny),
            Some(datetime!(2026-05-14 08:30 -4))
        );
        assert_eq!(
            parse_due("2026-12-01 10:00", &ny),
            Some(datetime!(2026-12-01 10:00 -5))
        );
        // A slot names its own zone; the offset it shows is the one the zone has that day.
        let slot = parse_moment(
            "2026-11-20 16:00 (30 min, America/Chicago (GMT-05:00))",
            None,
            &ny,
        )
        .unwrap();
        assert_eq!(slot.at, datetime!(2026-11-20 16:00 -6));
        assert_eq!(slot.length, Some(time::Duration::minutes(30)));
        // A date alone takes the time of day given with it.
        let m = parse_moment("2026-05-14", Some(time::macros::time!(14:30)), &ny).unwrap();
        assert_eq!(m.at, datetime!(2026-05-14 14:30 -4));
        assert_eq!(m.length, None);
    }
}
