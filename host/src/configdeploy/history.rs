//! Reading back what the deployer did: every backup and whether it still
//! verifies, every change, and for an unfinished change whether its owner
//! still runs it (its lease is alive) and where each of its files stands.

use super::backup;
use super::deployer::ConfigDeployer;
use super::error::ConfigError;
use super::guard::lease_name;
use crate::store::InstallationKey;
use crate::store::{BackupRecord, ChangeRecord, ChangeState, Holder, Store};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// A backup and whether it still verifies.
#[derive(Debug, Clone, Serialize)]
pub struct BackupInfo {
    #[serde(flatten)]
    pub record: BackupRecord,
    /// `None` for another host's backup (its files are there, not here).
    pub verifies: Option<bool>,
    pub problems: Vec<String>,
    /// What the change that took it did: `deploy (completed)`.
    pub made_by: Option<String>,
}

/// Where a file of an unfinished change stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileNow {
    /// As the change wrote it.
    New,
    /// As it was before the change.
    Old,
    /// Neither: changed since.
    Other,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChangeInfo {
    #[serde(flatten)]
    pub record: ChangeRecord,
    /// For a change still `in_progress` whose owner's lease is alive: the
    /// owner. Such a change is running, not interrupted.
    pub running: Option<Holder>,
    /// For an unfinished change on this host: each file's state now.
    pub files_now: Option<BTreeMap<String, FileNow>>,
}

impl ChangeInfo {
    /// Unfinished and nobody runs it any more.
    pub fn is_interrupted(&self) -> bool {
        self.record.state == ChangeState::InProgress && self.running.is_none()
    }

    pub fn is_running(&self) -> bool {
        self.record.state == ChangeState::InProgress && self.running.is_some()
    }
}

impl ConfigDeployer {
    /// Every backup, newest last, and whether it verifies.
    pub async fn backups(&self) -> Result<Vec<BackupInfo>, ConfigError> {
        let host = &self.settings().host;
        let (changes, backups) = self
            .store()
            .read(async |tx| Ok::<_, ConfigError>((tx.changes().await?, tx.backups().await?)))
            .await?;
        Ok(backups
            .into_iter()
            .map(|record| {
                let here = record.host.is_empty() || &record.host == host;
                let problems = if here {
                    backup::verify(&record).err().unwrap_or_default()
                } else {
                    Vec::new()
                };
                let made_by = record
                    .change_id
                    .and_then(|id| changes.iter().find(|c| c.id == id))
                    .map(|c| format!("#{} {} ({})", c.id, c.kind.as_str(), c.state.as_str()));
                BackupInfo {
                    verifies: here.then_some(problems.is_empty()),
                    problems,
                    made_by,
                    record,
                }
            })
            .collect())
    }

    /// Every deploy and rollback; unfinished ones say whether they run and
    /// where each file stands.
    pub async fn history(&self) -> Result<Vec<ChangeInfo>, ConfigError> {
        changes(self.store(), &self.settings().host).await
    }
}

/// Every config change in `store`, seen from `host`.
pub async fn changes(store: &Store, host: &str) -> Result<Vec<ChangeInfo>, ConfigError> {
    let records = store
        .read(async |tx| tx.changes().await.map_err(ConfigError::from))
        .await?;
    // Only an unfinished change on this host has its files looked at, and
    // only then are the backups (beside which its hash key lives) read.
    let unfinished_here = |r: &ChangeRecord| {
        r.state == ChangeState::InProgress && (r.host.is_empty() || r.host == host)
    };
    let backups = if records.iter().any(unfinished_here) {
        store
            .read(async |tx| tx.backups().await.map_err(ConfigError::from))
            .await?
    } else {
        Vec::new()
    };
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        let running = if record.state == ChangeState::InProgress {
            let owner_host = if record.host.is_empty() {
                host
            } else {
                &record.host
            };
            store
                .lease_holder(&lease_name(owner_host, Path::new(&record.config_dir)))
                .await?
                .filter(|h| h.alive && Some(&h.token) == record.owner.as_ref())
        } else {
            None
        };
        let files_now = unfinished_here(&record).then(|| {
            // The key that fingerprinted its files is beside its backup.
            let digest = record
                .backup_id
                .as_ref()
                .and_then(|id| backups.iter().find(|b| &b.id == id))
                .and_then(|b| Path::new(&b.path).parent().map(Path::to_path_buf))
                .and_then(|root| InstallationKey::open(&root).ok());
            files_now(&record, digest.as_ref())
        });
        out.push(ChangeInfo {
            record,
            running,
            files_now,
        });
    }
    Ok(out)
}

/// Whether each file of `record` is as it wrote it, as it was before, or
/// something else.
fn files_now(record: &ChangeRecord, digest: Option<&InstallationKey>) -> BTreeMap<String, FileNow> {
    let dir = Path::new(&record.config_dir);
    record
        .files
        .iter()
        .map(|f| {
            let now = std::fs::read(dir.join(&f.name)).ok();
            let is = |recorded: &Option<String>| match (&now, recorded, digest) {
                (None, None, _) => true,
                (Some(bytes), Some(recorded), Some(digest)) => digest.matches(bytes, recorded),
                _ => false,
            };
            let state = if is(&f.new_sha256) {
                FileNow::New
            } else if is(&f.old_sha256) {
                FileNow::Old
            } else {
                FileNow::Other
            };
            (f.name.clone(), state)
        })
        .collect()
}
