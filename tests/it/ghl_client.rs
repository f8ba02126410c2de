#![allow(clippy::unwrap_used)]
//! The GHL client against the sandbox over real HTTP: every endpoint's success path and every
//! error class.

use std::time::Duration;

use formbridge::dispatch::decision::{decide, Decision};
use formbridge::ghl::types::*;
use formbridge::ghl::{GhlClient, GhlClientConfig, GhlError};
use ghl_sandbox::{FaultSpec, SandboxConfig, SandboxHandle};
use secrecy::SecretString;

const LOC: &str = "locClientTest0000001";
const TOKEN: &str = "pit-client-test";

fn config(h: &SandboxHandle, timeout: Duration) -> GhlClientConfig {
    GhlClientConfig {
        base_url: h.base_url.clone(),
        api_version: "2021-07-28".into(),
        request_timeout: timeout,
    }
}

async fn setup_with(cfg: SandboxConfig) -> (SandboxHandle, GhlClient) {
    let h = ghl_sandbox::start(cfg).await.unwrap();
    let client = GhlClient::with_static_token(
        config(&h, Duration::from_secs(5)),
        LOC,
        SecretString::from(TOKEN),
    )
    .unwrap();
    (h, client)
}

async fn setup() -> (SandboxHandle, GhlClient) {
    setup_with(SandboxConfig::single(TOKEN, LOC)).await
}

fn upsert_body(email: &str) -> UpsertContactRequest {
    UpsertContactRequest {
        location_id: LOC.into(),
        company_name: Some("Acme".into()),
        contact: ContactProperties {
            first_name: Some("Ada".into()),
            last_name: Some("Lovelace".into()),
            email: Some(email.into()),
            phone: Some("+15550100001".into()),
            source: Some("jotform".into()),
            tags: Some(vec!["Jotform".into(), "jotform".into()]),
            custom_fields: vec![CustomFieldInput {
                id: None,
                key: Some("budget".into()),
                field_value: serde_json::json!("5000"),
            }],
            ..ContactProperties::default()
        },
        ..UpsertContactRequest::default()
    }
}

#[tokio::test]
async fn contact_endpoints() {
    let (h, client) = setup().await;

    let first = client
        .upsert_contact(&upsert_body("ada@example.com"))
        .await
        .unwrap();
    assert!(first.body.new);
    assert_eq!(first.status, 200);
    assert!(first.trace_id.is_some());
    assert_eq!(first.limits.max, Some(100));
    assert_eq!(first.limits.remaining, Some(99));
    assert_eq!(first.limits.interval, Some(Duration::from_secs(10)));
    assert_eq!(first.limits.daily_max, Some(200_000));
    assert_eq!(first.limits.daily_remaining, Some(199_999));
    let id = first.body.contact.id.clone();
    assert_eq!(id.len(), 20);
    assert_eq!(first.body.contact.tags, vec!["jotform".to_owned()]);
    assert_eq!(first.body.contact.custom_fields.len(), 1);

    let again = client
        .upsert_contact(&upsert_body("ADA@example.com"))
        .await
        .unwrap();
    assert!(!again.body.new);
    assert_eq!(again.body.contact.id, id);
    assert_eq!(again.limits.remaining, Some(98));

    let got = client.get_contact(LOC, &id).await.unwrap();
    assert_eq!(
        got.body.contact.email.map(|e| e.to_lowercase()).as_deref(),
        Some("ada@example.com")
    );
    assert_eq!(got.body.contact.company_name.as_deref(), Some("Acme"));

    let update = UpdateContactRequest {
        contact: ContactProperties {
            last_name: Some("King".into()),
            ..ContactProperties::default()
        },
    };
    let updated = client.update_contact(LOC, &id, &update).await.unwrap();
    assert!(updated.body.succeeded.ok());
    assert_eq!(updated.body.contact.last_name.as_deref(), Some("King"));

    let created = client
        .create_contact(&CreateContactRequest {
            location_id: LOC.into(),
            contact: ContactProperties {
                email: Some("grace@example.com".into()),
                first_name: Some("Grace".into()),
                ..ContactProperties::default()
            },
            ..CreateContactRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(created.status, 201);
    let grace = created.body.contact.id.clone();

    let listed = client
        .list_contacts(&ListContactsQuery {
            location_id: LOC.into(),
            limit: Some(1),
            ..ListContactsQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.body.contacts.len(), 1);
    assert_eq!(listed.body.meta.total, Some(2));
    let next = client
        .list_contacts(&ListContactsQuery {
            location_id: LOC.into(),
            limit: Some(1),
            start_after_id: listed.body.meta.start_after_id.clone(),
            start_after: listed.body.meta.start_after,
            ..ListContactsQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(next.body.contacts[0].id, grace);

    let found = client
        .search_contacts(&SearchContactsRequest {
            location_id: LOC.into(),
            page_limit: 10,
            filters: vec![serde_json::json!({"field": "email", "operator": "eq", "value": "grace@example.com"})],
            ..SearchContactsRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(found.body.total, Some(1));
    assert_eq!(found.body.contacts[0].id, grace);
    assert!(found.body.next_search_after().is_some());

    // Put Grace in a business with the spec's bulk endpoint, then list the business.
    let business = "64b7f0c2a1b2c3d4e5f60718";
    let r = reqwest::Client::new()
        .post(h.base_url.join("/contacts/bulk/business").unwrap())
        .bearer_auth(TOKEN)
        .header("Version", "2021-07-28")
        .json(&serde_json::json!({"locationId": LOC, "ids": [grace], "businessId": business}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let members = client
        .business_contacts(
            business,
            &BusinessContactsQuery {
                location_id: LOC.into(),
                ..BusinessContactsQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(members.body.count, Some(1));
    assert_eq!(
        members.body.contacts[0].business_id.as_deref(),
        Some(business)
    );

    let deleted = client.delete_contact(LOC, &grace).await.unwrap();
    assert!(deleted.body.ok());
    let gone = client.get_contact(LOC, &grace).await.unwrap_err();
    assert!(
        matches!(gone, GhlError::Rejected { status: 400, .. }),
        "{gone:?}"
    );
    crate::spec_check::assert_requests_follow_specs(&h.state());
}

#[tokio::test]
async fn tags_tasks_notes_and_appointments() {
    let (h, client) = setup().await;
    let id = client
        .upsert_contact(&upsert_body("t@example.com"))
        .await
        .unwrap()
        .body
        .contact
        .id;

    let tags = client
        .add_tags(LOC, &id, &["VIP".into(), "vip".into(), "Lead".into()])
        .await
        .unwrap();
    assert_eq!(tags.status, 201);
    assert_eq!(tags.body.tags, vec!["jotform", "vip", "lead"]);
    let tags = client
        .remove_tags(LOC, &id, &["LEAD".into()])
        .await
        .unwrap();
    assert_eq!(tags.body.tags, vec!["jotform", "vip"]);

    let marker = "[fb:evt-1:task-0]";
    let task = client
        .create_task(
            LOC,
            &id,
            &CreateTaskRequest {
                title: "Call back".into(),
                body: Some(format!("Call Ada {marker}")),
                due_date: "2026-07-20T10:00:00Z".into(),
                completed: false,
                assigned_to: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(task.status, 201);
    let task_id = task.body.task.id.clone();
    assert_eq!(
        task.body.task.due_date.as_deref(),
        Some("2026-07-20T10:00:00.000Z")
    );
    assert_eq!(
        client.list_tasks(LOC, &id).await.unwrap().body.tasks.len(),
        1
    );
    let got = client.get_task(LOC, &id, &task_id).await.unwrap();
    assert_eq!(got.body.task.title.as_deref(), Some("Call back"));
    let upd = client
        .update_task(
            LOC,
            &id,
            &task_id,
            &UpdateTaskRequest {
                title: Some("Call back soon".into()),
                ..UpdateTaskRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(upd.body.task.title.as_deref(), Some("Call back soon"));
    let done = client
        .complete_task(LOC, &id, &task_id, true)
        .await
        .unwrap();
    assert_eq!(done.body.task.completed, Some(true));
    let found = client
        .find_task_with_marker(LOC, &id, marker)
        .await
        .unwrap();
    assert_eq!(found.map(|t| t.id), Some(task_id.clone()));
    assert!(client
        .find_task_with_marker(LOC, &id, "[fb:other]")
        .await
        .unwrap()
        .is_none());
    assert!(client
        .delete_task(LOC, &id, &task_id)
        .await
        .unwrap()
        .body
        .ok());
    assert!(client
        .list_tasks(LOC, &id)
        .await
        .unwrap()
        .body
        .tasks
        .is_empty());

    let note = client
        .create_note(
            LOC,
            &id,
            &CreateNoteRequest {
                body: format!("Budget: 5000\n{marker}"),
                ..CreateNoteRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(note.status, 201);
    let note_id = note.body.note.id.clone();
    assert_eq!(
        client.list_notes(LOC, &id).await.unwrap().body.notes.len(),
        1
    );
    assert_eq!(
        client
            .get_note(LOC, &id, &note_id)
            .await
            .unwrap()
            .body
            .note
            .contact_id
            .as_deref(),
        Some(id.as_str())
    );
    let upd = client
        .update_note(
            LOC,
            &id,
            &note_id,
            &UpdateNoteRequest {
                pinned: Some(true),
                ..UpdateNoteRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(upd.body.note.pinned, Some(true));
    assert!(client
        .find_note_with_marker(LOC, &id, marker)
        .await
        .unwrap()
        .is_some());
    assert!(client
        .delete_note(LOC, &id, &note_id)
        .await
        .unwrap()
        .body
        .ok());

    h.sandbox.add_appointment(serde_json::json!({
        "contactId": id, "calendarId": "cal1", "status": "booked", "title": "Visit",
        "startTime": "2021-07-16 11:00:00", "endTime": "2021-07-16 11:30:00"
    }));
    let events = client.contact_appointments(LOC, &id).await.unwrap();
    assert_eq!(events.body.events.len(), 1);
    assert_eq!(events.body.events[0].title.as_deref(), Some("Visit"));
    crate::spec_check::assert_requests_follow_specs(&h.state());
}

#[tokio::test]
async fn rate_limited_with_retry_after_from_header_or_interval() {
    let cfg = SandboxConfig {
        burst: 2,
        window: Duration::from_secs(30),
        ..SandboxConfig::single(TOKEN, LOC)
    };
    let (h, client) = setup_with(cfg).await;
    client
        .get_contact(LOC, "missingContact000001")
        .await
        .unwrap_err();
    client
        .get_contact(LOC, "missingContact000001")
        .await
        .unwrap_err();
    let err = client
        .get_contact(LOC, "missingContact000001")
        .await
        .unwrap_err();
    match &err {
        GhlError::RateLimited {
            retry_after,
            limits,
        } => {
            // No Retry-After from GHL: wait the interval.
            assert_eq!(*retry_after, Duration::from_secs(30));
            assert_eq!(limits.remaining, Some(0));
            assert_eq!(limits.max, Some(2));
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(
        decide(&err),
        Decision::WaitForBudget(Duration::from_secs(30))
    );

    h.sandbox.reset();
    h.sandbox.set_faults(FaultSpec {
        rate_limit_next: Some(1),
        retry_after_secs: Some(7),
        ..FaultSpec::default()
    });
    let err = client.get_contact(LOC, "x").await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn server_errors_drops_and_timeouts_are_transient() {
    let (h, client) = setup().await;
    h.sandbox.set_faults(FaultSpec {
        fail_next: Some(1),
        fail_status: Some(503),
        ..FaultSpec::default()
    });
    let err = client
        .upsert_contact(&upsert_body("a@example.com"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, GhlError::Server { status: 503, .. }),
        "{err:?}"
    );
    assert!(h.state().contacts.is_empty());

    h.sandbox.set_faults(FaultSpec {
        drop_before_next: Some(1),
        ..FaultSpec::default()
    });
    let err = client
        .upsert_contact(&upsert_body("a@example.com"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, GhlError::Transport { status: None, .. }),
        "{err:?}"
    );
    assert_eq!(decide(&err), Decision::Retry);
    assert!(h.state().contacts.is_empty());

    h.sandbox.set_faults(FaultSpec {
        drop_after_next: Some(1),
        ..FaultSpec::default()
    });
    let err = client
        .upsert_contact(&upsert_body("a@example.com"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, GhlError::Transport { status: None, .. }),
        "{err:?}"
    );
    // Applied although the client saw no answer: the case that makes duplicates.
    assert_eq!(h.state().contacts.len(), 1);
    let log = h.state().requests;
    assert_eq!(log.last().unwrap().outcome, "dropped_after");

    let slow = GhlClient::with_static_token(
        config(&h, Duration::from_millis(200)),
        LOC,
        SecretString::from(TOKEN),
    )
    .unwrap();
    h.sandbox.set_faults(FaultSpec {
        latency_ms: Some(2_000),
        ..FaultSpec::default()
    });
    let err = slow.get_contact(LOC, "x").await.unwrap_err();
    match err {
        GhlError::Transport {
            status: None,
            message,
            ..
        } => assert!(message.contains("timeout"), "{message}"),
        other => panic!("expected timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn unauthorized_and_permanent_errors() {
    let (h, _client) = setup().await;
    let bad = GhlClient::with_static_token(
        config(&h, Duration::from_secs(5)),
        LOC,
        SecretString::from("pit-wrong"),
    )
    .unwrap();
    let err = bad.get_contact(LOC, "x").await.unwrap_err();
    match &err {
        GhlError::Unauthorized { message, limits } => {
            assert_eq!(message, "Invalid token: access token is invalid");
            assert!(limits.is_known());
        }
        other => panic!("{other:?}"),
    }
    assert_ne!(decide(&err), Decision::Retry);

    // No token configured for the location: refused locally, nothing sent.
    let before = h.state().requests.len();
    let err = bad
        .get_contact("otherLocation0000001", "x")
        .await
        .unwrap_err();
    assert!(matches!(err, GhlError::Config { .. }), "{err:?}");
    assert_eq!(h.state().requests.len(), before);
}

#[tokio::test]
async fn validation_business_rule_and_access_errors_are_classified() {
    let (h, client) = setup().await;
    // 422: invalid value (DND status outside the enum).
    let mut body = upsert_body("v@example.com");
    body.contact.dnd_settings = Some(DndSettings {
        sms: Some(DndSetting {
            status: "sometimes".into(),
            message: None,
            code: None,
        }),
        ..DndSettings::default()
    });
    let err = client.upsert_contact(&body).await.unwrap_err();
    match &err {
        GhlError::Validation {
            message, trace_id, ..
        } => {
            assert_eq!(err.status(), Some(422));
            assert!(
                message.contains("dndSettings.SMS.status must be one of"),
                "{message}"
            );
            assert!(trace_id.is_some());
        }
        other => panic!("{other:?}"),
    }
    // 400: upsert without email or phone.
    let mut body = upsert_body("x@example.com");
    body.contact.email = None;
    body.contact.phone = None;
    let err = client.upsert_contact(&body).await.unwrap_err();
    match err {
        GhlError::Rejected {
            status: 400,
            message,
            ..
        } => {
            assert_eq!(
                message,
                "Pass at least one of number, email query parameter"
            )
        }
        other => panic!("{other:?}"),
    }
    // 400 duplicate on create, with the existing contact's id.
    let existing = client
        .upsert_contact(&upsert_body("dup@example.com"))
        .await
        .unwrap()
        .body
        .contact
        .id;
    let err = client
        .create_contact(&CreateContactRequest {
            location_id: LOC.into(),
            contact: ContactProperties {
                email: Some("Dup@Example.com".into()),
                ..ContactProperties::default()
            },
            ..CreateContactRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.existing_contact_id(), Some(existing.as_str()));
    assert_eq!(err.status(), Some(400));
    assert_ne!(decide(&err), Decision::Retry);
    // 403: a location the token may not use.
    let mut body = upsert_body("f@example.com");
    body.location_id = "foreignLocation00001".into();
    // (the client uses the body's location for the token, so give it the right token)
    let other = GhlClient::with_static_token(
        config(&h, Duration::from_secs(5)),
        "foreignLocation00001",
        SecretString::from(TOKEN),
    )
    .unwrap();
    let err = other.upsert_contact(&body).await.unwrap_err();
    assert!(matches!(err, GhlError::Forbidden { .. }), "{err:?}");
}

#[tokio::test]
async fn ids_are_path_encoded() {
    let (h, client) = setup().await;
    let err = client
        .get_contact(LOC, "../contacts/upsert?x=1")
        .await
        .unwrap_err();
    assert!(
        matches!(err, GhlError::Rejected { status: 400, .. }),
        "{err:?}"
    );
    let last = h.state().requests.last().cloned().unwrap();
    assert_eq!(last.method, "GET");
    assert!(
        last.path
            .starts_with("/contacts/..%2Fcontacts%2Fupsert%3Fx=1"),
        "{}",
        last.path
    );
}
