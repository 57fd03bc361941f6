//! What the compile cache remembers of a plugin file: the sha256 of its
//! bytes, by the file's identity (`identity::Stamp`), so loading a plugin
//! whose file has not changed does not hash it again — for an 18 MB
//! Python component, about half of a load from the cache.
//!
//! A remembered sha256 only chooses which compiled entry to load: it is
//! used only when that entry is in the cache (and trusted), the pins are
//! checked against it, and the entry is the compile of bytes with that
//! sha256 — so what runs is what was pinned. When the entry is not there
//! the bytes are hashed, because they are about to be compiled and a
//! compile is stored under its own bytes' sha256, never a remembered one.
//!
//! A stale sha256 (the file changed without a new identity: a writer
//! through a shared mapping, see `identity`) can therefore only load the
//! compile of bytes the file once held, under their own sha256, and the
//! pins hold against that: a pinned plugin is refused, never swapped.
//! `gantry plugin inspect` always hashes what it reads.
//!
//! One small file per plugin path under `<cache>/digests/`: written whole
//! and renamed into place (0600, directory 0700); one that is missing,
//! not a regular file, another user's, writable by group or others,
//! garbled, from another gantry version or from another boot remembers
//! nothing. Kept only for files on local filesystems (see
//! `identity::local_filesystem`). A file not rewritten for 30 days is
//! removed when the cache evicts (its plugin is hashed once again).

use crate::identity::{self, FileKey, Stamp};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The format and the gantry that wrote it.
const HEADER: &str = concat!("gantry plugin digest 1 ", env!("CARGO_PKG_VERSION"));
const MAX_BYTES: u64 = 4096;
/// How long a remembered sha256 is kept without being written again.
const KEPT: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

pub(super) struct Digests {
    dir: PathBuf,
}

impl Digests {
    /// Remembered digests under the compile cache `dir`.
    pub fn in_cache(dir: &Path) -> Digests {
        Digests {
            dir: dir.join("digests"),
        }
    }

    /// The sha256 remembered for the file at `path`, when it is the file
    /// `stamp` describes.
    pub fn recall(&self, path: &Path, stamp: &Stamp) -> Option<String> {
        let text = identity::read_trusted(&self.file(path)?, MAX_BYTES)?;
        let mut lines = text.lines();
        if lines.next() != Some(identity::header(HEADER)?.as_str()) {
            return None;
        }
        let mut fields = lines.next()?.split(' ');
        let key = FileKey::from_fields(&mut fields)?;
        let sha256 = fields.next()?;
        let well_formed = sha256.len() == 64
            && sha256.bytes().all(|b| b.is_ascii_hexdigit())
            && fields.next().is_none();
        (well_formed && key == stamp.key && identity::local_filesystem(path))
            .then(|| sha256.to_ascii_lowercase())
    }

    /// Remembers `sha256` for the file at `path` as `stamp` describes it,
    /// once its times have settled.
    pub fn remember(&self, path: &Path, stamp: &Stamp, sha256: &str) {
        if !stamp.settled() || !identity::local_filesystem(path) {
            return;
        }
        let (Some(file), Some(header)) = (self.file(path), identity::header(HEADER)) else {
            return;
        };
        let text = format!("{header}\n{} {sha256}\n", stamp.key.to_fields());
        if let Err(err) = identity::write_private(&file, &text) {
            tracing::debug!(
                "could not remember the sha256 of {} in {}: {err}",
                path.display(),
                file.display()
            );
        }
    }

    /// Removes what was not written for `KEPT`.
    pub fn prune(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let now = std::time::SystemTime::now();
        for entry in entries.filter_map(Result::ok) {
            let old = entry
                .metadata()
                .and_then(|meta| meta.modified())
                .is_ok_and(|at| now.duration_since(at).is_ok_and(|age| age > KEPT));
            if old {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// The file that remembers `path`: named by the sha256 of its
    /// absolute form.
    fn file(&self, path: &Path) -> Option<PathBuf> {
        let absolute = std::path::absolute(path).ok()?;
        let digest = Sha256::digest(absolute.as_os_str().as_encoded_bytes());
        Some(self.dir.join(hex::encode(&digest[..16])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stamp_of(path: &Path, read_at: std::time::SystemTime) -> Stamp {
        Stamp {
            key: FileKey::of(&std::fs::metadata(path).unwrap()),
            read_at,
        }
    }

    const SHA: &str = "ab00000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn remembered_once_settled_and_only_while_the_file_is_unchanged() {
        let cache = tempfile::tempdir().unwrap();
        let plugins = tempfile::tempdir().unwrap();
        let wasm = plugins.path().join("p.wasm");
        std::fs::write(&wasm, b"\0asm one").unwrap();
        let digests = Digests::in_cache(cache.path());

        // Read the moment it was written: not remembered.
        let now = stamp_of(&wasm, std::time::SystemTime::now());
        digests.remember(&wasm, &now, SHA);
        assert_eq!(digests.recall(&wasm, &now), None);

        // Read long after: remembered, for this file only.
        let later = Stamp {
            read_at: now.read_at + Duration::from_secs(10),
            ..now
        };
        digests.remember(&wasm, &later, SHA);
        assert_eq!(digests.recall(&wasm, &now).as_deref(), Some(SHA));
        let other = plugins.path().join("q.wasm");
        std::fs::write(&other, b"\0asm one").unwrap();
        assert_eq!(digests.recall(&other, &now), None);

        // Written again, same length: its key moves on.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&wasm, b"\0asm two").unwrap();
        let changed = stamp_of(&wasm, std::time::SystemTime::now());
        assert_eq!(digests.recall(&wasm, &changed), None);
    }

    #[test]
    fn a_memory_others_may_write_or_garbled_remembers_nothing() {
        use std::os::unix::fs::PermissionsExt;
        let cache = tempfile::tempdir().unwrap();
        let wasm = cache.path().join("p.wasm");
        std::fs::write(&wasm, b"\0asm").unwrap();
        let digests = Digests::in_cache(cache.path());
        let stamp = stamp_of(
            &wasm,
            std::time::SystemTime::now() + Duration::from_secs(10),
        );
        digests.remember(&wasm, &stamp, SHA);
        let file = digests.file(&wasm).unwrap();
        assert_eq!(digests.recall(&wasm, &stamp).as_deref(), Some(SHA));

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o620)).unwrap();
        assert_eq!(digests.recall(&wasm, &stamp), None, "group-writable");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();

        let text = std::fs::read_to_string(&file).unwrap();
        for garbled in [
            text.replace("digest 1", "digest 0"),
            text.replace(identity::this_boot().unwrap(), "another-boot"),
            text.replace(SHA, &SHA[..63]),
            text.replace(SHA, &format!("{SHA} extra")),
            text.replace(SHA, &SHA.replace('a', "g")),
        ] {
            std::fs::write(&file, garbled).unwrap();
            assert_eq!(digests.recall(&wasm, &stamp), None);
        }
        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &file).unwrap();
        assert_eq!(digests.recall(&wasm, &stamp), None, "not a regular file");
    }

    #[test]
    fn what_was_not_written_for_30_days_is_pruned() {
        let cache = tempfile::tempdir().unwrap();
        let plugins = tempfile::tempdir().unwrap();
        let digests = Digests::in_cache(cache.path());
        let stamp =
            |path: &Path| stamp_of(path, std::time::SystemTime::now() + Duration::from_secs(10));
        let (old, new) = (
            plugins.path().join("old.wasm"),
            plugins.path().join("new.wasm"),
        );
        for wasm in [&old, &new] {
            std::fs::write(wasm, b"\0asm").unwrap();
            digests.remember(wasm, &stamp(wasm), SHA);
        }
        let month_ago = std::time::SystemTime::now() - KEPT - Duration::from_secs(60);
        std::fs::File::options()
            .append(true)
            .open(digests.file(&old).unwrap())
            .unwrap()
            .set_modified(month_ago)
            .unwrap();
        digests.prune();
        assert_eq!(digests.recall(&old, &stamp(&old)), None);
        assert_eq!(digests.recall(&new, &stamp(&new)).as_deref(), Some(SHA));
    }
}
