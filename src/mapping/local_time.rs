//! The mapping's local time: `mapping.time_zone` (an IANA zone, bundled with the binary so no
//! tzdata is needed) and `mapping.default_due_time`, which turn a date or a date and time
//! written without a UTC offset into an instant.

use jiff::tz::TimeZone;
use time::{Date, OffsetDateTime, Time, UtcOffset};

use super::error::MappingConfigError;

/// `mapping.default_due_time` when unset.
const DEFAULT_DAY_START: Time = time::macros::time!(09:00);

/// Where and when a date without an offset lands.
#[derive(Debug, Clone)]
pub struct LocalTime {
    zone: TimeZone,
    /// The time of day a date alone lands at.
    day_start: Time,
}

impl Default for LocalTime {
    /// UTC, 09:00: what a mapping without `time_zone` and `default_due_time` uses.
    fn default() -> Self {
        Self {
            zone: TimeZone::UTC,
            day_start: DEFAULT_DAY_START,
        }
    }
}

impl LocalTime {
    /// Checks `mapping.time_zone` and `mapping.default_due_time`.
    pub fn compile(
        time_zone: Option<&str>,
        default_due_time: Option<&str>,
    ) -> Result<Self, MappingConfigError> {
        let zone = match time_zone.map(str::trim) {
            None => TimeZone::UTC,
            Some(name) => zone(name).ok_or_else(|| {
                MappingConfigError::new(
                    "time_zone",
                    format!("`{name}` is not an IANA time zone; write e.g. `America/New_York`, `Europe/Berlin` or `UTC`"),
                )
            })?,
        };
        let day_start = match default_due_time {
            None => DEFAULT_DAY_START,
            Some(text) => clock(text).ok_or_else(|| {
                MappingConfigError::new(
                    "default_due_time",
                    format!("`{text}` is not a time of day; write `HH:MM` in 24 hours, e.g. `09:00` or `14:30`"),
                )
            })?,
        };
        Ok(Self { zone, day_start })
    }

    /// The time of day a date alone lands at.
    pub fn day_start(&self) -> Time {
        self.day_start
    }

    /// `date` at `time` in this zone.
    pub fn at(&self, date: Date, time: Time) -> Option<OffsetDateTime> {
        in_zone(&self.zone, date, time)
    }
}

/// The IANA zone of this name, if the bundled database knows it.
pub fn zone(name: &str) -> Option<TimeZone> {
    if name.is_empty() {
        return None;
    }
    TimeZone::get(name).ok()
}

/// `date` at `time` in `zone` (a time skipped by a DST change moves forward, one repeated
/// takes its first occurrence), with the zone's UTC offset at that instant.
pub fn in_zone(zone: &TimeZone, date: Date, time: Time) -> Option<OffsetDateTime> {
    let civil = jiff::civil::DateTime::new(
        i16::try_from(date.year()).ok()?,
        i8::try_from(u8::from(date.month())).ok()?,
        i8::try_from(date.day()).ok()?,
        i8::try_from(time.hour()).ok()?,
        i8::try_from(time.minute()).ok()?,
        i8::try_from(time.second()).ok()?,
        0,
    )
    .ok()?;
    let zoned = civil.to_zoned(zone.clone()).ok()?;
    let offset = UtcOffset::from_whole_seconds(zoned.offset().seconds()).ok()?;
    OffsetDateTime::from_unix_timestamp(zoned.timestamp().as_second())
        .ok()
        .map(|at| at.to_offset(offset))
}

/// A time of day: `14:30`, `9:05`, `2:30 PM`, `05:55 AM`.
pub fn clock(text: &str) -> Option<Time> {
    let text = text.trim();
    let (digits, meridiem) = match text.get(text.len().saturating_sub(2)..) {
        Some(end) if end.eq_ignore_ascii_case("am") || end.eq_ignore_ascii_case("pm") => (
            text[..text.len() - 2].trim(),
            Some(end.eq_ignore_ascii_case("pm")),
        ),
        _ => (text, None),
    };
    let (h, m) = digits.split_once(':')?;
    let (h, m): (u8, u8) = (h.trim().parse().ok()?, m.get(..2)?.parse().ok()?);
    let h = match meridiem {
        None => h,
        Some(_) if !(1..=12).contains(&h) => return None,
        Some(pm) => h % 12 + if pm { 12 } else { 0 },
    };
    Time::from_hms(h, m, 0).ok()
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime, time};

    use super::*;

    #[test]
    fn a_zone_and_a_day_start_place_local_dates() {
        let ny = LocalTime::compile(Some("America/New_York"), None).unwrap();
        assert_eq!(
            ny.at(date!(2026 - 05 - 14), ny.day_start()),
            Some(datetime!(2026-05-14 09:00 -4))
        );
        assert_eq!(
            ny.at(date!(2026 - 01 - 14), time!(09:00)),
            Some(datetime!(2026-01-14 09:00 -5)),
            "standard time in winter"
        );
        let e = LocalTime::compile(Some("Mars/Olympus"), None).unwrap_err();
        assert_eq!(e.key, "time_zone");
        let e = LocalTime::compile(None, Some("9am")).unwrap_err();
        assert_eq!(e.key, "default_due_time");
        let utc = LocalTime::compile(None, Some("07:30")).unwrap();
        assert_eq!(utc.day_start(), time!(07:30));
    }

    #[test]
    fn clocks() {
        assert_eq!(clock("14:30"), Some(time!(14:30)));
        assert_eq!(clock("2:30 PM"), Some(time!(14:30)));
        assert_eq!(clock("12:05 am"), Some(time!(00:05)));
        assert_eq!(clock("13:00 PM"), None);
        assert_eq!(clock("noon"), None);
    }
}
