//! Property tests: normalization and planning never panic on arbitrary bodies for any kind,
//! and email / phone parsing round-trips (parse(format(x)) == x).
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use formbridge::body::BodyLimits;
use formbridge::domain::SourceName;
use formbridge::mapping::{build_plan, CompiledMapping, MappingError};
use formbridge::settings::SourceSettings;
use formbridge::sources::{normalize, SourceKind};
use formbridge::submission::{Email, Phone};
use proptest::prelude::*;
use time::macros::datetime;

/// Normalizes and plans `body` as every kind; only panics fail the property.
fn exercise(content_type: Option<&str>, body: &[u8]) {
    let settings: SourceSettings = serde_json::from_str("{}").unwrap();
    let body = Bytes::copy_from_slice(body);
    // Every registered tool.
    for kind in SourceKind::all() {
        let source = SourceName::parse(kind.as_str()).unwrap();
        let result = normalize(
            &source,
            kind,
            &settings.read_options(),
            &BodyLimits::UNLIMITED,
            content_type,
            &body,
            datetime!(2025-01-01 00:00 UTC),
        );
        if let Ok(sub) = result {
            let mapping = CompiledMapping::compile(&settings.mapping, &source, kind).unwrap();
            match build_plan(&mapping, &sub) {
                Ok(plan) => {
                    let _ = plan.contact_key();
                }
                Err(MappingError::NoContact { .. }) => {}
            }
            // The submission always serializes (it is stored and previewed as JSON).
            serde_json::to_string(&sub).unwrap();
        }
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| serde_json::json!(f)),
        ".{0,12}".prop_map(serde_json::Value::String),
        prop_oneof![
            Just("a@b.io"),
            Just("(202) 555-0134"),
            Just("{\"full\":\"+1 202 555 0134\"}"),
            Just("[[\"a\",1]]"),
            Just("<p>x</p>")
        ]
        .prop_map(|s| serde_json::Value::String(s.to_owned())),
    ];
    let keys = prop_oneof![
        "[a-z_]{1,8}",
        Just("email".to_owned()),
        Just("phone".to_owned()),
        Just("name".to_owned()),
        Just("q3_name".to_owned()),
        Just("event_name".to_owned()),
        Just("visitor".to_owned()),
        Just("rawRequest".to_owned()),
        Just("chat".to_owned()),
        Just("messages".to_owned()),
        Just("temp_upload".to_owned()),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..6)
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn form_fields() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (
            prop_oneof![
                ".{0,10}",
                Just("rawRequest".to_owned()),
                Just("submissionID".to_owned()),
                Just("Email".to_owned()),
                Just("services[]".to_owned())
            ],
            prop_oneof![".{0,20}", json_value().prop_map(|v| v.to_string())],
        ),
        0..8,
    )
}

fn multipart(fields: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        let name = name.replace(['"', '\r', '\n'], "");
        out.extend_from_slice(
            format!("--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    out.extend_from_slice(b"--XyZ--\r\n");
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        for ct in [None, Some("application/json"), Some("application/x-www-form-urlencoded"), Some("multipart/form-data; boundary=XyZ"), Some("text/plain")] {
            exercise(ct, &body);
        }
    }

    #[test]
    fn arbitrary_json_never_panics(v in json_value()) {
        exercise(Some("application/json"), v.to_string().as_bytes());
        // The same document as a Jotform rawRequest.
        let fields = vec![("submissionID".to_owned(), "1".to_owned()), ("rawRequest".to_owned(), v.to_string())];
        exercise(Some("multipart/form-data; boundary=XyZ"), &multipart(&fields));
    }

    #[test]
    fn arbitrary_forms_never_panic(fields in form_fields()) {
        let encoded = serde_urlencoded::to_string(&fields).unwrap();
        exercise(Some("application/x-www-form-urlencoded"), encoded.as_bytes());
        exercise(Some("multipart/form-data; boundary=XyZ"), &multipart(&fields));
    }

    #[test]
    fn email_round_trips(local in "[A-Za-z0-9._%+-]{1,20}", domain in "[A-Za-z0-9-]{1,12}", tld in "[A-Za-z]{2,6}", junk in ".{0,30}") {
        for raw in [format!("{local}@{domain}.{tld}"), junk] {
            if let Ok(e) = Email::parse(&raw) {
                prop_assert_eq!(Email::parse(e.as_str()).unwrap(), e.clone());
                prop_assert_eq!(e.as_str(), e.as_str().to_lowercase());
            }
        }
    }

    #[test]
    fn phone_round_trips(area in 200u32..1000, exchange in 200u32..1000, line in 0u32..10000, country in prop::sample::select(vec!["US", "GB", "DE", "FR", "BR", "IN"]), junk in "[0-9 ()+.-]{0,18}") {
        let national = format!("{area} {exchange} {line:04}");
        let variants = [
            format!("({area}) {exchange}-{line:04}"),
            format!("{area}.{exchange}.{line:04}"),
            format!("+1 {national}"),
            national.clone(),
        ];
        let parsed: Vec<_> = variants.iter().map(|v| Phone::parse(v, "US").ok()).collect();
        // Every way of writing the same US number gives the same result.
        prop_assert!(parsed.windows(2).all(|w| w[0] == w[1]), "{:?}", parsed);
        for candidate in [Phone::parse(&variants[0], "US"), Phone::parse(&junk, country)].into_iter().flatten() {
            prop_assert!(candidate.as_str().starts_with('+'));
            // E.164 parses back to itself whatever the default country.
            prop_assert_eq!(Phone::parse(candidate.as_str(), country).unwrap(), candidate.clone());
            prop_assert_eq!(Phone::parse(candidate.as_str(), "US").unwrap(), candidate);
        }
    }
}

/// Found by `phone_round_trips`: an E.164 +1 number must parse back whatever the default country.
#[test]
fn international_numbers_ignore_the_default_country() {
    let phone = Phone::parse("(900) 200-0000", "US").unwrap();
    assert_eq!(phone.as_str(), "+19002000000");
    assert_eq!(Phone::parse(phone.as_str(), "BR").unwrap(), phone);
}
