//! The folder index: what gantry learned of each up script the last time
//! it read it — its checksum and whether it runs outside a transaction —
//! keyed by the file's identity (device, inode, size, modification and
//! change times). A no-op `migrate` on a folder whose files have not
//! changed lists the folder and stats each file instead of reading it:
//! the "one listing of the folder".
//!
//! A file's entry is used only when all five match. Any write to a file
//! sets its change time (`ctime`) to the clock's now, which no program
//! can set back, so an edit — even one that restores the size and the
//! modification time — is read again. A file is recorded only when its
//! times are two seconds older than the moment it was read (a write in
//! the same clock tick as the read would otherwise keep its times). The
//! text itself is read when a run uses it (to apply it, to show a drift)
//! and checked against the recorded checksum then.
//!
//! The index is kept only for folders on local filesystems whose change
//! times are the kernel's own (ext4, xfs, btrfs, tmpfs, overlayfs, zfs,
//! f2fs): on NFS, SMB, FUSE or FAT a file's times come from elsewhere, or
//! lag behind, and every file is read as before. It is a cache: one file
//! per migrations folder under the cache directory (0700), written whole
//! and renamed into place (0600); one that is missing, not a regular file,
//! another user's, writable by group or others, larger than 16 MiB,
//! garbled, or from another gantry version is an empty index.

use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The format, the checksum scheme and the gantry that wrote it.
const HEADER: &str = concat!("gantry migration index 1 v1 ", env!("CARGO_PKG_VERSION"));
const MAX_BYTES: u64 = 16 << 20;
/// How much older than its reading a file's times must be to be recorded.
const SETTLED: Duration = Duration::from_secs(2);

/// A file's identity as `stat` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileKey {
    /// A key no file has, never recorded (its times never settle).
    pub fn unmatched() -> FileKey {
        FileKey {
            dev: u64::MAX,
            ino: 0,
            size: 0,
            mtime_ns: i128::MAX,
            ctime_ns: i128::MAX,
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn of(meta: &std::fs::Metadata) -> FileKey {
        FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }

    /// Whether both times are `SETTLED` before `read_at`.
    fn settled(&self, read_at: SystemTime) -> bool {
        let Ok(since_epoch) = read_at.duration_since(SystemTime::UNIX_EPOCH) else {
            return false;
        };
        let limit = since_epoch.as_nanos() as i128 - SETTLED.as_nanos() as i128;
        self.mtime_ns <= limit && self.ctime_ns <= limit
    }
}

/// What the index keeps of one up script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub checksum: String,
    pub no_transaction: bool,
}

/// A file read this run that may be recorded.
#[derive(Debug, Clone)]
pub struct Learned {
    pub name: String,
    pub key: FileKey,
    pub read_at: SystemTime,
    pub known: Known,
}

#[derive(Debug)]
pub struct FolderIndex {
    file: PathBuf,
    entries: HashMap<String, (FileKey, Known)>,
}

impl FolderIndex {
    /// The index of `folder` kept under `cache_dir` (empty when there is
    /// none yet, or it cannot be trusted); `None` when `folder` is not on a
    /// filesystem the index can rely on.
    pub fn open(cache_dir: &Path, folder: &Path) -> Option<FolderIndex> {
        if !local_filesystem(folder) {
            return None;
        }
        let canonical = std::fs::canonicalize(folder).unwrap_or_else(|_| folder.to_path_buf());
        let digest = Sha256::digest(canonical.as_os_str().as_encoded_bytes());
        let file = cache_dir.join(format!("{}.index", hex::encode(&digest[..16])));
        let entries = read_trusted(&file)
            .map(|text| parse(&text))
            .unwrap_or_default();
        Some(FolderIndex { file, entries })
    }

    /// The index's file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// What the index knows of `name`, if `meta` says it is unchanged.
    pub fn lookup(&self, name: &str, meta: &std::fs::Metadata) -> Option<&Known> {
        let (key, known) = self.entries.get(name)?;
        (*key == FileKey::of(meta)).then_some(known)
    }

    /// Keeps what this run learned (the files it read whose times have
    /// settled) and forgets files no longer in the folder (`present`);
    /// writes the index only when that changes it.
    pub fn update(mut self, learned: Vec<Learned>, present: &HashSet<String>) {
        let before = self.entries.len();
        self.entries.retain(|name, _| present.contains(name));
        let mut changed = self.entries.len() != before;
        for file in learned {
            if !file.key.settled(file.read_at) || file.name.contains('\n') {
                continue;
            }
            let entry = (file.key, file.known);
            if self.entries.get(&file.name) != Some(&entry) {
                self.entries.insert(file.name, entry);
                changed = true;
            }
        }
        if changed && let Err(err) = self.write() {
            tracing::debug!(
                "could not write the migration index {}: {err}",
                self.file.display()
            );
        }
    }

    fn write(&self) -> std::io::Result<()> {
        use std::io::Write;
        let dir = self.file.parent().unwrap_or(Path::new("."));
        crate::runtime::private::dir(dir)?;
        let mut text = String::from(HEADER);
        text.push('\n');
        let mut names: Vec<&String> = self.entries.keys().collect();
        names.sort();
        for name in names {
            let (key, known) = &self.entries[name];
            text.push_str(&format!(
                "{} {} {} {} {} {} {} {name}\n",
                key.dev,
                key.ino,
                key.size,
                key.mtime_ns,
                key.ctime_ns,
                u8::from(known.no_transaction),
                known.checksum,
            ));
        }
        let mut temp = tempfile::NamedTempFile::new_in(dir)?;
        temp.write_all(text.as_bytes())?;
        temp.persist(&self.file).map_err(|e| e.error)?;
        Ok(())
    }
}

/// The index file's text, when it is a regular file of this user's that
/// no one else may write, of a sane size.
fn read_trusted(file: &Path) -> Option<String> {
    use std::io::Read;
    let meta = std::fs::symlink_metadata(file).ok()?;
    if crate::runtime::private::untrusted(&meta).is_some() || meta.len() > MAX_BYTES {
        return None;
    }
    let mut text = String::new();
    std::fs::File::open(file)
        .ok()?
        .take(MAX_BYTES)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// Whether `folder` is on a filesystem whose change times are the local
/// kernel's own.
fn local_filesystem(folder: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    const LOCAL: [i64; 7] = [
        0xEF53,      // ext2/3/4
        0x5846_5342, // xfs
        0x9123_683E, // btrfs
        0x0102_1994, // tmpfs
        0x794C_7630, // overlayfs
        0x2FC1_2FC1, // zfs
        0xF2F5_2010, // f2fs
    ];
    let Ok(path) = std::ffi::CString::new(folder.as_os_str().as_bytes()) else {
        return false;
    };
    let mut stat = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `path` is a valid C string and `stat` is written by statfs
    // before it is read (only on success).
    let found = unsafe { libc::statfs(path.as_ptr(), stat.as_mut_ptr()) };
    if found != 0 {
        return false;
    }
    // SAFETY: statfs returned 0, so it filled `stat`.
    let stat = unsafe { stat.assume_init() };
    // `f_type` is `long` on 64-bit Linux and `int` elsewhere.
    #[allow(clippy::unnecessary_cast)]
    let kind = stat.f_type as i64;
    LOCAL.contains(&kind)
}

/// The index file's entries; a line that does not parse is left out.
fn parse(text: &str) -> HashMap<String, (FileKey, Known)> {
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return HashMap::new();
    }
    lines.filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<(String, (FileKey, Known))> {
    let mut fields = line.splitn(8, ' ');
    let mut next = || fields.next();
    let key = FileKey {
        dev: next()?.parse().ok()?,
        ino: next()?.parse().ok()?,
        size: next()?.parse().ok()?,
        mtime_ns: next()?.parse().ok()?,
        ctime_ns: next()?.parse().ok()?,
    };
    let no_transaction = match next()? {
        "0" => false,
        "1" => true,
        _ => return None,
    };
    let checksum = next()?.to_string();
    let name = next()?.to_string();
    if name.is_empty() || checksum.is_empty() {
        return None;
    }
    Some((
        name,
        (
            key,
            Known {
                checksum,
                no_transaction,
            },
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(checksum: &str) -> Known {
        Known {
            checksum: checksum.into(),
            no_transaction: false,
        }
    }

    #[test]
    fn a_file_is_recorded_once_its_times_have_settled_and_found_while_unchanged() {
        let cache = tempfile::tempdir().unwrap();
        let folder = tempfile::tempdir().unwrap();
        let file = folder.path().join("001_a.up.sql");
        std::fs::write(&file, "SELECT 1;\n").unwrap();
        let key = FileKey::of(&std::fs::metadata(&file).unwrap());

        // Read the moment it was written: not recorded.
        let index = FolderIndex::open(cache.path(), folder.path()).expect("a local filesystem");
        let just_now = Learned {
            name: "001_a.up.sql".into(),
            key,
            read_at: SystemTime::now(),
            known: known("v1:sha256:aa"),
        };
        let present = HashSet::from(["001_a.up.sql".to_string()]);
        index.update(vec![just_now.clone()], &present);
        let index = FolderIndex::open(cache.path(), folder.path()).expect("a local filesystem");
        assert!(index.entries.is_empty());

        // Read long after: recorded, found while the file is as it was.
        let later = Learned {
            read_at: SystemTime::now() + Duration::from_secs(10),
            ..just_now
        };
        index.update(vec![later], &present);
        let index = FolderIndex::open(cache.path(), folder.path()).expect("a local filesystem");
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(
            index.lookup("001_a.up.sql", &meta),
            Some(&known("v1:sha256:aa"))
        );
        assert_eq!(index.lookup("002_b.up.sql", &meta), None);

        // Written again (same length): its change time moves on.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&file, "SELECT 2;\n").unwrap();
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(index.lookup("001_a.up.sql", &meta), None);

        // A file gone from the folder is forgotten.
        index.update(Vec::new(), &HashSet::new());
        assert!(
            FolderIndex::open(cache.path(), folder.path())
                .unwrap()
                .entries
                .is_empty()
        );
    }

    #[test]
    fn an_index_others_may_write_or_that_is_no_regular_file_is_not_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.index");
        std::fs::write(&file, format!("{HEADER}\n")).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read_trusted(&file).is_some());
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o622)).unwrap();
        assert!(read_trusted(&file).is_none());
        let link = dir.path().join("link.index");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(read_trusted(&link).is_none());
    }

    #[test]
    fn a_garbled_index_is_an_empty_one() {
        assert!(parse("something else\n1 2 3 4 5 0 c n\n").is_empty());
        let entries = parse(&format!(
            "{HEADER}\nnot a line\n1 2 3 4 5 0 v1:x 001_a.up.sql\n1 2 3 4 5 7 v1:x 002_b.up.sql\n1 2 3 4 5 1 v1:y 003 with spaces.sql\n"
        ));
        let mut names: Vec<&String> = entries.keys().collect();
        names.sort();
        assert_eq!(names, ["001_a.up.sql", "003 with spaces.sql"]);
        assert!(entries["003 with spaces.sql"].1.no_transaction);
    }
}
