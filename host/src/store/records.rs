//! The rows of the state store, as plain structs.

use super::states::ChangeState;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One file in a backup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackupFile {
    pub name: String,
    /// False when the file did not exist; a rollback then removes it.
    pub existed: bool,
    pub sha256: Option<String>,
    pub size: u64,
    /// Permission bits, to restore them.
    #[serde(default)]
    pub mode: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackupRecord {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub environment: String,
    pub config_dir: String,
    /// Where the backup lives on disk.
    pub path: String,
    pub files: Vec<BackupFile>,
    pub total_size: i64,
    /// The change that took it.
    pub change_id: Option<i64>,
    /// `deploy` or `rollback`: what it was taken before.
    pub purpose: String,
    /// The host whose config directory it holds (backups stay on it).
    pub host: String,
}

#[derive(sqlx::FromRow)]
pub(super) struct RawBackup {
    id: String,
    created_at: DateTime<Utc>,
    environment: String,
    config_dir: String,
    path: String,
    files: String,
    total_size: i64,
    change_id: Option<i64>,
    purpose: String,
    host: String,
}

impl From<RawBackup> for BackupRecord {
    fn from(r: RawBackup) -> Self {
        BackupRecord {
            id: r.id,
            created_at: r.created_at,
            environment: r.environment,
            config_dir: r.config_dir,
            path: r.path,
            files: serde_json::from_str(&r.files).unwrap_or_default(),
            total_size: r.total_size,
            change_id: r.change_id,
            purpose: r.purpose,
            host: r.host,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Deploy,
    Rollback,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Deploy => "deploy",
            ChangeKind::Rollback => "rollback",
        }
    }
}

/// One file a change writes: its checksum before and after.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChangeFile {
    pub name: String,
    /// `None`: the file did not exist before.
    pub old_sha256: Option<String>,
    /// `None`: the change removes the file.
    pub new_sha256: Option<String>,
    pub secret: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChangeRecord {
    pub id: i64,
    pub kind: ChangeKind,
    pub state: ChangeState,
    pub environment: String,
    pub config_dir: String,
    /// The backup taken before this change.
    pub backup_id: Option<String>,
    /// For a rollback: the backup it restored.
    pub restored_from: Option<String>,
    pub files: Vec<ChangeFile>,
    pub actor: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// The host whose config directory it changed.
    pub host: String,
    /// The token of the lease it ran under.
    #[serde(skip)]
    pub owner: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(super) struct RawChange {
    id: i64,
    kind: String,
    state: String,
    environment: String,
    config_dir: String,
    backup_id: Option<String>,
    restored_from: Option<String>,
    files: String,
    actor: String,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    error: Option<String>,
    host: String,
    owner: Option<String>,
}

impl From<RawChange> for ChangeRecord {
    fn from(r: RawChange) -> Self {
        ChangeRecord {
            id: r.id,
            kind: if r.kind == "rollback" {
                ChangeKind::Rollback
            } else {
                ChangeKind::Deploy
            },
            // A state this build does not know reads as unfinished.
            state: r.state.parse().unwrap_or(ChangeState::InProgress),
            environment: r.environment,
            config_dir: r.config_dir,
            backup_id: r.backup_id,
            restored_from: r.restored_from,
            files: serde_json::from_str(&r.files).unwrap_or_default(),
            actor: r.actor,
            started_at: r.started_at,
            finished_at: r.finished_at,
            error: r.error,
            host: r.host,
            owner: r.owner,
        }
    }
}
