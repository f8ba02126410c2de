//! A candidate mapping: the TOML text a user edits, read and compiled as `check-config` would,
//! with every problem and the key it names.

use crate::mapping::config::MappingConfig;
use crate::mapping::file::{self, KeyedProblem};
use crate::mapping::CompiledMapping;
use crate::runtime::SourceRuntime;

/// What a candidate's text became: its compiled mapping when it has no problem, and every
/// problem found (with the same keys and messages `formbridge check-config` gives).
#[derive(Debug)]
pub struct Candidate {
    /// The mapping as written and compiled, when it has no problem (how deliveries are read
    /// depends on the written one too: `fields`, `default_country`, …).
    pub mapping: Option<(MappingConfig, CompiledMapping)>,
    pub problems: Vec<KeyedProblem>,
}

/// Reads and compiles `text` as the mapping of `source` (its tool and name as configured).
pub fn check(source: &SourceRuntime, text: &str) -> Candidate {
    let name = source.name.as_str();
    let table = match file::read_table(name, text) {
        Ok(t) => t,
        Err(problems) => return rejected(problems),
    };
    let config = match file::to_config(name, &table) {
        Ok(c) => c,
        Err(problems) => return rejected(problems),
    };
    let compile = |config: &MappingConfig| {
        CompiledMapping::compile(config, &source.name, source.kind).map_err(|e| KeyedProblem {
            key: format!("{}.{}", file::mapping_key(name), e.key),
            message: e.message,
        })
    };
    let first = match compile(&config) {
        Ok(compiled) => {
            return Candidate {
                mapping: Some((config, compiled)),
                problems: Vec::new(),
            }
        }
        Err(first) => first,
    };
    // The compiler stops at the first problem: compile each key (each element of a list of
    // rules) alone to name the others too. Shown only beside a whole that fails, so a key
    // that is fine with its neighbours is never reported.
    let mut problems = vec![first];
    for (key, value) in &table {
        let parts: Vec<(String, toml::Value)> = match value {
            toml::Value::Array(items) if items.iter().all(toml::Value::is_table) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    (
                        format!("{key}[{i}]"),
                        toml::Value::Array(vec![item.clone()]),
                    )
                })
                .collect(),
            other => vec![(key.clone(), other.clone())],
        };
        for (at, part) in parts {
            let mut alone = toml::Table::new();
            alone.insert(key.clone(), part);
            let Ok(config) = file::to_config(name, &alone) else {
                continue;
            };
            if let Err(mut problem) = compile(&config) {
                // An element compiled alone is element 0: give it its own index back.
                let zero = format!("{}.{key}[0]", file::mapping_key(name));
                if let Some(rest) = problem.key.strip_prefix(&zero) {
                    problem.key = format!("{}.{at}{rest}", file::mapping_key(name));
                }
                if !problems.contains(&problem) {
                    problems.push(problem);
                }
            }
        }
    }
    rejected(problems)
}

fn rejected(problems: Vec<KeyedProblem>) -> Candidate {
    Candidate {
        mapping: None,
        problems,
    }
}
