//! Schema checking: `$ref` resolution (also into the sibling common file), `allOf` merged into
//! one set of constraints, and a JSON value checked against it with GHL's whitelist.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{Located, Problems, Specs};

impl Specs {
    /// Follows `$ref`s (local, or into a sibling file by its name) to a schema.
    pub(super) fn resolve<'a>(&'a self, file: &'a str, schema: &'a Value) -> Located<'a> {
        let (mut file, mut schema) = (file, schema);
        for _ in 0..64 {
            let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
                return (file, schema);
            };
            let (target, pointer) = reference.split_once('#').unwrap_or((reference, ""));
            if !target.is_empty() {
                let name = target.rsplit('/').next().unwrap_or(target);
                file = self
                    .docs
                    .get_key_value(name)
                    .map(|(k, _)| *k)
                    .unwrap_or_else(|| panic!("$ref {reference}: {name} is not in the fixtures"));
            }
            schema = self.docs[file]
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {reference} in {file}"));
        }
        panic!("$ref cycle at {file}")
    }

    /// Gathers a schema and its `allOf` parts into one set of constraints.
    pub(super) fn flatten<'a>(&'a self, file: &'a str, schema: &'a Value, flat: &mut Flat<'a>) {
        let (file, s) = self.resolve(file, schema);
        let located = |v: &'a Value| (file, v);
        if let Some(t) = s.get("type").and_then(Value::as_str) {
            flat.types.push(t);
        }
        flat.nullable |= s.get("nullable") == Some(&Value::Bool(true));
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            flat.enums.push(e);
        }
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            flat.declares_properties = true;
            for (k, v) in props {
                flat.properties
                    .entry(k.as_str())
                    .or_default()
                    .push(located(v));
            }
        }
        for r in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            flat.required.insert(r);
        }
        match s.get("additionalProperties") {
            Some(Value::Bool(true)) => flat.open = true,
            Some(v @ Value::Object(_)) => flat.additional.push(located(v)),
            _ => {}
        }
        if let Some(items) = s.get("items") {
            flat.items.push(located(items));
        }
        for kind in ["anyOf", "oneOf"] {
            if let Some(alts) = s.get(kind).and_then(Value::as_array) {
                flat.alternatives
                    .push((kind, alts.iter().map(located).collect()));
            }
        }
        let number = |k: &str| s.get(k).and_then(Value::as_f64);
        flat.minimum.extend(number("minimum"));
        flat.maximum.extend(number("maximum"));
        flat.max_length
            .extend(s.get("maxLength").and_then(Value::as_u64));
        flat.max_items
            .extend(s.get("maxItems").and_then(Value::as_u64));
        flat.patterns
            .extend(s.get("pattern").and_then(Value::as_str));
        for part in s
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.flatten(file, part, flat);
        }
    }

    /// Checks `value` against `schema`, adding `(at, problem)` pairs.
    pub(super) fn check_value(
        &self,
        file: &str,
        schema: &Value,
        value: &Value,
        at: &str,
        out: &mut Problems,
    ) {
        let mut f = Flat::default();
        self.flatten(file, schema, &mut f);
        if value.is_null() {
            let unconstrained = f.types.is_empty() && f.alternatives.is_empty();
            if !f.nullable && !unconstrained {
                out.push(at.into(), "null, but the spec does not say nullable".into());
            }
            return;
        }
        if let Some(t) = f.types.iter().find(|t| !type_fits(t, value)) {
            out.push(at.into(), format!("expected {t}, got {}", kind(value)));
            return;
        }
        for e in &f.enums {
            if !e.contains(value) {
                out.push(
                    at.into(),
                    format!("{value} is not one of {}", Value::from(e.to_vec())),
                );
            }
        }
        if let Some(n) = value.as_f64() {
            for m in f.minimum.iter().filter(|m| n < **m) {
                out.push(at.into(), format!("{n} is below the minimum {m}"));
            }
            for m in f.maximum.iter().filter(|m| n > **m) {
                out.push(at.into(), format!("{n} is above the maximum {m}"));
            }
        }
        if let Some(s) = value.as_str() {
            let chars = s.chars().count() as u64;
            for m in f.max_length.iter().filter(|m| chars > **m) {
                out.push(
                    at.into(),
                    format!("{chars} characters, at most {m} allowed"),
                );
            }
            for p in &f.patterns {
                let re = regex::Regex::new(p).unwrap_or_else(|e| panic!("pattern {p}: {e}"));
                if !re.is_match(s) {
                    out.push(at.into(), format!("{s:?} does not match {p}"));
                }
            }
        }
        for (kind_name, alts) in &f.alternatives {
            let results: Vec<Problems> = alts
                .iter()
                .map(|(afile, alt)| {
                    let mut e = out.fork();
                    self.check_value(afile, alt, value, at, &mut e);
                    e
                })
                .collect();
            let fitting: Vec<&Problems> = results.iter().filter(|r| r.found.is_empty()).collect();
            let fits = fitting.len();
            let ok = match *kind_name {
                "oneOf" => fits == 1,
                _ => fits >= 1,
            };
            if ok {
                // What the alternative that fits needed tolerated is reported.
                out.tolerated.extend(fitting[0].tolerated.iter().cloned());
            } else {
                let closest = results
                    .iter()
                    .min_by_key(|r| r.found.len())
                    .map(|r| {
                        r.found
                            .iter()
                            .map(|(a, p)| format!("{a}: {p}"))
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .unwrap_or_default();
                out.push(
                    at.into(),
                    format!(
                        "fits {fits} of the {} {kind_name} alternatives; the closest fails with: {closest}",
                        alts.len()
                    ),
                );
            }
        }
        if let Some(obj) = value.as_object() {
            for (k, v) in obj {
                let at_k = format!("{at}.{k}");
                match f.properties.get(k.as_str()) {
                    Some(schemas) => {
                        for (pfile, p) in schemas {
                            self.check_value(pfile, p, v, &at_k, out);
                        }
                    }
                    None if !f.additional.is_empty() => {
                        for (afile, a) in &f.additional {
                            self.check_value(afile, a, v, &at_k, out);
                        }
                    }
                    None if f.open || !f.declares_properties => {}
                    None => out.push(
                        at_k,
                        format!(
                            "property not declared by the spec (GHL answers 422 \"property {k} should not exist\")"
                        ),
                    ),
                }
            }
            for r in &f.required {
                if !obj.contains_key(*r) {
                    out.push(format!("{at}.{r}"), "required property missing".into());
                }
            }
        }
        if let Some(items) = value.as_array() {
            for m in f.max_items.iter().filter(|m| items.len() as u64 > **m) {
                out.push(
                    at.into(),
                    format!("{} items, at most {m} allowed", items.len()),
                );
            }
            for (i, item) in items.iter().enumerate() {
                for (ifile, s) in &f.items {
                    self.check_value(ifile, s, item, &format!("{at}[{i}]"), out);
                }
            }
        }
    }
}

/// A schema with its `allOf` parts merged: every constraint listed must hold.
#[derive(Default)]
pub(super) struct Flat<'a> {
    pub(super) types: Vec<&'a str>,
    pub(super) nullable: bool,
    pub(super) enums: Vec<&'a Vec<Value>>,
    pub(super) properties: BTreeMap<&'a str, Vec<Located<'a>>>,
    pub(super) declares_properties: bool,
    pub(super) required: BTreeSet<&'a str>,
    pub(super) additional: Vec<Located<'a>>,
    pub(super) open: bool,
    pub(super) items: Vec<Located<'a>>,
    pub(super) alternatives: Vec<(&'static str, Vec<Located<'a>>)>,
    pub(super) minimum: Vec<f64>,
    pub(super) maximum: Vec<f64>,
    pub(super) max_length: Vec<u64>,
    pub(super) max_items: Vec<u64>,
    pub(super) patterns: Vec<&'a str>,
}

fn type_fits(t: &str, v: &Value) -> bool {
    match t {
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|n| n.fract() == 0.0),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        other => panic!("unknown schema type {other}"),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
