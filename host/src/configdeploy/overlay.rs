//! An environment's values (`environments.<ENV>`): written in the
//! deployment config, or kept in an overlay file (JSON, TOML, YAML or
//! dotenv) that SOPS may have encrypted. What the file held encrypted is
//! remembered, so the values it reaches in the rendered files are secrets
//! there.

use super::error::ConfigError;
use super::render;
use super::sops;
use crate::config::Environment;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Default)]
pub struct Overlay {
    pub values: Map<String, Value>,
    /// JSON pointers (into `values`) of the values held encrypted.
    pub encrypted: Vec<String>,
    /// The top-level keys whose values an overlay file wrote (in clear
    /// unless `encrypted` says otherwise); the rest were written in the
    /// deployment config or by gantry.
    pub from_file: BTreeSet<String>,
}

impl Overlay {
    /// Values written in clear in the deployment config, none encrypted.
    pub fn extra(values: Map<String, Value>) -> Overlay {
        Overlay {
            values,
            ..Overlay::default()
        }
    }

    /// The environment's values; an overlay file is read and decrypted
    /// with the identities `identities` gives (asked only for SOPS files).
    /// An error names `environments.<name>`.
    pub fn load(
        name: &str,
        environment: &Environment,
        identities: &dyn Fn() -> Result<sops::Identities, sops::SopsError>,
    ) -> Result<Overlay, ConfigError> {
        match environment {
            Environment::Values(values) => Ok(Overlay::extra(values.clone())),
            Environment::File(path) => {
                let document = render::read_document(path, identities).map_err(|source| {
                    ConfigError::Overlay {
                        env: name.to_string(),
                        source: Box::new(source),
                    }
                })?;
                Ok(Overlay {
                    from_file: document.values.keys().cloned().collect(),
                    values: document.values,
                    encrypted: document.encrypted,
                })
            }
        }
    }

    /// `extra` over these values: a key it sets replaces the overlay's
    /// whole value there, with what was known of it.
    pub fn extend(&mut self, extra: Map<String, Value>) {
        for (key, value) in extra {
            let under = format!("/{}", key.replace('~', "~0").replace('/', "~1"));
            self.encrypted.retain(|p| {
                let rest = p.strip_prefix(&under);
                !rest.is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            });
            self.from_file.remove(&key);
            self.values.insert(key, value);
        }
    }

    /// The encrypted pointers under `prefix` (a pointer to one key), each
    /// with the prefix removed (`""` for the key's own value).
    pub fn encrypted_under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.encrypted.iter().filter_map(move |p| {
            let rest = p.strip_prefix(prefix)?;
            (rest.is_empty() || rest.starts_with('/')).then_some(rest)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configdeploy::render::{Base, Format, render_all};
    use serde_json::json;
    use std::path::Path;

    fn base(name: &str, value: Value) -> Base {
        Base {
            source: name.into(),
            name: name.into(),
            format: Format::Json,
            value,
            encrypted: Vec::new(),
        }
    }

    #[test]
    fn encrypted_overlay_values_are_secrets_wherever_they_land() {
        let bases = [
            base("auth.json", json!({"db": {"host": "h"}, "port": 1})),
            base("other.json", json!({"db": {"host": "h2"}})),
        ];
        let overlay = Overlay {
            values: json!({
                "db": {"password": "from-sops", "host": "clear"},
                "auth.json": {"token": 1234, "mode": "x"},
                "new": "added",
            })
            .as_object()
            .unwrap()
            .clone(),
            encrypted: vec![
                "/db/password".into(),
                "/auth.json/token".into(),
                "/new".into(),
            ],
            from_file: ["db", "auth.json"].map(String::from).into(),
        };
        let out = render_all(&bases, &overlay, Path::new(".")).unwrap();
        assert_eq!(out[0].value["db"]["password"], "from-sops");
        assert_eq!(out[0].value["token"], 1234);
        for path in ["/db/password", "/token", "/new"] {
            assert!(out[0].secret_paths.contains(&path.to_string()), "{path}");
        }
        assert!(!out[0].secret_paths.contains(&"/db/host".to_string()));
        assert!(!out[0].secret_paths.contains(&"/mode".to_string()));
        assert_eq!(out[1].secret_paths, vec!["/db/password"]);
        assert_eq!(out[0].masked()["token"], "********");
        use crate::configdeploy::render::Origin;
        for (pointer, origin) in [
            ("/db/password", Origin::Encrypted),
            ("/db/host", Origin::OverlayFile),
            ("/mode", Origin::OverlayFile),
            ("/new", Origin::Encrypted),
            ("/port", Origin::BaseFile),
        ] {
            assert_eq!(out[0].origins.get(pointer), Some(&origin), "{pointer}");
        }
        assert_eq!(out[1].origins.get("/db/host"), Some(&Origin::OverlayFile));
        // gantry's own values over the file's: no longer the file's.
        let mut extended = overlay.clone();
        extended.extend(json!({"db": {"host": "set"}}).as_object().unwrap().clone());
        assert_eq!(extended.encrypted, vec!["/auth.json/token", "/new"]);
        let out = render_all(&bases, &extended, Path::new(".")).unwrap();
        assert_eq!(out[0].origins.get("/db/host"), Some(&Origin::Environment));
        assert!(!out[0].secret_paths.contains(&"/db/password".to_string()));
    }

    #[test]
    fn a_prefix_matches_whole_keys_only() {
        let overlay = Overlay {
            encrypted: vec!["/db/password".into(), "/dbx".into(), "/db".into()],
            ..Overlay::default()
        };
        let under: Vec<&str> = overlay.encrypted_under("/db").collect();
        assert_eq!(under, vec!["/password", ""]);
    }
}
