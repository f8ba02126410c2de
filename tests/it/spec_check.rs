//! Checks every request in a GHL sandbox's request log against the official GHL OpenAPI specs
//! in `tests/fixtures/ghl/` (contacts, calendars, opportunities, forms, locations, users): the
//! operation exists (method + path template), its query parameters are declared, typed and the
//! required ones present, and its JSON body follows the operation's `requestBody` schema with no
//! undeclared property. Call [`assert_requests_follow_specs`] at the end of a sandbox test.
//!
//! Hand-written, not the `jsonschema` crate, because that is both more faithful and less code:
//! - GHL answers 422 to undeclared properties (class-validator's whitelist). The allowed set of
//!   an `allOf` is the union of its parts; JSON Schema's `additionalProperties: false` would have
//!   to be injected into every object schema and then rejects exactly those `allOf` compositions.
//! - OpenAPI 3.0 is not JSON Schema: `nullable`, `$ref` siblings, and `$ref`s into the sibling
//!   file `../common/common-schemas.json` would all need translating first.
//! - Query parameters arrive as strings and must be parsed by their declared type, which no
//!   JSON Schema validator does.
//! - The six specs use a small subset (`$ref`, `allOf`, `anyOf`, `oneOf`, `type`, `nullable`,
//!   `enum`, `properties`, `required`, `additionalProperties`, `items`, `minimum`, `maximum`,
//!   `maxLength`, `maxItems`, `pattern`); `format` is not checked (only response schemas use it).
//!
//! Choices where the specs leave room:
//! - A trailing slash does not matter (`/contacts` finds `/contacts/`): GHL serves Express's
//!   default non-strict routing. A literal segment beats a `{param}` (`/contacts/search` is not
//!   `/contacts/{contactId}`). The specs' `servers` URLs carry no base path; one would be cut.
//! - An object schema that declares `properties` is closed (the whitelist); one that declares
//!   none (a free-form `type: object`) takes any keys, unless `additionalProperties` says more.
//! - `null` passes only where the spec says `nullable: true` (class-validator's `@IsOptional`
//!   lets GHL accept more, but formbridge should not rely on it).
//! - `/oauth/token` is not an API operation of these specs (OAuth is documented apart), so
//!   [`NOT_API`] skips it; nothing else is skipped.
//! - Where a spec is known to be wrong, [`TOLERATED`] lists the exact operation and property,
//!   with the reason; [`check_log`] reports what it tolerated, so nothing passes silently.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::OnceLock;

use ghl_sandbox::{LogEntry, SandboxState};
use serde_json::Value;

/// The official specs, as copied into `tests/fixtures/ghl/`.
const SPEC_FILES: &[&str] = &[
    "ghl-contacts-openapi.json",
    "ghl-calendars-openapi.json",
    "ghl-opportunities-openapi.json",
    "ghl-forms-openapi.json",
    "ghl-locations-openapi.json",
    "ghl-users-openapi.json",
];

/// The file the specs' error-response `$ref`s point into (`../common/common-schemas.json`).
const COMMON_FILE: &str = "common-schemas.json";

/// Logged requests that are no operation of the specs: `(method, path)`.
pub const NOT_API: &[(&str, &str)] = &[
    // OAuth's token exchange, documented in GHL's OAuth guide rather than an OpenAPI spec.
    ("POST", "/oauth/token"),
];

/// A known disagreement between a spec and what GHL accepts: a problem starting with
/// `problem` of `operation` (`METHOD /template`) at `at` (array indices written `[]`) is
/// tolerated, and reported as such rather than passed silently.
#[derive(Debug)]
pub struct Tolerance {
    /// `METHOD /path/{template}` as the spec declares it.
    pub operation: &'static str,
    /// Where in the request, e.g. `body.customFields[].id` or `query.locationId`.
    pub at: &'static str,
    /// The start of the problem tolerated there.
    pub problem: &'static str,
    /// Why the spec is wrong here, and the evidence.
    pub why: &'static str,
}

/// The contacts spec leaves `POST /contacts/search`'s body (`SearchBodyV2DTO`) an empty
/// object; these are the properties GHL documents elsewhere and answers (ghl-api.md §2.7).
const SEARCH_BODY: &str =
    "SearchBodyV2DTO declares no properties; GHL takes these (ghl-api.md §2.7, observed)";

/// The contacts spec requires `id` in every `customFields` item, but its descriptions say
/// "Pass either `id` or `key`", and GHL takes `{key, field_value}` (ghl-api.md §2.2).
const CUSTOM_FIELD_KEY: &str =
    "customFields items may name the field by `key` instead of `id` (spec descriptions, ghl-api.md §2.2)";

/// The contacts spec types `dateOfBirth` as an object, yet describes it as a date string in one
/// of eight formats, with the example `"1990-09-25"` (ghl-api.md §2.1).
const DATE_OF_BIRTH: &str =
    "dateOfBirth is typed object but documented and exemplified as a date string";

const UNDECLARED: &str = "property not declared";
const STRING_FOR_OBJECT: &str = "expected object, got string";
const MISSING: &str = "required property missing";

/// The tolerated deviations; each must say why.
pub const TOLERATED: &[Tolerance] = &[
    Tolerance {
        operation: "POST /contacts/upsert",
        at: "body.dateOfBirth",
        problem: STRING_FOR_OBJECT,
        why: DATE_OF_BIRTH,
    },
    Tolerance {
        operation: "POST /contacts/",
        at: "body.dateOfBirth",
        problem: STRING_FOR_OBJECT,
        why: DATE_OF_BIRTH,
    },
    Tolerance {
        operation: "PUT /contacts/{contactId}",
        at: "body.dateOfBirth",
        problem: STRING_FOR_OBJECT,
        why: DATE_OF_BIRTH,
    },
    Tolerance {
        operation: "POST /contacts/upsert",
        at: "body.customFields[].id",
        problem: MISSING,
        why: CUSTOM_FIELD_KEY,
    },
    Tolerance {
        operation: "POST /contacts/",
        at: "body.customFields[].id",
        problem: MISSING,
        why: CUSTOM_FIELD_KEY,
    },
    Tolerance {
        operation: "PUT /contacts/{contactId}",
        at: "body.customFields[].id",
        problem: MISSING,
        why: CUSTOM_FIELD_KEY,
    },
    Tolerance {
        operation: "POST /contacts/search",
        at: "body.locationId",
        problem: UNDECLARED,
        why: SEARCH_BODY,
    },
    Tolerance {
        operation: "POST /contacts/search",
        at: "body.pageLimit",
        problem: UNDECLARED,
        why: SEARCH_BODY,
    },
    Tolerance {
        operation: "POST /contacts/search",
        at: "body.page",
        problem: UNDECLARED,
        why: SEARCH_BODY,
    },
    Tolerance {
        operation: "POST /contacts/search",
        at: "body.query",
        problem: UNDECLARED,
        why: SEARCH_BODY,
    },
    Tolerance {
        operation: "POST /contacts/search",
        at: "body.filters",
        problem: UNDECLARED,
        why: SEARCH_BODY,
    },
    Tolerance {
        operation: "POST /contacts/search",
        at: "body.sort",
        problem: UNDECLARED,
        why: SEARCH_BODY,
    },
    Tolerance {
        operation: "POST /contacts/search",
        at: "body.searchAfter",
        problem: UNDECLARED,
        why: SEARCH_BODY,
    },
];

/// One way a request departs from the specs.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// The request as sent: `METHOD /path`.
    pub request: String,
    /// Its position in the request log.
    pub index: usize,
    /// The spec operation it was matched to: `METHOD /template (file)`, if any.
    pub operation: Option<String>,
    /// `route`, `query.<name>`, `body`, `body.<property>[i]…`.
    pub at: String,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request #{} {}", self.index, self.request)?;
        if let Some(op) = &self.operation {
            write!(f, " (operation {op})")?;
        }
        write!(f, ": {}: {}", self.at, self.problem)
    }
}

/// What [`check_log`] found.
#[derive(Debug, Default)]
pub struct Checked {
    /// API requests checked.
    pub checked: usize,
    /// Departures from the specs.
    pub violations: Vec<Violation>,
    /// Departures covered by [`TOLERATED`], with the tolerance that covers each.
    pub tolerated: Vec<(Violation, &'static Tolerance)>,
}

/// Panics, listing every violation, unless every API request in the log follows the specs.
/// Also fails on a log without API requests: a check over nothing would prove nothing.
pub fn assert_requests_follow_specs(state: &SandboxState) {
    let checked = check_log(state);
    assert!(
        checked.checked > 0,
        "the sandbox logged no API request to check"
    );
    let listed: Vec<String> = checked.violations.iter().map(|v| v.to_string()).collect();
    assert!(
        listed.is_empty(),
        "{} of {} requests depart from the official GHL specs:\n{}",
        listed.len(),
        checked.checked,
        listed.join("\n")
    );
}

/// Checks every API request of the log.
pub fn check_log(state: &SandboxState) -> Checked {
    let specs = specs();
    let mut out = Checked::default();
    for (index, entry) in state.requests.iter().enumerate() {
        if NOT_API
            .iter()
            .any(|(m, p)| *m == entry.method && *p == entry.path)
        {
            continue;
        }
        out.checked += 1;
        let found = specs.check_entry(entry);
        out.violations.extend(
            found
                .violations
                .into_iter()
                .map(|v| Violation { index, ..v }),
        );
        out.tolerated.extend(
            found
                .tolerated
                .into_iter()
                .map(|(v, t)| (Violation { index, ..v }, t)),
        );
    }
    out
}

/// What the checks of one request found, before they become [`Violation`]s: `(at, problem)`.
struct Problems {
    /// `METHOD /template`, for [`TOLERATED`].
    operation: String,
    found: Vec<(String, String)>,
    tolerated: Vec<(String, String, &'static Tolerance)>,
}

impl Problems {
    fn new(operation: String) -> Self {
        Self {
            operation,
            found: Vec::new(),
            tolerated: Vec::new(),
        }
    }

    /// An empty list for the same operation (to try an `anyOf` alternative).
    fn fork(&self) -> Self {
        Self::new(self.operation.clone())
    }

    fn push(&mut self, at: String, problem: String) {
        let pattern = without_indices(&at);
        let tolerance = TOLERATED.iter().find(|t| {
            t.operation == self.operation && t.at == pattern && problem.starts_with(t.problem)
        });
        match tolerance {
            Some(t) => self.tolerated.push((at, problem, t)),
            None => self.found.push((at, problem)),
        }
    }
}

/// What the checks of one request found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Departures from the specs.
    pub violations: Vec<Violation>,
    /// Departures covered by [`TOLERATED`].
    pub tolerated: Vec<(Violation, &'static Tolerance)>,
}

/// `body.a[3].b[0]` → `body.a[].b[]`.
fn without_indices(at: &str) -> String {
    let mut out = String::with_capacity(at.len());
    let mut in_index = false;
    for c in at.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push('[');
            }
            ']' => {
                in_index = false;
                out.push(']');
            }
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

/// The loaded specs (read once per test process).
pub fn specs() -> &'static Specs {
    static SPECS: OnceLock<Specs> = OnceLock::new();
    SPECS.get_or_init(Specs::load)
}

/// One operation of a spec.
#[derive(Debug)]
struct Operation {
    method: String,
    template: String,
    file: &'static str,
    /// The spec's `servers` base path ("" for none).
    base: String,
}

impl Operation {
    fn name(&self) -> String {
        format!("{} {} ({})", self.method, self.template, self.file)
    }
}

/// The six specs and the common schemas, with their operations indexed.
#[derive(Debug)]
pub struct Specs {
    docs: BTreeMap<&'static str, Value>,
    operations: Vec<Operation>,
}

/// A schema and the file its `$ref`s resolve in.
type Located<'a> = (&'a str, &'a Value);

impl Specs {
    fn load() -> Self {
        let read = |name: &str| -> Value {
            let path = format!("{}/tests/fixtures/ghl/{name}", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
        };
        let mut docs = BTreeMap::new();
        let mut operations = Vec::new();
        docs.insert(COMMON_FILE, read(COMMON_FILE));
        for &file in SPEC_FILES {
            let doc = read(file);
            let base = doc["servers"][0]["url"]
                .as_str()
                .and_then(|u| url::Url::parse(u).ok())
                .map(|u| u.path().trim_end_matches('/').to_owned())
                .unwrap_or_default();
            for (template, item) in doc["paths"].as_object().into_iter().flatten() {
                for (method, op) in item.as_object().into_iter().flatten() {
                    if op.get("responses").is_some() {
                        operations.push(Operation {
                            method: method.to_uppercase(),
                            template: template.clone(),
                            file,
                            base: base.clone(),
                        });
                    }
                }
            }
            docs.insert(file, doc);
        }
        Self { docs, operations }
    }

    fn operation_json(&self, op: &Operation) -> (&Value, &Value) {
        let item = &self.docs[op.file]["paths"][&op.template];
        (item, &item[op.method.to_lowercase()])
    }

    /// The operation serving `method path`; `Err` says why there is none.
    fn find(&self, method: &str, path: &str) -> Result<&Operation, String> {
        let mut best: Option<(Vec<bool>, &Operation)> = None;
        let mut other_methods = BTreeSet::new();
        for op in &self.operations {
            let Some(rest) = path.strip_prefix(op.base.as_str()) else {
                continue;
            };
            let Some(rank) = match_template(&op.template, rest) else {
                continue;
            };
            if op.method != method {
                other_methods.insert(op.method.as_str());
                continue;
            }
            if best.as_ref().is_none_or(|(r, _)| rank > *r) {
                best = Some((rank, op));
            }
        }
        match best {
            Some((_, op)) => Ok(op),
            None if other_methods.is_empty() => {
                Err("no official spec declares this route (GHL answers 404)".into())
            }
            None => Err(format!(
                "no official spec declares {method} here; the path takes {}",
                other_methods.into_iter().collect::<Vec<_>>().join(", ")
            )),
        }
    }

    /// The violations of one logged request, tolerated ones included (their `index` is 0).
    pub fn check_entry(&self, entry: &LogEntry) -> Findings {
        self.check_request(
            &entry.method,
            &entry.path,
            entry.query.as_deref(),
            entry.content_type.as_deref(),
            entry.body.as_ref(),
        )
    }

    /// The violations of one request, tolerated ones included (their `index` is 0).
    pub fn check_request(
        &self,
        method: &str,
        path: &str,
        query: Option<&str>,
        content_type: Option<&str>,
        body: Option<&Value>,
    ) -> Findings {
        let request = format!("{method} {path}");
        let op = match self.find(method, path) {
            Ok(op) => op,
            Err(problem) => {
                let v = Violation {
                    request,
                    index: 0,
                    operation: None,
                    at: "route".into(),
                    problem,
                };
                return Findings {
                    violations: vec![v],
                    tolerated: Vec::new(),
                };
            }
        };
        let mut problems = Problems::new(format!("{} {}", op.method, op.template));
        let (item, json) = self.operation_json(op);
        self.check_query(op.file, item, json, query, &mut problems);
        self.check_body(op.file, json, content_type, body, &mut problems);
        let operation = op.name();
        let violation = |at: String, problem: String| Violation {
            request: request.clone(),
            index: 0,
            operation: Some(operation.clone()),
            at,
            problem,
        };
        Findings {
            violations: problems
                .found
                .into_iter()
                .map(|(at, p)| violation(at, p))
                .collect(),
            tolerated: problems
                .tolerated
                .into_iter()
                .map(|(at, p, t)| (violation(at, p), t))
                .collect(),
        }
    }

    fn check_query(
        &self,
        file: &'static str,
        item: &Value,
        op: &Value,
        query: Option<&str>,
        out: &mut Problems,
    ) {
        let declared: Vec<&Value> = [item.get("parameters"), op.get("parameters")]
            .into_iter()
            .flatten()
            .filter_map(Value::as_array)
            .flatten()
            .map(|p| self.resolve(file, p).1)
            .filter(|p| p["in"] == "query")
            .collect();
        let mut sent: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            sent.entry(k.into_owned()).or_default().push(v.into_owned());
        }
        for (name, values) in &sent {
            let at = format!("query.{name}");
            let Some(param) = declared.iter().find(|p| p["name"] == name.as_str()) else {
                out.push(at, "parameter not declared by the spec".into());
                continue;
            };
            let schema = param.get("schema").unwrap_or(&Value::Null);
            let (sfile, resolved) = self.resolve(file, schema);
            if resolved["type"] == "array" {
                let items = resolved.get("items").unwrap_or(&Value::Null);
                for (i, v) in values.iter().enumerate() {
                    self.check_query_value(sfile, items, v, &format!("{at}[{i}]"), out);
                }
            } else if values.len() > 1 {
                out.push(at, format!("given {} times, declared once", values.len()));
            } else {
                self.check_query_value(file, schema, &values[0], &at, out);
            }
        }
        for p in &declared {
            let name = p["name"].as_str().unwrap_or_default();
            if p["required"] == true && !sent.contains_key(name) {
                out.push(format!("query.{name}"), "required parameter missing".into());
            }
        }
    }

    /// Parses a query value by its declared type, then checks it like a body value.
    fn check_query_value(
        &self,
        file: &str,
        schema: &Value,
        raw: &str,
        at: &str,
        out: &mut Problems,
    ) {
        let (_, resolved) = self.resolve(file, schema);
        let value = match resolved["type"].as_str() {
            Some("number" | "integer") => match raw.parse::<serde_json::Number>() {
                Ok(n) => Value::Number(n),
                Err(_) => {
                    out.push(at.into(), format!("{raw:?} is not a number"));
                    return;
                }
            },
            Some("boolean") => match raw {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => {
                    out.push(at.into(), format!("{raw:?} is not true or false"));
                    return;
                }
            },
            _ => Value::String(raw.to_owned()),
        };
        self.check_value(file, schema, &value, at, out);
    }

    fn check_body(
        &self,
        file: &'static str,
        op: &Value,
        content_type: Option<&str>,
        body: Option<&Value>,
        out: &mut Problems,
    ) {
        let request_body = op.get("requestBody").map(|b| self.resolve(file, b).1);
        let content = request_body.and_then(|b| b.get("content"));
        let takes = |media: &str| content.is_some_and(|c| c.get(media).is_some());
        let media = content_type
            .map(|c| c.split(';').next().unwrap_or(c).trim().to_ascii_lowercase())
            .unwrap_or_default();
        if media.starts_with("multipart/") {
            // File uploads: the sandbox does not log multipart bodies; their query was checked.
            if !takes(&media) {
                out.push("body".into(), format!("{media} body, not declared"));
            }
            return;
        }
        match body {
            Some(value) => match content.and_then(|c| c.get("application/json")) {
                Some(json) => {
                    let schema = json.get("schema").unwrap_or(&Value::Null);
                    self.check_value(file, schema, value, "body", out);
                }
                None => out.push(
                    "body".into(),
                    "JSON body sent, the operation declares none".into(),
                ),
            },
            None => {
                if request_body.is_some_and(|b| b["required"] == true) {
                    out.push("body".into(), "required request body missing".into());
                } else if media == "application/json" {
                    out.push("body".into(), "declared JSON, but is not JSON".into());
                }
            }
        }
    }

    /// Follows `$ref`s (local, or into a sibling file by its name) to a schema.
    fn resolve<'a>(&'a self, file: &'a str, schema: &'a Value) -> Located<'a> {
        let (mut file, mut schema) = (file, schema);
        for _ in 0..64 {
            let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
                return (file, schema);
            };
            let (target, pointer) = reference.split_once('#').unwrap_or((reference, ""));
            if !target.is_empty() {
                let name = target.rsplit('/').next().unwrap_or(target);
                file = self
                    .docs
                    .get_key_value(name)
                    .map(|(k, _)| *k)
                    .unwrap_or_else(|| panic!("$ref {reference}: {name} is not in the fixtures"));
            }
            schema = self.docs[file]
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {reference} in {file}"));
        }
        panic!("$ref cycle at {file}")
    }

    /// Gathers a schema and its `allOf` parts into one set of constraints.
    fn flatten<'a>(&'a self, file: &'a str, schema: &'a Value, flat: &mut Flat<'a>) {
        let (file, s) = self.resolve(file, schema);
        let located = |v: &'a Value| (file, v);
        if let Some(t) = s.get("type").and_then(Value::as_str) {
            flat.types.push(t);
        }
        flat.nullable |= s.get("nullable") == Some(&Value::Bool(true));
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            flat.enums.push(e);
        }
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            flat.declares_properties = true;
            for (k, v) in props {
                flat.properties
                    .entry(k.as_str())
                    .or_default()
                    .push(located(v));
            }
        }
        for r in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            flat.required.insert(r);
        }
        match s.get("additionalProperties") {
            Some(Value::Bool(true)) => flat.open = true,
            Some(v @ Value::Object(_)) => flat.additional.push(located(v)),
            _ => {}
        }
        if let Some(items) = s.get("items") {
            flat.items.push(located(items));
        }
        for kind in ["anyOf", "oneOf"] {
            if let Some(alts) = s.get(kind).and_then(Value::as_array) {
                flat.alternatives
                    .push((kind, alts.iter().map(located).collect()));
            }
        }
        let number = |k: &str| s.get(k).and_then(Value::as_f64);
        flat.minimum.extend(number("minimum"));
        flat.maximum.extend(number("maximum"));
        flat.max_length
            .extend(s.get("maxLength").and_then(Value::as_u64));
        flat.max_items
            .extend(s.get("maxItems").and_then(Value::as_u64));
        flat.patterns
            .extend(s.get("pattern").and_then(Value::as_str));
        for part in s
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.flatten(file, part, flat);
        }
    }

    /// Checks `value` against `schema`, adding `(at, problem)` pairs.
    fn check_value(&self, file: &str, schema: &Value, value: &Value, at: &str, out: &mut Problems) {
        let mut f = Flat::default();
        self.flatten(file, schema, &mut f);
        if value.is_null() {
            let unconstrained = f.types.is_empty() && f.alternatives.is_empty();
            if !f.nullable && !unconstrained {
                out.push(at.into(), "null, but the spec does not say nullable".into());
            }
            return;
        }
        if let Some(t) = f.types.iter().find(|t| !type_fits(t, value)) {
            out.push(at.into(), format!("expected {t}, got {}", kind(value)));
            return;
        }
        for e in &f.enums {
            if !e.contains(value) {
                out.push(
                    at.into(),
                    format!("{value} is not one of {}", Value::from(e.to_vec())),
                );
            }
        }
        if let Some(n) = value.as_f64() {
            for m in f.minimum.iter().filter(|m| n < **m) {
                out.push(at.into(), format!("{n} is below the minimum {m}"));
            }
            for m in f.maximum.iter().filter(|m| n > **m) {
                out.push(at.into(), format!("{n} is above the maximum {m}"));
            }
        }
        if let Some(s) = value.as_str() {
            let chars = s.chars().count() as u64;
            for m in f.max_length.iter().filter(|m| chars > **m) {
                out.push(
                    at.into(),
                    format!("{chars} characters, at most {m} allowed"),
                );
            }
            for p in &f.patterns {
                let re = regex::Regex::new(p).unwrap_or_else(|e| panic!("pattern {p}: {e}"));
                if !re.is_match(s) {
                    out.push(at.into(), format!("{s:?} does not match {p}"));
                }
            }
        }
        for (kind_name, alts) in &f.alternatives {
            let results: Vec<Problems> = alts
                .iter()
                .map(|(afile, alt)| {
                    let mut e = out.fork();
                    self.check_value(afile, alt, value, at, &mut e);
                    e
                })
                .collect();
            let fitting: Vec<&Problems> = results.iter().filter(|r| r.found.is_empty()).collect();
            let fits = fitting.len();
            let ok = match *kind_name {
                "oneOf" => fits == 1,
                _ => fits >= 1,
            };
            if ok {
                // What the alternative that fits needed tolerated is reported.
                out.tolerated.extend(fitting[0].tolerated.iter().cloned());
            } else {
                let closest = results
                    .iter()
                    .min_by_key(|r| r.found.len())
                    .map(|r| {
                        r.found
                            .iter()
                            .map(|(a, p)| format!("{a}: {p}"))
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .unwrap_or_default();
                out.push(
                    at.into(),
                    format!(
                        "fits {fits} of the {} {kind_name} alternatives; the closest fails with: {closest}",
                        alts.len()
                    ),
                );
            }
        }
        if let Some(obj) = value.as_object() {
            for (k, v) in obj {
                let at_k = format!("{at}.{k}");
                match f.properties.get(k.as_str()) {
                    Some(schemas) => {
                        for (pfile, p) in schemas {
                            self.check_value(pfile, p, v, &at_k, out);
                        }
                    }
                    None if !f.additional.is_empty() => {
                        for (afile, a) in &f.additional {
                            self.check_value(afile, a, v, &at_k, out);
                        }
                    }
                    None if f.open || !f.declares_properties => {}
                    None => out.push(
                        at_k,
                        format!(
                            "property not declared by the spec (GHL answers 422 \"property {k} should not exist\")"
                        ),
                    ),
                }
            }
            for r in &f.required {
                if !obj.contains_key(*r) {
                    out.push(format!("{at}.{r}"), "required property missing".into());
                }
            }
        }
        if let Some(items) = value.as_array() {
            for m in f.max_items.iter().filter(|m| items.len() as u64 > **m) {
                out.push(
                    at.into(),
                    format!("{} items, at most {m} allowed", items.len()),
                );
            }
            for (i, item) in items.iter().enumerate() {
                for (ifile, s) in &f.items {
                    self.check_value(ifile, s, item, &format!("{at}[{i}]"), out);
                }
            }
        }
    }
}

/// A schema with its `allOf` parts merged: every constraint listed must hold.
#[derive(Default)]
struct Flat<'a> {
    types: Vec<&'a str>,
    nullable: bool,
    enums: Vec<&'a Vec<Value>>,
    properties: BTreeMap<&'a str, Vec<Located<'a>>>,
    declares_properties: bool,
    required: BTreeSet<&'a str>,
    additional: Vec<Located<'a>>,
    open: bool,
    items: Vec<Located<'a>>,
    alternatives: Vec<(&'static str, Vec<Located<'a>>)>,
    minimum: Vec<f64>,
    maximum: Vec<f64>,
    max_length: Vec<u64>,
    max_items: Vec<u64>,
    patterns: Vec<&'a str>,
}

/// A path for a template, each parameter filled with its name and `1`
/// (`/contacts/{contactId}` → `/contacts/contactId1`).
pub fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => format!("{name}1"),
                None => s.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// Does a template like `/contacts/{contactId}/tasks` take `path`? `Some(rank)`: per segment,
/// `true` where a literal matched (higher ranks are more specific).
fn match_template(template: &str, path: &str) -> Option<Vec<bool>> {
    let split = |p: &str| -> Vec<String> {
        let p = p.strip_prefix('/').unwrap_or(p);
        let p = p.strip_suffix('/').unwrap_or(p);
        p.split('/').map(str::to_owned).collect()
    };
    let (t, p) = (split(template), split(path));
    if t.len() != p.len() {
        return None;
    }
    t.iter()
        .zip(&p)
        .map(|(t, p)| {
            if t.starts_with('{') && t.ends_with('}') {
                (!p.is_empty()).then_some(false)
            } else {
                (t == p).then_some(true)
            }
        })
        .collect()
}

fn type_fits(t: &str, v: &Value) -> bool {
    match t {
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|n| n.fract() == 0.0),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        other => panic!("unknown schema type {other}"),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
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
        let body = json!({"locationId": "loc", "dndSettings": {"Email": {"status": "active", "reason": "x"}}});
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
        let keyed =
            json!({"locationId": "loc", "customFields": [{"key": "k", "field_value": "v"}]});
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
}
