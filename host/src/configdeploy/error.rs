//! Why a config command stopped, with the file, path or backup at fault.

pub use crate::findings::{Finding, Severity};
use crate::secrets::SecretError;
use crate::store::{LeaseError, StoreError};
use std::path::PathBuf;
use std::time::Duration;

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

    #[error("environments.{env} (its overlay file): {source}")]
    Overlay {
        env: String,
        source: Box<ConfigError>,
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

    #[error("{} is SOPS-encrypted: {source}; nothing was written", path.display())]
    Sops {
        path: PathBuf,
        #[source]
        source: super::sops::SopsError,
    },

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

    #[error(
        "another change holds the lock on {}{} (waited {waited:?})",
        dir.display(),
        holder.as_ref().map(|h| format!(": {h}")).unwrap_or_default()
    )]
    Locked {
        dir: PathBuf,
        waited: Duration,
        holder: Option<String>,
    },

    #[error("stopped: {0}")]
    LeaseLost(String),

    /// A validator could not run: `failed` when the plugin itself failed
    /// (trap, timeout, out of memory), else a usage problem (its settings).
    #[error("config validator `{plugin}`: {message}")]
    Validator {
        plugin: String,
        message: String,
        failed: bool,
    },

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

impl From<LeaseError> for ConfigError {
    fn from(err: LeaseError) -> Self {
        match err {
            LeaseError::Store(e) => ConfigError::Store(e),
            other => ConfigError::LeaseLost(other.to_string()),
        }
    }
}

impl ConfigError {
    pub fn io(action: impl Into<String>, source: std::io::Error) -> ConfigError {
        ConfigError::Io {
            action: action.into(),
            source,
        }
    }
}
