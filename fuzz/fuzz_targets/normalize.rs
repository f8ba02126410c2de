//! A stored delivery read by every tool, as the preparer reads it (`sources::normalize` under
//! the server's limits, then the default plan): no panic, and what the ingress and the agent
//! view read from the same parsed body (delivery id, agent view wanted) never panics either.
//! The input's first line is the `Content-Type`.
#![no_main]

use formbridge::body;
use formbridge::sources::normalize;
use formbridge_fuzz::{
    check_plan, content_type_and_body, default_sources, server_limits, RECEIVED_AT,
};
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: formbridge_fuzz::warm_up(), |data: &[u8]| {
    let (content_type, body) = content_type_and_body(data);
    let limits = server_limits();
    for source in default_sources() {
        // What the ingress does before storing.
        let declared = source.kind.body_content_type(content_type);
        if let Ok(parsed) = body::parse(declared, &body, &limits) {
            let _ = source.kind.delivery_id(&parsed, &HeaderMap::new());
            let _ = source.kind.agent_view_wanted(&parsed);
        }
        // What the preparer does with the stored delivery.
        let Ok(submission) = normalize(
            &source.name,
            source.kind,
            &source.settings.read_options(),
            &limits,
            content_type,
            &body,
            RECEIVED_AT,
        ) else {
            continue;
        };
        let _ = source.kind.default_note(source.kind.title(), &submission);
        let _ = source.kind.default_task(&submission);
        let _ = source.kind.call(&submission);
        check_plan(&source.mapping, &submission);
    }
});
