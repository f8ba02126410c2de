//! Table-driven tests over every fixture in tests/fixtures/: the normalized submission and the
//! default plan of each delivery.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use bytes::Bytes;
use formbridge::body::BodyLimits;
use formbridge::dispatch::preview::content_type_for_file;
use formbridge::domain::plan::Step;
use formbridge::domain::SourceName;
use formbridge::mapping::{build_plan, CompiledMapping, MappingError};
use formbridge::settings::SourceSettings;
use formbridge::sources::{normalize, SourceKind};
use formbridge::submission::ContactField;
use formbridge::submission::{AnswerValue, Submission};
use time::macros::datetime;

/// What one fixture must turn into with the default mapping.
struct Expect {
    file: &'static str,
    id: Option<&'static str>,
    email: Option<&'static str>,
    phone: Option<&'static str>,
    first: Option<&'static str>,
    last: Option<&'static str>,
    /// (answer key, label, displayed value)
    answers: &'static [(&'static str, &'static str, &'static str)],
    /// Expected step kinds; empty = empty plan.
    steps: &'static [&'static str],
    tags: &'static [&'static str],
    note_has: &'static [&'static str],
    /// The mapping error, when the default mapping refuses the submission.
    error: Option<&'static str>,
    problems: &'static [&'static str],
}

const BASE: Expect = Expect {
    file: "",
    id: None,
    email: None,
    phone: None,
    first: None,
    last: None,
    answers: &[],
    steps: &[],
    tags: &[],
    note_has: &[],
    error: None,
    problems: &[],
};

const FULL: &[&str] = &["upsert_contact", "add_tags", "create_note"];

fn table() -> Vec<Expect> {
    vec![
        Expect {
            file: "jotform/2022-04-19_date-and-matrix.multipart",
            id: Some("5261847016602722900"),
            first: Some("Scott"),
            last: Some("Condo"),
            answers: &[
                ("q3_gymnastName", "Gymnast Name", "Scott Condo"),
                ("q17_date", "Date", "2022-04-19"),
                ("q15_typeA15", "Type A", "3 | elgin; 4 | elgin; 5 | elgin"),
            ],
            // A name alone cannot be upserted in GHL (email or phone needed): dead letter.
            error: Some("no usable email or phone"),
            ..BASE
        },
        Expect {
            file: "jotform/2022-04-21_widget-values-as-json-strings.multipart",
            id: Some("5263729025226645533"),
            first: Some("scott"),
            last: Some("condo"),
            answers: &[
                ("q18_coachName", "Coach Name", "Elgin"),
                ("q22_coachName22", "Coach Name", "Elgin"),
                (
                    "q49_2Cast",
                    "2 Cast",
                    "# | Count/Time | Faults | Adjusted Final Score; 1 | 1 | 1 | 1",
                ),
            ],
            error: Some("no usable email or phone"),
            ..BASE
        },
        Expect {
            file: "jotform/2024-12-30_feedback-rating-file-upload.multipart",
            id: Some("6114090137116205381"),
            answers: &[
                ("q3_howOften", "How often do you use the application?", "Daily"),
                ("q7_feedback", "Feedback", "The new personalized recommendations feature is great!"),
                (
                    "q9_filesRelated",
                    "Files Related",
                    "https://www.jotform.com/uploads/kolanuvarun739/243615086540051/6114090137116205381/frontend%20setup.jpg, https://www.jotform.com/uploads/kolanuvarun739/243615086540051/6114090137116205381/workflow.png",
                ),
            ],
            error: Some("no contact in this submission"),
            ..BASE
        },
        Expect {
            file: "jotform/2025-04-06_checkbox-array-fileupload-commas-colons.multipart",
            id: Some("6197916587414311452"),
            answers: &[
                // `pretty` is ambiguous here, so the label comes from the slug.
                ("q10_nameHehe", "Name Hehe", "Value1 with colon: and comma, end"),
                ("q23_multipleChoice", "Multiple Choice", "Option; 1, Option2"),
            ],
            error: Some("no contact in this submission"),
            ..BASE
        },
        Expect {
            file: "jotform/enterprise_consent-widget.ASSEMBLED.multipart",
            id: Some("1234567890123456789"),
            email: Some("jane.doe@example.com"),
            first: Some("Jane"),
            last: Some("Doe"),
            answers: &[
                ("q4_email", "E-mail", "jane.doe@example.com"),
                ("q3_name", "Name", "Jane Doe"),
            ],
            steps: FULL,
            tags: &["jotform"],
            note_has: &["Jotform submission 1234567890123456789", "\nType A: widgetName: consent, "],
            ..BASE
        },
        Expect {
            file: "jivochat/call_event.json",
            id: Some("4398"),
            email: Some("email@example.com"),
            phone: Some("+14084987855"),
            first: Some("John"),
            last: Some("Smith"),
            answers: &[("call.record_url", "Call recording", "http://example.com/record.mp3")],
            // A callback request: the contact, the call's call-back task and its note.
            steps: &["upsert_contact", "add_tags", "call_task", "call_note"],
            tags: &["jivochat"],
            note_has: &["JivoChat call", "Type: callback", "Recording: http://example.com/record.mp3"],
            ..BASE
        },
        Expect {
            file: "jivochat/chat_accepted.json",
            id: Some("7636"),
            email: Some("email@example.com"),
            phone: Some("+14084987855"),
            first: Some("John"),
            last: Some("Smith"),
            // Chat events with the visitor's details update the contact, without a note.
            steps: &["upsert_contact", "add_tags"],
            tags: &["jivochat"],
            answers: &[("tags", "Jivo tags", "Tag example")],
            ..BASE
        },
        Expect {
            file: "jivochat/chat_updated.json",
            id: Some("7507"),
            email: Some("email@example.com"),
            phone: Some("+14084987855"),
            first: Some("John"),
            last: Some("Smith"),
            // Chat events with the visitor's details update the contact, without a note.
            steps: &["upsert_contact", "add_tags"],
            tags: &["jivochat"],
            ..BASE
        },
        Expect {
            file: "jivochat/client_updated.json",
            id: Some("1217"),
            email: Some("thomas@gmail.com"),
            first: Some("Thomas"),
            answers: &[("visitor.phone", "Phone", "+458745457845")],
            steps: FULL,
            tags: &["jivochat"],
            note_has: &["JivoChat submission 1217", "\nName: Thomas\n", "\nPhone: +458745457845\n", "Not understood:\n- visitor.phone"],
            problems: &["visitor.phone"],
            ..BASE
        },
        Expect {
            file: "jivochat/offline_message.json",
            id: Some("1665399500726"),
            email: Some("email@example.com"),
            phone: Some("+14084987855"),
            first: Some("John"),
            last: Some("Smith"),
            answers: &[("message", "Message", "Message text")],
            steps: FULL,
            tags: &["jivochat"],
            note_has: &[
                "JivoChat offline message (id 1665399500726)\n\nMessage text\n",
                "\nPage: http://example.com/\n",
                "UTM: campaign=campaign_name, content=banner, medium=cpc, source=google",
            ],
            ..BASE
        },
        Expect {
            file: "dripjobs/zapier_appointment-set.ASSEMBLED.json",
            id: Some("1234567"),
            // M/D/YYYY dates stay answers.
            answers: &[("install_date", "Install Date", "5/14/2026")],
            // No email or phone, but a deal id: a follow-up on the lead's contact.
            steps: &["lead_contact", "add_tags", "create_note"],
            tags: &["dripjobs"],
            ..BASE
        },
        Expect {
            file: "dripjobs/zapier_proposal-accepted.ASSEMBLED.json",
            id: Some("1234567"),
            email: Some("jane.sample@example.com"),
            phone: Some("+19285550142"),
            first: Some("Jane"),
            last: Some("Sample"),
            answers: &[
                (
                    "scope",
                    "Scope",
                    "2 day system.\nDay 1: diamond grind and repair cracks.\nDay 2: base coat, full flake broadcast, clear top coat.",
                ),
                ("company", "Company", "prescott-epoxy"),
            ],
            steps: FULL,
            tags: &["dripjobs"],
            note_has: &[
                "DripJobs submission 1234567\n\n",
                "\nCustomer Name: Jane Sample\n",
                "\nScope: 2 day system.\nDay 1:",
                "\nWarranty: Lifetime",
            ],
            ..BASE
        },
        Expect {
            file: "powr/zapier_contact-form.SYNTHETIC.json",
            id: Some("powr-5f3c2a91"),
            email: Some("maria.garcia@example.org"),
            phone: Some("+14155550199"),
            first: Some("María"),
            last: Some("García"),
            answers: &[("Services", "Services", "Garage floor, Patio")],
            steps: FULL,
            tags: &["powr"],
            note_has: &["POWR submission powr-5f3c2a91", "\nServices: Garage floor, Patio\n", "\nMessage: Please call after 5pm.\n"],
            ..BASE
        },
        Expect {
            file: "123formbuilder/webhook_contact.SYNTHETIC.urlencoded",
            id: Some("7741203"),
            email: Some("li.wei@example.net"),
            phone: Some("+13125550147"),
            first: Some("Li"),
            last: Some("Wei"),
            answers: &[(
                "How did you hear about us?",
                "How did you hear about us?",
                "Search engine",
            )],
            steps: FULL,
            tags: &["123formbuilder"],
            note_has: &["123FormBuilder submission 7741203", "\nComments: Looking for a quote: 3 rooms, 2 baths"],
            ..BASE
        },
        Expect {
            file: "123formbuilder/webhook_quote-request.SYNTHETIC.multipart",
            id: Some("7741299"),
            email: Some("ana.silva@example.com"),
            phone: Some("+13125550178"),
            first: Some("Ana"),
            last: Some("Silva"),
            answers: &[
                ("services", "Services", "Kitchen remodel, Bathroom remodel"),
                ("attachment", "Attachment", "floor plan.pdf"),
            ],
            steps: FULL,
            tags: &["123formbuilder"],
            note_has: &["123FormBuilder submission 7741299", "\nServices: Kitchen remodel, Bathroom remodel\n"],
            ..BASE
        },
        Expect {
            file: "typeform/form_response_lead-form-utm.ASSEMBLED.json",
            id: Some("9v2r8c4wq1k7ztj5x0b3m6n8a4d2e7f1"),
            email: Some("sam.rivera@example.com"),
            phone: Some("+15125550163"),
            first: Some("Sam"),
            last: Some("Rivera"),
            answers: &[
                ("full_name", "What's your name?", "Sam Rivera"),
                ("services", "Which services are you interested in?", "Garage floor, Patio, Pool deck"),
                ("area_sqft", "How big is the area (sq ft)?", "640"),
                ("start_when", "When would you like us to start?", "Within a month"),
                ("sms_ok", "May we text you about your quote?", "Yes"),
                ("hidden.utm_campaign", "Utm Campaign", "spring_floors"),
            ],
            steps: FULL,
            tags: &["typeform"],
            note_has: &[
                "Typeform submission 9v2r8c4wq1k7ztj5x0b3m6n8a4d2e7f1 (Free quote request)\n\n",
                "\nWhich services are you interested in?: Garage floor, Patio, Pool deck\n",
            ],
            ..BASE
        },
        Expect {
            file: "typeform/form_response_webhooks-example.ASSEMBLED.json",
            id: Some("a3a12ec67a1365927098a606107fac15"),
            email: Some("laura@example.com"),
            first: Some("Laura"),
            answers: &[
                ("readable_ref_short_text", "What is your first name?", "Laura"),
                ("readable_ref_date", "When did you move to the place where you live?", "2005-10-15"),
                ("readable_ref_picture_choice", "Which pictures do you like? You can choose as many as you like.", "London, Sydney"),
                ("readable_ref_number1", "On a scale of 1 to 5, what rating would you give the weather in Sydney?", "5"),
                ("readable_ref_multiple_choice", "Which city do you like best?", "London"),
                ("readable_ref_yes_no", "Do you have a pet?", "No"),
                ("readable_ref_payment", "Pay the city tax", "amount: 4.00, last4: 4242, name: Laura Example"),
                ("hidden.user_id", "User Id", "abc123456"),
            ],
            steps: FULL,
            tags: &["typeform"],
            note_has: &["Typeform submission a3a12ec67a1365927098a606107fac15 (Webhooks example)", "\nWhat is your first name?: Laura\n"],
            ..BASE
        },
    ]
}

/// Every delivery fixture (not `.meta`, `.md`, or the JivoChat reply bodies in `responses/`).
fn all_fixtures() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out = Vec::new();
    for tool in std::fs::read_dir(&root).unwrap() {
        let tool = tool.unwrap().path();
        // Only webhook sources' deliveries; `ghl/` holds the GHL API spec for the client tests,
        // `store/` a database of an earlier release for the upgrade test.
        if !tool.is_dir() || tool.ends_with("ghl") || tool.ends_with("store") {
            continue;
        }
        for f in std::fs::read_dir(&tool).unwrap() {
            let f = f.unwrap().path();
            let ext = f.extension().and_then(|e| e.to_str()).unwrap_or_default();
            if f.is_file() && !matches!(ext, "meta" | "md") {
                out.push(
                    f.strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out.sort();
    out
}

async fn load(file: &str) -> (SourceName, SourceKind, SourceSettings, Submission) {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(file);
    let body = std::fs::read(&path).unwrap();
    let ct = content_type_for_file(&path, &body);
    let source = SourceName::parse(file.split('/').next().unwrap()).unwrap();
    let kind = SourceKind::default_for(&source);
    let settings: SourceSettings = serde_json::from_str("{}").unwrap();
    let sub = normalize(
        &source,
        kind,
        &settings.read_options(),
        &BodyLimits::UNLIMITED,
        ct.as_deref(),
        &Bytes::from(body),
        datetime!(2025-01-02 03:04:05 UTC),
    )
    .unwrap_or_else(|e| panic!("{file}: {e}"));
    (source, kind, settings, sub)
}

#[tokio::test]
async fn every_fixture_has_an_expectation() {
    let expected: Vec<String> = table().iter().map(|e| e.file.to_owned()).collect();
    for f in all_fixtures() {
        assert!(expected.contains(&f), "fixture {f} has no row in table()");
    }
}

#[tokio::test]
async fn fixtures_normalize_and_plan_as_expected() {
    for e in table() {
        let f = e.file;
        let (source, kind, settings, sub) = load(f).await;
        assert_eq!(sub.submission_id.as_deref(), e.id, "{f}: submission id");
        assert_eq!(sub.received_at, datetime!(2025-01-02 03:04:05 UTC));
        let c = &sub.contact;
        assert_eq!(c.email.as_ref().map(|x| x.as_str()), e.email, "{f}: email");
        assert_eq!(c.phone.as_ref().map(|x| x.as_str()), e.phone, "{f}: phone");
        assert_eq!(c.first_name.as_deref(), e.first, "{f}: first name");
        assert_eq!(c.last_name.as_deref(), e.last, "{f}: last name");
        for (key, label, value) in e.answers {
            let a = sub
                .answers
                .iter()
                .find(|a| a.key == *key)
                .unwrap_or_else(|| panic!("{f}: no answer {key}"));
            assert_eq!(a.label, *label, "{f}: label of {key}");
            assert_eq!(a.value.display(), *value, "{f}: value of {key}");
        }
        let problem_keys: Vec<&str> = sub.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(problem_keys, e.problems, "{f}: problems");

        let plan = build_plan(
            &CompiledMapping::compile(&settings.mapping, &source, kind).unwrap(),
            &sub,
        );
        if let Some(err) = e.error {
            let got = plan.unwrap_err();
            assert!(matches!(got, MappingError::NoContact { .. }), "{f}: {got}");
            assert!(got.to_string().contains(err), "{f}: {got}");
            continue;
        }
        let plan = plan.unwrap_or_else(|err| panic!("{f}: {err}"));
        let kinds: Vec<&str> = plan.steps.iter().map(|s| s.kind().as_str()).collect();
        assert_eq!(kinds, e.steps, "{f}: steps");
        for step in &plan.steps {
            match step {
                Step::UpsertContact { contact } => {
                    assert_eq!(contact.get(ContactField::Email), e.email, "{f}");
                    assert_eq!(contact.get(ContactField::Phone), e.phone, "{f}");
                    assert_eq!(contact.get(ContactField::FirstName), e.first, "{f}");
                    assert_eq!(contact.get(ContactField::LastName), e.last, "{f}");
                    assert_eq!(contact.source.as_deref(), Some(kind.as_str()), "{f}");
                }
                Step::AddTags { tags } => assert_eq!(tags, e.tags, "{f}: tags"),
                Step::CreateNote { body } | Step::CallNote { body } => {
                    for part in e.note_has {
                        assert!(body.contains(part), "{f}: note lacks {part:?}:\n{body}");
                    }
                    if let Some(id) = e.id {
                        assert!(body.contains(id), "{f}: note lacks the submission id");
                    }
                }
                Step::CreateTask { title, .. } | Step::CallTask { title, .. } => {
                    assert!(f.contains("call_event"), "{f}: no task by default");
                    assert!(title.starts_with("Callback requested"), "{f}: {title}");
                }
                Step::CreateContact { .. } => panic!("{f}: no contact by name by default"),
                Step::RemoveTags { .. } => panic!("{f}: no tag removed by default"),
                Step::UploadFile { .. } => panic!("{f}: no file uploaded by default"),
                // A delivery with a deal id but no email or phone follows its lead.
                Step::LeadContact { reference } => {
                    assert_eq!(reference, "dripjobs/deal_id:1234567", "{f}");
                    assert!(f.contains("appointment-set"), "{f}: not a follow-up");
                }
                Step::CompleteLeadTasks | Step::MoveLeadTasks { .. } => {
                    panic!("{f}: no lead task is moved or completed by default: {step:?}")
                }
                Step::SetDnd { .. } => panic!("{f}: no DND set by default: {step:?}"),
                Step::UpsertOpportunity { .. } | Step::MoveLeadOpportunity { .. } => {
                    panic!(
                        "{f}: no opportunity by default (a pipeline is the agency's own): {step:?}"
                    )
                }
                Step::BookAppointment { .. }
                | Step::MoveLeadAppointments { .. }
                | Step::CancelLeadAppointments => {
                    panic!("{f}: no appointment by default: {step:?}")
                }
            }
        }
    }
}

/// The default Jotform mapping on a lead form using the encodings of the real 2022-04-25 capture
/// (name, email, phone `{full}`, address, appointment, time, checkbox, product) — that capture is
/// not among the fixtures, so its rawRequest shape is rebuilt here from the payload research.
#[tokio::test]
async fn jotform_lead_form_encodings() {
    let raw = r#"{"slug":"submit\/1\/","q3_name":{"first":" Ada ","last":"Lovelace"},"q4_email":"Ada@Example.COM","q5_phoneNumber":{"full":"(202) 555-0134"},"q6_address":{"addr_line1":"1 Main St","addr_line2":"Apt 2","city":"Springfield","state":"IL","postal":"62701"},"q7_appointment":{"date":"2022-04-25 16:00","duration":"60","timezone":"America\/New_York (GMT-04:00)","implementation":"new"},"q8_time":{"timeInput":"05:55","hourSelect":"05","minuteSelect":"55","ampm":"AM"},"q9_services":["kansas","Option; 2"],"q10_myProducts":{"0":{"id":"1000"},"products":[{"productName":"Widget","unitPrice":"10","currency":"USD","quantity":"2","subTotal":"20"}],"totalInfo":{"totalSum":"20","currency":"USD"}},"q11_birthday":{"month":"","day":"","year":""},"preview":"true","event_id":"1_1_x","payment_total_checksum":"abc"}"#;
    let body = format!(
        "--b\r\nContent-Disposition: form-data; name=\"submissionID\"\r\n\r\n5269999999999999999\r\n--b\r\nContent-Disposition: form-data; name=\"formTitle\"\r\n\r\nLead form\r\n--b\r\nContent-Disposition: form-data; name=\"rawRequest\"\r\n\r\n{raw}\r\n--b--\r\n"
    );
    let source = SourceName::parse("jotform").unwrap();
    let settings: SourceSettings = serde_json::from_str("{}").unwrap();
    let sub = normalize(
        &source,
        SourceKind::parse("jotform").unwrap(),
        &settings.read_options(),
        &BodyLimits::UNLIMITED,
        Some("multipart/form-data; boundary=b"),
        &Bytes::from(body),
        datetime!(2025-01-02 03:04:05 UTC),
    )
    .unwrap();
    assert!(sub.is_test);
    let c = &sub.contact;
    assert_eq!(c.first_name.as_deref(), Some("Ada"));
    assert_eq!(c.last_name.as_deref(), Some("Lovelace"));
    assert_eq!(c.email.as_ref().unwrap().as_str(), "ada@example.com");
    assert_eq!(c.phone.as_ref().unwrap().as_str(), "+12025550134");
    assert_eq!(c.address.street().as_deref(), Some("1 Main St, Apt 2"));
    assert_eq!(c.address.postal_code.as_deref(), Some("62701"));
    let show = |k: &str| sub.answer(k).unwrap().value.display();
    assert_eq!(
        show("q7_appointment"),
        "2022-04-25 16:00 (60 min, America/New_York (GMT-04:00))"
    );
    assert_eq!(show("q8_time"), "05:55 AM");
    assert_eq!(show("q9_services"), "kansas, Option; 2");
    assert_eq!(show("q10_myProducts"), "Widget × 2 @ 10 USD, Total: 20 USD");
    assert_eq!(show("q11_birthday"), "");
    assert!(sub.answer("payment_total_checksum").is_none());
    assert!(sub.answer("event_id").is_none());

    let plan = build_plan(
        &CompiledMapping::compile(
            &settings.mapping,
            &source,
            SourceKind::parse("jotform").unwrap(),
        )
        .unwrap(),
        &sub,
    )
    .unwrap();
    let Step::UpsertContact { contact } = &plan.steps[0] else {
        panic!()
    };
    assert_eq!(
        contact.get(ContactField::Address1),
        Some("1 Main St, Apt 2")
    );
    assert_eq!(contact.get(ContactField::City), Some("Springfield"));
    let Step::AddTags { tags } = &plan.steps[1] else {
        panic!()
    };
    assert_eq!(tags, &["jotform", "test"]);
    let Step::CreateNote { body } = &plan.steps[2] else {
        panic!()
    };
    assert!(body.starts_with("Jotform submission 5269999999999999999 (Lead form) [test submission]\n\nName: Ada Lovelace\nEmail: Ada@Example.COM\n"), "{body}");
    assert!(
        !body.contains("Birthday"),
        "blank answers are left out: {body}"
    );
}

/// chat_finished has no fixture: built from the documented shape (chat.messages, agents).
#[tokio::test]
async fn jivochat_chat_finished_transcript_is_the_note() {
    let body = r#"{"event_name":"chat_finished","chat_id":99,"widget_id":"1","visitor":{"name":"Ivan Petrov","email":"IVAN@example.ru","phone":"8 (912) 345-67-89","number":"5"},"agents":[{"id":7,"name":"Olga"}],"chat":{"messages":[{"message":"Hello","timestamp":1700000000,"type":"visitor"},{"message":"Hi, how can I help?","timestamp":1700000060,"type":"agent","agent_id":7}],"rate":"good"},"plain_messages":"ignored when messages exist","page":{"url":"https://shop.example/p/1","title":"P1"}}"#;
    let source = SourceName::parse("jivochat").unwrap();
    let settings: SourceSettings =
        serde_json::from_str(r#"{"mapping":{"default_country":"RU"}}"#).unwrap();
    let sub = normalize(
        &source,
        SourceKind::parse("jivochat").unwrap(),
        &settings.read_options(),
        &BodyLimits::UNLIMITED,
        None,
        &Bytes::from(body),
        datetime!(2025-01-02 03:04:05 UTC),
    )
    .unwrap();
    assert_eq!(sub.submission_id.as_deref(), Some("99"));
    assert_eq!(sub.contact.phone.as_ref().unwrap().as_str(), "+79123456789");
    assert_eq!(
        sub.contact.email.as_ref().unwrap().as_str(),
        "ivan@example.ru"
    );
    assert_eq!(sub.extras.transcript.len(), 2);
    let plan = build_plan(
        &CompiledMapping::compile(
            &settings.mapping,
            &source,
            SourceKind::parse("jivochat").unwrap(),
        )
        .unwrap(),
        &sub,
    )
    .unwrap();
    let Some(Step::CreateNote { body }) = plan.steps.last() else {
        panic!()
    };
    assert!(body.starts_with("JivoChat chat (id 99)\n\n[2023-11-14 22:13:20 UTC] visitor: Hello\n[2023-11-14 22:14:20 UTC] agent Olga: Hi, how can I help?\n"), "{body}");
}

/// Typeform: answer types, hidden fields (UTM ones into `extras.utm`, empty ones left out),
/// the form and event in extras, file answers as files.
#[tokio::test]
async fn typeform_extras_hidden_fields_and_types() {
    let (_, _, _, sub) = load("typeform/form_response_lead-form-utm.ASSEMBLED.json").await;
    let utm: Vec<(&str, &str)> = sub
        .extras
        .utm
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        utm,
        [
            ("campaign", "spring_floors"),
            ("medium", "cpc"),
            ("source", "google")
        ]
    );
    assert!(sub.answer("hidden.gclid").is_none(), "empty hidden field");
    assert_eq!(sub.extras.form_id.as_deref(), Some("Xq7pL2"));
    assert_eq!(sub.extras.event.as_deref(), Some("form_response"));
    assert_eq!(
        sub.answer("services").unwrap().value,
        AnswerValue::List(vec![
            "Garage floor".into(),
            "Patio".into(),
            "Pool deck".into()
        ])
    );

    let (_, _, _, sub) = load("typeform/form_response_webhooks-example.ASSEMBLED.json").await;
    assert!(matches!(
        &sub.answer("readable_ref_file_upload").unwrap().value,
        AnswerValue::Files(files) if files.len() == 1 && files[0].starts_with("https://")
    ));
    assert_eq!(
        sub.extras.other.get("event_id").map(String::as_str),
        Some("LtWXD3crgy")
    );
    assert_eq!(sub.extras.other.get("score").map(String::as_str), Some("9"));
}
