//! Where a plugin's bytes and manifest come from: the built-ins embedded
//! in this binary, or a `NAME.wasm` with its `NAME.toml` on disk.

use super::error::LoadError;
use super::manifest::{Manifest, ManifestError};
use crate::identity::{self, Stamp};
use std::borrow::Cow;
use std::path::{Path, PathBuf};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Builtin,
    File(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Builtin => f.write_str("built-in"),
            Origin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A plugin not yet loaded: its bytes and its parsed manifest.
#[derive(Clone)]
pub struct PluginSource {
    pub origin: Origin,
    pub bytes: Cow<'static, [u8]>,
    pub manifest: Manifest,
    /// How the sha256 of `bytes` may be had without hashing them.
    /// Whoever replaces `bytes` sets this to `Provenance::Unknown`.
    pub provenance: Provenance,
}

/// Where a source's bytes came from, as far as their sha256 goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// Nothing is known: they are hashed.
    Unknown,
    /// Read from their file, which had this identity: the compile cache
    /// may remember their sha256 by it.
    File(Stamp),
    /// Embedded in this binary, whose build computed their sha256.
    Builtin(&'static str),
}

impl PluginSource {
    /// The names of the built-in plugins.
    pub fn builtin_names() -> impl Iterator<Item = &'static str> {
        embedded::BUILTINS.iter().map(|(name, ..)| *name)
    }

    /// The built-in a short name stands for (`webhook` → `webhook-notifier`,
    /// as receivers write it); such a name belongs to the built-in.
    pub fn builtin_alias(name: &str) -> Option<&'static str> {
        let full = format!("{name}-notifier");
        Self::builtin_names().find(|n| *n == full)
    }

    pub fn builtin(name: &str) -> Option<Result<PluginSource, LoadError>> {
        let (name, wasm, manifest, sha256) =
            embedded::BUILTINS.iter().find(|(n, ..)| *n == name)?;
        let path = PathBuf::from(format!("<built-in>/{name}.toml"));
        Some(
            Manifest::parse(manifest, &path)
                .map(|manifest| PluginSource {
                    origin: Origin::Builtin,
                    bytes: Cow::Borrowed(wasm),
                    manifest,
                    provenance: Provenance::Builtin(sha256),
                })
                .map_err(LoadError::from),
        )
    }

    /// Reads `wasm` and its manifest: `manifest` if given, else the
    /// `NAME.toml` beside it.
    pub fn from_path(wasm: &Path, manifest: Option<&Path>) -> Result<PluginSource, LoadError> {
        let manifest_path = match manifest {
            Some(path) => path.to_path_buf(),
            None => wasm.with_extension("toml"),
        };
        if !manifest_path.is_file() {
            return Err(LoadError::Manifest(ManifestError {
                path: manifest_path,
                line_col: None,
                message: format!(
                    "no manifest for {}; every plugin needs one (name, kind, version, capabilities)",
                    wasm.display()
                ),
            }));
        }
        let manifest = Manifest::read(&manifest_path)?;
        // `read_to_end` sizes its buffer from the file, fallibly: a huge
        // file is an error, not an abort.
        let (bytes, stamp) = identity::read(wasm, |file| {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(file, &mut bytes).map(|_| bytes)
        })
        .map_err(|source| LoadError::Read {
            plugin: manifest.name.clone(),
            path: wasm.to_path_buf(),
            source,
        })?;
        Ok(PluginSource {
            origin: Origin::File(wasm.to_path_buf()),
            bytes: Cow::Owned(bytes),
            manifest,
            provenance: Provenance::File(stamp),
        })
    }

    pub fn path(&self) -> PathBuf {
        match &self.origin {
            Origin::Builtin => PathBuf::from(format!("<built-in>/{}.wasm", self.manifest.name)),
            Origin::File(path) => path.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn a_builtin_carries_the_sha256_of_its_bytes() {
        let mut names = 0;
        for name in PluginSource::builtin_names() {
            let source = PluginSource::builtin(name).unwrap().unwrap();
            let Provenance::Builtin(sha256) = source.provenance else {
                panic!("{name} is not known as a built-in");
            };
            assert_eq!(sha256, hex::encode(Sha256::digest(&source.bytes)), "{name}");
            names += 1;
        }
        assert!(names > 0);
    }
}
