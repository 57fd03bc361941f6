//! The folder index: what gantry learned of each up script the last time
//! it read it — its checksum and whether it runs outside a transaction —
//! keyed by the file's identity (device, inode, size, modification and
//! change times). A no-op `migrate` on a folder whose files have not
//! changed lists the folder and stats each file instead of reading it:
//! the "one listing of the folder".
//!
//! A file's entry is used only when all five match, and a file is
//! recorded only once its times have settled, on local filesystems only:
//! the rule of `runtime::identity`. On NFS, SMB, FUSE or FAT every file is
//! read as before. The text itself is read when a run uses it (to apply
//! it, to show a drift) and checked against the recorded checksum then.
//!
//! It is a cache: one file per migrations folder under the cache
//! directory (0700), written whole and renamed into place (0600); one that
//! is missing, not a regular file, another user's, writable by group or
//! others, larger than 16 MiB, garbled, from another gantry version or
//! from another boot is an empty index.

use crate::runtime::identity::{self, FileKey, Stamp};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The format, the checksum scheme and the gantry that wrote it.
const HEADER: &str = concat!("gantry migration index 1 v1 ", env!("CARGO_PKG_VERSION"));
const MAX_BYTES: u64 = 16 << 20;

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
    pub stamp: Stamp,
    pub known: Known,
}

#[derive(Debug)]
pub struct FolderIndex {
    file: PathBuf,
    /// The first line its file has: the format and this boot.
    header: String,
    entries: HashMap<String, (FileKey, Known)>,
}

impl FolderIndex {
    /// The index of `folder` kept under `cache_dir` (empty when there is
    /// none yet, or it cannot be trusted); `None` when `folder` is not on a
    /// filesystem the index can rely on, or the boot is unknown.
    pub fn open(cache_dir: &Path, folder: &Path) -> Option<FolderIndex> {
        let header = identity::header(HEADER)?;
        if !identity::local_filesystem(folder) {
            return None;
        }
        let canonical = std::fs::canonicalize(folder).unwrap_or_else(|_| folder.to_path_buf());
        let digest = Sha256::digest(canonical.as_os_str().as_encoded_bytes());
        let file = cache_dir.join(format!("{}.index", hex::encode(&digest[..16])));
        let entries = identity::read_trusted(&file, MAX_BYTES)
            .map(|text| parse(&text, &header))
            .unwrap_or_default();
        Some(FolderIndex {
            file,
            header,
            entries,
        })
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
            if !file.stamp.settled() || file.name.contains('\n') {
                continue;
            }
            let entry = (file.stamp.key, file.known);
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
        let mut text = self.header.clone();
        text.push('\n');
        let mut names: Vec<&String> = self.entries.keys().collect();
        names.sort();
        for name in names {
            let (key, known) = &self.entries[name];
            text.push_str(&format!(
                "{} {} {} {name}\n",
                key.to_fields(),
                u8::from(known.no_transaction),
                known.checksum,
            ));
        }
        identity::write_private(&self.file, &text)
    }
}

/// The index file's entries, when its first line is `header`; a line
/// that does not parse is left out.
fn parse(text: &str, header: &str) -> HashMap<String, (FileKey, Known)> {
    let mut lines = text.lines();
    if lines.next() != Some(header) {
        return HashMap::new();
    }
    lines.filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<(String, (FileKey, Known))> {
    let mut fields = line.splitn(8, ' ');
    let key = FileKey::from_fields(&mut fields)?;
    let mut next = || fields.next();
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
    use std::time::{Duration, SystemTime};

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
            stamp: Stamp {
                key,
                read_at: SystemTime::now(),
            },
            known: known("v1:sha256:aa"),
        };
        let present = HashSet::from(["001_a.up.sql".to_string()]);
        index.update(vec![just_now.clone()], &present);
        let index = FolderIndex::open(cache.path(), folder.path()).expect("a local filesystem");
        assert!(index.entries.is_empty());

        // Read long after: recorded, found while the file is as it was.
        let later = Learned {
            stamp: Stamp {
                key,
                read_at: SystemTime::now() + Duration::from_secs(10),
            },
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
    fn a_garbled_index_is_an_empty_one() {
        let header = format!("{HEADER} boot b1");
        assert!(parse("something else\n1 2 3 4 5 0 c n\n", &header).is_empty());
        let another_boot = format!("{HEADER} boot b2\n1 2 3 4 5 0 v1:x 001_a.up.sql\n");
        assert!(parse(&another_boot, &header).is_empty());
        let entries = parse(
            &format!(
                "{header}\nnot a line\n1 2 3 4 5 0 v1:x 001_a.up.sql\n1 2 3 4 5 7 v1:x 002_b.up.sql\n1 2 3 4 5 1 v1:y 003 with spaces.sql\n"
            ),
            &header,
        );
        let mut names: Vec<&String> = entries.keys().collect();
        names.sort();
        assert_eq!(names, ["001_a.up.sql", "003 with spaces.sql"]);
        assert!(entries["003 with spaces.sql"].1.no_transaction);
    }
}
