//! Follow-ups by reference: `mapping.references` and `[[mapping.follow_ups]]` compiled, a
//! delivery's references, and the rule and lead-task step of a follow-up (a delivery tied to an
//! earlier lead: it acts on that lead's contact and tasks instead of making a new lead).

use super::appointment_rules::{compile_lead_appointment, LeadAppointmentRule};
use super::condition::CompiledCondition;
use super::config::{LeadTasks, MappingConfig};
use super::due::{due_at, parse_due_in};
use super::error::MappingConfigError;
use super::local_time::LocalTime;
use super::opportunity_rules::{compile_move, CompiledOpportunityMove};
use super::task_rules::{compile_tasks, CompiledTask};
use super::template::{at_key, tag_at_key, Template};
use super::vars::Vars;
use crate::domain::plan::Step;
use crate::submission::Submission;

/// `follow_ups[].due_in` when unset.
const DEFAULT_DUE_IN: time::Duration = time::Duration::days(1);

/// One `[[mapping.follow_ups]]` rule, checked.
#[derive(Debug, Clone)]
pub(super) struct CompiledFollowUp {
    /// `None`: the rule holds for every delivery with a reference.
    when: Option<CompiledCondition>,
    pub(super) tags: Vec<Template>,
    pub(super) remove_tags: Vec<Template>,
    lead_tasks: LeadTaskRule,
    /// `None`: the mapping's own note.
    pub(super) note: Option<Template>,
    /// The rule's own new tasks.
    pub(super) tasks: Vec<CompiledTask>,
    /// What the rule changes on the lead's opportunity.
    pub(super) opportunity: Option<CompiledOpportunityMove>,
    /// What it does to the lead's appointments (`None`: nothing).
    lead_appointment: Option<LeadAppointmentRule>,
}

/// What a follow-up does to its lead's tasks.
#[derive(Debug, Clone)]
enum LeadTaskRule {
    Keep,
    Complete,
    Move {
        due_from: Option<String>,
        due_in: time::Duration,
    },
}

/// The reference selectors: `mapping.references`, else the tool's `defaults`.
pub(super) fn selectors(
    config: &MappingConfig,
    defaults: &[&str],
) -> Result<Vec<String>, MappingConfigError> {
    let Some(configured) = &config.references else {
        return Ok(defaults.iter().map(|s| (*s).to_owned()).collect());
    };
    let mut out: Vec<String> = Vec::new();
    for (i, selector) in configured.iter().enumerate() {
        let selector = selector.trim();
        if selector.is_empty() {
            return Err(MappingConfigError::new(
                format!("references[{i}]"),
                "is empty",
            ));
        }
        if !out.iter().any(|s| s == selector) {
            out.push(selector.to_owned());
        }
    }
    Ok(out)
}

/// Checks and compiles `[[mapping.follow_ups]]`.
pub(super) fn compile(config: &MappingConfig) -> Result<Vec<CompiledFollowUp>, MappingConfigError> {
    let mut out = Vec::new();
    for (i, rule) in config.follow_ups.iter().enumerate() {
        let key = |f: &str| format!("follow_ups[{i}].{f}");
        let lead_tasks = match rule.lead_tasks {
            LeadTasks::Move => LeadTaskRule::Move {
                due_from: match &rule.due_from {
                    Some(sel) if sel.trim().is_empty() => {
                        return Err(MappingConfigError::new(key("due_from"), "is empty"))
                    }
                    other => other.as_ref().map(|s| s.trim().to_owned()),
                },
                due_in: match &rule.due_in {
                    Some(text) => {
                        parse_due_in(text).map_err(|m| MappingConfigError::new(key("due_in"), m))?
                    }
                    None => DEFAULT_DUE_IN,
                },
            },
            keep_or_complete => {
                for (name, set) in [
                    ("due_from", rule.due_from.is_some()),
                    ("due_in", rule.due_in.is_some()),
                ] {
                    if set {
                        return Err(MappingConfigError::new(
                            key(name),
                            "only used with lead_tasks = \"move\" (the new due date of the lead's tasks)",
                        ));
                    }
                }
                match keep_or_complete {
                    LeadTasks::Complete => LeadTaskRule::Complete,
                    _ => LeadTaskRule::Keep,
                }
            }
        };
        let tags = |name: &str, list: &[String]| {
            list.iter()
                .enumerate()
                .map(|(j, tag)| tag_at_key(&key(&format!("{name}[{j}]")), tag))
                .collect::<Result<Vec<_>, _>>()
        };
        out.push(CompiledFollowUp {
            when: rule
                .when
                .as_ref()
                .map(|w| w.compile(&key("when")))
                .transpose()?,
            tags: tags("tags", &rule.tags)?,
            remove_tags: tags("remove_tags", &rule.remove_tags)?,
            lead_tasks,
            note: rule
                .note
                .as_ref()
                .map(|n| at_key(&key("note"), n))
                .transpose()?,
            tasks: compile_tasks(&rule.tasks, &format!("follow_ups[{i}].tasks"))?,
            opportunity: rule
                .opportunity
                .as_ref()
                .map(|o| compile_move(&key("opportunity"), o))
                .transpose()?,
            lead_appointment: compile_lead_appointment(rule, key)?,
        });
    }
    Ok(out)
}

/// The submission's references, `<tool>/<selector>:<value>`: each selector's answer (else the
/// extra of that name), trimmed, non-blank, de-duplicated, in config order.
pub(super) fn references(selectors: &[String], tool: &str, sub: &Submission) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for selector in selectors {
        let value = sub
            .answer(selector)
            .map(|a| a.value.display())
            .or_else(|| sub.extras.other.get(selector).cloned());
        let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        let reference = format!("{tool}/{selector}:{}", value.trim());
        if !out.contains(&reference) {
            out.push(reference);
        }
    }
    out
}

/// The first rule that holds for this delivery.
pub(super) fn matching<'a>(
    rules: &'a [CompiledFollowUp],
    vars: &Vars<'_>,
) -> Option<&'a CompiledFollowUp> {
    rules
        .iter()
        .find(|r| r.when.as_ref().is_none_or(|w| w.holds(vars)))
}

impl CompiledFollowUp {
    /// The step acting on the lead's tasks, if the rule has one.
    pub(super) fn lead_task_step(&self, sub: &Submission, local: &LocalTime) -> Option<Step> {
        match &self.lead_tasks {
            LeadTaskRule::Keep => None,
            LeadTaskRule::Complete => Some(Step::CompleteLeadTasks),
            LeadTaskRule::Move { due_from, due_in } => Some(Step::MoveLeadTasks {
                due_at: due_at(sub, due_from.as_deref(), *due_in, local),
            }),
        }
    }

    /// The step acting on the lead's appointments, if the rule has one.
    pub(super) fn lead_appointment_step(
        &self,
        sub: &Submission,
        local: &LocalTime,
    ) -> Option<Step> {
        self.lead_appointment.as_ref()?.step(sub, local)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;
    use time::macros::datetime;
    use time::OffsetDateTime;

    use super::super::build::{build_plan, MappingError};
    use super::super::compile::CompiledMapping;
    use super::*;
    use crate::body::BodyLimits;
    use crate::domain::plan::Plan;
    use crate::domain::SourceName;
    use crate::sources::{normalize, ReadOptions, SourceKind};

    const AT: OffsetDateTime = datetime!(2026-05-01 12:00 UTC);

    /// The example's DripJobs rules: the lead's task moves to the install date when the
    /// appointment is set; the completed project completes it and swaps the stage tags.
    const DRIPJOBS: &str = r#"{
        "tags": {"when": [{"tag": "proposal-accepted", "when": {"field": "answers.price", "present": true}}]},
        "tasks": [{"title": "Schedule install for {{name}}", "due_in": "1d"}],
        "follow_ups": [
            {"when": {"field": "event", "equals": "appointment_set"}, "tags": ["appointment-set"],
             "lead_tasks": "move", "due_from": "install_date"},
            {"when": {"field": "event", "equals": "project_completed"}, "tags": ["project-completed"],
             "remove_tags": ["proposal-accepted", "appointment-set"], "lead_tasks": "complete"}
        ]
    }"#;

    fn plan(kind: &str, mapping: &str, body: &str) -> Result<Plan, MappingError> {
        let kind = SourceKind::parse(kind).unwrap();
        let source = SourceName::parse(kind.as_str()).unwrap();
        let config: MappingConfig = serde_json::from_str(mapping).unwrap();
        let fields = BTreeMap::new();
        let options = ReadOptions {
            default_country: None,
            submission_id: None,
            dedupe_field: None,
            strip_html: None,
            fields: &fields,
        };
        let sub = normalize(
            &source,
            kind,
            &options,
            &BodyLimits::UNLIMITED,
            Some("application/json"),
            &Bytes::from(body.to_owned()),
            AT,
        )
        .unwrap();
        build_plan(
            &CompiledMapping::compile(&config, &source, kind).unwrap(),
            &sub,
        )
    }

    fn kinds(plan: &Plan) -> Vec<&'static str> {
        plan.steps.iter().map(|s| s.kind().as_str()).collect()
    }

    fn tag_steps(plan: &Plan) -> (Vec<String>, Vec<String>) {
        let mut out = (Vec::new(), Vec::new());
        for step in &plan.steps {
            match step {
                Step::AddTags { tags } => out.0.clone_from(tags),
                Step::RemoveTags { tags } => out.1.clone_from(tags),
                _ => {}
            }
        }
        out
    }

    #[test]
    fn a_dripjobs_lead_records_its_deal() {
        let lead = plan(
            "dripjobs",
            DRIPJOBS,
            r#"{"customer_name":"Jane Sample","customer_email":"jane@example.com","deal_id":" 1234567 ","price":"4500"}"#,
        )
        .unwrap();
        assert_eq!(
            kinds(&lead),
            ["upsert_contact", "add_tags", "create_task", "create_note"]
        );
        assert_eq!(lead.references, ["dripjobs/deal_id:1234567"]);
        assert_eq!(lead.revision_of, None);
        assert_eq!(tag_steps(&lead).0, ["dripjobs", "proposal-accepted"]);
    }

    #[test]
    fn an_appointment_moves_the_leads_tasks_to_the_install_date() {
        let p = plan(
            "dripjobs",
            DRIPJOBS,
            r#"{"deal_id":"1234567","install_date":"5/14/2026","stage":"appointment_set"}"#,
        )
        .unwrap();
        assert_eq!(
            kinds(&p),
            ["lead_contact", "add_tags", "move_lead_tasks", "create_note"]
        );
        assert_eq!(
            p.steps[0],
            Step::LeadContact {
                reference: "dripjobs/deal_id:1234567".to_owned()
            }
        );
        assert_eq!(tag_steps(&p).0, ["dripjobs", "appointment-set"]);
        assert_eq!(
            p.steps[2],
            Step::MoveLeadTasks {
                due_at: datetime!(2026-05-14 09:00 UTC)
            }
        );
        let Step::CreateNote { body } = &p.steps[3] else {
            panic!("{p:?}")
        };
        assert!(body.contains("Install Date: 5/14/2026"), "{body}");
        assert_eq!(p.references, ["dripjobs/deal_id:1234567"]);
        // No date to read: the fallback offset (default one day after receipt).
        let p = plan(
            "dripjobs",
            DRIPJOBS,
            r#"{"deal_id":"1234567","install_date":"TBD","stage":"appointment_set"}"#,
        )
        .unwrap();
        assert_eq!(
            p.steps[2],
            Step::MoveLeadTasks {
                due_at: AT + time::Duration::days(1)
            }
        );
    }

    #[test]
    fn a_completed_project_completes_the_tasks_and_swaps_the_tags() {
        let p = plan(
            "dripjobs",
            DRIPJOBS,
            r#"{"deal_id":"1234567","stage":"project_completed"}"#,
        )
        .unwrap();
        assert_eq!(
            kinds(&p),
            [
                "lead_contact",
                "add_tags",
                "remove_tags",
                "complete_lead_tasks",
                "create_note"
            ]
        );
        assert_eq!(
            tag_steps(&p),
            (
                vec!["dripjobs".to_owned(), "project-completed".to_owned()],
                vec!["proposal-accepted".to_owned(), "appointment-set".to_owned()]
            )
        );
        // With the customer's email, the follow-up upserts its own contact; the lead's task
        // is still completed and no new task is made.
        let p = plan(
            "dripjobs",
            DRIPJOBS,
            r#"{"deal_id":"1234567","stage":"project_completed","customer_email":"jane@example.com","price":"4500"}"#,
        )
        .unwrap();
        assert_eq!(
            kinds(&p),
            [
                "upsert_contact",
                "add_tags",
                "remove_tags",
                "complete_lead_tasks",
                "create_note"
            ]
        );
        // A rule's note replaces the mapping's; an empty one writes none.
        let quiet = DRIPJOBS.replace(
            r#""lead_tasks": "complete"}"#,
            r#""lead_tasks": "complete", "note": ""}"#,
        );
        let p = plan(
            "dripjobs",
            &quiet,
            r#"{"deal_id":"1234567","stage":"project_completed"}"#,
        )
        .unwrap();
        assert!(!kinds(&p).contains(&"create_note"), "{p:?}");
    }

    #[test]
    fn without_contact_data_or_references_the_missing_contact_rule_applies() {
        let e = plan("dripjobs", DRIPJOBS, r#"{"install_date":"5/14/2026"}"#).unwrap_err();
        assert!(matches!(e, MappingError::NoContact { .. }), "{e}");
        // `references = []` turns follow-ups off.
        let off = DRIPJOBS.replacen('{', r#"{"references": [],"#, 1);
        let e = plan(
            "dripjobs",
            &off,
            r#"{"deal_id":"1234567","stage":"appointment_set"}"#,
        )
        .unwrap_err();
        assert!(matches!(e, MappingError::NoContact { .. }), "{e}");
        // …and a lead then records no reference.
        let lead = plan(
            "dripjobs",
            &off,
            r#"{"deal_id":"1234567","customer_email":"jane@example.com"}"#,
        )
        .unwrap();
        assert!(lead.references.is_empty());
        // With `create_by_name`, a named delivery is a lead itself (it records its reference);
        // one without a name still follows its lead.
        let by_name = r#"{"on_missing_contact":"create_by_name"}"#;
        let p = plan(
            "dripjobs",
            by_name,
            r#"{"deal_id":"1234567","customer_name":"Jane Sample"}"#,
        )
        .unwrap();
        assert_eq!(kinds(&p), ["create_contact", "add_tags", "create_note"]);
        assert_eq!(p.references, ["dripjobs/deal_id:1234567"]);
        let p = plan("dripjobs", by_name, r#"{"deal_id":"1234567","notes":"hi"}"#).unwrap();
        assert_eq!(kinds(&p), ["lead_contact", "add_tags", "create_note"]);
        // `skip` still skips it, unless a follow-up rule names it.
        let skip = DRIPJOBS.replacen('{', r#"{"on_missing_contact": "skip","#, 1);
        let p = plan(
            "dripjobs",
            &skip,
            r#"{"deal_id":"1234567","stage":"other"}"#,
        )
        .unwrap();
        assert!(p.steps.is_empty(), "{p:?}");
        let p = plan(
            "dripjobs",
            &skip,
            r#"{"deal_id":"1234567","stage":"project_completed"}"#,
        )
        .unwrap();
        assert_eq!(kinds(&p)[0], "lead_contact");
    }

    /// The plans `formbridge map` shows for a job's appointment: booked when it is set (in the
    /// mapping's zone), moved or cancelled by later stages.
    #[test]
    fn appointments_are_booked_moved_and_cancelled_by_stage() {
        let mapping = DRIPJOBS.replacen(
            '{',
            r#"{"time_zone": "America/Phoenix",
                "appointments": [{"calendar_id": "cal1", "start_from": "install_date",
                    "start_time_from": "install_time", "duration": "4h",
                    "when": {"field": "event", "equals": "appointment_set"}}],"#,
            1,
        );
        let mapping = mapping.replacen(
            r#""follow_ups": ["#,
            r#""follow_ups": [
                {"when": {"field": "event", "equals": "rescheduled"}, "appointment": "move",
                 "appointment_from": "install_date"},
                {"when": {"field": "event", "equals": "cancelled"}, "appointment": "cancel"},"#,
            1,
        );
        let set = plan(
            "dripjobs",
            &mapping,
            r#"{"deal_id":"1","install_date":"5/14/2026","install_time":"8:00 AM","stage":"appointment_set"}"#,
        )
        .unwrap();
        assert_eq!(
            kinds(&set),
            [
                "lead_contact",
                "add_tags",
                "move_lead_tasks",
                "book_appointment",
                "create_note"
            ]
        );
        let Step::BookAppointment {
            calendar_id,
            title,
            start_at,
            end_at,
            ..
        } = &set.steps[3]
        else {
            panic!("{set:?}")
        };
        assert_eq!(calendar_id, "cal1");
        assert_eq!(title, "Appointment");
        assert_eq!(*start_at, datetime!(2026-05-14 08:00 -7));
        assert_eq!(*end_at, datetime!(2026-05-14 12:00 -7));
        // The lead's task moves to 09:00 in Phoenix.
        assert_eq!(
            set.steps[2],
            Step::MoveLeadTasks {
                due_at: datetime!(2026-05-14 09:00 -7)
            }
        );
        let moved = plan(
            "dripjobs",
            &mapping,
            r#"{"deal_id":"1","install_date":"2026-05-21","stage":"rescheduled"}"#,
        )
        .unwrap();
        assert_eq!(
            moved.steps[2],
            Step::MoveLeadAppointments {
                start_at: datetime!(2026-05-21 09:00 -7),
                end_at: datetime!(2026-05-21 10:00 -7),
            }
        );
        // Without a date to move to, nothing moves.
        let undated = plan(
            "dripjobs",
            &mapping,
            r#"{"deal_id":"1","install_date":"TBD","stage":"rescheduled"}"#,
        )
        .unwrap();
        assert!(!kinds(&undated).contains(&"move_lead_appointments"));
        let cancelled = plan(
            "dripjobs",
            &mapping,
            r#"{"deal_id":"1","stage":"cancelled"}"#,
        )
        .unwrap();
        assert!(cancelled.steps.contains(&Step::CancelLeadAppointments));
    }

    #[test]
    fn other_selectors_and_extras_make_references() {
        let p = plan(
            "generic",
            r#"{"references":["Order", "ref.id", "Order", "missing"]}"#,
            r#"{"order":"A-1","ref":{"id":"7"},"email":"a@b.io"}"#,
        )
        .unwrap();
        assert_eq!(p.references, ["generic/Order:A-1", "generic/ref.id:7"]);
        assert_eq!(kinds(&p)[0], "upsert_contact");
    }

    #[test]
    fn jivochat_chat_events_without_contact_still_plan_nothing() {
        let p = plan(
            "jivochat",
            "{}",
            r#"{"event_name":"chat_accepted","chat_id":7636,"client_id":1217,"visitor":{"name":"John"}}"#,
        )
        .unwrap();
        assert!(p.steps.is_empty(), "{p:?}");
        // Its references are kept: a later follow-up of the chat knows it made no contact.
        assert_eq!(
            p.references,
            ["jivochat/chat_id:7636", "jivochat/client_id:1217"]
        );
        // Even when a rule would match it.
        let p = plan(
            "jivochat",
            r#"{"follow_ups":[{"tags":["chatted"]}]}"#,
            r#"{"event_name":"chat_updated","chat_id":7636,"client_id":1217}"#,
        )
        .unwrap();
        assert!(p.steps.is_empty(), "{p:?}");
        // With the visitor's email it updates the contact and records the chat and client.
        let p = plan(
            "jivochat",
            "{}",
            r#"{"event_name":"chat_accepted","chat_id":7636,"client_id":1217,"visitor":{"email":"john@example.com"}}"#,
        )
        .unwrap();
        assert_eq!(kinds(&p), ["upsert_contact", "add_tags"]);
        assert_eq!(
            p.references,
            ["jivochat/chat_id:7636", "jivochat/client_id:1217"]
        );
    }

    #[test]
    fn an_anonymous_finished_chat_is_skipped_by_default_and_follows_its_lead_with_error() {
        let chat = r#"{"event_name":"chat_finished","chat_id":7636,"client_id":1217,
                "chat":{"messages":[{"message":"Hi","type":"visitor","timestamp":1700000000}]}}"#;
        // A chat tool skips a visitor who left no details (no dead letter), saying why, and
        // keeps the references.
        let p = plan("jivochat", "{}", chat).unwrap();
        assert!(p.steps.is_empty(), "{p:?}");
        let why = p.nothing_to_do.clone().unwrap_or_default();
        assert!(why.contains("no usable email or phone"), "{why}");
        assert!(why.contains("the default for chat tools"), "{why}");
        assert_eq!(
            p.references,
            ["jivochat/chat_id:7636", "jivochat/client_id:1217"]
        );
        // With "error", it follows its lead.
        let error = r#"{"on_missing_contact":"error"}"#;
        let p = plan("jivochat", error, chat).unwrap();
        assert_eq!(kinds(&p), ["lead_contact", "add_tags", "create_note"]);
        assert_eq!(p.nothing_to_do, None);
        assert_eq!(
            p.steps[0],
            Step::LeadContact {
                reference: "jivochat/chat_id:7636".to_owned()
            }
        );
        assert_eq!(tag_steps(&p).0, ["jivochat"]);
        let Step::CreateNote { body } = &p.steps[2] else {
            panic!("{p:?}")
        };
        assert!(body.contains("visitor: Hi"), "{body}");
        // Without a reference it is a missing contact, as before.
        let e = plan(
            "jivochat",
            error,
            r#"{"event_name":"chat_finished","chat":{"messages":[{"message":"Hi","type":"visitor"}]}}"#,
        )
        .unwrap_err();
        assert!(matches!(e, MappingError::NoContact { .. }), "{e}");
        // A form without email or phone is still a dead letter by default.
        let e = plan("powr", "{}", r#"{"submission_id":"s1","Your Name":"Ann"}"#).unwrap_err();
        assert!(matches!(e, MappingError::NoContact { .. }), "{e}");
    }

    #[test]
    fn a_callback_on_a_follow_up_is_still_a_task() {
        let p = plan(
            "jivochat",
            r#"{"follow_ups":[{"when":{"field":"event","equals":"call_event"},"tags":["called"]}],
                "tasks":[{"title":"Lead task"}]}"#,
            r#"{"event_name":"call_event","chat_id":7636,"client_id":1217,
                "call":{"type":"callback","phone":"+14084987855","status":"ok"}}"#,
        )
        .unwrap();
        assert_eq!(
            kinds(&p),
            ["upsert_contact", "add_tags", "create_task", "create_note"]
        );
        let Step::CreateTask { title, .. } = &p.steps[2] else {
            panic!("{p:?}")
        };
        assert!(title.starts_with("Callback requested"), "{title}");
    }

    fn compile_err(mapping: &str) -> MappingConfigError {
        let config: MappingConfig = serde_json::from_str(mapping).unwrap();
        CompiledMapping::compile(
            &config,
            &SourceName::parse("dripjobs").unwrap(),
            SourceKind::parse("dripjobs").unwrap(),
        )
        .unwrap_err()
    }

    #[test]
    fn rules_are_checked_at_start_naming_the_key() {
        for (mapping, key, message) in [
            (
                r#"{"follow_ups":[{"tags":["a"]},{"due_from":"install_date"}]}"#,
                "follow_ups[1].due_from",
                "only used with lead_tasks = \"move\"",
            ),
            (
                r#"{"follow_ups":[{"lead_tasks":"complete","due_in":"2d"}]}"#,
                "follow_ups[0].due_in",
                "only used with lead_tasks",
            ),
            (
                r#"{"follow_ups":[{"lead_tasks":"move","due_in":"soon"}]}"#,
                "follow_ups[0].due_in",
                "not a duration",
            ),
            (
                r#"{"follow_ups":[{"lead_tasks":"move","due_in":"20years"}]}"#,
                "follow_ups[0].due_in",
                "more than ten years",
            ),
            (
                r#"{"follow_ups":[{"lead_tasks":"move","due_from":" "}]}"#,
                "follow_ups[0].due_from",
                "is empty",
            ),
            (
                r#"{"follow_ups":[{"tags":["ok","{{nope}}"]}]}"#,
                "follow_ups[0].tags[1]",
                "unknown template variable",
            ),
            (
                r#"{"follow_ups":[{"remove_tags":[""]}]}"#,
                "follow_ups[0].remove_tags[0]",
                "is empty",
            ),
            (
                r#"{"follow_ups":[{"tasks":[{"title":"Ask for a review","due_in":"soon"}]}]}"#,
                "follow_ups[0].tasks[0].due_in",
                "not a duration",
            ),
            (
                r#"{"follow_ups":[{"tasks":[{"title":" "}]}]}"#,
                "follow_ups[0].tasks[0].title",
                "is empty",
            ),
            (
                r#"{"follow_ups":[{"note":"{{answers"}]}"#,
                "follow_ups[0].note",
                "unclosed",
            ),
            (
                r#"{"follow_ups":[{"when":{"field":"stage","equals":"x"}}]}"#,
                "follow_ups[0].when.field",
                "unknown field",
            ),
            (
                r#"{"references":["deal_id"," "]}"#,
                "references[1]",
                "is empty",
            ),
        ] {
            let e = compile_err(mapping);
            assert_eq!(e.key, key, "{mapping}: {e}");
            assert!(e.message.contains(message), "{mapping}: {e}");
        }
        for unknown in [
            r#"{"follow_ups":[{"lead_task":"move"}]}"#,
            r#"{"follow_ups":[{"lead_tasks":"close"}]}"#,
            r#"{"follow_up":[]}"#,
        ] {
            assert!(
                serde_json::from_str::<MappingConfig>(unknown).is_err(),
                "{unknown}"
            );
        }
    }
}
