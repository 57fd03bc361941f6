//! The one user-facing error: a message chain and the exit code it earns.
//!
//! Exit codes: 0 success, 1 the operation failed (rolled back where that
//! applies), 2 bad usage or bad input (nothing changed), 3 a check was
//! unknown or inconclusive.

use crate::config::ConfigError;
use crate::runtime::registry::RegistryError;
use crate::runtime::{LoadError, ManifestError, PluginError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    Failed = 1,
    Usage = 2,
    Inconclusive = 3,
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit as u8)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{error:#}")]
pub struct Failure {
    pub exit: Exit,
    pub error: anyhow::Error,
}

impl Failure {
    /// Bad usage or input: exit 2.
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            exit: Exit::Usage,
            error: error.into(),
        }
    }

    /// The operation failed: exit 1.
    pub fn failed(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            exit: Exit::Failed,
            error: error.into(),
        }
    }

    /// True when the cause is a closed stdout (e.g. `gantry … | head`).
    pub fn is_broken_pipe(&self) -> bool {
        self.error.chain().any(|cause| {
            cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
        })
    }
}

impl From<ConfigError> for Failure {
    fn from(err: ConfigError) -> Self {
        Failure::usage(err)
    }
}

impl From<ManifestError> for Failure {
    fn from(err: ManifestError) -> Self {
        Failure::usage(err)
    }
}

impl From<LoadError> for Failure {
    fn from(err: LoadError) -> Self {
        Failure::usage(err)
    }
}

impl From<RegistryError> for Failure {
    fn from(err: RegistryError) -> Self {
        Failure::usage(err)
    }
}

impl From<PluginError> for Failure {
    fn from(err: PluginError) -> Self {
        if err.is_usage() {
            Failure::usage(err)
        } else {
            Failure::failed(err)
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(err: std::io::Error) -> Self {
        Failure::failed(err)
    }
}

pub type CliResult<T = Exit> = Result<T, Failure>;
