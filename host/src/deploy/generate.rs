//! New signing keys for a rotation, of the algorithm the key set uses:
//! HS256 (32 random bytes, hex), EdDSA (Ed25519), ES256 (P-256) and RS256
//! (2048-bit RSA). The private half is written 0600 as a file the key
//! refers to (`${file:…}`: PKCS#8 PEM for the asymmetric ones); the public
//! half (SPKI PEM) is no secret and rides in the key set, so the service
//! can publish it in its JWKS. A key is named in output by its kid and
//! fingerprint only.

use super::keys::{Key, fingerprint, reference, write_private};
use base64::Engine as _;
use std::path::Path;

/// What a rotation can make.
pub const ALGORITHMS: [&str; 4] = ["HS256", "EdDSA", "ES256", "RS256"];

/// DER prefixes of the SubjectPublicKeyInfo of an Ed25519 key and an
/// uncompressed P-256 point; the key's bytes follow.
const ED25519_SPKI: &[u8] = &[
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
const P256_SPKI: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// `der` as PEM under `label`.
pub fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// (PKCS#8 private PEM, SPKI public PEM) of a new `alg` key pair.
fn key_pair(alg: &str) -> Result<(String, String), String> {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let fail = |e: &dyn std::fmt::Display| format!("cannot make an {alg} key: {e}");
    match alg {
        "EdDSA" => {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| fail(&e))?;
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| fail(&e))?;
            let spki = [ED25519_SPKI, pair.public_key().as_ref()].concat();
            Ok((pem("PRIVATE KEY", pkcs8.as_ref()), pem("PUBLIC KEY", &spki)))
        }
        "ES256" => {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|e| fail(&e))?;
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .map_err(|e| fail(&e))?;
            let spki = [P256_SPKI, pair.public_key().as_ref()].concat();
            Ok((pem("PRIVATE KEY", pkcs8.as_ref()), pem("PUBLIC KEY", &spki)))
        }
        "RS256" => {
            use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
            let private =
                rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).map_err(|e| fail(&e))?;
            let public = rsa::RsaPublicKey::from(&private);
            Ok((
                private
                    .to_pkcs8_pem(LineEnding::LF)
                    .map_err(|e| fail(&e))?
                    .to_string(),
                public
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(|e| fail(&e))?,
            ))
        }
        other => Err(format!(
            "no key of algorithm {other:?}: {}",
            ALGORITHMS.join(", ")
        )),
    }
}

/// A new verify-only key `kid` of `alg`, its private material written
/// 0600 under `dir` and referred to relative to `base`; its fingerprint
/// (of the secret for HS256, of the public key otherwise).
pub fn generate(alg: &str, kid: &str, dir: &Path, base: &Path) -> Result<(Key, String), String> {
    let write = |path: &Path, text: &str| {
        write_private(path, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    if alg == "HS256" {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| e.to_string())?;
        let material = hex::encode(bytes);
        let path = dir.join(format!("{kid}.secret"));
        write(&path, &material)?;
        return Ok((
            Key {
                kid: kid.to_string(),
                alg: alg.into(),
                secret: Some(reference(&path, base)),
                private_key_pem: None,
                public_key_pem: None,
                status: "verify".into(),
            },
            fingerprint(&material),
        ));
    }
    let (private, public) = key_pair(alg)?;
    let path = dir.join(format!("{kid}.private"));
    write(&path, &private)?;
    Ok((
        Key {
            kid: kid.to_string(),
            alg: alg.into(),
            secret: None,
            private_key_pem: Some(reference(&path, base)),
            public_key_pem: Some(public.clone()),
            status: "verify".into(),
        },
        fingerprint(&public),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_algorithm_makes_a_private_file_and_a_public_key() {
        let dir = tempfile::tempdir().unwrap();
        for alg in ALGORITHMS {
            let kid = format!("k-{alg}");
            let (key, print) = generate(alg, &kid, dir.path(), dir.path()).unwrap();
            assert_eq!(print.len(), 16);
            assert_eq!(key.alg, alg);
            assert_eq!(key.status, "verify");
            let field = if alg == "HS256" {
                &key.secret
            } else {
                &key.private_key_pem
            };
            let reference = field.as_deref().unwrap();
            assert!(reference.starts_with("${file:"), "{reference}");
            let material = crate::secrets::resolve(reference, dir.path()).unwrap();
            use std::os::unix::fs::PermissionsExt;
            let file = std::fs::read_dir(dir.path())
                .unwrap()
                .flatten()
                .find(|e| e.file_name().to_string_lossy().starts_with(&kid))
                .unwrap();
            assert_eq!(file.metadata().unwrap().permissions().mode() & 0o777, 0o600);
            if alg == "HS256" {
                assert_eq!(material.len(), 64);
                assert!(key.public_key_pem.is_none());
            } else {
                assert!(material.starts_with("-----BEGIN PRIVATE KEY-----"), "{alg}");
                let public = key.public_key_pem.unwrap();
                assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"), "{alg}");
                assert!(!public.contains(material.lines().nth(1).unwrap()));
            }
        }
        assert!(generate("HS512", "x", dir.path(), dir.path()).is_err());
    }
}
