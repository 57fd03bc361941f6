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

#[derive(Debug, Clone, Default)]
pub struct Overlay {
    pub values: Map<String, Value>,
    /// JSON pointers (into `values`) of the values held encrypted.
    pub encrypted: Vec<String>,
}

impl Overlay {
    /// Values written in clear, none encrypted.
    pub fn extra(values: Map<String, Value>) -> Overlay {
        Overlay {
            values,
            encrypted: Vec::new(),
        }
    }

    /// The environment's values; an overlay file is read and decrypted
    /// with the identities `identities` gives (asked only for SOPS files).
    pub fn load(
        environment: &Environment,
        identities: &dyn Fn() -> Result<sops::Identities, sops::SopsError>,
    ) -> Result<Overlay, ConfigError> {
        match environment {
            Environment::Values(values) => Ok(Overlay::extra(values.clone())),
            Environment::File(path) => {
                let document = render::read_document(path, identities)?;
                Ok(Overlay {
                    values: document.values,
                    encrypted: document.encrypted,
                })
            }
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
            ("/db/host", Origin::Environment),
            ("/mode", Origin::Environment),
            ("/port", Origin::BaseFile),
        ] {
            assert_eq!(out[0].origins.get(pointer), Some(&origin), "{pointer}");
        }
        assert_eq!(out[1].origins.get("/db/host"), Some(&Origin::Environment));
    }

    #[test]
    fn a_prefix_matches_whole_keys_only() {
        let overlay = Overlay {
            values: Map::new(),
            encrypted: vec!["/db/password".into(), "/dbx".into(), "/db".into()],
        };
        let under: Vec<&str> = overlay.encrypted_under("/db").collect();
        assert_eq!(under, vec!["/password", ""]);
    }
}
