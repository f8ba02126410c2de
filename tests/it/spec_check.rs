//! Checks every request in a GHL sandbox's request log against the official GHL OpenAPI specs
//! in `tests/fixtures/ghl/` (contacts, calendars, opportunities, forms, locations, users): the
//! operation exists (method + path template), its query parameters are declared, typed and the
//! required ones present, and its JSON body follows the operation's `requestBody` schema with no
//! undeclared property. Call [`assert_requests_follow_specs`] at the end of a sandbox test.
//! Here: loading the specs, finding the operation, query and body; `schema.rs` checks a value
//! against a schema; `tolerated.rs` lists the specs' known errors; `tests.rs` tests all this.
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

mod schema;
mod tolerated;

pub use tolerated::{Tolerance, TOLERATED};

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

#[cfg(test)]
mod tests;
