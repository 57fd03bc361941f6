//! The compile cache: precompiled components on disk.
//!
//! An entry is keyed by the component's sha256, the wasmtime version and a
//! hash of the engine's compilation settings, so an entry made by another
//! engine is never loaded. Entries are written atomically (temp file and
//! rename) with mode 0600 in a 0700 directory, and the cache is bounded:
//! the least recently used entries are evicted past `max_bytes`.
//!
//! Trust: a `.cwasm` is native code. The cache directory must be private to
//! the operator; this module creates it so and never reads entries from a
//! directory it did not create with those permissions. Each entry is loaded
//! only when it is a regular file owned by this user and writable by no one
//! else; any other is recompiled and replaced, and the log says why.
//!
//! Beside the entries, the cache remembers each plugin file's sha256 by
//! the file's identity (`digest`), so an unchanged file is not hashed
//! again on the way to its entry.

mod digest;

use crate::identity::Stamp;
use anyhow::Context;
use digest::Digests;
use sha2::{Digest, Sha256};
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a component came from this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheOutcome {
    Hit,
    Compiled,
    /// Compiled, but the cache could not be written (reported, not fatal).
    CompiledUncached,
}

pub struct CompileCache {
    dir: Option<PathBuf>,
    max_bytes: u64,
    engine_key: String,
    digests: Option<Digests>,
}

impl CompileCache {
    /// A cache in `dir` (created 0700 if missing), or no cache at all.
    pub fn new(engine: &Engine, dir: Option<PathBuf>, max_bytes: u64) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = format!("w{}-{:016x}", wasmtime_version(), hasher.finish());
        let dir = dir.and_then(|dir| match private_dir(&dir) {
            Ok(()) => Some(dir),
            Err(err) => {
                tracing::warn!("plugin compile cache disabled: {err:#}");
                None
            }
        });
        let digests = dir.as_deref().map(Digests::in_cache);
        CompileCache {
            dir,
            max_bytes,
            engine_key,
            digests,
        }
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn entry(&self, sha256: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{sha256}-{}.cwasm", self.engine_key)))
    }

    /// The sha256 of `bytes`, read from `file` as its stamp says — and,
    /// when the sha256 is the one remembered for that file, its entry,
    /// loaded without hashing the bytes again. Otherwise the bytes are
    /// hashed (and the sha256 remembered for the file).
    pub fn identify(
        &self,
        engine: &Engine,
        bytes: &[u8],
        file: Option<(&Path, &Stamp)>,
    ) -> (String, Option<Component>) {
        let remembered = match (&self.digests, file) {
            (Some(digests), Some((path, stamp))) => digests.recall(path, stamp),
            _ => None,
        };
        if let Some(sha256) = &remembered
            && let Some(component) = self.hit(engine, sha256)
        {
            return (sha256.clone(), Some(component));
        }
        let sha256 = hex::encode(Sha256::digest(bytes));
        if let (Some(digests), Some((path, stamp))) = (&self.digests, file)
            && remembered.as_deref() != Some(sha256.as_str())
        {
            digests.remember(path, stamp, &sha256);
        }
        (sha256, None)
    }

    /// The component for `bytes`, from the cache or freshly compiled.
    pub fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
        sha256: &str,
    ) -> anyhow::Result<(Component, CacheOutcome)> {
        if let Some(component) = self.hit(engine, sha256) {
            return Ok((component, CacheOutcome::Hit));
        }
        let component = Component::new(engine, bytes)?;
        let outcome = match self.store(sha256, &component) {
            Ok(true) => CacheOutcome::Compiled,
            Ok(false) => CacheOutcome::CompiledUncached,
            Err(err) => {
                tracing::warn!("could not write the plugin compile cache: {err:#}");
                CacheOutcome::CompiledUncached
            }
        };
        Ok((component, outcome))
    }

    /// The entry for `sha256`, when it is in the cache and trusted.
    fn hit(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.entry(sha256)?;
        if !path.is_file() || !trusted(&path) {
            return None;
        }
        // SAFETY: entries are written only by `store` below, into a
        // directory private to this user, under a name that binds the
        // source's sha256 and this engine's settings.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => {
                touch(&path);
                Some(component)
            }
            Err(err) => {
                tracing::warn!(path = %path.display(), "discarding a bad cache entry: {err:#}");
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    fn store(&self, sha256: &str, component: &Component) -> anyhow::Result<bool> {
        let (Some(dir), Some(path)) = (&self.dir, self.entry(sha256)) else {
            return Ok(false);
        };
        let bytes = component.serialize()?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).context("create a cache temp file")?;
        std::io::Write::write_all(&mut tmp, &bytes).context("write a cache entry")?;
        tmp.persist(&path)
            .context("rename a cache entry into place")?;
        self.evict()?;
        Ok(true)
    }

    /// Removes the least recently used entries until the cache fits, and
    /// digests no longer written.
    fn evict(&self) -> anyhow::Result<()> {
        let Some(dir) = &self.dir else { return Ok(()) };
        if let Some(digests) = &self.digests {
            digests.prune();
        }
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = fs::read_dir(dir)?
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((meta.modified().ok()?, meta.len(), e.path()))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
        entries.sort();
        for (_, len, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
        Ok(())
    }
}

/// True when the entry at `path` may be loaded; otherwise says why in the
/// log and removes it, so the compile that follows replaces it.
fn trusted(path: &Path) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    let Some(why) = crate::private::untrusted(&meta) else {
        return true;
    };
    tracing::warn!(
        path = %path.display(),
        "not loading a plugin compile cache entry: {why}; recompiling and replacing it"
    );
    let _ = fs::remove_file(path);
    false
}

fn touch(path: &Path) {
    if let Ok(file) = fs::File::options().append(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

fn private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("create {}", dir.display()))?;
    let meta = fs::metadata(dir)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        anyhow::bail!("{} is not owned by this user", dir.display());
    }
    if meta.permissions().mode() & 0o022 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

fn wasmtime_version() -> &'static str {
    // The crate is pinned with `=` in runtime/Cargo.toml; a unit test
    // keeps the two in step.
    "48.0.10"
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cache_key_names_the_pinned_wasmtime() {
        let manifest = include_str!("../Cargo.toml");
        let pin = manifest
            .lines()
            .find_map(|line| line.strip_prefix("wasmtime = { version = \"="))
            .and_then(|rest| rest.split('"').next())
            .expect("wasmtime is pinned with = in runtime/Cargo.toml");
        assert_eq!(super::wasmtime_version(), pin);
    }
}
