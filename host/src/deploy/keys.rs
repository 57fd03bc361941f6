//! JWT key sets as the example auth service reads them (`jwt_keys`: kid,
//! alg, material, status `active` | `verify` | `retired`), as gantry keeps
//! them: material only by reference. A literal secret found in the
//! deployment config is moved to a 0600 file the first time gantry takes
//! the set over, so the state store never holds key material; output
//! names a key by its kid and fingerprint only.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Key {
    pub kid: String,
    #[serde(default = "hs256")]
    pub alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_pem: Option<String>,
    #[serde(default = "active")]
    pub status: String,
}

fn hs256() -> String {
    "HS256".into()
}
fn active() -> String {
    "active".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeySet(pub Vec<Key>);

impl KeySet {
    /// The set the deployment config gives an environment: the first of
    /// `places` (the environment's values, then the base files') holding
    /// `jwt_keys`, or `jwt_secret_key` as one HS256 key with kid `default`
    /// (what the service itself makes of it).
    pub fn from_config(places: &[serde_json::Map<String, Value>]) -> Result<KeySet, String> {
        for place in places {
            if let Some(keys) = place.get("jwt_keys") {
                let set: KeySet =
                    serde_json::from_value(keys.clone()).map_err(|e| format!("`jwt_keys`: {e}"))?;
                if !set.0.is_empty() && !set.0.iter().all(|k| k.kid == "placeholder") {
                    return Ok(set);
                }
            }
            if let Some(Value::String(secret)) = place.get("jwt_secret_key") {
                return Ok(KeySet(vec![Key {
                    kid: "default".into(),
                    alg: hs256(),
                    secret: Some(secret.clone()),
                    private_key_pem: None,
                    public_key_pem: None,
                    status: active(),
                }]));
            }
        }
        Err("no key set: neither `jwt_keys` nor `jwt_secret_key` in the environment or the config files".into())
    }

    /// The rules a key set must keep: exactly one active key, unique kids,
    /// known statuses, no retired key that could still sign.
    pub fn check(&self) -> Result<(), String> {
        let active = self.0.iter().filter(|k| k.status == "active").count();
        if active != 1 {
            return Err(format!(
                "the key set needs exactly one active key, has {active}"
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for key in &self.0 {
            if !seen.insert(&key.kid) {
                return Err(format!("key id `{}` appears twice", key.kid));
            }
            if !matches!(key.status.as_str(), "active" | "verify" | "retired") {
                return Err(format!(
                    "key `{}`: status `{}` is not active, verify or retired",
                    key.kid, key.status
                ));
            }
            if !super::generate::ALGORITHMS.contains(&key.alg.as_str()) {
                return Err(format!(
                    "key `{}`: alg `{}` is not one of {}",
                    key.kid,
                    key.alg,
                    super::generate::ALGORITHMS.join(", ")
                ));
            }
            let asymmetric = key.alg != "HS256";
            if let Some(public) = &key.public_key_pem
                && (!public.contains("-----BEGIN PUBLIC KEY-----") || public.contains("PRIVATE"))
            {
                return Err(format!(
                    "key `{}`: `public_key_pem` must be a PUBLIC KEY (SPKI) PEM and nothing else",
                    key.kid
                ));
            }
            if asymmetric && key.status != "retired" && key.public_key_pem.is_none() {
                return Err(format!(
                    "key `{}` ({}) needs `public_key_pem`",
                    key.kid, key.alg
                ));
            }
            if asymmetric && key.status == "active" && key.private_key_pem.is_none() {
                return Err(format!(
                    "key `{}` signs ({}) and needs `private_key_pem`",
                    key.kid, key.alg
                ));
            }
            if !asymmetric && key.status != "retired" && key.secret.is_none() {
                return Err(format!("key `{}` (HS256) needs `secret`", key.kid));
            }
            if key.status == "retired" && (key.secret.is_some() || key.private_key_pem.is_some()) {
                return Err(format!(
                    "key `{}` is retired but still carries signing material",
                    key.kid
                ));
            }
        }
        Ok(())
    }

    pub fn active(&self) -> &Key {
        self.0
            .iter()
            .find(|k| k.status == "active")
            .expect("checked: one active key")
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a key set serialises")
    }

    /// Moves literal material to 0600 files in `dir`, leaving `${file:…}`
    /// references (relative to `base`, where references resolve).
    pub fn externalize(&mut self, dir: &Path, base: &Path) -> std::io::Result<()> {
        for key in &mut self.0 {
            for (field, value) in [
                ("secret", &mut key.secret),
                ("private", &mut key.private_key_pem),
            ] {
                if let Some(text) = value
                    && !crate::secrets::has_reference(text)
                {
                    let path = dir.join(format!("{}.{field}", key.kid));
                    write_private(&path, text.as_bytes())?;
                    *text = reference(&path, base);
                }
            }
        }
        Ok(())
    }
}

/// `${file:PATH}` for `path`, relative to `base` when it is inside it.
pub(super) fn reference(path: &Path, base: &Path) -> String {
    let shown = path.strip_prefix(base).unwrap_or(path);
    format!("${{file:{}}}", shown.display())
}

/// Writes `bytes` to a new file readable by its owner only.
pub(super) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        crate::store::private::dir(parent)?;
    }
    let tmp = path.with_extension("tmp");
    // A temp file a killed writer left may have any mode: start afresh.
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The first 16 hex digits of the material's sha256: how output names a key.
pub fn fingerprint(material: &str) -> String {
    hex::encode(sha2::Sha256::digest(material.as_bytes()))[..16].to_string()
}
