//! A mapping file: one source's `[sources.<name>.mapping]` as TOML text (what the playground
//! edits and `<config dir>/mappings/<name>.toml` holds), read with the full key of every
//! problem, and a mapping written back as such text.

use super::config::MappingConfig;

/// One problem of a mapping file, with the full key it names (`sources.jotform.mapping.tasks[0]
/// .due_in`) and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[error("config key `{key}`: {message}")]
pub struct KeyedProblem {
    pub key: String,
    pub message: String,
}

impl KeyedProblem {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The key prefix of a source's mapping: `sources.<name>.mapping`.
pub fn mapping_key(source: &str) -> String {
    format!("sources.{source}.mapping")
}

/// Reads the TOML `text` of `source`'s mapping file into the `[sources.<source>.mapping]`
/// table (empty when the file sets none: the default mapping). Everything else in the file is
/// a problem naming its key: a mapping file holds the mapping only, no secrets.
pub fn read_table(source: &str, text: &str) -> Result<toml::Table, Vec<KeyedProblem>> {
    let prefix = mapping_key(source);
    let mut root: toml::Table = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
        let at = line.map(|l| format!("line {l}: ")).unwrap_or_default();
        vec![KeyedProblem::new(
            prefix.clone(),
            format!("not valid TOML: {at}{}", e.message().trim()),
        )]
    })?;
    let mut problems = Vec::new();
    let only = |found: &str, allowed: &str| {
        KeyedProblem::new(
            found,
            format!("a mapping file sets only [{allowed}]; put other keys in the configuration files (default.toml, {{FORMBRIDGE_ENV}}.toml) or the environment"),
        )
    };
    let mut sources = match root.remove("sources") {
        Some(toml::Value::Table(t)) => t,
        Some(_) => return Err(vec![only("sources", &prefix)]),
        None => toml::Table::new(),
    };
    problems.extend(root.keys().map(|k| only(k, &prefix)));
    let mut this = match sources.remove(source) {
        Some(toml::Value::Table(t)) => t,
        Some(_) => return Err(vec![only(&format!("sources.{source}"), &prefix)]),
        None => toml::Table::new(),
    };
    problems.extend(
        sources
            .keys()
            .map(|k| only(&format!("sources.{k}"), &prefix)),
    );
    let mapping = match this.remove("mapping") {
        Some(toml::Value::Table(t)) => t,
        Some(_) => {
            problems.push(KeyedProblem::new(prefix.clone(), "must be a table"));
            toml::Table::new()
        }
        None => toml::Table::new(),
    };
    problems.extend(
        this.keys()
            .map(|k| only(&format!("sources.{source}.{k}"), &prefix)),
    );
    if problems.is_empty() {
        Ok(mapping)
    } else {
        Err(problems)
    }
}

/// The mapping a table describes, or the problem of each of its keys that does not fit the
/// mapping's shape (an unknown key, a wrong type), each with its full key.
pub fn to_config(source: &str, table: &toml::Table) -> Result<MappingConfig, Vec<KeyedProblem>> {
    let first = match deserialize(source, table.clone()) {
        Ok(config) => return Ok(config),
        Err(first) => first,
    };
    // Each top-level key alone, so every wrong key is named (not only the first).
    let mut problems: Vec<KeyedProblem> = table
        .iter()
        .filter_map(|(k, v)| {
            let mut alone = toml::Table::new();
            alone.insert(k.clone(), v.clone());
            deserialize(source, alone).err()
        })
        .collect();
    if problems.is_empty() {
        problems.push(first);
    }
    problems.dedup();
    Err(problems)
}

fn deserialize(source: &str, table: toml::Table) -> Result<MappingConfig, KeyedProblem> {
    let whole = toml::Value::Table(table);
    serde_path_to_error::deserialize(whole.clone()).map_err(|e| {
        let path = e.path().to_string();
        let path = path.trim_end_matches(".?").trim_end_matches('?');
        let message = e.inner().message().trim().to_owned();
        let mut key = mapping_key(source);
        if path != "." && !path.is_empty() {
            key.push('.');
            key.push_str(path);
        }
        // An unknown key (a table's field, a map's key such as `fields.phon`) is reported at
        // its table: name the key itself.
        let unknown = ["unknown field `", "unknown variant `"]
            .iter()
            .find_map(|p| message.strip_prefix(p))
            .and_then(|rest| rest.split('`').next());
        if let Some(unknown) = unknown {
            let at = if path == "." { "" } else { path };
            if lookup(&whole, at)
                .and_then(|v| v.as_table())
                .is_some_and(|t| t.contains_key(unknown))
            {
                key.push('.');
                key.push_str(unknown);
            }
        }
        KeyedProblem::new(key, message)
    })
}

/// The value at a path such as `tasks[0].when` (empty: the whole value).
fn lookup<'v>(value: &'v toml::Value, path: &str) -> Option<&'v toml::Value> {
    let mut at = value;
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        let (name, indexes) = segment.split_once('[').unwrap_or((segment, ""));
        if !name.is_empty() {
            at = at.as_table()?.get(name)?;
        }
        for index in indexes.split('[').filter(|i| !i.is_empty()) {
            at = at
                .as_array()?
                .get(index.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(at)
}

/// `mapping` as the text of `source`'s mapping file.
pub fn to_text(source: &str, mapping: &MappingConfig) -> Result<String, toml::ser::Error> {
    #[derive(serde::Serialize)]
    struct File<'a> {
        sources: std::collections::BTreeMap<&'a str, Source<'a>>,
    }
    #[derive(serde::Serialize)]
    struct Source<'a> {
        mapping: &'a MappingConfig,
    }
    let file = File {
        sources: [(source, Source { mapping })].into_iter().collect(),
    };
    toml::to_string(&file)
}

/// Reads a whole mapping file: its table, then its mapping.
pub fn parse(source: &str, text: &str) -> Result<MappingConfig, Vec<KeyedProblem>> {
    to_config(source, &read_table(source, text)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_example_mapping_survives_being_written_back() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sources");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let source = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            // The examples also set `auth`: keep the mapping alone.
            let mut root: toml::Table = toml::from_str(&text).unwrap();
            let mapping = root["sources"][source.as_str()]
                .get("mapping")
                .cloned()
                .unwrap_or(toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(mapping) = mapping else {
                panic!("{source}: mapping is not a table")
            };
            root.clear();
            let config = to_config(&source, &mapping).unwrap();
            let written = to_text(&source, &config).unwrap();
            assert_eq!(
                parse(&source, &written).unwrap(),
                config,
                "{source}:\n{written}"
            );
        }
    }

    #[test]
    fn problems_name_their_keys() {
        let text = "[sources.powr.mapping]\nkeep_first_source = \"yes\"\ncolour = 1\n\
                    [sources.powr.mapping.fields]\nphon = \"Mobile\"\n";
        let problems = parse("powr", text).unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert!(
            keys.contains(&"sources.powr.mapping.keep_first_source"),
            "{keys:?}"
        );
        assert!(keys.contains(&"sources.powr.mapping.colour"), "{keys:?}");
        assert!(
            keys.contains(&"sources.powr.mapping.fields.phon"),
            "{keys:?}"
        );
    }

    #[test]
    fn other_keys_and_bad_toml_are_refused() {
        let problems = parse("powr", "[sources.powr]\nsecret = \"x\"\n").unwrap_err();
        assert_eq!(problems[0].key, "sources.powr.secret");
        let problems = parse("powr", "[sources.powr.mapping\n").unwrap_err();
        assert_eq!(problems[0].key, "sources.powr.mapping");
        assert!(
            problems[0].message.contains("line 1"),
            "{}",
            problems[0].message
        );
        assert_eq!(parse("powr", "").unwrap(), MappingConfig::default());
    }
}
