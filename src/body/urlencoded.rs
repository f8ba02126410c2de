//! Reads an `application/x-www-form-urlencoded` body strictly: every name and value must be
//! UTF-8 once percent-decoded (a stray `%E9` is refused, not turned into U+FFFD), and a body
//! that is plainly JSON sent under the form type is refused instead of read as one odd field.

use std::borrow::Cow;

use percent_encoding::percent_decode;

use crate::quoted::Quoted;

/// The body's `name=value` pairs in order (pieces without `=` are names with an empty value,
/// empty pieces are skipped, `+` is a space: as browsers and `serde_urlencoded` read them), or
/// why it cannot be read.
pub fn parse(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    if looks_like_json(body) {
        return Err("it looks like JSON (it starts with `{` or `[`); send JSON with Content-Type: application/json".to_owned());
    }
    let mut pairs = Vec::new();
    for piece in body.split(|b| *b == b'&').filter(|piece| !piece.is_empty()) {
        let (name, value) = match piece.iter().position(|b| *b == b'=') {
            Some(at) => (&piece[..at], &piece[at + 1..]),
            None => (piece, &[][..]),
        };
        let name = decode(name).ok_or_else(|| {
            format!(
                "field name number {} is not UTF-8 once percent-decoded",
                pairs.len() + 1
            )
        })?;
        let value = decode(value).ok_or_else(|| {
            format!(
                "the value of field `{}` is not UTF-8 once percent-decoded",
                Quoted(&name)
            )
        })?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// Whether the body's first non-blank byte opens a JSON object or array (a form encoder
/// percent-encodes both brackets).
fn looks_like_json(body: &[u8]) -> bool {
    body.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| matches!(b, b'{' | b'['))
}

/// One name or value: `+` as a space, then percent-decoded; `None` when that is not UTF-8.
fn decode(raw: &[u8]) -> Option<String> {
    let spaced: Cow<'_, [u8]> = if raw.contains(&b'+') {
        Cow::Owned(
            raw.iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect(),
        )
    } else {
        Cow::Borrowed(raw)
    };
    let decoded: Cow<'_, [u8]> = percent_decode(&spaced).into();
    String::from_utf8(decoded.into_owned()).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_as_serde_urlencoded_does() {
        let bodies: [&[u8]; 5] = [
            b"name=Jane+Doe&email=j%40x.io",
            b"a&&b=&=c&d=%C3%A9t%C3%A9",
            b"x=1=2&y",
            b"",
            b"%2B=%26+%3D",
        ];
        for body in bodies {
            let ours = parse(body).unwrap();
            let theirs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap();
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn refuses_what_is_not_utf8_once_decoded_and_names_the_field() {
        let refused = parse(b"first=Ana&email=a%FF%40x.io").unwrap_err();
        assert!(refused.contains("`email`"), "{refused}");
        let refused = parse(b"ok=1&pr%E9nom=Ana").unwrap_err();
        assert!(refused.contains("field name number 2"), "{refused}");
        assert!(parse(b"name=Jos%C3").is_err());
        assert!(parse(b"name=a\xffb").is_err());
        let long = format!("{}=%FF", "n".repeat(500));
        let refused = parse(long.as_bytes()).unwrap_err();
        assert!(refused.len() < 200, "{refused}");
    }

    #[test]
    fn refuses_json_under_the_form_type() {
        for body in [&b"{\"a\":1}"[..], b" \r\n[1]", b"{a=b"] {
            assert!(parse(body).unwrap_err().contains("looks like JSON"));
        }
        assert!(parse(b"a={b}").is_ok());
    }
}
