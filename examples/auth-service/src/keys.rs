//! The JWT key set: one active signing key and any number of keys that
//! still verify, each with a `kid` that tokens carry in their header.
//! HS256 keys are shared secrets; EdDSA (Ed25519), ES256 (P-256) and
//! RS256 keys publish their public half at `/.well-known/jwks.json` with
//! its `kid`, `alg` and `use` (every key not retired: the signing key and
//! those that still verify). Key material never leaves this module except
//! as signatures and public keys.

use crate::config::{AuthConfig, KeyConfig};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;

pub struct KeySet {
    signing: (String, Algorithm, EncodingKey),
    verifying: HashMap<String, (Algorithm, DecodingKey)>,
    jwks: Value,
    jwks_max_age: u64,
    issuer: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub tenant: String,
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum VerifyError {
    Expired,
    Invalid(String),
}

fn algorithm(alg: &str) -> anyhow::Result<Algorithm> {
    Ok(match alg {
        "HS256" => Algorithm::HS256,
        "EdDSA" => Algorithm::EdDSA,
        "ES256" => Algorithm::ES256,
        "RS256" => Algorithm::RS256,
        other => anyhow::bail!("unsupported alg {other:?} (HS256, EdDSA, ES256 or RS256)"),
    })
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The public JWK of an asymmetric key (its SPKI PEM), and the key that
/// verifies with it.
fn public_jwk(kid: &str, alg: Algorithm, public: &str) -> anyhow::Result<(Value, DecodingKey)> {
    let der = pem_der(public)?;
    Ok(match alg {
        Algorithm::EdDSA => {
            // An Ed25519 SPKI is a fixed prefix and the 32-byte key.
            let raw = &der[der.len().saturating_sub(32)..];
            (
                json!({"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid, "x": b64(raw)}),
                DecodingKey::from_ed_pem(public.as_bytes())?,
            )
        }
        Algorithm::ES256 => {
            // A P-256 SPKI ends with the uncompressed point 04 || x || y.
            if der.len() < 65 || der[der.len() - 65] != 4 {
                anyhow::bail!("key {kid}: not an uncompressed P-256 public key");
            }
            let point = &der[der.len() - 64..];
            (
                json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                       "x": b64(&point[..32]), "y": b64(&point[32..])}),
                DecodingKey::from_ec_pem(public.as_bytes())?,
            )
        }
        Algorithm::RS256 => {
            use rsa::pkcs8::DecodePublicKey;
            use rsa::traits::PublicKeyParts;
            let key = rsa::RsaPublicKey::from_public_key_pem(public)
                .map_err(|e| anyhow::anyhow!("key {kid}: {e}"))?;
            if key.n().bits() < 2048 {
                anyhow::bail!("key {kid}: an RS256 key needs 2048 bits or more");
            }
            (
                json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                       "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be())}),
                DecodingKey::from_rsa_pem(public.as_bytes())?,
            )
        }
        _ => anyhow::bail!("key {kid}: not an asymmetric algorithm"),
    })
}

/// The DER body of a PEM block.
fn pem_der(pem: &str) -> anyhow::Result<Vec<u8>> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("");
    Ok(base64::engine::general_purpose::STANDARD.decode(body.trim())?)
}

impl KeySet {
    pub fn from_config(config: &AuthConfig) -> anyhow::Result<KeySet> {
        let mut keys = config.jwt_keys.clone();
        if keys.is_empty() {
            let Some(secret) = &config.jwt_secret_key else {
                anyhow::bail!("auth.json has neither jwt_keys nor jwt_secret_key");
            };
            keys.push(KeyConfig {
                kid: "default".into(),
                alg: "HS256".into(),
                secret: Some(secret.clone()),
                private_key_pem: None,
                public_key_pem: None,
                status: "active".into(),
            });
        }
        let active: Vec<&KeyConfig> = keys.iter().filter(|k| k.status == "active").collect();
        if active.len() != 1 {
            anyhow::bail!(
                "the key set needs exactly one active key, has {}",
                active.len()
            );
        }
        let mut verifying = HashMap::new();
        let mut published = Vec::new();
        let mut signing = None;
        for key in &keys {
            if !matches!(key.status.as_str(), "active" | "verify" | "retired") {
                anyhow::bail!("key {}: status must be active, verify or retired", key.kid);
            }
            if key.status == "retired" {
                continue;
            }
            if verifying.contains_key(&key.kid) {
                anyhow::bail!("key id {} appears twice", key.kid);
            }
            let alg = algorithm(&key.alg)?;
            let decoding = match alg {
                Algorithm::HS256 => {
                    let secret = key
                        .secret
                        .as_deref()
                        .ok_or_else(|| anyhow::anyhow!("key {}: HS256 needs `secret`", key.kid))?;
                    if key.status == "active" {
                        signing = Some((
                            key.kid.clone(),
                            alg,
                            EncodingKey::from_secret(secret.as_bytes()),
                        ));
                    }
                    DecodingKey::from_secret(secret.as_bytes())
                }
                asymmetric => {
                    let public = key.public_key_pem.as_deref().ok_or_else(|| {
                        anyhow::anyhow!("key {}: {} needs `public_key_pem`", key.kid, key.alg)
                    })?;
                    if key.status == "active" {
                        let private = key.private_key_pem.as_deref().ok_or_else(|| {
                            anyhow::anyhow!(
                                "key {}: the active key needs `private_key_pem`",
                                key.kid
                            )
                        })?;
                        let encoding = match asymmetric {
                            Algorithm::EdDSA => EncodingKey::from_ed_pem(private.as_bytes())?,
                            Algorithm::ES256 => EncodingKey::from_ec_pem(private.as_bytes())?,
                            _ => EncodingKey::from_rsa_pem(private.as_bytes())?,
                        };
                        signing = Some((key.kid.clone(), alg, encoding));
                    }
                    let (jwk, decoding) = public_jwk(&key.kid, asymmetric, public)?;
                    published.push(jwk);
                    decoding
                }
            };
            verifying.insert(key.kid.clone(), (alg, decoding));
        }
        Ok(KeySet {
            signing: signing.expect("exactly one active key"),
            verifying,
            jwks: json!({ "keys": published }),
            jwks_max_age: config.jwks_max_age_seconds,
            issuer: config.jwt_issuer.clone(),
        })
    }

    pub fn active_kid(&self) -> &str {
        &self.signing.0
    }

    pub fn jwks(&self) -> &Value {
        &self.jwks
    }

    /// Seconds clients may cache the JWKS.
    pub fn jwks_max_age(&self) -> u64 {
        self.jwks_max_age
    }

    pub fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
        let (kid, alg, key) = &self.signing;
        let mut header = Header::new(*alg);
        header.kid = Some(kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, key)?)
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| VerifyError::Invalid(e.to_string()))?;
        let kid = header
            .kid
            .ok_or_else(|| VerifyError::Invalid("the token has no kid".into()))?;
        let (alg, key) = self
            .verifying
            .get(&kid)
            .ok_or_else(|| VerifyError::Invalid(format!("unknown kid {kid}")))?;
        if header.alg != *alg {
            return Err(VerifyError::Invalid(
                "algorithm does not match the key".into(),
            ));
        }
        let mut validation = Validation::new(*alg);
        validation.set_issuer(&[&self.issuer]);
        validation.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => VerifyError::Expired,
                _ => VerifyError::Invalid(e.to_string()),
            })
    }
}
