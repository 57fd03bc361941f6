//! Plugin manifests: `NAME.toml` beside `NAME.wasm`.
//!
//! The manifest is the plugin's own statement of what it is (name, kind,
//! version, optional sha256) and what it needs (capabilities, limits,
//! settings). Unknown keys are errors with line and column. Parsing never
//! loads or runs the component.

use crate::capabilities::{GrantValue, Grants};
pub use crate::kind::PluginKind;
pub use crate::limits::Limits;
use crate::position::line_col;
use serde::Deserialize;
use serde_spanned::Spanned;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A parsed, validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub name: String,
    pub kind: PluginKind,
    pub version: String,
    pub description: String,
    pub sha256: Option<String>,
    /// What the plugin may reach, by capability (`[capabilities]`). List
    /// entries may name settings in braces (`{url}`, `{host}:{port}`,
    /// `{target}`): the operator's value is then the grant.
    pub capabilities: Grants,
    pub limits: Limits,
    pub settings: BTreeMap<String, SettingSpec>,
    /// Where it was read from, for messages.
    pub path: PathBuf,
    /// The manifest as written (kept with a migration's history row).
    pub source_text: String,
}

impl Manifest {
    /// The operator's pin for this manifest with the component whose
    /// sha256 is `component_sha256`: one hash over both, so a pinned
    /// plugin's grants cannot be widened by editing its manifest.
    /// `gantry plugin inspect` prints it.
    pub fn pin(&self, component_sha256: &str) -> String {
        use sha2::{Digest, Sha256};
        let manifest = hex::encode(Sha256::digest(self.source_text.as_bytes()));
        let both = format!("gantry-pin-v1\n{component_sha256}\n{manifest}\n");
        hex::encode(Sha256::digest(both.as_bytes()))
    }
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SettingSpec {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub required: bool,
    pub default: Option<String>,
    /// A secret value: never printed or logged by the host.
    #[serde(default)]
    pub secret: bool,
}

/// A manifest could not be read or is wrong; names the file and, where
/// there is one, the line and column.
#[derive(Debug, thiserror::Error)]
pub struct ManifestError {
    pub path: PathBuf,
    pub line_col: Option<(usize, usize)>,
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line_col {
            Some((line, col)) => {
                write!(f, "{}:{line}:{col}: {}", self.path.display(), self.message)
            }
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: Spanned<String>,
    kind: Spanned<String>,
    version: Spanned<String>,
    #[serde(default)]
    description: String,
    sha256: Option<Spanned<String>>,
    #[serde(default)]
    capabilities: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    settings: BTreeMap<String, SettingSpec>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory_mib: Option<Spanned<u64>>,
    timeout_ms: Option<Spanned<u64>>,
    http_requests_per_call: Option<Spanned<u64>>,
    http_bytes_per_call: Option<Spanned<u64>>,
}

impl Manifest {
    /// Reads and validates `path`.
    pub fn read(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError {
            path: path.to_path_buf(),
            line_col: None,
            message: format!("cannot read the manifest: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Parses manifest text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
        let at = |span: Option<Range<usize>>, message: String| ManifestError {
            path: path.to_path_buf(),
            line_col: span.map(|s| line_col(text, s.start)),
            message,
        };
        let raw: RawManifest =
            toml::from_str(text).map_err(|e| at(e.span(), e.message().trim_end().to_string()))?;

        let name = raw.name.get_ref();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err(at(
                Some(raw.name.span()),
                format!("`name` = {name:?}: use lowercase letters, digits, `-` and `_`"),
            ));
        }
        let kind = PluginKind::parse(raw.kind.get_ref()).ok_or_else(|| {
            at(
                Some(raw.kind.span()),
                format!(
                    "`kind` = {:?}: expected one of health-check, notifier, config-validator, migration",
                    raw.kind.get_ref()
                ),
            )
        })?;
        if raw.version.get_ref().trim().is_empty() {
            return Err(at(Some(raw.version.span()), "`version` is empty".into()));
        }
        let sha256 = match raw.sha256 {
            Some(sha) => {
                let hex = sha.get_ref().trim().to_ascii_lowercase();
                if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(at(
                        Some(sha.span()),
                        "`sha256` must be 64 hexadecimal digits".into(),
                    ));
                }
                Some(hex)
            }
            None => None,
        };

        let mut limits = Limits::default();
        if let Some(mem) = raw.limits.memory_mib {
            if !(1..=Limits::MAX_MEMORY_MIB).contains(mem.get_ref()) {
                return Err(at(
                    Some(mem.span()),
                    format!("`limits.memory_mib` must be 1..={}", Limits::MAX_MEMORY_MIB),
                ));
            }
            limits.memory_mib = *mem.get_ref();
        }
        if let Some(timeout) = raw.limits.timeout_ms {
            if !(1..=Limits::MAX_TIMEOUT_MS).contains(timeout.get_ref()) {
                return Err(at(
                    Some(timeout.span()),
                    format!("`limits.timeout_ms` must be 1..={}", Limits::MAX_TIMEOUT_MS),
                ));
            }
            limits.timeout_ms = *timeout.get_ref();
        }
        let positive = |key: &str, n: Option<Spanned<u64>>| match n {
            Some(n) if *n.get_ref() == 0 => Err(at(
                Some(n.span()),
                format!("`limits.{key}` must be at least 1"),
            )),
            n => Ok(n.map(Spanned::into_inner)),
        };
        limits.http_requests_per_call =
            positive("http_requests_per_call", raw.limits.http_requests_per_call)?
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        limits.http_bytes_per_call =
            positive("http_bytes_per_call", raw.limits.http_bytes_per_call)?;

        let known = |key: &str| key == "target" || raw.settings.contains_key(key);
        let mut grants = Grants::default();
        for (key, value) in raw.capabilities {
            let span = value.span();
            let value = match value.into_inner() {
                toml::Value::Boolean(flag) => GrantValue::Flag(flag),
                toml::Value::String(text) => GrantValue::Text(text),
                toml::Value::Array(items) => {
                    let mut list = Vec::new();
                    for item in items {
                        let toml::Value::String(text) = item else {
                            return Err(at(
                                Some(span),
                                format!("`capabilities.{key}`: every entry must be a string"),
                            ));
                        };
                        if let Some(setting) = template_keys(&text).find(|k| !known(k)) {
                            return Err(at(
                                Some(span),
                                format!(
                                    "`capabilities.{key}` entry {text:?} names setting `{setting}`, which [settings] does not declare"
                                ),
                            ));
                        }
                        list.push(text);
                    }
                    GrantValue::List(list)
                }
                other => {
                    return Err(at(
                        Some(span),
                        format!(
                            "`capabilities.{key}`: expected a list, a string or true/false, found {}",
                            other.type_str()
                        ),
                    ));
                }
            };
            match crate::capabilities::check_grant(&key, &value) {
                // In the contract, not in this host: the manifest may say
                // so; a component importing it then fails to load.
                None if crate::bindings::INTERFACES.contains(&key.as_str()) => {}
                None => {
                    return Err(at(
                        Some(span),
                        format!(
                            "unknown capability `{key}`; this host provides {}",
                            crate::capabilities::PROVIDED[1..].join(", ")
                        ),
                    ));
                }
                Some(Err(why)) => {
                    return Err(at(Some(span), format!("`capabilities.{key}`: {why}")));
                }
                Some(Ok(())) => {}
            }
            grants.entries.insert(key, value);
        }

        Ok(Manifest {
            name: raw.name.into_inner(),
            kind,
            version: raw.version.into_inner(),
            description: raw.description,
            sha256,
            capabilities: grants,
            limits,
            settings: raw.settings,
            path: path.to_path_buf(),
            source_text: text.to_string(),
        })
    }
}

/// The setting names a capability entry refers to, as in `{url}`.
pub fn template_keys(text: &str) -> impl Iterator<Item = &str> {
    text.split('{')
        .skip(1)
        .filter_map(|part| part.split_once('}').map(|(key, _)| key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("demo.toml"))
    }

    #[test]
    fn a_full_manifest_parses() {
        let m = parse(
            r#"
name = "demo"
kind = "health-check"
version = "1.2.0"
[capabilities]
http = ["https://api.example.com:443", "http://127.0.0.1:*", "{url}"]
tcp = ["db.internal:5432"]
[limits]
memory_mib = 16
timeout_ms = 250
[settings.url]
required = true
"#,
        )
        .unwrap();
        assert_eq!(m.kind, PluginKind::HealthCheck);
        assert_eq!(m.capabilities.list("http").len(), 3);
        assert_eq!(
            m.limits,
            Limits {
                memory_mib: 16,
                timeout_ms: 250,
                ..Limits::default()
            }
        );
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let err = parse(
            "name = \"demo\"\nkind = \"notifier\"\nversion = \"1\"\n[limits]\nmemroy_mib = 4\n",
        )
        .unwrap_err();
        assert_eq!(err.line_col, Some((5, 1)), "{err}");
        assert!(err.to_string().contains("memroy_mib"), "{err}");
        assert!(err.to_string().starts_with("demo.toml:5:1:"), "{err}");
    }

    #[test]
    fn bad_kind_is_pointed_at() {
        let err = parse("name = \"demo\"\nkind = \"checker\"\nversion = \"1\"\n").unwrap_err();
        assert_eq!(err.line_col, Some((2, 8)), "{err}");
        assert!(err.message.contains("health-check"), "{err}");
    }

    #[test]
    fn template_must_name_a_declared_setting() {
        let err = parse(
            "name = \"demo\"\nkind = \"health-check\"\nversion = \"1\"\n[capabilities]\nhttp = [\"{uri}\"]\n",
        )
        .unwrap_err();
        assert!(err.message.contains("`uri`"), "{err}");
        assert_eq!(err.line_col.map(|(l, _)| l), Some(5));
    }

    #[test]
    fn http_entries_need_scheme_host_and_port() {
        for bad in [
            "example.com",
            "ftp://example.com:21",
            "http://:80",
            "http://h:99999",
        ] {
            let text = format!(
                "name = \"demo\"\nkind = \"health-check\"\nversion = \"1\"\n[capabilities]\nhttp = [{bad:?}]\n"
            );
            assert!(parse(&text).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn limits_are_bounded() {
        let err = parse(
            "name = \"demo\"\nkind = \"health-check\"\nversion = \"1\"\n[limits]\nmemory_mib = 100000\n",
        )
        .unwrap_err();
        assert!(err.message.contains("memory_mib"), "{err}");
    }
}
