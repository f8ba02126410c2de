//! The generic adapter (any JSON, urlencoded or multipart body flattened into answers, as
//! DripJobs, POWR, 123FormBuilder and custom sources are read): no panic, no answer lost
//! (every form value and every JSON scalar is in some answer), and the flattened key paths
//! stay within the bytes the ingress's limit walk allowed. The first line is the `Content-Type`.
#![no_main]

use std::collections::HashSet;

use formbridge::body::{self, BodyLimits, ParsedBody};
use formbridge::sources::{normalize_parsed, SourceKind};
use formbridge_fuzz::{
    check_plan, content_type_and_body, default_sources, server_limits, RECEIVED_AT,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// A path budget small enough for fuzzed inputs to reach.
const PATH_BYTES: usize = 512;

fuzz_target!(init: formbridge_fuzz::warm_up(), |data: &[u8]| {
    let (content_type, body) = content_type_and_body(data);
    let limits = BodyLimits {
        max_json_path_bytes: PATH_BYTES,
        ..server_limits()
    };
    let Ok(parsed) = body::parse(content_type, &body, &limits) else {
        return;
    };
    let generic = default_sources()
        .iter()
        .find(|s| s.kind == SourceKind::generic())
        .unwrap_or_else(|| panic!("the generic tool is registered"));
    let submission = normalize_parsed(
        &generic.name,
        generic.kind,
        &generic.settings.read_options(),
        &parsed,
        &body,
        RECEIVED_AT,
    )
    .unwrap_or_else(|e| panic!("the generic adapter reads any parsed body: {e}"));
    let items: HashSet<String> = submission
        .answers
        .iter()
        .flat_map(|a| a.value.items())
        .collect();
    let keys: HashSet<&str> = submission.answers.iter().map(|a| a.key.as_str()).collect();
    match &parsed {
        ParsedBody::Form(fields) => {
            for field in fields {
                let name = field.name.strip_suffix("[]").unwrap_or(&field.name);
                let name = if name.is_empty() { "field" } else { name };
                assert!(keys.contains(name), "form field `{name}` has no answer");
                let kept = match &field.file_name {
                    Some(file) => file.clone(),
                    None => field.value.trim().to_owned(),
                };
                assert!(items.contains(&kept), "value of `{name}` lost: {kept:?}");
            }
        }
        ParsedBody::Json(value) => {
            let mut scalars = Vec::new();
            scalars_of(value, &mut scalars);
            for scalar in scalars {
                assert!(items.contains(&scalar), "JSON value lost: {scalar:?}");
            }
            // The walk counted a separator and the key for every leaf; flattening writes at
            // most that, plus `value` for a document that is a bare scalar or list.
            let written: usize = submission.answers.iter().map(|a| a.key.len()).sum();
            assert!(written <= PATH_BYTES + "value".len(), "{written} key bytes");
        }
    }
    check_plan(&generic.mapping, &submission);
});

/// The text of every non-null scalar, as the adapter keeps it (strings trimmed).
fn scalars_of(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Null => {}
        Value::Bool(b) => out.push(b.to_string()),
        Value::Number(n) => out.push(n.to_string()),
        Value::String(s) => out.push(s.trim().to_owned()),
        Value::Array(items) => items.iter().for_each(|v| scalars_of(v, out)),
        Value::Object(members) => members.values().for_each(|v| scalars_of(v, out)),
    }
}
