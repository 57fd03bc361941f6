//! A file's identity as `stat` gives it — device, inode, size,
//! modification and change times — and the rule for remembering what was
//! learned of a file's content by it (a migration script's checksum, a
//! plugin component's sha256), so an unchanged file need not be read or
//! hashed again.
//!
//! Any write to a file sets its change time (`ctime`) to the clock's now,
//! which no program can set back, so an edit — even one that restores the
//! size and the modification time — gives another key. A key is
//! remembered only once both times are two seconds older than the moment
//! the reading began ([`Stamp::settled`]): a write in the same clock tick
//! as the reading would otherwise keep its times; not when both times are
//! whole seconds (a filesystem that keeps no finer ones, where a clock
//! set back could give an edit its old times). Only on local filesystems
//! whose change times are the kernel's own ([`local_filesystem`]): on NFS,
//! SMB, FUSE or FAT a file's times come from elsewhere, or lag behind.
//! And only within one boot ([`this_boot`]): after a crash, a file's data
//! can be on disk while its new times were lost (`lazytime`, a journal
//! that had not yet committed them).
//!
//! Not covered: a program that writes through a shared writable mapping
//! moves the change time only at a write fault, so it can change a page
//! it has already dirtied without a new key (on tmpfs, for as long as it
//! holds the mapping). What is remembered is then stale, never forged:
//! see each user's module for what a stale entry can and cannot do.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// How much older than its reading a file's times must be to be
/// remembered.
const SETTLED: Duration = Duration::from_secs(2);

/// A file's identity as `stat` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl FileKey {
    /// A key no file has, never remembered (its times never settle).
    pub fn unmatched() -> FileKey {
        FileKey {
            dev: u64::MAX,
            ino: 0,
            size: 0,
            mtime_ns: i128::MAX,
            ctime_ns: i128::MAX,
        }
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

    /// The five numbers, space-separated, as a cache file keeps them.
    pub fn to_fields(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns
        )
    }

    /// Reads the five numbers `to_fields` wrote from `fields`.
    pub fn from_fields<'a>(fields: &mut impl Iterator<Item = &'a str>) -> Option<FileKey> {
        let mut next = || fields.next();
        Some(FileKey {
            dev: next()?.parse().ok()?,
            ino: next()?.parse().ok()?,
            size: next()?.parse().ok()?,
            mtime_ns: next()?.parse().ok()?,
            ctime_ns: next()?.parse().ok()?,
        })
    }
}

/// A file's identity when it was read, and when the reading began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub key: FileKey,
    pub read_at: SystemTime,
}

impl Stamp {
    /// Whether what was read may be remembered by this key: both times
    /// `SETTLED` before the reading began, and not both whole seconds.
    pub fn settled(&self) -> bool {
        let Ok(since_epoch) = self.read_at.duration_since(SystemTime::UNIX_EPOCH) else {
            return false;
        };
        let limit = since_epoch.as_nanos() as i128 - SETTLED.as_nanos() as i128;
        let whole_seconds =
            self.key.mtime_ns % 1_000_000_000 == 0 && self.key.ctime_ns % 1_000_000_000 == 0;
        self.key.mtime_ns <= limit && self.key.ctime_ns <= limit && !whole_seconds
    }
}

/// This boot's id (the kernel's `boot_id`): what is remembered by a
/// file's identity holds only within the boot that remembered it.
/// `None` when the kernel does not say; then nothing is remembered.
pub fn this_boot() -> Option<&'static str> {
    static BOOT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BOOT.get_or_init(|| {
        let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let id = id.trim();
        (!id.is_empty() && !id.contains(char::is_whitespace)).then(|| id.to_string())
    })
    .as_deref()
}

/// The first line of a file that remembers by identity: its `format` (the
/// format and the gantry that wrote it) and this boot; `None` when the
/// boot is unknown, and then nothing is remembered.
pub fn header(format: &str) -> Option<String> {
    Some(format!("{format} boot {}", this_boot()?))
}

/// Opens `path` and reads it with `read`, returning what it read and the
/// file's stamp; a file written to while it was read gets a key nothing
/// matches.
pub fn read<T>(
    path: &Path,
    read: impl FnOnce(&mut std::fs::File) -> std::io::Result<T>,
) -> std::io::Result<(T, Stamp)> {
    let read_at = SystemTime::now();
    let mut file = std::fs::File::open(path)?;
    let before = FileKey::of(&file.metadata()?);
    let value = read(&mut file)?;
    let after = FileKey::of(&file.metadata()?);
    let key = if after == before {
        before
    } else {
        FileKey::unmatched()
    };
    Ok((value, Stamp { key, read_at }))
}

/// Whether `path` is on a filesystem whose change times are the local
/// kernel's own: ext4, xfs, btrfs, tmpfs, overlayfs, zfs, f2fs.
pub fn local_filesystem(path: &Path) -> bool {
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
    let Ok(path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
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

/// The text of a cache file gantry keeps beside its compile cache, when
/// it is a regular file of this user's that no one else may write, of at
/// most `max_bytes` (a FIFO, a link to `/dev/zero` or a huge file is not
/// read).
pub fn read_trusted(file: &Path, max_bytes: u64) -> Option<String> {
    use std::io::Read;
    let meta = std::fs::symlink_metadata(file).ok()?;
    if crate::private::untrusted(&meta).is_some() || meta.len() > max_bytes {
        return None;
    }
    let mut text = String::new();
    std::fs::File::open(file)
        .ok()?
        .take(max_bytes)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// Writes `text` to `file` whole: a temp file in the same (private)
/// directory, renamed into place, mode 0600.
pub fn write_private(file: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = file.parent().unwrap_or(Path::new("."));
    crate::private::dir(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(text.as_bytes())?;
    temp.persist(file).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_settles_two_seconds_after_the_last_write() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "one").unwrap();
        let (text, stamp) = read(&file, |f| std::io::read_to_string(f)).unwrap();
        assert_eq!(text, "one");
        assert!(!stamp.settled(), "read the moment it was written");
        let later = Stamp {
            read_at: stamp.read_at + Duration::from_secs(3),
            ..stamp
        };
        assert!(later.settled());
        let unmatched = Stamp {
            key: FileKey::unmatched(),
            ..later
        };
        assert!(!unmatched.settled());

        // Written again with the same length, its modification time put
        // back: only the change time tells, and it does.
        crate::testing::rewrite_keeping_modified(&file, b"two");
        let again = FileKey::of(&std::fs::metadata(&file).unwrap());
        assert_eq!(
            (again.dev, again.ino, again.size, again.mtime_ns),
            (
                stamp.key.dev,
                stamp.key.ino,
                stamp.key.size,
                stamp.key.mtime_ns
            )
        );
        assert_ne!(again.ctime_ns, stamp.key.ctime_ns);
        assert_ne!(again, stamp.key);
        assert_eq!(
            FileKey::from_fields(&mut again.to_fields().split(' ')),
            Some(again)
        );

        // Whole-second times never settle.
        let coarse = Stamp {
            key: FileKey {
                mtime_ns: 1_000_000_000,
                ctime_ns: 2_000_000_000,
                ..again
            },
            read_at: SystemTime::now(),
        };
        assert!(!coarse.settled());
    }

    #[test]
    fn a_file_written_while_it_is_read_gets_a_key_nothing_matches() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "one").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let (_, stamp) = read(&file, |_| std::fs::write(&file, "two")).unwrap();
        assert_eq!(stamp.key, FileKey::unmatched());
        let (_, stamp) = read(&file, |_| Ok(())).unwrap();
        assert_eq!(stamp.key, FileKey::of(&std::fs::metadata(&file).unwrap()));
        assert!(this_boot().is_some(), "Linux says which boot this is");
    }

    #[test]
    fn a_cache_file_others_may_write_or_that_is_no_regular_file_is_not_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.index");
        std::fs::write(&file, "header\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_trusted(&file, 64).as_deref(), Some("header\n"));
        assert!(read_trusted(&file, 4).is_none(), "larger than allowed");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o622)).unwrap();
        assert!(read_trusted(&file, 64).is_none());
        let link = dir.path().join("link.index");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(read_trusted(&link, 64).is_none());
    }
}
