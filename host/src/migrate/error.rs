//! Why a migration command stopped, with the context to act on it.

use super::source::SourceError;
use crate::db::DbError;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, serde::Serialize)]
pub struct DriftItem {
    pub id: String,
    pub path: PathBuf,
    pub applied_checksum: String,
    pub file_checksum: String,
    /// `Some(true)` when only whitespace changed; `None` when the applied
    /// text was not recorded.
    pub whitespace_only: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Source(#[from] SourceError),

    #[error(transparent)]
    Db(#[from] DbError),

    #[error("{context}: {source}")]
    Sql {
        context: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("applied migrations changed on disk:\n{}", drift_lines(.0))]
    Drift(Vec<DriftItem>),

    #[error(
        "migrations need repair before anything else runs:\n{}\nresolve with `gantry migrate repair mark-applied ID` (it did take effect) or `gantry migrate repair mark-reverted ID` (it did not)",
        .0.iter().map(|(id, why)| format!("  {id}: {why}")).collect::<Vec<_>>().join("\n")
    )]
    Blocked(Vec<(String, String)>),

    #[error(
        "{} older than the newest applied migration {newest}; apply with --allow-out-of-order if that is intended",
        if pending.len() == 1 { format!("pending migration {} is", pending[0]) } else { format!("pending migrations {} are", pending.join(", ")) }
    )]
    OutOfOrder {
        pending: Vec<String>,
        newest: String,
    },

    #[error("no migration {0} in the migration files")]
    UnknownTarget(String),

    #[error("migration {0} is not applied; a rollback target must be applied (or 0 for all)")]
    TargetNotApplied(String),

    #[error(
        "cannot roll back: no down migration for {}; nothing was changed",
        .0.join(", ")
    )]
    Irreversible(Vec<String>),

    #[error("migration {id} failed{}: {message}", at(.path, .line))]
    Failed {
        id: String,
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },

    #[error("migration {id}: {source}")]
    Plugin {
        id: String,
        #[source]
        source: anyhow::Error,
    },

    #[error(
        "could not take the migration lock within {waited:?}{}",
        holder.map(|pid| format!("; held by pid {pid}")).unwrap_or_default()
    )]
    LockTimeout {
        waited: Duration,
        holder: Option<i32>,
    },

    #[error(
        "cannot adopt the sqlx history; nothing was recorded:\n{}\n(--accept-drift accepts checksum differences)",
        .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n")
    )]
    Adopt(Vec<super::adopt::AdoptProblem>),

    #[error("this database has no {0} table; there is no history to adopt")]
    NothingToAdopt(&'static str),

    #[error(
        "migration {id}: its component and manifest do not match the operator's pin `{key}` (pinned {expected}, found {found}); nothing was run"
    )]
    Pin {
        id: String,
        key: String,
        expected: String,
        found: String,
    },

    #[error("cannot use the installation key that signs the migration history: {0}")]
    Key(String),

    #[error(
        "cannot roll back: the down recorded for {} fails its signature (changed since gantry recorded it, signed under another installation's key, or never signed); gantry will not run it, and nothing was changed. Restore the migration's files so the down comes from them, or copy the installation key (<backup_dir>/.hash-key) from the host that applied it",
        .0.join(", ")
    )]
    Unverified(Vec<String>),

    #[error("repair {action} {id}: {message}")]
    Repair {
        action: &'static str,
        id: String,
        message: String,
    },
}

fn at(path: &std::path::Path, line: &Option<usize>) -> String {
    match line {
        Some(line) => format!(" at {}:{line}", path.display()),
        None => format!(" in {}", path.display()),
    }
}

fn drift_lines(items: &[DriftItem]) -> String {
    items
        .iter()
        .map(|d| {
            let kind = match d.whitespace_only {
                Some(true) => "only whitespace changed",
                Some(false) => "the SQL changed",
                None => "changed",
            };
            format!(
                "  {} ({}): {kind}\n    applied {}\n    on disk {}",
                d.id,
                d.path.display(),
                d.applied_checksum,
                d.file_checksum
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\nif the change is intended, `gantry migrate repair accept-checksum ID` records it"
}

impl MigrateError {
    pub fn sql(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> MigrateError {
        let context = context.into();
        move |source| MigrateError::Sql { context, source }
    }
}
