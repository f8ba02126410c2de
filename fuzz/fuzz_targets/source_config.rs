//! A source's configuration as an operator writes it (`[sources.<name>]` in TOML: kind, auth,
//! mapping with its templates, conditions, regexes, due dates, follow-ups, …) compiled as the
//! server compiles it at start (`SourceRuntime::compile`), then every plan it builds: over the
//! fixtures' submissions, and over the input's own delivery when it has one. A configuration
//! that compiles must build a plan for any submission without panicking. The input is the
//! TOML, then optionally a NUL byte, a `Content-Type` line and a body.
#![no_main]

use formbridge::domain::SourceName;
use formbridge::runtime::SourceRuntime;
use formbridge::settings::SourceSettings;
use formbridge::sources::normalize;
use formbridge_fuzz::{
    check_plan, content_type_and_body, fixture_submissions, server_limits, RECEIVED_AT,
};
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;

/// Sources compiled per input, so one input's time stays bounded.
const MAX_SOURCES: usize = 8;

fuzz_target!(init: formbridge_fuzz::warm_up(), |data: &[u8]| {
    let (config, delivery) = match data.iter().position(|b| *b == 0) {
        Some(nul) => (&data[..nul], Some(&data[nul + 1..])),
        None => (data, None),
    };
    let Ok(config) = std::str::from_utf8(config) else {
        return;
    };
    let Ok(table) = config.parse::<toml::Table>() else {
        return;
    };
    let Some(toml::Value::Table(sources)) = table.get("sources") else {
        return;
    };
    for (name, value) in sources.iter().take(MAX_SOURCES) {
        let Ok(name) = SourceName::parse(name) else {
            continue;
        };
        let Ok(settings) = value.clone().try_into::<SourceSettings>() else {
            continue;
        };
        let Ok(runtime) = SourceRuntime::compile(name, &settings, Some("location".to_owned()))
        else {
            continue;
        };
        if let Some(auth) = &runtime.auth {
            let _ = auth.verify(&HeaderMap::new(), None, b"{}", RECEIVED_AT);
        }
        for submission in fixture_submissions() {
            check_plan(&runtime.mapping, submission);
        }
        if let Some(delivery) = delivery {
            let (content_type, body) = content_type_and_body(delivery);
            if let Ok(submission) = normalize(
                &runtime.name,
                runtime.kind,
                &runtime.read_options(),
                &server_limits(),
                content_type,
                &body,
                RECEIVED_AT,
            ) {
                check_plan(&runtime.mapping, &submission);
            }
        }
    }
});
