//! A test that keeps the module graph one-way: no cycle among the top-level modules of `src/`,
//! none among the files of one module, and no use against the directions ARCHITECTURE.md sets
//! ([`FORBIDDEN`]) (`cargo test module_graph`).
//!
//! It reads the sources as text: a file uses what its non-test code names as `crate::<module>`
//! (including inside `use crate::{…}` groups) or, between files of one module, `super::<file>`
//! and `crate::<module>::<file>`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Uses between top-level modules that ARCHITECTURE.md rules out: `(user, used, why)`. Add a
/// direction here once the code keeps it.
const FORBIDDEN: &[(&str, &str, &str)] = &[
    (
        "agent_view",
        "dispatch",
        "the agent view reaches GHL through ghl_access, never through dispatch",
    ),
    (
        "store",
        "mapping",
        "domain ids and `Plan` live outside store",
    ),
    (
        "store",
        "sources",
        "domain ids and `Plan` live outside store",
    ),
    ("ghl", "mapping", "the GHL client knows nothing of mappings"),
    (
        "ghl",
        "sources",
        "the GHL client knows nothing of form tools",
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `dispatch/prepare` for `src/dispatch/prepare.rs`; `dispatch/mod` for its `mod.rs`.
fn file_key(src: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(src).unwrap_or(path);
    let key = rel.with_extension("");
    key.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// The code of a file without its test module and without line comments.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(cut) => &text[..cut],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Identifier paths after each occurrence of `prefix` (`crate::`, `super::`): the first two
/// segments, and for a `{…}` group every member's first segment(s).
fn paths_after(code: &str, prefix: &str) -> Vec<(String, Option<String>)> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or_default();
            for part in inner.split(',') {
                let mut segs = part.trim().split("::").map(ident);
                if let Some(first) = segs.next().filter(|s| !s.is_empty()) {
                    out.push((first, segs.next().filter(|s| !s.is_empty())));
                }
            }
        } else {
            let first = ident(rest);
            let second = rest[first.len()..]
                .strip_prefix("::")
                .map(ident)
                .filter(|s| !s.is_empty());
            if !first.is_empty() {
                out.push((first, second));
            }
        }
    }
    out
}

/// The graph between top-level modules, and between the files of each module.
fn graphs(src: &Path) -> (Graph, Graph) {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let keys: BTreeSet<String> = files.iter().map(|f| file_key(src, f)).collect();
    let top = |key: &str| key.split('/').next().unwrap_or_default().to_owned();
    let modules: BTreeSet<String> = keys.iter().map(|k| top(k)).collect();
    let (mut modules_graph, mut files_graph) = (Graph::new(), Graph::new());
    for file in &files {
        let key = file_key(src, file);
        let module = top(&key);
        if ["main", "lib", "module_graph"].contains(&module.as_str()) {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(file).unwrap_or_default());
        let is_mod_file = key.ends_with("/mod");
        for (first, second) in paths_after(&code, "crate::") {
            if first != module && modules.contains(&first) {
                modules_graph
                    .entry(module.clone())
                    .or_default()
                    .insert(first);
            } else if first == module && !is_mod_file {
                if let Some(target) = second.map(|s| format!("{module}/{s}")) {
                    if keys.contains(&target) && target != key {
                        files_graph.entry(key.clone()).or_default().insert(target);
                    }
                }
            }
        }
        if !is_mod_file {
            let parent = key.rsplit_once('/').map(|(p, _)| p.to_owned());
            for (first, _) in paths_after(&code, "super::") {
                let target = match &parent {
                    Some(p) => format!("{p}/{first}"),
                    None => first,
                };
                if keys.contains(&target) && target != key {
                    files_graph.entry(key.clone()).or_default().insert(target);
                }
            }
        }
    }
    (modules_graph, files_graph)
}

/// One cycle of the graph, if it has any (depth-first search).
fn a_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_module_graph_has_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (modules, files) = graphs(&src);
    assert!(
        modules.contains_key("dispatch"),
        "the graph was not read: {modules:?}"
    );
    if let Some(cycle) = a_cycle(&modules) {
        panic!("modules use each other in a circle: {}", cycle.join(" -> "));
    }
    if let Some(cycle) = a_cycle(&files) {
        panic!("files use each other in a circle: {}", cycle.join(" -> "));
    }
}

/// The rules of `rules` that `modules` breaks, one line each.
fn broken(modules: &Graph, rules: &[(&str, &str, &str)]) -> Vec<String> {
    rules
        .iter()
        .filter(|(user, used, _)| modules.get(*user).is_some_and(|uses| uses.contains(*used)))
        .map(|(user, used, why)| format!("{user} uses {used}: {why}"))
        .collect()
}

#[test]
fn the_module_directions_hold() {
    let (modules, _) = graphs(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let broken = broken(&modules, FORBIDDEN);
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn a_broken_direction_is_found() {
    let modules: Graph = [
        ("agent_view", vec!["dispatch", "ghl"]),
        ("store", vec!["domain", "sources"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(
        broken(&modules, FORBIDDEN),
        vec![
            format!("agent_view uses dispatch: {}", FORBIDDEN[0].2),
            format!("store uses sources: {}", FORBIDDEN[2].2),
        ]
    );
}

#[test]
fn a_cycle_is_found() {
    let graph: Graph = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(
        a_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let code = "use crate::{mapping::plan, store};\nlet x = crate::ghl::client::X;";
    let found = paths_after(code, "crate::");
    assert!(found.contains(&("mapping".to_owned(), Some("plan".to_owned()))));
    assert!(found.contains(&("store".to_owned(), None)));
    assert!(found.contains(&("ghl".to_owned(), Some("client".to_owned()))));
}
