//! The ingress's authentication of untrusted requests (src/sources/auth.rs and the URL's
//! `?token=`): a URL or header token, an HMAC-SHA256 signature header (hex or base64, with or
//! without `sha256=`), Standard Webhooks. No panic on any header or query; a correct signature
//! is accepted, and a signature is never accepted for a changed body, another id or timestamp,
//! or when it is not the right MAC.
#![no_main]

use arbitrary::Arbitrary;
use formbridge::http::hooks::query_token;
use formbridge::sources::auth::{
    decode_standard_webhooks_secret, hmac_sha256_base64, hmac_sha256_hex,
    standard_webhooks_signature, AuthError, Authenticator, SignatureEncoding,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

#[derive(Debug, Arbitrary)]
struct Input {
    /// The secret (token, HMAC key or Standard Webhooks key).
    secret: String,
    body: Vec<u8>,
    /// A query string as sent (`token=…&…`).
    query: String,
    /// A header value as sent (a token or a signature), raw bytes.
    presented: Vec<u8>,
    /// Base64 of the signature header: hex when false.
    base64: bool,
    /// Standard Webhooks: the message id and how far the timestamp is from now.
    id: String,
    skew: i32,
    /// A byte of the body to change, and how.
    tamper: (u16, u8),
    /// A whole Standard Webhooks secret as configured (`whsec_…`).
    configured: String,
}

const NOW: i64 = 1_750_000_000;
const TOLERANCE: u64 = 300;

fuzz_target!(|input: Input| {
    let now = OffsetDateTime::from_unix_timestamp(NOW).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let token = query_token(Some(&input.query));
    let _ = decode_standard_webhooks_secret(&input.configured);
    check_token(&input, token.as_deref(), now);
    if !input.secret.is_empty() {
        check_hmac(&input, now);
        check_standard_webhooks(&input, now);
    }
});

fn headers(pairs: &[(&'static str, &[u8])]) -> Option<HeaderMap> {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(
            HeaderName::from_static(name),
            HeaderValue::from_bytes(value).ok()?,
        );
    }
    Some(map)
}

/// A token matches only when it is the secret.
fn check_token(input: &Input, query: Option<&str>, now: OffsetDateTime) {
    let auth = Authenticator::Token {
        secret: input.secret.clone().into(),
        header: Some("x-webhook-secret".to_owned()),
    };
    let verdict = auth.verify(&HeaderMap::new(), query, &input.body, now);
    assert_eq!(
        verdict.is_ok(),
        query == Some(input.secret.as_str()),
        "{verdict:?}"
    );
    if let Some(sent) = headers(&[("x-webhook-secret", &input.presented)]) {
        let verdict = auth.verify(&sent, None, &input.body, now);
        // A header value is read only when it is visible ASCII.
        let presented = sent.get("x-webhook-secret").and_then(|v| v.to_str().ok());
        assert_eq!(
            verdict.is_ok(),
            presented == Some(input.secret.as_str()),
            "{verdict:?}"
        );
    }
}

/// The sender's own signature is accepted; a changed body or a presented header that is not
/// the MAC is refused.
fn check_hmac(input: &Input, now: OffsetDateTime) {
    let encoding = if input.base64 {
        SignatureEncoding::Base64
    } else {
        SignatureEncoding::Hex
    };
    let auth = Authenticator::Hmac {
        key: input.secret.clone().into(),
        header: "x-signature".to_owned(),
        encoding,
    };
    let Some((_, signed)) = auth.signature_for(&input.body) else {
        panic!("an HMAC rule signs");
    };
    let sent = headers(&[("x-signature", signed.as_bytes())]).unwrap_or_default();
    assert_eq!(auth.verify(&sent, None, &input.body, now), Ok(()));
    if let Some(changed) = tampered(&input.body, input.tamper) {
        assert_eq!(
            auth.verify(&sent, None, &changed, now),
            Err(AuthError::BadSignature)
        );
    }
    if let Some(sent) = headers(&[("x-signature", &input.presented)]) {
        if auth.verify(&sent, None, &input.body, now).is_ok() {
            let mac = match encoding {
                SignatureEncoding::Hex => hmac_sha256_hex(input.secret.as_bytes(), &input.body),
                SignatureEncoding::Base64 => {
                    hmac_sha256_base64(input.secret.as_bytes(), &input.body)
                }
            };
            let presented = String::from_utf8_lossy(&input.presented);
            assert!(
                presented
                    .to_ascii_lowercase()
                    .contains(&mac.to_ascii_lowercase()),
                "accepted {presented:?}, which is not the MAC"
            );
        }
    }
}

/// Signed now, within the tolerance, it is accepted; the same signature over a changed body,
/// another id or another timestamp is refused, as is one outside the tolerance.
fn check_standard_webhooks(input: &Input, now: OffsetDateTime) {
    let key = input.secret.as_bytes().to_vec();
    let auth = Authenticator::StandardWebhooks {
        key: key.clone(),
        tolerance_secs: TOLERANCE,
    };
    let ts = NOW + i64::from(input.skew);
    let signature = standard_webhooks_signature(&key, &input.id, ts, &input.body);
    let ts_text = ts.to_string();
    let Some(sent) = headers(&[
        ("webhook-id", input.id.as_bytes()),
        ("webhook-timestamp", ts_text.as_bytes()),
        ("webhook-signature", signature.as_bytes()),
    ]) else {
        return;
    };
    // A header value that is not visible ASCII is not read (the id then counts as missing).
    if sent
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .is_none()
    {
        return;
    }
    let verdict = auth.verify(&sent, None, &input.body, now);
    if input.skew.unsigned_abs() as u64 <= TOLERANCE {
        assert_eq!(verdict, Ok(()));
    } else {
        assert!(
            matches!(verdict, Err(AuthError::TimestampOutOfTolerance(..))),
            "{verdict:?}"
        );
        return;
    }
    if let Some(changed) = tampered(&input.body, input.tamper) {
        assert_eq!(
            auth.verify(&sent, None, &changed, now),
            Err(AuthError::BadSignature)
        );
    }
    // Another id with the same signature.
    let other_id = format!("{}x", input.id);
    if let Some(replayed) = headers(&[
        ("webhook-id", other_id.as_bytes()),
        ("webhook-timestamp", ts_text.as_bytes()),
        ("webhook-signature", signature.as_bytes()),
    ]) {
        assert_eq!(
            auth.verify(&replayed, None, &input.body, now),
            Err(AuthError::BadSignature)
        );
    }
    // A fuzzed signature header is accepted only when it carries the signature.
    if let Some(sent) = headers(&[
        ("webhook-id", input.id.as_bytes()),
        ("webhook-timestamp", ts_text.as_bytes()),
        ("webhook-signature", &input.presented),
    ]) {
        if auth.verify(&sent, None, &input.body, now).is_ok() {
            let presented = String::from_utf8_lossy(&input.presented);
            let b64 = signature.trim_start_matches("v1,");
            assert!(
                presented.contains(b64.trim_end_matches('=')),
                "accepted {presented:?}, which is not the signature"
            );
        }
    }
}

/// The body with one byte changed (`None` when the change is no change).
fn tampered(body: &[u8], (at, xor): (u16, u8)) -> Option<Vec<u8>> {
    let mut changed = body.to_vec();
    if xor == 0 {
        changed.push(b'x');
    } else if let Some(byte) = changed.get_mut(usize::from(at) % body.len().max(1)) {
        *byte ^= xor;
    } else {
        changed.push(xor);
    }
    Some(changed)
}
