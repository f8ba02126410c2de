//! An order-preserving JSON value, so answers keep the order the tool sent them in.
//!
//! `serde_json::Value` sorts object keys (the crate is built without `preserve_order`); a
//! form's answers must stay in form order, so normalizers read documents as [`OVal`].

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value whose objects keep their keys in document order.
#[derive(Debug, Clone, PartialEq)]
pub enum OVal {
    Null,
    Bool(bool),
    /// A number, as written by serde_json.
    Number(String),
    String(String),
    Array(Vec<OVal>),
    Object(Vec<(String, OVal)>),
}

impl OVal {
    /// Parses a JSON document.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The member of an object by key.
    pub fn get(&self, key: &str) -> Option<&OVal> {
        match self {
            OVal::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A scalar as text (`null` and containers give `None`).
    pub fn scalar(&self) -> Option<String> {
        match self {
            OVal::Bool(b) => Some(b.to_string()),
            OVal::Number(n) => Some(n.clone()),
            OVal::String(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// A scalar member of an object as text.
    pub fn str_at(&self, key: &str) -> Option<String> {
        self.get(key).and_then(OVal::scalar)
    }

    /// Whether this is a string, number, bool or null.
    pub fn is_scalar(&self) -> bool {
        !matches!(self, OVal::Array(_) | OVal::Object(_))
    }

    /// Compact text of any value (scalars as themselves, containers as JSON-like text).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write_text(&mut out);
        out
    }

    /// Writes [`OVal::to_text`] into `out`, each byte once however deep the nesting: empty
    /// members are written, then taken back.
    fn write_text(&self, out: &mut String) {
        match self {
            OVal::Null => {}
            OVal::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            OVal::Number(n) | OVal::String(n) => out.push_str(n),
            OVal::Array(items) => {
                let mut first = true;
                for item in items {
                    first = write_member(out, first, None, item);
                }
            }
            OVal::Object(members) => {
                let mut first = true;
                for (key, value) in members {
                    first = write_member(out, first, Some(key), value);
                }
            }
        }
    }
}

/// Writes `, ` (unless first), `key: ` (if any) and `value`, or nothing when `value` has no
/// text; returns whether the next member is still the first.
fn write_member(out: &mut String, first: bool, key: Option<&str>, value: &OVal) -> bool {
    let mark = out.len();
    if !first {
        out.push_str(", ");
    }
    if let Some(key) = key {
        out.push_str(key);
        out.push_str(": ");
    }
    let start = out.len();
    value.write_text(out);
    if out.len() == start {
        out.truncate(mark);
        first
    } else {
        false
    }
}

impl<'de> Deserialize<'de> for OVal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OValVisitor)
    }
}

struct OValVisitor;

impl<'de> Visitor<'de> for OValVisitor {
    type Value = OVal;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<OVal, E> {
        Ok(OVal::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<OVal, E> {
        Ok(OVal::Number(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<OVal, E> {
        Ok(OVal::Number(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<OVal, E> {
        Ok(OVal::Number(
            serde_json::Number::from_f64(v)
                .map(|n| n.to_string())
                .unwrap_or_default(),
        ))
    }
    fn visit_str<E>(self, v: &str) -> Result<OVal, E> {
        Ok(OVal::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<OVal, E> {
        Ok(OVal::String(v))
    }
    fn visit_unit<E>(self) -> Result<OVal, E> {
        Ok(OVal::Null)
    }
    fn visit_none<E>(self) -> Result<OVal, E> {
        Ok(OVal::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<OVal, D::Error> {
        OVal::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OVal, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<OVal>()? {
            items.push(item);
        }
        Ok(OVal::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OVal, A::Error> {
        let mut members = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, OVal>()? {
            members.push((k, v));
        }
        Ok(OVal::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_order() {
        let v = OVal::parse(r#"{"z":1,"a":[true,null,"x"],"m":{"b":2.5,"a":"y"}}"#).unwrap();
        let OVal::Object(members) = &v else { panic!() };
        let keys: Vec<_> = members.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["z", "a", "m"]);
        assert_eq!(v.get("m").unwrap().to_text(), "b: 2.5, a: y");
        assert_eq!(v.get("a").unwrap().to_text(), "true, x");
    }
}
