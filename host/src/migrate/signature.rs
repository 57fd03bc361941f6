//! Signatures on what the migration history keeps to run later.
//!
//! `gantry_migrations` keeps each migration's down script (and a WASM
//! step's component and manifest) so a rollback works after the file is
//! gone. Anyone who can write that table — a plugin that got past its
//! grant, another database user — could plant a script there for the next
//! rollback to run. So each row carries an HMAC under the installation key
//! over what a rollback would run, and a row whose signature does not
//! match is never run: `migrate status` names it.

use crate::store::InstallationKey;
use sha2::{Digest, Sha256};

/// What a row's signature covers: its identity and everything a rollback
/// would run from it.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    pub version: i64,
    pub name: &'a str,
    pub down_script: Option<&'a str>,
    pub down_no_transaction: bool,
    pub artifact: Option<&'a [u8]>,
    pub manifest: Option<&'a str>,
}

/// Whether a row's signature holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Signed under this installation's key, and unchanged.
    Valid,
    /// Changed since it was signed, or signed under another key.
    Invalid,
    /// Never signed (written by a migrator without the key). Not run
    /// either, but no sign of tampering.
    Unsigned,
}

impl Signed<'_> {
    /// Length-prefixed fields, so no two rows encode alike.
    fn encode(&self) -> Vec<u8> {
        fn field(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
            match bytes {
                None => out.extend_from_slice(&u64::MAX.to_be_bytes()),
                Some(bytes) => {
                    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
                    out.extend_from_slice(bytes);
                }
            }
        }
        let mut out = b"gantry-migration-row/v1\0".to_vec();
        out.extend_from_slice(&self.version.to_be_bytes());
        field(&mut out, Some(self.name.as_bytes()));
        field(&mut out, self.down_script.map(str::as_bytes));
        out.push(u8::from(self.down_no_transaction));
        let artifact = self.artifact.map(|a| Sha256::digest(a).to_vec());
        field(&mut out, artifact.as_deref());
        field(&mut out, self.manifest.map(str::as_bytes));
        out
    }

    pub fn sign(&self, key: &InstallationKey) -> String {
        key.of(&self.encode())
    }

    pub fn verify(&self, key: &InstallationKey, signature: Option<&str>) -> Verdict {
        match signature {
            Some(signature)
                if signature.starts_with("hmac-sha256:")
                    && key.matches(&self.encode(), signature) =>
            {
                Verdict::Valid
            }
            None => Verdict::Unsigned,
            Some(_) => Verdict::Invalid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_change_to_what_would_run_breaks_the_signature() {
        let dir = tempfile::tempdir().unwrap();
        let key = InstallationKey::open_or_create(dir.path()).unwrap();
        let row = Signed {
            version: 3,
            name: "add_index",
            down_script: Some("DROP INDEX users_email;"),
            down_no_transaction: false,
            artifact: None,
            manifest: None,
        };
        let signature = row.sign(&key);
        assert_eq!(row.verify(&key, Some(&signature)), Verdict::Valid);
        for changed in [
            Signed {
                down_script: Some("DROP TABLE users;"),
                ..row
            },
            Signed { version: 4, ..row },
            Signed {
                down_no_transaction: true,
                ..row
            },
            Signed {
                artifact: Some(b"\0asm"),
                ..row
            },
            Signed {
                manifest: Some("name = \"x\""),
                ..row
            },
            Signed {
                down_script: None,
                ..row
            },
        ] {
            assert_eq!(
                changed.verify(&key, Some(&signature)),
                Verdict::Invalid,
                "{changed:?}"
            );
        }
        assert_eq!(row.verify(&key, None), Verdict::Unsigned);
        // A plain sha256 (what the key also accepts for old config records)
        // is no signature here.
        let plain = hex::encode(Sha256::digest(row.encode()));
        assert_eq!(row.verify(&key, Some(&plain)), Verdict::Invalid);
        let other = InstallationKey::open_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        assert_eq!(row.verify(&other, Some(&signature)), Verdict::Invalid);
    }
}
