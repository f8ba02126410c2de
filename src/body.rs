//! Webhook body parsing: JSON, urlencoded or multipart bytes into one typed [`ParsedBody`].
//!
//! The ingress uses it to refuse bodies that do not parse as their declared type or pass the
//! [`BodyLimits`]; the normalizers use it (with the same limits) to read a stored delivery.
//! Parsing is synchronous and linear in the body: call it from a blocking thread when the
//! body may be large.

mod limits;
mod urlencoded;

use bytes::Bytes;
use futures_util::FutureExt;

use crate::quoted::Quoted;

use limits::{
    check_form_fields, check_json, check_multipart_parts, check_urlencoded, JsonCheckError,
};
pub use limits::{BodyLimits, Limit, OverLimit};

/// Most bytes of one multipart part's headers (names and values), as for a request header.
pub const MAX_PART_HEADER_BYTES: usize = 8 * 1024;

/// The body formats formbridge accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    UrlEncoded,
    Multipart,
}

impl BodyFormat {
    /// Name used in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyFormat::Json => "application/json",
            BodyFormat::UrlEncoded => "application/x-www-form-urlencoded",
            BodyFormat::Multipart => "multipart/form-data",
        }
    }
}

/// A parsed webhook body.
#[derive(Debug, Clone, PartialEq)]
pub enum ParsedBody {
    /// A JSON document.
    Json(serde_json::Value),
    /// Form fields in order (urlencoded pairs or multipart parts); repeated names are kept.
    Form(Vec<FormField>),
}

/// One form field. File parts keep their file name; their bytes are not kept.
#[derive(Debug, Clone, PartialEq)]
pub struct FormField {
    pub name: String,
    pub value: String,
    /// Set for a multipart file part.
    pub file_name: Option<String>,
}

/// Why a body was refused.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The content type is not one formbridge reads (HTTP 415).
    #[error("unsupported content type `{0}`; send application/json, application/x-www-form-urlencoded or multipart/form-data")]
    UnsupportedType(String),
    /// The body does not parse as its content type (HTTP 400).
    #[error("body is not valid {format}: {reason}")]
    Malformed {
        format: &'static str,
        reason: String,
    },
    /// The body has more fields, values or nesting than configured (HTTP 413).
    #[error(transparent)]
    OverLimit(#[from] OverLimit),
}

impl BodyError {
    fn malformed(format: BodyFormat, reason: impl ToString) -> Self {
        Self::Malformed {
            format: format.as_str(),
            reason: reason.to_string(),
        }
    }
}

/// Decides the body format from a `Content-Type` header value. A missing header or a
/// `text/plain` one is read as JSON, since some senders (JivoChat) post JSON without saying so.
pub fn detect_format(
    content_type: Option<&str>,
) -> Result<(BodyFormat, Option<String>), BodyError> {
    let Some(raw) = content_type.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok((BodyFormat::Json, None));
    };
    let mime: mime::Mime = raw
        .parse()
        .map_err(|_| BodyError::UnsupportedType(raw.to_owned()))?;
    let format = match (mime.type_(), mime.subtype()) {
        (mime::APPLICATION, mime::JSON) => BodyFormat::Json,
        (mime::APPLICATION, sub) if mime.suffix() == Some(mime::JSON) || sub == "json" => {
            BodyFormat::Json
        }
        (mime::TEXT, mime::PLAIN) => BodyFormat::Json,
        (mime::APPLICATION, mime::WWW_FORM_URLENCODED) => BodyFormat::UrlEncoded,
        (mime::MULTIPART, mime::FORM_DATA) => BodyFormat::Multipart,
        _ => return Err(BodyError::UnsupportedType(raw.to_owned())),
    };
    let boundary = mime
        .get_param(mime::BOUNDARY)
        .map(|b| b.as_str().to_owned());
    if format == BodyFormat::Multipart {
        match &boundary {
            None => {
                return Err(BodyError::malformed(
                    format,
                    "the Content-Type has no boundary parameter",
                ))
            }
            Some(b) if b.is_empty() => {
                return Err(BodyError::malformed(
                    format,
                    "the Content-Type's boundary parameter is empty",
                ))
            }
            Some(_) => {}
        }
    }
    Ok((format, boundary))
}

/// Parses `body` according to `content_type`, refusing it when it passes `limits` (checked
/// before the body is built into values).
pub fn parse(
    content_type: Option<&str>,
    body: &Bytes,
    limits: &BodyLimits,
) -> Result<ParsedBody, BodyError> {
    let (format, boundary) = detect_format(content_type)?;
    match format {
        BodyFormat::Json => {
            check_json(body, limits).map_err(|e| match e {
                JsonCheckError::OverLimit(over) => BodyError::OverLimit(over),
                JsonCheckError::Syntax(e) => {
                    BodyError::malformed(format, json_syntax_reason(e, body, content_type))
                }
            })?;
            serde_json::from_slice(body)
                .map(ParsedBody::Json)
                .map_err(|e| BodyError::malformed(format, e))
        }
        BodyFormat::UrlEncoded => parse_urlencoded(body, limits).map(ParsedBody::Form),
        BodyFormat::Multipart => {
            // detect_format guarantees a boundary for multipart.
            let boundary = boundary.unwrap_or_default();
            check_multipart_parts(body, &boundary, limits)?;
            parse_multipart(body.clone(), boundary, limits).map(ParsedBody::Form)
        }
    }
}

/// Why a body the JSON walk refused is not JSON: when it is not UTF-8 at all, says so (and
/// names a charset the Content-Type claims), else the parser's own message.
fn json_syntax_reason(error: serde_json::Error, body: &[u8], content_type: Option<&str>) -> String {
    let Err(not_utf8) = std::str::from_utf8(body) else {
        return error.to_string();
    };
    let mut reason = format!(
        "it is not UTF-8 (byte {} starts an invalid sequence)",
        not_utf8.valid_up_to()
    );
    let charset = content_type
        .and_then(|ct| ct.parse::<mime::Mime>().ok())
        .and_then(|m| m.get_param(mime::CHARSET).map(|c| c.as_str().to_owned()));
    if let Some(charset) = charset.filter(|c| !c.eq_ignore_ascii_case("utf-8")) {
        reason.push_str(&format!(
            "; the Content-Type declares charset={charset}, but formbridge reads bodies as UTF-8 only"
        ));
    }
    reason
}

fn parse_urlencoded(body: &[u8], limits: &BodyLimits) -> Result<Vec<FormField>, BodyError> {
    check_urlencoded(body, limits)?;
    let pairs =
        urlencoded::parse(body).map_err(|e| BodyError::malformed(BodyFormat::UrlEncoded, e))?;
    Ok(pairs
        .into_iter()
        .map(|(name, value)| FormField {
            name,
            value,
            file_name: None,
        })
        .collect())
}

/// Reads a multipart body held in memory. `multer` is asynchronous, but over a stream that
/// yields the whole body at once it never waits, so its future completes in one poll.
fn parse_multipart(
    body: Bytes,
    boundary: String,
    limits: &BodyLimits,
) -> Result<Vec<FormField>, BodyError> {
    multipart_fields(body, boundary, limits)
        .now_or_never()
        .unwrap_or_else(|| {
            Err(BodyError::malformed(
                BodyFormat::Multipart,
                "the parser asked for more input than the body holds",
            ))
        })
}

async fn multipart_fields(
    body: Bytes,
    boundary: String,
    limits: &BodyLimits,
) -> Result<Vec<FormField>, BodyError> {
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut fields = Vec::new();
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| BodyError::malformed(BodyFormat::Multipart, e))?;
        let Some(field) = field else { break };
        let number = fields.len() + 1;
        check_form_fields(number, limits)?;
        check_part_headers(number, field.headers())?;
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let bytes = field
            .bytes()
            .await
            .map_err(|e| BodyError::malformed(BodyFormat::Multipart, e))?;
        // A file part's bytes are not kept (nor text); every other part is text.
        let value = if file_name.is_some() {
            String::new()
        } else {
            std::str::from_utf8(&bytes)
                .map_err(|_| {
                    BodyError::malformed(
                        BodyFormat::Multipart,
                        format!(
                            "the text of field `{}` (part {number}) is not UTF-8",
                            Quoted(&name)
                        ),
                    )
                })?
                .to_owned()
        };
        fields.push(FormField {
            name,
            value,
            file_name,
        });
    }
    if fields.is_empty() {
        return Err(BodyError::malformed(
            BodyFormat::Multipart,
            "no parts found",
        ));
    }
    Ok(fields)
}

/// Refuses part `number`'s headers when they are over [`MAX_PART_HEADER_BYTES`] or its
/// `Content-Disposition` (its field and file names) is not UTF-8.
fn check_part_headers(number: usize, headers: &axum::http::HeaderMap) -> Result<(), BodyError> {
    let size: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if size > MAX_PART_HEADER_BYTES {
        return Err(BodyError::malformed(
            BodyFormat::Multipart,
            format!("the headers of part {number} are {size} bytes; at most {MAX_PART_HEADER_BYTES} are accepted"),
        ));
    }
    let disposition = headers.get(axum::http::header::CONTENT_DISPOSITION);
    if disposition.is_some_and(|d| std::str::from_utf8(d.as_bytes()).is_err()) {
        return Err(BodyError::malformed(
            BodyFormat::Multipart,
            format!("the Content-Disposition of part {number} (its field name) is not UTF-8"),
        ));
    }
    Ok(())
}

impl ParsedBody {
    /// A hash of the content alone (SHA-256, hex): the same answers hash the same whatever
    /// the encoding's details (a multipart boundary, urlencoded escapes), so an identical
    /// resend can be told from an edit.
    pub fn content_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        match self {
            ParsedBody::Json(value) => {
                hash.update(b"json\0");
                // The same bytes as `value.to_string()`, hashed as they are written (no
                // `String` built). Writing into a hasher cannot fail.
                serde_json::to_writer(&mut hash, value)
                    .unwrap_or_else(|_| unreachable!("a hasher takes every write"));
            }
            ParsedBody::Form(fields) => {
                hash.update(b"form\0");
                for field in fields {
                    // Lengths first, so no two field lists hash the same by shifting bytes.
                    for part in [
                        field.name.as_str(),
                        field.value.as_str(),
                        field.file_name.as_deref().unwrap_or_default(),
                    ] {
                        hash.update((part.len() as u64).to_le_bytes());
                        hash.update(part.as_bytes());
                    }
                }
            }
        }
        hex::encode(hash.finalize())
    }

    /// The first form field of this name, or the top-level JSON string/number at this dot path.
    pub fn field(&self, path: &str) -> Option<String> {
        match self {
            ParsedBody::Form(fields) => fields
                .iter()
                .find(|f| f.name == path)
                .map(|f| f.value.clone()),
            ParsedBody::Json(value) => {
                let mut cur = value;
                for part in path.split('.') {
                    cur = match cur {
                        serde_json::Value::Object(map) => map.get(part)?,
                        serde_json::Value::Array(items) => {
                            items.get(part.parse::<usize>().ok()?)?
                        }
                        _ => return None,
                    };
                }
                match cur {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    serde_json::Value::Bool(b) => Some(b.to_string()),
                    _ => None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_body_hashes_as_its_compact_serialization_did() {
        // Stored hashes were `SHA-256("json\0" + value.to_string())`: hashing while
        // serializing must give the same, or every stored event would look edited.
        use sha2::{Digest, Sha256};
        let body = Bytes::from_static(b"{ \"b\": [1, 2.5, \"x\\u00e9\"], \"a\": {\"c\": null} }");
        let parsed = parse(Some("application/json"), &body, &BodyLimits::UNLIMITED).unwrap();
        let ParsedBody::Json(value) = &parsed else {
            panic!("parsed as JSON");
        };
        let mut expected = Sha256::new();
        expected.update(b"json\0");
        expected.update(value.to_string().as_bytes());
        assert_eq!(parsed.content_hash(), hex::encode(expected.finalize()));
    }

    #[test]
    fn parses_each_format() {
        let json = parse(
            Some("application/json; charset=utf-8"),
            &Bytes::from_static(b"{\"a\":{\"b\":7}}"),
            &BodyLimits::UNLIMITED,
        )
        .unwrap();
        assert_eq!(json.field("a.b").as_deref(), Some("7"));
        let form = parse(
            Some("application/x-www-form-urlencoded"),
            &Bytes::from_static(b"name=Jane+Doe&email=j%40x.io"),
            &BodyLimits::UNLIMITED,
        )
        .unwrap();
        assert_eq!(form.field("email").as_deref(), Some("j@x.io"));
        let body = "--b\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\nhello\r\n--b--\r\n";
        let multi = parse(
            Some("multipart/form-data; boundary=b"),
            &Bytes::from(body),
            &BodyLimits::UNLIMITED,
        )
        .unwrap();
        assert_eq!(multi.field("q").as_deref(), Some("hello"));
    }

    #[test]
    fn refuses_bad_bodies_and_types() {
        assert!(matches!(
            parse(
                Some("application/json"),
                &Bytes::from_static(b"{nope"),
                &BodyLimits::UNLIMITED
            ),
            Err(BodyError::Malformed { .. })
        ));
        assert!(matches!(
            parse(
                Some("application/xml"),
                &Bytes::from_static(b"<a/>"),
                &BodyLimits::UNLIMITED
            ),
            Err(BodyError::UnsupportedType(_))
        ));
        assert!(matches!(
            parse(
                Some("multipart/form-data"),
                &Bytes::from_static(b"x"),
                &BodyLimits::UNLIMITED
            ),
            Err(BodyError::Malformed { .. })
        ));
        assert!(matches!(
            parse(
                Some("multipart/form-data; boundary=zz"),
                &Bytes::from_static(b"garbage"),
                &BodyLimits::UNLIMITED
            ),
            Err(BodyError::Malformed { .. })
        ));
        // A missing content type is read as JSON (JivoChat).
        assert!(parse(
            None,
            &Bytes::from_static(b"{\"event_name\":\"x\"}"),
            &BodyLimits::UNLIMITED
        )
        .is_ok());
    }

    #[test]
    fn an_empty_boundary_is_refused() {
        assert!(matches!(
            detect_format(Some("multipart/form-data; boundary=")),
            Err(BodyError::Malformed { reason, .. }) if reason.contains("boundary parameter is empty")
        ));
        // The MIME parser takes an empty quoted value for no type at all.
        assert!(matches!(
            detect_format(Some("multipart/form-data; boundary=\"\"")),
            Err(BodyError::UnsupportedType(_))
        ));
    }

    #[test]
    fn refuses_bodies_over_their_limits() {
        let limits = BodyLimits {
            max_form_fields: 2,
            ..BodyLimits::UNLIMITED
        };
        let part = "--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nx\r\n";
        let three_parts = Bytes::from(format!("{0}{0}{0}--b--\r\n", part));
        let two_parts = Bytes::from(format!("{0}{0}--b--\r\n", part));
        let multipart = Some("multipart/form-data; boundary=b");
        assert!(parse(multipart, &two_parts, &limits).is_ok());
        let refused = parse(multipart, &three_parts, &limits).unwrap_err();
        assert!(
            matches!(&refused, BodyError::OverLimit(o) if o.limit == Limit::FormFields),
            "{refused}"
        );
        assert!(refused.to_string().contains("server.max_form_fields"));
        let form = Some("application/x-www-form-urlencoded");
        assert!(parse(form, &Bytes::from_static(b"a&a&a"), &limits).is_err());
        let depth = BodyLimits {
            max_json_depth: 1,
            ..BodyLimits::UNLIMITED
        };
        let nested = Bytes::from_static(b"{\"a\":{}}");
        assert!(matches!(
            parse(None, &nested, &depth),
            Err(BodyError::OverLimit(o)) if o.limit == Limit::JsonDepth
        ));
    }
}
