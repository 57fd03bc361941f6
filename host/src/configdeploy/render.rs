//! Rendering a config file for an environment: parse the base file (JSON,
//! TOML, YAML, or dotenv `KEY=value` lines for `*.env`), merge the deployment config's `environments.<ENV>` over it,
//! resolve secret references, serialise in the base file's format.
//!
//! Merge rules: a key of `environments.<ENV>` that is a deployed file's
//! full name (`auth.json`) holding an object is that file's overrides,
//! merged deeply. Any other key overrides the same top-level key in every
//! deployed file that has it; a key no deployed file has is added to the
//! first file given. Objects merge recursively; anything else replaces.
//!
//! What a rendered file keeps besides its text: the JSON pointers whose
//! values came from secret references, and the resolved secret values, so
//! output can be masked and scrubbed. Nothing here prints.

use super::error::{ConfigError, Finding, Severity};
use super::overlay::Overlay;
use super::sops;
use crate::secrets;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Toml,
    /// `KEY=value` lines (`*.env`): a flat object of strings.
    Dotenv,
    /// `*.yaml`, `*.yml`.
    Yaml,
}

impl Format {
    pub fn of(path: &Path) -> Format {
        let extension = path
            .extension()
            .map(|x| x.to_string_lossy().to_ascii_lowercase());
        match extension.as_deref() {
            Some("toml") => Format::Toml,
            Some("env") => Format::Dotenv,
            Some("yaml" | "yml") => Format::Yaml,
            _ => Format::Json,
        }
    }
}

/// `KEY=value` lines as a flat object (blank lines and `#` comments
/// skipped; the value is everything after the first `=`, as written).
fn parse_dotenv(text: &str, path: &Path) -> Result<Value, ConfigError> {
    let mut map = Map::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(ConfigError::Syntax {
                path: path.to_path_buf(),
                line_col: Some((n + 1, 1)),
                message: "expected KEY=value".into(),
            });
        };
        let key = key.trim().trim_start_matches("export ").trim();
        if key.is_empty() {
            return Err(ConfigError::Syntax {
                path: path.to_path_buf(),
                line_col: Some((n + 1, 1)),
                message: "a line with no key before `=`".into(),
            });
        }
        map.insert(key.to_string(), Value::String(value.to_string()));
    }
    Ok(Value::Object(map))
}

/// A flat object as `KEY=value` lines; a value that is not a string is
/// written as JSON.
fn dotenv_text(value: &Value, path: &Path) -> Result<String, ConfigError> {
    let Value::Object(map) = value else {
        return Err(ConfigError::Syntax {
            path: path.to_path_buf(),
            line_col: None,
            message: "a dotenv file is a flat set of KEY=value".into(),
        });
    };
    let mut out = String::new();
    for (key, value) in map {
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if text.contains('\n') {
            return Err(ConfigError::Syntax {
                path: path.to_path_buf(),
                line_col: None,
                message: format!("{key}: a dotenv value cannot hold a line break"),
            });
        }
        out.push_str(&format!("{key}={text}\n"));
    }
    Ok(out)
}

/// A base file as read, before merging.
#[derive(Debug, Clone)]
pub struct Base {
    pub source: PathBuf,
    pub name: String,
    pub format: Format,
    pub value: Value,
    /// JSON pointers of the values a SOPS file held encrypted: secrets.
    pub encrypted: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Rendered {
    pub source: PathBuf,
    /// The file name in the config directory.
    pub name: String,
    pub format: Format,
    /// Secrets resolved.
    pub value: Value,
    /// What gets written.
    pub text: String,
    /// JSON pointers of values that came from secret references or whose
    /// keys name a secret.
    pub secret_paths: Vec<String>,
    /// Resolved secret values, for scrubbing messages.
    pub secret_values: Vec<String>,
    /// Where each scalar value came from, by JSON pointer (validators'
    /// `provenance`).
    pub origins: BTreeMap<String, Origin>,
}

/// How a value reached a rendered file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Written in clear in the base file.
    BaseFile,
    /// Written in clear in the environment's values in the deployment
    /// config (or by gantry: a rotation's keys).
    Environment,
    /// Written in clear in the environment's overlay file.
    OverlayFile,
    /// Decrypted from a SOPS-encrypted base or overlay file.
    Encrypted,
    /// Resolved from a secret reference.
    Reference,
}

impl Rendered {
    /// True when the file holds a secret: written and backed up 0600.
    pub fn holds_secrets(&self) -> bool {
        !self.secret_paths.is_empty()
    }

    /// The rendered value with every secret replaced by `********`.
    pub fn masked(&self) -> Value {
        mask(&self.value, &self.secret_paths)
    }
}

/// Reads and parses a base file; a SOPS-encrypted one is decrypted in
/// memory with the identities `identities` gives (asked only then).
pub fn read_base(
    source: &Path,
    identities: &dyn Fn() -> Result<sops::Identities, sops::SopsError>,
) -> Result<Base, ConfigError> {
    let name = source
        .file_name()
        .and_then(|n| n.to_str())
        .map(String::from)
        .ok_or_else(|| ConfigError::UnsafePath {
            path: source.to_path_buf(),
            why: "has no file name".into(),
        })?;
    super::paths::check_name(&name)?;
    let document = read_document(source, identities)?;
    Ok(Base {
        source: source.to_path_buf(),
        name,
        format: document.format,
        value: Value::Object(document.values),
        encrypted: document.encrypted,
    })
}

/// A config file as read: an object, decrypted when SOPS wrote it.
pub struct Document {
    pub format: Format,
    pub values: Map<String, Value>,
    /// JSON pointers of the values the file held encrypted.
    pub encrypted: Vec<String>,
}

/// Reads, parses and (when SOPS wrote it) decrypts a config file whose
/// top level is an object.
pub fn read_document(
    source: &Path,
    identities: &dyn Fn() -> Result<sops::Identities, sops::SopsError>,
) -> Result<Document, ConfigError> {
    let text = std::fs::read_to_string(source).map_err(|e| ConfigError::Read {
        path: source.to_path_buf(),
        source: e,
    })?;
    let format = Format::of(source);
    let mut value = parse(&text, format, source)?;
    let mut encrypted = Vec::new();
    if sops::is_sops(&value) {
        let opened = identities()
            .and_then(|ids| sops::decrypt(&value, &ids))
            .map_err(|e| ConfigError::Sops {
                path: source.to_path_buf(),
                source: e,
            })?;
        value = opened.value;
        encrypted = opened.encrypted;
    }
    let Value::Object(values) = value else {
        return Err(ConfigError::Syntax {
            path: source.to_path_buf(),
            line_col: None,
            message: "the top level must be an object".into(),
        });
    };
    Ok(Document {
        format,
        values,
        encrypted,
    })
}

/// Parses a file's text into a JSON value; errors carry line and column.
pub fn parse(text: &str, format: Format, path: &Path) -> Result<Value, ConfigError> {
    match format {
        Format::Dotenv => parse_dotenv(text, path).map(sops::from_dotenv),
        Format::Yaml => super::yaml::parse(text, path),
        Format::Json => serde_json::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            line_col: Some((e.line(), e.column())),
            message: crate::config::strip_position(&e.to_string()),
        }),
        Format::Toml => {
            let value: toml::Value = toml::from_str(text).map_err(|e| ConfigError::Syntax {
                path: path.to_path_buf(),
                line_col: e.span().map(|s| crate::position::line_col(text, s.start)),
                message: e.message().trim_end().to_string(),
            })?;
            serde_json::to_value(value).map_err(|e| ConfigError::Syntax {
                path: path.to_path_buf(),
                line_col: None,
                message: e.to_string(),
            })
        }
    }
}

/// Renders every base for `overlay` (the environment's values);
/// `secrets_base` is where `${file:…}` paths are relative to.
pub fn render_all(
    bases: &[Base],
    overlay: &Overlay,
    secrets_base: &Path,
) -> Result<Vec<Rendered>, ConfigError> {
    let mut merged: Vec<Value> = bases.iter().map(|b| b.value.clone()).collect();
    // Per file, what the overlay wrote: every pointer, and those it held
    // encrypted.
    let mut from_overlay: Vec<FromOverlay> = vec![FromOverlay::default(); bases.len()];
    for (key, value) in &overlay.values {
        let under = format!("/{}", escape(key));
        let own = bases
            .iter()
            .position(|b| value.is_object() && key == &b.name);
        let in_file = overlay.from_file.contains(key);
        if let Some(i) = own {
            merge(&mut merged[i], value);
            from_overlay[i].record(value, "", in_file, overlay.encrypted_under(&under));
            continue;
        }
        let holders: Vec<usize> = (0..bases.len())
            .filter(|&i| merged[i].get(key).is_some())
            .collect();
        let targets = if holders.is_empty() { vec![0] } else { holders };
        for i in targets {
            if let Some(map) = merged[i].as_object_mut() {
                match map.get_mut(key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        map.insert(key.clone(), value.clone());
                    }
                }
            }
            from_overlay[i].record(value, &under, in_file, overlay.encrypted_under(&under));
        }
    }
    bases
        .iter()
        .zip(merged)
        .zip(from_overlay)
        .map(|((base, value), from_overlay)| finish(base, value, &from_overlay, secrets_base))
        .collect()
}

/// What an environment's overlay wrote into one file: every pointer
/// (those an overlay file wrote marked), and those it held encrypted.
#[derive(Debug, Clone, Default)]
struct FromOverlay {
    written: Vec<String>,
    in_file: Vec<String>,
    encrypted: Vec<String>,
}

impl FromOverlay {
    /// The overlay's `value` written at `at` in this file: its scalars
    /// (the file's when `in_file`), and the encrypted ones — `encrypted`,
    /// each a pointer below the overlay's key — re-rooted at `at`.
    fn record<'a>(
        &mut self,
        value: &Value,
        at: &str,
        in_file: bool,
        encrypted: impl Iterator<Item = &'a str>,
    ) {
        let before = self.written.len();
        leaves(value, at, &mut self.written);
        if in_file {
            self.in_file.extend_from_slice(&self.written[before..]);
        }
        self.encrypted
            .extend(encrypted.map(|rest| format!("{at}{rest}")));
    }
}

/// The pointer of every scalar in `value`, under `pointer`.
fn leaves(value: &Value, pointer: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                leaves(child, &format!("{pointer}/{}", escape(key)), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                leaves(child, &format!("{pointer}/{i}"), out);
            }
        }
        _ => out.push(pointer.to_string()),
    }
}

fn finish(
    base: &Base,
    mut value: Value,
    overlay: &FromOverlay,
    secrets_base: &Path,
) -> Result<Rendered, ConfigError> {
    let mut secret_paths = Vec::new();
    let mut secret_values = Vec::new();
    resolve(
        &mut value,
        "",
        &base.name,
        secrets_base,
        &mut secret_paths,
        &mut secret_values,
    )?;
    let references = secret_paths.clone();
    named_secrets(&value, "", &mut secret_paths);
    // What a SOPS file kept encrypted stays a secret once rendered.
    secret_paths.extend(
        base.encrypted
            .iter()
            .chain(&overlay.encrypted)
            .filter(|p| value.pointer(p).is_some())
            .cloned(),
    );
    // Encrypted where it came from: the overlay's, or the base file's
    // where the overlay did not write over it.
    let encrypted = |pointer: &String| {
        overlay.encrypted.contains(pointer)
            || (base.encrypted.contains(pointer) && !overlay.written.contains(pointer))
    };
    let mut origins = BTreeMap::new();
    let mut scalars = Vec::new();
    leaves(&value, "", &mut scalars);
    for pointer in scalars {
        let origin = if references.contains(&pointer) {
            Origin::Reference
        } else if encrypted(&pointer) {
            Origin::Encrypted
        } else if overlay.in_file.contains(&pointer) {
            Origin::OverlayFile
        } else if overlay.written.contains(&pointer) {
            Origin::Environment
        } else {
            Origin::BaseFile
        };
        origins.insert(pointer, origin);
    }
    secret_paths.sort();
    secret_paths.dedup();
    // A value under a secret-like key is a secret even written literally:
    // scrubbed from messages like a resolved one; so is a secret number of
    // four digits or more (an encrypted PIN, an unquoted YAML secret).
    for path in &secret_paths {
        let literal = match value.pointer(path) {
            Some(Value::String(literal)) => literal.clone(),
            Some(Value::Number(n)) if n.to_string().trim_start_matches('-').len() >= 4 => {
                n.to_string()
            }
            _ => continue,
        };
        if !secret_values.contains(&literal) {
            secret_values.push(literal);
        }
    }
    let text = serialise(&value, base.format, &base.source)?;
    Ok(Rendered {
        source: base.source.clone(),
        name: base.name.clone(),
        format: base.format,
        value,
        text,
        secret_paths,
        secret_values,
        origins,
    })
}

pub fn serialise(value: &Value, format: Format, path: &Path) -> Result<String, ConfigError> {
    match format {
        Format::Json => {
            Ok(serde_json::to_string_pretty(value).expect("a JSON value serialises") + "\n")
        }
        Format::Dotenv => dotenv_text(value, path),
        Format::Yaml => super::yaml::text(value, path),
        Format::Toml => toml::to_string_pretty(value).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            line_col: None,
            message: format!("cannot be written back as TOML: {e}"),
        }),
    }
}

/// Objects merge key by key; anything else replaces.
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, over) => *base = over.clone(),
    }
}

fn resolve(
    value: &mut Value,
    pointer: &str,
    file: &str,
    base: &Path,
    paths: &mut Vec<String>,
    values: &mut Vec<String>,
) -> Result<(), ConfigError> {
    match value {
        Value::String(text) if secrets::has_reference(text) => {
            let resolved = secrets::resolve(text, base).map_err(|source| ConfigError::Secret {
                file: file.to_string(),
                pointer: if pointer.is_empty() {
                    "/".into()
                } else {
                    pointer.to_string()
                },
                source,
            })?;
            paths.push(pointer.to_string());
            if !resolved.is_empty() {
                values.push(resolved.clone());
            }
            *text = resolved;
        }
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                resolve(
                    child,
                    &format!("{pointer}/{}", escape(key)),
                    file,
                    base,
                    paths,
                    values,
                )?;
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                resolve(child, &format!("{pointer}/{i}"), file, base, paths, values)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Keys whose values are secrets whether or not they came from a reference.
pub use crate::scrub::is_secret_key;

fn named_secrets(value: &Value, pointer: &str, paths: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_pointer = format!("{pointer}/{}", escape(key));
                if is_secret_key(key) && !child.is_object() && !child.is_array() && !child.is_null()
                {
                    paths.push(child_pointer.clone());
                }
                named_secrets(child, &child_pointer, paths);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                named_secrets(child, &format!("{pointer}/{i}"), paths);
            }
        }
        _ => {}
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// What gantry itself says of a base file's secrets, beside the
/// validators: each value a SOPS file kept encrypted (info). A secret
/// written in clear is the auth-config-validator's finding (it reads each
/// value's origin through `provenance`).
pub fn secret_findings(base: &Base) -> Vec<Finding> {
    base.encrypted
        .iter()
        .map(|path| Finding {
            file: base.name.clone(),
            path: path.clone(),
            severity: Severity::Info,
            message: "encrypted in the SOPS file; deployed as a secret".into(),
            source: "gantry".into(),
        })
        .collect()
}

/// `value` with the values at `paths` (and any secret-named key) masked.
pub fn mask(value: &Value, paths: &[String]) -> Value {
    let mut masked = value.clone();
    let mut named = Vec::new();
    named_secrets(value, "", &mut named);
    for path in paths.iter().chain(&named) {
        if let Some(slot) = masked.pointer_mut(path) {
            *slot = Value::String("********".into());
        }
    }
    masked
}

/// Replaces every secret value in `text`, in every form, with `********`.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    crate::scrub::Scrubber::new(secrets).scrub(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base(name: &str, value: Value) -> Base {
        Base {
            source: PathBuf::from(name),
            name: name.into(),
            format: Format::Json,
            value,
            encrypted: Vec::new(),
        }
    }

    #[test]
    fn flat_overrides_go_where_the_key_is_else_to_the_first_file() {
        let bases = [
            base(
                "auth.json",
                json!({"jwt_secret_key": "x", "nested": {"a": 1, "b": 2}}),
            ),
            base("extensions.json", json!({"extensions": {}})),
        ];
        let overrides = json!({
            "jwt_secret_key": "prod",
            "nested": {"b": 3},
            "token_expiry_minutes": 60,
            "extensions": {"audit": {"enabled": true}},
            "extensions.json": {"extra": true}
        });
        let out = render_all(
            &bases,
            &Overlay::extra(overrides.as_object().unwrap().clone()),
            Path::new("."),
        )
        .unwrap();
        assert_eq!(
            out[0].value,
            json!({"jwt_secret_key": "prod", "nested": {"a": 1, "b": 3}, "token_expiry_minutes": 60})
        );
        assert_eq!(
            out[1].value,
            json!({"extensions": {"audit": {"enabled": true}}, "extra": true})
        );
        assert_eq!(out[0].secret_paths, ["/jwt_secret_key"]);
    }

    #[test]
    fn a_literal_under_a_secret_key_is_scrubbed_too() {
        let bases = [base(
            "db.json",
            json!({"db_password": "literal-pw", "user": "svc"}),
        )];
        let out = render_all(&bases, &Overlay::default(), Path::new(".")).unwrap();
        assert_eq!(out[0].secret_values, ["literal-pw"]);
        assert_eq!(
            scrub("login as svc with literal-pw failed", &out[0].secret_values),
            "login as svc with ******** failed"
        );
    }

    #[test]
    fn secret_references_are_resolved_masked_and_scrubbable() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("jwt"), "s3cret-value-from-file\n").unwrap();
        let bases = [base(
            "auth.json",
            json!({"signing": "${file:jwt}", "name": "svc"}),
        )];
        let out = render_all(&bases, &Overlay::default(), dir.path()).unwrap();
        assert_eq!(out[0].value["signing"], "s3cret-value-from-file");
        assert!(out[0].holds_secrets());
        assert_eq!(out[0].masked()["signing"], "********");
        assert_eq!(
            scrub("got s3cret-value-from-file here", &out[0].secret_values),
            "got ******** here"
        );
    }

    #[test]
    fn an_unresolved_reference_names_file_and_pointer() {
        let bases = [base(
            "auth.json",
            json!({"jwt": {"key": "${env:GANTRY_TEST_UNSET_SECRET}"}}),
        )];
        let err = render_all(&bases, &Overlay::default(), Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("auth.json")
                && err.contains("/jwt/key")
                && err.contains("GANTRY_TEST_UNSET_SECRET"),
            "{err}"
        );
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let err = parse(
            "{\n  \"a\": 1,\n  \"b\" 2\n}",
            Format::Json,
            Path::new("auth.json"),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("auth.json:3:"), "{err}");
        let err = parse("a = 1\nb = \n", Format::Toml, Path::new("auth.toml")).unwrap_err();
        assert!(err.to_string().starts_with("auth.toml:2:"), "{err}");
    }
}
