//! Due dates: read from answers (`YYYY-MM-DD`, `YYYY-MM-DD HH:MM` — a Jotform appointment slot,
//! with its `GMT±HH:MM` offset when given —, US `M/D/YYYY` such as DripJobs `install_date`, and
//! RFC 3339), else an offset (`due_in`) from the time the delivery was received.

use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::submission::Submission;

/// The hour a date without a time of day is due at (UTC).
const DAY_START_HOUR: u8 = 9;

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
pub fn due_at(sub: &Submission, due_from: Option<&str>, due_in: time::Duration) -> OffsetDateTime {
    due_from
        .and_then(|sel| sub.answer(sel))
        .and_then(|a| parse_due(&a.value.display()))
        .unwrap_or_else(|| sub.received_at.saturating_add(due_in))
}

/// Reads a due date from an answer's text; `None` when it is not one of the known forms.
pub fn parse_due(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(at);
    }
    let (head, rest) = text.split_once(' ').unwrap_or((text, ""));
    let date = iso_date(head).or_else(|| us_date(head))?;
    let time = rest
        .split_whitespace()
        .next()
        .and_then(clock)
        .unwrap_or(Time::from_hms(DAY_START_HOUR, 0, 0).ok()?);
    let offset = gmt_offset(rest).unwrap_or(UtcOffset::UTC);
    Some(PrimitiveDateTime::new(date, time).assume_offset(offset))
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

fn clock(text: &str) -> Option<Time> {
    let (h, m) = text.split_once(':')?;
    Time::from_hms(h.parse().ok()?, m.get(..2)?.parse().ok()?, 0).ok()
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
        assert_eq!(
            parse_due("2026-05-14"),
            Some(datetime!(2026-05-14 09:00 UTC))
        );
        assert_eq!(
            parse_due("5/14/2026"),
            Some(datetime!(2026-05-14 09:00 UTC))
        );
        assert_eq!(
            parse_due("2022-04-25 16:00 (60 min, America/New_York (GMT-04:00))"),
            Some(datetime!(2022-04-25 16:00 -4))
        );
        assert_eq!(
            parse_due("2026-01-02T03:04:05Z"),
            Some(datetime!(2026-01-02 03:04:05 UTC))
        );
        for bad in ["", "soon", "13/40/2026", "2026-02-30", "14.05.2026"] {
            assert_eq!(parse_due(bad), None, "{bad}");
        }
    }
}
