//! Appointment rules (`[[mapping.appointments]]`) and a follow-up's `appointment` setting,
//! checked and compiled once at start; the plan builder renders them per delivery into
//! [`Step::BookAppointment`], [`Step::MoveLeadAppointments`] and
//! [`Step::CancelLeadAppointments`].

use super::condition::CompiledCondition;
use super::config::{AppointmentConfig, FollowUpConfig, LeadAppointment};
use super::due::{moment_at, parse_duration, Moment};
use super::error::MappingConfigError;
use super::local_time::LocalTime;
use super::template::{at_key, Template};
use super::vars::Vars;
use crate::domain::plan::Step;
use crate::submission::Submission;

/// How long an appointment lasts when neither the rule nor the answer says.
const DEFAULT_LENGTH: time::Duration = time::Duration::hours(1);

/// The longest appointment accepted (a week).
const MAX_LENGTH: time::Duration = time::Duration::days(7);

/// One `[[mapping.appointments]]` rule, checked.
#[derive(Debug, Clone)]
pub(super) struct CompiledAppointment {
    calendar_id: String,
    start: StartRule,
    end_from: Option<String>,
    title: Option<Template>,
    notes: Option<Template>,
    assigned_user_id: Option<Template>,
    when: Option<CompiledCondition>,
}

/// Where a start comes from, and how long it lasts.
#[derive(Debug, Clone)]
pub(super) struct StartRule {
    from: String,
    time_from: Option<String>,
    /// `None`: the slot's own length, else an hour.
    length: Option<time::Duration>,
}

impl StartRule {
    /// The start and end for this delivery; `None` without a date in the answer.
    fn read(
        &self,
        sub: &Submission,
        end_from: Option<&str>,
        local: &LocalTime,
    ) -> Option<(Moment, time::OffsetDateTime)> {
        let start = moment_at(sub, &self.from, self.time_from.as_deref(), local)?;
        let end = end_from
            .and_then(|sel| moment_at(sub, sel, None, local))
            .map(|m| m.at)
            .filter(|end| *end > start.at)
            .unwrap_or_else(|| {
                start
                    .at
                    .saturating_add(self.length.or(start.length).unwrap_or(DEFAULT_LENGTH))
            });
        Some((start, end))
    }
}

/// What a follow-up does to its lead's appointments.
#[derive(Debug, Clone)]
pub(super) enum LeadAppointmentRule {
    Move(StartRule),
    Cancel,
}

fn selector(key: String, value: &Option<String>) -> Result<Option<String>, MappingConfigError> {
    match value {
        Some(sel) if sel.trim().is_empty() => Err(MappingConfigError::new(key, "is empty")),
        other => Ok(other.as_ref().map(|s| s.trim().to_owned())),
    }
}

fn length(
    key: String,
    text: &Option<String>,
) -> Result<Option<time::Duration>, MappingConfigError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let length = parse_duration(text).map_err(|m| MappingConfigError::new(key.clone(), m))?;
    time::Duration::try_from(length)
        .ok()
        .filter(|d| !d.is_zero() && *d <= MAX_LENGTH)
        .map(Some)
        .ok_or_else(|| MappingConfigError::new(key, "must be more than zero and at most 7 days"))
}

/// Checks and compiles `[[mapping.appointments]]`.
pub(super) fn compile_appointments(
    rules: &[AppointmentConfig],
) -> Result<Vec<CompiledAppointment>, MappingConfigError> {
    let mut out = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let key = |f: &str| format!("appointments[{i}].{f}");
        if rule.calendar_id.trim().is_empty() {
            return Err(MappingConfigError::new(
                key("calendar_id"),
                "is empty; give the GHL calendar id (Calendars → the calendar's settings)",
            ));
        }
        let from = selector(key("start_from"), &Some(rule.start_from.clone()))?.unwrap_or_default();
        let template = |name: &str, text: &Option<String>| {
            text.as_ref().map(|t| at_key(&key(name), t)).transpose()
        };
        out.push(CompiledAppointment {
            calendar_id: rule.calendar_id.trim().to_owned(),
            start: StartRule {
                from,
                time_from: selector(key("start_time_from"), &rule.start_time_from)?,
                length: length(key("duration"), &rule.duration)?,
            },
            end_from: selector(key("end_from"), &rule.end_from)?,
            title: template("title", &rule.title)?,
            notes: template("notes", &rule.notes)?,
            assigned_user_id: template("assigned_user_id", &rule.assigned_user_id)?,
            when: rule
                .when
                .as_ref()
                .map(|w| w.compile(&key("when")))
                .transpose()?,
        });
    }
    Ok(out)
}

/// Checks and compiles a follow-up rule's `appointment` setting (`key` makes its keys).
pub(super) fn compile_lead_appointment(
    rule: &FollowUpConfig,
    key: impl Fn(&str) -> String,
) -> Result<Option<LeadAppointmentRule>, MappingConfigError> {
    let move_keys = [
        ("appointment_from", rule.appointment_from.is_some()),
        (
            "appointment_time_from",
            rule.appointment_time_from.is_some(),
        ),
        ("appointment_duration", rule.appointment_duration.is_some()),
    ];
    match rule.appointment {
        Some(LeadAppointment::Move) => {
            let from = selector(key("appointment_from"), &rule.appointment_from)?.ok_or_else(
                || {
                    MappingConfigError::new(
                        key("appointment_from"),
                        "is required with appointment = \"move\": the answer holding the new start (e.g. \"install_date\")",
                    )
                },
            )?;
            Ok(Some(LeadAppointmentRule::Move(StartRule {
                from,
                time_from: selector(key("appointment_time_from"), &rule.appointment_time_from)?,
                length: length(key("appointment_duration"), &rule.appointment_duration)?,
            })))
        }
        other => {
            if let Some((name, _)) = move_keys.iter().find(|(_, set)| *set) {
                return Err(MappingConfigError::new(
                    key(name),
                    "only used with appointment = \"move\" (the new start of the lead's appointments)",
                ));
            }
            Ok(other.map(|_| LeadAppointmentRule::Cancel))
        }
    }
}

/// The appointments of `rules` whose `when` holds and whose start answer holds a date.
pub(super) fn appointment_steps(
    rules: &[CompiledAppointment],
    vars: &Vars<'_>,
    local: &LocalTime,
) -> Vec<Step> {
    let sub = vars.submission;
    rules
        .iter()
        .filter(|rule| rule.when.as_ref().is_none_or(|when| when.holds(vars)))
        .filter_map(|rule| {
            let (start, end) = rule.start.read(sub, rule.end_from.as_deref(), local)?;
            let render = |t: &Option<Template>| {
                t.as_ref()
                    .map(|t| t.render(vars).trim().to_owned())
                    .filter(|text| !text.is_empty())
            };
            Some(Step::BookAppointment {
                calendar_id: rule.calendar_id.clone(),
                title: render(&rule.title).unwrap_or_else(|| default_title(sub)),
                notes: render(&rule.notes),
                start_at: start.at,
                end_at: end,
                assigned_user_id: render(&rule.assigned_user_id),
            })
        })
        .collect()
}

/// `Appointment with <name>`, or `Appointment` for a delivery without a name.
fn default_title(sub: &Submission) -> String {
    let c = &sub.contact;
    let name = c.full_name.clone().unwrap_or_else(|| {
        [c.first_name.as_deref(), c.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ")
    });
    match name.trim() {
        "" => "Appointment".to_owned(),
        name => format!("Appointment with {name}"),
    }
}

impl LeadAppointmentRule {
    /// The step acting on the lead's appointments; a move without a date in its answer has none.
    pub(super) fn step(&self, sub: &Submission, local: &LocalTime) -> Option<Step> {
        match self {
            LeadAppointmentRule::Cancel => Some(Step::CancelLeadAppointments),
            LeadAppointmentRule::Move(rule) => {
                let (start, end) = rule.read(sub, None, local)?;
                Some(Step::MoveLeadAppointments {
                    start_at: start.at,
                    end_at: end,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::compile::CompiledMapping;
    use super::super::config::MappingConfig;
    use crate::domain::SourceName;
    use crate::sources::SourceKind;

    fn refused(json: &str) -> String {
        let config: MappingConfig = serde_json::from_str(json).unwrap();
        let source = SourceName::parse("dripjobs").unwrap();
        CompiledMapping::compile(&config, &source, SourceKind::parse("dripjobs").unwrap())
            .unwrap_err()
            .key
    }

    #[test]
    fn bad_appointment_keys_are_refused_by_name() {
        let cases = [
            (r#"{"time_zone":"America/Nowhere"}"#, "time_zone"),
            (r#"{"default_due_time":"25:00"}"#, "default_due_time"),
            (
                r#"{"appointments":[{"calendar_id":" ","start_from":"d"}]}"#,
                "appointments[0].calendar_id",
            ),
            (
                r#"{"appointments":[{"calendar_id":"c","start_from":""}]}"#,
                "appointments[0].start_from",
            ),
            (
                r#"{"appointments":[{"calendar_id":"c","start_from":"d","duration":"0s"}]}"#,
                "appointments[0].duration",
            ),
            (
                r#"{"appointments":[{"calendar_id":"c","start_from":"d","title":"{{nope}}"}]}"#,
                "appointments[0].title",
            ),
            (
                r#"{"follow_ups":[{"appointment":"move"}]}"#,
                "follow_ups[0].appointment_from",
            ),
            (
                r#"{"follow_ups":[{"appointment":"cancel","appointment_from":"d"}]}"#,
                "follow_ups[0].appointment_from",
            ),
            (
                r#"{"follow_ups":[{"appointment_duration":"1h"}]}"#,
                "follow_ups[0].appointment_duration",
            ),
        ];
        for (json, key) in cases {
            assert_eq!(refused(json), key, "{json}");
        }
        let unknown = serde_json::from_str::<MappingConfig>(
            r#"{"appointments":[{"calendar_id":"c","start_from":"d","calendar":"x"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(unknown.contains("unknown field `calendar`"), "{unknown}");
    }
}
