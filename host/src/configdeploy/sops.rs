//! SOPS-encrypted config files, decrypted in memory: the file's data key
//! is opened with an age identity, every `ENC[AES256_GCM,…]` value is
//! decrypted (AES-256-GCM, 32-byte IV, the value's key path as additional
//! data), and the file's MAC — SHA-512 over every value in document order,
//! itself encrypted under the data key with `lastmodified` as additional
//! data — must match, so a tampered, reordered or partly replaced file is
//! refused. Comments (YAML) are encrypted by sops but outside the MAC:
//! they are dropped. The format is sops's, as its documentation and source
//! describe it; the primitives are the `age` and `aes-gcm` crates.
//!
//! Identities: `SOPS_AGE_KEY` (the key text), `SOPS_AGE_KEY_FILE`, or
//! the deployment config's `secrets.age_identity` (a `${file:…}`
//! reference). Nothing decrypted is written anywhere by this module; the
//! caller learns which values were encrypted, to treat them as secrets.

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::Engine as _;
use serde_json::{Map, Value};
use sha2::{Digest, Sha512};
use std::io::Read;
use std::str::FromStr;

type Cipher = aes_gcm::AesGcm<aes_gcm::aes::Aes256, U32>;

#[derive(Debug, thiserror::Error)]
pub enum SopsError {
    #[error(
        "no age identity to decrypt it with (set SOPS_AGE_KEY_FILE or SOPS_AGE_KEY, or secrets.age_identity)"
    )]
    NoIdentity,
    #[error("none of the age identities given opens it (recipients: {recipients})")]
    WrongIdentity { recipients: String },
    #[error("it is encrypted for {0} only; gantry decrypts with age")]
    Unsupported(String),
    #[error("its MAC does not match its contents: the file was changed after sops wrote it")]
    Tampered,
    #[error("the value at {pointer}: {why}")]
    Value { pointer: String, why: String },
    #[error("its `sops` metadata: {0}")]
    Metadata(String),
    #[error("the age identity: {0}")]
    Identity(String),
}

impl SopsError {
    /// The value at `pointer` (the whole document: `/`) is refused.
    fn value(pointer: &str, why: String) -> SopsError {
        SopsError::Value {
            pointer: if pointer.is_empty() { "/" } else { pointer }.to_string(),
            why,
        }
    }
}

/// The age identities to try.
pub struct Identities(Vec<age::x25519::Identity>);

impl Identities {
    /// Every `AGE-SECRET-KEY-…` line of `text`.
    pub fn parse(text: &str) -> Result<Identities, SopsError> {
        let keys = text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("AGE-SECRET-KEY-"))
            .map(|l| {
                age::x25519::Identity::from_str(l).map_err(|e| SopsError::Identity(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Identities(keys))
    }

    /// The identities for a deployment config: the environment's, and
    /// `secrets.age_identity` (a reference, resolved against
    /// `secrets_base`).
    pub fn for_config(
        age_identity: Option<&str>,
        secrets_base: &std::path::Path,
    ) -> Result<Identities, SopsError> {
        let configured = match age_identity {
            Some(reference) => Some(
                crate::secrets::resolve(reference, secrets_base)
                    .map_err(|e| SopsError::Identity(format!("`secrets.age_identity`: {e}")))?,
            ),
            None => None,
        };
        Identities::from_environment(configured.as_deref())
    }

    /// From `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`, and `configured` (the
    /// resolved `secrets.age_identity`), in that order.
    pub fn from_environment(configured: Option<&str>) -> Result<Identities, SopsError> {
        let mut all = Vec::new();
        if let Ok(text) = std::env::var("SOPS_AGE_KEY") {
            all.extend(Identities::parse(&text)?.0);
        }
        if let Ok(path) = std::env::var("SOPS_AGE_KEY_FILE") {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| SopsError::Identity(format!("cannot read {path}: {e}")))?;
            all.extend(Identities::parse(&text)?.0);
        }
        if let Some(text) = configured {
            all.extend(Identities::parse(text)?.0);
        }
        Ok(Identities(all))
    }
}

/// A dotenv file as parsed (flat `KEY=value`) with sops's flattened
/// metadata (`sops_age__list_0__map_enc=…`, `sops_mac=…`, newlines as
/// `\n`) gathered into a `sops` object, as sops keeps it in JSON; a file
/// without it comes back as it was.
pub fn from_dotenv(flat: Value) -> Value {
    let Value::Object(map) = flat else {
        return flat;
    };
    if !map.contains_key("sops_mac") {
        return Value::Object(map);
    }
    let mut data = Map::new();
    let mut meta = Map::new();
    for (key, value) in map {
        let Some(name) = key.strip_prefix("sops_") else {
            data.insert(key, value);
            continue;
        };
        let text = value.as_str().unwrap_or_default().replace("\\n", "\n");
        // `age__list_0__map_enc` → meta.age[0].enc
        let parts: Vec<&str> = name.split("__").collect();
        match parts.as_slice() {
            [list, index, field] => {
                let (Some(index), Some(field)) = (
                    index
                        .strip_prefix("list_")
                        .and_then(|i| i.parse::<usize>().ok()),
                    field.strip_prefix("map_"),
                ) else {
                    continue;
                };
                let items = meta
                    .entry(list.to_string())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(items) = items {
                    while items.len() <= index {
                        items.push(Value::Object(Map::new()));
                    }
                    items[index][field] = Value::String(text);
                }
            }
            [single] => {
                let value = match *single {
                    "mac_only_encrypted" => Value::Bool(text == "true"),
                    _ => Value::String(text),
                };
                meta.insert(single.to_string(), value);
            }
            _ => {}
        }
    }
    data.insert("sops".into(), Value::Object(meta));
    Value::Object(data)
}

/// True when `doc` claims sops wrote it (a `sops` object at the top): it
/// is decrypted, and refused if its metadata is incomplete — never
/// deployed with its `ENC[…]` values as they are.
pub fn is_sops(doc: &Value) -> bool {
    doc.get("sops").is_some_and(Value::is_object)
}

/// Which values the file's rules encrypt (sops's `unencrypted_suffix`,
/// `encrypted_suffix`, `unencrypted_regex`, `encrypted_regex`: each looks
/// at every key on a value's path). Null values and empty strings sops
/// leaves in clear whatever the rules say.
enum Rule {
    All,
    UnlessSuffix(String),
    OnlySuffix(String),
    UnlessRegex(regex::Regex),
    OnlyRegex(regex::Regex),
}

impl Rule {
    fn of(meta: &Map<String, Value>) -> Result<Rule, SopsError> {
        let text = |key: &str| {
            meta.get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let regex = |key: &str, text: &str| {
            regex::Regex::new(text).map_err(|e| SopsError::Metadata(format!("`{key}`: {e}")))
        };
        let rules = [
            "unencrypted_suffix",
            "encrypted_suffix",
            "unencrypted_regex",
            "encrypted_regex",
        ];
        let set: Vec<&str> = rules.into_iter().filter(|k| text(k).is_some()).collect();
        if set.len() > 1 {
            return Err(SopsError::Metadata(format!(
                "it sets {} together; sops allows one",
                set.join(" and ")
            )));
        }
        Ok(match set.first().copied() {
            None => Rule::All,
            Some(key @ "unencrypted_suffix") => Rule::UnlessSuffix(text(key).unwrap().into()),
            Some(key @ "encrypted_suffix") => Rule::OnlySuffix(text(key).unwrap().into()),
            Some(key @ "unencrypted_regex") => Rule::UnlessRegex(regex(key, text(key).unwrap())?),
            Some(key) => Rule::OnlyRegex(regex(key, text(key).unwrap())?),
        })
    }

    fn encrypts(&self, path: &[String]) -> bool {
        match self {
            Rule::All => true,
            Rule::UnlessSuffix(suffix) => !path.iter().any(|k| k.ends_with(suffix.as_str())),
            Rule::OnlySuffix(suffix) => path.iter().any(|k| k.ends_with(suffix.as_str())),
            Rule::UnlessRegex(re) => !path.iter().any(|k| re.is_match(k)),
            Rule::OnlyRegex(re) => path.iter().any(|k| re.is_match(k)),
        }
    }
}

/// A decrypted document: the values, and the JSON pointers of those that
/// were encrypted (secrets from here on).
#[derive(Debug)]
pub struct Decrypted {
    pub value: Value,
    pub encrypted: Vec<String>,
}

/// Decrypts a sops document (its `sops` key removed), checking its MAC.
pub fn decrypt(doc: &Value, identities: &Identities) -> Result<Decrypted, SopsError> {
    let meta = doc
        .get("sops")
        .and_then(Value::as_object)
        .ok_or_else(|| SopsError::Metadata("missing".into()))?;
    let key = data_key(meta, identities)?;
    let mut value = doc.clone();
    value
        .as_object_mut()
        .expect("a sops document is an object")
        .remove("sops");
    let mac_only_encrypted = meta
        .get("mac_only_encrypted")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut walk = Walk {
        key: &key,
        hash: Sha512::new(),
        encrypted: Vec::new(),
        mac_only_encrypted,
        rule: Rule::of(meta)?,
    };
    walk.value(&mut value, &mut Vec::new(), "")?;
    let computed = hex::encode_upper(walk.hash.finalize());
    let lastmodified = meta
        .get("lastmodified")
        .and_then(Value::as_str)
        .ok_or_else(|| SopsError::Metadata("no `lastmodified`".into()))?;
    let stored = meta
        .get("mac")
        .and_then(Value::as_str)
        .ok_or_else(|| SopsError::Metadata("no `mac`".into()))?;
    let (plain, _) =
        open(&key, stored, lastmodified.as_bytes()).map_err(|_| SopsError::Tampered)?;
    if plain != computed.as_bytes() {
        return Err(SopsError::Tampered);
    }
    Ok(Decrypted {
        value,
        encrypted: walk.encrypted,
    })
}

/// The 32-byte data key, opened with the first identity that can.
fn data_key(meta: &Map<String, Value>, identities: &Identities) -> Result<Vec<u8>, SopsError> {
    let stanzas: Vec<&Map<String, Value>> = meta
        .get("age")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default();
    if stanzas.is_empty() {
        let others: Vec<&str> = ["kms", "gcp_kms", "azure_kv", "hc_vault", "pgp"]
            .into_iter()
            .filter(|k| {
                meta.get(*k)
                    .is_some_and(|v| v.as_array().is_some_and(|a| !a.is_empty()))
            })
            .collect();
        return Err(SopsError::Unsupported(if others.is_empty() {
            "no key type gantry knows".into()
        } else {
            others.join(", ")
        }));
    }
    if identities.0.is_empty() {
        return Err(SopsError::NoIdentity);
    }
    for stanza in &stanzas {
        let Some(armored) = stanza.get("enc").and_then(Value::as_str) else {
            continue;
        };
        let reader = age::armor::ArmoredReader::new(armored.as_bytes());
        let Ok(decryptor) = age::Decryptor::new(reader) else {
            continue;
        };
        let tried = identities.0.iter().map(|i| i as &dyn age::Identity);
        if let Ok(mut stream) = decryptor.decrypt(tried) {
            let mut key = Vec::new();
            if stream.read_to_end(&mut key).is_ok() && key.len() == 32 {
                return Ok(key);
            }
        }
    }
    Err(SopsError::WrongIdentity {
        recipients: stanzas
            .iter()
            .filter_map(|s| s.get("recipient").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Opens `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`: plaintext and type.
fn open<'a>(key: &[u8], text: &'a str, aad: &[u8]) -> Result<(Vec<u8>, &'a str), String> {
    let inner = text
        .strip_prefix("ENC[AES256_GCM,")
        .and_then(|t| t.strip_suffix(']'))
        .ok_or("not an ENC[AES256_GCM,…] value")?;
    let mut parts = std::collections::BTreeMap::new();
    for field in inner.split(',') {
        let (name, value) = field.split_once(':').ok_or("a field without a name")?;
        parts.insert(name, value);
    }
    let b64 = |name: &str| -> Result<Vec<u8>, String> {
        let text = parts.get(name).ok_or(format!("no `{name}`"))?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("`{name}`: {e}"))
    };
    let (mut data, iv, tag) = (b64("data")?, b64("iv")?, b64("tag")?);
    if iv.len() != 32 || tag.len() != 16 {
        return Err("an IV or tag of the wrong size".into());
    }
    data.extend_from_slice(&tag);
    let cipher = Cipher::new_from_slice(key).map_err(|e| e.to_string())?;
    let plain = cipher
        .decrypt(
            aes_gcm::Nonce::<U32>::from_slice(&iv),
            Payload { msg: &data, aad },
        )
        .map_err(|_| "it does not decrypt under this file's key (tampered?)".to_string())?;
    Ok((plain, parts.get("type").copied().unwrap_or("str")))
}

struct Walk<'k> {
    key: &'k [u8],
    hash: Sha512,
    encrypted: Vec<String>,
    mac_only_encrypted: bool,
    rule: Rule,
}

impl Walk<'_> {
    fn value(
        &mut self,
        value: &mut Value,
        path: &mut Vec<String>,
        pointer: &str,
    ) -> Result<(), SopsError> {
        match value {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    path.push(k.clone());
                    let child_pointer =
                        format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1"));
                    self.value(child, path, &child_pointer)?;
                    path.pop();
                }
            }
            Value::Array(items) => {
                // A comment inside a YAML sequence is kept by sops as an
                // item of type `comment`; comments are not in the MAC, and
                // decrypted they are comments again, not values. Each must
                // still open under its path, as sops requires.
                let aad = format!("{}:", path.join(":"));
                for (i, item) in items.iter().enumerate() {
                    if let Some(text) = item.as_str().filter(|t| is_comment(t)) {
                        open(self.key, text, aad.as_bytes())
                            .map_err(|why| SopsError::value(&format!("{pointer}/{i}"), why))?;
                    }
                }
                items.retain(|item| !item.as_str().is_some_and(is_comment));
                for (i, child) in items.iter_mut().enumerate() {
                    self.value(child, path, &format!("{pointer}/{i}"))?;
                }
            }
            Value::String(text) if text.starts_with("ENC[AES256_GCM,") => {
                let aad = format!("{}:", path.join(":"));
                let fail = |why: String| SopsError::value(pointer, why);
                if !self.rule.encrypts(path) {
                    return Err(fail(
                        "encrypted where the file's rules leave values in clear".into(),
                    ));
                }
                let (plain, kind) = open(self.key, text, aad.as_bytes()).map_err(fail)?;
                self.hash.update(&plain);
                let plain = String::from_utf8(plain).map_err(|_| fail("not UTF-8".into()))?;
                *value = typed(&plain, kind).map_err(fail)?;
                self.encrypted.push(pointer.to_string());
            }
            other => {
                let blank = other.is_null() || other.as_str() == Some("");
                if !blank && self.rule.encrypts(path) {
                    // sops would try to decrypt it and fail: a value added
                    // in clear after sops wrote the file.
                    return Err(SopsError::value(
                        pointer,
                        "in clear where the file's rules encrypt every value (added after sops wrote it?)".into(),
                    ));
                }
                if !self.mac_only_encrypted {
                    self.hash.update(plain_bytes(other));
                }
            }
        }
        Ok(())
    }
}

fn is_comment(text: &str) -> bool {
    text.starts_with("ENC[AES256_GCM,") && text.ends_with(",type:comment]")
}

/// A decrypted value as its `type` says. The type is outside what the
/// cipher authenticates, so an error never quotes the plaintext.
fn typed(plain: &str, kind: &str) -> Result<Value, String> {
    let wrong = || format!("its plaintext is not of its type `{kind}` (tampered?)");
    Ok(match kind {
        "str" | "bytes" => Value::String(plain.to_string()),
        "int" => Value::from(plain.parse::<i64>().map_err(|_| wrong())?),
        "float" => match plain.parse::<i64>() {
            Ok(i) => Value::from(i),
            Err(_) => plain
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(wrong)?,
        },
        "bool" => Value::Bool(match plain {
            "True" | "true" => true,
            "False" | "false" => false,
            _ => return Err(wrong()),
        }),
        other => return Err(format!("unknown type `{other}`")),
    })
}

/// How sops hashes a value left in clear.
fn plain_bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Bool(true) => b"True".to_vec(),
        Value::Bool(false) => b"False".to_vec(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string().into_bytes(),
            (None, Some(f)) => format!("{f}").into_bytes(),
            _ => n.to_string().into_bytes(),
        },
        Value::Null => Vec::new(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/sops")
                .join(name),
        )
        .unwrap()
    }

    fn doc(name: &str) -> Value {
        serde_json::from_str(&fixture(name)).unwrap()
    }

    fn identity(name: &str) -> Identities {
        Identities::parse(&fixture(name)).unwrap()
    }

    #[test]
    fn files_sops_wrote_decrypt_to_what_was_encrypted() {
        let plain: Value = doc("plain.json");
        for (file, key) in [
            ("encrypted.json", "test-identity.txt"),
            ("two-recipients-regex.json", "test-identity.txt"),
            ("two-recipients-regex.json", "second-identity.txt"),
        ] {
            let encrypted = doc(file);
            assert!(is_sops(&encrypted));
            let out = decrypt(&encrypted, &identity(key)).unwrap();
            assert_eq!(out.value, plain, "{file} with {key}");
            assert!(
                out.encrypted.contains(&"/jwt_secret_key".to_string()),
                "{file}"
            );
        }
        // With encrypted_regex only the matching keys were encrypted.
        let regex = decrypt(
            &doc("two-recipients-regex.json"),
            &identity("test-identity.txt"),
        )
        .unwrap();
        assert_eq!(regex.encrypted, vec!["/jwt_secret_key", "/nested/password"]);
        let mixed = decrypt(&doc("mixed.json"), &identity("test-identity.txt")).unwrap();
        assert_eq!(mixed.value, doc("mixed.plain.json"));
        assert_eq!(mixed.encrypted, vec!["/api_key"]);
        assert!(!is_sops(&plain));
    }

    #[test]
    fn a_dotenv_file_sops_wrote_decrypts_with_its_flattened_metadata() {
        let path = std::path::Path::new("app.env");
        let flat = crate::configdeploy::render::parse(
            &fixture("app.env"),
            crate::configdeploy::render::Format::Dotenv,
            path,
        )
        .unwrap();
        assert!(is_sops(&flat), "{flat:#}");
        let out = decrypt(&flat, &identity("test-identity.txt")).unwrap();
        let plain = crate::configdeploy::render::parse(
            &fixture("app.plain.env"),
            crate::configdeploy::render::Format::Dotenv,
            path,
        )
        .unwrap();
        assert_eq!(out.value, plain);
        assert_eq!(out.encrypted.len(), 3);
        let mut changed = flat.clone();
        changed["RETRIES"] = changed["API_PASSWORD"].clone();
        assert!(decrypt(&changed, &identity("test-identity.txt")).is_err());
    }

    fn yaml(name: &str) -> Value {
        let path = std::path::Path::new(name);
        crate::configdeploy::render::parse(
            &fixture(name),
            crate::configdeploy::render::Format::Yaml,
            path,
        )
        .unwrap()
    }

    #[test]
    fn yaml_files_sops_wrote_decrypt_without_their_comments() {
        let plain = yaml("plain.yaml");
        for (file, key) in [
            ("encrypted.yaml", "test-identity.txt"),
            ("two-recipients-regex.yaml", "test-identity.txt"),
            ("two-recipients-regex.yaml", "second-identity.txt"),
        ] {
            let encrypted = yaml(file);
            assert!(is_sops(&encrypted), "{file}");
            let out = decrypt(&encrypted, &identity(key)).unwrap();
            assert_eq!(out.value, plain, "{file} with {key}");
        }
        let all = decrypt(&yaml("encrypted.yaml"), &identity("test-identity.txt")).unwrap();
        assert!(
            all.encrypted.contains(&"/nested/hosts/1".to_string())
                && all.encrypted.contains(&"/ratio".to_string()),
            "{:?}",
            all.encrypted
        );
        let regex = decrypt(
            &yaml("two-recipients-regex.yaml"),
            &identity("test-identity.txt"),
        )
        .unwrap();
        assert_eq!(regex.encrypted, vec!["/jwt_secret_key", "/nested/password"]);
        // A value left in clear is under the MAC.
        let mut changed = yaml("two-recipients-regex.yaml");
        changed["token_expiry"] = Value::from(3601);
        let err = decrypt(&changed, &identity("test-identity.txt")).unwrap_err();
        assert!(matches!(err, SopsError::Tampered), "{err}");
    }

    #[test]
    fn what_sops_itself_would_refuse_is_refused() {
        let key = identity("test-identity.txt");
        // A key added in clear with `mac_only_encrypted` switched on (the
        // metadata is outside the MAC): the rules encrypt every value.
        let mut added = doc("encrypted.json");
        added["sops"]["mac_only_encrypted"] = Value::Bool(true);
        added["rate_limiting_enabled"] = Value::Bool(false);
        let err = decrypt(&added, &key).unwrap_err().to_string();
        assert!(err.contains("in clear where"), "{err}");
        // A value added in clear under encrypted_regex's rule too.
        let mut added = doc("two-recipients-regex.json");
        added["nested"]["password"] = Value::String("swapped-in".into());
        let err = decrypt(&added, &key).unwrap_err().to_string();
        assert!(
            err.contains("/nested/password") && err.contains("in clear"),
            "{err}"
        );
        // A type changed (outside the cipher's tag): named, never quoted.
        let mut retyped = doc("encrypted.json");
        let text = retyped["jwt_secret_key"]
            .as_str()
            .unwrap()
            .replace("type:str", "type:bool");
        retyped["jwt_secret_key"] = Value::String(text);
        let err = decrypt(&retyped, &key).unwrap_err().to_string();
        let secret = doc("plain.json")["jwt_secret_key"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(err.contains("not of its type"), "{err}");
        assert!(!err.contains(&secret), "the plaintext in the error: {err}");
        // A forged comment item in a YAML sequence.
        let mut forged = yaml("encrypted.yaml");
        let real = forged["nested"]["hosts"][0].as_str().unwrap().to_string();
        let fake = real.replace("type:str]", "type:comment]");
        forged["nested"]["hosts"]
            .as_array_mut()
            .unwrap()
            .push(Value::String(fake.replace("data:", "data:AA")));
        assert!(decrypt(&forged, &key).is_err());
        // `sops` metadata without a MAC is not a file to deploy as it is.
        let mut cut = doc("encrypted.json");
        cut["sops"].as_object_mut().unwrap().remove("mac");
        assert!(is_sops(&cut));
        let err = decrypt(&cut, &key).unwrap_err().to_string();
        assert!(err.contains("mac"), "{err}");
    }

    #[test]
    fn a_wrong_key_a_missing_key_and_a_tampered_file_are_refused() {
        let encrypted = doc("encrypted.json");
        let err = decrypt(&encrypted, &identity("second-identity.txt")).unwrap_err();
        assert!(matches!(err, SopsError::WrongIdentity { .. }), "{err}");
        let err = decrypt(&encrypted, &Identities(Vec::new())).unwrap_err();
        assert!(matches!(err, SopsError::NoIdentity), "{err}");
        // A value in clear changed: the MAC says so.
        let mut changed = doc("mixed.json");
        changed["port_plain"] = Value::from(9090);
        let err = decrypt(&changed, &identity("test-identity.txt")).unwrap_err();
        assert!(matches!(err, SopsError::Tampered), "{err}");
        // Two encrypted values swapped: each refuses its new path.
        let mut swapped = doc("encrypted.json");
        let a = swapped["jwt_secret_key"].clone();
        swapped["jwt_secret_key"] = swapped["nested"]["password"].clone();
        swapped["nested"]["password"] = a;
        let err = decrypt(&swapped, &identity("test-identity.txt")).unwrap_err();
        assert!(matches!(err, SopsError::Value { .. }), "{err}");
        // KMS only: named.
        let mut kms = doc("encrypted.json");
        kms["sops"]["age"] = Value::Array(Vec::new());
        kms["sops"]["kms"] = serde_json::json!([{"arn": "arn:aws:kms:x"}]);
        let err = decrypt(&kms, &identity("test-identity.txt")).unwrap_err();
        assert!(err.to_string().contains("kms"), "{err}");
    }
}
