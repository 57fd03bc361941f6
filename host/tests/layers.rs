//! The layers hold: every `crate::` path in `host/src` names a module of
//! its own layer or one below, and no two top-level modules import each
//! other (directly or round a circle). The layer table is the one in
//! ARCHITECTURE.md ("## Layers"), read here, so the document and the code
//! cannot drift apart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Module → layer number, from the first line of each numbered item of
/// ARCHITECTURE.md's "## Layers" section: `N. **Name** — `a`, `b`, …`.
fn layer_table() -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let section = text
        .split("\n## Layers\n")
        .nth(1)
        .expect("ARCHITECTURE.md has a `## Layers` section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut table = BTreeMap::new();
    for line in section.lines() {
        let Some((number, rest)) = line.split_once(". **") else {
            continue;
        };
        let Ok(layer) = number.trim().parse::<usize>() else {
            continue;
        };
        let names = rest.split_once('—').map_or("", |(_, names)| names);
        for (i, piece) in names.split('`').enumerate() {
            if i % 2 == 1 {
                let previous = table.insert(piece.to_string(), layer);
                assert!(previous.is_none(), "`{piece}` is in two layers");
            }
        }
    }
    assert!(table.len() > 10, "the layer table reads as {table:?}");
    table
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read host/src").flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments (doc comments name modules
/// in prose) and string literals.
fn code(text: &str) -> String {
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a file's code names through `crate::`.
fn imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::{c, d}, …}`: the first segment of each
            // entry at the group's own depth.
            let mut depth = 0;
            let mut entry_start = true;
            let mut name = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        if !name.is_empty() {
                            found.insert(std::mem::take(&mut name));
                        }
                        entry_start = true;
                        continue;
                    }
                    _ => {}
                }
                if entry_start && depth == 0 {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        name.push(c);
                        continue;
                    }
                    if !name.is_empty() {
                        found.insert(std::mem::take(&mut name));
                        entry_start = false;
                    }
                }
            }
            if !name.is_empty() {
                found.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// Names `lib.rs` re-exports at the crate root (`pub use error::{Exit,
/// Failure};`) → the module they come from.
fn root_exports(src: &Path) -> BTreeMap<String, String> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let mut map = BTreeMap::new();
    for line in code(&lib).lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, names)) = rest.trim_end_matches(';').split_once("::") else {
            continue;
        };
        for name in names.trim_matches(['{', '}']).split(',') {
            let name = name.trim();
            if name.starts_with(|c: char| c.is_ascii_uppercase()) {
                map.insert(name.to_string(), module.to_string());
            }
        }
    }
    map
}

/// The edges between the top-level modules of the crate at `src`:
/// (from, to) → the files that make it.
fn edges_in(src: &Path) -> BTreeMap<(String, String), Vec<String>> {
    let exports = root_exports(src);
    let mut files = Vec::new();
    sources(src, &mut files);
    let mut edges: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for file in files {
        let rel = file
            .strip_prefix(src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let top = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let mut text = code(&std::fs::read_to_string(&file).unwrap());
        if !rel.contains('/') {
            // In a file at the crate's top, `super::` is the crate root.
            text = text.replace("super::", "crate::");
        }
        for to in imports(&text) {
            let to = exports.get(&to).cloned().unwrap_or(to);
            if to != top {
                edges
                    .entry((top.clone(), to))
                    .or_default()
                    .push(rel.clone());
            }
        }
    }
    edges
}

fn edges() -> BTreeMap<(String, String), Vec<String>> {
    edges_in(&root().join("host/src"))
}

#[test]
fn every_module_is_in_the_table_and_every_import_goes_down_or_across() {
    let table = layer_table();
    let src = root().join("host/src");
    let mut tops = BTreeSet::new();
    for entry in std::fs::read_dir(&src).unwrap().flatten() {
        let name = entry
            .file_name()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if name != "lib" && name != "main" {
            tops.insert(name);
        }
    }
    let missing: Vec<_> = tops.iter().filter(|m| !table.contains_key(*m)).collect();
    assert!(
        missing.is_empty(),
        "modules of host/src missing from ARCHITECTURE.md's layer table: {missing:?}"
    );

    let mut upward = Vec::new();
    for ((from, to), files) in edges() {
        let Some(&to_layer) = table.get(&to) else {
            upward.push(format!(
                "{from} → {to}: `{to}` is not in the layer table ({files:?})"
            ));
            continue;
        };
        let from_layer = table[&from];
        if to_layer > from_layer {
            upward.push(format!(
                "{from} (layer {from_layer}) → {to} (layer {to_layer}) in {files:?}"
            ));
        }
    }
    assert!(
        upward.is_empty(),
        "imports that go up a layer:\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_two_modules_import_each_other() {
    assert_no_circles(&edges());
}

#[test]
fn no_two_modules_of_the_runtime_crate_import_each_other() {
    assert_no_circles(&edges_in(&root().join("runtime/src")));
}

fn assert_no_circles(edges: &BTreeMap<(String, String), Vec<String>>) {
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        graph.entry(from).or_default().insert(to);
    }
    // A circle is a path back to where it started.
    let mut circles = Vec::new();
    for &start in graph.keys() {
        let mut stack = vec![(start, vec![start])];
        let mut seen = BTreeSet::new();
        while let Some((at, path)) = stack.pop() {
            for &next in graph.get(at).into_iter().flatten() {
                if next == start {
                    let mut circle = path.clone();
                    circle.push(start);
                    circles.push(circle.join(" → "));
                } else if seen.insert(next) {
                    let mut longer = path.clone();
                    longer.push(next);
                    stack.push((next, longer));
                }
            }
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_reader_sees_paths_and_groups() {
    let found = imports("use crate::a::b;\nuse crate::{c, d::{e, f}, g};\nlet x = crate::h::i();");
    assert_eq!(
        found,
        ["a", "c", "d", "g", "h"]
            .map(String::from)
            .into_iter()
            .collect()
    );
}
