//! The imports of `api/` and `engine/` run one way: this test reads the
//! `use` lines of every source file, resolves them to the file (module) they
//! name, and fails on a cycle inside either layer, naming it. Test-only code
//! (`#[cfg(test)]` modules, `*_tests.rs`) is left out: a test may look at
//! its parent. `LOYALTY_PRINT_MODULE_GRAPH=1 cargo test --lib module_graph
//! -- --nocapture` prints the graph (the one in docs/adr/0001).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Every module of the crate (`crate::api::dispatch`) and its source.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src/");
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            let name = std::iter::once("crate".to_owned())
                .chain(parts)
                .collect::<Vec<_>>()
                .join("::");
            let text = std::fs::read_to_string(&path).expect("a readable source file");
            found.insert(name, text);
        }
    }
    found
}

/// The source without its test-only parts.
fn production_part(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    }
}

/// The `use` statements of a file, each expanded into full paths.
fn use_paths(text: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = production_part(text);
    while let Some(at) = find_use(rest) {
        let stmt = &rest[at..];
        let end = stmt.find(';').unwrap_or(stmt.len());
        expand(&[], stmt[..end].trim(), &mut paths);
        rest = &stmt[end..];
    }
    paths
}

/// The start of the next `use` tree (after `use `), at the start of a line.
fn find_use(text: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let after_vis = ["pub(crate) use ", "pub(super) use ", "pub use ", "use "]
            .iter()
            .find_map(|p| trimmed.strip_prefix(p));
        if let Some(tree) = after_vis {
            return Some(offset + line.len() - tree.len());
        }
        offset += line.len();
    }
    None
}

/// `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = segments(&tree[..open]);
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let base: Vec<String> = prefix.iter().cloned().chain(head).collect();
        for item in split_top_level(inner) {
            expand(&base, item, out);
        }
    } else if !tree.is_empty() {
        let name = tree.split(" as ").next().unwrap_or(tree);
        let path: Vec<String> = prefix.iter().cloned().chain(segments(name)).collect();
        out.push(path);
    }
}

fn segments(s: &str) -> Vec<String> {
    s.split("::")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

fn split_top_level(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut items) = (0, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&s[start..]);
    items
}

/// The module a `use` path in `from` names: the longest existing module
/// prefix of the absolute path; `None` for another crate.
fn resolve(from: &str, path: &[String], known: &BTreeSet<String>) -> Option<String> {
    let mut abs: Vec<String> = from.split("::").map(str::to_owned).collect();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            abs = vec!["crate".to_owned()];
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().is_some_and(|s| s == "super") {
                abs.pop();
                rest = &rest[1..];
            }
        }
        Some(first) if known.contains(&format!("{from}::{first}")) => {}
        _ => return None,
    }
    abs.extend(rest.iter().cloned());
    while !abs.is_empty() {
        let name = abs.join("::");
        if known.contains(&name) {
            return Some(name);
        }
        abs.pop();
    }
    None
}

/// Test-only modules: `#[cfg(test)]` before their `mod` line.
fn test_only(modules: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (name, text) in modules {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(child) = line
                .trim()
                .strip_prefix("mod ")
                .and_then(|l| l.strip_suffix(';'))
            else {
                continue;
            };
            let attrs = lines[..i]
                .iter()
                .rev()
                .take_while(|l| l.trim_start().starts_with("#["));
            if attrs.clone().any(|l| l.contains("cfg(test)")) {
                let file = attrs
                    .filter_map(|l| l.split("#[path = \"").nth(1))
                    .find_map(|p| p.split(".rs").next())
                    .unwrap_or(child);
                out.insert(format!("{name}::{child}"));
                // A `#[path]` file sits beside its parent's file.
                let parent = name.rsplit_once("::").map_or("crate", |(p, _)| p);
                out.insert(format!("{parent}::{file}"));
            }
        }
    }
    out
}

/// The import graph inside `layer` (`crate::api`): module → modules it uses.
pub fn graph(layer: &str) -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&src);
    let tests = test_only(&modules);
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    let inside = |m: &str| m == layer || m.starts_with(&format!("{layer}::"));
    let mut graph = Graph::new();
    for (name, text) in &modules {
        if !inside(name) || tests.contains(name) {
            continue;
        }
        let edges = graph.entry(name.clone()).or_default();
        for path in use_paths(text) {
            if let Some(to) = resolve(name, &path, &known) {
                if to != *name && inside(&to) && !tests.contains(&to) {
                    edges.insert(to);
                }
            }
        }
    }
    graph
}

/// One cycle of `graph`, if it has any.
pub fn a_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = path.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = path[from..].to_vec();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_owned(), Mark::Open);
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut marks, &mut Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn print(layer: &str, graph: &Graph) {
        if std::env::var_os("LOYALTY_PRINT_MODULE_GRAPH").is_none() {
            return;
        }
        println!("{layer}:");
        for (from, to) in graph {
            let short = |m: &str| m.strip_prefix("crate::").unwrap_or(m).to_owned();
            let to: Vec<String> = to.iter().map(|t| short(t)).collect();
            println!("  {} → {}", short(from), to.join(", "));
        }
    }

    /// The layers whose modules must not import in a cycle.
    const LAYERS: &[&str] = &["crate::api", "crate::engine"];

    #[test]
    fn the_layers_import_one_way() {
        for layer in LAYERS {
            let graph = graph(layer);
            print(layer, &graph);
            assert!(graph.len() > 3, "{layer}: no modules found");
            if let Some(cycle) = a_cycle(&graph) {
                panic!("{layer} imports in a cycle: {}", cycle.join(" → "));
            }
        }
    }

    #[test]
    fn a_cycle_is_found_and_named() {
        let mut g = Graph::new();
        g.entry("a".into()).or_default().insert("b".into());
        g.entry("b".into()).or_default().insert("c".into());
        g.entry("c".into()).or_default().insert("a".into());
        assert_eq!(a_cycle(&g).unwrap(), ["a", "b", "c", "a"]);
        g.get_mut("c").unwrap().clear();
        assert_eq!(a_cycle(&g), None);
    }

    #[test]
    fn use_trees_expand_and_resolve() {
        let paths = use_paths("use super::{a::{B, C as D}, e};\npub use crate::x::Y;\n");
        assert_eq!(
            paths,
            [
                vec!["super", "a", "B"],
                vec!["super", "a", "C"],
                vec!["super", "e"],
                vec!["crate", "x", "Y"],
            ]
        );
        let known: BTreeSet<String> = ["crate", "crate::m", "crate::m::a", "crate::m::b"]
            .map(str::to_owned)
            .into();
        let to = |from: &str, p: &str| resolve(from, &segments(p), &known);
        assert_eq!(
            to("crate::m::a", "super::b::X").as_deref(),
            Some("crate::m::b")
        );
        assert_eq!(to("crate::m::a", "super::X").as_deref(), Some("crate::m"));
        assert_eq!(to("crate::m", "a::X").as_deref(), Some("crate::m::a"));
        assert_eq!(to("crate::m", "std::x"), None);
    }
}
