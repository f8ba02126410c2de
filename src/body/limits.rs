//! Per-delivery shape limits (form fields, JSON values, nesting, flattened key paths), checked
//! in one pass before a body is parsed, so a hostile body is refused cheaply.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// How much one delivery may hold, besides its byte size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Most fields of a urlencoded body, or parts of a multipart body (`server.max_form_fields`).
    pub max_form_fields: usize,
    /// Most JSON values plus object keys (`server.max_json_values`).
    pub max_json_values: usize,
    /// Deepest nesting of JSON arrays and objects (`server.max_json_depth`).
    pub max_json_depth: usize,
    /// Most bytes the dot paths of a JSON document's values may add up to once flattened into
    /// answers (`server.body_limit_bytes`: flattening must not grow a body beyond its limit).
    pub max_json_path_bytes: usize,
}

impl BodyLimits {
    /// No shape limit at all (offline tools and tests; the server always has limits).
    pub const UNLIMITED: Self = Self {
        max_form_fields: usize::MAX,
        max_json_values: usize::MAX,
        max_json_depth: usize::MAX,
        max_json_path_bytes: usize::MAX,
    };
}

/// Which limit a body went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    FormFields,
    JsonValues,
    JsonDepth,
    JsonPaths,
}

impl Limit {
    /// The config key that sets this limit.
    pub fn config_key(self) -> &'static str {
        match self {
            Limit::FormFields => "server.max_form_fields",
            Limit::JsonValues => "server.max_json_values",
            Limit::JsonDepth => "server.max_json_depth",
            Limit::JsonPaths => "server.body_limit_bytes",
        }
    }

    /// A stable machine-readable code for HTTP answers.
    pub fn code(self) -> &'static str {
        match self {
            Limit::FormFields | Limit::JsonValues => "too_many_fields",
            Limit::JsonDepth => "too_deeply_nested",
            Limit::JsonPaths => "payload_too_large",
        }
    }

    /// What is counted, in words.
    fn what(self) -> &'static str {
        match self {
            Limit::FormFields => "form fields (urlencoded pairs or multipart parts)",
            Limit::JsonValues => "JSON values and keys",
            Limit::JsonDepth => "levels of JSON nesting",
            Limit::JsonPaths => "bytes of flattened JSON key paths",
        }
    }

    fn allowed(self, limits: &BodyLimits) -> usize {
        match self {
            Limit::FormFields => limits.max_form_fields,
            Limit::JsonValues => limits.max_json_values,
            Limit::JsonDepth => limits.max_json_depth,
            Limit::JsonPaths => limits.max_json_path_bytes,
        }
    }
}

/// A body over one of its [`BodyLimits`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("body has more than {allowed} {} (the limit is {})", .limit.what(), .limit.config_key())]
pub struct OverLimit {
    /// The limit passed.
    pub limit: Limit,
    /// Its configured value.
    pub allowed: usize,
}

impl OverLimit {
    fn new(limit: Limit, limits: &BodyLimits) -> Self {
        Self {
            limit,
            allowed: limit.allowed(limits),
        }
    }
}

/// Counts the fields of a urlencoded body as `serde_urlencoded` reads them (non-empty
/// `&`-separated pieces) and refuses more than the limit.
pub fn check_urlencoded(body: &[u8], limits: &BodyLimits) -> Result<(), OverLimit> {
    let fields = body
        .split(|b| *b == b'&')
        .filter(|piece| !piece.is_empty())
        .count();
    check_form_fields(fields, limits)
}

/// Counts the delimiters of a multipart body (`--boundary` at its start or after a CRLF) and
/// refuses more parts than the limit before the body is parsed: a memmem scan costs far less
/// than parsing a thousand parts only to refuse the next one. Each part opens with a delimiter
/// and the closing delimiter is one more, so `n` delimiters are at most `n - 1` parts (`n` when
/// the body never closes, which the parser refuses anyway).
pub fn check_multipart_parts(
    body: &[u8],
    boundary: &str,
    limits: &BodyLimits,
) -> Result<(), OverLimit> {
    let delimiter = format!("\r\n--{boundary}");
    let opening = usize::from(body.starts_with(&delimiter.as_bytes()[2..]));
    let enough = limits.max_form_fields.saturating_add(2);
    let delimiters = opening
        + memchr::memmem::find_iter(body, delimiter.as_bytes())
            .take(enough)
            .count();
    check_form_fields(delimiters.saturating_sub(1), limits)
}

/// Refuses `fields` form fields (or multipart parts) when they are more than the limit.
pub fn check_form_fields(fields: usize, limits: &BodyLimits) -> Result<(), OverLimit> {
    if fields > limits.max_form_fields {
        return Err(OverLimit::new(Limit::FormFields, limits));
    }
    Ok(())
}

/// Why a JSON body failed its check.
#[derive(Debug)]
pub enum JsonCheckError {
    /// Over a limit (the walk stopped there).
    OverLimit(OverLimit),
    /// Not valid JSON.
    Syntax(serde_json::Error),
}

/// Walks a JSON document once without building it, counting values and keys, nesting depth
/// and the bytes its values' dot paths would take once flattened; stops at the first limit.
pub fn check_json(body: &[u8], limits: &BodyLimits) -> Result<(), JsonCheckError> {
    let mut tally = Tally {
        limits,
        values: 0,
        path_bytes: 0,
        over: None,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let walked = Walk {
        tally: &mut tally,
        depth: 0,
        path_len: 0,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    match (walked, tally.over) {
        (_, Some(over)) => Err(JsonCheckError::OverLimit(over)),
        (Err(e), None) => Err(JsonCheckError::Syntax(e)),
        (Ok(()), None) => Ok(()),
    }
}

/// What the walk has counted so far.
struct Tally<'l> {
    limits: &'l BodyLimits,
    values: usize,
    path_bytes: usize,
    over: Option<OverLimit>,
}

impl Tally<'_> {
    /// Counts one value or key; an error stops the walk once a limit is passed.
    fn count<E: serde::de::Error>(&mut self) -> Result<(), E> {
        self.values += 1;
        if self.values > self.limits.max_json_values {
            return self.stop(Limit::JsonValues);
        }
        Ok(())
    }

    /// Counts the flattened path of one scalar.
    fn leaf<E: serde::de::Error>(&mut self, path_len: usize) -> Result<(), E> {
        self.count()?;
        self.path_bytes = self.path_bytes.saturating_add(path_len);
        if self.path_bytes > self.limits.max_json_path_bytes {
            return self.stop(Limit::JsonPaths);
        }
        Ok(())
    }

    fn stop<E: serde::de::Error>(&mut self, limit: Limit) -> Result<(), E> {
        let over = OverLimit::new(limit, self.limits);
        let message = over.to_string();
        self.over = Some(over);
        Err(E::custom(message))
    }
}

/// One value of the document: its container depth and the length of its dot path.
struct Walk<'t, 'l> {
    tally: &'t mut Tally<'l>,
    depth: usize,
    path_len: usize,
}

impl Walk<'_, '_> {
    /// Enters a container, refusing one nested deeper than the limit.
    fn enter<E: serde::de::Error>(&mut self) -> Result<(), E> {
        self.tally.count()?;
        if self.depth + 1 > self.tally.limits.max_json_depth {
            return self.tally.stop(Limit::JsonDepth);
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.tally.leaf(self.path_len)
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.tally.leaf(self.path_len)
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.tally.leaf(self.path_len)
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.tally.leaf(self.path_len)
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        self.tally.leaf(self.path_len)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.tally.leaf(self.path_len)
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.enter()?;
        let mut index = 0usize;
        loop {
            // `.{index}`: a separator and the index's digits.
            let path_len = self.path_len + 1 + decimal_digits(index);
            let item = Walk {
                tally: &mut *self.tally,
                depth: self.depth + 1,
                path_len,
            };
            if seq.next_element_seed(item)?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.enter()?;
        while let Some(key_len) = map.next_key_seed(KeyLen)? {
            self.tally.count()?;
            let value = Walk {
                tally: &mut *self.tally,
                depth: self.depth + 1,
                path_len: self.path_len + 1 + key_len,
            };
            map.next_value_seed(value)?;
        }
        Ok(())
    }
}

fn decimal_digits(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Reads an object key as its length in bytes.
struct KeyLen;

impl<'de> DeserializeSeed<'de> for KeyLen {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyLen {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<usize, E> {
        Ok(key.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: BodyLimits = BodyLimits {
        max_form_fields: 3,
        max_json_values: 10,
        max_json_depth: 3,
        max_json_path_bytes: 40,
    };

    fn json_limit(doc: &str) -> Option<Limit> {
        match check_json(doc.as_bytes(), &SMALL) {
            Ok(()) => None,
            Err(JsonCheckError::OverLimit(over)) => Some(over.limit),
            Err(JsonCheckError::Syntax(e)) => panic!("{doc}: {e}"),
        }
    }

    #[test]
    fn counts_multipart_parts_by_their_delimiters() {
        let body = |parts: usize| {
            let mut body = "preamble".to_owned();
            for _ in 0..parts {
                body.push_str("\r\n--b\r\nX: y\r\n\r\nx");
            }
            body.push_str("\r\n--b--\r\n");
            body
        };
        assert!(check_multipart_parts(body(3).as_bytes(), "b", &SMALL).is_ok());
        let over = check_multipart_parts(body(4).as_bytes(), "b", &SMALL).unwrap_err();
        assert_eq!(over.limit, Limit::FormFields);
        // Opening the body without a preamble counts too.
        let bare = "--b\r\n\r\nx\r\n--b\r\n\r\nx\r\n--b\r\n\r\nx\r\n--b\r\n\r\nx\r\n--b--";
        assert!(check_multipart_parts(bare.as_bytes(), "b", &SMALL).is_err());
        assert!(check_multipart_parts(&bare.as_bytes()[..bare.len() - 20], "b", &SMALL).is_ok());
    }

    #[test]
    fn counts_urlencoded_fields_as_they_are_read() {
        assert!(check_urlencoded(b"a=1&b=2&&c=3&", &SMALL).is_ok());
        let over = check_urlencoded(b"a&a&a&a", &SMALL).unwrap_err();
        assert_eq!(over.limit, Limit::FormFields);
        assert!(over.to_string().contains("server.max_form_fields"));
    }

    #[test]
    fn json_values_depth_and_paths() {
        assert_eq!(json_limit(r#"{"a":[1,2],"b":{"c":null}}"#), None);
        // 1 object + 6 keys + 6 values.
        assert_eq!(
            json_limit(r#"{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6}"#),
            Some(Limit::JsonValues)
        );
        assert_eq!(json_limit("[[[[1]]]]"), Some(Limit::JsonDepth));
        assert_eq!(json_limit("[[[1]]]"), None);
        // Two leaves under a 30-byte key: 2 × 33 path bytes.
        let long = format!(r#"{{"{}":[1,2]}}"#, "k".repeat(30));
        assert_eq!(json_limit(&long), Some(Limit::JsonPaths));
        assert_eq!(decimal_digits(0), 1);
        assert_eq!(decimal_digits(10), 2);
    }

    #[test]
    fn syntax_errors_are_not_limits() {
        assert!(matches!(
            check_json(b"{\"a\":", &SMALL),
            Err(JsonCheckError::Syntax(_))
        ));
        assert!(matches!(
            check_json(b"{} x", &SMALL),
            Err(JsonCheckError::Syntax(_))
        ));
        assert!(check_json(b"\"just a string\"", &BodyLimits::UNLIMITED).is_ok());
    }
}
