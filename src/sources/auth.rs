//! Webhook authentication: URL/header token, HMAC-SHA256 signature, or Standard Webhooks.
//!
//! Every comparison is constant-time. Failures say what was missing or wrong without
//! echoing secrets or the expected signature.

use axum::http::HeaderMap;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

type HmacSha256 = Hmac<Sha256>;

/// Why a delivery was not authenticated (HTTP 401).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing token: add ?token=<secret> to the webhook URL{0}")]
    MissingToken(String),
    #[error("wrong token")]
    WrongToken,
    #[error("missing signature header `{0}`")]
    MissingSignature(String),
    #[error("signature header `{0}` is not valid {1}")]
    MalformedSignature(String, &'static str),
    #[error("signature does not match the body")]
    BadSignature,
    #[error("missing Standard Webhooks header `{0}`")]
    MissingStandardHeader(&'static str),
    #[error("Standard Webhooks header `{0}` is not ASCII text")]
    UnreadableStandardHeader(&'static str),
    #[error("webhook-timestamp is not a unix time in seconds")]
    MalformedTimestamp,
    #[error("webhook-timestamp is {0}s away from this server's clock (tolerance {1}s)")]
    TimestampOutOfTolerance(i64, u64),
}

/// Encoding of an HMAC signature header.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    Hex,
    Base64,
}

impl SignatureEncoding {
    /// Its name in messages.
    fn name(self) -> &'static str {
        match self {
            SignatureEncoding::Hex => "hex",
            SignatureEncoding::Base64 => "base64",
        }
    }
}

/// A source's authentication rule, prepared once at start from its settings.
#[derive(Debug, Clone)]
pub enum Authenticator {
    None,
    Token {
        secret: SecretString,
        header: Option<String>,
    },
    Hmac {
        key: SecretString,
        header: String,
        encoding: SignatureEncoding,
    },
    StandardWebhooks {
        key: Vec<u8>,
        tolerance_secs: u64,
    },
}

impl Authenticator {
    /// Checks one delivery. `query_token` is the `token` query parameter, if any.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<(), AuthError> {
        match self {
            Authenticator::None => Ok(()),
            Authenticator::Token { secret, header } => {
                // Bytes, not text: a header that is not ASCII is a wrong token, not a missing one.
                let from_header = header
                    .as_ref()
                    .and_then(|h| headers.get(h.as_str()))
                    .map(|v| v.as_bytes());
                let presented =
                    query_token
                        .map(str::as_bytes)
                        .or(from_header)
                        .ok_or_else(|| {
                            AuthError::MissingToken(
                                header
                                    .as_ref()
                                    .map(|h| format!(" or send header `{h}`"))
                                    .unwrap_or_default(),
                            )
                        })?;
                if tokens_match(presented, secret.expose_secret().as_bytes()) {
                    Ok(())
                } else {
                    Err(AuthError::WrongToken)
                }
            }
            Authenticator::Hmac {
                key,
                header,
                encoding,
            } => {
                let raw = headers
                    .get(header.as_str())
                    .ok_or_else(|| AuthError::MissingSignature(header.clone()))?
                    .to_str()
                    .map_err(|_| AuthError::MalformedSignature(header.clone(), encoding.name()))?;
                let raw = raw.trim();
                let raw = raw.strip_prefix("sha256=").unwrap_or(raw);
                let presented = match encoding {
                    SignatureEncoding::Hex => hex::decode(raw).ok(),
                    SignatureEncoding::Base64 => BASE64.decode(raw).ok(),
                }
                .ok_or_else(|| AuthError::MalformedSignature(header.clone(), encoding.name()))?;
                let mut mac = new_mac(key.expose_secret().as_bytes());
                mac.update(body);
                mac.verify_slice(&presented)
                    .map_err(|_| AuthError::BadSignature)
            }
            Authenticator::StandardWebhooks {
                key,
                tolerance_secs,
            } => verify_standard_webhooks(key, *tolerance_secs, headers, body, now),
        }
    }
}

fn new_mac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

/// Signatures: equal length is public (a SHA-256 MAC is 32 bytes), the bytes are compared in
/// constant time.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A presented token against the secret: their SHA-256 digests compared in constant time, so
/// neither the time taken nor an early return on a length mismatch tells the secret's length.
fn tokens_match(presented: &[u8], secret: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    bool::from(Sha256::digest(presented).ct_eq(&Sha256::digest(secret)))
}

/// Decodes a Standard Webhooks secret (`whsec_` + base64).
pub fn decode_standard_webhooks_secret(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = BASE64
        .decode(b64)
        .map_err(|_| "a Standard Webhooks secret is `whsec_` followed by base64".to_owned())?;
    if key.is_empty() {
        return Err("the Standard Webhooks secret is empty".to_owned());
    }
    Ok(key)
}

/// Verifies the Standard Webhooks scheme: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
/// several space-separated signatures allowed (key rotation).
fn verify_standard_webhooks(
    key: &[u8],
    tolerance_secs: u64,
    headers: &HeaderMap,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<(), AuthError> {
    let header = |name: &'static str| {
        headers
            .get(name)
            .ok_or(AuthError::MissingStandardHeader(name))?
            .to_str()
            .map_err(|_| AuthError::UnreadableStandardHeader(name))
    };
    let id = header("webhook-id")?;
    let timestamp = header("webhook-timestamp")?;
    let signatures = header("webhook-signature")?;
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| AuthError::MalformedTimestamp)?;
    // Saturating: a timestamp near i64::MIN or MAX is far out of tolerance, not an overflow.
    let skew = now.unix_timestamp().saturating_sub(ts);
    if skew.unsigned_abs() > tolerance_secs {
        return Err(AuthError::TimestampOutOfTolerance(skew, tolerance_secs));
    }
    let mut mac = new_mac(key);
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    let matched = signatures
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| BASE64.decode(s).ok())
        .any(|sig| constant_time_eq(&sig, &expected));
    if matched {
        Ok(())
    } else {
        Err(AuthError::BadSignature)
    }
}

/// Signs a body the Standard Webhooks way (for tests and for tools that call formbridge).
pub fn standard_webhooks_signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = new_mac(key);
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// Hex HMAC-SHA256 of a body (for tests and senders).
pub fn hmac_sha256_hex(key: &[u8], body: &[u8]) -> String {
    hex::encode(hmac_sha256(key, body))
}

impl Authenticator {
    /// The header a sender adds to sign `body` for this rule (`sha256=` + the HMAC in the
    /// configured encoding), for senders such as the demo; `None` for rules that sign nothing.
    pub fn signature_for(&self, body: &[u8]) -> Option<(String, String)> {
        let Authenticator::Hmac {
            key,
            header,
            encoding,
        } = self
        else {
            return None;
        };
        let key = key.expose_secret().as_bytes();
        let signature = match encoding {
            SignatureEncoding::Hex => hmac_sha256_hex(key, body),
            SignatureEncoding::Base64 => hmac_sha256_base64(key, body),
        };
        Some((header.clone(), format!("sha256={signature}")))
    }
}

/// Base64 HMAC-SHA256 of a body, as Typeform signs (`sha256=` + this; for tests and senders).
pub fn hmac_sha256_base64(key: &[u8], body: &[u8]) -> String {
    BASE64.encode(hmac_sha256(key, body))
}

fn hmac_sha256(key: &[u8], body: &[u8]) -> Vec<u8> {
    let mut mac = new_mac(key);
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn token_in_query_or_header() {
        let auth = Authenticator::Token {
            secret: SecretString::from("s3cret"),
            header: Some("x-webhook-secret".into()),
        };
        let now = OffsetDateTime::now_utc();
        assert!(auth
            .verify(&HeaderMap::new(), Some("s3cret"), b"", now)
            .is_ok());
        assert_eq!(
            auth.verify(&HeaderMap::new(), Some("s3creT"), b"", now),
            Err(AuthError::WrongToken)
        );
        assert!(auth
            .verify(&headers(&[("x-webhook-secret", "s3cret")]), None, b"", now)
            .is_ok());
        assert!(matches!(
            auth.verify(&HeaderMap::new(), None, b"", now),
            Err(AuthError::MissingToken(_))
        ));
    }

    #[test]
    fn hmac_hex_and_base64_with_prefix() {
        let body = b"{\"a\":1}";
        let hex_sig = hmac_sha256_hex(b"k", body);
        let auth = Authenticator::Hmac {
            key: SecretString::from("k"),
            header: "x-sig".into(),
            encoding: SignatureEncoding::Hex,
        };
        let now = OffsetDateTime::now_utc();
        assert!(auth
            .verify(&headers(&[("x-sig", &hex_sig)]), None, body, now)
            .is_ok());
        assert!(auth
            .verify(
                &headers(&[("x-sig", &format!("sha256={hex_sig}"))]),
                None,
                body,
                now
            )
            .is_ok());
        assert_eq!(
            auth.verify(&headers(&[("x-sig", &hex_sig)]), None, b"other", now),
            Err(AuthError::BadSignature)
        );
        let b64 = BASE64.encode(hex::decode(&hex_sig).unwrap());
        let auth64 = Authenticator::Hmac {
            key: SecretString::from("k"),
            header: "x-sig".into(),
            encoding: SignatureEncoding::Base64,
        };
        assert!(auth64
            .verify(&headers(&[("x-sig", &b64)]), None, body, now)
            .is_ok());
        assert!(matches!(
            auth.verify(&headers(&[("x-sig", "zz")]), None, body, now),
            Err(AuthError::MalformedSignature(..))
        ));
    }

    #[test]
    fn standard_webhooks_checks_signature_and_clock() {
        let key =
            decode_standard_webhooks_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let now = OffsetDateTime::now_utc();
        let ts = now.unix_timestamp();
        let body = b"{\"x\":true}";
        let sig = standard_webhooks_signature(&key, "msg_1", ts, body);
        let auth = Authenticator::StandardWebhooks {
            key: key.clone(),
            tolerance_secs: 300,
        };
        let ok = headers(&[
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", &ts.to_string()),
            ("webhook-signature", &format!("v1,bm9wZQ== {sig}")),
        ]);
        assert!(auth.verify(&ok, None, body, now).is_ok());
        assert_eq!(
            auth.verify(&ok, None, b"tampered", now),
            Err(AuthError::BadSignature)
        );
        let old = ts - 3600;
        let stale = headers(&[
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", &old.to_string()),
            (
                "webhook-signature",
                &standard_webhooks_signature(&key, "msg_1", old, body),
            ),
        ]);
        assert!(matches!(
            auth.verify(&stale, None, body, now),
            Err(AuthError::TimestampOutOfTolerance(..))
        ));
        // The far ends of i64 are refused as out of tolerance, not an overflow.
        for extreme in [i64::MIN, i64::MAX] {
            let far = headers(&[
                ("webhook-id", "msg_1"),
                ("webhook-timestamp", &extreme.to_string()),
                ("webhook-signature", &sig),
            ]);
            assert!(matches!(
                auth.verify(&far, None, body, now),
                Err(AuthError::TimestampOutOfTolerance(..))
            ));
        }
        assert_eq!(
            auth.verify(&HeaderMap::new(), None, body, now),
            Err(AuthError::MissingStandardHeader("webhook-id"))
        );
    }
}
