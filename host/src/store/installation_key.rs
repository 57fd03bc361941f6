//! The installation's key: 32 random bytes in `<backup_dir>/.hash-key`,
//! mode 0600, made on first use, and the HMAC-SHA256 values made with it.
//!
//! Two uses. The fingerprints the state store keeps of config files and
//! their backups: a plain sha256 of a file that holds a secret lets anyone
//! who can read the store guess a weak secret offline. And the signatures
//! on what the migration history keeps to run later (down scripts,
//! components, manifests), so a row rewritten by anyone without the key is
//! never run. Values are written `hmac-sha256:<hex>`; a bare hex value,
//! recorded before keys, is still checked as the plain sha256 it is.
//!
//! Never reads a key others may read or write.

use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

const PREFIX: &str = "hmac-sha256:";
const KEY_FILE: &str = ".hash-key";

/// Fingerprints under one installation's key.
#[derive(Clone)]
pub struct InstallationKey {
    key: [u8; 32],
}

impl std::fmt::Debug for InstallationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InstallationKey(..)")
    }
}

impl InstallationKey {
    /// Where the key of the backups under `backup_dir` lives.
    pub fn key_path(backup_dir: &Path) -> PathBuf {
        backup_dir.join(KEY_FILE)
    }

    /// Reads the key beside the backups, making it (0600, exclusively) when
    /// there is none yet.
    pub fn open_or_create(backup_dir: &Path) -> std::io::Result<InstallationKey> {
        super::private::dir(backup_dir)
            .map_err(|e| context(format!("create {}", backup_dir.display()), e))?;
        let path = Self::key_path(backup_dir);
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)
            .map_err(|e| std::io::Error::other(format!("read the system's random source: {e}")))?;
        if path.exists() {
            return Self::open(backup_dir);
        }
        // Written whole under a private name, then linked into place: a
        // second process sees no key or a whole one, and the first link wins.
        let tmp = backup_dir.join(format!("{KEY_FILE}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| context(format!("create {}", tmp.display()), e))?;
        file.write_all(&key)
            .and_then(|()| file.sync_all())
            .map_err(|e| context(format!("write {}", tmp.display()), e))?;
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                std::fs::File::open(backup_dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| context(format!("sync {}", backup_dir.display()), e))?;
                Ok(InstallationKey { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::open(backup_dir),
            Err(e) => Err(context(format!("create {}", path.display()), e)),
        }
    }

    /// Reads an existing key; refuses one that others may read or write.
    pub fn open(backup_dir: &Path) -> std::io::Result<InstallationKey> {
        let path = Self::key_path(backup_dir);
        let mut file = std::fs::File::open(&path)
            .map_err(|e| context(format!("open the hash key {}", path.display()), e))?;
        let meta = file
            .metadata()
            .map_err(|e| context(format!("stat {}", path.display()), e))?;
        if meta.permissions().mode() & 0o077 != 0 || meta.uid() != unsafe { libc::geteuid() } {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "use the installation key {}: it must be this user's and mode 0600",
                    path.display()
                ),
            ));
        }
        let mut key = [0u8; 32];
        file.read_exact(&mut key)
            .map_err(|e| context(format!("read {}", path.display()), e))?;
        Ok(InstallationKey { key })
    }

    /// The fingerprint of `bytes`.
    pub fn of(&self, bytes: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(bytes);
        format!("{PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Whether `bytes` are what `recorded` fingerprints (keyed, or a plain
    /// sha256 from before keys).
    pub fn matches(&self, bytes: &[u8], recorded: &str) -> bool {
        if recorded.starts_with(PREFIX) {
            self.of(bytes) == recorded
        } else {
            hex::encode(Sha256::digest(bytes)) == recorded
        }
    }
}

/// `e` with what gantry was doing, keeping its kind.
fn context(what: String, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = InstallationKey::open_or_create(dir.path()).unwrap();
        let b = InstallationKey::open_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(InstallationKey::key_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let print = a.of(b"jwt_secret_key=hunter2");
        assert_eq!(
            print,
            b.of(b"jwt_secret_key=hunter2"),
            "one key per installation"
        );
        assert!(print.starts_with(PREFIX));
        assert!(!print.contains(&hex::encode(Sha256::digest(b"jwt_secret_key=hunter2"))));
        assert!(a.matches(b"jwt_secret_key=hunter2", &print));
        assert!(!a.matches(b"jwt_secret_key=hunter3", &print));
        // Records from before keys still verify.
        assert!(a.matches(b"x", &hex::encode(Sha256::digest(b"x"))));
        let other = InstallationKey::open_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        assert_ne!(other.of(b"x"), a.of(b"x"));
    }

    #[test]
    fn a_readable_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        InstallationKey::open_or_create(dir.path()).unwrap();
        let path = InstallationKey::key_path(dir.path());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(InstallationKey::open(dir.path()).is_err());
    }
}
