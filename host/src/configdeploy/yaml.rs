//! YAML config files (`*.yaml`, `*.yml`) as JSON values: YAML 1.2's core
//! schema through `yaml-rust2`, one document, mappings in file order,
//! aliases expanded (up to a million values, so nested aliases cannot
//! exhaust memory). What JSON cannot hold (a non-scalar key, a float that
//! is not finite, several documents) and merge keys (`<<`, YAML 1.1 only)
//! are refused naming the file; a syntax error names its line and column. Written back with the crate's emitter.

use super::error::ConfigError;
use serde_json::{Map, Number, Value};
use std::path::Path;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::{Yaml, YamlEmitter, YamlLoader, yaml::Hash};

pub fn parse(text: &str, path: &Path) -> Result<Value, ConfigError> {
    let syntax = |line_col: Option<(usize, usize)>, message: String| ConfigError::Syntax {
        path: path.to_path_buf(),
        line_col,
        message,
    };
    let position = |e: &yaml_rust2::ScanError| {
        let mark = e.marker();
        Some((mark.line(), mark.col() + 1))
    };
    // The loader copies an anchored node for each alias: a file of nested
    // aliases would expand past any memory. Count first, from events.
    let mut budget = Budget::default();
    Parser::new_from_str(text)
        .load(&mut budget, true)
        .map_err(|e| syntax(position(&e), e.info().to_string()))?;
    if let Some((line_col, why)) = budget.refused {
        return Err(syntax(Some(line_col), why));
    }
    let mut docs =
        YamlLoader::load_from_str(text).map_err(|e| syntax(position(&e), e.info().to_string()))?;
    match docs.len() {
        0 => Ok(Value::Object(Map::new())),
        1 => to_json(docs.remove(0), "").map_err(|why| syntax(None, why)),
        n => Err(syntax(
            None,
            format!("holds {n} YAML documents; a config file is one"),
        )),
    }
}

/// The most nodes a file may hold once its aliases are expanded.
const MAX_NODES: u64 = 1_000_000;

/// Counts a document's nodes with every alias expanded, and refuses merge
/// keys (`<<`), which the loader would keep as a literal key.
#[derive(Default)]
struct Budget {
    /// Open collections: (anchor, nodes so far, entries so far, mapping).
    open: Vec<(usize, u64, u64, bool)>,
    anchors: std::collections::HashMap<usize, u64>,
    total: u64,
    refused: Option<((usize, usize), String)>,
}

impl Budget {
    fn node(&mut self, size: u64, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, size);
        }
        match self.open.last_mut() {
            Some(parent) => {
                parent.1 = parent.1.saturating_add(size);
                parent.2 += 1;
            }
            None => self.total = self.total.saturating_add(size),
        }
    }

    fn refuse(&mut self, mark: Marker, why: String) {
        self.refused
            .get_or_insert(((mark.line(), mark.col() + 1), why));
    }
}

impl MarkedEventReceiver for Budget {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(text, style, anchor, _) => {
                let key = self
                    .open
                    .last()
                    .is_some_and(|&(_, _, entries, mapping)| mapping && entries % 2 == 0);
                if key && text == "<<" && style == TScalarStyle::Plain {
                    self.refuse(
                        mark,
                        "a merge key (`<<`); gantry reads YAML 1.2, which has none: write the keys out".into(),
                    );
                }
                self.node(1, anchor);
            }
            Event::SequenceStart(anchor, _) => self.open.push((anchor, 1, 0, false)),
            Event::MappingStart(anchor, _) => self.open.push((anchor, 1, 0, true)),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, size, _, _)) = self.open.pop() {
                    self.node(size, anchor);
                }
            }
            Event::Alias(anchor) => {
                let size = self.anchors.get(&anchor).copied().unwrap_or(1);
                self.node(size, 0);
            }
            _ => {}
        }
        let open: u64 = self.open.iter().map(|f| f.1).sum();
        if self.total.saturating_add(open) > MAX_NODES {
            self.refuse(mark, format!("its aliases expand past {MAX_NODES} values"));
        }
    }
}

fn to_json(yaml: Yaml, pointer: &str) -> Result<Value, String> {
    let at = || if pointer.is_empty() { "/" } else { pointer };
    Ok(match yaml {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Integer(i) => Value::from(i),
        Yaml::String(s) => Value::String(s),
        Yaml::Real(text) => {
            let f = Yaml::Real(text.clone())
                .as_f64()
                .ok_or_else(|| format!("{}: `{text}` is not a number", at()))?;
            Value::Number(
                Number::from_f64(f)
                    .ok_or_else(|| format!("{}: `{text}` is not a finite number", at()))?,
            )
        }
        Yaml::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| to_json(item, &format!("{pointer}/{i}")))
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Hash(hash) => {
            let mut map = Map::new();
            for (key, value) in hash {
                let key = match key {
                    Yaml::String(s) => s,
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    Yaml::Real(r) => r,
                    _ => return Err(format!("{}: a key must be a scalar", at())),
                };
                let child = format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
                if map.contains_key(&key) {
                    return Err(format!("{child}: the key appears twice"));
                }
                let value = to_json(value, &child)?;
                map.insert(key, value);
            }
            Value::Object(map)
        }
        Yaml::Alias(_) | Yaml::BadValue => {
            return Err(format!("{}: an alias that does not resolve", at()));
        }
    })
}

fn to_yaml(value: &Value) -> Yaml {
    match value {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            None => Yaml::Real(n.to_string()),
        },
        Value::String(s) => Yaml::String(s.clone()),
        Value::Array(items) => Yaml::Array(items.iter().map(to_yaml).collect()),
        Value::Object(map) => {
            let mut hash = Hash::new();
            for (k, v) in map {
                hash.insert(Yaml::String(k.clone()), to_yaml(v));
            }
            Yaml::Hash(hash)
        }
    }
}

/// `value` as a YAML document.
pub fn text(value: &Value, path: &Path) -> Result<String, ConfigError> {
    let mut out = String::new();
    YamlEmitter::new(&mut out)
        .dump(&to_yaml(value))
        .map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            line_col: None,
            message: format!("cannot be written as YAML: {e}"),
        })?;
    // The emitter starts with a document marker and ends without a newline.
    let body = out.strip_prefix("---\n").unwrap_or(&out);
    Ok(format!("{body}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn core_schema_values_in_file_order() {
        let text = "b: 1\na:\n  - x\n  - 2.5\n  - true\n  - null\n  - '007'\nanchor: &v {k: v}\nalias: *v\n";
        let value = parse(text, Path::new("c.yaml")).unwrap();
        assert_eq!(
            value,
            json!({"b": 1, "a": ["x", 2.5, true, null, "007"], "anchor": {"k": "v"}, "alias": {"k": "v"}})
        );
        assert_eq!(
            value.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["b", "a", "anchor", "alias"]
        );
        let back = parse(&text_of(&value), Path::new("c.yaml")).unwrap();
        assert_eq!(back, value, "written back, it reads the same");
    }

    fn text_of(value: &Value) -> String {
        text(value, Path::new("c.yaml")).unwrap()
    }

    #[test]
    fn strings_that_look_like_other_types_stay_strings_when_written() {
        let value =
            json!({"a": "true", "b": "12", "c": "", "d": "null", "e": "x: y", "f": "line\nbreak"});
        assert_eq!(parse(&text_of(&value), Path::new("c.yaml")).unwrap(), value);
    }

    #[test]
    fn what_json_cannot_hold_is_refused_with_its_place() {
        let err = parse("a: [1\n", Path::new("c.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.yaml:2:"), "{err}");
        let err = parse("a:\n  [x]: 1\n", Path::new("c.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/a: a key must be a scalar"), "{err}");
        let err = parse("a: .inf\n", Path::new("c.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a finite number"), "{err}");
        let err = parse("a: 1\n---\nb: 2\n", Path::new("c.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 YAML documents"), "{err}");
        let err = parse("a: 1\na: 2\n", Path::new("c.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("duplicated key"), "{err}");
        let err = parse("1: x\n'1': y\n", Path::new("c.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/1: the key appears twice"), "{err}");
        let err = parse("base: &b {x: 1}\nother:\n  <<: *b\n", Path::new("c.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("c.yaml:3:") && err.contains("merge key"),
            "{err}"
        );
        // A quoted `<<` is an ordinary key.
        assert!(parse("'<<': 1\n", Path::new("c.yaml")).is_ok());
    }

    #[test]
    fn nested_aliases_that_would_exhaust_memory_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let started = std::time::Instant::now();
        let err = parse(&text, Path::new("bomb.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("expand past"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
