//! urlencoded bodies as the ingress parses them: no panic, at most `server.max_form_fields`
//! fields, and the fields read back the same once encoded again.
#![no_main]

use bytes::Bytes;
use formbridge::body::{self, ParsedBody};
use formbridge_fuzz::server_limits;
use libfuzzer_sys::fuzz_target;

const URLENCODED: &str = "application/x-www-form-urlencoded";

fuzz_target!(init: { let _ = server_limits(); }, |data: &[u8]| {
    let limits = server_limits();
    let Ok(parsed) = body::parse(Some(URLENCODED), &Bytes::copy_from_slice(data), &limits) else {
        return;
    };
    let ParsedBody::Form(fields) = &parsed else {
        panic!("a urlencoded body must parse as a form: {parsed:?}");
    };
    assert!(fields.len() <= limits.max_form_fields);
    assert!(fields.iter().all(|f| f.file_name.is_none()));
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|f| (f.name.as_str(), f.value.as_str()))
        .collect();
    let encoded = serde_urlencoded::to_string(&pairs)
        .unwrap_or_else(|e| panic!("parsed fields must encode: {e}"));
    let again = body::parse(Some(URLENCODED), &Bytes::from(encoded), &limits)
        .unwrap_or_else(|e| panic!("re-encoded fields must parse: {e}"));
    // Empty pairs (`a=&`) stay; only wholly empty pieces between `&`s vanish, as they did.
    assert_eq!(again, parsed);
    let _ = parsed.content_hash();
});
