//! Decoding of Jotform answer encodings (name, phone, address, date, appointment, time,
//! checkbox arrays, matrices, JSON-in-JSON widgets, products, uploads) into typed answers.

use super::detect::Role;
use super::ordered::OVal;
use crate::submission::{AnswerValue, NamedValue};

/// The items of an array answer as text (a scalar gives one item).
pub fn list_of(value: &OVal) -> Vec<String> {
    match value {
        OVal::Array(items) => items.iter().map(OVal::to_text).collect(),
        OVal::Null => Vec::new(),
        other => vec![other.to_text()],
    }
}

/// A decoded answer: its value, what `pretty` would show for it, and its contact shape.
pub struct Decoded {
    /// The typed answer.
    pub value: AnswerValue,
    /// How `pretty` renders it, when known (for label matching).
    pub pretty: Option<String>,
    /// The contact role its shape reveals.
    pub shape: Shape,
}

/// The contact role a Jotform value shape reveals.
pub enum Shape {
    None,
    Name {
        first: String,
        last: String,
    },
    /// The number, and the phone field's own country where it has one.
    Phone(String, Option<String>),
    Address(Vec<(Role, String)>),
}

fn plain(value: AnswerValue) -> Decoded {
    Decoded {
        pretty: match &value {
            AnswerValue::Text(t) => Some(t.clone()),
            AnswerValue::List(items) => Some(items.join(" ")),
            _ => None,
        },
        value,
        shape: Shape::None,
    }
}

/// Decodes one rawRequest answer; `is_upload` marks a file-upload question.
pub fn decode(value: &OVal, is_upload: bool) -> Decoded {
    match value {
        OVal::String(s) => {
            let t = s.trim();
            if (t.starts_with('[') || t.starts_with('{')) && t.len() > 1 {
                if let Ok(inner @ (OVal::Array(_) | OVal::Object(_))) = OVal::parse(t) {
                    // A widget or matrix value sent as a JSON string: decode twice.
                    let mut d = decode(&inner, is_upload);
                    d.pretty = Some(s.clone());
                    return d;
                }
            }
            plain(AnswerValue::Text(s.clone()))
        }
        OVal::Array(items)
            if items.iter().all(|i| matches!(i, OVal::Array(_))) && !items.is_empty() =>
        {
            let rows = items
                .iter()
                .map(|r| match r {
                    OVal::Array(cells) => cells.iter().map(OVal::to_text).collect(),
                    _ => Vec::new(),
                })
                .collect();
            plain(AnswerValue::Table(rows))
        }
        OVal::Array(_) if is_upload => plain(AnswerValue::Files(list_of(value))),
        OVal::Array(_) => plain(AnswerValue::List(list_of(value))),
        OVal::Object(_) => decode_object(value),
        other => plain(AnswerValue::Text(other.to_text())),
    }
}

fn decode_object(v: &OVal) -> Decoded {
    let s = |k: &str| v.str_at(k).unwrap_or_default().trim().to_owned();
    let has = |k: &str| v.get(k).is_some();
    if has("first") || has("last") {
        let parts: Vec<String> = ["prefix", "first", "middle", "last", "suffix"]
            .iter()
            .map(|k| s(k))
            .filter(|p| !p.is_empty())
            .collect();
        let full = parts.join(" ");
        let first = [s("first"), s("middle")]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        return Decoded {
            value: AnswerValue::Text(full.clone()),
            pretty: Some(full),
            shape: Shape::Name {
                first,
                last: s("last"),
            },
        };
    }
    if has("full") || (has("area") && has("phone")) {
        let phone_country = ["country", "countryCode"]
            .into_iter()
            .find(|k| has(k))
            .map(&s);
        let full = if has("full") {
            s("full")
        } else {
            format!("{} {}", s("area"), s("phone")).trim().to_owned()
        };
        return Decoded {
            value: AnswerValue::Text(full.clone()),
            pretty: Some(full.clone()),
            shape: Shape::Phone(full, phone_country),
        };
    }
    if has("addr_line1") || has("postal") || (has("city") && has("state")) {
        let parts = [
            ("addr_line1", "Street Address", Role::Address1),
            ("addr_line2", "Street Address Line 2", Role::Address2),
            ("city", "City", Role::City),
            ("state", "State / Province", Role::State),
            ("postal", "Postal / Zip Code", Role::PostalCode),
            ("country", "Country", Role::Country),
        ];
        let present: Vec<_> = parts.iter().filter(|(k, _, _)| !s(k).is_empty()).collect();
        return Decoded {
            value: AnswerValue::Fields(
                present
                    .iter()
                    .map(|(k, label, _)| NamedValue {
                        name: (*label).to_owned(),
                        value: s(k),
                    })
                    .collect(),
            ),
            pretty: None,
            shape: Shape::Address(present.iter().map(|(k, _, r)| (*r, s(k))).collect()),
        };
    }
    if has("month") && has("day") && has("year") {
        let (m, d, y) = (s("month"), s("day"), s("year"));
        let iso = match (m.parse::<u8>(), d.parse::<u8>(), y.parse::<u16>()) {
            (Ok(m), Ok(d), Ok(y)) => format!("{y:04}-{m:02}-{d:02}"),
            _ => [y.as_str(), m.as_str(), d.as_str()]
                .iter()
                .filter(|p| !p.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("-"),
        };
        let mut out = plain(AnswerValue::Text(iso));
        out.pretty = Some(format!("{m} {d} {y}"));
        return out;
    }
    if has("date") && (has("duration") || has("timezone")) {
        let mut text = s("date");
        let extra: Vec<String> = [
            Some(s("duration"))
                .filter(|d| !d.is_empty())
                .map(|d| format!("{d} min")),
            Some(s("timezone")).filter(|t| !t.is_empty()),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !extra.is_empty() {
            text = format!("{text} ({})", extra.join(", "));
        }
        return plain(AnswerValue::Text(text));
    }
    if has("timeInput") || has("hourSelect") {
        let time = if s("timeInput").is_empty() {
            format!("{}:{}", s("hourSelect"), s("minuteSelect"))
        } else {
            s("timeInput")
        };
        return plain(AnswerValue::Text(
            format!("{time} {}", s("ampm")).trim().to_owned(),
        ));
    }
    if let Some(OVal::Array(products)) = v.get("products") {
        let mut lines: Vec<String> = products
            .iter()
            .map(|p| {
                let g = |k: &str| p.str_at(k).unwrap_or_default();
                format!(
                    "{} × {} @ {} {}",
                    g("productName"),
                    g("quantity"),
                    g("unitPrice"),
                    g("currency")
                )
                .trim()
                .to_owned()
            })
            .collect();
        if let Some(total) = v.get("totalInfo") {
            lines.push(
                format!(
                    "Total: {} {}",
                    total.str_at("totalSum").unwrap_or_default(),
                    total.str_at("currency").unwrap_or_default()
                )
                .trim()
                .to_owned(),
            );
        }
        return plain(AnswerValue::List(lines));
    }
    // Any other object (widgets): its members as named parts.
    let OVal::Object(members) = v else {
        return plain(AnswerValue::Text(v.to_text()));
    };
    plain(AnswerValue::Fields(
        members
            .iter()
            .map(|(k, val)| NamedValue {
                name: k.clone(),
                value: val.to_text(),
            })
            .filter(|p| !p.value.is_empty())
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_encodings() {
        let d = |s: &str| decode(&OVal::parse(s).unwrap(), false).value;
        assert_eq!(
            d(r#"{"month":"04","day":"19","year":"2022"}"#),
            AnswerValue::Text("2022-04-19".into())
        );
        assert_eq!(
            d(r#"{"month":"","day":"","year":""}"#),
            AnswerValue::Text(String::new())
        );
        assert_eq!(
            d(r#"{"timeInput":"05:55","hourSelect":"05","minuteSelect":"55","ampm":"AM"}"#),
            AnswerValue::Text("05:55 AM".into())
        );
        assert_eq!(
            d(
                r#"{"date":"2022-04-25 16:00","duration":"60","timezone":"America/New_York (GMT-04:00)"}"#
            ),
            AnswerValue::Text("2022-04-25 16:00 (60 min, America/New_York (GMT-04:00))".into())
        );
        assert_eq!(
            d(r#""[[\"a\",\"b\"],[1,\"2\"]]""#),
            AnswerValue::Table(vec![
                vec!["a".into(), "b".into()],
                vec!["1".into(), "2".into()]
            ])
        );
        assert_eq!(d(r#"["kansas"]"#), AnswerValue::List(vec!["kansas".into()]));
    }
}
