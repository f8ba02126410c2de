//! Multipart bodies (Jotform's envelope) as the ingress parses them, with the `Content-Type`
//! header from the input's first line: no panic, no hang (the in-memory multer future completes
//! in one poll), at most `server.max_form_fields` parts, and the parts read back the same once
//! encoded again.
#![no_main]

use bytes::Bytes;
use formbridge::body::{self, FormField, ParsedBody};
use formbridge_fuzz::{content_type_and_body, server_limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: { let _ = server_limits(); }, |data: &[u8]| {
    let (content_type, body) = content_type_and_body(data);
    let limits = server_limits();
    let Ok(parsed) = body::parse(content_type, &body, &limits) else {
        return;
    };
    let _ = parsed.content_hash();
    let ParsedBody::Form(fields) = &parsed else {
        return;
    };
    assert!(fields.len() <= limits.max_form_fields);
    let Ok((body::BodyFormat::Multipart, _)) = body::detect_format(content_type) else {
        return;
    };
    assert!(
        !fields.is_empty(),
        "a multipart body with no part must be refused"
    );
    // Re-encode the parts whose names can be written in a header as they are.
    if !fields.iter().all(writable) {
        return;
    }
    let boundary = boundary_outside(fields);
    let again = body::parse(
        Some(&format!("multipart/form-data; boundary={boundary}")),
        &encode(fields, &boundary),
        &limits,
    )
    .unwrap_or_else(|e| panic!("re-encoded parts must parse: {e}"));
    assert_eq!(again, parsed);
});

/// A name or file name with no quote, backslash, line break or `%` (which some readers
/// decode), non-empty and ASCII, survives a `Content-Disposition` header unchanged.
fn writable(field: &FormField) -> bool {
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'%' | b';'))
    };
    plain(&field.name) && field.file_name.as_deref().is_none_or(plain)
}

/// A boundary that no value contains.
fn boundary_outside(fields: &[FormField]) -> String {
    (0u64..)
        .map(|n| format!("fuzz-boundary-{n}"))
        .find(|b| !fields.iter().any(|f| f.value.contains(b.as_str())))
        .unwrap_or_default()
}

fn encode(fields: &[FormField], boundary: &str) -> Bytes {
    let mut out = String::new();
    for field in fields {
        out.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"",
            field.name
        ));
        if let Some(file) = &field.file_name {
            out.push_str(&format!("; filename=\"{file}\""));
        }
        out.push_str(&format!("\r\n\r\n{}\r\n", field.value));
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    Bytes::from(out)
}
