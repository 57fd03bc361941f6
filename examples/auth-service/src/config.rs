//! The deployed `config/auth.json` as the service reads it: the JWT key set
//! (or the single legacy `jwt_secret_key`), token lifetimes, rate limits,
//! and where to report auth events. Unknown keys are allowed (the same
//! file may carry settings for other services); known ones must be right.

use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
pub struct AuthConfig {
    /// One HS256 secret, kid `default`: the original spec's shape.
    #[serde(default)]
    pub jwt_secret_key: Option<String>,
    /// A key set: one `active` signing key, others that still verify.
    #[serde(default)]
    pub jwt_keys: Vec<KeyConfig>,
    #[serde(default = "default_issuer")]
    pub jwt_issuer: String,
    /// How long clients may cache `/.well-known/jwks.json`
    /// (`Cache-Control: max-age`); gantry's key rotation waits it out.
    #[serde(default = "default_jwks_max_age")]
    pub jwks_max_age_seconds: u64,
    #[serde(default = "default_expiry")]
    pub token_expiry_minutes: u64,
    /// Overrides `token_expiry_minutes` when set (short-lived tokens, for
    /// tests of key rotation).
    #[serde(default)]
    pub token_expiry_seconds: Option<u64>,
    #[serde(default = "default_refresh_days")]
    pub refresh_token_expiry_days: u64,
    #[serde(default)]
    pub rate_limiting_enabled: bool,
    #[serde(default = "default_rate")]
    pub rate_limit_per_minute: u32,
    /// gantry's monitor: auth events are POSTed there in batches.
    #[serde(default)]
    pub monitor: Option<MonitorConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub kid: String,
    #[serde(default = "default_alg")]
    pub alg: String,
    /// HS256: the shared secret.
    #[serde(default)]
    pub secret: Option<String>,
    /// EdDSA / RS256: the private key (PKCS#8 PEM), for the signing key.
    #[serde(default)]
    pub private_key_pem: Option<String>,
    /// EdDSA / RS256: the public key (SPKI PEM), to verify and publish.
    #[serde(default)]
    pub public_key_pem: Option<String>,
    /// `active` (signs and verifies), `verify` (verifies only), `retired`.
    #[serde(default = "default_status")]
    pub status: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    /// `http://127.0.0.1:9464/v1/events`.
    pub url: String,
    /// Bearer token the monitor expects.
    #[serde(default)]
    pub token: Option<String>,
}

fn default_issuer() -> String {
    "gantry-example-auth".into()
}
fn default_jwks_max_age() -> u64 {
    300
}
fn default_expiry() -> u64 {
    60
}
fn default_refresh_days() -> u64 {
    7
}
fn default_rate() -> u32 {
    600
}
fn default_alg() -> String {
    "HS256".into()
}
fn default_status() -> String {
    "active".into()
}

impl AuthConfig {
    pub fn read(path: &Path) -> anyhow::Result<AuthConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let config: AuthConfig =
            serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if config.token_expiry_minutes == 0 {
            anyhow::bail!("{}: token_expiry_minutes must be positive", path.display());
        }
        Ok(config)
    }
}
