//! Jotform's `rawRequest` (a JSON document inside the multipart envelope, with JSON-in-JSON
//! widget values) and its `pretty` summary, read by the Jotform tool: no panic, and every
//! question (`q{N}_{slug}` key) of the document is an answer. The input is `pretty`, a NUL
//! byte, then `rawRequest` (no NUL: all `rawRequest`).
#![no_main]

use formbridge::body::{FormField, ParsedBody};
use formbridge::sources::jotform;
use formbridge::sources::ordered::OVal;
use formbridge_fuzz::{check_plan, default_sources, RECEIVED_AT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: formbridge_fuzz::warm_up(), |data: &[u8]| {
    let (pretty, raw_request) = match data.iter().position(|b| *b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (&data[..0], data),
    };
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let field = |name: &str, value: String| FormField {
        name: name.to_owned(),
        value,
        file_name: None,
    };
    let envelope = ParsedBody::Form(vec![
        field("submissionID", "6000000000000000000".to_owned()),
        field("formID", "250000000000000".to_owned()),
        field("pretty", text(pretty)),
        field("rawRequest", text(raw_request)),
    ]);
    let Ok((mut submission, draft)) = jotform::read(&envelope, RECEIVED_AT) else {
        return;
    };
    if let Ok(OVal::Object(members)) = OVal::parse(&text(raw_request)) {
        for (key, _) in members.iter().filter(|(k, _)| is_question(k)) {
            assert!(
                submission.answers.iter().any(|a| &a.key == key),
                "question `{key}` has no answer"
            );
        }
    }
    draft.finish(&mut submission, "US");
    let source = default_sources()
        .iter()
        .find(|s| s.kind.as_str() == "jotform")
        .unwrap_or_else(|| panic!("the jotform tool is registered"));
    check_plan(&source.mapping, &submission);
});

/// `q3_studentsName`: `q`, digits, `_`, a slug.
fn is_question(key: &str) -> bool {
    let Some((number, slug)) = key.strip_prefix('q').and_then(|r| r.split_once('_')) else {
        return false;
    };
    !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) && !slug.is_empty()
}
