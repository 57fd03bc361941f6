//! `auth-config-validator`: the original system's security advice, as
//! findings on a rendered auth config.
//!
//! - The JWT secret (`jwt_secret_key`, `jwt_secret` or `jwt.secret_key`):
//!   outside development at least 32 bytes and not a known placeholder.
//! - `token_expiry_minutes`: positive everywhere; at most 1,440 (a day)
//!   outside development, with a warning above 240.
//! - `rate_limiting_enabled`: on outside development.
//! - No dev-mode or auth bypass switch (`dev_mode`, `auth_bypass`, …) set
//!   outside development, at any depth.
//! - A key set (`jwt_keys`): exactly one `active` key, no kid twice, every
//!   status `active`, `verify` or `retired`, no retired key that still
//!   carries signing material; each HS256 secret as the JWT secret above.
//! - No secret (a key naming a secret, password, private key, API key or
//!   token) written in clear text in the base file or the environment's
//!   overlay file: it belongs encrypted
//!   with sops or behind a reference (`${env:…}`, `${file:…}`) — a warning,
//!   an error in production. The host says where each value came from
//!   (`provenance`).
//!
//! A finding never repeats the secret's value.

use gantry_plugin::provenance::{Origin, origin_of};
use gantry_plugin::{ConfigValidator, Finding};
use serde_json::Value;

struct AuthConfigValidator;

impl ConfigValidator for AuthConfigValidator {
    fn validate(environment: String, _file_name: String, json: String) -> Vec<Finding> {
        let doc: Value = match serde_json::from_str(&json) {
            Ok(doc) => doc,
            Err(e) => return vec![Finding::error("", format!("not JSON: {e}"))],
        };
        let strict = !is_development(&environment);
        let mut findings = Vec::new();
        check_secret(&doc, strict, &mut findings);
        check_key_set(&doc, strict, &mut findings);
        check_expiry(&doc, strict, &mut findings);
        find_clear_secrets(&doc, "", &environment, &mut findings);
        if strict {
            match doc.get("rate_limiting_enabled") {
                Some(Value::Bool(true)) => {}
                Some(_) => findings.push(Finding::error(
                    "/rate_limiting_enabled",
                    format!("rate limiting must be on in {environment}"),
                )),
                None if doc.get("jwt_secret_key").is_some() => findings.push(Finding::error(
                    "/rate_limiting_enabled",
                    format!("rate limiting must be on in {environment}; set rate_limiting_enabled to true"),
                )),
                None => {}
            }
            find_bypasses(&doc, "", &environment, &mut findings);
        }
        findings
    }
}

gantry_plugin::config_validator!(AuthConfigValidator);

fn is_development(environment: &str) -> bool {
    matches!(
        environment.to_ascii_lowercase().as_str(),
        "development" | "dev" | "local" | "test"
    )
}

/// Values shipped in examples and defaults; never a real secret.
const PLACEHOLDERS: &[&str] = &[
    "change-me",
    "changeme",
    "change_me",
    "your-secret-key",
    "your_secret_key",
    "replace-me",
];
const EXACT_PLACEHOLDERS: &[&str] = &[
    "dev-secret-key",
    "secure-production-key",
    "secret",
    "password",
    "jwt-secret",
    "test",
];

fn check_secret(doc: &Value, strict: bool, findings: &mut Vec<Finding>) {
    let candidates = [
        ("/jwt_secret_key", doc.get("jwt_secret_key")),
        ("/jwt_secret", doc.get("jwt_secret")),
        ("/jwt/secret_key", doc.pointer("/jwt/secret_key")),
    ];
    for (path, value) in candidates {
        let Some(value) = value else { continue };
        let Some(secret) = value.as_str() else {
            findings.push(Finding::error(path, "the JWT secret must be a string"));
            continue;
        };
        let lower = secret.to_ascii_lowercase();
        let placeholder = EXACT_PLACEHOLDERS.contains(&lower.as_str())
            || PLACEHOLDERS.iter().any(|p| lower.starts_with(p));
        let one_char = secret.chars().all(|c| secret.starts_with(c));
        let severity_error = strict;
        let mut problem = |message: String| {
            findings.push(if severity_error {
                Finding::error(path, message)
            } else {
                Finding::warning(path, message)
            })
        };
        if placeholder {
            problem("the JWT secret is a known placeholder; generate a random one (e.g. 48 bytes, base64)".into());
        } else if secret.len() < 32 {
            problem(format!(
                "the JWT secret is {} bytes; use at least 32",
                secret.len()
            ));
        } else if one_char {
            problem("the JWT secret repeats a single character".into());
        }
    }
}

fn check_key_set(doc: &Value, strict: bool, findings: &mut Vec<Finding>) {
    let Some(keys) = doc.get("jwt_keys") else {
        return;
    };
    let Some(keys) = keys.as_array() else {
        findings.push(Finding::error(
            "/jwt_keys",
            "the key set must be a list of keys",
        ));
        return;
    };
    let mut active = 0;
    let mut kids = std::collections::BTreeSet::new();
    for (i, key) in keys.iter().enumerate() {
        let path = format!("/jwt_keys/{i}");
        let kid = key["kid"].as_str().unwrap_or_default();
        if kid.is_empty() {
            findings.push(Finding::error(&path, "every key needs a `kid`"));
        } else if !kids.insert(kid.to_string()) {
            findings.push(Finding::error(
                &path,
                format!("key id `{kid}` appears twice"),
            ));
        }
        let status = key["status"].as_str().unwrap_or("active");
        match status {
            "active" => active += 1,
            "verify" => {}
            "retired" => {
                if key.get("secret").is_some() || key.get("private_key_pem").is_some() {
                    findings.push(Finding::error(
                        &path,
                        format!("key `{kid}` is retired but still carries signing material; remove its secret or private key"),
                    ));
                }
            }
            other => findings.push(Finding::error(
                &path,
                format!("key `{kid}`: status `{other}` is not active, verify or retired"),
            )),
        }
        if key["alg"].as_str().unwrap_or("HS256") == "HS256"
            && let Some(secret) = key["secret"].as_str()
        {
            let doc = serde_json::json!({ "jwt_secret": secret });
            let mut inner = Vec::new();
            check_secret(&doc, strict, &mut inner);
            for f in inner {
                findings.push(Finding {
                    path: format!("{path}/secret"),
                    ..f
                });
            }
        }
    }
    if active != 1 {
        findings.push(Finding::error(
            "/jwt_keys",
            format!("the key set needs exactly one active (signing) key, has {active}"),
        ));
    }
}

fn check_expiry(doc: &Value, strict: bool, findings: &mut Vec<Finding>) {
    let path = "/token_expiry_minutes";
    let Some(value) = doc.get("token_expiry_minutes") else {
        return;
    };
    let Some(minutes) = value.as_f64() else {
        findings.push(Finding::error(
            path,
            "token expiry must be a number of minutes",
        ));
        return;
    };
    if minutes <= 0.0 {
        findings.push(Finding::error(path, "token expiry must be positive"));
    } else if strict && minutes > 1440.0 {
        findings.push(Finding::error(
            path,
            format!("tokens live {minutes} minutes; at most 1440 (a day) outside development"),
        ));
    } else if strict && minutes > 240.0 {
        findings.push(Finding::warning(
            path,
            format!("tokens live {minutes} minutes; consider 60 or less with refresh tokens"),
        ));
    }
}

/// Keys that switch authentication off or into a development mode.
const BYPASSES: &[&str] = &[
    "dev_mode",
    "debug_mode",
    "auth_bypass",
    "bypass_auth",
    "skip_auth",
    "disable_auth",
    "auth_disabled",
    "allow_insecure",
    "insecure",
];

fn find_bypasses(value: &Value, path: &str, environment: &str, findings: &mut Vec<Finding>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_path = format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"));
                if BYPASSES.contains(&key.to_ascii_lowercase().as_str())
                    && child == &Value::Bool(true)
                {
                    findings.push(Finding::error(&child_path, format!("`{key}` is on; only development may bypass authentication, not {environment}")));
                }
                find_bypasses(child, &child_path, environment, findings);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                find_bypasses(child, &format!("{path}/{i}"), environment, findings);
            }
        }
        _ => {}
    }
}

/// A key whose value is a secret (`db_password`, `apiToken`,
/// `private_key`), as the host masks them.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace('-', "_");
    [
        "secret",
        "password",
        "passwd",
        "private_key",
        "privatekey",
        "api_key",
        "apikey",
    ]
    .iter()
    .any(|word| key.contains(word))
        || key.ends_with("token")
}

fn find_clear_secrets(value: &Value, path: &str, environment: &str, findings: &mut Vec<Finding>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_path = format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"));
                if is_secret_key(key)
                    && child.as_str().is_some_and(|s| !s.is_empty())
                    && let Some(file) = match origin_of(&child_path) {
                        Some(Origin::BaseFile) => Some("the base file"),
                        Some(Origin::OverlayFile) => Some("the environment's overlay file"),
                        _ => None,
                    }
                {
                    let message = format!(
                        "a secret in clear text in {file}; encrypt it with sops or make it a reference (${{env:…}}, ${{file:…}})"
                    );
                    findings.push(if environment == "production" {
                        Finding::error(&child_path, &message)
                    } else {
                        Finding::warning(&child_path, &message)
                    });
                }
                find_clear_secrets(child, &child_path, environment, findings);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                find_clear_secrets(child, &format!("{path}/{i}"), environment, findings);
            }
        }
        _ => {}
    }
}
