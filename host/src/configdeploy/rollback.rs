//! Restoring a backup: verify every checksum (store record and manifest),
//! take the directory, verify again under it, back up the present, then
//! restore — files that did not exist when the backup was taken are
//! removed. A backup belongs to the host whose directory it copied.

use super::backup;
use super::deployer::ConfigDeployer;
use super::diff::{FileDiff, restore_diff};
use super::error::ConfigError;
use super::paths;
use super::write::Planned;
use crate::store::{BackupRecord, ChangeKind};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub restored_from: String,
    pub dry_run: bool,
    pub files: Vec<FileDiff>,
    pub backup_id: Option<String>,
    pub change_id: Option<i64>,
}

impl ConfigDeployer {
    pub async fn rollback(&self, id: &str, dry_run: bool) -> Result<RollbackReport, ConfigError> {
        // A malformed id is refused before anything is opened.
        paths::check_backup_id(id)?;
        let source = self.find_backup(id).await?;
        let settings = self.settings();
        if !source.host.is_empty() && source.host != settings.host {
            return Err(ConfigError::UnsafePath {
                path: PathBuf::from(&source.path),
                why: format!(
                    "belongs to host {}; restore it there (this is {})",
                    source.host, settings.host
                ),
            });
        }
        if Path::new(&source.config_dir) != settings.config_dir {
            return Err(ConfigError::UnsafePath {
                path: PathBuf::from(&source.config_dir),
                why: format!(
                    "is where backup {id} came from, not the config directory {}",
                    settings.config_dir.display()
                ),
            });
        }
        let tampered = |problems| ConfigError::Tampered {
            id: id.to_string(),
            problems,
        };
        backup::verify(&source).map_err(tampered)?;
        let config_dir = &settings.config_dir;
        let mut plans = Vec::new();
        for file in &source.files {
            paths::target(config_dir, &file.name)?;
            let contents = if file.existed {
                let path = backup::copy_path(&source, &file.name);
                Some(
                    std::fs::read(&path)
                        .map_err(|e| ConfigError::io(format!("read {}", path.display()), e))?,
                )
            } else {
                None
            };
            plans.push(Planned {
                name: file.name.clone(),
                contents,
                mode: file.mode.unwrap_or(0o600),
            });
        }
        let mut report = RollbackReport {
            restored_from: id.to_string(),
            dry_run,
            files: plans.iter().map(|p| restore_diff(config_dir, p)).collect(),
            backup_id: None,
            change_id: None,
        };
        if dry_run {
            return Ok(report);
        }

        let guard = self.take_dir().await?;
        let result = async {
            // Verify again under the lock: nothing may have changed since.
            backup::verify(&source).map_err(tampered)?;
            report.files = plans.iter().map(|p| restore_diff(config_dir, p)).collect();
            self.apply_change(
                &guard,
                ChangeKind::Rollback,
                &source.environment,
                Some(id),
                &plans,
            )
            .await
        }
        .await;
        guard.release().await;
        let (backup_id, change_id) = result?;
        report.backup_id = Some(backup_id);
        report.change_id = Some(change_id);
        Ok(report)
    }

    async fn find_backup(&self, id: &str) -> Result<BackupRecord, ConfigError> {
        let all = self
            .store()
            .read(async |tx| tx.backups().await.map_err(ConfigError::from))
            .await?;
        let Some(record) = all.iter().find(|b| b.id == id).cloned() else {
            let mut ids: Vec<&str> = all.iter().rev().take(5).map(|b| b.id.as_str()).collect();
            ids.reverse();
            return Err(ConfigError::UnknownBackup {
                id: id.to_string(),
                known: ids.join(", "),
            });
        };
        // The recorded path must be the one this id names under backup_dir.
        let expected = self.settings().backup_dir.join(id);
        if Path::new(&record.path) != expected {
            return Err(ConfigError::UnsafePath {
                path: PathBuf::from(&record.path),
                why: format!(
                    "is not {} (the backup directory for this id)",
                    expected.display()
                ),
            });
        }
        Ok(record)
    }
}
