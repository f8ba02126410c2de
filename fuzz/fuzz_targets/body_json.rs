//! JSON bodies as the ingress parses them (`body::parse` under the server's limits): no panic,
//! and the one-pass limit walk agrees with serde_json on what is JSON and on its value.
#![no_main]

use bytes::Bytes;
use formbridge::body::{self, BodyError, BodyLimits, ParsedBody};
use formbridge_fuzz::server_limits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: { let _ = server_limits(); }, |data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    let bounded = body::parse(Some("application/json"), &body, &server_limits());
    let unbounded = body::parse(Some("application/json"), &body, &BodyLimits::UNLIMITED);
    let reference = serde_json::from_slice::<serde_json::Value>(data);
    match (&unbounded, &reference) {
        (Ok(ParsedBody::Json(ours)), Ok(theirs)) => assert_eq!(ours, theirs),
        (Err(BodyError::Malformed { .. }), Err(_)) => {}
        (ours, theirs) => panic!("body::parse and serde_json disagree: {ours:?} / {theirs:?}"),
    }
    match &bounded {
        // Within the limits: the same document.
        Ok(parsed) => {
            assert_eq!(Some(parsed), unbounded.as_ref().ok());
            let _ = parsed.content_hash();
            for path in [
                "event_name",
                "submissionID",
                "a.b",
                "0",
                "chat.messages.0.message",
            ] {
                let _ = parsed.field(path);
            }
        }
        // Not JSON under the limits is not JSON without them either.
        Err(BodyError::Malformed { .. }) => assert!(unbounded.is_err()),
        Err(BodyError::OverLimit(_)) => {}
        Err(e @ BodyError::UnsupportedType(_)) => panic!("JSON declared, yet: {e}"),
    }
});
