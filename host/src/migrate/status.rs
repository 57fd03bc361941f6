//! Joining the files with the history: one row per migration, and whether
//! the database is up to date, behind, or needs attention.

use super::history::{HistoryRow, RowState};
use super::signature::Verdict;
use super::source::MigrationSet;
use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Applied,
    Failed,
    InProgress,
    MissingFile,
    ChecksumDrift,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Applied => "applied",
            State::Failed => "failed",
            State::InProgress => "in progress",
            State::MissingFile => "missing file",
            State::ChecksumDrift => "checksum drift",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub done: i64,
    pub total: i64,
}

/// One migration's status. This is the documented JSON shape of
/// `gantry migrate status --json` (under `"migrations"`).
#[derive(Debug, Clone, Serialize)]
pub struct StatusRow {
    pub version: i64,
    pub id: String,
    pub name: String,
    pub state: State,
    pub kind: String,
    pub no_transaction: bool,
    pub applied_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<f64>,
    pub applied_by: Option<String>,
    pub checksum: Option<String>,
    pub applied_checksum: Option<String>,
    pub reversible: Option<bool>,
    pub error: Option<String>,
    pub progress: Option<Progress>,
    pub path: Option<String>,
    /// The signature on what the row keeps for a rollback (its down, or
    /// its component): `valid`, `invalid` (changed, or signed under another
    /// installation's key) or `unsigned` (written without the key); only a
    /// valid one is ever run. Absent when the row keeps nothing to run or
    /// the migrator has no key.
    pub recorded: Option<Verdict>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Summary {
    /// Everything applied, nothing wrong.
    UpToDate,
    /// Migrations wait to be applied; nothing wrong.
    Pending,
    /// Failed, in progress, drift, missing files, or a recorded down whose
    /// signature fails.
    Attention,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub rows: Vec<StatusRow>,
    /// A runner holding the migration lock now (on PostgreSQL, its server
    /// session: a killed client's statement may still be running there).
    pub runner: Option<String>,
}

impl Status {
    pub fn summary(&self) -> Summary {
        if self.rows.iter().any(|r| {
            matches!(
                r.state,
                State::Failed | State::InProgress | State::ChecksumDrift | State::MissingFile
            ) || r.recorded == Some(Verdict::Invalid)
        }) {
            Summary::Attention
        } else if self.rows.iter().any(|r| r.state == State::Pending) {
            Summary::Pending
        } else {
            Summary::UpToDate
        }
    }
}

pub fn compute(set: &MigrationSet, history: &[HistoryRow]) -> Status {
    let mut rows = Vec::new();
    let mut files = set.migrations.iter().peekable();
    let mut applied = history.iter().peekable();
    loop {
        let take_file = match (files.peek(), applied.peek()) {
            (None, None) => break,
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (Some(f), Some(h)) if f.version < h.version => Some(true),
            (Some(f), Some(h)) if f.version > h.version => Some(false),
            _ => None,
        };
        let (file, row) = match take_file {
            Some(true) => (files.next(), None),
            Some(false) => (None, applied.next()),
            None => (files.next(), applied.next()),
        };
        let state = match (file, row) {
            (Some(_), None) => State::Pending,
            (None, Some(_)) => State::MissingFile,
            (Some(f), Some(h)) => match h.state {
                RowState::Failed => State::Failed,
                RowState::InProgress => State::InProgress,
                RowState::Applied if h.checksum != f.checksum => State::ChecksumDrift,
                RowState::Applied => State::Applied,
            },
            (None, None) => unreachable!(),
        };
        let version = file
            .map(|f| f.version)
            .or(row.map(|h| h.version))
            .unwrap_or_default();
        let name = file
            .map(|f| f.name.clone())
            .or(row.map(|h| h.name.clone()))
            .unwrap_or_default();
        rows.push(StatusRow {
            version,
            id: format!("{version:03}_{name}"),
            name,
            state,
            kind: file
                .map(|f| f.kind().to_string())
                .or(row.map(|h| h.kind.clone()))
                .unwrap_or_default(),
            no_transaction: file
                .map(|f| f.no_transaction)
                .or(row.map(|h| h.no_transaction))
                .unwrap_or(false),
            applied_at: row.and_then(|h| h.applied_at),
            duration_ms: row.and_then(|h| h.duration_ms),
            applied_by: row.and_then(|h| h.applied_by.clone()),
            checksum: file.map(|f| f.checksum.clone()),
            applied_checksum: row.map(|h| h.checksum.clone()),
            reversible: file.map(|f| f.is_reversible()),
            error: row.and_then(|h| h.error.clone()),
            progress: row.and_then(|h| {
                h.statements.map(|total| Progress {
                    done: h.progress,
                    total,
                })
            }),
            path: file.map(|f| f.path.display().to_string()),
            recorded: None,
        });
    }
    Status { rows, runner: None }
}
