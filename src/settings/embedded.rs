//! The configuration built into the binary: `config/default.toml` (the base layer, so the
//! binary runs from any folder with environment variables only) and the public development
//! secrets of `config/local.toml`, which the guard (`guard.rs`) keeps off a reachable server.

use std::collections::BTreeSet;

/// `config/default.toml` as it was when the binary was built: every key with its default.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// `config/local.toml` as committed: public development secrets.
const LOCAL_TOML: &str = include_str!("../../config/local.toml");

/// Every string value of `config/local.toml` (its secrets and tokens).
pub(super) fn development_values() -> BTreeSet<String> {
    let parsed = config::Config::builder()
        .add_source(config::File::from_str(LOCAL_TOML, config::FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize::<serde_json::Value>());
    let mut out = BTreeSet::new();
    let mut stack: Vec<serde_json::Value> = parsed.into_iter().collect();
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::String(s) if !s.trim().is_empty() => {
                out.insert(s);
            }
            serde_json::Value::Object(map) => stack.extend(map.into_iter().map(|(_, v)| v)),
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_local_secrets_are_known() {
        let values = development_values();
        assert!(values.contains("local-jotform-secret"), "{values:?}");
        assert!(values.contains("local-admin-token"), "{values:?}");
    }
}
