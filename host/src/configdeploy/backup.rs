//! Backups: a copy of every target file as it was, taken before a change.
//!
//! A backup is `<backup_dir>/<id>/` with `files/<name>` copies (mode
//! 0600) and `manifest.json` (sha256, size and mode per file, and which
//! files did not exist, so a rollback removes them). The id keeps the
//! spec's `backup_YYYYMMDD_HHMMSS`, with `_2`, `_3`… when that second is
//! taken: the directory is created atomically, so two backups never share
//! one. Verifying re-hashes every copy against the state store's record and
//! the manifest. The recorded fingerprints are keyed (`digest`), never a
//! plain sha256 of a file that may hold a secret.

use super::error::ConfigError;
use crate::store::InstallationKey;
use crate::store::{BackupFile, BackupRecord};
use chrono::{DateTime, Utc};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Takes a backup of `names` in `config_dir`, fingerprinting each copy
/// under `digest` (the key of `backup_root`).
#[expect(clippy::too_many_arguments, reason = "what the backup records")]
pub fn take(
    backup_root: &Path,
    digest: &InstallationKey,
    config_dir: &Path,
    names: &[String],
    environment: &str,
    purpose: &str,
    host: &str,
    now: DateTime<Utc>,
) -> Result<BackupRecord, ConfigError> {
    crate::store::private::dir(backup_root)
        .map_err(|e| ConfigError::io(format!("create {}", backup_root.display()), e))?;
    let stamp = format!("backup_{}", now.format("%Y%m%d_%H%M%S"));
    let (id, dir) = (1..)
        .map(|n| {
            if n == 1 {
                stamp.clone()
            } else {
                format!("{stamp}_{n}")
            }
        })
        .find_map(|id| {
            let dir = backup_root.join(&id);
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => Some(Ok((id, dir))),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                Err(e) => Some(Err(ConfigError::io(format!("create {}", dir.display()), e))),
            }
        })
        .expect("an unused suffix exists")?;
    let files_dir = dir.join("files");
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&files_dir)
        .map_err(|e| ConfigError::io(format!("create {}", files_dir.display()), e))?;

    let mut files = Vec::new();
    for name in names {
        let path = super::paths::target(config_dir, name)?;
        match fs::read(&path) {
            Ok(bytes) => {
                let mode = fs::metadata(&path)
                    .map(|m| m.permissions().mode() & 0o777)
                    .ok();
                write_private(&files_dir.join(name), &bytes)?;
                files.push(BackupFile {
                    name: name.clone(),
                    existed: true,
                    sha256: Some(digest.of(&bytes)),
                    size: bytes.len() as u64,
                    mode,
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => files.push(BackupFile {
                name: name.clone(),
                existed: false,
                sha256: None,
                size: 0,
                mode: None,
            }),
            Err(e) => return Err(ConfigError::io(format!("read {}", path.display()), e)),
        }
    }
    let record = BackupRecord {
        id,
        created_at: now,
        environment: environment.to_string(),
        config_dir: config_dir.display().to_string(),
        path: dir.display().to_string(),
        total_size: files.iter().map(|f| f.size as i64).sum(),
        files,
        change_id: None,
        purpose: purpose.to_string(),
        host: host.to_string(),
    };
    let manifest = serde_json::to_vec_pretty(&record).expect("serialisable");
    write_private(&dir.join("manifest.json"), &manifest)?;
    sync_dir(&files_dir)?;
    sync_dir(&dir)?;
    sync_dir(backup_root)?;
    Ok(record)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    let mut file = fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| ConfigError::io(format!("create {}", path.display()), e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| ConfigError::io(format!("write {}", path.display()), e))
}

pub fn sync_dir(dir: &Path) -> Result<(), ConfigError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ConfigError::io(format!("sync {}", dir.display()), e))
}

/// Where a recorded backup keeps `name`.
pub fn copy_path(record: &BackupRecord, name: &str) -> PathBuf {
    Path::new(&record.path).join("files").join(name)
}

/// Every copy re-hashed against the record and the manifest on disk;
/// `Err` lists what does not match.
pub fn verify(record: &BackupRecord) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let root = Path::new(&record.path).parent().unwrap_or(Path::new("/"));
    let digest = match InstallationKey::open(root) {
        Ok(digest) => Some(digest),
        Err(e) => {
            problems.push(format!("cannot check the copies: {e}"));
            None
        }
    };
    let manifest: Option<Vec<BackupFile>> = fs::read(Path::new(&record.path).join("manifest.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|v| serde_json::from_value(v.get("files")?.clone()).ok());
    match &manifest {
        None => problems.push("manifest.json is missing or unreadable".to_string()),
        Some(files) if files != &record.files => {
            problems.push("manifest.json does not match the state store's record".to_string())
        }
        Some(_) => {}
    }
    for file in &record.files {
        let path = copy_path(record, &file.name);
        if !file.existed {
            if path.exists() {
                problems.push(format!(
                    "{}: present, but the file did not exist when the backup was taken",
                    file.name
                ));
            }
            continue;
        }
        if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            problems.push(format!("{}: the copy is a symlink", file.name));
            continue;
        }
        let Some(digest) = &digest else { continue };
        match fs::read(&path) {
            Ok(bytes)
                if file
                    .sha256
                    .as_deref()
                    .is_some_and(|recorded| digest.matches(&bytes, recorded)) => {}
            Ok(_) => problems.push(format!(
                "{}: the copy does not match its recorded fingerprint",
                file.name
            )),
            Err(e) => problems.push(format!("{}: cannot read the copy: {e}", file.name)),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Removes a backup's directory.
pub fn remove(record: &BackupRecord) -> Result<(), ConfigError> {
    match fs::remove_dir_all(&record.path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ConfigError::io(format!("remove {}", record.path), e)),
    }
}
