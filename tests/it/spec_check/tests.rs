//! The checker's own tests, and the sandbox held to the contacts spec.

use super::schema::Flat;
use super::*;
use serde_json::json;

fn check(method: &str, path: &str, query: Option<&str>, body: Option<Value>) -> Vec<Violation> {
    let content_type = body.as_ref().map(|_| "application/json");
    specs()
        .check_request(method, path, query, content_type, body.as_ref())
        .violations
}

/// The one violation of a request, which must name `operation` and be found at `at`.
fn only(violations: Vec<Violation>, operation: &str, at: &str) -> Violation {
    assert_eq!(violations.len(), 1, "{violations:#?}");
    let v = violations.into_iter().next().unwrap();
    let text = v.to_string();
    assert!(text.contains(operation), "{text} does not name {operation}");
    assert_eq!(v.at, at, "{text}");
    v
}

#[test]
fn a_valid_request_passes() {
    let body = json!({
        "locationId": "loc", "email": "a@b.c", "firstName": "A", "tags": ["x"],
        "customFields": [{"id": "cf1", "field_value": "v"}],
        "dndSettings": {"Email": {"status": "active"}}
    });
    assert_eq!(check("POST", "/contacts/upsert", None, Some(body)), vec![]);
    let task = json!({"title": "Call", "dueDate": "2026-01-01T00:00:00Z", "completed": false});
    assert_eq!(
        check("POST", "/contacts/c1/tasks", None, Some(task)),
        vec![]
    );
    let query = Some("locationId=loc&email=a%40b.c");
    assert_eq!(
        check("GET", "/contacts/search/duplicate", query, None),
        vec![]
    );
    assert_eq!(
        check("GET", "/contacts/c1/appointments", None, None),
        vec![]
    );
}

#[test]
fn an_unknown_property_fails_naming_operation_and_property() {
    let body = json!({"locationId": "loc", "nickname": "Al"});
    let v = only(
        check("POST", "/contacts/upsert", None, Some(body)),
        "POST /contacts/upsert",
        "body.nickname",
    );
    assert!(v.problem.contains("not declared"), "{v}");
    // Nested, through $ref: a DND channel setting takes no `reason`.
    let body =
        json!({"locationId": "loc", "dndSettings": {"Email": {"status": "active", "reason": "x"}}});
    only(
        check("POST", "/contacts/upsert", None, Some(body)),
        "POST /contacts/upsert",
        "body.dndSettings.Email.reason",
    );
}

#[test]
fn a_missing_required_property_fails_naming_it() {
    let task = json!({"title": "Call", "completed": false});
    let v = only(
        check("POST", "/contacts/c1/tasks", None, Some(task)),
        "POST /contacts/{contactId}/tasks",
        "body.dueDate",
    );
    assert!(v.problem.contains("required"), "{v}");
    let v = only(
        check("POST", "/contacts/c1/tags", None, None),
        "POST /contacts/{contactId}/tags",
        "body",
    );
    assert!(v.problem.contains("required request body"), "{v}");
}

#[test]
fn a_wrong_type_fails_naming_the_property() {
    let body = json!({"locationId": "loc", "tags": "vip"});
    let v = only(
        check("POST", "/contacts/upsert", None, Some(body)),
        "POST /contacts/upsert",
        "body.tags",
    );
    assert!(v.problem.contains("expected array, got string"), "{v}");
    let body = json!({"tags": ["vip", 7]});
    only(
        check("DELETE", "/contacts/c1/tags", None, Some(body)),
        "DELETE /contacts/{contactId}/tags",
        "body.tags[1]",
    );
    // `email` is nullable in the spec, `source` is not.
    let body = json!({"locationId": "loc", "email": null, "source": null});
    let v = only(
        check("POST", "/contacts/upsert", None, Some(body)),
        "POST /contacts/upsert",
        "body.source",
    );
    assert!(v.problem.contains("nullable"), "{v}");
}

#[test]
fn an_enum_and_an_any_of_are_enforced() {
    let body = json!({"locationId": "loc", "dndSettings": {"Email": {"status": "maybe"}}});
    only(
        check("POST", "/contacts/upsert", None, Some(body)),
        "POST /contacts/upsert",
        "body.dndSettings.Email.status",
    );
    // Every customFields alternative requires `id` and declares no `label`.
    let body = json!({"locationId": "loc", "customFields": [{"id": "x", "label": "y"}]});
    let v = only(
        check("POST", "/contacts/upsert", None, Some(body)),
        "POST /contacts/upsert",
        "body.customFields[0]",
    );
    assert!(
        v.problem.contains("anyOf") && v.problem.contains("label"),
        "{v}"
    );
}

#[test]
fn an_unknown_route_or_method_fails() {
    let v = only(
        check("GET", "/contacts/c1/nonsense", None, None),
        "",
        "route",
    );
    assert_eq!(v.operation, None);
    assert!(v.to_string().contains("GET /contacts/c1/nonsense"), "{v}");
    let v = only(check("PATCH", "/contacts/c1", None, None), "", "route");
    assert!(
        v.problem.contains("GET, PUT, DELETE") || v.problem.contains("DELETE, GET, PUT"),
        "{v}"
    );
}

#[test]
fn routes_match_by_template_literals_first_and_trailing_slash_free() {
    // `GET /calendars/{calendarId}` would take no query at all.
    only(
        check("GET", "/calendars/groups", None, None),
        "GET /calendars/groups",
        "query.locationId",
    );
    // `/contacts` is GHL's `/contacts/` (Express routing is not strict).
    let body = json!({"locationId": "loc", "frist": "typo"});
    only(
        check("POST", "/contacts", None, Some(body)),
        "POST /contacts/ (ghl-contacts-openapi.json)",
        "body.frist",
    );
    // A segment may not be empty.
    only(check("GET", "/contacts//tasks", None, None), "", "route");
}

#[test]
fn query_parameters_are_declared_typed_and_required() {
    only(
        check(
            "GET",
            "/contacts/search/duplicate",
            Some("email=a%40b.c"),
            None,
        ),
        "GET /contacts/search/duplicate",
        "query.locationId",
    );
    only(
        check(
            "GET",
            "/contacts/search/duplicate",
            Some("locationId=l&mail=x"),
            None,
        ),
        "GET /contacts/search/duplicate",
        "query.mail",
    );
    let v = only(
        check("GET", "/contacts/", Some("locationId=l&limit=ten"), None),
        "GET /contacts/",
        "query.limit",
    );
    assert!(v.problem.contains("not a number"), "{v}");
}

#[test]
fn multipart_uploads_are_checked_for_their_query_only() {
    let specs = specs();
    let multipart = Some("multipart/form-data; boundary=x");
    let path = "/forms/upload-custom-files";
    let ok = specs.check_request(
        "POST",
        path,
        Some("contactId=c&locationId=l"),
        multipart,
        None,
    );
    assert_eq!(ok.violations, vec![]);
    let missing = specs.check_request("POST", path, Some("contactId=c"), multipart, None);
    only(
        missing.violations,
        "POST /forms/upload-custom-files",
        "query.locationId",
    );
}

/// Over real HTTP: the sandbox logs a bad request (body and content type) and the log check
/// finds it; `/oauth/token` is skipped; an empty log fails.
#[tokio::test]
async fn the_log_check_finds_a_bad_request_sent_to_the_sandbox() {
    let sandbox = ghl_sandbox::start(ghl_sandbox::SandboxConfig::default())
        .await
        .unwrap();
    let empty = std::panic::catch_unwind(|| assert_requests_follow_specs(&sandbox.state()));
    assert!(empty.is_err(), "an empty log must not pass");
    let client = reqwest::Client::new();
    let send = |body: Value| {
        client
            .post(sandbox.base_url.join("/contacts/upsert").unwrap())
            .bearer_auth(ghl_sandbox::DEMO_TOKEN)
            .header("Version", ghl_sandbox::API_VERSION)
            .json(&body)
            .send()
    };
    let good = send(json!({"locationId": ghl_sandbox::DEMO_LOCATION, "email": "a@b.c"}));
    assert!(good.await.unwrap().status().is_success());
    client
        .post(sandbox.base_url.join("/oauth/token").unwrap())
        .form(&[("grant_type", "refresh_token")])
        .send()
        .await
        .unwrap();
    let state = sandbox.state();
    assert_eq!(state.requests.len(), 2);
    assert_requests_follow_specs(&state);

    let bad = send(json!({"locationId": ghl_sandbox::DEMO_LOCATION, "nickname": "x"}));
    assert_eq!(bad.await.unwrap().status(), 422);
    let state = sandbox.state();
    let logged = state.requests.last().unwrap();
    assert_eq!(logged.content_type.as_deref(), Some("application/json"));
    let found = check_log(&state);
    assert_eq!(found.checked, 2, "/oauth/token is not an API operation");
    let v = only(found.violations, "POST /contacts/upsert", "body.nickname");
    assert_eq!(v.index, 2);

    // The log is kept by the layer around every route, the fallback included: a route no spec
    // (and no sandbox handler) knows is logged with its JSON body, and flagged.
    let unknown = client
        .put(sandbox.base_url.join("/opportunities/o1/stage").unwrap())
        .bearer_auth(ghl_sandbox::DEMO_TOKEN)
        .header("Version", ghl_sandbox::API_VERSION)
        .json(&json!({"stage": "won"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let state = sandbox.state();
    let logged = state.requests.last().unwrap();
    assert_eq!(logged.body, Some(json!({"stage": "won"})));
    let found = check_log(&state);
    let v = only(found.violations[1..].to_vec(), "", "route");
    assert_eq!(v.request, "PUT /opportunities/o1/stage");
}

#[test]
fn a_tolerated_deviation_is_reported_apart_and_only_where_listed() {
    let search = json!({"locationId": "loc", "pageLimit": 1, "pageSize": 2});
    let found = specs().check_request(
        "POST",
        "/contacts/search",
        None,
        Some("application/json"),
        Some(&search),
    );
    let tolerated: Vec<&str> = found.tolerated.iter().map(|(v, _)| v.at.as_str()).collect();
    assert_eq!(tolerated, ["body.locationId", "body.pageLimit"]);
    only(found.violations, "POST /contacts/search", "body.pageSize");
    // The same property elsewhere is not tolerated.
    let body = json!({"locationId": "loc", "pageLimit": 1});
    only(
        check("POST", "/contacts/upsert", None, Some(body)),
        "POST /contacts/upsert",
        "body.pageLimit",
    );
    // A custom field named by `key` alone is tolerated inside the anyOf; one that also
    // gets `field_value` wrong still fails.
    let keyed = json!({"locationId": "loc", "customFields": [{"key": "k", "field_value": "v"}]});
    let found = specs().check_request(
        "POST",
        "/contacts/upsert",
        None,
        Some("application/json"),
        Some(&keyed),
    );
    assert_eq!(found.violations, vec![]);
    assert_eq!(found.tolerated.len(), 1, "{:#?}", found.tolerated);
    assert_eq!(found.tolerated[0].0.at, "body.customFields[0].id");
    let wrong = json!({"locationId": "loc", "customFields": [{"key": "k", "value": "v"}]});
    only(
        check("POST", "/contacts/upsert", None, Some(wrong)),
        "POST /contacts/upsert",
        "body.customFields[0]",
    );
}

/// A value the schema allows, every declared property filled (to `depth`): enums take
/// their first value, strings the spec's example (else `"x"`), alternatives their first.
fn example(specs: &Specs, file: &str, schema: &Value, depth: u32) -> Value {
    let mut f = Flat::default();
    specs.flatten(file, schema, &mut f);
    if let Some(e) = f.enums.first() {
        return e[0].clone();
    }
    if let Some((_, alts)) = f.alternatives.first() {
        let (afile, alt) = alts[0];
        return example(specs, afile, alt, depth);
    }
    let (_, resolved) = specs.resolve(file, schema);
    match f.types.first().copied() {
        Some("string") if !f.patterns.is_empty() => resolved["example"].clone(),
        Some("string") => match resolved["example"].as_str() {
            Some(e) => json!(e),
            None => json!("x"),
        },
        Some("number" | "integer") => json!(f.minimum.first().copied().unwrap_or(1.0) as i64),
        Some("boolean") => json!(true),
        Some("array") if depth > 0 => match f.items.first() {
            Some((ifile, item)) => json!([example(specs, ifile, item, depth - 1)]),
            None => json!([]),
        },
        Some("array") => json!([]),
        _ => {
            let mut obj = serde_json::Map::new();
            for (k, schemas) in &f.properties {
                if depth > 0 || f.required.contains(k) {
                    let (pfile, p) = schemas[0];
                    obj.insert(
                        (*k).to_owned(),
                        example(specs, pfile, p, depth.saturating_sub(1)),
                    );
                }
            }
            Value::Object(obj)
        }
    }
}

/// The checker reads every operation of the six specs without panicking and accepts a body
/// and query built from each operation's own schema (no false alarm on the specs other
/// features send to: calendars, opportunities, forms, locations, users).
#[test]
fn every_operation_accepts_a_request_built_from_its_own_schema() {
    let specs = specs();
    let mut checked = 0;
    for op in &specs.operations {
        let (item, json) = specs.operation_json(op);
        let params: Vec<&Value> = [item.get("parameters"), json.get("parameters")]
            .into_iter()
            .flatten()
            .filter_map(Value::as_array)
            .flatten()
            .collect();
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for p in params
            .iter()
            .filter(|p| p["in"] == "query" && p["required"] == true)
        {
            let schema = &p["schema"];
            let value = example(specs, op.file, schema, 0);
            let text = match &value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            query.append_pair(p["name"].as_str().unwrap(), &text);
        }
        let query = query.finish();
        let body_schema = json
            .pointer("/requestBody/content/application~1json/schema")
            .map(|s| example(specs, op.file, s, 3));
        let multipart = json
            .pointer("/requestBody/content/multipart~1form-data")
            .is_some();
        let content_type = match (&body_schema, multipart) {
            (Some(_), _) => Some("application/json"),
            (None, true) => Some("multipart/form-data; boundary=b"),
            (None, false) => None,
        };
        let found = specs.check_request(
            &op.method,
            &concrete(&op.template),
            Some(&query),
            content_type,
            body_schema.as_ref(),
        );
        assert_eq!(found.violations, vec![], "{}: {body_schema:?}", op.name());
        checked += 1;
    }
    assert_eq!(checked, 124, "the six specs declare 124 operations");
}

/// The sandbox agrees with the contacts spec both ways: a request built from each
/// operation's own schema (the spec's examples for strings) is not refused as invalid (422),
/// and the same body with an undeclared property is (GHL's whitelist). Routes the sandbox
/// does not simulate (followers, campaigns, workflows, bulk tags) answer Express's 404.
#[tokio::test]
async fn the_sandbox_takes_what_the_contacts_spec_allows_and_refuses_undeclared_properties() {
    use ghl_sandbox::{DEMO_LOCATION, DEMO_TOKEN};
    let specs = specs();
    let sandbox = ghl_sandbox::start(ghl_sandbox::SandboxConfig::default())
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let send = |method: &str, path: &str, query: &str, body: Option<&Value>| {
        let mut url = sandbox.base_url.join(path).unwrap();
        url.set_query(Some(query).filter(|q| !q.is_empty()));
        let mut request = client
            .request(method.parse().unwrap(), url)
            .bearer_auth(DEMO_TOKEN)
            .header("Version", ghl_sandbox::API_VERSION);
        if let Some(body) = body {
            request = request.json(body);
        }
        async move {
            let r = request.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let id_of = |text: &str, pointer: &str| -> String {
        let v: Value = serde_json::from_str(text).unwrap();
        v.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap()
            .to_owned()
    };
    let made = json!({"locationId": DEMO_LOCATION, "email": "spec@example.com"});
    let (_, text) = send("POST", "/contacts/upsert", "", Some(&made)).await;
    let contact = id_of(&text, "/contact/id");
    let task = json!({"title": "t", "dueDate": "2026-07-20T10:00:00Z", "completed": false});
    let path = format!("/contacts/{contact}/tasks");
    let (_, text) = send("POST", &path, "", Some(&task)).await;
    let task = id_of(&text, "/task/id");
    let path = format!("/contacts/{contact}/notes");
    let (_, text) = send("POST", &path, "", Some(&json!({"body": "n"}))).await;
    let note = id_of(&text, "/note/id");

    let mut ops: Vec<&Operation> = specs
        .operations
        .iter()
        .filter(|o| o.file == "ghl-contacts-openapi.json")
        .collect();
    // Deletes last, the contact's very last, so every operation finds its records.
    ops.sort_by_key(|o| (o.method == "DELETE", o.template == "/contacts/{contactId}"));
    let (mut simulated, mut problems) = (0, Vec::new());
    for op in ops {
        let path: String = op
            .template
            .split('/')
            .map(|seg| match seg {
                "{contactId}" => contact.clone(),
                "{taskId}" => task.clone(),
                "{id}" => note.clone(),
                s if s.starts_with('{') => "x".to_owned(),
                s => s.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/");
        let (item, json) = specs.operation_json(op);
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for p in [item.get("parameters"), json.get("parameters")]
            .into_iter()
            .flatten()
            .filter_map(Value::as_array)
            .flatten()
            .filter(|p| p["in"] == "query" && p["required"] == true)
        {
            let name = p["name"].as_str().unwrap();
            let value = match name {
                "locationId" => json!(DEMO_LOCATION),
                _ => example(specs, op.file, &p["schema"], 0),
            };
            let text = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            query.append_pair(name, &text);
        }
        let query = query.finish();
        let mut body = json
            .pointer("/requestBody/content/application~1json/schema")
            .map(|s| example(specs, op.file, s, 3));
        if let Some(Value::Object(b)) = body.as_mut() {
            for (k, v) in b.iter_mut() {
                match k.as_str() {
                    "locationId" => *v = json!(DEMO_LOCATION),
                    // The spec types it object but means a date string (TOLERATED).
                    "dateOfBirth" => *v = json!("1990-09-25"),
                    "email" => *v = json!("spec@example.com"),
                    _ => {}
                }
            }
        }
        if op.template == "/contacts/search" {
            // Its spec body is empty; GHL requires these two of the TOLERATED properties.
            body = Some(json!({"locationId": DEMO_LOCATION, "pageLimit": 10}));
        }
        let name = op.name();
        let (status, text) = send(&op.method, &path, &query, body.as_ref()).await;
        if status == 404 && text.contains("Cannot ") {
            continue;
        }
        simulated += 1;
        if status == 422 {
            problems.push(format!("{name}: a request the spec allows got 422 {text}"));
        }
        if let Some(Value::Object(mut b)) = body {
            b.insert("undeclaredProbe".into(), json!(1));
            let (status, text) = send(&op.method, &path, &query, Some(&Value::Object(b))).await;
            if status != 422 || !text.contains("undeclaredProbe") {
                problems.push(format!(
                    "{name}: an undeclared property got {status} {text}, GHL answers 422"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(
        simulated >= 20,
        "only {simulated} contacts operations simulated"
    );
}

#[test]
fn every_tolerance_names_an_operation_of_the_specs() {
    for t in TOLERATED {
        let (method, template) = t.operation.split_once(' ').unwrap();
        assert!(
            specs()
                .operations
                .iter()
                .any(|o| o.method == method && o.template == template),
            "{t:?}"
        );
        assert!(!t.why.is_empty(), "{t:?}");
    }
}
