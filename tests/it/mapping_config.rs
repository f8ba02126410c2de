//! Mapping config: the example configs in config/sources/, validation errors naming the exact
//! key, and the configurable parts of the plan (tags, tasks, custom fields, selectors).
#![allow(clippy::unwrap_used)]

use std::path::Path;

use bytes::Bytes;
use formbridge::body::BodyLimits;
use formbridge::dispatch::preview::content_type_for_file;
use formbridge::dispatch::preview::preview;
use formbridge::domain::plan::{Plan, Step};
use formbridge::domain::SourceName;
use formbridge::mapping::config::MappingConfig;
use formbridge::mapping::{build_plan, CompiledMapping, MappingError};
use formbridge::runtime::SourceRuntime;
use formbridge::settings::SourceSettings;
use formbridge::sources::{normalize, SourceKind};
use formbridge::submission::Submission;
use time::macros::datetime;
use time::OffsetDateTime;

const AT: OffsetDateTime = datetime!(2025-01-02 03:04:05 UTC);

fn example(source: &str) -> SourceSettings {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("config/sources/{source}.toml"));
    let text = std::fs::read_to_string(path).unwrap();
    config::Config::builder()
        .add_source(config::File::from_str(&text, config::FileFormat::Toml))
        .build()
        .unwrap()
        .get::<SourceSettings>(&format!("sources.{source}"))
        .unwrap_or_else(|e| panic!("{source}.toml: {e}"))
}

/// The source's mapping, compiled as at start.
fn compiled(name: &SourceName, kind: SourceKind, settings: &SourceSettings) -> CompiledMapping {
    CompiledMapping::compile(&settings.mapping, name, kind).unwrap()
}

fn settings(mapping_json: &str) -> SourceSettings {
    serde_json::from_str(&format!(r#"{{"mapping":{mapping_json}}}"#)).unwrap()
}

async fn run(
    source: &str,
    fixture: &str,
    settings: &SourceSettings,
) -> (Submission, Result<Plan, MappingError>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(fixture);
    let body = std::fs::read(&path).unwrap();
    let ct = content_type_for_file(&path, &body);
    run_body(source, ct.as_deref(), body, settings)
}

/// Like [`run`] for a body written in the test.
fn run_body(
    source: &str,
    ct: Option<&str>,
    body: Vec<u8>,
    settings: &SourceSettings,
) -> (Submission, Result<Plan, MappingError>) {
    let name = SourceName::parse(source).unwrap();
    let kind = settings.kind_for(&name);
    let sub = normalize(
        &name,
        kind,
        &settings.read_options(),
        &BodyLimits::UNLIMITED,
        ct,
        &Bytes::from(body),
        AT,
    )
    .unwrap();
    let plan = build_plan(&compiled(&name, kind, settings), &sub);
    (sub, plan)
}

fn tags(plan: &Plan) -> Vec<String> {
    plan.steps
        .iter()
        .find_map(|s| match s {
            Step::AddTags { tags } => Some(tags.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn tasks(plan: &Plan) -> Vec<(String, Option<String>, OffsetDateTime)> {
    plan.steps
        .iter()
        .filter_map(|s| match s {
            Step::CreateTask {
                title,
                body,
                due_at,
                ..
            } => Some((title.clone(), body.clone(), *due_at)),
            _ => None,
        })
        .collect()
}

fn kinds(plan: &Plan) -> Vec<&'static str> {
    plan.steps.iter().map(|s| s.kind().as_str()).collect()
}

#[test]
fn every_example_config_loads_and_validates() {
    for source in [
        "jotform",
        "jivochat",
        "dripjobs",
        "powr",
        "123formbuilder",
        "typeform",
    ] {
        let s = example(source);
        let name = SourceName::parse(source).unwrap();
        CompiledMapping::compile(&s.mapping, &name, s.kind_for(&name))
            .unwrap_or_else(|e| panic!("{source}.toml: {e}"));
    }
}

#[tokio::test]
async fn jotform_example() {
    let s = example("jotform");
    let (_, plan) = run(
        "jotform",
        "jotform/enterprise_consent-widget.ASSEMBLED.multipart",
        &s,
    )
    .await;
    let plan = plan.unwrap();
    assert_eq!(kinds(&plan), ["upsert_contact", "add_tags", "create_note"]);
    assert_eq!(
        tags(&plan),
        ["jotform", "website-lead", "enterprise", "has-email"]
    );
    let Step::UpsertContact { contact } = &plan.steps[0] else {
        panic!()
    };
    assert_eq!(
        contact.custom_fields[0].key.as_deref(),
        Some("contact.form_title")
    );
    assert_eq!(
        contact.custom_fields[0].value,
        "Consent form (placeholder title)"
    );
}

#[tokio::test]
async fn jivochat_example() {
    let s = example("jivochat");
    let (_, plan) = run("jivochat", "jivochat/offline_message.json", &s).await;
    let plan = plan.unwrap();
    assert_eq!(
        kinds(&plan),
        ["upsert_contact", "add_tags", "create_task", "create_note"]
    );
    assert_eq!(tags(&plan), ["jivochat", "jivo-offline", "from-google-ads"]);
    let t = tasks(&plan);
    assert_eq!(t[0].0, "Reply to John Smith's offline message");
    assert_eq!(
        t[0].1.as_deref(),
        Some("Message text\n\nPage: http://example.com/")
    );
    assert_eq!(t[0].2, datetime!(2025-01-02 05:04:05 UTC));
    // chat_accepted with the visitor's details updates the contact, with no note.
    let (_, plan) = run("jivochat", "jivochat/chat_accepted.json", &s).await;
    let plan = plan.unwrap();
    assert_eq!(kinds(&plan)[0], "upsert_contact");
    assert!(!kinds(&plan).contains(&"create_note"), "{:?}", kinds(&plan));
}

#[tokio::test]
async fn dripjobs_example() {
    let s = example("dripjobs");
    let (_, plan) = run(
        "dripjobs",
        "dripjobs/zapier_proposal-accepted.ASSEMBLED.json",
        &s,
    )
    .await;
    let plan = plan.unwrap();
    assert_eq!(
        kinds(&plan),
        ["upsert_contact", "add_tags", "create_task", "create_note"]
    );
    assert_eq!(tags(&plan), ["dripjobs", "proposal-accepted"]);
    let t = tasks(&plan);
    assert_eq!(t[0].0, "Schedule install for Jane Sample");
    assert_eq!(
        t[0].1.as_deref(),
        Some("Deal 1234567: Flake Garage Floor (450 sqft, $4500.00)\n123 Example St, Prescott")
    );
    assert_eq!(t[0].2, datetime!(2025-01-03 03:04:05 UTC));
    let Step::UpsertContact { contact } = &plan.steps[0] else {
        panic!()
    };
    assert_eq!(contact.custom_fields[0].value, "Flake Garage Floor");
    assert_eq!(
        contact.get(formbridge::submission::ContactField::CompanyName),
        None,
        "the preset ignores the brand key `company`"
    );
    // The lead records its deal, so the job's later Zaps find it.
    assert_eq!(plan.references, ["dripjobs/deal_id:1234567"]);
}

/// The example's follow-ups: the later Zaps of the job carry the deal id (and a `stage` the
/// user adds in the Zap) but no email or phone, and act on the lead's contact and task.
#[tokio::test]
async fn dripjobs_example_follow_ups() {
    let s = example("dripjobs");
    let json = Some("application/json");
    // The Appointment Set fixture plus the Zap's static `stage` field.
    let mut appointment: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/dripjobs/zapier_appointment-set.ASSEMBLED.json"),
        )
        .unwrap(),
    )
    .unwrap();
    appointment["stage"] = "appointment_set".into();
    let (_, plan) = run_body("dripjobs", json, appointment.to_string().into_bytes(), &s);
    let plan = plan.unwrap();
    assert_eq!(
        kinds(&plan),
        ["lead_contact", "add_tags", "move_lead_tasks", "create_note"]
    );
    assert_eq!(
        plan.steps[0],
        Step::LeadContact {
            reference: "dripjobs/deal_id:1234567".to_owned()
        }
    );
    assert_eq!(tags(&plan), ["dripjobs", "appointment-set"]);
    assert_eq!(
        plan.steps[2],
        Step::MoveLeadTasks {
            due_at: datetime!(2026-05-14 09:00 UTC)
        }
    );

    let completed = br#"{"deal_id":"1234567","stage":"project_completed"}"#.to_vec();
    let (_, plan) = run_body("dripjobs", json, completed, &s);
    let plan = plan.unwrap();
    assert_eq!(
        kinds(&plan),
        [
            "lead_contact",
            "add_tags",
            "remove_tags",
            "complete_lead_tasks",
            "create_task",
            "create_note"
        ]
    );
    assert!(
        matches!(&plan.steps[4], Step::CreateTask { title, .. } if title == "Ask for a review (deal 1234567)"),
        "{:?}",
        plan.steps[4]
    );
    assert_eq!(tags(&plan), ["dripjobs", "project-completed"]);
    assert!(plan.steps.contains(&Step::RemoveTags {
        tags: vec!["proposal-accepted".to_owned(), "appointment-set".to_owned()]
    }));
    assert!(plan.steps.contains(&Step::CreateNote {
        body: "Project completed (deal 1234567).".to_owned()
    }));

    // The fixture as recorded (no stage): no rule holds, but it has no email or phone and a
    // deal id — the default follow-up (source tag and note, the lead's task kept).
    let (_, plan) = run(
        "dripjobs",
        "dripjobs/zapier_appointment-set.ASSEMBLED.json",
        &s,
    )
    .await;
    assert_eq!(
        kinds(&plan.unwrap()),
        ["lead_contact", "add_tags", "create_note"]
    );
}

#[tokio::test]
async fn powr_example() {
    let s = example("powr");
    let (_, plan) = run("powr", "powr/zapier_contact-form.SYNTHETIC.json", &s).await;
    assert_eq!(
        tags(&plan.unwrap()),
        ["powr", "facebook", "service:garage floor", "service:patio"]
    );
}

#[tokio::test]
async fn formbuilder123_example() {
    let s = example("123formbuilder");
    let (_, plan) = run(
        "123formbuilder",
        "123formbuilder/webhook_quote-request.SYNTHETIC.multipart",
        &s,
    )
    .await;
    let plan = plan.unwrap();
    assert_eq!(
        tags(&plan),
        ["123formbuilder", "kitchen remodel", "bathroom remodel"]
    );
    let t = tasks(&plan);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].0, "Send a quote to Ana");
    assert_eq!(t[0].2, datetime!(2025-01-02 07:04:05 UTC));
    // The condition does not hold for the urlencoded fixture (no services): no task.
    let (_, plan) = run(
        "123formbuilder",
        "123formbuilder/webhook_contact.SYNTHETIC.urlencoded",
        &s,
    )
    .await;
    assert!(tasks(&plan.unwrap()).is_empty());
}

fn validate(
    mapping_json: &str,
    kind: SourceKind,
) -> Result<(), formbridge::mapping::MappingConfigError> {
    let m: MappingConfig = serde_json::from_str(mapping_json).unwrap();
    CompiledMapping::compile(&m, &SourceName::parse("x").unwrap(), kind).map(drop)
}

#[test]
fn validation_names_the_exact_key() {
    let cases: &[(&str, SourceKind, &str, &str)] = &[
        (
            r#"{"tasks":[{"title":"Call {{frist_name}}"}]}"#,
            SourceKind::parse("jotform").unwrap(),
            "tasks[0].title",
            "unknown template variable `frist_name`",
        ),
        (
            r#"{"tasks":[{"title":"ok"},{"title":"x","body":"{{email"}]}"#,
            SourceKind::parse("jotform").unwrap(),
            "tasks[1].body",
            "unclosed",
        ),
        (
            r#"{"tasks":[{"title":"ok","due_in":"tomorrow"}]}"#,
            SourceKind::parse("jotform").unwrap(),
            "tasks[0].due_in",
            "not a duration",
        ),
        (
            r#"{"tasks":[{"title":"ok","when":{"field":"email","equals":"a","contains":"b"}}]}"#,
            SourceKind::parse("jotform").unwrap(),
            "tasks[0].when",
            "exactly one",
        ),
        (
            r#"{"tags":{"when":[{"tag":"t","when":{"field":"answers.q1","matches":"(["}}]}}"#,
            SourceKind::parse("jotform").unwrap(),
            "tags.when[0].when.matches",
            "bad regex",
        ),
        (
            r#"{"tags":{"when":[{"tag":"t","when":{"field":"nope","present":true}}]}}"#,
            SourceKind::parse("jotform").unwrap(),
            "tags.when[0].when.field",
            "unknown field",
        ),
        (
            r#"{"tags":{"static":["ok","{{bad}}"]}}"#,
            SourceKind::parse("jotform").unwrap(),
            "tags.static[1]",
            "unknown template variable",
        ),
        (
            r#"{"custom_fields":[{"id":"a","key":"b","answer":"q1"}]}"#,
            SourceKind::parse("jotform").unwrap(),
            "custom_fields[0]",
            "`id` or `key`",
        ),
        (
            r#"{"custom_fields":[{"id":"a"}]}"#,
            SourceKind::parse("jotform").unwrap(),
            "custom_fields[0]",
            "`answer` or `value`",
        ),
        (
            r#"{"note":{"template":"{{answers.}}"}}"#,
            SourceKind::parse("jotform").unwrap(),
            "note.template",
            "unknown template variable",
        ),
        (
            r#"{"values":{"timezone":"{{tz}}"}}"#,
            SourceKind::parse("jotform").unwrap(),
            "values.timezone",
            "unknown template variable",
        ),
        (
            r#"{"default_country":"USA"}"#,
            SourceKind::parse("jotform").unwrap(),
            "default_country",
            "unknown default country",
        ),
        (
            r#"{"contact_events":["chat_finished"]}"#,
            SourceKind::parse("jotform").unwrap(),
            "contact_events",
            "only used by jivochat",
        ),
        (
            r#"{"contact_events":["chat_done"]}"#,
            SourceKind::parse("jivochat").unwrap(),
            "contact_events[0]",
            "unknown JivoChat event",
        ),
        (
            r#"{"submission_id":"id"}"#,
            SourceKind::parse("jivochat").unwrap(),
            "submission_id",
            "generic-kind",
        ),
        (
            r#"{"fields":{"email":" "}}"#,
            SourceKind::generic(),
            "fields.email",
            "empty",
        ),
        (
            r#"{"follow_ups":[{"lead_tasks":"complete","due_from":"install_date"}]}"#,
            SourceKind::parse("dripjobs").unwrap(),
            "follow_ups[0].due_from",
            "only used with lead_tasks = \"move\"",
        ),
        (
            r#"{"follow_ups":[{"tags":["a"]},{"lead_tasks":"move","due_in":"next week"}]}"#,
            SourceKind::parse("dripjobs").unwrap(),
            "follow_ups[1].due_in",
            "not a duration",
        ),
        (
            r#"{"follow_ups":[{"remove_tags":["{{stage}}"]}]}"#,
            SourceKind::parse("dripjobs").unwrap(),
            "follow_ups[0].remove_tags[0]",
            "unknown template variable `stage`",
        ),
        (
            r#"{"follow_ups":[{"when":{"field":"event","equals":"a","present":true}}]}"#,
            SourceKind::parse("dripjobs").unwrap(),
            "follow_ups[0].when",
            "exactly one",
        ),
        (
            r#"{"references":[""]}"#,
            SourceKind::parse("jivochat").unwrap(),
            "references[0]",
            "empty",
        ),
    ];
    for (json, kind, key, msg) in cases {
        let err = validate(json, *kind).expect_err(json);
        assert_eq!(err.key, *key, "{json}");
        assert!(err.message.contains(msg), "{json}: {}", err.message);
    }
    assert!(validate("{}", SourceKind::generic()).is_ok());
    // As `check-config` and the start print it.
    let bad = settings(r#"{"follow_ups":[{"due_from":"install_date"}]}"#);
    let err = SourceRuntime::compile(SourceName::parse("dripjobs").unwrap(), &bad, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "sources.dripjobs.mapping.follow_ups[0].due_from: only used with lead_tasks = \"move\""
        ),
        "{err}"
    );
}

#[test]
fn unknown_config_keys_are_refused() {
    for json in [
        r#"{"tag":{}}"#,
        r#"{"tags":{"statik":[]}}"#,
        r#"{"tasks":[{"title":"x","due":"1d"}]}"#,
        r#"{"fields":{"mail":"x"}}"#,
        r#"{"tags":{"when":[{"tag":"x","when":{"field":"email","equal":"a"}}]}}"#,
        r#"{"follow_ups":[{"tag":["x"]}]}"#,
        r#"{"follow_ups":[{"lead_tasks":"done"}]}"#,
        r#"{"reference":["deal_id"]}"#,
    ] {
        assert!(
            serde_json::from_str::<MappingConfig>(json).is_err(),
            "{json}"
        );
    }
}

#[tokio::test]
async fn selectors_override_detection_and_report_misses() {
    let body = Bytes::from_static(br#"{"contact":{"work":"Boss@Corp.example","home":"me@home.example"},"tel":"+44 20 7946 0018","who":"Kim Lee"}"#);
    let s = settings(
        r#"{"fields":{"email":"contact.work","name":"who","company_name":"Employer"},"default_country":"GB"}"#,
    );
    let name = SourceName::parse("website").unwrap();
    let sub = normalize(
        &name,
        SourceKind::generic(),
        &s.read_options(),
        &BodyLimits::UNLIMITED,
        Some("application/json"),
        &body,
        AT,
    )
    .unwrap();
    assert_eq!(
        sub.contact.email.as_ref().unwrap().as_str(),
        "boss@corp.example"
    );
    assert_eq!(
        sub.contact.phone.as_ref().unwrap().as_str(),
        "+442079460018"
    );
    assert_eq!(sub.contact.first_name.as_deref(), Some("Kim"));
    assert_eq!(sub.problems[0].key, "mapping.fields.company_name");
    let plan = build_plan(&compiled(&name, SourceKind::generic(), &s), &sub).unwrap();
    let Step::UpsertContact { contact } = &plan.steps[0] else {
        panic!()
    };
    assert_eq!(
        contact.source.as_deref(),
        Some("website"),
        "generic: the source's own name"
    );
    assert_eq!(tags(&plan), ["website"]);
}

#[tokio::test]
async fn lone_email_value_is_detected_by_shape() {
    let body = Bytes::from_static(b"who=Someone&reach_me_at=Some.One%40Example.com&msg=hi");
    let name = SourceName::parse("website").unwrap();
    let s = settings("{}");
    let sub = normalize(
        &name,
        SourceKind::generic(),
        &s.read_options(),
        &BodyLimits::UNLIMITED,
        Some("application/x-www-form-urlencoded"),
        &body,
        AT,
    )
    .unwrap();
    assert_eq!(
        sub.contact.email.as_ref().unwrap().as_str(),
        "some.one@example.com"
    );
}

#[tokio::test]
async fn missing_contact_can_be_skipped() {
    let s = settings(r#"{"on_missing_contact":"skip"}"#);
    let (_, plan) = run(
        "dripjobs",
        "dripjobs/zapier_appointment-set.ASSEMBLED.json",
        &s,
    )
    .await;
    assert!(plan.unwrap().steps.is_empty());
    // A name alone is not enough for GHL's upsert either.
    let (sub, plan) = run(
        "jotform",
        "jotform/2022-04-19_date-and-matrix.multipart",
        &settings("{}"),
    )
    .await;
    assert_eq!(sub.contact.first_name.as_deref(), Some("Scott"));
    assert!(matches!(plan, Err(MappingError::NoContact { .. })));
}

#[tokio::test]
async fn default_note_lists_every_answer_in_form_order() {
    let (sub, _) = run(
        "jotform",
        "jotform/2022-04-21_widget-values-as-json-strings.multipart",
        &settings("{}"),
    )
    .await;
    let note = formbridge::mapping::build::default_note(
        SourceKind::parse("jotform").unwrap(),
        &SourceName::parse("jotform").unwrap(),
        &sub,
    );
    assert!(note.starts_with("Jotform submission 5263729025226645533 (Clone of Physical Abilities JotForm Test Chev Work)\n\nGymnast Name: scott condo\nAge: 22\n"), "{note}");
    assert!(note.contains("\n8 Run: # | Count/Time | Faults | Adjusted Final Score; 1 | 1 | 1 | 1"));
}

#[tokio::test]
async fn contact_events_and_custom_note() {
    let s = settings(
        r#"{"contact_events":["call_event"],"note":{"template":"Call {{extras.call_status}}: {{extras.call_record_url}} from {{geo.city}}"},"tags":{"source_tag":false}}"#,
    );
    let (_, plan) = run("jivochat", "jivochat/call_event.json", &s).await;
    let plan = plan.unwrap();
    // The call's call-back task comes with it (mapping.skip_tool_tasks leaves it out), and
    // the template writes the call's note.
    assert_eq!(kinds(&plan), ["upsert_contact", "call_task", "call_note"]);
    let Step::CallNote { body } = &plan.steps[2] else {
        panic!()
    };
    assert_eq!(
        body,
        "Call end: http://example.com/record.mp3 from San Francisco"
    );
}

#[tokio::test]
async fn test_submissions_can_be_skipped_and_notes_disabled() {
    let body = "--b\r\nContent-Disposition: form-data; name=\"rawRequest\"\r\n\r\n{\"q1_email\":\"a@b.io\",\"preview\":\"true\"}\r\n--b--\r\n";
    let name = SourceName::parse("jotform").unwrap();
    let ct = Some("multipart/form-data; boundary=b");
    let s = settings(r#"{"skip_test_submissions":true}"#);
    let sub = normalize(
        &name,
        SourceKind::parse("jotform").unwrap(),
        &s.read_options(),
        &BodyLimits::UNLIMITED,
        ct,
        &Bytes::from(body),
        AT,
    )
    .unwrap();
    assert!(build_plan(
        &compiled(&name, SourceKind::parse("jotform").unwrap(), &s),
        &sub
    )
    .unwrap()
    .steps
    .is_empty());
    let s = settings(r#"{"note":{"enabled":false}}"#);
    let plan = build_plan(
        &compiled(&name, SourceKind::parse("jotform").unwrap(), &s),
        &sub,
    )
    .unwrap();
    assert_eq!(kinds(&plan), ["upsert_contact", "add_tags"]);
}

#[tokio::test]
async fn preview_reports_config_and_mapping_errors() {
    let name = SourceName::parse("dripjobs").unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dripjobs/zapier_appointment-set.ASSEMBLED.json");
    let body = Bytes::from(std::fs::read(&path).unwrap());
    // Without references (else the deal id makes it a follow-up of its lead).
    let runtime =
        SourceRuntime::compile(name.clone(), &settings(r#"{"references":[]}"#), None).unwrap();
    let p = preview(&runtime, &BodyLimits::UNLIMITED, None, &body, AT).unwrap();
    assert!(p.plan.is_none());
    assert!(p.mapping_error.clone().unwrap().contains("no contact"));
    let json = p.to_string();
    assert!(json.contains("\"install_date\""), "{json}");
    let bad = settings(r#"{"tasks":[{"title":"{{x}}"}]}"#);
    let err = SourceRuntime::compile(name, &bad, None).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("sources.dripjobs.mapping.tasks[0].title: unknown template variable `x`"),
        "{err}"
    );
}

#[tokio::test]
async fn typeform_example() {
    let s = example("typeform");
    let (_, plan) = run(
        "typeform",
        "typeform/form_response_lead-form-utm.ASSEMBLED.json",
        &s,
    )
    .await;
    let plan = plan.unwrap();
    assert_eq!(
        tags(&plan),
        [
            "typeform",
            "google-ads",
            "service:garage floor",
            "service:patio",
            "service:pool deck"
        ]
    );
    let t = tasks(&plan);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].0, "Call Sam about the quote");
    assert_eq!(
        t[0].1.as_deref(),
        Some("Services: Garage floor, Patio, Pool deck; area: 640 sq ft")
    );
}
