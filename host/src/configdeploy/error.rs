//! Why a config command stopped, with the file, path or backup at fault.

use crate::error::{Exit, Failure};
use crate::secrets::SecretError;
use crate::store::StoreError;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

/// A problem found in a rendered file, by a schema or a validator plugin.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub file: String,
    /// JSON pointer to the value at fault.
    pub path: String,
    pub severity: Severity,
    pub message: String,
    /// `schema` or the plugin's name.
    pub source: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let severity = match self.severity {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(
            f,
            "{severity}: {}{path}: {} [{}]",
            self.file, self.message, self.source
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}{}: {message}", path.display(), line_col.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
    Syntax {
        path: PathBuf,
        line_col: Option<(usize, usize)>,
        message: String,
    },

    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("unknown environment `{env}`; the deployment config defines: {known}")]
    UnknownEnvironment { env: String, known: String },

    #[error("{file}: at {pointer}: {source}")]
    Secret {
        file: String,
        pointer: String,
        #[source]
        source: SecretError,
    },

    #[error("{}: {why}", path.display())]
    UnsafePath { path: PathBuf, why: String },

    #[error("`{0}` is not a backup id (they look like backup_20241027_143022)")]
    BadBackupId(String),

    #[error("no backup `{id}`{}", if known.is_empty() { String::new() } else { format!("; the newest are: {known}") })]
    UnknownBackup { id: String, known: String },

    #[error("{name} is given twice; each deployed file needs its own name")]
    DuplicateName { name: String },

    #[error(
        "the configuration is not valid; nothing was written:\n{}",
        .0.iter().filter(|f| f.severity == Severity::Error).map(|f| format!("  {f}")).collect::<Vec<_>>().join("\n")
    )]
    Invalid(Vec<Finding>),

    #[error(
        "backup {id} does not verify; nothing was restored:\n{}",
        problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n")
    )]
    Tampered { id: String, problems: Vec<String> },

    #[error("another deployment holds the lock on {} (waited {waited:?})", dir.display())]
    Locked { dir: PathBuf, waited: Duration },

    #[error("config validator `{plugin}`: {message}")]
    Validator { plugin: String, message: String },

    #[error("writing {name} failed ({source}); {}", if *restored { "every file already written was put back" } else { "AND putting files back failed: see `gantry config history`" })]
    Write {
        name: String,
        #[source]
        source: std::io::Error,
        restored: bool,
    },

    #[error("cannot {action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ConfigError {
    pub fn io(action: impl Into<String>, source: std::io::Error) -> ConfigError {
        ConfigError::Io {
            action: action.into(),
            source,
        }
    }

    pub fn exit(&self) -> Exit {
        match self {
            ConfigError::Locked { .. }
            | ConfigError::Write { .. }
            | ConfigError::Io { .. }
            | ConfigError::Store(_) => Exit::Failed,
            _ => Exit::Usage,
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(err: ConfigError) -> Self {
        Failure {
            exit: err.exit(),
            error: err.into(),
        }
    }
}
