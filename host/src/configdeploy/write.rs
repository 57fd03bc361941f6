//! Writing a set of files as one change: each file goes to a temp file in
//! the same directory, is fsynced, renamed over the target, and the
//! directory fsynced, so every file is always wholly old or wholly new. If
//! any write fails, the files already replaced are put back from the
//! backup before returning.

use super::backup::{copy_path, sync_dir};
use super::error::ConfigError;
use crate::store::BackupRecord;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// One file's new state.
#[derive(Debug, Clone)]
pub struct Planned {
    pub name: String,
    /// `None` removes the file.
    pub contents: Option<Vec<u8>>,
    pub mode: u32,
}

/// Applies `plans` in order; on failure restores from `backup` what was
/// already replaced. `before(i)` runs before file `i` is touched and may
/// stop the change (the lease was lost); `after(i)` reports it written.
pub async fn apply(
    config_dir: &Path,
    plans: &[Planned],
    backup: &BackupRecord,
    mut before: impl AsyncFnMut(usize) -> Result<(), ConfigError>,
    mut after: impl FnMut(usize),
) -> Result<(), ConfigError> {
    for (i, plan) in plans.iter().enumerate() {
        if let Err(err) = before(i).await {
            let restored = restore(config_dir, &plans[..i], backup).is_ok();
            tracing::warn!(restored, "stopped before writing {}: {err}", plan.name);
            return Err(err);
        }
        if let Err(source) = write_one(config_dir, plan) {
            let restored = restore(config_dir, &plans[..=i], backup).is_ok();
            return Err(ConfigError::Write {
                name: plan.name.clone(),
                source,
                restored,
            });
        }
        after(i);
    }
    Ok(())
}

/// Puts `plans`' files back as `backup` has them.
fn restore(config_dir: &Path, plans: &[Planned], backup: &BackupRecord) -> std::io::Result<()> {
    let mut result = Ok(());
    for plan in plans {
        let Some(file) = backup.files.iter().find(|f| f.name == plan.name) else {
            continue;
        };
        let undo = if file.existed {
            fs::read(copy_path(backup, &file.name)).map(|bytes| Planned {
                name: file.name.clone(),
                contents: Some(bytes),
                mode: file.mode.unwrap_or(0o600),
            })
        } else {
            Ok(Planned {
                name: file.name.clone(),
                contents: None,
                mode: 0,
            })
        };
        if let Err(e) = undo.and_then(|undo| write_one(config_dir, &undo)) {
            tracing::error!(file = %plan.name, "could not put the file back: {e}");
            result = Err(e);
        }
    }
    result
}

pub fn write_one(config_dir: &Path, plan: &Planned) -> std::io::Result<()> {
    let target = config_dir.join(&plan.name);
    match &plan.contents {
        Some(bytes) => {
            let mut tmp = tempfile::Builder::new()
                .prefix(".gantry-")
                .tempfile_in(config_dir)?;
            tmp.as_file()
                .set_permissions(fs::Permissions::from_mode(plan.mode))?;
            tmp.write_all(bytes)?;
            tmp.as_file().sync_all()?;
            tmp.persist(&target).map_err(|e| e.error)?;
        }
        None => match fs::remove_file(&target) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        },
    }
    sync_dir(config_dir).map_err(|e| std::io::Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::BackupFile;

    #[test]
    fn a_failed_write_puts_back_the_files_already_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("config");
        let backup_dir = tmp.path().join("backup");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::create_dir_all(backup_dir.join("files")).unwrap();
        std::fs::write(config.join("a.json"), "old a").unwrap();
        std::fs::write(backup_dir.join("files/a.json"), "old a").unwrap();
        let backup = BackupRecord {
            id: "backup_20240101_000000".into(),
            created_at: chrono::Utc::now(),
            environment: "test".into(),
            config_dir: config.display().to_string(),
            path: backup_dir.display().to_string(),
            files: vec![
                BackupFile {
                    name: "a.json".into(),
                    existed: true,
                    sha256: None,
                    size: 5,
                    mode: Some(0o640),
                },
                BackupFile {
                    name: "b.json".into(),
                    existed: false,
                    sha256: None,
                    size: 0,
                    mode: None,
                },
                BackupFile {
                    name: "missing/c.json".into(),
                    existed: false,
                    sha256: None,
                    size: 0,
                    mode: None,
                },
            ],
            total_size: 5,
            change_id: None,
            purpose: "deploy".into(),
            host: String::new(),
        };
        let plans = vec![
            Planned {
                name: "a.json".into(),
                contents: Some(b"new a".to_vec()),
                mode: 0o600,
            },
            Planned {
                name: "b.json".into(),
                contents: Some(b"new b".to_vec()),
                mode: 0o644,
            },
            // Renaming into a directory that does not exist fails.
            Planned {
                name: "missing/c.json".into(),
                contents: Some(b"new c".to_vec()),
                mode: 0o644,
            },
        ];
        let io = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = io
            .block_on(apply(&config, &plans, &backup, async |_| Ok(()), |_| {}))
            .unwrap_err();
        assert!(
            matches!(err, ConfigError::Write { restored: true, .. }),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(config.join("a.json")).unwrap(),
            "old a"
        );
        assert_eq!(
            std::fs::metadata(config.join("a.json"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o640
        );
        assert!(
            !config.join("b.json").exists(),
            "a file the change created is removed again"
        );
        let leftovers: Vec<_> = std::fs::read_dir(&config)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temp files left: {leftovers:?}");
    }
}
