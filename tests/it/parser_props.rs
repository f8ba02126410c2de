//! Property tests of the parsers of untrusted input that read best as properties (the fuzz
//! targets in fuzz/ cover the same code with coverage guidance): signature checks never accept
//! a changed body, a token only itself, templates render answers verbatim whatever they hold,
//! conditions agree with their documented meaning, urlencoded bodies and URL tokens round-trip.

use axum::http::{HeaderMap, HeaderValue};
use bytes::Bytes;
use formbridge::body::{self, BodyLimits, ParsedBody};
use formbridge::http::hooks::query_token;
use formbridge::mapping::condition::Condition;
use formbridge::mapping::template::Template;
use formbridge::mapping::vars::Vars;
use formbridge::sources::auth::{
    standard_webhooks_signature, AuthError, Authenticator, SignatureEncoding,
};
use formbridge::submission::{Answer, AnswerValue, Submission};
use proptest::prelude::*;
use time::OffsetDateTime;

fn header(name: &'static str, value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(name, HeaderValue::from_str(value).unwrap());
    headers
}

/// `body` with byte `at` changed by `xor` (or one byte added to an empty body).
fn changed(body: &[u8], at: usize, xor: u8) -> Vec<u8> {
    let mut out = body.to_vec();
    match out.get_mut(at % body.len().max(1)) {
        Some(byte) => *byte ^= xor,
        None => out.push(xor),
    }
    out
}

fn submission_with(answers: &[(String, String)]) -> Submission {
    let mut sub = Submission::new(OffsetDateTime::UNIX_EPOCH);
    for (key, value) in answers {
        sub.answers.push(Answer {
            key: key.clone(),
            label: key.clone(),
            value: AnswerValue::Text(value.clone()),
        });
    }
    sub
}

fn when(field: &str, equals: Option<&str>, contains: Option<&str>) -> Condition {
    Condition {
        field: field.to_owned(),
        equals: equals.map(str::to_owned),
        contains: contains.map(str::to_owned),
        matches: None,
        present: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn hmac_accepts_its_signature_and_never_a_changed_body(
        key in "[ -~]{1,40}",
        body in prop::collection::vec(any::<u8>(), 0..512),
        at in any::<usize>(),
        xor in 1u8..=255,
        base64 in any::<bool>(),
    ) {
        let auth = Authenticator::Hmac {
            key: key.clone().into(),
            header: "x-signature".to_owned(),
            encoding: if base64 { SignatureEncoding::Base64 } else { SignatureEncoding::Hex },
        };
        let (name, signature) = auth.signature_for(&body).unwrap();
        prop_assert_eq!(name, "x-signature");
        let sent = header("x-signature", &signature);
        let now = OffsetDateTime::now_utc();
        prop_assert_eq!(auth.verify(&sent, None, &body, now), Ok(()));
        prop_assert_eq!(
            auth.verify(&sent, None, &changed(&body, at, xor), now),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn standard_webhooks_never_accept_a_changed_body_id_or_time(
        key in prop::collection::vec(any::<u8>(), 1..64),
        id in "[A-Za-z0-9_]{1,24}",
        body in prop::collection::vec(any::<u8>(), 0..512),
        at in any::<usize>(),
        xor in 1u8..=255,
        skew in -300i64..=300,
    ) {
        let auth = Authenticator::StandardWebhooks { key: key.clone(), tolerance_secs: 300 };
        let now = OffsetDateTime::now_utc();
        let ts = now.unix_timestamp() + skew;
        let signature = standard_webhooks_signature(&key, &id, ts, &body);
        let sent = |id: &str, ts: i64| {
            let mut h = header("webhook-id", id);
            h.insert("webhook-timestamp", HeaderValue::from_str(&ts.to_string()).unwrap());
            h.insert("webhook-signature", HeaderValue::from_str(&signature).unwrap());
            h
        };
        prop_assert_eq!(auth.verify(&sent(&id, ts), None, &body, now), Ok(()));
        let refused = || Err(AuthError::BadSignature);
        prop_assert_eq!(auth.verify(&sent(&id, ts), None, &changed(&body, at, xor), now), refused());
        prop_assert_eq!(auth.verify(&sent(&format!("{id}x"), ts), None, &body, now), refused());
        // Another second within the tolerance: the timestamp is signed too.
        let other = if skew > 0 { ts - 1 } else { ts + 1 };
        prop_assert_eq!(auth.verify(&sent(&id, other), None, &body, now), refused());
    }

    #[test]
    fn a_token_is_accepted_only_when_it_is_the_secret(
        secret in "[!-~]{1,32}",
        presented in "[!-~]{0,32}",
    ) {
        let auth = Authenticator::Token { secret: secret.clone().into(), header: Some("x-token".to_owned()) };
        let now = OffsetDateTime::now_utc();
        let by_query = auth.verify(&HeaderMap::new(), Some(&presented), b"", now);
        prop_assert_eq!(by_query.is_ok(), presented == secret);
        if !presented.is_empty() {
            let by_header = auth.verify(&header("x-token", &presented), None, b"", now);
            prop_assert_eq!(by_header.is_ok(), presented == secret);
        }
    }

    #[test]
    fn url_tokens_round_trip(token in any::<String>(), other in any::<String>()) {
        let query = serde_urlencoded::to_string([("x", other.as_str()), ("token", token.as_str())]).unwrap();
        prop_assert_eq!(query_token(Some(&query)), Some(token));
    }

    #[test]
    fn templates_render_answers_verbatim(
        key in "[a-z][a-z0-9_]{0,12}",
        value in any::<String>(),
        before in "[^{}]{0,12}",
        after in "[^{}]{0,12}",
    ) {
        // A value that holds `{{email}}` or `}}` is rendered as written, never expanded.
        let value = format!("{value}{{{{email}}}}}}");
        let sub = submission_with(&[(key.clone(), value.clone())]);
        let vars = Vars { submission: &sub, source: "s", tool: "generic" };
        let template = Template::parse(&format!("{before}{{{{ answers.{key} }}}}{after}")).unwrap();
        prop_assert_eq!(template.render(&vars), format!("{before}{value}{after}"));
    }

    #[test]
    fn conditions_hold_as_documented(
        key in "[a-z][a-z0-9_]{0,12}",
        value in "[ -~]{0,24}",
        operand in "[ -~]{0,24}",
    ) {
        let sub = submission_with(&[(key.clone(), value.clone())]);
        let vars = Vars { submission: &sub, source: "s", tool: "generic" };
        let field = format!("answers.{key}");
        let holds = |c: Condition| c.compile("tags.when[0]").unwrap().holds(&vars);
        // `equals`: trimmed, any case.
        let shouted = format!("  {}  ", value.to_uppercase());
        prop_assert!(holds(when(&field, Some(&shouted), None)));
        prop_assert_eq!(
            holds(when(&field, Some(&operand), None)),
            value.trim().eq_ignore_ascii_case(operand.trim())
        );
        // `contains`: any case.
        prop_assert_eq!(
            holds(when(&field, None, Some(&operand))),
            value.to_lowercase().contains(&operand.to_lowercase())
        );
    }

    #[test]
    fn urlencoded_bodies_round_trip(
        pairs in prop::collection::vec((any::<String>(), any::<String>()), 0..12),
    ) {
        let encoded = serde_urlencoded::to_string(&pairs).unwrap();
        let parsed = body::parse(
            Some("application/x-www-form-urlencoded"),
            &Bytes::from(encoded),
            &BodyLimits::UNLIMITED,
        )
        .unwrap();
        let ParsedBody::Form(fields) = parsed else { panic!("a form") };
        let read: Vec<(String, String)> = fields.into_iter().map(|f| (f.name, f.value)).collect();
        prop_assert_eq!(read, pairs);
    }
}

/// A condition on a field that is no template variable is refused when the mapping compiles,
/// naming its key.
#[test]
fn a_condition_on_an_unknown_field_is_refused_at_compile() {
    let error = when("nope", Some("x"), None)
        .compile("tags.when[0]")
        .unwrap_err()
        .to_string();
    assert!(error.contains("tags.when[0].field"), "{error}");
}
